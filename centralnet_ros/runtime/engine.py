"""
Inference: a model bundle ready to classify model inputs (:class:`TaskModel`).

Backends: ``onnxruntime`` (the CPU default: the graph is exported from the bundle at
load time and checked against torch) and ``torch`` (eager, ``inference_mode``; fp16 on
CUDA).  ``backend='auto'`` picks ONNX Runtime on the CPU and torch on CUDA.  Each
:class:`Classification` carries the header stamp of the data it was computed from, the
label, its score, the top-k and the learned fusion weights; :class:`~.perception.Perception`
runs several task models and turns classifications into :class:`~.perception.TaskResult` s.

Importing this module does not import torch; a :class:`TaskModel` built from another's
:class:`ExportedModel` (a decision process's) never does.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
import time
from typing import Mapping

from centralnet_ros.bundle import Bundle, BundleError, load_bundle
from centralnet_ros.bundle.io import bundle_sha256, read_manifest, resolve_bundle_path
import numpy as np

log = logging.getLogger(__name__)

BACKENDS = ('auto', 'torch', 'onnxruntime')
PRECISIONS = ('fp32', 'fp16')


@dataclasses.dataclass
class Classification:
    """What a model says about one set of inputs (the runtime's decision is a TaskResult built from it)."""

    task: str
    stamp_ns: int                      # header stamp of the data the decision was computed from
    frame_id: str
    label: str
    score: float
    top_k: list[tuple[str, float]]
    probabilities: np.ndarray          # (C,)
    present: dict[str, bool]
    fusion_weights: dict | None
    latency_s: float                   # model time only (features are timed by the caller)

    def to_dict(self) -> dict:
        return {'task': self.task, 'stamp_ns': int(self.stamp_ns), 'frame_id': self.frame_id,
                'label': self.label, 'score': float(self.score),
                'top_k': [[lab, float(s)] for lab, s in self.top_k], 'present': self.present,
                'latency_ms': self.latency_s * 1e3}


@dataclasses.dataclass(frozen=True)
class ExportedModel:
    """
    A bundle's ONNX graph as a :class:`TaskModel` exported it from the weights and checked it against torch.

    What a decision process gets instead of loading the weights: ``TaskModel(path,
    exported=...)`` runs this graph on ONNX Runtime without importing torch.
    ``bundle_sha256`` ties it to the bundle it was made from (checked against the files).
    """

    onnx_model: bytes
    bundle_sha256: str
    fusion_weights: dict | None


class TaskModel:
    """
    One bundle ready for batch-1 (or batched) inference on a chosen device and backend.

    ``exported``: the graph another :class:`TaskModel` made from the same bundle
    (:meth:`exported`); the bundle's manifest is read, its weights are not loaded and torch
    is not imported (ONNX Runtime on the CPU only; ``model`` is None, ``device`` the string
    ``'cpu'``).
    """

    def __init__(self, bundle: Bundle | str | Path, *, device: str = 'cpu', precision: str = 'fp32',
                 backend: str = 'auto', threads: int = 0, on_device_failure: str = 'fallback_cpu',
                 warmup: int = 3, exported: ExportedModel | None = None):
        if backend not in BACKENDS:
            raise ValueError(f'backend must be one of {BACKENDS}, got {backend!r}')
        if precision not in PRECISIONS:
            raise ValueError(f'precision must be one of {PRECISIONS}, got {precision!r}')
        if exported is not None:
            if backend == 'torch' or precision != 'fp32' or str(device) != 'cpu':
                raise ValueError('an exported model runs on ONNX Runtime, fp32, on the cpu; got '
                                 f'backend {backend}, precision {precision}, device {device}')
            path = resolve_bundle_path(bundle.path if isinstance(bundle, Bundle) else bundle)
            self.device = 'cpu'
            self.bundle = Bundle(path=path, manifest=read_manifest(path), model=None)
        else:
            from centralnet_ros.torch_utils import resolve_device
            self.device = resolve_device(device, fallback='cpu' if on_device_failure == 'fallback_cpu' else 'error')
            self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle, device='cpu')
        self.bundle_sha256 = bundle_sha256(self.bundle.path)     # what diagnostics report per task
        if exported is not None and exported.bundle_sha256 != self.bundle_sha256:
            raise BundleError(f'{self.bundle.path}: not the bundle the exported graph was made from '
                              f'(sha256 {self.bundle_sha256[:12]}, graph of {exported.bundle_sha256[:12]})')
        self.manifest = self.bundle.manifest
        self.model = self.bundle.model
        self.modalities = list(self.model.modalities if self.model is not None else self.manifest.model.names)
        self.labels = list(self.manifest.labels)
        self.shapes = {m: tuple(self.manifest.modalities[m].input_shape) for m in self.modalities}
        device_type = 'cpu' if exported is not None else self.device.type
        if backend == 'auto':
            backend = 'onnxruntime' if device_type == 'cpu' else 'torch'
        if backend == 'onnxruntime' and device_type != 'cpu':
            raise ValueError('the onnxruntime backend runs on the CPU here; use backend=torch for CUDA')
        if precision == 'fp16' and device_type != 'cuda':
            log.warning('fp16 requested on %s: running fp32 (fp16 is for CUDA)', self.device)
            precision = 'fp32'
        self.backend, self.precision = backend, precision
        self._session = self._onnx_model = None
        if exported is not None:
            from centralnet_ros.bundle.ort import ort_session
            self._fusion_weights = exported.fusion_weights
            self._onnx_model = exported.onnx_model             # checked against torch where it was exported
            self._session = ort_session(self._onnx_model, threads=threads)
        elif backend == 'onnxruntime':
            from centralnet_ros.bundle.export import check_onnx_parity, export_onnx_bytes
            from centralnet_ros.bundle.ort import ort_session
            self._fusion_weights = self.model.fusion_weights()
            self._onnx_model = export_onnx_bytes(self.model)
            check_onnx_parity(self.model, self._onnx_model)
            self._session = ort_session(self._onnx_model, threads=threads)
        else:
            import torch
            self._fusion_weights = self.model.fusion_weights()
            self.dtype = torch.float16 if precision == 'fp16' else torch.float32
            if threads and self.device.type == 'cpu':
                torch.set_num_threads(threads)
            self.model = self.model.to(self.device, dtype=self.dtype).eval()
        if self._session is not None:
            self._feed_names = {i.name for i in self._session.get_inputs()}
        for _ in range(warmup):
            self.forward({m: np.zeros((1, *s), np.float32) for m, s in self.shapes.items()},
                         np.ones((1, len(self.modalities)), np.float32))

    def exported(self) -> ExportedModel | None:
        """Return the checked ONNX graph of this bundle, for a :class:`TaskModel` elsewhere (None: torch backend)."""
        if self._onnx_model is None:
            return None
        return ExportedModel(self._onnx_model, self.bundle_sha256, self._fusion_weights)

    @property
    def task(self) -> str:
        return self.manifest.task

    def forward(self, inputs: Mapping[str, np.ndarray], present: np.ndarray) -> np.ndarray:
        """Batched logits: ``inputs[m]`` (B, *shape) float32, ``present`` (B, M) -> (B, C)."""
        if self._session is not None:
            feeds = {m: np.ascontiguousarray(inputs[m], dtype=np.float32) for m in self.modalities
                     if m in self._feed_names}
            feeds['present'] = np.ascontiguousarray(present, dtype=np.float32)
            return self._session.run(['logits'], feeds)[0]
        import torch
        with torch.inference_mode():
            x = {m: torch.from_numpy(np.ascontiguousarray(inputs[m], dtype=np.float32)).to(self.device, self.dtype)
                 for m in self.modalities}
            mask = torch.from_numpy(np.asarray(present, np.float32)).to(self.device, self.dtype)
            return self.model(x, mask).logits.float().cpu().numpy()

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        if self.manifest.model.task == 'multilabel':
            return 1.0 / (1.0 + np.exp(-logits))
        z = logits - logits.max(-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(-1, keepdims=True)

    def classify(self, inputs: Mapping[str, np.ndarray | None], *, stamp_ns: int = 0, frame_id: str = '',
                 top_k: int = 3) -> Classification | None:
        """
        One decision from per-modality arrays (shape without batch; None = missing).

        Returns None when every modality is missing.
        """
        present = {m: inputs.get(m) is not None for m in self.modalities}
        if not any(present.values()):
            return None
        batch, mask = {}, np.zeros((1, len(self.modalities)), np.float32)
        for k, m in enumerate(self.modalities):
            x = inputs.get(m)
            if x is None:
                batch[m] = np.zeros((1, *self.shapes[m]), np.float32)
                continue
            x = np.asarray(x, dtype=np.float32)
            if x.shape != self.shapes[m]:
                raise ValueError(f'{self.task}: modality {m!r} expects shape {self.shapes[m]}, got {x.shape}')
            batch[m] = x[None]
            mask[0, k] = 1.0
        start = time.perf_counter()
        probs = self.probabilities(self.forward(batch, mask))[0]
        latency = time.perf_counter() - start
        order = np.argsort(-probs)[:top_k]
        best = int(order[0])
        return Classification(task=self.task, stamp_ns=int(stamp_ns), frame_id=frame_id, label=self.labels[best],
                              score=float(probs[best]), top_k=[(self.labels[i], float(probs[i])) for i in order],
                              probabilities=probs, present=present, fusion_weights=self._fusion_weights,
                              latency_s=latency)
