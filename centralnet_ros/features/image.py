"""
Image and depth normalisation, and lip-sequence augmentation (numpy + cv2).

Per-frame z-normalisation (:func:`znormalize_frames`) is the report's lip
preprocessing; it depends on one frame only, so it is identical offline and on the
robot.

Augmentation (:func:`augment_lip_sequence`, training only) draws its parameters once
per sequence from the ``numpy.random.Generator`` it is given and applies them to every
frame, so the motion between frames is untouched.  Note on the report's "random
brightness, random contrast": both are affine intensity maps, and per-frame
z-normalisation removes any affine map exactly, so on their own they change nothing
the network sees (only where intensities saturate at 0/255).  The augmentation keeps
them (they matter if the normalisation is ever changed) and adds two intensity
perturbations that survive z-normalisation: a random illumination gradient across the
image (side lighting) and a random gamma.  ``test/test_image_features.py`` checks both
facts.
"""
from __future__ import annotations

import math

from centralnet_ros.features.resample import fourier_resample
import cv2
import numpy as np

__all__ = ['znormalize_frames', 'depth_mm_to_metres', 'clip_depth', 'random_crop_box',
           'augment_lip_sequence', 'lip_frames_to_model_input']


def znormalize_frames(frames: np.ndarray, *, eps: float = 1e-6) -> np.ndarray:
    """
    Bring each frame to zero mean and unit standard deviation over its pixels.

    :param frames: ``(..., H, W)``, e.g. ``(T, 60, 80)`` lip frames, any real dtype.
    :param eps: added to the standard deviation, so a flat frame becomes all zeros.
    :return: float32 array of the same shape.
    """
    x = np.asarray(frames, dtype=np.float64)
    if x.ndim < 2:
        raise ValueError(f'expected frames of shape (..., H, W), got {x.shape}')
    if x.shape[-1] == 0 or x.shape[-2] == 0:
        raise ValueError(f'frames have no pixels: shape {x.shape}')
    mean = x.mean(axis=(-2, -1), keepdims=True)
    std = x.std(axis=(-2, -1), keepdims=True)
    return ((x - mean) / (std + eps)).astype(np.float32)


def depth_mm_to_metres(depth_mm: np.ndarray, *, min_m: float = 0.0, max_m: float = math.inf,
                       invalid_value: float = 0.0) -> np.ndarray:
    """
    Depth image in millimetres (uint16, 0 = no reading, as Kinect / ROS ``16UC1``) -> metres.

    Pixels that are 0 or outside ``[min_m, max_m]`` become ``invalid_value``.

    :return: float32 array of the same shape.
    """
    d = np.asarray(depth_mm)
    if d.dtype.kind not in 'ui':
        raise ValueError(f'expected an integer depth image in millimetres (uint16), got dtype {d.dtype}')
    metres = d.astype(np.float32) / 1000.0
    return clip_depth(metres, min_m=min_m, max_m=max_m, invalid_value=invalid_value,
                      _invalid_mask=(d <= 0))


def clip_depth(depth_m: np.ndarray, *, min_m: float, max_m: float, invalid_value: float = 0.0,
               _invalid_mask: np.ndarray | None = None) -> np.ndarray:
    """Depth in metres with values outside ``[min_m, max_m]`` (or NaN) set to ``invalid_value``."""
    if not 0.0 <= min_m < max_m:
        raise ValueError(f'need 0 <= min_m < max_m, got {min_m} .. {max_m}')
    d = np.array(depth_m, dtype=np.float32)
    bad = ~np.isfinite(d) | (d < min_m) | (d > max_m)
    if _invalid_mask is not None:
        bad |= _invalid_mask
    d[bad] = invalid_value
    return d


def random_crop_box(height: int, width: int, *, rng: np.random.Generator,
                    min_area: float = 0.8) -> tuple[int, int, int, int]:
    """
    Draw a crop ``(top, left, crop_h, crop_w)`` keeping >= ``min_area`` of the image area.

    The kept **area** fraction is uniform in ``[min_area, 1]``, the aspect ratio is the
    image's (both sides scaled by ``sqrt(area)``, rounded up), the position uniform.
    """
    if not 0.0 < min_area <= 1.0:
        raise ValueError(f'min_area must be in (0, 1], got {min_area}')
    area = rng.uniform(min_area, 1.0)
    scale = math.sqrt(area)
    # round up so the kept area never falls below min_area through rounding
    crop_h = min(height, max(1, math.ceil(height * scale)))
    crop_w = min(width, max(1, math.ceil(width * scale)))
    top = int(rng.integers(0, height - crop_h + 1))
    left = int(rng.integers(0, width - crop_w + 1))
    return top, left, crop_h, crop_w


