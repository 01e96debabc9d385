"""
``centralnet export BUNDLE``: write ONNX and check ONNX Runtime against torch.

The ONNX file is written (atomically) only once ONNX Runtime has reproduced torch on
it: a failed check leaves no ``model.onnx`` behind.
"""
from __future__ import annotations

import argparse
from pathlib import Path
import sys

from centralnet_ros.bundle.export import check_onnx_parity, DEFAULT_OPSET, export_onnx_bytes
from centralnet_ros.bundle.io import BundleError, load_bundle
from centralnet_ros.config import atomic_write_bytes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('bundle', help='bundle folder, or a name in share/centralnet_ros/models')
    parser.add_argument('--out', default=None, help='ONNX file to write (default: BUNDLE/model.onnx)')
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET, help='ONNX opset version')
    parser.add_argument('--atol', type=float, default=1e-4, help='allowed absolute difference torch vs ONNX Runtime')


def run(args: argparse.Namespace) -> int:
    try:
        bundle = load_bundle(args.bundle)
    except BundleError as exc:
        print(f'centralnet export: {exc}', file=sys.stderr)
        return 1
    out = Path(args.out) if args.out else bundle.path / 'model.onnx'
    if out.is_dir():
        print(f'centralnet export: --out {out} is a folder; expected the ONNX file to write', file=sys.stderr)
        return 2
    onnx = export_onnx_bytes(bundle.model, opset=args.opset)
    try:
        diff = check_onnx_parity(bundle.model, onnx, atol=args.atol)
    except AssertionError as exc:
        print(f'centralnet export: {out} not written: {exc}', file=sys.stderr)
        return 1
    atomic_write_bytes(out, onnx)
    names = ', '.join(f'{m}{tuple(bundle.manifest.modalities[m].input_shape)}' for m in bundle.model.modalities)
    print(f'wrote {out} (inputs: {names}, present (B, {len(bundle.model.modalities)}); output: logits '
          f'(B, {bundle.model.num_classes})); ONNX Runtime matches torch within {diff:.2g}')
    return 0
