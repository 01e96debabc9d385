"""Skeleton messages (``geometry_msgs/PoseArray``, ``hri_msgs/Skeleton2D``) -> numpy joint arrays."""
from __future__ import annotations

from typing import Any

import numpy as np

from .fields import _field, _float_field, _sequence_field, MalformedMessage


KINECT_V1_JOINTS = (
    'hip_center', 'spine', 'shoulder_center', 'head',
    'shoulder_left', 'elbow_left', 'wrist_left', 'hand_left',
    'shoulder_right', 'elbow_right', 'wrist_right', 'hand_right',
    'hip_left', 'knee_left', 'ankle_left', 'foot_left',
    'hip_right', 'knee_right', 'ankle_right', 'foot_right',
)
"""The 20-joint Kinect v1 layout (Kinect for Windows SDK 1.x ``NUI_SKELETON_POSITION_INDEX``),
the order of MSRC-12 and ChaLearn 2013 skeletons. A ``geometry_msgs/PoseArray`` skeleton
carries joint ``i`` in ``poses[i].position`` (metres, camera frame); orientations are unused."""

SKELETON2D_JOINTS = (
    'nose', 'neck', 'right_shoulder', 'right_elbow', 'right_wrist', 'left_shoulder',
    'left_elbow', 'left_wrist', 'right_hip', 'right_knee', 'right_ankle', 'left_hip',
    'left_knee', 'left_ankle', 'left_eye', 'right_eye', 'left_ear', 'right_ear',
)
"""``hri_msgs/Skeleton2D`` keypoint order (OpenPose COCO-18; constants NOSE=0 ... RIGHT_EAR=17)."""


def pose_array_to_joints(msg: Any, *, num_joints: int | None = len(KINECT_V1_JOINTS),
                         allow_nan: bool = False) -> np.ndarray:
    """
    ``geometry_msgs/PoseArray`` -> ``(J, 3)`` float32 joint positions.

    ``num_joints`` (default 20, :data:`KINECT_V1_JOINTS`) is enforced unless None.
    NaN/inf positions are malformed unless ``allow_nan`` (a tracker that marks
    untracked joints with NaN).
    """
    poses = _sequence_field(msg, 'poses', 'PoseArray')
    if len(poses) == 0:
        raise MalformedMessage('empty', 'PoseArray.poses is empty')
    if num_joints is not None and len(poses) != num_joints:
        raise MalformedMessage('size', f'PoseArray has {len(poses)} poses; expected {num_joints} joints')
    joints = np.empty((len(poses), 3), dtype=np.float32)    # (J, 3)
    for i, pose in enumerate(poses):
        p = _field(pose, 'position', f'PoseArray.poses[{i}]')
        joints[i] = (_float_field(p, 'x', 'position'), _float_field(p, 'y', 'position'),
                     _float_field(p, 'z', 'position'))
    if not allow_nan and not np.isfinite(joints).all():
        raise MalformedMessage('nan', 'PoseArray holds NaN or infinite joint positions')
    return joints


def skeleton2d_to_array(msg: Any) -> np.ndarray:
    """
    Convert ``hri_msgs/Skeleton2D`` -> ``(18, 3)`` float32 rows ``(x, y, c)``.

    Normalised image coordinates (0, 0 top-left) and confidence, in :data:`SKELETON2D_JOINTS` order.
    """
    points = _sequence_field(msg, 'skeleton', 'Skeleton2D')
    if len(points) == 0:
        raise MalformedMessage('empty', 'Skeleton2D.skeleton is empty')
    if len(points) != len(SKELETON2D_JOINTS):
        raise MalformedMessage('size', f'Skeleton2D.skeleton has {len(points)} points; expected 18')
    out = np.empty((18, 3), dtype=np.float32)               # (18, 3)
    for i, p in enumerate(points):
        out[i] = (_float_field(p, 'x', 'point'), _float_field(p, 'y', 'point'), _float_field(p, 'c', 'point'))
    if not np.isfinite(out).all():
        raise MalformedMessage('nan', 'Skeleton2D holds NaN or infinite keypoints')
    return out
