"""
Emotion functionals, speaker normalisation and run-time voice adaptation (issue #12).

Functionals streamed equal functionals offline (real EmoDB speech); running statistics
converge to the batch statistics and reset on a speaker change; adaptation never reads
a label; a bundle keeps its normalisation through a round trip; the optional openSMILE
extra fails with a clear message when it is missing.
"""
from __future__ import annotations

import dataclasses
import logging
import sys

from centralnet_ros.bundle import load_bundle, Manifest, ModalitySpec, save_bundle
from centralnet_ros.config import ConfigError, from_dict, to_dict
from centralnet_ros.data import emodb
from centralnet_ros.encoders import EncoderConfig
from centralnet_ros.features import audio as A
from centralnet_ros.features import functionals as F
from centralnet_ros.features.normalisation import (fit_prior, normalise_by_speaker, RunningMoments,
                                                   speaker_statistics, SpeakerNormalisation)
from centralnet_ros.features.pipelines import resolve_params, run_pipeline, Window
from centralnet_ros.fusion import build_model, FusionConfig
from centralnet_ros.runtime.adaptation import adapt_speaker_sequence, AdaptationConfig, score_speaker
from centralnet_ros.runtime.adaptation import VoiceAdaptation
import numpy as np
import pytest

SR = 16000


@pytest.fixture(scope='module')
def speech(data_root):
    utts = [u for u in emodb.list_utterances(data_root / 'emodb') if u.speaker == 3][:3]
    return [emodb.load_waveform(str(u.path), sample_rate=SR) for u in utts]


# --------------------------------------------------------------------------- functionals

@pytest.mark.needs_data('emodb')
def test_functionals_streamed_in_chunks_equal_offline(speech):
    rng = np.random.default_rng(0)
    for wave in speech:
        offline = F.emotion_functionals(wave)
        assert offline.shape == (len(F.functional_names()),) and np.isfinite(offline).all()
        for max_chunk in (1, 160, 4000):
            stream = F.StreamingFunctionals()
            i = 0
            while i < wave.size:
                k = int(rng.integers(1, max_chunk + 1)) if max_chunk > 1 else 317
                stream.push(wave[i:i + k])
                i += k
            llds, ref = stream.llds(), F.frame_descriptors(wave)
            np.testing.assert_allclose(llds, ref, rtol=1e-5, atol=1e-4)   # the same frames (FFT rounding aside)
            np.testing.assert_array_equal(llds[:, -1], ref[:, -1])        # the same voicing decisions
            np.testing.assert_allclose(stream.functionals(), offline, rtol=1e-5, atol=1e-5)
    stream = F.StreamingFunctionals(max_duration_s=1.0)                 # samples past the limit are ignored
    stream.push(speech[0])
    np.testing.assert_allclose(stream.functionals(), F.emotion_functionals(speech[0], max_duration_s=1.0), atol=1e-5)


@pytest.mark.needs_data('emodb')
def test_functionals_depend_only_on_their_own_frames(speech):
    wave = speech[0]
    a = F.frame_descriptors(wave)
    noisy = wave.copy()
    noisy[16000:] += np.random.default_rng(1).normal(0, 0.2, noisy.size - 16000).astype(np.float32)
    b = F.frame_descriptors(noisy)
    cfg = F.FunctionalsConfig()
    k = 1 + (16000 - cfg.frame_length) // cfg.hop_length                  # frames that end before the noise
    np.testing.assert_allclose(a[:k], b[:k], rtol=1e-5, atol=1e-4)
    assert np.abs(a[k + 5:] - b[k + 5:]).max() > 1.0


