"""
Speaker normalisation of utterance feature vectors: batch statistics for training, running ones for the robot.

A speaker's voice shifts every functional (pitch, loudness, spectral tilt), and about
half of what separates emotions across speakers is that shift.  Training normalises
each speaker's utterances with that speaker's statistics (:func:`speaker_statistics`,
:func:`normalise_by_speaker`); the robot estimates the same statistics online from
the unlabelled speech it hears (:class:`RunningMoments`), starting from a prior
fitted on the training speakers (:func:`fit_prior`), forgetting old speech
(``half_life_s``), and counting each utterance by its seconds of speech.

:class:`SpeakerNormalisation` is what a bundle records (manifest
``modalities.<name>.normalisation``); :mod:`centralnet_ros.runtime.adaptation`
keeps one :class:`RunningMoments` per voice.  Nothing here reads a label.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Literal

import numpy as np

__all__ = ['SpeakerNormalisation', 'RunningMoments', 'fit_prior', 'speaker_statistics', 'normalise_by_speaker',
           'NORMALISATION_MODES']

NORMALISATION_MODES = ('none', 'prior', 'per_voice')


@dataclasses.dataclass
class SpeakerNormalisation:
    """
    How a model's input vectors are normalised per speaker (a bundle's manifest records it).

    ``mode``: ``per_voice`` (adapt online to each voice, the default of an adapting
    bundle), ``prior`` (the training speakers' statistics only, no adaptation) or
    ``none`` (raw features).  ``statistics``: ``mean_std`` (subtract the speaker mean
    and divide by the speaker standard deviation) or ``mean`` (subtract the speaker
    mean, divide by the prior standard deviation).  The prior counts as
    ``prior_weight_s`` seconds of speech; ``half_life_s`` of further speech halves the
    weight of what was heard (0: never forget).  ``weight_index``: the input value
    holding an utterance's seconds of speech (its weight), or -1 to count every
    utterance as ``default_weight_s``.
    """

    mode: Literal['none', 'prior', 'per_voice'] = 'per_voice'
    statistics: Literal['mean', 'mean_std'] = 'mean_std'
    prior_weight_s: float = 10.0
    half_life_s: float = 600.0
    min_std: float = 1e-3
    weight_index: int = -1
    default_weight_s: float = 2.0
    prior_mean: list[float] = dataclasses.field(default_factory=list)
    prior_std: list[float] = dataclasses.field(default_factory=list)

    def __post_init__(self):
        if self.mode not in NORMALISATION_MODES:
            raise ValueError(f'normalisation mode must be one of {NORMALISATION_MODES}, got {self.mode!r}')
        if self.statistics not in ('mean', 'mean_std'):
            raise ValueError(f"normalisation statistics must be 'mean' or 'mean_std', got {self.statistics!r}")
        if self.prior_weight_s < 0 or self.half_life_s < 0 or not self.min_std > 0:
            raise ValueError('prior_weight_s and half_life_s must be >= 0 and min_std > 0')
        if len(self.prior_mean) != len(self.prior_std):
            raise ValueError(f'prior_mean has {len(self.prior_mean)} values, prior_std {len(self.prior_std)}')
        if self.mode != 'none' and not self.prior_mean:
            raise ValueError(f'normalisation mode {self.mode!r} needs prior_mean and prior_std')
        if self.prior_std and min(self.prior_std) <= 0:
            raise ValueError('prior_std must be positive')

    @property
    def dim(self) -> int:
        return len(self.prior_mean)

    def utterance_weight(self, x: np.ndarray) -> float:
        """Seconds of speech an utterance counts for (its ``weight_index`` value, at least 0)."""
        if self.weight_index < 0:
            return float(self.default_weight_s)
        return max(0.0, float(np.asarray(x)[self.weight_index]))

    def apply(self, x: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
        """Normalise ``x`` (..., D) with a speaker's ``mean`` and ``var`` (D,) -> float32."""
        if self.mode == 'none':
            return np.asarray(x, np.float32)
        std = np.sqrt(var) if self.statistics == 'mean_std' else np.asarray(self.prior_std, np.float64)
        return ((np.asarray(x, np.float64) - mean) / np.maximum(std, self.min_std)).astype(np.float32)

    def moments(self) -> 'RunningMoments':
        """Fresh running statistics of one voice, starting at the prior."""
        return RunningMoments(np.asarray(self.prior_mean), np.asarray(self.prior_std) ** 2,
                              prior_weight_s=self.prior_weight_s, half_life_s=self.half_life_s)


class RunningMoments:
    """
    Weighted running mean and variance of vectors with a prior and exponential forgetting.

    The prior ``(mean, var)`` counts as ``prior_weight_s`` seconds; :meth:`update`
    first decays everything held by ``0.5 ** (weight_s / half_life_s)``, then adds the
    vector with weight ``weight_s``.  With ``prior_weight_s = 0`` and no forgetting
    the statistics are exactly the weighted batch mean and (biased) variance.
    """

    def __init__(self, prior_mean: np.ndarray, prior_var: np.ndarray, *, prior_weight_s: float,
                 half_life_s: float = 0.0) -> None:
        self.prior_mean = np.asarray(prior_mean, np.float64).copy()
        self.prior_var = np.asarray(prior_var, np.float64).copy()
        if self.prior_mean.shape != self.prior_var.shape or self.prior_mean.ndim != 1:
            raise ValueError(f'prior mean {self.prior_mean.shape} and var {self.prior_var.shape} must be equal (D,)')
        self.prior_weight_s, self.half_life_s = float(prior_weight_s), float(half_life_s)
        self.reset()

    def reset(self) -> None:
        """Back to the prior (a new speaker)."""
        w = self.prior_weight_s
        self.weight = w
        self._sum = w * self.prior_mean
        self._sum_sq = w * (self.prior_var + self.prior_mean ** 2)
        self.heard_s = 0.0
        self.updates = 0

    def update(self, x: np.ndarray, weight_s: float) -> None:
        """Add one vector ``(D,)`` heard for ``weight_s`` seconds."""
        x = np.asarray(x, np.float64)
        if x.shape != self.prior_mean.shape:
            raise ValueError(f'expected a vector of shape {self.prior_mean.shape}, got {x.shape}')
        if not np.isfinite(x).all() or not weight_s >= 0:
            raise ValueError('running statistics take finite vectors and non-negative weights')
        if self.half_life_s > 0:
            decay = 0.5 ** (weight_s / self.half_life_s)
            self.weight *= decay
            self._sum *= decay
            self._sum_sq *= decay
        self.weight += weight_s
        self._sum += weight_s * x
        self._sum_sq += weight_s * x * x
        self.heard_s += weight_s
        self.updates += 1

    @property
    def mean(self) -> np.ndarray:
        return self._sum / self.weight if self.weight > 0 else self.prior_mean.copy()

    @property
    def var(self) -> np.ndarray:
        if self.weight <= 0:
            return self.prior_var.copy()
        return np.maximum(self._sum_sq / self.weight - self.mean ** 2, 0.0)


def speaker_statistics(x: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean and (biased) variance ``(D,)`` of one speaker's vectors ``(N, D)``."""
    x = np.asarray(x, np.float64)
    w = np.ones(len(x)) if weights is None else np.asarray(weights, np.float64)
    if len(x) == 0 or w.sum() <= 0:
        raise ValueError('speaker statistics need at least one utterance with positive weight')
    mean = (w[:, None] * x).sum(0) / w.sum()
    var = (w[:, None] * (x - mean) ** 2).sum(0) / w.sum()
    return mean, var


def fit_prior(x: np.ndarray, speakers: np.ndarray, weights: np.ndarray | None = None,
              min_std: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """
    Fit the prior of :class:`SpeakerNormalisation` on training speakers.

    ``prior_mean``: the mean of the speakers' means; ``prior_std``: the root of the
    mean of their within-speaker variances (each speaker counts once).
    """
    speakers = np.asarray(speakers)
    stats = [speaker_statistics(x[speakers == s], None if weights is None else weights[speakers == s])
             for s in np.unique(speakers)]
    mean = np.mean([m for m, _ in stats], axis=0)
    std = np.sqrt(np.mean([v for _, v in stats], axis=0))
    return mean, np.maximum(std, min_std)


def normalise_by_speaker(x: np.ndarray, speakers: np.ndarray, norm: SpeakerNormalisation,
                         weights: np.ndarray | None = None) -> np.ndarray:
    """
    Normalise every speaker's vectors with that speaker's batch statistics (training).

    The statistics blend the prior (``prior_weight_s``) with all the speaker's
    utterances, as :class:`RunningMoments` would after hearing them all without
    forgetting; ``mode='prior'`` uses the prior alone, ``'none'`` returns ``x``.
    """
    x = np.asarray(x, np.float64)
    out = np.empty(x.shape, np.float32)
    speakers = np.asarray(speakers)
    for s in np.unique(speakers):
        rows = speakers == s
        m = norm.moments()
        if norm.mode == 'per_voice':
            w = np.asarray([norm.utterance_weight(v) for v in x[rows]]) if weights is None else weights[rows]
            mean, var = speaker_statistics(x[rows], w)
            total = m.weight + w.sum()
            blend_mean = (m.weight * m.mean + w.sum() * mean) / total
            blend_sq = (m.weight * (m.var + m.mean ** 2) + w.sum() * (var + mean ** 2)) / total
            out[rows] = norm.apply(x[rows], blend_mean, np.maximum(blend_sq - blend_mean ** 2, 0.0))
        else:
            out[rows] = norm.apply(x[rows], m.mean, m.var)
    return out


def half_life_to_forgetting(half_life_s: float) -> float:
    """Forgetting factor per second of speech of a half-life (1.0: never forget)."""
    return 1.0 if half_life_s <= 0 else math.pow(0.5, 1.0 / half_life_s)
