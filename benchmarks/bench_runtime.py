"""
Runtime benchmark: per-decision latency of each shipped model, conversion cost, replay throughput.

    python benchmarks/bench_runtime.py [--models models] [--out benchmarks/results] [--repeat 300]

What is measured, on real inputs (the ``centralnet demo`` recording: held-out MSRC-12
skeletons, AVLetters lips + espeak-ng letters, EmoDB utterances; see
:mod:`centralnet_ros.demo`):

1. **Per-decision latency** of the runtime for each model in ``--models`` (gesture,
   speech, emotion), from replaying the recording through
   :class:`~centralnet_ros.runtime.perception.Perception`: window assembly, features
   (the bundle's pipelines) and inference, p50/p95 over every decision, with the
   engine's ONNX Runtime backend (the CPU default) and with torch eager.
2. **Inference alone** on the model inputs captured during that replay (batch 1): a
   bare ONNX Runtime session on the same exported graph (``session.run``, 1 thread),
   the engine's ``TaskModel.classify`` on ONNX Runtime (what the runtime calls:
   session.run plus softmax, top-k and the result object), and on torch eager. The
   target: the runtime within 1.2x of ONNX Runtime. Per decision (features included)
   and for the inference step alone, both ratios are reported.
3. **CUDA**: torch fp32 / fp16 where a GPU is present; otherwise the rows say so.
4. **Conversion** of a 640x480 rgb8 ``sensor_msgs/Image`` as the runtime ingests it
   (conversion + buffering), next to ``benchmarks/results/conversion.md``
   (``benchmarks/bench_conversion.py``, the conversions alone).
5. **Replay throughput**: messages per second and how many times faster than real
   time, by wall clock and by process CPU time (on a shared machine the wall clock
   includes time other processes held the cores; the CPU time is what this replay
   used, single-threaded).

Writes ``runtime.json`` and ``runtime.md`` (atomically) with the machine and command.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
import statistics
import tempfile
import time

from bench_conversion import median_us  # the script's own folder is on sys.path
from centralnet_ros.machine import command_line, machine_description, machine_line, write_results
from centralnet_ros.node_params import TASKS
import numpy as np


def machine() -> dict:
    """Return the shared machine description plus the ONNX Runtime version."""
    import onnxruntime
    return {**machine_description(), 'onnxruntime': onnxruntime.__version__}


def pct(values: list[float]) -> dict:
    if not values:
        return {'p50': None, 'p95': None}
    a = np.asarray(values) * 1e3
    return {'p50': round(float(np.percentile(a, 50)), 4), 'p95': round(float(np.percentile(a, 95)), 4)}


def replay(bag: Path, cfg, *, capture: dict | None = None) -> dict:
    """Replay ``bag`` through a Perception built from ``cfg``; per-task timings and throughput."""
    from centralnet_ros.replay import player as P, topics as T
    from centralnet_ros.runtime.perception import Perception
    info = T.bag_info(bag)
    mapping = T.map_topics(info, cfg)
    perception = Perception(cfg)
    windows: dict[str, list] = {}
    for task, state in perception.tasks.items():       # keep assembled windows (re-timed below)
        windows[task] = []
        assemble = state.assembler.assemble

        def keep(point, _assemble=assemble, _store=windows[task], **kw):
            window = _assemble(point, **kw)    # a deferred window is finished by the runtime (same object)
            if len(_store) < 24 and any(m.present for m in window.modalities.values()):
                _store.append(window)
            return window
        state.assembler.assemble = keep
    if capture is not None:                     # keep the model inputs of the decisions (for section 2)
        for task, state in perception.tasks.items():
            capture[task] = []
            original = state.model.classify

            def recording(inputs, _orig=original, _store=capture[task], **kw):
                if len(_store) < 64:
                    _store.append({m: np.array(v) for m, v in inputs.items()})
                return _orig(inputs, **kw)
            state.model.classify = recording
    cpu0 = time.process_time()
    run = P.replay_bag(bag, perception, mapping, info=info, progress=False)
    cpu = time.process_time() - cpu0
    for state in perception.tasks.values():     # unwrap before re-timing
        vars(state.model).pop('classify', None)
        vars(state.assembler).pop('assemble', None)
    out = {'messages': run.messages, 'bag_duration_s': round(run.bag_duration_s, 3), 'wall_s': round(run.wall_s, 3),
           'cpu_s': round(cpu, 3), 'runtime_s': round(run.runtime_s, 3),
           'messages_per_s_wall': round(run.messages_per_s, 1),
           'real_time_factor_wall': round(run.real_time_factor, 1),
           'messages_per_s_cpu': round(run.messages / cpu, 1) if cpu > 0 else None,
           'real_time_factor_cpu': round(run.bag_duration_s / cpu, 1) if cpu > 0 else None,
           'tasks': {}}
    for task in perception.tasks:
        rs = [r for r in run.results if r.task == task]
        out['tasks'][task] = {'decisions': len(rs),
                              **{k: pct([r.timing[k] for r in rs]) for k in ('assembly', 'features', 'inference',
                                                                             'total')},
                              'retimed': retime(perception, task, windows[task], repeat=15)}
    perception.close()
    return out


def retime(perception, task: str, windows: list, *, repeat: int) -> dict:
    """
    Time features + inference of ``task`` on captured windows, each run ``repeat`` times (ms).

    The median per window (robust to the preemption a shared machine causes), then the median
    over windows.
    """
    if not windows:
        return {}
    per = {'features': [], 'inference': [], 'total': []}
    for w in windows:
        runs = [perception.decide_window(task, w).timing for _ in range(repeat)]
        for k in per:
            per[k].append(statistics.median(r[k] for r in runs))
    return {k: round(statistics.median(v) * 1e3, 4) for k, v in per.items()} | {'windows': len(windows)}


def inference(bundle: Path, inputs: list[dict], repeat: int) -> dict:
    """Bare ONNX Runtime vs the engine (ONNX Runtime, torch eager; CUDA where present), batch 1."""
    import torch

    from centralnet_ros.bundle.export import export_onnx_bytes, ort_session
    from centralnet_ros.runtime.engine import TaskModel
    ort_model = TaskModel(bundle, backend='onnxruntime', threads=1)
    eager = TaskModel(bundle, backend='torch', threads=1)
    session = ort_session(export_onnx_bytes(ort_model.model), threads=1)
    wanted = {i.name for i in session.get_inputs()}
    feeds = []
    for x in inputs:
        f = {m: (x[m][None] if m in x else np.zeros((1, *ort_model.shapes[m]), np.float32))
             for m in ort_model.modalities if m in wanted}
        f['present'] = np.asarray([[m in x for m in ort_model.modalities]], np.float32)
        feeds.append(f)
    k = {'i': 0}

    def cycle(fn, items):
        def call():
            k['i'] = (k['i'] + 1) % len(items)
            fn(items[k['i']])
        return call

    out = {'inputs': len(inputs),
           'bare_onnxruntime_us': median_us(cycle(lambda f: session.run(['logits'], f), feeds), repeat, warmup=20),
           'engine_onnxruntime_us': median_us(cycle(lambda x: ort_model.classify(x), inputs), repeat, warmup=20),
           'engine_torch_eager_us': median_us(cycle(lambda x: eager.classify(x), inputs), repeat, warmup=20)}
    if torch.cuda.is_available():
        for precision in ('fp32', 'fp16'):
            gpu = TaskModel(bundle, device='cuda', backend='torch', precision=precision)

            def call(x, _m=gpu):
                _m.classify(x)
                torch.cuda.synchronize()
            out[f'engine_cuda_{precision}_us'] = median_us(cycle(call, inputs), repeat, warmup=20)
    else:
        out['cuda'] = 'not measured: no GPU on this machine'
    return out


def image_ingest(repeat: int) -> dict:
    """Time a 640x480 rgb8 Image through InputHub.ingest (conversion + buffering), as Perception ingests it."""
    from centralnet_ros import messages as M
    from centralnet_ros.replay import msgdefs as D
    from centralnet_ros.runtime.buffers import InputHub, InputSpec
    store = D.make_typestore()
    img = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    raw = store.serialize_cdr(D.image_message(img, encoding='rgb8', stamp_ns=0, typestore=store),
                              'sensor_msgs/msg/Image')
    msg = store.deserialize_cdr(raw, 'sensor_msgs/msg/Image')          # as a bag reader hands it over
    hub = InputHub([InputSpec('image', 'image')])
    t = {'ns': 1_700_000_000 * 10 ** 9}

    def ingest():
        t['ns'] += 33_333_333
        msg.header.stamp.sec, msg.header.stamp.nanosec = M.ns_to_stamp(t['ns'])
        hub.ingest('image', msg)
    conv = median_us(lambda: M.image_to_array(msg), repeat, warmup=20)
    shares = bool(np.shares_memory(M.image_to_array(msg), msg.data))
    return {'image_to_array_us': round(conv, 2), 'hub_ingest_us': round(median_us(ingest, repeat, warmup=20), 2),
            'zero_copy': shares}


def render(res: dict) -> str:
    m = res['machine']
    lines = ['# Runtime latency and replay throughput', '',
             f'Command: `{res["command"]}`  ',
             f'Machine: {machine_line(m)} (shared machine), Python {m["python"]}, '
             f'onnxruntime {m["onnxruntime"]}  ',
             f'Inputs: the `centralnet demo` recording ({res["bag"]["duration_s"]:.1f} s; '
             + ', '.join(f'{c} {t}' for t, c in sorted(res['bag']['counts'].items())) + '); '
             'one thread for torch and ONNX Runtime.', '']
    for task, b in res.get('bundles', {}).items():
        lines.append(f'- {task} bundle: `{b["path"]}` ({b["method"]}, preset {b["preset"]}, {b["epochs_run"]} epochs, '
                     f'{b["metrics"]})')
    for note in res['notes']:
        lines.append(f'- {note}')
    lines += ['', '## Per-decision latency (replay, ms)', '',
              '| model | backend | decisions | assembly p50 | features p50 | inference p50 | total p50 | total p95 |',
              '|---|---|---:|---:|---:|---:|---:|---:|']
    for backend, rep in res['replay'].items():
        for task, t in rep['tasks'].items():
            lines.append(f'| {task} | {backend} | {t["decisions"]} | {t["assembly"]["p50"]:.3f} | '
                         f'{t["features"]["p50"]:.3f} | {t["inference"]["p50"]:.3f} | {t["total"]["p50"]:.3f} | '
                         f'{t["total"]["p95"]:.3f} |')
    lines += ['', 'Re-timed: features + inference on up to 24 windows captured in the replay, each run 15 times '
              '(median per window, then over windows; robust to preemption by other processes), ms:', '',
              '| model | backend | windows | features | inference | total |', '|---|---|---:|---:|---:|---:|']
    for backend, rep in res['replay'].items():
        for task, t in rep['tasks'].items():
            r = t.get('retimed') or {}
            if r:
                lines.append(f'| {task} | {backend} | {r["windows"]} | {r["features"]:.3f} | {r["inference"]:.3f} | '
                             f'{r["total"]:.3f} |')
    lines += ['', '## Inference alone, batch 1, captured real inputs (median µs)', '',
              '| model | bare ONNX Runtime | runtime (ONNX Runtime) | ratio | runtime (torch eager) | ratio | '
              'per decision incl. features: runtime / bare ORT | CUDA fp32 | CUDA fp16 |',
              '|---|---:|---:|---:|---:|---:|---:|---:|---:|']
    for task, r in res['inference'].items():
        if 'skipped' in r:
            lines.append(f'| {task} | {r["skipped"]} | | | | | | | |')
            continue
        bare, ort, eager = r['bare_onnxruntime_us'], r['engine_onnxruntime_us'], r['engine_torch_eager_us']
        feat = (res['replay']['onnxruntime']['tasks'].get(task, {}).get('retimed') or {}).get('features') or 0.0
        per_decision = (feat * 1e3 + ort) / (feat * 1e3 + bare)
        cuda = [f'{r[k]:.1f}' if k in r else r.get('cuda', '') for k in ('engine_cuda_fp32_us', 'engine_cuda_fp16_us')]
        lines.append(f'| {task} | {bare:.1f} | {ort:.1f} | {ort / bare:.2f}x | {eager:.1f} | {eager / bare:.2f}x | '
                     f'{per_decision:.3f}x | {cuda[0]} | {cuda[1]} |')
    c = res['conversion']
    zero_copy = 'yes' if c['zero_copy'] else 'no'
    lines += ['', '## Conversion of a 640x480 rgb8 Image', '',
              f'`messages.image_to_array`: {c["image_to_array_us"]:.1f} µs (zero-copy: {zero_copy}); '
              f'`InputHub.ingest` (conversion, stamp checks, buffering): {c["hub_ingest_us"]:.1f} µs. '
              'Every encoding: `benchmarks/results/conversion.md` (`python benchmarks/bench_conversion.py`).', '',
              '## Replay throughput', '',
              '| backend | messages | recording (s) | wall (s) | msg/s (wall) | x real time (wall) | CPU (s) | '
              'msg/s (CPU) | x real time (CPU) |',
              '|---|---:|---:|---:|---:|---:|---:|---:|---:|']
    for backend, rep in res['replay'].items():
        lines.append(f'| {backend} | {rep["messages"]} | {rep["bag_duration_s"]:.1f} | {rep["wall_s"]:.2f} | '
                     f'{rep["messages_per_s_wall"]:,.0f} | {rep["real_time_factor_wall"]:.0f} | {rep["cpu_s"]:.2f} | '
                     f'{rep["messages_per_s_cpu"]:,.0f} | {rep["real_time_factor_cpu"]:.0f} |')
    lines += ['', '## Against the targets (2 CPU cores)', '']
    for task, r in res['inference'].items():
        if 'skipped' in r:
            continue
        feat = (res['replay']['onnxruntime']['tasks'].get(task, {}).get('retimed') or {}).get('features') or 0.0
        ratio = (feat * 1e3 + r['engine_onnxruntime_us']) / (feat * 1e3 + r['bare_onnxruntime_us'])
        alone = r['engine_onnxruntime_us'] / r['bare_onnxruntime_us']
        extra = r['engine_onnxruntime_us'] - r['bare_onnxruntime_us']
        eager = r['engine_torch_eager_us'] / r['bare_onnxruntime_us']
        lines.append(f'- {task}: per decision {ratio:.2f}x ONNX Runtime ({"met" if ratio <= 1.2 else "missed"}: '
                     f'target 1.2x); the inference step alone {alone:.2f}x (+{extra:.0f} µs in Python: input '
                     f'checks, softmax, top-k, the result object); torch eager would be {eager:.1f}x.')
    rep = res['replay'].get('onnxruntime')
    if rep:
        lines.append(f'- replay: {rep["real_time_factor_cpu"]:.0f}x real time by CPU time '
                     f'({"met" if rep["real_time_factor_cpu"] >= 50 else "missed"}: target 50x), '
                     f'{rep["real_time_factor_wall"]:.0f}x by the wall clock of this shared machine (1-min load '
                     f'{m.get("load_average_1min", "?")} on {m["cpu_count"]} cores at start).')
    lines.append('')
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--models', type=Path, default=None, help='folder with gesture/ speech/ emotion/ bundles '
                        '(default: the package models/)')
    parser.add_argument('--out', type=Path, default=Path(__file__).resolve().parent / 'results')
    parser.add_argument('--repeat', type=int, default=300)
    parser.add_argument('--data-root', default=None,
                        help='build the recording from the datasets here (default: the embedded demo recording, '
                             'unless $CENTRALNET_DATA_ROOT is set)')
    args = parser.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    from centralnet_ros import paths
    from centralnet_ros.bundle.io import BundleError, read_manifest
    from centralnet_ros.replay.cli import build_config
    from centralnet_ros.demo import (build_demo_bag, DemoOptions, embedded_recording, read_recording_info,
                                     RECORDING_BAG)
    models = args.models or paths.models_dir()
    notes, manifests, bundles = [], {}, {}
    if models.resolve() != paths.models_dir().resolve():
        notes.append(f'bundles from {models}, not the shipped models/: latency depends on the architecture '
                     '(the preset), not on the weights; the accuracy of these bundles is not what ships')
    for task in TASKS:
        try:
            manifests[task] = read_manifest(models / task)
            bundles[task] = models / task
        except BundleError as exc:
            notes.append(f'{task}: not measured ({exc})')
    res = {'command': command_line(argv, program='python benchmarks/bench_runtime.py'),
           'machine': machine(), 'notes': notes, 'replay': {}, 'inference': {},
           'bundles': {t: {'path': str(bundles[t]), 'method': m.model.method, 'preset': m.training.get('preset'),
                           'epochs_run': m.training.get('epochs_run'),
                           'metrics': ', '.join(f'{k} {v:.4g}' for k, v in m.metrics.items())}
                       for t, m in manifests.items()}}
    with tempfile.TemporaryDirectory() as tmp:
        if args.data_root is None and not os.environ.get(paths.DATA_ROOT_ENV):   # any machine: the shipped recording
            recording = embedded_recording()
            info = read_recording_info(recording)
            notes += [f'the embedded demo recording ({recording.name})', *info.get('notes', [])]
            bag = recording / RECORDING_BAG
            res['bag'] = {'duration_s': info['duration_s'], 'counts': info['messages']}
            tasks = [t for t in TASKS if t in info['tasks'] and t in bundles]
        else:
            demo = build_demo_bag(Path(tmp), manifests, data_root=paths.data_root(args.data_root),
                                  options=DemoOptions(any_samples=True))
            notes += demo.notes
            bag = demo.path
            res['bag'] = {'duration_s': demo.duration_s, 'counts': demo.counts}
            tasks = [t for t in demo.tasks if t in bundles]
        captured: dict[str, list] = {}
        if tasks:
            for backend in ('onnxruntime', 'torch'):
                cfg, _ = build_config(tasks=tasks, bundles={t: str(bundles[t]) for t in tasks}, backend=backend)
                res['replay'][backend] = replay(bag, cfg, capture=captured if backend == 'onnxruntime' else None)
        for task in TASKS:
            if task not in tasks:
                res['inference'][task] = {'skipped': 'not measured (no bundle or no inputs)'}
            elif not captured.get(task):
                res['inference'][task] = {'skipped': 'not measured (no decision in the recording)'}
            else:
                res['inference'][task] = inference(bundles[task], captured[task], args.repeat)
    res['conversion'] = image_ingest(args.repeat)
    print(write_results(args.out, 'runtime', res, render, command=res['command']))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
