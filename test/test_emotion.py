"""
Emotion: the EmoDB adapter, the log_mel and face_crop pipelines, the preset and the bundle.

On the real EmoDB files.
"""
from __future__ import annotations

from centralnet_ros import paths
from centralnet_ros.data import emodb
from centralnet_ros.features import audio as A
from centralnet_ros.features import face
from centralnet_ros.features.functionals import emotion_functionals
from centralnet_ros.features.pipelines import resolve_params, run_pipeline, Window
from centralnet_ros.fusion import build_model
from centralnet_ros.training.emotion import DEFAULT_FEATURES, emodb_speaker_split, EmoDBOptions, load_emodb
from centralnet_ros.training.experiment import load_experiment
from centralnet_ros.training.trainer import train
import numpy as np
import pytest

SPEAKERS = [3, 8, 9, 10, 11, 12, 13, 14]


# --------------------------------------------------------------------------- folds

def test_every_speaker_is_tested_once_and_never_elsewhere():
    tested = []
    for fold in range(len(SPEAKERS)):
        tr, va, te = emodb_speaker_split(SPEAKERS, EmoDBOptions(fold=fold))
        assert te not in tr and te not in va and not set(tr) & set(va)
        assert sorted(tr + va + [te]) == SPEAKERS and len(va) == 1
        assert va == [SPEAKERS[(fold + 1) % len(SPEAKERS)]]                # the next speaker, cyclically
        tested.append(te)
    assert tested == SPEAKERS
    tr, va, te = emodb_speaker_split(SPEAKERS, EmoDBOptions(test_speaker=14, val_speakers=[8, 9]))
    assert te == 14 and va == [8, 9] and tr == [3, 10, 11, 12, 13]
    with pytest.raises(ValueError, match='test_speaker'):
        emodb_speaker_split(SPEAKERS, EmoDBOptions(test_speaker=4))
    with pytest.raises(ValueError, match='val_speakers'):
        emodb_speaker_split(SPEAKERS, EmoDBOptions(test_speaker=3, val_speakers=[3]))


# --------------------------------------------------------------------------- adapter on real files

FOLD0 = {'fold': 0, 'speakers': [3, 8, 9, 10, 11, 12]}                  # test 03, val 08, train 09-12


@pytest.fixture(scope='module')
def fold0(data_root):
    return load_emodb(FOLD0, data_root)


@pytest.mark.needs_data('emodb')
def test_emodb_adapter_shapes_and_speakers(fold0, data_root):
    data = fold0
    assert data.label_names == list(emodb.EMOTIONS)
    assert data.info['test_speaker'] == '03' and data.info['val_speakers'] == '08'
    assert data.info['train_speakers'] == '09, 10, 11, 12'
    per_speaker = {}
    for u in emodb.list_utterances(data_root / 'emodb'):
        per_speaker[u.speaker] = per_speaker.get(u.speaker, 0) + 1
    assert (len(data.test), len(data.val)) == (per_speaker[3], per_speaker[8])
    assert len(data.train) == sum(per_speaker[s] for s in (9, 10, 11, 12))
    for split in (data.train, data.val, data.test):
        x = split.inputs['audio']
        assert x.shape[1:] == (5 * 64 + 1 + len(A.PROSODY_NAMES),) and x.dtype == np.float32
        assert np.isfinite(x).all() and set(np.unique(split.labels)) <= set(range(7))
    assert len(np.unique(data.train.labels)) == 7
    # gain copies: train only, each utterance once per gain, the level statistics shifted
    loud = load_emodb({**FOLD0, 'train_gains_db': [6.0]}, data_root)
    assert len(loud.train) == 2 * len(data.train) and len(loud.test) == len(data.test)
    n = len(data.train)
    np.testing.assert_array_equal(loud.train.labels[n:], data.train.labels)
    shift = loud.train.inputs['audio'][n:, :64] - data.train.inputs['audio'][:, :64]     # band means
    expected = np.log(10 ** 0.6) / DEFAULT_FEATURES['std']                 # +6 dB power, fixed std
    assert abs(np.median(shift) - expected) < 1e-3 and np.mean(np.abs(shift - expected) < 0.02) > 0.95
    with pytest.raises(ValueError, match='speakers'):
        load_emodb({'speakers': [3, 4]}, data_root)


