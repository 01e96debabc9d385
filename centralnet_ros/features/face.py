"""
Face crops for the emotion task: detect, keep the largest face, grey, resize, z-normalise.

The detector is OpenCV's Viola-Jones cascade ``haarcascade_frontalface_default.xml``
(``cv2.CascadeClassifier``), a data file that ships with OpenCV, so no weights are
downloaded.  Where it is found (:func:`cascade_search_paths`): an explicit
``cascade_path``, ``cv2.data.haarcascades`` (the opencv-python 4.x wheels), then the
system folders of Debian / Ubuntu's ``opencv-data`` package (what a ROS install of
``python3-opencv`` uses).  OpenCV 5 removed ``CascadeClassifier`` from its main modules
and its wheels carry no cascades: with such a build :class:`HaarFaceDetector` raises
:class:`FaceDetectorUnavailable` saying so, rather than reporting "no face".

:func:`face_crop_input` is the ``face_crop`` pipeline: the last frame of an image window
-> ``(1, size, size)`` float32, or ``None`` when no face is found (the modality is then
absent for that decision).  The crop is normalised by its own mean and standard
deviation (a per-image z-score that depends on nothing outside the crop).
"""
from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ['FACE_CASCADE', 'FaceDetectorUnavailable', 'cascade_search_paths', 'find_cascade', 'HaarFaceDetector',
           'largest_box', 'expand_box', 'crop_face', 'FaceCropParams', 'face_crop_input']

FACE_CASCADE = 'haarcascade_frontalface_default.xml'
SYSTEM_CASCADE_DIRS = ('/usr/share/opencv4/haarcascades', '/usr/share/opencv/haarcascades',
                       '/usr/local/share/opencv4/haarcascades')


class FaceDetectorUnavailable(RuntimeError):
    """This OpenCV build has no cascade detector, or the cascade file cannot be found."""


def cascade_search_paths(name: str = FACE_CASCADE, cascade_path: str | os.PathLike | None = None) -> list[Path]:
    """Candidate cascade files, in the order they are tried."""
    out = [Path(cascade_path)] if cascade_path else []
    try:
        import cv2
        base = getattr(getattr(cv2, 'data', None), 'haarcascades', None)
        if base:
            out.append(Path(base) / name)
    except ImportError:  # pragma: no cover - cv2 is a dependency
        pass
    out += [Path(d) / name for d in SYSTEM_CASCADE_DIRS]
    return out


def find_cascade(name: str = FACE_CASCADE, cascade_path: str | os.PathLike | None = None) -> Path:
    """Return the first existing file of :func:`cascade_search_paths` (an explicit path must exist)."""
    if cascade_path and not Path(cascade_path).is_file():
        raise FaceDetectorUnavailable(f'cascade file {cascade_path} does not exist')
    for path in cascade_search_paths(name, cascade_path):
        if path.is_file():
            return path
    import cv2
    raise FaceDetectorUnavailable(
        f'{name} not found (looked in: {", ".join(str(p.parent) for p in cascade_search_paths(name))}); '
        f'OpenCV {cv2.__version__} does not ship it. Install the opencv-data package (apt) or '
        f'opencv-python-headless<5, or pass cascade_path')


