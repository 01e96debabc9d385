"""
Lift 2-D body keypoints to 3-D with an aligned depth image, for the 3-D (Kinect) gesture model.

A robot with a depth camera (RealSense, Pepper's head depth sensor) and a 2-D body
detector has everything a Kinect skeleton had, up to the joints the detector lacks:

1. :func:`lift_keypoints`: per Skeleton2D keypoint, the median of the valid depths in a
   ``patch`` x ``patch`` neighbourhood of its pixel (zero, NaN and out-of-range depths
   are rejected), back-projected with the ``CameraInfo`` intrinsics ``K``
   (``X = (u - cx) Z / fx``, ``Y = (v - cy) Z / fy``).  A keypoint without valid depth,
   or whose depth lies more than ``max_offset_m`` from the median depth of the body's
   keypoints (a patch that fell on the background behind a hand), takes that median
   depth instead.
2. :func:`kinect_joints_from_lifted`: optical frame -> Kinect skeleton space (``x`` left,
   ``y`` up, ``z`` forward, see :mod:`.skeleton2d`), optionally levelled by the camera's
   orientation (``rotation``: optical axes in a gravity-aligned frame, from TF on a
   robot), and the 20 Kinect joints made from the 14 Skeleton2D ones: hip centre, spine,
   hands and feet placed by the proportions measured on MSRC-12 (hip centre 0.146 of
   the way from the mid-hip to the neck, spine 0.165 of the way from the hip centre to
   the neck, hand 0.35 forearm beyond the wrist, foot 0.15 shank beyond the ankle).
   Missing joints take their parent's position.

:func:`render_skeleton_depth` draws a depth image of a skeleton (limbs as thick
lines, torso as a polygon, a background wall) with sensor-like noise and holes, to
evaluate the lifting without a depth recording.
"""
from __future__ import annotations

import warnings

import numpy as np

from .skeleton import KINECT_V1_INDEX, KINECT_V1_TO_SKELETON2D, NUM_KINECT_V1_JOINTS, SKELETON2D_INDEX

__all__ = ['lift_keypoints', 'kinect_joints_from_lifted', 'body_yaw', 'turn_to_face_camera', 'SkeletonLifter',
           'render_skeleton_depth', 'depth_noise_std']

_KINECT_FROM_OPTICAL = np.diag([-1.0, -1.0, 1.0])
_S = SKELETON2D_INDEX
_K = KINECT_V1_INDEX
# Skeleton2D keypoint -> the keypoint standing in for it when it is missing (ends at the neck)
_PARENT = {'nose': 'neck', 'right_shoulder': 'neck', 'left_shoulder': 'neck', 'right_elbow': 'right_shoulder',
           'left_elbow': 'left_shoulder', 'right_wrist': 'right_elbow', 'left_wrist': 'left_elbow',
           'right_hip': 'left_hip', 'left_hip': 'right_hip', 'right_knee': 'right_hip', 'left_knee': 'left_hip',
           'right_ankle': 'right_knee', 'left_ankle': 'left_knee'}
_FILL_ORDER = ('neck', 'right_shoulder', 'left_shoulder', 'nose', 'right_elbow', 'left_elbow', 'right_wrist',
               'left_wrist', 'right_hip', 'left_hip', 'right_knee', 'left_knee', 'right_ankle', 'left_ankle')


