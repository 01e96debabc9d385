"""
MSRC-12 leave-persons-out gesture accuracy of the shipped gesture preset's model.

The 12 persons of the shared copy are cut into 4 folds of 3 (p01-p03, p04-p06, p07-p09,
p10-p12); each fold is tested once, the 2 persons after it (cyclically) pick the epoch,
the other 7 train.  Three settings, each over the 4 folds, with the encoder and training
settings of ``config/experiments/msrc12_gesture.yaml``:

* ``all13``: 12 gestures + "none" (windows >= 2.5 s from every action point), the
  shipped task; accuracy over all windows, over the gesture instances only (a "none"
  answer counts as wrong), and the recall of "none";
* ``all12``: the 12 gestures, no "none" class (instance classification);
* ``iconic6``: the 6 iconic gestures G2, G4, G6, G8, G10, G12 (instance classification),
  the setting of the published 78-91 % (Lehrmann et al. 2014).

Prints and writes ``benchmarks/results/msrc12.md`` and ``msrc12.json``.

    python benchmarks/msrc12_benchmark.py [--jobs 2] [--settings all13 iconic6] [--set train.epochs=10]
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

SETTINGS = {
    'all13': {'classes': 'all', 'include_none': True},
    'all12': {'classes': 'all', 'include_none': False},
    'iconic6': {'classes': 'iconic', 'include_none': False},
}
FOLDS = 4
PUBLISHED = ('Lehrmann et al. 2014 (CVPR), 6 iconic gestures, leave-persons-out whole-instance classification, '
             'all 30 persons', '78-91 %')


def run_fold(preset: str, overrides: dict, setting: str, fold: int, seed: int) -> dict:
    import torch
    torch.set_num_threads(1)
    from centralnet_ros import paths
    from centralnet_ros.fusion import build_model
    from centralnet_ros.torch_utils import seed_everything
    from centralnet_ros.training.experiment import load_experiment
    from centralnet_ros.training.gesture import load_msrc12
    from centralnet_ros.training.trainer import train

    options = {'folds': FOLDS, 'fold': fold, 'n_val_persons': 2, **SETTINGS[setting]}
    cfg = load_experiment(preset, overrides={**overrides, 'train.progress': False, 'train.num_threads': 1})
    base = {k: v for k, v in cfg.dataset_options.items() if k not in ('test_persons', 'val_persons')}
    t0 = time.perf_counter()
    data = load_msrc12({**base, **options}, paths.data_root())
    load_s = time.perf_counter() - t0
    cfg.num_classes = len(data.label_names)
    seed_everything(seed)                      # the initial weights depend on the seed only
    model = build_model(cfg.fusion_config(cfg.bundle.method))
    result = train(model, data.train, data.val, cfg.train, seed=seed, test_split=data.test)
    pred = result.test_logits.argmax(1)
    y = data.test.labels
    out = {'setting': setting, 'fold': fold, 'test_persons': data.info['test_persons'],
           'val_persons': data.info['val_persons'], 'n_train': len(data.train), 'n_test': len(y),
           'accuracy': float(np.mean(pred == y)), 'best_epoch': result.best_epoch,
           'train_s': round(result.wall_time_s, 1), 'load_s': round(load_s, 1),
           'labels': y.tolist(), 'predictions': pred.tolist(), 'label_names': data.label_names}
    if SETTINGS[setting]['include_none']:
        none = len(data.label_names) - 1
        gesture = y != none
        out['gesture_accuracy'] = float(np.mean(pred[gesture] == y[gesture]))
        out['gesture_accuracy_12way'] = float(np.mean(result.test_logits[gesture, :none].argmax(1) == y[gesture]))
        out['none_recall'] = float(np.mean(pred[~gesture] == none)) if (~gesture).any() else float('nan')
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--preset', default='msrc12_gesture')
    parser.add_argument('--settings', nargs='*', default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument('--folds', type=int, nargs='*', default=None, help=f'fold indices (default: all {FOLDS})')
    parser.add_argument('--jobs', type=int, default=2, help='trainings in parallel (1 torch thread each)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--set', dest='overrides', action='append', default=[], metavar='KEY=VALUE')
    parser.add_argument('--out', default=str(Path(__file__).resolve().parent / 'results'))
    args = parser.parse_args(argv)

    import torch
    torch.set_num_threads(1)
    from centralnet_ros.config import atomic_write_text
    from centralnet_ros.machine import command_line, machine_description
    from centralnet_ros.training.experiment import load_experiment, parse_overrides

    overrides = parse_overrides(args.overrides)
    cfg = load_experiment(args.preset, overrides=overrides)
    folds = args.folds if args.folds else list(range(FOLDS))
    jobs = [(s, f) for s in args.settings for f in folds]
    command = command_line(argv, program='python benchmarks/msrc12_benchmark.py')
    start = time.perf_counter()
    if args.jobs > 1:
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=multiprocessing.get_context('spawn')) as pool:
            runs = list(pool.map(run_fold, [args.preset] * len(jobs), [overrides] * len(jobs),
                                 [s for s, _ in jobs], [f for _, f in jobs], [args.seed] * len(jobs)))
    else:
        runs = [run_fold(args.preset, overrides, s, f, args.seed) for s, f in jobs]
    wall = time.perf_counter() - start

    summary = {}
    for setting in args.settings:
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
    result = {'benchmark': 'MSRC-12 leave-persons-out', 'preset': cfg.name, 'method': cfg.bundle.method,
              'encoder': {'kind': enc.kind, 'input_shape': enc.input_shape, 'widths': enc.widths},
              'dataset_options': {k: v for k, v in cfg.dataset_options.items()
                                  if k not in ('test_persons', 'val_persons', 'n_val_persons')},
              'train': {'epochs': cfg.train.epochs, 'batch_size': cfg.train.batch_size, 'lr': cfg.train.lr,
                        'optimizer': cfg.train.optimizer, 'schedule': cfg.train.schedule},
              'overrides': overrides, 'summary': summary,
              'runs': [{k: v for k, v in r.items() if k not in ('labels', 'predictions', 'label_names')}
                       for r in runs],
              'published': {PUBLISHED[0]: PUBLISHED[1]}, 'wall_time_s': round(wall, 1), 'jobs': args.jobs,
              'machine': machine_description(), 'command': command, 'date': time.strftime('%Y-%m-%d')}
    md = render(result)
    out = Path(args.out)
    atomic_write_text(out / 'msrc12.json', json.dumps(result, indent=2) + '\n')
    atomic_write_text(out / 'msrc12.md', md)
    print(md)
    return 0


def _pct(x: float) -> str:
    return f'{100 * x:.1f} %'


def render(r: dict) -> str:
    s, o = r['summary'], r['dataset_options']
    lines = [
        '# MSRC-12: leave-persons-out gesture classification', '',
        f'Preset `{r["preset"]}`: {r["encoder"]["kind"]} over {r["encoder"]["input_shape"]} (positions centred on '
        f'the hip centre and scaled by torso length, plus velocities, 20 Kinect v1 joints, '
        f'{o.get("before_s")} s before to {o.get("after_s")} s after each action point at {o.get("frame_rate")} Hz), '
        f'widths {r["encoder"]["widths"]}, {r["train"]["epochs"]} epochs {r["train"]["optimizer"]} '
        f'lr {r["train"]["lr"]} {r["train"]["schedule"]}; training windows also at action-point offsets '
        f'{o.get("train_offsets_s")} s. Persons p01-p12 (the shared copy) in {FOLDS} folds of 3; the 2 persons '
        'after the test fold pick the epoch, 7 train. Seed 0, one run per fold.', '',
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
    lines += ['', '| setting | fold | test persons | val persons | train windows | test windows | accuracy | '
              'best epoch | train s |', '|---|---|---|---|---|---|---|---|---|']
    for run in r['runs']:
        lines.append(f'| {run["setting"]} | {run["fold"]} | {run["test_persons"]} | {run["val_persons"]} | '
                     f'{run["n_train"]} | {run["n_test"]} | {_pct(run["accuracy"])} | {run["best_epoch"]} | '
                     f'{run["train_s"]} |')
    m = r['machine']
    lines += ['', f'Wall time {r["wall_time_s"]:.0f} s ({r["jobs"]} parallel process(es), 1 torch thread each) on '
              f'{m.get("cpu_model", m["processor"])} x{m["cpu_count"]}, torch {m["torch"]}, {m["platform"]}, '
              f'{r["date"]}.', '',
              'Not the same protocol as the published figure: Lehrmann et al. classify whole recorded instances '
              'of all 30 persons; here fixed 2 s windows around the action points of the 12 persons in the '
              'shared copy are classified.', '', f'Command: `{r["command"]}`', '']
    return '\n'.join(lines)


if __name__ == '__main__':
    sys.exit(main())
