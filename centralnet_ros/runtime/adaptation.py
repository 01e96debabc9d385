"""
Speaker adaptation at run time: per-voice normalisation statistics from unlabelled speech.

A bundle whose modality records a :class:`~centralnet_ros.features.normalisation.SpeakerNormalisation`
(manifest ``modalities.<name>.normalisation``) was trained on inputs normalised with each
speaker's own statistics.  :class:`VoiceAdaptation` estimates them on the robot from the
utterances it hears, one :class:`~centralnet_ros.features.normalisation.RunningMoments` per
voice:

- per ROS4HRI voice id when one is given (``voice_id``), else one speaker (``''``);
- a new voice starts from the prior fitted on the training speakers (which counts as
  ``prior_weight_s`` seconds of speech) and old speech is forgotten with ``half_life_s``;
- with ``per_voice=False`` there is one slot: a different voice id, or a pause longer
  than ``reset_after_s`` (header time), resets it to the prior;
- every utterance first updates its voice's statistics, then is normalised with them,
  so the first one is already partly adapted (``update_before_normalise``);
- nothing takes a label; the statistics stay in this object (never written, logged or
  published) unless :meth:`VoiceAdaptation.export` is called, and :meth:`forget`
  drops one voice or all of them (the node's ``forget_voice`` service / parameter).
"""
from __future__ import annotations

from collections import OrderedDict
import dataclasses
from typing import Callable, Sequence

import numpy as np

from ..features.normalisation import RunningMoments, SpeakerNormalisation

__all__ = ['AdaptationConfig', 'VoiceAdaptation', 'adapt_speaker_sequence', 'score_speaker']

_NS = 1_000_000_000


@dataclasses.dataclass
class AdaptationConfig:
    """Run-time knobs of speaker adaptation (the bundle gives the statistics and their prior)."""

    enabled: bool = True                 # False: the prior alone (the bundle's training-speaker statistics)
    per_voice: bool = True               # one set of statistics per voice id; False: one speaker at a time
    max_voices: int = 32                 # least recently heard voices beyond this are forgotten
    reset_after_s: float = 0.0           # one-speaker mode: a pause this long (header time) resets (0: never)
    update_before_normalise: bool = True  # an utterance adapts the statistics before it is classified

    def __post_init__(self):
        if self.max_voices < 1 or self.reset_after_s < 0:
            raise ValueError('max_voices must be >= 1 and reset_after_s >= 0')


class VoiceAdaptation:
    """Per-voice running normalisation of one modality's input vectors. See the module docstring."""

    def __init__(self, norm: SpeakerNormalisation, config: AdaptationConfig | None = None) -> None:
        if norm.mode == 'none':
            raise ValueError('VoiceAdaptation needs a normalisation with a prior (mode prior or per_voice)')
        self.norm = norm
        self.config = config or AdaptationConfig()
        self._voices: OrderedDict[str, RunningMoments] = OrderedDict()
        self._prior = norm.moments()
        self._current = ''
        self._last_ns: int | None = None
        self.resets = 0

    @property
    def adapting(self) -> bool:
        return self.config.enabled and self.norm.mode == 'per_voice'

    def voices(self) -> dict[str, float]:
        """Voices with statistics and the seconds of speech each was adapted on (no statistics)."""
        return {v: round(m.heard_s, 3) for v, m in list(self._voices.items())}   # one atomic copy

    def _slot(self, voice_id: str, stamp_ns: int | None) -> RunningMoments:
        voice_id = str(voice_id or '')
        if not self.config.per_voice:
            gap = (self.config.reset_after_s > 0 and stamp_ns is not None and self._last_ns is not None
                   and stamp_ns - self._last_ns > self.config.reset_after_s * _NS)
            if self._voices and (voice_id != self._current or gap):
                self._voices.clear()
                self.resets += 1
            self._current = voice_id
        if stamp_ns is not None:
            self._last_ns = int(stamp_ns)
        moments = self._voices.get(voice_id)
        if moments is None:
            moments = self._voices[voice_id] = self.norm.moments()
            while len(self._voices) > self.config.max_voices:
                self._voices.popitem(last=False)
        self._voices.move_to_end(voice_id)
        return moments

    def observe(self, x: np.ndarray, *, voice_id: str = '', stamp_ns: int | None = None,
                weight_s: float | None = None) -> None:
        """
        Adapt ``voice_id``'s statistics to one utterance vector ``(D,)`` (unlabelled speech).

        ``weight_s``: its seconds of speech (default: read from the vector, see
        :meth:`SpeakerNormalisation.utterance_weight`).
        """
        if self.adapting:
            x = np.asarray(x)
            weight = self.norm.utterance_weight(x) if weight_s is None else float(weight_s)
            self._slot(voice_id, stamp_ns).update(x, weight)

    def transform(self, x: np.ndarray, *, voice_id: str = '') -> np.ndarray:
        """Normalise ``x`` with the statistics of ``voice_id`` (the prior when it has none)."""
        m = self._voices.get(str(voice_id or '')) if self.adapting else None
        m = m if m is not None else self._prior
        return self.norm.apply(x, m.mean, m.var)

    def __call__(self, x: np.ndarray, *, voice_id: str = '', stamp_ns: int | None = None,
                 weight_s: float | None = None) -> np.ndarray:
        """Observe then normalise (or the reverse, ``update_before_normalise=False``): the runtime's step."""
        if self.config.update_before_normalise:
            self.observe(x, voice_id=voice_id, stamp_ns=stamp_ns, weight_s=weight_s)
            return self.transform(x, voice_id=voice_id)
        out = self.transform(x, voice_id=voice_id)
        self.observe(x, voice_id=voice_id, stamp_ns=stamp_ns, weight_s=weight_s)
        return out

    def forget(self, voice_id: str | None = None) -> int:
        """Drop the statistics of ``voice_id`` (None: every voice); returns how many were dropped."""
        if voice_id is None:
            n = len(self._voices)
            self._voices.clear()
            return n
        return int(self._voices.pop(str(voice_id), None) is not None)

    def export(self, voice_id: str = '') -> dict:
        """Return the statistics of one voice, only when the user asks (e.g. to keep a known person's)."""
        m = self._voices.get(str(voice_id or ''))
        if m is None:
            raise KeyError(f'no statistics for voice {voice_id!r}; voices: {sorted(self._voices)}')
        return {'voice_id': voice_id, 'heard_s': m.heard_s, 'mean': m.mean.tolist(), 'var': m.var.tolist()}


