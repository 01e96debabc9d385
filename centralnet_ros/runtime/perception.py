"""
The robot-side perception runtime: messages in, per-task decisions out, no ROS.

:class:`Perception` ties the runtime pieces together for several task models
(gesture, speech, emotion) sharing one set of inputs::

    msg --InputHub.ingest--> buffers --trigger--> DecisionPoint --WindowAssembler--> window
        --features pipeline (per modality, from the bundle manifest)--> model inputs
        --TaskModel.classify--> Decision --score threshold--> TaskResult

Everything a task needs is derived from its bundle manifest: which input feeds each
modality (``ModalitySpec.source``), how much history one decision reads
(``window_s``), the raw sample rate the features expect (audio is resampled to it),
and the named :mod:`centralnet_ros.features.pipelines` pipeline with its
parameters, so the robot computes what training computed.

Usage (the ROS node calls exactly this from its callbacks; replay does the same
from a bag)::

    p = Perception(PerceptionConfig(tasks={'speech': TaskConfig(bundle='speech', trigger='speech_end')}))
    for result in p.ingest('audio', msg):          # decisions this message made due
        if result.published:                       # score >= the task's threshold
            publish(result.task, result.label, result.score, result.stamp_ns, result.frame_id)
    p.ingest('audio_info', info_msg)               # AudioInfo for input 'audio'
    p.flush()                                      # end of stream: pending decisions
    p.stats()                                      # diagnostics (JSON-ready dict)
    p.set_threshold('speech', 0.7)
    p.close()

Rules kept here:

- **time only from headers**: decision times, windows and staleness use header
  stamps; the wall clock only measures processing latency;
- **never dies on a bad message**: malformed messages are counted per input and kind
  (:class:`~.stats.InputStats`), a failing feature pipeline or model call is counted
  per task and skipped; only configuration errors (an unknown input name, a bundle
  that cannot be loaded, an unknown pipeline) raise, at construction or call time;
- **nothing takes a ROS node**, and importing this module does not import torch (the
  inference engine is imported when a :class:`Perception` is built).

Decision times by trigger: ``rate`` -- the grid time ``k / rate_hz`` (the window
ends there); ``frame`` -- the header stamp of the triggering frame; ``speech_end`` --
the end of the detected speech segment. :attr:`TaskResult.stamp_ns` is that time;
the node copies it into the header of what it publishes.
"""
from __future__ import annotations

from collections import Counter, deque
import dataclasses
import logging
import math
import threading
import time
from typing import Any, Callable, Literal, Mapping

import numpy as np

from .buffers import Ingest, INPUT_KINDS, InputHub, InputSpec
from .stats import RuntimeStats
from .triggers import DecisionPoint, FrameTrigger, RateTrigger, SpeechEndTrigger, Trigger
from .vad import StreamingVAD, VADConfig
from .window import ModalitySpec as WindowSpec
from .window import ModalityWindow, Window, WindowAssembler
from ..features import pipelines as P

log = logging.getLogger(__name__)

__all__ = ['AudioFormatConfig', 'InputConfig', 'TaskConfig', 'PerceptionConfig', 'TaskResult', 'LabelInfo',
           'Perception', 'DEFAULT_INPUTS', 'SOURCE_KINDS']

_NS = 1_000_000_000

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


# --------------------------------------------------------------------------- results

@dataclasses.dataclass
class TaskResult:
    """
    One decision of one task.

    ``stamp_ns``: header time the decision describes (see the module docstring);
    ``frame_id``: header frame of the newest data used; ``published``: ``score >=
    threshold`` (the node publishes only these); ``present`` / ``missing``: which
    modalities were fed, and why the others were not (``absent``, ``stale``,
    ``insufficient``, ``feature_error``, ``feature_shape``, ``feature_nan``);
    ``timing``: processing seconds (``assembly``, ``features``, ``inference``, ``total``).
    """

    task: str
    stamp_ns: int
    frame_id: str
    label: str
    score: float
    top_k: list[tuple[str, float]]
    probabilities: np.ndarray
    published: bool
    threshold: float
    trigger: str
    segment: tuple[int, int] | None
    present: dict[str, bool]
    missing: dict[str, str]
    fusion_weights: dict | None
    timing: dict[str, float]

    @property
    def latency_s(self) -> float:
        """Return the processing latency of this decision (window assembly + features + inference)."""
        return self.timing['total']

    def to_dict(self) -> dict:
        """JSON-ready (no probabilities or fusion weights; see the attributes for those)."""
        return {'task': self.task, 'stamp_ns': int(self.stamp_ns), 'frame_id': self.frame_id,
                'label': self.label, 'score': round(float(self.score), 6),
                'top_k': [[lab, round(float(s), 6)] for lab, s in self.top_k],
                'published': bool(self.published), 'threshold': float(self.threshold), 'trigger': self.trigger,
                'segment_ns': None if self.segment is None else [int(self.segment[0]), int(self.segment[1])],
                'present': dict(self.present), 'missing': dict(self.missing),
                'timing_ms': {k: round(v * 1e3, 4) for k, v in self.timing.items()}}


