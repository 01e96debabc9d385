"""
ONNX export of a bundle's model, and the check that ONNX Runtime reproduces torch.

The exported graph takes one input per modality (in ``model.modalities`` order, named
after the modality) plus ``present`` (B, M) float, and returns ``logits`` (B, C).
The batch axis is dynamic.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
import warnings

from centralnet_ros.bundle.ort import ort_session
from centralnet_ros.config import atomic_write_bytes
from centralnet_ros.fusion import FusionModel
import numpy as np
import torch
from torch import nn

DEFAULT_OPSET = 17


class _Positional(nn.Module):
    """ONNX needs positional tensors: (x_1, ..., x_M, present) -> logits."""

    def __init__(self, model: FusionModel):
        super().__init__()
        self.model = model
        self.names = list(model.modalities)

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        inputs = dict(zip(self.names, args[:-1]))
        return self.model(inputs, args[-1]).logits


def example_inputs(model: FusionModel, batch: int = 1) -> tuple[torch.Tensor, ...]:
    shapes = [tuple(model.config.modalities[m].input_shape) for m in model.modalities]
    return (*(torch.zeros(batch, *s) for s in shapes), torch.ones(batch, len(shapes)))


def export_onnx_bytes(model: FusionModel, *, opset: int = DEFAULT_OPSET) -> bytes:
    """Serialise ``model`` (eval mode, CPU, fp32) to ONNX bytes (TorchScript-based exporter)."""
    model = model.to('cpu').float().eval()
    wrapper = _Positional(model).eval()
    args = example_inputs(model, batch=2)
    names = list(model.modalities) + ['present']
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter('ignore')
        torch.onnx.export(wrapper, args, buf, input_names=names, output_names=['logits'],
                          dynamic_axes={n: {0: 'batch'} for n in names + ['logits']},
                          opset_version=opset, dynamo=False)
    return buf.getvalue()


def export_onnx(model: FusionModel, path: str | os.PathLike, *, opset: int = DEFAULT_OPSET) -> Path:
    return atomic_write_bytes(path, export_onnx_bytes(model, opset=opset))


def check_onnx_parity(model: FusionModel, onnx_model: bytes | str | os.PathLike, *, batch: int = 4,
                      seed: int = 0, atol: float = 1e-4, rtol: float = 1e-3) -> float:
    """
    Run torch and ONNX Runtime on the same random inputs; return the max abs difference.

    One sample has a modality absent.  Raises AssertionError beyond tolerance.
    """
    g = torch.Generator().manual_seed(seed)
    model = model.to('cpu').float().eval()
    args = [torch.randn(a.shape, generator=g) for a in example_inputs(model, batch)[:-1]]
    present = torch.ones(batch, len(args))
    if batch > 1 and len(args) > 1:
        present[0, -1] = 0.0
    with torch.inference_mode():
        expected = model(dict(zip(model.modalities, args)), present).logits.numpy()
    session = ort_session(onnx_model)
    feeds = {n: a.numpy() for n, a in zip(model.modalities, args)}
    feeds['present'] = present.numpy()
    wanted = {i.name for i in session.get_inputs()}        # the exporter drops inputs a model ignores
    got = session.run(['logits'], {k: v for k, v in feeds.items() if k in wanted})[0]
    diff = float(np.max(np.abs(got - expected)))
    if not np.allclose(got, expected, atol=atol, rtol=rtol):
        raise AssertionError(f'ONNX Runtime differs from torch by up to {diff:.3g} (atol {atol}, rtol {rtol})')
    return diff
