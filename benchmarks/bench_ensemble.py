"""
Where vmapped ensembles pay: seconds per seed, independent runs against one vmapped ensemble.

    python benchmarks/bench_ensemble.py [--members 64] [--epochs 2] [--out benchmarks/results]

For each preset, every fusion method's model is trained for ``--epochs`` epochs on data of the
preset's input shapes (random numbers: this measures speed, not accuracy, so the datasets
need not be present), once as ``--independent`` separate runs (``train``, one after the
other) and once as a ``--members``-member ensemble (``train_ensemble``), single-threaded.
The figure is the time per seed of each, and their ratio.  Presets: the fully connected
feature presets (Montalbano, AFEW, MM-IMDb, AudioSet, EmoDB) and AV-MNIST's small CNNs.

Writes ``ensemble.json`` and ``ensemble.md`` (atomically) with the machine and the command.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
import sys
import time

from centralnet_ros.fusion import build_model
from centralnet_ros.machine import command_line, machine_description, machine_line, write_results
from centralnet_ros.torch_utils import seed_everything
from centralnet_ros.training.ensemble import train_ensemble
from centralnet_ros.training.experiment import load_experiment
from centralnet_ros.training.trainer import ArraySplit, train
import numpy as np
import torch

PRESETS = ('montalbano', 'afew', 'mmimdb', 'audioset', 'emodb_emotion', 'avmnist')


def _split(cfg, n: int, seed: int) -> ArraySplit:
    rng = np.random.default_rng(seed)
    shapes = {m: spec.input_shape for m, spec in cfg.fusion_config(cfg.methods[-1]).modalities.items()}
    y = rng.integers(0, cfg.num_classes, n)
    inputs = {m: rng.normal(size=(n, *s)).astype(np.float32) for m, s in shapes.items()}
    if cfg.task == 'multilabel':
        y = (rng.random((n, cfg.num_classes)) < 0.2).astype(np.float32)
    return ArraySplit(inputs, y)


def measure(preset: str, members: int, independent: int, epochs: int, n_train: int) -> list[dict]:
    cfg = load_experiment(preset)
    tcfg = dataclasses.replace(cfg.train, epochs=epochs, patience=0, progress=False, device='cpu', num_threads=1)
    tr, va = _split(cfg, n_train, 1), _split(cfg, max(64, n_train // 4), 2)
    rows = []
    warm = build_model(cfg.fusion_config(cfg.methods[0]))          # first-call costs out of the timings
    train(warm, tr.subset(np.arange(64)), va.subset(np.arange(32)), dataclasses.replace(tcfg, epochs=1), task=cfg.task)
    train_ensemble([warm, build_model(cfg.fusion_config(cfg.methods[0]))], [0, 1], tr.subset(np.arange(64)),
                   va.subset(np.arange(32)), dataclasses.replace(tcfg, epochs=1), task=cfg.task)
    for method in cfg.methods:
        def models(seeds):
            out = []
            for s in seeds:
                seed_everything(s)
                out.append(build_model(cfg.fusion_config(method)))
            return out
        t0 = time.perf_counter()
        for s, model in zip(range(independent), models(range(independent))):
            train(model, tr, va, tcfg, seed=s, task=cfg.task)
        alone = (time.perf_counter() - t0) / independent
        seeds = list(range(members))
        t0 = time.perf_counter()
        train_ensemble(models(seeds), seeds, tr, va, tcfg, task=cfg.task)
        vmapped = (time.perf_counter() - t0) / members
        params = sum(p.numel() for p in models([0])[0].parameters())
        rows.append({'preset': preset, 'method': method, 'members': members, 'parameters': params,
                     'independent_s_per_seed': alone,
                     'vmapped_s_per_seed': vmapped, 'speedup': alone / vmapped})
        print(f'{preset:>14s} {method:>22s} {params:>10,d} params: {alone:7.3f} s alone, '
              f'{vmapped:7.3f} s vmapped per seed, x{alone / vmapped:.2f}', flush=True)
    return rows


def render(rows: list[dict], args, machine: dict, command: str) -> str:
    lines = ['# Vmapped ensembles against independent runs (CPU)', '',
             machine_line(machine) + ' (other jobs ran beside it: the ratio of two timings taken one after '
             'the other is the figure, the seconds themselves are inflated)', '',
             f'Command: `{command}`', '',
             f'{args.epochs} epochs on {args.n_train} training samples of each preset’s input shapes, '
             f'single-threaded; independent = mean of {args.independent} separate `train` runs, vmapped = '
             'one `train_ensemble` of the members shown, divided by their number.  Seconds per seed '
             '(lower is better); speed-up = independent / vmapped.', '',
             '| preset | method | members | parameters | independent (s/seed) | vmapped (s/seed) | speed-up |',
             '|---|---|---|---|---|---|---|']
    for r in rows:
        lines.append(f'| {r["preset"]} | {r["method"]} | {r["members"]} | {r["parameters"]:,} | '
                     f'{r["independent_s_per_seed"]:.3f} | '
                     f'{r["vmapped_s_per_seed"]:.3f} | x{r["speedup"]:.2f} |')
    by_preset = {}
    for r in rows:
        by_preset.setdefault(r['preset'], []).append(r['speedup'])
    lines += ['', 'Median speed-up per preset: ' + ', '.join(
        f'{p} x{np.median(v):.2f}' for p, v in by_preset.items()) + '.', '',
        '`centralnet compare --vmap` trains each method’s seeds as one ensemble; use it where the '
        'speed-up above is well over 1 (and on a GPU, not measured here: no GPU was available).']
    return '\n'.join(lines) + '\n'


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--presets', default=','.join(PRESETS))
    parser.add_argument('--members', type=int, default=64)
    parser.add_argument('--cnn-members', type=int, default=16,
                        help='members for presets with convolutional encoders (they gain nothing on CPU)')
    parser.add_argument('--independent', type=int, default=4, help='independent runs timed per method')
    parser.add_argument('--epochs', type=int, default=2)
    parser.add_argument('--n-train', type=int, default=1024)
    parser.add_argument('--out', type=Path, default=Path(__file__).resolve().parent / 'results')
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for preset in args.presets.split(','):
        cnn = any(spec.kind != 'mlp' for spec in load_experiment(preset).modalities.values())
        rows += measure(preset, args.cnn_members if cnn else args.members, args.independent, args.epochs,
                        args.n_train)
    machine = machine_description()
    command = command_line(argv, program='python benchmarks/bench_ensemble.py')
    write_results(args.out, 'ensemble', {'machine': machine, 'rows': rows}, command=command, indent=1,
                  markdown=render(rows, args, machine, command))
    print(f'wrote {args.out / "ensemble.md"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
