"""
``centralnet probe``: the auto-encoder probing table and figures (AV-MNIST, Senz3D, ASL Finger Spelling).

Trains the unimodal (denoising) CAEs, the bimodal CAE and the supervised baselines of
:mod:`centralnet_ros.training.probe`, then writes ``probing.json``,
``probing.md`` and the two PNG figures into ``--out``.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
import sys

from centralnet_ros import paths


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from centralnet_ros.training.probe import PROBE_DATASETS, ProbeConfig
    d = ProbeConfig()
    parser.add_argument('--set', dest='overrides', action='append', default=[], metavar='KEY=VALUE',
                        help='override a ProbeConfig field (repeatable), as compare does a preset: '
                             + ', '.join(f'{k}={v}' for k, v in dataclasses.asdict(d).items())
                             + f'; dataset is one of {", ".join(PROBE_DATASETS)}')
    parser.add_argument('--out', type=Path, default=Path('probe_out'), help='folder for the table and figures')
    parser.add_argument('--data-root', type=Path, default=None,
                        help=f'folder holding the datasets (default: {paths.DATA_ROOT_DEFAULT})')
    parser.add_argument('--threads', type=int, default=1, help='torch intra-op threads')


def run(args: argparse.Namespace) -> int:
    import torch

    from centralnet_ros.config import ConfigError, with_overrides
    from centralnet_ros.training.experiment import parse_overrides
    from centralnet_ros.training.probe import ProbeConfig, render_markdown, run_probe, write_results
    from centralnet_ros.machine import command_line, machine_description
    torch.set_num_threads(max(1, args.threads))
    try:
        cfg = with_overrides(ProbeConfig, parse_overrides(args.overrides))
    except (ConfigError, ValueError) as exc:
        print(f'centralnet probe: {exc}', file=sys.stderr)
        return 2
    result = run_probe(cfg, out_dir=args.out, data_root=args.data_root)
    command = command_line(args=args)
    write_results(result, args.out, command=command, machine=machine_description())
    print(render_markdown(result))
    return 0
