"""
Gestures from 2-D keypoints lifted to 3-D with a depth image, fed to the shipped 3-D gesture model.

The shipped ``models/gesture`` bundle (Kinect v1 joints, trained on p01-p10) is tested on
its held-out persons p11-p12 (12 gestures + "none"):

* ``direct 3-D``: the Kinect joints as recorded (what the bundle was made for);
* ``ideal lift``: the 14 joints a 2-D detector has, at their true 3-D positions, completed
  to 20 joints as :func:`~centralnet_ros.features.depth_lift.kinect_joints_from_lifted` does
  (the loss due to the missing joints alone);
* ``depth-lifted``: each window seen by a random virtual camera
  (:data:`~centralnet_ros.features.skeleton2d.CAMERA_CONDITIONS`): 2-D keypoints with detector
  noise and drop-outs, a depth image rendered per frame (limbs, torso, background wall,
  sensor noise, 10 % missing pixels and elliptic holes), lifted by
  :func:`~centralnet_ros.features.depth_lift.lift_keypoints` (median depth of a 5x5 patch,
  invalid depth rejected, back-projection with K), levelled with the camera's orientation
  (from TF on a robot); once more without levelling (a camera assumed level), once more
  without turning the body to face the camera, and once with each keypoint's depth the
  median of its last ``--depth-frames`` lifted depths (``SkeletonLifter(depth_frames=...)``);
* ``2-D model``: the shipped ``models/gesture2d`` on the same noisy 2-D keypoints (what a
  robot uses without depth, or when the lifting is unreliable).

Writes ``benchmarks/results/msrc12_depth.md`` and ``msrc12_depth.json``.

    python benchmarks/msrc12_depth_benchmark.py [--conditions all 'near (1-1.5 m)'] [--max-windows 200]
        [--depth-frames 5]
"""
from __future__ import annotations

