"""
MSRC-12 gesture *events* on streamed recordings, leave persons out.

Per fold (the 4 folds of ``msrc12_benchmark.py``: 3 test persons, the 2 after them pick
the epoch and calibrate, 7 train) the shipped preset's 12 gestures + "none" model is
trained, then every recording of the validation and test persons is streamed as the
robot sees it (:func:`centralnet_ros.replay.calibration.msrc12_stream`: a decision
every 1 / rate s over the last 2 s of tracked frames, the runtime's ``skeleton_sequence``
pipeline). The event detector (:mod:`centralnet_ros.runtime.events`) is calibrated on
the validation persons' recordings for the false-alarm target and then run once on the
test persons' recordings.

Matching rule: an instance is ``[action point - 1.5 s, action point + 1.5 s)`` (cut at
the midpoint to a neighbouring action point; the figures with the tighter end ``+ 1.0 s``
are reported beside them); an event matches it when its peak falls
inside with the same label, one match per instance; an event outside every instance is
a false alarm, counted per minute of the time outside the instances (between action
points, and before the first / after the last). Latency: event emission minus the end
of its instance.

The posteriors of each fold are cached under ``$CENTRALNET_CACHE/gesture_events/`` so a
re-run with other calibration settings skips the training (``--retrain`` forces it).

    python benchmarks/gesture_events_benchmark.py [--jobs 2] [--rate 10] [--target-fa 0.5]
    python benchmarks/gesture_events_benchmark.py --bundle models/gesture --write-manifest

With ``--bundle`` no model is trained: the bundle's own validation persons (manifest
``evaluation.val_persons``) calibrate its event detector and its test persons measure it;
``--write-manifest`` stores the calibrated detector in the manifest's ``decision`` section.
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

FOLDS = 4
INSTANCE = {'before_s': 1.5, 'after_s': 1.5}
STRICT = {'before_s': 1.5, 'after_s': 1.0}          # reported beside it: a tighter end
STRICT_KEYS = ('f1', 'precision', 'recall', 'false_alarms_per_min', 'matched', 'false_alarms', 'non_target_s')


def person_of(stream) -> str:
    """Return the MSRC-12 person of a recording's stream (``P1_1_1_p11`` -> ``p11``): calibration groups."""
    return stream.name.rsplit('_', 1)[1]


def _cache_file(preset: str, fold: int, rate: float, tag: str) -> Path:
    from centralnet_ros import paths
    return paths.cache_dir() / 'gesture_events' / f'{preset}_{tag}_fold{fold}_rate{rate:g}.npz'


