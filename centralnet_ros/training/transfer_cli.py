"""
``centralnet transfer``: the KNN audio-to-video transfer on AVLetters (report Table 2).

Trains the audio network on all training audio and the video network on A-T video,
builds the KNN mapping (saved as ``knn_mapping_seed*_video_layer*.safetensors`` in
``--out`` and reloaded from there), fine-tunes the video network on transferred U-Z
samples, and writes ``transfer.json`` / ``transfer.md`` into ``--out``.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
import sys

from centralnet_ros import paths


def _setting(text: str):
    from centralnet_ros.training.transfer import TransferSetting
    try:
        name, layer, p = text.split(':')
        return TransferSetting(name, int(layer), float(p))
    except ValueError:
        raise argparse.ArgumentTypeError(f'--setting expects NAME:VIDEO_LAYER:P_AUDIO, e.g. Exp1:2:0.25, '
                                         f'got {text!r}') from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from centralnet_ros.training.transfer import TransferConfig
    d = TransferConfig()
    parser.add_argument('--out', type=Path, default=Path('transfer_out'),
                        help='folder for the results and the saved KNN mappings')
    parser.add_argument('--data-root', type=Path, default=None,
                        help=f'folder holding avletters/ (default: {paths.DATA_ROOT_DEFAULT})')
    parser.add_argument('--set', dest='overrides', action='append', default=[], metavar='KEY=VALUE',
                        help='override a TransferConfig field (repeatable), as compare does a preset: '
                             + ', '.join(f'{k}={v}' for k, v in dataclasses.asdict(d).items() if k != 'settings'))
    parser.add_argument('--setting', type=_setting, action='append', default=None, metavar='NAME:LAYER:P_A',
                        help='a transfer setting (repeatable); default: Exp1:2:0.25 Exp2:2:0.5 Exp3:3:0.5')
    parser.add_argument('--threads', type=int, default=1, help='torch intra-op threads')


def run(args: argparse.Namespace) -> int:
    import torch

    from centralnet_ros.config import ConfigError, with_overrides
    from centralnet_ros.machine import command_line, machine_description
    from centralnet_ros.training.experiment import parse_overrides
    from centralnet_ros.training.transfer import (default_settings, render_markdown, run_transfer, TransferConfig,
                                                  write_results)
    torch.set_num_threads(max(1, args.threads))
    try:
        cfg = with_overrides(TransferConfig, parse_overrides(args.overrides))
    except (ConfigError, ValueError) as exc:
        print(f'centralnet transfer: {exc}', file=sys.stderr)
        return 2
    cfg.settings = args.setting or cfg.settings or default_settings()
    args.out.mkdir(parents=True, exist_ok=True)
    result = run_transfer(cfg, out_dir=args.out, data_root=args.data_root)
    command = command_line(args=args)
    write_results(result, args.out, command=command, machine=machine_description())
    print(render_markdown(result))
    return 0