@dataclasses.dataclass
class LabelInfo:
    """What the node publishes once per task as vision_msgs/LabelInfo (class ids are list indices)."""

    task: str
    labels: list[str]
    threshold: float
    label_map: dict[str, str]
    bundle: str
    modalities: dict[str, str]          # modality -> input feeding it
    fusion_method: str
    metrics: dict[str, float]


# --------------------------------------------------------------------------- internals

@dataclasses.dataclass
class _ModalityPlan:
    name: str
    input: str                          # noqa: A003 (the name window.ModalitySpec uses for the same field)
    source: str
    pipeline_name: str
    pipeline: Callable[..., np.ndarray]
    params: dict[str, Any]
    shape: tuple[int, ...]
    spec: WindowSpec
    fps: float | None
    channel: int


@dataclasses.dataclass
class _TaskState:
    name: str
    config: TaskConfig
    model: Any                                  # engine.TaskModel
    plans: list[_ModalityPlan]
    assembler: WindowAssembler
    trigger_key: tuple
    threshold: float
    decisions: int = 0
    published: int = 0
    skipped_all_missing: int = 0
    errors: Counter = dataclasses.field(default_factory=Counter)
    missing: dict[str, Counter] = dataclasses.field(default_factory=dict)
    latencies: deque = dataclasses.field(default_factory=lambda: deque(maxlen=2000))
    stamps: deque = dataclasses.field(default_factory=lambda: deque(maxlen=50))
    last_stamp_ns: int | None = None


class _Timing:
    """Running sum and recent values of a duration (per input: conversion time)."""

    def __init__(self) -> None:
        self.count, self.total = 0, 0.0
        self.recent: deque = deque(maxlen=500)

    def add(self, seconds: float) -> None:
        self.count += 1
        self.total += seconds
        self.recent.append(seconds)

    def to_dict(self) -> dict:
        if not self.count:
            return {'count': 0, 'mean_ms': None, 'p95_ms': None}
        return {'count': self.count, 'mean_ms': round(self.total / self.count * 1e3, 4),
                'p95_ms': round(float(np.percentile(np.asarray(self.recent), 95)) * 1e3, 4)}


def _frame_id(msg: Any) -> str:
    header = getattr(msg, 'header', None)
    if header is None and isinstance(msg, Mapping):
        header = msg.get('header')
    fid = getattr(header, 'frame_id', None)
    if fid is None and isinstance(header, Mapping):
        fid = header.get('frame_id')
    return fid if isinstance(fid, str) else ''


def _percentiles_ms(values) -> dict:
    if not len(values):
        return {'p50': None, 'p95': None, 'p99': None, 'mean': None, 'max': None}
    a = np.asarray(values, np.float64) * 1e3
    return {'p50': round(float(np.percentile(a, 50)), 4), 'p95': round(float(np.percentile(a, 95)), 4),
            'p99': round(float(np.percentile(a, 99)), 4), 'mean': round(float(a.mean()), 4),
            'max': round(float(a.max()), 4)}


# --------------------------------------------------------------------------- the runtime

