"""
ROS message <-> numpy, by field access only.

Every function here reads (or builds) messages through their fields, so the same
code converts messages handed to an rclpy callback, messages decoded from a bag by
the ``rosbags`` library, ``types.SimpleNamespace`` objects and plain dicts. This
module never imports rclpy or rosbags.

Conversions (message -> numpy)
------------------------------
================================  ==========================================  ===========
function                          returns                                      copies?
================================  ==========================================  ===========
:func:`image_to_array` rgb8       ``(H, W, 3)`` uint8, RGB                     no (view)
                       bgr8       ``(H, W, 3)`` uint8, RGB (channel axis       no (view with
                                  reversed by a negative stride)               negative stride)
                       rgba8      ``(H, W, 3)`` uint8, RGB (alpha dropped)     no (view)
                       bgra8      ``(H, W, 3)`` uint8, RGB                     no (view)
                       mono8/8UC1 ``(H, W)`` uint8                             no (view)
                       mono16     ``(H, W)`` uint16                            no (view)
                       16UC1      ``(H, W)`` float32 metres (mm / 1000)        yes (scaling)
                                  or uint16 mm with ``depth_in_metres=False``  no (view)
                       32FC1      ``(H, W)`` float32 metres                    no (view)
:func:`compressed_image_to_array` as above (cv2.imdecode)                     yes (decode)
:func:`audio_to_array`            ``(frames, channels)`` float32 in [-1, 1)    yes, except
                                  and the sample rate                          native F32LE
:func:`naoqi_audio_to_array`      ``(frames, channels)`` float32, ``frequency``  yes (scaling)
:func:`pose_array_to_joints`      ``(J, 3)`` float32 joint positions           yes (gather)
:func:`skeleton2d_to_array`       ``(18, 3)`` float32 (x, y, confidence)       yes (gather)
================================  ==========================================  ===========

Views share memory with the message's ``data`` buffer (``np.shares_memory`` is
true), honour ``step`` row padding through strides, and are returned read-only so a
consumer cannot corrupt the message. Multi-byte data whose ``is_bigendian`` differs
from the machine's byte order is copied into native order; a consumer needing a
C-contiguous array (cv2 often does) calls ``np.ascontiguousarray``.

Depth follows REP 118: ``16UC1`` is millimetres with 0 meaning "no measurement"
(kept as 0.0 after conversion to metres); ``32FC1`` is metres with NaN meaning "no
measurement" (kept, so NaN in a depth image is not malformed).

Malformed input raises :class:`MalformedMessage` with a ``kind`` among
:data:`MALFORMED_KINDS`, and nothing else, whatever the message holds (this is
fuzzed in ``test/test_fuzz_messages.py``).

Builders (numpy -> message)
---------------------------
``build_*`` functions take a *factory* ``factory(msgtype, **fields)`` that makes one
message of type ``msgtype`` (``'pkg/msg/Name'``) from its fields, so the caller
chooses the message implementation: :func:`dict_factory` gives plain dicts, the
replay package passes a rosbags typestore (``replay.msgdefs.typestore_factory``)
and ros/ passes a factory resolving rclpy classes. Every field of each message is
given (rosbags dataclasses have no defaults). Bulk arrays are passed as numpy
arrays; :func:`sequences_to_python` turns them into ``array.array`` for rclpy,
whose setters refuse numpy arrays.
"""
from __future__ import annotations

import array
from collections.abc import Mapping, Sequence
import struct
import sys
from typing import Any, Callable, NamedTuple

import numpy as np

__all__ = [
    'MALFORMED_KINDS', 'MalformedMessage', 'IMAGE_ENCODINGS', 'AUDIO_SAMPLE_FORMATS',
    'KINECT_V1_JOINTS', 'SKELETON2D_JOINTS', 'NAOQI_CHANNELS',
    'AudioChunk', 'AudioFormat', 'audio_format', 'stamp_to_ns', 'ns_to_stamp', 'header_stamp_ns',
    'image_to_array', 'compressed_image_to_array', 'audio_to_array', 'naoqi_audio_to_array',
    'pose_array_to_joints', 'skeleton2d_to_array',
    'MessageFactory', 'dict_factory', 'sequences_to_python',
    'build_header', 'build_image', 'build_compressed_image', 'build_audio', 'build_naoqi_audio',
    'build_pose_array', 'build_skeleton2d', 'build_classification', 'build_label_info',
    'build_vision_info', 'build_expression', 'build_live_speech', 'build_ids_list',
]

MALFORMED_KINDS = ('encoding', 'size', 'empty', 'nan', 'field', 'decode')
"""Kinds of :class:`MalformedMessage`:

- ``encoding``: unsupported image encoding / audio sample or coding format;
- ``size``: data length does not match the declared dimensions (or ``step`` too small,
  wrong number of joints);
- ``empty``: a zero-sized image, no audio samples, no joints;
- ``nan``: NaN or infinity where only finite values make sense (audio, joints);
- ``field``: a field is missing, of the wrong type or out of range (negative width,
  zero sample rate, ``nanosec`` >= 1e9, ...);
- ``decode``: compressed data that cv2 cannot decode.
"""

