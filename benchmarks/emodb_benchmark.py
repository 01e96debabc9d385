"""
EmoDB 7-class leave-one-speaker-out with speaker normalisation and run-time adaptation.

Feature sets (per utterance, cached under the cache folder):

- ``own``: the project's functionals (:mod:`centralnet_ros.features.functionals`);
- ``compare`` / ``egemaps``: openSMILE ComParE-2016 / eGeMAPSv02 functionals, the
  reference (optional extra, audEERING research licence; skipped when not installed);
- ``logmel``: the log-mel map for a small 1-D CNN, normalised per band with the same
  per-speaker scheme.

Every speaker is the test speaker once (the next one, cyclically, picks the epoch; the
other six train); inputs are normalised with each training speaker's own statistics
(:func:`~centralnet_ros.features.normalisation.normalise_by_speaker`), and the test
speaker is scored in each setting:

- ``no adaptation``: the training speakers' prior alone;
- ``adapt N s`` (N = 0, 10, 30, 60): the test speaker's utterances in a random order
  (per seed); the first N seconds of speech only adapt the statistics (not scored), the
  rest are classified by the run-time adaptation (:mod:`centralnet_ros.runtime.adaptation`),
  which keeps adapting on every utterance before classifying it (``online``) -- or
  with statistics frozen after N s (``frozen``);
- ``all of the speaker (batch)``: the speaker's statistics over all its utterances.

Reports accuracy and unweighted average recall (UAR) over all scored utterances, mean
and standard deviation over seeds, and the confusion matrices.

The preset ``config/experiments/emodb_loso.yaml`` (the shipped ``emodb_emotion`` preset plus
folds, seeds and variants) declares the runs; they go through ``centralnet compare``'s sweep
(:mod:`centralnet_ros.training.sweep`: local pool or Ray, ``--resume``, ``runs.json``
rewritten atomically after every run) into ``--runs``, with :func:`load` (the cached feature
table of the variant) and :func:`run` (one fold scored in every setting); :func:`render`
turns that ``runs.json`` into ``benchmarks/results/emodb.{md,json}`` (``--render-only``
re-renders without training).

    python benchmarks/emodb_benchmark.py [--jobs 2] [--seeds 3] [--variants own,compare,egemaps,own_global,logmel]
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
import sys
import time

import numpy as np

PRESET = 'emodb_loso'
ADAPT_S = (0.0, 10.0, 30.0, 60.0)
DESCRIPTION = {      # the report's words for the preset's variants
    'own_lda_unadapted': ('own functionals, per-speaker normalisation, speed copies 0.85 / 0.9 / 1.1 / 1.15, '
                          'shrinkage LDA ensemble, plus the training rows normalised with the prior of the other '
                          "training speakers (unadapted rows; their weight chosen on each fold's training "
                          'speakers), 7 training speakers'),
    'own_lda': ('own functionals, per-speaker normalisation, speed copies 0.9 / 1.1, shrinkage LDA ensemble (scores '
                'averaged over 3 feature groups x 4 shrinkages), 7 training speakers'),
    'own_lda_per_fold': ('own functionals, per-speaker normalisation, shrinkage LDA ensemble with the speed copies '
                         "each fold's training speakers chose (emodb_procedures.md), 7 training speakers"),
    'own_lda_per_fold_all': ("own functionals, per-speaker normalisation, the procedure each fold's training speakers "
                             'chose among all seven of emodb_procedures.md (with and without unadapted rows), 7 '
                             'training speakers'),
    **{f'own_lda_unadapted_{k}': ('own functionals, per-speaker normalisation, speed copies 0.85 / 0.9 / 1.1 / 1.15, '
                                  f'shrinkage LDA ensemble, unadapted rows weighing {v} in every fold (not chosen on '
                                  'the training speakers), 7 training speakers')
       for k, v in (('005', '0.05'), ('010', '0.1'), ('020', '0.2'))},
    'own_lda_wide': ('own functionals, per-speaker normalisation, speed copies 0.85 / 0.9 / 1.1 / 1.15, shrinkage LDA '
                     'ensemble (scores averaged over 3 feature groups x 4 shrinkages), 7 training speakers'),
    'own_lda_selected': ('own functionals, per-speaker normalisation, shrinkage LDA (feature group, speed copies or '
                         'not and shrinkage chosen on the training speakers), 7 training speakers'),
    'own_lda_recordings': ('own functionals, per-speaker normalisation, shrinkage LDA (feature group and shrinkage '
                           'chosen on the training speakers), 7 training speakers'),
    'compare_lda': ('openSMILE ComParE-2016 functionals, per-speaker normalisation, shrinkage LDA (shrinkage chosen '
                    'on the training speakers), 7 training speakers'),
    'own': 'own functionals, per-speaker normalisation',
    'own_global': 'own functionals, training-speaker normalisation only (no per-speaker statistics in training)',
    'own_linear': 'own functionals, per-speaker normalisation, linear classifier',
    'own_linear_all7': ('own functionals, per-speaker normalisation, linear classifier, 7 training speakers '
                        '(epoch by training accuracy)'),
    'compare_linear': 'openSMILE ComParE-2016 functionals, per-speaker normalisation, linear classifier',
    'compare': 'openSMILE ComParE-2016 functionals, per-speaker normalisation',
    'egemaps': 'openSMILE eGeMAPSv02 functionals, per-speaker normalisation',
    'logmel': 'log-mel map (64 x 198), 1-D CNN, per-speaker per-band normalisation',
}
SHIPPED = 'own_lda_unadapted'
# ^ the shipped procedure: the wide ensemble with unadapted rows, their weight chosen per fold on its training
#   speakers; the fold of test speaker 14 chose config/experiments/emodb_emotion.yaml's (models/emotion).
#   own_lda_per_fold: the procedure before (per fold, the one of emodb_procedures.md its training speakers chose)
PER_FOLD = 'own_lda_per_fold'
PER_FOLD_ALL = 'own_lda_per_fold_all'     # the same among all of emodb_procedures.md's procedures
SHRINKAGE_GRID = (0.1, 0.3, 0.5, 0.7)
# ^ a shrinkage_lda variant chooses its shrinkage (for the own functionals also the feature group, and with
#   train_speed_factors whether to train on the speed-perturbed copies too) per fold by leave-one-speaker-out
#   over its training speakers (criterion: accuracy without adaptation and after adapting online from 0 s);
#   the shipped preset fixes what the fold of its test speaker chose
UNADAPTED_GRID = (0.0, 0.05, 0.1, 0.2)
SELECT_UNADAPTED = ('own_lda_unadapted',)
# ^ these variants choose dataset_options.unadapted_weight (the weight of every training row normalised with the
#   prior of the other training speakers, as an unadapted voice: training/emotion.py unadapted_rows) per fold among
#   UNADAPTED_GRID by leave-one-speaker-out over their training speakers (_select_unadapted); the shipped preset
#   fixes what the fold of its test speaker chose
OPENSMILE_KINDS = {'ComParE_2016': 'compare', 'eGeMAPSv02': 'egemaps'}


def feature_kind(options: dict) -> str:
    """Return the feature table of a run's ``dataset_options``: own, compare, egemaps or logmel."""
    pipeline = options.get('pipeline')
    if pipeline == 'emotion_functionals':
        return 'own'
    if pipeline == 'opensmile_functionals':
        return OPENSMILE_KINDS[options['features']['feature_set']]
    if pipeline == 'log_mel':
        return 'logmel'
    raise ValueError(f'emodb benchmark: no feature table for pipeline {pipeline!r}')


