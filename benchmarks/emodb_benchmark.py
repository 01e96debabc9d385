"""
EmoDB 7-class leave-one-speaker-out accuracy of the shipped emotion preset.

Every speaker of the shared copy (03, 08-14) is the test speaker once; the validation
speaker is the next one (cyclically), the others train; the model and training
settings are those of ``config/experiments/emodb_emotion.yaml`` (audio only: an MLP over
log-mel, pitch and energy functionals).  ``--with-cnn`` also runs the same folds with a
1-D CNN over the standardised log-mel map itself (:data:`CNN_OVERRIDES`).  Prints and
writes ``benchmarks/results/emodb.md`` and ``emodb.json`` with the per-fold figures, the
mean over folds, the pooled accuracy and unweighted average recall over all utterances,
the confusion matrix, the machine and the command.

    python benchmarks/emodb_benchmark.py [--jobs 2] [--with-cnn] [--set train.epochs=20]
"""
from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor
import json
import multiprocessing
from pathlib import Path
import sys
import time

import numpy as np

CNN_OVERRIDES = {
    'dataset_options.features.layout': 'mel_time',
    'modalities.audio': {'kind': 'cnn1d', 'input_shape': [64, 198], 'widths': [64, 128, 128], 'kernel_size': 3,
                         'pool': [2, 2, 2], 'head_dropout': 0.3},
    'train.epochs': 30, 'train.weight_decay': 0.0001,
}
PUBLISHED = [('openSMILE functionals + SVM, 7-class LOSO', '73-77 %'),
             ('deep models (CNN / LSTM on spectrograms), 7-class LOSO', '82-85 %')]


