"""Field access shared by the converters: checked reads, typed buffers, :class:`MalformedMessage`, stamps."""
from __future__ import annotations

import array
from collections.abc import Mapping, Sequence
import sys
from typing import Any

import numpy as np

MALFORMED_KINDS = ('encoding', 'size', 'empty', 'nan', 'field', 'decode', 'limit')
"""Kinds of :class:`MalformedMessage`:

- ``encoding``: unsupported image encoding / audio sample or coding format;
- ``size``: data length does not match the declared dimensions (or ``step`` too small,
  wrong number of joints);
- ``empty``: a zero-sized image, no audio samples, no joints;
- ``nan``: NaN or infinity where only finite values make sense (audio, joints);
- ``field``: a field is missing, of the wrong type or out of range (negative width,
  zero sample rate, ``nanosec`` >= 1e9, ...);
- ``decode``: compressed data that cv2 cannot decode;
- ``limit``: beyond a configured bound (a compressed image declaring more pixels than
  allowed, a sample rate outside the sane range).
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