def test_pitch_voicing_jitter_and_silence():
    t = np.arange(SR) / SR
    names = F.functional_names()
    for f0 in (90.0, 180.0, 320.0):
        tone = (0.3 * np.sin(2 * np.pi * f0 * t) + 0.1 * np.sin(4 * np.pi * f0 * t)).astype(np.float32)
        v = dict(zip(names, F.emotion_functionals(tone)))
        assert abs(2 ** v['f0_mean'] * 100 / f0 - 1) < 0.01, (f0, 2 ** v['f0_mean'] * 100)
        assert v['voiced_fraction'] > 0.95 and v['f0_std'] < 0.01
    steady = dict(zip(names, F.emotion_functionals((0.3 * np.sin(2 * np.pi * 150 * t)).astype(np.float32))))
    # a vibrato of +-6 % every 50 ms: a larger jitter-like value, the same mean pitch
    phase = 2 * np.pi * np.cumsum(150 * (1 + 0.06 * np.sign(np.sin(2 * np.pi * 10 * t)))) / SR
    wobble = dict(zip(names, F.emotion_functionals((0.3 * np.sin(phase)).astype(np.float32))))
    assert wobble['jitter_like'] > 3 * steady['jitter_like'] and abs(wobble['f0_mean'] - steady['f0_mean']) < 0.03
    noise = np.random.default_rng(0).normal(0, 0.1, SR).astype(np.float32)
    assert dict(zip(names, F.emotion_functionals(noise)))['voiced_fraction'] < 0.1
    silent = F.emotion_functionals(np.zeros(SR, np.float32))
    assert not silent.any()                                                # nothing active: every statistic 0
    assert F.emotion_functionals(np.full(100, 0.1, np.float32)).shape == silent.shape   # shorter than a frame


def test_contour_slopes_percentiles_and_mfcc_free_set():
    t = np.arange(SR) / SR
    names = F.functional_names()
    # a glide 120 -> 240 Hz that grows louder: positive pitch and loudness slopes, falls never
    phase = 2 * np.pi * np.cumsum(120 * 2 ** t) / SR
    glide = dict(zip(names, F.emotion_functionals(((0.05 + 0.3 * t) * np.sin(phase)).astype(np.float32))))
    assert abs(glide['f0_slope'] - 1.0) < 0.1                              # one octave per second
    assert glide['loudness_active_slope'] > 0.5 and glide['f0_fall_mean'] > -1e-3 < glide['f0_rise_mean']
    assert glide['f0_p1'] < glide['f0_p25'] < glide['f0_p75'] < glide['f0_p99']
    steady = dict(zip(names, F.emotion_functionals((0.3 * np.sin(2 * np.pi * 150 * t)).astype(np.float32))))
    assert abs(steady['loudness_active_slope']) < 0.05 and steady['mel_flux_mean'] < glide['mel_flux_mean']
    noise = dict(zip(names, F.emotion_functionals(np.random.default_rng(0).normal(0, 0.1, SR).astype(np.float32))))
    assert noise['mel_entropy_unvoiced_mean'] > steady['mel_entropy_voiced_mean']   # flat spectrum: high entropy
    # n_mfcc: 0 drops the MFCC functionals and leaves every other value as it was
    x = (0.3 * np.sin(phase)).astype(np.float32)
    full, free = F.emotion_functionals(x), F.emotion_functionals(x, n_mfcc=0)
    sub = F.functional_names({'n_mfcc': 0})
    assert not any(n.startswith('mfcc') for n in sub) and len(sub) == len(free) < len(full)
    np.testing.assert_array_equal(free, full[[names.index(n) for n in sub]])


