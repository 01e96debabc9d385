"""
2-D bodies: virtual cameras, Skeleton2D features and pipeline, depth lifting, the 2-D gesture bundle.

On real MSRC-12 skeletons (the shared data root); no stored floats are compared.
"""
from __future__ import annotations

from centralnet_ros import paths
from centralnet_ros.data import msrc12
from centralnet_ros.features import depth_lift as DL
from centralnet_ros.features import skeleton as skel
from centralnet_ros.features import skeleton2d as s2d
from centralnet_ros.features.pipelines import run_pipeline, Window
from centralnet_ros.training import gesture as G
from centralnet_ros.training.experiment import load_experiment
from centralnet_ros.training.gesture import load_msrc12, msrc12_inputs, MSRC12Options
import numpy as np
import pytest

S = skel.SKELETON2D_INDEX


@pytest.fixture(scope='module')
def windows(data_root):
    """Return the 15 Hz joint windows of person p03 and their labels."""
    seqs = msrc12.load_sequences(data_root / 'msrc12', persons=[3])
    w = msrc12.gesture_windows(seqs, frame_rate=15.0, include_none=True)
    return w.joints, w.labels


def _camera(joints, **ranges):
    return s2d.sample_camera(np.random.default_rng(0), joints, s2d.CameraRanges(**ranges))


def test_projection_keeps_sides_and_marks_missing_points(windows):
    joints = windows[0][0].astype(np.float64)
    kp = s2d.kinect_to_skeleton2d(joints, _camera(joints, yaw_deg=(0.0, 0.0), distance_m=(3.0, 3.0)))
    assert kp.shape == (30, 18, 3)
    for name in ('left_eye', 'right_eye', 'left_ear', 'right_ear'):     # the Kinect has none: missing
        assert np.all(kp[:, S[name]] == 0)
    seen = kp[..., 2] > 0
    assert seen[:, [S['neck'], S['left_hip'], S['right_hip']]].all()    # at 3 m the whole body is in view
    assert np.all((kp[seen][:, :2] >= 0) & (kp[seen][:, :2] < 1))
    # a person facing the camera shows the left shoulder on the image's right, above the hips
    assert np.all(kp[:, S['left_shoulder'], 0] > kp[:, S['right_shoulder'], 0])
    assert np.all(kp[:, S['neck'], 1] < kp[:, S['left_hip'], 1])


def test_camera_draws_respect_the_ranges(windows):
    rng = np.random.default_rng(1)
    ranges = s2d.CameraRanges()
    for joints in windows[0][:20]:
        cam = s2d.sample_camera(rng, joints, ranges)
        hip = joints[:, skel.HIP_CENTER].mean(0)
        floor = joints[:, [skel.FOOT_LEFT, skel.FOOT_RIGHT], 1].min()
        assert 0.5 - 1e-9 <= cam.position[1] - floor <= 1.3 + 1e-9
        assert 1.0 - 1e-9 <= np.hypot(*(cam.position - hip)[[0, 2]]) <= 3.5 + 1e-9
        assert 450 <= cam.fx <= 650 and np.allclose(cam.rotation @ cam.rotation.T, np.eye(3))
    with pytest.raises(ValueError, match='distance_m'):
        s2d.CameraRanges(distance_m=(3.0, 1.0))


def test_features_do_not_depend_on_image_position_or_scale(windows):
    joints = windows[0][5].astype(np.float64)
    kp = s2d.kinect_to_skeleton2d(joints, _camera(joints, distance_m=(3.0, 3.0)))
    moved = kp.copy()
    seen = kp[..., 2] > 0
    centre = np.array([0.5, 0.5])
    moved[..., :2] = np.where(seen[..., None], (kp[..., :2] - centre) * 0.6 + centre + [0.1, -0.05], 0.0)
    a, b = s2d.skeleton2d_feature_map(kp), s2d.skeleton2d_feature_map(moved)
    assert a.shape == (5, 30, 18)
    assert np.allclose(a, b, atol=1e-5)
    assert np.all(a[4] == seen)                                          # the visibility channel
    assert np.all(a[:4][:, ~seen] == 0)                                  # missing points carry no position
    with pytest.raises(ValueError, match='neck|body'):
        s2d.skeleton2d_feature_map(np.zeros((30, 18, 3)))


