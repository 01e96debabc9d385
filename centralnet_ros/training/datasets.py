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
import numpy as np


@dataclasses.dataclass
class ExperimentData:
    train: ArraySplit
    val: ArraySplit
    test: ArraySplit
    label_names: list[str]
    info: dict[str, Any] = dataclasses.field(default_factory=dict)   # protocol, sizes, ... (goes in manifests)
    normalisation: dict[str, dict] = dataclasses.field(default_factory=dict)
    # ^ modality -> per-speaker normalisation the inputs went through (manifest modalities.<m>.normalisation)
    input_names: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    # ^ modality -> the names of its input values, where they have names (utterance functionals)
    bundle_inputs: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    # ^ modality -> the bundle modality fields that make these arrays from raw input (``preprocessing``: the
    #   pipeline's parameters; ``window_s``), where the adapter knows them (MSRC-12 skeletons):
    #   check_bundle_inputs holds the preset's bundle to them


def check_refit(cfg, data: ExperimentData) -> None:
    """
    Refuse a refit (``data.info['train_with_val']``: trained on its validation persons) that would still choose on them.

    Choosing the epoch (``train.select: best``) or a class bias (``calibrate_bias_class``) on persons the
    model was trained on picks what fits the training data; a refit keeps the last epoch and takes its
    calibrations from the same preset trained without them. Raises
    :class:`~centralnet_ros.config.ConfigError` naming each, before training.
    """
    from centralnet_ros.config import ConfigError
    if not data.info.get('train_with_val'):
        return
    problems = []
    if cfg.train.select == 'best':
        problems.append('train.select is best: the epoch would be chosen on them (set train.select: last)')
    if data.info.get('calibrate_bias_class') is not None:
        problems.append('a class bias would be calibrated on them (set dataset_options.calibrate_none_bias: false)')
    if problems:
        raise ConfigError(f'preset {cfg.name} trains on its validation persons (a refit): ' + '; '.join(problems))


def check_bundle_inputs(cfg, data: ExperimentData) -> None:
    """
    Refuse a preset whose bundle would feed the robot's model inputs unlike its training arrays (call before training).

    For every modality whose adapter states how its arrays are made (:attr:`ExperimentData.bundle_inputs`),
    the preset's ``bundle.modalities.<m>`` must have the same ``preprocessing`` (the pipeline's
    defaults filled in on both sides) and ``window_s``, and ``modalities.<m>.input_shape`` must
    be the arrays' shape. Raises :class:`~centralnet_ros.config.ConfigError` naming every
    disagreement with both values. A preset without a ``bundle:`` section is not checked.
    """
    from centralnet_ros.config import ConfigError
    from centralnet_ros.features.pipelines import resolve_params
    if getattr(cfg, 'bundle', None) is None:
        return
    problems = []
    for name, made in data.bundle_inputs.items():
        spec = cfg.bundle.modalities.get(name)
        if spec is None:
            problems.append(f'bundle.modalities has no {name!r} (its training arrays are made by {dict(made)})')
            continue
        for key, want in made.items():
            have = spec.get(key)
            if key == 'preprocessing':
                have, want = dict(have or {}), dict(want)
                if spec.get('pipeline'):
                    have, want = resolve_params(spec['pipeline'], have), resolve_params(spec['pipeline'], want)
                diff = {k: (have.get(k), want.get(k)) for k in sorted(set(have) | set(want))
                        if have.get(k) != want.get(k)}
                if diff:
                    problems.append(f'bundle.modalities.{name}.preprocessing disagrees with the training arrays '
                                    f'(bundle value, value the arrays were made with): {diff}')
            elif have is None or (abs(float(have) - want) > 1e-9 if isinstance(want, float) else have != want):
                problems.append(f'bundle.modalities.{name}.{key} is {have!r} but the training arrays were made with '
                                f'{want!r}')
        enc = cfg.modalities.get(name)
        shape = list(data.train.inputs[name].shape[1:]) if name in data.train.inputs else None
        if enc is not None and shape is not None and list(enc.input_shape) != shape:
            problems.append(f'modalities.{name}.input_shape is {list(enc.input_shape)} but the training arrays are '
                            f'{shape} per sample')
    if problems:
        raise ConfigError(f'preset {cfg.name}: ' + '; '.join(problems) + ' -- the robot would make its inputs unlike '
                          'the training data; make the preset agree with its dataset_options')


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


