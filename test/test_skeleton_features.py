"""Skeleton features: joint orders, normalisation invariances, resampling, hand crops."""
from __future__ import annotations

from centralnet_ros.features import skeleton as skel
from hypothesis import given, settings
from hypothesis import strategies as st
import numpy as np
import pytest


def _random_skeleton(seed: int, frames: int = 12) -> np.ndarray:
    """Make a plausible (T, 20, 3) sequence: a fixed body with small joint motion."""
    rng = np.random.default_rng(seed)
    body = rng.normal(0.0, 0.3, (skel.NUM_KINECT_V1_JOINTS, 3))
    body[skel.SHOULDER_CENTER] = body[skel.HIP_CENTER] + np.array([0.0, 0.5, 0.0])
    motion = np.cumsum(rng.normal(0.0, 0.02, (frames, skel.NUM_KINECT_V1_JOINTS, 3)), axis=0)
    return body[None] + motion


def test_joint_orders():
    assert len(skel.KINECT_V1_JOINTS) == 20
    assert skel.KINECT_V1_JOINTS[:4] == ('hip_center', 'spine', 'shoulder_center', 'head')
    assert skel.KINECT_V1_JOINTS[skel.HAND_RIGHT] == 'hand_right'
    assert skel.KINECT_V1_JOINTS[skel.FOOT_RIGHT] == 'foot_right' and skel.FOOT_RIGHT == 19
    # hri_msgs/Skeleton2D: NOSE = 0, NECK = 1, RIGHT_WRIST = 4, LEFT_WRIST = 7, RIGHT_EAR = 17
    assert len(skel.SKELETON2D_KEYPOINTS) == 18
    assert (skel.SKELETON2D_INDEX['nose'], skel.SKELETON2D_INDEX['neck'], skel.SKELETON2D_INDEX['right_wrist'],
            skel.SKELETON2D_INDEX['left_wrist'], skel.SKELETON2D_INDEX['right_ear']) == (0, 1, 4, 7, 17)
    for kin, s2d in skel.KINECT_V1_TO_SKELETON2D.items():
        assert kin in skel.KINECT_V1_INDEX and s2d in skel.SKELETON2D_INDEX
    # every bone joins two joints, and every joint but the root has exactly one parent
    children = [c for _, c in skel.KINECT_V1_BONES]
    assert sorted(children) == list(range(1, 20))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), shift=st.tuples(*[st.floats(-5, 5)] * 3), scale=st.floats(0.2, 5.0))
def test_feature_map_invariant_to_translation_and_scale(seed, shift, scale):
    x = _random_skeleton(seed)
    y = x * scale + np.asarray(shift)
    fx = skel.skeleton_feature_map(x, num_frames=16)
    fy = skel.skeleton_feature_map(y, num_frames=16)
    np.testing.assert_allclose(fx, fy, atol=1e-4)
    # positions are centred on the hip centre and the torso has unit length
    pos = skel.normalize_skeleton(y)
    np.testing.assert_allclose(pos[:, skel.HIP_CENTER], 0.0, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(pos[:, skel.SHOULDER_CENTER], axis=-1), 1.0, atol=1e-5)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_positions_invariant_to_per_frame_translation(seed):
    x = _random_skeleton(seed)
    walk = np.cumsum(np.random.default_rng(seed).normal(0, 0.1, (len(x), 1, 3)), axis=0)
    np.testing.assert_allclose(skel.normalize_skeleton(x), skel.normalize_skeleton(x + walk), atol=1e-5)
    # ... while the velocities keep the global motion
    assert not np.allclose(skel.joint_velocities(x), skel.joint_velocities(x + walk), atol=1e-3)


def test_feature_map_shape_and_channels():
    x = _random_skeleton(0, frames=50)
    f = skel.skeleton_feature_map(x, num_frames=32)
    assert f.shape == (9, 32, 20) and f.dtype == np.float32
    f6 = skel.skeleton_feature_map(x, num_frames=32, channels=('position', 'velocity'))
    assert f6.shape == (6, 32, 20)
    np.testing.assert_allclose(f6, f[:6])
    # the first frame has no velocity or acceleration
    assert np.all(f[3:, 0] == 0)
    with pytest.raises(ValueError, match='channels'):
        skel.skeleton_feature_map(x, channels=('speed',))
    with pytest.raises(ValueError, match=r'\(T, J, 2 or 3\)'):
        skel.skeleton_feature_map(x[0])


def test_bone_channel_is_each_joints_unit_direction_from_its_parent_free_of_size():
    x = _random_skeleton(1, frames=12)
    b = skel.bone_directions(x)
    assert b.shape == x.shape and np.all(b[:, skel.HIP_CENTER] == 0)
    for parent, child in skel.KINECT_V1_BONES:
        d = x[:, child] - x[:, parent]
        np.testing.assert_allclose(b[:, child], d / np.linalg.norm(d, axis=-1, keepdims=True), atol=1e-6)
    np.testing.assert_allclose(skel.bone_directions(2.5 * x + 1.0), b, atol=1e-6)   # any body size, anywhere
    x[:, skel.HEAD] = x[:, skel.SHOULDER_CENTER]                                    # a joint on its parent
    assert np.all(skel.bone_directions(x)[:, skel.HEAD] == 0)
    f = skel.skeleton_feature_map(x, channels=('position', 'velocity', 'bone'))
    assert f.shape == (9, 12, 20)
    np.testing.assert_allclose(f[6:], skel.bone_directions(x).transpose(2, 0, 1), atol=1e-6)
    with pytest.raises(ValueError, match="'bone' channel needs the 20 Kinect v1 joints"):
        skel.bone_directions(np.ones((4, 18, 3)))


