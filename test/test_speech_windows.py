"""
The speech bundle learns its rejection class from the runtime's own windows, not only from whole clips.

``centralnet speech-windows`` replays calibration-speaker sessions through the runtime
(:func:`centralnet_ros.replay.session_windows.session_windows`) and writes plain arrays
(:mod:`centralnet_ros.data.session_windows`); the AVLetters adapter adds them to the
training and validation splits when the preset names the file.
"""
from __future__ import annotations

from centralnet_ros import paths
from centralnet_ros.data.session_windows import load_windows, save_windows, Windows
from centralnet_ros.training.non_letters import NOT_A_LETTER, SPEAKERS, SYNTHETIC_VOICES
import numpy as np
import pytest

SPEECH = paths.models_dir() / 'speech'
MARK = 77.0             # a value no real MFCC map holds: tells the file's windows apart in the splits


def _windows_file(path, *, speakers=None, num_frames=24):
    """Write a session-windows file as ``centralnet speech-windows`` writes it, with marked maps."""
    rows = [('train', NOT_A_LETTER), ('train', NOT_A_LETTER), ('train', 'B'), ('val', NOT_A_LETTER)]
    n = len(rows)
    windows = Windows(inputs={'mfcc': np.full((n, 1, 26, num_frames), MARK, np.float32)},
                      labels=np.array([label for _, label in rows]), sources=np.array(['fsdd:george'] * n),
                      sessions=np.array(['s'] * n))
    speakers = speakers or {s: {'fsdd': list(SPEAKERS[s]['fsdd']), 'emodb': list(SPEAKERS[s]['emodb'])}
                            for s in ('train', 'val')}
    header = {'preprocessing': {'mfcc': {'num_frames': num_frames, 'mfcc_norm': 'none'}}, 'speakers': speakers,
              'voices': {s: list(SYNTHETIC_VOICES[s]) for s in ('train', 'val')}}
    save_windows(path, windows, splits=np.array([s for s, _ in rows]), header=header)
    return path


def test_windows_file_round_trip_and_bad_files(tmp_path):
    path = _windows_file(tmp_path / 'w.npz')
    windows, splits, header = load_windows(path)
    assert splits.tolist() == ['train', 'train', 'train', 'val'] and windows.labels[2] == 'B'
    assert windows.inputs['mfcc'].shape == (4, 1, 26, 24) and header['speakers']['val']['fsdd'] == ['lucas']
    with np.load(path, allow_pickle=False) as z:                # plain arrays: readable without pickle
        assert 'header' in z.files
    with pytest.raises(FileNotFoundError, match='no such'):
        load_windows(tmp_path / 'missing.npz')
    np.savez(tmp_path / 'other.npz', a=np.zeros(2))
    with pytest.raises(ValueError, match='not a session-windows file'):
        load_windows(tmp_path / 'other.npz')


def test_speech_preset_trains_on_the_runtime_windows():
    """The shipped bundle's preset names the runtime-window file: without it, training sees whole clips only."""
    from centralnet_ros.speech_windows import DEFAULT_FILE
    from centralnet_ros.training.experiment import load_experiment
    cfg = load_experiment('avletters_speech')
    assert cfg.dataset_options['not_a_letter']['runtime_windows'] == DEFAULT_FILE


@pytest.mark.needs_data('avletters', 'fsdd', 'emodb')
def test_adapter_adds_the_runtime_windows_to_train_and_val_only(tmp_path):
    from centralnet_ros.data.avletters import LETTERS
    from centralnet_ros.training.experiment import load_experiment
    from centralnet_ros.training.speech import load_avletters
    options = dict(load_experiment('avletters_speech').dataset_options)
    small = {'fsdd_per_speaker': 1, 'emodb_per_speaker': 1, 'noise_segments': 1, 'synthetic_letters': False}
    options['not_a_letter'] = {**options['not_a_letter'], **small,
                               'runtime_windows': str(_windows_file(tmp_path / 'w.npz'))}
    data = load_avletters(options, paths.data_root())
    nal = len(LETTERS)
    for split, want in (('train', [nal, nal, LETTERS.index('B')]), ('val', [nal]), ('test', [])):
        s = getattr(data, split)
        marked = np.flatnonzero((s.inputs['mfcc'] == MARK).all(axis=(1, 2, 3)))
        assert sorted(s.labels[marked].tolist()) == sorted(want), split
        assert s.inputs['lip_video'].shape[0] == len(s.labels)
    assert data.info['runtime_windows_train_not_a_letter'] == 2 and data.info['runtime_windows_train_letters'] == 1
    # without the option the same options give no runtime window at all
    options['not_a_letter'] = {**options['not_a_letter'], 'runtime_windows': None}
    plain = load_avletters(options, paths.data_root())
    assert not (plain.train.inputs['mfcc'] == MARK).all(axis=(1, 2, 3)).any()
    # a file made for other speakers (a test speaker leaking in) or another front end is refused
    leak = {s: {'fsdd': ['theo'], 'emodb': [11]} for s in ('train', 'val')}
    for bad, match in ((_windows_file(tmp_path / 'leak.npz', speakers=leak), 'speakers'),
                       (_windows_file(tmp_path / 'frames.npz', num_frames=12), 'num_frames')):
        options['not_a_letter'] = {**options['not_a_letter'], 'runtime_windows': str(bad)}
        with pytest.raises(ValueError, match=match):
            load_avletters(options, paths.data_root())
    options['not_a_letter'] = {**options['not_a_letter'], 'runtime_windows': str(tmp_path / 'none.npz')}
    with pytest.raises(FileNotFoundError, match='centralnet speech-windows'):
        load_avletters(options, paths.data_root())


def test_session_windows_are_the_runtime_decisions(tmp_path):
    """Each utterance of a session gives the window the runtime decided on, with its label and source."""
    from centralnet_ros.bundle.io import load_bundle
    from centralnet_ros.replay.cli import build_config
    from centralnet_ros.replay.session_bag import Utterance
    from centralnet_ros.replay.session_windows import session_windows
    if not (SPEECH / 'manifest.yaml').is_file():
        pytest.skip('no shipped speech bundle')
    rate = 16000
    t = np.arange(int(0.5 * rate)) / rate
    tones = [(0.3 * np.sin(2 * np.pi * f * t) * np.hanning(t.size)).astype(np.float32) for f in (300, 600, 900)]
    utts = [Utterance(label, x, rate) for label, x in zip((NOT_A_LETTER, 'A', NOT_A_LETTER), tones)]
    cfg, _ = build_config(tasks=['speech'], bundles={'speech': str(SPEECH)})
    got = session_windows('tones', utts, ['a', 'b', 'c'], config=cfg, bundle=load_bundle(SPEECH),
                          work=tmp_path, gap_s=0.8)
    assert got.labels.tolist() == [NOT_A_LETTER, 'A', NOT_A_LETTER] and got.sources.tolist() == ['a', 'b', 'c']
    assert got.inputs['mfcc'].shape == (3, 1, 26, 24) and np.isfinite(got.inputs['mfcc']).all()
    assert not (tmp_path / 'tones').exists()                    # the temporary bag is removed
    with pytest.raises(ValueError, match='sources'):
        session_windows('bad', utts, ['a'], config=cfg, bundle=load_bundle(SPEECH), work=tmp_path)
