"""
Emotion training adapter: EmoDB utterances through the ``log_mel`` input pipeline, leave one speaker out.

``load_emodb(options, data_root)``: every ``wav/*.wav`` of ``<data root>/emodb`` is read,
resampled to the feature rate (:func:`centralnet_ros.data.emodb.load_waveform`) and
turned into the audio encoder's input by
:func:`centralnet_ros.features.audio.log_mel_model_input` -- the function the runtime
pipeline ``log_mel`` (:func:`~centralnet_ros.features.audio.log_mel_input`) ends in, with
the same parameters (``dataset_options.features`` and the preset's
``bundle.modalities.audio.preprocessing`` are one YAML anchor).  With ``layout:
functionals`` (the shipped preset) that is one vector per utterance: per-band statistics
of the standardised log-mel map plus pitch and energy statistics; with ``mel_time`` /
``channel_mel_time`` the log-mel map itself, for a CNN.  Features are kept in a
per-process cache keyed by file, gain and parameters, so the folds of a benchmark
compute them once.  ``train_speed_factors`` adds speed-perturbed copies of the training
utterances (:func:`centralnet_ros.features.audio.speed_perturb`), each a voice of its own
for the per-speaker normalisation: more voices to learn what an emotion does to a voice.

Protocol: leave one speaker out.  The fold is the test speaker (``test_speaker``, or
the ``fold``-th of the sorted speakers); validation speakers are carved from the rest
(``val_speakers``, or the ``n_val_speakers`` speakers that follow the test speaker in
sorted order, cyclically); training uses the others.  No speaker is in two splits.

Every file of the shared copy lasts exactly 2.000 s (the distribution's variable-length
recordings were cut or zero-padded at the end), so ``duration_s: 2.0`` with
``length_mode: start`` reproduces them, and the runtime pads or cuts a speech segment
the same way.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Any

from centralnet_ros.config import from_dict
from centralnet_ros.training.datasets import ExperimentData
from centralnet_ros.training.trainer import ArraySplit
import numpy as np

__all__ = ['EmoDBOptions', 'load_emodb', 'emodb_speaker_split', 'stack_copies', 'unadapted_rows', 'DEFAULT_FEATURES',
           'PIPELINES']

PIPELINES = ('log_mel', 'emotion_functionals', 'opensmile_functionals')   # features/pipelines.py names

# log_mel_model_input parameters (mean / std measured over the log-mel values of all 408 files of the
# shared copy: two scalars that set the input's level; see the preset)
DEFAULT_FEATURES: dict[str, Any] = {
    'sample_rate': 16000, 'duration_s': 2.0, 'n_fft': 400, 'hop_length': 160, 'n_mels': 64,
    'f_min': 50.0, 'f_max': 8000.0, 'floor': 1e-6, 'mean': -3.8, 'std': 4.5, 'length_mode': 'start',
    'layout': 'functionals', 'f0_min': 60.0, 'f0_max': 400.0,
}


@dataclasses.dataclass
class EmoDBOptions:
    """``dataset_options`` of an EmoDB preset."""

    folder: str = 'emodb'                     # under the data root
    speakers: list[int] | None = None         # speakers used (default: every speaker present)
    fold: int = 0                             # index of the test speaker among the sorted speakers
    test_speaker: int | None = None           # explicit test speaker (overrides fold)
    val_speakers: list[int] | None = None     # explicit validation speakers
    n_val_speakers: int = 1                   # else: the speakers following the test speaker
    # ^ 0: no validation speaker; every other speaker trains and the epoch is chosen on the training data
    features: dict[str, Any] = dataclasses.field(default_factory=lambda: dict(DEFAULT_FEATURES))
    train_gains_db: list[float] = dataclasses.field(default_factory=lambda: [0.0])
    # ^ extra training copies at these gains (robustness to the microphone level); val / test at 0 dB
    train_speed_factors: list[float] = dataclasses.field(default_factory=list)
    # ^ extra training copies played this much faster (features.audio.speed_perturb: tempo and pitch together, as
    #   Kaldi's speed perturbation); each copy is a voice of its own for the per-speaker normalisation
    pipeline: str = 'log_mel'                 # log_mel | emotion_functionals | opensmile_functionals
    speaker_normalisation: dict[str, Any] = dataclasses.field(default_factory=dict)
    # ^ SpeakerNormalisation settings (mode, statistics, prior_weight_s, half_life_s); the prior is fitted on the
    #   training speakers and every speaker's inputs are normalised with that speaker's own statistics
    unadapted_weight: float = 0.0
    # ^ > 0: every training row also enters as the robot hears a voice it has not adapted to yet (normalised with
    #   the prior of the other training speakers, unadapted_rows), each such row weighing this much against 1 for
    #   the per-voice normalised ones (train.solver shrinkage_lda only); 0: per-voice rows alone


def emodb_speaker_split(speakers: list[int], opts: EmoDBOptions) -> tuple[list[int], list[int], int]:
    """``(train, val, test)`` speakers of the fold scheme described in the module docstring."""
    speakers = sorted({int(s) for s in speakers})
    if opts.test_speaker is not None:
        test = int(opts.test_speaker)
        if test not in speakers:
            raise ValueError(f'test_speaker {test} has no EmoDB file (speakers: {speakers})')
    else:
        if not 0 <= opts.fold < len(speakers):
            raise ValueError(f'fold must be in [0, {len(speakers) - 1}] (one per speaker {speakers}), got {opts.fold}')
        test = speakers[opts.fold]
    i = speakers.index(test)
    rest = speakers[i + 1:] + speakers[:i]
    if opts.val_speakers is not None:
        val = sorted({int(s) for s in opts.val_speakers})
        bad = [s for s in val if s not in rest]
        if bad:
            raise ValueError(f'val_speakers {bad} are the test speaker or have no file (available: {rest})')
    else:
        if not 0 <= opts.n_val_speakers < len(rest):
            raise ValueError(f'n_val_speakers must be in [0, {len(rest) - 1}], got {opts.n_val_speakers}')
        val = sorted(rest[:opts.n_val_speakers])
    return sorted(s for s in rest if s not in val), val, test


def load_emodb(options: dict[str, Any], data_root: Path) -> ExperimentData:
    """
    Load EmoDB through the ``log_mel`` pipeline, split by speaker; modality ``audio``.

    Labels index :data:`centralnet_ros.data.emodb.EMOTIONS`.

    Inputs ``(N, n_mels, frames)`` (``layout: mel_time``) or ``(N, 1, n_mels, frames)``.
    """
    from centralnet_ros.data import emodb

    opts = from_dict(EmoDBOptions, options, _where='dataset_options')
    feats = dict(opts.features)
    if 'sample_rate' not in feats:
        raise ValueError('dataset_options.features needs sample_rate (and the other log_mel_model_input parameters)')
    utts = emodb.list_utterances(Path(data_root) / opts.folder)
    if opts.speakers is not None:
        missing = sorted(set(opts.speakers) - {u.speaker for u in utts})
        if missing:
            raise ValueError(f'dataset_options.speakers: no EmoDB file of speakers {missing}')
        utts = [u for u in utts if u.speaker in set(opts.speakers)]
    train_s, val_s, test_s = emodb_speaker_split([u.speaker for u in utts], opts)
    labels = np.asarray([u.label for u in utts], np.int64)
    speakers = np.asarray([u.speaker for u in utts], np.int64)
    if opts.pipeline not in PIPELINES:
        raise ValueError(f'dataset_options.pipeline must be one of {PIPELINES}, got {opts.pipeline!r}')
    key = json.dumps([opts.pipeline, feats], sort_keys=True)
    norm = _normalisation(opts, feats)

    def split(chosen: list[int], copies: list[tuple[float, float]]) -> ArraySplit:
        idx = np.flatnonzero(np.isin(speakers, chosen))
        xs = [np.stack([_utterance_input(str(utts[i].path), g, v, key) for i in idx]) for g, v in copies]
        return ArraySplit({'audio': np.concatenate(xs).astype(np.float32)}, np.tile(labels[idx], len(copies)))

    gains = [0.0] + [float(g) for g in opts.train_gains_db if float(g) != 0.0]
    speeds = [float(v) for v in opts.train_speed_factors if float(v) != 1.0]
    if any(not 0.5 <= v <= 2.0 for v in speeds):
        raise ValueError(f'dataset_options.train_speed_factors must lie in [0.5, 2.0] (1.1: 10 % faster and higher), '
                         f'got {opts.train_speed_factors}')
    copies = [(g, 1.0) for g in gains] + [(0.0, v) for v in speeds]      # the first: the recording itself
    fmt = lambda ss: ', '.join(f'{s:02d}' for s in ss)  # noqa: E731
    info = {'protocol': (f'EmoDB leave-one-speaker-out: test speaker {test_s:02d}; '
                         f'val {fmt(val_s) or "none (epoch chosen on the training speakers)"}; '
                         f'train {fmt(train_s)}'),
            'test_speaker': f'{test_s:02d}', 'val_speakers': fmt(val_s), 'train_speakers': fmt(train_s),
            'train_gains_db': ', '.join(f'{g:g}' for g in gains),
            **({'train_speed_factors': ', '.join(f'{v:g}' for v in speeds)} if speeds else {}),
            **({'unadapted_weight': f'{opts.unadapted_weight:g} (every training row also normalised with the prior '
                                    'of the other training speakers, weighing this much)'}
               if opts.unadapted_weight > 0 else {})}
    train, test = split(train_s, copies), split([test_s], [(0.0, 1.0)])
    val = split(val_s or train_s, [(0.0, 1.0)])           # no validation speaker: the epoch is chosen on training
    record = {}
    if opts.unadapted_weight < 0 or (opts.unadapted_weight > 0 and norm is None):
        raise ValueError(f'dataset_options.unadapted_weight must be >= 0 and needs speaker_normalisation, got '
                         f'{opts.unadapted_weight}')
    if norm is not None:
        train, val, test, record = _normalise_splits(norm, (train, val, test), (train_s, val_s or train_s, [test_s]),
                                                     speakers, len(copies), opts.unadapted_weight)
        info['normalisation'] = f'per speaker ({norm.mode}); test speaker with all of its utterances'
    names = {}
    if opts.pipeline == 'emotion_functionals':
        from centralnet_ros.features.functionals import functional_names
        names = {'audio': functional_names(feats)}
    return ExperimentData(train=train, val=val, test=test, label_names=list(emodb.EMOTIONS), info=info,
                          normalisation={'audio': record} if record else {}, input_names=names)


def stack_copies(copies: list[tuple[np.ndarray, np.ndarray]], labels: np.ndarray, speakers: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """
    Stack utterances and their copies (speed, gain) as training rows: inputs, labels, voices, seconds of speech.

    ``copies``: ``(x (N, D), speech_s (N,))`` per copy of the same N utterances, the recordings
    first.  Copy ``k`` of speaker ``s`` is voice ``1000 s + k``: a voice of its own for the
    per-speaker normalisation, as in :func:`load_emodb`.
    """
    labels, speakers = np.asarray(labels), np.asarray(speakers)
    if any(len(x) != len(labels) or len(w) != len(labels) for x, w in copies):
        raise ValueError(f'every copy needs {len(labels)} rows (one per utterance)')
    return (np.concatenate([x for x, _ in copies]), np.tile(labels, len(copies)),
            np.concatenate([speakers * 1000 + k for k in range(len(copies))]),
            np.concatenate([w for _, w in copies]))


def _normalisation(opts: EmoDBOptions, feats: dict[str, Any]):
    """Return the :class:`SpeakerNormalisation` (prior not yet fitted) of ``speaker_normalisation``, or None."""
    from centralnet_ros.config import from_dict
    from centralnet_ros.features.normalisation import SpeakerNormalisation
    if not opts.speaker_normalisation or opts.speaker_normalisation.get('mode') == 'none':
        return None
    if opts.pipeline == 'log_mel' and feats.get('layout') != 'functionals':
        raise ValueError('speaker_normalisation needs utterance vectors (layout: functionals or a functionals '
                         'pipeline)')
    settings = dict(opts.speaker_normalisation)
    if opts.pipeline == 'emotion_functionals' and 'weight_index' not in settings:
        from centralnet_ros.features.functionals import functional_names
        settings['weight_index'] = functional_names(feats).index('active_s')     # seconds of speech
    return from_dict(SpeakerNormalisation, {**settings, 'prior_mean': [0.0], 'prior_std': [1.0]},
                     _where='dataset_options.speaker_normalisation')


def unadapted_rows(x: np.ndarray, voices: np.ndarray, norm, speech_s: np.ndarray | None = None) -> np.ndarray:
    """
    Training rows as an unadapted robot hears them: each speaker's rows normalised with the prior of the others.

    ``x`` (N, D) raw vectors of training voices numbered as :func:`stack_copies` does (speaker ``s``'s
    copy ``k`` is voice ``1000 s + k``, the recordings ``k = 0``).  Every row of speaker ``s`` (all its
    copies) is normalised as :mod:`centralnet_ros.runtime.adaptation` normalises a voice it has not
    heard yet -- with the prior -- but the prior fitted (:func:`fit_prior`) on the recordings of the
    *other* speakers, so that the row's voice is as new to it as a test speaker is to the bundle's
    prior.  ``speech_s``: each row's seconds of speech (default: ``norm.utterance_weight``).
    Returns (N, D) float32 in the order of ``x``.  Needs at least two speakers.
    """
    from centralnet_ros.features.normalisation import fit_prior
    x, voices = np.asarray(x, np.float64), np.asarray(voices)
    w = (np.asarray([norm.utterance_weight(v) for v in x]) if speech_s is None
         else np.asarray(speech_s, np.float64))
    speaker = voices // 1000
    recording = voices % 1000 == 0
    if len(np.unique(speaker)) < 2:
        raise ValueError('unadapted rows need at least two training speakers (each one gets the prior of the others)')
    out = np.empty(x.shape, np.float32)
    for s in np.unique(speaker):
        others = recording & (speaker != s)
        mean, std = fit_prior(x[others], voices[others], w[others], min_std=norm.min_std)
        rows = speaker == s
        out[rows] = norm.apply(x[rows], mean, std ** 2)
    return out


def _normalise_splits(norm, splits, split_speakers, speakers: np.ndarray, n_copies: int,
                      unadapted_weight: float = 0.0):
    """
    Fit the prior on the training speakers; normalise every split's speakers with their own statistics.

    The training split holds ``n_copies`` copies of its utterances (the recordings first, then
    gain and speed copies); each copy of a speaker is a voice of its own, and the prior is fitted
    on the recordings alone.  ``unadapted_weight`` > 0: the training split also holds every row
    as :func:`unadapted_rows`, weighing that much (``ArraySplit.weights``).
    """
    import dataclasses as dc
    from centralnet_ros.features.normalisation import fit_prior, normalise_by_speaker
    train = splits[0]
    spk = [np.tile(speakers[np.isin(speakers, ss)], n) for ss, n in zip(split_speakers, (n_copies, 1, 1))]
    n0 = len(spk[0]) // n_copies
    spk[0] = spk[0] * 1000 + np.repeat(np.arange(n_copies), n0)   # a copy is a voice of its own (microphone, speed)
    x0 = train.inputs['audio'][:n0]                                # the recordings themselves
    w0 = np.asarray([norm.utterance_weight(v) for v in x0])
    mean, std = fit_prior(x0, spk[0][:n0], w0)
    norm = dc.replace(norm, prior_mean=[float(f'{v:.6g}') for v in mean], prior_std=[float(f'{v:.6g}') for v in std])
    out = [ArraySplit({'audio': normalise_by_speaker(s.inputs['audio'], k, norm)}, s.labels)
           for s, k in zip(splits, spk)]
    if unadapted_weight > 0:
        extra = unadapted_rows(train.inputs['audio'], spk[0], norm)
        out[0] = ArraySplit({'audio': np.concatenate([out[0].inputs['audio'], extra])},
                            np.concatenate([train.labels, train.labels]),
                            np.concatenate([np.ones(len(extra)), np.full(len(extra), float(unadapted_weight))]))
    from centralnet_ros.config import to_dict
    return (*out, to_dict(norm))


@functools.lru_cache(maxsize=8192)
def _utterance_input(path: str, gain_db: float, speed: float, features_json: str) -> np.ndarray:
    """One file's model input at a gain and speed (cached per process; the arrays are read-only)."""
    from centralnet_ros.data import emodb
    from centralnet_ros.features.audio import speed_perturb
    from centralnet_ros.features.pipelines import get_pipeline, Window
    pipeline, feats = json.loads(features_json)
    rate = int(feats.get('sample_rate', 16000))
    wave = emodb.load_waveform(path, sample_rate=rate)
    if speed != 1.0:
        wave = speed_perturb(wave, factor=speed)
    wave = wave * np.float32(10.0 ** (gain_db / 20.0))
    x = get_pipeline(pipeline)(Window(wave, np.zeros(1, np.int64), sample_rate=rate), **feats)
    x.setflags(write=False)
    return x
