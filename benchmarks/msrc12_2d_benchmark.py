"""
MSRC-12 gestures from 2-D keypoints (ROS4HRI Skeleton2D) seen by virtual robot cameras, leave-persons-out.

Same folds as ``benchmarks/msrc12_benchmark.py`` (persons p01-p12 in 4 blocks of 3; the
2 persons after the test block pick the epoch, 7 train).  Each fold trains the preset
``msrc12_gesture2d`` (12 gestures + "none"; training windows seen by random cameras over
the whole range) and tests the held-out persons once per camera condition of
:data:`centralnet_ros.features.skeleton2d.CAMERA_CONDITIONS` (one range narrowed: near,
far, low, high, frontal, oblique), with the same detector noise and drop-outs.

Writes ``benchmarks/results/msrc12_2d.md`` and ``msrc12_2d.json``.

    python benchmarks/msrc12_2d_benchmark.py [--jobs 2] [--folds 0 1] [--set train.epochs=10]
"""
from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor
import multiprocessing
from pathlib import Path
import sys
import time

from msrc12_benchmark import FOLDS        # the 3-D benchmark's folds (a sibling script, as bench_runtime does)
import numpy as np

REFERENCE_3D = 'benchmarks/results/msrc12.md (3-D Kinect joints, same folds): 87.6 % ± 6.9 on 12 gestures + none'


