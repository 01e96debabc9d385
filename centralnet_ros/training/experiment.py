"""
Experiment presets (``config/experiments/*.yaml``), filled strictly into dataclasses.

A preset names the dataset, encoders, fusion options, methods to compare, seeds and
training settings.
"""
from __future__ import annotations

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

    def __post_init__(self):
        for method in self.methods:
            base, _, modality = method.partition('+')[0].partition(':')
            if base not in fusion_methods():
                raise ValueError(f'unknown method {method!r}; use one of {fusion_methods()} '
                                 f'(unimodal as "unimodal:<modality>")')
            if base == 'unimodal' and modality not in self.modalities:
                raise ValueError(f'{method!r}: no modality {modality!r} in {list(self.modalities)}')

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
    data = load_yaml(path) or {}
    if not isinstance(data, dict):
        raise ConfigError(f'{path}: expected a mapping at the top level')
    if quick:
        for key, value in (data.get('quick') or {}).items():
            set_dotted(data, key, value)
    for key, value in (overrides or {}).items():
        set_dotted(data, key, value)
    try:
        return from_dict(ExperimentConfig, data)
    except (ConfigError, ValueError) as exc:
        raise ConfigError(f'{path}: {exc}') from exc


def experiment_dict(cfg: ExperimentConfig) -> dict:
    return to_dict(cfg)