def augment_lip_sequence(frames: np.ndarray, *, rng: np.random.Generator,
                         brightness: float = 0.1, contrast: float = 0.2,
                         gradient: float = 0.2, gamma: float = 0.25,
                         min_crop_area: float = 0.8, value_range: tuple[float, float] = (0.0, 255.0)
                         ) -> np.ndarray:
    """
    Training augmentation of one lip sequence, the same draw for every frame.

    Applied in this order to raw intensities in ``value_range`` (before z-normalisation):

    * crop keeping a random area fraction in ``[min_crop_area, 1]`` (aspect kept, random
      position), resized back to ``(H, W)`` with ``cv2.resize`` (bilinear);
    * gamma: ``v <- lo + (hi - lo) ((v - lo) / (hi - lo)) ** g``, ``ln g ~ U(-gamma, gamma)``;
    * illumination gradient: ``v <- v (1 + a ramp)``, ramp in [-1, 1] along a random
      direction, ``a ~ U(-gradient, gradient)``;
    * contrast: ``v <- m + c (v - m)``, m the sequence mean, ``c ~ U(1 - contrast, 1 + contrast)``;
    * brightness: ``v <- v + b (hi - lo)``, ``b ~ U(-brightness, brightness)``;
    * clip to ``value_range``.

    :param frames: ``(T, H, W)`` lip frames (uint8 or float).
    :param rng: the generator that drives every random choice (pass a seeded one).
    :return: ``(T, H, W)`` float32.
    """
    x = np.asarray(frames)
    if x.ndim != 3 or min(x.shape) == 0:
        raise ValueError(f'expected a lip sequence of shape (T, H, W), got {x.shape}')
    for name, value in (('brightness', brightness), ('contrast', contrast), ('gradient', gradient),
                        ('gamma', gamma)):
        if value < 0:
            raise ValueError(f'{name} must be >= 0, got {value}')
    if contrast >= 1:
        raise ValueError(f'contrast must be < 1 (the factor is drawn from [1 - contrast, 1 + contrast]), '
                         f'got {contrast}')
    lo, hi = float(value_range[0]), float(value_range[1])
    if not hi > lo:
        raise ValueError(f'value_range must be increasing, got {value_range}')
    t, h, w = x.shape
    seq = x.astype(np.float32)                                                # (T, H, W)

    top, left, ch, cw = random_crop_box(h, w, rng=rng, min_area=min_crop_area)
    if (ch, cw) != (h, w):
        seq = np.stack([cv2.resize(np.ascontiguousarray(f[top:top + ch, left:left + cw]), (w, h),
                                   interpolation=cv2.INTER_LINEAR) for f in seq])
    g = math.exp(rng.uniform(-gamma, gamma)) if gamma > 0 else 1.0
    if g != 1.0:
        seq = lo + (hi - lo) * np.clip((seq - lo) / (hi - lo), 0.0, 1.0) ** g
    a = rng.uniform(-gradient, gradient) if gradient > 0 else 0.0
    if a != 0.0:
        theta = rng.uniform(0.0, 2.0 * math.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        ramp = (np.cos(theta) * (xx - (w - 1) / 2) / max((w - 1) / 2, 1)
                + np.sin(theta) * (yy - (h - 1) / 2) / max((h - 1) / 2, 1))
        ramp /= max(np.abs(ramp).max(), 1e-6)                                 # (H, W) in [-1, 1]
        seq = seq * (1.0 + a * ramp)[None]
    c = rng.uniform(1.0 - contrast, 1.0 + contrast) if contrast > 0 else 1.0
    if c != 1.0:
        m = seq.mean()
        seq = m + c * (seq - m)
    b = rng.uniform(-brightness, brightness) if brightness > 0 else 0.0
    if b != 0.0:
        seq = seq + b * (hi - lo)
    return np.clip(seq, lo, hi).astype(np.float32)


def lip_frames_to_model_input(frames: np.ndarray, *, num_frames: int = 12) -> np.ndarray:
    """
    ``(T, H, W)`` grey lip frames -> ``(num_frames, H, W)`` float32 model input.

    Fourier-resampled along time to ``num_frames``, then each frame z-normalised: the
    report's lip preprocessing, shared by AVLetters training and the runtime.
    """
    frames = np.asarray(frames)
    if frames.ndim != 3 or min(frames.shape) == 0:
        raise ValueError(f'expected lip frames of shape (T, H, W), got {frames.shape}')
    return znormalize_frames(fourier_resample(frames, num_frames, axis=0))
