"""
Per-input ring buffers indexed by header time, and the hub that feeds them.

Time is the message header stamp in int64 nanoseconds plus a per-input
``offset_ns`` (naoqi_driver and some audio drivers stamp with ``now()`` when they
publish, late by the buffer length and the transport); nothing reads the wall
clock, so a bag replays deterministically and exactly like live operation.

Stamp anomalies, per input (counted in :class:`~.stats.InputStats`):

- **duplicate** (same stamp as a stored item): dropped;
- **out of order** (older than the newest, within ``retention_ns``): inserted in
  order and kept; older than the retained span: dropped as ``too_old``;
- **forward jump** larger than ``loop_jump_ns``: accepted and counted (a gap);
- **backward jump** larger than ``loop_jump_ns``: a bag played in a loop (``ros2 bag
  play --loop``) or a restarted recording. The :class:`InputHub` then resets *every*
  buffer (a new *epoch*, ``loop_resets`` counted on the input that saw it) and reports
  ``reset=True`` so triggers reset too. Messages still in flight from the previous pass
  (their stamps are far ahead of the new clock) are dropped as ``stale_epoch`` by each
  input until it has delivered one message of the new epoch.

Audio (:class:`AudioBuffer`) keeps a sample clock: a chunk whose start lies within
``contiguity_tolerance_ns`` of where the previous one ended is placed right after it
(stamp jitter does not tear the signal); farther ahead it is a **gap** (counted,
and zero-filled in windows with a validity mask, see :mod:`.window`); earlier (but
after the previous chunk's start) an **overlap**, re-anchored at its own stamp (the
later chunk wins in windows). A change of sample rate or channel count resets the
audio buffer (``format_changes``).

Every buffer is bounded in bytes as well as in time and count (``max_bytes``, by
default :data:`DEFAULT_MAX_BUFFER_BYTES`): the oldest items go first, and one item
larger than the whole budget is dropped as ``too_large``. An image counts with the
whole message buffer its view keeps alive.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, Sequence

import numpy as np

from .stats import InputStats, RuntimeStats
from .. import messages as M

__all__ = [
    'INPUT_KINDS', 'InputSpec', 'Ingest', 'FrameBuffer', 'AudioBuffer', 'AudioWindow', 'InputHub',
    'DEFAULT_LOOP_JUMP_NS', 'DEFAULT_MAX_BUFFER_BYTES', 'item_nbytes',
]

DEFAULT_LOOP_JUMP_NS = 2_000_000_000
"""A backward stamp jump larger than this (2 s) is taken as a loop / restart."""


DEFAULT_MAX_BUFFER_BYTES = 256 * 1024 * 1024
"""Most bytes one input's buffer holds (256 MiB)."""


def item_nbytes(item: Any) -> int:
    """Bytes ``item`` keeps alive: an array with the whole buffer it is a view of; 64 for anything else."""
    if not isinstance(item, np.ndarray):
        return 64
    root = item
    while isinstance(root.base, np.ndarray):
        root = root.base
    return max(int(item.nbytes), int(root.nbytes))


class Push(NamedTuple):
    """
    What a buffer did with one item.

    ``status``: 'accepted', 'out_of_order', 'duplicate', 'too_old', 'too_large'; ``reset``: the
    buffer was cleared first (loop or format).
    """

    status: str
    stamp_ns: int
    reset: bool = False
    start_ns: int | None = None   # audio: placed start of the chunk (sample clock)
    end_ns: int | None = None     # audio: end of the chunk
    gap_ns: int = 0               # audio: gap before the chunk

    @property
    def stored(self) -> bool:
        return self.status in ('accepted', 'out_of_order')


# --------------------------------------------------------------------------- frames

