"""AVLetters reader on the real files (data/avletters.py)."""
from __future__ import annotations

from pathlib import Path
import shutil
import struct

from centralnet_ros import paths
from centralnet_ros.data import avletters as av
from centralnet_ros.data.registry import DataRootError
import numpy as np
import pytest
import scipy.io

ROOT = paths.data_root() / 'avletters'
pytestmark = pytest.mark.needs_data('avletters')


@pytest.fixture(scope='module')
def samples():
    return av.list_samples(ROOT)


def test_all_780_pairs_found_by_name(samples):
    assert len(samples) == 780
    keys = {s.key for s in samples}
    assert len(keys) == 780
    speakers = sorted({s.speaker for s in samples})
    assert len(speakers) == 10
    assert keys == {(letter, r, spk) for letter in av.LETTERS for r in (1, 2, 3) for spk in speakers}
    for s in samples:
        assert s.lips_path.name == f'{s.letter}{s.repetition}_{s.speaker}-lips.mat'
        assert s.audio_path.name == f'{s.letter}{s.repetition}_{s.speaker}.mfcc'
        assert av.LETTERS[s.label] == s.letter


def test_every_file_reads_with_the_documented_shapes(samples):
    for s in samples:
        lips = av.read_lips(s.lips_path)
        audio = av.read_audio(s.audio_path)
        assert lips.dtype == np.uint8 and lips.shape[1:] == (60, 80) and lips.shape[0] >= 1, s.lips_path
        assert audio.dtype == np.float32 and audio.shape[1] == 26 and audio.shape[0] >= 1, s.audio_path
        # 50 audio frames/s vs 25 video frames/s: the two cover about the same utterance
        assert 1.2 <= audio.shape[0] / lips.shape[0] <= 2.1, s.key


def test_v4_parser_agrees_with_scipy(samples):
    for s in samples[::97]:
        ours = av.read_mat_v4(s.lips_path)
        ref = scipy.io.loadmat(s.lips_path)
        assert set(ours) == {k for k in ref if not k.startswith('__')}
        for k, v in ours.items():
            assert v.dtype == ref[k].dtype and v.shape == ref[k].shape
            np.testing.assert_array_equal(v, ref[k])
    # the frame layout: column k of vid is frame k, a 60 x 80 image stored column-major
    ref = scipy.io.loadmat(samples[0].lips_path)
    frames = av.read_lips(samples[0].lips_path)
    np.testing.assert_array_equal(frames[3], ref['vid'][:, 3].reshape(80, 60).T)
    np.testing.assert_array_equal(frames[3], np.reshape(ref['vid'][:, 3], (60, 80), order='F'))


@pytest.mark.parametrize('dtype', [np.float64, np.float32, np.int32, np.int16, np.uint16, np.uint8])
def test_v4_parser_reads_every_precision_scipy_writes(tmp_path, dtype):
    rng = np.random.default_rng(0)
    a = (rng.random((5, 7)) * 100).astype(dtype)
    p = tmp_path / 'x.mat'
    scipy.io.savemat(p, {'a': a, 'b': np.arange(3.0)[None], 'z': np.array([[1 + 2j, 3 - 1j]])}, format='4')
    ours = av.read_mat_v4(p)
    ref = scipy.io.loadmat(p)
    for k in ('a', 'b', 'z'):
        np.testing.assert_array_equal(ours[k], ref[k])
        assert ours[k].dtype == ref[k].dtype


def test_v4_big_endian_header(tmp_path):
    # M = 1 (big endian), P = 0 (double): MOPT 1000
    data = struct.pack('>5i', 1000, 2, 3, 0, 2) + b'q\0' + np.arange(6, dtype='>f8').tobytes()
    p = tmp_path / 'be.mat'
    p.write_bytes(data)
    np.testing.assert_array_equal(av.read_mat_v4(p)['q'], np.arange(6.0).reshape(3, 2).T)


