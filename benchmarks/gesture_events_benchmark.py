"""
MSRC-12 gesture *events* on streamed recordings, leave persons out.

The preset ``config/experiments/msrc12_events.yaml`` (the shipped ``msrc12_gesture`` preset
plus the folds of ``msrc12_loso``: 3 test persons per fold, the 2 after them pick the epoch
and calibrate, 7 train; and its variants) declares the runs.  Each run (:func:`run`) trains
its fold's 12 gestures + "none" model, then streams every recording of the validation and
test persons as the robot sees it (:func:`centralnet_ros.replay.calibration.msrc12_stream`:
a decision every 1 / rate s over the last 2 s of tracked frames, the runtime's
``skeleton_sequence`` pipeline), calibrates the event detector
(:mod:`centralnet_ros.runtime.events`) on the validation persons' recordings for the
false-alarm target and scores it once on the test persons' recordings.

Matching rule: an instance is ``[action point - 1.5 s, action point + 1.5 s)`` (cut at
the midpoint to a neighbouring action point; the figures with the tighter end ``+ 1.0 s``
are reported beside them); an event matches it when its peak falls
inside with the same label, one match per instance; an event outside every instance is
a false alarm, counted per minute of the time outside the instances (between action
points, and before the first / after the last). Latency: event emission minus the end
of its instance.

The runs go through the shared sweep (:mod:`centralnet_ros.training.sweep`: local pool or
Ray, ``--resume``, ``runs.json`` rewritten atomically after every run) into ``--runs``;
:func:`render` turns one variant of that ``runs.json`` into
``benchmarks/results/gesture_events.md`` and ``.json`` (``--render-only``: no training),
with every variant run compared in a table.  The posteriors of each run are cached under
``$CENTRALNET_CACHE/gesture_events/`` (named by a hash of what the model learns from), so a
re-run with other calibration settings skips the training (``--retrain`` forces it).

    python benchmarks/gesture_events_benchmark.py [--jobs 2] [--variants shipped speed_yaw] [--folds 0] [--rate 10]
    python benchmarks/gesture_events_benchmark.py --bundle models/gesture --write-manifest

With ``--bundle`` no model is trained: the bundle's own validation persons (manifest
``evaluation.val_persons``) calibrate its event detector and its test persons measure it;
``--write-manifest`` stores the calibrated detector in the manifest's ``decision`` section.  A bundle
trained on its validation persons too (``msrc12_gesture_refit``, the shipped ``models/gesture``) is
calibrated on the validation streams of the same preset trained without them
(``--calibrated-by runs/gesture_heldout``) and the detector carried over.
"""
from __future__ import annotations

import argparse
import copy
import functools
import hashlib
import json
from pathlib import Path
import sys
import time

from centralnet_ros.training.sweep import add_arguments as sweep_arguments
from centralnet_ros.training.sweep import add_plan_arguments as sweep_plan_arguments
import numpy as np

PRESET = 'msrc12_events'
INSTANCE = {'before_s': 1.5, 'after_s': 1.5}
STRICT = {'before_s': 1.5, 'after_s': 1.0}          # reported beside it: a tighter end
STRICT_KEYS = ('f1', 'precision', 'recall', 'false_alarms_per_min', 'matched', 'false_alarms', 'non_target_s')
CALIBRATION_RULE = ('smoothing, hysteresis and minimum gap with the best event F1 on the validation persons among '
                    'those holding the false-alarm target on each validation person on their own (else the fewest '
                    'false alarms of the worst person)')
EVENT_COUNTS = ('events', 'instances', 'matched', 'false_alarms_in_non_target', 'non_target_s')   # event_metrics'
INSTRUCTION_KEYS = EVENT_COUNTS + ('recordings', 'recordings_missed_whole')   # counted per instruction (negatives)
MATCHING_RULE = ('instance = [action point - 1.5 s, action point + 1.5 s), cut at the midpoint to a neighbouring '
                 'action point; an event matches when its peak lies inside with the same label, one match per '
                 'instance; false alarm = event outside every instance, per minute of time outside the instances; '
                 'latency = emission - instance end')


def person_of(stream) -> str:
    """Return the MSRC-12 person of a recording's stream (``P1_1_1_p11`` or ``P1_1_1_p11@camera2`` -> ``p11``)."""
    return stream.name.split('@', 1)[0].rsplit('_', 1)[1]


def posterior_key(cfg, seed: int, rate: float) -> str:
    """
    Name a run's posteriors by what its model learns from: data, model, fusion, training, seed, decision rate.

    Options, fusion options and training settings at their defaults are left out, so a field added later with a default
    does not rename the caches made before it.
    """
    import dataclasses
    from centralnet_ros.config import from_dict
    from centralnet_ros.training.experiment import experiment_dict
    from centralnet_ros.training.gesture import MSRC12Options
    from centralnet_ros.training.sweep import RESUME_IGNORES
    from centralnet_ros.training.trainer import TrainConfig
    d = experiment_dict(cfg)
    default_train = dataclasses.asdict(TrainConfig())
    train = {k: v for k, v in d['train'].items()
             if f'train.{k}' not in RESUME_IGNORES and v != default_train.get(k, object())}
    default_options = dataclasses.asdict(MSRC12Options())
    options = {k: v for k, v in dataclasses.asdict(from_dict(MSRC12Options, dict(d['dataset_options']),
                                                             _where='dataset_options')).items()
               if v != default_options[k]}
    from centralnet_ros.model_config import FusionOptions
    default_fusion = dataclasses.asdict(FusionOptions())
    fusion = {k: v for k, v in d.get('fusion', {}).items() if v != default_fusion.get(k, object())}
    what = {'dataset': d['dataset'], 'dataset_options': options, 'modalities': d['modalities'],
            'num_classes': d['num_classes'], 'method': d['bundle']['method'] if d.get('bundle') else None,
            'train': train, 'seed': int(seed), 'rate': float(rate), **({'fusion': fusion} if fusion else {})}
    digest = hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return f'{cfg.name}_fold{cfg.dataset_options.get("fold")}_{digest}'