@pytest.mark.needs_data('emodb')
def test_speed_copies_train_as_voices_of_their_own(data_root):
    """Speed-perturbed copies: training only, labels kept, the recordings and the prior as without them."""
    norm = {'mode': 'per_voice', 'statistics': 'mean_std'}
    plain = load_emodb({**FOLD0, 'speaker_normalisation': norm}, data_root)
    fast = load_emodb({**FOLD0, 'speaker_normalisation': norm, 'train_speed_factors': [1.1]}, data_root)
    n = len(plain.train)
    assert len(fast.train) == 2 * n and (len(fast.val), len(fast.test)) == (len(plain.val), len(plain.test))
    assert fast.info['train_speed_factors'] == '1.1' and 'train_speed_factors' not in plain.info
    np.testing.assert_array_equal(fast.train.labels[n:], plain.train.labels[:n])
    np.testing.assert_allclose(fast.train.inputs['audio'][:n], plain.train.inputs['audio'], atol=1e-5)
    np.testing.assert_allclose(fast.test.inputs['audio'], plain.test.inputs['audio'], atol=1e-5)
    assert fast.normalisation['audio']['prior_mean'] == plain.normalisation['audio']['prior_mean']   # recordings
    copies = fast.train.inputs['audio'][n:]
    assert np.isfinite(copies).all() and not np.allclose(copies, plain.train.inputs['audio'], atol=1e-2)
    with pytest.raises(ValueError, match='train_speed_factors'):
        load_emodb({**FOLD0, 'train_speed_factors': [3.0]}, data_root)
    # unadapted rows: every training row once more, normalised with the prior of the other speakers, weighed
    both = load_emodb({**FOLD0, 'speaker_normalisation': norm, 'unadapted_weight': 0.5}, data_root)
    assert plain.train.weights is None and both.train.weights.tolist() == [1.0] * n + [0.5] * n
    np.testing.assert_allclose(both.train.inputs['audio'][:n], plain.train.inputs['audio'], atol=1e-5)
    np.testing.assert_array_equal(both.train.labels[n:], plain.train.labels)
    assert not np.allclose(both.train.inputs['audio'][n:], plain.train.inputs['audio'], atol=1e-2)
    with pytest.raises(ValueError, match='unadapted_weight'):
        load_emodb({**FOLD0, 'unadapted_weight': 0.5}, data_root)           # needs speaker normalisation


def test_speed_perturb_scales_duration_and_pitch():
    rate = 16000
    tone = np.sin(2 * np.pi * 200.0 * np.arange(rate) / rate).astype(np.float32)
    for factor in (0.9, 1.1):
        y = A.speed_perturb(tone, factor=factor)
        assert y.dtype == np.float32 and abs(len(y) - rate / factor) <= 1
        spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
        assert abs(np.argmax(spectrum) * rate / len(y) - 200.0 * factor) < 2.0      # heard at the same rate
    with pytest.raises(ValueError, match='speed factor'):
        A.speed_perturb(tone, factor=0.2)


@pytest.mark.needs_data('emodb')
def test_log_mel_input_reproduces_training_arrays(fold0, data_root):
    """The log_mel pipeline (resample once to its sample_rate, then the pipeline) gives the training arrays."""
    params = resolve_params('log_mel', DEFAULT_FEATURES)
    rate16 = params['sample_rate']
    utts = [u for u in emodb.list_utterances(data_root / 'emodb') if u.speaker == 3]
    for i in (0, 7, 23):
        raw, rate = emodb.read_wav(utts[i].path)                       # at the recording's rate, as a microphone
        x16 = A.resample_audio(raw, orig_sample_rate=rate, new_sample_rate=rate16)  # the runtime's step
        x = run_pipeline('log_mel', Window(x16, np.zeros(1, np.int64), sample_rate=rate16), params)
        assert x.shape == fold0.test.inputs['audio'][i].shape
        np.testing.assert_allclose(x, fold0.test.inputs['audio'][i], atol=1e-5)
        assert fold0.test.labels[i] == utts[i].label
        # the map layout (for a CNN) is the same front end before the statistics
        m = run_pipeline('log_mel', Window(x16, np.zeros(1), sample_rate=rate16),
                         {**params, 'layout': 'mel_time'})
        np.testing.assert_allclose(A.log_mel_functionals(m, floor_level=(np.log(params['floor']) - params['mean'])
                                                         / params['std']), x[:5 * 64 + 1], atol=1e-5)
        if rate != rate16:                                   # the pipeline refuses another rate
            with pytest.raises(ValueError, match='resample it once'):
                run_pipeline('log_mel', Window(raw, np.zeros(1), sample_rate=rate), params)


