"""
AVLetters as an experiment: the training adapter and the lip augmentation.

:func:`load_avletters` is the ``avletters`` entry of
:data:`centralnet_ros.training.datasets.ADAPTERS`.  It reads the dataset in its own
files (:mod:`centralnet_ros.data.avletters`) and makes every model input with the
runtime pipelines' tails (:func:`~centralnet_ros.features.speech.mfcc_frames_to_input`,
:func:`~centralnet_ros.features.speech.lip_frames_to_input`), so a bundle trained here
computes on the robot what it saw in training.

Modalities (channels first, no batch axis):

* ``mfcc``: ``(1, 26, audio_frames)``, the HTK MFCC_E_D map (26 coefficients x frames);
* ``lip_video``: ``(1, video_frames, H, W)`` grey lip frames, ``(H, W) = video_size``
  (60 x 80, AVLetters' own size, unless the preset asks for smaller).

Protocols (``options['protocol']``):

* ``speaker_dependent``: the report's random split, 600 train / 180 test, stratified by
  letter (:func:`~centralnet_ros.data.avletters.speaker_dependent_split`, drawn with
  ``seed``).  Validation: ``val_per_letter`` (2) samples of each letter are drawn at
  random from the 600 training samples (52 in all, with ``seed``), leaving 548 to train.
* ``loso``: leave one speaker out, ``fold`` 0..9 = the held-out speaker in sorted name
  order (Anya, Bill, Faye, John, Kate, Nicola, Stephen, Steve, Verity, Yi): 78 test
  samples.  Validation is speaker-independent too: the next speaker in that order
  (``(fold + 1) % 10``) is held out of training (78 samples), leaving 624 from 8
  speakers to train.

:data:`AUGMENTATIONS` holds the training-time augmentations by name;
``lip_video`` (:func:`lip_augmentation`) is the report's random brightness, contrast
and crop (>= 80 % of the area, resized back) plus the gradient/gamma perturbations of
:func:`~centralnet_ros.features.image.augment_lip_sequence`, usable as
``train(..., augment=make_augmentation('lip_video'))``; ``mfcc_masking``
(:func:`mfcc_masking`) masks frames and coefficients of the cepstral maps, as
SpecAugment does (``centralnet finetune --augment mfcc_masking``).
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any, Callable, Literal

from centralnet_ros.training.datasets import ExperimentData
from centralnet_ros.training.trainer import ArraySplit
import numpy as np

__all__ = ['AVLettersOptions', 'PROTOCOLS', 'MODALITIES', 'load_avletters', 'avletters_arrays', 'protocol_indices',
           'lip_augmentation', 'mfcc_masking', 'AUGMENTATIONS', 'make_augmentation']

PROTOCOLS = ('speaker_dependent', 'loso')
MODALITIES = ('mfcc', 'lip_video')


@dataclasses.dataclass
class AVLettersOptions:
    """``dataset_options`` of an AVLetters preset (unknown keys are errors)."""

    protocol: Literal['speaker_dependent', 'loso'] = 'speaker_dependent'
    fold: int = 0                       # loso: index of the held-out speaker in sorted order (0..9)
    seed: int = 0                       # speaker_dependent: the split draw and the validation draw
    val_per_letter: int = 2             # speaker_dependent: validation samples per letter, from train
    audio_frames: int = 24              # MFCC frames after Fourier resampling
    video_frames: int = 12              # lip frames after Fourier resampling
    video_size: list[int] = dataclasses.field(default_factory=lambda: [60, 80])   # (H, W) of the lip frames
    mfcc_norm: Literal['none', 'utterance'] = 'none'   # see features.speech.normalise_mfcc_map
    modalities: list[str] = dataclasses.field(default_factory=lambda: list(MODALITIES))
    not_a_letter: dict[str, Any] | None = None   # add the rejection class (training.non_letters options)

    def __post_init__(self) -> None:
        if self.audio_frames < 1 or self.video_frames < 1:
            raise ValueError(f'audio_frames and video_frames must be >= 1, got {self.audio_frames}, '
                             f'{self.video_frames}')
        if len(self.video_size) != 2 or min(self.video_size) < 4:
            raise ValueError(f'video_size must be [height, width] of at least 4 pixels, got {self.video_size}')
        if self.val_per_letter < 1:
            raise ValueError(f'val_per_letter must be >= 1, got {self.val_per_letter}')
        bad = [m for m in self.modalities if m not in MODALITIES]
        if bad or not self.modalities:
            raise ValueError(f'modalities must be a non-empty subset of {list(MODALITIES)}, got {self.modalities}')


@dataclasses.dataclass(frozen=True)
class _Arrays:
    mfcc: np.ndarray          # (N, 1, 26, audio_frames) float32
    lip_video: np.ndarray     # (N, 1, video_frames, H, W) float32
    labels: np.ndarray        # (N,) int64, 0..25 = A..Z
    speaker: np.ndarray       # (N,) int64 index into speakers
    speakers: tuple[str, ...]


@functools.lru_cache(maxsize=4)
def _arrays_cached(root: str, audio_frames: int, video_frames: int, height: int, width: int,
                   mfcc_norm: str) -> _Arrays:
    from centralnet_ros.data import avletters
    from centralnet_ros.features.speech import lip_frames_to_input, mfcc_frames_to_input

    samples = avletters.list_samples(root)
    n = len(samples)
    mfcc = np.empty((n, 1, avletters.AUDIO_DIM, audio_frames), np.float32)
    lips = np.empty((n, 1, video_frames, height, width), np.float32)
    for i, s in enumerate(samples):
        mfcc[i] = mfcc_frames_to_input(avletters.read_audio(s.audio_path), num_frames=audio_frames,
                                       mfcc_norm=mfcc_norm)                  # (1, 26, audio_frames)
        lips[i] = lip_frames_to_input(avletters.read_lips(s.lips_path), num_frames=video_frames,
                                      height=height, width=width)            # (1, video_frames, H, W)
    speakers = tuple(sorted({s.speaker for s in samples}))
    for a in (mfcc, lips):
        a.setflags(write=False)                                              # shared by callers
    return _Arrays(mfcc=mfcc, lip_video=lips, labels=np.array([s.label for s in samples], np.int64),
                   speaker=np.array([speakers.index(s.speaker) for s in samples], np.int64), speakers=speakers)


def avletters_arrays(data_root: Path, options: AVLettersOptions) -> _Arrays:
    """
    Return all 780 samples as model inputs, in :func:`~centralnet_ros.data.avletters.list_samples` order.

    Memoised per process: a benchmark that runs many folds reads the files once.
    """
    root = Path(data_root) / 'avletters'
    h, w = options.video_size
    return _arrays_cached(str(root.resolve()), options.audio_frames, options.video_frames, int(h), int(w),
                          options.mfcc_norm)


def protocol_indices(labels: np.ndarray, speaker: np.ndarray, speakers: tuple[str, ...],
                     options: AVLettersOptions, samples=None) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """``(train_idx, val_idx, test_idx, info)`` for the options' protocol (disjoint, sorted)."""
    from centralnet_ros.data import avletters
    n = len(labels)
    if options.protocol == 'speaker_dependent':
        if samples is None:
            raise ValueError('the speaker_dependent protocol needs the sample list')
        train_all, test = avletters.speaker_dependent_split(samples, seed=options.seed)
        rng = np.random.default_rng([options.seed, 1])                     # a stream apart from the split's
        val = []
        for c in np.unique(labels[train_all]):
            pool = train_all[labels[train_all] == c]
            if pool.size <= options.val_per_letter:
                raise ValueError(f'letter {avletters.LETTERS[c]} has {pool.size} training samples, cannot '
                                 f'carve {options.val_per_letter} for validation')
            val.extend(rng.choice(pool, size=options.val_per_letter, replace=False).tolist())
        val = np.sort(np.array(val, np.int64))
        train = np.setdiff1d(train_all, val)
        info = {'protocol': (f'speaker-dependent random split (report): {len(train_all)} train / {len(test)} test '
                             f'stratified by letter (seed {options.seed}); validation {len(val)} '
                             f'({options.val_per_letter} per letter) drawn from the {len(train_all)} train samples'),
                'split_seed': options.seed}
    elif options.protocol == 'loso':
        k = len(speakers)
        if not 0 <= options.fold < k:
            raise ValueError(f'loso fold must be in 0..{k - 1} (one per speaker: {", ".join(speakers)}), '
                             f'got {options.fold}')
        val_spk = (options.fold + 1) % k
        test = np.flatnonzero(speaker == options.fold).astype(np.int64)
        val = np.flatnonzero(speaker == val_spk).astype(np.int64)
        train = np.setdiff1d(np.arange(n, dtype=np.int64), np.concatenate([test, val]))
        info = {'protocol': (f'leave-one-speaker-out fold {options.fold}: test speaker {speakers[options.fold]} '
                             f'({len(test)}), validation speaker {speakers[val_spk]} ({len(val)}), '
                             f'train the other {k - 2} speakers ({len(train)})'),
                'fold': options.fold, 'test_speaker': speakers[options.fold], 'val_speaker': speakers[val_spk]}
    else:
        raise ValueError(f'protocol must be one of {PROTOCOLS}, got {options.protocol!r}')
    return train, val, test, info


