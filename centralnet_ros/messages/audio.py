"""Raw PCM audio messages (``audio_common_msgs``, ``naoqi_bridge_msgs/AudioBuffer``) -> numpy."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from .fields import (_field, _int_field, _readonly, _sequence_field, _short, _str_field, _typed_buffer,
                     MalformedMessage)


class AudioChunk(NamedTuple):
    """Converted audio: ``samples`` ``(frames, channels)`` float32 and its ``sample_rate``."""

    samples: np.ndarray
    sample_rate: int


class AudioFormat(NamedTuple):
    """What ``audio_common_msgs/AudioInfo`` says about raw audio, or a configured stand-in."""

    channels: int
    sample_rate: int
    sample_format: str = 'S16LE'
    coding_format: str = 'wave'


class _SampleFormat(NamedTuple):
    dtype: str      # numpy dtype, byte order explicit; 'S24' handled separately
    scale: float    # multiply to get [-1, 1)
    offset: float   # subtract first (unsigned formats)


AUDIO_SAMPLE_FORMATS: dict[str, _SampleFormat] = {
    'S16LE': _SampleFormat('<i2', 1 / 32768, 0.0),
    'S16BE': _SampleFormat('>i2', 1 / 32768, 0.0),
    'S32LE': _SampleFormat('<i4', 1 / 2 ** 31, 0.0),
    'S32BE': _SampleFormat('>i4', 1 / 2 ** 31, 0.0),
    'S24LE': _SampleFormat('S24<', 1 / 2 ** 23, 0.0),
    'S24BE': _SampleFormat('S24>', 1 / 2 ** 23, 0.0),
    'F32LE': _SampleFormat('<f4', 1.0, 0.0),
    'F32BE': _SampleFormat('>f4', 1.0, 0.0),
    'F64LE': _SampleFormat('<f8', 1.0, 0.0),
    'F64BE': _SampleFormat('>f8', 1.0, 0.0),
    'U8': _SampleFormat('u1', 1 / 128, 128.0),
    'S8': _SampleFormat('i1', 1 / 128, 0.0),
}
"""Raw PCM sample formats (GStreamer names, as audio_common's ``audio_capture`` writes them)."""

SAMPLE_RATE_RANGE = (1_000, 384_000)
"""Sample rates (Hz) taken as audio; outside it a stream is refused (``limit``) rather than processed:
at 4e9 Hz every 20 ms chunk would be a gap, at 5e8 Hz one decision would resample seconds of samples."""

_RAW_CODINGS = ('', 'wave', 'wav', 'raw', 'pcm', 'audio/x-raw')


def audio_format(info: Any) -> AudioFormat:
    """``audio_common_msgs/AudioInfo`` (or an :class:`AudioFormat`) -> validated :class:`AudioFormat`."""
    if isinstance(info, AudioFormat):
        channels, sample_rate, sample_format, coding = info
    else:
        channels = _int_field(info, 'channels', 'AudioInfo', hi=255)
        sample_rate = _int_field(info, 'sample_rate', 'AudioInfo', hi=2 ** 32 - 1)
        sample_format = _str_field(info, 'sample_format', 'AudioInfo')
        coding = _str_field(info, 'coding_format', 'AudioInfo')
    if not isinstance(channels, (int, np.integer)) or channels <= 0:
        raise MalformedMessage('field', f'AudioInfo.channels = {_short(channels)}; expected at least 1')
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise MalformedMessage('field',
                               f'AudioInfo.sample_rate = {_short(sample_rate)}; expected a positive rate in Hz')
    _check_rate(int(sample_rate), 'AudioInfo.sample_rate')
    if str(coding).strip().lower() not in _RAW_CODINGS:
        raise MalformedMessage('encoding', f'AudioInfo.coding_format {_short(coding)} is compressed audio; '
                               f'only raw PCM is supported (coding_format one of {list(_RAW_CODINGS)})')
    fmt = str(sample_format).strip().upper()
    if fmt not in AUDIO_SAMPLE_FORMATS:
        raise MalformedMessage('encoding', f'AudioInfo.sample_format {_short(sample_format)} is not supported; '
                               f'expected one of {sorted(AUDIO_SAMPLE_FORMATS)}')
    return AudioFormat(int(channels), int(sample_rate), fmt, str(coding))


def _check_rate(rate: int, what: str) -> None:
    lo, hi = SAMPLE_RATE_RANGE
    if not lo <= rate <= hi:
        raise MalformedMessage('limit', f'{what} = {rate:,} Hz is outside the sane range [{lo:,}, {hi:,}] Hz; '
                               'the stream is refused')


def _s24(raw: np.ndarray, big: bool) -> np.ndarray:
    b = raw.reshape(-1, 3).astype(np.int32)                 # (N, 3) bytes
    if big:
        b = b[:, ::-1]
    v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
    return (v << 8) >> 8                                    # sign-extend 24 -> 32 bits


def audio_to_array(msg: Any, info: Any) -> AudioChunk:
    """
    ``audio_common_msgs/AudioDataStamped`` (or ``AudioData``) + ``AudioInfo`` -> :class:`AudioChunk`.

    ``info`` is the ``AudioInfo`` message or an :class:`AudioFormat`. Samples are
    interleaved; the result is ``(frames, channels)`` float32 scaled to [-1, 1)
    (integer formats) or as sent (float formats, which must be finite). Native-order
    F32 is returned as a read-only view; everything else is converted (a copy).
    """
    fmt = audio_format(info)
    audio = getattr(msg, 'audio', None)
    if audio is None and isinstance(msg, Mapping):
        audio = msg.get('audio')
    holder, what = (audio, 'AudioDataStamped.audio') if audio is not None else (msg, 'AudioData')
    raw = _typed_buffer(_field(holder, 'data', what), np.uint8, f'{what}.data')
    if raw.size == 0:
        raise MalformedMessage('empty', f'{what}.data holds no samples')
    spec = AUDIO_SAMPLE_FORMATS[fmt.sample_format]
    width = 3 if spec.dtype.startswith('S24') else np.dtype(spec.dtype).itemsize
    frame_bytes = width * fmt.channels
    if raw.size % frame_bytes:
        raise MalformedMessage('size', f'{what}.data has {raw.size} bytes, not a whole number of '
                               f'{fmt.channels}-channel {fmt.sample_format} frames ({frame_bytes} bytes each)')
    if spec.dtype.startswith('S24'):
        ints = _s24(raw, spec.dtype.endswith('>'))
        samples = np.multiply(ints, np.float32(spec.scale), dtype=np.float32)
    else:
        dtype = np.dtype(spec.dtype)
        values = raw.view(dtype)
        if dtype.kind == 'f':
            if dtype == np.dtype('=f4'):
                samples = _readonly(values)                 # zero-copy view
            else:
                samples = values.astype(np.float32)
            if not np.isfinite(samples).all():
                raise MalformedMessage('nan', f'{what}.data ({fmt.sample_format}) contains NaN or infinite samples')
        elif spec.offset:
            samples = np.multiply(np.subtract(values, np.float32(spec.offset), dtype=np.float32),
                                  np.float32(spec.scale), dtype=np.float32)
        else:
            samples = np.multiply(values, np.float32(spec.scale), dtype=np.float32)
    return AudioChunk(samples.reshape(-1, fmt.channels), fmt.sample_rate)  # (frames, channels)


NAOQI_CHANNELS = ('front_left', 'front_center', 'front_right', 'rear_left', 'rear_center',
                  'rear_right', 'surround_left', 'surround_right', 'subwoofer', 'lfe')
"""``naoqi_bridge_msgs/AudioBuffer`` channel codes (CHANNEL_FRONT_LEFT=0 ... CHANNEL_LFE=9)."""


def naoqi_audio_to_array(msg: Any, *, channels: int | None = None) -> AudioChunk:
    """
    ``naoqi_bridge_msgs/AudioBuffer`` (naoqi_driver; Pepper/Nao) -> :class:`AudioChunk`.

    ``data`` is int16 interleaved over ``len(channel_map)`` channels (4 on Pepper, at
    48 kHz, about 170 ms per buffer) at ``frequency`` Hz; the result is
    ``(frames, channels)`` float32 = int16 / 32768. ``channels`` overrides an empty
    ``channel_map`` (some bridges leave it empty). naoqi_driver stamps the header
    when it publishes: give the input a stamp offset or ``stamp_marks='end'`` in the
    runtime (see ``runtime.buffers``).
    """
    what = 'AudioBuffer'
    rate = _int_field(msg, 'frequency', what, hi=65535)
    if rate == 0:
        raise MalformedMessage('field', 'AudioBuffer.frequency is 0; expected the sample rate in Hz (e.g. 48000)')
    _check_rate(rate, 'AudioBuffer.frequency')
    channel_map = _sequence_field(msg, 'channel_map', what)
    n_channels = len(channel_map) or (channels or 0)
    if n_channels <= 0:
        raise MalformedMessage('field', 'AudioBuffer.channel_map is empty and no channel count was configured')
    values = _typed_buffer(_field(msg, 'data', what), np.dtype('=i2'), 'AudioBuffer.data')
    if values.size == 0:
        raise MalformedMessage('empty', 'AudioBuffer.data holds no samples')
    if values.size % n_channels:
        raise MalformedMessage('size', f'AudioBuffer.data has {values.size} samples, not a multiple of '
                               f'{n_channels} channels')
    samples = np.multiply(values, np.float32(1 / 32768), dtype=np.float32).reshape(-1, n_channels)
    return AudioChunk(samples, rate)                        # (frames, channels)
