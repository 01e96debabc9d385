"""
``centralnet probe``: the auto-encoder probing table and figures (AV-MNIST, Senz3D, ASL Finger Spelling).

Trains the unimodal (denoising) CAEs, the bimodal CAE and the supervised baselines of
:mod:`centralnet_ros.training.probe`, then writes ``probing.json``,
``probing.md`` and the two PNG figures into ``--out``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from centralnet_ros import paths


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from centralnet_ros.training.probe import PROBE_DATASETS, ProbeConfig
    d = ProbeConfig()
    parser.add_argument('--dataset', default=d.dataset, choices=PROBE_DATASETS,
                        help="AV-MNIST (image + spectrogram), or the report's RGB-D hand datasets "
                             '(colour + depth, split by subject)')
    parser.add_argument('--out', type=Path, default=Path('probe_out'), help='folder for the table and figures')
    parser.add_argument('--data-root', type=Path, default=None,
                        help=f'folder holding mnist/ and fsdd/ (default: {paths.DATA_ROOT_DEFAULT})')
    parser.add_argument('--n-train', type=int, default=d.n_train, help='AV-MNIST training pairs used')
    parser.add_argument('--n-val', type=int, default=d.n_val, help='validation pairs used')
    parser.add_argument('--n-test', type=int, default=None, help='test pairs used (default: all 10000)')
    parser.add_argument('--cae-epochs', type=int, default=d.cae_epochs, help='epochs of each unimodal CAE')
    parser.add_argument('--bimodal-epochs', type=int, default=d.bimodal_epochs, help='epochs of the bimodal CAE')
    parser.add_argument('--supervised-epochs', type=int, default=d.supervised_epochs,
                        help='epochs of the supervised CAE-architecture and CNN rows')
    parser.add_argument('--linear-epochs', type=int, default=d.linear_epochs, help='epochs of each linear probe')
    parser.add_argument('--denoise-p', type=float, default=d.denoise_p, help='pixel dropout of the denoising CAEs')
    parser.add_argument('--seed', type=int, default=d.seed, help='subsampling and initialisation seed')
    parser.add_argument('--image-size', type=int, default=d.image_size,
                        help='Senz3D / ASL: colour and depth maps resized to this square')
    parser.add_argument('--max-per-letter', type=int, default=d.max_per_letter,
                        help='ASL Finger Spelling: images kept per subject and letter')
    parser.add_argument('--threads', type=int, default=1, help='torch intra-op threads')


def run(args: argparse.Namespace) -> int:
    import torch

    from centralnet_ros.training.probe import ProbeConfig, render_markdown, run_probe, write_results
    from centralnet_ros.machine import command_line, machine_description
    torch.set_num_threads(max(1, args.threads))
    cfg = ProbeConfig(dataset=args.dataset, image_size=args.image_size, max_per_letter=args.max_per_letter,
                      n_train=args.n_train, n_val=args.n_val, n_test=args.n_test, seed=args.seed,
                      denoise_p=args.denoise_p, cae_epochs=args.cae_epochs, bimodal_epochs=args.bimodal_epochs,
                      supervised_epochs=args.supervised_epochs, linear_epochs=args.linear_epochs)
    result = run_probe(cfg, out_dir=args.out, data_root=args.data_root)
    command = command_line(args=args)
    write_results(result, args.out, command=command, machine=machine_description())
    print(render_markdown(result))
    return 0