def load_avletters(options: dict[str, Any], data_root: Path) -> ExperimentData:
    """
    Load AVLetters (the ``avletters`` adapter): ``dataset_options`` (see :class:`AVLettersOptions`) -> splits.

    Inputs ``{'mfcc': (N, 1, 26, audio_frames), 'lip_video': (N, 1, video_frames, H, W)}``
    (the modalities listed in ``options['modalities']``), labels 0..25 = A..Z.
    """
    from centralnet_ros.config import from_dict
    from centralnet_ros.data import avletters

    opts = from_dict(AVLettersOptions, dict(options), _where='dataset_options')
    samples = avletters.list_samples(Path(data_root) / 'avletters')           # names only: cheap, checks pairing
    n_speakers = len({s.speaker for s in samples})
    if opts.protocol == 'loso' and not 0 <= opts.fold < n_speakers:          # fail before reading every file
        raise ValueError(f'dataset_options.fold must be in 0..{n_speakers - 1} for the loso protocol '
                         f'(one fold per speaker), got {opts.fold}')
    arrays = avletters_arrays(data_root, opts)
    train, val, test, info = protocol_indices(arrays.labels, arrays.speaker, arrays.speakers, opts, samples)

    def split(index: np.ndarray, name: str) -> ArraySplit:
        inputs = {m: getattr(arrays, m)[index] for m in opts.modalities}
        labels = arrays.labels[index]
        if opts.not_a_letter is None:
            return ArraySplit(inputs, labels)
        from centralnet_ros.training.non_letters import non_letter_mfcc, synthetic_letter_mfcc
        neg, _ = non_letter_mfcc(data_root, name, opts.not_a_letter, num_frames=opts.audio_frames,
                                 mfcc_norm=opts.mfcc_norm)
        rng = np.random.default_rng([opts.seed, 2, ['train', 'val', 'test'].index(name)])
        extra = {'mfcc': [neg], 'lip_video': [arrays.lip_video[rng.choice(index, size=len(neg))]]}
        extra_y = [np.full(len(neg), len(avletters.LETTERS), np.int64)]
        if opts.not_a_letter.get('synthetic_letters', True) and name != 'test':
            sx, sy = synthetic_letter_mfcc(name, opts.audio_frames, opts.mfcc_norm)
            same = [rng.choice(index[labels == k]) for k in sy]                # lips of the same letter
            extra['mfcc'].append(sx)
            extra['lip_video'].append(arrays.lip_video[np.asarray(same, np.int64)].reshape(-1, *inputs[
                'lip_video'].shape[1:]) if 'lip_video' in inputs else np.zeros((len(sx), 0)))
            extra_y.append(sy)
        from centralnet_ros.training.non_letters import runtime_window_mfcc
        wx, wy, _, header = runtime_window_mfcc(name, opts.not_a_letter, num_frames=opts.audio_frames,
                                                mfcc_norm=opts.mfcc_norm)
        if len(wx):                    # the robot's own windows: non-letters with any lips, letters with theirs
            lips = [rng.choice(index) if k == len(avletters.LETTERS) else rng.choice(index[labels == k]) for k in wy]
            extra['mfcc'].append(wx)
            extra['lip_video'].append(arrays.lip_video[np.asarray(lips, np.int64)])
            extra_y.append(wy)
            runtime_counts[name] = {'not_a_letter': int((wy == len(avletters.LETTERS)).sum()),
                                    'letters': int((wy < len(avletters.LETTERS)).sum())}
            made[0] = (f"`{header.get('command') or 'centralnet speech-windows'}` on {header.get('date', '?')} "
                       f"with the pipelines of bundle {str(header.get('bundle_sha256', '?'))[:12]}")
        return ArraySplit({m: np.concatenate([inputs[m], *extra[m]]) for m in opts.modalities},
                          np.concatenate([labels, *extra_y]))

    runtime_counts: dict[str, dict[str, int]] = {}
    made = ['']
    h, w = opts.video_size
    info.update({'train_samples': int(len(train)), 'val_samples': int(len(val)), 'test_samples': int(len(test)),
                 'mfcc_shape': f'1x{avletters.AUDIO_DIM}x{opts.audio_frames}',
                 'lip_video_shape': f'1x{opts.video_frames}x{h}x{w}', 'mfcc_norm': opts.mfcc_norm,
                 'speakers': ', '.join(arrays.speakers)})
    names = list(avletters.LETTERS)
    if opts.not_a_letter is not None:
        from centralnet_ros.training.non_letters import NOT_A_LETTER, SPEAKERS
        names.append(NOT_A_LETTER)
        info['training_datasets'] = 'avletters, fsdd, emodb'     # the rejection class learns from both
        info['not_a_letter'] = '; '.join(f'{k}: FSDD {", ".join(v["fsdd"])}, EmoDB '
                                         f'{", ".join(f"{x:02d}" for x in v["emodb"])}' for k, v in SPEAKERS.items())
    data = ExperimentData(train=split(train, 'train'), val=split(val, 'val'), test=split(test, 'test'),
                          label_names=names, info=info)
    if opts.not_a_letter is not None:
        for name in ('train', 'val', 'test'):
            info[f'not_a_letter_{name}_samples'] = int((getattr(data, name).labels == len(avletters.LETTERS)).sum())
        for name, counts in runtime_counts.items():
            info[f'runtime_windows_{name}_not_a_letter'] = counts['not_a_letter']
            info[f'runtime_windows_{name}_letters'] = counts['letters']
        if runtime_counts:
            info['runtime_windows'] = ('the train and val speakers and espeak-ng voices also as the runtime windows '
                                       '(sessions replayed through its buffers, voice-activity detector and htk_mfcc '
                                       f'window), made by {made[0]}')
    return data