class FrameBuffer:
    """
    Items (image frames, skeletons) sorted by stamp.

    Pruned to ``retention_ns`` behind the newest stamp, to at most ``max_items`` and to
    at most ``max_bytes`` (:func:`item_nbytes`).
    """

    def __init__(self, name: str, *, retention_ns: int = 10_000_000_000, max_items: int | None = None,
                 loop_jump_ns: int = DEFAULT_LOOP_JUMP_NS, stats: InputStats | None = None,
                 max_bytes: int | None = DEFAULT_MAX_BUFFER_BYTES):
        if retention_ns <= 0:
            raise ValueError(f'{name}: retention_ns must be positive, got {retention_ns}')
        self.name = name
        self.retention_ns = int(retention_ns)
        self.max_items = max_items
        self.loop_jump_ns = int(loop_jump_ns)
        self.stats = stats if stats is not None else InputStats(name)
        self.max_bytes = max_bytes
        self.nbytes = 0                        # bytes the stored items keep alive
        self._stamps: list[int] = []
        self._items: list[Any] = []
        self._sizes: list[int] = []

    def __len__(self) -> int:
        return len(self._stamps)

    @property
    def newest_stamp_ns(self) -> int | None:
        return self._stamps[-1] if self._stamps else None

    @property
    def oldest_stamp_ns(self) -> int | None:
        return self._stamps[0] if self._stamps else None

    def clear(self) -> None:
        self._stamps.clear()
        self._items.clear()
        self._sizes.clear()
        self.nbytes = 0

    def is_loop_jump(self, stamp_ns: int) -> bool:
        newest = self.newest_stamp_ns
        return newest is not None and stamp_ns < newest - self.loop_jump_ns

    def push(self, stamp_ns: int, item: Any) -> Push:
        """Store ``item`` at ``stamp_ns`` (offset already applied). A loop jump clears first."""
        stamp_ns = int(stamp_ns)
        reset = False
        if self.is_loop_jump(stamp_ns):
            self.clear()
            reset = True
        newest = self.newest_stamp_ns
        i = bisect.bisect_left(self._stamps, stamp_ns)
        if i < len(self._stamps) and self._stamps[i] == stamp_ns:
            self.stats.duplicates += 1
            self.stats.count_dropped('duplicate')
            return Push('duplicate', stamp_ns, reset)
        if newest is not None and stamp_ns < newest - self.retention_ns:
            self.stats.count_dropped('too_old')
            return Push('too_old', stamp_ns, reset)
        size = item_nbytes(item)
        if self.max_bytes is not None and size > self.max_bytes:
            self.stats.count_dropped('too_large')
            return Push('too_large', stamp_ns, reset)
        status = 'accepted'
        if newest is not None and stamp_ns < newest:
            status = 'out_of_order'
            self.stats.out_of_order += 1
        elif newest is not None and stamp_ns - newest > self.loop_jump_ns:
            self.stats.forward_jumps += 1
        self._stamps.insert(i, stamp_ns)
        self._items.insert(i, item)
        self._sizes.insert(i, size)
        self.nbytes += size
        self.stats.count_accepted(stamp_ns)
        self._prune()
        return Push(status, stamp_ns, reset)

    def _prune(self) -> None:
        horizon = self._stamps[-1] - self.retention_ns
        k = bisect.bisect_left(self._stamps, horizon)
        if self.max_items is not None:
            k = max(k, len(self._stamps) - self.max_items)
        if self.max_bytes is not None:
            held = self.nbytes - sum(self._sizes[:k])
            while held > self.max_bytes and k < len(self._stamps) - 1:
                held -= self._sizes[k]
                k += 1
        if k > 0:
            self.nbytes -= sum(self._sizes[:k])
            del self._stamps[:k]
            del self._items[:k]
            del self._sizes[:k]

    def latest(self, at_or_before_ns: int | None = None) -> tuple[int, Any] | None:
        """Return the newest ``(stamp, item)`` with stamp <= ``at_or_before_ns`` (or overall)."""
        j = len(self._stamps) if at_or_before_ns is None else bisect.bisect_right(self._stamps, at_or_before_ns)
        return (self._stamps[j - 1], self._items[j - 1]) if j else None

    def last_n(self, t_ns: int, n: int) -> tuple[list[int], list[Any]]:
        """Return the last ``n`` items with stamp <= ``t_ns``, oldest first."""
        j = bisect.bisect_right(self._stamps, t_ns)
        i = max(0, j - n)
        return self._stamps[i:j], self._items[i:j]

    def between(self, start_ns: int, end_ns: int) -> tuple[list[int], list[Any]]:
        """Items with ``start_ns <= stamp <= end_ns``, oldest first."""
        i = bisect.bisect_left(self._stamps, start_ns)
        j = bisect.bisect_right(self._stamps, end_ns)
        return self._stamps[i:j], self._items[i:j]