_NATIVE_BIG = sys.byteorder == 'big'


class MalformedMessage(ValueError):
    """A message that cannot be converted; ``kind`` is one of :data:`MALFORMED_KINDS`."""

    def __init__(self, kind: str, message: str):
        if kind not in MALFORMED_KINDS:
            raise ValueError(f'unknown MalformedMessage kind {kind!r}; expected one of {MALFORMED_KINDS}')
        super().__init__(f'[{kind}] {message}')
        self.kind = kind
        self.detail = message


# --------------------------------------------------------------------------- field access

_MISSING = object()


def _field(msg: Any, name: str, what: str) -> Any:
    """``msg.name`` for message objects, ``msg[name]`` for mappings."""
    value = getattr(msg, name, _MISSING)
    if value is _MISSING:
        if isinstance(msg, Mapping) and name in msg:
            return msg[name]
        raise MalformedMessage('field', f'{what} has no field {name!r} (got {type(msg).__name__})')
    return value


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + '...'


def _int_field(msg: Any, name: str, what: str, *, lo: int = 0, hi: int | None = None) -> int:
    value = _field(msg, name, what)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise MalformedMessage('field', f'{what}.{name} must be an integer, got {type(value).__name__} {_short(value)}')
    value = int(value)
    if value < lo or (hi is not None and value > hi):
        raise MalformedMessage('field', f'{what}.{name} = {value} is outside [{lo}, {hi if hi is not None else "inf"}]')
    return value


def _str_field(msg: Any, name: str, what: str) -> str:
    value = _field(msg, name, what)
    if isinstance(value, bytes):
        try:
            value = value.decode('utf-8')
        except UnicodeDecodeError:
            raise MalformedMessage('field', f'{what}.{name} is not valid UTF-8') from None
    if not isinstance(value, str):
        raise MalformedMessage('field', f'{what}.{name} must be a string, got {type(value).__name__}')
    return value


def _float_field(msg: Any, name: str, what: str) -> float:
    value = _field(msg, name, what)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise MalformedMessage('field', f'{what}.{name} must be a number, got {type(value).__name__} {_short(value)}')
    try:
        return float(value)
    except OverflowError:
        raise MalformedMessage('field', f'{what}.{name} = {_short(value)} does not fit a float') from None


def _sequence_field(msg: Any, name: str, what: str) -> Sequence:
    value = _field(msg, name, what)
    if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, '__len__') or not hasattr(value, '__getitem__'):
        raise MalformedMessage('field', f'{what}.{name} must be a sequence, got {type(value).__name__}')
    return value


def _typed_buffer(data: Any, dtype: np.dtype, what: str) -> np.ndarray:
    """
    Return a 1-D array of ``dtype`` over ``data``'s memory when it has a buffer, else a checked copy.

    ``data`` may be a numpy array (rosbags), ``array.array`` (rclpy), bytes-like, or a
    list of ints. Bytes are reinterpreted as ``dtype`` (its byte order included).
    """
    dtype = np.dtype(dtype)
    if isinstance(data, np.ndarray):
        if data.dtype == dtype and data.ndim == 1:
            return data if data.flags.c_contiguous else np.ascontiguousarray(data)
        if data.dtype == np.uint8 and data.ndim == 1:
            raw = data if data.flags.c_contiguous else np.ascontiguousarray(data)
            if raw.size % dtype.itemsize:
                raise MalformedMessage('size', f'{what}: {raw.size} bytes is not a multiple of {dtype.itemsize}')
            return raw.view(dtype)
        if data.dtype.kind in 'iu' and data.ndim == 1:
            return _checked_int_cast(data, dtype, what)
        raise MalformedMessage('field', f'{what} must be a 1-D {dtype} or uint8 array, got {data.dtype} {data.shape}')
    if isinstance(data, (bytes, bytearray, memoryview, array.array)):
        try:
            mv = memoryview(data)
            if not mv.contiguous:
                mv = memoryview(mv.tobytes())
            if mv.nbytes % dtype.itemsize:
                raise MalformedMessage('size', f'{what}: {mv.nbytes} bytes is not a multiple of {dtype.itemsize}')
            return np.frombuffer(mv, dtype=dtype)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, MalformedMessage):
                raise
            raise MalformedMessage('field', f'{what}: unreadable buffer ({exc})') from None
    if isinstance(data, (list, tuple)):
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in data):
            raise MalformedMessage('field', f'{what} must hold integers')
        if not data:
            return np.zeros(0, dtype=dtype)
        if any(abs(int(v)) >= 2 ** 62 for v in data):
            raise MalformedMessage('field', f'{what} holds values outside the {dtype} range')
        return _checked_int_cast(np.asarray(data, dtype=np.int64), dtype, what)
    raise MalformedMessage('field', f'{what} must be a byte buffer, array or list, got {type(data).__name__}')