def test_log_mel_features_depend_only_on_their_own_samples():
    rng = np.random.default_rng(0)
    kw = {**DEFAULT_FEATURES, 'layout': 'mel_time'}
    head = rng.normal(0, 0.1, 16000).astype(np.float32)
    a = A.log_mel_model_input(np.concatenate([head, np.zeros(8000, np.float32)]), **kw)
    b = A.log_mel_model_input(np.concatenate([head, rng.normal(0, 0.5, 16000).astype(np.float32)]), **kw)
    k = 1 + (16000 - 400) // 160                                        # frames inside the shared first second
    np.testing.assert_allclose(a[:, :k], b[:, :k], atol=1e-6)
    assert np.abs(a[:, k + 5:] - b[:, k + 5:]).max() > 1.0
    # a gain is an offset of ln(gain^2) / std on every non-floored value (no per-clip rescaling)
    loud = A.log_mel_model_input(2 * head, **kw)
    quiet = A.log_mel_model_input(head, **kw)
    np.testing.assert_allclose(loud[:, :k] - quiet[:, :k], np.log(4.0) / kw['std'], atol=1e-4)
    # a longer utterance is cut, a shorter one zero-padded at the end, to duration_s
    assert A.log_mel_model_input(np.ones(40000, np.float32) * 0.1, **kw).shape == a.shape
    with pytest.raises(ValueError, match='sample_rate'):
        A.log_mel_input(Window(head, np.zeros(1)), **kw)
    with pytest.raises(ValueError, match='std'):
        A.log_mel_model_input(head, **{**kw, 'std': 0.0})
    assert A.log_mel_model_input(head, **{**kw, 'layout': 'channel_mel_time'}).shape == (1, *a.shape)


def test_yin_pitch_and_prosody():
    sr = 16000
    t = np.arange(sr) / sr
    for f0 in (80.0, 150.0, 310.0):
        x = (0.3 * np.sin(2 * np.pi * f0 * t) + 0.1 * np.sin(4 * np.pi * f0 * t)).astype(np.float32)
        est, aper, rms = A.yin_pitch(x, sample_rate=sr, frame_length=534)
        assert (est > 0).all() and abs(np.median(est) / f0 - 1) < 0.02
    noise = np.random.default_rng(0).normal(0, 0.1, sr)
    assert (A.yin_pitch(noise, sample_rate=sr, frame_length=534)[0] == 0).mean() > 0.9
    tone = (0.3 * np.sin(2 * np.pi * 200.0 * t)).astype(np.float32)
    p = dict(zip(A.PROSODY_NAMES, A.prosody_functionals(tone, sample_rate=sr)))
    assert abs(p['f0_mean'] - np.log2(2.0)) < 0.02 and p['f0_std'] < 0.01 and p['voiced_fraction'] > 0.95
    p2 = dict(zip(A.PROSODY_NAMES, A.prosody_functionals(0.5 * tone, sample_rate=sr)))
    assert abs(p2['f0_mean'] - p['f0_mean']) < 1e-3                    # pitch does not depend on level
    assert abs(p['energy_mean'] - p2['energy_mean'] - np.log(2) / 5) < 1e-3
    assert not A.prosody_functionals(np.zeros(sr, np.float32), sample_rate=sr).any()


# --------------------------------------------------------------------------- face crops