def run_fold(preset: str, overrides: dict, fold: int, seed: int, rate: float, tag: str, retrain: bool) -> dict:
    """Train fold ``fold`` (or reuse its cache) and stream its validation and test recordings."""
    import torch
    torch.set_num_threads(1)
    from centralnet_ros import paths
    from centralnet_ros.config import atomic_savez
    from centralnet_ros.data import msrc12
    from centralnet_ros.fusion import build_model
    from centralnet_ros.torch_utils import seed_everything
    from centralnet_ros.replay.calibration import msrc12_stream
    from centralnet_ros.training.experiment import load_experiment
    from centralnet_ros.training.gesture import load_msrc12, MSRC12Options, msrc12_person_split
    from centralnet_ros.training.trainer import train

    cache = _cache_file(preset, fold, rate, tag)
    cfg = load_experiment(preset, overrides={**overrides, 'train.progress': False, 'train.num_threads': 1})
    base = {k: v for k, v in cfg.dataset_options.items() if k not in ('test_persons', 'val_persons')}
    options = {**base, 'folds': FOLDS, 'fold': fold, 'n_val_persons': 2, 'classes': 'all', 'include_none': True}
    if cache.is_file() and not retrain:
        with np.load(cache, allow_pickle=False) as z:
            return {k: z[k] for k in z.files} | {'fold': fold, 'cached': True}
    t0 = time.perf_counter()
    data = load_msrc12(options, paths.data_root())
    cfg.num_classes = len(data.label_names)
    seed_everything(seed)
    model = build_model(cfg.fusion_config(cfg.bundle.method))
    result = train(model, data.train, data.val, cfg.train, seed=seed, test_split=data.test)
    train_s = time.perf_counter() - t0
    model.eval()
    opts = MSRC12Options(**{k: v for k, v in options.items() if k in MSRC12Options.__dataclass_fields__})
    seqs = msrc12.load_sequences(paths.data_root() / opts.folder)
    train_p, val_p, test_p = msrc12_person_split(sorted({s.info.person for s in seqs}), opts)
    spec = cfg.bundle.modalities['skeleton']
    names, split, times, probs, offsets = [], [], [], [], [0]
    t1 = time.perf_counter()
    for s in seqs:
        if s.info.person not in val_p + test_p:
            continue
        t, x = msrc12_stream(s, rate_hz=rate, window_s=float(spec['window_s']), params=dict(spec['preprocessing']))
        with torch.inference_mode():
            logits = model({'skeleton': torch.from_numpy(x)}, torch.ones(len(x), 1)).logits.numpy() if len(x) else \
                np.zeros((0, len(data.label_names)), np.float32)
        z = logits - logits.max(1, keepdims=True)
        p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
        names.append(s.info.name)
        split.append('val' if s.info.person in val_p else 'test')
        times.append(t)
        probs.append(p.astype(np.float32))
        offsets.append(offsets[-1] + len(t))
    stream_s = time.perf_counter() - t1
    out = {'names': np.asarray(names), 'split': np.asarray(split), 'times_ns': np.concatenate(times),
           'probs': np.concatenate(probs), 'offsets': np.asarray(offsets, np.int64),
           'labels': np.asarray(data.label_names), 'window_accuracy': np.float64(
               np.mean(result.test_logits.argmax(1) == data.test.labels)),
           'val_persons': np.asarray(val_p), 'test_persons': np.asarray(test_p),
           'train_s': np.float64(train_s), 'stream_s': np.float64(stream_s), 'best_epoch': np.int64(result.best_epoch)}
    atomic_savez(cache, **out)
    return out | {'fold': fold, 'cached': False}


def streams_of(run: dict, which: str, instance: dict | None = None):
    """Return the :class:`~centralnet_ros.replay.calibration.Stream` s of one split of a fold's run."""
    from centralnet_ros import paths
    from centralnet_ros.data import msrc12
    from centralnet_ros.replay.calibration import msrc12_instances, Stream
    seqs = {s.info.name: s for s in msrc12.load_sequences(paths.data_root() / 'msrc12')}
    labels = [str(x) for x in run['labels']]
    out = []
    for k, (name, split) in enumerate(zip(run['names'], run['split'])):
        if split != which:
            continue
        a, b = int(run['offsets'][k]), int(run['offsets'][k + 1])
        seq = seqs[str(name)]
        tracked = seq.timestamps[seq.tracked].astype(np.int64) * 1000
        out.append(Stream(str(name), run['times_ns'][a:b], run['probs'][a:b],
                          msrc12_instances(seq, labels, **(instance or INSTANCE)),
                          (int(tracked[0]), int(tracked[-1]))))
    return out