def lift_keypoints(keypoints: np.ndarray, depth: np.ndarray, K: np.ndarray, *, patch: int = 5,  # noqa: N803
                   min_depth: float = 0.2, max_depth: float = 8.0, max_offset_m: float = 0.6,
                   min_confidence: float = 0.1) -> np.ndarray:
    """
    Skeleton2D keypoints ``(18, 3)`` + depth ``(H, W)`` metres + ``K`` (3, 3) -> ``(18, 3)`` optical-frame points.

    Keypoints are normalised to the depth image (``u = x * W``, ``v = y * H``: the
    depth image is aligned to the colour image the detector saw).  Rows of missing
    keypoints (confidence below ``min_confidence``, outside the image) are NaN; when no
    keypoint has a valid depth every row is NaN.
    """
    kp = np.asarray(keypoints, np.float64)
    d = np.asarray(depth)
    if kp.ndim != 2 or kp.shape[1] != 3:
        raise ValueError(f'keypoints must have shape (N, 3) (x, y, c), got {kp.shape}')
    if d.ndim != 2:
        raise ValueError(f'depth must be a (H, W) image in metres, got shape {d.shape}')
    K = np.asarray(K, np.float64)                                       # noqa: N806
    if K.shape != (3, 3) or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValueError(f'K must be a 3x3 camera matrix with positive focal lengths, got {K.tolist()}')
    if patch < 1:
        raise ValueError(f'patch must be >= 1, got {patch}')
    h, w = d.shape
    u, v = kp[:, 0] * w, kp[:, 1] * h
    seen = (kp[:, 2] >= min_confidence) & (u >= 0) & (u < w) & (v >= 0) & (v < h) & np.isfinite(u) & np.isfinite(v)
    z = np.full(len(kp), np.nan)
    r = patch // 2
    for i in np.flatnonzero(seen):
        ui, vi = int(u[i]), int(v[i])
        block = np.asarray(d[max(vi - r, 0):vi + r + 1, max(ui - r, 0):ui + r + 1], np.float64)
        ok = block[np.isfinite(block) & (block >= min_depth) & (block <= max_depth)]
        if ok.size:
            z[i] = np.median(ok)
    valid = np.isfinite(z)
    if not valid.any():
        return np.full((len(kp), 3), np.nan)
    body = np.median(z[valid])
    z = np.where(seen & (~valid | (np.abs(z - body) > max_offset_m)), body, z)
    pts = np.stack([(u - K[0, 2]) * z / K[0, 0], (v - K[1, 2]) * z / K[1, 1], z], axis=1)
    pts[~seen] = np.nan
    return pts


def kinect_joints_from_lifted(points: np.ndarray, *, rotation: np.ndarray | None = None) -> np.ndarray:
    """
    Lifted Skeleton2D points ``(18, 3)`` (optical frame, NaN = missing) -> Kinect v1 joints ``(20, 3)``.

    ``rotation`` (3, 3): the optical axes expressed in a frame whose ``y`` points down
    along gravity (identity for a level camera); the points are turned by it first so
    that the skeleton stands upright as the Kinect saw it.  Raises ``ValueError`` when
    no keypoint is present.
    """
    p = np.asarray(points, np.float64)
    if p.shape != (len(SKELETON2D_INDEX), 3):
        raise ValueError(f'lifted points must have shape (18, 3), got {p.shape}')
    if rotation is not None:
        p = p @ np.asarray(rotation, np.float64).T
    p = p @ _KINECT_FROM_OPTICAL.T
    have = np.isfinite(p).all(axis=1)
    if not have.any():
        raise ValueError('no lifted keypoint to build a skeleton from')
    if not have[_S['neck']]:
        p[_S['neck']] = np.nanmedian(p[have], axis=0)
    for name in _FILL_ORDER:
        i = _S[name]
        if not np.isfinite(p[i]).all():
            parent = p[_S[_PARENT.get(name, 'neck')]]
            p[i] = parent if np.isfinite(parent).all() else p[_S['neck']]
    j = np.zeros((NUM_KINECT_V1_JOINTS, 3))
    for kinect, s2d in KINECT_V1_TO_SKELETON2D.items():
        j[_K[kinect]] = p[_S[s2d]]
    mid_hip = 0.5 * (j[_K['hip_left']] + j[_K['hip_right']])
    neck = j[_K['shoulder_center']]
    j[_K['hip_center']] = mid_hip + 0.146 * (neck - mid_hip)
    j[_K['spine']] = j[_K['hip_center']] + 0.165 * (neck - j[_K['hip_center']])
    for side in ('left', 'right'):
        wrist, elbow = j[_K[f'wrist_{side}']], j[_K[f'elbow_{side}']]
        j[_K[f'hand_{side}']] = wrist + 0.35 * (wrist - elbow)
        ankle, knee = j[_K[f'ankle_{side}']], j[_K[f'knee_{side}']]
        j[_K[f'foot_{side}']] = ankle + 0.15 * (ankle - knee)
    return j.astype(np.float32)


