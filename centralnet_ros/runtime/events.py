"""
Events a robot can act on, made from per-decision class posteriors (header time only).

A model answers at every decision point (a rate grid for gestures, each speech segment
for speech and emotion).  A behaviour engine wants one message per thing that happened,
and silence otherwise.  This module turns the first into the second:

- :class:`GestureEventDetector` (``mode: events``): per-frame posteriors -> gesture
  events.  The posteriors are averaged over the last ``smoothing_s`` seconds (causal);
  an event opens when the smoothed posterior of a class other than the rejection
  classes (``none``) reaches ``on_threshold``, and closes when the highest smoothed
  posterior of those classes falls below ``off_threshold`` (hysteresis) or after
  ``max_duration_s``.  It is
  emitted when it closes, with ``onset`` (first decision above ``on_threshold``),
  ``peak`` (decision of the highest smoothed posterior), ``end`` and ``score`` (the
  label's highest smoothed posterior); events shorter than ``min_duration_s`` are dropped, and
  no event opens within ``min_gap_s`` of the end of the previous one, so one performed
  gesture gives one event.  The label is the class with the largest summed smoothed
  posterior over the event.
- :class:`UtteranceDecider` (``mode: utterance``): one decision per detected utterance,
  or none: the decision is published when its label is not a rejection class (e.g.
  ``not_a_letter``) and its score reaches ``threshold``.
- :class:`SmoothedState`: an optional per-person state (e.g. emotion), the
  exponentially smoothed posteriors of that person's utterances with time constant
  ``time_constant_s`` (header time), its label the arg-max.

The thresholds are not hand-set: :class:`EventConfig` is read from the bundle
manifest's ``decision`` section, written by the calibration on validation data for a
stated false-alarm target (:mod:`centralnet_ros.replay.calibration`), which also
records what it was calibrated on.  ``required_modalities`` names the modalities
without which the task stays idle (the others may be missing).

No ROS, no torch, no wall clock: the same code runs in the node, in replay and in the
benchmarks.
"""
from __future__ import annotations

from collections import deque
import dataclasses
from typing import Any, Iterable, Literal, Mapping, Sequence

import numpy as np

__all__ = ['EventConfig', 'Event', 'GestureEventDetector', 'UtteranceDecider', 'SmoothedState', 'make_event_layer',
           'smooth_posteriors',
           'detect_events', 'DEFAULT_REJECT_LABELS']

_NS = 1_000_000_000

DEFAULT_REJECT_LABELS = ('none', 'not_a_letter', 'background')
"""Class names that mean "nothing of this task happened": they never make an event."""


@dataclasses.dataclass
class EventConfig:
    """
    How a task turns its decisions into events (the bundle manifest's ``decision`` section).

    ``mode``: ``events`` (gesture-like streams: smoothing, hysteresis, minimum gap) or
    ``utterance`` (one decision per utterance, or none). ``threshold`` is the score an
    utterance decision needs; ``on_threshold`` / ``off_threshold`` open and close an event.
    ``calibration`` records the data, the target false-alarm rate and what was reached.
    """

    mode: Literal['events', 'utterance'] = 'utterance'
    threshold: float = 0.0
    on_threshold: float = 0.6
    off_threshold: float = 0.4
    smoothing_s: float = 0.3
    min_duration_s: float = 0.0
    min_gap_s: float = 1.0
    max_duration_s: float = 4.0
    reject_labels: list[str] = dataclasses.field(default_factory=lambda: list(DEFAULT_REJECT_LABELS))
    required_modalities: list[str] = dataclasses.field(default_factory=list)
    state_time_constant_s: float = 0.0
    calibration: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.mode not in ('events', 'utterance'):
            raise ValueError(f"decision.mode must be 'events' or 'utterance', got {self.mode!r}")
        for name in ('threshold', 'on_threshold', 'off_threshold'):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f'decision.{name} must be in [0, 1], got {v}')
        if self.off_threshold > self.on_threshold:
            raise ValueError(f'decision.off_threshold ({self.off_threshold}) must not exceed on_threshold '
                             f'({self.on_threshold}): hysteresis closes below where it opens')
        for name in ('smoothing_s', 'min_duration_s', 'min_gap_s', 'state_time_constant_s'):
            if getattr(self, name) < 0:
                raise ValueError(f'decision.{name} must be >= 0, got {getattr(self, name)}')
        if not self.max_duration_s > 0:
            raise ValueError(f'decision.max_duration_s must be > 0, got {self.max_duration_s}')

    @classmethod
    def from_manifest(cls, section: Mapping[str, Any] | None, *, trigger: str = 'rate') -> 'EventConfig':
        """Read the manifest's ``decision`` section, or (none there) the default mode for ``trigger``."""
        from ..config import from_dict
        data = dict(section or {})
        data.setdefault('mode', 'utterance' if trigger.startswith('speech_end') else 'events')
        return from_dict(cls, data, _where='manifest decision')

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Event:
    """One thing that happened: ``label`` between ``onset_ns`` and ``end_ns``, most certain at ``peak_ns``."""

    task: str
    label: str
    score: float
    onset_ns: int
    peak_ns: int
    end_ns: int
    stamp_ns: int                      # header time at which the event was decided (emitted)
    decisions: int = 1                 # decisions that made it
    person: str = ''

    def to_dict(self) -> dict[str, Any]:
        return {'task': self.task, 'label': self.label, 'score': round(float(self.score), 6),
                'onset_ns': int(self.onset_ns), 'peak_ns': int(self.peak_ns), 'end_ns': int(self.end_ns),
                'stamp_ns': int(self.stamp_ns), 'decisions': int(self.decisions), 'person': self.person}


