"""
Configuration of the perception runtime: inputs, tasks and the runtime as dataclasses.

:class:`PerceptionConfig` holds one :class:`TaskConfig` per task model and one
:class:`InputConfig` per input (topic); YAML fills them strictly
(:func:`centralnet_ros.config.from_dict`; from the node's parameters and params files:
:mod:`centralnet_ros.node_params`).
:data:`SOURCE_KINDS` says which input kinds can feed a manifest ``source``.
Nothing here loads a model or imports torch.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Literal

from .buffers import INPUT_KINDS
from .vad import VADConfig

__all__ = ['AudioFormatConfig', 'InputConfig', 'TaskConfig', 'PerceptionConfig', 'DEFAULT_INPUTS', 'SOURCE_KINDS',
           'default_inputs']

SOURCE_KINDS: dict[str, tuple[str, ...]] = {
    'audio': ('audio', 'naoqi_audio'),
    'image': ('image', 'compressed_image'),
    'depth': ('image', 'compressed_image'),
    'skeleton': ('pose_array', 'skeleton2d'),
}
"""Manifest ``source`` -> the input kinds (:data:`~.buffers.INPUT_KINDS`) that can feed it."""


# --------------------------------------------------------------------------- configuration

@dataclasses.dataclass
class AudioFormatConfig:
    """Raw PCM format assumed for an audio input until an AudioInfo message arrives."""

    channels: int
    sample_rate: int
    sample_format: str = 'S16LE'


@dataclasses.dataclass
class InputConfig:
    """
    One input (topic) of the runtime.

    ``kind``: a :data:`~centralnet_ros.runtime.buffers.INPUT_KINDS` message kind.
    ``offset_s`` is added to every header stamp (drivers stamping on publication).
    ``retention_s`` / ``max_items``: buffer sizes; None sizes them from the tasks'
    windows. ``channel``: audio channel fed to the models (-1 averages all).
    """

    kind: str
    offset_s: float = 0.0
    retention_s: float | None = None
    max_items: int | None = None
    stamp_marks: Literal['start', 'end'] = 'start'
    contiguity_tolerance_s: float | None = None
    audio_format: AudioFormatConfig | None = None
    channel: int = -1
    naoqi_channels: int | None = None
    num_joints: int | None = 20
    allow_nan_joints: bool = False
    depth_in_metres: bool = True

    def __post_init__(self):
        if self.kind not in INPUT_KINDS:
            raise ValueError(f'input kind {self.kind!r} is not one of {INPUT_KINDS}')
        if self.channel < -1:
            raise ValueError(f'channel must be -1 (average) or a channel index, got {self.channel}')


def default_inputs() -> dict[str, InputConfig]:
    """Return the inputs configured by default (the fusion node's topics), freshly made."""
    return {'image': InputConfig('image'), 'depth': InputConfig('image'), 'audio': InputConfig('audio'),
            'skeleton': InputConfig('pose_array')}


DEFAULT_INPUTS = tuple(default_inputs())
"""Input names configured by default: the fusion node's topics (``image``, ``depth``, ``audio``, ``skeleton``)."""


@dataclasses.dataclass
class TaskConfig:
    """
    One task model and when it decides.

    ``bundle``: a bundle folder, or a name in ``share/centralnet_ros/models``.
    ``trigger``: ``rate`` (every ``1 / rate_hz`` s of header time), ``frame`` (each new
    frame of the task's first image/depth/skeleton modality), ``frame:<input>``,
    ``speech_end`` (end of a voiced segment on the task's audio input) or
    ``speech_end:<input>``. ``window_s``: 0 takes each modality's ``window_s`` from the
    manifest. ``sources``: modality -> input name, overriding the manifest's
    ``source`` (e.g. ``{'lips': 'mouth_camera'}``). With a ``speech_end`` trigger every
    modality reads the speech segment widened by ``segment_padding_s`` on each side
    (never past the decision time for frames).
    """

    bundle: str
    trigger: str = 'rate'
    rate_hz: float = 5.0
    window_s: float = 0.0
    score_threshold: float = 0.5
    max_data_age_s: float | None = None
    segment_padding_s: float = 0.2
    min_audio_coverage: float = 0.5
    sources: dict[str, str] = dataclasses.field(default_factory=dict)
    top_k: int = 3

    def __post_init__(self):
        kind = self.trigger.split(':', 1)[0]
        if kind not in ('rate', 'frame', 'speech_end'):
            raise ValueError(f'trigger must be rate, frame[:<input>] or speech_end[:<input>], got {self.trigger!r}')
        if kind == 'rate' and ':' in self.trigger:
            raise ValueError(f'a rate trigger takes no input, got {self.trigger!r}')
        if not (self.rate_hz > 0 and math.isfinite(self.rate_hz)):
            raise ValueError(f'rate_hz must be positive, got {self.rate_hz}')
        if self.window_s < 0 or self.segment_padding_s < 0:
            raise ValueError('window_s and segment_padding_s must be >= 0')
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ValueError(f'score_threshold must be in [0, 1], got {self.score_threshold}')
        if self.max_data_age_s is not None and self.max_data_age_s < 0:
            raise ValueError('max_data_age_s must be >= 0')
        if not 0.0 <= self.min_audio_coverage <= 1.0:
            raise ValueError('min_audio_coverage must be in [0, 1]')
        if self.top_k < 1:
            raise ValueError('top_k must be >= 1')


@dataclasses.dataclass
class PerceptionConfig:
    """
    Everything :class:`Perception` needs.

    Filled strictly from YAML with :func:`centralnet_ros.config.from_dict`, or from the fusion
    node's parameters by :func:`centralnet_ros.node_params.perception_config` (the runtime
    knows no ROS parameter names).
    """

    tasks: dict[str, TaskConfig]
    inputs: dict[str, InputConfig] = dataclasses.field(default_factory=default_inputs)
    device: str = 'cpu'
    precision: Literal['fp32', 'fp16'] = 'fp32'
    backend: Literal['auto', 'torch', 'onnxruntime'] = 'auto'
    threads: int = 1
    on_device_failure: Literal['fallback_cpu', 'error'] = 'fallback_cpu'
    warmup: int = 3
    max_data_age_s: float = 1.0
    input_timeout_s: float = 2.0
    decision_delay_s: float = 0.1
    loop_jump_s: float = 2.0
    frame_rate_hint_hz: float = 30.0
    vad: dict[str, float] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not self.tasks:
            raise ValueError('no tasks configured')
        for name in self.inputs:
            if name.endswith('_info'):
                raise ValueError(f'input name {name!r}: names ending in _info are reserved for AudioInfo')
        if self.max_data_age_s < 0 or self.decision_delay_s < 0 or self.loop_jump_s <= 0:
            raise ValueError('max_data_age_s and decision_delay_s must be >= 0, loop_jump_s > 0')
        VADConfig(**self.vad)          # unknown VAD keys fail here, naming the key
