"""
Microphone capture with sounddevice (PortAudio), stamped in the caller's clock.

rclpy-free: ``ros/microphone_node.py`` wraps it, tests drive it with a real
PortAudio stream (ALSA's ``file`` plugin turning a raw PCM file into a capture
device).

Flow: PortAudio calls :meth:`MicrophoneCapture._callback` on its own thread
with ``chunk`` frames of interleaved int16; the callback copies them, stamps
them and puts an :class:`AudioChunk` in a bounded queue; the caller takes them
with :meth:`MicrophoneCapture.read` or by iterating.  Nothing in the callback
blocks.

Time stamps
-----------
A chunk's ``stamp`` is the capture time of its *first* frame, in the clock the
caller passes (``clock=``, e.g. ROS time), in seconds.  The sound card's sample
count is the audio clock: a chunk is stamped ``anchor + frames since the anchor /
sample_rate``, so consecutive chunks are exactly their length apart however the
host delivers them (in bursts, late, or, for a device without a clock such as
ALSA's ``file`` plugin, many times faster than real time).  The anchor is the
observed capture time (below) of the stream's first frame; it is set again
(counted in :attr:`CaptureStats.reanchors`) when PortAudio reports an input
overflow (frames were lost, so the count no longer measures time) or when the
sample-count stamps have fallen more than ``resync_s`` behind the observed times
(frames lost unflagged, or a sound-card clock slower than the caller's).  Stamps
ahead of the observed times are kept, never moved back, so they never run
backwards: a device faster than real time keeps its own clock, and a sound-card
clock faster than the caller's drifts ahead by its error (tens of ppm, about
0.1 s per hour) until the next overflow or restart.

The observed capture time of a buffer's first frame:

* PortAudio reports ``time.inputBufferAdcTime``, the ADC time of the first
  frame, in the stream's own clock (whose epoch is unspecified: CLOCK_REALTIME,
  CLOCK_MONOTONIC or a sound-card clock, depending on host API and version).
* :class:`ClockMapper` estimates ``offset = caller clock - stream clock``: at
  each callback it reads the caller's clock just after PortAudio took
  ``time.currentTime``, so ``clock() - currentTime`` over-estimates the offset by
  the (non-negative) scheduling delay; the minimum over a sliding window of
  recent callbacks is the estimate (the minimum-delay filter of NTP).  A
  window, rather than the all-time minimum, lets it follow a step of the
  caller's clock within a window's length.
* When a host API leaves ``inputBufferAdcTime`` at 0 (some do, e.g. ALSA
  through PulseAudio plugins), the first frame's time falls back to
  ``currentTime - input latency`` (``stream.latency``); when ``currentTime`` is
  0 too, to ``clock() - input latency``.  Fallbacks are counted in
  :class:`CaptureStats`.

Overflows
---------
Two different losses are counted, never fatal:

* ``overflows``: PortAudio flagged ``input_overflow`` (the host dropped input
  because the callback came too late);
* ``dropped_chunks``: the consumer did not take chunks fast enough and the
  queue (``max_queue_chunks``) was full; the newest chunk is dropped.  A jump
  in :attr:`AudioChunk.sequence` shows where.

Devices
-------
``device`` is an index (int or a string of digits), a name (exact, else a
unique case-insensitive substring of ``"name"`` or ``"name, host API"``), or
None / ``''`` for PortAudio's default input.  An unknown or ambiguous device
raises :class:`AudioDeviceError` listing every device PortAudio sees with its
index and input channel count.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass
import math
import queue
import threading
import time
from typing import Any, Callable, Iterator

import numpy as np

SAMPLE_FORMAT = 'S16LE'
"""AudioInfo.sample_format of the bytes :meth:`AudioChunk.to_s16le` returns."""

CODING_FORMAT = 'wave'
"""AudioInfo.coding_format for raw PCM, as audio_common's audio_capture writes it."""


class AudioDeviceError(ValueError):
    """The requested capture device does not exist, is ambiguous or cannot do the settings."""


class PortAudioUnavailableError(RuntimeError):
    """sounddevice could not load the PortAudio library (install libportaudio2)."""


@dataclass(frozen=True)
class AudioDevice:
    """One device as PortAudio lists it."""

    index: int
    name: str
    hostapi: str
    max_input_channels: int
    default_sample_rate: float

    def describe(self) -> str:
        return (f'[{self.index}] {self.name!r} ({self.hostapi}): '
                f'{self.max_input_channels} input channels, '
                f'default {self.default_sample_rate:g} Hz')