def test_corrupted_copies_are_rejected_naming_the_file(tmp_path, samples):
    src = samples[0]
    lips = tmp_path / src.lips_path.name
    shutil.copyfile(src.lips_path, lips)
    size = lips.stat().st_size
    with open(lips, 'r+b') as fh:
        fh.truncate(size - 1000)
    with pytest.raises(av.AVLettersFormatError, match=r'A1_Anya-lips.mat: truncated: matrix .vid. \(4800 x 27 uint8\)'):
        av.read_lips(lips)
    # wrong header: the type field of the first matrix overwritten
    shutil.copyfile(src.lips_path, lips)
    with open(lips, 'r+b') as fh:
        fh.write(struct.pack('<i', 77777))
    with pytest.raises(av.AVLettersFormatError, match='A1_Anya-lips.mat: matrix header at offset 0 is not Matlab v4'):
        av.read_lips(lips)
    # siz inconsistent with vid
    mats = av.read_mat_v4(src.lips_path)
    bad = tmp_path / 'siz-lips.mat'
    scipy.io.savemat(bad, {'vid': mats['vid'], 'siz': np.array([[60.0, 80.0, 99.0]])}, format='4')
    with pytest.raises(av.AVLettersFormatError, match=r'siz-lips.mat: vid is 4800 x 27 but siz \[60 80 99\]'):
        av.read_lips(bad)
    # truncated audio
    audio = tmp_path / src.audio_path.name
    shutil.copyfile(src.audio_path, audio)
    with open(audio, 'r+b') as fh:
        fh.truncate(12 + 104 * 10)
    with pytest.raises(av.AVLettersFormatError,
                       match=r'A1_Anya.mfcc: truncated: header says 53 frames of 104 bytes \(5512 bytes\) '
                             r'but the body has 1040 bytes'):
        av.read_audio(audio)
    # wrong parameter kind in the header
    shutil.copyfile(src.audio_path, audio)
    with open(audio, 'r+b') as fh:
        fh.seek(10)
        fh.write(struct.pack('>h', 7 + 0o100 + 0o400))                     # FBANK_E_D
    with pytest.raises(av.AVLettersFormatError, match='A1_Anya.mfcc: parameter kind is FBANK_E_D'):
        av.read_audio(audio)


def _mini_root(tmp_path: Path, samples, n: int) -> Path:
    root = tmp_path / 'avl'
    (root / 'Lips').mkdir(parents=True)
    (root / 'Audio' / 'mfcc' / 'Clean').mkdir(parents=True)
    for s in samples[:n]:
        shutil.copyfile(s.lips_path, root / 'Lips' / s.lips_path.name)
        shutil.copyfile(s.audio_path, root / 'Audio' / 'mfcc' / 'Clean' / s.audio_path.name)
    return root


def test_unpaired_and_misnamed_files_are_reported_by_name(tmp_path, samples):
    root = _mini_root(tmp_path, samples, 3)
    (root / 'Audio' / 'mfcc' / 'Clean' / samples[1].audio_path.name).unlink()
    shutil.copyfile(samples[5].audio_path, root / 'Audio' / 'mfcc' / 'Clean' / samples[5].audio_path.name)
    (root / 'Lips' / 'notes.txt').write_text('x')
    with pytest.raises(av.AVLettersFormatError) as info:
        av.list_samples(root)
    msg = str(info.value)
    assert '3 problem(s)' in msg
    assert f'{samples[1].lips_path.name} has no audio file' in msg
    assert f'{samples[5].audio_path.name} has no lips file' in msg
    assert 'notes.txt: not a lips file name' in msg


def test_missing_root_names_the_expected_layout(tmp_path):
    with pytest.raises(DataRootError, match=r'does not exist; expected AVLetters layout: <root>/Lips/'):
        av.list_samples(tmp_path / 'nowhere')
    (tmp_path / 'Lips').mkdir()
    with pytest.raises(DataRootError, match='has no Audio/mfcc/Clean'):
        av.list_samples(tmp_path)


