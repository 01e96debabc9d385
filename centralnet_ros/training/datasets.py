"""Turn a dataset reader's arrays into the trainer's splits, one adapter per experiment dataset.

An adapter takes ``(options, data_root)`` and returns :class:`ExperimentData`; the
options come from the preset's ``dataset_options`` and are passed to the reader.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

from centralnet_ros.training.trainer import ArraySplit


@dataclasses.dataclass
class ExperimentData:
    train: ArraySplit
    val: ArraySplit
    test: ArraySplit
    label_names: list[str]
    info: dict[str, Any] = dataclasses.field(default_factory=dict)


def _avmnist(options: dict[str, Any], data_root: Path) -> ExperimentData:
    from centralnet_ros.data import avmnist
    from centralnet_ros.config import from_dict
    cfg = from_dict(avmnist.AVMNISTConfig, options)
    data = avmnist.load_avmnist(data_root, cfg)
    splits = {}
    for name in ('train', 'val', 'test'):
        s = data.splits[name]
        splits[name] = ArraySplit({'image': s.image, 'audio': s.audio}, s.labels)
    return ExperimentData(**splits, label_names=[str(d) for d in range(10)], info=dict(data.meta))


ADAPTERS: dict[str, Callable[[dict[str, Any], Path], ExperimentData]] = {
    'avmnist': _avmnist,
}


def load_experiment_data(dataset: str, options: dict[str, Any], data_root: Path) -> ExperimentData:
    if dataset not in ADAPTERS:
        raise KeyError(f'no training adapter for dataset {dataset!r}; known: {", ".join(sorted(ADAPTERS))}')
    return ADAPTERS[dataset](dict(options), data_root)
