"""Audio features: resampling, spectrogram, log-mel, MFCC (torchaudio's names)."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy import signal


def resample_audio(waveform: np.ndarray, *, orig_sample_rate: int, new_sample_rate: int) -> np.ndarray:
    """Band-limited polyphase resampling along the last axis (float32 out)."""
    if orig_sample_rate <= 0 or new_sample_rate <= 0:
        raise ValueError(f'sample rates must be positive, got {orig_sample_rate} -> {new_sample_rate}')
    x = np.asarray(waveform, dtype=np.float32)
    if orig_sample_rate == new_sample_rate:
        return x
    ratio = Fraction(new_sample_rate, orig_sample_rate)
    return signal.resample_poly(x, ratio.numerator, ratio.denominator, axis=-1).astype(np.float32)