def _cache_file(key: str) -> Path:
    from centralnet_ros import paths
    return paths.cache_dir() / 'gesture_events' / f'{key}.npz'


def load(cfg, data_root) -> dict:
    """Load nothing up front (the sweep's ``load``): a run whose posteriors are cached trains nothing."""
    return {'data_root': str(data_root)}


def fold_posteriors(cfg, spec, *, rate: float, retrain: bool = False) -> dict:
    """Train ``spec``'s fold (or reuse its cache) and stream its validation and test persons' recordings."""
    import torch
    from centralnet_ros import paths
    from centralnet_ros.config import atomic_savez, from_dict
    from centralnet_ros.data import msrc12
    from centralnet_ros.fusion import build_model
    from centralnet_ros.replay.calibration import msrc12_stream
    from centralnet_ros.torch_utils import seed_everything
    from centralnet_ros.training.datasets import check_bundle_inputs, check_refit
    from centralnet_ros.training.gesture import load_msrc12, MSRC12Options, msrc12_person_split
    from centralnet_ros.training.trainer import train

    cache = _cache_file(posterior_key(cfg, spec.seed, rate))
    if cache.is_file() and not retrain:
        with np.load(cache, allow_pickle=False) as z:
            return {k: z[k] for k in z.files} | {'cached': True, 'cache': cache.name}
    opts = from_dict(MSRC12Options, dict(cfg.dataset_options), _where='dataset_options')
    spec_in = cfg.bundle.modalities['skeleton']
    t0 = time.perf_counter()
    data = load_msrc12(dict(cfg.dataset_options), paths.data_root())
    check_bundle_inputs(cfg, data)        # else the streams would not be made as the training windows were
    check_refit(cfg, data)                # a refit chooses nothing on its validation persons
    cfg.num_classes = len(data.label_names)
    seed_everything(spec.seed)
    model = build_model(cfg.fusion_config(spec.method))
    result = train(model, data.train, data.val, cfg.train, seed=spec.seed, test_split=data.test)
    train_s = time.perf_counter() - t0
    model.eval()
    seqs = msrc12.load_sequences(paths.data_root() / opts.folder, persons=opts.persons, cache=opts.cache)
    train_p, val_p, test_p = msrc12_person_split(sorted({s.info.person for s in seqs}), opts)
    names, split, times, probs, offsets = [], [], [], [], [0]
    t1 = time.perf_counter()
    for s in seqs:
        if s.info.person not in val_p + test_p:
            continue
        t, x = msrc12_stream(s, rate_hz=rate, window_s=float(spec_in['window_s']),
                             params=dict(spec_in['preprocessing']), pipeline=spec_in['pipeline'])
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
           'val_persons': np.asarray(val_p), 'test_persons': np.asarray(test_p), 'n_train': np.int64(len(data.train)),
           'train_s': np.float64(train_s), 'stream_s': np.float64(stream_s), 'best_epoch': np.int64(result.best_epoch)}
    atomic_savez(cache, **out)
    return out | {'cached': False, 'cache': cache.name}


def run(cfg, data, spec, *, rate: float = 10.0, target_fa: float = 0.5, fa_budget: float | None = None,
        retrain: bool = False) -> dict:
    """
    One run of the sweep: a fold's posteriors, its detector calibrated on validation, scored on its test persons.

    ``target_fa``: false alarms per minute targeted on each validation person.  ``fa_budget``
    (false alarms per minute a person the calibration never saw may suffer): the target is
    then chosen per fold among ``target_fa``, half of it and 0 by holding each validation
    person out in turn (:func:`~centralnet_ros.replay.calibration.choose_target`), and the
    detector of the fixed ``target_fa`` is scored beside it.  The record holds the event
    counts (so folds pool), the calibrated detector and the non-gesture-motion breakdown.
    """
    post = fold_posteriors(cfg, spec, rate=rate, retrain=retrain)
    base = calibration_preset(cfg)
    calibration = None if base is None else fold_posteriors(base, spec, rate=rate, retrain=False)
    out = score(post, rate=rate, target_fa=target_fa, fa_budget=fa_budget, calibration=calibration)
    train, val, _ = fold_persons(cfg)
    return out | {'train_persons': ', '.join(f'p{p:02d}' for p in sorted(train + val * bool(calibration)))}


def calibration_preset(cfg):
    """
    Return the preset whose validation streams calibrate ``cfg``'s detector when not its own, else None.

    A model trained on its validation persons (``dataset_options.train_with_val``: the refit) cannot be
    calibrated on them: its detector is calibrated on the validation streams of the same preset trained
    without them (cached, else trained) and carried over to it.
    """
    if not cfg.dataset_options.get('train_with_val'):
        return None
    base = copy.deepcopy(cfg)
    base.dataset_options['train_with_val'] = False
    return base


def fold_persons(cfg) -> tuple[list[int], list[int], list[int]]:
    """Return the fold's ``(train, val, test)`` persons (from the recordings' file names; nothing is read)."""
    from centralnet_ros import paths
    from centralnet_ros.config import from_dict
    from centralnet_ros.data import msrc12
    from centralnet_ros.training.gesture import MSRC12Options, msrc12_person_split
    opts = from_dict(MSRC12Options, dict(cfg.dataset_options), _where='dataset_options')
    files = msrc12.list_files(paths.data_root() / opts.folder, persons=opts.persons)
    present = {msrc12.parse_name(csv.name).person for csv, _ in files}
    return msrc12_person_split(sorted(present), opts)


