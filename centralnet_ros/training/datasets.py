"""
Turn a dataset reader's arrays into the trainer's splits, one adapter per experiment dataset.

An adapter is a function ``load(options: dict, data_root: Path) -> ExperimentData``;
the options come from the preset's ``dataset_options``.  Adapters are listed by
``"module:function"`` and imported lazily, so each task keeps its adapter in its own
module.
"""
from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Any

from centralnet_ros.training.trainer import ArraySplit


@dataclasses.dataclass
class ExperimentData:
    train: ArraySplit
    val: ArraySplit
    test: ArraySplit
    label_names: list[str]
    info: dict[str, Any] = dataclasses.field(default_factory=dict)   # protocol, sizes, ... (goes in manifests)


def load_avmnist(options: dict[str, Any], data_root: Path) -> ExperimentData:
    from centralnet_ros.config import from_dict
    from centralnet_ros.data import avmnist
    cfg = from_dict(avmnist.AVMNISTConfig, options)
    data = avmnist.load_avmnist(cfg, root=data_root)
    splits = {name: ArraySplit({'image': s.image, 'audio': s.audio}, s.labels) for name, s in data.splits.items()}
    meta = data.metadata
    info = {'pca_components': meta.pca_components, 'pca_explained_variance': round(meta.pca_explained_variance, 4),
            'build_seconds': round(meta.build_seconds, 1),
            'protocol': ('MNIST train (val carved from it) / t10k test; FSDD clips index 0-4 for test, '
                         + ('5-9 for val, 10-49 for train' if cfg.val_clips == 'held_out'
                            else '5-49 for train and val'))}
    return ExperimentData(**splits, label_names=[str(d) for d in range(10)], info=info)


# dataset name -> "module:function"
ADAPTERS: dict[str, str] = {
    'avmnist': 'centralnet_ros.training.datasets:load_avmnist',
    'avletters': 'centralnet_ros.training.speech:load_avletters',
    'msrc12': 'centralnet_ros.training.gesture:load_msrc12',
    'chalearn': 'centralnet_ros.training.gesture:load_chalearn',
    'emodb': 'centralnet_ros.training.emotion:load_emodb',
}


# augmentation name -> "module:function" returning a trainer hook fn(inputs, rng) -> inputs
AUGMENTATIONS: dict[str, str] = {
    'lip_video': 'centralnet_ros.training.speech:lip_augmentation',
}


def make_augmentation(name: str, options: dict[str, Any] | None = None):
    """Return the training augmentation hook registered as ``name`` (None for ``''``)."""
    if not name:
        return None
    if name not in AUGMENTATIONS:
        raise KeyError(f'unknown augmentation {name!r}; known: {", ".join(sorted(AUGMENTATIONS))}')
    module, _, function = AUGMENTATIONS[name].partition(':')
    return getattr(importlib.import_module(module), function)(**(options or {}))


def load_experiment_data(dataset: str, options: dict[str, Any], data_root: Path) -> ExperimentData:
    if dataset not in ADAPTERS:
        raise KeyError(f'no training adapter for dataset {dataset!r}; known: {", ".join(sorted(ADAPTERS))}')
    module, _, function = ADAPTERS[dataset].partition(':')
    return getattr(importlib.import_module(module), function)(dict(options), data_root)
