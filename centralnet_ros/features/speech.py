"""
Runtime input pipelines of the speech task (AVLetters): ``htk_mfcc`` and ``lip_video``.

Both pipelines are ``fn(window, **preprocessing) -> np.ndarray`` (see
:mod:`centralnet_ros.features.pipelines`), and both end in a *tail* function that the
AVLetters training adapter (:mod:`centralnet_ros.training.speech`) calls on the
dataset's own files, so the robot computes exactly what the model was trained on:

=============  ==========================================  ==========================================
pipeline       runtime (``window.data``)                   training (AVLetters files)
=============  ==========================================  ==========================================
``htk_mfcc``   mono waveform at any ``sample_rate``         ``Audio/mfcc/Clean/*.mfcc`` (HTK MFCC_E_D)
               at the front end's 22.05 kHz (the runtime resamples once)
               -> :func:`~centralnet_ros.features.htk.mfcc_e_d` -> :func:`mfcc_frames_to_input`
                                                           -> :func:`mfcc_frames_to_input`
``lip_video``  ``(T, H, W, 3)`` RGB / ``(T, H, W)`` grey    ``Lips/*-lips.mat`` ``(T, 60, 80)`` grey
               mouth-region frames -> :func:`lip_frames_to_input`   -> :func:`lip_frames_to_input`
=============  ==========================================  ==========================================

The audio paths differ in where they start: AVLetters ships no waveforms, only HTK
MFCC_E_D files, so training starts from those frames while the robot starts from the
microphone and runs the project's re-implementation of the HTK front end
(:mod:`centralnet_ros.features.htk`, whose fidelity to the files is measured in
``benchmarks/results/htk_parity.md``).  From the ``(T, 26)`` frames on, both run
:func:`mfcc_frames_to_input`.

Normalisation, and why none of it uses statistics beyond one sample:

* MFCC: ``mfcc_norm='none'`` (the default, and what the AVLetters presets train with)
  leaves the values as HTK wrote them.  The only normalisation is HTK's own energy
  normalisation inside MFCC_E_D (log energy relative to the utterance maximum), which
  the AVLetters files carry and :func:`~centralnet_ros.features.htk.mfcc_e_d` applies
  over the window, i.e. per utterance on both sides.  ``mfcc_norm='utterance'`` adds
  cepstral mean and variance normalisation per utterance (each of the 26 coefficient
  rows to zero mean, unit variance over its frames), again per sample on both sides;
  it lowered audio accuracy on AVLetters' speaker-dependent split in the runs made
  while choosing the front end, so it is not used; neither is a per-coefficient
  standardisation with training-set constants, which did not help (the first
  BatchNorm absorbs the scale).  Figures belong in ``benchmarks/results/``.
* lips: per-frame z-normalisation (:func:`~centralnet_ros.features.image.znormalize_frames`),
  which depends on one frame only.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Literal

from centralnet_ros.features.htk import AVLETTERS_CONFIG, HTKConfig, mfcc_e_d, mfcc_to_model_input
from centralnet_ros.features.image import lip_frames_to_model_input
import cv2
import numpy as np

__all__ = ['MFCC_NORMS', 'normalise_mfcc_map', 'mfcc_frames_to_input', 'HTKMFCCParams', 'mfcc_input',
           'to_grey_frames', 'lip_frames_to_input', 'LipVideoParams', 'lip_input']

MFCC_NORMS = ('none', 'utterance')


def normalise_mfcc_map(mfcc_map: np.ndarray, *, mfcc_norm: Literal['none', 'utterance'] = 'none',
                       eps: float = 1e-5) -> np.ndarray:
    """
    Normalise one ``(D, T)`` MFCC map (feature-major) per row, over its own frames.

    ``'utterance'``: each coefficient row to zero mean and unit variance (cepstral mean
    and variance normalisation over this utterance; ``eps`` is added to the standard
    deviation, so a constant row becomes zeros).  ``'none'``: unchanged.

    Returns float32 ``(D, T)``.
    """
    x = np.asarray(mfcc_map, dtype=np.float64)
    if x.ndim != 2 or min(x.shape) == 0:
        raise ValueError(f'expected an MFCC map of shape (D, T), got {x.shape}')
    if mfcc_norm == 'none':
        return x.astype(np.float32)
    if mfcc_norm != 'utterance':
        raise ValueError(f'mfcc_norm must be one of {MFCC_NORMS}, got {mfcc_norm!r}')
    mean = x.mean(axis=1, keepdims=True)
    std = x.std(axis=1, keepdims=True)
    return ((x - mean) / (std + eps)).astype(np.float32)


def mfcc_frames_to_input(frames: np.ndarray, *, num_frames: int = 24,
                         mfcc_norm: Literal['none', 'utterance'] = 'none') -> np.ndarray:
    """
    Apply the shared tail: ``(T, 26)`` MFCC_E_D frames -> ``(1, 26, num_frames)`` float32 model input.

    Fourier-resampled to ``num_frames`` along time
    (:func:`~centralnet_ros.features.htk.mfcc_to_model_input`), then
    :func:`normalise_mfcc_map`, then a leading channel axis.
    """
    mfcc_map = mfcc_to_model_input(frames, num_frames=num_frames)             # (26, num_frames)
    return normalise_mfcc_map(mfcc_map, mfcc_norm=mfcc_norm)[None]            # (1, 26, num_frames)


@dataclasses.dataclass(frozen=True)
class HTKMFCCParams:
    """
    Parameters of pipeline ``htk_mfcc``.

    ``htk`` holds :class:`~centralnet_ros.features.htk.HTKConfig` fields; the ones not
    given take :data:`~centralnet_ros.features.htk.AVLETTERS_CONFIG`'s values, and the
    resolved params carry every field, ``htk.sample_rate`` (22.05 kHz for AVLetters)
    included: the one rate the front end runs at.
    """

    num_frames: int = 24
    mfcc_norm: Literal['none', 'utterance'] = 'none'
    htk: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.mfcc_norm not in MFCC_NORMS:
            raise ValueError(f'mfcc_norm must be one of {MFCC_NORMS}, got {self.mfcc_norm!r}')
        object.__setattr__(self, 'htk', dataclasses.asdict(_htk_config(self.htk)))

    @property
    def sample_rate(self) -> int:
        return int(self.htk['sample_rate'])


def mfcc_input(window, /, **params) -> np.ndarray:
    """
    Input pipeline ``'htk_mfcc'``: one utterance of raw audio -> ``(1, 26, num_frames)``.

    ``params``: :class:`HTKMFCCParams`.  ``window.data`` is ``(n_samples,)`` mono audio
    (float in [-1, 1] or int16) at ``window.sample_rate`` Hz, which must be the front
    end's ``htk.sample_rate`` (the runtime resamples once, to the manifest's
    ``sample_rate``; anything else is refused).  The waveform goes through the
    AVLetters HTK front end (:data:`~centralnet_ros.features.htk.AVLETTERS_CONFIG`,
    fields overridable with ``htk={...}``), giving ``(T, 26)`` MFCC_E_D frames with the
    energy normalised over the window, then through :func:`mfcc_frames_to_input`.

    The window should hold one utterance (e.g. a VAD segment), as each AVLetters file
    does.
    """
    from centralnet_ros.features.pipelines import check_sample_rate
    p = HTKMFCCParams(**params)
    config = HTKConfig(**p.htk)
    check_sample_rate('htk_mfcc', window, config.sample_rate)
    x = np.asarray(window.data)
    if x.ndim != 1 and not (x.ndim == 2 and 1 in x.shape):
        raise ValueError(f'the htk_mfcc pipeline expects mono audio of shape (n_samples,), got {x.shape}')
    # the front end gives (T, 26) frames with the energy normalised over this window, as HTK did
    # per AVLetters utterance; from here on the runtime and training run the same tail
    frames = mfcc_e_d(x.reshape(-1), sample_rate=config.sample_rate, config=config)
    if frames.shape[0] < 1:
        raise ValueError(f'audio window of {x.size} samples at {config.sample_rate} Hz is shorter than one '
                         f'{config.window_length_s * 1e3:.0f} ms analysis window')
    return mfcc_frames_to_input(frames, num_frames=p.num_frames, mfcc_norm=p.mfcc_norm)


def _htk_config(overrides: dict[str, Any] | None) -> HTKConfig:
    if not overrides:
        return AVLETTERS_CONFIG
    known = {f.name for f in dataclasses.fields(HTKConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f'unknown HTKConfig field(s) {", ".join(unknown)} in htk_mfcc preprocessing; '
                         f'known: {", ".join(sorted(known))}')
    return dataclasses.replace(AVLETTERS_CONFIG, **overrides)


def to_grey_frames(frames: np.ndarray) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 RGB or ``(T, H, W)`` grey -> ``(T, H, W)`` grey (uint8 kept)."""
    x = np.asarray(frames)
    if x.ndim == 4 and x.shape[-1] == 3:
        return np.stack([cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY)
                         for f in x.astype(np.uint8, copy=False)])
    if x.ndim == 3:
        return x
    raise ValueError(f'lip frames must be (T, H, W, 3) RGB or (T, H, W) grey, got shape {x.shape}')


