"""
Skeleton features shared by the dataset readers and the runtime.

Joint orders
------------
:data:`KINECT_V1_JOINTS` is the 20-joint order of the Kinect v1 (Microsoft Kinect SDK
``NUI_SKELETON_POSITION_INDEX``) used by MSRC-12 and by Montalbano / ChaLearn 2013-2014.
:data:`SKELETON2D_KEYPOINTS` is the 18-keypoint order of ROS4HRI's
``hri_msgs/msg/Skeleton2D`` (constants ``NOSE = 0`` ... ``RIGHT_EAR = 17``, the OpenPose
COCO order; source: ``ros4hri/hri_msgs`` ``msg/Skeleton2D.msg``, whose points are
``NormalizedPointOfInterest2D`` in [0, 1] image coordinates, (0, 0) top-left).

Normalisation
-------------
Every function works frame by frame (or on frame differences), so a sequence
processed in chunks gives the same values as processed at once, apart from the first
velocity of a chunk.  Positions are centred on the hip centre of their own frame and
divided by the body size of their own frame (hip centre to shoulder centre, falling
back to the shoulder width, then to 1), which makes them invariant to translation and
to uniform scaling of the skeleton.  Velocities are frame differences of the
*uncentred* positions divided by the current body size, so global motion (crouching,
stepping) is kept while translation and scale still cancel.

Feature map
-----------
:func:`skeleton_feature_map` turns a ``(T, J, 3)`` sequence into a fixed-size
``(C, num_frames, J)`` float32 array (channels first, the ``(C, T, V)`` layout of
ST-GCN): positions (3), velocities (3) and accelerations (3) give ``C = 9``.  A 1-D
temporal convolution takes ``x.transpose(0, 2, 1).reshape(C * J, num_frames)``.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
from scipy import signal

__all__ = [
    'KINECT_V1_JOINTS', 'KINECT_V1_INDEX', 'KINECT_V1_BONES', 'NUM_KINECT_V1_JOINTS',
    'HIP_CENTER', 'SPINE', 'SHOULDER_CENTER', 'HEAD', 'SHOULDER_LEFT', 'ELBOW_LEFT', 'WRIST_LEFT',
    'HAND_LEFT', 'SHOULDER_RIGHT', 'ELBOW_RIGHT', 'WRIST_RIGHT', 'HAND_RIGHT', 'HIP_LEFT', 'KNEE_LEFT',
    'ANKLE_LEFT', 'FOOT_LEFT', 'HIP_RIGHT', 'KNEE_RIGHT', 'ANKLE_RIGHT', 'FOOT_RIGHT',
    'SKELETON2D_KEYPOINTS', 'SKELETON2D_INDEX', 'KINECT_V1_TO_SKELETON2D',
    'FEATURE_CHANNELS', 'body_size', 'bone_directions', 'normalize_skeleton', 'joint_velocities', 'resample_sequence',
    'interpolate_frames', 'skeleton_feature_map', 'hand_pixel_positions', 'crop_box', 'crop_around',
    'SKELETON_LAYOUTS', 'feature_layout', 'skeleton_model_input', 'grid_times_ns', 'resample_on_stamps',
    'SkeletonSequenceParams', 'skeleton_input',
]

# --------------------------------------------------------------------------- joint orders

KINECT_V1_JOINTS: tuple[str, ...] = (
    'hip_center', 'spine', 'shoulder_center', 'head',
    'shoulder_left', 'elbow_left', 'wrist_left', 'hand_left',
    'shoulder_right', 'elbow_right', 'wrist_right', 'hand_right',
    'hip_left', 'knee_left', 'ankle_left', 'foot_left',
    'hip_right', 'knee_right', 'ankle_right', 'foot_right',
)
NUM_KINECT_V1_JOINTS = len(KINECT_V1_JOINTS)   # 20
KINECT_V1_INDEX: dict[str, int] = {name: i for i, name in enumerate(KINECT_V1_JOINTS)}

(HIP_CENTER, SPINE, SHOULDER_CENTER, HEAD,
 SHOULDER_LEFT, ELBOW_LEFT, WRIST_LEFT, HAND_LEFT,
 SHOULDER_RIGHT, ELBOW_RIGHT, WRIST_RIGHT, HAND_RIGHT,
 HIP_LEFT, KNEE_LEFT, ANKLE_LEFT, FOOT_LEFT,
 HIP_RIGHT, KNEE_RIGHT, ANKLE_RIGHT, FOOT_RIGHT) = range(NUM_KINECT_V1_JOINTS)

# (parent, child) pairs of the Kinect v1 skeleton tree, rooted at the hip centre.
KINECT_V1_BONES: tuple[tuple[int, int], ...] = (
    (HIP_CENTER, SPINE), (SPINE, SHOULDER_CENTER), (SHOULDER_CENTER, HEAD),
    (SHOULDER_CENTER, SHOULDER_LEFT), (SHOULDER_LEFT, ELBOW_LEFT), (ELBOW_LEFT, WRIST_LEFT),
    (WRIST_LEFT, HAND_LEFT),
    (SHOULDER_CENTER, SHOULDER_RIGHT), (SHOULDER_RIGHT, ELBOW_RIGHT), (ELBOW_RIGHT, WRIST_RIGHT),
    (WRIST_RIGHT, HAND_RIGHT),
    (HIP_CENTER, HIP_LEFT), (HIP_LEFT, KNEE_LEFT), (KNEE_LEFT, ANKLE_LEFT), (ANKLE_LEFT, FOOT_LEFT),
    (HIP_CENTER, HIP_RIGHT), (HIP_RIGHT, KNEE_RIGHT), (KNEE_RIGHT, ANKLE_RIGHT), (ANKLE_RIGHT, FOOT_RIGHT),
)

# hri_msgs/msg/Skeleton2D: uint8 NOSE = 0 ... RIGHT_EAR = 17 (OpenPose COCO order).
SKELETON2D_KEYPOINTS: tuple[str, ...] = (
    'nose', 'neck', 'right_shoulder', 'right_elbow', 'right_wrist',
    'left_shoulder', 'left_elbow', 'left_wrist', 'right_hip', 'right_knee', 'right_ankle',
    'left_hip', 'left_knee', 'left_ankle', 'left_eye', 'right_eye', 'left_ear', 'right_ear',
)
SKELETON2D_INDEX: dict[str, int] = {name: i for i, name in enumerate(SKELETON2D_KEYPOINTS)}

# Kinect v1 joint -> the Skeleton2D keypoint at (approximately) the same body place.
# Kinect joints absent here (spine, hands, feet, hip centre) have no Skeleton2D keypoint;
# the Kinect head is near the Skeleton2D nose.
KINECT_V1_TO_SKELETON2D: dict[str, str] = {
    'shoulder_center': 'neck', 'head': 'nose',
    'shoulder_left': 'left_shoulder', 'elbow_left': 'left_elbow', 'wrist_left': 'left_wrist',
    'shoulder_right': 'right_shoulder', 'elbow_right': 'right_elbow', 'wrist_right': 'right_wrist',
    'hip_left': 'left_hip', 'knee_left': 'left_knee', 'ankle_left': 'left_ankle',
    'hip_right': 'right_hip', 'knee_right': 'right_knee', 'ankle_right': 'right_ankle',
}

FEATURE_CHANNELS: dict[str, int] = {'position': 3, 'velocity': 3, 'acceleration': 3, 'bone': 3}


# --------------------------------------------------------------------------- checks

def _as_joints(joints: np.ndarray, what: str = 'joints', min_frames: int = 1) -> np.ndarray:
    x = np.asarray(joints, dtype=np.float64)
    if x.ndim != 3 or x.shape[-1] not in (2, 3):
        raise ValueError(f'{what} must have shape (T, J, 2 or 3), got {x.shape}')
    if x.shape[0] < min_frames:
        raise ValueError(f'{what} needs at least {min_frames} frame(s), got {x.shape[0]}')
    if not np.all(np.isfinite(x)):
        raise ValueError(f'{what} contains NaN or infinite values')
    return x


def _check_index(index: int, n_joints: int, name: str) -> None:
    if not -n_joints <= index < n_joints:
        raise ValueError(f'{name}={index} out of range for {n_joints} joints')


# --------------------------------------------------------------------------- mirroring

KINECT_V1_MIRROR: tuple[int, ...] = tuple(
    {SHOULDER_LEFT: SHOULDER_RIGHT, ELBOW_LEFT: ELBOW_RIGHT, WRIST_LEFT: WRIST_RIGHT, HAND_LEFT: HAND_RIGHT,
     HIP_LEFT: HIP_RIGHT, KNEE_LEFT: KNEE_RIGHT, ANKLE_LEFT: ANKLE_RIGHT, FOOT_LEFT: FOOT_RIGHT,
     SHOULDER_RIGHT: SHOULDER_LEFT, ELBOW_RIGHT: ELBOW_LEFT, WRIST_RIGHT: WRIST_LEFT, HAND_RIGHT: HAND_LEFT,
     HIP_RIGHT: HIP_LEFT, KNEE_RIGHT: KNEE_LEFT, ANKLE_RIGHT: ANKLE_LEFT, FOOT_RIGHT: FOOT_LEFT}.get(i, i)
    for i in range(NUM_KINECT_V1_JOINTS))
"""Kinect v1 joint index -> the index of its left/right counterpart (itself on the midline)."""


def mirror_kinect_joints(joints: np.ndarray) -> np.ndarray:
    """
    Mirror Kinect v1 joints ``(..., 20, 3)`` left/right: x negated, left and right joints swapped.

    The body a mirror would show: a right-handed gesture becomes its left-handed version
    (so a gesture defined by its direction, such as "push right", becomes another one).
    """
    x = np.asarray(joints)
    if x.ndim < 2 or x.shape[-2:] != (NUM_KINECT_V1_JOINTS, 3):
        raise ValueError(f'joints must have shape (..., {NUM_KINECT_V1_JOINTS}, 3), got {x.shape}')
    out = x[..., list(KINECT_V1_MIRROR), :].copy()
    out[..., 0] *= -1
    return out


# --------------------------------------------------------------------------- normalisation

def body_size(joints: np.ndarray, *, center_joint: int = HIP_CENTER, top_joint: int = SHOULDER_CENTER,
              left_joint: int = SHOULDER_LEFT, right_joint: int = SHOULDER_RIGHT,
              eps: float = 1e-6) -> np.ndarray:
    """
    Body size per frame: ``(T, J, D)`` -> ``(T,)``.

    The distance hip centre -> shoulder centre (torso length); where that is below
    ``eps`` (joints missing or collapsed) the shoulder width; where that is also below
    ``eps``, 1.0, so dividing by it never divides by zero.
    """
    x = _as_joints(joints)
    for idx, name in ((center_joint, 'center_joint'), (top_joint, 'top_joint'),
                      (left_joint, 'left_joint'), (right_joint, 'right_joint')):
        _check_index(idx, x.shape[1], name)
    torso = np.linalg.norm(x[:, top_joint] - x[:, center_joint], axis=-1)       # (T,)
    shoulders = np.linalg.norm(x[:, left_joint] - x[:, right_joint], axis=-1)   # (T,)
    size = np.where(torso > eps, torso, np.where(shoulders > eps, shoulders, 1.0))
    return size


def normalize_skeleton(joints: np.ndarray, *, center_joint: int = HIP_CENTER,
                       top_joint: int = SHOULDER_CENTER, eps: float = 1e-6) -> np.ndarray:
    """
    Centre every frame on its hip centre and divide by its body size.

    ``(T, J, D)`` -> ``(T, J, D)`` float32, invariant to adding a constant (or a
    per-frame) offset to all joints and to multiplying them by a positive factor.
    """
    x = _as_joints(joints)
    size = body_size(x, center_joint=center_joint, top_joint=top_joint, eps=eps)   # (T,)
    centred = x - x[:, center_joint:center_joint + 1]                             # (T, J, D)
    return (centred / size[:, None, None]).astype(np.float32)


def joint_velocities(joints: np.ndarray, *, center_joint: int = HIP_CENTER,
                     top_joint: int = SHOULDER_CENTER, eps: float = 1e-6) -> np.ndarray:
    """
    Frame differences of the uncentred positions in body sizes: ``(T, J, D)`` -> ``(T, J, D)``.

    ``v[t] = (x[t] - x[t-1]) / size[t]`` for ``t >= 1`` and ``v[0] = 0`` (no motion is
    known before the first frame).  Units: body sizes per frame.
    """
    x = _as_joints(joints)
    size = body_size(x, center_joint=center_joint, top_joint=top_joint, eps=eps)   # (T,)
    v = np.zeros_like(x)
    v[1:] = np.diff(x, axis=0) / size[1:, None, None]
    return v.astype(np.float32)


# --------------------------------------------------------------------------- resampling

def resample_sequence(x: np.ndarray, *, num_frames: int, method: str = 'linear') -> np.ndarray:
    """
    Resample a sequence along its first axis to ``num_frames`` frames (float32).

    ``method='linear'``: linear interpolation with the first and last frames kept
    (frame ``i`` of the output sits at ``i * (T - 1) / (num_frames - 1)`` of the input).
    ``method='fourier'``: band-limited FFT resampling (scipy.signal.resample) on the
    same end-inclusive grid: the straight line between the first and last frames is
    subtracted, which leaves one period of ``T - 1`` samples with no jump at the wrap
    (so the ends do not ring), that period is resampled to ``num_frames - 1`` samples,
    and the line is added back.  Works on any trailing shape ``(T, ...)``.
    """
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim < 1 or arr.shape[0] < 1:
        raise ValueError(f'sequence must have at least one frame along axis 0, got shape {arr.shape}')
    if int(num_frames) != num_frames or num_frames < 1:
        raise ValueError(f'num_frames must be a positive integer, got {num_frames!r}')
    num_frames = int(num_frames)
    n = arr.shape[0]
    if n == num_frames:
        return arr.astype(np.float32)
    if n == 1:
        return np.repeat(arr, num_frames, axis=0).astype(np.float32)
    if method == 'linear':
        pos = np.linspace(0.0, n - 1, num_frames) if num_frames > 1 else np.zeros(1)
        lo = np.clip(np.floor(pos).astype(int), 0, n - 2)
        frac = (pos - lo).reshape((-1,) + (1,) * (arr.ndim - 1))
        return ((1.0 - frac) * arr[lo] + frac * arr[lo + 1]).astype(np.float32)
    if method == 'fourier':
        if num_frames == 1:
            return arr[:1].astype(np.float32)
        shape = (-1,) + (1,) * (arr.ndim - 1)
        line_in = arr[0] + np.linspace(0.0, 1.0, n).reshape(shape) * (arr[-1] - arr[0])       # (T, ...)
        resid = arr - line_in                       # zero at both ends: one period of n - 1 samples
        res = signal.resample(resid[:-1], num_frames - 1, axis=0)                          # (num_frames - 1, ...)
        res = np.concatenate([res, resid[:1]], axis=0)                                     # (num_frames, ...)
        line_out = arr[0] + np.linspace(0.0, 1.0, num_frames).reshape(shape) * (arr[-1] - arr[0])
        return (res + line_out).astype(np.float32)
    raise ValueError(f"method must be 'linear' or 'fourier', got {method!r}")


def interpolate_frames(x: np.ndarray, *, timestamps: np.ndarray, query_times: np.ndarray) -> np.ndarray:
    """
    Linear interpolation of frames ``(T, ...)`` taken at ``timestamps`` (T,) at ``query_times`` (Q,).

    Timestamps must increase strictly; query times outside ``[timestamps[0],
    timestamps[-1]]`` are an error (the caller decides how to handle the ends).
    Returns ``(Q, ...)`` float32.
    """
    arr = np.asarray(x, dtype=np.float64)
    t = np.asarray(timestamps, dtype=np.float64)
    q = np.asarray(query_times, dtype=np.float64)
    if t.ndim != 1 or arr.shape[:1] != t.shape:
        raise ValueError(f'timestamps {t.shape} must match the frames {arr.shape[:1]}')
    if t.size < 1 or np.any(np.diff(t) <= 0):
        raise ValueError('timestamps must be non-empty and strictly increasing')
    if q.size and (q.min() < t[0] or q.max() > t[-1]):
        raise ValueError(f'query times [{q.min()}, {q.max()}] outside the frames [{t[0]}, {t[-1]}]')
    if t.size == 1:
        return np.repeat(arr, q.size, axis=0).astype(np.float32)
    hi = np.clip(np.searchsorted(t, q, side='right'), 1, t.size - 1)
    lo = hi - 1
    frac = ((q - t[lo]) / (t[hi] - t[lo])).reshape((-1,) + (1,) * (arr.ndim - 1))
    return ((1.0 - frac) * arr[lo] + frac * arr[hi]).astype(np.float32)


def skeleton_feature_map(joints: np.ndarray, *, num_frames: int | None = None,
                         channels: Sequence[str] = ('position', 'velocity', 'acceleration'),
                         method: str = 'linear', center_joint: int = HIP_CENTER,
                         top_joint: int = SHOULDER_CENTER) -> np.ndarray:
    """
    Fixed-size encoder input from a joint sequence: ``(T, J, D)`` -> ``(C, num_frames, J)`` float32.

    The sequence is first resampled to ``num_frames`` (``None`` keeps ``T``) with
    :func:`resample_sequence`, then each channel group is computed per frame:
    ``'position'`` (:func:`normalize_skeleton`), ``'velocity'`` (:func:`joint_velocities`),
    ``'acceleration'`` (the frame difference of the velocities, 0 for the first frame),
    ``'bone'`` (Kinect v1 joints only: each joint's direction from its parent joint in
    :data:`KINECT_V1_BONES` as a unit vector, 0 for the hip centre and for a joint on its
    parent; free of body size and limb lengths).
    ``C = D * len(channels)`` for ``D``-dimensional joints; 3-D joints and the default
    channels give ``C = 9``.
    """
    x = _as_joints(joints)
    unknown = [c for c in channels if c not in FEATURE_CHANNELS]
    if unknown or not channels:
        raise ValueError(f'channels must be a non-empty subset of {tuple(FEATURE_CHANNELS)}, got {tuple(channels)}')
    if num_frames is not None:
        x = resample_sequence(x, num_frames=num_frames, method=method).astype(np.float64)
    groups = []
    vel = None
    for name in channels:
        if name == 'position':
            groups.append(normalize_skeleton(x, center_joint=center_joint, top_joint=top_joint))
        elif name == 'bone':
            groups.append(bone_directions(x))
        else:
            if vel is None:
                vel = joint_velocities(x, center_joint=center_joint, top_joint=top_joint)
            if name == 'velocity':
                groups.append(vel)
            else:
                acc = np.zeros_like(vel)
                acc[1:] = np.diff(vel, axis=0)
                groups.append(acc)
    feats = np.concatenate(groups, axis=-1)            # (T, J, C)
    return np.ascontiguousarray(feats.transpose(2, 0, 1), dtype=np.float32)   # (C, T, J)


def bone_directions(joints: np.ndarray) -> np.ndarray:
    """
    Return the unit direction of each Kinect v1 joint from its parent (:data:`KINECT_V1_BONES`), ``(T, 20, D)``.

    The hip centre (the root) and a joint that lies on its parent get 0.
    """
    x = _as_joints(joints)
    if x.shape[1] != NUM_KINECT_V1_JOINTS:
        raise ValueError(f"the 'bone' channel needs the {NUM_KINECT_V1_JOINTS} Kinect v1 joints, got {x.shape[1]}")
    out = np.zeros_like(x)
    parents = np.asarray([a for a, _ in KINECT_V1_BONES])
    children = np.asarray([b for _, b in KINECT_V1_BONES])
    d = x[:, children] - x[:, parents]
    norm = np.linalg.norm(d, axis=-1, keepdims=True)
    out[:, children] = np.where(norm > 1e-9, d / np.maximum(norm, 1e-9), 0.0)
    return out


# --------------------------------------------------------------------------- hand crops

def hand_pixel_positions(pixel_positions: np.ndarray, *, layout: str = 'kinect_v1',
                         image_size: tuple[int, int] | None = None,
                         hand_extension: float = 0.3) -> np.ndarray:
    """
    Left and right hand centres in pixels: ``(T, J, 2)`` -> ``(T, 2, 2)`` (hand, (x, y)).

    ``layout='kinect_v1'``: the hand joints (7 left, 11 right) of pixel positions
    ``(x, y)``; where a hand is at (0, 0) (not tracked) its wrist is used.
    ``layout='skeleton2d'``: ``hri_msgs/Skeleton2D`` keypoints normalised to [0, 1]
    (``image_size=(width, height)`` is required to get pixels); Skeleton2D has no hand
    keypoint, so the hand is approximated as the wrist moved ``hand_extension`` times
    the elbow->wrist vector further along the forearm.
    """
    p = np.asarray(pixel_positions, dtype=np.float64)
    if p.ndim != 3 or p.shape[-1] != 2:
        raise ValueError(f'pixel positions must have shape (T, J, 2), got {p.shape}')
    if layout == 'kinect_v1':
        if p.shape[1] != NUM_KINECT_V1_JOINTS:
            raise ValueError(f'kinect_v1 pixel positions need {NUM_KINECT_V1_JOINTS} joints, got {p.shape[1]}')
        hands = p[:, [HAND_LEFT, HAND_RIGHT]]                                   # (T, 2, 2)
        wrists = p[:, [WRIST_LEFT, WRIST_RIGHT]]
        missing = np.all(hands == 0, axis=-1, keepdims=True)
        out = np.where(missing, wrists, hands)
    elif layout == 'skeleton2d':
        if p.shape[1] != len(SKELETON2D_KEYPOINTS):
            raise ValueError(f'skeleton2d keypoints need {len(SKELETON2D_KEYPOINTS)} points, got {p.shape[1]}')
        if image_size is None:
            raise ValueError('layout skeleton2d needs image_size=(width, height) to convert to pixels')
        s = SKELETON2D_INDEX
        wrists = p[:, [s['left_wrist'], s['right_wrist']]]
        elbows = p[:, [s['left_elbow'], s['right_elbow']]]
        out = (wrists + hand_extension * (wrists - elbows)) * np.asarray(image_size, dtype=np.float64)
    else:
        raise ValueError(f"layout must be 'kinect_v1' or 'skeleton2d', got {layout!r}")
    return out.astype(np.float32)


def crop_box(center: Sequence[float], *, size: int, image_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """
    ``(x0, y0, x1, y1)`` of a ``size`` x ``size`` box centred on ``center=(x, y)``.

    The box is shifted to lie inside an image of ``image_size=(width, height)``
    (clipped at the borders); if the image is smaller than ``size`` the box is the
    whole image along that axis.
    """
    if int(size) != size or size < 1:
        raise ValueError(f'size must be a positive integer, got {size!r}')
    width, height = image_size
    cx, cy = float(center[0]), float(center[1])
    if not (np.isfinite(cx) and np.isfinite(cy)):
        raise ValueError(f'crop centre must be finite, got {center!r}')
    box = []
    for c, extent in ((cx, width), (cy, height)):
        lo = int(round(c - size / 2))
        lo = max(0, min(lo, extent - size))
        box.append((lo, min(lo + size, extent)))
    return box[0][0], box[1][0], box[0][1], box[1][1]


def crop_around(image: np.ndarray, center: Sequence[float], *, size: int) -> np.ndarray:
    """
    Crop ``(size, size, ...)`` from ``image`` ``(H, W, ...)`` around ``center=(x, y)``.

    The crop window is clipped at the image borders (see :func:`crop_box`); only an
    image smaller than ``size`` is zero-padded (bottom / right).
    """
    img = np.asarray(image)
    if img.ndim < 2:
        raise ValueError(f'image must have shape (H, W, ...), got {img.shape}')
    h, w = img.shape[:2]
    x0, y0, x1, y1 = crop_box(center, size=size, image_size=(w, h))
    crop = img[y0:y1, x0:x1]
    if crop.shape[:2] != (size, size):
        pad = [(0, size - crop.shape[0]), (0, size - crop.shape[1])] + [(0, 0)] * (img.ndim - 2)
        crop = np.pad(crop, pad)
    return crop


# --------------------------------------------------------------------------- model input (training and runtime)

SKELETON_LAYOUTS = ('joints_time', 'channels_time_joints')


def feature_layout(feature_map: np.ndarray, *, layout: str = 'joints_time') -> np.ndarray:
    """
    Arrange a ``(C, T, J)`` feature map for an encoder.

    ``'joints_time'``: ``(C * J, T)`` (channel-major: row ``c * J + j``) for a 1-D
    temporal convolution (``cnn1d``); ``'channels_time_joints'``: ``(C, T, J)`` unchanged
    for ``cnn2d``.
    """
    fm = np.asarray(feature_map, dtype=np.float32)
    if fm.ndim != 3:
        raise ValueError(f'feature map must have shape (C, T, J), got {fm.shape}')
    if layout == 'joints_time':
        c, t, j = fm.shape
        return np.ascontiguousarray(fm.transpose(0, 2, 1).reshape(c * j, t))     # (C * J, T)
    if layout == 'channels_time_joints':
        return np.ascontiguousarray(fm)                                           # (C, T, J)
    raise ValueError(f'layout must be one of {SKELETON_LAYOUTS}, got {layout!r}')


def skeleton_model_input(joints: np.ndarray, *, channels: Sequence[str] = ('position', 'velocity'),
                         layout: str = 'joints_time') -> np.ndarray:
    """
    Make the encoder input from joints already on the uniform training grid.

    ``(T, J, 3)`` -> ``(C * J, T)`` or ``(C, T, J)`` float32 (see :func:`feature_layout`).

    Positions centred on the hip and scaled by body size, velocities in body sizes per
    frame (:func:`skeleton_feature_map`).  Training arrays and :func:`skeleton_input`
    both end here.
    """
    return feature_layout(skeleton_feature_map(joints, channels=tuple(channels)), layout=layout)


def grid_times_ns(end_ns: float, *, num_frames: int, frame_rate: float) -> np.ndarray:
    """``num_frames`` times (ns, float64) spaced ``1 / frame_rate`` apart, the last at ``end_ns``."""
    if int(num_frames) != num_frames or num_frames < 1:
        raise ValueError(f'num_frames must be a positive integer, got {num_frames!r}')
    if not frame_rate > 0:
        raise ValueError(f'frame_rate must be positive, got {frame_rate!r}')
    k = np.arange(int(num_frames), dtype=np.float64)
    return float(end_ns) - (int(num_frames) - 1 - k) * (1e9 / float(frame_rate))


def resample_on_stamps(joints: np.ndarray, *, stamps_ns: np.ndarray, num_frames: int, frame_rate: float,
                       end_ns: float | None = None) -> np.ndarray:
    """
    Joints recorded at ``stamps_ns`` -> ``(num_frames, J, D)`` on the uniform training grid.

    The grid (:func:`grid_times_ns`) ends at ``end_ns`` (default: the last stamp).
    All-zero frames (no skeleton tracked) are dropped first, as the dataset readers do;
    the tracked frames are interpolated linearly by time (:func:`interpolate_frames`,
    the function that cut the training windows).  Grid times before the first or after
    the last tracked frame take that frame (held), so a window slightly shorter than
    ``num_frames / frame_rate`` still gives an input.
    """
    x = _as_joints(joints)
    t = np.asarray(stamps_ns, dtype=np.float64)
    if t.shape != x.shape[:1]:
        raise ValueError(f'stamps_ns {t.shape} must give one stamp per frame of the joints {x.shape[:1]}')
    tracked = np.any(x != 0, axis=(1, 2))
    if not tracked.any():
        raise ValueError('no tracked skeleton in the window (every frame is all zeros)')
    x, t = x[tracked], t[tracked]
    if np.any(np.diff(t) <= 0):
        raise ValueError('skeleton stamps must increase strictly')
    q = grid_times_ns(t[-1] if end_ns is None else end_ns, num_frames=num_frames, frame_rate=frame_rate)
    return interpolate_frames(x, timestamps=t, query_times=np.clip(q, t[0], t[-1]))


@dataclasses.dataclass(frozen=True)
class SkeletonSequenceParams:
    """Parameters of pipeline ``skeleton_sequence``: the resampling grid and the features kept."""

    frame_rate: float = 30.0          # Hz of the grid the joints are resampled onto by header stamp
    num_frames: int = 60
    channels: tuple[str, ...] = ('position', 'velocity')
    layout: str = 'joints_time'
    joint_order: str = 'kinect_v1'


def skeleton_input(window, /, **params) -> np.ndarray:
    """
    Pipeline ``skeleton_sequence``: a window of joints -> the skeleton encoder's input.

    ``params``: :class:`SkeletonSequenceParams`; ``window`` is a
    :class:`centralnet_ros.features.pipelines.Window` with ``data``
    ``(T, 20, 3)`` Kinect v1 joints (metres), ``stamps_ns`` ``(T,)`` and optionally
    ``extra['end_ns']``, the decision time the grid ends at (default: the last stamp).
    The frames are resampled by their stamps onto ``num_frames`` times at
    ``frame_rate`` Hz (:func:`resample_on_stamps`) and turned into
    :func:`skeleton_model_input` -- exactly what training computed from the dataset's
    windows.  Returns ``(C * 20, num_frames)`` (``layout='joints_time'``) or
    ``(C, num_frames, 20)`` float32, ``C = 3 * len(channels)``.
    """
    p = SkeletonSequenceParams(**params)
    frame_rate, num_frames, channels, layout, joint_order = (p.frame_rate, p.num_frames, p.channels, p.layout,
                                                             p.joint_order)
    if joint_order != 'kinect_v1':
        raise ValueError(f"joint_order must be 'kinect_v1' (the order the bundle was trained on), got {joint_order!r}")
    data = np.asarray(window.data)
    if data.ndim != 3 or data.shape[1:] != (NUM_KINECT_V1_JOINTS, 3):
        raise ValueError(f'skeleton window must hold (T, {NUM_KINECT_V1_JOINTS}, 3) Kinect v1 joints, got {data.shape}')
    end_ns = (window.extra or {}).get('end_ns')
    grid = resample_on_stamps(data, stamps_ns=window.stamps_ns, num_frames=num_frames, frame_rate=frame_rate,
                              end_ns=end_ns)                                      # (num_frames, 20, 3)
    return skeleton_model_input(grid, channels=channels, layout=layout)