def body_yaw(joints: np.ndarray) -> float | None:
    """
    Heading of a Kinect-space skeleton ``(20, 3)`` about the vertical (radians, 0 = facing the sensor).

    From the horizontal direction of the hip and shoulder lines (right -> left points
    along ``-x`` for a person facing the sensor); None when both lines are degenerate.
    """
    j = np.asarray(joints, np.float64)
    v = (j[_K['hip_left']] - j[_K['hip_right']]) + (j[_K['shoulder_left']] - j[_K['shoulder_right']])
    if not np.isfinite(v).all() or np.hypot(v[0], v[2]) < 1e-6:
        return None
    return float(np.arctan2(v[2], -v[0]))


def turn_to_face_camera(joints: np.ndarray, yaw: float) -> np.ndarray:
    """Turn a Kinect-space skeleton ``(T, 20, 3)`` or ``(20, 3)`` by ``-yaw`` about the vertical through its hip."""
    j = np.asarray(joints, np.float64)
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])      # maps heading yaw to 0
    centre = j[..., _K['hip_center']:_K['hip_center'] + 1, :]
    return ((j - centre) @ rot.T + centre).astype(np.float32)


class SkeletonLifter:
    """
    Per-body, frame-by-frame lifting: Skeleton2D keypoints + aligned depth + K -> Kinect joints ``(20, 3)``.

    :func:`lift_keypoints`, then :func:`kinect_joints_from_lifted` (levelled by
    ``rotation`` when given), then, with ``face_camera``, the skeleton turned about the
    vertical so that it faces the camera as the MSRC-12 persons faced the Kinect; the
    heading is smoothed over frames (exponential, ``yaw_smoothing`` weight of the new
    frame) so that a gesture's own turning is mostly kept.  With ``depth_frames`` > 1 each
    keypoint's depth is the median of its last ``depth_frames`` lifted depths (the point
    slides along its pixel's ray: the 2-D position is kept), which removes most of the
    frame-to-frame jumps of a patch falling on a limb or on the torso behind it (velocities
    are what the 3-D model reads).  Returns None when no keypoint has a depth.
    """

    def __init__(self, *, rotation: np.ndarray | None = None, face_camera: bool = True, yaw_smoothing: float = 0.1,
                 patch: int = 5, min_depth: float = 0.2, max_depth: float = 8.0, max_offset_m: float = 0.6,
                 depth_frames: int = 1):
        if not 0.0 < yaw_smoothing <= 1.0:
            raise ValueError(f'yaw_smoothing must be in (0, 1], got {yaw_smoothing}')
        if depth_frames < 1:
            raise ValueError(f'depth_frames must be >= 1, got {depth_frames}')
        self.depth_frames = int(depth_frames)
        self._depths: list[np.ndarray] = []             # the last depth_frames lifted depths (18,), NaN = none
        self.rotation = None if rotation is None else np.asarray(rotation, np.float64)
        self.face_camera, self.yaw_smoothing = bool(face_camera), float(yaw_smoothing)
        self.lift_kw = {'patch': int(patch), 'min_depth': float(min_depth), 'max_depth': float(max_depth),
                        'max_offset_m': float(max_offset_m)}
        self._heading: np.ndarray | None = None        # smoothed (cos, sin) of the yaw

    def __call__(self, keypoints: np.ndarray, depth: np.ndarray, K: np.ndarray) -> np.ndarray | None:  # noqa: N803
        pts = lift_keypoints(keypoints, depth, K, **self.lift_kw)
        if not np.isfinite(pts).any():
            return None
        if self.depth_frames > 1:
            self._depths = (self._depths + [pts[:, 2].copy()])[-self.depth_frames:]
            with warnings.catch_warnings():
                warnings.simplefilter('ignore', RuntimeWarning)    # all-NaN: the keypoint stays missing
                z = np.nanmedian(np.stack(self._depths), axis=0)
            pts = pts * (z / pts[:, 2])[:, None]          # along each keypoint's ray
        joints = kinect_joints_from_lifted(pts, rotation=self.rotation)
        if not self.face_camera:
            return joints
        yaw = body_yaw(joints)
        if yaw is not None:
            unit = np.array([np.cos(yaw), np.sin(yaw)])
            a = self.yaw_smoothing
            self._heading = unit if self._heading is None else (1 - a) * self._heading + a * unit
        if self._heading is None:
            return joints
        return turn_to_face_camera(joints, float(np.arctan2(self._heading[1], self._heading[0])))


