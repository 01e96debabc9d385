"""The bundle manifest, filled strictly (unknown keys are refused)."""
from __future__ import annotations

import dataclasses
from typing import Any

from centralnet_ros.fusion import FusionConfig

FORMAT_VERSION = 1
SOURCES = ('audio', 'image', 'depth', 'skeleton')
"""The kinds of sensor stream a modality can be made from (``ModalitySpec.source``)."""


@dataclasses.dataclass
class ModalitySpec:
    """
    How one model input is made from a sensor stream.

    ``source`` names the ROS input that feeds it (``audio``, ``image``, ``depth``,
    ``skeleton``); ``pipeline`` names the :mod:`centralnet_ros.features` pipeline and
    ``preprocessing`` holds its parameters, so the runtime computes exactly what
    training computed.  ``window_s`` is the stretch of history one decision uses.
    """

    source: str                            # one of SOURCES
    input_shape: list[int]
    pipeline: str
    preprocessing: dict[str, Any] = dataclasses.field(default_factory=dict)
    sample_rate: float | None = None       # Hz of the raw stream the pipeline expects (audio), or fps
    window_s: float | None = None
    description: str = ''

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f'source must be one of {", ".join(SOURCES)}, got {self.source!r}')


@dataclasses.dataclass
class Manifest:
    format_version: int
    task: str
    labels: list[str]
    model: FusionConfig
    modalities: dict[str, ModalitySpec]
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    evaluation: dict[str, Any] = dataclasses.field(default_factory=dict)   # dataset, protocol, split, samples
    # the terms of the data the weights were derived from (they follow the model wherever it goes):
    # dataset, licence, who may use it for what; written by training from centralnet_ros.data.registry
    data_terms: str = ''
    training: dict[str, Any] = dataclasses.field(default_factory=dict)     # preset, command, seed, date
    label_map: dict[str, str] = dataclasses.field(default_factory=dict)    # e.g. emotion -> ROS4HRI Expression
    notes: str = ''
    weights_sha256: str = ''

    def __post_init__(self):
        if self.format_version < 1:
            raise ValueError(f'format_version must be >= 1, got {self.format_version}')
        if set(self.modalities) != set(self.model.modalities):
            raise ValueError(f"manifest modalities {sorted(self.modalities)} differ from the model's "
                             f'{sorted(self.model.modalities)}')
        for name, spec in self.modalities.items():
            if list(spec.input_shape) != list(self.model.modalities[name].input_shape):
                raise ValueError(f'modality {name!r}: input_shape {spec.input_shape} differs from the '
                                 f"encoder's {self.model.modalities[name].input_shape}")
        if len(self.labels) != self.model.num_classes:
            raise ValueError(f'{len(self.labels)} labels for a model with {self.model.num_classes} classes')
        unknown = set(self.label_map) - set(self.labels)
        if unknown:
            raise ValueError(f'label_map names labels that do not exist: {sorted(unknown)}')
