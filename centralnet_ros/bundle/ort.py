"""
An ONNX Runtime session for a model's exported graph (no torch: what a process that only runs the graph imports).

:mod:`centralnet_ros.bundle.export` makes the graph from the bundle's weights (with torch).
"""
from __future__ import annotations

import os


def ort_session(onnx_model: bytes | str | os.PathLike, *, threads: int = 0):
    """Open a CPU session of ``onnx_model`` (the graph's bytes or a file), ``threads`` intra-op threads (0: ORT's)."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    source = onnx_model if isinstance(onnx_model, bytes) else str(onnx_model)
    return ort.InferenceSession(source, sess_options=opts, providers=['CPUExecutionProvider'])
