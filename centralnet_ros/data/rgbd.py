"""
Shared reading of colour + depth image pairs (Creative Senz3D, ASL Finger Spelling).

Both datasets store one PNG per image: 8-bit colour, 16-bit depth in millimetres (0 where the
sensor has no reading), and for Senz3D a 16-bit confidence map.  A sample becomes two model
inputs of the same size, as the report's CAE and bimodal-CAE experiments use them: the colour
image in grey levels scaled to [0, 1], and depth in metres clipped to a near range and scaled
to [0, 1] (invalid or low-confidence pixels 0).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from centralnet_ros.data.registry import DataRootError
from centralnet_ros.features.image import depth_mm_to_metres
import cv2
import numpy as np


@dataclasses.dataclass(frozen=True)
class RGBDOptions:
    size: tuple[int, int] = (32, 32)      # (height, width) of both model inputs
    min_depth_m: float = 0.1
    max_depth_m: float = 1.0              # hands in front of a near-range camera
    min_confidence: int = 0               # Senz3D: depth pixels below this confidence are invalid


def read_png(path: Path, *, depth: bool) -> np.ndarray:
    """Read a PNG as is (colour as RGB uint8; depth/confidence as one 16-bit or 8-bit channel)."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DataRootError(f'{path}: not a readable image')
    if depth:
        if img.ndim != 2:
            raise DataRootError(f'{path}: a depth/confidence image must have one channel, got shape {img.shape}')
        return img
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    else:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return img


def colour_input(rgb: np.ndarray, opts: RGBDOptions) -> np.ndarray:
    """(H, W, 3) uint8 -> (h, w) float32 grey in [0, 1]."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    h, w = opts.size
    return cv2.resize(grey, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def depth_input(depth_mm: np.ndarray, opts: RGBDOptions, confidence: np.ndarray | None = None) -> np.ndarray:
    """(H, W) millimetres -> (h, w) float32 in [0, 1] over [min_depth_m, max_depth_m]; invalid pixels 0."""
    d = depth_mm_to_metres(depth_mm, min_m=opts.min_depth_m, max_m=opts.max_depth_m, invalid_value=np.nan)
    valid = np.isfinite(d)
    if confidence is not None:
        if confidence.shape != depth_mm.shape:
            raise DataRootError(f'confidence map {confidence.shape} and depth map {depth_mm.shape} differ in size')
        valid &= confidence >= opts.min_confidence
    span = opts.max_depth_m - opts.min_depth_m
    scaled = np.where(valid, (opts.max_depth_m - np.nan_to_num(d)) / span, 0.0)   # near = bright
    h, w = opts.size
    return cv2.resize(scaled.astype(np.float32), (w, h), interpolation=cv2.INTER_NEAREST)