def _checked_int_cast(values: np.ndarray, dtype: np.dtype, what: str) -> np.ndarray:
    if dtype.kind not in 'iu':
        raise MalformedMessage('field', f'{what} holds integers where {dtype} was expected')
    info = np.iinfo(dtype)
    if values.size and (values.min() < info.min or values.max() > info.max):
        raise MalformedMessage('field', f'{what} holds values outside the {dtype} range [{info.min}, {info.max}]')
    return values.astype(dtype)


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


# --------------------------------------------------------------------------- time

def stamp_to_ns(stamp: Any) -> int:
    """``builtin_interfaces/Time`` (``sec``, ``nanosec``) -> int nanoseconds."""
    sec = _int_field(stamp, 'sec', 'stamp', lo=-(2 ** 31), hi=2 ** 31 - 1)
    nanosec = _int_field(stamp, 'nanosec', 'stamp', lo=0, hi=999_999_999)
    return sec * 1_000_000_000 + nanosec


def ns_to_stamp(ns: int) -> tuple[int, int]:
    """Split int nanoseconds -> ``(sec, nanosec)`` with ``0 <= nanosec < 1e9``."""
    sec, nanosec = divmod(int(ns), 1_000_000_000)
    return sec, nanosec


def header_stamp_ns(msg: Any) -> int:
    """Return the header stamp of a stamped message, in nanoseconds."""
    header = _field(msg, 'header', type(msg).__name__)
    return stamp_to_ns(_field(header, 'stamp', 'header'))


# --------------------------------------------------------------------------- images

class _Encoding(NamedTuple):
    channels: int
    dtype: str          # numpy kind + size, byte order added from is_bigendian
    order: tuple[int, ...] | None  # channel indices giving RGB, or None for single channel


IMAGE_ENCODINGS: dict[str, _Encoding] = {
    'rgb8': _Encoding(3, 'u1', (0, 1, 2)),
    'bgr8': _Encoding(3, 'u1', (2, 1, 0)),
    'rgba8': _Encoding(4, 'u1', (0, 1, 2)),
    'bgra8': _Encoding(4, 'u1', (2, 1, 0)),
    'mono8': _Encoding(1, 'u1', None),
    '8uc1': _Encoding(1, 'u1', None),
    'mono16': _Encoding(1, 'u2', None),
    '16uc1': _Encoding(1, 'u2', None),
    '32fc1': _Encoding(1, 'f4', None),
}
"""Supported ``sensor_msgs/Image`` encodings (looked up case-insensitively)."""


def _channel_view(a: np.ndarray, order: tuple[int, ...]) -> np.ndarray:
    """Select/reorder the channel axis as a view (basic slicing only, never a copy)."""
    if order == (0, 1, 2):
        return a[..., :3]
    if order == (2, 1, 0):
        return a[..., 2::-1]
    raise AssertionError(order)


def image_to_array(msg: Any, *, depth_in_metres: bool = True) -> np.ndarray:
    """
    ``sensor_msgs/Image`` -> numpy, zero-copy where the encoding allows.

    Returns ``(H, W, 3)`` uint8 RGB for colour encodings, ``(H, W)`` for single-channel
    ones (see the module table). ``16UC1`` is taken as depth in millimetres and
    returned as float32 metres, or as the uint16 millimetre view with
    ``depth_in_metres=False``. Raises :class:`MalformedMessage`.
    """
    what = 'Image'
    encoding = _str_field(msg, 'encoding', what)
    spec = IMAGE_ENCODINGS.get(encoding.strip().lower())
    if spec is None:
        raise MalformedMessage('encoding', f'Image encoding {_short(encoding)} is not supported; '
                               f'expected one of {sorted(IMAGE_ENCODINGS)}')
    height = _int_field(msg, 'height', what, hi=2 ** 32 - 1)
    width = _int_field(msg, 'width', what, hi=2 ** 32 - 1)
    step = _int_field(msg, 'step', what, hi=2 ** 32 - 1)
    is_bigendian = _field(msg, 'is_bigendian', what)
    if not isinstance(is_bigendian, (bool, int, np.integer, np.bool_)):
        raise MalformedMessage('field', f'Image.is_bigendian must be a bool/uint8, got {type(is_bigendian).__name__}')
    if height == 0 or width == 0:
        raise MalformedMessage('empty', f'Image is empty ({height}x{width})')
    itemsize = int(spec.dtype[1:])
    row_bytes = width * spec.channels * itemsize
    if step < row_bytes:
        raise MalformedMessage('size', f'Image.step {step} is smaller than width x channels x bytes = '
                               f'{width} x {spec.channels} x {itemsize} = {row_bytes} for {encoding}')
    raw = _typed_buffer(_field(msg, 'data', what), np.uint8, 'Image.data')
    if raw.size != step * height:
        raise MalformedMessage('size', f'Image.data has {raw.size} bytes; expected step x height = '
                               f'{step} x {height} = {step * height} for {width}x{height} {encoding}')
    big = bool(is_bigendian) and itemsize > 1
    dtype = np.dtype(('>' if big else '<') + spec.dtype) if itemsize > 1 else np.dtype(spec.dtype)
    shape = (height, width, spec.channels) if spec.channels > 1 else (height, width)
    strides = (step, spec.channels * itemsize, itemsize) if spec.channels > 1 else (step, itemsize)
    # (H, W[, C]) view over the message buffer: row padding is skipped by the row stride
    view = np.ndarray(shape, dtype=dtype, buffer=raw, offset=0, strides=strides)
    copied = itemsize > 1 and big != _NATIVE_BIG
    if copied:
        view = view.astype(dtype.newbyteorder('='))        # copy into native byte order
    if spec.order is not None:
        view = _channel_view(view, spec.order)             # (H, W, 3) RGB, still a view
    if encoding.strip().lower() == '16uc1' and depth_in_metres:
        return np.multiply(view, np.float32(0.001), dtype=np.float32)  # (H, W) metres, copy
    return view if copied else _readonly(view)


