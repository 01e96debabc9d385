"""
The mouth-region stage in front of the ``lip_video`` pipeline: camera frames -> mouth crops.

The speech model's lips were trained on AVLetters' 60x80 grey crops centred on the lips.
A robot's camera sees a whole scene (or, behind a ROS4HRI face detector, an aligned
face), so before the shared lip tail (:func:`~.speech.lip_frames_to_input`: grey,
resize, Fourier resampling, per-frame z-score) the mouth has to be found and cropped
with AVLetters' framing.  :func:`mouth_frames` does that for one window of frames:

``source='full_frame'``
    a face detector on every ``detect_every``-th frame (downscaled so that its width is
    at most ``max_detect_width``), the boxes of the frames in between interpolated,
    outlying detections (the box centre jumping by more than half a face width from
    the window's median) dropped, and the boxes smoothed over the window, so the crop
    does not jitter; the mouth box is placed in the face box by fixed proportions
    (centre at ``mouth_y`` of the face height, width ``mouth_width`` of the face width,
    AVLetters' 3:4 aspect).
``source='aligned_face'``
    a ROS4HRI aligned face (``/humans/faces/<id>/aligned``: eyes level at fixed places),
    so the mouth is at a fixed place of the image: ``aligned_mouth_y``, ``aligned_mouth_width``.
``source='mouth_crop'``
    frames that already are mouth crops (AVLetters, the demo bag): passed through.
``source='auto'``
    ``mouth_crop`` when the frames have the crop's aspect (3:4) and at most 100 px of
    width, else ``full_frame``.

No face in any frame of the window -> None: the runtime marks the lips absent and
CentralNet decides from the audio through its presence mask.

Detectors (``detector``): ``haar`` -- OpenCV's frontal-face Viola-Jones cascade, a data
file installed with OpenCV (:class:`~.face.HaarFaceDetector`); no download, about 20-30 ms
per 320x240 frame here.  ``mediapipe`` -- MediaPipe's legacy face detection (BlazeFace,
the short-range model inside the ``mediapipe`` 0.10 wheel, runs offline, a few ms per
frame), the optional extra ``centralnet_ros[mediapipe]``; when it is missing the stage
raises :class:`~.face.FaceDetectorUnavailable` naming the extra.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Literal

import numpy as np

from .face import _detector, FaceDetectorUnavailable

__all__ = ['MouthStage', 'mouth_box', 'detect_face_boxes', 'track_boxes', 'mouth_frames']

AVLETTERS_ASPECT = 60 / 80          # height / width of the AVLetters lip crops


@dataclasses.dataclass
class MouthStage:
    """Parameters of the mouth stage (recorded in the bundle manifest under ``preprocessing.mouth``)."""

    source: Literal['auto', 'full_frame', 'aligned_face', 'mouth_crop'] = 'auto'
    detector: Literal['haar', 'mediapipe'] = 'haar'
    detect_every: int = 4
    max_detect_width: int = 320
    mouth_y: float = 0.80                 # mouth centre, fraction of the face box height from its top
    mouth_width: float = 0.60             # crop width, fraction of the face box width
    aligned_mouth_y: float = 0.78         # ROS4HRI aligned face: mouth centre, fraction of the image height
    aligned_mouth_width: float = 0.55     # ... crop width, fraction of the image width
    smoothing: int = 5                    # moving average over this many frames of the tracked box

    def __post_init__(self):
        if self.source not in ('auto', 'full_frame', 'aligned_face', 'mouth_crop'):
            raise ValueError(f'mouth.source must be auto, full_frame, aligned_face or mouth_crop, got {self.source!r}')
        if self.detector not in ('haar', 'mediapipe'):
            raise ValueError(f"mouth.detector must be 'haar' or 'mediapipe', got {self.detector!r}")
        if self.detect_every < 1 or self.max_detect_width < 32 or self.smoothing < 1:
            raise ValueError('mouth.detect_every and mouth.smoothing must be >= 1, max_detect_width >= 32')
        for name in ('mouth_y', 'mouth_width', 'aligned_mouth_y', 'aligned_mouth_width'):
            if not 0.0 < getattr(self, name) <= 1.5:
                raise ValueError(f'mouth.{name} must be in (0, 1.5], got {getattr(self, name)}')


def mouth_box(face: np.ndarray, *, mouth_y: float, mouth_width: float) -> np.ndarray:
    """Face box ``(x, y, w, h)`` -> mouth box ``(cx, cy, w, h)`` (float, AVLetters' 3:4 aspect)."""
    x, y, w, h = (float(v) for v in face)
    width = mouth_width * w
    return np.array([x + 0.5 * w, y + mouth_y * h, width, AVLETTERS_ASPECT * width])


@functools.lru_cache(maxsize=2)
def _mediapipe_detector():
    try:
        import mediapipe as mp
    except ImportError:
        raise FaceDetectorUnavailable(
            "the mouth stage's mediapipe detector needs the optional extra: "
            'pip install "centralnet_ros[mediapipe]" (mediapipe 0.10.x, whose legacy face detection runs offline); '
            'or use detector: haar') from None
    solutions = getattr(mp, 'solutions', None)
    if solutions is None or not hasattr(solutions, 'face_detection'):
        raise FaceDetectorUnavailable(f'mediapipe {getattr(mp, "__version__", "?")} has no legacy face_detection '
                                      '(it ships no models from 1.0 on); install mediapipe 0.10.x or use haar')
    return solutions.face_detection.FaceDetection(model_selection=0, min_detection_confidence=0.5)


def detect_face_boxes(frames: np.ndarray, *, detector: str = 'haar', max_detect_width: int = 320) -> np.ndarray:
    """
    Find the best-supported face per frame: ``(T, H, W, 3)`` RGB or ``(T, H, W)`` grey -> ``(T, 4)`` ``(x, y, w, h)``.

    Rows are NaN where no face is found.  Frames are downscaled to at most
    ``max_detect_width`` pixels wide for detection; boxes are in full-frame pixels.
    """
    import cv2
    x = np.asarray(frames)
    out = np.full((len(x), 4), np.nan)
    for i, f in enumerate(x):
        scale = min(1.0, max_detect_width / f.shape[1])
        small = f if scale == 1.0 else cv2.resize(f, (int(round(f.shape[1] * scale)), int(round(f.shape[0] * scale))),
                                                  interpolation=cv2.INTER_AREA)
        if detector == 'haar':
            grey = small if small.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(small), cv2.COLOR_RGB2GRAY)
            boxes, votes = _detector(None, 1.1, 5, (24, 24)).detect_with_votes(grey)
            if len(boxes):                      # the best-supported detection (false ones gather few votes)
                out[i] = np.asarray(boxes[int(np.argmax(votes))], np.float64) / scale
        else:
            rgb = small if small.ndim == 3 else cv2.cvtColor(small, cv2.COLOR_GRAY2RGB)
            result = _mediapipe_detector().process(np.ascontiguousarray(rgb))
            best = None
            for d in result.detections or ():
                b = d.location_data.relative_bounding_box
                box = np.array([b.xmin * f.shape[1], b.ymin * f.shape[0], b.width * f.shape[1], b.height * f.shape[0]])
                if best is None or box[2] * box[3] > best[2] * best[3]:
                    best = box
            if best is not None:
                out[i] = best
    return out