def _znorm(patch):
    p = patch.astype(np.float32)
    return (p - p.mean()) / (p.std() + 1e-6)


def test_face_crop_geometry_given_a_box():
    import cv2
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    box = (40, 30, 48, 36)                                              # x, y, w, h
    crop = face.crop_face(img, box, size=24, margin=0.0)
    assert crop.shape == (24, 24) and crop.dtype == np.float32
    assert abs(crop.mean()) < 1e-5 and abs(crop.std() - 1) < 1e-3    # z-normalised
    np.testing.assert_allclose(crop, _znorm(cv2.resize(grey[30:66, 40:88], (24, 24), interpolation=cv2.INTER_AREA)),
                               atol=1e-4)
    wide = face.crop_face(img, box, size=24, margin=0.25)              # 12 / 9 pixels more on each side
    np.testing.assert_allclose(wide, _znorm(cv2.resize(grey[21:75, 28:100], (24, 24), interpolation=cv2.INTER_AREA)),
                               atol=1e-4)
    white = np.zeros((120, 160, 3), np.uint8)
    white[30:66, 40:88] = 255                                           # a bright box on black
    ring = face.crop_face(white, box, size=24, margin=0.25)
    assert ring[0, 0] < 0 < ring[12, 12]                                # border from outside, centre from inside
    assert not face.crop_face(white, box, size=24, margin=0.0).any()   # flat crop: zeros, not NaN
    assert face.expand_box(box, margin=0.25, image_size=(160, 120)) == (28, 21, 100, 75)
    assert face.expand_box((150, 110, 20, 20), margin=0.5, image_size=(160, 120)) == (140, 100, 160, 120)
    assert list(face.largest_box(np.array([[0, 0, 10, 10], [5, 5, 30, 20], [1, 1, 20, 20]]))) == [5, 5, 30, 20]
    assert face.largest_box(np.zeros((0, 4))) is None
    with pytest.raises(ValueError, match='positive width'):
        face.crop_face(img, (10, 10, 0, 5))


class _StubDetector:

    def __init__(self, boxes):
        self.boxes = np.asarray(boxes, np.int64).reshape(-1, 4)

    def detect(self, grey):
        assert grey.ndim == 2 and grey.dtype == np.uint8
        return self.boxes


def test_face_crop_input_without_and_with_a_face(monkeypatch):
    frames = np.random.default_rng(0).integers(0, 255, (2, 120, 160, 3), dtype=np.uint8)
    window = Window(frames, np.array([0, 33_000_000]))
    monkeypatch.setattr(face, '_detector', lambda *a: _StubDetector([]))
    assert face.face_crop_input(window, size=32) is None               # the runtime marks the face absent
    zeros = face.face_crop_input(window, size=32, on_missing='zeros')
    assert zeros.shape == (1, 32, 32) and not zeros.any()
    monkeypatch.setattr(face, '_detector', lambda *a: _StubDetector([[0, 0, 20, 20], [50, 40, 60, 60]]))
    x = face.face_crop_input(window, size=32, margin=0.0)
    expect = face.crop_face(frames[-1], (50, 40, 60, 60), size=32, margin=0.0)   # newest frame, largest box
    np.testing.assert_allclose(x[0], expect)


def test_haar_detector_is_found_or_says_why_not():
    import cv2
    try:
        detector = face.HaarFaceDetector()
    except face.FaceDetectorUnavailable as exc:
        assert 'CascadeClassifier' in str(exc) or face.FACE_CASCADE in str(exc)
        assert not hasattr(cv2, 'CascadeClassifier') or not any(p.is_file() for p in face.cascade_search_paths())
        return
    blank = np.full((240, 320), 128, np.uint8)                           # no face in a flat image
    assert len(detector.detect(blank)) == 0
    assert face.face_crop_input(Window(np.stack([blank] * 3, -1)[None], np.zeros(1))) is None


# --------------------------------------------------------------------------- preset, training, bundle

