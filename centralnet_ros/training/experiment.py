"""
Experiment presets (``config/experiments/*.yaml``), filled strictly into dataclasses.

A preset names the dataset, encoders, fusion options, methods to compare, seeds, folds
(``folds:``, e.g. leave one speaker out) and training settings, and may name variants
(``variants:``: named sets of overrides, e.g. another feature set or class list) that a
sweep runs beside each other.  A sweep runs variants x folds x methods x seeds
(:func:`centralnet_ros.training.sweep.plan_runs`); :meth:`ExperimentConfig.resolve`
gives the plain configuration of one of its runs.  A preset may ``extends: <preset>``: its
keys are merged onto that preset's (mappings key by key), so a benchmark's preset adds its
folds and variants to the shipped model's preset without repeating it.
"""
from __future__ import annotations

import copy
import dataclasses
import os
from pathlib import Path
from typing import Any, Literal

from centralnet_ros import paths
from centralnet_ros.config import ConfigError, from_dict, load_yaml, set_dotted, to_dict
from centralnet_ros.encoders import EncoderConfig
from centralnet_ros.fusion import fusion_methods, FusionConfig, FusionOptions
from centralnet_ros.training.trainer import TrainConfig
import yaml


@dataclasses.dataclass
class BundleSpec:
    """
    What ``centralnet train`` ships: the task, the method, and per modality how the runtime makes its input.

    Those are the bundle ModalitySpec fields; ``input_shape`` comes from the encoder.
    """

    task: str
    method: str = 'centralnet'
    modalities: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    label_map: dict[str, str] = dataclasses.field(default_factory=dict)
    notes: str = ''
    # the manifest's decision section as far as training knows it (mode, required_modalities, ...;
    # runtime.events.EventConfig); calibrated thresholds are written by their benchmarks afterwards
    decision: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class FoldsConfig:
    """
    The folds of an experiment: one fold per entry of ``values``, which the fold writes into ``key``.

    ``key`` is a dotted configuration key (``dataset_options.fold``: the dataset adapter's fold
    index); ``apply`` holds overrides every fold applies (e.g. clearing the shipped bundle's fixed
    ``dataset_options.test_speaker``).  ``scheme`` says in words what the folds are.  With
    ``seed_per_fold`` fold number k trains seeds k, k + 1, ... (one seed per fold: seed = fold)
    instead of the same seeds on every fold.
    """

    scheme: str                      # e.g. leave-one-speaker-out, leave-persons-out
    key: str
    values: list[Any]
    apply: dict[str, Any] = dataclasses.field(default_factory=dict)
    seed_per_fold: bool = False

    def __post_init__(self):
        if not self.key:
            raise ValueError('folds.key must name the configuration key a fold sets, e.g. dataset_options.fold')
        if not self.values:
            raise ValueError('folds.values is empty: give one value per fold')


