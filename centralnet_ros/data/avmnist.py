"""
AV-MNIST built from the real MNIST IDX files and the real FSDD wav files.

AV-MNIST (Vielzeuf et al. 2018; Perez-Rua et al., MFAS 2019) pairs each MNIST
image with a spoken digit and weakens the images so that neither modality is
enough on its own.  This module rebuilds it from the two datasets' own files:

Images
    Pixels scaled to [0, 1], then about 75 % of their energy removed by PCA: the PCA
    is fitted on the *training* images only (the ``train`` split, validation images
    excluded); the smallest number of components ``k`` whose cumulative explained
    variance exceeds ``1 - energy_removed`` (25 %) is kept, and every image is
    projected on them and reconstructed (``mean + (x - mean) V_k V_k^T``).  The
    result is standardised with the training split's mean and standard deviation
    (two scalars, kept in the metadata).

Audio
    Each image is paired with a recording of the same digit drawn only from the
    matching FSDD split: MNIST test <- FSDD test (repetition index 0-4); MNIST train
    and validation <- FSDD train (index 5-49).  With ``val_clips='held_out'`` (the
    default) the validation images get index 5-9 and the training images 10-49, so
    early stopping is judged on unheard recordings as the test set is (the same six
    speakers appear everywhere, as in FSDD's own split).  Within each split and digit,
    clips are dealt in shuffled rounds (every clip used once before any is reused),
    from a fixed seed.

    Each clip is centred and zero-padded / cropped to ``clip_samples`` (1 s at 8 kHz:
    99 % of FSDD clips are shorter than 0.92 s), optionally mixed with white Gaussian
    noise at ``snr_db`` (SNR over the clip's own samples, padding excluded; a fresh
    noise draw per pair, seeded), and turned into a natural-log mel spectrogram by
    :mod:`centralnet_ros.features.audio`: ``n_fft=512`` (64 ms Hann window),
    ``hop_length=320`` (40 ms), ``center=False``, ``n_mels=24`` HTK mel bands over
    0-4 kHz, floor ``1e-6`` (about the 16-bit quantisation noise of one mel band, so
    padding looks like the quietest recorded silence instead of an outlier).  That
    gives a ``24 x 24`` map, small enough for five fusion methods x eight seeds on
    two CPU cores in about an hour, and still resolving the formant trajectories of
    a one-word utterance.  The maps are standardised with the training split's mean
    and standard deviation (two scalars: no per-clip normalisation).

Splits
    ``train`` / ``val`` come from MNIST's 60,000 training images (``n_val`` carved
    out at random with the seed), ``test`` is MNIST's 10,000 test images.
    ``n_train`` / ``n_test`` subsample for quick runs (``None`` = all).

The built arrays are cached under ``paths.cache_dir()/avmnist/`` as an uncompressed
``.npz`` (no pickle) named by a hash of the config, the builder version and the
source files' names and sizes; the file is written atomically.

Expected data root layout (``--data-root`` / ``$CENTRALNET_DATA_ROOT``)::

    <root>/mnist/train-images-idx3-ubyte.gz   (and the three other IDX files)
    <root>/fsdd/recordings/{digit}_{speaker}_{index}.wav
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
import time
from typing import Literal
import warnings
import zipfile

from centralnet_ros import paths
from centralnet_ros.config import atomic_savez, to_dict
from centralnet_ros.data import fsdd, mnist
from centralnet_ros.data.registry import DataRootError, DatasetSummary
from centralnet_ros.features.audio import add_noise_at_snr, fix_length, log_mel_spectrogram, num_frames
import numpy as np

BUILD_VERSION = 2        # bump when the construction changes: old caches are then ignored
SPLITS = ('train', 'val', 'test')
LAYOUT = ('<root>/mnist/train-images-idx3-ubyte.gz, <root>/mnist/train-labels-idx1-ubyte.gz, '
          '<root>/mnist/t10k-images-idx3-ubyte.gz, <root>/mnist/t10k-labels-idx1-ubyte.gz '
          '(IDX, gzip or raw) and <root>/fsdd/recordings/{digit}_{speaker}_{index}.wav '
          '(8 kHz mono 16-bit PCM)')
VAL_FSDD_INDICES = range(5, 10)   # FSDD repetitions reserved for validation when val_clips='held_out'
_MNIST_TRAIN_SIZE = 60000
_MNIST_TEST_SIZE = 10000


@dataclasses.dataclass(frozen=True)
class AVMNISTConfig:
    """How AV-MNIST is built.  Every field enters the cache key."""

    n_train: int | None = None        # training pairs (None: all 60000 - n_val)
    n_val: int = 5000                 # validation pairs carved from MNIST train
    n_test: int | None = None         # test pairs (None: all 10000)
    seed: int = 0                     # split carving, subsampling, pairing and noise
    energy_removed: float = 0.75      # fraction of image variance removed by PCA
    snr_db: float | None = None       # additive white noise on the audio (None: clean)
    val_clips: Literal['held_out', 'shared'] = 'held_out'   # FSDD index 5-9 for val only, or shared
    sample_rate: int = 8000           # FSDD's rate
    clip_samples: int = 8000          # clips centred and padded / cropped to this length (1 s)
    n_fft: int = 512
    win_length: int | None = None     # None: n_fft
    hop_length: int = 320
    n_mels: int = 24
    f_min: float = 0.0
    f_max: float | None = None        # None: sample_rate / 2
    mel_scale: Literal['htk', 'slaney'] = 'htk'
    log_floor: float = 1e-6

    def __post_init__(self) -> None:
        if not 0 <= self.n_val < _MNIST_TRAIN_SIZE:
            raise ValueError(f'n_val must be in [0, {_MNIST_TRAIN_SIZE}), got {self.n_val}')
        if self.n_train is not None and not 1 <= self.n_train <= _MNIST_TRAIN_SIZE - self.n_val:
            raise ValueError(f'n_train must be in [1, {_MNIST_TRAIN_SIZE - self.n_val}] '
                             f'(60000 - n_val) or None, got {self.n_train}')
        if self.n_test is not None and not 1 <= self.n_test <= _MNIST_TEST_SIZE:
            raise ValueError(f'n_test must be in [1, {_MNIST_TEST_SIZE}] or None, got {self.n_test}')
        if not 0.0 <= self.energy_removed < 1.0:
            raise ValueError(f'energy_removed must be in [0, 1), got {self.energy_removed}')
        if self.snr_db is not None and not np.isfinite(self.snr_db):
            raise ValueError(f'snr_db must be finite or None, got {self.snr_db}')
        if self.sample_rate != fsdd.SAMPLE_RATE:
            raise ValueError(f"sample_rate must be FSDD's {fsdd.SAMPLE_RATE} Hz, got {self.sample_rate}")
        if self.clip_samples < self.n_fft:
            raise ValueError(f'clip_samples ({self.clip_samples}) must hold at least one frame (n_fft={self.n_fft})')

    def audio_features(self) -> dict:
        """
        Keyword arguments of :func:`~centralnet_ros.features.audio.log_mel_spectrogram`.

        They turn a ``clip_samples`` waveform into the (unstandardised) audio map; for a
        bundle manifest and the runtime.
        """
        return {'sample_rate': self.sample_rate, 'n_fft': self.n_fft, 'win_length': self.win_length,
                'hop_length': self.hop_length, 'n_mels': self.n_mels, 'f_min': self.f_min, 'f_max': self.f_max,
                'mel_scale': self.mel_scale, 'floor': self.log_floor, 'center': False}

    @property
    def audio_shape(self) -> tuple[int, int]:
        """``(n_mels, n_frames)`` of one audio map."""
        return self.n_mels, num_frames(self.clip_samples, n_fft=self.n_fft, hop_length=self.hop_length)


@dataclasses.dataclass(frozen=True)
class AVMNISTSplit:
    """One split's pairs; row ``i`` of every array is the same pair."""

    image: np.ndarray        # (N, 1, 28, 28) float32, PCA-degraded then standardised
    audio: np.ndarray        # (N, 1, n_mels, n_frames) float32, standardised log-mel
    labels: np.ndarray       # (N,) int64, the digit
    mnist_index: np.ndarray  # (N,) int64, row in MNIST's train-* (train, val) or t10k-* (test) files
    fsdd_index: np.ndarray   # (N,) int64, row in AVMNISTMetadata.fsdd_files

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def inputs(self) -> dict[str, np.ndarray]:
        """``{modality: array}`` (``'image'``, ``'audio'``), the fusion models' input mapping."""
        return {'image': self.image, 'audio': self.audio}