import argparse
from pathlib import Path
import sys
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--bundle', default=None, help='3-D gesture bundle (default: the shipped models/gesture)')
    parser.add_argument('--bundle-2d', default=None,
                        help='2-D gesture bundle tried on the same keypoints (default: the shipped models/gesture2d)')
    parser.add_argument('--depth-frames', type=int, default=5,
                        help='frames of the per-keypoint depth median in the smoothed rows')
    parser.add_argument('--conditions', nargs='*', default=['all', 'near (1-1.5 m)', 'far (3-3.5 m)',
                                                            'oblique (yaw 35-45 deg)'])
    parser.add_argument('--max-windows', type=int, default=0, help='test windows used (0: all)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', default=str(Path(__file__).resolve().parent / 'results'))
    args = parser.parse_args(argv)

    import torch
    torch.set_num_threads(1)
    from centralnet_ros import paths
    from centralnet_ros.bundle import load_bundle
    from centralnet_ros.config import from_dict
    from centralnet_ros.data import msrc12
    from centralnet_ros.features import depth_lift as DL
    from centralnet_ros.features import skeleton as skel
    from centralnet_ros.features import skeleton2d as s2d
    from centralnet_ros.machine import command_line, machine_description, write_results
    from centralnet_ros.training import gesture as G
    from centralnet_ros.training.trainer import ArraySplit, predict

    bundle = load_bundle(args.bundle or paths.models_dir() / 'gesture')
    m = bundle.manifest
    pp = m.modalities['skeleton'].preprocessing
    opts = from_dict(G.MSRC12Options, {'classes': 'all', 'include_none': True, 'frame_rate': pp['frame_rate']})
    persons = [int(p.strip()[1:]) for p in m.evaluation['test_persons'].split(',')]
    sequences = msrc12.load_sequences(paths.data_root() / 'msrc12', persons=persons)
    label_names, remap, _ = G.msrc12_labels(opts)
    if label_names != list(m.labels):
        raise SystemExit(f'bundle labels {m.labels} are not the MSRC-12 labels {label_names}')
    joints, labels, _ = G.msrc12_windows(sequences, persons, [0.0], opts, remap)
    if args.max_windows:
        pick = np.random.default_rng(args.seed).permutation(len(labels))[:args.max_windows]
        joints, labels = joints[np.sort(pick)], labels[np.sort(pick)]

    def accuracy(windows: list[np.ndarray], y: np.ndarray) -> float:
        x = np.stack([skel.skeleton_model_input(w, channels=pp['channels'], layout=pp['layout']) for w in windows])
        return float(np.mean(predict(bundle.model, ArraySplit({'skeleton': x}, y)).argmax(1) == y))

    rows = {}
    t0 = time.perf_counter()
    rows['direct 3-D (Kinect joints)'] = {'accuracy': accuracy(list(joints), labels)}
    ideal = []
    for w in joints:
        lifted = np.full((len(w), 18, 3), np.nan)
        have = s2d.SKELETON2D_FROM_KINECT >= 0
        lifted[:, have] = w[:, s2d.SKELETON2D_FROM_KINECT[have]] @ np.diag([-1.0, -1.0, 1.0])   # Kinect -> optical
        ideal.append(np.stack([DL.kinect_joints_from_lifted(f) for f in lifted]))
    rows['ideal lift (14 true joints completed to 20)'] = {'accuracy': accuracy(ideal, labels)}
    bundle2d = load_bundle(args.bundle_2d or paths.models_dir() / 'gesture2d')
    pp2 = bundle2d.manifest.modalities['skeleton'].preprocessing
    if list(bundle2d.manifest.labels) != label_names:
        raise SystemExit(f'2-D bundle labels {bundle2d.manifest.labels} are not the MSRC-12 labels {label_names}')

    # the 2-D bundle's own windows (its window may be longer than the 3-D bundle's: 2.5 against 2 s) of the same
    # persons, as many, drawn with the same seed; each seen by a camera drawn from the same ranges
    window_2d = float(bundle2d.manifest.modalities['skeleton'].window_s)
    opts_2d = from_dict(G.MSRC12Options, {'classes': 'all', 'include_none': True, 'frame_rate': pp2['frame_rate'],
                                          'before_s': window_2d - opts.after_s})
    joints_2d, labels_2d, _ = G.msrc12_windows(sequences, persons, [0.0], opts_2d, remap)
    if args.max_windows:
        pick = np.random.default_rng(args.seed).permutation(len(labels_2d))[:args.max_windows]
        joints_2d, labels_2d = joints_2d[np.sort(pick)], labels_2d[np.sort(pick)]

    def accuracy_2d(keypoints: list[np.ndarray], y: np.ndarray) -> float:
        x = np.stack([skel.feature_layout(s2d.skeleton2d_feature_map(
            kp, aspect_ratio=pp2['aspect_ratio'], min_confidence=pp2['min_confidence'], channels=pp2['channels']),
            layout=pp2['layout']) for kp in keypoints])
        return float(np.mean(predict(bundle2d.model, ArraySplit({'skeleton': x}, y)).argmax(1) == y))

    lift_s = []
    for k, name in enumerate(args.conditions):
        ranges = s2d.CAMERA_CONDITIONS[name]
        # (row, levelled with TF, turned to face the camera, depth median over frames); one rendering for all
        variants = [('', True, True, 1),
                    (f', depth median over {args.depth_frames} frames', True, True, args.depth_frames)]
        if k == 0:
            variants += [(', camera assumed level (no TF)', False, True, 1),
                         (', not turned to face the camera', True, False, 1)]
        rng = np.random.default_rng([args.seed, k])
        windows = {v[0]: [] for v in variants}
        keypoints, ys, fallback = [], [], dict.fromkeys(windows, 0)
        for w, y in zip(joints, labels):
            cam = s2d.sample_camera(rng, w, ranges)
            level_cam = s2d.look_at_camera(cam.position, cam.position + cam.rotation[2] * [1.0, 0.0, 1.0],
                                           fx=cam.fx, fy=cam.fy, cx=cam.cx, cy=cam.cy, width=cam.width,
                                           height=cam.height)
            kp = s2d.corrupt_keypoints(s2d.kinect_to_skeleton2d(w, cam), rng)
            lifters = {key: DL.SkeletonLifter(rotation=level_cam.rotation @ cam.rotation.T if level else None,
                                              face_camera=face, depth_frames=frames)
                       for key, level, face, frames in variants}
            frames = dict.fromkeys(lifters)
            for key in frames:
                frames[key] = []
            for t in range(len(w)):
                depth = DL.render_skeleton_depth(cam.to_camera(w[t]), cam.K, width=cam.width, height=cam.height,
                                                 rng=rng)
                for key, lifter in lifters.items():
                    start = time.perf_counter()
                    j = lifter(kp[t], depth, cam.K)
                    if key == '':
                        lift_s.append(time.perf_counter() - start)
                    if j is None:                            # nothing seen in this frame: hold the last one
                        fallback[key] += 1
                        j = frames[key][-1] if frames[key] else np.zeros((20, 3), np.float32)
                    frames[key].append(j)
            for key in lifters:
                windows[key].append(np.stack(frames[key]))
            keypoints.append(kp)
            ys.append(y)
        for key in windows:
            row = f'depth-lifted, cameras {name}{key}'
            rows[row] = {'accuracy': accuracy(windows[key], np.asarray(ys)), 'frames_without_keypoints': fallback[key]}
            print(row, rows[row], flush=True)
        if window_2d == float(m.modalities['skeleton'].window_s):
            row = f'2-D model (gesture2d) on the same keypoints, cameras {name}'
        else:                                        # its own windows, cameras drawn alike (a stream of their own)
            row = f'2-D model (gesture2d) on its own {window_2d:g} s windows, cameras {name}'
            rng_2d = np.random.default_rng([args.seed, k, 2])
            keypoints, ys = [], list(labels_2d)
            for w in joints_2d:
                cam = s2d.sample_camera(rng_2d, w, ranges)
                keypoints.append(s2d.corrupt_keypoints(s2d.kinect_to_skeleton2d(w, cam), rng_2d))
        try:
            rows[row] = {'accuracy': accuracy_2d(keypoints, np.asarray(ys))}
            print(row, rows[row], flush=True)
        except ValueError as exc:                    # a window without neck or hip: reported, not hidden
            rows[row] = {'accuracy': float('nan'), 'error': str(exc)}
    wall = time.perf_counter() - t0
    command = command_line(argv, program='python benchmarks/msrc12_depth_benchmark.py')
    repo = Path(__file__).resolve().parents[1]
    shown = bundle.path.resolve()
    result = {'benchmark': 'MSRC-12 gestures, 2-D keypoints lifted with rendered depth, shipped 3-D model',
              'bundle': str(shown.relative_to(repo)) if shown.is_relative_to(repo) else str(shown),
              'test_persons': m.evaluation['test_persons'], 'windows': int(len(labels)),
              'rows': rows, 'lift_ms_per_frame': {'mean': round(1e3 * float(np.mean(lift_s)), 3),
                                                  'p95': round(1e3 * float(np.percentile(lift_s, 95)), 3)},
              'wall_time_s': round(wall, 1), 'machine': machine_description(), 'command': command,
              'date': time.strftime('%Y-%m-%d')}
    lines = ['# Gestures from 2-D keypoints lifted to 3-D with depth (shipped 3-D gesture model)', '',
             f'Bundle `{result["bundle"]}` (Kinect v1 joints), its held-out persons {result["test_persons"]}, '
             f'{result["windows"]} windows, 12 gestures + "none". Depth: rendered per frame from the true joints '
             '(limbs 0.1-0.3 m thick, torso polygon, wall at 4.5 m), noise 1.2 mm + 1.9 mm (z - 0.4)^2, 10 % '
             'pixels missing, 3 elliptic holes of 10-40 px per frame; 2-D keypoints with 2 px noise and 5 % '
             'drop-outs. Lifting: median of the valid depths in a 5x5 patch, depths outside 0.2-8 m rejected, '
             'keypoints more than 0.6 m from the body median depth (background) take the body median, '
             'back-projection with K; "depth median over N frames": each keypoint\'s depth the median of its last N '
             "lifted depths (along its pixel's ray). The 2-D rows: the shipped `models/gesture2d` on the same noisy "
             "keypoints, or, when its window is longer than the 3-D bundle's, on its own windows of the same persons "
             '(as many, drawn with the same seed), each seen by a camera drawn from the same ranges with the same '
             'keypoint noise.', '', '| input | accuracy |', '|---|---|']
    for key, row in rows.items():
        lines.append(f'| {key} | {100 * row["accuracy"]:.1f} % |' if 'error' not in row else
                     f'| {key} | failed: {row["error"]} |')
    mc = result['machine']
    lines += ['', f'Lifting cost: {result["lift_ms_per_frame"]["mean"]} ms per frame (p95 '
              f'{result["lift_ms_per_frame"]["p95"]} ms), 18 keypoints, on {mc.get("cpu_model", mc["processor"])}.',
              '', f'Wall time {wall:.0f} s, {result["date"]}. Command: `{command}`', '']
    print(write_results(args.out, 'msrc12_depth', result, markdown='\n'.join(lines), command=command))
    return 0


if __name__ == '__main__':
    sys.exit(main())