def score(post: dict, *, rate: float, target_fa: float, fa_budget: float | None = None,
          calibration: dict | None = None) -> dict:
    """
    Calibrate a fold's detector on its validation streams in ``post`` and score its test streams (see run).

    ``calibration``: another model's posteriors of the same fold whose validation streams calibrate the detector
    instead (``post``'s model was trained on its validation persons).
    """
    from centralnet_ros.replay.calibration import calibrate_events, choose_target, stream_metrics
    labels = [str(x) for x in post['labels']]
    val, test = streams_of(calibration or post, 'val'), streams_of(post, 'test')
    persons = {k: ', '.join(f'p{int(p):02d}' for p in post[f'{k}_persons']) for k in ('val', 'test')}
    t0 = time.perf_counter()
    target, choice = target_fa, []
    if fa_budget is not None:
        target, choice = choose_target(val, labels, budget_per_min=fa_budget, group=person_of,
                                       targets=budget_targets(target_fa))
    ev = calibrate_events(val, labels, target_false_alarms_per_min=target, group=person_of,
                          data=f'MSRC-12 persons {persons["val"]}, {len(val)} streamed recordings at {rate:g} Hz')
    cal_s = time.perf_counter() - t0
    pooled_rule = calibrate_events(val, labels, target_false_alarms_per_min=target)   # the rule's alternative
    m = stream_metrics(test, labels, ev)
    strict = stream_metrics(streams_of(post, 'test', STRICT), labels, ev)
    out = {'test_persons': persons['test'], 'val_persons': persons['val'],
           'window_accuracy': None if post.get('window_accuracy') is None else float(post['window_accuracy']),
           'recordings': len(test),
           'decisions': int(sum(len(s.times_ns) for s in test)),
           'config': {k: v for k, v in ev.to_dict().items() if k not in ('reject_labels', 'required_modalities')},
           'metrics': m, 'f1': m['f1'], 'calibration_s': round(cal_s, 1),
           'strict': _counts(strict),
           'validation': {'per_person': _counts(stream_metrics(val, labels, ev)),
                          'pooled': _counts(stream_metrics(val, labels, pooled_rule))},
           'train_s': round(float(post['train_s']), 1), 'best_epoch': int(post['best_epoch']),
           'cached': bool(post['cached']), 'posteriors': post['cache'], 'negatives': negatives(test, labels, ev),
           **({'calibrated_on': calibration['cache']} if calibration is not None else {})}
    if fa_budget is not None:
        fixed = ev if target == target_fa else calibrate_events(val, labels, target_false_alarms_per_min=target_fa,
                                                                group=person_of)
        out['target_choice'] = {'budget_per_min': fa_budget, 'target': target, 'candidates': choice,
                                'fixed_target': target_fa, 'fixed_target_metrics': _counts(
                                    stream_metrics(test, labels, fixed))}
    return out


def ensemble_runs(runs_json: dict, variants: list[str], *, rate: float, target_fa: float) -> list[dict]:
    """
    Score, per fold, the mean of the cached posteriors of ``variants`` (one model each) as variant ``a+b``.

    A measurement of what averaging models would give (the bundle holds one model): each fold's
    detector is calibrated on the averaged validation streams, as :func:`run` does for one model.
    """
    by_fold: dict[int, dict[str, dict]] = {}
    for r in runs_json['runs']:
        if r.get('variant') in variants:
            by_fold.setdefault(int(r['fold']), {})[r['variant']] = r
    out = []
    for fold, recs in sorted(by_fold.items()):
        if set(recs) != set(variants):
            continue
        posts = []
        for v in variants:
            with np.load(_cache_file(Path(recs[v]['posteriors']).stem), allow_pickle=False) as z:
                posts.append({k: z[k] for k in z.files})
        first = posts[0]
        for p in posts[1:]:
            if not (np.array_equal(p['names'], first['names']) and np.array_equal(p['times_ns'], first['times_ns'])):
                raise SystemExit(f'error: fold {fold}: the variants {variants} streamed different recordings')
        post = dict(first, probs=np.mean([p['probs'] for p in posts], axis=0).astype(np.float32),
                    window_accuracy=None,              # (the models' window logits are not cached)
                    train_s=np.float64(sum(float(p['train_s']) for p in posts)), best_epoch=first['best_epoch'],
                    cached=True, cache='+'.join(recs[v]['posteriors'] for v in variants))
        rec = score(post, rate=rate, target_fa=target_fa)
        out.append({**{k: recs[variants[0]][k] for k in ('method', 'seed', 'fold')},
                    'variant': '+'.join(variants), **rec})
    return out


def budget_targets(target_fa: float) -> tuple[float, ...]:
    """Return the validation targets ``--fa-budget`` chooses among: ``target_fa``, half of it, 0."""
    return (float(target_fa), float(target_fa) / 2, 0.0)


def _counts(m: dict) -> dict:
    """Return the pooled-able counts of an event-metrics result (no per-event lists)."""
    return {k: v for k, v in m.items() if k not in ('latencies_s', 'confusion', 'confusion_columns')}


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
    from centralnet_ros.data.msrc12 import parse_name
    from centralnet_ros.evaluation.events import event_metrics
    from centralnet_ros.runtime.events import detect_events
    totals = {kind: {'seconds': 0.0, 'false_alarms': 0, 'segments': 0} for kind in ('lead', 'between')}
    per_recording, missed, by_instruction = [], [], {}
    for s in streams:
        events = detect_events(s.times_ns, s.probs, labels, cfg)
        m = event_metrics(events, s.instances, span_ns=s.span_ns)
        per_recording.append((m['false_alarms'], s.name, len(s.instances), round(m['non_target_s'], 1)))
        if m['missed']:
            missed.append((s.name, m['missed'], len(s.instances)))
        instruction = parse_name(s.name.split('@', 1)[0]).instruction
        g = by_instruction.setdefault(instruction, dict.fromkeys(INSTRUCTION_KEYS, 0))
        for k in EVENT_COUNTS:
            g[k] += m[k]
        g['recordings'] += 1
        g['recordings_missed_whole'] += bool(s.instances) and m['missed'] >= 0.8 * len(s.instances)
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
    totals['by_instruction'] = by_instruction
    return totals


