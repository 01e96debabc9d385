"""
Montalbano / ChaLearn reader on small recordings generated here in both published layouts.

No Montalbano recording is available, so each test writes one in exactly the dataset's
formats: the 2013 ``Video`` struct with scipy.io.savemat (Matlab v5), the 2014 CSV
files, colour / depth / user videos with cv2.VideoWriter (mp4v in .mp4, which this
OpenCV build writes and reads back) and 16-bit PCM audio with the wave module.
"""
from __future__ import annotations

import argparse
from pathlib import Path
import wave
import zipfile

from centralnet_ros.data import chalearn, check
from centralnet_ros.data.registry import DataRootError
from centralnet_ros.features import skeleton as skel
import cv2
import numpy as np
import pytest
import scipy.io

T = 40                      # frames
FPS = 20
MAX_DEPTH = 4000
WIDTH, HEIGHT = 160, 120
AUDIO_RATE = 16000
LABELS = np.array([[4, 5, 15], [11, 22, 35]])       # furbo frames 5-15, ok frames 22-35 (1-based, inclusive)
JOINT_TYPES = ('HipCenter', 'Spine', 'ShoulderCenter', 'Head', 'ShoulderLeft', 'ElbowLeft', 'WristLeft',
               'HandLeft', 'ShoulderRight', 'ElbowRight', 'WristRight', 'HandRight', 'HipLeft', 'KneeLeft',
               'AnkleLeft', 'FootLeft', 'HipRight', 'KneeRight', 'AnkleRight', 'FootRight')
LEFT_RGB, RIGHT_RGB = (255, 0, 0), (0, 255, 0)
HAND_GREY = 100


def _recording():
    """Skeleton arrays of one recording: frame 1 and frame 10 untracked (all zero)."""
    rng = np.random.default_rng(0)
    base = rng.normal(0, 0.2, (20, 3)) + [0.0, 0.0, 2.0]
    base[skel.SHOULDER_CENTER] = base[skel.HIP_CENTER] + [0, 0.5, 0]
    t = np.arange(T)[:, None, None]
    world = (base[None] + 0.01 * t * rng.normal(0, 1, (1, 20, 3))).astype(np.float64)
    rot = np.tile([0.0, 0.0, 0.0, 1.0], (T, 20, 1))
    pix = np.zeros((T, 20, 2))
    pix[:, :, 0], pix[:, :, 1] = 80, 60
    pix[:, skel.HAND_LEFT, 0] = 25 + np.arange(T)                # left hand walks right
    pix[:, skel.HAND_LEFT, 1] = 40
    pix[:, skel.HAND_RIGHT, 0] = 150 - np.arange(T) // 2         # right hand starts near the border
    pix[:, skel.HAND_RIGHT, 1] = 90
    for f in (0, 9):
        world[f], rot[f], pix[f] = 0, 0, 0
    return world, rot, pix.round()


def _write_videos(folder: Path, sid: str, pix: np.ndarray) -> None:
    fourcc = cv2.VideoWriter_fourcc(*'mp4v')
    writers = {m: cv2.VideoWriter(str(folder / f'{sid}_{m}.mp4'), fourcc, FPS, (WIDTH, HEIGHT), True)
               for m in ('color', 'depth', 'user')}
    assert all(w.isOpened() for w in writers.values()), 'this OpenCV build cannot write mp4v'
    for f in range(T):
        color = np.full((HEIGHT, WIDTH, 3), 60, np.uint8)
        depth = np.full((HEIGHT, WIDTH, 3), 230, np.uint8)
        user = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        p = pix[f] if np.any(pix[f]) else pix[f - 1]
        for joint, rgb in ((skel.HAND_LEFT, LEFT_RGB), (skel.HAND_RIGHT, RIGHT_RGB)):
            x, y = int(p[joint, 0]), int(p[joint, 1])
            color[max(y - 6, 0):y + 6, max(x - 6, 0):x + 6] = rgb
            depth[max(y - 6, 0):y + 6, max(x - 6, 0):x + 6] = HAND_GREY
            user[max(y - 6, 0):y + 6, max(x - 6, 0):x + 6] = 255
        writers['color'].write(cv2.cvtColor(color, cv2.COLOR_RGB2BGR))
        writers['depth'].write(depth)
        writers['user'].write(user)
    for w in writers.values():
        w.release()


