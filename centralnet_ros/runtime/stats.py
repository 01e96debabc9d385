"""
Per-input counters for diagnostics, all in header time (never the wall clock).

The runtime counts, per input (topic): messages received and accepted, malformed
ones by :data:`~centralnet_ros.messages.MALFORMED_KINDS`, drops, out-of-order,
duplicate and loop-reset stamps, audio gaps and format changes, and estimates the
message rate and the age of the newest stamp from header stamps alone.
:meth:`RuntimeStats.to_dict` gives a JSON-ready mapping the ROS node publishes as
``diagnostic_msgs/DiagnosticArray`` key/values and the replay CLI writes out.
"""
from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

__all__ = ['InputStats', 'RuntimeStats']


@dataclass
class InputStats:
    """Counters for one input. ``rate_window`` stamps are kept for the rate estimate."""

    name: str
    rate_window: int = 50
    received: int = 0          # every message handed to the runtime
    accepted: int = 0          # stored in a buffer
    malformed: Counter = field(default_factory=Counter)   # kind -> count (skipped)
    dropped: Counter = field(default_factory=Counter)     # reason -> count (e.g. duplicate, too_old)
    out_of_order: int = 0      # accepted, but older than the newest stamp (inserted in order)
    duplicates: int = 0        # same stamp as a stored message (dropped)
    loop_resets: int = 0       # backward jump beyond the threshold: buffer reset
    forward_jumps: int = 0     # forward jump beyond the threshold (a gap in the stream)
    gaps: int = 0              # audio: chunk not contiguous with the previous one
    gap_ns: int = 0            # audio: total duration of the gaps
    overlaps: int = 0          # audio: chunk starting before the previous one ended (re-anchored)
    format_changes: int = 0    # audio: sample rate / channel count changed (buffer reset)
    last_malformed: str | None = None  # what was wrong with the newest malformed message
    first_stamp_ns: int | None = None
    last_stamp_ns: int | None = None   # newest accepted stamp (offset applied)
    _recent: deque = field(default_factory=deque, repr=False)

    def count_received(self) -> None:
        self.received += 1

    def count_malformed(self, kind: str, detail: str | None = None) -> None:
        self.malformed[kind] += 1
        if detail:
            self.last_malformed = detail[:300]

    def count_dropped(self, reason: str) -> None:
        self.dropped[reason] += 1

    def count_accepted(self, stamp_ns: int) -> None:
        """Count an accepted message with (offset-corrected) header stamp ``stamp_ns``."""
        self.accepted += 1
        if self.first_stamp_ns is None:
            self.first_stamp_ns = stamp_ns
        if self.last_stamp_ns is None or stamp_ns > self.last_stamp_ns:
            self.last_stamp_ns = stamp_ns
            self._recent.append(stamp_ns)
            while len(self._recent) > self.rate_window:
                self._recent.popleft()

    def reset_time(self) -> None:
        """Forget the stamp history (after a loop reset); counters are kept."""
        self.last_stamp_ns = None
        self._recent.clear()

    @property
    def rate_hz(self) -> float | None:
        """Messages per second of header time over the last ``rate_window`` in-order stamps."""
        if len(self._recent) < 2 or self._recent[-1] <= self._recent[0]:
            return None
        return (len(self._recent) - 1) * 1e9 / (self._recent[-1] - self._recent[0])

    def age_ns(self, now_ns: int) -> int | None:
        """How far the newest stamp lags ``now_ns`` (a header-time clock, e.g. the decision time)."""
        return None if self.last_stamp_ns is None else int(now_ns) - self.last_stamp_ns

    @property
    def malformed_total(self) -> int:
        return sum(self.malformed.values())

    def to_dict(self, *, now_ns: int | None = None) -> dict:
        """JSON-ready counters; ``age_s`` only when a header-time ``now_ns`` is given."""
        rate = self.rate_hz
        age = self.age_ns(now_ns) if now_ns is not None else None
        return {
            'received': self.received,
            'accepted': self.accepted,
            'malformed': dict(sorted(self.malformed.items())),
            'malformed_total': self.malformed_total,
            'dropped': dict(sorted(self.dropped.items())),
            'out_of_order': self.out_of_order,
            'duplicates': self.duplicates,
            'loop_resets': self.loop_resets,
            'forward_jumps': self.forward_jumps,
            'gaps': self.gaps,
            'gap_s': self.gap_ns / 1e9,
            'overlaps': self.overlaps,
            'format_changes': self.format_changes,
            'last_malformed': self.last_malformed,
            'last_stamp_ns': self.last_stamp_ns,
            'rate_hz': None if rate is None else round(rate, 3),
            'age_s': None if age is None else age / 1e9,
        }


class RuntimeStats:
    """All inputs' :class:`InputStats`, plus decision counters."""

    def __init__(self) -> None:
        self.inputs: dict[str, InputStats] = {}
        self.decisions: int = 0
        self.decisions_by_reason: Counter = Counter()
        self.global_resets: int = 0

    def input(self, name: str) -> InputStats:  # noqa: A003 (public API: inputs are named "input" throughout)
        """Return the stats of input ``name`` (created on first use)."""
        stats = self.inputs.get(name)
        if stats is None:
            stats = self.inputs[name] = InputStats(name)
        return stats

    def count_decision(self, reason: str) -> None:
        self.decisions += 1
        self.decisions_by_reason[reason] += 1

    def to_dict(self, *, now_ns: int | None = None) -> dict:
        return {
            'decisions': self.decisions,
            'decisions_by_reason': dict(sorted(self.decisions_by_reason.items())),
            'global_resets': self.global_resets,
            'inputs': {name: s.to_dict(now_ns=now_ns) for name, s in sorted(self.inputs.items())},
        }
