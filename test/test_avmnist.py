"""
AV-MNIST builder on a small real subset.

Pairing by digit and split, PCA energy removal, audio maps equal to the features of
the paired wav, caching, errors.
"""
from __future__ import annotations

import dataclasses
import re
import shutil

from centralnet_ros import paths
from centralnet_ros.data import avmnist as av
from centralnet_ros.data import fsdd, mnist
from centralnet_ros.data.registry import DataRootError
from centralnet_ros.features.audio import fix_length, log_mel_spectrogram
import numpy as np
import pytest

ROOT = paths.data_root()
pytestmark = pytest.mark.needs_data('mnist', 'fsdd')
SMALL = av.AVMNISTConfig(n_train=500, n_val=150, n_test=300, seed=3)


@pytest.fixture(scope='module')
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp('avmnist-cache')


@pytest.fixture(scope='module')
def data(cache):
    return av.load_avmnist(SMALL, root=ROOT, cache_dir=cache)


@pytest.fixture(scope='module')
def mnist_train():
    return mnist.load_mnist(ROOT / 'mnist', 'train')


def test_shapes_dtypes_and_standardisation(data):
    n_mels, n_frames = SMALL.audio_shape
    assert (n_mels, n_frames) == (24, 24)
    for name, n in (('train', 500), ('val', 150), ('test', 300)):
        split = data.splits[name]
        assert split.image.shape == (n, 1, 28, 28) and split.image.dtype == np.float32
        assert split.audio.shape == (n, 1, n_mels, n_frames) and split.audio.dtype == np.float32
        assert split.labels.shape == (n,) and split.labels.dtype == np.int64
        assert np.isfinite(split.image).all() and np.isfinite(split.audio).all()
    assert abs(data.train.image.mean()) < 1e-4 and data.train.image.std() == pytest.approx(1.0, abs=1e-4)
    assert abs(data.train.audio.mean()) < 1e-4 and data.train.audio.std() == pytest.approx(1.0, abs=1e-4)
    assert data.input_shapes == {'image': (1, 28, 28), 'audio': (1, n_mels, n_frames)}


def test_images_come_from_mnist_with_their_labels(data, mnist_train):
    images, labels = mnist_train
    test_images, test_labels = mnist.load_mnist(ROOT / 'mnist', 'test')
    np.testing.assert_array_equal(data.train.labels, labels[data.train.mnist_index])
    np.testing.assert_array_equal(data.val.labels, labels[data.val.mnist_index])
    np.testing.assert_array_equal(data.test.labels, test_labels[data.test.mnist_index])
    assert not set(data.train.mnist_index) & set(data.val.mnist_index)          # val carved out of train
    assert len(set(data.train.mnist_index)) == 500


def test_each_image_is_paired_with_a_clip_of_its_digit_from_the_matching_fsdd_split(data):
    m = data.metadata
    assert len(m.fsdd_files) == 3000
    for name, split in data.splits.items():
        files = [m.fsdd_files[i] for i in split.fsdd_index]
        digits_from_names = np.array([int(f.split('_')[0]) for f in files])
        reps_from_names = np.array([int(f.rsplit('_', 1)[1][:-4]) for f in files])
        np.testing.assert_array_equal(digits_from_names, split.labels)
        np.testing.assert_array_equal(m.fsdd_digits[split.fsdd_index], split.labels)
        if name == 'test':
            assert np.all(reps_from_names <= 4)                                 # FSDD test split
            assert {m.fsdd_splits[i] for i in split.fsdd_index} == {'test'}
        else:
            assert np.all(reps_from_names >= 5)                                 # FSDD train split
            assert {m.fsdd_splits[i] for i in split.fsdd_index} == {'train'}
    assert np.all(m.fsdd_repetitions[data.val.fsdd_index] <= 9)                 # val_clips='held_out'
    assert np.all(m.fsdd_repetitions[data.train.fsdd_index] >= 10)
    # clips dealt in rounds: within a digit no clip is used twice before all were used once
    counts = np.bincount(data.train.fsdd_index, minlength=3000)[data.train.fsdd_index]
    assert counts.max() == 1                                                    # 500 images < 240 clips x 10 digits


