"""The shared PCM wav reader: sample widths, channel handling, and refusal of bad files."""
from __future__ import annotations

import wave

from centralnet_ros.data.wav import read_pcm_wav
import numpy as np
import pytest


def _write(path, samples: np.ndarray, *, width: int, rate: int = 8000) -> None:
    with wave.open(str(path), 'wb') as w:
        w.setnchannels(samples.shape[1])
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())


def test_widths_and_channel_average(tmp_path):
    x16 = np.array([[0, 16384], [-32768, 32767]], dtype='<i2')
    _write(tmp_path / 'a.wav', x16, width=2)
    y, rate = read_pcm_wav(tmp_path / 'a.wav', channels='average')
    assert rate == 8000
    np.testing.assert_allclose(y, [(0 + 0.5) / 2, (-1 + 32767 / 32768) / 2])
    x8 = np.array([[128], [255], [0]], dtype=np.uint8)
    _write(tmp_path / 'b.wav', x8, width=1)
    np.testing.assert_allclose(read_pcm_wav(tmp_path / 'b.wav', bits=(8,))[0], [0, 127 / 128, -1])
    x32 = np.array([[1 << 30]], dtype='<i4')
    _write(tmp_path / 'c.wav', x32, width=4)
    np.testing.assert_allclose(read_pcm_wav(tmp_path / 'c.wav', bits=(32,))[0], [0.5])


def test_bad_files_are_refused_with_the_reason(tmp_path):
    stereo = np.zeros((4, 2), dtype='<i2')
    _write(tmp_path / 's.wav', stereo, width=2)
    with pytest.raises(ValueError, match=r's\.wav: 2 channels, expected mono'):
        read_pcm_wav(tmp_path / 's.wav')
    with pytest.raises(ValueError, match='sample rate 8000 Hz, expected 16000 Hz'):
        read_pcm_wav(tmp_path / 's.wav', sample_rate=16000, channels='average')
    with pytest.raises(ValueError, match='8-bit samples, expected 16-bit PCM'):
        _write(tmp_path / 'e.wav', np.zeros((3, 1), np.uint8), width=1)
        read_pcm_wav(tmp_path / 'e.wav')
    mono = np.arange(100, dtype='<i2').reshape(-1, 1)
    _write(tmp_path / 't.wav', mono, width=2)
    data = (tmp_path / 't.wav').read_bytes()
    (tmp_path / 't.wav').write_bytes(data[:-50])
    with pytest.raises(ValueError, match='truncated or empty: header says 100 frames'):
        read_pcm_wav(tmp_path / 't.wav')
    (tmp_path / 'n.wav').write_bytes(b'not a wav at all')
    with pytest.raises(ValueError, match='not a readable PCM wav'):
        read_pcm_wav(tmp_path / 'n.wav')
