"""
Dataset registry used by ``centralnet data check`` (and by training presets).

A dataset module provides ``summarize(root: Path) -> DatasetSummary``: it reads every
file (so a truncated download is found) and counts samples per split and class.
Modules are imported lazily by name.
"""
from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Callable

# dataset name -> (module, folder under the data root, one-line description)
DATASETS: dict[str, tuple[str, str, str]] = {
    'mnist': ('centralnet_ros.data.mnist', 'mnist', 'MNIST IDX files (image)'),
    'fsdd': ('centralnet_ros.data.fsdd', 'fsdd', 'Free Spoken Digit Dataset wav files (audio)'),
    'avmnist': ('centralnet_ros.data.avmnist', '.', 'AV-MNIST built from mnist/ and fsdd/'),
    'avletters': ('centralnet_ros.data.avletters', 'avletters', 'AVLetters lips (.mat v4) + HTK MFCC'),
    'msrc12': ('centralnet_ros.data.msrc12', 'msrc12', 'MSRC-12 Kinect skeleton gestures'),
    'emodb': ('centralnet_ros.data.emodb', 'emodb', 'Berlin Database of Emotional Speech'),
    'chalearn': ('centralnet_ros.data.chalearn', 'chalearn', 'Montalbano / ChaLearn 2013-2014 gestures'),
}


class DataRootError(FileNotFoundError):
    """The data root is missing or not laid out as the dataset expects."""


@dataclasses.dataclass
class DatasetSummary:
    """What ``centralnet data check`` prints: counts per split and class."""

    name: str
    root: str
    counts: dict[str, dict[str, int]]          # split -> class name -> samples
    modalities: dict[str, str] = dataclasses.field(default_factory=dict)  # name -> shape/info
    notes: list[str] = dataclasses.field(default_factory=list)

    def total(self) -> int:
        return sum(sum(c.values()) for c in self.counts.values())


def summarizer(name: str) -> Callable[[Path], DatasetSummary]:
    if name not in DATASETS:
        raise KeyError(f'unknown dataset {name!r}; known: {", ".join(sorted(DATASETS))}')
    return importlib.import_module(DATASETS[name][0]).summarize


def default_root(name: str, data_root: Path) -> Path:
    """Return the dataset's own folder under a data root (``<root>/msrc12`` ...)."""
    return data_root / DATASETS[name][1]