# --------------------------------------------------------------------------- features (cached)

def feature_table(kind: str, data_root: Path, cache: Path, logmel: dict | None = None,
                  speed: float = 1.0) -> dict[str, np.ndarray]:
    """
    ``x`` (N, ...), ``labels``, ``speakers``, ``speech_s`` (active seconds) of every EmoDB file, cached.

    ``speed`` != 1: of the files played that much faster (:func:`~centralnet_ros.features.audio.speed_perturb`;
    own functionals only).
    """
    from centralnet_ros.config import atomic_savez
    from centralnet_ros.data import emodb
    from centralnet_ros.features import functionals as F
    from centralnet_ros.features.audio import speed_perturb
    if speed != 1.0 and kind != 'own':
        raise ValueError(f'emodb benchmark: speed copies are computed for the own functionals only, not {kind}')
    utts = emodb.list_utterances(data_root / 'emodb')
    params = {'own': [F.FunctionalsConfig().__dict__, F.functional_names()], 'logmel': logmel}.get(kind, {'set': kind})
    key = hashlib.sha256(json.dumps([kind, params, [u.path.name for u in utts]], sort_keys=True,
                                    default=str).encode()).hexdigest()[:12]
    path = cache / (f'emodb_{kind}_{key}.npz' if speed == 1.0 else f'emodb_{kind}_{key}_speed{speed:g}.npz')
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    rows, speech = [], []
    smile = None
    if kind in ('compare', 'egemaps'):
        from centralnet_ros.features.opensmile import OpenSmileFunctionals
        smile = OpenSmileFunctionals(feature_set={'compare': 'ComParE_2016', 'egemaps': 'eGeMAPSv02'}[kind])
    for u in utts:
        wave = emodb.load_waveform(str(u.path), sample_rate=16000)
        if speed != 1.0:
            wave = speed_perturb(wave, factor=speed)[:int(F.FunctionalsConfig().max_duration_s * 16000)]
        llds = F.frame_descriptors(wave)
        speech.append(F.active_speech_s(llds))
        if kind == 'own':
            rows.append(F.utterance_functionals(llds))
        elif kind == 'logmel':
            from centralnet_ros.features.audio import log_mel_model_input
            rows.append(log_mel_model_input(wave, **logmel))
        else:
            rows.append(smile(wave, sample_rate=16000))
    table = {'x': np.stack(rows).astype(np.float32), 'labels': np.asarray([u.label for u in utts], np.int64),
             'speakers': np.asarray([u.speaker for u in utts], np.int64),
             'speech_s': np.asarray(speech, np.float64)}
    atomic_savez(path, **table)
    return table


# --------------------------------------------------------------------------- log-mel maps as vectors of bands

