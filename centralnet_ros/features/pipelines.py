"""
Named input pipelines: how a window of raw sensor data becomes one model input.

A bundle's manifest names, for each modality, a pipeline from :data:`PIPELINES` and its
parameters (``ModalitySpec.pipeline`` / ``.preprocessing``).  Training builds its
arrays with the same functions, so the robot computes exactly what the model was
trained on.  Every pipeline is ``fn(window: Window, **preprocessing) -> np.ndarray``
returning an array of the modality's ``input_shape`` (float32).
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable

import numpy as np


@dataclasses.dataclass
class Window:
    """
    Raw data for one decision, as the runtime's window assembler hands it over.

    * audio: ``data`` (n_samples,) float32 mono in [-1, 1], ``sample_rate`` in Hz,
      ``stamps_ns`` (1,) the stamp of the first sample;
    * image: ``data`` (T, H, W, 3) uint8 RGB; depth: (T, H, W) float32 metres;
    * skeleton: ``data`` (T, J, D) float32 joints (Kinect v1 order for 3-D PoseArray,
      ROS4HRI Skeleton2D order for 2-D);
    * ``stamps_ns`` (T,) header stamps of the frames, oldest first.
    """

    data: np.ndarray
    stamps_ns: np.ndarray
    sample_rate: float | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)   # e.g. skeleton pixel positions


# pipeline name -> "module:function"; each module documents its pipeline's parameters.
PIPELINES: dict[str, str] = {
    'htk_mfcc': 'centralnet_ros.features.speech:mfcc_input',
    'lip_video': 'centralnet_ros.features.speech:lip_input',
    'skeleton_sequence': 'centralnet_ros.features.skeleton:skeleton_input',
    'log_mel': 'centralnet_ros.features.audio:log_mel_input',
    'face_crop': 'centralnet_ros.features.face:face_crop_input',
}


def get_pipeline(name: str) -> Callable[..., np.ndarray]:
    if name not in PIPELINES:
        raise KeyError(f'unknown input pipeline {name!r}; known: {", ".join(sorted(PIPELINES))}')
    module, _, function = PIPELINES[name].partition(':')
    try:
        return getattr(importlib.import_module(module), function)
    except AttributeError:
        raise KeyError(f'input pipeline {name!r} points at {PIPELINES[name]}, which does not exist') from None


def run_pipeline(name: str, window: Window, params: dict[str, Any]) -> np.ndarray | None:
    """Run pipeline ``name``; None when it found nothing to use (e.g. no face in the image)."""
    x = get_pipeline(name)(window, **params)
    return None if x is None else np.ascontiguousarray(x, dtype=np.float32)
