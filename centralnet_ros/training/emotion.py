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
compute them once.

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

__all__ = ['EmoDBOptions', 'load_emodb', 'emodb_speaker_split', 'DEFAULT_FEATURES']

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
    features: dict[str, Any] = dataclasses.field(default_factory=lambda: dict(DEFAULT_FEATURES))
    train_gains_db: list[float] = dataclasses.field(default_factory=lambda: [0.0])
    # ^ extra training copies at these gains (robustness to the microphone level); val / test at 0 dB


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
        if not 1 <= opts.n_val_speakers < len(rest):
            raise ValueError(f'n_val_speakers must be in [1, {len(rest) - 1}], got {opts.n_val_speakers}')
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
    key = json.dumps(feats, sort_keys=True)

    def split(chosen: list[int], gains_db: list[float]) -> ArraySplit:
        idx = np.flatnonzero(np.isin(speakers, chosen))
        xs = [np.stack([_utterance_input(str(utts[i].path), g, key) for i in idx]) for g in gains_db]
        return ArraySplit({'audio': np.concatenate(xs).astype(np.float32)}, np.tile(labels[idx], len(gains_db)))

    gains = [0.0] + [float(g) for g in opts.train_gains_db if float(g) != 0.0]
    fmt = lambda ss: ', '.join(f'{s:02d}' for s in ss)  # noqa: E731
    info = {'protocol': (f'EmoDB leave-one-speaker-out: test speaker {test_s:02d}; val {fmt(val_s)}; '
                         f'train {fmt(train_s)}'),
            'test_speaker': f'{test_s:02d}', 'val_speakers': fmt(val_s), 'train_speakers': fmt(train_s),
            'train_gains_db': ', '.join(f'{g:g}' for g in gains)}
    return ExperimentData(train=split(train_s, gains), val=split(val_s, [0.0]), test=split([test_s], [0.0]),
                          label_names=list(emodb.EMOTIONS), info=info)


@functools.lru_cache(maxsize=8192)
def _utterance_input(path: str, gain_db: float, features_json: str) -> np.ndarray:
    """One file's model input at a gain (cached per process; the arrays are read-only)."""
    from centralnet_ros.data import emodb
    from centralnet_ros.features.audio import log_mel_model_input
    feats = json.loads(features_json)
    wave = emodb.load_waveform(path, sample_rate=int(feats['sample_rate']))
    x = log_mel_model_input(wave * np.float32(10.0 ** (gain_db / 20.0)), **feats)
    x.setflags(write=False)
    return x