def _imdecode(data: np.ndarray) -> np.ndarray | None:
    """``cv2.imdecode`` returning None (instead of raising) on data it rejects."""
    import cv2
    try:
        return cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error:
        return None


def _depth_from_png(data: np.ndarray, fmt: str, *, depth_in_metres: bool) -> np.ndarray:
    """compressed_depth_image_transport payload: a 12-byte header, then a PNG."""
    if data.size <= 12:
        raise MalformedMessage('size', f'compressedDepth CompressedImage has {data.size} bytes; '
                               'expected a 12-byte header then PNG data')
    _, quant_a, quant_b = struct.unpack('<iff', data[:12].tobytes())
    decoded = _imdecode(data[12:])
    if decoded is None or decoded.dtype != np.uint16 or decoded.ndim != 2:
        raise MalformedMessage('decode', f'CompressedImage ({_short(fmt)}): the PNG after the header does not decode '
                               'to a 16-bit single-channel image')
    if fmt.split(';')[0].strip().lower() == '32fc1':
        # quantised inverse depth: depth = A / (v - B), v == 0 means no measurement
        v = decoded.astype(np.float32)
        with np.errstate(divide='ignore', invalid='ignore'):
            depth = np.float32(quant_a) / (v - np.float32(quant_b))
        depth[decoded == 0] = np.nan
        return depth.astype(np.float32)
    if depth_in_metres:
        return np.multiply(decoded, np.float32(0.001), dtype=np.float32)
    return decoded


def compressed_image_to_array(msg: Any, *, depth_in_metres: bool = True) -> np.ndarray:
    """
    ``sensor_msgs/CompressedImage`` -> numpy via ``cv2.imdecode``.

    ``format`` as written by image_transport: ``'jpeg'``, ``'png'``, ``'rgb8; jpeg
    compressed bgr8'``, ``'16UC1; compressedDepth png'``, ``'32FC1; compressedDepth png'``.
    Colour images come back ``(H, W, 3)`` uint8 RGB, grey ones ``(H, W)`` (uint8 or
    uint16), compressedDepth as float32 metres (or uint16 mm with
    ``depth_in_metres=False`` for 16UC1). Raises :class:`MalformedMessage`.
    """
    what = 'CompressedImage'
    fmt = _str_field(msg, 'format', what)
    data = _typed_buffer(_field(msg, 'data', what), np.uint8, 'CompressedImage.data')
    if data.size == 0:
        raise MalformedMessage('empty', 'CompressedImage.data is empty')
    low = fmt.lower()
    if 'compresseddepth' in low:
        if 'rvl' in low:
            raise MalformedMessage('encoding', f'CompressedImage format {_short(fmt)}: RVL depth is not supported; '
                                   'expected compressedDepth png')
        return _depth_from_png(data, fmt, depth_in_metres=depth_in_metres)
    known = ('jpeg', 'jpg', 'png', 'tiff', 'webp', 'bmp')
    if low.strip() and not any(k in low for k in known):
        raise MalformedMessage('encoding', f'CompressedImage format {_short(fmt)} is not supported; '
                               f'expected one naming {known}')
    decoded = _imdecode(data)
    if decoded is None or decoded.size == 0:
        raise MalformedMessage('decode', f'CompressedImage ({_short(fmt)}, {data.size} bytes) could not be decoded')
    if decoded.ndim == 3 and decoded.shape[2] == 1:
        decoded = decoded[..., 0]
    if decoded.ndim == 3:
        if decoded.shape[2] not in (3, 4):
            raise MalformedMessage('decode', f'CompressedImage decoded to {decoded.shape[2]} channels')
        decoded = decoded[..., 2::-1]                      # cv2 BGR(A) -> RGB view
    return decoded


