"""
Tests of the speech task on the real AVLetters files.

Adapter, protocols, runtime-pipeline parity, lip augmentation, presets, the shipped
bundle, and a short training run.
"""
from __future__ import annotations

from centralnet_ros import paths
from centralnet_ros.bundle.io import read_manifest
from centralnet_ros.data import avletters
from centralnet_ros.features import htk
from centralnet_ros.features.audio import resample_audio
from centralnet_ros.features.pipelines import run_pipeline, Window
from centralnet_ros.features.speech import (lip_frames_to_input, lip_input, mfcc_frames_to_input, mfcc_input,
                                            normalise_mfcc_map)
from centralnet_ros.training import speech
import cv2
import numpy as np
import pytest
import torch

ROOT = paths.data_root()
AV_ROOT = ROOT / 'avletters'
pytestmark = pytest.mark.needs_data('avletters')


@pytest.fixture(scope='module')
def samples():
    return avletters.list_samples(AV_ROOT)


SIZE = [18, 24]      # the presets' lip size (building the 60 x 80 default for all 780 takes longer)
OPTIONS = speech.AVLettersOptions(video_size=SIZE)


@pytest.fixture(scope='module')
def data():
    torch.set_num_threads(1)
    return speech.load_avletters({'video_size': SIZE}, ROOT)     # speaker_dependent, seed 0


def _window(frames, sample_rate=None):
    return Window(data=frames, stamps_ns=np.zeros(len(frames), np.int64), sample_rate=sample_rate)


# ------------------------------------------------------------------------------ adapter

def test_speaker_dependent_shapes_and_sizes(data):
    assert data.label_names == list(avletters.LETTERS)
    assert len(data.train) + len(data.val) == 600 and len(data.test) == 180
    assert len(data.val) == 52                                     # 2 per letter carved from the 600
    for split in (data.train, data.val, data.test):
        assert split.inputs['mfcc'].shape[1:] == (1, 26, 24)
        assert split.inputs['lip_video'].shape[1:] == (1, 12, *SIZE)
        assert split.inputs['mfcc'].dtype == np.float32 and split.inputs['lip_video'].dtype == np.float32
        assert split.labels.min() >= 0 and split.labels.max() <= 25
    assert np.bincount(data.val.labels, minlength=26).tolist() == [2] * 26
    assert 'speaker-dependent' in data.info['protocol']
    assert speech.AVLettersOptions().video_size == [60, 80]       # AVLetters' own size by default


def test_speaker_dependent_split_is_disjoint_and_seeded(samples):
    arrays = speech.avletters_arrays(ROOT, OPTIONS)
    parts = {}
    for seed in (0, 1):
        opts = speech.AVLettersOptions(seed=seed)
        tr, va, te, _ = speech.protocol_indices(arrays.labels, arrays.speaker, arrays.speakers, opts, samples)
        assert not set(tr) & set(va) and not set(tr) & set(te) and not set(va) & set(te)
        assert len(tr) + len(va) + len(te) == 780 and len(te) == 180
        # every speaker appears in the test part (speaker-dependent)
        assert len(set(arrays.speaker[te].tolist())) == 10
        parts[seed] = te
    assert not np.array_equal(parts[0], parts[1])                  # the seed draws another split


def test_loso_folds_leave_one_speaker_out(samples):
    arrays = speech.avletters_arrays(ROOT, OPTIONS)
    assert len(arrays.speakers) == 10
    tested = []
    for fold in range(10):
        opts = speech.AVLettersOptions(protocol='loso', fold=fold)
        tr, va, te, info = speech.protocol_indices(arrays.labels, arrays.speaker, arrays.speakers, opts)
        assert len(te) == 78 and len(va) == 78 and len(tr) == 624
        assert set(arrays.speaker[te].tolist()) == {fold}
        assert fold not in set(arrays.speaker[tr].tolist()) | set(arrays.speaker[va].tolist())
        assert set(arrays.speaker[va].tolist()) == {(fold + 1) % 10}
        assert not set(tr) & set(va) and len(set(tr) | set(va) | set(te)) == 780
        assert info['test_speaker'] == arrays.speakers[fold]
        tested.extend(te.tolist())
    assert sorted(tested) == list(range(780))                     # every sample tested exactly once


def test_adapter_rejects_bad_options():
    with pytest.raises(ValueError, match='fold'):
        speech.load_avletters({'protocol': 'loso', 'fold': 10}, ROOT)
    with pytest.raises(ValueError, match='protocol'):
        speech.load_avletters({'protocol': 'random'}, ROOT)
    with pytest.raises(ValueError, match='unknown'):
        speech.load_avletters({'folds': 3}, ROOT)


# ------------------------------------------------------------------------ pipeline parity