class HaarFaceDetector:
    """``cv2.CascadeClassifier`` on a grey image: :meth:`detect` -> boxes ``(K, 4)`` int ``(x, y, w, h)``."""

    def __init__(self, *, cascade_path: str | os.PathLike | None = None, scale_factor: float = 1.1,
                 min_neighbors: int = 5, min_size: Sequence[int] = (30, 30)):
        import cv2
        if not hasattr(cv2, 'CascadeClassifier'):
            raise FaceDetectorUnavailable(
                f"OpenCV {cv2.__version__} has no CascadeClassifier (removed from OpenCV 5's main modules); "
                'the face_crop pipeline needs an OpenCV 4 build (opencv-python-headless<5, or python3-opencv '
                'with opencv-data)')
        self.path = find_cascade(FACE_CASCADE, cascade_path)
        self._cascade = cv2.CascadeClassifier(str(self.path))
        if self._cascade.empty():
            raise FaceDetectorUnavailable(f'{self.path}: OpenCV could not load this cascade')
        self.scale_factor, self.min_neighbors, self.min_size = float(scale_factor), int(min_neighbors), \
            tuple(int(v) for v in min_size)

    def detect(self, grey: np.ndarray) -> np.ndarray:
        g = np.asarray(grey)
        if g.ndim != 2 or g.dtype != np.uint8:
            raise ValueError(f'face detection needs a (H, W) uint8 grey image, got {g.shape} {g.dtype}')
        boxes = self._cascade.detectMultiScale(g, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
                                               minSize=self.min_size)
        return np.asarray(boxes, dtype=np.int64).reshape(-1, 4)

    def detect_with_votes(self, grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return boxes ``(K, 4)`` and how many raw detections merged into each ``(K,)`` (a confidence)."""
        g = np.asarray(grey)
        if g.ndim != 2 or g.dtype != np.uint8:
            raise ValueError(f'face detection needs a (H, W) uint8 grey image, got {g.shape} {g.dtype}')
        boxes, votes = self._cascade.detectMultiScale2(g, scaleFactor=self.scale_factor,
                                                       minNeighbors=self.min_neighbors, minSize=self.min_size)
        return np.asarray(boxes, dtype=np.int64).reshape(-1, 4), np.asarray(votes, dtype=np.int64).reshape(-1)


@functools.lru_cache(maxsize=4)
def _detector(cascade_path: str | None, scale_factor: float, min_neighbors: int,
              min_size: tuple[int, int]) -> HaarFaceDetector:
    return HaarFaceDetector(cascade_path=cascade_path, scale_factor=scale_factor, min_neighbors=min_neighbors,
                            min_size=min_size)


def largest_box(boxes: np.ndarray) -> np.ndarray | None:
    """Return the box ``(x, y, w, h)`` of largest area among ``(K, 4)`` boxes, or None when ``K == 0``."""
    b = np.asarray(boxes).reshape(-1, 4)
    if len(b) == 0:
        return None
    return b[int(np.argmax(b[:, 2] * b[:, 3]))]


def expand_box(box: Sequence[int], *, margin: float, image_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """
    Grow a box ``(x, y, w, h)`` by ``margin`` of its size on every side.

    Returns ``(x0, y0, x1, y1)`` clipped to ``image_size=(width, height)``.
    """
    x, y, w, h = (int(v) for v in box)
    if w <= 0 or h <= 0:
        raise ValueError(f'face box must have a positive width and height, got {tuple(box)}')
    if margin < 0:
        raise ValueError(f'margin must be >= 0, got {margin}')
    width, height = image_size
    dx, dy = int(round(w * margin)), int(round(h * margin))
    x0, y0 = max(0, x - dx), max(0, y - dy)
    x1, y1 = min(width, x + w + dx), min(height, y + h + dy)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f'face box {tuple(box)} lies outside the {width}x{height} image')
    return x0, y0, x1, y1


def _grey(image: np.ndarray) -> np.ndarray:
    import cv2
    img = np.asarray(image)
    if img.ndim == 2:
        return img.astype(np.uint8) if img.dtype == np.uint8 else np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 3 and img.shape[-1] == 3 and img.dtype == np.uint8:
        return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    raise ValueError(f'image must be (H, W, 3) uint8 RGB or (H, W) grey, got {img.shape} {img.dtype}')


def crop_face(image: np.ndarray, box: Sequence[int], *, size: int = 48, margin: float = 0.1,
              eps: float = 1e-6) -> np.ndarray:
    """
    Grey ``size x size`` crop of ``box`` (grown by ``margin``), z-normalised: ``(size, size)`` float32.

    ``image``: ``(H, W, 3)`` uint8 RGB or ``(H, W)`` grey.  The crop's own mean is
    subtracted and its standard deviation divided out (``eps`` guards a flat crop).
    """
    import cv2
    if int(size) != size or size < 1:
        raise ValueError(f'size must be a positive integer, got {size!r}')
    grey = _grey(image)
    x0, y0, x1, y1 = expand_box(box, margin=margin, image_size=(grey.shape[1], grey.shape[0]))
    patch = cv2.resize(grey[y0:y1, x0:x1], (int(size), int(size)), interpolation=cv2.INTER_AREA).astype(np.float32)
    return ((patch - patch.mean()) / (patch.std() + eps)).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class FaceCropParams:
    """Parameters of pipeline ``face_crop``: crop size and margin, what no face gives, the Haar detector's settings."""

    size: int = 48
    margin: float = 0.1
    on_missing: str = 'none'
    scale_factor: float = 1.1
    min_neighbors: int = 5
    min_size: tuple[int, int] = (30, 30)
    cascade_path: str | None = None


def face_crop_input(window, /, **params) -> np.ndarray | None:
    """
    Pipeline ``face_crop``: the newest frame of an image window -> ``(1, size, size)`` float32.

    ``params``: :class:`FaceCropParams`.
    ``window.data`` is ``(T, H, W, 3)`` uint8 RGB (or one ``(H, W, 3)`` frame).  The
    largest detected face is cropped (:func:`crop_face`).  Without a face the result is
    ``None`` (``on_missing='none'``: the runtime treats the modality as absent) or zeros
    (``on_missing='zeros'``).  A missing detector raises :class:`FaceDetectorUnavailable`.
    """
    p = FaceCropParams(**params)
    size, margin, on_missing, scale_factor, min_neighbors, min_size, cascade_path = (
        p.size, p.margin, p.on_missing, p.scale_factor, p.min_neighbors, p.min_size, p.cascade_path)
    if on_missing not in ('none', 'zeros'):
        raise ValueError(f"on_missing must be 'none' or 'zeros', got {on_missing!r}")
    data = np.asarray(window.data)
    if data.ndim == 4:
        data = data[-1]
    grey = _grey(data)
    det = _detector(cascade_path, float(scale_factor), int(min_neighbors), tuple(int(v) for v in min_size))
    box = largest_box(det.detect(grey))
    if box is None:
        return None if on_missing == 'none' else np.zeros((1, int(size), int(size)), np.float32)
    return crop_face(grey, box, size=size, margin=margin)[None]