def _write_audio(path: Path) -> None:
    """Write a 440 Hz tone during the first gesture (frames 5-15), silence elsewhere."""
    n = T * AUDIO_RATE // FPS
    x = np.zeros(n)
    t = np.arange(n) / AUDIO_RATE
    on = (t >= 4 / FPS) & (t < 15 / FPS)
    x[on] = 0.5 * np.sin(2 * np.pi * 440 * t[on])
    with wave.open(str(path), 'wb') as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(AUDIO_RATE)
        w.writeframes((x * 32767).astype('<i2').tobytes())


def write_2013(folder: Path, sid: str = 'Sample00001', *, media: bool = True) -> Path:
    """``SampleNNNNN_data.mat`` with the 2013 ``Video`` struct (+ audio and videos)."""
    folder.mkdir(parents=True, exist_ok=True)
    world, rot, pix = _recording()
    frames = np.empty((1, T), dtype=[('Skeleton', object)])
    for f in range(T):
        tracked = np.any(world[f])
        frames[0, f]['Skeleton'] = {
            'WorldPosition': world[f] if tracked else np.zeros((0, 0)),
            'WorldRotation': rot[f] if tracked else np.zeros((0, 0)),
            'JointType': np.array(JOINT_TYPES, dtype=object).reshape(20, 1),
            'PixelPosition': pix[f] if tracked else np.zeros((0, 0)),
        }
    labels = np.empty((1, len(LABELS)), dtype=[('Name', object), ('Begin', object), ('End', object)])
    for k, (gid, b, e) in enumerate(LABELS):
        labels[0, k] = (chalearn.GESTURES[gid - 1], float(b), float(e))
    video = {'NumFrames': float(T), 'FrameRate': float(FPS), 'MaxDepth': float(MAX_DEPTH),
             'Frames': frames, 'Labels': labels}
    path = folder / f'{sid}_data.mat'
    scipy.io.savemat(str(path), {'Video': video})
    if media:
        _write_audio(folder / f'{sid}_audio.wav')
        _write_videos(folder, sid, pix)
    return path


def write_2014(folder: Path, sid: str = 'Sample0001', *, media: bool = True) -> Path:
    """``SampleNNNN_skeleton.csv`` / ``_labels.csv`` / ``_data.csv`` (+ videos; 2014 has no audio)."""
    folder.mkdir(parents=True, exist_ok=True)
    world, rot, pix = _recording()
    rows = np.concatenate([world, rot, pix], axis=-1).reshape(T, 20 * 9)      # per joint: 3 + 4 + 2
    lines = []
    for row in rows:
        values = row.reshape(20, 9)
        lines.append(','.join(','.join([*(f'{v:.6f}' for v in j[:7]), *(f'{int(v)}' for v in j[7:])])
                              for j in values))
    path = folder / f'{sid}_skeleton.csv'
    path.write_text('\n'.join(lines) + '\n')
    (folder / f'{sid}_labels.csv').write_text(''.join(f'{g},{b},{e}\n' for g, b, e in LABELS))
    (folder / f'{sid}_data.csv').write_text(f'{T},{FPS},{MAX_DEPTH}\n')
    if media:
        _write_videos(folder, sid, pix)
    return path


CFG = chalearn.FeatureConfig(skeleton_frames=16, crop_size=32, crop_frames=3, audio_frames=8, n_mels=20)


