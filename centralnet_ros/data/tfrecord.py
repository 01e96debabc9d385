"""
TFRecord files of ``tf.train.SequenceExample`` protos, read (and written) without TensorFlow.

A TFRecord file is a sequence of records::

    uint64 length (little-endian) | uint32 masked CRC-32C of length | data | uint32 masked CRC-32C of data

and each record here is a serialised ``SequenceExample`` (``context``: a map of name ->
``Feature``; ``feature_lists``: a map of name -> list of ``Feature``), where a ``Feature`` is
one of ``bytes_list`` (1), ``float_list`` (2) or ``int64_list`` (3).  Only the protobuf wire
format those messages use is decoded: varints, length-delimited fields, packed and unpacked
repeated scalars.  Every CRC is checked, so a truncated or corrupted download is found.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
import struct
from typing import BinaryIO, Iterator, Union

import numpy as np

FeatureValue = Union[list, np.ndarray]   # list[bytes] | float32 array | int64 array

MAX_RECORD_BYTES = 64 * 1024 * 1024      # a larger length field means a corrupted file


class TFRecordError(ValueError):
    """A TFRecord file or the protobuf inside it is malformed."""


# --------------------------------------------------------------------------- CRC-32C

def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# --------------------------------------------------------------------------- framing

def iter_records(path: str | Path, *, check_crc: bool = True) -> Iterator[bytes]:
    """Yield the payload of every record in a TFRecord file; raise :class:`TFRecordError` naming the offset."""
    path = Path(path)
    with open(path, 'rb') as f:
        offset = 0
        while True:
            header = f.read(12)
            if not header:
                return
            if len(header) < 12:
                raise TFRecordError(f'{path}: truncated record header at byte {offset}')
            length, length_crc = struct.unpack('<QI', header)
            if check_crc and masked_crc(header[:8]) != length_crc:
                raise TFRecordError(f'{path}: bad length checksum at byte {offset}')
            if length > MAX_RECORD_BYTES:
                raise TFRecordError(f'{path}: record at byte {offset} claims {length} bytes')
            data = f.read(length)
            footer = f.read(4)
            if len(data) < length or len(footer) < 4:
                raise TFRecordError(f'{path}: truncated record at byte {offset}')
            if check_crc and masked_crc(data) != struct.unpack('<I', footer)[0]:
                raise TFRecordError(f'{path}: bad data checksum in the record at byte {offset}')
            yield data
            offset += 16 + length


def write_records(f: BinaryIO, payloads) -> None:
    """Write records in TFRecord framing (used to make files in the documented layout)."""
    for data in payloads:
        length = struct.pack('<Q', len(data))
        f.write(length + struct.pack('<I', masked_crc(length)) + data + struct.pack('<I', masked_crc(data)))


# --------------------------------------------------------------------------- protobuf wire format

def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise TFRecordError('truncated varint')
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise TFRecordError('varint longer than 10 bytes')


def _fields(buf: bytes) -> Iterator[tuple[int, int, object]]:
    """Yield ``(field number, wire type, value)``: int for varints, bytes otherwise."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + size], pos + size
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise TFRecordError(f'unsupported protobuf wire type {wire} (field {number})')
        if pos > len(buf):
            raise TFRecordError(f'field {number} runs past the end of its message')
        yield number, wire, value


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def decode_feature(buf: bytes) -> FeatureValue:
    for number, _, value in _fields(buf):
        items = list(_fields(value))
        if number == 1:
            return [bytes(v) for n, w, v in items if n == 1 and w == 2]
        if number == 2:
            parts = [np.frombuffer(v, '<f4') for n, w, v in items if n == 1]   # packed (wire 2) or single (wire 5)
            return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)
        if number == 3:
            out = []
            for n, w, v in items:
                if n != 1:
                    continue
                if w == 0:
                    out.append(_signed64(v))
                else:
                    pos = 0
                    while pos < len(v):
                        x, pos = _varint(v, pos)
                        out.append(_signed64(x))
            return np.asarray(out, np.int64)
    return []


def _map(buf: bytes, decode_value) -> dict[str, object]:
    out = {}
    for number, _, entry in _fields(buf):
        if number != 1:
            continue
        key, value = None, b''
        for n, _, v in _fields(entry):
            if n == 1:
                key = bytes(v).decode('utf-8', errors='replace')
            elif n == 2:
                value = v
        if key is None:
            raise TFRecordError('map entry without a key')
        out[key] = decode_value(value)
    return out


@dataclasses.dataclass
class SequenceExample:
    context: dict[str, FeatureValue]
    feature_lists: dict[str, list[FeatureValue]]


def decode_sequence_example(buf: bytes) -> SequenceExample:
    context, lists = {}, {}
    for number, _, value in _fields(buf):
        if number == 1:
            context = _map(value, decode_feature)
        elif number == 2:
            lists = _map(value, lambda b: [decode_feature(v) for n, _, v in _fields(b) if n == 1])
    return SequenceExample(context, lists)


def _key(number: int, wire: int) -> bytes:
    return _encode_varint(number << 3 | wire)


def _encode_varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _delimited(number: int, payload: bytes) -> bytes:
    return _key(number, 2) + _encode_varint(len(payload)) + payload


def encode_feature(value) -> bytes:
    """Encode ``list[bytes]`` as bytes_list, a float array as float_list, an int array as int64_list."""
    if isinstance(value, (list, tuple)) and all(isinstance(v, bytes) for v in value):
        return _delimited(1, b''.join(_delimited(1, v) for v in value))
    arr = np.asarray(value)
    if arr.dtype.kind == 'f':
        return _delimited(2, _delimited(1, arr.astype('<f4').tobytes()))
    return _delimited(3, _delimited(1, b''.join(_encode_varint(int(v)) for v in arr.ravel())))


def encode_sequence_example(context: dict, feature_lists: dict) -> bytes:
    ctx = b''.join(_delimited(1, _delimited(1, k.encode()) + _delimited(2, encode_feature(v)))
                   for k, v in context.items())
    fls = b''.join(_delimited(1, _delimited(1, k.encode())
                              + _delimited(2, b''.join(_delimited(1, encode_feature(f)) for f in feats)))
                   for k, feats in feature_lists.items())
    return _delimited(1, ctx) + _delimited(2, fls)
