"""
The report's probing table and Figures 7 and 9 on AV-MNIST (Hsieh 2017, auto-encoders).

Trains two denoising CAEs (image 1x28x28, log-mel 1x24x24), the bimodal CAE with a
shared middle layer, the supervised CAE-architecture and CNN baselines, and probes the
representations with linear classifiers (:mod:`centralnet_ros.training.probe`).

Usage::

    python benchmarks/probing_benchmark.py [--data-root DIR] [--out benchmarks/results] [--set KEY=VALUE ...]

``--set`` overrides a :class:`~centralnet_ros.training.probe.ProbeConfig` field, as
``centralnet probe --set`` does; the benchmark trains the bimodal CAE and the supervised
networks for as many epochs as each CAE (``cae_epochs``).

Writes ``probing.json``, ``probing.md``, ``probing_denoising.png`` and
``probing_cross_modal.png`` into ``--out`` (atomically) and prints the table.  About
10 minutes on one CPU thread (10,000 training pairs, 6 epochs per network).
"""
from __future__ import annotations

import argparse
from pathlib import Path
import sys

from centralnet_ros.config import with_overrides
from centralnet_ros.machine import command_line, machine_description
from centralnet_ros.training.experiment import parse_overrides
from centralnet_ros.training.probe import ProbeConfig, render_markdown, run_probe, write_results
import torch

RESULTS = Path(__file__).resolve().parent / 'results'


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', type=Path, default=RESULTS)
    parser.add_argument('--data-root', type=Path, default=None)
    parser.add_argument('--set', dest='overrides', action='append', default=[], metavar='KEY=VALUE',
                        help='override a ProbeConfig field (repeatable)')
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    overrides = parse_overrides(args.overrides)
    epochs = overrides.get('cae_epochs', ProbeConfig().cae_epochs)
    cfg = with_overrides(ProbeConfig, {'bimodal_epochs': epochs, 'supervised_epochs': epochs, **overrides})
    result = run_probe(cfg, out_dir=args.out, data_root=args.data_root)
    command = command_line(argv, program='python benchmarks/probing_benchmark.py')
    write_results(result, args.out, command=command, machine=machine_description())
    print(render_markdown(result))
    return 0


if __name__ == '__main__':
    sys.exit(main())
