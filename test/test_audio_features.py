"""
Tests of features/audio.py.

STFT against torch.stft, mel filterbank properties, MFCC, noise, and streaming in
chunks equal to processing at once (on synthetic and real FSDD audio).
"""
from __future__ import annotations

from centralnet_ros import paths
from centralnet_ros.features import audio as A
import numpy as np
import pytest
import torch

FSDD = paths.data_root() / 'fsdd'


def _torch_power(x, *, n_fft, hop_length, win_length, center):
    win = torch.hann_window(win_length or n_fft, dtype=torch.float64)
    spec = torch.stft(torch.from_numpy(x).double(), n_fft, hop_length, win_length=win_length, window=win,
                      center=center, pad_mode='reflect', return_complex=True)
    return spec.abs().numpy() ** 2


@pytest.mark.parametrize('center', [False, True])
@pytest.mark.parametrize('n_fft,hop_length,win_length', [(512, 160, None), (256, 100, 200), (400, 400, None)])
def test_spectrogram_matches_torch_stft(center, n_fft, hop_length, win_length):
    x = np.random.default_rng(0).standard_normal(4001).astype(np.float32)
    ours = A.spectrogram(x, n_fft=n_fft, hop_length=hop_length, win_length=win_length, center=center)
    ref = _torch_power(x, n_fft=n_fft, hop_length=hop_length, win_length=win_length, center=center)
    assert ours.shape == ref.shape == (n_fft // 2 + 1, A.num_frames(4001, n_fft=n_fft, hop_length=hop_length,
                                                                    center=center))
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4 * ref.max())
    mag = A.spectrogram(x, n_fft=n_fft, hop_length=hop_length, win_length=win_length, center=center, power=1.0)
    np.testing.assert_allclose(mag ** 2, ours, rtol=1e-4, atol=1e-6 * ref.max())


def test_frames_are_strided_windows_and_batch_axes_are_kept():
    x = np.arange(20.0)
    frames = A.stft_frames(x, n_fft=6, hop_length=4)
    assert frames.shape == (4, 6)
    np.testing.assert_array_equal(frames[2], x[8:14])
    assert A.stft_frames(x[:5], n_fft=6, hop_length=4).shape == (0, 6)
    batch = np.stack([x, -x, 2 * x])                                            # (3, 20)
    spec = A.spectrogram(batch, n_fft=8, hop_length=4)
    assert spec.shape == (3, 5, 4)
    np.testing.assert_allclose(spec[1], spec[0], rtol=1e-5)
    np.testing.assert_allclose(spec[2], 4 * spec[0], rtol=1e-5)


@pytest.mark.parametrize('mel_scale', ['htk', 'slaney'])
def test_mel_scale_round_trip_and_anchors(mel_scale):
    f = np.linspace(0, 8000, 101)
    np.testing.assert_allclose(A.mel_to_hz(A.hz_to_mel(f, mel_scale=mel_scale), mel_scale=mel_scale), f,
                               atol=1e-6)
    assert np.all(np.diff(A.hz_to_mel(f, mel_scale=mel_scale)) > 0)
    anchor = {'htk': 1000.0, 'slaney': 15.0}[mel_scale]                          # mel(1 kHz) of each scale
    assert A.hz_to_mel(1000.0, mel_scale=mel_scale) == pytest.approx(anchor, rel=1e-3)


