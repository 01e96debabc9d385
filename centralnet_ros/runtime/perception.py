"""
The robot-side perception runtime: messages in, per-task decisions out, no ROS.

:class:`Perception` ties the runtime pieces together for several task models
(gesture, speech, emotion) sharing one set of inputs::

    msg --InputHub.ingest--> buffers --trigger--> DecisionPoint --WindowAssembler--> window
        --features pipeline (per modality, from the bundle manifest)--> model inputs
        --TaskModel.classify--> Classification --score threshold--> TaskResult

Everything a task needs is derived from its bundle manifest: which input feeds each
modality (``ModalitySpec.source``), how much history one decision reads
(``window_s``), the raw sample rate the features expect (audio is resampled to it),
and the named :mod:`centralnet_ros.features.pipelines` pipeline with its
parameters, so the robot computes what training computed.

Usage (replay calls exactly this for every bag message)::

    p = Perception(PerceptionConfig(tasks={'speech': TaskConfig(bundle='speech', trigger='speech_end')}))
    for result in p.ingest('audio', msg):          # decisions this message made due
        if result.published:                       # score >= the task's threshold
            publish(result.task, result.label, result.score, result.stamp_ns, result.frame_id)
    p.ingest('audio_info', info_msg)               # AudioInfo for input 'audio'
    p.flush()                                      # end of stream: pending decisions
    p.stats()                                      # diagnostics (JSON-ready dict)
    p.set_threshold('speech', 0.7)
    p.close()

Ingest is split from deciding: ``ingest`` is ``decide(store(...))``. The ROS node calls
:meth:`Perception.store` in its subscription callbacks (convert, buffer, return the
:class:`DueDecision` s; no features, no model) and :meth:`Perception.decide` on a
worker, so a slow model never blocks or drops sensor messages; both give the same
decisions, since windows are cut by header time.

Configuration lives in :mod:`.perception_config`, planning a task from its manifest in
:mod:`.plan`.

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
import sys
import threading
import time
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from .buffers import Ingest, InputHub
from .events import Event, EventConfig, make_event_layer, SmoothedState
from .perception_config import (AudioFormatConfig, DEFAULT_INPUTS, default_inputs, InputConfig, PerceptionConfig,
                                SOURCE_KINDS, TaskConfig)
from .plan import input_spec, make_trigger, ModalityPlan, plan_task, trigger_key
from .stats import RuntimeStats
from .triggers import DecisionPoint, Trigger
from .window import DecisionWindow, ModalityWindow, WindowAssembler
from ..config import check_settings
from ..features import pipelines as P

log = logging.getLogger(__name__)

__all__ = ['AudioFormatConfig', 'InputConfig', 'TaskConfig', 'PerceptionConfig', 'TaskResult', 'LabelInfo',
           'DueDecision', 'Perception', 'DEFAULT_INPUTS', 'SOURCE_KINDS', 'default_inputs']

_NS = 1_000_000_000


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
    state: tuple[str, str, float] | None = None     # smoothed state of the voice: (voice id, label, score)

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


@dataclasses.dataclass(frozen=True)
class DueDecision:
    """A decision a stored message made due: ``task`` decides at ``point`` (run it with :meth:`Perception.decide`)."""

    task: str
    point: DecisionPoint


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
class _TaskState:
    name: str
    config: TaskConfig
    model: Any                                  # engine.TaskModel
    plans: list[ModalityPlan]
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
    event_config: EventConfig | None = None
    event_layer: Any = None                     # events.GestureEventDetector | events.UtteranceDecider
    person_state: SmoothedState | None = None
    events: int = 0
    idle: Counter = dataclasses.field(default_factory=Counter)
    idle_reason: str | None = None
    process: Any = None                         # decision_process.DecisionProcess: features + model elsewhere


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


class _ModelLocks:
    """
    One lock per task for its features and model, so that a slow task never holds up another's decisions.

    ``with locks.task(name):`` around one decision of ``name``; ``with locks:`` takes every task's
    lock (in a fixed order), for what must happen between all decisions (closing, swapping a
    bundle, forgetting a voice's statistics).
    """

    def __init__(self, tasks) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {name: threading.Lock() for name in tasks}
        self._held: list[threading.Lock] = []

    def task(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())

    def __enter__(self) -> '_ModelLocks':
        with self._guard:
            locks = [self._locks[name] for name in sorted(self._locks)]
        for lock in locks:
            lock.acquire()
        self._held = locks
        return self

    def __exit__(self, *exc) -> None:
        locks, self._held = self._held, []
        for lock in reversed(locks):
            lock.release()


class Perception:
    """
    Several task models over shared inputs, driven by header time. See the module docstring.

    :param config: the :class:`PerceptionConfig`.
    :param bundles: optional already-loaded :class:`~centralnet_ros.bundle.Bundle` or
        :class:`~.engine.TaskModel` (shared, e.g. between persons) per task, instead of
        loading ``TaskConfig.bundle``.
    :param pipelines: optional ``pipeline name -> fn(window, **params)`` overriding or
        extending :data:`centralnet_ros.features.pipelines.PIPELINES` (custom features).

    Raises (configuration errors only): ``BundleError`` for a bundle that cannot be
    loaded, ``KeyError`` for an unknown pipeline, ``ValueError`` when a modality's
    source has no configured input of a fitting kind or a trigger has no input to use.

    Thread safety: buffers, triggers and statistics are guarded by one lock, features
    and models by another, so :meth:`store` (subscription callbacks) and
    :meth:`decide` (a decision worker) may run concurrently from different threads;
    decisions themselves run one at a time.
    """

    def __init__(self, config: PerceptionConfig, *, bundles: Mapping[str, Any] | None = None,
                 pipelines: Mapping[str, Callable[..., np.ndarray]] | None = None):
        from .engine import TaskModel          # torch: imported only when a runtime is built
        self.config = config
        self._pipelines = dict(pipelines or {})
        self.models: dict[str, Any] = {}
        for task, tc in config.tasks.items():
            bundle = (bundles or {}).get(task, tc.bundle)
            self.models[task] = bundle if isinstance(bundle, TaskModel) else TaskModel(   # shared (per person)
                bundle, device=config.device, precision=config.precision, backend=config.backend,
                threads=config.threads, on_device_failure=config.on_device_failure, warmup=config.warmup)
        plans = {task: plan_task(config, task, tc, self.models[task], self._pipelines)
                 for task, tc in config.tasks.items()}
        used = sorted({p.input for ps in plans.values() for p in ps})
        self._triggers: dict[tuple, Trigger] = {}
        self._subscribers: dict[tuple, list[str]] = {}
        keys = {task: trigger_key(config, task, tc, plans[task]) for task, tc in config.tasks.items()}
        used = sorted(set(used) | {k[1] for k in keys.values() if k[0] in ('frame', 'speech_end')})
        self._runtime_stats = RuntimeStats()
        self.hub = InputHub([input_spec(config, name, plans) for name in used],
                            loop_jump_ns=int(config.loop_jump_s * _NS), stats=self._runtime_stats)
        self.tasks: dict[str, _TaskState] = {}
        for task, tc in config.tasks.items():
            key = keys[task]
            if key not in self._triggers:
                reads = {p.input for t, k in keys.items() if k == key for p in plans[t]}
                self._triggers[key] = make_trigger(config, key, reads=reads)
                self._subscribers[key] = []
            self._subscribers[key].append(task)
            assembler = WindowAssembler([p.spec for p in plans[task]], self.hub.buffers)
            state = _TaskState(task, tc, self.models[task], plans[task], assembler, key, 0.0,
                               missing={p.name: Counter() for p in plans[task]})
            self._setup_events(state)
            self.tasks[task] = state
        self._events: list[Event] = []
        self._frame_ids: dict[str, str] = {}
        self._conversion: dict[str, _Timing] = {name: _Timing() for name in used}
        self._delay: dict[str, _Timing] = {name: _Timing() for name in used}
        self._unused: Counter = Counter()
        self._input_errors: Counter = Counter()
        self._voice_ids: dict[str, str] = {}          # input ('*': every input) -> voice id now speaking
        self._closed = False
        self._closing = False                   # close() has begun: no decision starts any more
        self._lock = threading.RLock()          # buffers, triggers, statistics
        self._model_lock = _ModelLocks(self.tasks)  # features and models: one decision per task at a time

    # ------------------------------------------------------------------ events
    def _setup_events(self, state: _TaskState) -> None:
        """Build the task's event layer from its bundle's ``decision`` section (thresholds calibrated there)."""
        manifest = state.model.manifest
        cfg = EventConfig.from_manifest(getattr(manifest, 'decision', None), trigger=state.config.trigger)
        unknown = sorted(set(cfg.required_modalities) - {p.name for p in state.plans})
        if unknown:
            raise ValueError(f'task {state.name}: the bundle requires modalities {unknown}, which it does not have')
        if state.config.score_threshold >= 0:
            cfg = self._with_threshold(cfg, state.config.score_threshold)
        state.event_config = cfg
        state.threshold = cfg.on_threshold if cfg.mode == 'events' else cfg.threshold
        state.event_layer = make_event_layer(manifest.labels, cfg, task=state.name)
        tau = state.config.state_time_constant_s
        tau = cfg.state_time_constant_s if tau < 0 else tau        # below 0: the bundle's own
        state.person_state = SmoothedState(manifest.labels, tau) if tau > 0 else None

    @staticmethod
    def _with_threshold(cfg: EventConfig, value: float) -> EventConfig:
        if cfg.mode == 'utterance':
            return dataclasses.replace(cfg, threshold=value)
        ratio = cfg.off_threshold / cfg.on_threshold if cfg.on_threshold > 0 else 1.0
        return dataclasses.replace(cfg, on_threshold=value, off_threshold=value * ratio)

    def take_events(self) -> list[Event]:
        """
        Return the events decided since the last call, in the order they were decided.

        Gesture-like tasks (``decision.mode: events``) emit an event when it ends;
        utterance tasks one per accepted utterance. This is what a robot acts on.
        """
        with self._lock:
            out, self._events = self._events, []
            return out

    def flush_events(self) -> None:
        """End of stream: close the open events (after the last decisions); :meth:`flush` calls it."""
        with self._lock:
            for state in self.tasks.values():
                self._emit(state, state.event_layer.flush())

    def _emit(self, state: _TaskState, events: list[Event]) -> None:
        state.events += len(events)
        self._events.extend(events)

    def _idle_reason(self, s: _TaskState, inputs: dict) -> str | None:
        """Why the task has not decided lately (None while it decides)."""
        if s.idle_reason is not None:
            return s.idle_reason
        if s.decisions:
            return None
        silent = sorted({p.input for p in s.plans if inputs.get(p.input, {}).get('accepted', 0) == 0})
        if silent:
            return f'no decision yet: no message on input(s) {", ".join(silent)}'
        return 'no decision yet: waiting for its trigger (' + s.config.trigger + ')'

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
        Feed one message of ``input_name`` and decide at once; return the decisions it made due, in time order.

        The same as ``decide(store(...))``: what replay calls. A node should call
        :meth:`store` in its subscription callback and :meth:`decide` elsewhere (a worker),
        so a slow model never delays or drops sensor messages.
        """
        return self.decide(self.store(input_name, msg, log_time_ns=log_time_ns))

    def store(self, input_name: str, msg: Any, *, log_time_ns: int | None = None) -> list[DueDecision]:
        """
        Store one message of ``input_name``; return the decisions it made due (run them with :meth:`decide`).

        ``input_name`` is a configured input (``image``, ``depth``, ``audio``,
        ``skeleton``, ...) or ``<audio input>_info`` for its ``AudioInfo``.
        ``log_time_ns`` (optional: the receive or recording time) only feeds the
        ``arrival_delay`` diagnostic; alignment uses header stamps alone. No feature
        pipeline and no model runs here. Never raises on a bad message (it is counted);
        raises ``KeyError`` for an input name that is not configured.
        """
        with self._lock:
            if self._closed:
                raise RuntimeError('Perception is closed')
            return self._store(input_name, msg, log_time_ns)

    def _store(self, input_name: str, msg: Any, log_time_ns: int | None) -> list[DueDecision]:
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

    def start_processes(self, tasks: Iterable[str] | None = None, **options: Any) -> dict[str, Any]:
        """
        Decide ``tasks`` (default: those with ``TaskConfig.decision_process``) in processes of their own.

        Each task gets a :class:`~.decision_process.DecisionProcess`: a child Python process
        that loads the task's bundle and runs its features and model, at
        ``TaskConfig.decision_nice`` below this process's CPU priority, so that its decisions
        never hold this interpreter's lock (the other tasks' decisions and the callbacks never
        wait for it). Buffers, triggers, events and statistics stay here; the decisions are those
        of the in-process path. The children load while this returns; the first decision of a
        task waits for its child. ``options`` go to :class:`~.decision_process.DecisionProcess`
        (timeouts, restart delay). Returns ``task -> DecisionProcess`` of the tasks started now.
        Raises ``ValueError`` for a task whose custom pipeline cannot be imported by another
        process (a lambda, a local function).
        """
        names = [t for t, tc in self.config.tasks.items() if tc.decision_process] if tasks is None else list(tasks)
        started: dict[str, Any] = {}
        try:
            for task in names:
                state = self._task(task)
                if state.process is not None:
                    continue
                started[task] = state.process = self._new_process(task, state.config, state.model, state.plans,
                                                                  nice=state.config.decision_nice, **options)
        except Exception:
            for task, process in started.items():
                self.tasks[task].process = None
                process.close()
            raise
        return started

    def interrupt_processes(self) -> int:
        """
        Drop the decisions running in the tasks' processes now; return how many were dropped.

        Their children are killed (new ones start with the next decisions), so a decision
        worker that waits for a child's answer returns at once: for stopping fast.
        """
        return sum(state.process.interrupt() for state in list(self.tasks.values()) if state.process is not None)

    def _new_process(self, task: str, tc: TaskConfig, model: Any, plans: list[ModalityPlan], **options: Any) -> Any:
        """Start a decision process for ``task`` with this bundle (``model``, ``plans``); options: start_processes."""
        from .decision_process import DecisionProcess, pipeline_reference
        # the configuration the child builds its runtime from: this one, that task alone
        config = dataclasses.replace(self.config, tasks={task: dataclasses.replace(tc, bundle=str(model.bundle.path))})
        return DecisionProcess(config, task, pipelines=self._process_pipelines(task, plans, pipeline_reference),
                               exported=model.exported(), **options)

    def _process_pipelines(self, task: str, plans: list[ModalityPlan], reference: Callable) -> dict[str, str]:
        out = {}
        for plan in plans:
            if plan.pipeline_name in self._pipelines:
                ref = reference(self._pipelines[plan.pipeline_name])
                if ref is None:
                    raise ValueError(f'task {task}: pipeline {plan.pipeline_name!r} is a function another process '
                                     'cannot import (a lambda, a local or __main__ function); decide it in-process '
                                     'or make it a module-level function')
                out[plan.pipeline_name] = ref
        return out

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
        """End of stream: decide at every pending decision point (and close an open speech segment and events)."""
        out = self.decide(self.flush_due())
        self.flush_events()
        return out

    def flush_due(self) -> list[DueDecision]:
        """End of stream: the decisions still pending (an open speech segment, rate points), for :meth:`decide`."""
        with self._lock:
            if self._closed:
                raise RuntimeError('Perception is closed')
            points = []
            for key, trigger in self._triggers.items():
                points += [(p, key) for p in trigger.flush()]
            return self._due(points)

    def set_voice(self, voice_id: str, input_name: str | None = None) -> None:
        """Set the ROS4HRI voice id now speaking on ``input_name`` (default: every audio input); '' unknown."""
        with self._lock:
            if input_name is None:
                self._voice_ids.clear()
            self._voice_ids[input_name or '*'] = str(voice_id or '')

    def forget_voice(self, voice_id: str | None = None) -> int:
        """Drop the adaptation statistics of ``voice_id`` (None: of every voice); returns how many were held."""
        with self._model_lock:
            return sum(s.process.forget_voice(voice_id) if s.process is not None else
                       sum(p.adaptation.forget(voice_id) for p in s.plans if p.adaptation is not None)
                       for s in self.tasks.values())

    def set_threshold(self, task: str, value: float) -> None:
        """Change a task's score threshold at run time (``0 <= value <= 1``; below 0: the bundle's calibrated one)."""
        state = self._task(task)
        value = float(value)
        try:
            check_settings(TaskConfig, score_threshold=value)
        except ValueError as exc:
            raise ValueError(f'{task}: {exc}') from None
        with self._lock:
            state.config = dataclasses.replace(state.config, score_threshold=value)
            self._setup_events(state)

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
                'adapted_voices': (dict(s.process.adapted_voices) if s.process is not None else
                                   {p.name: p.adaptation.voices() for p in s.plans if p.adaptation is not None}),
                'process': s.process.stats() if s.process is not None else None,
                'events': s.events, 'output': s.config.output, 'mode': s.event_config.mode,
                'idle': self._idle_reason(s, inputs), 'idle_counts': dict(s.idle),
                'state': ({p: list(s.person_state.state(p)[:2]) for p in s.person_state.persons}
                          if s.person_state is not None else None),
            }
        return {'device': self.device, 'backend': self.backend, 'clock_ns': now,
                'global_resets': base['global_resets'], 'decisions': base['decisions'],
                'unused_messages': dict(self._unused), 'inputs': inputs, 'tasks': tasks}

    def close(self) -> None:
        """Release the models (and GPU memory). The object is unusable afterwards."""
        self._closing = True                    # no decision starts from now on, and one in a child
        self.interrupt_processes()             # is dropped, not waited for
        with self._model_lock, self._lock:      # never while a decision runs
            if self._closed:
                return
            self._closed = True
            self.models.clear()
            processes = [state.process for state in self.tasks.values() if state.process is not None]
            for state in self.tasks.values():
                state.model = None                 # drop every reference to the models (GPU memory)
        for process in processes:                  # stopped and reaped
            process.close()
        torch = sys.modules.get('torch')           # never imported here just to be emptied
        try:
            if torch is not None and torch.cuda.is_available():
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

    def _observe(self, ingest: Ingest) -> list[DueDecision]:
        points = []
        for key, trigger in self._triggers.items():
            points += [(p, key) for p in trigger.observe(ingest)]
        return self._due(points) if points else []

    def _due(self, points: list[tuple[DecisionPoint, tuple]]) -> list[DueDecision]:
        return sorted((DueDecision(task, p) for p, key in points for task in self._subscribers[key]),
                      key=lambda d: (d.point.t_ns, d.task))

    def decide(self, due: Iterable[DueDecision]) -> list[TaskResult]:
        """
        Run the decisions ``due`` (from :meth:`store` / :meth:`flush_due`); return their results in order.

        Each window's data is read under the buffer lock (references to the frames, a copy
        of the audio samples) and stacked / resampled after it; features and model run
        under a separate lock per task, so :meth:`store` is never blocked by a model or by
        a large window.
        A decision that fails is counted per task and skipped; after :meth:`close`
        the remaining decisions are dropped.
        """
        out = []
        for item in due:
            result = self._decide(self._task(item.task), item.point)
            if result is not None:
                out.append(result)
        return out

    def _pipeline_window(self, mw: ModalityWindow, plan: ModalityPlan, point: DecisionPoint) -> P.Window:
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
            t0 = time.perf_counter()
            with self._lock:
                if self._closed or self._closing:
                    return None
                window = state.assembler.assemble(point, defer=True)
                frame_ids = dict(self._frame_ids)
                voices = dict(self._voice_ids)
            if state.process is None:
                window.finish()     # stacking frames and resampling audio, without holding up store()
            with self._model_lock.task(state.name):  # other tasks decide meanwhile (their own locks)
                if self._closed or self._closing:
                    return None
                if state.process is not None:        # features and model in the task's own process
                    run = state.process.run(window, point, frame_ids, voices, t0)
                else:
                    run = self._run(state, window, point, frame_ids, t0)
            with self._lock:
                return self._record(state, point, *run)
        except Exception as exc:  # noqa: BLE001 - never die: count and go on
            name = getattr(exc, 'type_name', type(exc).__name__)       # a decision process's: the child's own
            with self._lock:
                state.errors[name] += 1
            log.warning('task %s: decision at %d failed (%s: %s)', state.name, point.t_ns, name, exc)
            return None

    def decide_window(self, task: str, window: DecisionWindow) -> TaskResult | None:
        """
        Run the features and the model of ``task`` on an already assembled :class:`~.window.DecisionWindow`.

        ``window`` is ``task``'s assembler output; the statistics are not touched. For
        benchmarks and tests; ``timing['assembly']`` is 0.
        """
        state = self._task(task)
        point = window.point if window.point is not None else DecisionPoint(window.t_ns, 'manual')
        with self._model_lock.task(task):
            missing, errors, frame_id, decision, timing = self._run(state, window, point, dict(self._frame_ids),
                                                                    time.perf_counter())
        if decision is None:
            return None
        return self._result(state, point, missing, frame_id, decision, timing)

    def _run(self, state: _TaskState, window: DecisionWindow, point: DecisionPoint, frame_ids: Mapping[str, str],
             t0: float) -> tuple:
        """Features and model of one window: ``(missing, errors, frame_id, decision or None, timing)``."""
        errors: Counter = Counter()
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
            if plan.adaptation is not None:     # per-voice normalisation: adapts on the utterance, then applies
                voice = self._voice_ids.get(plan.input, self._voice_ids.get('*', ''))
                x = plan.adaptation(x, voice_id=voice, stamp_ns=point.t_ns)
            inputs[plan.name] = x
            if mw.newest_stamp_ns is not None and mw.newest_stamp_ns > newest:
                newest, frame_id = mw.newest_stamp_ns, frame_ids.get(plan.input, '')
        t2 = time.perf_counter()
        if not inputs or any(m not in inputs for m in state.event_config.required_modalities):
            return missing, errors, frame_id, None, {'assembly': t1 - t0, 'features': t2 - t1}
        decision = state.model.classify(inputs, stamp_ns=point.t_ns, frame_id=frame_id, top_k=state.config.top_k)
        t3 = time.perf_counter()
        return missing, errors, frame_id, decision, {'assembly': t1 - t0, 'features': t2 - t1,
                                                     'inference': t3 - t2, 'total': t3 - t0}

    def _record(self, state: _TaskState, point: DecisionPoint, missing: dict[str, str], errors: Counter,
                frame_id: str, decision: Any, timing: dict[str, float]) -> TaskResult | None:
        """Count one decision (or its absence) in the statistics; return its result."""
        state.errors.update(errors)
        for name, reason in missing.items():
            state.missing[name][reason] += 1
        if decision is None:
            required = [m for m in state.event_config.required_modalities if m in missing]
            state.skipped_all_missing += int(not required)
            state.idle['required_missing' if required else 'all_missing'] += 1
            state.idle_reason = ('idle: ' + ('the bundle requires ' if required else 'every modality missing: ')
                                 + ', '.join(f'{m} ({missing.get(m, "absent")})' for m in (required or missing)))
            return None
        state.idle_reason = None
        result = self._result(state, point, missing, frame_id, decision, timing)
        segment = None if point.segment is None else (point.segment.start_ns, point.segment.end_ns)
        if state.event_config.mode == 'utterance':
            self._emit(state, state.event_layer.update(point.t_ns, decision.probabilities, segment=segment))
        else:
            self._emit(state, state.event_layer.update(point.t_ns, decision.probabilities))
        if state.person_state is not None:                 # one smoothed state per voice id ('' without ids)
            voice = next((self._voice_ids[p.input] for p in state.plans if p.input in self._voice_ids),
                         self._voice_ids.get('*', ''))
            label, score, _ = state.person_state.update(voice, point.t_ns, decision.probabilities)
            result.state = (voice, label, score)
        state.decisions += 1
        state.published += int(result.published)
        state.latencies.append(timing['total'])
        state.stamps.append(point.t_ns)
        state.last_stamp_ns = point.t_ns
        self.hub.stats.count_decision(point.reason)
        return result

    @staticmethod
    def _published(state: _TaskState, decision: Any) -> bool:
        """Utterance tasks: the decision is the event; event tasks: only with ``output: decisions``."""
        cfg = state.event_config
        if cfg.mode == 'utterance':
            return state.event_layer.accepts(decision.label, decision.score)
        return (state.config.output == 'decisions' and decision.score >= state.threshold
                and decision.label not in cfg.reject_labels)

    @classmethod
    def _result(cls, state: _TaskState, point: DecisionPoint, missing: dict[str, str], frame_id: str, decision: Any,
                timing: dict[str, float]) -> TaskResult:
        return TaskResult(task=state.name, stamp_ns=point.t_ns, frame_id=frame_id, label=decision.label,
                          score=decision.score, top_k=decision.top_k, probabilities=decision.probabilities,
                          published=cls._published(state, decision), threshold=state.threshold,
                          trigger=point.reason,
                          segment=None if point.segment is None else (point.segment.start_ns, point.segment.end_ns),
                          present=decision.present, missing=missing, fusion_weights=decision.fusion_weights,
                          timing=timing)
