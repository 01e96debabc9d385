"""
The report's KNN audio-to-video transfer on AVLetters (Hsieh 2017, Table 2).

Audio network on all training audio, video network on A-T training video, KNN mapping
(k = 12) from second-layer audio representations to video representations, fine-tuning
of the video network on transferred U-Z samples (:mod:`centralnet_ros.training.transfer`),
no transfer and three settings, over ``--seeds`` seeds.

Usage::

    python benchmarks/transfer_benchmark.py [--data-root DIR] [--out benchmarks/results] [--set seeds=N]

``--set KEY=VALUE`` overrides a :class:`~centralnet_ros.training.transfer.TransferConfig` field
(over this benchmark's own default, ``seeds=2``), as ``centralnet transfer --set`` does.

Writes ``transfer.json`` and ``transfer.md`` into ``--out`` (atomically) and prints the
table.  The KNN mappings (tens of MB each) are saved under the cache folder
(``centralnet_ros.paths.cache_dir() / 'transfer_benchmark'``), reloaded, and checked to
give identical transfers; they are not committed.
"""
from __future__ import annotations

import argparse
from pathlib import Path
import sys

from centralnet_ros import paths
from centralnet_ros.config import with_overrides
from centralnet_ros.machine import command_line, machine_description
from centralnet_ros.training.experiment import parse_overrides
from centralnet_ros.training.transfer import render_markdown, run_transfer, TransferConfig, write_results
import torch

RESULTS = Path(__file__).resolve().parent / 'results'
BENCHMARK = {'seeds': 2}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', type=Path, default=RESULTS)
    parser.add_argument('--data-root', type=Path, default=None)
    parser.add_argument('--set', dest='overrides', action='append', default=[], metavar='KEY=VALUE',
                        help='override a TransferConfig field (repeatable); the benchmark sets seeds=2')
    parser.add_argument('--mapping-dir', type=Path, default=None,
                        help='where the KNN mappings go (default: <cache>/transfer_benchmark)')
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cfg = with_overrides(TransferConfig, {**BENCHMARK, **parse_overrides(args.overrides)})
    mapping_dir = args.mapping_dir or paths.cache_dir() / 'transfer_benchmark'
    result = run_transfer(cfg, out_dir=mapping_dir, data_root=args.data_root)
    command = command_line(argv, program='python benchmarks/transfer_benchmark.py')
    write_results(result, args.out, command=command, machine=machine_description())
    print(render_markdown(result))
    return 0


if __name__ == '__main__':
    sys.exit(main())