def test_shrinkage_lda_is_the_linear_discriminant_and_fills_a_linear_model():
    from centralnet_ros.training.trainer import ArraySplit, predict, shrinkage_lda, train, TrainConfig
    rng = np.random.default_rng(0)
    means = rng.normal(0, 1.5, (4, 30))
    y = rng.integers(0, 3, 200)                                            # class 3 has no sample
    x = means[y] + rng.normal(0, 1, (200, 30))
    w, b = shrinkage_lda(x, y, 4, 0.3)
    mu = np.stack([x[y == c].mean(0) for c in range(3)])
    c = x - mu[y]
    lam = 0.3 * np.sum(c * c) / c.size
    ref = np.linalg.solve(0.7 * c.T @ c / len(x) + lam * np.eye(30), mu.T).T
    np.testing.assert_allclose(w[:3], ref, rtol=1e-8, atol=1e-10)
    few = np.flatnonzero(y < 3)[:20]                                       # fewer samples than values: Woodbury
    wf, _ = shrinkage_lda(x[few], y[few], 4, 0.3)
    mu = np.stack([x[few][y[few] == k].mean(0) for k in range(3)])
    c = x[few] - mu[y[few]]
    lam = 0.3 * np.sum(c * c) / c.size
    np.testing.assert_allclose(wf[:3], np.linalg.solve(0.7 * c.T @ c / len(c) + lam * np.eye(30), mu.T).T,
                               rtol=1e-6, atol=1e-8)
    assert ((x @ w.T + b).argmax(1) == y).mean() > 0.9 and ((x @ w.T + b).argmax(1) != 3).all()
    enc = EncoderConfig(kind='mlp', input_shape=[30], widths=[], head_dropout=0.0)
    model = build_model(FusionConfig(method='unimodal', modalities={'audio': enc}, num_classes=4, unimodal='audio'))
    split = ArraySplit({'audio': x.astype(np.float32)}, y)
    result = train(model, split, split, TrainConfig(solver='shrinkage_lda', shrinkage=0.3, progress=False))
    np.testing.assert_allclose(predict(model, split), x @ w.T + b, rtol=1e-4, atol=1e-3)
    assert result.epochs_run == 1 and result.val_metric > 0.9
    deep = build_model(FusionConfig(method='unimodal', modalities={'audio': dataclasses.replace(enc, widths=[8])},
                                    num_classes=4, unimodal='audio'))
    with pytest.raises(ValueError, match='linear model'):
        train(deep, split, split, TrainConfig(solver='shrinkage_lda', progress=False))
    with pytest.raises(ValueError, match='shrinkage'):
        shrinkage_lda(x, y, 4, 0.0)


def test_lda_ensemble_averages_its_members_as_one_linear_layer():
    from centralnet_ros.training.trainer import (ArraySplit, lda_columns, lda_ensemble, predict, shrinkage_lda,
                                                 train, TrainConfig)
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 150)
    x = rng.normal(0, 1.5, (3, 12))[y] + rng.normal(0, 1, (150, 12))
    names = [f'mfcc{i}' for i in range(4)] + [f'logmel{i}' for i in range(4)] + [f'pitch{i}' for i in range(4)]
    columns = lda_columns(names, [[], ['mfcc'], ['logmel', 'pitch']])
    assert columns[0] is None and list(columns[1]) == list(range(4, 12)) and list(columns[2]) == [0, 1, 2, 3]
    w, b = lda_ensemble(x, y, 3, [0.2, 0.6], columns)
    scores = np.zeros((150, 3))
    for cols in (slice(None), slice(4, 12), slice(0, 4)):
        for value in (0.2, 0.6):
            wk, bk = shrinkage_lda(x[:, cols], y, 3, value)
            scores += (x[:, cols] @ wk.T + bk) / 6
    np.testing.assert_allclose(x @ w.T + b, scores, rtol=1e-9, atol=1e-9)      # the mean of the members' scores
    for got, single in zip(lda_ensemble(x, y, 3, [0.6]), shrinkage_lda(x, y, 3, 0.6)):     # one member: itself
        np.testing.assert_allclose(got, single)
    enc = EncoderConfig(kind='mlp', input_shape=[12], widths=[], head_dropout=0.0)
    model = build_model(FusionConfig(method='unimodal', modalities={'audio': enc}, num_classes=3, unimodal='audio'))
    split = ArraySplit({'audio': x.astype(np.float32)}, y)
    cfg = TrainConfig(solver='shrinkage_lda', lda_shrinkages=[0.2, 0.6], progress=False,
                      lda_drop_prefixes=[[], ['mfcc'], ['logmel', 'pitch']])
    train(model, split, split, cfg, input_names={'audio': names})
    np.testing.assert_allclose(predict(model, split), scores, rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match='names of the input values'):
        train(model, split, split, cfg)
    with pytest.raises(ValueError, match='leaves no input value'):
        lda_columns(names, [['mfcc', 'logmel', 'pitch']])


