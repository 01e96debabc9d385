"""
AVLetters (Matthews et al. 2002) read in its own file formats.

Layout under the dataset root (``<data root>/avletters``)::

    Lips/{Letter}{rep}_{Speaker}-lips.mat          Matlab v4: vid (4800 x T uint8), siz = [60 80 T]
    Audio/mfcc/Clean/{Letter}{rep}_{Speaker}.mfcc  HTK MFCC_E_D, 26 float32 per 20 ms frame

10 speakers x 26 letters x 3 repetitions = 780 pairs, paired by (letter, repetition,
speaker) parsed from the names.  The lips are 25 frames/s and the audio 50 frames/s.

* :func:`read_mat_v4` is the project's own Matlab v4 parser; :func:`read_lips` and
  :func:`read_audio` read one file each and reject malformed files naming the file.
* :func:`list_samples` pairs every file and fails on any unpaired or unexpected one.
* :func:`speaker_dependent_split` (600 / 180, stratified by letter, fixed seed) and
  :func:`leave_one_speaker_out` (10 folds) are the protocols.
* :func:`load_arrays` returns the model tensors (audio ``(N, 26, 24)``, video
  ``(N, 12, 60, 80)``), cached under ``paths.cache_dir()``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
import re
import struct
from typing import Sequence

from centralnet_ros.data.htk import HTKFormatError, read_htk
from centralnet_ros.data.registry import DataRootError, DatasetSummary
from centralnet_ros.features.htk import mfcc_to_model_input
from centralnet_ros.features.image import lip_frames_to_model_input
import numpy as np

__all__ = [
    'LETTERS', 'FRAME_SHAPE', 'AUDIO_DIM', 'AUDIO_FRAME_PERIOD_S', 'VIDEO_FPS', 'CACHE_VERSION',
    'AVLettersFormatError', 'AVLettersSample', 'AVLettersArrays',
    'read_mat_v4', 'read_lips', 'read_audio', 'parse_lips_name', 'parse_audio_name',
    'list_samples', 'speaker_dependent_split', 'leave_one_speaker_out',
    'preprocess_audio', 'preprocess_video', 'build_arrays', 'load_arrays', 'summarize',
]

LETTERS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ'
FRAME_SHAPE = (60, 80)           # (H, W) of a lip image
AUDIO_DIM = 26                   # MFCC_E_D
AUDIO_KIND = 'MFCC_E_D'
AUDIO_FRAME_PERIOD = 200000      # 100 ns units = 20 ms
AUDIO_FRAME_PERIOD_S = 0.02
VIDEO_FPS = 25.0
CACHE_VERSION = 1

LIPS_DIR = Path('Lips')
AUDIO_DIR = Path('Audio') / 'mfcc' / 'Clean'
_LIPS_RE = re.compile(r'^([A-Z])([1-9])_([A-Za-z]+)-lips\.mat$')
_AUDIO_RE = re.compile(r'^([A-Z])([1-9])_([A-Za-z]+)\.mfcc$')

LAYOUT = (f'expected AVLetters layout: <root>/{LIPS_DIR}/{{Letter}}{{rep}}_{{Speaker}}-lips.mat '
          f'(Matlab v4, vid 4800 x T uint8, siz [60 80 T]) and '
          f'<root>/{AUDIO_DIR.as_posix()}/{{Letter}}{{rep}}_{{Speaker}}.mfcc (HTK MFCC_E_D)')


class AVLettersFormatError(ValueError):
    """A file of the dataset is malformed (the message names it)."""


# ----------------------------------------------------------------- Matlab v4 files

# MOPT precision digit P -> numpy type (endianness added from M)
_V4_PRECISION = {0: 'f8', 1: 'f4', 2: 'i4', 3: 'i2', 4: 'u2', 5: 'u1'}


def _decode_mat_v4(data: bytes, name: str) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    pos = 0
    while pos < len(data):
        if len(data) - pos < 20:
            raise AVLettersFormatError(f'{name}: {len(data) - pos} stray bytes at offset {pos}, '
                                       f'shorter than a 20-byte Matlab v4 matrix header')
        # M (byte order) decides how the header itself is read; try little then big endian
        for endian in '<>':
            mopt, mrows, ncols, imagf, namlen = struct.unpack(endian + '5i', data[pos:pos + 20])
            if 0 <= mopt < 5000 and mopt // 1000 == (0 if endian == '<' else 1):
                break
        else:
            raise AVLettersFormatError(f'{name}: matrix header at offset {pos} is not Matlab v4 '
                                       f'(type field is not a valid MOPT in either byte order)')
        m, o, p, t = mopt // 1000, (mopt // 100) % 10, (mopt // 10) % 10, mopt % 10
        if o != 0:
            raise AVLettersFormatError(f'{name}: MOPT {mopt} at offset {pos} has O={o}, must be 0')
        if p not in _V4_PRECISION:
            raise AVLettersFormatError(f'{name}: MOPT {mopt} at offset {pos} has unknown precision P={p}')
        if t not in (0, 1):
            raise AVLettersFormatError(f'{name}: MOPT {mopt} at offset {pos}: matrix type T={t} '
                                       f'(sparse) is not supported; only full numeric/text matrices')
        if mrows < 0 or ncols < 0 or imagf not in (0, 1) or not 1 <= namlen <= 4096:
            raise AVLettersFormatError(f'{name}: inconsistent v4 header at offset {pos}: '
                                       f'mrows={mrows} ncols={ncols} imagf={imagf} namlen={namlen}')
        pos += 20
        if len(data) - pos < namlen:
            raise AVLettersFormatError(f'{name}: truncated in a matrix name at offset {pos}')
        raw_name = data[pos:pos + namlen]
        if raw_name[-1:] != b'\x00':
            raise AVLettersFormatError(f'{name}: matrix name at offset {pos} is not NUL-terminated')
        var = raw_name[:-1].decode('ascii', errors='replace')
        pos += namlen
        dtype = np.dtype(('<' if m == 0 else '>') + _V4_PRECISION[p])
        count = mrows * ncols
        nbytes = count * dtype.itemsize * (2 if imagf else 1)
        if len(data) - pos < nbytes:
            raise AVLettersFormatError(
                f'{name}: truncated: matrix {var!r} ({mrows} x {ncols} {dtype.name}'
                f'{", complex" if imagf else ""}) needs {nbytes} bytes at offset {pos} '
                f'but only {len(data) - pos} remain')
        real = np.frombuffer(data, dtype=dtype, count=count, offset=pos)
        value = real.reshape(ncols, mrows).T                                  # column-major
        if imagf:
            imag = np.frombuffer(data, dtype=dtype, count=count, offset=pos + count * dtype.itemsize)
            value = value + 1j * imag.reshape(ncols, mrows).T
        out[var] = np.ascontiguousarray(value).astype(value.dtype.newbyteorder('='))
        pos += nbytes
    return out


def read_mat_v4(path: str | Path) -> dict[str, np.ndarray]:
    """
    Parse a Matlab v4 ``.mat`` file (the project's own parser).

    The file is a sequence of matrices, each a 20-byte header (type MOPT, mrows, ncols,
    imagf, namlen as int32), the NUL-terminated name, then the real (and imaginary)
    parts column-major.  Full numeric and text matrices of every precision (double,
    single, int32, int16, uint16, uint8), either byte order.

    Returns ``{name: (mrows, ncols) array}`` (native byte order).
    """
    path = Path(path)
    return _decode_mat_v4(path.read_bytes(), str(path))


def read_lips(path: str | Path) -> np.ndarray:
    """
    Read one ``-lips.mat`` file -> ``(T, 60, 80)`` uint8 frames.

    Each ``vid`` column is a 60 x 80 image stored column-major.
    """
    path = Path(path)
    mats = read_mat_v4(path)
    for key in ('vid', 'siz'):
        if key not in mats:
            raise AVLettersFormatError(f'{path}: no {key!r} matrix (found {sorted(mats)})')
    vid, siz = mats['vid'], mats['siz'].reshape(-1)
    if siz.size != 3 or not np.all(siz == np.round(siz)) or np.any(siz < 1):
        raise AVLettersFormatError(f'{path}: siz should be [60 80 T], got {siz.tolist()}')
    h, w, t = (int(v) for v in siz)
    if (h, w) != FRAME_SHAPE:
        raise AVLettersFormatError(f'{path}: siz says {h} x {w} images, expected {FRAME_SHAPE[0]} x {FRAME_SHAPE[1]}')
    if vid.dtype != np.uint8:
        raise AVLettersFormatError(f'{path}: vid is {vid.dtype}, expected uint8')
    if vid.shape != (h * w, t):
        raise AVLettersFormatError(f'{path}: vid is {vid.shape[0]} x {vid.shape[1]} but siz '
                                   f'[{h} {w} {t}] says {h * w} x {t}')
    # column k = frame k, pixel (r, c) at index r + h c  ->  reshape (T, W, H) and swap
    return np.ascontiguousarray(vid.T.reshape(t, w, h).transpose(0, 2, 1))


def read_audio(path: str | Path) -> np.ndarray:
    """One ``.mfcc`` file -> ``(T, 26)`` float32 ``MFCC_E_D`` frames (20 ms apart)."""
    path = Path(path)
    try:
        f = read_htk(path, expected_kind=AUDIO_KIND, expected_dim=AUDIO_DIM)
    except HTKFormatError as exc:
        raise AVLettersFormatError(str(exc)) from None
    if f.sample_period != AUDIO_FRAME_PERIOD:
        raise AVLettersFormatError(f'{path}: frame period {f.sample_period} x 100 ns, '
                                   f'expected {AUDIO_FRAME_PERIOD} (20 ms)')
    if f.features.shape[0] < 1:
        raise AVLettersFormatError(f'{path}: no frames')
    return f.features


# --------------------------------------------------------------------- pairing

@dataclasses.dataclass(frozen=True)
class AVLettersSample:
    """One paired utterance."""

    letter: str
    repetition: int
    speaker: str
    lips_path: Path
    audio_path: Path

    @property
    def label(self) -> int:
        return LETTERS.index(self.letter)

    @property
    def key(self) -> tuple[str, int, str]:
        return self.letter, self.repetition, self.speaker


def parse_lips_name(name: str) -> tuple[str, int, str]:
    m = _LIPS_RE.match(name)
    if not m:
        raise AVLettersFormatError(f'{name}: not a lips file name {{Letter}}{{rep}}_{{Speaker}}-lips.mat')
    return m.group(1), int(m.group(2)), m.group(3)


def parse_audio_name(name: str) -> tuple[str, int, str]:
    m = _AUDIO_RE.match(name)
    if not m:
        raise AVLettersFormatError(f'{name}: not an audio file name {{Letter}}{{rep}}_{{Speaker}}.mfcc')
    return m.group(1), int(m.group(2)), m.group(3)


def _check_root(root: Path) -> None:
    if not root.is_dir():
        raise DataRootError(f'AVLetters root {root} does not exist; {LAYOUT}')
    missing = [d for d in (LIPS_DIR, AUDIO_DIR) if not (root / d).is_dir()]
    if missing:
        raise DataRootError(f'AVLetters root {root} has no {", ".join(d.as_posix() for d in missing)}; {LAYOUT}')


def list_samples(root: str | Path) -> list[AVLettersSample]:
    """
    Pair every lips file with its audio file by (letter, repetition, speaker).

    Raises :class:`AVLettersFormatError` listing every unpaired or misnamed file
    (``DataRootError`` if the folders are missing).  Sorted by (speaker, letter, rep).
    """
    root = Path(root)
    _check_root(root)
    problems: list[str] = []
    lips: dict[tuple, Path] = {}
    audio: dict[tuple, Path] = {}
    for folder, parse, table in ((LIPS_DIR, parse_lips_name, lips), (AUDIO_DIR, parse_audio_name, audio)):
        for p in sorted((root / folder).iterdir()):
            if p.name.startswith('.') or not p.is_file():
                continue
            try:
                key = parse(p.name)
            except AVLettersFormatError as exc:
                problems.append(f'{folder.as_posix()}/{exc}')
                continue
            table[key] = p
    for key in sorted(set(lips) - set(audio)):
        problems.append(f'{lips[key]} has no audio file {AUDIO_DIR.as_posix()}/{key[0]}{key[1]}_{key[2]}.mfcc')
    for key in sorted(set(audio) - set(lips)):
        problems.append(f'{audio[key]} has no lips file {LIPS_DIR.as_posix()}/{key[0]}{key[1]}_{key[2]}-lips.mat')
    if problems:
        raise AVLettersFormatError(f'AVLetters at {root}: {len(problems)} problem(s):\n  ' + '\n  '.join(problems))
    if not lips:
        raise DataRootError(f'AVLetters root {root} contains no samples; {LAYOUT}')
    keys = sorted(lips, key=lambda k: (k[2], k[0], k[1]))
    return [AVLettersSample(k[0], k[1], k[2], lips[k], audio[k]) for k in keys]


# ------------------------------------------------------------------- protocols

def speaker_dependent_split(samples: Sequence[AVLettersSample], *, n_test: int = 180,
                            seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """
    Return the report's speaker-dependent random split (600 train / 180 test for 780 samples).

    Stratified by letter: each letter gives ``n_test // 26`` test samples (6), and the
    remaining ``n_test % 26`` (24) letters, chosen by the seed, give one more (7), all
    drawn at random among that letter's 30 samples (any speaker, any repetition), so
    every speaker appears in both parts.  Deterministic for a given ``seed``.

    Returns ``(train_idx, test_idx)``, sorted int64 indices into ``samples``.
    """
    labels = np.array([s.label for s in samples])
    n = len(samples)
    if not 0 < n_test < n:
        raise ValueError(f'n_test must be in (0, {n}), got {n_test}')
    classes = np.unique(labels)
    rng = np.random.default_rng(seed)
    per = np.full(classes.size, n_test // classes.size)
    per[rng.permutation(classes.size)[:n_test % classes.size]] += 1
    test = []
    for c, k in zip(classes, per):
        idx = np.flatnonzero(labels == c)
        if k > idx.size:
            raise ValueError(f'letter {LETTERS[c]} has {idx.size} samples, cannot take {k} for the test set')
        test.extend(rng.choice(idx, size=k, replace=False).tolist())
    test_idx = np.sort(np.array(test, dtype=np.int64))
    train_idx = np.setdiff1d(np.arange(n, dtype=np.int64), test_idx)
    return train_idx, test_idx


def leave_one_speaker_out(samples: Sequence[AVLettersSample]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """One fold per speaker (10): ``[(speaker, train_idx, test_idx), ...]`` sorted by speaker."""
    speakers = np.array([s.speaker for s in samples])
    folds = []
    for spk in sorted(set(speakers.tolist())):
        test = np.flatnonzero(speakers == spk).astype(np.int64)
        train = np.flatnonzero(speakers != spk).astype(np.int64)
        folds.append((spk, train, test))
    return folds


# ------------------------------------------------------------------ preprocessing

def preprocess_audio(features: np.ndarray, *, audio_frames: int = 24) -> np.ndarray:
    """
    ``(T, 26)`` MFCC_E_D -> ``(26, audio_frames)`` float32.

    The runtime's :func:`centralnet_ros.features.htk.speech_model_input` ends in the
    same function.
    """
    return mfcc_to_model_input(features, num_frames=audio_frames)


def preprocess_video(frames: np.ndarray, *, video_frames: int = 12) -> np.ndarray:
    """
    ``(T, 60, 80)`` uint8 -> ``(video_frames, 60, 80)`` float32.

    Fourier-resampled along time, then each frame z-normalised (the runtime's
    ``lip_video`` pipeline ends in the same function).
    """
    return lip_frames_to_model_input(frames, num_frames=video_frames)


@dataclasses.dataclass
class AVLettersArrays:
    """Fixed-size tensors for all samples, in :func:`list_samples` order."""

    X_audio: np.ndarray          # (N, 26, audio_frames) float32, feature-major MFCC image
    X_video: np.ndarray          # (N, video_frames, 60, 80) float32, per-frame z-normalised
    y: np.ndarray                # (N,) int64, 0..25 = A..Z
    speaker: np.ndarray          # (N,) int64, index into speaker_names
    repetition: np.ndarray       # (N,) int64, 1..3
    speaker_names: tuple[str, ...]
    letters: str = LETTERS

    def __len__(self) -> int:
        return int(self.y.shape[0])


def build_arrays(samples: Sequence[AVLettersSample], *, audio_frames: int = 24,
                 video_frames: int = 12) -> AVLettersArrays:
    """Read and preprocess every sample (no cache)."""
    speaker_names = tuple(sorted({s.speaker for s in samples}))
    n = len(samples)
    xa = np.empty((n, AUDIO_DIM, audio_frames), dtype=np.float32)
    xv = np.empty((n, video_frames, *FRAME_SHAPE), dtype=np.float32)
    for i, s in enumerate(samples):
        xa[i] = preprocess_audio(read_audio(s.audio_path), audio_frames=audio_frames)
        xv[i] = preprocess_video(read_lips(s.lips_path), video_frames=video_frames)
    return AVLettersArrays(
        X_audio=xa, X_video=xv,
        y=np.array([s.label for s in samples], dtype=np.int64),
        speaker=np.array([speaker_names.index(s.speaker) for s in samples], dtype=np.int64),
        repetition=np.array([s.repetition for s in samples], dtype=np.int64),
        speaker_names=speaker_names)


def _cache_key(samples: Sequence[AVLettersSample], root: Path, audio_frames: int, video_frames: int) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({'version': CACHE_VERSION, 'root': str(root.resolve()), 'audio_frames': audio_frames,
                         'video_frames': video_frames}, sort_keys=True).encode())
    for s in samples:
        for p in (s.lips_path, s.audio_path):
            st = p.stat()
            h.update(f'{p.name}:{st.st_size}:{st.st_mtime_ns};'.encode())
    return h.hexdigest()[:16]


def load_arrays(root: str | Path | None = None, *, audio_frames: int = 24, video_frames: int = 12,
                cache: bool = True, cache_dir: str | Path | None = None) -> AVLettersArrays:
    """
    Load AVLetters as model tensors (N = 780).

    ``X_audio (N, 26, 24)``, ``X_video (N, 12, 60, 80)``, ``y``, ``speaker``, ``repetition``.

    ``root`` defaults to ``paths.data_root() / 'avletters'``.  With ``cache=True`` the
    arrays are kept in ``<cache_dir>/avletters-<key>.npz`` (``paths.cache_dir()`` by
    default), the key hashing the parameters and each file's name, size and mtime; the
    file is written atomically and loaded without pickle.
    """
    from centralnet_ros import paths
    from centralnet_ros.config import atomic_savez

    root = Path(root) if root is not None else paths.data_root() / 'avletters'
    samples = list_samples(root)
    if not cache:
        return build_arrays(samples, audio_frames=audio_frames, video_frames=video_frames)
    folder = paths.cache_dir(cache_dir)
    file = folder / f'avletters-{_cache_key(samples, root, audio_frames, video_frames)}.npz'
    if file.is_file():
        try:
            with np.load(file, allow_pickle=False) as z:
                return AVLettersArrays(X_audio=z['X_audio'], X_video=z['X_video'], y=z['y'],
                                       speaker=z['speaker'], repetition=z['repetition'],
                                       speaker_names=tuple(str(s) for s in z['speaker_names']),
                                       letters=str(z['letters']))
        except (OSError, KeyError, ValueError):
            pass  # unreadable cache: rebuild and overwrite
    arrays = build_arrays(samples, audio_frames=audio_frames, video_frames=video_frames)
    atomic_savez(file, X_audio=arrays.X_audio, X_video=arrays.X_video, y=arrays.y, speaker=arrays.speaker,
                 repetition=arrays.repetition, speaker_names=np.array(arrays.speaker_names, dtype=str),
                 letters=np.array(arrays.letters))
    return arrays


# ------------------------------------------------------------------ data check

def summarize(root: Path):
    """
    Summarise the dataset for ``centralnet data check --dataset avletters``.

    Reads every file (so a truncated one is found) and counts samples per split of the
    speaker-dependent protocol and per letter.
    """
    root = Path(root)
    samples = list_samples(root)
    train_idx, test_idx = speaker_dependent_split(samples)
    audio_t, video_t, ratio = [], [], []
    for s in samples:
        a = read_audio(s.audio_path).shape[0]
        v = read_lips(s.lips_path).shape[0]
        audio_t.append(a)
        video_t.append(v)
        ratio.append(a / v)
    counts: dict[str, dict[str, int]] = {}
    for split, idx in (('train', train_idx), ('test', test_idx)):
        c: dict[str, int] = {}
        for i in idx:
            c[samples[i].letter] = c.get(samples[i].letter, 0) + 1
        counts[split] = c
    speakers = sorted({s.speaker for s in samples})
    return DatasetSummary(
        name='avletters', root=str(root), counts=counts,
        modalities={
            'lip_video': f'(T, 60, 80) uint8 at {VIDEO_FPS:g} fps, T {min(video_t)}..{max(video_t)}; '
                         f'model input (12, 60, 80) float32',
            'mfcc': f'(T, 26) HTK MFCC_E_D every 20 ms, T {min(audio_t)}..{max(audio_t)}; '
                    f'model input (26, 24) float32',
        },
        notes=[f'{len(samples)} pairs (letter, repetition, speaker) all matched; '
               f'{len(speakers)} speakers: {", ".join(speakers)}',
               'split: speaker-dependent 600/180 stratified by letter (seed 0); '
               'leave-one-speaker-out: 10 folds',
               f'audio/video frame ratio {min(ratio):.2f}..{max(ratio):.2f} (50 vs 25 frames/s)'])