def test_lip_pipeline_reproduces_training_arrays(samples):
    """
    The runtime lip_video pipeline on the raw .mat frames gives the training tensors exactly.

    This holds whether the frames arrive grey or as RGB.
    """
    arrays = speech.avletters_arrays(ROOT, OPTIONS)
    spec = read_manifest(paths.models_dir() / 'speech').modalities['lip_video']       # the manifest alone
    params = spec.preprocessing
    assert [params['height'], params['width']] == SIZE
    for i in (0, 333, 779):
        raw = avletters.read_lips(samples[i].lips_path)                           # (T, 60, 80) uint8
        expected = arrays.lip_video[i]                                            # (1, 12, 18, 24)
        np.testing.assert_array_equal(lip_input(_window(raw), **params), expected)
        rgb = np.stack([cv2.cvtColor(f, cv2.COLOR_GRAY2RGB) for f in raw])       # (T, 60, 80, 3)
        np.testing.assert_array_equal(run_pipeline(spec.pipeline, _window(rgb), params), expected)
        assert expected.shape == (1, 12, *SIZE)
        np.testing.assert_allclose(expected[0].mean(axis=(1, 2)), 0, atol=1e-5)   # per-frame z-normalised
        np.testing.assert_allclose(expected[0].std(axis=(1, 2)), 1, atol=1e-3)


def test_lip_pipeline_at_avletters_size(samples):
    """
    At the default 60 x 80 the frames are not resized, and a camera crop twice as large gives the same input.

    The input is the reader's preprocessing plus a channel axis.
    """
    raw = avletters.read_lips(samples[42].lips_path)                              # (T, 60, 80)
    out = lip_input(_window(raw))
    assert out.shape == (1, 12, 60, 80)
    np.testing.assert_array_equal(out[0], avletters.preprocess_video(raw))
    big = raw.repeat(2, axis=1).repeat(2, axis=2)                                 # (T, 120, 160)
    np.testing.assert_allclose(lip_input(_window(big)), out, atol=1e-4)


def test_mfcc_tail_reproduces_training_arrays(samples):
    """
    Training tensors = the pipeline's tail, with the shipped manifest's parameters, on the HTK frames.

    AVLetters has no waveforms, so the front end itself is compared with the files in
    benchmarks/results/htk_parity.md, not here.
    """
    arrays = speech.avletters_arrays(ROOT, OPTIONS)
    p = read_manifest(paths.models_dir() / 'speech').modalities['mfcc'].preprocessing
    for i in (0, 400, 779):
        frames = avletters.read_audio(samples[i].audio_path)                     # (T, 26)
        np.testing.assert_array_equal(mfcc_frames_to_input(frames, num_frames=p['num_frames'],
                                                           mfcc_norm=p['mfcc_norm']), arrays.mfcc[i])
        # the tail is the reader's own preprocessing plus a channel axis (no normalisation by default)
        np.testing.assert_array_equal(arrays.mfcc[i][0], avletters.preprocess_audio(frames))


@pytest.mark.needs_data('fsdd')
def test_mfcc_pipeline_from_waveform_runs_the_same_tail():
    """On the robot the audio starts as a waveform: HTK front end, then the same tail."""
    from scipy.io import wavfile
    wav = sorted((ROOT / 'fsdd' / 'recordings').glob('*.wav'))
    rate, pcm = wavfile.read(wav[0])                                               # 8 kHz int16
    x8 = pcm.astype(np.float32) / 32768.0
    rate22 = htk.AVLETTERS_CONFIG.sample_rate
    x = resample_audio(x8, orig_sample_rate=rate, new_sample_rate=rate22)          # once, as the runtime does
    out = run_pipeline('htk_mfcc', _window(x, sample_rate=rate22), {'num_frames': 24})
    assert out.shape == (1, 26, 24) and np.all(np.isfinite(out))
    frames = htk.mfcc_e_d(x8, sample_rate=rate)                                    # (T, 26), resampled inside
    np.testing.assert_array_equal(out, mfcc_frames_to_input(frames))
    assert out[0, 12].max() == pytest.approx(1.0, abs=0.05)                        # energy normalised per clip
    norm = mfcc_input(_window(x, sample_rate=rate22), mfcc_norm='utterance')
    np.testing.assert_allclose(norm[0].mean(axis=1), 0, atol=1e-4)
    with pytest.raises(ValueError, match='resample it once'):
        mfcc_input(_window(x))
    with pytest.raises(ValueError, match='22050 Hz but got audio at 8000 Hz'):   # one resampling, not two
        mfcc_input(_window(x8, sample_rate=rate))
    with pytest.raises(ValueError, match='shorter than one'):
        mfcc_input(_window(x[:100], sample_rate=rate22))
    with pytest.raises(ValueError, match='mono'):
        mfcc_input(_window(np.stack([x, x, x]), sample_rate=rate22))
    with pytest.raises(ValueError, match='unknown HTKConfig'):
        mfcc_input(_window(x, sample_rate=rate22), htk={'n_mels': 40})