@pytest.mark.needs_data('emodb')
def test_pipeline_at_its_rate_equals_the_training_features(data_root):
    u = [u for u in emodb.list_utterances(data_root / 'emodb') if u.speaker == 8][0]
    raw, rate = emodb.read_wav(u.path)                                     # 22.05 kHz, as a microphone gives it
    x16 = A.resample_audio(raw, orig_sample_rate=rate, new_sample_rate=SR)   # the runtime resamples once
    x = run_pipeline('emotion_functionals', Window(x16, np.zeros(1, np.int64), sample_rate=SR), {})
    ref = F.emotion_functionals(emodb.load_waveform(str(u.path), sample_rate=SR))
    np.testing.assert_allclose(x, ref, rtol=1e-5, atol=1e-5)               # what training computed
    assert resolve_params('emotion_functionals', {}) == dataclasses.asdict(F.FunctionalsConfig())
    with pytest.raises(ConfigError, match='n_mel'):
        F.emotion_functionals(raw, n_mel=20)                               # unknown parameter, named
    with pytest.raises(ValueError, match='resample it once'):
        run_pipeline('emotion_functionals', Window(raw, np.zeros(1), sample_rate=rate), {})


# --------------------------------------------------------------------------- normalisation statistics

def test_running_statistics_converge_to_batch_statistics():
    rng = np.random.default_rng(0)
    x = rng.normal([1.0, -2.0, 5.0], [0.5, 2.0, 1.0], size=(3000, 3))
    w = rng.uniform(0.5, 3.0, size=3000)
    mean, var = speaker_statistics(x, w)
    exact = RunningMoments(np.zeros(3), np.ones(3), prior_weight_s=0.0)
    for v, wt in zip(x, w):
        exact.update(v, wt)
    np.testing.assert_allclose(exact.mean, mean, rtol=1e-9)
    np.testing.assert_allclose(exact.var, var, rtol=1e-9)
    prior = RunningMoments(np.full(3, 10.0), np.full(3, 9.0), prior_weight_s=10.0, half_life_s=600.0)
    errors = []
    for i, (v, wt) in enumerate(zip(x, w)):
        prior.update(v, wt)
        if i in (10, 100, 2999):
            errors.append(np.abs(prior.mean - mean).max())
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.1           # the prior fades, the stream wins
    np.testing.assert_allclose(prior.var, var, rtol=0.15)                  # forgetting: recent speech only
    prior.reset()
    np.testing.assert_allclose(prior.mean, 10.0) and np.testing.assert_allclose(prior.var, 9.0)


def _norm(dim=3, **kw) -> SpeakerNormalisation:
    return SpeakerNormalisation(prior_mean=[0.0] * dim, prior_std=[1.0] * dim, **kw)