# --------------------------------------------------------------------------- audio

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
    if str(coding).strip().lower() not in _RAW_CODINGS:
        raise MalformedMessage('encoding', f'AudioInfo.coding_format {_short(coding)} is compressed audio; '
                               f'only raw PCM is supported (coding_format one of {list(_RAW_CODINGS)})')
    fmt = str(sample_format).strip().upper()
    if fmt not in AUDIO_SAMPLE_FORMATS:
        raise MalformedMessage('encoding', f'AudioInfo.sample_format {_short(sample_format)} is not supported; '
                               f'expected one of {sorted(AUDIO_SAMPLE_FORMATS)}')
    return AudioFormat(int(channels), int(sample_rate), fmt, str(coding))


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


# --------------------------------------------------------------------------- skeletons

KINECT_V1_JOINTS = (
    'hip_center', 'spine', 'shoulder_center', 'head',
    'shoulder_left', 'elbow_left', 'wrist_left', 'hand_left',
    'shoulder_right', 'elbow_right', 'wrist_right', 'hand_right',
    'hip_left', 'knee_left', 'ankle_left', 'foot_left',
    'hip_right', 'knee_right', 'ankle_right', 'foot_right',
)
"""The 20-joint Kinect v1 layout (Kinect for Windows SDK 1.x ``NUI_SKELETON_POSITION_INDEX``),
the order of MSRC-12 and ChaLearn 2013 skeletons. A ``geometry_msgs/PoseArray`` skeleton
carries joint ``i`` in ``poses[i].position`` (metres, camera frame); orientations are unused."""

SKELETON2D_JOINTS = (
    'nose', 'neck', 'right_shoulder', 'right_elbow', 'right_wrist', 'left_shoulder',
    'left_elbow', 'left_wrist', 'right_hip', 'right_knee', 'right_ankle', 'left_hip',
    'left_knee', 'left_ankle', 'left_eye', 'right_eye', 'left_ear', 'right_ear',
)
"""``hri_msgs/Skeleton2D`` keypoint order (OpenPose COCO-18; constants NOSE=0 ... RIGHT_EAR=17)."""


def pose_array_to_joints(msg: Any, *, num_joints: int | None = len(KINECT_V1_JOINTS),
                         allow_nan: bool = False) -> np.ndarray:
    """
    ``geometry_msgs/PoseArray`` -> ``(J, 3)`` float32 joint positions.

    ``num_joints`` (default 20, :data:`KINECT_V1_JOINTS`) is enforced unless None.
    NaN/inf positions are malformed unless ``allow_nan`` (a tracker that marks
    untracked joints with NaN).
    """
    poses = _sequence_field(msg, 'poses', 'PoseArray')
    if len(poses) == 0:
        raise MalformedMessage('empty', 'PoseArray.poses is empty')
    if num_joints is not None and len(poses) != num_joints:
        raise MalformedMessage('size', f'PoseArray has {len(poses)} poses; expected {num_joints} joints')
    joints = np.empty((len(poses), 3), dtype=np.float32)    # (J, 3)
    for i, pose in enumerate(poses):
        p = _field(pose, 'position', f'PoseArray.poses[{i}]')
        joints[i] = (_float_field(p, 'x', 'position'), _float_field(p, 'y', 'position'),
                     _float_field(p, 'z', 'position'))
    if not allow_nan and not np.isfinite(joints).all():
        raise MalformedMessage('nan', 'PoseArray holds NaN or infinite joint positions')
    return joints


def skeleton2d_to_array(msg: Any) -> np.ndarray:
    """
    Convert ``hri_msgs/Skeleton2D`` -> ``(18, 3)`` float32 rows ``(x, y, c)``.

    Normalised image coordinates (0, 0 top-left) and confidence, in :data:`SKELETON2D_JOINTS` order.
    """
    points = _sequence_field(msg, 'skeleton', 'Skeleton2D')
    if len(points) == 0:
        raise MalformedMessage('empty', 'Skeleton2D.skeleton is empty')
    if len(points) != len(SKELETON2D_JOINTS):
        raise MalformedMessage('size', f'Skeleton2D.skeleton has {len(points)} points; expected 18')
    out = np.empty((18, 3), dtype=np.float32)               # (18, 3)
    for i, p in enumerate(points):
        out[i] = (_float_field(p, 'x', 'point'), _float_field(p, 'y', 'point'), _float_field(p, 'c', 'point'))
    if not np.isfinite(out).all():
        raise MalformedMessage('nan', 'Skeleton2D holds NaN or infinite keypoints')
    return out


# --------------------------------------------------------------------------- builders

MessageFactory = Callable[..., Any]
"""``factory(msgtype, **fields) -> message``; ``msgtype`` is ``'pkg/msg/Name'``."""