def test_normalise_mfcc_map_is_per_row():
    x = np.arange(26 * 24, dtype=np.float32).reshape(26, 24) ** 1.5
    y = normalise_mfcc_map(x, mfcc_norm='utterance')
    np.testing.assert_allclose(y.mean(axis=1), 0, atol=1e-4)
    np.testing.assert_allclose(y.std(axis=1), 1, atol=1e-3)
    np.testing.assert_array_equal(normalise_mfcc_map(x, mfcc_norm='none'), x)
    np.testing.assert_allclose(normalise_mfcc_map(3 * x + 7, mfcc_norm='utterance'), y, atol=1e-4)
    with pytest.raises(ValueError, match='mfcc_norm'):
        normalise_mfcc_map(x, mfcc_norm='global')


def test_lip_frames_reject_bad_shapes():
    with pytest.raises(ValueError, match='RGB or'):
        lip_frames_to_input(np.zeros((4, 60, 80, 2), np.uint8))
    with pytest.raises(ValueError, match='empty'):
        lip_frames_to_input(np.zeros((0, 60, 80), np.uint8))


# ------------------------------------------------------------------------- augmentation

def test_lip_augmentation(data):
    batch = {'lip_video': data.train.inputs['lip_video'][:4], 'mfcc': data.train.inputs['mfcc'][:4]}
    aug = speech.make_augmentation('lip_video')
    out = aug(batch, np.random.default_rng(0))
    assert out['mfcc'] is batch['mfcc']                                            # other modality untouched
    assert out['lip_video'].shape == batch['lip_video'].shape
    assert not np.allclose(out['lip_video'], batch['lip_video'], atol=1e-2)
    np.testing.assert_allclose(out['lip_video'].mean(axis=(3, 4)), 0, atol=1e-4)   # still z-normalised
    np.testing.assert_allclose(out['lip_video'].std(axis=(3, 4)), 1, atol=1e-3)
    again = aug(batch, np.random.default_rng(0))
    np.testing.assert_array_equal(again['lip_video'], out['lip_video'])             # seeded
    # with every perturbation off and the whole image kept, the hook is the identity
    still = speech.lip_augmentation(brightness=0.0, contrast=0.0, gradient=0.0, gamma=0.0, min_crop_area=1.0)
    np.testing.assert_allclose(still(batch, np.random.default_rng(1))['lip_video'], batch['lip_video'], atol=1e-4)
    with pytest.raises(ValueError, match='B, 1, T, H, W'):
        aug({'lip_video': batch['lip_video'][:, 0]}, np.random.default_rng(0))
    assert speech.make_augmentation(None) is None
    with pytest.raises(KeyError, match='unknown augmentation'):
        speech.make_augmentation('mixup')


# ------------------------------------------------------------------------ presets, bundle

def test_presets_match_the_adapter():
    from centralnet_ros.training.experiment import load_experiment
    cfg = load_experiment('avletters')
    assert cfg.dataset == 'avletters' and cfg.num_classes == 26
    assert set(cfg.methods) >= {'unimodal:mfcc', 'unimodal:lip_video', 'early', 'late', 'gmu', 'moddrop',
                                'centralnet'}
    assert cfg.train.weight_decay > 0 and cfg.train.optimizer == 'adam' and cfg.train.schedule == 'step'
    opts = speech.AVLettersOptions(**cfg.dataset_options)
    h, w = opts.video_size
    assert cfg.modalities['mfcc'].input_shape == [1, 26, opts.audio_frames]
    assert cfg.modalities['lip_video'].input_shape == [1, opts.video_frames, h, w]
    bundle_cfg = load_experiment('avletters_speech')
    spec = bundle_cfg.bundle
    assert spec.task == 'speech'
    assert spec.modalities['mfcc']['pipeline'] == 'htk_mfcc' and spec.modalities['mfcc']['source'] == 'audio'
    assert spec.modalities['lip_video']['pipeline'] == 'lip_video'
    assert spec.modalities['lip_video']['source'] == 'image'
    bopts = speech.AVLettersOptions(**bundle_cfg.dataset_options)
    lip_pp = dict(spec.modalities['lip_video']['preprocessing'])
    from centralnet_ros.features.mouth import MouthStage
    MouthStage(**lip_pp.pop('mouth'))                       # the mouth stage's parameters (features/mouth.py)
    assert lip_pp == {'num_frames': bopts.video_frames, 'height': bopts.video_size[0], 'width': bopts.video_size[1]}
    assert spec.modalities['mfcc']['preprocessing'] == {'num_frames': bopts.audio_frames,
                                                        'mfcc_norm': bopts.mfcc_norm}