def run_fold(preset: str, overrides: dict, fold: int, seed: int) -> dict:
    """Train on every speaker but the fold's test and validation speakers; test on the fold's speaker."""
    import torch
    torch.set_num_threads(1)
    from centralnet_ros import paths
    from centralnet_ros.fusion import build_model
    from centralnet_ros.torch_utils import seed_everything
    from centralnet_ros.training.emotion import load_emodb
    from centralnet_ros.training.experiment import load_experiment
    from centralnet_ros.training.trainer import train

    cfg = load_experiment(preset, overrides={**overrides, 'train.progress': False, 'train.num_threads': 1})
    options = {k: v for k, v in cfg.dataset_options.items() if k not in ('test_speaker', 'val_speakers')}
    options['fold'] = fold
    t0 = time.perf_counter()
    data = load_emodb(options, paths.data_root())
    load_s = time.perf_counter() - t0
    seed_everything(seed)                      # the initial weights depend on the seed only
    model = build_model(cfg.fusion_config(cfg.bundle.method))
    result = train(model, data.train, data.val, cfg.train, seed=seed, test_split=data.test)
    pred = result.test_logits.argmax(1)
    return {'fold': fold, 'seed': seed, 'test_speaker': data.info['test_speaker'],
            'val_speakers': data.info['val_speakers'],
            'n_train': len(data.train), 'n_test': len(data.test), 'accuracy': float(np.mean(pred == data.test.labels)),
            'val_accuracy': result.val_metric, 'best_epoch': result.best_epoch, 'epochs_run': result.epochs_run,
            'train_s': round(result.wall_time_s, 1), 'load_s': round(load_s, 1),
            'labels': data.test.labels.tolist(), 'predictions': pred.tolist(), 'label_names': data.label_names}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--preset', default='emodb_emotion')
    parser.add_argument('--folds', type=int, nargs='*', default=None, help='fold indices (default: all 8)')
    parser.add_argument('--jobs', type=int, default=2, help='folds trained in parallel (1 torch thread each)')
    parser.add_argument('--seeds', type=int, default=3, help='seeds 0..N-1 of the shipped model (the CNN: seed 0)')
    parser.add_argument('--with-cnn', action='store_true',
                        help='also run a 1-D CNN over the log-mel map (about 5x the time)')
    parser.add_argument('--set', dest='overrides', action='append', default=[], metavar='KEY=VALUE')
    parser.add_argument('--out', default=str(Path(__file__).resolve().parent / 'results'))
    args = parser.parse_args(argv)

    import torch
    torch.set_num_threads(1)
    from centralnet_ros import paths
    from centralnet_ros.config import atomic_write_text
    from centralnet_ros.data import emodb
    from centralnet_ros.machine import command_line, machine_description
    from centralnet_ros.training.experiment import load_experiment, parse_overrides

    overrides = parse_overrides(args.overrides)
    cfg = load_experiment(args.preset, overrides=overrides)
    n_speakers = len({u.speaker for u in emodb.list_utterances(paths.data_root() / 'emodb')})
    folds = args.folds if args.folds else list(range(n_speakers))
    command = command_line(argv, program='python benchmarks/emodb_benchmark.py')
    variants = {'functionals MLP (shipped)': (overrides, list(range(args.seeds)))}
    if args.with_cnn:
        variants['log-mel map 1-D CNN'] = ({**CNN_OVERRIDES, **overrides}, [0])
    start = time.perf_counter()
    jobs = [(v, f, s) for v, (_, seeds) in variants.items() for s in seeds for f in folds]
    if args.jobs > 1:
        ctx = multiprocessing.get_context('spawn')
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=ctx) as pool:
            runs = list(pool.map(run_fold, [args.preset] * len(jobs), [variants[v][0] for v, _, _ in jobs],
                                 [f for _, f, _ in jobs], [s for _, _, s in jobs]))
    else:
        runs = [run_fold(args.preset, variants[v][0], f, s) for v, f, s in jobs]
    for (v, _, _), r in zip(jobs, runs):
        r['variant'] = v
    wall = time.perf_counter() - start

    summaries = {}
    for v in variants:
        summaries[v] = _summary([r for r in runs if r['variant'] == v])
    shipped = next(iter(variants))
    machine = machine_description()
    variant_cfgs = {}
    for v, (ov, seeds) in variants.items():
        c = load_experiment(args.preset, overrides=ov)
        variant_cfgs[v] = {'modalities': {m: {'kind': e.kind, 'input_shape': e.input_shape, 'widths': e.widths}
                                          for m, e in c.modalities.items()},
                           'layout': c.dataset_options['features']['layout'],
                           'train': {'epochs': c.train.epochs, 'batch_size': c.train.batch_size, 'lr': c.train.lr,
                                     'weight_decay': c.train.weight_decay, 'optimizer': c.train.optimizer,
                                     'schedule': c.train.schedule},
                           'overrides': ov, 'seeds': seeds,
                           'train_s': round(sum(r['train_s'] for r in runs if r['variant'] == v), 1)}
    result = {'benchmark': 'EmoDB 7-class leave-one-speaker-out', 'preset': cfg.name, 'method': cfg.bundle.method,
              'shipped': shipped, 'variants': variant_cfgs, 'summary': summaries,
              'label_names': runs[0]['label_names'],
              'runs': [{k_: v for k_, v in r.items() if k_ not in ('labels', 'predictions', 'label_names')}
                       for r in runs],
              'published': dict(PUBLISHED), 'wall_time_s': round(wall, 1), 'jobs': args.jobs,
              'machine': machine, 'command': command, 'date': time.strftime('%Y-%m-%d')}
    md = render(result)
    out = Path(args.out)
    atomic_write_text(out / 'emodb.json', json.dumps(result, indent=2) + '\n')
    atomic_write_text(out / 'emodb.md', md)
    print(md)
    return 0


def _summary(runs: list[dict]) -> dict:
    """Figures over all folds, per seed, then their mean (and spread) over seeds."""
    seeds = sorted({r['seed'] for r in runs})
    per_seed = [_seed_summary([r for r in runs if r['seed'] == s]) for s in seeds]
    out = {'seeds': seeds, 'per_seed': per_seed}
    for key in ('mean_fold_accuracy', 'pooled_accuracy', 'unweighted_average_recall'):
        values = np.asarray([p[key] for p in per_seed])
        out[key] = float(values.mean())
        out[f'{key}_sd_over_seeds'] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    out['std_fold_accuracy'] = float(np.mean([p['std_fold_accuracy'] for p in per_seed]))
    out['folds'], out['utterances'] = per_seed[0]['folds'], per_seed[0]['utterances']
    out['confusion'] = np.sum([p['confusion'] for p in per_seed], axis=0).tolist()
    conf = np.asarray(out['confusion'])
    recalls = conf.diagonal() / np.maximum(conf.sum(1), 1)
    out['per_class_recall'] = {n: float(x) for n, x in zip(runs[0]['label_names'], recalls)}
    return out