def bundle_streams(bundle_dir: Path, rate: float, camera_draws: int = 1,
                   splits: tuple[str, ...] = ('val', 'test')) -> tuple[dict, list[str]]:
    """
    Stream the ``splits`` persons (validation, test) of a gesture bundle through it: ``({split: [Stream]}, labels)``.

    A 2-D bundle (``skeleton2d_sequence``) sees each recording through ``camera_draws`` virtual
    cameras (streams ``<name>@camera<k>``, seed ``k``); a 3-D bundle sees the Kinect joints once.
    """
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
               for split in splits}
    out: dict[str, list] = {split: [] for split in splits}
    draws = range(int(camera_draws)) if spec.pipeline == 'skeleton2d_sequence' else [None]
    for s in msrc12.load_sequences(paths.data_root() / 'msrc12'):
        split = next((k for k, ps in persons.items() if s.info.person in ps), None)
        if split is None:
            continue
        instances = msrc12_instances(s, labels, **INSTANCE)
        tracked = s.timestamps[s.tracked].astype(np.int64) * 1000
        for k in draws:
            t, x = msrc12_stream(s, rate_hz=rate, window_s=float(spec.window_s), params=dict(spec.preprocessing),
                                 pipeline=spec.pipeline, seed=k or 0)
            with torch.inference_mode():
                logits = model({'skeleton': torch.from_numpy(x)}, torch.ones(len(x), 1)).logits.numpy()
            z = logits - logits.max(1, keepdims=True)
            out[split].append(Stream(s.info.name if k is None else f'{s.info.name}@camera{k}', t,
                                     np.exp(z) / np.exp(z).sum(1, keepdims=True), instances,
                                     (int(tracked[0]), int(tracked[-1]))))
    return out, labels


def check_calibrator(man: dict, calibrated_by: str | None) -> dict | None:
    """
    Return the manifest of the bundle whose validation streams calibrate ``man``'s bundle (None: its own).

    A bundle trained on its validation persons (``evaluation.train_with_val``) needs one: the same
    labels, validation persons and inputs, trained without them. Anything else is a SystemExit saying so.
    """
    import yaml
    refit = bool(man.get('evaluation', {}).get('train_with_val'))
    if calibrated_by is None:
        if refit:
            raise SystemExit(f'error: this bundle was trained on its validation persons '
                             f'({man["evaluation"]["val_persons"]}): calibrate it with --calibrated-by <a bundle of '
                             f'{man.get("training", {}).get("preset", "the preset")} trained without them>')
        return None
    path = Path(calibrated_by) / 'manifest.yaml'
    if not path.is_file():
        raise SystemExit(f'error: --calibrated-by {calibrated_by}: no manifest.yaml there')
    other = yaml.safe_load(path.read_text())
    problems = [f'{what}: {a!r} here, {b!r} there' for what, a, b in (
        ('labels', man['labels'], other['labels']),
        ('validation persons', man['evaluation'].get('val_persons'), other['evaluation'].get('val_persons')),
        ('skeleton input', man['modalities']['skeleton'], other['modalities']['skeleton'])) if a != b]
    if other.get('evaluation', {}).get('train_with_val'):
        problems.append('it was trained on its validation persons too')
    if not refit:
        problems.append('this bundle was not trained on its validation persons: it calibrates on its own')
    if problems:
        raise SystemExit(f'error: --calibrated-by {calibrated_by} cannot calibrate {man.get("task")} bundle: '
                         + '; '.join(problems))
    return other


def calibrate_bundle(args) -> int:
    """``--bundle`` mode: calibrate a shipped bundle's event detector, measure it, optionally store it."""
    import yaml
    from centralnet_ros.config import atomic_write_text
    from centralnet_ros.machine import command_line, machine_line
    from centralnet_ros.replay.calibration import calibrate_events, stream_metrics
    start = time.perf_counter()
    bundle_dir = Path(args.bundle)
    man = yaml.safe_load((bundle_dir / 'manifest.yaml').read_text())
    calibrator = check_calibrator(man, args.calibrated_by)
    streams, labels = bundle_streams(bundle_dir, args.rate, args.camera_draws)
    val = streams['val'] if calibrator is None else bundle_streams(Path(args.calibrated_by), args.rate,
                                                                   args.camera_draws, splits=('val',))[0]['val']
    whose = ("the bundle's validation persons" if calibrator is None else
             f'validation persons of {args.calibrated_by}, the same preset trained without them; carried over')
    cfg = calibrate_events(val, labels, target_false_alarms_per_min=args.target_fa, group=person_of,
                           data=f'MSRC-12 {man["evaluation"]["val_persons"]} ({whose}), '
                                f'{len(val)} streamed recordings at {args.rate:g} Hz'
                                + (f' ({args.camera_draws} virtual cameras per recording)'
                                   if man['modalities']['skeleton']['pipeline'] == 'skeleton2d_sequence' else ''))
    cfg.calibration['rate_hz'] = args.rate
    cfg.required_modalities = ['skeleton']
    m = stream_metrics(streams['test'], labels, cfg)
    m.pop('latencies_s', None)
    result = {'bundle': str(args.bundle), 'rate_hz': args.rate,
              **({'calibrated_by': str(args.calibrated_by)} if calibrator is not None else {}),
              'test_persons': man['evaluation']['test_persons'],
              'recordings': len(streams['test']), 'config': cfg.to_dict(), 'test': m,
              'negatives': negatives(streams['test'], labels, cfg),
              'wall_time_s': round(time.perf_counter() - start, 1), 'machine': machine_line(),
              'date': time.strftime('%Y-%m-%d'),
              'command': command_line(program='python benchmarks/gesture_events_benchmark.py')}
    out = Path(args.out)
    atomic_write_text(out / f'{args.name}_bundle.json', json.dumps(result, indent=2) + '\n')
    print(json.dumps({k: v for k, v in m.items() if k not in ('confusion', 'confusion_columns')}, indent=1))
    if args.write_manifest:
        man['decision'] = cfg.to_dict()
        man.setdefault('metrics', {}).update({'test_event_f1': round(m['f1'], 4),
                                              'test_false_alarms_per_min': round(m['false_alarms_per_min'], 4)})
        atomic_write_text(bundle_dir / 'manifest.yaml', yaml.safe_dump(man, sort_keys=False, allow_unicode=True))
    return 0


