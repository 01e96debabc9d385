"""
MSRC-12 leave-persons-out gesture accuracy of the shipped gesture preset's model.

The preset ``config/experiments/msrc12_loso.yaml`` (the shipped ``msrc12_gesture`` preset
plus folds and variants) declares the runs: the 12 persons of the shared copy in 4 folds of
3 (p01-p03, p04-p06, p07-p09, p10-p12), each tested once, the 2 persons after it
(cyclically) picking the epoch, the other 7 training; three variants, each over the 4 folds:

* ``all13``: 12 gestures + "none", the shipped task; accuracy over all windows, over the
  gesture instances only (a "none" answer counts as wrong), and the recall of "none";
* ``all12``: the 12 gestures, no "none" class (instance classification);
* ``iconic6``: the 6 iconic gestures G2, G4, G6, G8, G10, G12 (instance classification),
  the setting of the published 78-91 % (Lehrmann et al. 2014).

The runs go through ``centralnet compare``'s sweep (:mod:`centralnet_ros.training.sweep`:
local pool or Ray, ``--resume``, ``runs.json`` rewritten atomically after every run) into
``--runs``; :func:`render` turns that ``runs.json`` into ``benchmarks/results/msrc12.md`` and
``msrc12.json`` (``--render-only`` re-renders without training).

    python benchmarks/msrc12_benchmark.py [--jobs 2] [--variants all13 iconic6] [--folds 0] [--set train.epochs=10]
"""
from __future__ import annotations

import argparse
from pathlib import Path
import sys

from centralnet_ros.training.experiment import load_experiment
from centralnet_ros.training.sweep import add_arguments as sweep_arguments
from centralnet_ros.training.sweep import add_plan_arguments as sweep_plan_arguments
import numpy as np

PRESET = 'msrc12_loso'
FOLDS = len(load_experiment(PRESET).folds.values)      # the preset's; sibling scripts (msrc12_2d) share them
PUBLISHED = ('Lehrmann et al. 2014 (CVPR), 6 iconic gestures, leave-persons-out whole-instance classification, '
             'all 30 persons', '78-91 %')


def run(cfg, data, spec) -> dict:
    """Train one (variant, fold, seed) and score its test persons' windows (a sweep's ``run``)."""
    from centralnet_ros.fusion import build_model
    from centralnet_ros.torch_utils import seed_everything
    from centralnet_ros.training.trainer import train

    seed_everything(spec.seed)                 # the initial weights depend on the seed only
    model = build_model(cfg.fusion_config(spec.method))
    result = train(model, data.train, data.val, cfg.train, seed=spec.seed, test_split=data.test)
    pred = result.test_logits.argmax(1)
    y = data.test.labels
    out = {'setting': spec.variant, 'test_persons': data.info['test_persons'],
           'val_persons': data.info['val_persons'], 'n_train': len(data.train), 'n_test': len(y),
           'accuracy': float(np.mean(pred == y)), 'best_epoch': result.best_epoch,
           'train_s': round(result.wall_time_s, 1), 'labels': y.tolist(), 'predictions': pred.tolist(),
           'label_names': data.label_names}
    if cfg.dataset_options.get('include_none', True):
        none = len(data.label_names) - 1
        gesture = y != none
        out['gesture_accuracy'] = float(np.mean(pred[gesture] == y[gesture]))
        out['gesture_accuracy_12way'] = float(np.mean(result.test_logits[gesture, :none].argmax(1) == y[gesture]))
        out['none_recall'] = float(np.mean(pred[~gesture] == none)) if (~gesture).any() else float('nan')
    return out


def result(runs_json: dict) -> dict:
    """Turn a sweep's ``runs.json`` into the result file's payload: summary per setting, runs without predictions."""
    from centralnet_ros.config import from_dict
    from centralnet_ros.training.experiment import ExperimentConfig
    cfg = from_dict(ExperimentConfig, runs_json['experiment'])
    runs = runs_json['runs']
    summary = {}
    for setting in dict.fromkeys(r['setting'] for r in runs):
        rs = [r for r in runs if r['setting'] == setting]
        y = np.concatenate([r['labels'] for r in rs])
        p = np.concatenate([r['predictions'] for r in rs])
        acc = np.asarray([r['accuracy'] for r in rs])
        entry = {'folds': len(rs), 'windows': int(len(y)), 'mean_fold_accuracy': float(acc.mean()),
                 'std_fold_accuracy': float(acc.std(ddof=1)) if len(rs) > 1 else 0.0,
                 'pooled_accuracy': float(np.mean(y == p)), 'train_s': float(sum(r['train_s'] for r in rs)),
                 'classes': len(rs[0]['label_names'])}
        if 'gesture_accuracy' in rs[0]:
            for key in ('gesture_accuracy', 'gesture_accuracy_12way', 'none_recall'):
                entry[f'mean_{key}'] = float(np.mean([r[key] for r in rs]))
        summary[setting] = entry
    enc = next(iter(cfg.modalities.values()))
    info = runs_json.get('data', {})
    return {'benchmark': 'MSRC-12 leave-persons-out', 'preset': cfg.name, 'method': cfg.bundle.method,
            'encoder': {'kind': enc.kind, 'input_shape': enc.input_shape, 'widths': enc.widths},
            'folds': {'scheme': cfg.folds.scheme, 'count': len(cfg.folds.values)},
            'dataset_options': {k: v for k, v in cfg.dataset_options.items()
                                if k not in ('test_persons', 'val_persons', 'n_val_persons')},
            'train': {'epochs': cfg.train.epochs, 'batch_size': cfg.train.batch_size, 'lr': cfg.train.lr,
                      'optimizer': cfg.train.optimizer, 'schedule': cfg.train.schedule, 'select': cfg.train.select},
            'overrides': info.get('overrides', {}), 'summary': summary,
            'runs': [{k: v for k, v in r.items() if k not in ('labels', 'predictions', 'label_names')}
                     for r in runs],
            'published': {PUBLISHED[0]: PUBLISHED[1]}, 'train_s_all_runs': round(sum(r['train_s'] for r in runs), 1),
            'jobs': info.get('jobs', 1), 'machine': runs_json['machine']}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    sweep_plan_arguments(parser, preset=PRESET)
    parser.add_argument('--settings', dest='variants', nargs='*', help='the same as --variants (its old name)')
    parser.add_argument('--out', default=str(Path(__file__).resolve().parent / 'results'))
    sweep_arguments(parser, runs='runs/msrc12_benchmark')
    args = parser.parse_args(argv)

    from centralnet_ros import paths
    from centralnet_ros.machine import command_line, write_results
    from centralnet_ros.training import sweep

    cfg, plan, overrides = sweep.plan_from_args(args)
    runs = sweep.sweep_from_args(args, cfg, plan, run=run, data_root=paths.data_root(), metric='accuracy',
                                 command=command_line(argv, program='python benchmarks/msrc12_benchmark.py'),
                                 info={'overrides': overrides})
    md = write_results(args.out, 'msrc12', result(runs), render, command=runs['command'])
    print(md)
    return 0 if not runs['failed'] else 1


