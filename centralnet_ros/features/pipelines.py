"""
Named input pipelines: how a window of raw sensor data becomes one model input.

A bundle's manifest names, for each modality, a pipeline from :data:`PIPELINES` and its
parameters (``ModalitySpec.pipeline`` / ``.preprocessing``, fully resolved from the
pipeline's parameter dataclass).  Training builds its
arrays with the same functions, so the robot computes exactly what the model was
trained on.  Every pipeline is ``fn(window: Window, **preprocessing) -> np.ndarray``
returning an array of the modality's ``input_shape`` (float32).
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable, Mapping

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


@dataclasses.dataclass(frozen=True)
class PipelineEntry:
    """
    A registered input pipeline: its function and its parameter dataclass (``'module:name'`` each).

    The parameter dataclass is the one declaration of the pipeline's parameters and
    defaults; a bundle stores them fully resolved (:func:`resolve_params`).  An audio
    pipeline's dataclass has a ``sample_rate`` attribute: the one rate its features are
    computed at, which the runtime resamples the microphone to (once) and the pipeline
    checks.
    """

    function: str
    params: str


PIPELINES: dict[str, PipelineEntry] = {
    'htk_mfcc': PipelineEntry('centralnet_ros.features.speech:mfcc_input',
                              'centralnet_ros.features.speech:HTKMFCCParams'),
    'lip_video': PipelineEntry('centralnet_ros.features.speech:lip_input',
                               'centralnet_ros.features.speech:LipVideoParams'),
    'skeleton_sequence': PipelineEntry('centralnet_ros.features.skeleton:skeleton_input',
                                       'centralnet_ros.features.skeleton:SkeletonSequenceParams'),
    'skeleton2d_sequence': PipelineEntry('centralnet_ros.features.skeleton2d:skeleton2d_input',
                                         'centralnet_ros.features.skeleton2d:Skeleton2DSequenceParams'),
    'log_mel': PipelineEntry('centralnet_ros.features.audio:log_mel_input',
                             'centralnet_ros.features.audio:LogMelParams'),
    'face_crop': PipelineEntry('centralnet_ros.features.face:face_crop_input',
                               'centralnet_ros.features.face:FaceCropParams'),
    'emotion_functionals': PipelineEntry('centralnet_ros.features.functionals:emotion_functionals_input',
                                         'centralnet_ros.features.functionals:FunctionalsConfig'),
    'opensmile_functionals': PipelineEntry('centralnet_ros.features.opensmile:opensmile_functionals_input',
                                           'centralnet_ros.features.opensmile:OpenSmileParams'),   # optional extra
}


def _entry(name: str) -> PipelineEntry:
    if name not in PIPELINES:
        raise KeyError(f'unknown input pipeline {name!r}; known: {", ".join(sorted(PIPELINES))}')
    return PIPELINES[name]


def _resolve(target: str, name: str):
    module, _, attr = target.partition(':')
    try:
        return getattr(importlib.import_module(module), attr)
    except AttributeError:
        raise KeyError(f'input pipeline {name!r} points at {target}, which does not exist') from None


def get_pipeline(name: str) -> Callable[..., np.ndarray]:
    return _resolve(_entry(name).function, name)


def pipeline_params(name: str) -> type:
    """Return the parameter dataclass of pipeline ``name``."""
    return _resolve(_entry(name).params, name)


def make_params(name: str, params: Mapping[str, Any]) -> Any:
    """Fill pipeline ``name``'s parameter dataclass from ``params``; an unknown key is an error naming it."""
    from centralnet_ros.config import ConfigError, from_dict
    try:
        return from_dict(pipeline_params(name), dict(params))
    except ConfigError as exc:
        raise ValueError(f'pipeline {name}: {exc}') from None


def resolve_params(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Return every parameter of pipeline ``name``, defaults filled in (what a bundle stores)."""
    from centralnet_ros.config import to_dict
    return to_dict(make_params(name, params))


def input_sample_rate(name: str, params: Mapping[str, Any]) -> int | None:
    """Return the audio rate (Hz) pipeline ``name`` computes at with ``params``; None for frame pipelines."""
    rate = getattr(make_params(name, params), 'sample_rate', None)
    return None if rate is None else int(rate)


def check_sample_rate(pipeline: str, window: Window, expected: int) -> None:
    """Refuse an audio window that is not at ``expected`` Hz (the runtime resamples once, before the pipeline)."""
    if window.sample_rate is None or float(window.sample_rate) != float(expected):
        raise ValueError(f'the {pipeline} pipeline computes at {expected} Hz but got audio at {window.sample_rate} Hz; '
                         f"resample it once to {expected} Hz first (the runtime resamples to the manifest's "
                         'sample_rate)')


def run_pipeline(name: str, window: Window, params: dict[str, Any]) -> np.ndarray | None:
    """Run pipeline ``name``; None when it found nothing to use (e.g. no face in the image)."""
    x = get_pipeline(name)(window, **params)
    return None if x is None else np.ascontiguousarray(x, dtype=np.float32)