def result(runs_json: dict, variant: str | None = None) -> dict:
    """Turn a sweep's ``runs.json`` into the result file's payload: ``variant`` in detail, every variant compared."""
    from centralnet_ros.evaluation.events import pool_event_metrics
    info = runs_json.get('data', {})
    by_variant: dict = {}
    for r in runs_json['runs']:
        by_variant.setdefault(r.get('variant'), []).append(r)
    variant = variant or next(iter(by_variant), None)
    rows = sorted(by_variant.get(variant, []), key=lambda r: r['fold'])
    if not rows:
        raise SystemExit(f'error: no finished run of variant {variant!r} in the sweep')

    def summary(rs: list[dict]) -> dict:
        pooled = pool_event_metrics([r['metrics'] for r in rs])
        f1s = np.asarray([r['metrics']['f1'] for r in rs])
        fas = np.asarray([r['metrics']['false_alarms_per_min'] for r in rs])
        n_train = {len(r['train_persons'].split(', ')) if r.get('train_persons') else None for r in rs}
        return {'folds': [r['fold'] for r in rs], 'mean_f1': float(f1s.mean()),
                'train_persons_per_fold': n_train.pop() if len(n_train) == 1 else None,   # (None: runs before it)
                'std_f1': float(f1s.std(ddof=1)) if len(f1s) > 1 else 0.0,
                'mean_false_alarms_per_min': float(fas.mean()), 'max_false_alarms_per_min': float(fas.max()),
                'mean_window_accuracy': (float(np.mean([r['window_accuracy'] for r in rs]))
                                         if all(r['window_accuracy'] is not None for r in rs) else None),
                'pooled': {k: v for k, v in pooled.items() if k != 'latencies_s'},
                'validation_f1_by_rule': {k: pool_event_metrics([r['validation'][k] for r in rs])['f1']
                                          for k in ('per_person', 'pooled')}}

    s = summary(rows)
    s['pooled_strict_end'] = pool_event_metrics([r['strict'] for r in rows])
    s['pooled_strict_end'] = {k: s['pooled_strict_end'][k] for k in STRICT_KEYS}
    s['negatives'] = _pool_negatives([r['negatives'] for r in rows])
    if all('target_choice' in r for r in rows):
        fixed = [r['target_choice']['fixed_target_metrics'] for r in rows]
        s['fixed_target'] = {'target': rows[0]['target_choice']['fixed_target'],
                             'pooled': {k: v for k, v in pool_event_metrics(fixed).items() if k != 'latencies_s'},
                             'max_false_alarms_per_min': max(m['false_alarms_per_min'] for m in fixed),
                             'fold_false_alarms_per_min': [m['false_alarms_per_min'] for m in fixed]}
    return {'benchmark': 'MSRC-12 gesture events, streamed recordings, leave-persons-out',
            'preset': runs_json['experiment']['name'], 'variant': variant,
            'variant_overrides': runs_json['experiment'].get('variants', {}).get(variant, {}),
            'overrides': info.get('overrides', {}), 'rate_hz': info.get('rate_hz'),
            'target_false_alarms_per_min_on_validation': info.get('target_false_alarms_per_min'),
            'false_alarm_budget_per_min': info.get('false_alarm_budget_per_min'),
            'stream': _stream_of(runs_json['experiment'], variant),
            'instance': INSTANCE, 'calibration_rule': CALIBRATION_RULE, 'matching_rule': MATCHING_RULE,
            'summary': s, 'variants': {v: {**summary(sorted(rs, key=lambda r: r['fold'])),
                                           'overrides': runs_json['experiment'].get('variants', {}).get(v, {})}
                                       for v, rs in by_variant.items()},
            'folds': [{k: v for k, v in r.items() if k != 'metrics'} | {'metrics': _counts(r['metrics'])}
                      for r in rows],
            'wall_time_s': round(sum(r['train_s'] * (not r['cached']) + r['calibration_s'] for r in rows), 1),
            'jobs': info.get('jobs', 1), 'machine': runs_json['machine']}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    sweep_plan_arguments(parser, preset=PRESET)
    parser.add_argument('--rate', type=float, default=10.0, help='decision rate (Hz)')
    parser.add_argument('--target-fa', type=float, default=0.5, help='false alarms per minute targeted on validation')
    parser.add_argument('--fa-budget', type=float, default=None, metavar='PER_MIN',
                        help='choose the validation target per fold (--target-fa, half of it or 0) so that a '
                        'validation person held out of the calibration suffers at most this many false alarms '
                        'per minute; the fixed --target-fa detector is scored beside it')
    parser.add_argument('--retrain', action='store_true', help='train even when the posteriors are cached')
    parser.add_argument('--ensemble', nargs='+', default=None, metavar='VARIANT',
                        help='also score, per fold, the mean posteriors of these variants (run or cached)')
    parser.add_argument('--render', default=None, metavar='VARIANT', help='the variant the result files show in '
                        'detail (default: the first one run)')
    parser.add_argument('--out', default=str(Path(__file__).resolve().parent / 'results'))
    parser.add_argument('--name', default='gesture_events')
    parser.add_argument('--camera-draws', type=int, default=3, metavar='K',
                        help='with --bundle and a 2-D bundle: virtual cameras per recording (default 3: a single '
                             "validation person's few minutes between gestures hold too few false alarms to tell "
                             'detectors apart)')
    parser.add_argument('--bundle', default=None, help='calibrate and measure this bundle instead of training')
    parser.add_argument('--write-manifest', action='store_true', help='with --bundle: store the calibration')
    parser.add_argument('--calibrated-by', default=None, metavar='BUNDLE',
                        help='with --bundle trained on its validation persons (a refit): calibrate on the validation '
                             'streams of BUNDLE, the same preset trained without them, and carry the detector over')
    sweep_arguments(parser, jobs=1, runs='runs/gesture_events_benchmark')
    args = parser.parse_args(argv)
    if args.bundle:
        return calibrate_bundle(args)

    from centralnet_ros import paths
    from centralnet_ros.machine import command_line, write_results
    from centralnet_ros.training import sweep

    cfg, plan, overrides = sweep.plan_from_args(args)
    if args.fa_budget is not None and not args.fa_budget >= 0:
        parser.error(f'--fa-budget must be >= 0, got {args.fa_budget}')
    one = functools.partial(run, rate=args.rate, target_fa=args.target_fa, fa_budget=args.fa_budget,
                            retrain=args.retrain)
    runs = sweep.sweep_from_args(args, cfg, plan, run=one, load=load, data_root=paths.data_root(), metric='f1',
                                 command=command_line(argv, program='python benchmarks/gesture_events_benchmark.py'),
                                 info={'overrides': overrides, 'rate_hz': args.rate,
                                       'target_false_alarms_per_min': args.target_fa,
                                       'false_alarm_budget_per_min': args.fa_budget})
    if args.ensemble:
        runs = dict(runs, runs=list(runs['runs']) + ensemble_runs(runs, args.ensemble, rate=args.rate,
                                                                  target_fa=args.target_fa))
    print(write_results(args.out, args.name, result(runs, args.render), render, command=runs['command']))
    return 0 if not runs['failed'] else 1


