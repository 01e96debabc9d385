"""
2-D body keypoints (ROS4HRI ``hri_msgs/Skeleton2D``): virtual cameras, features, runtime pipeline.

What a robot without a Kinect has is a 2-D body detector (ROS4HRI ``hri_body_detect``,
OpenPose-like) publishing 18 normalised keypoints per body.  This module turns such
keypoints into a gesture model's input, and makes training data of the same kind from
the 3-D MSRC-12 skeletons by projecting them through random virtual pinhole cameras
placed like a robot's camera.

Coordinates
-----------
Kinect v1 skeleton space (MSRC-12): metres, ``y`` up, ``z`` away from the sensor, ``x``
towards the sensor's left (a person facing the sensor has ``x_left < x_right``), i.e.
the camera optical frame (``x`` right, ``y`` down, ``z`` forward) turned 180 degrees
about ``z``.  Skeleton2D points are ``(x, y, c)``: ``x = u / width``, ``y = v / height``
((0, 0) top-left) and a confidence; ``c = 0`` marks a missing keypoint.  The Kinect has
no eyes or ears, so those keypoints are always missing in projected training data.

Features (:func:`skeleton2d_feature_map`)
-----------------------------------------
Per window of ``T`` keypoint frames: points are put in pixel-proportional units
(``x * aspect_ratio``, ``y``), centred per frame on the mid-hip (the neck plus the
window's median neck -> mid-hip offset when a hip is missing) and divided by the
window's median torso length (neck to mid-hip; 1.6 shoulder widths when no hip is
seen), which makes them invariant to where the person stands in the image and how
far from the camera.  Channels: positions (2), frame differences of the uncentred
positions (2), visibility (1); missing points have zero position and velocity.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

from .skeleton import (feature_layout, grid_times_ns, KINECT_V1_INDEX, KINECT_V1_TO_SKELETON2D, SKELETON2D_INDEX,
                       SKELETON2D_KEYPOINTS)

__all__ = ['NUM_KEYPOINTS', 'SKELETON2D_FROM_KINECT', 'SKELETON2D_CHANNELS', 'PinholeCamera', 'CameraRanges',
           'CAMERA_CONDITIONS', 'look_at_camera', 'sample_camera', 'project_kinect', 'kinect_to_skeleton2d',
           'corrupt_keypoints', 'skeleton2d_feature_map', 'resample_keypoints_on_stamps', 'Skeleton2DSequenceParams',
           'skeleton2d_input']

NUM_KEYPOINTS = len(SKELETON2D_KEYPOINTS)      # 18

SKELETON2D_FROM_KINECT: np.ndarray = np.full(NUM_KEYPOINTS, -1, np.int64)
"""Skeleton2D keypoint -> Kinect v1 joint index (-1: the Kinect has no such point: eyes, ears)."""
for _kinect, _s2d in KINECT_V1_TO_SKELETON2D.items():
    SKELETON2D_FROM_KINECT[SKELETON2D_INDEX[_s2d]] = KINECT_V1_INDEX[_kinect]

SKELETON2D_CHANNELS: dict[str, int] = {'position': 2, 'velocity': 2, 'visibility': 1}

_NECK, _LHIP, _RHIP = SKELETON2D_INDEX['neck'], SKELETON2D_INDEX['left_hip'], SKELETON2D_INDEX['right_hip']
_LSH, _RSH = SKELETON2D_INDEX['left_shoulder'], SKELETON2D_INDEX['right_shoulder']
_KINECT_FROM_OPTICAL = np.diag([-1.0, -1.0, 1.0])   # Kinect skeleton space <-> camera optical frame


# --------------------------------------------------------------------------- virtual cameras

@dataclasses.dataclass
class PinholeCamera:
    """
    A pinhole camera in Kinect skeleton space.

    ``rotation`` (3, 3): rows are the optical axes (x right, y down, z forward) in Kinect
    coordinates; ``position`` (3,): the optical centre.  ``K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``
    as in ``sensor_msgs/CameraInfo``.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    rotation: np.ndarray
    position: np.ndarray

    @property
    def K(self) -> np.ndarray:  # noqa: N802 - the name CameraInfo uses
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """Kinect-space points ``(..., 3)`` -> optical-frame points ``(..., 3)``."""
        return (np.asarray(points, np.float64) - self.position) @ self.rotation.T

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Kinect-space points ``(..., 3)`` -> pixels ``(..., 2)`` and optical depth ``(...,)`` (metres)."""
        p = self.to_camera(points)
        z = p[..., 2]
        safe = np.where(z > 1e-6, z, np.nan)
        uv = np.stack([self.fx * p[..., 0] / safe + self.cx, self.fy * p[..., 1] / safe + self.cy], axis=-1)
        return uv, z


@dataclasses.dataclass
class CameraRanges:
    """
    Where random virtual cameras are drawn (uniformly in each range).

    Defaults are a robot's camera: height 0.5-1.3 m above the floor, 1-3.5 m from the
    person, up to 45 degrees off the person's front, 640x480, focal length 450-650 px
    (horizontal field of view 53-71 degrees: Pepper's and Nao's 640x480 cameras are about
    600 and 550 px, a RealSense D435's colour camera at 640x480 about 610 px), principal
    point within ``principal_jitter_px`` of the centre.  The camera looks at the middle of
    the torso (a robot turning its head towards the person).
    """

    height_m: tuple[float, float] = (0.5, 1.3)
    distance_m: tuple[float, float] = (1.0, 3.5)
    yaw_deg: tuple[float, float] = (-45.0, 45.0)
    focal_px: tuple[float, float] = (450.0, 650.0)
    width: int = 640
    height: int = 480
    principal_jitter_px: float = 10.0
    aim_jitter_m: float = 0.1

    def __post_init__(self):
        for name in ('height_m', 'distance_m', 'yaw_deg', 'focal_px'):
            lo, hi = getattr(self, name)
            if not lo <= hi:
                raise ValueError(f'{name}: expected (low, high) with low <= high, got {(lo, hi)}')
        if self.distance_m[0] <= 0 or self.focal_px[0] <= 0 or self.width < 1 or self.height < 1:
            raise ValueError('distance, focal length and image size must be positive')


CAMERA_CONDITIONS: dict[str, CameraRanges] = {
    'all': CameraRanges(),
    'near (1-1.5 m)': CameraRanges(distance_m=(1.0, 1.5)),
    'far (3-3.5 m)': CameraRanges(distance_m=(3.0, 3.5)),
    'low (0.5-0.7 m, Nao)': CameraRanges(height_m=(0.5, 0.7)),
    'high (1.1-1.3 m, Pepper)': CameraRanges(height_m=(1.1, 1.3)),
    'frontal (yaw within 10 deg)': CameraRanges(yaw_deg=(-10.0, 10.0)),
    'oblique (yaw 35-45 deg)': CameraRanges(yaw_deg=(35.0, 45.0)),
    'oblique (yaw -45 to -35 deg)': CameraRanges(yaw_deg=(-45.0, -35.0)),
}
"""Named test conditions: each is :class:`CameraRanges` with one range narrowed."""


def look_at_camera(position: np.ndarray, target: np.ndarray, *, fx: float, fy: float, cx: float, cy: float,
                   width: int, height: int) -> PinholeCamera:
    """Make a camera at ``position`` looking at ``target`` (Kinect space, ``y`` up), image rows along gravity."""
    position, target = np.asarray(position, np.float64), np.asarray(target, np.float64)
    forward = target - position
    if np.linalg.norm(forward) < 1e-9:
        raise ValueError('camera position and target coincide')
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 1.0, 0.0])           # Kinect: forward z, up y -> right -x
    if np.linalg.norm(right) < 1e-9:
        raise ValueError('camera looks straight up or down')
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    return PinholeCamera(fx, fy, cx, cy, int(width), int(height), np.stack([right, down, forward]), position)


def sample_camera(rng: np.random.Generator, joints: np.ndarray, ranges: CameraRanges | None = None) -> PinholeCamera:
    """
    Draw a camera for a window of Kinect joints ``(T, 20, 3)``.

    The person stands at the window's mean hip-centre position (ground plane ``x, z``);
    the floor is the lowest foot of the window.  Yaw 0 puts the camera where the Kinect
    was (in front of the person); positive yaw turns it towards the person's left.
    """
    r = ranges or CameraRanges()
    x = np.asarray(joints, np.float64)
    hip = x[:, KINECT_V1_INDEX['hip_center']].mean(axis=0)
    floor = float(np.min(x[:, [KINECT_V1_INDEX['foot_left'], KINECT_V1_INDEX['foot_right']], 1]))
    chest = 0.5 * (x[:, KINECT_V1_INDEX['hip_center'], 1] + x[:, KINECT_V1_INDEX['shoulder_center'], 1]).mean()
    yaw = math.radians(rng.uniform(*r.yaw_deg))
    dist = rng.uniform(*r.distance_m)
    # the Kinect sits at -z from the person; turning by yaw about the vertical axis
    position = np.array([hip[0] - dist * math.sin(yaw), floor + rng.uniform(*r.height_m),
                         hip[2] - dist * math.cos(yaw)])
    target = np.array([hip[0], chest, hip[2]]) + rng.normal(0.0, r.aim_jitter_m, 3) * [1.0, 1.0, 0.0]
    f = rng.uniform(*r.focal_px)
    return look_at_camera(position, target, fx=f, fy=f,
                          cx=r.width / 2 + rng.uniform(-r.principal_jitter_px, r.principal_jitter_px),
                          cy=r.height / 2 + rng.uniform(-r.principal_jitter_px, r.principal_jitter_px),
                          width=r.width, height=r.height)


def project_kinect(joints: np.ndarray, camera: PinholeCamera) -> tuple[np.ndarray, np.ndarray]:
    """Kinect joints ``(..., 20, 3)`` -> pixels ``(..., 20, 2)`` and a visibility mask (in front, in the image)."""
    uv, z = camera.project(joints)
    visible = ((z > 0.1) & np.isfinite(uv).all(-1) & (uv[..., 0] >= 0) & (uv[..., 0] < camera.width)
               & (uv[..., 1] >= 0) & (uv[..., 1] < camera.height))
    return uv, visible


def kinect_to_skeleton2d(joints: np.ndarray, camera: PinholeCamera) -> np.ndarray:
    """
    Kinect joints ``(T, 20, 3)`` seen by ``camera`` -> Skeleton2D keypoints ``(T, 18, 3)`` ``(x, y, c)``.

    Normalised image coordinates as ``hri_msgs/NormalizedPointOfInterest2D``; ``c = 1`` for
    a point in front of the camera and inside the image, else the point is missing
    (``0, 0, 0``); eyes and ears are always missing.
    """
    uv, visible = project_kinect(joints, camera)
    t = uv.shape[0]
    out = np.zeros((t, NUM_KEYPOINTS, 3), np.float32)
    have = SKELETON2D_FROM_KINECT >= 0
    src = SKELETON2D_FROM_KINECT[have]
    vis = visible[:, src]                                                      # (T, 14)
    pts = uv[:, src] / np.array([camera.width, camera.height], np.float64)     # (T, 14, 2)
    block = np.concatenate([np.where(vis[..., None], pts, 0.0), vis[..., None].astype(np.float64)], axis=-1)
    out[:, have] = block
    return out


def corrupt_keypoints(keypoints: np.ndarray, rng: np.random.Generator, *, image_size: tuple[int, int] = (640, 480),
                      noise_px: float = 2.0, dropout: float = 0.05, limb_dropout: float = 0.02,
                      confidence: tuple[float, float] = (0.4, 1.0)) -> np.ndarray:
    """
    Add a body detector's errors to clean keypoints ``(T, 18, 3)`` (returns a copy).

    Gaussian pixel noise (``noise_px`` standard deviation), each visible keypoint dropped
    with probability ``dropout`` per frame, and with probability ``limb_dropout`` per
    keypoint a run of 3-10 consecutive frames dropped (occlusion); the confidence of
    the points kept is drawn in ``confidence``.
    """
    k = np.array(keypoints, np.float32, copy=True)
    t, j = k.shape[:2]
    vis = k[..., 2] > 0
    k[..., :2] += (rng.normal(0.0, noise_px, (t, j, 2)) / np.asarray(image_size, np.float64)).astype(np.float32)
    drop = rng.random((t, j)) < dropout
    for jj in np.flatnonzero(rng.random(j) < limb_dropout):
        start = int(rng.integers(0, t))
        drop[start:start + int(rng.integers(3, 11)), jj] = True
    vis &= ~drop
    k[..., 2] = np.where(vis, rng.uniform(*confidence, (t, j)), 0.0)
    k[~vis, :2] = 0.0
    return k


# --------------------------------------------------------------------------- features

def _window_frame(kp: np.ndarray, aspect_ratio: float, min_confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-proportional points ``(T, 18, 2)`` and visibility ``(T, 18)``."""
    x = np.asarray(kp, np.float64)
    if x.ndim != 3 or x.shape[1:] != (NUM_KEYPOINTS, 3):
        raise ValueError(f'Skeleton2D keypoints must have shape (T, {NUM_KEYPOINTS}, 3), got {x.shape}')
    if not np.isfinite(x).all():
        raise ValueError('Skeleton2D keypoints contain NaN or infinite values')
    vis = x[..., 2] >= min_confidence
    pts = x[..., :2] * np.array([aspect_ratio, 1.0])
    return pts, vis


def _median_or_none(values: list[float]) -> float | None:
    return float(np.median(values)) if len(values) else None


def skeleton2d_feature_map(keypoints: np.ndarray, *, aspect_ratio: float = 4 / 3, min_confidence: float = 0.1,
                           channels: Sequence[str] = ('position', 'velocity', 'visibility')) -> np.ndarray:
    """
    Keypoints ``(T, 18, 3)`` -> feature map ``(C, T, 18)`` float32 (see the module docstring).

    Raises ``ValueError`` when no frame shows a neck or a hip (nothing to centre on).
    """
    unknown = [c for c in channels if c not in SKELETON2D_CHANNELS]
    if unknown or not channels:
        raise ValueError(f'channels must be a non-empty subset of {tuple(SKELETON2D_CHANNELS)}, got {tuple(channels)}')
    pts, vis = _window_frame(keypoints, aspect_ratio, min_confidence)
    both_hips = vis[:, _LHIP] & vis[:, _RHIP]
    mid_hip = 0.5 * (pts[:, _LHIP] + pts[:, _RHIP])                                       # (T, 2)
    one_hip = np.where(vis[:, _LHIP, None], pts[:, _LHIP], pts[:, _RHIP])
    hip_seen = vis[:, _LHIP] | vis[:, _RHIP]
    hip = np.where(both_hips[:, None], mid_hip, one_hip)                                  # (T, 2)
    neck = vis[:, _NECK]
    torso = hip_seen & neck
    offsets = hip[torso] - pts[torso, _NECK]                                              # neck -> hip
    lengths = list(np.linalg.norm(offsets, axis=1))
    shoulders = vis[:, _LSH] & vis[:, _RSH]
    widths = list(np.linalg.norm(pts[shoulders, _LSH] - pts[shoulders, _RSH], axis=1))
    scale = _median_or_none(lengths)
    if scale is None or scale < 1e-6:
        width = _median_or_none(widths)
        scale = 1.6 * width if width is not None and width > 1e-6 else None
    if scale is None:
        # no torso and no shoulders: the visible extent of the body
        seen = pts[vis]
        scale = float(np.ptp(seen[:, 1])) / 3.0 if seen.shape[0] >= 2 and np.ptp(seen[:, 1]) > 1e-6 else None
    if scale is None:
        raise ValueError('no frame shows enough of the body (neck, hips or shoulders) to normalise the keypoints')
    offset = np.median(offsets, axis=0) if len(offsets) else np.array([0.0, scale])
    centre = np.where(hip_seen[:, None], hip, pts[:, _NECK] + offset)                     # (T, 2)
    if not (hip_seen | neck).any():
        raise ValueError('no frame shows a neck or a hip to centre the keypoints on')
    have_centre = hip_seen | neck
    # frames with neither neck nor hip: the nearest frame's centre
    if not have_centre.all():
        idx = np.flatnonzero(have_centre)
        nearest = idx[np.clip(np.searchsorted(idx, np.arange(len(centre))), 0, len(idx) - 1)]
        centre = centre[nearest]
    groups = []
    for name in channels:
        if name == 'position':
            p = (pts - centre[:, None]) / scale
            groups.append(np.where(vis[..., None], p, 0.0))
        elif name == 'velocity':
            v = np.zeros_like(pts)
            ok = np.zeros_like(vis)
            v[1:] = (pts[1:] - pts[:-1]) / scale
            ok[1:] = vis[1:] & vis[:-1]
            groups.append(np.where(ok[..., None], v, 0.0))
        else:
            groups.append(vis[..., None].astype(np.float64))
    feats = np.concatenate(groups, axis=-1)                                               # (T, 18, C)
    return np.ascontiguousarray(feats.transpose(2, 0, 1), dtype=np.float32)               # (C, T, 18)


def resample_keypoints_on_stamps(keypoints: np.ndarray, *, stamps_ns: np.ndarray, num_frames: int,
                                 frame_rate: float, end_ns: float | None = None,
                                 min_confidence: float = 0.1) -> np.ndarray:
    """
    Skeleton2D frames at ``stamps_ns`` -> ``(num_frames, 18, 3)`` on the uniform training grid.

    Each keypoint is interpolated linearly over the frames where it was seen; a grid
    time takes the visibility of the nearest frame, and grid times outside the frames
    hold the first or last frame (as :func:`~.skeleton.resample_on_stamps` does).
    """
    x = np.asarray(keypoints, np.float64)
    t = np.asarray(stamps_ns, np.float64)
    if x.ndim != 3 or x.shape[1:] != (NUM_KEYPOINTS, 3):
        raise ValueError(f'Skeleton2D keypoints must have shape (T, {NUM_KEYPOINTS}, 3), got {x.shape}')
    if t.shape != x.shape[:1] or t.size == 0:
        raise ValueError(f'stamps_ns {t.shape} must give one stamp per frame {x.shape[:1]}')
    if np.any(np.diff(t) <= 0):
        raise ValueError('skeleton stamps must increase strictly')
    q = np.clip(grid_times_ns(t[-1] if end_ns is None else end_ns, num_frames=num_frames, frame_rate=frame_rate),
                t[0], t[-1])
    nearest = np.clip(np.searchsorted(t, q), 0, t.size - 1)
    prev = np.clip(nearest - 1, 0, t.size - 1)
    nearest = np.where(np.abs(t[prev] - q) <= np.abs(t[nearest] - q), prev, nearest)
    out = np.zeros((len(q), NUM_KEYPOINTS, 3), np.float32)
    for j in range(NUM_KEYPOINTS):
        seen = x[:, j, 2] >= min_confidence
        if not seen.any():
            continue
        vis = seen[nearest]
        for d in range(3):
            out[:, j, d] = np.interp(q, t[seen], x[seen, j, d])
        out[~vis, j] = 0.0
    return out


@dataclasses.dataclass
class Skeleton2DSequenceParams:
    """Parameters of pipeline ``skeleton2d_sequence``: the resampling grid, the camera's aspect, the features."""

    frame_rate: float = 15.0
    num_frames: int = 30
    aspect_ratio: float = 4 / 3           # width / height of the camera the keypoints are normalised to
    min_confidence: float = 0.1           # keypoints below this confidence are missing
    channels: tuple[str, ...] = ('position', 'velocity', 'visibility')
    layout: str = 'joints_time'


def skeleton2d_input(window, /, **params) -> np.ndarray:
    """
    Pipeline ``skeleton2d_sequence``: a window of Skeleton2D keypoints -> the gesture encoder's input.

    ``params``: :class:`Skeleton2DSequenceParams`.

    ``window.data`` ``(T, 18, 3)`` ``(x, y, c)`` as :func:`centralnet_ros.messages.skeleton2d_to_array`
    gives them, ``window.stamps_ns`` ``(T,)``, ``window.extra['end_ns']`` the decision time.
    Resampled onto ``num_frames`` times at ``frame_rate`` Hz
    (:func:`resample_keypoints_on_stamps`), then :func:`skeleton2d_feature_map` and
    :func:`~.skeleton.feature_layout`: ``(C * 18, num_frames)``.  ``aspect_ratio`` is
    the camera's width / height (the keypoints are normalised per axis).
    """
    p = Skeleton2DSequenceParams(**params)
    frame_rate, num_frames, aspect_ratio, min_confidence, channels, layout = (
        p.frame_rate, p.num_frames, p.aspect_ratio, p.min_confidence, p.channels, p.layout)
    data = np.asarray(window.data)
    if data.ndim != 3 or data.shape[1:] != (NUM_KEYPOINTS, 3):
        raise ValueError(f'skeleton2d window must hold (T, {NUM_KEYPOINTS}, 3) keypoints, got {data.shape}')
    end_ns = (window.extra or {}).get('end_ns')
    grid = resample_keypoints_on_stamps(data, stamps_ns=window.stamps_ns, num_frames=num_frames,
                                        frame_rate=frame_rate, end_ns=end_ns, min_confidence=min_confidence)
    fm = skeleton2d_feature_map(grid, aspect_ratio=aspect_ratio, min_confidence=min_confidence, channels=channels)
    return feature_layout(fm, layout=layout)