def _normalise_maps(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    active = x.max(axis=1, keepdims=True) > np.log(1e-6) + 1e-3
    z = (x - mean[None, :, None]) / std[None, :, None]
    return np.where(active, z, -5.0).astype(np.float32)


def _map_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    active = (x.max(axis=1, keepdims=True) > np.log(1e-6) + 1e-3).astype(np.float64)    # (N, 1, T)
    n = active.sum() or 1.0
    mean = (x * active).sum((0, 2)) / n
    var = ((x - mean[None, :, None]) ** 2 * active).sum((0, 2)) / n
    return mean, np.sqrt(np.maximum(var, 1e-6))


# --------------------------------------------------------------------------- one fold (the sweep's load and run)

def load(cfg, data_root) -> dict[str, np.ndarray]:
    """
    Return the feature table of ``cfg``'s variant (a sweep's ``load``; computed once, then cached).

    With ``train_speed_factors`` also ``x@<factor>`` and ``speech_s@<factor>``: the same files played faster.
    """
    from centralnet_ros import paths
    options = cfg.dataset_options
    cache = paths.cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    kind = feature_kind(options)
    table = feature_table(kind, Path(data_root), cache, logmel=dict(options['features']))
    for v in _speeds(options):
        copy = feature_table(kind, Path(data_root), cache, speed=v)
        table[f'x@{v:g}'], table[f'speech_s@{v:g}'] = copy['x'], copy['speech_s']
    return table


def _speeds(options: dict) -> list[float]:
    return [float(v) for v in options.get('train_speed_factors', []) if float(v) != 1.0]


def _training_rows(t: dict, speakers: list[int], copies: bool | list[float], cols: np.ndarray | None = None):
    """
    Rows of ``speakers``: inputs, labels, voices, seconds of speech; with ``copies`` their speed copies too.

    ``copies``: True (every speed in ``t``), False (none) or the speed factors to take.

    Each copy is a voice of its own (:func:`~centralnet_ros.training.emotion.stack_copies`); ``cols``: the
    columns kept.
    """
    from centralnet_ros.training.emotion import stack_copies
    rows = np.isin(t['speakers'], speakers)
    speeds = sorted(float(k[2:]) for k in t if k.startswith('x@')) if copies is True else list(copies or [])
    keys = [('x', 'speech_s')] + [(f'x@{v:g}', f'speech_s@{v:g}') for v in speeds]
    return stack_copies([(t[kx][rows] if cols is None else t[kx][rows][:, cols], t[kw][rows]) for kx, kw in keys],
                        t['labels'][rows], t['speakers'][rows])


def run(cfg, t: dict, spec) -> dict:
    """Train on the fold's training speakers (one more picks the epoch), score its test speaker in every setting."""
    from centralnet_ros.config import from_dict
    from centralnet_ros.features.normalisation import fit_prior, normalise_by_speaker, SpeakerNormalisation
    from centralnet_ros.fusion import build_model
    from centralnet_ros.runtime.adaptation import score_speaker
    from centralnet_ros.torch_utils import seed_everything
    from centralnet_ros.training.emotion import emodb_speaker_split, EmoDBOptions
    from centralnet_ros.training.trainer import ArraySplit, predict, train

    seed = spec.seed
    kind = feature_kind(cfg.dataset_options)
    opts = from_dict(EmoDBOptions, cfg.dataset_options, _where='dataset_options')
    x, y, spk, w = t['x'], t['labels'], t['speakers'], t['speech_s']
    speakers = sorted(set(spk.tolist()))
    train_s, val_s, test = emodb_speaker_split(speakers, opts)
    no_val = not val_s              # every other speaker trains; the epoch is chosen on their own accuracy
    val = val_s[0] if val_s else None
    tr, va, te = np.isin(spk, train_s), np.isin(spk, val_s), spk == test
    settings = dict(opts.speaker_normalisation)
    mode = settings.pop('mode', 'per_voice')
    t0 = time.perf_counter()
    chosen, cols, copies, sample_weight = {}, None, bool(_speeds(cfg.dataset_options)), None
    ensemble = cfg.train.lda_shrinkages or cfg.train.lda_drop_prefixes      # nothing to choose: every member
    if cfg.train.solver == 'shrinkage_lda' and not ensemble:  # chosen on the training speakers alone
        groups = _feature_groups(kind)
        key = (spec.variant, spec.fold)                  # the same for every seed: chosen once per process
        if key not in _SELECTED:
            _SELECTED[key] = _select(SHRINKAGE_GRID, groups, t, mode, settings, train_s)
        group, copies, value, chosen = _SELECTED[key]
        cols = groups[group]
        if cols is not None:
            x = x[:, cols]
        cfg.train.shrinkage = value
    cfg.modalities['audio'].input_shape = list(x.shape[1:])
    if kind == 'logmel':
        prior_mean, prior_std = _map_stats(x[tr])
        stats = {s: _map_stats(x[spk == s]) for s in speakers}

        def norm_rows(rows, s, use_speaker):
            m, sd = stats[s] if use_speaker else (prior_mean, prior_std)
            return _normalise_maps(x[rows], m, sd)
        xtr = np.concatenate([norm_rows(tr & (spk == s), s, True) for s in train_s])
        ytr = np.concatenate([y[tr & (spk == s)] for s in train_s])
        xva = norm_rows(va, val, True) if val is not None else None
    else:
        prior_mean, prior_std = fit_prior(x[tr], spk[tr], w[tr])
        norm = SpeakerNormalisation(mode=mode, prior_mean=prior_mean.tolist(), prior_std=prior_std.tolist(),
                                    **settings)
        xr, ytr, voices, wr = _training_rows(t, train_s, copies, cols)
        xtr = normalise_by_speaker(xr, voices, norm, wr)
        xva = normalise_by_speaker(x[va], spk[va], norm, w[va]) if val is not None else None
        weight = opts.unadapted_weight
        if spec.variant in SELECT_UNADAPTED:                  # chosen on the training speakers alone
            key = (spec.variant, spec.fold)
            if key not in _SELECTED:
                _SELECTED[key] = _select_unadapted(cfg, t, mode, settings, train_s, copies)
            weight, chosen = _SELECTED[key]
        if weight > 0:
            from centralnet_ros.training.emotion import unadapted_rows
            sample_weight = np.concatenate([np.ones(len(ytr)), np.full(len(ytr), float(weight))])
            xtr, ytr = np.concatenate([xtr, unadapted_rows(xr, voices, norm, wr)]), np.concatenate([ytr, ytr])
    seed_everything(seed)
    model = build_model(cfg.fusion_config(spec.method))
    if no_val:
        xva, yva = xtr, ytr
    else:
        yva = y[va]
    names = None
    if kind == 'own':
        from centralnet_ros.features.functionals import functional_names
        names = {'audio': functional_names() if cols is None else list(np.asarray(functional_names())[cols])}
    result = train(model, ArraySplit({'audio': xtr}, ytr, sample_weight), ArraySplit({'audio': xva}, yva), cfg.train,
                   seed=seed, input_names=names)

    def classify(z: np.ndarray) -> np.ndarray:
        return predict(model, ArraySplit({'audio': np.asarray(z, np.float32)}, np.zeros(len(z), np.int64))).argmax(1)

    order = np.random.default_rng(1000 + seed).permutation(np.flatnonzero(te))   # the order the robot hears them
    out = {'variant': spec.variant, 'fold': spec.fold, 'seed': seed, 'test_speaker': f'{test:02d}',
           'val_speaker': f'{val:02d}' if val is not None else '', 'best_epoch': result.best_epoch,
           'val_accuracy': result.val_metric, **chosen, 'settings': {}}
    if kind == 'logmel':
        out['settings']['no adaptation'] = (classify(norm_rows(order, test, False)).tolist(), y[order].tolist())
        out['settings']['all of the speaker (batch)'] = (classify(norm_rows(order, test, True)).tolist(),
                                                         y[order].tolist())
    else:
        xs, ws, ys = x[order], w[order], y[order]
        out['settings']['no adaptation'] = _pack(score_speaker(classify, xs, ys, norm, adapt_s=None))
        if mode == 'per_voice':
            for n in ADAPT_S:
                for online in (True, False):
                    name = f'adapt {n:g} s, {"online" if online else "frozen"}'
                    if n == 0 and not online:
                        continue                                  # = no adaptation
                    out['settings'][name] = _pack(score_speaker(classify, xs, ys, norm, adapt_s=n, online=online,
                                                                weights_s=ws))
            out['settings']['all of the speaker (batch)'] = (
                classify(normalise_by_speaker(xs, np.zeros(len(xs)), norm, ws)).tolist(), ys.tolist())
    out['train_s'] = round(time.perf_counter() - t0, 1)
    return out


def _feature_groups(kind: str) -> dict[str, np.ndarray | None]:
    """Column subsets the selection may choose among (own functionals: without the MFCC or log-mel groups)."""
    if kind != 'own':
        return {'all': None}
    from centralnet_ros.features.functionals import functional_names
    names = np.asarray(functional_names())
    return {'all': None, 'without MFCC functionals': ~np.char.startswith(names, 'mfcc'),
            'without log-mel functionals': ~np.char.startswith(names, 'logmel')}


_SELECTED: dict = {}


def _select(grid, groups, t: dict, mode, settings: dict, train_s: list[int]):
    """
    Choose (feature group, speed copies or not, shrinkage) by leave-one-speaker-out over the training speakers alone.

    Each training speaker is held out once: the LDA of the other training speakers (per-speaker
    normalisation, prior fitted on their recordings; with or without their speed copies) scores it
    without adaptation and adapting online from 0 s; the triple with the best mean accuracy wins.
    The test speaker is never read.
    """
    from centralnet_ros.features.normalisation import fit_prior, normalise_by_speaker, SpeakerNormalisation
    from centralnet_ros.runtime.adaptation import adapt_speaker_sequence
    from centralnet_ros.training.trainer import shrinkage_lda
    x, y, spk, w = t['x'], t['labels'], t['speakers'], t['speech_s']
    options = (False, True) if any(k.startswith('x@') for k in t) else (False,)
    triples = [(g, c, float(v)) for g in groups for c in options for v in grid]
    scores = np.zeros(len(triples))
    for held in train_s:
        inner = [s for s in train_s if s != held]
        tr, va = np.isin(spk, inner), spk == held
        mean, std = fit_prior(x[tr], spk[tr], w[tr])
        norm = SpeakerNormalisation(mode=mode, prior_mean=mean.tolist(), prior_std=std.tolist(), **settings)
        order = np.random.default_rng(7).permutation(np.flatnonzero(va))
        heard = [adapt_speaker_sequence(x[order], norm, adapt_s=a, weights_s=w[order]) for a in (None, 0.0)]
        heard = [(z, y[order][scored]) for z, scored in heard]        # labels read after adaptation
        for c in options:
            xr, yr, voices, wr = _training_rows(t, inner, c)
            xtr = normalise_by_speaker(xr, voices, norm, wr)
            for k, (g, cc, value) in enumerate(triples):
                if cc != c:
                    continue
                cols = slice(None) if groups[g] is None else groups[g]
                wt, b = shrinkage_lda(xtr[:, cols], yr, 7, value)
                for z, true in heard:
                    scores[k] += np.mean((z[:, cols] @ wt.T + b).argmax(1) == true) / (2 * len(train_s))
    g, c, value = triples[int(np.argmax(scores))]
    table = {f'{gg} / {"speed copies" if cc else "recordings"} / {vv:g}': round(float(sc), 4)
             for (gg, cc, vv), sc in zip(triples, scores)}
    return g, c, value, {'feature_group': g, 'speed_copies': c, 'shrinkage': value, 'selection_scores': table}


def _select_unadapted(cfg, t: dict, mode, settings: dict, train_s: list[int], copies) -> tuple[float, dict]:
    """
    Choose ``unadapted_weight`` among ``UNADAPTED_GRID`` by leave-one-speaker-out over the training speakers alone.

    Each training speaker is held out once: the variant's LDA ensemble of the other training speakers
    (per-voice rows with their speed copies, plus their unadapted rows at each weight) scores it
    without adaptation and adapting online from 0 s, as :func:`_select` does; the weight with the best
    mean accuracy wins (ties: the smaller).  The test speaker is never read.
    """
    from centralnet_ros.features.functionals import functional_names
    from centralnet_ros.features.normalisation import fit_prior, normalise_by_speaker, SpeakerNormalisation
    from centralnet_ros.runtime.adaptation import adapt_speaker_sequence
    from centralnet_ros.training.emotion import unadapted_rows
    from centralnet_ros.training.trainer import lda_columns, lda_ensemble
    x, y, spk, w = t['x'], t['labels'], t['speakers'], t['speech_s']
    columns = lda_columns(functional_names(), cfg.train.lda_drop_prefixes)
    shrinkages = cfg.train.lda_shrinkages or [cfg.train.shrinkage]
    scores = np.zeros(len(UNADAPTED_GRID))
    for held in train_s:
        inner = [s for s in train_s if s != held]
        tr = np.isin(spk, inner)
        mean, std = fit_prior(x[tr], spk[tr], w[tr])
        norm = SpeakerNormalisation(mode=mode, prior_mean=mean.tolist(), prior_std=std.tolist(), **settings)
        order = np.random.default_rng(7).permutation(np.flatnonzero(spk == held))
        heard = [adapt_speaker_sequence(x[order], norm, adapt_s=a, weights_s=w[order]) for a in (None, 0.0)]
        heard = [(z, y[order][scored]) for z, scored in heard]        # labels read after adaptation
        xr, yr, voices, wr = _training_rows(t, inner, copies)
        xin = np.concatenate([normalise_by_speaker(xr, voices, norm, wr), unadapted_rows(xr, voices, norm, wr)])
        for k, weight in enumerate(UNADAPTED_GRID):
            rows = slice(None) if weight > 0 else slice(0, len(yr))
            sw = np.concatenate([np.ones(len(yr)), np.full(len(yr), weight)])[rows]
            wt, b = lda_ensemble(xin[rows], np.concatenate([yr, yr])[rows], 7, shrinkages, columns, sw)
            for z, true in heard:
                scores[k] += np.mean((z @ wt.T + b).argmax(1) == true) / (2 * len(train_s))
    best = int(np.argmax(scores))
    return float(UNADAPTED_GRID[best]), {'unadapted_weight': float(UNADAPTED_GRID[best]), 'selection_scores': {
        f'{v:g}': round(float(sc), 4) for v, sc in zip(UNADAPTED_GRID, scores)}}


def _pack(result) -> tuple[list, list]:
    pred, labels = result
    return np.asarray(pred).tolist(), np.asarray(labels).tolist()


# --------------------------------------------------------------------------- summary and report

def _metrics(y: np.ndarray, p: np.ndarray, k: int = 7) -> dict:
    conf = np.zeros((k, k), np.int64)
    np.add.at(conf, (y, p), 1)
    recall = conf.diagonal() / np.maximum(conf.sum(1), 1)
    return {'accuracy': float(np.mean(y == p)) if len(y) else float('nan'), 'uar': float(recall.mean()),
            'n': int(len(y)), 'confusion': conf.tolist()}


def summarise(runs: list[dict]) -> dict:
    out = {}
    for variant in dict.fromkeys(r['variant'] for r in runs):
        rs = [r for r in runs if r['variant'] == variant]
        seeds = sorted({r['seed'] for r in rs})
        settings = list(dict.fromkeys(s for r in rs for s in r['settings']))
        out[variant] = {}
        for s in settings:
            per_seed = []
            for seed in seeds:
                pairs = [r['settings'][s] for r in rs if r['seed'] == seed and s in r['settings']]
                y = np.concatenate([np.asarray(p[1], np.int64) for p in pairs])
                p = np.concatenate([np.asarray(p[0], np.int64) for p in pairs])
                per_seed.append(_metrics(y, p))
            acc = np.asarray([m['accuracy'] for m in per_seed])
            uar = np.asarray([m['uar'] for m in per_seed])
            out[variant][s] = {'accuracy': float(acc.mean()), 'accuracy_sd': float(acc.std(ddof=1)) if len(acc) > 1
                               else 0.0, 'uar': float(uar.mean()),
                               'uar_sd': float(uar.std(ddof=1)) if len(uar) > 1 else 0.0,
                               'scored_per_seed': per_seed[0]['n'], 'seeds': seeds,
                               'confusion': np.sum([m['confusion'] for m in per_seed], axis=0).tolist()}
    return out


def render(r: dict) -> str:
    from centralnet_ros.data.emodb import EMOTIONS
    norm = r['normalisation']
    lines = ['# EmoDB: speaker normalisation and run-time adaptation (7 classes, leave one speaker out)', '',
             'Every speaker of the shared copy (8) is the test speaker once; the next one picks the epoch and six '
             'train (variants marked "7 training speakers": all seven others train), each normalised with its own '
             'statistics (prior weight '
             f'{norm["prior_weight_s"]:g} s, half-life {norm["half_life_s"]:g} s of speech, statistics '
             f'`{norm["statistics"]}`); the single-LDA variants choose their shrinkage (and feature group, and '
             'whether to train on speed-perturbed copies) by leave-one-speaker-out over their seven training '
             'speakers, never reading the test speaker; the ensemble averages the scores of every (feature group, '
             'shrinkage) of that grid. Speed copies (0.9, 1.1: tempo and pitch together) are training voices of '
             'their own; the normalisation prior comes from the recordings. Unadapted rows: every training row '
             'also normalised with the prior of the other training speakers, as the robot hears a voice before '
             'adapting to it, with a weight chosen on the training speakers. '
             "The test speaker's utterances are heard in a random order per seed; "
             'with adaptation the first N seconds of speech (active frames) only adapt and are not scored. '
             '`online`: the run-time behaviour, every later utterance also adapts before it is classified; '
             '`frozen`: statistics fixed after N s. Figures: mean over seeds (± sd over seeds) of the accuracy and '
             'unweighted average recall (UAR) pooled over all scored utterances of the 8 folds.', '',
             '| features / model | setting | accuracy | UAR | scored utterances per seed |', '|---|---|---|---|---|']
    for v, settings in r['summary'].items():
        for s, m in settings.items():
            lines.append(f'| {DESCRIPTION[v]} | {s} | {100 * m["accuracy"]:.1f} % ± {100 * m["accuracy_sd"]:.1f} | '
                         f'{100 * m["uar"]:.1f} % ± {100 * m["uar_sd"]:.1f} | {m["scored_per_seed"]} |')
    lines += ['', 'Published anchors (full corpus, 10 speakers): openSMILE functionals + SVM 73-77 %, deep models '
              '82-85 %. Goals of issue #12: >= 78 % without adaptation, >= 85 % after 60 s of speech.', '']
    for v in r['summary']:
        chosen = [x for x in r['runs'] if x['variant'] == v and 'shrinkage' in x and x['seed'] == 0]
        if chosen:
            lines += [f'Chosen by leave-one-speaker-out over the training speakers, {DESCRIPTION[v]} '
                      '(test speaker: feature group / [speed copies /] shrinkage): '
                      + '; '.join(f'{x["test_speaker"]}: {x.get("feature_group", "all")} / '
                                  + ('speed copies / ' if x.get('speed_copies') else '') + f'{x["shrinkage"]:g}'
                                  for x in sorted(chosen, key=lambda x: x['fold'])) + '.', '']
    chosen = [x for x in r['runs'] if x['variant'] == SHIPPED and 'unadapted_weight' in x and x['seed'] == 0]
    if chosen:
        lines += [f'Chosen by leave-one-speaker-out over the training speakers, {DESCRIPTION[SHIPPED]} (test '
                  f'speaker: weight of the unadapted rows, among {", ".join(f"{v:g}" for v in UNADAPTED_GRID)}): '
                  + '; '.join(f'{x["test_speaker"]}: {x["unadapted_weight"]:g}'
                              for x in sorted(chosen, key=lambda x: x['fold'])) + '.', '']
    for label, among in ((PER_FOLD, 'the four procedures without unadapted rows'),
                         (PER_FOLD_ALL, 'all seven procedures')):
        per_fold = [x for x in r['runs'] if x['variant'] == label and x['seed'] == 0]
        if per_fold:
            lines += [f"Procedure each fold's training speakers chose among {among} "
                      '([`emodb_procedures.md`](emodb_procedures.md)): '
                      + '; '.join(f'{x["test_speaker"]}: {x["procedure"]}'
                                  for x in sorted(per_fold, key=lambda x: x['fold'])) + '.', '']
    for v, s in r.get('confusions', []):
        m = r['summary'][v][s]
        lines += [f'Confusion, {DESCRIPTION[v]}, {s} (rows true, columns predicted, summed over seeds):', '',
                  '| | ' + ' | '.join(EMOTIONS) + ' | recall |', '|---' * (len(EMOTIONS) + 2) + '|']
        for name, row in zip(EMOTIONS, m['confusion']):
            recall = 100 * row[EMOTIONS.index(name)] / max(sum(row), 1)
            lines.append(f'| {name} | ' + ' | '.join(str(c) for c in row) + f' | {recall:.0f} % |')
        lines.append('')
    m = r['machine']
    lines += [f'Training and scoring {r["train_s_all_runs"]:.0f} s over all folds (1 thread each) on '
              f'{m.get("cpu_model", m["processor"])} x{m["cpu_count"]}, torch {m["torch"]}, {r["date"]}; the machine '
              'was shared with other jobs.', '', f'Command: `{r["command"]}`', '']
    carried = r.get('carried_over') or {}
    if carried:
        lines += [f'Rows carried over unchanged from the previous result ({carried["date"]}, '
                  f'{carried["train_s_all_runs"]:.0f} s; the same features, normalisation and code for them) because '
                  f'this run did not repeat them: {", ".join(carried["variants"])}. Their command: '
                  f'`{carried["command"]}`', '']
    return '\n'.join(lines)


def _per_fold_runs(runs: list[dict], procedures: dict | None, among: int = 4, label: str = PER_FOLD) -> list[dict]:
    """
    Return the runs of the procedure each fold's training speakers ranked first, as variant ``label``.

    ``among``: the first so many procedures of the ranking compete (4: those before the unadapted
    rows; ``len(PROCEDURES)``: all).  Empty when that ranking is missing or names a procedure without runs.
    """
    variants = dict(zip(PROCEDURES, PROCEDURE_VARIANTS))
    out = []
    for row in (procedures or {}).get('folds', []):
        best = max(procedures['procedures'][:among], key=lambda p: row[p])
        picked = [r for r in runs if r['variant'] == variants.get(best) and r['test_speaker'] == row['test_speaker']]
        if not picked:
            return []
        out += [{**r, 'variant': label, 'procedure': best} for r in picked]
    return out


def result(runs_json: dict, procedures: dict | None = None, previous: dict | None = None) -> dict:
    """
    Turn a sweep's ``runs.json`` into the result: summary per variant and setting, runs without predictions.

    ``procedures``: the ranking of ``--procedures``, which makes the ``PER_FOLD`` rows (each fold by the
    procedure its training speakers chose).  ``previous``: an earlier result (``--carry-over``) whose
    variants this sweep did not run are kept, rows and runs as they were, and named in ``carried_over``.
    """
    from centralnet_ros.config import from_dict
    from centralnet_ros.training.experiment import ExperimentConfig
    cfg = from_dict(ExperimentConfig, runs_json['experiment'])
    runs = (_per_fold_runs(runs_json['runs'], procedures) + runs_json['runs']
            + _per_fold_runs(runs_json['runs'], procedures, len(PROCEDURES), PER_FOLD_ALL))
    runs = [r for r in runs if r['variant'] == SHIPPED] + [r for r in runs if r['variant'] != SHIPPED]   # headline
    summary = summarise(runs)
    confusions = [(v, s) for v, s in ((SHIPPED, 'no adaptation'), (SHIPPED, 'adapt 60 s, online'),
                                      (SHIPPED, 'all of the speaker (batch)'))
                  if v in summary and s in summary[v]]
    norm = {k: v for k, v in cfg.dataset_options['speaker_normalisation'].items() if k != 'mode'}
    runs = [{k: v for k, v in r.items() if k != 'settings'} for r in runs]
    carried = {}
    if previous:
        kept = [v for v in previous['summary'] if v not in summary]
        summary.update({v: previous['summary'][v] for v in kept})
        runs += [r for r in previous['runs'] if r['variant'] in kept]
        origin = previous.get('carried_over') or {}
        if not set(kept) <= set(origin.get('variants', [])):
            origin = previous                               # else they were carried into it: name where from
        if kept:
            carried = {'variants': kept, 'date': origin.get('date'), 'command': origin.get('command'),
                       'train_s_all_runs': round(sum(r['train_s'] for r in previous['runs'] if r['variant'] in kept),
                                                 1)}
    return {'benchmark': 'EmoDB LOSO with speaker adaptation', 'preset': cfg.name, 'normalisation': norm,
            'adapt_s': list(ADAPT_S), 'variants': {v: DESCRIPTION[v] for v in summary}, 'summary': summary,
            'confusions': confusions, 'runs': runs, 'jobs': runs_json.get('data', {}).get('jobs', 1),
            'train_s_all_runs': round(sum(r['train_s'] for r in runs if r['variant'] not in carried.get('variants',
                                                                                                        [])), 1),
            'carried_over': carried, 'machine': runs_json['machine']}


# --------------------------------------------------------------------------- which procedure to ship

PROCEDURES = ('one LDA chosen per fold (feature group, speed copies 0.9 / 1.1 or not, shrinkage)',
              'ensemble of every (feature group, shrinkage), speed copies 0.9 / 1.1',
              'ensemble of every (feature group, shrinkage), recordings alone',
              'ensemble of every (feature group, shrinkage), speed copies 0.85 / 0.9 / 1.1 / 1.15',
              *(f'the same, unadapted rows weighing {v:g}' for v in UNADAPTED_GRID[1:]))
PROCEDURE_VARIANTS = ('own_lda_selected', 'own_lda', None, 'own_lda_wide', 'own_lda_unadapted_005',
                      'own_lda_unadapted_010', 'own_lda_unadapted_020')     # the variant that runs each procedure
COPIES = {'recordings': [], 'copies': [0.9, 1.1], 'wide': [0.85, 0.9, 1.1, 1.15]}   # the procedures' training voices


def compare_procedures(cfg, data_root: Path) -> dict:
    """
    Rank the training procedures of the LDA variants on training speakers alone, fold by fold.

    For each test speaker, each of its seven training speakers is held out once; every procedure
    is run on the six others (the selection its own leave-one-speaker-out inside them) and scores
    the held-out one without adaptation and adapting online from 0 s.  The test speaker is never
    read.  Every model is fitted once per set of training speakers (5 or 6 of them) and reused.
    """
    import itertools
    from centralnet_ros.features.normalisation import fit_prior, normalise_by_speaker, SpeakerNormalisation
    from centralnet_ros.runtime.adaptation import adapt_speaker_sequence
    from centralnet_ros.training.emotion import unadapted_rows
    from centralnet_ros.training.trainer import _shrinkage_lda_path, lda_ensemble
    from centralnet_ros import paths
    t = load(cfg.resolve('own_lda_wide'), data_root)
    for v in COPIES['wide']:
        if f'x@{v:g}' not in t:
            copy = feature_table('own', Path(data_root), paths.cache_dir(), speed=v)
            t[f'x@{v:g}'], t[f'speech_s@{v:g}'] = copy['x'], copy['speech_s']
    x, y, spk, w = t['x'], t['labels'], t['speakers'], t['speech_s']
    settings = dict(cfg.dataset_options['speaker_normalisation'])
    mode = settings.pop('mode', 'per_voice')
    groups = _feature_groups('own')
    members = [(g, c, float(v)) for g in groups for c in COPIES for v in SHRINKAGE_GRID]
    speakers = sorted(set(spk.tolist()))
    acc = {}                                   # (training set, held-out speaker) -> accuracy per member / ensemble
    for k in (len(speakers) - 3, len(speakers) - 2):
        for train_s in itertools.combinations(speakers, k):
            mean, std = fit_prior(x[np.isin(spk, train_s)], spk[np.isin(spk, train_s)], w[np.isin(spk, train_s)])
            norm = SpeakerNormalisation(mode=mode, prior_mean=mean.tolist(), prior_std=std.tolist(), **settings)
            fitted = {}
            for c, speeds in COPIES.items():
                xr, yr, voices, wr = _training_rows(t, list(train_s), speeds)
                xtr = normalise_by_speaker(xr, voices, norm, wr)
                for g, cols in groups.items():
                    path = _shrinkage_lda_path(xtr, yr, 7, SHRINKAGE_GRID, None, [cols])
                    fitted.update({(g, c, float(v)): wb for v, wb in zip(SHRINKAGE_GRID, path)})
                if c == 'wide':                          # the wide ensemble with unadapted rows at each weight
                    xin = np.concatenate([xtr, unadapted_rows(xr, voices, norm, wr)])
                    for weight in UNADAPTED_GRID[1:]:
                        sw = np.concatenate([np.ones(len(yr)), np.full(len(yr), weight)])
                        fitted[('unadapted', weight)] = lda_ensemble(xin, np.concatenate([yr, yr]), 7, SHRINKAGE_GRID,
                                                                     list(groups.values()), sw)
            for c in COPIES:
                mem = [m for m in members if m[1] == c]
                fitted[('ensemble', c)] = (np.mean([fitted[m][0] for m in mem], 0),
                                           np.mean([fitted[m][1] for m in mem], 0))
            for held in (s for s in speakers if s not in train_s):
                order = np.random.default_rng(7).permutation(np.flatnonzero(spk == held))
                heard = [adapt_speaker_sequence(x[order], norm, adapt_s=a, weights_s=w[order]) for a in (None, 0.0)]
                acc[(frozenset(train_s), held)] = {
                    key: float(np.mean([np.mean((z @ wf.T + b).argmax(1) == y[order][sc]) for z, sc in heard]))
                    for key, (wf, b) in fitted.items()}
    folds = []
    for test in speakers:
        train_s = [s for s in speakers if s != test]
        est = {p: [] for p in PROCEDURES}
        for held in train_s:
            inner = [s for s in train_s if s != held]
            chosen = [m for m in members if m[1] != 'wide']           # the selection: copies 0.9 / 1.1 or none
            inner_score = {m: np.mean([acc[(frozenset(set(inner) - {u}), u)][m] for u in inner]) for m in chosen}
            best = max(chosen, key=lambda m: inner_score[m])
            row = acc[(frozenset(inner), held)]
            values = ([row[best]] + [row[('ensemble', c)] for c in ('copies', 'recordings', 'wide')]
                      + [row[('unadapted', v)] for v in UNADAPTED_GRID[1:]])
            for p, value in zip(PROCEDURES, values):
                est[p].append(value)
        folds.append({'test_speaker': f'{test:02d}', **{p: float(np.mean(v)) for p, v in est.items()}})
    return {'procedures': list(PROCEDURES), 'folds': folds,
            'criterion': 'mean accuracy without adaptation and adapting online from 0 s'}


def render_procedures(r: dict) -> str:
    lines = ['# EmoDB: which LDA training procedure to ship, decided on training speakers alone', '',
             'For each test speaker (a row), each of its seven training speakers is held out once and every '
             'procedure (a column) is run on the six others -- the per-fold choice by its own '
             'leave-one-speaker-out inside those six -- then scores the held-out speaker: '
             f'{r["criterion"]}, mean over the seven. The test speaker is never read. Feature groups: all 800 '
             'functionals, without the MFCC ones, without the log-mel ones; shrinkages '
             f'{", ".join(f"{v:g}" for v in SHRINKAGE_GRID)}; speed copies: each a voice of its own; '
             "ensemble: the members' scores averaged (one linear layer); unadapted rows: every training row also "
             'normalised with the prior of the other training speakers (training.emotion.unadapted_rows), weighing '
             'as said against 1 for the per-voice rows.', '',
             '| test speaker | ' + ' | '.join(r['procedures']) + ' | best |', '|---' * (len(r['procedures']) + 2) + '|']
    for f in r['folds']:
        vals = [f[p] for p in r['procedures']]
        lines.append(f'| {f["test_speaker"]} | ' + ' | '.join(f'{100 * v:.2f} %' for v in vals)
                     + f' | {int(np.argmax(vals)) + 1} |')
    m = r['machine']
    lines += ['', f'{r["wall_time_s"]:.0f} s on {m.get("cpu_model", m["processor"])} x{m["cpu_count"]}, {r["date"]}.',
              '', f'Command: `{r["command"]}`', '']
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--preset', default=PRESET)
    parser.add_argument('--procedures', action='store_true',
                        help='rank the LDA training procedures on training speakers alone (emodb_procedures.md)')
    parser.add_argument('--variants', default=None, help='comma-separated variants of the preset (default: all)')
    parser.add_argument('--seeds', type=int, default=None,
                        help="seeds of every variant (default: the preset's, 3 for the shipped setting and its "
                             'alternatives, 1 for the reference variants)')
    parser.add_argument('--folds', type=int, nargs='*', default=None, help='fold indices (default: all 8)')
    parser.add_argument('--set', dest='overrides', action='append', default=[], metavar='KEY=VALUE')
    parser.add_argument('--out', default=str(Path(__file__).resolve().parent / 'results'))
    parser.add_argument('--name', default='emodb', help='result files <out>/<name>.{md,json}')
    parser.add_argument('--carry-over', default=None, metavar='RESULT_JSON',
                        help='keep the rows of the variants this run does not repeat from an earlier result file '
                             '(the report names them, with their date and command)')
    from centralnet_ros.training import sweep
    sweep.add_arguments(parser, runs='runs/emodb_benchmark')
    args = parser.parse_args(argv)
    from centralnet_ros import paths
    from centralnet_ros.machine import command_line, write_results
    from centralnet_ros.training.experiment import load_experiment, parse_overrides

    cfg = plan = None
    data_root = paths.data_root()
    overrides = parse_overrides(args.overrides)
    if args.procedures:
        start = time.perf_counter()
        r = compare_procedures(load_experiment(args.preset, overrides=overrides), data_root)
        r['wall_time_s'] = round(time.perf_counter() - start, 1)
        print(write_results(args.out, 'emodb_procedures', r, render_procedures, indent=1,
                            command=command_line(argv, program='python benchmarks/emodb_benchmark.py')))
        return 0
    if not args.render_only:
        cfg = load_experiment(args.preset, overrides={**overrides, 'train.progress': False, 'train.num_threads': 1})
        variants = [v.strip() for v in args.variants.split(',') if v.strip()] if args.variants else list(cfg.variants)
        unknown = sorted(set(variants) - set(cfg.variants))
        if unknown:
            parser.error(f'unknown variants {unknown}; the preset declares: {sorted(cfg.variants)}')
        opensmile = [v for v in variants if cfg.resolve(v).dataset_options['pipeline'] == 'opensmile_functionals']
        if opensmile:
            try:
                import opensmile  # noqa: F401
            except ImportError:
                print(f'openSMILE is not installed (optional extra): skipping {", ".join(opensmile)}', file=sys.stderr)
                variants = [v for v in variants if v not in opensmile]
        plan = sweep.plan_runs(cfg, variants=variants, folds=args.folds, seeds=args.seeds)
        for v in variants:                                     # features once, before the workers
            load(cfg.resolve(v), data_root)
    runs = sweep.sweep_from_args(args, cfg, plan, run=run, load=load, data_root=data_root, metric='val_accuracy',
                                 command=command_line(argv, program='python benchmarks/emodb_benchmark.py'),
                                 info={'overrides': overrides})
    ranking = Path(args.out) / 'emodb_procedures.json'
    procedures = json.loads(ranking.read_text()) if ranking.is_file() else None
    previous = json.loads(Path(args.carry_over).read_text()) if args.carry_over else None
    md = write_results(args.out, args.name, result(runs, procedures, previous), render, command=runs['command'],
                       indent=1)
    print(md)
    return 0 if not runs['failed'] else 1


if __name__ == '__main__':
    sys.exit(main())