def adapt_speaker_sequence(x: np.ndarray, norm: SpeakerNormalisation, *, adapt_s: float | None,
                           online: bool = True, weights_s: np.ndarray | None = None,
                           config: AdaptationConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """
    One speaker's utterances ``(N, D)``, in the order heard, through :class:`VoiceAdaptation`.

    ``adapt_s=None``: no adaptation (the prior alone), every utterance is scored.
    Otherwise the first utterances, up to ``adapt_s`` seconds of speech, only adapt
    (they are not scored); the rest are normalised as the runtime would: ``online``
    keeps adapting on each (before classifying it), else the statistics stay frozen
    after the first ``adapt_s`` seconds.  ``weights_s``: each utterance's seconds of
    speech (default: read from the vectors).  Returns the normalised vectors of the scored
    utterances and their indices.  Takes no labels.
    """
    x = np.asarray(x)
    if adapt_s is None:
        return norm.apply(x, *_prior_stats(norm)), np.arange(len(x))
    cfg = dataclasses.replace(config or AdaptationConfig(), per_voice=True, enabled=True)
    ad = VoiceAdaptation(norm, cfg)
    w = [norm.utterance_weight(v) for v in x] if weights_s is None else [float(v) for v in weights_s]
    heard, i = 0.0, 0
    while i < len(x) and heard < adapt_s:
        ad.observe(x[i], weight_s=w[i])
        heard += w[i]
        i += 1
    scored = np.arange(i, len(x))
    rows = [ad(x[j], weight_s=w[j]) if online else ad.transform(x[j]) for j in scored]
    return (np.stack(rows) if rows else np.zeros((0, x.shape[1]), np.float32)), scored


def _prior_stats(norm: SpeakerNormalisation) -> tuple[np.ndarray, np.ndarray]:
    m = norm.moments()
    return m.mean, m.var


def score_speaker(predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, labels: Sequence[int],
                  norm: SpeakerNormalisation, *, adapt_s: float | None, online: bool = True,
                  weights_s: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """
    Predictions and true labels of the scored utterances of one speaker (benchmarks).

    ``labels`` are read only at the scored indices, after adaptation is done.
    """
    z, scored = adapt_speaker_sequence(x, norm, adapt_s=adapt_s, online=online, weights_s=weights_s)
    pred = predict(z) if len(z) else np.zeros(0, np.int64)
    return pred, np.asarray([labels[int(i)] for i in scored], np.int64)
