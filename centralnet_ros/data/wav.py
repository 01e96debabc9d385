"""Read PCM wav files (the stdlib ``wave`` module), checking them against their own header."""
from __future__ import annotations

from pathlib import Path
from typing import Literal
import wave

import numpy as np

_DECODE = {1: (np.uint8, 128.0, 128.0), 2: ('<i2', 0.0, 32768.0), 4: ('<i4', 0.0, 2147483648.0)}


def read_pcm_wav(path: str | Path, *, sample_rate: int | None = None,
                 channels: Literal['mono', 'average'] = 'mono',
                 bits: tuple[int, ...] = (16,)) -> tuple[np.ndarray, int]:
    """
    Return a PCM wav as float32 ``(time,)`` in [-1, 1) and its sample rate.

    :param sample_rate: when given, a file at another rate is an error.
    :param channels: ``'mono'`` refuses multi-channel files; ``'average'`` averages them.
    :param bits: the accepted sample widths (8, 16, 32).
    Any mismatch, a truncated or empty body, or an unreadable file raises ValueError naming
    the file and what was expected.
    """
    path = Path(path)
    try:
        with wave.open(str(path), 'rb') as wav:
            params = wav.getparams()
            raw = wav.readframes(params.nframes)
    except (wave.Error, EOFError) as exc:
        raise ValueError(f'{path}: not a readable PCM wav file ({exc})') from exc
    if sample_rate is not None and params.framerate != sample_rate:
        raise ValueError(f'{path}: sample rate {params.framerate} Hz, expected {sample_rate} Hz')
    if channels == 'mono' and params.nchannels != 1:
        raise ValueError(f'{path}: {params.nchannels} channels, expected mono')
    width = params.sampwidth
    if 8 * width not in bits or width not in _DECODE:
        wanted = ', '.join(f'{b}-bit' for b in bits)
        raise ValueError(f'{path}: {8 * width}-bit samples, expected {wanted} PCM')
    expected = width * params.nchannels * params.nframes
    if len(raw) != expected or params.nframes == 0:
        raise ValueError(f'{path}: truncated or empty: header says {params.nframes} frames '
                         f'({expected} bytes), file holds {len(raw)} bytes')
    dtype, offset, scale = _DECODE[width]
    x = (np.frombuffer(raw, dtype).astype(np.float32) - offset) / scale
    return x.reshape(-1, params.nchannels).mean(axis=1), int(params.framerate)
