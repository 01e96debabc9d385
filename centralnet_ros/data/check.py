"""``centralnet data check --dataset NAME --root DIR``."""
from __future__ import annotations

import argparse
from pathlib import Path
import sys

from centralnet_ros import paths
from centralnet_ros.data.registry import DataRootError, DATASETS, default_root, summarizer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--dataset', required=True, choices=sorted(DATASETS),
                        help='which dataset reader to run')
    parser.add_argument('--root', default=None,
                        help="the dataset folder (e.g. .../msrc12); default: the dataset's folder "
                             f'under ${paths.DATA_ROOT_ENV} or ../shared/data')


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


def run(args: argparse.Namespace) -> int:
    root = Path(args.root) if args.root else default_root(args.dataset, paths.data_root())
    try:
        summary = summarizer(args.dataset)(root)
    except (DataRootError, FileNotFoundError, ValueError) as exc:
        print(f'centralnet data check: {exc}', file=sys.stderr)
        return 1
    print(format_summary(summary))
    return 0
