"""
Readers of the datasets that are not available here, on files written in their layouts.

MM-IMDb, AudioSet, AFEW, Creative Senz3D and ASL Finger Spelling are tested on small files
these tests write in each dataset's documented layout and file format.
"""
from __future__ import annotations

import io
import json
import struct

from centralnet_ros.cli import main as cli_main
from centralnet_ros.data import afew, asl_fingerspelling, audioset, mmimdb, senz3d, tfrecord
from centralnet_ros.data.registry import DataRootError, summarizer
import cv2
import numpy as np
import pytest


# --------------------------------------------------------------------------- MM-IMDb

def _fuel_split_array(bounds: dict[str, tuple[int, int]], sources=('features', 'vgg_features', 'genres')):
    dtype = np.dtype([('split', 'S5'), ('source', 'S15'), ('start', np.int64), ('stop', np.int64),
                      ('available', np.bool_), ('comment', 'S1')])
    rows = [(s.encode(), src.encode(), a, b, True, b'.') for s, (a, b) in bounds.items() for src in sources]
    return np.array(rows, dtype=dtype)


def _write_mmimdb(folder, n=(12, 4, 6), with_split=True, genres_values=None):
    import h5py
    folder.mkdir(parents=True, exist_ok=True)
    total = sum(n)
    rng = np.random.default_rng(0)
    genres = genres_values if genres_values is not None else (rng.random((total, 23)) < 0.2).astype(np.int32)
    with h5py.File(folder / mmimdb.FILE_NAME, 'w') as f:
        f.create_dataset('features', data=rng.normal(size=(total, 300)).astype(np.float32))
        f.create_dataset('vgg_features', data=rng.random((total, 4096)).astype(np.float32))
        g = f.create_dataset('genres', data=genres)
        g.attrs['target_names'] = json.dumps([f'genre{i}' for i in range(23)])
        if with_split:
            a, b = n[0], n[0] + n[1]
            f.attrs['split'] = _fuel_split_array({'train': (0, a), 'dev': (a, b), 'test': (b, total)})
    return genres


def test_mmimdb_reads_splits_from_the_fuel_attribute(tmp_path):
    genres = _write_mmimdb(tmp_path / 'mmimdb')
    splits = mmimdb.load_splits(tmp_path / 'mmimdb')
    assert [len(splits[s].labels) for s in mmimdb.SPLITS] == [12, 4, 6]
    assert splits['train'].inputs['poster'].shape == (12, 4096)
    assert splits['test'].inputs['plot'].shape == (6, 300)
    np.testing.assert_array_equal(splits['dev'].labels, genres[12:16])
    assert mmimdb.genre_names(tmp_path / 'mmimdb')[3] == 'genre3'
    summary = summarizer('mmimdb')(tmp_path / 'mmimdb')
    assert summary.counts['test']['genre0'] == int(genres[16:, 0].sum())


def test_mmimdb_errors_name_what_is_wrong(tmp_path):
    with pytest.raises(DataRootError, match='multimodal_imdb.hdf5 does not exist'):
        mmimdb.load_splits(tmp_path)
    (tmp_path / 'bad').mkdir()
    (tmp_path / 'bad' / mmimdb.FILE_NAME).write_bytes(b'not hdf5')
    with pytest.raises(DataRootError, match='not a readable HDF5'):
        mmimdb.load_splits(tmp_path / 'bad')
    bad_genres = np.full((22, 23), 2, np.int32)
    _write_mmimdb(tmp_path / 'two', genres_values=bad_genres)
    with pytest.raises(DataRootError, match='other than 0 and 1'):
        mmimdb.load_splits(tmp_path / 'two')


def test_mmimdb_without_split_attribute_uses_the_published_bounds(tmp_path):
    _write_mmimdb(tmp_path / 'm', with_split=False)   # 22 rows: far fewer than the published 25,959
    with pytest.raises(DataRootError, match="fall outside the file's 22 rows"):
        mmimdb.load_splits(tmp_path / 'm')


# --------------------------------------------------------------------------- TFRecord / AudioSet

def test_crc32c_known_values():
    # RFC 3720 (iSCSI) test vectors for CRC-32C
    assert tfrecord.crc32c(bytes(32)) == 0x8A9136AA
    assert tfrecord.crc32c(b'\xff' * 32) == 0x62A8AB43
    assert tfrecord.crc32c(bytes(range(32))) == 0x46DD794E


