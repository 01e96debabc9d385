"""
``centralnet data check [--dataset NAME] [--root DIR] [--data-root DIR]``.

With ``--dataset``: read every file of that dataset and count its samples per split and
class. Without it: list every known dataset, the paths looked for under the data root,
whether they are there, the expected layout and the dataset's terms.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
import sys

from centralnet_ros import paths
from centralnet_ros.data.registry import (DataRootError, DATASETS, default_root, layout, missing_markers,
                                          summarizer)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--dataset', default=None, choices=sorted(DATASETS),
                        help='which dataset reader to run; without it, list what is looked for and where')
    parser.add_argument('--root', default=None,
                        help="the dataset folder (e.g. .../msrc12); default: the dataset's folder "
                             'under the data root')
    parser.add_argument('--data-root', default=None, help=f'folder holding the datasets ({paths.DATA_ROOT_DEFAULT})')


def format_summary(summary) -> str:
    classes = sorted({c for split in summary.counts.values() for c in split},
                     key=lambda c: (len(c), c))
    splits = list(summary.counts)
    lines = [f'dataset {summary.name} at {summary.root}: {summary.total()} samples']
    for name, info in summary.modalities.items():
        lines.append(f'  modality {name}: {info}')
    width = max([5] + [len(c) for c in classes])
    cols = [max(10, len(s) + 2) for s in splits]
    lines.append('  ' + 'class'.ljust(width) + ''.join(s.rjust(w) for s, w in zip(splits, cols)))
    for c in classes:
        lines.append('  ' + c.ljust(width)
                     + ''.join(str(summary.counts[s].get(c, 0)).rjust(w) for s, w in zip(splits, cols)))
    lines.append('  ' + 'total'.ljust(width)
                 + ''.join(str(sum(summary.counts[s].values())).rjust(w) for s, w in zip(splits, cols)))
    lines.extend(f'  note: {n}' for n in summary.notes)
    return '\n'.join(lines)


def list_datasets(data_root: Path, *, origin: str = '') -> str:
    """Return, per known dataset, the paths looked for under ``data_root``, found or missing, its layout and terms."""
    lines = [f'data root: {data_root}{f" ({origin})" if origin else ""}'
             + ('' if data_root.is_dir() else ' - does not exist')]
    for name, entry in DATASETS.items():
        folder = default_root(name, data_root)
        missing = missing_markers(name, data_root)
        looked = [folder / m for m in entry.markers] or [folder]
        lines.append(f'  {name:<10} {"found" if not missing else "MISSING":<8} {entry.description}')
        for path in looked:
            lines.append(f'      {"missing" if path in missing or folder in missing else "found":<8} {path}')
        if missing:
            lines.append(f'      expected in {folder}: {layout(name)}')
        lines.append(f'      terms: {entry.terms}')
    lines.append(f'Set the data root with --data-root or ${paths.DATA_ROOT_ENV}; read one dataset fully with '
                 '`centralnet data check --dataset NAME`.')
    return '\n'.join(lines)


def run(args: argparse.Namespace) -> int:
    explicit = getattr(args, 'data_root', None)   # a Namespace built by a caller may lack it
    data_root = paths.data_root(explicit)
    if args.dataset is None:
        origin = ('--data-root' if explicit else f'${paths.DATA_ROOT_ENV}' if os.environ.get(paths.DATA_ROOT_ENV)
                  else 'the per-user default')
        print(list_datasets(data_root, origin=origin))
        return 0
    root = Path(args.root) if args.root else default_root(args.dataset, data_root)
    try:
        summary = summarizer(args.dataset)(root)
    except (DataRootError, FileNotFoundError, ValueError) as exc:
        print(f'centralnet data check: {exc}', file=sys.stderr)
        return 1
    print(format_summary(summary))
    return 0
