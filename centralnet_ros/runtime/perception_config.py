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

from .buffers import DEFAULT_MAX_BUFFER_BYTES, INPUT_KINDS, InputSpec
from .vad import VADConfig
from ..config import check_settings, setting

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
    offset_s: float = setting(0.0, bounds=(-10.0, 10.0),
                              doc='Added to {input} header stamps before alignment, s (e.g. negative when a driver '
                                  'stamps on arrival rather than at capture).')
    retention_s: float | None = None
    max_items: int | None = None
    stamp_marks: Literal['start', 'end'] = 'start'
    contiguity_tolerance_s: float | None = None
    audio_format: AudioFormatConfig | None = None
    channel: int = setting(-1, bounds=(-1, 63), doc='Audio channel fed to the models; -1 averages all channels.')
    naoqi_channels: int | None = None
    num_joints: int | None = 20
    allow_nan_joints: bool = False
    depth_in_metres: bool = True
    max_pixels: int | None = InputSpec.max_pixels             # images: larger frames are malformed ('limit')
    max_buffer_mb: float | None = DEFAULT_MAX_BUFFER_BYTES / 2 ** 20   # memory bound of the input's buffer

    def __post_init__(self):
        if self.kind not in INPUT_KINDS:
            raise ValueError(f'input kind {self.kind!r} is not one of {INPUT_KINDS}')
        check_settings(self)


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
    (never past the decision time for frames). ``score_threshold``: below 0 (the default)
    the bundle's calibrated threshold (manifest ``decision`` section, see
    :mod:`.events`); in ``events`` mode it is the event's opening threshold. ``output``:
    ``events`` (:meth:`Perception.take_events` is what a robot acts on; decisions of event
    tasks are not marked published) or ``decisions`` (every decision at or above the
    threshold is marked published: the per-decision stream, for debugging).
    ``state_time_constant_s``: a smoothed state per voice (:class:`.events.SmoothedState`),
    on every :class:`TaskResult` as ``state``.
    """

    bundle: str = setting(dynamic=True,
                          doc='Model bundle for {task}: a path, or a name resolved in share/centralnet_ros/models; '
                              'changing it at run time loads the new bundle beside the old one and swaps it in '
                              'between decisions (refused, with the reason, if it does not fit).')
    trigger: str = setting('rate', pattern=r'(rate|frame|speech_end)(:[A-Za-z0-9_]+)?',
                           doc='When {task} decides: rate (every 1/rate_hz s), frame (each new frame of its first '
                               'modality) or speech_end (end of a voiced segment); frame:<input> and '
                               'speech_end:<input> name the input.')
    rate_hz: float = setting(5.0, bounds=(0.1, 100.0), doc='Decision rate of {task} when trigger is rate, Hz.')
    window_s: float = setting(0.0, bounds=(0.0, 30.0),
                              doc='Length of the input window of {task}, s; 0 takes the window the bundle was '
                                  'trained with.')
    score_threshold: float = setting(-1.0, bounds=(-1.0, 1.0), dynamic=True,
                                     doc='Score a {task} decision needs to be published (for event tasks: to '
                                         "open an event); below 0 the threshold calibrated in the bundle's "
                                         'manifest; changeable at run time.')
    state_time_constant_s: float = setting(-1.0, bounds=(-1.0, 3600.0),
                                           doc="Time constant of {task}'s smoothed state per person (per voice "
                                               'id), s of header time: every decision updates it (exponential '
                                               'average of the posteriors); 0 keeps none; below 0 the bundle '
                                               "manifest's decision.state_time_constant_s.")
    decision_nice: int = setting(0, bounds=(0, 19),
                                 doc="How much lower the CPU priority of {task}'s decisions is than the node's (Linux "
                                     'nice value of its decision thread, 0 to 19): a task whose decisions take long '
                                     '(speech, emotion: 10) then leaves the cores to the sensor callbacks and to the '
                                     'tasks that must answer within a frame (gesture: 0), and takes what they leave '
                                     '(benchmarks/results/dds.md).')
    decision_process: bool = setting(False,
                                     doc="Run {task}'s features and model in a process of its own (at decision_nice), "
                                         "so that they never hold the node's interpreter lock while the other tasks "
                                         'decide (the node: speech and emotion); same decisions, one more Python '
                                         "process (on ONNX Runtime it runs the node's graph without torch: 140-160 MB "
                                         'resident); a crashed one is restarted (benchmarks/results/dds.md, '
                                         'decision_process_memory.md).')
    output: str = setting('events', choices=('events', 'decisions'),
                          doc='What {task} publishes: events (one per detected instance or accepted utterance) '
                              'or decisions (every decision above the threshold, for debugging).')
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
        if not math.isfinite(self.rate_hz):
            raise ValueError(f'rate_hz must be finite, got {self.rate_hz}')
        check_settings(self)                 # rate_hz, window_s, score_threshold: their declared ranges
        if self.segment_padding_s < 0:
            raise ValueError('segment_padding_s must be >= 0')
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
    device: str = setting('cpu', pattern=r'cpu|cuda(:\d+)?', doc='Inference device: cpu, cuda or cuda:N.')
    precision: Literal['fp32', 'fp16'] = setting('fp32', doc='Inference precision; fp16 only on CUDA.')
    backend: Literal['auto', 'torch', 'onnxruntime'] = 'auto'
    threads: int = 1
    on_device_failure: Literal['fallback_cpu', 'error'] = setting(
        'fallback_cpu', doc='If the device is unavailable at configure: fallback_cpu (log and use the CPU) or error '
                            '(fail the configure transition).')
    warmup: int = 3
    max_data_age_s: float = setting(1.0, bounds=(0.01, 60.0),
                                    doc='Inputs older than this (by header stamp, relative to the newest input) '
                                        'count as missing.')
    input_timeout_s: float = setting(2.0, bounds=(0.1, 600.0),
                                     doc='An input silent for this long is reported stale in diagnostics (a '
                                         'reliable subscriber gets nothing from a best-effort publisher).')
    decision_delay_s: float = setting(0.1, bounds=(0.0, 5.0),
                                      doc='Hold each decision until this much newer data has arrived, so that '
                                          'inputs stamped up to the decision time are in (topics arrive '
                                          'interleaved).')
    loop_jump_s: float = 2.0
    frame_rate_hint_hz: float = 30.0
    vad: dict[str, float] = dataclasses.field(default_factory=dict)
    speaker_adaptation: bool = setting(True, doc='Adapt the normalisation of bundles that record one (emotion) to '
                                                 'each voice from its unlabelled speech; the statistics never '
                                                 'leave the process.')

    def __post_init__(self):
        if not self.tasks:
            raise ValueError('no tasks configured')
        for name in self.inputs:
            if name.endswith('_info'):
                raise ValueError(f'input name {name!r}: names ending in _info are reserved for AudioInfo')
        check_settings(self)
        if self.loop_jump_s <= 0:
            raise ValueError('loop_jump_s must be > 0')
        VADConfig(**self.vad)          # unknown VAD keys fail here, naming the key
