"""
Per-decision cost of the emotion features, before and after issue #12, on real EmoDB utterances.

For each utterance (2 s at 22.05 kHz, as a microphone would deliver it) the script times,
single-threaded, the pieces of one emotion decision:

- the runtime's one resampling of the microphone (22.05 -> 16 kHz here);
- the previous pipeline ``log_mel`` (layout functionals): whole, and its YIN pitch part;
- the new pipeline ``emotion_functionals``: whole, and its parts: the frame descriptors
  (of which the pitch search) and the functionals;
- the per-voice adaptation step (:class:`~centralnet_ros.runtime.adaptation.VoiceAdaptation`);
- inference of the shipped bundle (ONNX Runtime, as the runtime runs it).

Each figure is the median over utterances and repeats of the thread CPU time (what the
decision costs the core it runs on, unaffected by other processes holding the cores)
and of the wall time.  Writes ``emotion_features.{md,json}`` with machine and command.

    python benchmarks/bench_emotion_features.py [--utterances 20] [--repeat 5]
"""
from __future__ import annotations

import argparse
from pathlib import Path
import sys
import time

import numpy as np


def timed(fn, repeat: int) -> tuple[list[float], list[float]]:
    """Thread-CPU and wall seconds of ``repeat`` calls of ``fn`` (after one warm-up call)."""
    fn()
    cpu, wall = [], []
    for _ in range(repeat):
        c0, w0 = time.thread_time(), time.perf_counter()
        fn()
        cpu.append(time.thread_time() - c0)
        wall.append(time.perf_counter() - w0)
    return cpu, wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--utterances', type=int, default=20)
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--models', default=None, help='folder holding the emotion bundle (default: shipped)')
    parser.add_argument('--out', default=str(Path(__file__).resolve().parent / 'results'))
    args = parser.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    from centralnet_ros import paths
    from centralnet_ros.config import from_dict
    from centralnet_ros.data import emodb
    from centralnet_ros.features import audio as A
    from centralnet_ros.features import functionals as F
    from centralnet_ros.features.normalisation import SpeakerNormalisation
    from centralnet_ros.features.pipelines import run_pipeline, Window
    from centralnet_ros.machine import command_line, machine_description, write_results
    from centralnet_ros.runtime.adaptation import VoiceAdaptation
    from centralnet_ros.runtime.engine import TaskModel

    bundle = Path(args.models) / 'emotion' if args.models else paths.models_dir() / 'emotion'
    model = TaskModel(bundle, backend='onnxruntime', threads=1)
    spec = model.manifest.modalities['audio']
    adapt = VoiceAdaptation(from_dict(SpeakerNormalisation, spec.normalisation))
    old = {'sample_rate': 16000, 'duration_s': 2.0, 'n_fft': 400, 'hop_length': 160, 'n_mels': 64, 'f_min': 50.0,
           'f_max': 8000.0, 'floor': 1e-6, 'mean': -3.8, 'std': 4.5, 'length_mode': 'start',
           'layout': 'functionals', 'f0_min': 60.0, 'f0_max': 400.0}
    cfg = F.FunctionalsConfig(**spec.preprocessing)
    utts = emodb.list_utterances(paths.data_root() / 'emodb')[::max(1, 408 // args.utterances)][:args.utterances]
    parts: dict[str, tuple[list, list]] = {}

    def add(name, fn):
        c, w = timed(fn, args.repeat)
        parts.setdefault(name, ([], []))
        parts[name][0].extend(c)
        parts[name][1].extend(w)

    for u in utts:
        raw, rate = emodb.read_wav(u.path)
        wave = A.resample_audio(raw, orig_sample_rate=rate, new_sample_rate=16000)   # the runtime's one resampling
        window = Window(wave, np.zeros(1, np.int64), sample_rate=16000)
        frames = A.stft_frames(wave, n_fft=cfg.frame_length, hop_length=cfg.hop_length)
        rms = np.sqrt(np.mean(frames[:, :cfg.n_fft] ** 2, axis=1))
        llds = F.frame_descriptors(wave, cfg=cfg)
        x = run_pipeline(spec.pipeline, window, spec.preprocessing)
        add('previous pipeline log_mel (functionals), whole', lambda: run_pipeline('log_mel', window, old))
        add('previous pipeline: its YIN pitch', lambda: A.prosody_functionals(wave, sample_rate=16000))
        add('emotion_functionals pipeline, whole (after resampling)',
            lambda: run_pipeline(spec.pipeline, window, spec.preprocessing))
        add('  resampling 22.05 -> 16 kHz',
            lambda: A.resample_audio(raw, orig_sample_rate=rate, new_sample_rate=16000))
        add('  frame descriptors (spectral + pitch)', lambda: F.frame_descriptors(wave, cfg=cfg))
        add('    of which the pitch search', lambda: F._pitch(frames, rms, cfg))
        add('  functionals over the frames', lambda: F.utterance_functionals(llds, cfg=cfg))
        add('per-voice adaptation step', lambda: adapt(x, voice_id='v'))
        z = adapt.transform(x, voice_id='v')
        add('inference (ONNX Runtime, TaskModel.classify)', lambda: model.classify({'audio': z}))
    rows = {k: {'cpu_ms': round(1e3 * float(np.median(c)), 3), 'wall_ms': round(1e3 * float(np.median(w)), 3),
                'cpu_p95_ms': round(1e3 * float(np.percentile(c, 95)), 3)} for k, (c, w) in parts.items()}
    total = sum(rows[k]['cpu_ms'] for k in ('  resampling 22.05 -> 16 kHz',
                                            'emotion_functionals pipeline, whole (after resampling)',
                                            'per-voice adaptation step',
                                            'inference (ONNX Runtime, TaskModel.classify)'))
    m = machine_description()
    command = command_line(argv, program='python benchmarks/bench_emotion_features.py')
    result = {'rows': rows, 'decision_cpu_ms': round(total, 3), 'utterances': len(utts), 'repeat': args.repeat,
              'bundle': str(bundle), 'machine': m, 'command': command, 'date': time.strftime('%Y-%m-%d'),
              'load_average': [round(float(v), 2) for v in __import__('os').getloadavg()]}
    lines = ['# Emotion features: per-decision cost', '',
             f'{len(utts)} EmoDB utterances (2 s at 22.05 kHz) x {args.repeat} repeats, one thread; median thread '
             'CPU time (the cost on the core that runs it) and median wall time.', '',
             '| step | CPU ms (median) | CPU ms (p95) | wall ms (median) |', '|---|---|---|---|']
    lines += [f'| {k} | {v["cpu_ms"]:.2f} | {v["cpu_p95_ms"]:.2f} | {v["wall_ms"]:.2f} |' for k, v in rows.items()]
    lines += ['', f'One emotion decision (resampling, new features, adaptation, inference): **{total:.2f} ms** of CPU '
              '(target: 10 ms on 2 cores).', '',
              f'Machine: {m.get("cpu_model", m["processor"])} x{m["cpu_count"]}, {m["platform"]}; load average '
              f'{result["load_average"]} during the run (shared with other jobs: wall times include waiting).', '',
              f'Command: `{command}`', '']
    print(write_results(args.out, 'emotion_features', result, markdown='\n'.join(lines), command=command))
    return 0


if __name__ == '__main__':
    sys.exit(main())