def test_adaptation_per_voice_reset_on_speaker_change_and_forget():
    rng = np.random.default_rng(0)
    a = rng.normal(3.0, 1.0, size=(200, 3))
    b = rng.normal(-3.0, 1.0, size=(200, 3))
    norm = _norm(prior_weight_s=2.0, half_life_s=0.0)
    one = VoiceAdaptation(norm, AdaptationConfig(per_voice=False, reset_after_s=30.0))
    for i, v in enumerate(a):
        one(v, voice_id='alice', stamp_ns=i * 10**9)
    assert abs(one.transform(a, voice_id='alice').mean()) < 0.2           # adapted: alice's speech near 0
    z = one(b[0], voice_id='bob', stamp_ns=300 * 10**9)                  # a new speaker: statistics reset
    assert one.resets == 1 and set(one.voices()) == {'bob'} and one.voices()['bob'] == 2.0
    m = norm.moments()
    m.update(b[0], 2.0)
    np.testing.assert_allclose(z, norm.apply(b[0], m.mean, m.var), rtol=1e-6)   # the prior + bob's first utterance
    one(b[1], voice_id='bob', stamp_ns=400 * 10**9)                       # a pause of 100 s > reset_after_s
    assert one.resets == 2 and one.voices()['bob'] == 2.0
    many = VoiceAdaptation(norm, AdaptationConfig(per_voice=True, max_voices=2))
    for va, vb in zip(a, b):
        many(va, voice_id='alice')
        many(vb, voice_id='bob')
    assert abs(many.transform(a, voice_id='alice').mean()) < 0.2 and abs(many.transform(b, voice_id='bob').mean()) < 0.2
    many(a[0], voice_id='carol')                                          # over max_voices: the least recent goes
    assert set(many.voices()) == {'bob', 'carol'}
    assert many.forget('bob') == 1 and set(many.voices()) == {'carol'} and many.forget('nobody') == 0
    np.testing.assert_allclose(many.transform(b[0], voice_id='bob'), b[0], rtol=1e-6)   # back to the prior
    assert many.export('carol')['heard_s'] == 2.0
    with pytest.raises(KeyError):
        many.export('bob')
    assert many.forget() == 1 and many.voices() == {}
    off = VoiceAdaptation(norm, AdaptationConfig(enabled=False))
    off(a[0])
    assert off.voices() == {}                                              # disabled: never adapts


def test_adaptation_never_reads_labels():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4))
    x[:, 3] = 2.0                                                          # seconds of speech per utterance

    class Labels:

        def __init__(self):
            self.read = []

        def __getitem__(self, i):
            self.read.append(int(i))
            return 0

    norm = _norm(4, weight_index=3)
    for adapt_s, first_scored in ((None, 0), (0.0, 0), (10.0, 5), (30.0, 15)):
        labels = Labels()
        pred, truth = score_speaker(lambda z: np.zeros(len(z), np.int64), x, labels, norm, adapt_s=adapt_s)
        assert labels.read == list(range(first_scored, 40)) and len(pred) == len(truth) == 40 - first_scored
    z, scored = adapt_speaker_sequence(x, norm, adapt_s=10.0, online=False)
    z2, _ = adapt_speaker_sequence(x, norm, adapt_s=10.0, online=True)
    assert scored[0] == 5 and not np.allclose(z, z2)                       # frozen vs still adapting
    import inspect
    for fn in (VoiceAdaptation.observe, VoiceAdaptation.__call__, VoiceAdaptation.transform, adapt_speaker_sequence):
        assert not [p for p in inspect.signature(fn).parameters if 'label' in p]