@dataclass(frozen=True)
class AudioChunk:
    """``frames`` consecutive frames of int16 PCM and the capture time of the first one."""

    data: np.ndarray  # (frames, channels) int16
    stamp: float  # capture time of data[0] in the caller's clock, seconds
    sequence: int  # 0, 1, 2, ... per PortAudio callback; a gap means dropped chunks
    sample_rate: int

    @property
    def frames(self) -> int:
        return int(self.data.shape[0])

    @property
    def channels(self) -> int:
        return int(self.data.shape[1])

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate

    @property
    def stamp_ns(self) -> int:
        """``stamp`` in integer nanoseconds (for builtin_interfaces/Time)."""
        return int(round(self.stamp * 1e9))

    def to_s16le(self) -> bytes:
        """Interleaved signed 16-bit little-endian bytes (AudioDataStamped.audio.data)."""
        return np.ascontiguousarray(self.data, dtype='<i2').tobytes()


@dataclass(frozen=True)
class CaptureStats:
    """Counters since :meth:`MicrophoneCapture.start` (a snapshot)."""

    chunks: int = 0  # callbacks PortAudio made
    frames: int = 0  # frames PortAudio delivered
    overflows: int = 0  # callbacks flagged input_overflow by PortAudio
    dropped_chunks: int = 0  # chunks lost because the queue was full
    adc_time_fallbacks: int = 0  # chunks stamped without inputBufferAdcTime
    clock_offset: float | None = None  # current estimate of caller clock - stream clock
    reanchors: int = 0  # times the sample-count clock was set again from the observed time (after the first)


def _sounddevice() -> Any:
    """Import sounddevice lazily, turning a missing PortAudio into a clear error."""
    try:
        import sounddevice
    except OSError as exc:  # sounddevice raises OSError when libportaudio is absent
        raise PortAudioUnavailableError(
            f'PortAudio library not found ({exc}); install it, e.g. `apt install libportaudio2`'
        ) from exc
    return sounddevice


def list_devices() -> list[AudioDevice]:
    """Every device PortAudio sees (output-only ones have 0 input channels)."""
    sd = _sounddevice()
    hostapis = sd.query_hostapis()
    return [
        AudioDevice(index=int(d['index']), name=str(d['name']),
                    hostapi=str(hostapis[d['hostapi']]['name']),
                    max_input_channels=int(d['max_input_channels']),
                    default_sample_rate=float(d['default_samplerate']))
        for d in sd.query_devices()
    ]


def _device_listing(devices: list[AudioDevice]) -> str:
    if not devices:
        return 'PortAudio sees no devices at all.'
    return 'PortAudio sees these devices:\n' + '\n'.join('  ' + d.describe() for d in devices)


def resolve_input_device(device: int | str | None, *, channels: int = 1) -> AudioDevice:
    """
    Return the capture device meant by ``device`` (index, name or None for the default).

    Raises :class:`AudioDeviceError` naming what was asked and listing every device.
    """
    devices = list_devices()
    listing = _device_listing(devices)
    if isinstance(device, bool):
        raise AudioDeviceError(f'device must be an index, a name or empty, got {device!r}')
    if isinstance(device, str):
        device = device.strip()
        if device.lstrip('-').isdigit():
            device = int(device)
    if device is None or device == '':
        sd = _sounddevice()
        index = sd.default.device[0]
        if index is None or int(index) < 0:
            raise AudioDeviceError(f'no default input device; set `device`. {listing}')
        chosen = next((d for d in devices if d.index == int(index)), None)
        if chosen is None:
            raise AudioDeviceError(f'default input device {index} is not listed. {listing}')
    elif isinstance(device, int):
        chosen = next((d for d in devices if d.index == device), None)
        if chosen is None:
            raise AudioDeviceError(f'no audio device with index {device}. {listing}')
    elif isinstance(device, str):
        inputs = [d for d in devices if d.max_input_channels > 0]
        exact = [d for d in inputs if d.name == device]
        if len(exact) == 1:
            chosen = exact[0]
        else:
            needle = device.lower()
            found = exact or [d for d in inputs
                              if needle in f'{d.name}, {d.hostapi}'.lower()]
            if not found:
                raise AudioDeviceError(f'no input device matches {device!r}. {listing}')
            if len(found) > 1:
                raise AudioDeviceError(
                    f'{device!r} matches {len(found)} input devices '
                    f'({", ".join(f"[{d.index}] {d.name!r}" for d in found)}); '
                    f'give the full name or the index. {listing}')
            chosen = found[0]
    else:
        raise AudioDeviceError(
            f'device must be an index, a name or empty, got {type(device).__name__}')
    if chosen.max_input_channels < channels:
        raise AudioDeviceError(
            f'device {chosen.describe()} cannot capture {channels} channel(s). {listing}')
    return chosen