def track_boxes(boxes: np.ndarray, *, smoothing: int = 5) -> np.ndarray | None:
    """
    Fill and smooth a window's face boxes ``(T, 4)`` (NaN rows = not detected); None when none is found.

    Detections whose centre lies more than half a (median) face width from the median
    centre are dropped (a false detection elsewhere), the gaps are interpolated (held at
    the ends) and a centred moving average of ``smoothing`` frames is applied.
    """
    b = np.array(boxes, np.float64)
    seen = np.isfinite(b).all(axis=1)
    if not seen.any():
        return None
    centre = b[:, :2] + 0.5 * b[:, 2:]
    med_c, med_w = np.median(centre[seen], axis=0), np.median(b[seen, 2])
    seen &= np.linalg.norm(np.where(seen[:, None], centre, med_c) - med_c, axis=1) <= 0.5 * med_w
    t = np.arange(len(b))
    filled = np.stack([np.interp(t, t[seen], b[seen, k]) for k in range(4)], axis=1)
    k = min(int(smoothing), len(b))
    if k > 1:
        pad = np.pad(filled, ((k // 2, k - 1 - k // 2), (0, 0)), mode='edge')
        filled = np.stack([np.convolve(pad[:, j], np.ones(k) / k, mode='valid') for j in range(4)], axis=1)
    return filled


def _crop(frame: np.ndarray, box: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """Resample the mouth box ``(cx, cy, w, h)`` of ``frame`` to ``out_hw`` (borders replicated)."""
    import cv2
    cx, cy, w, h = box
    oh, ow = out_hw
    # affine map: output pixel (u, v) -> frame (cx + (u - ow/2) w/ow, cy + (v - oh/2) h/oh)
    m = np.array([[w / ow, 0.0, cx - 0.5 * w], [0.0, h / oh, cy - 0.5 * h]])
    return cv2.warpAffine(np.ascontiguousarray(frame), m, (ow, oh), flags=cv2.INTER_AREA | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def auto_source(height: int, width: int, *, aligned_faces: bool = False) -> str:
    """
    Return what ``source='auto'`` is for frames of this size: ``mouth_crop`` when AVLetters-like, else full frames.

    ``aligned_faces``: the frames are known to be ROS4HRI aligned faces (``/humans/faces/<id>/aligned``):
    ``aligned_face`` (fixed geometry) instead of ``full_frame``.
    """
    if width <= 100 and abs(height / width - AVLETTERS_ASPECT) < 0.05:
        return 'mouth_crop'
    return 'aligned_face' if aligned_faces else 'full_frame'


def mouth_frames(frames: np.ndarray, stage: MouthStage | dict | None = None, *,
                 out_size: tuple[int, int] = (60, 80)) -> np.ndarray | None:
    """
    Frames ``(T, H, W, 3)`` RGB or ``(T, H, W)`` grey -> grey mouth crops ``(T, *out_size)`` uint8, or None (no face).

    ``out_size`` is ``(height, width)`` of the crops (AVLetters' 60x80); see the module
    docstring for the sources.  ``mouth_crop`` frames are returned unchanged.
    """
    import cv2
    st = stage if isinstance(stage, MouthStage) else MouthStage(**(stage or {}))
    x = np.asarray(frames)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3) or len(x) == 0:
        raise ValueError(f'frames must be (T, H, W, 3) RGB or (T, H, W) grey, got {np.asarray(frames).shape}')
    h, w = x.shape[1:3]
    source = st.source
    if source == 'auto':
        source = auto_source(h, w)
    grey = x[..., 0] if x.shape[-1] == 1 else np.stack([cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY)
                                                        for f in x.astype(np.uint8, copy=False)])
    if source == 'mouth_crop':
        return grey
    if source == 'aligned_face':
        box = mouth_box(np.array([0.0, 0.0, w, h]), mouth_y=st.aligned_mouth_y, mouth_width=st.aligned_mouth_width)
        boxes = np.repeat(box[None], len(grey), axis=0)
    else:
        faces = np.full((len(grey), 4), np.nan)
        idx = np.unique(np.r_[np.arange(0, len(grey), st.detect_every), len(grey) - 1])
        faces[idx] = detect_face_boxes(x[idx] if x.shape[-1] == 3 else grey[idx], detector=st.detector,
                                       max_detect_width=st.max_detect_width)
        tracked = track_boxes(faces, smoothing=st.smoothing)
        if tracked is None:
            return None
        boxes = np.stack([mouth_box(f, mouth_y=st.mouth_y, mouth_width=st.mouth_width) for f in tracked])
    return np.stack([_crop(f, b, out_size) for f, b in zip(grey, boxes)])