@dataclasses.dataclass(frozen=True)
class AVMNISTMetadata:
    """How the arrays were made (enough to check pairing and to redo the preprocessing)."""

    pca_components: int                       # k, components kept
    pca_explained_variance: float             # cumulative variance fraction of the k kept (> 1 - energy_removed)
    pca_explained_variance_ratio: np.ndarray  # (784,) float64, per component, descending
    image_mean: float                         # standardisation of the PCA-reconstructed images
    image_std: float
    audio_mean: float                         # standardisation of the log-mel maps
    audio_std: float
    fsdd_files: tuple[str, ...]               # file names under fsdd/recordings/
    fsdd_digits: np.ndarray                   # (n_clips,) int64
    fsdd_repetitions: np.ndarray              # (n_clips,) int64, the {index} of the file name
    fsdd_splits: tuple[str, ...]              # 'train' / 'test', FSDD's official split of each file
    build_seconds: float                      # wall time of the build that made the arrays
    cache_path: str | None                    # the .npz they were read from / written to


@dataclasses.dataclass(frozen=True)
class AVMNIST:
    """The built dataset: ``train`` / ``val`` / ``test`` splits, the config and metadata."""

    train: AVMNISTSplit
    val: AVMNISTSplit
    test: AVMNISTSplit
    config: AVMNISTConfig
    metadata: AVMNISTMetadata

    @property
    def splits(self) -> dict[str, AVMNISTSplit]:
        return {'train': self.train, 'val': self.val, 'test': self.test}

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-sample shapes: ``{'image': (1, 28, 28), 'audio': (1, n_mels, n_frames)}``."""
        return {'image': tuple(self.train.image.shape[1:]), 'audio': tuple(self.train.audio.shape[1:])}


# --------------------------------------------------------------------------- building blocks

def check_root(root: str | Path) -> Path:
    """Return the data root, after checking that the MNIST files and FSDD folder exist."""
    root = Path(root)
    if not root.is_dir():
        raise DataRootError(f'AV-MNIST data root {root} does not exist; expected layout: {LAYOUT}')
    for split in mnist.FILES:
        for name in mnist.FILES[split]:
            if not ((root / 'mnist' / name).is_file() or (root / 'mnist' / f'{name}.gz').is_file()):
                raise DataRootError(f'AV-MNIST data root {root}: missing mnist/{name}.gz; '
                                    f'expected layout: {LAYOUT}')
    if not (root / 'fsdd' / 'recordings').is_dir():
        raise DataRootError(f'AV-MNIST data root {root}: missing fsdd/recordings/; expected layout: {LAYOUT}')
    return root


def fit_pca(images: np.ndarray, *, energy_removed: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """
    PCA of ``images (N, D)``: ``(mean (D,), components (D, k), explained_variance_ratio (D,), k)``.

    ``k`` is the smallest number of leading components whose cumulative explained
    variance ratio exceeds ``1 - energy_removed``.
    """
    x = np.asarray(images, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f'fit_pca expects (N >= 2, D) images, got shape {x.shape}')
    mean = x.mean(axis=0)
    xc = x - mean
    n, d = xc.shape
    if n < d:                                       # few images: SVD of the data is cheaper
        _, s, vt = np.linalg.svd(xc, full_matrices=False)
        eigvals = np.zeros(d)
        eigvals[:s.size] = s ** 2 / (n - 1)
        eigvecs = np.zeros((d, d))
        eigvecs[:, :s.size] = vt.T
    else:
        cov = xc.T @ xc / (n - 1)                                               # (D, D)
        eigvals, eigvecs = np.linalg.eigh(cov)
        order = np.argsort(eigvals)[::-1]
        eigvals, eigvecs = eigvals[order], eigvecs[:, order]
    eigvals = np.clip(eigvals, 0.0, None)
    ratio = eigvals / eigvals.sum()
    cumulative = np.cumsum(ratio)
    keep = 1.0 - energy_removed
    k = int(np.searchsorted(cumulative, keep, side='right')) + 1                 # first cumulative > keep
    k = min(k, ratio.size)
    return mean, eigvecs[:, :k], ratio, k


def pca_reconstruct(images: np.ndarray, *, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    """Project ``images (N, D)`` on ``components (D, k)`` and back: ``(N, D)`` float64."""
    xc = np.asarray(images, dtype=np.float64) - mean
    return mean + (xc @ components) @ components.T


def pair_clips(labels: np.ndarray, clip_digits: np.ndarray, clip_pool: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
    """
    For each label, a clip index (into ``clip_digits``) of the same digit taken from ``clip_pool``.

    Per digit, clips are dealt in shuffled rounds: each clip of the pool is used once
    before any is used again, and images receive them in a random order.
    """
    out = np.empty(labels.shape[0], dtype=np.int64)
    for digit in range(10):
        where = np.flatnonzero(labels == digit)
        if where.size == 0:
            continue
        pool = clip_pool[clip_digits[clip_pool] == digit]
        if pool.size == 0:
            raise ValueError(f'no FSDD clip of digit {digit} in this split to pair with')
        rounds = -(-where.size // pool.size)
        dealt = np.concatenate([rng.permutation(pool) for _ in range(rounds)])[:where.size]
        out[rng.permutation(where)] = dealt
    return out


def _log_mel(waves: np.ndarray, config: AVMNISTConfig) -> np.ndarray:
    """``(N, clip_samples)`` -> ``(N, n_mels, n_frames)`` float32, in batches."""
    out = np.empty((waves.shape[0],) + config.audio_shape, dtype=np.float32)
    for start in range(0, waves.shape[0], 2048):
        out[start:start + 2048] = log_mel_spectrogram(waves[start:start + 2048], **config.audio_features())
    return out


def _source_fingerprint(root: Path) -> str:
    """Names and sizes of the source files (so a changed download invalidates the cache)."""
    h = hashlib.sha256()
    for path in sorted((root / 'mnist').glob('*idx*')) + sorted((root / 'fsdd' / 'recordings').glob('*.wav')):
        h.update(f'{path.parent.name}/{path.name}:{path.stat().st_size};'.encode())
    return h.hexdigest()


def cache_key(config: AVMNISTConfig, root: Path) -> str:
    """Hex digest naming the cache file of ``config`` built from ``root``."""
    payload = json.dumps({'version': BUILD_VERSION, 'config': to_dict(config),
                          'sources': _source_fingerprint(root)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


# --------------------------------------------------------------------------- build

def build_avmnist(config: AVMNISTConfig | None = None, *, root: str | Path | None = None) -> AVMNIST:
    """Build AV-MNIST from the files under the data ``root`` (no cache); see the module doc."""
    config = config or AVMNISTConfig()
    root = check_root(paths.data_root(root))
    start = time.perf_counter()
    try:
        train_images, train_labels = mnist.load_mnist(root / 'mnist', 'train')
        test_images, test_labels = mnist.load_mnist(root / 'mnist', 'test')
        clips = fsdd.list_clips(root / 'fsdd')
    except ValueError as exc:
        raise DataRootError(f'AV-MNIST data root {root} is malformed: {exc}; expected layout: {LAYOUT}') from exc
    if train_images.shape[0] != _MNIST_TRAIN_SIZE or test_images.shape[0] != _MNIST_TEST_SIZE:
        raise DataRootError(f'AV-MNIST data root {root}: MNIST has {train_images.shape[0]} train / '
                            f'{test_images.shape[0]} test images, expected 60000 / 10000')
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, BUILD_VERSION]))

    # --- splits: val carved from MNIST train, optional subsampling
    perm = rng.permutation(_MNIST_TRAIN_SIZE)
    n_train = config.n_train if config.n_train is not None else _MNIST_TRAIN_SIZE - config.n_val
    index = {'val': np.sort(perm[:config.n_val]),
             'train': np.sort(perm[config.n_val:config.n_val + n_train]),
             'test': (np.arange(_MNIST_TEST_SIZE) if config.n_test is None
                      else np.sort(rng.choice(_MNIST_TEST_SIZE, config.n_test, replace=False)))}
    source = {'train': (train_images, train_labels), 'val': (train_images, train_labels),
              'test': (test_images, test_labels)}

    # --- images: PCA fitted on the train split only
    flat = {s: source[s][0][index[s]].reshape(-1, 28 * 28).astype(np.float64) / 255.0 for s in SPLITS}
    mean, components, ratio, k = fit_pca(flat['train'], energy_removed=config.energy_removed)
    recon = {s: pca_reconstruct(flat[s], mean=mean, components=components) for s in SPLITS}
    image_mean, image_std = float(recon['train'].mean()), float(recon['train'].std())
    images = {s: ((recon[s] - image_mean) / image_std).astype(np.float32).reshape(-1, 1, 28, 28)
              for s in SPLITS}
    del flat, recon

    # --- audio: pairing within the matching FSDD split
    digits = np.array([c.digit for c in clips], dtype=np.int64)
    reps = np.array([c.index for c in clips], dtype=np.int64)
    is_test = np.isin(reps, list(fsdd.TEST_INDICES))
    is_val = np.isin(reps, list(VAL_FSDD_INDICES)) & (config.val_clips == 'held_out')
    pools = {'test': np.flatnonzero(is_test),
             'val': np.flatnonzero(~is_test) if config.val_clips == 'shared' else np.flatnonzero(is_val),
             'train': np.flatnonzero(~is_test & ~is_val)}
    labels = {s: source[s][1][index[s]] for s in SPLITS}
    fsdd_index = {s: pair_clips(labels[s], digits, pools[s], rng) for s in SPLITS}

    used = np.unique(np.concatenate([fsdd_index[s] for s in SPLITS]))          # only the clips paired
    fixed = np.zeros((len(clips), config.clip_samples), dtype=np.float32)      # (C, T), centred clips
    speech_power = np.zeros(len(clips))                                        # mean square, padding excluded
    for i in used:
        try:
            wave = fsdd.read_wav(clips[i].path, sample_rate=config.sample_rate)
        except ValueError as exc:
            raise DataRootError(f'AV-MNIST data root {root} is malformed: {exc}; '
                                f'expected layout: {LAYOUT}') from exc
        fixed[i] = fix_length(wave, length=config.clip_samples, mode='center')
        speech_power[i] = np.sum(fixed[i].astype(np.float64) ** 2) / min(wave.size, config.clip_samples)
    audio: dict[str, np.ndarray] = {}
    if config.snr_db is None:
        clip_maps = np.empty((len(clips),) + config.audio_shape, dtype=np.float32)
        clip_maps[used] = _log_mel(fixed[used], config)                         # (C, n_mels, n_frames)
        audio = {s: clip_maps[fsdd_index[s]] for s in SPLITS}
    else:
        for split_no, s in enumerate(SPLITS):
            noise_rng = np.random.default_rng(np.random.SeedSequence([config.seed, BUILD_VERSION, 7, split_no]))
            maps = np.empty((len(fsdd_index[s]),) + config.audio_shape, dtype=np.float32)
            for lo in range(0, maps.shape[0], 2048):
                idx = fsdd_index[s][lo:lo + 2048]
                noisy = np.stack([add_noise_at_snr(fixed[i], snr_db=config.snr_db, rng=noise_rng,
                                                   signal_power=speech_power[i]) for i in idx])
                maps[lo:lo + 2048] = _log_mel(noisy, config)
            audio[s] = maps
    audio_mean, audio_std = float(audio['train'].mean()), float(audio['train'].std())
    audio = {s: ((a - audio_mean) / audio_std).astype(np.float32)[:, None] for s, a in audio.items()}

    meta = AVMNISTMetadata(
        pca_components=k, pca_explained_variance=float(ratio[:k].sum()), pca_explained_variance_ratio=ratio,
        image_mean=image_mean, image_std=image_std, audio_mean=audio_mean, audio_std=audio_std,
        fsdd_files=tuple(c.path.name for c in clips), fsdd_digits=digits, fsdd_repetitions=reps,
        fsdd_splits=tuple(c.split for c in clips), build_seconds=time.perf_counter() - start, cache_path=None)
    splits = {s: AVMNISTSplit(image=images[s], audio=audio[s], labels=labels[s].astype(np.int64),
                              mnist_index=index[s].astype(np.int64), fsdd_index=fsdd_index[s])
              for s in SPLITS}
    return AVMNIST(**splits, config=config, metadata=meta)


# --------------------------------------------------------------------------- cache

_META_SCALARS = ('pca_components', 'pca_explained_variance', 'image_mean', 'image_std', 'audio_mean',
                 'audio_std', 'build_seconds')
_SPLIT_FIELDS = ('image', 'audio', 'labels', 'mnist_index', 'fsdd_index')


def _to_arrays(data: AVMNIST) -> dict[str, np.ndarray]:
    m = data.metadata
    arrays = {f'{s}_{f}': getattr(split, f) for s, split in data.splits.items() for f in _SPLIT_FIELDS}
    arrays.update(pca_explained_variance_ratio=m.pca_explained_variance_ratio, fsdd_digits=m.fsdd_digits,
                  fsdd_repetitions=m.fsdd_repetitions, fsdd_files=np.array(m.fsdd_files),
                  fsdd_splits=np.array(m.fsdd_splits),
                  meta_json=np.array(json.dumps({'config': to_dict(data.config), 'version': BUILD_VERSION,
                                                 **{n: getattr(m, n) for n in _META_SCALARS}})))
    return arrays


def _from_arrays(arrays, config: AVMNISTConfig, cache_path: Path) -> AVMNIST:
    info = json.loads(str(arrays['meta_json']))
    if info['config'] != to_dict(config) or info['version'] != BUILD_VERSION:
        raise ValueError('cache file was built from another config or builder version')
    splits = {s: AVMNISTSplit(**{f: arrays[f'{s}_{f}'] for f in _SPLIT_FIELDS}) for s in SPLITS}
    meta = AVMNISTMetadata(**{n: info[n] for n in _META_SCALARS},
                           pca_explained_variance_ratio=arrays['pca_explained_variance_ratio'],
                           fsdd_files=tuple(str(x) for x in arrays['fsdd_files']),
                           fsdd_digits=arrays['fsdd_digits'], fsdd_repetitions=arrays['fsdd_repetitions'],
                           fsdd_splits=tuple(str(x) for x in arrays['fsdd_splits']),
                           cache_path=str(cache_path))
    return AVMNIST(**splits, config=config, metadata=meta)


def cache_path_for(config: AVMNISTConfig, *, root: str | Path | None = None,
                   cache_dir: str | Path | None = None) -> Path:
    """Where :func:`load_avmnist` keeps ``config``'s arrays."""
    root = check_root(paths.data_root(root))
    return paths.cache_dir(cache_dir) / 'avmnist' / f'avmnist-{cache_key(config, root)}.npz'