def run_fold(preset: str, overrides: dict, fold: int, seed: int) -> dict:
    import torch
    torch.set_num_threads(1)
    from centralnet_ros import paths
    from centralnet_ros.config import from_dict
    from centralnet_ros.data import msrc12
    from centralnet_ros.features.skeleton2d import CAMERA_CONDITIONS
    from centralnet_ros.fusion import build_model
    from centralnet_ros.torch_utils import seed_everything
    from centralnet_ros.training import gesture as G
    from centralnet_ros.training.experiment import load_experiment
    from centralnet_ros.training.trainer import ArraySplit, predict, train

    cfg = load_experiment(preset, overrides={**overrides, 'train.progress': False, 'train.num_threads': 1})
    options = {**{k: v for k, v in cfg.dataset_options.items() if k not in ('test_persons', 'val_persons')},
               'folds': FOLDS, 'fold': fold, 'n_val_persons': 2}
    t0 = time.perf_counter()
    data = G.load_msrc12(options, paths.data_root())
    load_s = time.perf_counter() - t0
    cfg.num_classes = len(data.label_names)
    seed_everything(seed)
    model = build_model(cfg.fusion_config(cfg.bundle.method))
    result = train(model, data.train, data.val, cfg.train, seed=seed)
    none = len(data.label_names) - 1
    val_logits = predict(model, data.val)
    calibration = {'val_accuracy': float(np.mean(val_logits.argmax(1) == data.val.labels)), 'bias': 0.0}
    if data.info.get('calibrate_bias_class') is not None:     # the "none" bias best on the validation persons
        calibration['bias'], calibration['val_accuracy_calibrated'] = G.choose_class_bias(
            val_logits, data.val.labels, none)
    # the same test persons through each camera condition
    opts = from_dict(G.MSRC12Options, options, _where='dataset_options')
    sequences = msrc12.load_sequences(paths.data_root() / opts.folder, persons=opts.persons, cache=opts.cache)
    _, _, test_p = G.msrc12_person_split(sorted({s.info.person for s in sequences}), opts)
    label_names, remap, gestures = G.msrc12_labels(opts)
    joints, labels, _ = G.msrc12_windows([s for s in sequences if s.info.gesture in gestures], test_p, [0.0],
                                         opts, remap)
    conditions = {}
    for k, (name, ranges) in enumerate(CAMERA_CONDITIONS.items()):
        x, y = G.msrc12_inputs(joints, labels, opts, split='test', cameras=ranges, seed=100 + k)
        logits = predict(model, ArraySplit({'skeleton': x}, y))
        uncalibrated = float(np.mean(logits.argmax(1) == y))
        logits[:, none] += calibration['bias']
        pred = logits.argmax(1)
        gesture = y != none
        conditions[name] = {'accuracy': float(np.mean(pred == y)), 'accuracy_uncalibrated': uncalibrated,
                            'windows': int(len(y)),
                            'windows_out_of_view': int(len(labels) - len(y)),
                            'gesture_accuracy': float(np.mean(pred[gesture] == y[gesture])),
                            'none_recall': float(np.mean(pred[~gesture] == none)) if (~gesture).any() else None}
    return {'fold': fold, 'test_persons': data.info['test_persons'], 'val_persons': data.info['val_persons'],
            'n_train': len(data.train), 'n_train_none': int(np.sum(data.train.labels == none)),
            'calibration': calibration, 'best_epoch': result.best_epoch, 'train_s': round(result.wall_time_s, 1),
            'load_s': round(load_s, 1), 'conditions': conditions, 'projection': data.info['projection']}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--preset', default='msrc12_gesture2d')
    parser.add_argument('--folds', type=int, nargs='*', default=None, help=f'fold indices (default: all {FOLDS})')
    parser.add_argument('--jobs', type=int, default=2, help='trainings in parallel (1 torch thread each)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--set', dest='overrides', action='append', default=[], metavar='KEY=VALUE')
    parser.add_argument('--out', default=str(Path(__file__).resolve().parent / 'results'))
    args = parser.parse_args(argv)

    from centralnet_ros.machine import command_line, machine_description, write_results
    from centralnet_ros.training.experiment import load_experiment, parse_overrides

    overrides = parse_overrides(args.overrides)
    cfg = load_experiment(args.preset, overrides=overrides)
    folds = args.folds if args.folds else list(range(FOLDS))
    command = command_line(argv, program='python benchmarks/msrc12_2d_benchmark.py')
    start = time.perf_counter()
    if args.jobs > 1:
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=multiprocessing.get_context('spawn')) as pool:
            runs = list(pool.map(run_fold, [args.preset] * len(folds), [overrides] * len(folds), folds,
                                 [args.seed] * len(folds)))
    else:
        runs = [run_fold(args.preset, overrides, f, args.seed) for f in folds]
    wall = time.perf_counter() - start
    summary = {}
    for name in runs[0]['conditions']:
        acc = np.asarray([r['conditions'][name]['accuracy'] for r in runs])
        summary[name] = {'mean_fold_accuracy': float(acc.mean()),
                         'std_fold_accuracy': float(acc.std(ddof=1)) if len(runs) > 1 else 0.0,
                         'mean_gesture_accuracy': float(np.mean([r['conditions'][name]['gesture_accuracy']
                                                                 for r in runs])),
                         'mean_none_recall': float(np.mean([r['conditions'][name]['none_recall'] for r in runs])),
                         'mean_fold_accuracy_uncalibrated': float(np.mean([
                             r['conditions'][name]['accuracy_uncalibrated'] for r in runs])),
                         'windows': int(sum(r['conditions'][name]['windows'] for r in runs)),
                         'out_of_view': int(sum(r['conditions'][name]['windows_out_of_view'] for r in runs))}
    enc = next(iter(cfg.modalities.values()))
    result = {'benchmark': 'MSRC-12 from 2-D keypoints, leave-persons-out', 'preset': cfg.name,
              'train_none': _train_none_text(cfg.dataset_options),
              'encoder': {'kind': enc.kind, 'input_shape': enc.input_shape, 'widths': enc.widths},
              'dataset_options': {k: v for k, v in cfg.dataset_options.items()
                                  if k not in ('test_persons', 'val_persons', 'n_val_persons')},
              'train': {'epochs': cfg.train.epochs, 'batch_size': cfg.train.batch_size, 'lr': cfg.train.lr},
              'overrides': overrides, 'summary': summary, 'runs': runs, 'reference_3d': REFERENCE_3D,
              'wall_time_s': round(wall, 1), 'jobs': args.jobs, 'machine': machine_description(),
              'command': command, 'date': time.strftime('%Y-%m-%d')}
    print(write_results(args.out, 'msrc12_2d', result, render, command=command))
    return 0


