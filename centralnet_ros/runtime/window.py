"""
Window assembly: what each modality of a model sees at a decision time ``t``.

A :class:`WindowSpec` (built from a bundle manifest by the engine) names the
input buffer and how to read it:

- ``mode='audio'``: samples over ``[t - window_ns, t)`` from an :class:`~.buffers.AudioBuffer`,
  or over the decision's speech segment (``use_segment``) widened by
  ``segment_padding_ns``; gaps are zero-filled and flagged in ``valid``; resampled to
  ``sample_rate`` with ``features.audio.resample_audio`` (the training code) when set;
- ``mode='last_frames'``: the last ``num_frames`` frames stamped at or before ``t``
  (``(N, ...)`` stacked; when only ``min_frames <= n < N`` exist, the oldest is
  repeated in front and ``valid`` marks the padding);
- ``mode='sequence'``: every item stamped in ``[t - window_ns, t]`` (or the segment),
  ``(T, ...)`` stacked with their stamps.

A modality is *missing* (``present=False``) with a ``reason``: ``'absent'`` (nothing
at or before ``t``), ``'stale'`` (its newest data is older than ``t - max_age_ns``) or
``'insufficient'`` (audio coverage below ``min_coverage``, fewer than ``min_frames``
frames or ``min_items`` items). Data stamped after ``t`` is never used, which keeps
decisions causal and makes a loop's leftovers harmless.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Mapping, Sequence

import numpy as np

from .buffers import AudioBuffer, FrameBuffer
from .triggers import DecisionPoint
from ..features.audio import resample_audio

__all__ = ['WindowSpec', 'ModalityWindow', 'DecisionWindow', 'WindowAssembler']


@dataclass(frozen=True)
class WindowSpec:
    name: str                                   # modality name, as in the bundle manifest
    input: str                                  # the hub input feeding it  # noqa: A003 (public field name)
    mode: Literal['audio', 'last_frames', 'sequence']
    window_ns: int = 1_000_000_000              # audio / sequence: [t - window_ns, t]
    num_frames: int = 1                         # last_frames: N
    min_frames: int | None = None               # last_frames: fewer -> missing (None: N)
    min_items: int = 1                          # sequence: fewer -> missing
    max_age_ns: int = 500_000_000               # newest data older than t - max_age_ns -> missing
    min_coverage: float = 0.5                   # audio: fraction of samples received
    use_segment: bool = False                   # audio / sequence: read the speech segment
    segment_padding_ns: int = 0
    sample_rate: int | None = None              # audio: resample to this rate

    def __post_init__(self):
        if self.mode not in ('audio', 'last_frames', 'sequence'):
            raise ValueError(f'modality {self.name!r}: mode {self.mode!r} is not audio, last_frames or sequence')
        if self.window_ns <= 0 or self.num_frames < 1 or self.max_age_ns < 0:
            raise ValueError(f'modality {self.name!r}: window_ns and num_frames must be positive, max_age_ns >= 0')
        if self.min_frames is not None and not 1 <= self.min_frames <= self.num_frames:
            raise ValueError(f'modality {self.name!r}: min_frames must be in [1, num_frames]')


@dataclass
class ModalityWindow:
    """
    One modality's data at a decision.

    ``data``: audio ``(n, channels)`` float32; last_frames ``(N, *frame)``; sequence
    ``(T, *item)``. ``valid``: audio ``(n,)`` received samples, last_frames ``(N,)``
    real (not padded) frames, sequence ``(T,)`` all True. ``stamps_ns``: the
    frame/item stamps (None for audio).
    """

    name: str
    present: bool
    reason: str                                 # 'ok' | 'absent' | 'stale' | 'insufficient'
    start_ns: int
    end_ns: int
    data: np.ndarray | None = None
    valid: np.ndarray | None = None
    stamps_ns: np.ndarray | None = None
    sample_rate: int | None = None
    coverage: float = 0.0
    newest_stamp_ns: int | None = None
    # what assemble(defer=True) left for finish() (plain data, so another process can finish it):
    items: list | None = field(default=None, repr=False, compare=False)  # frames / items still to stack
    pad: int = 0                                # copies of the first frame to put in front (last_frames)
    resample_to: int | None = None              # audio: sample rate still to resample to

    @property
    def pending(self) -> bool:
        """Whether :meth:`DecisionWindow.finish` still has work here (stacking, padding, resampling)."""
        return self.items is not None or self.pad > 0 or self.resample_to is not None

    def finish(self) -> 'ModalityWindow':
        """Stack the items (``(n, *item)``), pad in front (``(N, *item)``) and resample the audio; return self."""
        if self.items is not None:
            items, self.items = self.items, None
            self.data = np.stack([np.asarray(a) for a in items])          # (n, *frame)
        if self.pad > 0:
            pad, self.pad = self.pad, 0
            self.data = np.concatenate([np.repeat(self.data[:1], pad, axis=0), self.data])   # (N, *frame)
        if self.resample_to is not None:
            rate, self.resample_to = self.resample_to, None
            # (channels, n) for the resampler, back to (n', channels)
            self.data = resample_audio(self.data.T, orig_sample_rate=self.sample_rate, new_sample_rate=rate).T.copy()
            self.sample_rate = rate
        return self


@dataclass
class DecisionWindow:
    """Everything the models need at ``t_ns``."""

    t_ns: int
    point: DecisionPoint | None
    modalities: dict[str, ModalityWindow] = field(default_factory=dict)

    @property
    def present(self) -> dict[str, bool]:
        return {name: m.present for name, m in self.modalities.items()}

    @property
    def missing(self) -> dict[str, str]:
        """``name -> reason`` of the missing modalities."""
        return {name: m.reason for name, m in self.modalities.items() if not m.present}

    def finish(self) -> 'DecisionWindow':
        """Run what :meth:`WindowAssembler.assemble` deferred (stacking frames, resampling audio); return self."""
        for m in self.modalities.values():
            m.finish()
        return self

    def arrays(self) -> dict[str, np.ndarray | None]:
        """``name -> data`` with None for missing modalities (the engine's input)."""
        return {name: (m.data if m.present else None) for name, m in self.modalities.items()}


class WindowAssembler:
    """Reads :class:`WindowSpec` s out of the hub's buffers at decision times."""

    def __init__(self, specs: Sequence[WindowSpec], buffers: Mapping[str, FrameBuffer | AudioBuffer]):
        for s in specs:
            buf = buffers.get(s.input)
            if buf is None:
                raise KeyError(f'modality {s.name!r} reads input {s.input!r}, which is not configured '
                               f'(inputs: {sorted(buffers)})')
            if (s.mode == 'audio') != isinstance(buf, AudioBuffer):
                raise ValueError(f'modality {s.name!r}: mode {s.mode!r} does not fit input {s.input!r} '
                                 f'({type(buf).__name__})')
        self.specs = list(specs)
        self.buffers = buffers

    def assemble(self, t_ns: int | DecisionPoint, *, defer: bool = False) -> DecisionWindow:
        """
        Assemble the :class:`DecisionWindow` at a decision point (or a bare time).

        ``defer``: read the buffers only (references to the stored frames, a copy of the
        audio samples) and leave the work that no longer needs them, stacking frames and
        resampling audio, to :meth:`DecisionWindow.finish`: a caller that holds the
        buffers' lock releases it first, so a window of a second of 640x480 frames
        never makes the inputs wait.  The finished window is the same either way.
        """
        point = t_ns if isinstance(t_ns, DecisionPoint) else None
        t = point.t_ns if point is not None else int(t_ns)
        window = DecisionWindow(t, point)
        for spec in self.specs:
            window.modalities[spec.name] = self._read(spec, t, point)
        return window if defer else window.finish()

    def _span(self, spec: WindowSpec, t: int, point: DecisionPoint | None) -> tuple[int, int]:
        if spec.use_segment and point is not None and point.segment is not None:
            return (point.segment.start_ns - spec.segment_padding_ns, point.segment.end_ns + spec.segment_padding_ns)
        return t - spec.window_ns, t

    def _read(self, spec: WindowSpec, t: int, point: DecisionPoint | None) -> ModalityWindow:
        buf = self.buffers[spec.input]
        start, end = self._span(spec, t, point)
        if spec.mode == 'audio':
            return self._audio(spec, buf, start, end, t)
        if spec.mode == 'last_frames':
            return self._frames(spec, buf, t)
        return self._sequence(spec, buf, start, end, t)

    def _audio(self, spec: WindowSpec, buf: AudioBuffer, start: int, end: int, t: int) -> ModalityWindow:
        newest = buf.newest_stamp_ns
        if newest is None or buf.oldest_stamp_ns is None or buf.oldest_stamp_ns >= end:
            return ModalityWindow(spec.name, False, 'absent', start, end)
        win = buf.window(start, end)
        mw = ModalityWindow(spec.name, True, 'ok', start, end, win.samples, win.valid, None, win.sample_rate,
                            win.coverage, newest)
        if min(newest, end) < t - spec.max_age_ns and not spec.use_segment:
            mw.present, mw.reason = False, 'stale'
        elif win.coverage < spec.min_coverage:
            mw.present, mw.reason = False, 'insufficient'
        if mw.present and spec.sample_rate is not None and spec.sample_rate != win.sample_rate:
            mw.resample_to = spec.sample_rate
        return mw

    @staticmethod
    def _same_shape(items: list) -> bool:
        shape = np.shape(items[-1])
        return all(np.shape(a) == shape for a in items)

    def _frames(self, spec: WindowSpec, buf: FrameBuffer, t: int) -> ModalityWindow:
        stamps, items = buf.last_n(t, spec.num_frames)
        start = stamps[0] if stamps else t
        if not stamps:
            return ModalityWindow(spec.name, False, 'absent', t, t)
        newest = stamps[-1]
        shape = np.shape(items[-1])
        keep = [k for k, a in enumerate(items) if np.shape(a) == shape]      # drop frames of another size
        stamps, items = [stamps[k] for k in keep], [items[k] for k in keep]
        n, need = len(items), spec.min_frames or spec.num_frames
        mw = ModalityWindow(spec.name, True, 'ok', start, t, newest_stamp_ns=newest, coverage=n / spec.num_frames)
        if t - newest > spec.max_age_ns:
            mw.present, mw.reason = False, 'stale'
        elif n < need:
            mw.present, mw.reason = False, 'insufficient'
        pad = spec.num_frames - n
        if pad > 0:
            stamps = [stamps[0]] * pad + stamps
        mw.valid = np.arange(spec.num_frames) >= pad
        mw.stamps_ns = np.asarray(stamps, np.int64)
        mw.items, mw.pad = items, max(0, pad)                             # stacked and padded by finish()
        return mw

    def _sequence(self, spec: WindowSpec, buf: FrameBuffer, start: int, end: int, t: int) -> ModalityWindow:
        stamps, items = buf.between(start, min(end, t))
        latest = buf.latest(t)
        if latest is None:
            return ModalityWindow(spec.name, False, 'absent', start, end)
        mw = ModalityWindow(spec.name, True, 'ok', start, end, newest_stamp_ns=latest[0])
        if t - latest[0] > spec.max_age_ns:
            mw.present, mw.reason = False, 'stale'
        if not items or not self._same_shape(items) or len(items) < spec.min_items:
            if mw.present:
                mw.present, mw.reason = False, 'insufficient'
            return mw
        mw.items = items                                                  # (T, *item) once finish() stacks them
        mw.valid = np.ones(len(items), bool)
        mw.stamps_ns = np.asarray(stamps, np.int64)
        mw.coverage = 1.0
        return mw