def _pool_negatives(parts: list[dict]) -> dict:
    out = {}
    for kind in ('lead', 'between'):  # (the per-recording lists stay in each fold's row)
        sec = sum(p[kind]['seconds'] for p in parts)
        fa = sum(p[kind]['false_alarms'] for p in parts)
        out[kind] = {'seconds': sec, 'false_alarms': fa, 'segments': sum(p[kind]['segments'] for p in parts),
                     'false_alarms_per_min': fa / (sec / 60.0) if sec > 0 else None}
    if all('by_instruction' in p for p in parts):      # (runs made before it was counted have none)
        out['by_instruction'] = {}
        for p in parts:
            for name, counts in p['by_instruction'].items():
                g = out['by_instruction'].setdefault(name, dict.fromkeys(INSTRUCTION_KEYS, 0))
                for k in INSTRUCTION_KEYS:
                    g[k] += counts[k]
    return out


def detector_ceiling(pooled: dict, unrecognised: int) -> dict[str, float]:
    """
    Precision, recall and F1 if every miss but the ``unrecognised`` ones were found by extra matched events.

    The misses in recordings whose person's rendition the model does not recognise stay missed; the others
    become matches without any further event (false alarms and substitutions unchanged).
    """
    events = pooled['events'] + (pooled['missed'] - unrecognised)
    matched = pooled['instances'] - unrecognised
    precision = matched / events if events else 0.0
    recall = matched / pooled['instances'] if pooled['instances'] else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {'precision': precision, 'recall': recall, 'f1': f1}


LEARNING_CURVE_KEYS = {'dataset_options.n_train_persons', 'dataset_options.train_with_val'}


def learning_curve_fit(points: list[tuple[int, float]], goal: float = 0.90) -> dict | None:
    """
    Least-squares line ``f1 = a + b ln(persons)`` through ``(training persons, pooled F1)`` points.

    Returns ``a``, ``b`` and ``persons_at_goal`` (where the line reaches ``goal``; None when it does not
    rise), or None for fewer than two distinct person counts.  An extrapolation, not a measurement.
    """
    n = np.log([p for p, _ in points])
    if len(set(n.tolist())) < 2:
        return None
    b, a = np.polyfit(n, [f for _, f in points], 1)
    at = float(np.exp((goal - a) / b)) if b > 0 else None
    return {'a': float(a), 'b': float(b), 'goal': goal, 'persons_at_goal': at}


