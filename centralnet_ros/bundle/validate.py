"""
Checks a bundle passes before anything is built from it.

A manifest is data from a file, so every size in it is checked twice before the
model is built: against sane bounds (:func:`check_sizes`: positive, at most
:data:`MAX_SIZE` per axis or layer, at most :data:`MAX_LABELS` classes, the manifest
file at most :data:`MAX_MANIFEST_BYTES`), then against the shapes the weights file
declares in its header (:func:`check_weight_shapes`: the model is built on PyTorch's
``meta`` device, which allocates nothing, and its parameter shapes are compared with
the file's). Only then is the real model built and the weights read; they must be
finite (:func:`check_finite`). :func:`model_sha256` hashes the manifest's ``model``
section, so a changed architecture is caught like changed weights.
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Mapping, TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ['MAX_MANIFEST_BYTES', 'MAX_LABELS', 'MAX_SIZE', 'MAX_INPUT_ELEMENTS', 'check_manifest_file',
           'check_sizes', 'weight_shapes', 'check_weight_shapes', 'check_finite', 'model_sha256']

MAX_MANIFEST_BYTES = 1 << 20
"""A manifest larger than 1 MiB is refused before it is parsed (the shipped ones are ~3 KB)."""
MAX_LABELS = 10_000
"""Most classes a bundle may have."""
MAX_SIZE = 65_536
"""Largest size of one axis, layer width, kernel or pooling factor in a manifest."""
MAX_INPUT_ELEMENTS = 1 << 24
"""Most elements of one modality's input (16.7 M, a 4096 x 4096 map)."""


def check_manifest_file(path: Path) -> None:
    """Raise ValueError when the manifest file is too large to be a manifest."""
    size = path.stat().st_size
    if size > MAX_MANIFEST_BYTES:
        raise ValueError(f'{path}: {size:,} bytes; a manifest is at most {MAX_MANIFEST_BYTES:,} bytes')


def _sizes(errors: list[str], where: str, values: Any, *, lo: int = 1) -> None:
    for i, v in enumerate(values if isinstance(values, (list, tuple)) else [values]):
        name = f'{where}[{i}]' if isinstance(values, (list, tuple)) else where
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= MAX_SIZE:
            errors.append(f'{name} = {v!r}: expected an integer in [{lo}, {MAX_SIZE}]')


def _fraction(errors: list[str], where: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        errors.append(f'{where} = {value!r}: expected a probability in [0, 1)')


def check_sizes(manifest: Any) -> None:
    """Raise ValueError naming every size of ``manifest`` that is out of bounds (all at once)."""
    errors: list[str] = []
    if len(manifest.labels) > MAX_LABELS:
        errors.append(f'labels: {len(manifest.labels):,} classes; at most {MAX_LABELS:,}')
    model = manifest.model
    _sizes(errors, 'model.num_classes', model.num_classes)
    _sizes(errors, 'model.hidden', model.hidden, lo=0)
    _sizes(errors, 'model.mixed_rank_grid', model.mixed_rank_grid)
    for name in ('central_dropout', 'moddrop_p', 'modality_dropout'):
        _fraction(errors, f'model.{name}', getattr(model, name))
    if not math.isfinite(model.fusion_weight_init):
        errors.append(f'model.fusion_weight_init = {model.fusion_weight_init!r}: expected a finite number')
    for mod, enc in model.modalities.items():
        where = f'model.modalities.{mod}'
        _sizes(errors, f'{where}.input_shape', list(enc.input_shape))
        _sizes(errors, f'{where}.widths', list(enc.widths))
        _sizes(errors, f'{where}.kernel_size', enc.kernel_size)
        for key in ('pool', 'temporal_pool', 'dilations'):
            if getattr(enc, key, None) is not None:
                _sizes(errors, f'{where}.{key}', list(getattr(enc, key)))
        for key in ('dropout', 'head_dropout'):
            _fraction(errors, f'{where}.{key}', getattr(enc, key))
        if all(isinstance(d, int) and d > 0 for d in enc.input_shape) and \
                math.prod(enc.input_shape) > MAX_INPUT_ELEMENTS:
            errors.append(f'{where}.input_shape {list(enc.input_shape)}: {math.prod(enc.input_shape):,} elements; '
                          f'at most {MAX_INPUT_ELEMENTS:,}')
    for mod, spec in manifest.modalities.items():
        for key in ('sample_rate', 'window_s'):
            value = getattr(spec, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value) or value <= 0 or value > 1e7):
                errors.append(f'modalities.{mod}.{key} = {value!r}: expected a positive finite number')
    if errors:
        raise ValueError('sizes out of bounds: ' + '; '.join(errors[:8]) + ('; ...' if len(errors) > 8 else ''))


def weight_shapes(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """``name -> (shape, dtype)`` from a safetensors header; the tensor data is not read."""
    from safetensors import safe_open
    out = {}
    with safe_open(str(path), framework='pt') as fh:
        for key in fh.keys():
            part = fh.get_slice(key)
            out[key] = (tuple(int(d) for d in part.get_shape()), str(part.get_dtype()))
    return out


def check_weight_shapes(config: Any, shapes: Mapping[str, tuple[tuple[int, ...], str]]) -> None:
    """
    Build ``config``'s model on the meta device and compare its state with ``shapes``.

    Raises ValueError on a model that cannot be built or on missing, unexpected or
    differently shaped tensors.
    """
    from centralnet_ros.fusion import build_model
    import torch
    try:
        with torch.device('meta'):
            expected = {k: tuple(v.shape) for k, v in build_model(config).state_dict().items()}
    except (RuntimeError, ValueError, TypeError, ZeroDivisionError, OverflowError) as exc:
        raise ValueError(f'the model section cannot be built: {exc}') from None
    missing = sorted(set(expected) - set(shapes))
    unexpected = sorted(set(shapes) - set(expected))
    wrong = sorted(k for k in set(expected) & set(shapes) if expected[k] != shapes[k][0])
    detail = []
    if missing:
        detail.append(f'missing {missing[:5]}{"..." if len(missing) > 5 else ""}')
    if unexpected:
        detail.append(f'unexpected {unexpected[:5]}{"..." if len(unexpected) > 5 else ""}')
    if wrong:
        detail.append('wrong shape ' + ', '.join(f'{k} {shapes[k][0]} != {expected[k]}' for k in wrong[:5]))
    if detail:
        raise ValueError('weights do not match the architecture in the manifest: ' + '; '.join(detail))


def check_finite(state: Mapping[str, torch.Tensor]) -> None:
    """Raise ValueError naming the tensors of ``state`` holding NaN or infinity."""
    import torch
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise ValueError(f'weights hold NaN or infinite values in {len(bad)} tensor(s): '
                         f'{", ".join(bad[:5])}{"..." if len(bad) > 5 else ""}')


def model_sha256(model_section: Any) -> str:
    """SHA-256 of the manifest's ``model`` section (a dataclass or its dict), in canonical JSON."""
    from centralnet_ros.config import to_dict
    data = model_section if isinstance(model_section, Mapping) else to_dict(model_section)
    text = json.dumps(data, sort_keys=True, separators=(',', ':'), allow_nan=True)
    return hashlib.sha256(text.encode('utf-8')).hexdigest()
