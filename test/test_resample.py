"""Fourier resampling (features/resample.py): what survives band-limited resampling."""
from __future__ import annotations

from centralnet_ros.features.resample import fourier_resample
import numpy as np
import pytest
from scipy import signal


@pytest.mark.parametrize('n, num', [(53, 24), (24, 24), (12, 24), (27, 12), (40, 12), (1, 5)])
def test_constant_stays_constant(n, num):
    x = np.full((n, 26), 3.25)
    y = fourier_resample(x, num, axis=0)
    assert y.shape == (num, 26)
    np.testing.assert_allclose(y, 3.25, atol=1e-12)


@pytest.mark.parametrize('n, num', [(53, 24), (24, 53), (27, 12), (12, 31)])
def test_band_limited_sinusoid_survives(n, num):
    k = min(n, num) // 2 - 1                                 # cycles over the sequence, below both Nyquists
    t_in, t_out = np.arange(n) / n, np.arange(num) / num
    x = np.cos(2 * np.pi * k * t_in + 0.3) + 0.5 * np.sin(2 * np.pi * 1 * t_in)
    y = fourier_resample(x, num)
    expected = np.cos(2 * np.pi * k * t_out + 0.3) + 0.5 * np.sin(2 * np.pi * 1 * t_out)
    np.testing.assert_allclose(y, expected, atol=1e-9)


def test_mean_is_preserved_and_matches_scipy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 45, 7))
    y = fourier_resample(x, 24, axis=1)
    assert y.shape == (3, 24, 7) and y.dtype == np.float64
    np.testing.assert_allclose(y.mean(axis=1), x.mean(axis=1), atol=1e-12)
    np.testing.assert_allclose(y, signal.resample(x, 24, axis=1))
    np.testing.assert_allclose(fourier_resample(x, 24, axis=-2), y)


def test_video_frames_axis_and_dtype():
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, size=(27, 60, 80), dtype=np.uint8)
    y = fourier_resample(frames, 12, axis=0)
    assert y.shape == (12, 60, 80) and y.dtype == np.float32
    np.testing.assert_allclose(y.mean(0), frames.astype(np.float64).mean(0), atol=1e-3)
    # equal length is an exact copy, not a view
    same = fourier_resample(frames, 27)
    np.testing.assert_array_equal(same, frames)
    assert not np.shares_memory(same, frames)


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match='positive integer'):
        fourier_resample(np.ones(5), 0)
    with pytest.raises(ValueError, match='empty'):
        fourier_resample(np.ones((0, 3)), 4)
    with pytest.raises(ValueError, match='axis'):
        fourier_resample(np.ones((4, 3)), 4, axis=2)
    with pytest.raises(ValueError, match='NaN'):
        fourier_resample(np.array([1.0, np.nan, 2.0]), 4)