# --------------------------------------------------------------------------- audio

@dataclass
class _Chunk:
    stamp_ns: int          # header stamp (offset applied), for duplicate detection
    anchor_ns: int         # time of sample 0 of this chunk's anchor
    index: int             # index of the chunk's first sample from the anchor
    samples: np.ndarray    # (frames, channels) float32

    def start_ns(self, sample_rate: int) -> int:
        return self.anchor_ns + self.index * 1_000_000_000 // sample_rate

    def end_ns(self, sample_rate: int) -> int:
        return self.anchor_ns + (self.index + len(self.samples)) * 1_000_000_000 // sample_rate


class AudioWindow(NamedTuple):
    """
    Audio over ``[start_ns, end_ns)``.

    ``samples`` ``(n, channels)`` float32 with zeros where nothing was received, ``valid``
    ``(n,)`` bool marking received samples, ``coverage`` = ``valid.mean()``.
    """

    samples: np.ndarray
    valid: np.ndarray
    sample_rate: int
    start_ns: int
    end_ns: int

    @property
    def coverage(self) -> float:
        return float(self.valid.mean()) if self.valid.size else 0.0


class AudioBuffer:
    """
    Audio chunks on a sample clock (see the module docstring).

    ``stamp_marks``: the header stamp marks the chunk's first sample (``'start'``, what
    audio_common documents) or its end (``'end'``: drivers stamping at publication).
    ``contiguity_tolerance_ns``: how far a chunk may start from the previous end and
    still be placed contiguously; None = half the chunk's duration.
    """

    def __init__(self, name: str, *, retention_ns: int = 30_000_000_000,
                 stamp_marks: Literal['start', 'end'] = 'start', contiguity_tolerance_ns: int | None = None,
                 loop_jump_ns: int = DEFAULT_LOOP_JUMP_NS, stats: InputStats | None = None,
                 max_bytes: int | None = DEFAULT_MAX_BUFFER_BYTES):
        if stamp_marks not in ('start', 'end'):
            raise ValueError(f"{name}: stamp_marks must be 'start' or 'end', got {stamp_marks!r}")
        self.name = name
        self.retention_ns = int(retention_ns)
        self.stamp_marks = stamp_marks
        self.contiguity_tolerance_ns = contiguity_tolerance_ns
        self.loop_jump_ns = int(loop_jump_ns)
        self.stats = stats if stats is not None else InputStats(name)
        self.max_bytes = max_bytes
        self.nbytes = 0                        # bytes of the stored chunks
        self.sample_rate: int | None = None
        self.channels: int | None = None
        self._chunks: list[_Chunk] = []        # sorted by start
        self._starts: list[int] = []           # their start times (ns)
        self._max_ns = 0                       # longest chunk seen (ns), bounds searches
        self._last: _Chunk | None = None       # newest in-order chunk (the sample clock)

    def __len__(self) -> int:
        return len(self._chunks)

    def clear(self) -> None:
        self._chunks.clear()
        self._starts.clear()
        self._last = None
        self.nbytes = 0

    @property
    def newest_stamp_ns(self) -> int | None:
        """End time of the newest in-order chunk."""
        return None if self._last is None else self._last.end_ns(self.sample_rate)

    @property
    def oldest_stamp_ns(self) -> int | None:
        return self._chunks[0].start_ns(self.sample_rate) if self._chunks else None

    def is_loop_jump(self, stamp_ns: int) -> bool:
        return self._last is not None and stamp_ns < self._last.stamp_ns - self.loop_jump_ns

    def push(self, stamp_ns: int, samples: np.ndarray, *, sample_rate: int) -> Push:
        """Store one chunk ``(frames, channels)`` float32 stamped ``stamp_ns`` (offset applied)."""
        stamp_ns = int(stamp_ns)
        samples = np.asarray(samples, dtype=np.float32)
        if samples.ndim == 1:
            samples = samples[:, None]
        if samples.ndim != 2 or samples.shape[0] == 0 or samples.shape[1] == 0 or sample_rate <= 0:
            raise ValueError(f'{self.name}: expected (frames, channels) samples and a positive sample_rate, '
                             f'got {samples.shape} at {sample_rate} Hz')
        if self.max_bytes is not None and samples.nbytes > self.max_bytes:
            self.stats.count_dropped('too_large')
            return Push('too_large', stamp_ns)
        reset = False
        if self.sample_rate is not None and (sample_rate != self.sample_rate or samples.shape[1] != self.channels):
            self.stats.format_changes += 1
            self.clear()
            reset = True
        if self.is_loop_jump(stamp_ns):
            self.clear()
            reset = True
        self.sample_rate, self.channels = int(sample_rate), int(samples.shape[1])
        sr = self.sample_rate
        duration_ns = len(samples) * 1_000_000_000 // sr
        start = stamp_ns - duration_ns if self.stamp_marks == 'end' else stamp_ns
        if any(c.stamp_ns == stamp_ns for c in self._chunks[-64:]):
            self.stats.duplicates += 1
            self.stats.count_dropped('duplicate')
            return Push('duplicate', stamp_ns, reset)
        last = self._last
        status, gap = 'accepted', 0
        if last is None:
            chunk = _Chunk(stamp_ns, start, 0, samples)
        else:
            tol = self.contiguity_tolerance_ns if self.contiguity_tolerance_ns is not None else duration_ns // 2
            expected = last.end_ns(sr)
            if abs(start - expected) <= tol:                          # contiguous: continue the sample clock
                chunk = _Chunk(stamp_ns, last.anchor_ns, last.index + len(last.samples), samples)
            elif start > expected:                                     # gap
                gap = start - expected
                self.stats.gaps += 1
                self.stats.gap_ns += gap
                if gap > self.loop_jump_ns:
                    self.stats.forward_jumps += 1
                chunk = _Chunk(stamp_ns, start, 0, samples)
            elif start > last.start_ns(sr):                           # overlaps the previous chunk's end
                self.stats.overlaps += 1
                chunk = _Chunk(stamp_ns, start, 0, samples)
            else:                                                      # older than the newest chunk
                newest_end = expected
                if start + duration_ns < newest_end - self.retention_ns:
                    self.stats.count_dropped('too_old')
                    return Push('too_old', stamp_ns, reset)
                self.stats.out_of_order += 1
                status = 'out_of_order'
                chunk = _Chunk(stamp_ns, start, 0, samples)
        begin = chunk.start_ns(sr)
        if not self._starts or begin >= self._starts[-1]:
            self._starts.append(begin)
            self._chunks.append(chunk)
        else:
            k = bisect.bisect_right(self._starts, begin)
            self._starts.insert(k, begin)
            self._chunks.insert(k, chunk)
        self._max_ns = max(self._max_ns, duration_ns + 1)
        self.nbytes += samples.nbytes
        if status == 'accepted':
            self._last = chunk
        self.stats.count_accepted(stamp_ns)
        self._prune()
        return Push(status, stamp_ns, reset, begin, chunk.end_ns(sr), gap)

    def _prune(self) -> None:
        horizon = self.newest_stamp_ns - self.retention_ns
        k = bisect.bisect_left(self._starts, horizon - self._max_ns)   # surely ended before the horizon
        if self.max_bytes is not None:
            held = self.nbytes - sum(c.samples.nbytes for c in self._chunks[:k])
            while held > self.max_bytes and k < len(self._chunks) - 1 and self._chunks[k] is not self._last:
                held -= self._chunks[k].samples.nbytes
                k += 1
        if k > 0:
            self.nbytes -= sum(c.samples.nbytes for c in self._chunks[:k])
            del self._starts[:k]
            del self._chunks[:k]

    def window(self, start_ns: int, end_ns: int) -> AudioWindow | None:
        """
        Return the samples over ``[start_ns, end_ns)``; None when nothing was ever received.

        The window has ``round((end - start) * sample_rate / 1e9)`` samples; chunks are
        placed by their sample clock, so contiguous chunks land exactly next to each
        other; uncovered samples are 0 and ``valid`` False.
        """
        if self.sample_rate is None:
            return None
        sr, channels = self.sample_rate, self.channels
        n = int(round((int(end_ns) - int(start_ns)) * sr / 1e9))
        out = np.zeros((max(n, 0), channels), np.float32)            # (n, C)
        valid = np.zeros(max(n, 0), bool)                            # (n,)
        first = bisect.bisect_left(self._starts, int(start_ns) - self._max_ns)
        last = bisect.bisect_left(self._starts, int(end_ns))
        for c in self._chunks[first:last]:
            if c.end_ns(sr) <= start_ns:
                continue
            # window start on this chunk's anchor grid, so one anchor's chunks stay contiguous
            w0 = int(round((int(start_ns) - c.anchor_ns) * sr / 1e9))
            a = c.index - w0                                         # chunk's first sample in the window
            lo, hi = max(a, 0), min(a + len(c.samples), n)
            if hi > lo:
                out[lo:hi] = c.samples[lo - a:hi - a]
                valid[lo:hi] = True
        return AudioWindow(out, valid, sr, int(start_ns), int(end_ns))