def _seed_summary(runs: list[dict]) -> dict:
    names = runs[0]['label_names']
    y = np.concatenate([r['labels'] for r in runs])
    p = np.concatenate([r['predictions'] for r in runs])
    k = len(names)
    confusion = np.zeros((k, k), np.int64)
    np.add.at(confusion, (y, p), 1)
    recalls = confusion.diagonal() / np.maximum(confusion.sum(1), 1)
    acc = np.asarray([r['accuracy'] for r in runs])
    return {'folds': len(runs), 'utterances': int(len(y)), 'mean_fold_accuracy': float(acc.mean()),
            'std_fold_accuracy': float(acc.std(ddof=1)) if len(runs) > 1 else 0.0,
            'pooled_accuracy': float(np.mean(y == p)), 'unweighted_average_recall': float(recalls.mean()),
            'per_class_recall': {n: float(x) for n, x in zip(names, recalls)}, 'confusion': confusion.tolist()}


def render(r: dict) -> str:
    lines = [
        '# EmoDB: 7-class leave-one-speaker-out', '',
        f'Preset `{r["preset"]}` (method `{r["method"]}`). Each speaker of the shared '
        'copy is the test speaker once; the next speaker (cyclically) is the validation speaker that picks the '
        'epoch; the other 6 train (with extra copies at -6 / +6 dB). Every file of this copy lasts exactly '
        '2.000 s (cut / zero-padded).', '',
        '| model | input | seeds | accuracy, mean over folds (sd over folds) | pooled accuracy '
        '| unweighted average recall | training s (all runs) |', '|---|---|---|---|---|---|---|',
    ]

    def pm(s: dict, key: str) -> str:
        sd = s[f'{key}_sd_over_seeds']
        return f'{100 * s[key]:.1f} %' + (f' ± {100 * sd:.1f}' if len(s['seeds']) > 1 else '')

    for v, s in r['summary'].items():
        c = r['variants'][v]
        mods = ', '.join(f'{m["kind"]} {m["input_shape"]} widths {m["widths"]}' for m in c['modalities'].values())
        t = c['train']
        lines.append(f'| {v}: {mods}, {t["epochs"]} epochs {t["optimizer"]} lr {t["lr"]} | `{c["layout"]}` | '
                     f'{len(s["seeds"])} | {pm(s, "mean_fold_accuracy")} ({100 * s["std_fold_accuracy"]:.1f}) | '
                     f'{pm(s, "pooled_accuracy")} | {pm(s, "unweighted_average_recall")} | {c["train_s"]:.0f} |')
    lines += [f'| published: {name} | | | {fig} | | | |' for name, fig in r['published'].items()]
    lines += ['', 'With several seeds, ± is the standard deviation of the figure over seeds (each seed: all '
              'folds); the figure in brackets is the standard deviation over folds (speakers).']
    lines += ['', '| model | seed | fold | test speaker | val speaker | train utterances (with gain copies) '
              '| test utterances | accuracy | best epoch | train s |', '|---|---|---|---|---|---|---|---|---|---|']
    for run in r['runs']:
        lines.append(f'| {run["variant"]} | {run["seed"]} | {run["fold"]} | {run["test_speaker"]} | '
                     f'{run["val_speakers"]} | {run["n_train"]} | {run["n_test"]} | {100 * run["accuracy"]:.1f} % | '
                     f'{run["best_epoch"]} | {run["train_s"]} |')
    names = r['label_names']
    s = r['summary'][r['shipped']]
    lines += ['', f'Confusion of the {r["shipped"]} (rows true, columns predicted), all folds, summed over '
              f'{len(s["seeds"])} seed(s):', '',
              '| | ' + ' | '.join(names) + ' | recall |', '|---' * (len(names) + 2) + '|']
    for name, row in zip(names, s['confusion']):
        lines.append(f'| {name} | ' + ' | '.join(str(v) for v in row)
                     + f' | {100 * s["per_class_recall"][name]:.0f} % |')
    m = r['machine']
    lines += ['', f'Wall time {r["wall_time_s"]:.0f} s ({r["jobs"]} parallel process(es), 1 torch thread each) on '
              f'{m.get("cpu_model", m["processor"])} x{m["cpu_count"]}, torch {m["torch"]}, {m["platform"]}, '
              f'{r["date"]}; the machine was shared with other jobs. The published figures use the full corpus '
              '(10 speakers, 535 utterances of natural length); this copy has 8 speakers and 408 utterances.', '',
              f'Command: `{r["command"]}`', '']
    return '\n'.join(lines)


if __name__ == '__main__':
    sys.exit(main())