class ClockMapper:
    """
    Map PortAudio stream time onto a caller's clock (see the module docstring).

    ``observe(stream_now)`` reads ``clock()`` and updates the offset estimate,
    the minimum of ``clock() - stream_now`` over the last ``window``
    observations; ``to_clock(t)`` is ``t + offset``.
    """

    def __init__(self, clock: Callable[[], float], *, window: int = 64) -> None:
        if window < 1:
            raise ValueError(f'window must be >= 1, got {window}')
        self._clock = clock
        self._deltas: collections.deque[float] = collections.deque(maxlen=window)
        self._offset: float | None = None

    @property
    def offset(self) -> float | None:
        return self._offset

    def observe(self, stream_now: float) -> float:
        self._deltas.append(float(self._clock()) - float(stream_now))
        self._offset = min(self._deltas)
        return self._offset

    def to_clock(self, stream_time: float) -> float:
        if self._offset is None:
            raise RuntimeError('ClockMapper.to_clock before any observe()')
        return float(stream_time) + self._offset


class MicrophoneCapture:
    """
    Callback-driven PortAudio input stream delivering stamped int16 chunks.

    >>> with MicrophoneCapture(device='default', sample_rate=16000, chunk_ms=20) as mic:
    ...     for chunk in mic:            # AudioChunk, (320, 1) int16 each
    ...         publish(chunk.to_s16le(), chunk.stamp)

    ``clock`` is called on PortAudio's thread and must be thread-safe (rclpy's
    ``Clock.now`` is).  ``max_queue_chunks`` defaults to two seconds of chunks.
    """

    def __init__(self, *, device: int | str | None = None, sample_rate: int = 16000,
                 channels: int = 1, chunk_ms: float = 20.0,
                 clock: Callable[[], float] = time.monotonic,
                 max_queue_chunks: int | None = None, latency: str | float = 'low',
                 clock_window: int = 64, resync_s: float = 1.0) -> None:
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
            raise ValueError(f'sample_rate must be a positive integer (Hz), got {sample_rate!r}')
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f'channels must be a positive integer, got {channels!r}')
        if isinstance(chunk_ms, bool) or not isinstance(chunk_ms, (int, float)) or chunk_ms <= 0:
            raise ValueError(f'chunk_ms must be a positive number (ms), got {chunk_ms!r}')
        frames = sample_rate * float(chunk_ms) / 1000.0
        if abs(frames - round(frames)) > 1e-6 or round(frames) < 1:
            raise ValueError(
                f'chunk_ms={chunk_ms} at sample_rate={sample_rate} is {frames:g} frames; '
                'choose a chunk length that is a whole number of frames (>= 1)')
        self.device = device
        self.sample_rate = sample_rate
        self.channels = channels
        self.chunk_ms = float(chunk_ms)
        self.chunk_frames = int(round(frames))
        if max_queue_chunks is None:
            max_queue_chunks = max(1, math.ceil(2000.0 / self.chunk_ms))
        if max_queue_chunks < 1:
            raise ValueError(f'max_queue_chunks must be >= 1, got {max_queue_chunks}')
        self.max_queue_chunks = int(max_queue_chunks)
        if isinstance(resync_s, bool) or not isinstance(resync_s, (int, float)) or not resync_s > 0:
            raise ValueError(f'resync_s must be a positive number (s), got {resync_s!r}')
        self.resync_s = float(resync_s)
        self.latency = latency
        self._clock = clock
        self._mapper = ClockMapper(clock, window=clock_window)
        self._queue: queue.Queue[AudioChunk] = queue.Queue(maxsize=self.max_queue_chunks)
        self._stream: Any = None
        self._device_info: AudioDevice | None = None
        self._input_latency = 0.0
        self._error: BaseException | None = None
        self._finished = threading.Event()
        self._reset_counters()

    # -- device and lifetime ------------------------------------------------------------

    def resolve(self) -> AudioDevice:
        """Find the device and check PortAudio accepts the settings (no stream opened)."""
        if self._device_info is None:
            info = resolve_input_device(self.device, channels=self.channels)
            sd = _sounddevice()
            try:
                sd.check_input_settings(device=info.index, channels=self.channels,
                                        dtype='int16', samplerate=self.sample_rate)
            except Exception as exc:  # sounddevice raises PortAudioError or ValueError
                raise AudioDeviceError(
                    f'device {info.describe()} refuses {self.sample_rate} Hz, '
                    f'{self.channels} channel(s), int16: {exc}') from exc
            self._device_info = info
        return self._device_info

    @property
    def device_info(self) -> AudioDevice | None:
        return self._device_info

    @property
    def running(self) -> bool:
        return self._stream is not None and not self._finished.is_set()

    @property
    def input_latency(self) -> float:
        """Return PortAudio's input latency of the open stream, seconds."""
        return self._input_latency

    def start(self) -> None:
        if self._stream is not None:
            raise RuntimeError('capture already started')
        info = self.resolve()
        sd = _sounddevice()
        self._reset_counters()
        self._error = None
        self._finished.clear()
        self._queue = queue.Queue(maxsize=self.max_queue_chunks)
        stream = sd.InputStream(device=info.index, samplerate=self.sample_rate,
                                channels=self.channels, dtype='int16',
                                blocksize=self.chunk_frames, latency=self.latency,
                                callback=self._callback, finished_callback=self._finished.set)
        self._input_latency = float(stream.latency)
        self._stream = stream
        stream.start()

    def stop(self) -> None:
        """Stop and close the stream; chunks already queued can still be read."""
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
            finally:
                stream.close()
                self._finished.set()

    def __enter__(self) -> MicrophoneCapture:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- consumer side ------------------------------------------------------------------

    def read(self, timeout: float | None = None) -> AudioChunk | None:
        """Return the next chunk; None after ``timeout`` s, or at once when stopped and empty."""
        self._raise_callback_error()
        try:
            if not self.running:
                return self._queue.get_nowait()
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            self._raise_callback_error()
            return None

    def __iter__(self) -> Iterator[AudioChunk]:
        """Chunks until the stream stops (then the queued rest); re-raises a callback error."""
        while True:
            try:
                chunk = self._queue.get(timeout=0.05)
            except queue.Empty:
                self._raise_callback_error()
                if not self.running:
                    return
                continue
            yield chunk

    def stats(self) -> CaptureStats:
        return CaptureStats(chunks=self._chunks, frames=self._frames, overflows=self._overflows,
                            dropped_chunks=self._dropped, adc_time_fallbacks=self._fallbacks,
                            clock_offset=self._mapper.offset, reanchors=max(0, self._anchors - 1))

    def audio_info(self) -> dict[str, Any]:
        """Return the audio_common_msgs/AudioInfo fields of this stream (bitrate in bit/s)."""
        return {'channels': self.channels, 'sample_rate': self.sample_rate,
                'sample_format': SAMPLE_FORMAT,
                'bitrate': self.sample_rate * self.channels * 16,
                'coding_format': CODING_FORMAT}

    # -- PortAudio thread ---------------------------------------------------------------

    def _reset_counters(self) -> None:
        self._sequence = 0
        self._chunks = 0
        self._frames = 0
        self._overflows = 0
        self._dropped = 0
        self._fallbacks = 0
        self._anchors = 0
        self._anchor: tuple[float, int] | None = None  # (observed time, frames before it)

    def _raise_callback_error(self) -> None:
        if self._error is not None:
            raise RuntimeError(f'audio capture callback failed: {self._error!r}') from self._error

    def _sample_clock_stamp(self, observed: float, frames_before: int, overflow: bool) -> float:
        """Stamp of the buffer starting at frame ``frames_before`` by the sample count (see the module docstring)."""
        if self._anchor is not None and not overflow:
            anchor, anchor_frames = self._anchor
            stamp = anchor + (frames_before - anchor_frames) / self.sample_rate
            if observed - stamp <= self.resync_s:
                return stamp
        self._anchor = (observed, frames_before)
        self._anchors += 1
        return observed

    def _stamp(self, time_info: Any) -> float:
        """Observed caller-clock time of the first frame of this callback's buffer."""
        current = float(time_info.currentTime)
        adc = float(time_info.inputBufferAdcTime)
        if current > 0.0:
            self._mapper.observe(current)
        if adc > 0.0 and self._mapper.offset is not None:
            return self._mapper.to_clock(adc)
        self._fallbacks += 1
        if current > 0.0:
            return self._mapper.to_clock(current - self._input_latency)
        return float(self._clock()) - self._input_latency

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        try:
            sequence = self._sequence
            self._sequence += 1
            self._chunks += 1
            frames_before = self._frames
            self._frames += int(frames)
            if status.input_overflow:
                self._overflows += 1
            data = np.array(indata, dtype=np.int16, copy=True)  # (frames, channels)
            stamp = self._sample_clock_stamp(self._stamp(time_info), frames_before, bool(status.input_overflow))
            chunk = AudioChunk(data=data, stamp=stamp, sequence=sequence, sample_rate=self.sample_rate)
            try:
                self._queue.put_nowait(chunk)
            except queue.Full:
                self._dropped += 1
        except Exception as exc:  # keep it for the consumer; an exception would kill the stream
            self._error = exc
            _sounddevice_abort()


def _sounddevice_abort() -> None:
    raise _sounddevice().CallbackAbort