def load_avmnist(config: AVMNISTConfig | None = None, *, root: str | Path | None = None,
                 cache_dir: str | Path | None = None, use_cache: bool = True) -> AVMNIST:
    """
    AV-MNIST for ``config``: read from the cache, or built and cached.

    ``root``: the data root holding ``mnist/`` and ``fsdd/`` (default
    :func:`centralnet_ros.paths.data_root`); ``cache_dir``: default
    :func:`centralnet_ros.paths.cache_dir`.  ``use_cache=False`` builds without reading
    or writing the cache.  Raises :class:`DataRootError` naming the expected layout when
    the root is missing or malformed.
    """
    config = config or AVMNISTConfig()
    if not use_cache:
        return build_avmnist(config, root=root)
    path = cache_path_for(config, root=root, cache_dir=cache_dir)
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as arrays:
                return _from_arrays(arrays, config, path)
        except (ValueError, KeyError, OSError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
            warnings.warn(f'ignoring unreadable AV-MNIST cache {path} ({exc}); rebuilding', stacklevel=2)
    data = build_avmnist(config, root=root)
    atomic_savez(path, **_to_arrays(data))
    return dataclasses.replace(data, metadata=dataclasses.replace(data.metadata, cache_path=str(path)))


def summarize(root: Path) -> DatasetSummary:
    """Build (or read from the cache) the default AV-MNIST and count pairs per split and digit."""
    data = load_avmnist(AVMNISTConfig(), root=root)
    counts = {s: {str(d): int(n) for d, n in enumerate(np.bincount(split.labels, minlength=10))}
              for s, split in data.splits.items()}
    m, c = data.metadata, data.config
    for s, split in data.splits.items():      # pairing invariants, checked on every data check
        if not np.array_equal(m.fsdd_digits[split.fsdd_index], split.labels):
            raise ValueError(f'AV-MNIST {s}: an image is paired with a clip of another digit')
    return DatasetSummary(
        name='avmnist', root=str(root), counts=counts,
        modalities={'image': f'{data.input_shapes["image"]} float32, PCA {m.pca_components} components '
                             f'({100 * m.pca_explained_variance:.1f} % of variance kept)',
                    'audio': f'{data.input_shapes["audio"]} float32 log-mel (n_fft={c.n_fft}, '
                             f'hop_length={c.hop_length}, n_mels={c.n_mels}, {c.clip_samples} samples '
                             f'at {c.sample_rate} Hz)'},
        notes=[f'pairs: train/val <- FSDD train clips (val_clips={c.val_clips}), test <- FSDD test clips',
               f'snr_db={c.snr_db}, seed={c.seed}',
               f'built in {m.build_seconds:.1f} s; cache {m.cache_path}'])
