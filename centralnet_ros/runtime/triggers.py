"""
Decision triggers: when to assemble a window and run the models, in header time.

A trigger observes every :class:`~.buffers.Ingest` the hub returns and answers with
the :class:`DecisionPoint` s that are due. Time is the newest header stamp seen
(the trigger's ``clock_ns``), never the wall clock.

- :class:`RateTrigger`: at every multiple of ``1 / rate_hz`` of header time (the grid
  is absolute, so replaying a bag twice gives the same decision times);
- :class:`FrameTrigger`: at each stored frame of a chosen input (every ``every``-th);
- :class:`SpeechEndTrigger`: at the end of each speech segment found by a
  :class:`~.vad.StreamingVAD` on an audio input (the point carries the segment);
- :class:`AnyTrigger`: the union of several.

``delay_ns`` holds a point back until the clock has passed ``t + delay_ns``, giving
the other inputs time to deliver data stamped up to ``t`` (topics of a bag arrive
interleaved, not sorted by header stamp). ``flush()`` releases what is pending at
the end of a recording; an :class:`Ingest` with ``reset=True`` (loop) resets the
trigger before it is processed.
"""
from __future__ import annotations

from dataclasses import dataclass
import heapq
import math
from typing import Sequence

from .buffers import Ingest
from .vad import SpeechSegment, StreamingVAD, VADConfig

__all__ = ['DecisionPoint', 'Trigger', 'RateTrigger', 'FrameTrigger', 'SpeechEndTrigger', 'AnyTrigger']


@dataclass(frozen=True, order=True)
class DecisionPoint:
    """
    Decide at header time ``t_ns``.

    ``segment``: the speech segment ``(start_ns, end_ns)`` for a speech-end point;
    ``input``: the input that caused it (frame / speech).
    """

    t_ns: int
    reason: str                                 # 'rate' | 'frame' | 'speech_end'
    input: str | None = None                    # noqa: A003 (public field name)
    segment: SpeechSegment | None = None


class Trigger:
    """Base: clock keeping, delayed release and reset. Subclasses implement ``_on_ingest``."""

    def __init__(self, *, delay_ns: int = 0):
        if delay_ns < 0:
            raise ValueError(f'delay_ns must be >= 0, got {delay_ns}')
        self.delay_ns = int(delay_ns)
        self.clock_ns: int | None = None
        self._pending: list[DecisionPoint] = []
        self.resets = 0

    def reset(self) -> None:
        self.clock_ns = None
        self._pending.clear()
        self.resets += 1

    def observe(self, ingest: Ingest) -> list[DecisionPoint]:
        """Process one ingest result; return the points now due, in time order."""
        if ingest.reset:
            self.reset()
        if ingest.stored and ingest.stamp_ns is not None:
            t = ingest.end_ns if ingest.end_ns is not None else ingest.stamp_ns
            if self.clock_ns is None or t > self.clock_ns:
                self.clock_ns = t
            for p in self._on_ingest(ingest):
                heapq.heappush(self._pending, p)
        return self._release(self.clock_ns)

    def flush(self) -> list[DecisionPoint]:
        """Everything still pending (end of stream)."""
        for p in self._on_flush():
            heapq.heappush(self._pending, p)
        out = sorted(self._pending)
        self._pending.clear()
        return out

    def _release(self, clock: int | None) -> list[DecisionPoint]:
        out = []
        while self._pending and clock is not None and self._pending[0].t_ns + self.delay_ns <= clock:
            out.append(heapq.heappop(self._pending))
        return out

    def _on_ingest(self, ingest: Ingest) -> list[DecisionPoint]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _on_flush(self) -> list[DecisionPoint]:
        return []


