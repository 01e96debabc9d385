"""MNIST IDX and FSDD wav readers on the real files, and their errors on damaged copies."""
from __future__ import annotations

import gzip
import re
import wave

from centralnet_ros import paths
from centralnet_ros.data import fsdd, mnist
from centralnet_ros.data.check import format_summary
from centralnet_ros.data.registry import DataRootError
import numpy as np
import pytest

MNIST = paths.data_root() / 'mnist'
FSDD = paths.data_root() / 'fsdd'
needs_mnist = pytest.mark.needs_data('mnist')
needs_fsdd = pytest.mark.needs_data('fsdd')


@needs_mnist
def test_mnist_splits_shapes_and_class_counts():
    summary = mnist.summarize(MNIST)
    assert {s: sum(c.values()) for s, c in summary.counts.items()} == {'train': 60000, 'test': 10000}
    assert summary.counts['test']['1'] == 1135 and summary.counts['train']['5'] == 5421   # MNIST's known counts
    images, labels = mnist.load_mnist(MNIST, 'test')
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and set(np.unique(labels)) == set(range(10))
    assert images.max() == 255 and images[:, 0, 0].max() == 0                  # dark border
    assert 'train' in format_summary(summary)


@needs_mnist
def test_raw_idx_reads_like_gzip(tmp_path):
    raw = tmp_path / 't10k-labels-idx1-ubyte'
    raw.write_bytes(gzip.decompress((MNIST / 't10k-labels-idx1-ubyte.gz').read_bytes()))
    np.testing.assert_array_equal(mnist.read_idx(raw), mnist.read_idx(MNIST / 't10k-labels-idx1-ubyte.gz'))


@needs_mnist
def test_truncated_idx_names_file_and_byte_counts(tmp_path):
    data = gzip.decompress((MNIST / 't10k-images-idx3-ubyte.gz').read_bytes())
    expected = 16 + 10000 * 28 * 28
    assert len(data) == expected
    raw = tmp_path / 't10k-images-idx3-ubyte'
    raw.write_bytes(data[:-1000])
    with pytest.raises(ValueError) as err:
        mnist.read_idx(raw, expected_magic=mnist.IMAGES_MAGIC)
    msg = str(err.value)
    assert str(raw) in msg and str(expected) in msg and str(expected - 1000) in msg and 'truncated' in msg
    gz = tmp_path / 't10k-images-idx3-ubyte.gz'                                 # a download cut short
    blob = (MNIST / 't10k-images-idx3-ubyte.gz').read_bytes()
    gz.write_bytes(blob[:len(blob) // 2])
    with pytest.raises(ValueError) as err:
        mnist.read_idx(gz)
    msg = str(err.value)
    assert str(gz) in msg and str(expected) in msg and 'gzip stream also ends early' in msg
    actual = int(re.search(r'holds (\d+) bytes', msg).group(1))
    assert 0 < actual < expected
    raw.write_bytes(data + b'\0')
    with pytest.raises(ValueError, match='trailing bytes'):
        mnist.read_idx(raw)


@needs_mnist
def test_idx_magic_and_missing_files_are_checked(tmp_path):
    labels = MNIST / 't10k-labels-idx1-ubyte.gz'
    with pytest.raises(ValueError, match=r'magic number 2049 .*expected 2051'):
        mnist.read_idx(labels, expected_magic=mnist.IMAGES_MAGIC)
    bogus = tmp_path / 'x-idx'
    bogus.write_bytes(b'\x89PNG\r\n\x1a\n' + bytes(100))
    with pytest.raises(ValueError, match='not an IDX file'):
        mnist.read_idx(bogus)
    with pytest.raises(DataRootError, match='train-images-idx3-ubyte.gz'):
        mnist.load_mnist(tmp_path, 'train')
    with pytest.raises(DataRootError, match='does not exist'):
        mnist.load_mnist(tmp_path / 'nowhere', 'test')


@needs_fsdd
def test_fsdd_official_split_and_counts():
    summary = fsdd.summarize(FSDD)
    assert summary.counts['train'] == {str(d): 270 for d in range(10)}          # 6 speakers x 45
    assert summary.counts['test'] == {str(d): 30 for d in range(10)}            # 6 speakers x 5
    test_clips = fsdd.list_clips(FSDD, 'test')
    assert {c.index for c in test_clips} == set(range(5))
    assert {c.index for c in fsdd.list_clips(FSDD, 'train')} == set(range(5, 50))
    assert all(c.path.name.startswith(f'{c.digit}_{c.speaker}_') for c in test_clips)


@needs_fsdd
def test_read_wav_gives_float_samples_of_the_file():
    path = FSDD / 'recordings' / '3_theo_10.wav'
    x = fsdd.read_wav(path)
    with wave.open(str(path), 'rb') as w:
        n = w.getnframes()
        first = np.frombuffer(w.readframes(10), '<i2')
    assert x.shape == (n,) and x.dtype == np.float32
    np.testing.assert_array_equal(x[:10] * 32768, first)
    assert -1.0 <= x.min() and x.max() < 1.0 and x.std() > 1e-3


def _write_wav(path, samples, *, rate=8000, channels=1, width=2):
    with wave.open(str(path), 'wb') as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())


@needs_fsdd
def test_read_wav_rejects_wrong_format_naming_the_file(tmp_path):
    pcm = (fsdd.read_wav(FSDD / 'recordings' / '3_theo_10.wav') * 32768).astype('<i2')
    cases = {'rate.wav': ({'rate': 16000}, 'sample rate 16000 Hz, expected 8000'),
             'stereo.wav': ({'channels': 2}, 'expected mono'),
             'eight.wav': ({'width': 1}, '8-bit samples, expected 16-bit')}
    for name, (kw, message) in cases.items():
        data = pcm if kw.get('width', 2) == 2 else (pcm // 256 + 128).astype(np.uint8)
        _write_wav(tmp_path / name, data if kw.get('channels', 1) == 1 else data[: data.size // 2 * 2], **kw)
        with pytest.raises(ValueError, match=message) as err:
            fsdd.read_wav(tmp_path / name)
        assert str(tmp_path / name) in str(err.value)
    good = tmp_path / 'cut.wav'
    _write_wav(good, pcm)
    good.write_bytes(good.read_bytes()[:-100])                                   # truncated data chunk
    with pytest.raises(ValueError, match='truncated') as err:
        fsdd.read_wav(good)
    assert str(good) in str(err.value)


def test_fsdd_layout_errors(tmp_path):
    with pytest.raises(DataRootError, match=re.escape('{digit}_{speaker}_{index}.wav')):
        fsdd.list_clips(tmp_path)
    (tmp_path / 'recordings').mkdir()
    (tmp_path / 'recordings' / 'seven.wav').write_bytes(b'')
    with pytest.raises(DataRootError, match='seven.wav'):
        fsdd.list_clips(tmp_path)