# --------------------------------------------------------------------------- the hub

INPUT_KINDS = ('image', 'compressed_image', 'audio', 'naoqi_audio', 'pose_array', 'skeleton2d')
"""Message kinds an input can take: sensor_msgs/Image, sensor_msgs/CompressedImage,
audio_common_msgs/AudioDataStamped (+ AudioInfo), naoqi_bridge_msgs/AudioBuffer,
geometry_msgs/PoseArray, hri_msgs/Skeleton2D."""

INPUT_MSG_TYPES: dict[str, str] = {
    'image': 'sensor_msgs/msg/Image',
    'compressed_image': 'sensor_msgs/msg/CompressedImage',
    'audio': 'audio_common_msgs/msg/AudioDataStamped',
    'naoqi_audio': 'naoqi_bridge_msgs/msg/AudioBuffer',
    'pose_array': 'geometry_msgs/msg/PoseArray',
    'skeleton2d': 'hri_msgs/msg/Skeleton2D',
}
"""Input kind -> the ROS message type it takes (the node subscribes with it, replay maps bag topics by it)."""

AUDIO_INFO_TYPE = 'audio_common_msgs/msg/AudioInfo'
"""The message giving an ``audio`` input's PCM format (ingested as ``<input>_info``)."""


@dataclass(frozen=True)
class InputSpec:
    """One input (usually one topic). ``name`` is what windows and stats refer to."""

    name: str
    kind: str
    offset_ns: int = 0                     # added to every header stamp
    retention_ns: int = 10_000_000_000     # how much history the buffer keeps
    max_items: int | None = None           # frame inputs: at most this many (None: 64 images, else unbounded)
    stamp_marks: Literal['start', 'end'] = 'start'   # audio: what the stamp marks
    contiguity_tolerance_ns: int | None = None       # audio: see AudioBuffer
    audio_format: M.AudioFormat | None = None        # audio: used until an AudioInfo arrives
    channels: int | None = None            # naoqi_audio: when channel_map is empty
    num_joints: int | None = 20            # pose_array: joints expected (None: any)
    allow_nan_joints: bool = False         # pose_array
    depth_in_metres: bool = True           # image: 16UC1 -> float32 metres
    max_pixels: int | None = M.DEFAULT_MAX_PIXELS   # image: larger frames are malformed ('limit'), None: any
    max_bytes: int | None = DEFAULT_MAX_BUFFER_BYTES  # the buffer's memory bound (None: unbounded)

    def __post_init__(self):
        if self.kind not in INPUT_KINDS:
            raise ValueError(f'input {self.name!r}: kind {self.kind!r} is not one of {INPUT_KINDS}')


