"""
MSRC-12 gestures from 2-D keypoints (ROS4HRI Skeleton2D) seen by virtual robot cameras, leave-persons-out.

The preset ``config/experiments/msrc12_2d_loso.yaml`` (the shipped ``msrc12_gesture2d``
preset plus the folds of ``msrc12_loso``: persons p01-p12 in 4 blocks of 3; the 2 persons
after the test block pick the epoch and the "none" bias, 7 train) declares the runs.  Each
run trains one fold (12 gestures + "none"; training windows seen by random cameras over
the whole range) and tests the held-out persons once per camera condition of
:data:`centralnet_ros.features.skeleton2d.CAMERA_CONDITIONS` (one range narrowed: near,
far, low, high, frontal, oblique), with the same detector noise and drop-outs.

The runs go through the shared sweep (:mod:`centralnet_ros.training.sweep`: local pool or
Ray, ``--resume``, ``runs.json`` rewritten atomically after every run) into ``--runs``;
:func:`render` turns that ``runs.json`` into ``benchmarks/results/msrc12_2d.md`` and
``msrc12_2d.json`` (``--render-only`` re-renders without training).

    python benchmarks/msrc12_2d_benchmark.py [--jobs 2] [--folds 0 1] [--variants shipped] [--set train.epochs=10]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys

from centralnet_ros.training.sweep import add_arguments as sweep_arguments
from centralnet_ros.training.sweep import add_plan_arguments as sweep_plan_arguments
import numpy as np

PRESET = 'msrc12_2d_loso'
REFERENCE_3D = ('3-D Kinect joints, same folds and test windows ("none" >= 2.5 s from the action points; '
                'benchmarks/msrc12_benchmark.py of 2026-11-22): 87.6 % ± 6.9 on 12 gestures + none')


def run(cfg, data, spec) -> dict:
    """Train one fold, choose its "none" bias on the validation persons, test it per camera condition."""
    from centralnet_ros import paths
    from centralnet_ros.config import from_dict
    from centralnet_ros.data import msrc12
    from centralnet_ros.features.skeleton2d import CAMERA_CONDITIONS
    from centralnet_ros.fusion import build_model
    from centralnet_ros.torch_utils import seed_everything
    from centralnet_ros.training import gesture as G
    from centralnet_ros.training.trainer import ArraySplit, predict, train

    cfg.num_classes = len(data.label_names)
    seed_everything(spec.seed)
    model = build_model(cfg.fusion_config(spec.method))
    result = train(model, data.train, data.val, cfg.train, seed=spec.seed)
    none = len(data.label_names) - 1
    val_logits = predict(model, data.val)
    calibration = {'val_accuracy': float(np.mean(val_logits.argmax(1) == data.val.labels)), 'bias': 0.0}
    if data.info.get('calibrate_bias_class') is not None:     # the "none" bias best on the validation persons
        calibration['bias'], calibration['val_accuracy_calibrated'] = G.choose_class_bias(
            val_logits, data.val.labels, none)
        calibration['grid'] = [float(G.BIAS_GRID[0]), float(G.BIAS_GRID[-1]), float(G.BIAS_GRID[1] - G.BIAS_GRID[0])]
    # the same test persons through each camera condition
    opts = from_dict(G.MSRC12Options, dict(cfg.dataset_options), _where='dataset_options')
    sequences = msrc12.load_sequences(paths.data_root() / opts.folder, persons=opts.persons, cache=opts.cache)
    _, _, test_p = G.msrc12_person_split(sorted({s.info.person for s in sequences}), opts)
    label_names, remap, gestures = G.msrc12_labels(opts)
    test_sequences = [s for s in sequences if s.info.gesture in gestures and s.info.person in test_p]
    joints, labels, _ = G.msrc12_windows(test_sequences, test_p, [0.0], opts, remap)
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
    recordings = recording_errors(model, test_sequences, opts, remap, none, calibration['bias'], label_names)
    return {'test_persons': data.info['test_persons'], 'val_persons': data.info['val_persons'],
            'recordings': recordings,
            'n_train': len(data.train), 'n_train_none': int(np.sum(data.train.labels == none)),
            'calibration': calibration, 'best_epoch': result.best_epoch, 'train_s': round(result.wall_time_s, 1),
            'accuracy': conditions['all']['accuracy'] if 'all' in conditions else None,
            'conditions': conditions, 'projection': data.info['projection']}


def hands_up_episodes(joints: np.ndarray) -> int:
    """
    Count the times both hands rise above the shoulder centre in a recording ``(T, 20, 4)`` of Kinect joints.

    A plain look at what a person does with their arms, to set beside the number of tagged instances: in a
    recording of an arms-up gesture, many more episodes than instances mean untagged arm raises.
    """
    from centralnet_ros.features import skeleton as skel
    y = joints[:, :, 1]                                  # Kinect y points up
    up = np.minimum(y[:, skel.HAND_LEFT], y[:, skel.HAND_RIGHT]) > y[:, skel.SHOULDER_CENTER]
    return int(np.sum(np.diff(up.astype(np.int8)) == 1) + int(up[0]))


def recording_errors(model, sequences: list, opts, remap: np.ndarray, none: int, bias: float,
                     label_names: list[str]) -> list[dict]:
    """
    Score each test recording on its own (cameras over the whole range, the fold's "none" bias).

    Windows are cut per recording, as in the benchmark, with the recording's own camera draws (so the
    totals differ slightly from the "all" condition's).  Returns one record per recording with windows:
    its windows and wrong ones, its "none" windows and wrong ones, what those were called, its tagged
    instances and its hands-up episodes (:func:`hands_up_episodes`).
    """
    from collections import Counter

    from centralnet_ros.training import gesture as G
    from centralnet_ros.training.trainer import ArraySplit, predict
    out = []
    for k, seq in enumerate(sorted(sequences, key=lambda s: s.info.name)):
        joints, labels, _ = G.msrc12_windows([seq], [seq.info.person], [0.0], opts, remap)
        if not len(labels):
            continue
        x, y = G.msrc12_inputs(joints, labels, opts, split='test', seed=1000 + k)
        logits = predict(model, ArraySplit({'skeleton': x}, y))
        logits[:, none] += bias
        pred = logits.argmax(1)
        is_none = y == none
        called = Counter(label_names[c] for c in pred[is_none] if c != none)
        out.append({'name': seq.info.name, 'person': int(seq.info.person),
                    'gesture': label_names[int(remap[seq.info.gesture - 1])],   # a kept gesture: remap >= 0
                    'windows': int(len(y)), 'wrong': int(np.sum(pred != y)),
                    'none_windows': int(is_none.sum()), 'none_wrong': int(np.sum(pred[is_none] != none)),
                    'none_called': dict(called.most_common(3)), 'instances': int(len(seq.action_times)),
                    'hands_up_episodes': hands_up_episodes(seq.joints)})
    return out


def result(runs_json: dict, variant: str | None = None) -> dict:
    """Turn a sweep's ``runs.json`` into the result file's payload (one variant: the first one run by default)."""
    from centralnet_ros.config import from_dict
    from centralnet_ros.training.experiment import ExperimentConfig
    cfg = from_dict(ExperimentConfig, runs_json['experiment'])
    variant = variant or next((r.get('variant') for r in runs_json['runs']), None)
    runs = [r for r in runs_json['runs'] if r.get('variant') == variant]
    if not runs:
        raise SystemExit(f'error: no finished run of variant {variant!r} in the sweep')
    first_seed = min(r.get('seed', 0) for r in runs)         # the body shows one seed; seed_summary all of them
    runs = sorted((r for r in runs if r.get('seed', 0) == first_seed), key=lambda r: r['fold'])
    vcfg = cfg.resolve(variant) if variant in cfg.variants else cfg
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
    enc = next(iter(vcfg.modalities.values()))
    info = runs_json.get('data', {})
    validation = {k: float(np.mean([r['calibration'].get(k, r['calibration']['val_accuracy']) for r in runs]))
                  for k in ('val_accuracy', 'val_accuracy_calibrated')}
    planned = list(range(len(cfg.folds.values))) if cfg.folds else []
    return {'benchmark': 'MSRC-12 from 2-D keypoints, leave-persons-out', 'preset': cfg.name, 'variant': variant,
            'folds_planned': planned,
            'variant_overrides': cfg.variants.get(variant, {}) if variant in cfg.variants else {},
            'validation': validation,
            'train_none': _train_none_text(vcfg.dataset_options, runs[0]['calibration'].get('grid')),
            'encoder': {'kind': enc.kind, 'input_shape': enc.input_shape, 'widths': enc.widths},
            'dataset_options': {k: v for k, v in vcfg.dataset_options.items()
                                if k not in ('test_persons', 'val_persons', 'n_val_persons')},
            'train': {'epochs': vcfg.train.epochs, 'batch_size': vcfg.train.batch_size, 'lr': vcfg.train.lr},
            'overrides': info.get('overrides', {}), 'summary': summary, 'runs': runs, 'reference_3d': REFERENCE_3D,
            'train_s_all_runs': round(sum(r['train_s'] for r in runs), 1), 'jobs': info.get('jobs', 1),
            **({'seeds': seed_summary(runs_json)} if len({r.get('seed', 0) for r in runs_json['runs']}) > 1 else {}),
            'machine': runs_json['machine']}


def seed_summary(runs_json: dict) -> dict:
    """
    Per variant and seed, the means over the folds: validation before / after the bias and the test "all" accuracy.

    What a retrain with another seed changes, so a difference between variants can be read against it.
    """
    out = {}
    for variant in dict.fromkeys(r.get('variant') for r in runs_json['runs']):
        rows = []
        runs = [r for r in runs_json['runs'] if r.get('variant') == variant]
        for seed in sorted({r.get('seed', 0) for r in runs}):
            rs = [r for r in runs if r.get('seed', 0) == seed]
            c = [r['calibration'] for r in rs]
            rows.append({'seed': seed, 'folds': sorted(r['fold'] for r in rs),
                         'val_accuracy': float(np.mean([x['val_accuracy'] for x in c])),
                         'val_accuracy_calibrated': float(np.mean([x.get('val_accuracy_calibrated', x['val_accuracy'])
                                                                   for x in c])),
                         'test_accuracy': float(np.mean([r['conditions']['all']['accuracy'] for r in rs]))})
        out[variant] = rows
    return out


def _seed_lines(r: dict) -> list[str]:
    if not r.get('seeds'):
        return []
    planned = r.get('folds_planned') or []
    lines = ['', '## Seeds (every variant of the sweep)', '',
             'Means over the folds of each seed (a seed sets the initial weights, the batch order and the random '
             'cameras of training): what a retrain changes. Mean ± sd over the seeds that ran every fold.', '',
             '| variant | seed | validation before -> after the bias | test "all" |', '|---|---|---|---|']
    for variant, rows in r['seeds'].items():
        for x in rows:
            part = '' if not planned or x['folds'] == planned else f' (folds {", ".join(map(str, x["folds"]))})'
            lines.append(f'| {variant} | {x["seed"]}{part} | {_pct(x["val_accuracy"])} -> '
                         f'{_pct(x["val_accuracy_calibrated"])} | {_pct(x["test_accuracy"])} |')
        full = [x for x in rows if not planned or x['folds'] == planned]
        if len(full) > 1:
            def stat(key: str) -> str:
                v = np.asarray([x[key] for x in full])
                return f'{_pct(v.mean())} ± {100 * v.std(ddof=1):.1f}'
            lines.append(f'| {variant} | mean of {len(full)} | {stat("val_accuracy")} -> '
                         f'{stat("val_accuracy_calibrated")} | {stat("test_accuracy")} |')
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    sweep_plan_arguments(parser, preset=PRESET)
    parser.add_argument('--render', default=None, metavar='VARIANT', help='the variant the result files show '
                        '(default: the first one run)')
    parser.add_argument('--out', default=str(Path(__file__).resolve().parent / 'results'))
    parser.add_argument('--name', default='msrc12_2d', help='result files <out>/<name>.md and .json')
    parser.add_argument('--compare', nargs='*', default=[], metavar='JSON',
                        help='earlier result files of this benchmark (other variants) to compare with, by the '
                        'validation accuracy of the folds and the test accuracy')
    parser.add_argument('--no-decision-cost', action='store_true',
                        help="skip timing the variant's exported ONNX graph against the preset's (batch 1)")
    sweep_arguments(parser, runs='runs/msrc12_2d_benchmark')
    args = parser.parse_args(argv)

    from centralnet_ros import paths
    from centralnet_ros.machine import command_line, write_results
    from centralnet_ros.training import sweep

    cfg, plan, overrides = sweep.plan_from_args(args)
    runs = sweep.sweep_from_args(args, cfg, plan, run=run, data_root=paths.data_root(), metric='accuracy',
                                 command=command_line(argv, program='python benchmarks/msrc12_2d_benchmark.py'),
                                 info={'overrides': overrides})
    payload = result(runs, args.render)
    if not args.no_decision_cost:
        from centralnet_ros.training.experiment import load_experiment
        payload['decision_cost'] = decision_cost(cfg or load_experiment(args.preset), payload['variant'])
    folds = [r['fold'] for r in payload['runs']]
    payload['compare'] = [comparison(json.loads(Path(f).read_text()), f, folds) for f in args.compare]
    print(write_results(args.out, args.name, payload, render, command=runs['command']))
    return 0 if not runs['failed'] else 1


def decision_cost(cfg, variant: str | None, repeat: int = 2000) -> dict:
    """
    Time one decision's inference of the variant's model and of the preset's: median and p95 in ms.

    ONNX Runtime (1 thread) on the exported graph, batch 1, untrained weights (the cost depends on the
    architecture only).

    The two graphs run interleaved (a block of each in turn), so a change of load on a shared machine hits both.
    """
    import time

    from centralnet_ros.bundle.export import example_inputs, export_onnx_bytes, ort_session
    from centralnet_ros.fusion import build_model
    from centralnet_ros.torch_utils import seed_everything
    models = {'preset': cfg}
    if variant in cfg.variants:
        models[variant] = cfg.resolve(variant)
    sessions, feeds, params = {}, {}, {}
    for name, c in models.items():
        c.num_classes = c.num_classes or 13
        seed_everything(0)
        model = build_model(c.fusion_config(c.methods[0])).eval()
        params[name] = sum(p.numel() for p in model.parameters())
        sessions[name] = ort_session(export_onnx_bytes(model), threads=1)
        args = example_inputs(model, batch=1)
        wanted = {i.name for i in sessions[name].get_inputs()}
        feeds[name] = {k: np.random.default_rng(0).normal(size=a.shape).astype(np.float32)
                       for k, a in zip(list(model.modalities) + ['present'], args) if k in wanted}
    times: dict[str, list[float]] = {n: [] for n in sessions}
    for _ in range(repeat // 100):
        for name, session in sessions.items():
            for _ in range(100):
                t = time.perf_counter()
                session.run(['logits'], feeds[name])
                times[name].append(1e3 * (time.perf_counter() - t))
    return {name: {'kind': models[name].modalities[next(iter(models[name].modalities))].kind,
                   'parameters': params[name], 'median_ms': float(np.median(t)),
                   'p95_ms': float(np.percentile(t, 95)), 'runs': len(t)} for name, t in times.items()}


def comparison(r: dict, source: str, folds: list[int] | None = None) -> dict:
    """
    Summarise a result file for the comparison table: per fold validation (before / after the bias) and test.

    ``folds``: only these folds of ``r`` (those of the file it is compared with), so the means are over the same folds.
    """
    runs = sorted((x for x in r['runs'] if folds is None or x['fold'] in folds), key=lambda x: x['fold'])
    if folds is not None and [x['fold'] for x in runs] != sorted(folds):
        raise SystemExit(f'error: {source} lacks some of the folds {sorted(folds)} (it has '
                         f'{sorted(x["fold"] for x in r["runs"])})')
    return {'source': source, 'variant': r.get('variant') or 'shipped', 'date': r.get('date'),
            'folds': [x['fold'] for x in runs],
            'val_accuracy': [x['calibration']['val_accuracy'] for x in runs],
            'val_accuracy_calibrated': [x['calibration'].get('val_accuracy_calibrated',
                                                             x['calibration']['val_accuracy']) for x in runs],
            'test_accuracy': [x['conditions']['all']['accuracy'] for x in runs],
            'test_accuracy_uncalibrated': [x['conditions']['all']['accuracy_uncalibrated'] for x in runs]}


def _comparison_lines(r: dict) -> list[str]:
    rows = [comparison(r, 'this file')] + list(r.get('compare') or [])
    if len(rows) < 2:
        return []
    lines = ['', '## Compared with other variants (same folds)', '',
             'The choice between variants is made on the validation accuracy (mean over the folds, after the '
             '"none" bias, which is what the shipped bundle reaches); the test columns are reported, not used.', '',
             '| variant | result file (date) | validation before -> after the bias, per fold | validation mean '
             '(before -> after) | test "all" per fold | test mean (without the bias) |',
             '|---|---|---|---|---|---|']
    for c in rows:
        pairs = zip(c['val_accuracy'], c['val_accuracy_calibrated'])
        per = ', '.join(f'{100 * a:.1f} -> {100 * b:.1f}' for a, b in pairs)
        lines.append(f'| {c["variant"]} | {c["source"]} ({c.get("date") or r.get("date", "")}) | {per} | '
                     f'{_pct(np.mean(c["val_accuracy"]))} -> {_pct(np.mean(c["val_accuracy_calibrated"]))} | '
                     + ', '.join(_pct(x) for x in c['test_accuracy']) + f' | {_pct(np.mean(c["test_accuracy"]))} '
                     f'({_pct(np.mean(c["test_accuracy_uncalibrated"]))}) |')
    return lines


def _train_none_text(options: dict, grid: list[float] | None) -> str:
    """Say how the training "none" windows and the "none" bias (``grid``: low, high, step) differ from the test's."""
    parts = []
    if options.get('train_none_min_distance_s') is not None or options.get('train_none_stride_s') is not None:
        parts.append(f'Training "none" windows >= {options.get("train_none_min_distance_s", "")} s from every action '
                     f'point, every {options.get("train_none_stride_s", "")} s (validation and test keep the 3-D '
                     "benchmark's: >= 2.5 s, every 1 s).")
    if options.get('calibrate_none_bias'):
        grid = grid or [-3.0, 3.0, 0.25]                 # (runs made before the grid was recorded)
        parts.append(f'After training, the bias on the "none" logit ({grid[0]:g} to {grid[1]:g} in steps of '
                     f'{grid[2]:g}) with the best accuracy '
                     "on the fold's validation persons is added (never chosen on the test persons); the shipped "
                     'bundle carries it in its output layer.')
    return ' '.join(parts)


def _recording_lines(r: dict, top: int = 3) -> list[str]:
    """Say per fold where the wrong windows lie: the recordings with the most, and their "none" windows."""
    runs = [run for run in r['runs'] if run.get('recordings')]
    if not runs:
        return []
    lines = ['', '## Where the errors lie (per test recording)', '',
             'Each test recording scored on its own (its own camera draws, the fold\'s "none" bias), the '
             f'{top} recordings with the most wrong windows per fold. *Hands up*: the times both hands rose above '
             'the shoulder centre in the recording, beside its tagged instances (an arms-up gesture with many '
             'more episodes than instances holds untagged arm raises, which its "none" windows then contain).', '',
             "| fold | recording | person | gesture | windows (wrong) | share of the fold's wrong windows | "
             '"none" windows (wrong) | "none" windows called | instances | hands up |',
             '|---|---|---|---|---|---|---|---|---|---|']
    for run in runs:
        recs = run['recordings']
        total = sum(x['wrong'] for x in recs) or 1
        for x in sorted(recs, key=lambda x: -x['wrong'])[:top]:
            called = ', '.join(f'{k} {v}' for k, v in x['none_called'].items()) or '–'
            lines.append(f'| {run["fold"]} | {x["name"]} | p{x["person"]:02d} | {x["gesture"]} | {x["windows"]} '
                         f'({x["wrong"]}) | {100 * x["wrong"] / total:.0f} % | {x["none_windows"]} '
                         f'({x["none_wrong"]}) | {called} | {x["instances"]} | {x["hands_up_episodes"]} |')
        scored = sum(x['windows'] for x in recs)
        lines.append(f'| {run["fold"]} | all {len(recs)} recordings | | | {scored} ({total}) | 100 % | '
                     f'{sum(x["none_windows"] for x in recs)} ({sum(x["none_wrong"] for x in recs)}) | | '
                     f'{sum(x["instances"] for x in recs)} | |')
    return lines


def _variant_text(overrides: dict | None) -> str:
    if not overrides:
        return ' (the preset as it is)'
    return ' (' + ', '.join(f'{k}={v}' for k, v in overrides.items()) + ')'


def _partial_lines(r: dict) -> list[str]:
    """Warn when fewer folds finished than the preset plans (the means are over those folds only)."""
    done = sorted(run['fold'] for run in r['runs'])
    planned = r.get('folds_planned') or []
    if not planned or len(done) >= len(planned):
        return []
    return [f'**Partial: folds {", ".join(map(str, done))} of {len(planned)} finished**; every mean below is over '
            'those folds only (the comparison table too).', '']


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
             *_partial_lines(r),
             f'Variant `{r.get("variant")}`' + _variant_text(r.get('variant_overrides'))
             + ('. Validation accuracy, mean over the folds (what chooses between variants): '
                f'{_pct(r["validation"]["val_accuracy"])} before the "none" bias, '
                f'{_pct(r["validation"]["val_accuracy_calibrated"])} after it.' if 'validation' in r else '.'), '',
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
    lines += _seed_lines(r)
    lines += _recording_lines(r)
    lines += _comparison_lines(r)
    if r.get('decision_cost'):
        lines += ['', '## Decision cost (inference of one window, batch 1, ONNX Runtime, 1 thread)', '',
                  "The exported graph of each model (the runtime's CPU backend), timed interleaved on the same "
                  'machine as the training (shared, so the figures include what other processes took).', '',
                  '| model | encoder | parameters | median ms | p95 ms | runs |', '|---|---|---|---|---|---|']
        for name, c in r['decision_cost'].items():
            label = f'the preset ({r["preset"]})' if name == 'preset' else f'variant `{name}`'
            lines.append(f'| {label} | {c["kind"]} | {c["parameters"]:,} | {c["median_ms"]:.3f} | '
                         f'{c["p95_ms"]:.3f} | {c["runs"]} |')
    m = r['machine']
    lines += ['', f'Training {r["train_s_all_runs"]:.0f} s summed over {len(r["runs"])} runs ({r["jobs"]} parallel '
              f'process(es), 1 torch thread each) on {m.get("cpu_model", m["processor"])} x{m["cpu_count"]}, '
              f'torch {m["torch"]}, {r["date"]}.', '', f'Command: `{r["command"]}`', '']
    return '\n'.join(lines)


if __name__ == '__main__':
    sys.exit(main())
