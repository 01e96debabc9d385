"""
HTK parameter files (HTK Book ch. 5.10): the file format AVLetters ships its audio in.

A 12-byte big-endian header (frames, sample period in 100 ns, bytes per frame, parameter
kind with its qualifier bits) then the frames as big-endian float32.  :func:`read_htk`
refuses a truncated or inconsistent file, an unexpected kind or dimension, and
non-finite values, naming the file and what was wrong; :func:`write_htk` writes a file
atomically.  The front end that computes such features lives in
:mod:`centralnet_ros.features.htk`.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
import struct

import numpy as np

__all__ = ['ParmKind', 'HTKFile', 'HTKFormatError', 'read_htk', 'write_htk', 'decode_htk', 'encode_htk']


# ----------------------------------------------------------------- HTK parameter files

_BASE_KINDS = ('WAVEFORM', 'LPC', 'LPREFC', 'LPCEPSTRA', 'LPDELCEP', 'IREFC', 'MFCC', 'FBANK',
               'MELSPEC', 'USER', 'DISCRETE', 'PLP', 'ANON')
_QUALIFIERS = {'E': 0o100, 'N': 0o200, 'D': 0o400, 'A': 0o1000, 'C': 0o2000, 'Z': 0o4000,
               'K': 0o10000, '0': 0o20000, 'V': 0o40000, 'T': 0o100000}
_QUALIFIER_ORDER = 'ENDACZK0VT'
_BASE_MASK = 0o77


class HTKFormatError(ValueError):
    """An HTK parameter file is truncated, inconsistent or of an unsupported kind."""


@dataclasses.dataclass(frozen=True)
class ParmKind:
    """HTK parameter kind: a base kind (6 bits) plus qualifier bits (_E _N _D _A _C _Z _K _0 _V _T)."""

    base: int
    qualifiers: frozenset = frozenset()

    @classmethod
    def from_code(cls, code: int) -> 'ParmKind':
        code = int(code) & 0xFFFF
        base = code & _BASE_MASK
        if base >= len(_BASE_KINDS):
            raise ValueError(f'unknown HTK base parameter kind {base} (code {code})')
        unknown = code & ~_BASE_MASK & ~sum(_QUALIFIERS.values())
        if unknown:
            raise ValueError(f'unknown HTK qualifier bits {unknown:#o} in parameter kind {code}')
        return cls(base, frozenset(q for q, bit in _QUALIFIERS.items() if code & bit))

    @classmethod
    def parse(cls, name: str) -> 'ParmKind':
        parts = name.upper().split('_')
        if parts[0] not in _BASE_KINDS:
            raise ValueError(f'unknown HTK base parameter kind {parts[0]!r} in {name!r}; '
                             f'known: {", ".join(_BASE_KINDS)}')
        quals = parts[1:]
        for q in quals:
            if q not in _QUALIFIERS:
                raise ValueError(f'unknown HTK qualifier _{q} in {name!r}; known: '
                                 f'{" ".join("_" + k for k in _QUALIFIER_ORDER)}')
        return cls(_BASE_KINDS.index(parts[0]), frozenset(quals))

    @property
    def code(self) -> int:
        return self.base | sum(_QUALIFIERS[q] for q in self.qualifiers)

    @property
    def base_name(self) -> str:
        return _BASE_KINDS[self.base]

    @property
    def name(self) -> str:
        return self.base_name + ''.join('_' + q for q in _QUALIFIER_ORDER if q in self.qualifiers)

    def __str__(self) -> str:
        return self.name


@dataclasses.dataclass(frozen=True)
class HTKFile:
    """A decoded HTK parameter file."""

    features: np.ndarray        # (T, D) float32
    sample_period: int          # frame period in 100 ns units (200000 = 20 ms)
    parm_kind: ParmKind

    @property
    def frame_period_s(self) -> float:
        return self.sample_period * 1e-7


def decode_htk(data: bytes, *, name: str = '<bytes>', expected_kind: str | None = None,
               expected_dim: int | None = None) -> HTKFile:
    """
    Decode HTK parameter-file bytes.

    Header ``>iihh`` (frames, period in 100 ns, bytes per frame, kind), then big-endian
    float32 frames.  ``name`` appears in errors.
    """
    if len(data) < 12:
        raise HTKFormatError(f'{name}: {len(data)} bytes is shorter than the 12-byte HTK header')
    n_samples, period, samp_size, kind_code = struct.unpack('>iihh', data[:12])
    kind_code &= 0xFFFF
    try:
        kind = ParmKind.from_code(kind_code)
    except ValueError as exc:
        raise HTKFormatError(f'{name}: header parameter kind {kind_code} is not valid HTK: {exc}') from None
    if n_samples < 0:
        raise HTKFormatError(f'{name}: header says {n_samples} frames (negative)')
    if period <= 0:
        raise HTKFormatError(f'{name}: header sample period {period} x 100 ns is not positive')
    if samp_size <= 0:
        raise HTKFormatError(f'{name}: header says {samp_size} bytes per frame (must be positive)')
    if 'C' in kind.qualifiers or kind.base in (_BASE_KINDS.index('DISCRETE'), _BASE_KINDS.index('WAVEFORM')):
        raise HTKFormatError(f'{name}: parameter kind {kind.name} is not supported (only uncompressed '
                             f'float32 features such as MFCC_E_D)')
    body = len(data) - 12
    crc = 2 if 'K' in kind.qualifiers else 0
    expected_body = n_samples * samp_size + crc
    if body != expected_body:
        what = 'truncated' if body < expected_body else 'has trailing bytes'
        raise HTKFormatError(f'{name}: {what}: header says {n_samples} frames of {samp_size} bytes '
                             f'({expected_body} bytes{" incl. CRC" if crc else ""}) but the body has {body} bytes')
    if samp_size % 4:
        raise HTKFormatError(f'{name}: {samp_size} bytes per frame is not a whole number of float32 values')
    dim = samp_size // 4
    if expected_kind is not None and kind != ParmKind.parse(expected_kind):
        raise HTKFormatError(f'{name}: parameter kind is {kind.name} ({kind.code}), expected {expected_kind}')
    if expected_dim is not None and dim != expected_dim:
        raise HTKFormatError(f'{name}: {dim} coefficients per frame, expected {expected_dim}')
    if kind.qualifiers & {'D', 'A', 'T'} and dim % (1 + len(kind.qualifiers & {'D', 'A', 'T'})):
        raise HTKFormatError(f'{name}: {dim} coefficients cannot be split into the static and '
                             f'difference blocks of {kind.name}')
    feats = np.frombuffer(data, dtype='>f4', count=n_samples * dim, offset=12)
    feats = feats.reshape(n_samples, dim).astype(np.float32)
    if not np.all(np.isfinite(feats)):
        bad = int(np.argwhere(~np.isfinite(feats))[0, 0])
        raise HTKFormatError(f'{name}: frame {bad} contains NaN or infinite values')
    return HTKFile(feats, int(period), kind)


def read_htk(path: str | os.PathLike, *, expected_kind: str | None = None,
             expected_dim: int | None = None) -> HTKFile:
    """
    Read an HTK parameter file.

    A truncated or inconsistent file raises :class:`HTKFormatError` naming the file
    and the inconsistency.
    """
    path = Path(path)
    return decode_htk(path.read_bytes(), name=str(path), expected_kind=expected_kind,
                      expected_dim=expected_dim)


def encode_htk(features: np.ndarray, *, sample_period: int = 200000,
               parm_kind: str | ParmKind = 'MFCC_E_D') -> bytes:
    """``(T, D)`` features -> HTK parameter-file bytes (big-endian float32)."""
    feats = np.asarray(features, dtype=np.float32)
    if feats.ndim != 2:
        raise ValueError(f'expected features of shape (T, D), got {feats.shape}')
    kind = parm_kind if isinstance(parm_kind, ParmKind) else ParmKind.parse(parm_kind)
    if 'C' in kind.qualifiers or 'K' in kind.qualifiers:
        raise ValueError(f'writing {kind.name} (compressed / CRC) is not supported')
    samp_size = 4 * feats.shape[1]
    if samp_size > 32767:
        raise ValueError(f'{feats.shape[1]} coefficients per frame do not fit an HTK header')
    if not 0 < int(sample_period) < 2 ** 31:
        raise ValueError(f'sample_period {sample_period} (100 ns units) out of range')
    kind_code = kind.code if kind.code < 0x8000 else kind.code - 0x10000
    header = struct.pack('>iihh', feats.shape[0], int(sample_period), samp_size, kind_code)
    return header + feats.astype('>f4').tobytes()


def write_htk(path: str | os.PathLike, features: np.ndarray, *, sample_period: int = 200000,
              parm_kind: str | ParmKind = 'MFCC_E_D') -> Path:
    """Write an HTK parameter file atomically (temporary file + rename)."""
    from centralnet_ros.config import atomic_write_bytes  # features/ stays free of package-level imports
    return atomic_write_bytes(path, encode_htk(features, sample_period=sample_period, parm_kind=parm_kind))