def dict_factory(msgtype: str, **fields: Any) -> dict:
    """Make a plain field dict (a message factory; the message type is not recorded)."""
    return dict(fields)


_ARRAY_TYPECODES = {np.dtype(np.uint8): 'B', np.dtype(np.int8): 'b', np.dtype(np.int16): 'h',
                    np.dtype(np.uint16): 'H', np.dtype(np.int32): 'i', np.dtype(np.uint32): 'I',
                    np.dtype(np.int64): 'q', np.dtype(np.uint64): 'Q', np.dtype(np.float32): 'f',
                    np.dtype(np.float64): 'd'}


def sequences_to_python(fields: Mapping[str, Any]) -> dict:
    """
    Turn numpy arrays in ``fields`` into ``array.array`` and numpy scalars into Python ones.

    For an rclpy factory: generated rclpy setters accept ``array.array`` for numeric
    sequences and refuse numpy arrays. Use as
    ``lambda t, **f: resolve(t)(**sequences_to_python(f))``.
    """
    out = {}
    for key, value in fields.items():
        if isinstance(value, np.ndarray):
            out[key] = array.array(_ARRAY_TYPECODES[value.dtype.newbyteorder('=')],
                                   np.ascontiguousarray(value, dtype=value.dtype.newbyteorder('=')).tobytes())
        elif isinstance(value, np.generic):
            out[key] = value.item()
        else:
            out[key] = value
    return out


def build_header(factory: MessageFactory, *, stamp_ns: int, frame_id: str = '') -> Any:
    """``std_msgs/Header`` for ``stamp_ns``."""
    sec, nanosec = ns_to_stamp(stamp_ns)
    return factory('std_msgs/msg/Header', stamp=factory('builtin_interfaces/msg/Time', sec=sec, nanosec=nanosec),
                   frame_id=str(frame_id))


def build_image(factory: MessageFactory, image: np.ndarray, *, encoding: str, stamp_ns: int,
                frame_id: str = '', row_padding: int = 0, bigendian: bool = False) -> Any:
    """
    ``sensor_msgs/Image`` from an array in this module's output convention.

    ``image``: ``(H, W, 3)`` uint8 RGB for rgb8/bgr8 (reordered for bgr8), ``(H, W, 4)``
    for rgba8/bgra8 (RGBA order), ``(H, W)`` uint8 for mono8, uint16 for mono16/16UC1
    (a float array for 16UC1 is taken as metres and rounded to mm), float32 metres for
    32FC1. ``row_padding`` bytes are appended to every row (``step`` grows), and
    ``bigendian`` writes multi-byte data big-endian, both to exercise readers.
    """
    key = encoding.strip().lower()
    spec = IMAGE_ENCODINGS.get(key)
    if spec is None:
        raise ValueError(f'cannot build an Image with encoding {encoding!r}; expected one of {sorted(IMAGE_ENCODINGS)}')
    a = np.asarray(image)
    if key == '16uc1' and a.dtype.kind == 'f':
        a = np.clip(np.rint(np.nan_to_num(a, nan=0.0) * 1000.0), 0, 65535).astype(np.uint16)
    expected_ndim = 3 if spec.channels > 1 else 2
    if a.ndim != expected_ndim or (spec.channels > 1 and a.shape[2] != spec.channels):
        raise ValueError(f'{encoding} needs an array of shape '
                         f'(H, W{", %d" % spec.channels if spec.channels > 1 else ""}), got {a.shape}')
    if key in ('bgr8', 'bgra8'):
        a = np.concatenate([a[..., 2::-1], a[..., 3:]], axis=-1)
    itemsize = int(spec.dtype[1:])
    dtype = np.dtype(('>' if bigendian else '<') + spec.dtype) if itemsize > 1 else np.dtype(spec.dtype)
    a = np.ascontiguousarray(a, dtype=dtype)
    height, width = a.shape[:2]
    row = a.reshape(height, -1).view(np.uint8)              # (H, W * C * itemsize)
    if row_padding:
        row = np.concatenate([row, np.zeros((height, row_padding), np.uint8)], axis=1)
    return factory('sensor_msgs/msg/Image', header=build_header(factory, stamp_ns=stamp_ns, frame_id=frame_id),
                   height=int(height), width=int(width), encoding=encoding,
                   is_bigendian=int(bool(bigendian) and itemsize > 1), step=int(row.shape[1]),
                   data=np.ascontiguousarray(row).reshape(-1))