def test_both_layouts_read_the_same_recording(tmp_path):
    s13 = chalearn.read_sample(write_2013(tmp_path / 'Sample00001'))
    s14 = chalearn.read_sample(write_2014(tmp_path / 'Sample0001'))
    assert (s13.layout, s14.layout) == ('2013', '2014')
    for s in (s13, s14):
        assert s.num_frames == T and s.frame_rate == FPS and s.max_depth == MAX_DEPTH
        assert s.world_position.shape == (T, 20, 3) and s.world_rotation.shape == (T, 20, 4)
        assert s.pixel_position.shape == (T, 20, 2)
        np.testing.assert_array_equal(s.labels, LABELS)
        assert s.tracked.sum() == T - 2 and not s.tracked[0] and not s.tracked[9]
        assert s.warnings == []
    np.testing.assert_allclose(s13.world_position, s14.world_position, atol=1e-6)
    np.testing.assert_allclose(s13.world_rotation, s14.world_rotation, atol=1e-6)
    np.testing.assert_array_equal(s13.pixel_position, s14.pixel_position)
    assert all(s13.has(m) for m in chalearn.MEDIA)
    assert not s14.has('audio') and all(s14.has(m) for m in ('color', 'depth', 'user'))


def test_instances_have_the_four_modalities(tmp_path):
    sample = chalearn.read_sample(write_2013(tmp_path / 'Sample00001'))
    inst = chalearn.extract_instances(sample, CFG)
    n = len(LABELS)
    assert len(inst) == n and inst.labels.tolist() == [3, 10]
    assert [chalearn.GESTURES[i] for i in inst.labels] == ['furbo', 'ok']
    assert inst.skeleton.shape == (n, 9, 16, 20)
    assert inst.audio.shape == (n, 20, 8)
    assert inst.color_hands.shape == (n, 3, 2, 32, 32, 3) and inst.color_hands.dtype == np.uint8
    assert inst.depth_hands.shape == (n, 3, 2, 32, 32)
    assert all(inst.present[m].all() for m in chalearn.MODALITIES)
    # skeleton descriptors of frames begin..end (untracked frame 10 replaced by a neighbour)
    seg = sample.world_position[4:15].copy()
    seg[5] = seg[4]
    np.testing.assert_allclose(inst.skeleton[0], skel.skeleton_feature_map(seg, num_frames=16), atol=1e-5)
    # audio is cut at the instance: the tone sounds in the first gesture only
    assert inst.audio[0].mean() > inst.audio[1].mean() + 5.0
    # hand crops: the left hand (index 0) is red, the right hand (index 1) green, also at the border
    rgb = inst.color_hands.astype(int)
    red = (rgb[..., 0] > 150) & (rgb[..., 1] < 100)
    green = (rgb[..., 1] > 150) & (rgb[..., 0] < 100)
    assert red[:, :, 0].mean(axis=(-1, -2)).min() > 0.05 and green[:, :, 0].mean() < 0.01
    assert green[:, :, 1].mean(axis=(-1, -2)).min() > 0.05 and red[:, :, 1].mean() < 0.01
    # depth crops are millimetres: the hand patch is at grey 100 of 255 x MaxDepth
    hand_mm = HAND_GREY / 255 * MAX_DEPTH
    assert np.abs(inst.depth_hands[0, :, 0, 16, 16] - hand_mm).max() < 150
    assert inst.depth_hands.max() > 3000                          # background further away


def test_bare_skeleton_folder_reports_absent_modalities(tmp_path, capsys):
    write_2013(tmp_path, 'Sample00003', media=False)
    write_2014(tmp_path, 'Sample0004', media=False)
    refs = chalearn.find_samples(tmp_path)
    assert [(r.sample_id, r.layout) for r in refs] == [('Sample00003', '2013'), ('Sample0004', '2014')]
    inst = chalearn.load_instances(tmp_path, CFG)
    assert len(inst) == 4 and inst.present['skeleton'].all()
    for m in ('audio', 'color_hands', 'depth_hands'):
        assert not inst.present[m].any()
    assert not inst.color_hands.any() and not inst.audio.any()
    summary = chalearn.summarize(tmp_path)
    assert summary.counts == {'instances': {'furbo': 2, 'ok': 2}}
    assert summary.modalities['audio'] == 'absent' and summary.modalities['color'] == 'absent'
    assert check.run(argparse.Namespace(dataset='chalearn', root=str(tmp_path))) == 0
    out = capsys.readouterr().out
    assert 'modality color: absent' in out and 'furbo' in out