def test_speaker_dependent_split(samples):
    train, test = av.speaker_dependent_split(samples, seed=0)
    assert len(train) == 600 and len(test) == 180
    assert np.intersect1d(train, test).size == 0 and np.union1d(train, test).size == 780
    per_letter = np.bincount([samples[i].label for i in test], minlength=26)
    assert set(per_letter.tolist()) == {6, 7}
    assert {samples[i].speaker for i in test} == {s.speaker for s in samples}
    again = av.speaker_dependent_split(samples, seed=0)
    np.testing.assert_array_equal(again[1], test)
    other = av.speaker_dependent_split(samples, seed=1)[1]
    assert not np.array_equal(other, test)


def test_leave_one_speaker_out(samples):
    folds = av.leave_one_speaker_out(samples)
    assert len(folds) == 10
    seen = []
    for spk, train, test in folds:
        assert len(test) == 78 and len(train) == 702
        assert {samples[i].speaker for i in test} == {spk}
        assert spk not in {samples[i].speaker for i in train}
        seen.extend(test.tolist())
    assert sorted(seen) == list(range(780))


def test_load_arrays_shapes_normalisation_and_cache(tmp_path, samples):
    root = _mini_root(tmp_path, samples, 12)
    arrays = av.load_arrays(root, cache_dir=tmp_path / 'cache')
    assert arrays.X_audio.shape == (12, 26, 24) and arrays.X_audio.dtype == np.float32
    assert arrays.X_video.shape == (12, 12, 60, 80) and arrays.X_video.dtype == np.float32
    np.testing.assert_allclose(arrays.X_video.mean(axis=(2, 3)), 0, atol=1e-4)
    np.testing.assert_allclose(arrays.X_video.std(axis=(2, 3)), 1, atol=1e-3)
    mini = av.list_samples(root)
    np.testing.assert_array_equal(arrays.y, [s.label for s in mini])
    np.testing.assert_array_equal(arrays.repetition, [s.repetition for s in mini])
    assert [arrays.speaker_names[i] for i in arrays.speaker] == [s.speaker for s in mini]
    # the tensors are the runtime pipelines' preprocessing of the files' frames
    np.testing.assert_array_equal(arrays.X_audio[4], av.preprocess_audio(av.read_audio(mini[4].audio_path)))
    from centralnet_ros.features.pipelines import run_pipeline, Window
    lips = av.read_lips(mini[4].lips_path)
    np.testing.assert_array_equal(arrays.X_video[4],
                                  run_pipeline('lip_video', Window(data=lips, stamps_ns=np.arange(len(lips))), {})[0])
    cached = list((tmp_path / 'cache').glob('avletters-*.npz'))
    assert len(cached) == 1
    with np.load(cached[0], allow_pickle=False) as z:                     # no pickle needed to read it
        assert z['X_video'].shape == (12, 12, 60, 80)
    again = av.load_arrays(root, cache_dir=tmp_path / 'cache')
    np.testing.assert_array_equal(again.X_video, arrays.X_video)
    assert again.speaker_names == arrays.speaker_names
    # other parameters -> another cache entry
    other = av.load_arrays(root, audio_frames=20, video_frames=10, cache_dir=tmp_path / 'cache')
    assert other.X_audio.shape == (12, 26, 20) and other.X_video.shape == (12, 10, 60, 80)
    assert len(list((tmp_path / 'cache').glob('avletters-*.npz'))) == 2


def test_summarize_counts(samples):
    summary = av.summarize(ROOT)
    assert summary.total() == 780
    assert sum(summary.counts['train'].values()) == 600 and sum(summary.counts['test'].values()) == 180
    assert set(summary.counts['train']) == set(av.LETTERS)
    assert set(summary.modalities) == {'lip_video', 'mfcc'}