def test_pipeline_reproduces_the_training_arrays(windows, data_root):
    opts = MSRC12Options(projection='pinhole', channels=['position', 'velocity', 'visibility'])
    joints, labels = windows[0][:8], windows[1][:8]
    x, y = msrc12_inputs(joints, labels, opts, split='test', seed=3)
    # the same keypoints as Skeleton2D messages at 15 Hz: the pipeline must give the same arrays
    rng = np.random.default_rng([opts.projection_seed, 2, 3])
    cams = s2d.CAMERA_CONDITIONS['all']
    for j, expected in zip(joints, x):
        kp = s2d.corrupt_keypoints(s2d.kinect_to_skeleton2d(j, s2d.sample_camera(rng, j, cams)), rng)
        stamps = 10**9 + np.arange(30) * (10**9 // 15)
        got = run_pipeline('skeleton2d_sequence', Window(kp, stamps, extra={'end_ns': int(stamps[-1])}),
                           opts.pipeline_params())
        assert got.shape == (90, 30)
        assert np.allclose(got, expected, atol=1e-4)


def test_resampling_keeps_missing_points_missing():
    kp = np.zeros((10, 18, 3), np.float32)
    kp[:, :, :2] = 0.5
    kp[:, :, 2] = 1.0
    kp[4:6, S['left_wrist']] = 0.0                                       # lost for two frames
    stamps = np.arange(10) * (10**9 // 15)
    out = s2d.resample_keypoints_on_stamps(kp, stamps_ns=stamps, num_frames=10, frame_rate=15.0)
    assert np.all(out[4:6, S['left_wrist']] == 0) and np.all(out[:4, S['left_wrist'], 2] == 1)


def test_projected_training_data_depends_on_the_seed_only(data_root):
    opts = {'persons': [1, 2, 3], 'test_persons': [3], 'val_persons': [2], 'projection': 'pinhole',
            'channels': ['position', 'velocity', 'visibility'], 'camera_draws': 2}
    a, b = load_msrc12(opts, data_root), load_msrc12(opts, data_root)
    assert a.train.inputs['skeleton'].shape[1:] == (90, 30)
    assert np.array_equal(a.train.inputs['skeleton'], b.train.inputs['skeleton'])
    near = load_msrc12({**opts, 'test_camera': 'near (1-1.5 m)'}, data_root)
    assert not np.array_equal(near.test.inputs['skeleton'], a.test.inputs['skeleton'])
    assert 'pinhole' in a.info['projection']
    with pytest.raises(Exception, match='test_camera'):
        load_msrc12({**opts, 'test_camera': 'moon'}, data_root)


def test_preset_preprocessing_matches_its_dataset_options():
    cfg = load_experiment('msrc12_gesture2d')
    opts = MSRC12Options(**{k: v for k, v in cfg.dataset_options.items()})
    assert cfg.bundle.modalities['skeleton']['preprocessing'] == opts.pipeline_params()


def test_training_none_windows_change_the_training_split_only(data_root):
    opts = {'persons': [1, 2, 3], 'test_persons': [3], 'val_persons': [2], 'include_none': True}
    base = load_msrc12(opts, data_root)
    dense = load_msrc12({**opts, 'train_none_min_distance_s': 1.0, 'train_none_stride_s': 0.5}, data_root)
    none = len(base.label_names) - 1
    assert np.sum(dense.train.labels == none) > 1.5 * np.sum(base.train.labels == none)
    assert np.sum(dense.train.labels != none) == np.sum(base.train.labels != none)
    for split in ('val', 'test'):                                 # the benchmark's definition is kept
        a, b = getattr(base, split), getattr(dense, split)
        assert np.array_equal(a.labels, b.labels) and np.array_equal(a.inputs['skeleton'], b.inputs['skeleton'])
    assert 'train_none' in dense.info and 'train_none' not in base.info


def test_none_bias_is_chosen_on_validation_and_carried_by_the_output_layer():
    import torch
    from centralnet_ros.fusion import build_model
    from centralnet_ros.training.trainer import ArraySplit, predict
    labels = np.array([0] * 10 + [2] * 30)                        # most windows are class 2 ("none") ...
    logits = np.zeros((40, 3))
    logits[:, 0] = np.where(labels == 0, 2.0, 1.0)                # ... but every window is called class 0
    logits[:, 2] = 0.5
    bias, acc = G.choose_class_bias(logits, labels, 2)
    assert 0.5 < bias < 1.5 and acc == 1.0                        # the smallest bias that separates them
    assert G.choose_class_bias(logits, np.zeros(40, int), 2) == (0.0, 1.0)   # nothing to gain: no bias
    cfg = load_experiment('msrc12_gesture2d')
    torch.manual_seed(0)
    model = build_model(cfg.fusion_config(cfg.bundle.method))
    rng = np.random.default_rng(0)
    shape = tuple(cfg.modalities['skeleton'].input_shape)
    val = ArraySplit({'skeleton': rng.standard_normal((64, *shape)).astype(np.float32)},
                     np.where(rng.random(64) < 0.6, 12, rng.integers(0, 12, 64)))
    before = predict(model, val)
    out = G.calibrate_class_bias(model, val, 12)
    after = predict(model, val)
    assert np.allclose(after[:, 12] - before[:, 12], out['bias'], atol=1e-5)
    assert np.allclose(after[:, :12], before[:, :12], atol=1e-6)
    assert out['val_accuracy_after'] == pytest.approx(float(np.mean(after.argmax(1) == val.labels)))
    assert out['val_accuracy_after'] >= out['val_accuracy_before']


# --------------------------------------------------------------------------- depth lifting

def test_depth_median_over_frames_removes_jumps_and_keeps_each_ray():
    K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
    kp = np.zeros((18, 3))
    kp[[1, 2, 5, 8, 11], :] = [[0.5, 0.3, 1], [0.45, 0.3, 1], [0.55, 0.3, 1], [0.47, 0.6, 1], [0.53, 0.6, 1]]
    kp[S['right_wrist']] = [0.4, 0.45, 1.0]                     # its patch jumps between forearm and torso
    u, v = int(0.4 * 640), int(0.45 * 480)
    raw = DL.SkeletonLifter(face_camera=False)
    smooth = DL.SkeletonLifter(face_camera=False, depth_frames=5)
    wrist_raw, wrist_smooth = [], []
    for t in range(20):
        depth = np.full((480, 640), 2.0, np.float32)
        depth[v - 3:v + 4, u - 3:u + 4] = 1.7 if t % 3 == 0 else 2.0   # the forearm, one frame in three
        wrist_raw.append(raw(kp, depth, K)[skel.WRIST_RIGHT])
        wrist_smooth.append(smooth(kp, depth, K)[skel.WRIST_RIGHT])
    wrist_raw, wrist_smooth = np.array(wrist_raw), np.array(wrist_smooth)
    assert np.ptp(wrist_raw[5:, 2]) == pytest.approx(0.3, abs=1e-3)
    assert np.ptp(wrist_smooth[5:, 2]) < 1e-6                   # the median holds the torso depth
    assert np.allclose(wrist_smooth[:, :2] / wrist_smooth[:, 2:], wrist_raw[:, :2] / wrist_raw[:, 2:])  # same ray
    with pytest.raises(ValueError, match='depth_frames'):
        DL.SkeletonLifter(depth_frames=0)


def test_lifting_recovers_the_joints_from_a_rendered_depth_image(windows):
    joints = windows[0][10].astype(np.float64)
    cam = _camera(joints, distance_m=(2.0, 2.0), yaw_deg=(0.0, 0.0))
    kp = s2d.kinect_to_skeleton2d(joints, cam)
    have = s2d.SKELETON2D_FROM_KINECT >= 0
    for t in (0, 15, 29):
        true = cam.to_camera(joints[t])[s2d.SKELETON2D_FROM_KINECT[have]]          # (14, 3) optical frame
        depth = DL.render_skeleton_depth(cam.to_camera(joints[t]), cam.K, width=640, height=480,
                                         rng=np.random.default_rng(t))
        pts = DL.lift_keypoints(kp[t], depth, cam.K)
        assert np.all(np.isnan(pts[~have]))
        seen = kp[t, have, 2] > 0
        err = np.linalg.norm(pts[have][seen] - true[seen], axis=1)
        assert np.median(err) < 0.15 and np.all(err < 0.3)        # the body's surface, in front of the joints
        ray = pts[have][seen, :2] / pts[have][seen, 2:] - true[seen, :2] / true[seen, 2:]
        assert np.all(np.abs(ray) < 0.01)                          # on the keypoint's ray


def test_lifting_rejects_invalid_depth():
    K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
    kp = np.zeros((18, 3))
    kp[:3] = [[0.5, 0.5, 1.0], [0.25, 0.5, 1.0], [0.75, 0.5, 1.0]]
    depth = np.full((480, 640), 2.0, np.float32)
    depth[230:251, 150:171] = 0.0                                 # a hole around keypoint 1
    depth[230:251, 470:491] = 9.5                                 # out of range around keypoint 2
    pts = DL.lift_keypoints(kp, depth, K)
    assert np.allclose(pts[:3, 2], 2.0)                           # both take the body's median depth
    assert np.allclose(pts[0, :2], 0.0, atol=1e-6) and np.all(np.isnan(pts[3:]))
    far = depth.copy()
    far[230:251, 150:171] = 4.5                                   # the wall behind a hand
    far[230:251, 470:491] = 2.0
    assert DL.lift_keypoints(kp, far, K)[1, 2] == pytest.approx(2.0)
    assert np.all(np.isnan(DL.lift_keypoints(kp, np.zeros_like(depth), K)))
    with pytest.raises(ValueError, match='K must'):
        DL.lift_keypoints(kp, depth, np.eye(3) * 0)


def test_lifted_skeleton_is_a_kinect_skeleton(windows):
    joints = windows[0][20].astype(np.float64)
    have = s2d.SKELETON2D_FROM_KINECT >= 0
    lifted = np.full((18, 3), np.nan)
    lifted[have] = joints[0][s2d.SKELETON2D_FROM_KINECT[have]] * [-1.0, -1.0, 1.0]   # Kinect -> optical frame
    out = DL.kinect_joints_from_lifted(lifted)
    assert out.shape == (20, 3)
    mapped = s2d.SKELETON2D_FROM_KINECT[have]
    assert np.allclose(out[mapped], joints[0][mapped], atol=1e-5)
    made = [skel.HIP_CENTER, skel.SPINE, skel.HAND_LEFT, skel.HAND_RIGHT, skel.FOOT_LEFT, skel.FOOT_RIGHT]
    assert np.median(np.linalg.norm(out[made] - joints[0][made], axis=1)) < 0.1
    lifted[S['left_wrist']] = np.nan                              # a missing wrist takes the elbow
    assert np.allclose(DL.kinect_joints_from_lifted(lifted)[skel.WRIST_LEFT], out[skel.ELBOW_LEFT])


def test_turning_to_face_the_camera_undoes_a_yaw(windows):
    joints = windows[0][3][0].astype(np.float64)
    for yaw in (0.6, -0.7):
        c, s = np.cos(yaw), np.sin(yaw)
        rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
        hip = joints[skel.HIP_CENTER]
        turned = (joints - hip) @ rot.T + hip
        est = DL.body_yaw(turned) - DL.body_yaw(joints)
        assert est == pytest.approx(yaw, abs=1e-6)
        assert np.allclose(DL.turn_to_face_camera(turned, est), joints, atol=1e-5)


# --------------------------------------------------------------------------- the shipped bundle

def test_shipped_gesture2d_bundle_classifies_held_out_persons_through_virtual_cameras(data_root):
    from centralnet_ros.runtime.engine import TaskModel
    bundle = paths.models_dir() / 'gesture2d'
    if not (bundle / 'manifest.yaml').is_file():
        pytest.skip('models/gesture2d not built')
    model = TaskModel(bundle, backend='torch', warmup=0)
    pp = model.manifest.modalities['skeleton'].preprocessing
    assert model.manifest.modalities['skeleton'].pipeline == 'skeleton2d_sequence'
    seqs = msrc12.load_sequences(data_root / 'msrc12', persons=[11, 12])[::4]
    w = msrc12.gesture_windows(seqs, before_s=float(model.manifest.modalities['skeleton'].window_s) - 0.5,
                               frame_rate=pp['frame_rate'], include_none=False)      # the bundle's window
    rng = np.random.default_rng(5)
    correct = 0
    for j, y in zip(w.joints, w.labels):
        kp = s2d.corrupt_keypoints(s2d.kinect_to_skeleton2d(j, s2d.sample_camera(rng, j)), rng)
        stamps = np.arange(len(kp)) * int(1e9 / pp['frame_rate'])
        x = run_pipeline('skeleton2d_sequence', Window(kp, stamps), pp)
        correct += model.classify({'skeleton': x}).label == msrc12.CLASS_NAMES[y]
    assert correct / len(w.labels) > 0.6                        # chance: 1/13


def test_recordings_stream_through_a_virtual_camera_as_the_2d_bundle_was_trained(data_root):
    from centralnet_ros.replay.calibration import msrc12_stream
    from centralnet_ros.runtime.engine import TaskModel
    bundle = paths.models_dir() / 'gesture2d'
    if not (bundle / 'manifest.yaml').is_file():
        pytest.skip('models/gesture2d not built')
    model = TaskModel(bundle, backend='torch', warmup=0)
    spec = model.manifest.modalities['skeleton']
    seqs = msrc12.load_sequences(data_root / 'msrc12', persons=[11])[::5]
    correct = total = 0
    for seq in seqs:
        kw = {'rate_hz': 10.0, 'window_s': float(spec.window_s), 'params': dict(spec.preprocessing),
              'pipeline': 'skeleton2d_sequence'}
        t, x = msrc12_stream(seq, **kw)
        assert x.shape[1:] == tuple(spec.input_shape) and len(t) == len(x) > 100
        assert np.array_equal(msrc12_stream(seq, **kw)[1], x)                    # the same camera and noise
        assert not np.array_equal(msrc12_stream(seq, **kw, seed=1)[1], x)        # another seed: another camera
        name = msrc12.CLASS_NAMES[seq.info.gesture - 1]
        for ap in seq.action_times:                      # the decision 0.5 s after each action point
            k = int(np.argmin(np.abs(t - (int(ap) * 1000 + 500_000_000))))
            correct += model.classify({'skeleton': x[k]}).label == name
            total += 1
    assert total > 30 and correct / total > 0.6                                  # chance: 1/13
    t3, x3 = msrc12_stream(seqs[0], rate_hz=10.0, window_s=2.0, params={'num_frames': 30})   # Kinect joints, 3-D
    assert x3.shape[1:] == (120, 30) and np.array_equal(t3, msrc12_stream(seqs[0], **kw)[0])
    with pytest.raises(ValueError, match="pipeline must be 'skeleton_sequence' or 'skeleton2d_sequence'"):
        msrc12_stream(seqs[0], rate_hz=10.0, window_s=2.0, params={}, pipeline='mfcc')
    # the torso (neck, shoulders, hips) leaves the image for 6 s: windows with no frame to normalise by give no
    # decision, as in the runtime; the others stay
    import dataclasses
    gone = dataclasses.replace(seqs[0], joints=seqs[0].joints.copy())
    tracked = np.flatnonzero(gone.tracked)
    torso = [skel.KINECT_V1_INDEX[j] for j in ('shoulder_center', 'shoulder_left', 'shoulder_right', 'hip_left',
                                               'hip_right')]
    gone.joints[np.ix_(tracked[60:240], torso, [0])] += 40.0            # 40 m to the side
    t_gone, x_gone = msrc12_stream(gone, **kw)
    t0, x0 = msrc12_stream(seqs[0], **kw)
    assert 20 < len(t0) - len(t_gone) < 80 and set(t_gone.tolist()) < set(t0.tolist())