def test_zip_and_split_folders(tmp_path):
    root = tmp_path / 'chalearn'
    write_2013(root / 'validation' / 'Sample00001')
    staged = tmp_path / 'staged'
    write_2014(staged, 'Sample0002')
    (root / 'training').mkdir(parents=True)
    with zipfile.ZipFile(root / 'training' / 'Sample0002.zip', 'w') as zf:
        for f in sorted(staged.iterdir()):
            zf.write(f, f.name)
    refs = chalearn.find_samples(root)
    assert [(r.sample_id, r.layout) for r in refs] == [('Sample00001', '2013'), ('Sample0002', 'zip')]
    sample = chalearn.read_sample(refs[1])
    assert sample.layout == '2014' and sample.has('color') and not sample.has('audio')
    inst = chalearn.extract_instances(sample, CFG)
    assert inst.present['color_hands'].all() and inst.present['depth_hands'].all()
    summary = chalearn.summarize(root)
    assert summary.counts == {'validation': {'furbo': 1, 'ok': 1}, 'training': {'furbo': 1, 'ok': 1}}
    assert summary.modalities['audio'] == '1/2 samples' and summary.modalities['color'] == '2/2 samples'


def test_malformed_files_give_clear_errors(tmp_path, capsys):
    path = write_2014(tmp_path / 'a', 'Sample0001', media=False)
    lines = path.read_text().splitlines()
    lines[2] = lines[2].rsplit(',', 1)[0]                          # 179 values on line 3
    path.write_text('\n'.join(lines) + '\n')
    with pytest.raises(ValueError, match=r'Sample0001_skeleton\.csv, line 3: 179 values, expected 180'):
        chalearn.read_sample(path)
    assert check.run(argparse.Namespace(dataset='chalearn', root=str(tmp_path / 'a'))) == 1
    assert 'line 3: 179 values' in capsys.readouterr().err

    path = write_2014(tmp_path / 'b', 'Sample0001', media=False)
    (tmp_path / 'b' / 'Sample0001_labels.csv').write_text('21,5,15\n')
    with pytest.raises(ValueError, match=r'_labels\.csv: gesture id 21 outside 1-20'):
        chalearn.read_sample(path)
    (tmp_path / 'b' / 'Sample0001_labels.csv').write_text('3,30,50\n')
    with pytest.raises(ValueError, match='frames 30-50 not within 1-40'):
        chalearn.read_sample(path)
    (tmp_path / 'b' / 'Sample0001_data.csv').unlink()
    with pytest.raises(ValueError, match=r'Sample0001_data\.csv .* is missing'):
        chalearn.read_sample(path)

    bad = tmp_path / 'c' / 'Sample00001_data.mat'
    bad.parent.mkdir()
    scipy.io.savemat(str(bad), {'Something': np.zeros(3)})
    with pytest.raises(ValueError, match=r'Sample00001_data\.mat: no variable "Video"'):
        chalearn.read_sample(bad)
    bad.write_bytes(b'not a mat file at all')
    with pytest.raises(ValueError, match='not a readable Matlab v5 file'):
        chalearn.read_sample(bad)
    (tmp_path / 'empty').mkdir()
    with pytest.raises(DataRootError, match='no ChaLearn sample'):
        chalearn.find_samples(tmp_path / 'empty')


def test_unknown_gesture_name_in_2013(tmp_path):
    path = write_2013(tmp_path, media=False)
    mat = scipy.io.loadmat(str(path))
    mat['Video'][0, 0]['Labels'][0, 0]['Name'] = np.array(['salve'])
    scipy.io.savemat(str(path), {'Video': mat['Video']})
    with pytest.raises(ValueError, match="Labels\\(1\\).Name 'salve' is not one of the 20 gestures"):
        chalearn.read_sample(path)
