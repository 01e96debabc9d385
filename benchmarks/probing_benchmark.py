"""
The report's probing table and Figures 7 and 9 on AV-MNIST (Hsieh 2017, auto-encoders).

Trains two denoising CAEs (image 1x28x28, log-mel 1x24x24), the bimodal CAE with a
shared middle layer, the supervised CAE-architecture and CNN baselines, and probes the
representations with linear classifiers (:mod:`centralnet_ros.training.probe`).

Usage::

    python benchmarks/probing_benchmark.py [--data-root DIR] [--out benchmarks/results]

Writes ``probing.json``, ``probing.md``, ``probing_denoising.png`` and
``probing_cross_modal.png`` into ``--out`` (atomically) and prints the table.  About
10 minutes on one CPU thread (10,000 training pairs, 6 epochs per network).
"""
from __future__ import annotations

import argparse
from pathlib import Path
import shlex
import sys

from centralnet_ros.machine import machine_description
from centralnet_ros.training.probe import ProbeConfig, render_markdown, run_probe, write_results
import torch

RESULTS = Path(__file__).resolve().parent / 'results'


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    d = ProbeConfig()
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', type=Path, default=RESULTS)
    parser.add_argument('--data-root', type=Path, default=None)
    parser.add_argument('--n-train', type=int, default=d.n_train)
    parser.add_argument('--epochs', type=int, default=d.cae_epochs,
                        help='epochs of every CAE, bimodal CAE and supervised network')
    parser.add_argument('--seed', type=int, default=d.seed)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cfg = ProbeConfig(n_train=args.n_train, seed=args.seed, cae_epochs=args.epochs, bimodal_epochs=args.epochs,
                      supervised_epochs=args.epochs)
    result = run_probe(cfg, out_dir=args.out, data_root=args.data_root)
    command = 'python benchmarks/probing_benchmark.py ' + ' '.join(shlex.quote(a) for a in argv)
    write_results(result, args.out, command=command.strip(), machine=machine_description())
    print(render_markdown(result))
    return 0


if __name__ == '__main__':
    sys.exit(main())