class Perception:
    """
    Several task models over shared inputs, driven by header time. See the module docstring.

    :param config: the :class:`PerceptionConfig`.
    :param bundles: optional already-loaded :class:`~centralnet_ros.bundle.Bundle` per task
        (instead of loading ``TaskConfig.bundle``).
    :param pipelines: optional ``pipeline name -> fn(window, **params)`` overriding or
        extending :data:`centralnet_ros.features.pipelines.PIPELINES` (custom features).

    Raises (configuration errors only): ``BundleError`` for a bundle that cannot be
    loaded, ``KeyError`` for an unknown pipeline, ``ValueError`` when a modality's
    source has no configured input of a fitting kind or a trigger has no input to use.

    Thread safety: the public methods hold one lock, so callbacks of a
    multi-threaded executor may call them concurrently (they run one at a time; a
    decision runs inside the ``ingest`` call that made it due).
    """

    def __init__(self, config: PerceptionConfig, *, bundles: Mapping[str, Any] | None = None,
                 pipelines: Mapping[str, Callable[..., np.ndarray]] | None = None):
        from .engine import TaskModel          # torch: imported only when a runtime is built
        self.config = config
        self._pipelines = dict(pipelines or {})
        self._vad_config = VADConfig(**config.vad)
        self.models: dict[str, Any] = {}
        for task, tc in config.tasks.items():
            bundle = (bundles or {}).get(task, tc.bundle)
            self.models[task] = TaskModel(bundle, device=config.device, precision=config.precision,
                                          backend=config.backend, threads=config.threads,
                                          on_device_failure=config.on_device_failure, warmup=config.warmup)
        plans = {task: self._plan(task, tc, self.models[task]) for task, tc in config.tasks.items()}
        used = sorted({p.input for ps in plans.values() for p in ps})
        self._triggers: dict[tuple, Trigger] = {}
        self._subscribers: dict[tuple, list[str]] = {}
        keys = {task: self._trigger_key(task, tc, plans[task]) for task, tc in config.tasks.items()}
        used = sorted(set(used) | {k[1] for k in keys.values() if k[0] in ('frame', 'speech_end')})
        self._runtime_stats = RuntimeStats()
        self.hub = InputHub([self._input_spec(name, plans) for name in used],
                            loop_jump_ns=int(config.loop_jump_s * _NS), stats=self._runtime_stats)
        self.tasks: dict[str, _TaskState] = {}
        for task, tc in config.tasks.items():
            key = keys[task]
            if key not in self._triggers:
                self._triggers[key] = self._make_trigger(key)
                self._subscribers[key] = []
            self._subscribers[key].append(task)
            assembler = WindowAssembler([p.spec for p in plans[task]], self.hub.buffers)
            self.tasks[task] = _TaskState(task, tc, self.models[task], plans[task], assembler, key,
                                          float(tc.score_threshold),
                                          missing={p.name: Counter() for p in plans[task]})
        self._frame_ids: dict[str, str] = {}
        self._conversion: dict[str, _Timing] = {name: _Timing() for name in used}
        self._delay: dict[str, _Timing] = {name: _Timing() for name in used}
        self._unused: Counter = Counter()
        self._input_errors: Counter = Counter()
        self._closed = False
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ construction helpers
    def _plan(self, task: str, tc: TaskConfig, model) -> list[_ModalityPlan]:
        manifest = model.manifest
        speech = tc.trigger.startswith('speech_end')
        max_age = int((tc.max_data_age_s if tc.max_data_age_s is not None else self.config.max_data_age_s) * _NS)
        pad = int(tc.segment_padding_s * _NS)
        plans = []
        for name in model.modalities:
            ms = manifest.modalities[name]
            inp = tc.sources.get(name, ms.source)
            ic = self.config.inputs.get(inp)
            if ic is None:
                raise ValueError(f'task {task}: modality {name!r} reads input {inp!r} (source {ms.source}), which is '
                                 f'not configured; inputs: {sorted(self.config.inputs)} (set TaskConfig.sources)')
            if ic.kind not in SOURCE_KINDS.get(ms.source, ()):
                raise ValueError(f'task {task}: modality {name!r} needs a {ms.source} input '
                                 f'({" or ".join(SOURCE_KINDS.get(ms.source, ()))}), but input {inp!r} is {ic.kind}')
            window_s = tc.window_s or ms.window_s or 0.0
            audio = ms.source == 'audio'
            if audio:
                spec = WindowSpec(name, inp, 'audio', window_ns=int((window_s or 1.0) * _NS), max_age_ns=max_age,
                                  min_coverage=tc.min_audio_coverage, use_segment=speech, segment_padding_ns=pad,
                                  sample_rate=int(ms.sample_rate) if ms.sample_rate else None)
            elif speech or window_s > 0:
                spec = WindowSpec(name, inp, 'sequence', window_ns=int((window_s or 1.0) * _NS), max_age_ns=max_age,
                                  use_segment=speech, segment_padding_ns=pad)
            else:
                spec = WindowSpec(name, inp, 'last_frames', num_frames=1, max_age_ns=max_age)
            fn = self._pipelines.get(ms.pipeline)
            if fn is None:
                try:
                    fn = P.get_pipeline(ms.pipeline)
                except KeyError as exc:
                    raise KeyError(f'task {task}: modality {name!r}: {exc.args[0]}') from None
            plans.append(_ModalityPlan(name, inp, ms.source, ms.pipeline, fn, dict(ms.preprocessing),
                                       tuple(ms.input_shape), spec, None if audio else ms.sample_rate, ic.channel))
        return plans

    def _trigger_key(self, task: str, tc: TaskConfig, plans: list[_ModalityPlan]) -> tuple:
        kind, _, explicit = tc.trigger.partition(':')
        if kind == 'rate':
            return ('rate', float(tc.rate_hz), tuple(sorted({p.input for p in plans})))
        if explicit:
            if explicit not in self.config.inputs:
                raise ValueError(f'task {task}: trigger {tc.trigger!r} names input {explicit!r}, which is not '
                                 f'configured; inputs: {sorted(self.config.inputs)}')
            want = SOURCE_KINDS['audio'] if kind == 'speech_end' else INPUT_KINDS
            if self.config.inputs[explicit].kind not in want:
                raise ValueError(f'task {task}: trigger {tc.trigger!r} needs an audio input, '
                                 f'{explicit!r} is {self.config.inputs[explicit].kind}')
            return (kind, explicit)
        if kind == 'frame':
            frames = [p.input for p in plans if p.source != 'audio']
            if not frames:
                raise ValueError(f'task {task}: trigger frame needs an image, depth or skeleton modality; '
                                 f'use frame:<input> to name one')
            return ('frame', frames[0])
        audio = [p.input for p in plans if p.source == 'audio']
        if not audio:
            raise ValueError(f'task {task}: trigger speech_end needs an audio modality; use speech_end:<input> '
                             f'to run the voice detector on another audio input')
        return ('speech_end', audio[0])

    def _make_trigger(self, key: tuple) -> Trigger:
        delay = int(self.config.decision_delay_s * _NS)
        if key[0] == 'rate':
            return RateTrigger(rate_hz=key[1], inputs=key[2], delay_ns=delay)
        if key[0] == 'frame':
            return FrameTrigger(key[1], delay_ns=delay)
        return SpeechEndTrigger(key[1], vad=StreamingVAD(self._vad_config), delay_ns=delay)

    def _input_spec(self, name: str, plans: Mapping[str, list[_ModalityPlan]]) -> InputSpec:
        ic = self.config.inputs.get(name)
        if ic is None:
            raise ValueError(f'input {name!r} is not configured; inputs: {sorted(self.config.inputs)}')
        longest = 0.0
        for ps in plans.values():
            for p in ps:
                if p.input != name:
                    continue
                s = p.spec
                span = s.window_ns / _NS
                if s.use_segment:
                    span = max(span, self._vad_config.max_speech_ms / 1e3 + self._vad_config.hangover_ms / 1e3
                               + 2 * s.segment_padding_ns / _NS)
                longest = max(longest, span)
        need = longest + self.config.decision_delay_s + 1.0
        retention = ic.retention_s if ic.retention_s is not None else max(10.0, need)
        max_items = ic.max_items
        if max_items is None and ic.kind in ('image', 'compressed_image'):
            # frames are views of their messages: bound the memory, but hold the longest window
            max_items = int(min(256, max(64, math.ceil(need * self.config.frame_rate_hint_hz * 1.2))))
        fmt = None
        if ic.audio_format is not None:
            from .. import messages as M
            fmt = M.AudioFormat(ic.audio_format.channels, ic.audio_format.sample_rate, ic.audio_format.sample_format)
        return InputSpec(name, ic.kind, offset_ns=int(round(ic.offset_s * _NS)), retention_ns=int(retention * _NS),
                         max_items=max_items, stamp_marks=ic.stamp_marks,
                         contiguity_tolerance_ns=(None if ic.contiguity_tolerance_s is None
                                                  else int(ic.contiguity_tolerance_s * _NS)),
                         audio_format=fmt, channels=ic.naoqi_channels, num_joints=ic.num_joints,
                         allow_nan_joints=ic.allow_nan_joints, depth_in_metres=ic.depth_in_metres)

    # ------------------------------------------------------------------ public API
    @property
    def inputs(self) -> dict[str, str]:
        """``input name -> kind`` of the inputs some task reads (what a node should subscribe to)."""
        return {name: spec.kind for name, spec in self.hub.specs.items()}

    @property
    def audio_inputs(self) -> list[str]:
        """Return the inputs taking AudioDataStamped (their AudioInfo is ingested as ``<name>_info``)."""
        return [name for name, spec in self.hub.specs.items() if spec.kind == 'audio']

    @property
    def device(self) -> str:
        return ', '.join(sorted({str(m.device) for m in self.models.values()}))

    @property
    def backend(self) -> str:
        return ', '.join(sorted({m.backend for m in self.models.values()}))

    def ingest(self, input_name: str, msg: Any, *, log_time_ns: int | None = None) -> list[TaskResult]:
        """
        Feed one message of ``input_name``; return the decisions it made due, in time order.

        ``input_name`` is a configured input (``image``, ``depth``, ``audio``,
        ``skeleton``, ...) or ``<audio input>_info`` for its ``AudioInfo``.
        ``log_time_ns`` (optional: the receive or recording time) only feeds the
        ``arrival_delay`` diagnostic; alignment uses header stamps alone. Never raises
        on a bad message (it is counted); raises ``KeyError`` for an input name that is
        not configured.
        """
        with self._lock:
            if self._closed:
                raise RuntimeError('Perception is closed')
            return self._ingest(input_name, msg, log_time_ns)

    def _ingest(self, input_name: str, msg: Any, log_time_ns: int | None) -> list[TaskResult]:
        if input_name.endswith('_info'):
            base = input_name[: -len('_info')]
            if base not in self.config.inputs:
                raise KeyError(f'{input_name!r}: no audio input {base!r}; inputs: {sorted(self.config.inputs)}')
            if base in self.hub.specs and self.hub.specs[base].kind == 'audio':
                self.hub.set_audio_info(base, msg)
            return []
        if input_name not in self.hub.specs:
            if input_name not in self.config.inputs:
                raise KeyError(f'unknown input {input_name!r}; configured inputs: {sorted(self.config.inputs)}')
            self._unused[input_name] += 1            # configured, but no task reads it
            return []
        start = time.perf_counter()
        try:
            ingest = self.hub.ingest(input_name, msg)
        except Exception as exc:  # noqa: BLE001 - a message must never stop the runtime
            self._input_errors[input_name] += 1
            self.hub.stats.input(input_name).count_dropped('error')
            log.warning('input %s: message dropped (%s: %s)', input_name, type(exc).__name__, exc)
            return []
        if ingest.stored:
            self._conversion[input_name].add(time.perf_counter() - start)
            self._frame_ids[input_name] = _frame_id(msg)
            if log_time_ns is not None and ingest.stamp_ns is not None:
                self._delay[input_name].add((int(log_time_ns) - ingest.stamp_ns) / _NS)
        return self._observe(ingest)

    def set_audio_info(self, input_name: str, info: Any) -> bool:
        """
        Record an ``AudioInfo`` for audio input ``input_name`` (same as ``ingest(input_name + '_info', info)``).

        Returns False (and counts it) when the message is malformed.
        """
        with self._lock:
            if input_name not in self.hub.specs:
                return False
            return self.hub.set_audio_info(input_name, info)

    def flush(self) -> list[TaskResult]:
        """End of stream: decide at every pending decision point (and close an open speech segment)."""
        with self._lock:
            if self._closed:
                raise RuntimeError('Perception is closed')
            points = []
            for key, trigger in self._triggers.items():
                points += [(p, key) for p in trigger.flush()]
            return self._decide_all(points)

    def set_threshold(self, task: str, value: float) -> None:
        """Change a task's score threshold at run time (``0 <= value <= 1``)."""
        state = self._task(task)
        value = float(value)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f'{task}: score threshold must be in [0, 1], got {value}')
        with self._lock:
            state.threshold = value

    def threshold(self, task: str) -> float:
        return self._task(task).threshold

    def label_info(self, task: str) -> LabelInfo:
        """Class names (ids are their indices), current threshold and bundle facts of ``task``."""
        state = self._task(task)
        m = state.model.manifest
        return LabelInfo(task=task, labels=list(m.labels), threshold=state.threshold, label_map=dict(m.label_map),
                         bundle=str(state.model.bundle.path), modalities={p.name: p.input for p in state.plans},
                         fusion_method=m.model.method, metrics=dict(m.metrics))

    def stats(self, *, now_ns: int | None = None) -> dict:
        """
        Diagnostics, JSON-ready.

        ``now_ns``: a header-time clock for the input ages (default: the newest header
        stamp received). Per input: rate, stamp age, ``stale`` (age above
        ``input_timeout_s``), malformed / dropped counts, conversion time, arrival delay;
        per task: decisions, published, decision rate (header time), processing latency
        percentiles (ms), missing-modality reasons, errors. An input that never delivered
        a message counts as stale.
        """
        with self._lock:
            return self._stats(now_ns)

    def _stats(self, now_ns: int | None) -> dict:
        now = now_ns if now_ns is not None else self.hub.clock_ns
        base = self.hub.stats.to_dict(now_ns=now)
        inputs = {}
        for name, d in base['inputs'].items():
            age = d.get('age_s')
            d['stale'] = d['accepted'] == 0 or (age is not None and age > self.config.input_timeout_s)
            d['kind'] = self.hub.specs[name].kind if name in self.hub.specs else None
            d['conversion'] = self._conversion[name].to_dict() if name in self._conversion else None
            delay = self._delay.get(name)
            d['arrival_delay_s'] = (round(delay.total / delay.count, 6) if delay is not None and delay.count else None)
            d['errors'] = self._input_errors.get(name, 0)
            inputs[name] = d
        tasks = {}
        for name, s in self.tasks.items():
            rate = None
            if len(s.stamps) >= 2 and s.stamps[-1] > s.stamps[0]:
                rate = round((len(s.stamps) - 1) * _NS / (s.stamps[-1] - s.stamps[0]), 3)
            tasks[name] = {
                'decisions': s.decisions, 'published': s.published, 'threshold': s.threshold,
                'skipped_all_missing': s.skipped_all_missing, 'errors': dict(s.errors),
                'decision_rate_hz': rate, 'last_stamp_ns': s.last_stamp_ns,
                'latency_ms': _percentiles_ms(list(s.latencies)),
                'missing': {m: dict(c) for m, c in s.missing.items()},
                'trigger': s.config.trigger, 'inputs': sorted({p.input for p in s.plans}),
                'bundle': str(s.model.bundle.path), 'bundle_sha256': s.model.bundle_sha256,
            }
        return {'device': self.device, 'backend': self.backend, 'clock_ns': now,
                'global_resets': base['global_resets'], 'decisions': base['decisions'],
                'unused_messages': dict(self._unused), 'inputs': inputs, 'tasks': tasks}

    def close(self) -> None:
        """Release the models (and GPU memory). The object is unusable afterwards."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self.models.clear()
            for state in self.tasks.values():
                state.model = None                 # drop every reference to the models (GPU memory)
        try:
            import torch
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:  # noqa: BLE001 - best effort
            pass

    def __enter__(self) -> 'Perception':
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ decisions
    def _task(self, task: str) -> _TaskState:
        state = self.tasks.get(task)
        if state is None:
            raise KeyError(f'no task {task!r}; tasks: {sorted(self.tasks)}')
        return state

    def _observe(self, ingest: Ingest) -> list[TaskResult]:
        points = []
        for key, trigger in self._triggers.items():
            points += [(p, key) for p in trigger.observe(ingest)]
        return self._decide_all(points) if points else []

    def _decide_all(self, points: list[tuple[DecisionPoint, tuple]]) -> list[TaskResult]:
        jobs = sorted(((p, task) for p, key in points for task in self._subscribers[key]),
                      key=lambda j: (j[0].t_ns, j[1]))
        out = []
        for point, task in jobs:
            result = self._decide(self.tasks[task], point)
            if result is not None:
                out.append(result)
        return out

    def _pipeline_window(self, mw: ModalityWindow, plan: _ModalityPlan, point: DecisionPoint) -> P.Window:
        extra = {'end_ns': point.t_ns, 'start_ns': mw.start_ns, 'valid': mw.valid,
                 'segment': None if point.segment is None else tuple(point.segment)}
        if plan.source == 'audio':
            x = mw.data                                                   # (n, channels)
            if plan.channel < 0:
                mono = x.mean(axis=1) if x.shape[1] > 1 else x[:, 0]
            elif plan.channel < x.shape[1]:
                mono = x[:, plan.channel]
            else:
                raise ValueError(f'audio channel {plan.channel} requested, the stream has {x.shape[1]}')
            return P.Window(np.ascontiguousarray(mono, dtype=np.float32), np.asarray([mw.start_ns], np.int64),
                            sample_rate=mw.sample_rate, extra=extra)
        return P.Window(mw.data, mw.stamps_ns, sample_rate=plan.fps, extra=extra)

    def _decide(self, state: _TaskState, point: DecisionPoint) -> TaskResult | None:
        try:
            return self._decide_unsafe(state, point)
        except Exception as exc:  # noqa: BLE001 - never die: count and go on
            state.errors[type(exc).__name__] += 1
            log.warning('task %s: decision at %d failed (%s: %s)', state.name, point.t_ns, type(exc).__name__, exc)
            return None

    def _decide_unsafe(self, state: _TaskState, point: DecisionPoint) -> TaskResult | None:
        t0 = time.perf_counter()
        window = state.assembler.assemble(point)
        return self._decide_window(state, window, t0, record=True)

    def decide_window(self, task: str, window: Window) -> TaskResult | None:
        """
        Run the features and the model of ``task`` on an already assembled :class:`~.window.Window`.

        ``window`` is ``task``'s assembler output; the statistics are not touched. For
        benchmarks and tests; ``timing['assembly']`` is 0.
        """
        with self._lock:
            return self._decide_window(self._task(task), window, time.perf_counter(), record=False)

    def _decide_window(self, state: _TaskState, window: Window, t0: float, *, record: bool) -> TaskResult | None:
        point = window.point if window.point is not None else DecisionPoint(window.t_ns, 'manual')
        errors = state.errors if record else Counter()
        t1 = time.perf_counter()
        inputs: dict[str, np.ndarray] = {}
        missing: dict[str, str] = {}
        frame_id = ''
        newest = -1
        for plan in state.plans:
            mw = window.modalities[plan.name]
            if not mw.present:
                missing[plan.name] = mw.reason
                continue
            try:
                x = plan.pipeline(self._pipeline_window(mw, plan, point), **plan.params)
                if x is None:                   # the pipeline found nothing to crop (e.g. no face)
                    missing[plan.name] = 'not_detected'
                    continue
                x = np.ascontiguousarray(x, dtype=np.float32)
            except Exception as exc:  # noqa: BLE001 - a window the features cannot handle
                missing[plan.name] = 'feature_error'
                errors[f'feature_error:{plan.name}'] += 1
                log.debug('task %s: %s pipeline %s failed: %s', state.name, plan.name, plan.pipeline_name, exc)
                continue
            if x.shape != plan.shape:
                missing[plan.name] = 'feature_shape'
                errors[f'feature_shape:{plan.name}'] += 1
                continue
            if not np.isfinite(x).all():
                missing[plan.name] = 'feature_nan'
                errors[f'feature_nan:{plan.name}'] += 1
                continue
            inputs[plan.name] = x
            if mw.newest_stamp_ns is not None and mw.newest_stamp_ns > newest:
                newest, frame_id = mw.newest_stamp_ns, self._frame_ids.get(plan.input, '')
        t2 = time.perf_counter()
        if record:
            for name, reason in missing.items():
                state.missing[name][reason] += 1
        if not inputs:
            if record:
                state.skipped_all_missing += 1
            return None
        decision = state.model.classify(inputs, stamp_ns=point.t_ns, frame_id=frame_id, top_k=state.config.top_k)
        t3 = time.perf_counter()
        timing = {'assembly': t1 - t0, 'features': t2 - t1, 'inference': t3 - t2, 'total': t3 - t0}
        published = decision.score >= state.threshold
        if record:
            state.decisions += 1
            state.published += int(published)
            state.latencies.append(timing['total'])
            state.stamps.append(point.t_ns)
            state.last_stamp_ns = point.t_ns
            self.hub.stats.count_decision(point.reason)
        return TaskResult(task=state.name, stamp_ns=point.t_ns, frame_id=frame_id, label=decision.label,
                          score=decision.score, top_k=decision.top_k, probabilities=decision.probabilities,
                          published=published, threshold=state.threshold, trigger=point.reason,
                          segment=None if point.segment is None else (point.segment.start_ns, point.segment.end_ns),
                          present=decision.present, missing=missing, fusion_weights=decision.fusion_weights,
                          timing=timing)