def test_sample_weights_count_rows_as_often_as_they_weigh():
    from centralnet_ros.training.trainer import ArraySplit, lda_ensemble, shrinkage_lda, train, TrainConfig
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 120)
    x = rng.normal(0, 1.5, (3, 10))[y] + rng.normal(0, 1, (120, 10))
    sw = rng.integers(0, 4, 120).astype(float)                             # 0: the row is left out
    twice = np.repeat(np.arange(120), sw.astype(int))
    for got, ref in zip(shrinkage_lda(x, y, 3, 0.4, sample_weight=sw), shrinkage_lda(x[twice], y[twice], 3, 0.4)):
        np.testing.assert_allclose(got, ref, rtol=1e-8, atol=1e-10)
    few = np.flatnonzero(sw > 0)[:6]                                       # fewer rows than values: Woodbury
    rep = np.repeat(few, sw[few].astype(int))
    for got, ref in zip(shrinkage_lda(x[few], y[few], 3, 0.4, sample_weight=sw[few]),
                        shrinkage_lda(x[rep], y[rep], 3, 0.4)):
        np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-8)
    cols = [None, np.arange(4, 10)]
    for got, ref in zip(lda_ensemble(x, y, 3, [0.2, 0.6], cols, sample_weight=sw),
                        lda_ensemble(x[twice], y[twice], 3, [0.2, 0.6], cols)):
        np.testing.assert_allclose(got, ref, rtol=1e-8, atol=1e-10)
    assert not np.allclose(shrinkage_lda(x, y, 3, 0.4, sample_weight=sw)[0], shrinkage_lda(x, y, 3, 0.4)[0])
    mask = np.arange(10) >= 4                                              # a column subset as a mask or indices
    for got, ref in zip(lda_ensemble(x, y, 3, [0.2], [mask]), lda_ensemble(x, y, 3, [0.2], [np.arange(4, 10)])):
        np.testing.assert_allclose(got, ref)
    with pytest.raises(ValueError, match='sample_weight'):
        shrinkage_lda(x, y, 3, 0.4, sample_weight=-sw)
    with pytest.raises(ValueError, match='one per sample'):
        ArraySplit({'audio': x}, y, sw[:5])
    enc = EncoderConfig(kind='mlp', input_shape=[10], widths=[], head_dropout=0.0)
    model = build_model(FusionConfig(method='unimodal', modalities={'audio': enc}, num_classes=3, unimodal='audio'))
    with pytest.raises(ValueError, match="'shrinkage_lda' only"):
        train(model, ArraySplit({'audio': x.astype(np.float32)}, y, sw), ArraySplit({'audio': x}, y),
              TrainConfig(epochs=1, progress=False))


def test_unadapted_rows_meet_the_prior_of_the_other_speakers():
    from centralnet_ros.training.emotion import stack_copies, unadapted_rows
    rng = np.random.default_rng(3)
    spk = np.repeat([3, 8, 9], 20)
    rec = rng.normal(0, 1, (60, 5)) + np.repeat(rng.normal(0, 3, (3, 5)), 20, axis=0)   # speakers far apart
    fast = rec * 1.1 + 0.5                                                 # a speed copy: a voice of its own
    speech = rng.uniform(1.0, 2.0, 60)
    x, _, voices, w = stack_copies([(rec, speech), (fast, speech)], np.zeros(60, np.int64), spk)
    norm = SpeakerNormalisation(prior_mean=[0.0] * 5, prior_std=[1.0] * 5, prior_weight_s=0.0)
    z = unadapted_rows(x, voices, norm, w)
    for s in (3, 8, 9):
        others = spk != s                                                  # their recordings, never the copies
        mean, std = fit_prior(rec[others], spk[others], speech[others])
        rows = voices // 1000 == s
        np.testing.assert_allclose(z[rows], (x[rows] - mean) / std, rtol=1e-5, atol=1e-5)
    own = normalise_by_speaker(x, voices, norm, w)                         # per voice: centred; unadapted: not
    assert np.abs(own[voices == 3000].mean(0)).max() < 0.2 and np.abs(z[voices == 3000].mean(0)).max() > 1.0
    with pytest.raises(ValueError, match='two training speakers'):
        unadapted_rows(x[voices // 1000 == 3], voices[voices // 1000 == 3], norm)


def test_training_normalisation_matches_the_converged_runtime():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(2, 1, (50, 3)), rng.normal(-1, 2, (50, 3))])
    spk = np.repeat([1, 2], 50)
    mean, std = fit_prior(x, spk)
    np.testing.assert_allclose(mean, (x[:50].mean(0) + x[50:].mean(0)) / 2)
    norm = SpeakerNormalisation(prior_mean=mean.tolist(), prior_std=std.tolist(), prior_weight_s=4.0,
                                half_life_s=0.0, default_weight_s=2.0)
    batch = normalise_by_speaker(x, spk, norm)
    ad = VoiceAdaptation(norm)
    for v in x[50:]:
        ad.observe(v, voice_id='2')
    np.testing.assert_allclose(ad.transform(x[50:], voice_id='2'), batch[50:], rtol=1e-5, atol=1e-6)
    assert abs(batch[:50].mean()) < 0.1 and abs(batch[50:].mean()) < 0.1
    with pytest.raises(ValueError, match='prior'):
        SpeakerNormalisation(mode='per_voice')