class GestureEventDetector:
    """
    Streaming posteriors -> events (see the module docstring).

    Feed :meth:`update` with each decision's header time and class posteriors, in time
    order; it returns the events that closed. :meth:`flush` closes an open event at the
    end of a stream; :meth:`reset` forgets everything (a loop in a bag).
    """

    def __init__(self, labels: Sequence[str], config: EventConfig, *, task: str = 'gesture'):
        self.labels = list(labels)
        self.config = config
        self.task = task
        reject = set(config.reject_labels)
        self._candidates = np.asarray([i for i, name in enumerate(self.labels) if name not in reject], np.int64)
        if not len(self._candidates):
            raise ValueError(f'{task}: every label is a rejection label ({sorted(reject)}); nothing can be detected')
        self.reset()

    def reset(self) -> None:
        self._history: deque = deque()               # (t_ns, probs)
        self._sum: np.ndarray | None = None
        self._open: dict[str, Any] | None = None
        self._last_end: int | None = None
        self._last_t: int | None = None

    def _smooth(self, t_ns: int, probs: np.ndarray) -> np.ndarray:
        self._history.append((t_ns, probs))
        self._sum = probs.copy() if self._sum is None else self._sum + probs
        horizon = t_ns - int(self.config.smoothing_s * _NS)
        while len(self._history) > 1 and self._history[0][0] <= horizon:
            _, old = self._history.popleft()
            self._sum -= old
        return self._sum / len(self._history)

    def update(self, t_ns: int, probs: np.ndarray) -> list[Event]:
        """One decision at header time ``t_ns`` with posteriors ``probs`` (C,); return the events it closed."""
        t_ns = int(t_ns)
        probs = np.asarray(probs, np.float64)
        if probs.shape != (len(self.labels),):
            raise ValueError(f'{self.task}: expected {len(self.labels)} posteriors, got shape {probs.shape}')
        if self._last_t is not None and t_ns <= self._last_t:
            if t_ns < self._last_t:                # time went back (a loop): start over
                out = self.flush()
                self.reset()
                return out + self.update(t_ns, probs)
            return []
        self._last_t = t_ns
        return self._step(t_ns, self._smooth(t_ns, probs))

    def _step(self, t_ns: int, s: np.ndarray) -> list[Event]:
        """Run the state machine on one smoothed posterior vector ``s`` at ``t_ns``."""
        self._last_t = t_ns
        cfg = self.config
        out: list[Event] = []
        ev = self._open
        best = int(self._candidates[np.argmax(s[self._candidates])])
        if ev is not None:
            ev['sum'] += s
            ev['max'] = np.maximum(ev['max'], s)
            ev['n'] += 1
            if s[best] > ev['peak_score']:
                ev['peak_score'], ev['peak_ns'] = float(s[best]), t_ns
            if s[best] < cfg.off_threshold or t_ns - ev['onset_ns'] >= int(cfg.max_duration_s * _NS):
                out += self._close(t_ns)
            return out
        if s[best] < cfg.on_threshold:
            return out
        if self._last_end is not None and t_ns - self._last_end < int(cfg.min_gap_s * _NS):
            return out
        self._open = {'index': best, 'onset_ns': t_ns, 'peak_ns': t_ns, 'peak_score': float(s[best]),
                      'sum': s.copy(), 'max': s.copy(), 'n': 1}
        return out

    def _close(self, t_ns: int) -> list[Event]:
        ev, self._open = self._open, None
        self._last_end = t_ns
        if t_ns - ev['onset_ns'] < int(self.config.min_duration_s * _NS):
            return []
        totals = ev['sum'][self._candidates]
        index = int(self._candidates[int(np.argmax(totals))])
        return [Event(self.task, self.labels[index], float(ev['max'][index]), ev['onset_ns'], ev['peak_ns'],
                      t_ns, t_ns, ev['n'])]

    def flush(self) -> list[Event]:
        """End of stream: close the open event (if any)."""
        if self._open is None or self._last_t is None:
            return []
        return self._close(self._last_t)

    @property
    def active(self) -> str | None:
        """Return the label of the event currently open (None when idle)."""
        return None if self._open is None else self.labels[self._open['index']]