def _learning_curve(variants: dict) -> list[str]:
    """Tabulate, as a learning curve, the variants that differ from the preset only in their training persons."""
    points = sorted((v['train_persons_per_fold'], name, v) for name, v in variants.items()
                    if v.get('train_persons_per_fold') and set(v['overrides']) <= LEARNING_CURVE_KEYS)
    if len({p for p, _, _ in points}) < 2:
        return []
    lines = ['', '## Learning curve: training persons', '',
             'The same folds, validation and test persons; each fold trains on the first n of its training persons '
             '(those following the validation persons, cyclically: a different subset in every fold).', '',
             '| training persons per fold | variant | event F1 pooled | folds | recall | precision | FA / min pooled | '
             'FA / min worst fold | window accuracy |', '|---|---|---|---|---|---|---|---|---|']
    for n, name, v in points:
        q = v['pooled']
        if v['overrides'].get('dataset_options.train_with_val'):
            name += ' (the validation persons too; its detector calibrated without them)'
        lines.append(f'| {n} | {name} | {_p(q["f1"])} | {", ".join(map(str, v["folds"]))} | {_p(q["recall"])} | '
                     f'{_p(q["precision"])} | {_fa(q["false_alarms_per_min"])} | '
                     f'{_fa(v["max_false_alarms_per_min"])} | {_p(v["mean_window_accuracy"])} |')
    fit = learning_curve_fit([(n, v['pooled']['f1']) for n, _, v in points])
    if fit:
        reach = (f'reaches {_p(fit["goal"])} at about {fit["persons_at_goal"]:.0f} training persons'
                 if fit['persons_at_goal'] else 'does not rise')
        lines += ['', f'A line through these points in log(persons), F1 = {fit["a"]:.3f} + {fit["b"]:.3f} ln(n), '
                  f'{reach}: an extrapolation beyond the persons measured, not a measurement.']
    return lines


def _instruction_table(by: dict | None) -> list[str]:
    """Event recall, precision and F1 of the test recordings by the instruction their performer was given."""
    if not by:
        return []
    lines = ['', '## By the instruction the performer was given', '',
             'MSRC-12 taught each gesture through one or two of: a video, a sequence of images, a written text '
             '(Fothergill et al. 2012: the instruction modality changes how correctly people perform a gesture); '
             'every recording names its instruction (`msrc12.SequenceInfo.instruction`).', '',
             '| instruction | recordings | instances | recall | precision | event F1 | false alarms / min | '
             'recordings >= 80 % missed |', '|---|---|---|---|---|---|---|---|']
    order = {name: i for i, name in enumerate(('video', 'images', 'text', 'video+text', 'images+text'))}
    for name, g in sorted(by.items(), key=lambda kv: order.get(kv[0], len(order))):
        recall = g['matched'] / g['instances'] if g['instances'] else 0.0
        precision = g['matched'] / g['events'] if g['events'] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        fa = g['false_alarms_in_non_target'] / (g['non_target_s'] / 60.0) if g['non_target_s'] > 0 else None
        lines.append(f'| {name} | {g["recordings"]} | {g["instances"]} | {_p(recall)} | {_p(precision)} | {_p(f1)} | '
                     f'{_fa(fa)} | {g["recordings_missed_whole"]} |')
    return lines


def _budget_text(r: dict) -> list[str]:
    b = r['false_alarm_budget_per_min']
    lines = [f'False-alarm budget: {b:g} per minute for a person the calibration never saw. The validation target is '
             f'chosen per fold among {r["target_false_alarms_per_min_on_validation"]:g}, half of it and 0: each '
             'validation person is held out in turn, the detector calibrated on the other for the candidate target '
             'and scored on the held-out one; the largest target whose held-out false alarms stay within the '
             'budget for both persons is kept (`replay.calibration.choose_target`; validation persons only).', '',
             '| fold | chosen target / min | held out, per candidate target: F1, worst person FA / min |',
             '|---|---|---|']
    for row in r['folds']:
        c = row.get('target_choice', {})
        cands = '; '.join(f'{x["target"]:g}: {_p(x["held_out_f1"])}, {_fa(x["held_out_worst_false_alarms_per_min"])}'
                          for x in c.get('candidates', []))
        lines.append(f'| {row["fold"]} | {_fa(c.get("target"))} | {cands} |')
    return lines + ['']


def _fixed_row(s: dict) -> list[str]:
    f = s.get('fixed_target')
    if not f:
        return []
    p = f['pooled']
    folds = ', '.join(_fa(x) for x in f['fold_false_alarms_per_min'])
    return [f'| pooled, fixed target {f["target"]:g} / min on every fold (no budget) | {_p(p["f1"])} | '
            f'{_p(p["precision"])} | {_p(p["recall"])} | {_fa(p["false_alarms_per_min"])} (folds {folds}) | '
            f'{p["substitutions"]} | {p["missed"]} of {p["instances"]} | |']


def _val(cal: dict) -> str:
    if 'f1' not in cal:
        return '-'
    worst = cal.get('worst_group_false_alarms_per_min', cal.get('false_alarms_per_min'))
    return f'{_p(cal["f1"])}, {_fa(worst)} ({"yes" if cal.get("target_met") else "no"})'


def _overrides(o: dict | None) -> str:
    return f' ({", ".join(f"{k}={v}" for k, v in o.items())})' if o else ''


def _stream_of(experiment: dict, variant: str) -> dict:
    """Return the pipeline and window (s) the variant's recordings were streamed through (its bundle's)."""
    spec = dict(experiment.get('bundle', {}).get('modalities', {}).get('skeleton', {}))
    over = experiment.get('variants', {}).get(variant) or {}
    return {'pipeline': over.get('bundle.modalities.skeleton.pipeline', spec.get('pipeline', 'skeleton_sequence')),
            'window_s': float(over.get('bundle.modalities.skeleton.window_s', spec.get('window_s', 2.0)))}


def _fa(x) -> str:
    return '-' if x is None else f'{x:.2f}'


def _p(x) -> str:
    return '-' if x is None else f'{x * 100:.1f} %'