def test_sequence_example_round_trip():
    payload = tfrecord.encode_sequence_example(
        {'video_id': [b'abc'], 'start_time_seconds': np.array([30.0], np.float32), 'labels': np.array([0, 74, -3])},
        {'audio_embedding': [[bytes(range(128))], [bytes(128)]]})
    ex = tfrecord.decode_sequence_example(payload)
    assert ex.context['video_id'] == [b'abc']
    assert ex.context['start_time_seconds'].tolist() == [30.0]
    assert ex.context['labels'].tolist() == [0, 74, -3]
    assert [f[0] for f in ex.feature_lists['audio_embedding']] == [bytes(range(128)), bytes(128)]


CLASSES = ['Speech', 'Animal', *audioset.SUBSET, 'Music']


def _write_audioset(root, segments, split='bal_train'):
    root.mkdir(parents=True, exist_ok=True)
    with open(root / audioset.CLASS_FILE, 'w') as f:
        f.write('index,mid,display_name\n')
        for i, name in enumerate(CLASSES):
            f.write(f'{i},/m/x{i},"{name}"\n')
    folder = root / audioset.EMBEDDINGS / split
    folder.mkdir(parents=True, exist_ok=True)
    payloads = [tfrecord.encode_sequence_example(
        {'video_id': [vid.encode()], 'start_time_seconds': np.array([start], np.float32),
         'end_time_seconds': np.array([start + 10], np.float32), 'labels': np.array(labels)},
        {'audio_embedding': [[bytes([q] * 128)] for q in frames]}) for vid, start, labels, frames in segments]
    buf = io.BytesIO()
    tfrecord.write_records(buf, payloads)
    (folder / 'aa.tfrecord').write_bytes(buf.getvalue())
    return folder / 'aa.tfrecord'


def test_audioset_subset_keeps_pet_segments_with_restricted_labels(tmp_path):
    dog, meow, speech = CLASSES.index('Dog'), CLASSES.index('Meow'), CLASSES.index('Speech')
    _write_audioset(tmp_path, [('vid1', 0.0, [dog, speech], [0, 255, 128]),
                               ('vid2', 30.0, [speech], [10] * 10),
                               ('vid3', 10.0, [meow], [255] * 12)])
    data = audioset.load_subset(tmp_path, 'bal_train')
    assert data.keys == ['vid1_0', 'vid3_10000']
    assert data.inputs['audio'].shape == (2, 10, 128)
    np.testing.assert_allclose(data.inputs['audio'][0, :3, 0], [-2.0, 2.0, 128 * 4 / 255 - 2], atol=1e-6)
    assert (data.inputs['audio'][0, 3:] == 0).all()            # padded seconds
    assert data.labels[0].tolist() == [float(n == 'Dog') for n in audioset.SUBSET]
    assert data.labels[1].tolist() == [float(n == 'Meow') for n in audioset.SUBSET]
    assert 'visual' not in data.inputs


def test_audioset_visual_features_and_corruption(tmp_path):
    dog = CLASSES.index('Dog')
    path = _write_audioset(tmp_path, [('v', 0.0, [dog], [1, 2])])
    (tmp_path / 'visual' / 'bal_train').mkdir(parents=True)
    np.save(tmp_path / 'visual' / 'bal_train' / 'v_0.npy', np.arange(5, dtype=np.float32))
    data = audioset.load_subset(tmp_path, 'bal_train')
    assert data.inputs['visual'].tolist() == [[0, 1, 2, 3, 4]] and data.visual_present.tolist() == [True]
    raw = bytearray(path.read_bytes())
    raw[20] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(DataRootError, match=r'aa\.tfrecord.*checksum.*byte 0'):
        audioset.load_subset(tmp_path, 'bal_train')
    path.write_bytes(bytes(raw[:30]))
    with pytest.raises(DataRootError, match='truncated'):
        audioset.load_subset(tmp_path, 'bal_train')


def test_tfrecord_refuses_absurd_lengths(tmp_path):
    length = struct.pack('<Q', 1 << 40)
    (tmp_path / 'x.tfrecord').write_bytes(length + struct.pack('<I', tfrecord.masked_crc(length)))
    with pytest.raises(tfrecord.TFRecordError, match='claims'):
        list(tfrecord.iter_records(tmp_path / 'x.tfrecord'))


# --------------------------------------------------------------------------- Senz3D and ASL

def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


def _hand_pair(rng, depth_mm):
    colour = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    depth = np.full((48, 64), depth_mm, np.uint16)
    depth[:5] = 0                                    # no reading
    return colour, depth