def test_audio_map_is_the_log_mel_of_the_paired_wav(data):
    c, m = data.config, data.metadata
    for i in (0, 7, 123):
        path = ROOT / 'fsdd' / 'recordings' / m.fsdd_files[data.test.fsdd_index[i]]
        wave = fix_length(fsdd.read_wav(path), length=c.clip_samples)
        expected = (log_mel_spectrogram(wave, **c.audio_features()) - m.audio_mean) / m.audio_std
        np.testing.assert_allclose(data.test.audio[i, 0], expected, rtol=1e-5, atol=1e-5)


def test_pca_removes_three_quarters_of_the_energy_with_the_fewest_components(data, mnist_train):
    m = data.metadata
    k = m.pca_components
    cumulative = np.cumsum(m.pca_explained_variance_ratio)
    assert cumulative[k - 1] > 0.25 >= (cumulative[k - 2] if k > 1 else 0.0)    # k is minimal
    assert m.pca_explained_variance == pytest.approx(cumulative[k - 1])
    # the ratio is the training images' own spectrum (independent SVD)
    x = mnist_train[0][data.train.mnist_index].reshape(500, -1) / 255.0
    s = np.linalg.svd(x - x.mean(0), compute_uv=False)
    np.testing.assert_allclose(m.pca_explained_variance_ratio[:10], (s ** 2 / np.sum(s ** 2))[:10], rtol=1e-6)
    # the reconstructed training images keep that fraction of the variance, and no more
    recon = data.train.image.reshape(500, -1).astype(np.float64) * m.image_std + m.image_mean
    kept = np.sum((recon - x.mean(0)) ** 2) / np.sum((x - x.mean(0)) ** 2)
    assert kept == pytest.approx(m.pca_explained_variance, rel=1e-3)
    assert 0.25 < kept < 0.40
    # row i is the rank-k reconstruction of MNIST image mnist_index[i] (independent SVD)
    _, _, vt = np.linalg.svd(x - x.mean(0), full_matrices=False)
    expected = x.mean(0) + (x - x.mean(0)) @ vt[:k].T @ vt[:k]
    np.testing.assert_allclose(recon, expected, atol=1e-4)
    # and every split lies in the same k-dimensional affine subspace
    test_recon = data.test.image.reshape(300, -1).astype(np.float64) * m.image_std + m.image_mean
    sv = np.linalg.svd(test_recon - x.mean(0), compute_uv=False)
    assert np.sum(sv > 1e-3 * sv[0]) == k


def test_seeded_and_cached(data, cache):
    again = av.load_avmnist(SMALL, root=ROOT, cache_dir=cache)                 # from the cache
    assert again.metadata.cache_path == data.metadata.cache_path
    for name in av.SPLITS:
        for field in ('image', 'audio', 'labels', 'mnist_index', 'fsdd_index'):
            np.testing.assert_array_equal(getattr(again.splits[name], field), getattr(data.splits[name], field))
    tiny = av.AVMNISTConfig(n_train=100, n_val=20, n_test=50, seed=3)
    a, b = av.build_avmnist(tiny, root=ROOT), av.build_avmnist(tiny, root=ROOT)   # same seed, no cache
    for field in ('image', 'audio', 'mnist_index', 'fsdd_index'):
        np.testing.assert_array_equal(getattr(a.train, field), getattr(b.train, field))
    other = dataclasses.replace(tiny, seed=4)
    assert av.cache_path_for(other, root=ROOT, cache_dir=cache) != av.cache_path_for(tiny, root=ROOT, cache_dir=cache)
    c = av.build_avmnist(other, root=ROOT)
    assert not np.array_equal(c.train.mnist_index, a.train.mnist_index)
    assert not np.array_equal(c.test.fsdd_index, a.test.fsdd_index)


def test_corrupt_cache_is_rebuilt_with_a_warning(tmp_path):
    cfg = av.AVMNISTConfig(n_train=100, n_val=20, n_test=50)
    path = av.cache_path_for(cfg, root=ROOT, cache_dir=tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b'not a zip')
    with pytest.warns(UserWarning, match='unreadable AV-MNIST cache'):
        data = av.load_avmnist(cfg, root=ROOT, cache_dir=tmp_path)
    assert len(data.test) == 50
    with np.load(path, allow_pickle=False) as arrays:                           # rewritten, pickle-free
        assert arrays['test_labels'].shape == (50,)