def load_mmimdb(options: dict[str, Any], data_root: Path) -> ExperimentData:
    """MM-IMDb's own train / dev / test split; modalities ``poster`` (4096) and ``plot`` (300); 23 genres, multi-hot."""
    from centralnet_ros.data import mmimdb
    unknown = set(options) - {'folder'}
    if unknown:
        raise ValueError(f'dataset_options: unknown key(s) {sorted(unknown)} for mmimdb; known: folder')
    root = Path(data_root) / options.get('folder', 'mmimdb')
    splits = mmimdb.load_splits(root)
    arrays = {name: ArraySplit(s.inputs, s.labels) for name, s in splits.items()}
    return ExperimentData(train=arrays['train'], val=arrays['dev'], test=arrays['test'],
                          label_names=mmimdb.genre_names(root),
                          info={'protocol': "the file's own split (Arevalo et al. 2017): train / dev / test"})


def load_audioset(options: dict[str, Any], data_root: Path) -> ExperimentData:
    """
    Load AudioSet "Domestic animals, pets": ``bal_train`` (a seeded ``val_fraction`` for validation), ``eval`` test.

    Modalities ``audio`` (10 x 128 VGGish embeddings, flattened to 1280) and ``visual`` (the
    per-segment features a user extracted under ``visual/``: the released embeddings hold none).
    """
    from centralnet_ros.data import audioset
    unknown = set(options) - {'folder', 'val_fraction', 'seed'}
    if unknown:
        raise ValueError(f'dataset_options: unknown key(s) {sorted(unknown)} for audioset; '
                         'known: folder, val_fraction, seed')
    root = Path(data_root) / options.get('folder', 'audioset')
    parts = {s: audioset.load_subset(root, s) for s in ('bal_train', 'eval')}
    for name, part in parts.items():
        if 'visual' not in part.inputs or not part.visual_present.all():
            raise FileNotFoundError(
                f'{root}/visual/{name}: the AudioSet preset fuses audio with images, and the released embeddings '
                f'are audio only; {int(part.visual_present.sum())}/{len(part.keys)} segments have a visual feature '
                'file. Extract one image feature vector per segment into visual/<split>/<video_id>_<start_ms>.npy')

    def arrays(part, index) -> ArraySplit:
        return ArraySplit({'audio': part.inputs['audio'][index].reshape(len(index), -1),
                           'visual': part.inputs['visual'][index]}, part.labels[index])

    train = parts['bal_train']
    order = np.random.default_rng(int(options.get('seed', 0))).permutation(len(train.keys))
    n_val = int(round(len(order) * float(options.get('val_fraction', 0.1))))
    test = parts['eval']
    return ExperimentData(train=arrays(train, np.sort(order[n_val:])), val=arrays(train, np.sort(order[:n_val])),
                          test=arrays(test, np.arange(len(test.keys))), label_names=list(audioset.SUBSET),
                          info={'protocol': 'bal_train (validation held out by seed) / eval, pets subset'})


# dataset name -> "module:function"
ADAPTERS: dict[str, str] = {
    'avmnist': 'centralnet_ros.training.datasets:load_avmnist',
    'avletters': 'centralnet_ros.training.speech:load_avletters',
    'msrc12': 'centralnet_ros.training.gesture:load_msrc12',
    'chalearn': 'centralnet_ros.training.gesture:load_chalearn',
    'emodb': 'centralnet_ros.training.emotion:load_emodb',
    'mmimdb': 'centralnet_ros.training.datasets:load_mmimdb',
    'audioset': 'centralnet_ros.training.datasets:load_audioset',
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
