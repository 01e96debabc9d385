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
and standard deviation over seeds, and the confusion matrices; writes
``benchmarks/results/emodb.{md,json}``.

    python benchmarks/emodb_benchmark.py [--jobs 2] [--seeds 3] [--variants own,compare,egemaps,own_global,logmel]
"""
from __future__ import annotations

import argparse
from concurrent.futures import as_completed, ProcessPoolExecutor
import hashlib
import json
import multiprocessing
from pathlib import Path
import sys
import time

import numpy as np

ADAPT_S = (0.0, 10.0, 30.0, 60.0)
MLP = {'kind': 'mlp', 'widths': [256], 'dropout': 0.5, 'head_dropout': 0.5}
LINEAR = {'kind': 'mlp', 'widths': [], 'head_dropout': 0.2}
CNN = {'kind': 'cnn1d', 'widths': [64, 128, 128], 'kernel_size': 3, 'pool': [2, 2, 2], 'head_dropout': 0.3}
VARIANTS = {
    'own': ('own', 'per_voice', MLP, {}),
    'own_global': ('own', 'prior', MLP, {}),
    'own_linear': ('own', 'per_voice', LINEAR, {}),
    'own_linear_all7': ('own', 'per_voice', LINEAR, {'no_val': True}),
    'compare_linear': ('compare', 'per_voice', LINEAR, {}),
    'compare': ('compare', 'per_voice', MLP, {}),
    'egemaps': ('egemaps', 'per_voice', MLP, {}),
    'logmel': ('logmel', 'per_voice', CNN, {'train.epochs': 30, 'train.weight_decay': 0.0001}),
}
DESCRIPTION = {
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
SHIPPED = 'own_linear_all7'     # the setting of config/experiments/emodb_emotion.yaml (models/emotion)
NORM = {'statistics': 'mean_std', 'prior_weight_s': 10.0, 'half_life_s': 600.0}
LOGMEL = {'sample_rate': 16000, 'duration_s': 2.0, 'n_fft': 400, 'hop_length': 160, 'n_mels': 64, 'f_min': 50.0,
          'f_max': 8000.0, 'floor': 1e-6, 'mean': 0.0, 'std': 1.0, 'length_mode': 'start', 'layout': 'mel_time'}


# --------------------------------------------------------------------------- features (cached)

def feature_table(kind: str, data_root: Path, cache: Path) -> dict[str, np.ndarray]:
    """``x`` (N, ...), ``labels``, ``speakers``, ``speech_s`` (active seconds) of every EmoDB file, cached."""
    from centralnet_ros.config import atomic_savez
    from centralnet_ros.data import emodb
    from centralnet_ros.features import functionals as F
    utts = emodb.list_utterances(data_root / 'emodb')
    params = {'own': [F.FunctionalsConfig().__dict__, F.functional_names()], 'logmel': LOGMEL}.get(kind, {'set': kind})
    key = hashlib.sha256(json.dumps([kind, params, [u.path.name for u in utts]], sort_keys=True,
                                    default=str).encode()).hexdigest()[:12]
    path = cache / f'emodb_{kind}_{key}.npz'
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
        llds = F.frame_descriptors(wave)
        speech.append(F.active_speech_s(llds))
        if kind == 'own':
            rows.append(F.utterance_functionals(llds))
        elif kind == 'logmel':
            from centralnet_ros.features.audio import log_mel_model_input
            rows.append(log_mel_model_input(wave, **LOGMEL))
        else:
            rows.append(smile(wave, sample_rate=16000))
    table = {'x': np.stack(rows).astype(np.float32), 'labels': np.asarray([u.label for u in utts], np.int64),
             'speakers': np.asarray([u.speaker for u in utts], np.int64),
             'speech_s': np.asarray(speech, np.float64)}
    atomic_savez(path, **table)
    return table


# --------------------------------------------------------------------------- log-mel maps as vectors of bands

def _band_view(x: np.ndarray) -> np.ndarray:
    """(N, bands, frames) -> per-utterance band means over active frames (N, bands), for the prior / statistics."""
    active = x.max(axis=1, keepdims=True) > np.log(1e-6) + 1e-3
    return (x * active).sum(2) / np.maximum(active.sum(2), 1)


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


# --------------------------------------------------------------------------- one fold

def run_fold(variant: str, fold: int, seed: int, data_root: str, cache: str) -> dict:
    """Train on six speakers (one more picks the epoch), score the fold's speaker in every setting."""
    import torch
    torch.set_num_threads(1)
    from centralnet_ros.features.normalisation import fit_prior, normalise_by_speaker, SpeakerNormalisation
    from centralnet_ros.fusion import build_model
    from centralnet_ros.runtime.adaptation import score_speaker
    from centralnet_ros.torch_utils import seed_everything
    from centralnet_ros.training.experiment import load_experiment
    from centralnet_ros.training.trainer import ArraySplit, predict, train

    kind, mode, encoder, extra = VARIANTS[variant]
    extra = dict(extra)
    no_val = extra.pop('no_val', False)
    t = feature_table(kind, Path(data_root), Path(cache))
    x, y, spk, w = t['x'], t['labels'], t['speakers'], t['speech_s']
    speakers = sorted(set(spk.tolist()))
    test = speakers[fold]
    val = speakers[(fold + 1) % len(speakers)]
    train_s = [s for s in speakers if s not in (test, val)] + ([val] if no_val else [])
    tr, va, te = np.isin(spk, train_s), spk == val, spk == test
    enc = {**encoder, 'input_shape': list(x.shape[1:])}
    cfg = load_experiment('emodb_emotion', overrides={'modalities.audio': enc, 'train.progress': False,
                                                      'train.num_threads': 1, **extra})
    t0 = time.perf_counter()
    if kind == 'logmel':
        prior_mean, prior_std = _map_stats(x[tr])
        stats = {s: _map_stats(x[spk == s]) for s in speakers}

        def norm_rows(rows, s, use_speaker):
            m, sd = stats[s] if use_speaker else (prior_mean, prior_std)
            return _normalise_maps(x[rows], m, sd)
        xtr = np.concatenate([norm_rows(tr & (spk == s), s, True) for s in train_s])
        ytr = np.concatenate([y[tr & (spk == s)] for s in train_s])
        xva = norm_rows(va, val, True)
    else:
        prior_mean, prior_std = fit_prior(x[tr], spk[tr], w[tr])
        norm = SpeakerNormalisation(mode=mode, prior_mean=prior_mean.tolist(), prior_std=prior_std.tolist(), **NORM)
        xtr, ytr = normalise_by_speaker(x[tr], spk[tr], norm, w[tr]), y[tr]
        xva = normalise_by_speaker(x[va], spk[va], norm, w[va])
    seed_everything(seed)
    model = build_model(cfg.fusion_config('unimodal:audio'))
    if no_val:          # every other speaker trains; the epoch is chosen on their own accuracy (none is left out)
        xva, yva = xtr, ytr
    else:
        yva = y[va]
    result = train(model, ArraySplit({'audio': xtr}, ytr), ArraySplit({'audio': xva}, yva), cfg.train, seed=seed)

    def classify(z: np.ndarray) -> np.ndarray:
        return predict(model, ArraySplit({'audio': np.asarray(z, np.float32)}, np.zeros(len(z), np.int64))).argmax(1)

    order = np.random.default_rng(1000 + seed).permutation(np.flatnonzero(te))   # the order the robot hears them
    out = {'variant': variant, 'fold': fold, 'seed': seed, 'test_speaker': f'{test:02d}', 'val_speaker': f'{val:02d}',
           'best_epoch': result.best_epoch, 'val_accuracy': result.val_metric, 'settings': {}}
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
    lines = ['# EmoDB: speaker normalisation and run-time adaptation (7 classes, leave one speaker out)', '',
             'Every speaker of the shared copy (8) is the test speaker once; the next one picks the epoch and six '
             'train (variants marked "7 training speakers": all seven others train), each normalised with its own '
             'statistics (prior weight '
             f'{NORM["prior_weight_s"]:g} s, half-life {NORM["half_life_s"]:g} s of speech, statistics '
             f'`{NORM["statistics"]}`). The test speaker\'s utterances are heard in a random order per seed; '
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
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--variants', default='own_linear_all7,own_linear,own,own_global,compare_linear,compare,'
                                              'egemaps,logmel')
    parser.add_argument('--seeds', type=int, default=3)
    parser.add_argument('--reference-seeds', type=int, default=1,
                        help='seeds of the other variants (openSMILE, log-mel CNN, training-speaker normalisation)')
    parser.add_argument('--main', default='own_linear_all7,own_linear,own',
                        help='variants run with --seeds seeds (the shipped setting and its alternative)')
    parser.add_argument('--jobs', type=int, default=2)
    parser.add_argument('--folds', type=int, nargs='*', default=None)
    parser.add_argument('--out', default=str(Path(__file__).resolve().parent / 'results'))
    parser.add_argument('--name', default='emodb')
    parser.add_argument('--runs', default=None, metavar='JSONL',
                        help='append every finished fold here and reuse the folds already in it (resume, or add '
                             'variants run separately; default: <out>/<name>.runs.jsonl)')
    args = parser.parse_args(argv)
    from centralnet_ros import paths
    from centralnet_ros.config import atomic_write_text
    from centralnet_ros.machine import command_line, machine_description
    data_root, cache = paths.data_root(), paths.cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    variants = [v.strip() for v in args.variants.split(',') if v.strip()]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f'unknown variants {unknown}; known: {sorted(VARIANTS)}')
    if {'compare', 'egemaps'} & set(variants):
        try:
            import opensmile  # noqa: F401
        except ImportError:
            print('openSMILE is not installed (optional extra): skipping compare / egemaps', file=sys.stderr)
            variants = [v for v in variants if v not in ('compare', 'egemaps')]
    for v in dict.fromkeys(VARIANTS[v][0] for v in variants):          # features once, before the workers
        feature_table(v, data_root, cache)
    folds = args.folds or list(range(8))
    main_variants = args.main.split(',')
    wanted = [(v, f, s) for v in variants for s in range(args.seeds if v in main_variants else args.reference_seeds)
              for f in folds]
    runs_path = Path(args.runs) if args.runs else Path(args.out) / f'{args.name}.runs.jsonl'
    done = {}
    if runs_path.is_file():
        for line in runs_path.read_text().splitlines():
            r = json.loads(line)
            done[(r['variant'], r['fold'], r['seed'])] = r
    jobs = [j for j in wanted if j not in done]
    start = time.perf_counter()
    ctx = multiprocessing.get_context('spawn')
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=ctx) as pool:
        futures = [pool.submit(run_fold, v, f, s, str(data_root), str(cache)) for v, f, s in jobs]
        for k, fut in enumerate(as_completed(futures)):
            r = fut.result()
            done[(r['variant'], r['fold'], r['seed'])] = r
            with runs_path.open('a') as fh:                       # one line per fold: nothing half-written
                fh.write(json.dumps(r) + '\n')
            print(f'[{k + 1}/{len(jobs)}] {r["variant"]} fold {r["fold"]} seed {r["seed"]}: '
                  + ', '.join(f'{name} {np.mean(np.asarray(p) == np.asarray(y)):.2f}'
                              for name, (p, y) in r['settings'].items()), flush=True)
    runs = [done[j] for j in wanted]
    summary = summarise(runs)
    confusions = [(v, s) for v, s in ((SHIPPED, 'no adaptation'), (SHIPPED, 'adapt 60 s, online'),
                                      (SHIPPED, 'all of the speaker (batch)'))
                  if v in summary and s in summary[v]]
    result = {'benchmark': 'EmoDB LOSO with speaker adaptation', 'normalisation': NORM, 'adapt_s': list(ADAPT_S),
              'variants': {v: DESCRIPTION[v] for v in variants}, 'summary': summary, 'confusions': confusions,
              'runs': [{k: v for k, v in r.items() if k != 'settings'} for r in runs],
              'wall_time_s': round(time.perf_counter() - start, 1), 'jobs': args.jobs,
              'train_s_all_runs': round(sum(r['train_s'] for r in runs), 1),
              'machine': machine_description(), 'date': time.strftime('%Y-%m-%d'),
              'command': command_line(argv, program='python benchmarks/emodb_benchmark.py')}
    md = render(result)
    out = Path(args.out)
    atomic_write_text(out / f'{args.name}.json', json.dumps(result, indent=1) + '\n')
    atomic_write_text(out / f'{args.name}.md', md)
    print(md)
    return 0


if __name__ == '__main__':
    sys.exit(main())
