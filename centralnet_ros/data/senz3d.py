"""
Creative Senz3D hand gestures (Memo, Minto & Zanuttigh 2015), read from its PNG files.

Layout under the dataset folder (``<data root>/senz3d``; an ``acquisitions/`` level in
between is accepted)::

    S{subject}/G{gesture}/{n}-color.png    8-bit colour image
    S{subject}/G{gesture}/{n}-depth.png    16-bit depth, millimetres (0 = no reading)
    S{subject}/G{gesture}/{n}-conf.png     16-bit confidence of each depth pixel

4 subjects x 11 gestures x 30 repetitions = 1,320 samples.  Every sample must have its
three files of the same size.  Samples become grey colour and clipped depth maps of one
size (:mod:`centralnet_ros.data.rgbd`), the inputs of the report's CAE experiments.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
import re

from centralnet_ros.data import rgbd
from centralnet_ros.data.registry import DataRootError, DatasetSummary
import numpy as np

LAYOUT = ('<root>[/acquisitions]/S{subject}/G{gesture}/{n}-color.png, {n}-depth.png (16-bit mm), '
          '{n}-conf.png (16-bit confidence)')
NUM_GESTURES = 11
CLASS_NAMES = tuple(f'G{g}' for g in range(1, NUM_GESTURES + 1))
_SUBJECT = re.compile(r'^S(\d+)$')
_GESTURE = re.compile(r'^G(\d+)$')
_COLOR = re.compile(r'^(\d+)-color\.png$', re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class Sample:
    subject: int
    gesture: int          # 1..11
    index: int
    color: Path
    depth: Path
    confidence: Path

    @property
    def label(self) -> int:
        return self.gesture - 1


def _base(root: Path) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DataRootError(f'Creative Senz3D folder {root} does not exist; expected {LAYOUT}')
    return root / 'acquisitions' if (root / 'acquisitions').is_dir() else root


def list_samples(root: Path) -> list[Sample]:
    base = _base(root)
    samples = []
    for sdir in sorted(p for p in base.iterdir() if p.is_dir() and _SUBJECT.match(p.name)):
        for gdir in sorted(p for p in sdir.iterdir() if p.is_dir() and _GESTURE.match(p.name)):
            gesture = int(_GESTURE.match(gdir.name).group(1))
            if not 1 <= gesture <= NUM_GESTURES:
                raise DataRootError(f'{gdir}: gesture folders are G1..G{NUM_GESTURES}')
            for color in sorted(gdir.iterdir()):
                m = _COLOR.match(color.name)
                if not m:
                    continue
                n = m.group(1)
                depth, conf = gdir / f'{n}-depth.png', gdir / f'{n}-conf.png'
                for f in (depth, conf):
                    if not f.is_file():
                        raise DataRootError(f'{f} is missing (every {color.name} needs its depth and conf files)')
                samples.append(Sample(int(_SUBJECT.match(sdir.name).group(1)), gesture, int(n), color, depth, conf))
    if not samples:
        raise DataRootError(f'no S*/G*/*-color.png under {base}; expected {LAYOUT}')
    return samples


def read_sample(sample: Sample, opts: rgbd.RGBDOptions = rgbd.RGBDOptions()) -> dict[str, np.ndarray]:
    """Return ``{'color': (h, w), 'depth': (h, w)}`` float32 model inputs for one sample."""
    rgb = rgbd.read_png(sample.color, depth=False)
    depth = rgbd.read_png(sample.depth, depth=True)
    conf = rgbd.read_png(sample.confidence, depth=True)
    if rgb.shape[:2] != depth.shape:
        raise DataRootError(f'{sample.color} is {rgb.shape[:2]} but {sample.depth.name} is {depth.shape}')
    return {'color': rgbd.colour_input(rgb, opts), 'depth': rgbd.depth_input(depth, opts, conf)}


def load_arrays(root: Path, opts: rgbd.RGBDOptions = rgbd.RGBDOptions()) -> dict[str, np.ndarray]:
    """All samples: ``color``, ``depth`` (N, h, w) float32, ``labels`` (N,), ``subjects`` (N,)."""
    samples = list_samples(root)
    read = [read_sample(s, opts) for s in samples]
    return {'color': np.stack([r['color'] for r in read]), 'depth': np.stack([r['depth'] for r in read]),
            'labels': np.asarray([s.label for s in samples], np.int64),
            'subjects': np.asarray([s.subject for s in samples], np.int64)}


def summarize(root: Path) -> DatasetSummary:
    samples = list_samples(root)
    counts: dict[str, dict[str, int]] = {}
    for s in samples:
        read_sample(s)
        column = counts.setdefault(f'S{s.subject}', {})
        column[CLASS_NAMES[s.label]] = column.get(CLASS_NAMES[s.label], 0) + 1
    opts = rgbd.RGBDOptions()
    return DatasetSummary(name='senz3d', root=str(root), counts=counts,
                          modalities={'color': f'{opts.size} grey in [0, 1]',
                                      'depth': f'{opts.size} {opts.min_depth_m}-{opts.max_depth_m} m in [0, 1]'})