class RateTrigger(Trigger):
    """
    Decisions at ``k / rate_hz`` seconds of header time.

    ``inputs`` limits which inputs advance the grid (default: all). After a forward
    jump of more than ``max_catch_up`` periods only the latest grid point is emitted
    (``skipped`` counts the others).
    """

    def __init__(self, *, rate_hz: float, inputs: Sequence[str] | None = None, delay_ns: int = 0,
                 max_catch_up: int = 10):
        super().__init__(delay_ns=delay_ns)
        if not rate_hz > 0 or not math.isfinite(rate_hz):
            raise ValueError(f'rate_hz must be positive, got {rate_hz}')
        self.period_ns = int(round(1e9 / rate_hz))
        self.inputs = None if inputs is None else set(inputs)
        self.max_catch_up = int(max_catch_up)
        self.skipped = 0
        self._next: int | None = None

    def reset(self) -> None:
        super().reset()
        self._next = None

    def _on_ingest(self, ingest: Ingest) -> list[DecisionPoint]:
        if self.inputs is not None and ingest.name not in self.inputs:
            return []
        t = ingest.end_ns if ingest.end_ns is not None else ingest.stamp_ns
        p = self.period_ns
        if self._next is None:
            self._next = -(-t // p) * p                 # first grid point at or after the first stamp
        if t < self._next:
            return []
        last = t // p * p                               # newest grid point reached
        count = (last - self._next) // p + 1
        if count > self.max_catch_up:
            self.skipped += count - 1
            first = last
        else:
            first = self._next
        self._next = last + p
        return [DecisionPoint(k, 'rate') for k in range(first, last + 1, p)]


class FrameTrigger(Trigger):
    """
    A decision at the stamp of every ``every``-th stored frame of ``input``.

    In-order frames only; an out-of-order frame does not trigger.
    """

    def __init__(self, input: str, *, every: int = 1, delay_ns: int = 0):  # noqa: A002 (public keyword)
        super().__init__(delay_ns=delay_ns)
        if every < 1:
            raise ValueError(f'every must be >= 1, got {every}')
        self.input = input
        self.every = int(every)
        self._count = 0

    def reset(self) -> None:
        super().reset()
        self._count = 0

    def _on_ingest(self, ingest: Ingest) -> list[DecisionPoint]:
        if ingest.name != self.input or ingest.status != 'accepted':
            return []
        self._count += 1
        if (self._count - 1) % self.every:
            return []
        return [DecisionPoint(ingest.stamp_ns, 'frame', self.input)]


class SpeechEndTrigger(Trigger):
    """
    A decision at the end of each speech segment of audio ``input``.

    The VAD is fed each stored in-order chunk at its placed start (the buffer's sample
    clock), so chunk jitter does not tear the frame grid; a gap restarts it.
    ``t_ns`` is the segment end (padding included).
    """

    def __init__(self, input: str, *, vad: VADConfig | StreamingVAD | None = None,  # noqa: A002 (public keyword)
                 delay_ns: int = 0):
        super().__init__(delay_ns=delay_ns)
        self.input = input
        self.vad = vad if isinstance(vad, StreamingVAD) else StreamingVAD(vad)

    def reset(self) -> None:
        super().reset()
        self.vad.reset()

    def _points(self, segments: list[SpeechSegment]) -> list[DecisionPoint]:
        return [DecisionPoint(s.end_ns, 'speech_end', self.input, s) for s in segments]

    def _on_ingest(self, ingest: Ingest) -> list[DecisionPoint]:
        if ingest.name != self.input or ingest.status != 'accepted' or ingest.samples is None:
            return []
        return self._points(self.vad.process(ingest.start_ns, ingest.samples, sample_rate=ingest.sample_rate))

    def _on_flush(self) -> list[DecisionPoint]:
        return self._points(self.vad.flush())


class AnyTrigger(Trigger):
    """The union of several triggers (each keeps its own delay); points come out in time order."""

    def __init__(self, triggers: Sequence[Trigger]):
        super().__init__()
        self.triggers = list(triggers)

    def reset(self) -> None:
        super().reset()
        for t in self.triggers:
            t.reset()

    def observe(self, ingest: Ingest) -> list[DecisionPoint]:
        if ingest.reset:
            self.resets += 1
        return sorted(p for t in self.triggers for p in t.observe(ingest))

    def flush(self) -> list[DecisionPoint]:
        return sorted(p for t in self.triggers for p in t.flush())