def test_emotion_preset_is_audio_only_with_expression_labels():
    cfg = load_experiment('emodb_emotion')
    assert cfg.bundle.method == 'unimodal:audio' and list(cfg.modalities) == ['audio']
    assert set(cfg.bundle.label_map) == set(emodb.EMOTIONS)
    assert [cfg.bundle.label_map[e] for e in emodb.EMOTIONS] == list(emodb.EXPRESSIONS)
    assert 'audio only' in cfg.bundle.notes.lower() and 'face' in cfg.bundle.notes
    params = cfg.bundle.modalities['audio']['preprocessing']
    assert params == cfg.dataset_options['features']                   # one parameter set for both sides
    assert cfg.bundle.modalities['audio']['pipeline'] == cfg.dataset_options['pipeline'] == 'emotion_functionals'
    x = emotion_functionals(np.zeros(100, np.float32) + 0.01, **params)
    assert list(x.shape) == cfg.modalities['audio'].input_shape
    build_model(cfg.fusion_config(cfg.bundle.method))


@pytest.mark.needs_data('emodb')
def test_short_training_is_well_above_chance(data_root):
    cfg = load_experiment('emodb_emotion', overrides={'train.epochs': 5, 'train.progress': False})
    options = {k: v for k, v in cfg.dataset_options.items() if k != 'test_speaker'}
    data = load_emodb({**options, **FOLD0}, data_root)                # the preset's functionals, per speaker
    assert data.train.inputs['audio'].shape[1:] == tuple(cfg.modalities['audio'].input_shape)
    record = data.normalisation['audio']
    assert record['mode'] == 'per_voice' and len(record['prior_mean']) == cfg.modalities['audio'].input_shape[0]
    model = build_model(cfg.fusion_config(cfg.bundle.method))
    assert data.input_names['audio'][-1] == 'active_s' and len(data.input_names['audio']) == record['weight_index'] + 1
    result = train(model, data.train, data.val, cfg.train, seed=0, test_split=data.test, input_names=data.input_names)
    assert result.test_metric > 0.4, result.test_metric               # chance 1/7, majority class ~25 %


@pytest.mark.needs_data('emodb')
def test_shipped_emotion_bundle_classifies_the_held_out_speaker(data_root):
    from centralnet_ros.runtime.engine import TaskModel
    bundle_dir = paths.models_dir() / 'emotion'
    if not (bundle_dir / 'manifest.yaml').is_file():
        pytest.fail(f'no shipped emotion bundle in {bundle_dir}; run `centralnet train --task emotion`')
    from centralnet_ros.config import from_dict
    from centralnet_ros.features.normalisation import SpeakerNormalisation
    from centralnet_ros.runtime.adaptation import VoiceAdaptation
    model = TaskModel(bundle_dir, backend='torch', warmup=0)
    m = model.manifest
    adapt = VoiceAdaptation(from_dict(SpeakerNormalisation, m.modalities['audio'].normalisation))
    assert m.task == 'emotion' and list(m.modalities) == ['audio']   # no face modality in this bundle
    assert sorted(m.label_map.values()) == sorted(emodb.EXPRESSIONS)
    test_speaker = int(m.evaluation['test_speaker'])
    spec = m.modalities['audio']
    utts = [u for u in emodb.list_utterances(data_root / 'emodb') if u.speaker == test_speaker][::2]
    correct = 0
    for u in utts:
        raw, rate = emodb.read_wav(u.path)
        x16 = A.resample_audio(raw, orig_sample_rate=rate, new_sample_rate=int(spec.sample_rate))  # as the runtime
        x = run_pipeline(spec.pipeline, Window(x16, np.zeros(1, np.int64), sample_rate=spec.sample_rate),
                         spec.preprocessing)
        decision = model.classify({'audio': adapt(x), 'face': None})  # adapting to the voice; a face is ignored
        correct += decision.label == u.emotion_name
    assert len(utts) >= 20
    assert correct / len(utts) > 0.4, f'{correct}/{len(utts)}'         # chance: 1/7
    decision = m.decision                                               # a calibrated threshold, and on what
    assert decision['mode'] == 'utterance' and 0.0 < decision['threshold'] < 1.0
    cal = decision['calibration']
    assert cal['negative_rate'] <= cal['target_false_alarm_rate'] and f'test speaker {test_speaker}' in cal['data']