class UtteranceDecider:
    """One decision per utterance, or none: rejection classes and the calibrated score threshold decide."""

    def __init__(self, labels: Sequence[str], config: EventConfig, *, task: str = 'speech'):
        self.labels = list(labels)
        self.config = config
        self.task = task
        self._reject = set(config.reject_labels)

    def accepts(self, label: str, score: float) -> bool:
        """Return whether a decision with ``label`` and ``score`` is published."""
        return label not in self._reject and float(score) >= self.config.threshold

    def update(self, t_ns: int, probs: np.ndarray, *, segment: tuple[int, int] | None = None,
               person: str = '') -> list[Event]:
        """Return the event of one utterance (``segment``: its start and end, header ns), or nothing."""
        probs = np.asarray(probs, np.float64)
        k = int(np.argmax(probs))
        label, score = self.labels[k], float(probs[k])
        if not self.accepts(label, score):
            return []
        onset, end = segment if segment is not None else (int(t_ns), int(t_ns))
        peak = (int(onset) + int(end)) // 2          # the middle of the utterance
        return [Event(self.task, label, score, int(onset), peak, int(end), int(t_ns), 1, person)]

    def flush(self) -> list[Event]:
        return []

    def reset(self) -> None:
        pass


class SmoothedState:
    """
    Per-person exponentially smoothed posteriors (e.g. the emotion a person shows over time).

    ``update(person, t_ns, probs)`` decays the person's state by ``exp(-dt / tau)`` of
    header time and adds the new posteriors; :meth:`state` returns the normalised
    state, its label and score.
    """

    def __init__(self, labels: Sequence[str], time_constant_s: float):
        if not time_constant_s > 0:
            raise ValueError(f'time_constant_s must be > 0, got {time_constant_s}')
        self.labels = list(labels)
        self.tau_ns = float(time_constant_s) * _NS
        self._states: dict[str, tuple[int, np.ndarray]] = {}

    def update(self, person: str, t_ns: int, probs: np.ndarray) -> tuple[str, float, np.ndarray]:
        probs = np.asarray(probs, np.float64)
        old = self._states.get(person)
        if old is None or t_ns < old[0]:
            state = probs.copy()
        else:
            w = float(np.exp(-(t_ns - old[0]) / self.tau_ns))
            state = w * old[1] + (1.0 - w) * probs
        self._states[person] = (int(t_ns), state)
        return self.state(person)

    def state(self, person: str) -> tuple[str, float, np.ndarray]:
        """``(label, score, posteriors)`` of ``person`` (KeyError when never seen)."""
        _, s = self._states[person]
        p = s / s.sum() if s.sum() > 0 else s
        k = int(np.argmax(p))
        return self.labels[k], float(p[k]), p

    @property
    def persons(self) -> list[str]:
        return sorted(self._states)

    def reset(self) -> None:
        self._states.clear()


def make_event_layer(labels: Sequence[str], config: EventConfig, *, task: str):
    """Build the :class:`GestureEventDetector` or :class:`UtteranceDecider` that ``config.mode`` names."""
    cls = GestureEventDetector if config.mode == 'events' else UtteranceDecider
    return cls(labels, config, task=task)


def detect_events(times_ns: Iterable[int], probs: np.ndarray, labels: Sequence[str], config: EventConfig, *,
                  task: str = 'gesture') -> list[Event]:
    """Run a :class:`GestureEventDetector` over a whole stream (``probs`` (T, C), ``times_ns`` (T,))."""
    det = GestureEventDetector(labels, config, task=task)
    times = np.asarray(list(times_ns) if not isinstance(times_ns, np.ndarray) else times_ns, np.int64)
    probs = np.asarray(probs, np.float64)
    if len(times) and not (np.diff(times) > 0).all():          # not strictly increasing: the streaming path
        out: list[Event] = []
        for t, p in zip(times, probs):
            out += det.update(int(t), p)
        return out + det.flush()
    out = []
    for t, s in zip(times.tolist(), smooth_posteriors(times, probs, config.smoothing_s)):
        out += det._step(t, s)
    return out + det.flush()


def smooth_posteriors(times_ns: np.ndarray, probs: np.ndarray, smoothing_s: float) -> np.ndarray:
    """
    Compute the detector's causal moving average over a whole stream at once: (T, C).

    Row ``i`` averages the posteriors stamped in ``(t_i - smoothing_s, t_i]`` (at least row
    ``i`` itself), as :meth:`GestureEventDetector.update` does one decision at a time.
    """
    times = np.asarray(times_ns, np.int64)
    probs = np.asarray(probs, np.float64)
    if not len(times):
        return probs.reshape(0, probs.shape[-1] if probs.ndim == 2 else 0)
    lo = np.searchsorted(times, times - int(smoothing_s * _NS), side='right')
    idx = np.arange(len(times))
    lo = np.minimum(lo, idx)
    csum = np.concatenate([np.zeros((1, probs.shape[1])), np.cumsum(probs, axis=0)])
    return (csum[idx + 1] - csum[lo]) / (idx + 1 - lo)[:, None]