def _train_none_text(options: dict) -> str:
    """Say how the training "none" windows and the "none" bias differ from the test's (empty when they do not)."""
    parts = []
    if options.get('train_none_min_distance_s') is not None or options.get('train_none_stride_s') is not None:
        parts.append(f'Training "none" windows >= {options.get("train_none_min_distance_s", "")} s from every action '
                     f'point, every {options.get("train_none_stride_s", "")} s (validation and test keep the 3-D '
                     "benchmark's: >= 2.5 s, every 1 s).")
    if options.get('calibrate_none_bias'):
        parts.append('After training, the bias on the "none" logit (-3 to 3 in steps of 0.25) with the best accuracy '
                     "on the fold's validation persons is added (never chosen on the test persons); the shipped "
                     'bundle carries it in its output layer.')
    return ' '.join(parts)


def _pct(x: float | None) -> str:
    return '–' if x is None else f'{100 * x:.1f} %'


def render(r: dict) -> str:
    lines = ['# MSRC-12 gestures from 2-D keypoints (virtual robot cameras), leave-persons-out', '',
             f'Preset `{r["preset"]}`: {r["encoder"]["kind"]} over {r["encoder"]["input_shape"]} (18 Skeleton2D '
             'keypoints: positions centred on the mid-hip and divided by the torso length, velocities, '
             f'visibility), {r["train"]["epochs"]} epochs. {r["runs"][0]["projection"]}. Folds as '
             '`benchmarks/msrc12_benchmark.py` (4 blocks of 3 persons, 2 validation persons); 12 gestures + '
             '"none". Each fold trains once on random cameras over the whole range and is tested once per '
             'camera condition (one range narrowed; windows where the detector would see no neck, hip or '
             'shoulders are left out and counted).', '',
             r.get('train_none', ''), '',
             '| camera condition | accuracy (mean over folds ± sd) | without the "none" bias | gesture windows | '
             '"none" recall | windows | out of view |', '|---|---|---|---|---|---|---|']
    for name, e in r['summary'].items():
        lines.append(f'| {name} | {_pct(e["mean_fold_accuracy"])} ± {100 * e["std_fold_accuracy"]:.1f} | '
                     f'{_pct(e.get("mean_fold_accuracy_uncalibrated"))} | {_pct(e["mean_gesture_accuracy"])} | '
                     f'{_pct(e["mean_none_recall"])} | {e["windows"]} | '
                     f'{e["out_of_view"]} |')
    lines += ['', f'Reference: {r["reference_3d"]}.', '',
              '| fold | test persons | val persons | train windows ("none") | "none" bias (val accuracy before -> '
              'after) | best epoch | train s | ' + ' | '.join(r['summary']) + ' |',
              '|---|---|---|---|---|---|---|' + '---|' * len(r['summary'])]
    for run in r['runs']:
        c = run.get('calibration', {})
        bias = (f'{c["bias"]:+g} ({_pct(c["val_accuracy"])} -> {_pct(c["val_accuracy_calibrated"])})'
                if 'val_accuracy_calibrated' in c else 'none')
        lines.append(f'| {run["fold"]} | {run["test_persons"]} | {run["val_persons"]} | {run["n_train"]} '
                     f'({run.get("n_train_none", "?")}) | {bias} | '
                     f'{run["best_epoch"]} | {run["train_s"]} | ' +
                     ' | '.join(_pct(run['conditions'][n]['accuracy']) for n in r['summary']) + ' |')
    m = r['machine']
    lines += ['', f'Wall time {r["wall_time_s"]:.0f} s ({r["jobs"]} parallel process(es), 1 torch thread each) on '
              f'{m.get("cpu_model", m["processor"])} x{m["cpu_count"]}, torch {m["torch"]}, {r["date"]}.', '',
              f'Command: `{r["command"]}`', '']
    return '\n'.join(lines)


if __name__ == '__main__':
    sys.exit(main())