def lip_frames_to_input(frames: np.ndarray, *, num_frames: int = 12, height: int = 60,
                        width: int = 80) -> np.ndarray:
    """
    Apply the shared tail: lip frames -> ``(1, num_frames, height, width)`` float32 model input.

    ``frames``: ``(T, H, W, 3)`` RGB or ``(T, H, W)`` grey mouth-region frames (T >= 1).
    Grey, resized to ``height x width`` with ``cv2.INTER_AREA`` when the size differs
    (AVLetters' own 60 x 80 frames are not touched at the default size), Fourier-resampled
    to ``num_frames`` and z-normalised per frame
    (:func:`~centralnet_ros.features.image.lip_frames_to_model_input`).
    """
    x = to_grey_frames(frames)                                                # (T, H, W)
    if x.shape[0] == 0 or min(x.shape[1:]) == 0:
        raise ValueError(f'lip frames are empty: shape {x.shape}')
    if height < 1 or width < 1:
        raise ValueError(f'height and width must be positive, got {height} x {width}')
    if x.shape[1:] != (height, width):
        x = np.stack([cv2.resize(np.ascontiguousarray(f), (width, height), interpolation=cv2.INTER_AREA)
                      for f in x])                                            # (T, height, width)
    return lip_frames_to_model_input(x, num_frames=num_frames)[None]         # (1, num_frames, H, W)