@dataclass
class Ingest:
    """
    The outcome of :meth:`InputHub.ingest` for one message.

    ``status``: 'accepted', 'out_of_order' (both stored), 'duplicate', 'too_old',
    'stale_epoch', 'too_large' (dropped), 'malformed' (``malformed_kind`` set), 'no_format' (audio
    before any AudioInfo or configured format) or 'format_refused' (audio after a refused
    AudioInfo). ``stamp_ns`` has the offset applied.
    ``reset``: every buffer was just reset (loop); triggers must reset. Audio results
    carry the placed ``start_ns``/``end_ns``, the ``samples`` and ``sample_rate``.
    """

    name: str
    status: str
    stamp_ns: int | None = None
    reset: bool = False
    malformed_kind: str | None = None
    error: str | None = None
    start_ns: int | None = None
    end_ns: int | None = None
    samples: np.ndarray | None = None
    sample_rate: int | None = None
    data: Any = None

    @property
    def stored(self) -> bool:
        return self.status in ('accepted', 'out_of_order')


class InputHub:
    """
    Convert messages (via :mod:`centralnet_ros.messages`), stamp them and store them in per-input buffers.

    The hub owns the loop/epoch logic and the statistics.

    ``ingest`` never raises on bad input: malformed messages are counted by kind in
    ``stats`` and reported in the returned :class:`Ingest`.
    """

    def __init__(self, specs: Sequence[InputSpec], *, loop_jump_ns: int = DEFAULT_LOOP_JUMP_NS,
                 stats: RuntimeStats | None = None):
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f'input names must be unique, got {names}')
        self.specs = {s.name: s for s in specs}
        self.loop_jump_ns = int(loop_jump_ns)
        self.stats = stats if stats is not None else RuntimeStats()
        self.buffers: dict[str, FrameBuffer | AudioBuffer] = {}
        self._formats: dict[str, M.AudioFormat] = {}
        self._refused: dict[str, str] = {}         # audio input -> why its last AudioInfo was refused
        for s in specs:
            st = self.stats.input(s.name)
            if s.kind in ('audio', 'naoqi_audio'):
                self.buffers[s.name] = AudioBuffer(s.name, retention_ns=s.retention_ns, stamp_marks=s.stamp_marks,
                                                   contiguity_tolerance_ns=s.contiguity_tolerance_ns,
                                                   loop_jump_ns=loop_jump_ns, stats=st, max_bytes=s.max_bytes)
                if s.audio_format is not None:
                    self._formats[s.name] = M.audio_format(s.audio_format)
            else:
                max_items = s.max_items
                if max_items is None and s.kind in ('image', 'compressed_image'):
                    max_items = 64          # a view keeps its whole message alive: bound the memory
                self.buffers[s.name] = FrameBuffer(s.name, retention_ns=s.retention_ns, max_items=max_items,
                                                   loop_jump_ns=loop_jump_ns, stats=st, max_bytes=s.max_bytes)
        self.epoch = 0
        self.clock_ns: int | None = None           # newest stored stamp of the current epoch
        self._delivered: set[str] = set()          # inputs that stored something this epoch

    # -- configuration carried by messages
    def set_audio_info(self, name: str, info: Any) -> bool:
        """
        Record an ``AudioInfo`` for audio input ``name``; a malformed one is counted and ignored.

        One refused for its values (``limit``: a sample rate outside
        :data:`~centralnet_ros.messages.SAMPLE_RATE_RANGE`) also stops the stream: its chunks
        are dropped as ``format_refused`` (with the reason in ``last_malformed``) until an
        acceptable AudioInfo arrives, instead of being read at a rate they do not have.
        """
        self._spec(name, 'audio')
        try:
            self._formats[name] = M.audio_format(info)
            self._refused.pop(name, None)
            return True
        except M.MalformedMessage as exc:
            self.stats.input(name).count_malformed(exc.kind, str(exc))
            if exc.kind == 'limit':
                self._formats.pop(name, None)
                self._refused[name] = str(exc)
            return False

    def _spec(self, name: str, kind: str | None = None) -> InputSpec:
        spec = self.specs.get(name)
        if spec is None:
            raise KeyError(f'unknown input {name!r}; configured inputs are {sorted(self.specs)}')
        if kind is not None and spec.kind != kind:
            raise ValueError(f'input {name!r} is {spec.kind}, not {kind}')
        return spec

    # -- ingestion
    def convert(self, name: str, msg: Any) -> tuple[int, Any, int | None]:
        """
        Header stamp (offset applied), converted data and sample rate (audio) of ``msg``.

        Raises :class:`~centralnet_ros.messages.MalformedMessage`.
        """
        spec = self._spec(name)
        stamp = M.header_stamp_ns(msg) + spec.offset_ns
        if spec.kind == 'image':
            return stamp, M.image_to_array(msg, depth_in_metres=spec.depth_in_metres, max_pixels=spec.max_pixels), None
        if spec.kind == 'compressed_image':
            return stamp, M.compressed_image_to_array(msg, depth_in_metres=spec.depth_in_metres,
                                                      max_pixels=spec.max_pixels), None
        if spec.kind == 'audio':
            fmt = self._formats.get(name)
            if fmt is None:
                raise LookupError(name)
            chunk = M.audio_to_array(msg, fmt)
            return stamp, chunk.samples, chunk.sample_rate
        if spec.kind == 'naoqi_audio':
            chunk = M.naoqi_audio_to_array(msg, channels=spec.channels)
            return stamp, chunk.samples, chunk.sample_rate
        if spec.kind == 'pose_array':
            joints = M.pose_array_to_joints(msg, num_joints=spec.num_joints, allow_nan=spec.allow_nan_joints)
            return stamp, joints, None
        return stamp, M.skeleton2d_to_array(msg), None

    def ingest(self, name: str, msg: Any) -> Ingest:
        """Convert and store one message of input ``name``. Never raises on bad messages."""
        self._spec(name)
        stats = self.stats.input(name)
        stats.count_received()
        try:
            stamp, data, rate = self.convert(name, msg)
        except M.MalformedMessage as exc:
            stats.count_malformed(exc.kind, str(exc))
            return Ingest(name, 'malformed', malformed_kind=exc.kind, error=str(exc))
        except LookupError:
            if name in self._refused:
                stats.count_dropped('format_refused')
                return Ingest(name, 'format_refused', error=f'{name}: {self._refused[name]}')
            stats.count_dropped('no_format')
            return Ingest(name, 'no_format', error=f'{name}: no AudioInfo received and no audio_format configured')
        return self._store(name, stamp, data, rate)

    def ingest_array(self, name: str, stamp_ns: int, data: np.ndarray, *, sample_rate: int | None = None) -> Ingest:
        """
        Store already-converted data (header stamp ``stamp_ns``; the input's offset is added).

        Audio: ``(frames, channels)`` float32 and ``sample_rate``.
        """
        spec = self._spec(name)
        self.stats.input(name).count_received()
        if spec.kind in ('audio', 'naoqi_audio') and not sample_rate:
            raise ValueError(f'{name}: audio needs sample_rate')
        return self._store(name, int(stamp_ns) + spec.offset_ns, data, sample_rate)

    def _store(self, name: str, stamp: int, data: Any, rate: int | None) -> Ingest:
        buf = self.buffers[name]
        stats = self.stats.input(name)
        reset = False
        if buf.is_loop_jump(stamp):
            stats.loop_resets += 1
            self.reset_all()
            reset = True
        elif (self.epoch > 0 and name not in self._delivered and self.clock_ns is not None
              and stamp > self.clock_ns + self.loop_jump_ns):
            stats.count_dropped('stale_epoch')        # in flight from before the loop
            return Ingest(name, 'stale_epoch', stamp_ns=stamp)
        if isinstance(buf, AudioBuffer):
            push = buf.push(stamp, data, sample_rate=rate)
        else:
            push = buf.push(stamp, data)
        if push.stored:
            self._delivered.add(name)
            if self.clock_ns is None or stamp > self.clock_ns:
                self.clock_ns = stamp
        audio = isinstance(buf, AudioBuffer)
        return Ingest(name, push.status, stamp_ns=stamp, reset=reset,
                      start_ns=push.start_ns, end_ns=push.end_ns,
                      samples=data if audio else None, sample_rate=rate, data=None if audio else data)

    def reset_all(self) -> None:
        """Clear every buffer and start a new epoch (counted in ``stats.global_resets``)."""
        for buf in self.buffers.values():
            buf.clear()
        for s in self.stats.inputs.values():
            s.reset_time()
        self.epoch += 1
        self.stats.global_resets += 1
        self.clock_ns = None
        self._delivered.clear()
