"""``sensor_msgs/Image`` and ``CompressedImage`` -> numpy (see the table in :mod:`centralnet_ros.messages`)."""
from __future__ import annotations

import struct
from typing import Any, NamedTuple

import numpy as np

from .fields import (_field, _int_field, _NATIVE_BIG, _readonly, _short, _str_field, _typed_buffer,
                     MalformedMessage)


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


DEFAULT_MAX_PIXELS = 4096 * 4096
"""Most pixels an image may have (or a compressed one declare) (16.7 M: a 4096 x 4096 frame, 50 MB decoded as RGB)."""


def image_to_array(msg: Any, *, depth_in_metres: bool = True,
                   max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """
    ``sensor_msgs/Image`` -> numpy, zero-copy where the encoding allows.

    Returns ``(H, W, 3)`` uint8 RGB for colour encodings, ``(H, W)`` for single-channel
    ones (see the module table). ``16UC1`` is taken as depth in millimetres and
    returned as float32 metres, or as the uint16 millimetre view with
    ``depth_in_metres=False``. More than ``max_pixels`` pixels (None: no limit) is
    ``limit``. Raises :class:`MalformedMessage`.
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
    if max_pixels is not None and height * width > max_pixels:
        raise MalformedMessage('limit', f'Image is {width}x{height} = {width * height:,} pixels; '
                               f'at most {max_pixels:,} allowed (max_pixels)')
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


def _be16(b: bytes, i: int) -> int:
    return (b[i] << 8) | b[i + 1]


def _jpeg_size(b: bytes) -> tuple[int, int] | None:
    """(width, height) from the first SOF segment of a JPEG, None when none precedes the scan."""
    sof = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
    i = 2
    while i + 9 <= len(b):
        if b[i] != 0xFF:
            return None
        marker = b[i + 1]
        if marker == 0xFF:                                  # fill byte
            i += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        if marker in sof:
            return _be16(b, i + 7), _be16(b, i + 5)
        if marker in (0xDA, 0xD9):                          # scan or end before any frame header
            return None
        i += 2 + _be16(b, i + 2)
    return None


_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}


def _check_png_header(b: bytes) -> None:
    """
    Refuse a PNG whose IHDR chunk is inconsistent (checksum, bit depth, colour type, methods).

    libpng reports such a header but OpenCV's decoder may go on with it: a fuzzed IHDR
    (``benchmarks/results/fuzz_inputs.md``) took 30-60 s and 3 GB to decode a 64 x 23557 image.
    """
    import zlib
    if zlib.crc32(b[12:29]) != int.from_bytes(b[29:33], 'big'):
        raise MalformedMessage('decode', 'PNG header (IHDR) checksum is wrong: corrupted data')
    depth, colour, compression, filtering, interlace = b[24:29]
    if depth not in _PNG_DEPTHS.get(colour, ()) or compression or filtering or interlace > 1:
        raise MalformedMessage('decode', f'PNG header (IHDR) is invalid: bit depth {depth}, colour type {colour}, '
                               f'methods {compression}/{filtering}/{interlace}')


def compressed_image_size(data: np.ndarray) -> tuple[str, int, int]:
    """
    ``(container, width, height)`` read from the header of PNG, JPEG, BMP or WebP data, without decoding.

    Raises :class:`MalformedMessage` (``decode``) for any other content (cv2 would
    sniff and decode more formats, but their size cannot be checked before decoding)
    and for a header too short to hold the size.
    """
    b = data[:1 << 16].tobytes()
    short = MalformedMessage('decode', f'CompressedImage data ({data.size} bytes) is too short for its image header')
    if b.startswith(b'\x89PNG\r\n\x1a\n'):
        if len(b) < 33 or b[12:16] != b'IHDR':
            raise short
        _check_png_header(b)
        return 'png', int.from_bytes(b[16:20], 'big'), int.from_bytes(b[20:24], 'big')
    if b.startswith(b'\xff\xd8'):
        size = _jpeg_size(b)
        if size is None:
            raise MalformedMessage('decode', 'JPEG data has no frame header (SOF) in its first 64 KiB')
        return ('jpeg', *size)
    if b.startswith(b'BM'):
        if len(b) < 26:
            raise short
        if int.from_bytes(b[14:18], 'little') == 12:          # BITMAPCOREHEADER
            return 'bmp', int.from_bytes(b[18:20], 'little'), int.from_bytes(b[20:22], 'little')
        return ('bmp', abs(int.from_bytes(b[18:22], 'little', signed=True)),
                abs(int.from_bytes(b[22:26], 'little', signed=True)))
    if b.startswith(b'RIFF') and b[8:12] == b'WEBP':
        if len(b) < 30:
            raise short
        chunk = b[12:16]
        if chunk == b'VP8 ':
            return 'webp', int.from_bytes(b[26:28], 'little') & 0x3FFF, int.from_bytes(b[28:30], 'little') & 0x3FFF
        if chunk == b'VP8L':
            bits = int.from_bytes(b[21:25], 'little')
            return 'webp', (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if chunk == b'VP8X':
            return 'webp', int.from_bytes(b[24:27], 'little') + 1, int.from_bytes(b[27:30], 'little') + 1
        raise MalformedMessage('decode', f'WebP data with an unknown first chunk {chunk!r}')
    raise MalformedMessage('decode', f'CompressedImage data is not PNG, JPEG, BMP or WebP (starts with {b[:8]!r})')


def _check_pixels(data: np.ndarray, max_pixels: int | None) -> None:
    """Refuse data whose header declares more than ``max_pixels`` pixels (before anything is decoded)."""
    container, width, height = compressed_image_size(data)
    if width == 0 or height == 0:
        raise MalformedMessage('empty', f'CompressedImage {container} header declares {width}x{height} pixels')
    if max_pixels is not None and width * height > max_pixels:
        raise MalformedMessage('limit', f'CompressedImage {container} header declares {width}x{height} = '
                               f'{width * height:,} pixels; at most {max_pixels:,} allowed (max_pixels)')


def compressed_image_to_array(msg: Any, *, depth_in_metres: bool = True,
                              max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """
    ``sensor_msgs/CompressedImage`` -> numpy via ``cv2.imdecode``.

    ``format`` as written by image_transport: ``'jpeg'``, ``'png'``, ``'rgb8; jpeg
    compressed bgr8'``, ``'16UC1; compressedDepth png'``, ``'32FC1; compressedDepth png'``.
    Colour images come back ``(H, W, 3)`` uint8 RGB, grey ones ``(H, W)`` (uint8 or
    uint16), compressedDepth as float32 metres (or uint16 mm with
    ``depth_in_metres=False`` for 16UC1). The size in the data's header is read first:
    content other than PNG, JPEG, BMP or WebP, or declaring more than ``max_pixels``
    pixels (None: no limit), is refused before decoding (a few hundred bytes can declare
    a 30000 x 30000 image). Raises :class:`MalformedMessage`.
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
        if data.size > 12:
            _check_pixels(data[12:], max_pixels)
        return _depth_from_png(data, fmt, depth_in_metres=depth_in_metres)
    known = ('jpeg', 'jpg', 'png', 'webp', 'bmp')
    if low.strip() and not any(k in low for k in known):
        raise MalformedMessage('encoding', f'CompressedImage format {_short(fmt)} is not supported; '
                               f'expected one naming {known}')
    _check_pixels(data, max_pixels)
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