# --------------------------------------------------------------------------- bundle and runtime

def _bundle(tmp_path, normalisation, licence=''):
    cfg = FusionConfig(method='unimodal', modalities={'audio': EncoderConfig('mlp', [4], [])}, num_classes=3,
                       unimodal='audio')
    model = build_model(cfg)
    manifest = Manifest(format_version=1, task='emotion', labels=['a', 'b', 'c'], model=cfg, licence=licence,
                        modalities={'audio': ModalitySpec(source='audio', input_shape=[4],
                                                          pipeline='emotion_functionals', sample_rate=SR,
                                                          preprocessing=resolve_params('emotion_functionals', {}),
                                                          normalisation=normalisation)})
    return save_bundle(tmp_path / 'b', model, manifest)


def test_bundle_round_trip_keeps_the_normalisation(tmp_path, caplog):
    norm = to_dict(_norm(4, prior_weight_s=7.5, half_life_s=120.0, weight_index=3))
    path = _bundle(tmp_path, norm)
    with caplog.at_level(logging.WARNING):
        loaded = load_bundle(path)
    assert not caplog.records                                               # no extra licence: no warning
    back = from_dict(SpeakerNormalisation, loaded.manifest.modalities['audio'].normalisation)
    assert to_dict(back) == norm and back.half_life_s == 120.0 and back.weight_index == 3
    from centralnet_ros.runtime.perception import Perception, PerceptionConfig, TaskConfig
    p = Perception(PerceptionConfig(tasks={'emotion': TaskConfig(bundle=str(path), trigger='speech_end')}))
    plan = p.tasks['emotion'].plans[0]
    assert isinstance(plan.adaptation, VoiceAdaptation) and plan.adaptation.norm == back
    plan.adaptation.observe(np.ones(4), voice_id='v1')
    assert p.stats()['tasks']['emotion']['adapted_voices'] == {'audio': {'v1': 1.0}}
    assert p.forget_voice('v1') == 1 and p.forget_voice('v1') == 0
    p.close()
    path = _bundle(tmp_path, {**norm, 'half_life': 3}, licence='research only')
    with pytest.raises(ConfigError, match='half_life'):                     # a typo is named when the runtime builds it
        Perception(PerceptionConfig(tasks={'emotion': TaskConfig(bundle=str(path), trigger='speech_end')}))
    with caplog.at_level(logging.WARNING):
        load_bundle(path)
    assert any('research only' in r.getMessage() for r in caplog.records)  # extra licence terms: warned on load


def test_missing_opensmile_extra_is_a_clear_error(monkeypatch):
    from centralnet_ros.features import opensmile as S
    monkeypatch.setitem(sys.modules, 'opensmile', None)                     # as if not installed
    with pytest.raises(S.OptionalDependencyError, match=r"pip install 'centralnet_ros\[opensmile\]'") as info:
        S.OpenSmileFunctionals(feature_set='eGeMAPSv02')
    assert 'non-commercial' in str(info.value)
    with pytest.raises(S.OptionalDependencyError):
        run_pipeline('opensmile_functionals', Window(np.zeros(16000, np.float32), np.zeros(1), sample_rate=SR),
                     {'feature_set': 'ComParE_2016'})
    with pytest.raises(ValueError, match='feature_set'):
        S.OpenSmileFunctionals(feature_set='nope')