def test_mel_filterbank_triangles_partition_unity_and_slaney_area():
    sr, n_fft, n_mels = 8000, 512, 24
    fb = A.mel_filterbank(sample_rate=sr, n_fft=n_fft, n_mels=n_mels)
    assert fb.shape == (n_fft // 2 + 1, n_mels) and fb.dtype == np.float32
    assert fb.min() >= 0 and fb.max() <= 1 + 1e-6
    assert np.all((fb > 0).sum(axis=1) <= 2)                                   # a bin feeds at most 2 filters
    peaks = fb.argmax(axis=0)
    assert np.all(np.diff(peaks) > 0)                                          # centres rise with m
    freqs = np.linspace(0, sr // 2, n_fft // 2 + 1)
    centres = A.mel_to_hz(np.linspace(0, A.hz_to_mel(sr / 2), n_mels + 2))[1:-1]
    inside = (freqs >= centres[0]) & (freqs <= centres[-1])
    np.testing.assert_allclose(fb[inside].sum(axis=1), 1.0, atol=1e-5)        # overlapping triangles sum to 1
    for m in (0, 10, 23):                                                     # each a triangle: rises then falls
        nz = fb[:, m][fb[:, m] > 0]
        top = int(np.argmax(nz))
        assert np.all(np.diff(nz[:top + 1]) > 0) and np.all(np.diff(nz[top:]) < 0)
    slaney = A.mel_filterbank(sample_rate=sr, n_fft=n_fft, n_mels=n_mels, norm='slaney')
    area = slaney.sum(axis=0) * (freqs[1] - freqs[0])                          # Riemann sum in Hz
    np.testing.assert_allclose(area, 1.0, rtol=0.1)                            # constant area
    fb_band = A.mel_filterbank(sample_rate=sr, n_fft=n_fft, n_mels=8, f_min=300.0, f_max=3400.0)
    assert np.all(fb_band[freqs < 300.0] == 0) and np.all(fb_band[freqs > 3400.0] == 0)


def test_mel_filterbank_rejects_bad_ranges_and_warns_on_empty_filters():
    with pytest.raises(ValueError, match='f_max'):
        A.mel_filterbank(sample_rate=8000, n_fft=512, n_mels=10, f_max=5000.0)
    with pytest.raises(ValueError, match='mel_scale'):
        A.mel_filterbank(sample_rate=8000, n_fft=512, n_mels=10, mel_scale='bark')
    with pytest.warns(UserWarning, match='cover no frequency bin'):
        A.mel_filterbank(sample_rate=8000, n_fft=32, n_mels=40)


def test_pure_tone_lands_in_its_mel_band_and_silence_hits_the_floor():
    sr = 8000
    t = np.arange(sr) / sr
    tone = np.sin(2 * np.pi * 1000.0 * t).astype(np.float32)
    mel = A.mel_spectrogram(tone, sample_rate=sr, n_fft=512, hop_length=256, n_mels=24)
    fb = A.mel_filterbank(sample_rate=sr, n_fft=512, n_mels=24)
    expected = int(np.argmax(fb[round(1000.0 / (sr / 512))]))                 # band holding the 1 kHz bin
    assert np.all(mel.argmax(axis=0) == expected)
    log_silence = A.log_mel_spectrogram(np.zeros(sr), sample_rate=sr, n_fft=512, hop_length=256, n_mels=24,
                                        floor=1e-6)
    np.testing.assert_allclose(log_silence, np.log(1e-6), rtol=1e-6)


def test_mfcc_is_orthonormal_dct_of_log_mel():
    dct = A.create_dct(n_mfcc=20, n_mels=20)
    np.testing.assert_allclose(dct.T @ dct, np.eye(20), atol=1e-5)
    x = np.random.default_rng(1).standard_normal(8000)
    kw = {'sample_rate': 8000, 'n_fft': 512, 'hop_length': 200, 'n_mels': 20}
    coeffs = A.mfcc(x, n_mfcc=13, **kw)
    log_mel = A.log_mel_spectrogram(x, **kw)
    assert coeffs.shape == (13, log_mel.shape[1])
    np.testing.assert_allclose(coeffs, dct[:, :13].T @ log_mel, rtol=1e-4, atol=1e-4)
    full = A.mfcc(x, n_mfcc=20, **kw)                                          # invertible with all coefficients
    np.testing.assert_allclose(dct @ full, log_mel, rtol=1e-4, atol=1e-4)


def _stream(x, chunk_sizes, **kw):
    st = A.StreamingLogMel(**kw)
    out, i, k = [], 0, 0
    while i < x.size:
        n = int(chunk_sizes[k % len(chunk_sizes)])
        out.append(st.push(x[i:i + n]))
        i, k = i + n, k + 1
    return np.concatenate(out + [np.zeros((kw['n_mels'], 0), np.float32)], axis=1), st


@pytest.mark.parametrize('n_fft,hop_length', [(512, 320), (256, 64), (128, 200)])   # incl. hop > n_fft
def test_streaming_equals_offline_for_any_chunking(n_fft, hop_length):
    rng = np.random.default_rng(n_fft + hop_length)
    x = (0.1 * rng.standard_normal(9001)).astype(np.float32)
    kw = {'sample_rate': 8000, 'n_fft': n_fft, 'hop_length': hop_length, 'n_mels': 24}
    offline = A.log_mel_spectrogram(x, **kw)
    for chunks in ([1], [7, 300], [hop_length], [n_fft - 1, 3], [5000], rng.integers(1, 1500, size=30)):
        streamed, st = _stream(x, chunks, **kw)
        assert streamed.shape == offline.shape
        np.testing.assert_array_equal(streamed, offline)
        assert st.frames_emitted == offline.shape[1]


@pytest.mark.needs_data('fsdd')
def test_streaming_equals_offline_on_a_real_fsdd_clip():
    from centralnet_ros.data.fsdd import read_wav
    x = read_wav(FSDD / 'recordings' / '7_jackson_32.wav')
    kw = {'sample_rate': 8000, 'n_fft': 512, 'hop_length': 320, 'n_mels': 24, 'floor': 1e-6}
    offline = A.log_mel_spectrogram(x, **kw)
    streamed, st = _stream(x, [160], **kw)                                     # 20 ms audio messages
    np.testing.assert_array_equal(streamed, offline)
    st.reset()
    assert st.pending_samples == 0 and st.push(x[:100]).shape == (24, 0)
    with pytest.raises(ValueError, match='mono'):
        st.push(np.zeros((2, 10)))


def test_frames_depend_only_on_their_own_samples():
    """No whole-clip normalisation: changing the end of a clip leaves earlier frames equal."""
    x = np.random.default_rng(2).standard_normal(8000)
    kw = {'sample_rate': 8000, 'n_fft': 512, 'hop_length': 320, 'n_mels': 24}
    a = A.log_mel_spectrogram(x, **kw)
    y = x.copy()
    y[6000:] *= 100.0                                                          # frame t ends at 320 t + 512
    b = A.log_mel_spectrogram(y, **kw)
    untouched = (6000 - 512) // 320 + 1
    np.testing.assert_array_equal(a[:, :untouched], b[:, :untouched])
    assert not np.allclose(a[:, -1], b[:, -1])


def test_add_noise_at_snr_sets_the_power_ratio_and_is_seeded():
    x = np.sin(np.linspace(0, 2000, 200_000)).astype(np.float32)
    for snr in (20.0, 0.0, -5.0):
        y = A.add_noise_at_snr(x, snr_db=snr, rng=np.random.default_rng(0))
        noise = y.astype(np.float64) - x
        assert 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean(noise ** 2)) == pytest.approx(snr, abs=0.05)
    a = A.add_noise_at_snr(x[:100], snr_db=5.0, rng=np.random.default_rng(3))
    b = A.add_noise_at_snr(x[:100], snr_db=5.0, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    padded = np.concatenate([x[:1000], np.zeros(1000, np.float32)])
    y = A.add_noise_at_snr(padded, snr_db=0.0, rng=np.random.default_rng(0),
                           signal_power=float(np.mean(x[:1000].astype(np.float64) ** 2)))
    assert np.std(y[1000:]) == pytest.approx(np.sqrt(np.mean(x[:1000] ** 2)), rel=0.1)  # noise fills padding
    with pytest.raises(ValueError, match='silent'):
        A.add_noise_at_snr(np.zeros(10), snr_db=0.0, rng=np.random.default_rng(0))


def test_fix_length_centres_pads_and_crops():
    x = np.arange(1, 6, dtype=np.float32)
    np.testing.assert_array_equal(A.fix_length(x, length=9), [0, 0, 1, 2, 3, 4, 5, 0, 0])
    np.testing.assert_array_equal(A.fix_length(x, length=3), [2, 3, 4])
    np.testing.assert_array_equal(A.fix_length(x, length=7, mode='start'), [1, 2, 3, 4, 5, 0, 0])


def test_keyword_only_and_parameter_errors():
    with pytest.raises(TypeError):
        A.spectrogram(np.zeros(100), 64, 32)                                   # positional n_fft refused
    with pytest.raises(ValueError, match='hop_length'):
        A.spectrogram(np.zeros(100), n_fft=64, hop_length=0)
    with pytest.raises(ValueError, match='win_length'):
        A.spectrogram(np.zeros(100), n_fft=64, hop_length=16, win_length=128)