def negatives(streams, labels: list[str], cfg) -> dict[str, dict]:
    """
    Count what the detector publishes on the recordings' non-gesture motion: false alarms per minute by kind.

    The labelled non-gesture motion of a recording is its time outside every instance:
    ``lead`` (from the first tracked frame to the first instance, and from the last
    instance to the last frame: stepping in, standing, stepping out) and ``between``
    (the gaps between two instances: the movement away from the action points between
    repetitions). An event whose peak falls in one of them is a false alarm of that kind.
    """
    from centralnet_ros.evaluation.events import event_metrics
    from centralnet_ros.runtime.events import detect_events
    totals = {kind: {'seconds': 0.0, 'false_alarms': 0, 'segments': 0} for kind in ('lead', 'between')}
    per_recording, missed = [], []
    for s in streams:
        events = detect_events(s.times_ns, s.probs, labels, cfg)
        m = event_metrics(events, s.instances, span_ns=s.span_ns)
        per_recording.append((m['false_alarms'], s.name, len(s.instances), round(m['non_target_s'], 1)))
        if m['missed']:
            missed.append((s.name, m['missed'], len(s.instances)))
        iv = sorted((i.start_ns, i.end_ns) for i in s.instances)
        kinds = {'lead': [(s.span_ns[0], iv[0][0]), (iv[-1][1], s.span_ns[1])] if iv else [s.span_ns],
                 'between': [(a[1], b[0]) for a, b in zip(iv, iv[1:])]}
        for kind, segments in kinds.items():
            segments = [(a, b) for a, b in segments if b > a]
            m = event_metrics(events, s.instances, span_ns=s.span_ns, background=segments)
            totals[kind]['seconds'] += m['non_target_s']
            totals[kind]['false_alarms'] += m['false_alarms_in_non_target']
            totals[kind]['segments'] += len(segments)
    for t in totals.values():
        t['false_alarms_per_min'] = t['false_alarms'] / (t['seconds'] / 60.0) if t['seconds'] > 0 else None
    totals['recordings'] = [{'name': n, 'false_alarms': fa, 'instances': k, 'non_target_s': sec}
                            for fa, n, k, sec in sorted(per_recording, key=lambda r: (-r[0], r[1])) if fa]
    totals['missed_by_recording'] = missed
    return totals


def bundle_streams(bundle_dir: Path, rate: float) -> tuple[dict, list[str]]:
    """Stream the validation and test persons of a gesture bundle through it: ``({split: [Stream]}, labels)``."""
    import torch
    from centralnet_ros import paths
    from centralnet_ros.bundle import load_bundle
    from centralnet_ros.data import msrc12
    from centralnet_ros.replay.calibration import msrc12_instances, msrc12_stream, Stream
    bundle = load_bundle(bundle_dir, device='cpu')
    model, man = bundle.model.eval(), bundle.manifest
    labels = list(man.labels)
    spec = man.modalities['skeleton']
    persons = {split: [int(p.strip()[1:]) for p in str(man.evaluation[f'{split}_persons']).split(',')]
               for split in ('val', 'test')}
    out: dict[str, list] = {'val': [], 'test': []}
    for s in msrc12.load_sequences(paths.data_root() / 'msrc12'):
        split = next((k for k, ps in persons.items() if s.info.person in ps), None)
        if split is None:
            continue
        t, x = msrc12_stream(s, rate_hz=rate, window_s=float(spec.window_s), params=dict(spec.preprocessing))
        with torch.inference_mode():
            logits = model({'skeleton': torch.from_numpy(x)}, torch.ones(len(x), 1)).logits.numpy()
        z = logits - logits.max(1, keepdims=True)
        tracked = s.timestamps[s.tracked].astype(np.int64) * 1000
        out[split].append(Stream(s.info.name, t, np.exp(z) / np.exp(z).sum(1, keepdims=True),
                                 msrc12_instances(s, labels, **INSTANCE), (int(tracked[0]), int(tracked[-1]))))
    return out, labels


