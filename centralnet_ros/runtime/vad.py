"""
Energy-based voice-activity detection with hysteresis, streaming chunk by chunk.

The signal (mixed to mono) is cut into non-overlapping frames of ``frame_ms`` on a
grid anchored at the stream's first sample, so chunk boundaries never change the
frames: :class:`StreamingVAD` fed in any chunking gives the segments of
:func:`detect_speech` on the whole signal (tested).

Per frame, the energy in dBFS (``10 log10(mean(x^2))``, full scale = 1.0) is
compared with a tracked noise floor:

- silence -> speech when the energy is ``start_db`` above the floor (and above the
  absolute gate ``min_speech_dbfs``);
- speech continues while frames are ``end_db`` above the floor; it ends once
  ``hangover_ms`` passed without such a frame (the decision latency), or after
  ``max_speech_ms``;
- segments shorter than ``min_speech_ms`` are discarded; kept ones are widened by
  ``pad_ms`` on both sides (soft onsets and releases fall below the thresholds).

The floor follows the energy down at once and up by at most ``floor_rise_db_per_s``,
and only outside speech, so it tracks slowly changing background noise without
absorbing speech. Nothing here reads the wall clock: times come from the chunk
start stamps (int ns) given by the caller (the audio buffer's sample clock).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from centralnet_ros.config import check_settings, setting
import numpy as np

__all__ = ['VADConfig', 'SpeechSegment', 'StreamingVAD', 'detect_speech', 'frame_energies_db']


@dataclass(frozen=True)
class VADConfig:
    """Settings of the voice-activity detector (module docstring); ``node`` fields are fusion_node parameters."""

    frame_ms: float = 20.0
    start_db: float = setting(12.0, bounds=(0.0, 60.0),
                              doc='speech_end voice detection: speech starts this far above the noise floor, dB.')
    end_db: float = setting(6.0, bounds=(0.0, 60.0),
                            doc='speech_end voice detection: speech continues while this far above the noise '
                                'floor, dB (at most start_db).')
    min_speech_ms: float = setting(120.0, bounds=(0.0, 5000.0),
                                   doc='speech_end voice detection: shorter segments are ignored, ms.')
    hangover_ms: float = setting(300.0, bounds=(0.0, 5000.0),
                                 doc='speech_end voice detection: silence that ends a segment, ms.')
    max_speech_ms: float = 10_000.0
    pad_ms: float = 60.0
    floor_rise_db_per_s: float = 3.0
    min_energy_dbfs: float = -100.0   # energies are clamped to this (digital silence)
    min_speech_dbfs: float = setting(-60.0, bounds=(-120.0, 0.0),
                                     doc='speech_end voice detection: frames quieter than this are never speech, '
                                         'dBFS.')
    initial_floor_dbfs: float | None = None   # None: the first frame's energy

    def __post_init__(self):
        check_settings(self)
        if self.frame_ms <= 0 or self.hangover_ms < 0 or self.min_speech_ms < 0 or self.pad_ms < 0:
            raise ValueError(f'VADConfig durations must be positive: {self}')
        if self.end_db > self.start_db:
            raise ValueError(f'VADConfig: end_db ({self.end_db}) must not exceed start_db ({self.start_db})')
        if self.max_speech_ms <= self.min_speech_ms:
            raise ValueError('VADConfig: max_speech_ms must exceed min_speech_ms')


class SpeechSegment(NamedTuple):
    """A detected speech segment ``[start_ns, end_ns)`` (padding included)."""

    start_ns: int
    end_ns: int

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9


def frame_energies_db(mono: np.ndarray, *, frame_length: int, min_energy_dbfs: float = -100.0) -> np.ndarray:
    """``(n_frames,)`` float64 frame energies in dBFS of the whole frames of ``mono`` ``(n,)``."""
    n = len(mono) // frame_length
    frames = np.asarray(mono[: n * frame_length], dtype=np.float64).reshape(n, frame_length)  # (F, L)
    power = np.mean(frames * frames, axis=1)
    return np.maximum(10.0 * np.log10(power + 1e-20), min_energy_dbfs)


class _Hysteresis:
    """The per-frame state machine, shared by the streaming and offline paths."""

    def __init__(self, cfg: VADConfig, frame_ns: float):
        self.cfg = cfg
        self.frame_ns = frame_ns
        self.floor: float | None = cfg.initial_floor_dbfs
        self.in_speech = False
        self.seg_start = 0
        self.last_active_end = 0
        self._rise_per_frame = cfg.floor_rise_db_per_s * frame_ns / 1e9

    def _emit(self, start: int, end: int) -> list[SpeechSegment]:
        if end - start < self.cfg.min_speech_ms * 1e6:
            return []
        pad = int(round(self.cfg.pad_ms * 1e6))
        return [SpeechSegment(start - pad, end + pad)]

    def _update_floor(self, e: float) -> None:
        if self.floor is None or e < self.floor:
            self.floor = e
        else:
            self.floor = min(e, self.floor + self._rise_per_frame)

    def step(self, e: float, t0: int, t1: int) -> list[SpeechSegment]:
        """Frame ``[t0, t1)`` with energy ``e`` dBFS -> segments that just ended."""
        cfg = self.cfg
        if self.floor is None:
            self.floor = e
        out: list[SpeechSegment] = []
        loud = e >= cfg.min_speech_dbfs
        if not self.in_speech:
            if loud and e >= self.floor + cfg.start_db:
                self.in_speech = True
                self.seg_start, self.last_active_end = t0, t1
            else:
                self._update_floor(e)
            return out
        if loud and e >= self.floor + cfg.end_db:
            self.last_active_end = t1
        if t1 - self.seg_start >= cfg.max_speech_ms * 1e6:          # forced end: level is the new normal
            out = self._emit(self.seg_start, t1)
            self.in_speech = False
            self.floor = e
        elif t1 - self.last_active_end >= cfg.hangover_ms * 1e6:
            out = self._emit(self.seg_start, self.last_active_end)
            self.in_speech = False
            self._update_floor(e)
        return out

    def close(self) -> list[SpeechSegment]:
        """End of stream / gap: close an open segment at its last active frame."""
        if not self.in_speech:
            return []
        self.in_speech = False
        return self._emit(self.seg_start, self.last_active_end)


class StreamingVAD:
    """
    Chunk-by-chunk VAD.

    ``process(start_ns, samples, sample_rate=...)`` returns the segments that ended;
    ``flush()`` closes one still open. A chunk that does not start where the
    previous one ended (a gap, beyond one sample period) or a new sample rate closes
    the open segment and restarts the frame grid (the noise floor is kept).
    """

    def __init__(self, config: VADConfig | None = None):
        self.config = config or VADConfig()
        self.reset()

    def reset(self) -> None:
        """Forget everything (loop reset)."""
        self.sample_rate: int | None = None
        self._machine: _Hysteresis | None = None
        self._rest = np.zeros(0, np.float64)        # samples not yet in a whole frame
        self._anchor_ns = 0                          # time of sample 0 of the grid
        self._consumed = 0                           # samples of the grid already framed
        self._next_ns: int | None = None             # expected start of the next chunk

    def _time(self, sample: int) -> int:
        return self._anchor_ns + sample * 1_000_000_000 // self.sample_rate

    def _restart(self, start_ns: int, sample_rate: int) -> list[SpeechSegment]:
        out = self._machine.close() if self._machine is not None else []
        floor = self._machine.floor if self._machine is not None else None
        self.sample_rate = int(sample_rate)
        self._frame_length = max(1, int(round(self.config.frame_ms * sample_rate / 1000)))
        self._machine = _Hysteresis(self.config, self._frame_length * 1e9 / sample_rate)
        if floor is not None:                        # dBFS does not depend on the sample rate
            self._machine.floor = floor
        self._rest = np.zeros(0, np.float64)
        self._anchor_ns, self._consumed = int(start_ns), 0
        return out

    def process(self, start_ns: int, samples: np.ndarray, *, sample_rate: int) -> list[SpeechSegment]:
        """Feed ``samples`` ``(frames, channels)`` or ``(frames,)`` starting at ``start_ns``."""
        x = np.asarray(samples)
        mono = x.mean(axis=1) if x.ndim == 2 else x                  # (n,)
        out: list[SpeechSegment] = []
        if (self.sample_rate != sample_rate or self._next_ns is None
                or abs(int(start_ns) - self._next_ns) > 1_000_000_000 // sample_rate):
            out += self._restart(start_ns, sample_rate)
        buf = np.concatenate([self._rest, mono.astype(np.float64)])
        energies = frame_energies_db(buf, frame_length=self._frame_length,
                                     min_energy_dbfs=self.config.min_energy_dbfs)
        L = self._frame_length
        for k, e in enumerate(energies):
            s0 = self._consumed + k * L
            out += self._machine.step(float(e), self._time(s0), self._time(s0 + L))
        used = len(energies) * L
        self._consumed += used
        self._rest = buf[used:]
        self._next_ns = self._time(self._consumed + len(self._rest))
        return out

    def flush(self) -> list[SpeechSegment]:
        """Close a segment still open (end of the recording)."""
        return self._machine.close() if self._machine is not None else []


def detect_speech(samples: np.ndarray, *, sample_rate: int, config: VADConfig | None = None,
                  start_ns: int = 0) -> list[SpeechSegment]:
    """
    Offline VAD over a whole signal ``(n,)`` or ``(n, channels)`` starting at ``start_ns``.

    Computes all frame energies at once, then runs the same hysteresis as
    :class:`StreamingVAD` (whose results on any chunking equal these).
    """
    cfg = config or VADConfig()
    x = np.asarray(samples)
    mono = x.mean(axis=1) if x.ndim == 2 else x
    L = max(1, int(round(cfg.frame_ms * sample_rate / 1000)))
    energies = frame_energies_db(np.asarray(mono, np.float64), frame_length=L, min_energy_dbfs=cfg.min_energy_dbfs)
    machine = _Hysteresis(cfg, L * 1e9 / sample_rate)
    out: list[SpeechSegment] = []
    for k, e in enumerate(energies):
        t0 = start_ns + (k * L) * 1_000_000_000 // sample_rate
        t1 = start_ns + ((k + 1) * L) * 1_000_000_000 // sample_rate
        out += machine.step(float(e), t0, t1)
    return out + machine.close()
