"""EmoDB reader on the real wav files in the data root (speakers 03-14)."""
from __future__ import annotations

import wave

from centralnet_ros import paths
from centralnet_ros.data import emodb
from centralnet_ros.data.registry import DataRootError
import numpy as np
import pytest

ROOT = paths.data_root() / 'emodb'
pytestmark = pytest.mark.needs_data('emodb')


def test_counts_per_emotion_and_speaker():
    utts = emodb.list_utterances(ROOT)
    assert len(utts) == 408
    per_emotion = {}
    per_speaker = {}
    for u in utts:
        per_emotion[u.emotion_name] = per_emotion.get(u.emotion_name, 0) + 1
        per_speaker[u.speaker] = per_speaker.get(u.speaker, 0) + 1
    assert per_emotion == {'anger': 100, 'boredom': 58, 'disgust': 30, 'fear': 54, 'happiness': 54,
                           'sadness': 49, 'neutral': 63}
    assert per_speaker == {3: 49, 8: 58, 9: 43, 10: 38, 11: 55, 12: 35, 13: 61, 14: 69}


def test_label_decoding():
    u = emodb.parse_name(ROOT / 'wav' / '03a01Wa.wav')
    assert (u.speaker, u.text, u.emotion, u.version) == (3, 'a01', 'W', 'a')
    assert u.emotion_name == 'anger' and u.expression == 'angry' and emodb.EMOTIONS[u.label] == 'anger'
    letters = {'W': ('anger', 'angry'), 'L': ('boredom', 'bored'), 'E': ('disgust', 'disgusted'),
               'A': ('fear', 'scared'), 'F': ('happiness', 'happy'), 'T': ('sadness', 'sad'),
               'N': ('neutral', 'neutral')}
    for letter, (emotion, expression) in letters.items():
        u = emodb.parse_name(f'10b02{letter}c.wav')
        assert (u.emotion_name, u.expression) == (emotion, expression)
        assert emodb.EXPRESSIONS[u.label] == expression
    with pytest.raises(ValueError, match=r'03a01Xa\.wav.*WLEAFTN'):
        emodb.parse_name('03a01Xa.wav')
    with pytest.raises(ValueError, match='does not follow'):
        emodb.parse_name('3a01Wa.wav')


def test_reads_sample_rate_and_resamples():
    path = ROOT / 'wav' / '03a01Wa.wav'
    x, rate = emodb.read_wav(path)
    assert rate == 22050 and x.dtype == np.float32 and x.ndim == 1
    assert 0 < np.abs(x).max() <= 1.0             # -32768 occurs: loud anger clips
    y = emodb.load_waveform(path, sample_rate=16000)
    assert abs(y.size - round(x.size * 16000 / 22050)) <= 1
    # same signal: the energy per second is preserved by the band-limited resampling
    np.testing.assert_allclose(np.mean(y ** 2), np.mean(x ** 2), rtol=0.05)


def test_load_dataset_and_loso_folds():
    data = emodb.load_dataset(ROOT, sample_rate=8000)
    assert len(data) == 408 and data.sample_rate == 8000
    assert data.labels.shape == (408,) and set(np.unique(data.labels)) == set(range(7))
    folds = list(emodb.loso_folds(data.speakers))
    assert [spk for spk, _, _ in folds] == [3, 8, 9, 10, 11, 12, 13, 14]
    for spk, train, test in folds:
        assert np.all(data.speakers[test] == spk) and not np.any(data.speakers[train] == spk)
        assert train.size + test.size == 408


def test_bad_files_give_clear_errors(tmp_path):
    with pytest.raises(DataRootError, match='expected layout'):
        emodb.list_utterances(tmp_path)
    wav_dir = tmp_path / 'wav'
    wav_dir.mkdir()
    stereo = wav_dir / '03a01Wa.wav'
    with wave.open(str(stereo), 'wb') as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.zeros(200, '<i2').tobytes())
    with pytest.raises(ValueError, match=r'03a01Wa\.wav: 2 channels, expected mono'):
        emodb.read_wav(stereo)
    (wav_dir / '03a01Wb.wav').write_bytes(b'RIFF0000WAVEjunk')
    with pytest.raises(ValueError, match=r'03a01Wb\.wav: not a readable PCM wav'):
        emodb.read_wav(wav_dir / '03a01Wb.wav')