def test_senz3d_reads_triples_per_subject_and_gesture(tmp_path):
    rng = np.random.default_rng(1)
    base = tmp_path / 'senz3d' / 'acquisitions'
    for s in (1, 2):
        for g in (1, 11):
            for n in (1, 2, 3):
                colour, depth = _hand_pair(rng, 400 + 10 * n)
                _png(base / f'S{s}' / f'G{g}' / f'{n}-color.png', colour)
                _png(base / f'S{s}' / f'G{g}' / f'{n}-depth.png', depth)
                _png(base / f'S{s}' / f'G{g}' / f'{n}-conf.png', np.full((48, 64), 500, np.uint16))
    arrays = senz3d.load_arrays(tmp_path / 'senz3d')
    assert arrays['color'].shape == (12, 32, 32) and arrays['depth'].shape == (12, 32, 32)
    assert sorted(set(arrays['labels'].tolist())) == [0, 10]
    d = arrays['depth'][0]
    assert d.min() == 0.0 and 0.5 < d.max() <= 1.0          # invalid rows 0, the hand near = bright
    summary = summarizer('senz3d')(tmp_path / 'senz3d')
    assert summary.counts == {'S1': {'G1': 3, 'G11': 3}, 'S2': {'G1': 3, 'G11': 3}}
    (base / 'S1' / 'G1' / '2-conf.png').unlink()
    with pytest.raises(DataRootError, match='2-conf.png is missing'):
        senz3d.list_samples(tmp_path / 'senz3d')


def test_asl_fingerspelling_pairs_colour_and_depth(tmp_path):
    rng = np.random.default_rng(2)
    base = tmp_path / 'asl' / 'dataset5'
    for subject in 'AB':
        for letter in 'ay':
            for i in range(3):
                colour, depth = _hand_pair(rng, 700)
                _png(base / subject / letter / f'color_0_{i:04d}.png', colour)
                _png(base / subject / letter / f'depth_0_{i:04d}.png', depth)
    arrays = asl_fingerspelling.load_arrays(tmp_path / 'asl', max_per_letter=2)
    assert arrays['color'].shape == (8, 32, 32)
    assert sorted(set(arrays['labels'].tolist())) == [0, 23]
    assert sorted(set(arrays['subjects'].tolist())) == [0, 1]
    (base / 'A' / 'j').mkdir()
    with pytest.raises(DataRootError, match='j and z are not static'):
        asl_fingerspelling.list_samples(tmp_path / 'asl')


# --------------------------------------------------------------------------- AFEW

def _write_clip(path, frames=6, with_wav=True):
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), 25.0, (32, 24))
    assert writer.isOpened()
    for t in range(frames):
        writer.write(np.full((24, 32, 3), 20 * t, np.uint8))
    writer.release()
    if with_wav:
        import wave
        with wave.open(str(path.with_suffix('.wav')), 'wb') as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes((np.sin(np.arange(1600) / 5) * 8000).astype('<i2').tobytes())


def test_afew_lists_clips_reads_frames_and_audio(tmp_path, monkeypatch):
    root = tmp_path / 'afew'
    _write_clip(root / 'Train_AFEW' / 'Happy' / '001.avi')
    _write_clip(root / 'Val_AFEW' / 'Sad' / '002.avi', frames=4, with_wav=False)
    clips = afew.list_clips(root)
    assert [(c.split, c.emotion, c.label) for c in clips] == [('train', 'Happy', 3), ('val', 'Sad', 5)]
    frames, fps = afew.read_frames(clips[0])
    assert frames.shape == (6, 24, 32, 3) and fps == pytest.approx(25.0)
    samples, rate = afew.read_audio(clips[0])
    assert rate == 16000 and len(samples) == 1600
    monkeypatch.setattr(afew.shutil, 'which', lambda name: None)
    assert afew.read_audio(clips[1]) is None
    summary = afew.summarize(root)
    assert summary.counts == {'train': {'Happy': 1}, 'val': {'Sad': 1}}
    assert any('no audio' in n for n in summary.notes)
    (root / 'Train_AFEW' / 'Joy').mkdir()
    with pytest.raises(DataRootError, match='emotion folders are'):
        afew.list_clips(root)


# --------------------------------------------------------------------------- data check

@pytest.mark.parametrize('name', ['mmimdb', 'audioset', 'afew', 'senz3d', 'asl_fingerspelling'])
def test_data_check_names_the_expected_layout(name, tmp_path, capsys):
    assert cli_main(['data', 'check', '--dataset', name, '--root', str(tmp_path / 'missing')]) == 1
    err = capsys.readouterr().err
    assert 'missing' in err and ('expected' in err or 'does not exist' in err)


# --------------------------------------------------------------------------- presets and adapters