def test_noise_at_a_stated_snr_changes_the_audio_only(data):
    cfg = dataclasses.replace(SMALL, snr_db=0.0)
    noisy = av.build_avmnist(cfg, root=ROOT)
    np.testing.assert_array_equal(noisy.test.fsdd_index, data.test.fsdd_index)
    np.testing.assert_array_equal(noisy.test.image, data.test.image)
    raw = data.test.audio * data.metadata.audio_std + data.metadata.audio_mean
    raw_noisy = noisy.test.audio * noisy.metadata.audio_std + noisy.metadata.audio_mean
    assert raw_noisy.min() > raw.min() + 5                                      # padding no longer silent
    assert np.corrcoef(raw.ravel(), raw_noisy.ravel())[0, 1] > 0.3              # speech still there


def test_bad_data_root_names_the_layout(tmp_path):
    layout = ['mnist/train-images-idx3-ubyte.gz', 'fsdd/recordings/{digit}_{speaker}_{index}.wav']
    with pytest.raises(DataRootError) as err:
        av.load_avmnist(SMALL, root=tmp_path / 'missing', cache_dir=tmp_path)
    assert all(part in str(err.value) for part in layout)
    (tmp_path / 'mnist').mkdir()
    with pytest.raises(DataRootError, match=re.escape('missing mnist/train-images-idx3-ubyte.gz')):
        av.load_avmnist(SMALL, root=tmp_path, cache_dir=tmp_path)
    # malformed: real files linked in, but one IDX file truncated
    for name in ('train-images-idx3-ubyte.gz', 't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'):
        (tmp_path / 'mnist' / name).symlink_to(ROOT / 'mnist' / name)
    (tmp_path / 'fsdd').mkdir()
    (tmp_path / 'fsdd' / 'recordings').symlink_to(ROOT / 'fsdd' / 'recordings')
    shutil.copyfile(ROOT / 'mnist' / 't10k-labels-idx1-ubyte.gz', tmp_path / 'mnist' / 'train-labels-idx1-ubyte.gz')
    with pytest.raises(DataRootError) as err:                                   # 10000 labels for 60000 images
        av.load_avmnist(SMALL, root=tmp_path, cache_dir=tmp_path)
    assert 'train-labels-idx1-ubyte.gz' in str(err.value) and all(p in str(err.value) for p in layout)
    blob = (ROOT / 'mnist' / 'train-labels-idx1-ubyte.gz').read_bytes()
    (tmp_path / 'mnist' / 'train-labels-idx1-ubyte.gz').write_bytes(blob[:len(blob) // 3])
    with pytest.raises(DataRootError, match='60008 bytes expected') as err:
        av.load_avmnist(SMALL, root=tmp_path, cache_dir=tmp_path)
    assert all(p in str(err.value) for p in layout)


def test_config_validation():
    with pytest.raises(ValueError, match='n_train'):
        av.AVMNISTConfig(n_train=59000, n_val=5000)
    with pytest.raises(ValueError, match='energy_removed'):
        av.AVMNISTConfig(energy_removed=1.5)
    from centralnet_ros.config import ConfigError, from_dict
    with pytest.raises(ConfigError, match='n_melz'):
        from_dict(av.AVMNISTConfig, {'n_melz': 32})
    assert from_dict(av.AVMNISTConfig, {'n_mels': 32, 'hop_length': 240}).audio_shape == (32, 32)


def test_fit_pca_covariance_and_svd_paths_agree_with_numpy_svd(mnist_train):
    x = mnist_train[0][:1000].reshape(1000, -1) / 255.0                        # N > D: covariance path
    _, s, vt = np.linalg.svd(x - x.mean(0), full_matrices=False)
    reference = s ** 2 / np.sum(s ** 2)
    for rows in (x, x[:300]):                                                   # and N < D: SVD path
        mean, comps, ratio, k = av.fit_pca(rows, energy_removed=0.75)
        if rows is x:
            np.testing.assert_allclose(ratio[:50], reference[:50], rtol=1e-6, atol=1e-12)
            np.testing.assert_allclose(np.abs(comps.T @ vt[:k].T), np.eye(k), atol=1e-6)
        cumulative = np.cumsum(ratio)
        assert cumulative[k - 1] > 0.25 >= cumulative[k - 2]
        assert ratio.shape == (784,) and ratio.sum() == pytest.approx(1.0)
        np.testing.assert_allclose(comps.T @ comps, np.eye(k), atol=1e-8)
