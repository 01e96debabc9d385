"""HTK front end (features/htk.py) and HTK parameter files (data/htk.py): streaming == one-shot, file I/O."""
from __future__ import annotations

import dataclasses
import math
import shutil

from centralnet_ros import paths
from centralnet_ros.data import htk as htk_files
from centralnet_ros.features import htk
import numpy as np
import pytest

AV_AUDIO = paths.data_root() / 'avletters' / 'Audio' / 'mfcc' / 'Clean'
needs_avletters = pytest.mark.needs_data('avletters')

SR = 16000
CFG = htk.HTKConfig(sample_rate=SR)                      # HTK recipe: 400-sample window, 320 hop, 512 FFT


def _speechlike(seconds: float = 1.0, *, sample_rate: int = SR, seed: int = 0) -> np.ndarray:
    """Make a deterministic non-stationary float test signal in [-1, 1] (chirp + AM + noise)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    chirp = np.sin(2 * np.pi * (200 * t + 900 * t ** 2))
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    return (0.25 * env * chirp + 0.01 * rng.standard_normal(t.size)).astype(np.float64)


# ---------------------------------------------------------------- definitions

def test_mel_scale_is_htks():
    assert htk.mel_scale(700.0) == pytest.approx(1127 * math.log(2))
    assert htk.mel_scale(0.0) == 0.0
    f = np.array([50.0, 1000.0, 7999.0])
    np.testing.assert_allclose(htk.inverse_mel_scale(htk.mel_scale(f)), f, rtol=1e-12)


def test_lifter_formula():
    w = htk.lifter_weights(12, 22)
    for j in range(1, 13):
        assert w[j - 1] == pytest.approx(1 + 11 * math.sin(math.pi * j / 22))
    np.testing.assert_array_equal(htk.lifter_weights(12, 0), np.ones(12))


def test_liftering_multiplies_the_unliftered_cepstra():
    x = _speechlike()
    base = dataclasses.replace(CFG, cep_lifter=0, energy_normalise=False)
    plain = htk.static_features(x, sample_rate=SR, config=base)
    lifted = htk.static_features(x, sample_rate=SR, config=dataclasses.replace(base, cep_lifter=22))
    np.testing.assert_allclose(lifted[:, :12], plain[:, :12] * htk.lifter_weights(12, 22), rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(lifted[:, 12], plain[:, 12])            # E is not liftered


def test_dct_is_htks_scaled_cosine_basis():
    d = htk.dct_matrix(26, 12)
    assert d.shape == (12, 26)
    assert d[2, 4] == pytest.approx(math.sqrt(2 / 26) * math.cos(math.pi * 3 * 4.5 / 26))
    np.testing.assert_allclose(d @ d.T, np.eye(12), atol=1e-12)           # sqrt(2/N) makes rows orthonormal
    # a flat log spectrum has no c1..c12: cepstra are blind to the gain
    np.testing.assert_allclose(d @ np.full(26, 7.3), 0, atol=1e-12)


def test_filterbank_is_htk_triangles():
    fb = htk.mel_filterbank(CFG)                                           # (26, 257)
    assert fb.shape == (26, CFG.fft_size // 2 + 1)
    assert np.all(fb >= 0)
    assert fb[:, 0].sum() == 0 and fb[:, -1].sum() == 0                    # DC and Nyquist never used
    freqs = np.arange(fb.shape[1]) * SR / CFG.fft_size
    mel = htk.mel_scale(freqs)
    step = htk.mel_scale(SR / 2) / 27
    inner = (mel >= step) & (mel <= 26 * step)                             # between first and last centre
    np.testing.assert_allclose(fb[:, inner].sum(0), 1.0, atol=1e-12)      # each bin split between 2 channels
    for c in range(26):                                                    # triangle peaks at its centre
        peak = mel[np.argmax(fb[c])]
        assert abs(peak - (c + 1) * step) <= htk.mel_scale(freqs[1:]).__sub__(htk.mel_scale(freqs[:-1])).max()


def test_lo_hi_freq_limit_the_passband():
    cfg = dataclasses.replace(CFG, low_freq=300.0, high_freq=3400.0)
    fb = htk.mel_filterbank(cfg)
    freqs = np.arange(fb.shape[1]) * SR / cfg.fft_size
    used = freqs[fb.sum(0) > 0]
    assert used.min() >= 300 - SR / cfg.fft_size and used.max() <= 3400 + SR / cfg.fft_size


@pytest.mark.parametrize('f0', [300.0, 1000.0, 3000.0])
def test_pure_tone_lands_in_its_mel_band(f0):
    t = np.arange(SR // 2) / SR
    x = 10000 * np.sin(2 * np.pi * f0 * t)
    frames = htk.frame_signal(x, window=CFG.window_samples, hop=CFG.hop_samples)
    fbank = htk.log_filterbank(frames, CFG)                                # (T, 26)
    centres = np.arange(1, 27) * htk.mel_scale(SR / 2) / 27
    expected = int(np.argmin(np.abs(centres - htk.mel_scale(f0))))
    assert set(np.argmax(fbank, axis=1).tolist()) == {expected}
    # the tone's band stands far above the bands away from it
    assert np.all(fbank[:, expected] - np.median(fbank, axis=1) > 4.0)


def test_frame_count_and_raw_energy():
    x = _speechlike(0.5)
    cfg = dataclasses.replace(CFG, energy_normalise=False)
    st = htk.static_features(x, sample_rate=SR, config=cfg)
    assert st.shape == (1 + (x.size - 400) // 320, 13)
    # RAWENERGY: ln sum x^2 over the frame before pre-emphasis and windowing
    assert st[3, 12] == pytest.approx(math.log(np.sum((32768 * x[960:1360]) ** 2)), rel=1e-12)
    assert htk.static_features(x[:399], sample_rate=SR, config=cfg).shape == (0, 13)


def test_gain_changes_only_energy_and_normalised_energy_not_at_all():
    x = _speechlike()
    cfg = dataclasses.replace(CFG, energy_normalise=False)
    a = htk.static_features(x, sample_rate=SR, config=cfg)
    b = htk.static_features(0.5 * x, sample_rate=SR, config=cfg)
    np.testing.assert_allclose(b[:, :12], a[:, :12], atol=1e-9)
    np.testing.assert_allclose(b[:, 12], a[:, 12] + math.log(0.25), atol=1e-9)
    fa = htk.mfcc_e_d(x, sample_rate=SR, config=CFG)
    fb = htk.mfcc_e_d(0.5 * x, sample_rate=SR, config=CFG)
    np.testing.assert_allclose(fb, fa, atol=1e-5)


def test_energy_normalisation_is_htks():
    e = np.array([10.0, 12.0, -5.0, 11.5])
    out = htk.normalise_log_energy(e, silence_floor_db=50.0, energy_scale=0.1)
    floor = 12.0 - 5 * math.log(10)
    np.testing.assert_allclose(out, [1 - 0.2, 1.0, 1 - (12 - floor) * 0.1, 1 - 0.05])
    assert htk.mfcc_e_d(_speechlike(), sample_rate=SR, config=CFG)[:, 12].max() == pytest.approx(1.0)


def test_float_and_int16_waveforms_agree():
    x = np.round(32768 * _speechlike()).astype(np.int16)
    np.testing.assert_allclose(htk.mfcc_e_d(x, sample_rate=SR, config=CFG),
                               htk.mfcc_e_d(x / 32768.0, sample_rate=SR, config=CFG), atol=1e-5)


# --------------------------------------------------------------------- deltas

@pytest.mark.parametrize('edge', ['simple', 'replicate'])
def test_deltas_of_a_constant_are_zero(edge):
    c = np.tile(np.arange(13.0), (30, 1))
    np.testing.assert_array_equal(htk.deltas(c, window=2, edge=edge), 0.0)


def test_deltas_of_a_ramp_and_the_edge_rules():
    t = np.arange(10.0)[:, None] * np.array([[1.0, -2.0]])                 # slopes 1 and -2
    simple = htk.deltas(t, window=2, edge='simple')
    np.testing.assert_allclose(simple, np.tile([[1.0, -2.0]], (10, 1)))   # regression and differences agree
    rep = htk.deltas(t, window=2, edge='replicate')
    np.testing.assert_allclose(rep[2:-2], simple[2:-2])
    # first frame, replicated: (1 (c1 - c0) + 2 (c2 - c0)) / 10 = 0.5 slope
    np.testing.assert_allclose(rep[0], [0.5, -1.0])
    np.testing.assert_allclose(rep[1], [0.8, -1.6])                       # (1*2 + 2*3) / 10
    # a non-linear sequence: edges differ between the two rules exactly as defined
    c = (np.arange(8.0) ** 2)[:, None]
    s = htk.deltas(c, window=2, edge='simple')[:, 0]
    assert s[0] == c[1, 0] - c[0, 0] and s[1] == c[2, 0] - c[1, 0]
    assert s[-1] == c[-1, 0] - c[-2, 0] and s[-2] == c[-2, 0] - c[-3, 0]
    assert s[4] == pytest.approx((1 * (c[5, 0] - c[3, 0]) + 2 * (c[6, 0] - c[2, 0])) / 10)


def test_short_sequences_use_replication_in_both_modes():
    c = np.array([[0.0], [1.0], [5.0], [2.0]])                             # T = 4 <= 2 W
    np.testing.assert_array_equal(htk.deltas(c, edge='simple'), htk.deltas(c, edge='replicate'))
    assert htk.deltas(np.zeros((0, 3))).shape == (0, 3)


@needs_avletters
def test_avletters_files_have_simple_difference_edges_and_normalised_energy():
    for path in sorted(AV_AUDIO.glob('*.mfcc'))[::60]:
        f = htk_files.read_htk(path).features.astype(np.float64)
        np.testing.assert_allclose(htk.add_deltas(f[:, :13], edge='simple'), f, atol=2e-5, err_msg=str(path))
        assert np.abs(htk.add_deltas(f[:, :13], edge='replicate') - f).max() > 1e-3
        assert f[:, 12].max() == pytest.approx(1.0, abs=1e-6)


# ------------------------------------------------------------------ streaming

def _chunks(x: np.ndarray, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out, i = [], 0
    while i < x.size:
        n = int(rng.choice([0, 1, 7, 160, 333, 999, 2500]))
        out.append(x[i:i + n])
        i += n
    return out


@pytest.mark.parametrize('edge', ['simple', 'replicate'])
@pytest.mark.parametrize('seed', [0, 1])
def test_stream_equals_one_shot(edge, seed):
    cfg = dataclasses.replace(CFG, energy_normalise=False, delta_edge=edge)
    x = _speechlike(0.8, seed=seed)
    stream = htk.HTKStream(cfg, sample_rate=SR)
    parts = [stream.push(c) for c in _chunks(x, seed)] + [stream.flush()]
    streamed = np.concatenate(parts)
    np.testing.assert_allclose(streamed, htk.mfcc_e_d(x, sample_rate=SR, config=cfg), rtol=1e-6, atol=1e-6)
    # the stream restarts empty after flush
    again = np.concatenate([stream.push(x), stream.flush()])
    np.testing.assert_allclose(again, streamed, atol=1e-6)


def test_stream_latency_is_two_frames():
    cfg = dataclasses.replace(CFG, energy_normalise=False)
    assert cfg.lookahead_frames == 2 and cfg.latency_s == pytest.approx(0.025 + 0.040)
    stream = htk.HTKStream(cfg)
    x = _speechlike()
    n_static = 9                                                           # push exactly 9 windows' worth
    out = stream.push(x[:400 + 8 * 320])
    assert out.shape == (n_static - 2, 26)
    assert stream.push(x[400 + 8 * 320: 400 + 9 * 320]).shape == (1, 26)  # one more window -> one more frame


def test_static_stream_equals_static_features():
    x = _speechlike(0.6)
    s = htk.HTKStaticStream(CFG)
    got = np.concatenate([s.push(c) for c in _chunks(x, 3)])
    np.testing.assert_allclose(got, htk.static_features(x, sample_rate=SR, config=CFG), rtol=1e-9, atol=1e-9)
    # a window's statics finished with features_from_static == the one-shot path
    np.testing.assert_allclose(htk.features_from_static(got, CFG), htk.mfcc_e_d(x, sample_rate=SR, config=CFG),
                               atol=1e-5)


def test_stream_refuses_utterance_energy_normalisation_and_wrong_rate():
    with pytest.raises(ValueError, match='energy'):
        htk.HTKStream(CFG)
    with pytest.raises(ValueError, match='sample_rate'):
        htk.HTKStaticStream(CFG, sample_rate=44100)


# --------------------------------------------------------------- model input

def test_speech_model_input_is_the_training_path():
    x = _speechlike(1.0, sample_rate=44100)
    got = htk.speech_model_input(x, sample_rate=44100)
    assert got.shape == (26, 24) and got.dtype == np.float32
    feats = htk.mfcc_e_d(x, sample_rate=44100, config=htk.AVLETTERS_CONFIG)
    np.testing.assert_array_equal(got, htk.mfcc_to_model_input(feats, num_frames=24))
    with pytest.raises(ValueError, match='shorter than one'):
        htk.speech_model_input(x[:100], sample_rate=44100)


def test_config_validation():
    with pytest.raises(ValueError, match='num_ceps'):
        htk.HTKConfig(num_ceps=26)
    with pytest.raises(ValueError, match='high_freq'):
        htk.HTKConfig(sample_rate=16000, high_freq=9000.0)
    from centralnet_ros.config import ConfigError, from_dict
    assert from_dict(htk.HTKConfig, {'sample_rate': 16000, 'delta_edge': 'simple'}).window_samples == 400
    with pytest.raises(ConfigError, match='delta_edge'):
        from_dict(htk.HTKConfig, {'delta_edge': 'mirror'})


# ------------------------------------------------------------------- file I/O

def test_parm_kind_codes():
    k = htk_files.ParmKind.from_code(326)
    assert k.name == 'MFCC_E_D' and k.base_name == 'MFCC' and k.qualifiers == {'E', 'D'}
    for name in ['MFCC_E_D', 'MFCC_0_D_A', 'FBANK_E_D_A_Z', 'PLP_E', 'USER', 'MFCC_E_D_A_T']:
        assert htk_files.ParmKind.from_code(htk_files.ParmKind.parse(name).code) == htk_files.ParmKind.parse(name)
    assert htk_files.ParmKind.parse('MFCC_E_D_A').code == 6 + 0o100 + 0o400 + 0o1000
    assert htk_files.ParmKind.parse('MFCC_0').code == 6 + 0o20000
    with pytest.raises(ValueError, match='qualifier'):
        htk_files.ParmKind.parse('MFCC_Q')


def test_write_read_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((40, 26)).astype(np.float32)
    path = htk_files.write_htk(tmp_path / 'x.mfcc', feats, sample_period=200000, parm_kind='MFCC_E_D')
    raw = path.read_bytes()
    assert len(raw) == 12 + 40 * 104 and raw[:12] == b'\x00\x00\x00\x28\x00\x03\x0d\x40\x00\x68\x01\x46'
    back = htk_files.read_htk(path, expected_kind='MFCC_E_D', expected_dim=26)
    np.testing.assert_array_equal(back.features, feats)
    assert back.sample_period == 200000 and back.frame_period_s == pytest.approx(0.02)
    # big-endian on disk, whatever the machine
    assert np.frombuffer(raw[12:16], '>f4')[0] == feats[0, 0]
    assert list(tmp_path.iterdir()) == [path]                               # no temporary left behind


def test_inconsistent_files_are_rejected_naming_file_and_problem(tmp_path):
    feats = np.ones((40, 26), np.float32)
    good = htk_files.encode_htk(feats)
    cases = {
        'truncated.mfcc': (good[:12 + 3000], r'truncated.mfcc: truncated: header says 40 frames of 104 bytes '
                                             r'\(4160 bytes\) but the body has 3000 bytes'),
        'trailing.mfcc': (good + b'\0' * 8, 'trailing bytes'),
        'short.mfcc': (good[:7], 'shorter than the 12-byte'),
        'odd.mfcc': (good[:10] + (102).to_bytes(2, 'big', signed=True) + good[12:12 + 40 * 102],
                     'kind 102'),
        'size.mfcc': (good[:8] + (103).to_bytes(2, 'big') + good[10:12] + good[12:12 + 40 * 103],
                      'not a whole number of float32'),
        'negative.mfcc': ((-5).to_bytes(4, 'big', signed=True) + good[4:], 'negative'),
    }
    for name, (data, pattern) in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(htk_files.HTKFormatError, match=pattern) as info:
            htk_files.read_htk(p)
        assert str(p) in str(info.value)
    p = tmp_path / 'kind.mfcc'
    p.write_bytes(htk_files.encode_htk(feats, parm_kind='FBANK_E_D'))
    with pytest.raises(htk_files.HTKFormatError, match='FBANK_E_D.*expected MFCC_E_D'):
        htk_files.read_htk(p, expected_kind='MFCC_E_D')
    nan = feats.copy()
    nan[7, 3] = np.nan
    p.write_bytes(htk_files.encode_htk(nan))
    with pytest.raises(htk_files.HTKFormatError, match='frame 7'):
        htk_files.read_htk(p)


@needs_avletters
def test_real_avletters_file_and_its_corrupted_copy(tmp_path):
    src = AV_AUDIO / 'A1_Anya.mfcc'
    f = htk_files.read_htk(src, expected_kind='MFCC_E_D', expected_dim=26)
    assert f.features.shape == (53, 26) and f.sample_period == 200000 and f.parm_kind.code == 326
    # re-encoding gives the file back byte for byte
    assert htk_files.encode_htk(f.features, sample_period=f.sample_period, parm_kind=f.parm_kind) == src.read_bytes()
    bad = tmp_path / 'A1_Anya.mfcc'
    shutil.copyfile(src, bad)
    with open(bad, 'r+b') as fh:
        fh.truncate(12 + 52 * 104 + 50)
    with pytest.raises(htk_files.HTKFormatError, match=r'A1_Anya.mfcc: truncated: header says 53 frames of 104 bytes'):
        htk_files.read_htk(bad)


def test_window_pipeline_runs_the_same_path():
    from centralnet_ros.features.pipelines import Window
    from centralnet_ros.features.speech import mfcc_input
    from centralnet_ros.features.audio import resample_audio
    x = _speechlike(1.2, sample_rate=16000).astype(np.float32)
    x22 = resample_audio(x, orig_sample_rate=16000, new_sample_rate=22050)   # once, as the runtime does
    win = Window(data=x22, stamps_ns=np.array([0]), sample_rate=22050.0)
    got = mfcc_input(win)
    assert got.shape == (1, 26, 24)
    np.testing.assert_array_equal(got[0], htk.speech_model_input(x, sample_rate=16000))
    other = mfcc_input(win, num_frames=20, htk={'cep_lifter': 22})
    assert other.shape == (1, 26, 20)
    with pytest.raises(ValueError, match='unknown HTKConfig field.*lifter'):
        mfcc_input(win, htk={'lifter': 22})