def test_multilabel_f1_weighted_and_samples_by_hand():
    from centralnet_ros.evaluation.metrics import multilabel_f1
    target = np.array([[1, 0, 1], [1, 1, 0], [0, 0, 0]])
    scores = np.array([[0.9, 0.1, 0.2], [0.8, 0.7, 0.9], [0.1, 0.1, 0.1]])
    f1 = multilabel_f1(scores, target)
    # class 0: tp 2 -> F1 1; class 1: tp 1 -> 1; class 2: fn 1, fp 1 -> 0. Supports 2, 1, 1.
    assert f1['macro_f1'] == pytest.approx(2 / 3)
    assert f1['weighted_f1'] == pytest.approx((2 * 1 + 1 * 1 + 1 * 0) / 4)
    assert f1['micro_f1'] == pytest.approx(2 * 3 / (2 * 3 + 1 + 1))
    # samples: {0}/{0,2} -> 2/3; {0,1,2}/{0,1} -> 4/5; empty/empty -> 1
    assert f1['samples_f1'] == pytest.approx((2 / 3 + 4 / 5 + 1) / 3)


@pytest.mark.slow
def test_compare_runs_the_mmimdb_preset_on_a_file_in_its_format(tmp_path, capsys):
    import json as _json
    _write_mmimdb(tmp_path / 'mmimdb', n=(64, 16, 16))
    out = tmp_path / 'out'
    code = cli_main(['compare', '--dataset', 'mmimdb', '--quick', '--no-progress', '--jobs', '1',
                     '--methods', 'late,centralnet', '--seeds', '1', '--data-root', str(tmp_path),
                     '--out', str(out), '--set', 'train.epochs=1', '--set', 'train.batch_size=32'])
    assert code == 0, capsys.readouterr().err[-2000:]
    runs = _json.loads((out / 'runs.json').read_text())
    assert {r['method'] for r in runs['runs']} == {'late', 'centralnet'} and not runs['failed']
    assert all(0.0 <= r['test'] <= 1.0 for r in runs['runs'])
    assert 'test weighted_f1' in (out / 'results.md').read_text()


def test_audioset_adapter_needs_visual_features_and_splits_bal_train(tmp_path):
    from centralnet_ros.training.datasets import load_experiment_data
    dog = CLASSES.index('Dog')
    segs = [(f'v{i}', float(i), [dog], [i % 255] * 10) for i in range(10)]
    for split in ('bal_train', 'eval'):
        _write_audioset(tmp_path / 'audioset', segs, split=split)
    with pytest.raises(FileNotFoundError, match='audio only; 0/10 segments'):
        load_experiment_data('audioset', {'val_fraction': 0.2}, tmp_path)
    for split in ('bal_train', 'eval'):
        (tmp_path / 'audioset' / 'visual' / split).mkdir(parents=True, exist_ok=True)
        for vid, start, _, _ in segs:
            np.save(tmp_path / 'audioset' / 'visual' / split / f'{vid}_{int(start * 1000)}.npy', np.ones(7, np.float32))
    data = load_experiment_data('audioset', {'val_fraction': 0.2}, tmp_path)
    assert (len(data.train), len(data.val), len(data.test)) == (8, 2, 10)
    assert data.train.inputs['audio'].shape == (8, 1280) and data.test.inputs['visual'].shape == (10, 7)
    assert data.label_names == list(audioset.SUBSET)


@pytest.mark.slow
def test_probe_runs_the_cae_table_on_senz3d_files_split_by_subject(tmp_path):
    from centralnet_ros.training.probe import ProbeConfig, render_markdown, run_probe
    rng = np.random.default_rng(3)
    base = tmp_path / 'senz3d'
    for s in (1, 2, 3):
        for g in (1, 2, 3):
            for n in range(4):
                colour, depth = _hand_pair(rng, 300 + 150 * g)      # depth says the gesture
                _png(base / f'S{s}' / f'G{g}' / f'{n}-color.png', colour)
                _png(base / f'S{s}' / f'G{g}' / f'{n}-depth.png', depth)
                _png(base / f'S{s}' / f'G{g}' / f'{n}-conf.png', np.full((48, 64), 500, np.uint16))
    cfg = ProbeConfig(dataset='senz3d', image_size=24, cae_channels=[4, 4, 4], cae_epochs=1, bimodal_epochs=1,
                      supervised_epochs=1, linear_epochs=2, shared_dim=16, batch_size=8, cnn_widths=[4, 4])
    result = run_probe(cfg, out_dir=tmp_path / 'out', data_root=tmp_path, log=None)
    assert result.data['sizes'] == {'train': 12, 'val': 12, 'test': 12}
    assert set(result.table['linear_shared']) == {'color', 'depth', 'both'}
    assert all(0.0 <= v <= 100.0 for row in result.table.values() for v in row.values())
    assert '| | color (1x24x24) | depth (1x24x24) | color + depth |' in render_markdown(result)
    assert (tmp_path / 'out' / 'probing_cross_modal.png').read_bytes()[:4] == b'\x89PNG'