# ------------------------------------------------------------------------ augmentation

Augment = Callable[[dict[str, np.ndarray], np.random.Generator], dict[str, np.ndarray]]


def _batch_copy(batch: np.ndarray, what: str, modality: str, layout: str) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(batch, float32 copy)`` after checking it has ``layout``'s rank and one channel."""
    x = np.asarray(batch)
    if x.ndim != layout.count(',') + 1 or x.shape[1] != 1:
        raise ValueError(f'{what} expects {modality} batches of shape {layout}, got {x.shape}')
    return x, np.array(x, dtype=np.float32, copy=True)


def lip_augmentation(*, modality: str = 'lip_video', p: float = 1.0, brightness: float = 0.1,
                     contrast: float = 0.2, gradient: float = 0.2, gamma: float = 0.25,
                     min_crop_area: float = 0.8) -> Augment:
    """
    Make a trainer ``augment`` hook for lip sequences: ``fn(inputs, rng) -> inputs``.

    Each sequence of ``inputs[modality]`` ``(B, 1, T, H, W)`` (already per-frame
    z-normalised, as the adapter makes it) is, with probability ``p``, passed through
    :func:`~centralnet_ros.features.image.augment_lip_sequence` (one draw per sequence:
    crop keeping >= ``min_crop_area`` of the area resized back, gamma, illumination
    gradient, contrast, brightness) with the sequence's own value range, then
    z-normalised per frame again, so augmented inputs have the statistics of real ones.
    The crop commutes with the z-normalisation exactly (z-normalisation removes any
    affine map of the intensities); brightness and contrast alone would be removed by
    it, which is why the gradient and gamma perturbations are kept on.
    Other modalities pass through untouched.
    """
    from centralnet_ros.features.image import augment_lip_sequence, znormalize_frames
    if not 0.0 <= p <= 1.0:
        raise ValueError(f'p must be in [0, 1], got {p}')

    def augment(inputs: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
        if modality not in inputs:
            return inputs
        x, out = _batch_copy(inputs[modality], 'lip augmentation', modality, '(B, 1, T, H, W)')
        for b in range(x.shape[0]):
            if p < 1.0 and rng.random() >= p:
                continue
            seq = x[b, 0]                                                    # (T, H, W)
            lo, hi = float(seq.min()), float(seq.max())
            if not hi > lo:
                continue
            aug = augment_lip_sequence(seq, rng=rng, brightness=brightness, contrast=contrast,
                                       gradient=gradient, gamma=gamma, min_crop_area=min_crop_area,
                                       value_range=(lo, hi))
            out[b, 0] = znormalize_frames(aug)
        return {**inputs, modality: out}

    return augment


def mfcc_masking(*, modality: str = 'mfcc', p: float = 1.0, time_masks: int = 2, max_time: int = 3,
                 coefficient_masks: int = 1, max_coefficients: int = 3) -> Augment:
    """
    Make a SpecAugment-like ``augment`` hook for cepstral maps ``inputs[modality]`` ``(B, 1, C, T)``.

    Each map is, with probability ``p``, given ``time_masks`` time masks of 0 to
    ``max_time`` frames, where every coefficient is replaced by its mean over the
    map's frames (the frames say nothing more than the utterance's average), and
    ``coefficient_masks`` masks of 0 to ``max_coefficients`` adjacent coefficients,
    replaced by the batch's mean of each coefficient (the utterance's own value is
    lost). The features are not normalised per utterance, hence means instead of
    SpecAugment's zeros. Other modalities pass through untouched.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f'p must be in [0, 1], got {p}')
    if min(time_masks, max_time, coefficient_masks, max_coefficients) < 0:
        raise ValueError('mask counts and widths must be >= 0')

    def augment(inputs: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
        if modality not in inputs:
            return inputs
        x, out = _batch_copy(inputs[modality], 'mfcc masking', modality, '(B, 1, C, T)')
        n_coef, n_time = x.shape[2], x.shape[3]
        batch_mean = x[:, 0].mean(axis=(0, 2))                              # (C,)
        for b in range(x.shape[0]):
            if p < 1.0 and rng.random() >= p:
                continue
            frame_mean = out[b, 0].mean(axis=1)                              # (C,)
            for _ in range(time_masks):
                w = int(rng.integers(0, min(max_time, n_time) + 1))
                t0 = int(rng.integers(0, n_time - w + 1))
                out[b, 0, :, t0:t0 + w] = frame_mean[:, None]
            for _ in range(coefficient_masks):
                w = int(rng.integers(0, min(max_coefficients, n_coef) + 1))
                c0 = int(rng.integers(0, n_coef - w + 1))
                out[b, 0, c0:c0 + w, :] = batch_mean[c0:c0 + w, None]
        return {**inputs, modality: out}

    return augment


# augmentation name -> factory(**params) -> Augment (the preset names one; see the module docstring)
AUGMENTATIONS: dict[str, Callable[..., Augment]] = {
    'lip_video': lip_augmentation,
    'mfcc_masking': mfcc_masking,
}


def make_augmentation(name: str | None, **params: Any) -> Augment | None:
    """Return the augmentation registered as ``name`` (``None`` or ``''``: no augmentation)."""
    if not name:
        return None
    if name not in AUGMENTATIONS:
        raise KeyError(f'unknown augmentation {name!r}; known: {", ".join(sorted(AUGMENTATIONS))}')
    return AUGMENTATIONS[name](**params)