def test_body_size_is_robust_to_zero():
    x = np.zeros((3, 20, 3))
    x[1, skel.SHOULDER_LEFT] = [-0.2, 0, 0]
    x[1, skel.SHOULDER_RIGHT] = [0.2, 0, 0]
    size = skel.body_size(x)
    np.testing.assert_allclose(size, [1.0, 0.4, 1.0])          # torso 0 -> shoulders -> 1
    assert np.all(np.isfinite(skel.normalize_skeleton(x)))
    assert np.all(np.isfinite(skel.joint_velocities(x)))


def test_velocities_are_frame_differences_in_body_sizes():
    x = _random_skeleton(3, frames=5)
    v = skel.joint_velocities(x)
    size = skel.body_size(x)
    np.testing.assert_allclose(v[0], 0.0)
    np.testing.assert_allclose(v[2], (x[2] - x[1]) / size[2], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('method', ['linear', 'fourier'])
def test_resample_sequence(method):
    t = np.linspace(0, 1, 40)
    x = np.stack([np.sin(2 * np.pi * t), t], axis=1)                # (40, 2)
    y = skel.resample_sequence(x, num_frames=100, method=method)
    assert y.shape == (100, 2)
    t2 = np.linspace(0, 1, 100)
    expect = np.stack([np.sin(2 * np.pi * t2), t2], axis=1)
    # a smooth signal survives; the ends are kept (no ringing from the detrended FFT)
    tol = 0.01 if method == 'linear' else 0.05
    np.testing.assert_allclose(y, expect, atol=tol)
    np.testing.assert_allclose(y[[0, -1]], x[[0, -1]], atol=1e-3)
    assert skel.resample_sequence(x, num_frames=40, method=method).shape == (40, 2)
    with pytest.raises(ValueError, match='method'):
        skel.resample_sequence(x, num_frames=10, method='cubic')


def test_resample_linear_matches_interp():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 3, 2))
    y = skel.resample_sequence(x, num_frames=13)
    pos = np.linspace(0, 6, 13)
    np.testing.assert_allclose(y[:, 1, 0], np.interp(pos, np.arange(7), x[:, 1, 0]), rtol=1e-5, atol=1e-6)


def test_interpolate_frames():
    t = np.array([0.0, 10.0, 30.0])
    x = np.array([[0.0], [1.0], [3.0]])
    y = skel.interpolate_frames(x, timestamps=t, query_times=np.array([0.0, 5.0, 20.0, 30.0]))
    np.testing.assert_allclose(y[:, 0], [0.0, 0.5, 2.0, 3.0])
    with pytest.raises(ValueError, match='outside'):
        skel.interpolate_frames(x, timestamps=t, query_times=np.array([31.0]))
    with pytest.raises(ValueError, match='increasing'):
        skel.interpolate_frames(x, timestamps=np.array([0.0, 0.0, 1.0]), query_times=np.array([0.5]))


def test_hand_positions_and_crops():
    pix = np.zeros((2, 20, 2), np.float32)
    pix[:, skel.HAND_LEFT] = [100, 50]
    pix[:, skel.WRIST_RIGHT] = [300, 200]            # right hand missing in frame 0 -> wrist
    pix[1, skel.HAND_RIGHT] = [310, 210]
    hands = skel.hand_pixel_positions(pix)
    assert hands.shape == (2, 2, 2)
    np.testing.assert_allclose(hands[0], [[100, 50], [300, 200]])
    np.testing.assert_allclose(hands[1], [[100, 50], [310, 210]])

    img = np.arange(120 * 160).reshape(120, 160)
    crop = skel.crop_around(img, (80, 60), size=32)
    assert crop.shape == (32, 32) and crop[16, 16] == img[60, 80]
    # at a border the window is shifted inside the image, never padded
    corner = skel.crop_around(img, (0, 0), size=32)
    np.testing.assert_array_equal(corner, img[:32, :32])
    far = skel.crop_around(img, (1000, 1000), size=32)
    np.testing.assert_array_equal(far, img[-32:, -32:])
    assert skel.crop_box((0, 0), size=32, image_size=(160, 120)) == (0, 0, 32, 32)
    small = skel.crop_around(img[:10, :10], (5, 5), size=16)
    assert small.shape == (16, 16) and np.all(small[10:] == 0)


def test_skeleton2d_hands_need_image_size():
    pts = np.full((1, 18, 2), 0.5, np.float32)
    pts[0, skel.SKELETON2D_INDEX['left_elbow']] = [0.4, 0.5]
    pts[0, skel.SKELETON2D_INDEX['left_wrist']] = [0.5, 0.5]
    hands = skel.hand_pixel_positions(pts, layout='skeleton2d', image_size=(640, 480), hand_extension=0.5)
    np.testing.assert_allclose(hands[0, 0], [0.55 * 640, 0.5 * 480], rtol=1e-5)
    with pytest.raises(ValueError, match='image_size'):
        skel.hand_pixel_positions(pts, layout='skeleton2d')