def build_compressed_image(factory: MessageFactory, image: np.ndarray, *, format: str = 'png',  # noqa: A002
                           stamp_ns: int, frame_id: str = '', jpeg_quality: int = 90) -> Any:
    """``sensor_msgs/CompressedImage`` (png or jpeg) from ``(H, W, 3)`` uint8 RGB or ``(H, W)``."""
    import cv2
    a = np.asarray(image)
    if a.ndim == 3:
        a = np.ascontiguousarray(a[..., ::-1])              # RGB -> BGR for cv2
    ext = {'png': '.png', 'jpeg': '.jpg', 'jpg': '.jpg'}.get(format.lower())
    if ext is None:
        raise ValueError(f'format must be png or jpeg, got {format!r}')
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if ext == '.jpg' else []
    ok, buf = cv2.imencode(ext, a, params)
    if not ok:
        raise ValueError(f'cv2 could not encode a {a.shape} {a.dtype} image as {format}')
    return factory('sensor_msgs/msg/CompressedImage',
                   header=build_header(factory, stamp_ns=stamp_ns, frame_id=frame_id),
                   format='jpeg' if ext == '.jpg' else 'png', data=buf.reshape(-1).astype(np.uint8))


def _encode_samples(samples: np.ndarray, sample_format: str) -> np.ndarray:
    """``(frames, channels)`` float in [-1, 1] (or integers of the target width) -> bytes (uint8)."""
    spec = AUDIO_SAMPLE_FORMATS[sample_format]
    x = np.asarray(samples)
    if spec.dtype.startswith('S24'):
        ints = (x.astype(np.int32) if x.dtype.kind in 'iu'
                else np.clip(np.rint(x * 2 ** 23), -2 ** 23, 2 ** 23 - 1).astype(np.int32))
        b = ints.reshape(-1, 1).view(np.uint8).reshape(-1, 4)[:, :3] if not _NATIVE_BIG else None
        if b is None:
            raise NotImplementedError('S24 encoding on a big-endian host')
        b = b[:, ::-1] if spec.dtype.endswith('>') else b
        return np.ascontiguousarray(b).reshape(-1)
    dtype = np.dtype(spec.dtype)
    if dtype.kind == 'f':
        values = x.astype(dtype)
    elif x.dtype.kind in 'iu':
        values = x.astype(dtype)
    else:
        info = np.iinfo(dtype)
        values = np.clip(np.rint(x / spec.scale + spec.offset), info.min, info.max).astype(dtype)
    return np.ascontiguousarray(values).reshape(-1).view(np.uint8)


def build_audio(factory: MessageFactory, samples: np.ndarray, *, sample_rate: int, stamp_ns: int,
                sample_format: str = 'S16LE', frame_id: str = '') -> tuple[Any, Any]:
    """
    ``(AudioDataStamped, AudioInfo)`` for ``samples`` ``(frames, channels)`` (or ``(frames,)``).

    Float samples are in [-1, 1] and quantised to ``sample_format``; integer samples are
    written as they are. ``stamp_ns`` is the time of the first sample.
    """
    x = np.asarray(samples)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] < 1:
        raise ValueError(f'samples must be (frames, channels), got {np.shape(samples)}')
    fmt = sample_format.upper()
    if fmt not in AUDIO_SAMPLE_FORMATS:
        raise ValueError(f'sample_format {sample_format!r} is not one of {sorted(AUDIO_SAMPLE_FORMATS)}')
    data = _encode_samples(x, fmt)
    width = 3 if fmt.startswith('S24') else np.dtype(AUDIO_SAMPLE_FORMATS[fmt].dtype).itemsize
    stamped = factory('audio_common_msgs/msg/AudioDataStamped',
                      header=build_header(factory, stamp_ns=stamp_ns, frame_id=frame_id),
                      audio=factory('audio_common_msgs/msg/AudioData', data=data))
    info = factory('audio_common_msgs/msg/AudioInfo', channels=int(x.shape[1]), sample_rate=int(sample_rate),
                   sample_format=fmt, bitrate=int(sample_rate * x.shape[1] * width * 8), coding_format='wave')
    return stamped, info


def build_naoqi_audio(factory: MessageFactory, samples: np.ndarray, *, frequency: int, stamp_ns: int,
                      channel_map: Sequence[int] | None = None, frame_id: str = '') -> Any:
    """``naoqi_bridge_msgs/AudioBuffer`` from ``(frames, channels)`` int16 or float in [-1, 1]."""
    x = np.asarray(samples)
    if x.ndim == 1:
        x = x[:, None]
    if x.dtype.kind == 'f':
        x = np.clip(np.rint(x * 32768), -32768, 32767)
    x = x.astype(np.int16)
    cmap = np.asarray(channel_map if channel_map is not None else range(x.shape[1]), dtype=np.uint8)
    return factory('naoqi_bridge_msgs/msg/AudioBuffer',
                   header=build_header(factory, stamp_ns=stamp_ns, frame_id=frame_id),
                   frequency=int(frequency), channel_map=cmap, data=np.ascontiguousarray(x).reshape(-1))