def _pct(x: float) -> str:
    return f'{100 * x:.1f} %'


def render(r: dict) -> str:
    s, o = r['summary'], r['dataset_options']
    n_folds = r['folds']['count']
    seeds = sorted({run['seed'] for run in r['runs']})
    lines = [
        '# MSRC-12: leave-persons-out gesture classification', '',
        f'Preset `{r["preset"]}`: {r["encoder"]["kind"]} over {r["encoder"]["input_shape"]} (positions centred on '
        f'the hip centre and scaled by torso length, plus velocities, 20 Kinect v1 joints, '
        f'{o.get("before_s")} s before to {o.get("after_s")} s after each action point at {o.get("frame_rate")} Hz), '
        f'widths {r["encoder"]["widths"]}, {r["train"]["epochs"]} epochs {r["train"]["optimizer"]} '
        f'lr {r["train"]["lr"]} {r["train"]["schedule"]}; training windows also at action-point offsets '
        f'{o.get("train_offsets_s")} s'
        + (f', performed at speeds {o["train_speeds"]}' if o.get('train_speeds') else '')
        + (f', turned by {o["train_yaw_deg"]} deg' if o.get('train_yaw_deg') else '') + '. "None" windows '
        f'>= {o.get("none_min_distance_s", 2.5)} s from every action point, every {o.get("none_stride_s", 1.0)} s. '
        f'Persons p01-p12 (the shared copy) in {n_folds} folds of 3; the 2 persons after the test fold validate '
        + ('(the last epoch is kept)' if r['train'].get('select') == 'last' else 'and pick the epoch')
        + f', 7 train. Seed(s) {", ".join(map(str, seeds))}, one run per fold and seed.', '',
        '| setting | classes | windows tested | accuracy (mean over folds ± sd) | pooled | training s |',
        '|---|---|---|---|---|---|',
    ]
    label = {'all13': '12 gestures + none', 'all12': '12 gestures (no none class)',
             'iconic6': '6 iconic gestures (G2 G4 G6 G8 G10 G12)'}
    for key, e in s.items():
        lines.append(f'| {label[key]} | {e["classes"]} | {e["windows"]} | {_pct(e["mean_fold_accuracy"])} '
                     f'± {100 * e["std_fold_accuracy"]:.1f} | {_pct(e["pooled_accuracy"])} | {e["train_s"]:.0f} |')
    lines.append(f'| published: {PUBLISHED[0]} | 6 | | {PUBLISHED[1]} | | |')
    if 'all13' in s:
        e = s['all13']
        lines += ['', f'12 gestures + none model, gesture instances only: {_pct(e["mean_gesture_accuracy"])} '
                  f'(a "none" answer counts as wrong), {_pct(e["mean_gesture_accuracy_12way"])} taking the best of '
                  f'the 12 gesture outputs; "none" windows recognised as none: {_pct(e["mean_none_recall"])}.']
    lines += ['', '| setting | fold | seed | test persons | val persons | train windows | test windows | accuracy | '
              'best epoch | train s |', '|---|---|---|---|---|---|---|---|---|---|']
    for run in r['runs']:
        lines.append(f'| {run["setting"]} | {run["fold"]} | {run["seed"]} | {run["test_persons"]} | '
                     f'{run["val_persons"]} | '
                     f'{run["n_train"]} | {run["n_test"]} | {_pct(run["accuracy"])} | {run["best_epoch"]} | '
                     f'{run["train_s"]} |')
    m = r['machine']
    lines += ['', f'Training {r["train_s_all_runs"]:.0f} s summed over {len(r["runs"])} runs ({r["jobs"]} parallel '
              'process(es), 1 torch thread each) on '
              f'{m.get("cpu_model", m["processor"])} x{m["cpu_count"]}, torch {m["torch"]}, {m["platform"]}, '
              f'{r["date"]}.', '',
              'Not the same protocol as the published figure: Lehrmann et al. classify whole recorded instances '
              'of all 30 persons; here fixed 2 s windows around the action points of the 12 persons in the '
              'shared copy are classified.', '', f'Command: `{r["command"]}`', '']
    return '\n'.join(lines)


if __name__ == '__main__':
    sys.exit(main())
