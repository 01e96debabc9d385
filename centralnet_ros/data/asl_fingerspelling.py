"""
ASL Finger Spelling (Pugeault & Bowden 2011), read from its PNG files.

Layout under the dataset folder (``<data root>/asl_fingerspelling``; the archive's
``dataset5/`` level in between is accepted)::

    {subject A-E}/{letter a-y, no j}/color_{i}_{n}.png    8-bit colour hand crop
    {subject A-E}/{letter a-y, no j}/depth_{i}_{n}.png    16-bit depth, millimetres

24 static letters (j and z need motion), 5 subjects, about 500 images per letter and
subject.  Each ``color_*`` image pairs with the ``depth_*`` image of the same suffix.
Samples become grey colour and clipped depth maps of one size
(:mod:`centralnet_ros.data.rgbd`), the inputs of the report's CAE experiments.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
import re

from centralnet_ros.data import rgbd
from centralnet_ros.data.registry import DataRootError, DatasetSummary
import numpy as np

LETTERS = tuple('abcdefghiklmnopqrstuvwxy')      # 24: no j, no z
CLASS_NAMES = LETTERS
LAYOUT = ('<root>[/dataset5]/{subject A-E}/{letter a-y except j}/color_{i}_{n}.png '
          'and depth_{i}_{n}.png (16-bit mm)')
_COLOR = re.compile(r'^color_(.+)\.png$', re.IGNORECASE)
DEFAULT_OPTIONS = rgbd.RGBDOptions(max_depth_m=1.5)


@dataclasses.dataclass(frozen=True)
class Sample:
    subject: str
    letter: str
    color: Path
    depth: Path

    @property
    def label(self) -> int:
        return LETTERS.index(self.letter)


def _base(root: Path) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DataRootError(f'ASL Finger Spelling folder {root} does not exist; expected {LAYOUT}')
    return root / 'dataset5' if (root / 'dataset5').is_dir() else root


def list_samples(root: Path, *, max_per_letter: int | None = None) -> list[Sample]:
    """Every colour/depth pair (at most ``max_per_letter`` per subject and letter, in file-name order)."""
    base = _base(root)
    samples = []
    for sdir in sorted(p for p in base.iterdir() if p.is_dir() and len(p.name) == 1 and p.name.isalpha()):
        for ldir in sorted(p for p in sdir.iterdir() if p.is_dir()):
            letter = ldir.name.lower()
            if letter not in LETTERS:
                raise DataRootError(f'{ldir}: letter folders are {", ".join(LETTERS)} (j and z are not static)')
            kept = 0
            for color in sorted(ldir.iterdir()):
                m = _COLOR.match(color.name)
                if not m:
                    continue
                depth = ldir / f'depth_{m.group(1)}.png'
                if not depth.is_file():
                    raise DataRootError(f'{depth} is missing (every {color.name} needs its depth image)')
                samples.append(Sample(sdir.name.upper(), letter, color, depth))
                kept += 1
                if max_per_letter is not None and kept >= max_per_letter:
                    break
    if not samples:
        raise DataRootError(f'no {{subject}}/{{letter}}/color_*.png under {base}; expected {LAYOUT}')
    return samples


def read_sample(sample: Sample, opts: rgbd.RGBDOptions = DEFAULT_OPTIONS) -> dict[str, np.ndarray]:
    """Return ``{'color': (h, w), 'depth': (h, w)}`` float32 model inputs (colour and depth crops differ in size)."""
    rgb = rgbd.read_png(sample.color, depth=False)
    depth = rgbd.read_png(sample.depth, depth=True)
    return {'color': rgbd.colour_input(rgb, opts), 'depth': rgbd.depth_input(depth, opts)}


def load_arrays(root: Path, opts: rgbd.RGBDOptions = DEFAULT_OPTIONS, *,
                max_per_letter: int | None = None) -> dict[str, np.ndarray]:
    """All samples: ``color``, ``depth`` (N, h, w) float32, ``labels`` (N,), ``subjects`` (N,) as 0..4."""
    samples = list_samples(root, max_per_letter=max_per_letter)
    read = [read_sample(s, opts) for s in samples]
    subjects = sorted({s.subject for s in samples})
    return {'color': np.stack([r['color'] for r in read]), 'depth': np.stack([r['depth'] for r in read]),
            'labels': np.asarray([s.label for s in samples], np.int64),
            'subjects': np.asarray([subjects.index(s.subject) for s in samples], np.int64)}


def summarize(root: Path) -> DatasetSummary:
    samples = list_samples(root)
    counts: dict[str, dict[str, int]] = {}
    for s in samples:
        read_sample(s)
        column = counts.setdefault(s.subject, {})
        column[s.letter] = column.get(s.letter, 0) + 1
    opts = DEFAULT_OPTIONS
    return DatasetSummary(name='asl_fingerspelling', root=str(root), counts=counts,
                          modalities={'color': f'{opts.size} grey in [0, 1]',
                                      'depth': f'{opts.size} {opts.min_depth_m}-{opts.max_depth_m} m in [0, 1]'})
