"""
The bundle manifest, filled strictly (unknown keys are refused).

Format history: 2 separates ``ModalitySpec.frame_rate`` (frame sources) from
``sample_rate`` (audio only, the one rate the runtime resamples to and the pipeline
computes at) and stores every pipeline parameter; :func:`migrate` reads format 1.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from centralnet_ros.features.pipelines import input_sample_rate, PIPELINES, resolve_params
from centralnet_ros.model_config import FusionConfig

FORMAT_VERSION = 2
SOURCES = ('audio', 'image', 'depth', 'skeleton')
"""The kinds of sensor stream a modality can be made from (``ModalitySpec.source``)."""


@dataclasses.dataclass
class ModalitySpec:
    """
    How one model input is made from a sensor stream.

    ``source`` names the ROS input that feeds it (``audio``, ``image``, ``depth``,
    ``skeleton``); ``pipeline`` names the :mod:`centralnet_ros.features` pipeline and
    ``preprocessing`` holds its parameters, every one of them (resolved from the
    pipeline's parameter dataclass when the manifest is made), so the runtime computes
    exactly what training computed.  ``sample_rate`` (audio only) is the rate in Hz the
    runtime resamples the stream to, once: the rate the pipeline computes at, checked
    against its parameters.  ``frame_rate`` (frame sources, informative) is the frame
    rate of the training data.  ``window_s`` is the stretch of history one decision uses.
    """

    source: str                            # one of SOURCES
    input_shape: list[int]
    pipeline: str
    preprocessing: dict[str, Any] = dataclasses.field(default_factory=dict)
    sample_rate: float | None = None       # audio: Hz of the samples the pipeline is given
    frame_rate: float | None = None        # image, depth, skeleton: frames per second of the training data
    window_s: float | None = None
    description: str = ''
    normalisation: dict[str, Any] = dataclasses.field(default_factory=dict)
    # ^ per-speaker normalisation of the pipeline's output and its prior
    #   (features.normalisation.SpeakerNormalisation; the runtime adapts it per voice)

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f'source must be one of {", ".join(SOURCES)}, got {self.source!r}')
        if self.source != 'audio' and self.sample_rate is not None:
            raise ValueError(f'sample_rate is for audio; a {self.source} source states its frame_rate')
        if self.source == 'audio' and self.frame_rate is not None:
            raise ValueError('an audio source states its sample_rate, not a frame_rate')
        if self.pipeline in PIPELINES:
            self.preprocessing = resolve_params(self.pipeline, self.preprocessing)
            rate = input_sample_rate(self.pipeline, self.preprocessing)
            if self.source == 'audio':
                if rate is None:
                    raise ValueError(f'pipeline {self.pipeline} makes no audio input')
                if self.sample_rate is None:
                    self.sample_rate = float(rate)
                elif float(self.sample_rate) != float(rate):
                    raise ValueError(f'sample_rate {self.sample_rate:g} Hz differs from the {rate} Hz that pipeline '
                                     f'{self.pipeline} computes at (its parameters)')


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
    # how decisions become events and what is rejected: mode, calibrated thresholds, smoothing, the
    # modalities the task needs, and what it was calibrated on (centralnet_ros.runtime.events.EventConfig)
    decision: dict[str, Any] = dataclasses.field(default_factory=dict)
    notes: str = ''
    licence: str = ''        # terms binding this bundle beyond the project's (e.g. openSMILE features); warned on load
    weights_sha256: str = ''
    model_sha256: str = ''                 # of the model section (bundle.validate.model_sha256)

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


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """
    Bring a manifest mapping of an older format to :data:`FORMAT_VERSION` (a new mapping).

    Format 1 used ``sample_rate`` for the frame rate of frame sources (now ``frame_rate``),
    and its speech manifests resampled audio twice: to ``sample_rate``, then inside the
    HTK front end to the front end's own rate.  The migrated manifest resamples once,
    straight to the rate the pipeline computes at.
    """
    import copy
    data = copy.deepcopy(data)
    if data.get('format_version') == 1:
        for spec in (data.get('modalities') or {}).values():
            if not isinstance(spec, dict):
                continue
            if spec.get('source') != 'audio':
                rate = spec.pop('sample_rate', None)
                spec.setdefault('frame_rate', rate)
            elif spec.get('pipeline') in PIPELINES:
                spec['sample_rate'] = input_sample_rate(spec['pipeline'], spec.get('preprocessing') or {})
        data['format_version'] = 2
    return data
