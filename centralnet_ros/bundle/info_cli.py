"""
``centralnet info BUNDLE``: what a model bundle does, what it needs, how good it is and under which terms.

Reads only the manifest (nothing is loaded into torch): task and labels, each input with
the ROS source that feeds it and its feature pipeline, the model, the metrics and the
data they were measured on, how it was trained, and the terms of the data its weights
were derived from.
"""
from __future__ import annotations

import argparse
import sys
import textwrap

from centralnet_ros.bundle.manifest import Manifest

_WIDTH = 100


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('bundle', help='bundle folder, or a name in share/centralnet_ros/models (gesture, speech, ...)')


def _wrap(text: str, first: str, rest: str | None = None) -> list[str]:
    """Wrap ``text`` after the label ``first``; continuation lines are indented by ``rest`` (default: 4 spaces more)."""
    text = ' '.join(str(text).split())
    if rest is None:
        rest = ' ' * (len(first) - len(first.lstrip()) + 4)
    return textwrap.wrap(text, _WIDTH, initial_indent=first, subsequent_indent=rest,
                         break_on_hyphens=False) if text else []


def _value(v) -> str:
    if isinstance(v, float):
        return f'{v:g}'
    if isinstance(v, (list, tuple)):
        return '[' + ', '.join(_value(x) for x in v) + ']'
    return str(v)


def _metric(name: str, value) -> str:
    if isinstance(value, float) and 0.0 <= value <= 1.0 and any(k in name for k in ('accuracy', 'f1', 'precision',
                                                                                    'recall')):
        return f'{name} {value * 100:.1f} %'
    return f'{name} {_value(value)}'


def describe(manifest: Manifest, where: str = '') -> str:
    """Return the human-readable description ``centralnet info`` prints."""
    m = manifest
    lines = [f'bundle {where}'.rstrip() + f' (format {m.format_version}'
             + (f', weights sha256 {m.weights_sha256[:12]}...' if m.weights_sha256 else '') + ')']
    lines.append(f'task: {m.task} ({m.model.task}, {len(m.labels)} labels)')
    lines += _wrap(', '.join(f'{label} -> {m.label_map[label]}' if label in m.label_map else label
                             for label in m.labels), '  labels: ')
    fused = ', '.join(m.model.modalities)
    lines.append(f'model: {m.model.method}' + (f' ({m.model.unimodal} only)' if m.model.unimodal else '')
                 + f' over {fused}'
                 + (f', an ensemble of {m.model.members} members deciding by their mean logits'
                    if m.model.members > 1 else ''))
    lines.append('inputs and pipelines:')
    for name, spec in m.modalities.items():
        shape = 'x'.join(str(n) for n in spec.input_shape)
        rate = f', {spec.sample_rate:g} Hz' if spec.sample_rate else ''
        window = f', window {spec.window_s:g} s' if spec.window_s else ''
        lines.append(f'  {name} <- {spec.source} input{rate}: pipeline {spec.pipeline} -> {shape}{window}')
        if spec.preprocessing:
            lines += _wrap(', '.join(f'{k}={_value(v)}' for k, v in spec.preprocessing.items()), '      ', '      ')
        lines += _wrap(spec.description, '      ', '      ')
    ev = m.evaluation
    lines.append('metrics: ' + (', '.join(_metric(k, v) for k, v in m.metrics.items()) or 'none recorded'))
    sizes = ('train_samples', 'val_samples', 'test_samples')
    if ev:
        counts = ''.join(f', {ev[k]} {k.split("_")[0]}' for k in sizes if k in ev)
        lines.append(f'  measured on: {ev.get("dataset", "?")}{counts}')
        if 'protocol' in ev:
            lines += _wrap(ev['protocol'], '  protocol: ')
        rest = {k: v for k, v in ev.items() if k not in ('dataset', 'protocol', *sizes)}
        if rest:
            lines += _wrap(', '.join(f'{k}: {_value(v)}' for k, v in rest.items()), '  ')
    tr = m.training
    if tr:
        lines += _wrap(', '.join(f'{k}: {_value(v)}' for k, v in tr.items()), 'training: ')
    lines.append('terms of the data the weights were derived from (they follow the model):')
    lines += _wrap(m.data_terms or 'not stated in this manifest: ask whoever gave you the bundle', '  ')
    if m.notes:
        lines += _wrap(m.notes, 'notes: ')
    return '\n'.join(lines)


def run(args: argparse.Namespace) -> int:
    from centralnet_ros.bundle.io import BundleError, read_manifest, resolve_bundle_path
    try:
        path = resolve_bundle_path(args.bundle)
        manifest = read_manifest(path)
    except BundleError as exc:
        print(f'centralnet info: {exc}', file=sys.stderr)
        return 1
    print(describe(manifest, str(path)))
    return 0