def calibrate_bundle(args) -> int:
    """``--bundle`` mode: calibrate a shipped bundle's event detector, measure it, optionally store it."""
    import yaml
    from centralnet_ros.config import atomic_write_text
    from centralnet_ros.machine import machine_line
    from centralnet_ros.replay.calibration import calibrate_events, stream_metrics
    start = time.perf_counter()
    bundle_dir = Path(args.bundle)
    streams, labels = bundle_streams(bundle_dir, args.rate)
    man = yaml.safe_load((bundle_dir / 'manifest.yaml').read_text())
    cfg = calibrate_events(streams['val'], labels, target_false_alarms_per_min=args.target_fa, group=person_of,
                           data=f'MSRC-12 {man["evaluation"]["val_persons"]} (the bundle\'s validation persons), '
                                f'{len(streams["val"])} streamed recordings at {args.rate:g} Hz')
    cfg.calibration['rate_hz'] = args.rate
    cfg.required_modalities = ['skeleton']
    m = stream_metrics(streams['test'], labels, cfg)
    m.pop('latencies_s', None)
    result = {'bundle': str(args.bundle), 'rate_hz': args.rate, 'test_persons': man['evaluation']['test_persons'],
              'recordings': len(streams['test']), 'config': cfg.to_dict(), 'test': m,
              'negatives': negatives(streams['test'], labels, cfg),
              'wall_time_s': round(time.perf_counter() - start, 1), 'machine': machine_line(),
              'date': time.strftime('%Y-%m-%d')}
    out = Path(args.out)
    atomic_write_text(out / f'{args.name}_bundle.json', json.dumps(result, indent=2) + '\n')
    print(json.dumps({k: v for k, v in m.items() if k not in ('confusion', 'confusion_columns')}, indent=1))
    if args.write_manifest:
        man['decision'] = cfg.to_dict()
        man.setdefault('metrics', {}).update({'test_event_f1': round(m['f1'], 4),
                                              'test_false_alarms_per_min': round(m['false_alarms_per_min'], 4)})
        atomic_write_text(bundle_dir / 'manifest.yaml', yaml.safe_dump(man, sort_keys=False, allow_unicode=True))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--preset', default='msrc12_gesture')
    parser.add_argument('--folds', type=int, nargs='*', default=None)
    parser.add_argument('--jobs', type=int, default=2)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--rate', type=float, default=10.0, help='decision rate (Hz)')
    parser.add_argument('--target-fa', type=float, default=0.5, help='false alarms per minute targeted on validation')
    parser.add_argument('--set', dest='overrides', action='append', default=[], metavar='KEY=VALUE')
    parser.add_argument('--tag', default='base', help='names the posterior cache (change it with --set)')
    parser.add_argument('--retrain', action='store_true')
    parser.add_argument('--out', default=str(Path(__file__).resolve().parent / 'results'))
    parser.add_argument('--name', default='gesture_events')
    parser.add_argument('--bundle', default=None, help='calibrate and measure this bundle instead of training')
    parser.add_argument('--write-manifest', action='store_true', help='with --bundle: store the calibration')
    args = parser.parse_args(argv)
    if args.bundle:
        return calibrate_bundle(args)

    import torch
    torch.set_num_threads(1)
    from centralnet_ros.machine import command_line, machine_line, write_results
    from centralnet_ros.replay.calibration import calibrate_events, stream_metrics
    from centralnet_ros.training.experiment import parse_overrides

    overrides = parse_overrides(args.overrides)
    folds = args.folds if args.folds else list(range(FOLDS))
    command = command_line(argv, program='python benchmarks/gesture_events_benchmark.py')
    start = time.perf_counter()
    call = [[args.preset] * len(folds), [overrides] * len(folds), folds, [args.seed] * len(folds),
            [args.rate] * len(folds), [args.tag] * len(folds), [args.retrain] * len(folds)]
    if args.jobs > 1:
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=multiprocessing.get_context('spawn')) as pool:
            runs = list(pool.map(run_fold, *call))
    else:
        runs = [run_fold(*c) for c in zip(*call)]
    rows, pooled_parts, strict_parts = [], [], []
    val_parts: dict[str, list] = {'per_person': [], 'pooled': []}
    for run in runs:
        labels = [str(x) for x in run['labels']]
        val, test = streams_of(run, 'val'), streams_of(run, 'test')
        t0 = time.perf_counter()
        cfg = calibrate_events(val, labels, target_false_alarms_per_min=args.target_fa, group=person_of,
                               data=f'MSRC-12 persons {", ".join(f"p{int(p):02d}" for p in run["val_persons"])}, '
                                    f'{len(val)} streamed recordings at {args.rate:g} Hz')
        cal_s = time.perf_counter() - t0
        # the rule was chosen on validation: the validation F1 of this rule and of the pooled one (same grid)
        pooled_rule = calibrate_events(val, labels, target_false_alarms_per_min=args.target_fa)
        val_parts['per_person'].append(stream_metrics(val, labels, cfg))
        val_parts['pooled'].append(stream_metrics(val, labels, pooled_rule))
        m = stream_metrics(test, labels, cfg)
        strict = stream_metrics(streams_of(run, 'test', STRICT), labels, cfg)
        # decisions on recordings' non-target time: the per-decision stream, for comparison
        decisions = sum(len(s.times_ns) for s in test)
        rows.append({'fold': run['fold'], 'test_persons': ', '.join(f'p{int(p):02d}' for p in run['test_persons']),
                     'val_persons': ', '.join(f'p{int(p):02d}' for p in run['val_persons']),
                     'window_accuracy': float(run['window_accuracy']), 'recordings': len(test),
                     'decisions': decisions, 'config': {k: v for k, v in cfg.to_dict().items()
                                                        if k not in ('reject_labels', 'required_modalities')},
                     'metrics': {k: v for k, v in m.items() if k != 'latencies_s'}, 'calibration_s': round(cal_s, 1),
                     'strict': {k: strict[k] for k in ('f1', 'precision', 'recall', 'false_alarms_per_min')},
                     'train_s': round(float(run['train_s']), 1), 'cached': bool(run['cached']),
                     'negatives': negatives(test, labels, cfg)})
        pooled_parts.append(m)
        strict_parts.append(strict)
        print(f'fold {run["fold"]}: F1 {m["f1"]:.3f} P {m["precision"]:.3f} R {m["recall"]:.3f} '
              f'FA/min {m["false_alarms_per_min"]:.2f}', flush=True)
    from centralnet_ros.evaluation.events import pool_event_metrics
    pooled = pool_event_metrics(pooled_parts)
    pooled_strict = pool_event_metrics(strict_parts)
    f1s = np.asarray([r['metrics']['f1'] for r in rows])
    fas = np.asarray([r['metrics']['false_alarms_per_min'] for r in rows])
    result = {'benchmark': 'MSRC-12 gesture events, streamed recordings, leave-persons-out',
              'preset': args.preset, 'overrides': overrides, 'rate_hz': args.rate,
              'target_false_alarms_per_min_on_validation': args.target_fa, 'instance': INSTANCE,
              'calibration_rule': ('smoothing, hysteresis and minimum gap with the best event F1 on the validation '
                                   'persons among those holding the false-alarm target on each validation person '
                                   'on their own (else the fewest false alarms of the worst person)'),
              'matching_rule': ('instance = [action point - 1.5 s, action point + 1.5 s), cut at the midpoint to a '
                                'neighbouring action point; an event matches when its peak lies inside with the same '
                                'label, one match per instance; false alarm = event outside every instance, per '
                                'minute of time outside the instances; latency = emission - instance end'),
              'summary': {'mean_f1': float(f1s.mean()), 'std_f1': float(f1s.std(ddof=1)) if len(f1s) > 1 else 0.0,
                          'mean_false_alarms_per_min': float(fas.mean()),
                          'pooled': {k: v for k, v in pooled.items() if k != 'latencies_s'},
                          'pooled_strict_end': {k: pooled_strict[k] for k in STRICT_KEYS},
                          'negatives': _pool_negatives([r['negatives'] for r in rows]),
                          'validation_f1_by_rule': {k: pool_event_metrics(v)['f1'] for k, v in val_parts.items()}},
              'folds': rows, 'wall_time_s': round(time.perf_counter() - start, 1), 'jobs': args.jobs,
              'machine': machine_line(), 'command': command, 'date': time.strftime('%Y-%m-%d')}
    print(write_results(args.out, args.name, result, render, command=command))
    return 0