@dataclasses.dataclass
class ExperimentConfig:
    name: str
    dataset: str
    num_classes: int
    modalities: dict[str, EncoderConfig]
    methods: list[str]
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    fusion: FusionOptions = dataclasses.field(default_factory=FusionOptions)
    dataset_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    task: Literal['multiclass', 'multilabel'] = 'multiclass'
    seeds: int = 8
    seed_offset: int = 0
    description: str = ''
    quick: dict[str, Any] = dataclasses.field(default_factory=dict)  # dotted overrides for --quick
    augment: str = ''                                                # training augmentation (datasets.AUGMENTATIONS)
    augment_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    bundle: BundleSpec | None = None                                 # for `centralnet train`
    folds: FoldsConfig | None = None                                 # None: the dataset_options' one split
    variants: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)   # name -> dotted overrides

    def __post_init__(self):
        for method in self.methods:
            base, _, modality = method.partition('+')[0].partition(':')
            if base not in fusion_methods():
                raise ValueError(f'unknown method {method!r}; use one of {fusion_methods()} '
                                 f'(unimodal as "unimodal:<modality>")')
            if base == 'unimodal' and modality not in self.modalities:
                raise ValueError(f'{method!r}: no modality {modality!r} in {list(self.modalities)}')

    def resolve(self, variant: str | None = None, fold: int | None = None) -> ExperimentConfig:
        """
        Return the configuration one run of a sweep trains with.

        ``variant``'s overrides are applied first (a variant may change the folds, seeds or
        methods too), then fold number ``fold`` (an index into ``folds.values``).  The result
        declares no variants, and no folds once a fold is chosen.
        """
        if variant is None and fold is None:
            return self
        data = to_dict(self)
        if variant is not None:
            if variant not in self.variants:
                known = ', '.join(self.variants) or 'none'
                raise ConfigError(f'{self.name}: no variant {variant!r}; variants: {known}')
            for key, value in self.variants[variant].items():
                set_dotted(data, key, copy.deepcopy(value))
        data['variants'] = {}
        if fold is not None:
            folds = data.get('folds')
            if not folds:
                raise ConfigError(f'{self.name}: fold {fold} asked for, but the experiment declares no folds')
            if not 0 <= fold < len(folds['values']):
                raise ConfigError(f'{self.name}: fold {fold} out of range; {len(folds["values"])} folds')
            for key, value in (folds.get('apply') or {}).items():
                set_dotted(data, key, copy.deepcopy(value))
            set_dotted(data, folds['key'], copy.deepcopy(folds['values'][fold]))
            data['folds'] = None
        where = self.name + (f' variant {variant}' if variant is not None else '') + (
            f' fold {fold}' if fold is not None else '')
        try:
            return from_dict(ExperimentConfig, data)
        except (ConfigError, ValueError) as exc:
            raise ConfigError(f'{where}: {exc}') from exc

    def fusion_config(self, method: str) -> FusionConfig:
        """
        Return the FusionConfig of ``method``.

        ``unimodal:<modality>`` picks one modality; a ``+moddrop`` suffix (e.g.
        ``centralnet+moddrop``) trains that method with whole-modality dropout at
        ``fusion.moddrop_p``.
        """
        method, plus, extra = method.partition('+')
        if plus and extra != 'moddrop':
            raise ValueError(f'unknown method suffix +{extra}; the only one is +moddrop')
        base, _, modality = method.partition(':')
        options = dataclasses.asdict(self.fusion)
        return FusionConfig(method=base, modalities=self.modalities, num_classes=self.num_classes,
                            task=self.task, unimodal=modality or None,
                            modality_dropout=self.fusion.moddrop_p if plus else 0.0, **options)


def presets_dir() -> Path:
    return paths.config_dir() / 'experiments'


def available_presets() -> list[str]:
    return sorted(p.stem for p in presets_dir().glob('*.yaml'))


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``['train.epochs=3', 'seeds=2']`` -> dotted keys with YAML-typed values."""
    out = {}
    for item in items or []:
        if '=' not in item:
            raise ConfigError(f'override {item!r} must look like key.sub=value')
        key, value = item.split('=', 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def load_experiment(preset: str | os.PathLike, *, quick: bool = False,
                    overrides: dict[str, Any] | None = None) -> ExperimentConfig:
    """Load a preset by name (``avmnist``) or path; ``quick`` applies its ``quick:`` overrides."""
    path = Path(preset)
    if not path.suffix:
        path = presets_dir() / f'{preset}.yaml'
        if not path.exists():
            raise ConfigError(f'no experiment preset {preset!r}; available: {", ".join(available_presets())}')
    data = _preset_dict(path)
    if quick:
        for key, value in (data.get('quick') or {}).items():
            set_dotted(data, key, value)
    for key, value in (overrides or {}).items():
        set_dotted(data, key, value)
    try:
        return from_dict(ExperimentConfig, data)
    except (ConfigError, ValueError) as exc:
        raise ConfigError(f'{path}: {exc}') from exc


def _preset_dict(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """Return the preset at ``path`` as a dict, merged onto the preset it ``extends`` (a name or path)."""
    data = load_yaml(path) or {}
    if not isinstance(data, dict):
        raise ConfigError(f'{path}: expected a mapping at the top level')
    base = data.pop('extends', None)
    if base is None:
        return data
    base_path = Path(base) if Path(str(base)).suffix else presets_dir() / f'{base}.yaml'
    if not base_path.is_absolute() and Path(str(base)).suffix:
        base_path = path.parent / base_path
    if not base_path.is_file():
        raise ConfigError(f'{path}: extends {base!r}, which is no preset; available: {", ".join(available_presets())}')
    if base_path.resolve() in seen or base_path.resolve() == path.resolve():
        raise ConfigError(f'{path}: extends {base!r}, which extends it back')
    return _merge(_preset_dict(base_path, (*seen, path.resolve())), data)


def _merge(base: dict, top: dict) -> dict:
    """Return ``base`` with ``top`` merged in: mappings key by key, any other value replaced."""
    out = dict(base)
    for key, value in top.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def experiment_dict(cfg: ExperimentConfig) -> dict:
    return to_dict(cfg)
