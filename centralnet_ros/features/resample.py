"""
Fourier resampling of a sequence to a fixed number of frames.

The internship report (Hsieh 2017) brings every AVLetters sequence to a fixed length
by Fourier resampling: 24 frames for the MFCC sequence, 12 for the lip video.  This
is :func:`scipy.signal.resample`'s method: the sequence is taken as one period of a
band-limited periodic signal, its spectrum is truncated or zero-padded to the new
length, and it is transformed back.  Consequences that the tests check:

* a constant sequence stays the same constant;
* a sinusoid with fewer than ``min(n, num) / 2`` cycles over the sequence is sampled
  exactly at the new positions;
* the mean over the resampled axis is preserved.

Because the sequence is treated as periodic, the first and last frames leak into each
other (Gibbs ringing at the ends); that is the report's method and is kept on purpose.
"""
from __future__ import annotations

import numpy as np
from scipy import signal

__all__ = ['fourier_resample']


def fourier_resample(x: np.ndarray, num: int, *, axis: int = 0) -> np.ndarray:
    """
    Resample ``x`` to ``num`` samples along ``axis`` with the FFT method.

    Same semantics as ``scipy.signal.resample(x, num, axis=axis)`` (which it calls),
    with input checking and a float result: float32 for float32/integer input of at
    most 16 bits (e.g. uint8 lip frames), float64 otherwise.

    :param x: array with at least one sample along ``axis``, e.g. ``(T, 26)`` MFCC frames
        or ``(T, 60, 80)`` lip frames.
    :param num: number of output samples along ``axis`` (>= 1).
    :param axis: the time axis.
    :return: array with ``x.shape`` except ``num`` along ``axis``.
    """
    x = np.asarray(x)
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 1:
        raise ValueError(f'num must be a positive integer number of frames, got {num!r}')
    if x.ndim == 0:
        raise ValueError('fourier_resample needs an array with at least one axis, got a scalar')
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f'axis {axis} out of range for an array of shape {x.shape}')
    n = x.shape[axis]
    if n < 1:
        raise ValueError(f'cannot resample an empty sequence (shape {x.shape}, axis {axis}) to {num} frames')
    if np.iscomplexobj(x):
        raise ValueError('fourier_resample expects a real-valued sequence')
    if x.dtype.kind in 'biu' and x.dtype.itemsize <= 2 or x.dtype == np.float32:
        work = np.float32
    else:
        work = np.float64
    x = x.astype(np.float64, copy=False)
    if not np.all(np.isfinite(x)):
        raise ValueError('fourier_resample: the sequence contains NaN or infinite values')
    if n == num:
        return x.astype(work, copy=True)
    return signal.resample(x, int(num), axis=axis).astype(work, copy=False)