def _pool_negatives(parts: list[dict]) -> dict:
    out = {}
    for kind in ('lead', 'between'):  # (the per-recording lists stay in each fold's row)
        sec = sum(p[kind]['seconds'] for p in parts)
        fa = sum(p[kind]['false_alarms'] for p in parts)
        out[kind] = {'seconds': sec, 'false_alarms': fa, 'segments': sum(p[kind]['segments'] for p in parts),
                     'false_alarms_per_min': fa / (sec / 60.0) if sec > 0 else None}
    return out


def _val(cal: dict) -> str:
    if 'f1' not in cal:
        return '-'
    worst = cal.get('worst_group_false_alarms_per_min', cal.get('false_alarms_per_min'))
    return f'{_p(cal["f1"])}, {_fa(worst)} ({"yes" if cal.get("target_met") else "no"})'


def _fa(x) -> str:
    return '-' if x is None else f'{x:.2f}'


def _p(x) -> str:
    return '-' if x is None else f'{x * 100:.1f} %'


def render(r: dict) -> str:
    """Markdown of a result."""
    s, p, q = r['summary'], r['summary']['pooled'], r['summary']['pooled_strict_end']
    lat = p['latency_s']
    lines = [f'# {r["benchmark"]}', '',
             f'Preset `{r["preset"]}` (12 gestures + "none"), one model per fold (4 folds of 3 test persons; the 2 '
             f'persons after them pick the epoch and calibrate the event detector; 7 train). Every recording of the '
             f'test persons is streamed at {r["rate_hz"]:g} decisions/s over the last 2 s of tracked frames (the '
             f"runtime's `skeleton_sequence` pipeline); the event detector's smoothing, hysteresis and minimum gap are "
             f'chosen on the validation persons for a target of '
             f'{r["target_false_alarms_per_min_on_validation"]:g} false alarms per minute: '
             f'{r.get("calibration_rule", "pooled over the validation persons")}.' + (
                 ' This rule was chosen on validation: event F1 on the validation persons, pooled over the folds, '
                 f'{_p(s["validation_f1_by_rule"]["per_person"])} with it, '
                 f'{_p(s["validation_f1_by_rule"]["pooled"])} with the target held pooled over the validation '
                 'persons.' if 'validation_f1_by_rule' in s else ''), '',
             f'Matching rule: {r["matching_rule"]}.', '',
             '| | event F1 | precision | recall | false alarms / min (non-target) | substitutions | missed | '
             'latency p50 / p95 (s) |',
             '|---|---|---|---|---|---|---|---|',
             f'| pooled over the 4 folds | {_p(p["f1"])} | {_p(p["precision"])} | {_p(p["recall"])} | '
             f'{p["false_alarms_per_min"]:.2f} ({p["false_alarms_in_non_target"]} in '
             f'{p["non_target_s"] / 60:.1f} min) | {p["substitutions"]} | {p["missed"]} of {p["instances"]} | '
             f'{lat["p50"]:.2f} / {lat["p95"]:.2f} |',
             f'| mean over folds | {_p(s["mean_f1"])} ± {s["std_f1"] * 100:.1f} | | | '
             f'{s["mean_false_alarms_per_min"]:.2f} | | | |',
             f'| pooled, instances ending 1.0 s after the action point | {_p(q["f1"])} | {_p(q["precision"])} | '
             f'{_p(q["recall"])} | {q["false_alarms_per_min"]:.2f} | | | |', '',
             '| fold | test persons | window accuracy | recordings | decisions | events | F1 | FA / min | '
             'on / off threshold | smoothing s | min gap s | validation: F1, worst person FA / min (target met) |',
             '|---|---|---|---|---|---|---|---|---|---|---|---|']
    for row in r['folds']:
        m, c = row['metrics'], row['config']
        lines.append(f'| {row["fold"]} | {row["test_persons"]} | {_p(row["window_accuracy"])} | {row["recordings"]} | '
                     f'{row["decisions"]} | {m["events"]} | {_p(m["f1"])} | {m["false_alarms_per_min"]:.2f} | '
                     f'{c["on_threshold"]:g} / {c["off_threshold"]:g} | {c["smoothing_s"]:g} | {c["min_gap_s"]:g} | '
                     f'{_val(c.get("calibration", {}))} |')
    neg = s.get('negatives')
    if neg:
        lines += ['', '## What it publishes on non-gesture motion', '',
                  'The labelled non-gesture motion of the test recordings is their time outside every instance: '
                  '*lead-in / lead-out* (first tracked frame to the first instance, last instance to the last frame: '
                  'stepping in, standing, stepping out) and *between gestures* (the gaps between two instances, '
                  'i.e. the movement more than 1.5 s away from the action points between repetitions). An event '
                  'whose peak lies there is a false alarm.', '',
                  '| non-gesture motion | segments | minutes | events published (false alarms) | per minute |'
                  + ''.join(f' fold {row["fold"]} / min |' for row in r['folds']),
                  '|---|---|---|---|---|' + '---|' * len(r['folds'])]
        for kind, name in (('lead', 'lead-in / lead-out'), ('between', 'between gestures')):
            q = neg[kind]
            per = ''.join(f' {_fa(row["negatives"][kind]["false_alarms_per_min"])} |' for row in r['folds'])
            lines.append(f'| {name} | {q["segments"]} | {q["seconds"] / 60:.1f} | {q["false_alarms"]} | '
                         f'{_fa(q["false_alarms_per_min"])} |{per}')
        worst = sorted((rec for row in r['folds'] for rec in row['negatives'].get('recordings', [])),
                       key=lambda rec: -rec['false_alarms'])[:6]
        total = sum(rec['false_alarms'] for row in r['folds'] for rec in row['negatives'].get('recordings', []))
        missed = [m for row in r['folds'] for m in row['negatives'].get('missed_by_recording', [])]
        if missed:
            most = [m for m in missed if m[2] and m[1] >= 0.8 * m[2]]
            n_rec = sum(row['recordings'] for row in r['folds'])
            lines += ['', f'Misses: {sum(m[1] for m in most)} of the {sum(m[1] for m in missed)} missed instances '
                      f'lie in the {len(most)} of {n_rec} test recordings where at least 80 % of the instances '
                      "were missed (the model does not recognise that person's rendition of the gesture), "
                      f'{sum(m[1] for m in missed) - sum(m[1] for m in most)} in the other recordings.']
        if worst:
            lines += ['', f'Recordings with the most false alarms (of {total}): ' + ', '.join(
                f'{rec["name"]} {rec["false_alarms"]} ({rec["instances"]} instances, {rec["non_target_s"]:.0f} s '
                'non-target)' for rec in worst) + '.']
    cached = sum(row['cached'] for row in r['folds'])
    if cached:
        lines += ['', f'{cached} of {len(r["folds"])} folds read their posteriors from the cache (the model trained '
                  'by an earlier run of this command with the same settings, `--retrain` to redo it); the wall time '
                  'below is then calibration and scoring only.']
    lines += ['', f'Wall time {r["wall_time_s"]:.0f} s ({r["jobs"]} process(es), 1 torch thread each) on '
              f'{r["machine"]}, {r["date"]}.', '', f'Command: `{r["command"]}`', '']
    return '\n'.join(lines)


if __name__ == '__main__':
    sys.exit(main())