@dataclasses.dataclass(frozen=True)
class LipVideoParams:
    """Parameters of pipeline ``lip_video``: the mouth stage, frames kept and the size they are resized to."""

    num_frames: int = 12
    height: int = 60
    width: int = 80
    mouth: dict[str, Any] | None = None    # features/mouth.py MouthStage fields; None: frames are mouth crops


def lip_input(window, /, **params) -> np.ndarray | None:
    """
    Input pipeline ``'lip_video'``: ``window.data`` camera frames -> ``(1, num_frames, height, width)``.

    ``params``: :class:`LipVideoParams`.  ``window.data``: ``(T, H, W, 3)`` uint8 RGB or
    ``(T, H, W)`` grey frames.  With ``mouth`` (the :class:`~centralnet_ros.features.mouth.MouthStage`
    parameters) the mouth region is found and cropped first
    (:func:`~centralnet_ros.features.mouth.mouth_frames`: full camera frames, ROS4HRI aligned
    faces, or frames that already are mouth crops); None when no face is found (the lips
    are then absent).  Without it the frames must already be mouth crops.  Then
    :func:`lip_frames_to_input`.
    """
    p = LipVideoParams(**params)
    frames = window.data
    if p.mouth is not None:
        from .mouth import mouth_frames
        frames = mouth_frames(frames, p.mouth)
        if frames is None:
            return None
    return lip_frames_to_input(frames, num_frames=p.num_frames, height=p.height, width=p.width)