def render(r: dict) -> str:
    """Markdown of a result."""
    s, p, q = r['summary'], r['summary']['pooled'], r['summary']['pooled_strict_end']
    lat = p['latency_s']
    stream = r.get('stream') or {'pipeline': 'skeleton_sequence', 'window_s': 2.0}
    lines = [f'# {r["benchmark"]}', '',
             f'Preset `{r["preset"]}`, variant `{r["variant"]}`{_overrides(r.get("variant_overrides"))} (12 gestures '
             f'+ "none"), one model per fold ({len(r["folds"])} folds of 3 test persons; the 2 '
             + ('persons after them pick the epoch and calibrate the event detector; '
                f'{s.get("train_persons_per_fold") or 7} train' if not any('calibrated_on' in f for f in r['folds'])
                else f'persons after them are trained on too ({s.get("train_persons_per_fold")} train: a refit); '
                'the event detector is calibrated on their streams through the same settings trained without them '
                '(`train_with_val` off, `calibration_preset`) and carried over')
             + '). Every recording of the '
             f'test persons is streamed at {r["rate_hz"]:g} decisions/s over the last {stream["window_s"]:g} s of '
             f"tracked frames (the runtime's `{stream['pipeline']}` pipeline"
             + ('' if stream['pipeline'] == 'skeleton_sequence' else
                ', the recording seen by one random virtual robot camera with keypoint noise and drop-outs')
             + f"); the event detector's smoothing, hysteresis and minimum gap are "
             f'chosen on the validation persons for a target of '
             f'{r["target_false_alarms_per_min_on_validation"]:g} false alarms per minute: '
             f'{r.get("calibration_rule", "pooled over the validation persons")}.' + (
                 ' This rule was chosen on validation: event F1 on the validation persons, pooled over the folds, '
                 f'{_p(s["validation_f1_by_rule"]["per_person"])} with it, '
                 f'{_p(s["validation_f1_by_rule"]["pooled"])} with the target held pooled over the validation '
                 'persons.' if 'validation_f1_by_rule' in s else ''), '',
             *(_budget_text(r) if r.get('false_alarm_budget_per_min') is not None else []),
             f'Matching rule: {r["matching_rule"]}.', '',
             '| | event F1 | precision | recall | false alarms / min (non-target) | substitutions | missed | '
             'latency p50 / p95 (s) |',
             '|---|---|---|---|---|---|---|---|',
             f'| pooled over the {len(r["folds"])} folds | {_p(p["f1"])} | {_p(p["precision"])} | {_p(p["recall"])} | '
             f'{p["false_alarms_per_min"]:.2f} ({p["false_alarms_in_non_target"]} in '
             f'{p["non_target_s"] / 60:.1f} min) | {p["substitutions"]} | {p["missed"]} of {p["instances"]} | '
             f'{lat["p50"]:.2f} / {lat["p95"]:.2f} |',
             f'| mean over folds | {_p(s["mean_f1"])} ± {s["std_f1"] * 100:.1f} | | | '
             f'{s["mean_false_alarms_per_min"]:.2f} | | | |',
             f'| pooled, instances ending 1.0 s after the action point | {_p(q["f1"])} | {_p(q["precision"])} | '
             f'{_p(q["recall"])} | {q["false_alarms_per_min"]:.2f} | | | |']
    lines += _fixed_row(s) + [
        '', '| fold | test persons | window accuracy | recordings | decisions | events | F1 | FA / min | '
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
            ceiling = detector_ceiling(p, sum(m[1] for m in most))
            lines += [f'A detector ceiling: were every instance of the other recordings found, with no event more, '
                      f'recall would be {_p(ceiling["recall"])} and F1 {_p(ceiling["f1"])} (precision '
                      f'{_p(ceiling["precision"])}): the most a detector reaches that leaves the misses of those '
                      f'{len(most)} recordings as they are.']
        lines += _instruction_table(neg.get('by_instruction'))
        if worst:
            lines += ['', f'Recordings with the most false alarms (of {total}): ' + ', '.join(
                f'{rec["name"]} {rec["false_alarms"]} ({rec["instances"]} instances, {rec["non_target_s"]:.0f} s '
                'non-target)' for rec in worst) + '.']
    if len(r.get('variants', {})) > 1:
        lines += ['', '## Variants (same folds, same calibration rule)', '',
                  '| variant | overrides | folds | window accuracy | event F1 pooled | mean over folds | precision | '
                  'recall | FA / min pooled | FA / min worst fold | validation F1 |',
                  '|---|---|---|---|---|---|---|---|---|---|---|']
        for name, v in r['variants'].items():
            q = v['pooled']
            lines.append(f'| {name} | {_overrides(v["overrides"]).strip(" ()") or "-"} | '
                         f'{", ".join(map(str, v["folds"]))} | {_p(v["mean_window_accuracy"])} | {_p(q["f1"])} | '
                         f'{_p(v["mean_f1"])} ± {v["std_f1"] * 100:.1f} | {_p(q["precision"])} | {_p(q["recall"])} | '
                         f'{_fa(q["false_alarms_per_min"])} | {_fa(v["max_false_alarms_per_min"])} | '
                         f'{_p(v["validation_f1_by_rule"]["per_person"])} |')
    lines += _learning_curve(r.get('variants', {}))
    cached = sum(row['cached'] for row in r['folds'])
    if cached:
        trained = sum(row['train_s'] for row in r['folds'] if row['cached'])
        lines += ['', f'{cached} of {len(r["folds"])} folds read their posteriors from the cache (the models trained '
                  'by an earlier run of this command with the same settings, `--retrain` to redo it; loading and '
                  f'training took {trained:.0f} s summed); the time below is then calibration and scoring only.']
    from centralnet_ros.machine import machine_line
    lines += ['', f'Training and calibration {r["wall_time_s"]:.0f} s summed over the runs of this variant '
              f'({r["jobs"]} process(es), 1 torch thread each) on {machine_line(r["machine"])}, {r["date"]}.', '',
              f'Command: `{r["command"]}`', '']
    return '\n'.join(lines)


if __name__ == '__main__':
    sys.exit(main())