def depth_noise_std(z: np.ndarray) -> np.ndarray:
    """Axial noise (m) of a structured-light / stereo depth camera at depth ``z`` (m): 1.2 mm + 1.9 mm (z - 0.4)^2."""
    z = np.asarray(z, np.float64)
    return 0.0012 + 0.0019 * (z - 0.4) ** 2


_LIMBS = (('hip_center', 'spine'), ('spine', 'shoulder_center'), ('shoulder_center', 'head'),
          ('shoulder_left', 'elbow_left'), ('elbow_left', 'wrist_left'), ('wrist_left', 'hand_left'),
          ('shoulder_right', 'elbow_right'), ('elbow_right', 'wrist_right'), ('wrist_right', 'hand_right'),
          ('hip_left', 'knee_left'), ('knee_left', 'ankle_left'), ('ankle_left', 'foot_left'),
          ('hip_right', 'knee_right'), ('knee_right', 'ankle_right'), ('ankle_right', 'foot_right'))
_LIMB_RADIUS_M = {'head': 0.1, 'spine': 0.15, 'shoulder_center': 0.15}


def render_skeleton_depth(joints_optical: np.ndarray, K: np.ndarray, *, width: int, height: int,  # noqa: N803
                          rng: np.random.Generator | None = None, background_m: float = 4.5,
                          hole_fraction: float = 0.1, hole_blobs: int = 3, surface_offset_m: float = 0.05,
                          noise: bool = True) -> np.ndarray:
    """
    Depth image ``(height, width)`` float32 metres of Kinect joints ``(20, 3)`` given in the optical frame.

    Limbs are lines 0.05-0.15 m thick at the depth of their joints less
    ``surface_offset_m`` (a joint lies inside the body), the torso a polygon, nearer
    parts drawn last; the rest is a wall at ``background_m``.  With ``rng``: Gaussian
    noise of :func:`depth_noise_std`, ``hole_fraction`` of the pixels set to 0 (no
    return) and ``hole_blobs`` elliptic holes of 10-40 px.
    """
    import cv2
    j = np.asarray(joints_optical, np.float64)
    K = np.asarray(K, np.float64)                                       # noqa: N806
    img = np.full((height, width), background_m, np.float32)
    z = j[:, 2]
    uv = np.stack([K[0, 0] * j[:, 0] / np.maximum(z, 1e-3) + K[0, 2],
                   K[1, 1] * j[:, 1] / np.maximum(z, 1e-3) + K[1, 2]], axis=1)
    torso = [_K[n] for n in ('shoulder_left', 'shoulder_right', 'hip_right', 'hip_left')]
    parts = [(float(z[torso].mean()), 'torso', None)]
    for a, b in _LIMBS:
        parts.append((0.5 * float(z[_K[a]] + z[_K[b]]), a, b))
    for depth, a, b in sorted(parts, key=lambda t: -t[0]):              # far to near
        if depth <= 0.1:
            continue
        value = float(depth - surface_offset_m)
        if a == 'torso':
            poly = np.round(uv[torso]).astype(np.int32)
            if np.isfinite(uv[torso]).all():
                cv2.fillConvexPoly(img, poly, value)
            continue
        radius_m = _LIMB_RADIUS_M.get(b, 0.05)
        thickness = max(1, int(round(2 * radius_m * K[0, 0] / depth)))
        pa, pb = uv[_K[a]], uv[_K[b]]
        if not (np.isfinite(pa).all() and np.isfinite(pb).all()):
            continue
        cv2.line(img, tuple(int(round(c)) for c in pa), tuple(int(round(c)) for c in pb), value, thickness)
        if b == 'head':
            cv2.circle(img, tuple(int(round(c)) for c in pb), max(1, int(0.1 * K[0, 0] / depth)), value, -1)
    if rng is None or not noise:
        return img
    img += rng.standard_normal(img.shape, dtype=np.float32) * depth_noise_std(img).astype(np.float32)
    img[rng.random(img.shape, dtype=np.float32) < hole_fraction] = 0.0
    for _ in range(hole_blobs):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.integers(5, 21)), int(rng.integers(5, 21)))
        cv2.ellipse(img, centre, axes, 0.0, 0.0, 360.0, 0.0, -1)
    return img