def test_shipped_speech_bundle_runs_its_pipelines(samples):
    from centralnet_ros.bundle import load_bundle
    path = paths.models_dir() / 'speech'
    if not (path / 'manifest.yaml').exists():
        pytest.fail(f'no speech bundle at {path}; run `centralnet train --task speech`')
    bundle = load_bundle(path)
    man = bundle.manifest
    assert man.task == 'speech' and man.labels[:26] == list(avletters.LETTERS)
    assert man.labels[26:] in ([], ['not_a_letter'])                  # the rejection class, when trained
    assert man.metrics.get('test_accuracy', man.metrics.get('test_macro_accuracy')) > 0.8
    assert 'speaker-dependent' in man.evaluation['protocol']
    _, test_idx = avletters.speaker_dependent_split(samples, n_test=man.evaluation['test_samples'],
                                                    seed=man.evaluation['split_seed'])
    held_out = [samples[i] for i in test_idx[::6]]                     # 30 held-out utterances, all letters
    correct = 0
    for sample in held_out:
        frames = avletters.read_lips(sample.lips_path)
        lips = run_pipeline(man.modalities['lip_video'].pipeline, _window(frames),
                            man.modalities['lip_video'].preprocessing)
        assert list(lips.shape) == man.modalities['lip_video'].input_shape
        p = man.modalities['mfcc'].preprocessing
        mfcc = mfcc_frames_to_input(avletters.read_audio(sample.audio_path), num_frames=p['num_frames'],
                                    mfcc_norm=p['mfcc_norm'])
        assert list(mfcc.shape) == man.modalities['mfcc'].input_shape
        with torch.inference_mode():
            bundle.model.eval()
            logits = bundle.model({'mfcc': torch.from_numpy(mfcc[None]),
                                   'lip_video': torch.from_numpy(lips[None])}).logits
        correct += int(man.labels[int(logits.argmax())] == sample.letter)
    assert correct / len(held_out) > 5 / 26, f'{correct}/{len(held_out)} held-out letters right (chance 1/26)'


# --------------------------------------------------------------------------- training

def test_mfcc_cnn_learns_well_above_chance():
    """The MFCC CNN for a few epochs on the real speaker-dependent split: far above 1/26."""
    from centralnet_ros.encoders import EncoderConfig
    from centralnet_ros.fusion import FusionConfig, build_model
    from centralnet_ros.training.trainer import TrainConfig, train
    torch.set_num_threads(1)
    d = speech.load_avletters({'modalities': ['mfcc'], 'video_size': SIZE}, ROOT)
    enc = EncoderConfig(kind='cnn2d', input_shape=[1, 26, 24], widths=[16, 24, 32, 48], head_dropout=0.2)
    model = build_model(FusionConfig(method='unimodal', unimodal='mfcc', modalities={'mfcc': enc}, num_classes=26))
    cfg = TrainConfig(epochs=6, batch_size=32, lr=3e-3, weight_decay=1e-4, schedule='step', step_size=4,
                      progress=False, num_threads=1)
    result = train(model, d.train, d.val, cfg, seed=0, test_split=d.test)
    assert result.test_metric > 0.3, result.test_metric                    # chance is 1/26 = 3.8 %


def test_speech_bundle_feeds_the_front_end_at_its_own_rate():
    """
    The runtime resamples the microphone once, to the rate the HTK front end analyses at.

    (A bundle saying 16 kHz made the runtime resample to 16 kHz and the front end again to
    22.05 kHz, so a 44.1/48 kHz microphone lost everything above 8 kHz.)
    """
    spec = read_manifest(paths.models_dir() / 'speech').modalities['mfcc']
    assert spec.pipeline == 'htk_mfcc'
    assert spec.sample_rate == spec.preprocessing['htk']['sample_rate'] == htk.AVLETTERS_CONFIG.sample_rate
    # a 9 kHz tone from a 48 kHz microphone reaches the front end (the top mel channels), as it did not before
    from centralnet_ros.features.audio import resample_audio
    tone = 0.3 * np.sin(2 * np.pi * 9000 * np.arange(48000) / 48000)
    once = resample_audio(tone, orig_sample_rate=48000, new_sample_rate=int(spec.sample_rate))
    twice = resample_audio(resample_audio(tone, orig_sample_rate=48000, new_sample_rate=16000),
                           orig_sample_rate=16000, new_sample_rate=22050)
    assert np.sqrt(np.mean(once[1000:-1000] ** 2)) > 0.2 > 0.01 > np.sqrt(np.mean(twice[1000:-1000] ** 2))