def build_pose_array(factory: MessageFactory, joints: np.ndarray, *, stamp_ns: int, frame_id: str = '') -> Any:
    """``geometry_msgs/PoseArray`` with joint ``i`` in ``poses[i].position`` (identity orientation)."""
    j = np.asarray(joints, dtype=np.float64)
    if j.ndim != 2 or j.shape[1] != 3:
        raise ValueError(f'joints must be (J, 3), got {j.shape}')
    poses = [factory('geometry_msgs/msg/Pose',
                     position=factory('geometry_msgs/msg/Point', x=float(x), y=float(y), z=float(z)),
                     orientation=factory('geometry_msgs/msg/Quaternion', x=0.0, y=0.0, z=0.0, w=1.0))
             for x, y, z in j]
    return factory('geometry_msgs/msg/PoseArray', header=build_header(factory, stamp_ns=stamp_ns, frame_id=frame_id),
                   poses=poses)


def build_skeleton2d(factory: MessageFactory, points: np.ndarray, *, stamp_ns: int, frame_id: str = '') -> Any:
    """``hri_msgs/Skeleton2D`` from ``(18, 3)`` rows ``(x, y, c)``."""
    p = np.asarray(points, dtype=np.float64)
    if p.shape != (18, 3):
        raise ValueError(f'points must be (18, 3), got {p.shape}')
    kps = [factory('hri_msgs/msg/NormalizedPointOfInterest2D', x=float(x), y=float(y), c=float(c)) for x, y, c in p]
    return factory('hri_msgs/msg/Skeleton2D', header=build_header(factory, stamp_ns=stamp_ns, frame_id=frame_id),
                   skeleton=kps)


def _ranked(labels: Sequence[str], scores: Sequence[float], top_k: int | None) -> list[tuple[str, float]]:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(labels) != s.size:
        raise ValueError(f'{len(labels)} labels but {s.size} scores')
    order = np.argsort(-s, kind='stable')
    if top_k is not None:
        order = order[:top_k]
    return [(str(labels[i]), float(s[i])) for i in order]


def build_classification(factory: MessageFactory, *, labels: Sequence[str], scores: Sequence[float],
                         stamp_ns: int, frame_id: str = '', top_k: int | None = None) -> Any:
    """
    Build a ``vision_msgs/Classification``: one ``ObjectHypothesis(class_id=label, score)`` per label.

    Best first (``top_k`` keeps the best k). The stamp should be the source
    data's header stamp, as the vision_msgs README asks.
    """
    results = [factory('vision_msgs/msg/ObjectHypothesis', class_id=label, score=score)
               for label, score in _ranked(labels, scores, top_k)]
    return factory('vision_msgs/msg/Classification',
                   header=build_header(factory, stamp_ns=stamp_ns, frame_id=frame_id), results=results)


def build_label_info(factory: MessageFactory, *, labels: Sequence[str], stamp_ns: int, frame_id: str = '',
                     threshold: float = 0.0) -> Any:
    """``vision_msgs/LabelInfo`` mapping class index -> label name (latched beside the results)."""
    class_map = [factory('vision_msgs/msg/VisionClass', class_id=i, class_name=str(name))
                 for i, name in enumerate(labels)]
    return factory('vision_msgs/msg/LabelInfo', header=build_header(factory, stamp_ns=stamp_ns, frame_id=frame_id),
                   class_map=class_map, threshold=float(threshold))


def build_vision_info(factory: MessageFactory, *, method: str, database_location: str, stamp_ns: int,
                      database_version: int = 0, frame_id: str = '') -> Any:
    """``vision_msgs/VisionInfo`` naming the pipeline (e.g. the bundle) and where its labels live."""
    return factory('vision_msgs/msg/VisionInfo', header=build_header(factory, stamp_ns=stamp_ns, frame_id=frame_id),
                   method=str(method), database_location=str(database_location),
                   database_version=int(database_version))


def build_expression(factory: MessageFactory, *, expression: str, confidence: float, stamp_ns: int,
                     frame_id: str = '', valence: float = 0.0, arousal: float = 0.0) -> Any:
    """``hri_msgs/Expression`` (categorical; valence/arousal default to 0)."""
    return factory('hri_msgs/msg/Expression', header=build_header(factory, stamp_ns=stamp_ns, frame_id=frame_id),
                   expression=str(expression), valence=float(valence), arousal=float(arousal),
                   confidence=float(confidence))


def build_live_speech(factory: MessageFactory, *, final: str, confidence: float, stamp_ns: int,
                      frame_id: str = '', incremental: str = '', locale: str = '') -> Any:
    """``hri_msgs/LiveSpeech`` carrying a recognised word/label as ``final``."""
    return factory('hri_msgs/msg/LiveSpeech', header=build_header(factory, stamp_ns=stamp_ns, frame_id=frame_id),
                   incremental=str(incremental), final=str(final), confidence=float(confidence), locale=str(locale))


def build_ids_list(factory: MessageFactory, *, ids: Sequence[str], stamp_ns: int, frame_id: str = '') -> Any:
    """``hri_msgs/IdsList``."""
    return factory('hri_msgs/msg/IdsList', header=build_header(factory, stamp_ns=stamp_ns, frame_id=frame_id),
                   ids=[str(i) for i in ids])
