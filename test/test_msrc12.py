"""
MSRC-12 reader on the real files in the data root (persons p01-p12).

Whole-dataset counts come from the tagstreams and file names (fast); skeleton CSVs are
parsed for one or two persons only, so the file stays well under 20 s.
"""
from __future__ import annotations

import lzma

from centralnet_ros import paths
from centralnet_ros.data import msrc12
from centralnet_ros.data.registry import DataRootError
import numpy as np
import pytest

ROOT = paths.data_root() / 'msrc12'
pytestmark = pytest.mark.needs_data('msrc12')


@pytest.fixture(scope='module')
def p01(tmp_path_factory):
    cache = tmp_path_factory.mktemp('cache')
    return msrc12.load_sequences(ROOT, persons=[1], cache_dir=cache)


def test_counts_of_p01_to_p12():
    pairs = msrc12.list_files(ROOT)
    assert len(pairs) == 236                                     # sequences of p01-p12
    infos = [msrc12.parse_name(csv.name) for csv, _ in pairs]
    per_person = {}
    for info in infos:
        per_person[info.person] = per_person.get(info.person, 0) + 1
    assert sorted(per_person) == list(range(1, 13))
    assert per_person == {1: 20, 2: 20, 3: 20, 4: 19, 5: 19, 6: 20, 7: 20, 8: 19, 9: 19, 10: 20, 11: 20, 12: 20}
    per_gesture = np.zeros(13, int)
    for _, tag in pairs:
        _, gestures = msrc12.read_tagstream(tag)
        np.add.at(per_gesture, gestures, 1)
    assert per_gesture.sum() == 2511                             # action points (gesture instances)
    assert per_gesture[5] == 255 and per_gesture[11] == 230      # wind it up, beat both
    assert per_gesture[1:].min() >= 190


def test_label_decoding_and_names():
    assert msrc12.GESTURES[0] == 'lift_outstretched_arms' and msrc12.GESTURES[11] == 'kick'
    assert msrc12.CLASS_NAMES[msrc12.NONE_LABEL] == 'none' and len(msrc12.CLASS_NAMES) == 13
    info = msrc12.parse_name('P1_1_12A_p06.csv.xz')
    assert (info.group, info.subgroup, info.gesture, info.two_instructions, info.person) == (1, 1, 12, True, 6)
    assert info.instruction == 'images+text'                     # G12 C5 = P3_2 + P1_1
    assert msrc12.parse_name('P1_1_1_p06').instruction == 'video'        # G1 C1 = P1_1 + P1_2
    assert msrc12.parse_name('P1_1_2_p06').instruction == 'images'       # G2 C2 = P1_1 + P1_2
    assert msrc12.parse_name('P1_1_3_p06').instruction == 'text'         # G3 C3 = P1_1 + P1_2
    assert msrc12.parse_name('p2_1_2A_p12.tagstream').person == 12       # lower-case name on disk
    with pytest.raises(ValueError, match='not an MSRC-12 file name'):
        msrc12.parse_name('P1_1_x_p06.csv.xz')
    with pytest.raises(ValueError, match='outside 1-12'):
        msrc12.parse_name('P1_1_13_p06.csv.xz')
    # every real file maps to a column of the PDF's instruction table, about 47 per modality
    counts = {}
    for csv, _ in msrc12.list_files(ROOT):
        ins = msrc12.parse_name(csv.name).instruction
        counts[ins] = counts.get(ins, 0) + 1
    assert set(counts) == set(msrc12.INSTRUCTIONS)
    assert all(45 <= n <= 49 for n in counts.values())


def test_tick_conversion_on_a_real_tagstream_line():
    tag = ROOT / 'data' / 'P1_1_10_p06.tagstream'
    first = tag.read_text().splitlines()[1]
    assert first.startswith('139167732109;G10')
    ticks, gestures = msrc12.read_tagstream(tag)
    assert ticks[0] == 139167732109 and set(gestures.tolist()) == {10}
    # (tick * 1000 + 49875 / 2) / 49875 in integers -> the CSV's microsecond clock
    assert msrc12.tick_to_timestamp(139167732109) == 2790330468
    assert msrc12.tick_to_timestamp(ticks)[0] == 2790330468
    stamps, joints, dropped = msrc12.read_skeleton_csv(ROOT / 'data' / 'P1_1_10_p06.csv.xz')
    assert stamps[0] <= 2790330468 <= stamps[-1]                 # the action point falls in the recording


def test_read_csv_drops_leading_zero_frames():
    stamps, joints, dropped = msrc12.read_skeleton_csv(ROOT / 'data' / 'P1_1_10_p06.csv.xz')
    assert dropped == 20 and joints.shape == (3538 - 20, 20, 4) and stamps.shape == (3518,)
    assert np.any(joints[0] != 0)
    assert set(np.unique(joints[..., 3])) <= {0.0, 1.0}          # confidence column
    assert np.all(np.diff(stamps) > 0)
    # ~30 Hz: the median frame interval is about 33 ms (timestamps in microseconds)
    assert 30_000 < np.median(np.diff(stamps)) < 36_000


def test_every_action_point_of_p01_lies_in_its_recording(p01):
    assert len(p01) == 20 and {s.info.person for s in p01} == {1}
    for seq in p01:
        assert seq.action_times.size > 0
        assert np.all(seq.action_gestures == seq.info.gesture)
        assert seq.timestamps[0] < seq.action_times.min() and seq.action_times.max() < seq.timestamps[-1] + 1e6


def test_cache_round_trip(tmp_path):
    first = msrc12.load_sequences(ROOT, persons=['p02'], cache_dir=tmp_path)
    path = msrc12.cache_path(ROOT, persons=['p02'], cache_dir=tmp_path)
    assert path.is_file() and path.parent.parent == tmp_path
    with np.load(path, allow_pickle=False) as z:                 # no pickled objects inside
        assert z['joints'].dtype == np.float32 and z['names'].dtype.kind == 'U'
    second = msrc12.load_sequences(ROOT, persons=['p02'], cache_dir=tmp_path)
    assert [s.info for s in first] == [s.info for s in second]
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a.joints, b.joints)
        np.testing.assert_array_equal(a.timestamps, b.timestamps)
        np.testing.assert_array_equal(a.action_times, b.action_times)
    assert not list(tmp_path.rglob('*.tmp'))                     # written atomically


def test_gesture_windows_on_real_data(p01):
    w = msrc12.gesture_windows(p01)
    n_points = sum(s.action_times.size for s in p01)
    is_gesture = w.labels != msrc12.NONE_LABEL
    assert w.joints.shape == (len(w), 60, 20, 3) and w.joints.dtype == np.float32
    assert is_gesture.sum() + sum(w.dropped.values()) == n_points
    assert is_gesture.sum() >= n_points - 3
    assert (~is_gesture).sum() > 10                              # a "no gesture" class exists
    assert np.all(w.persons == 1)
    for i in np.flatnonzero(is_gesture):
        seq = p01[w.sequences[i]]
        assert w.labels[i] == seq.info.gesture - 1 and w.reference_times[i] in seq.action_times
    for i in np.flatnonzero(~is_gesture):
        seq = p01[w.sequences[i]]
        assert np.min(np.abs(seq.action_times - w.reference_times[i])) >= msrc12.NONE_MIN_DISTANCE_S * 1e6
    # the action points are aligned with the motion: in "duck" the hip centre is ~0.6 m
    # lower at the action point (frame 44 = 0.5 s before the window end) than 1.5 s before
    duck = w.joints[w.labels == msrc12.GESTURES.index('duck')]
    assert len(duck) >= 10
    assert duck[:, 44, 0, 1].mean() < duck[:, 0, 0, 1].mean() - 0.3
    maps = w.feature_maps()
    assert maps.shape == (len(w), 9, 60, 20) and np.all(np.isfinite(maps))


def _synthetic_sequence(lost=slice(0, 0)):
    """30 Hz frames over 20 s with action points at 5 s and 12 s (times in us)."""
    t = (np.arange(600) * 1e6 / 30).astype(np.int64) + 1_000_000
    joints = np.ones((600, 20, 4), np.float32)
    joints[..., 0] = np.arange(600)[:, None] / 30.0               # x grows 1 m / s
    joints[lost] = 0.0
    return msrc12.Sequence(info=msrc12.parse_name('P1_1_2_p03'), timestamps=t, joints=joints,
                           action_times=np.array([6_000_000, 13_000_000]), action_gestures=np.array([2, 2]))


def test_window_geometry_and_none_windows():
    seq = _synthetic_sequence()
    w = msrc12.gesture_windows([seq], none_stride_s=1.0, none_min_distance_s=2.5)
    inst = w.labels != msrc12.NONE_LABEL
    assert inst.sum() == 2 and np.all(w.labels[inst] == 1)
    # window ends at the action point + 0.5 s, 60 frames at 30 Hz: x (= time in s) goes 3.533 .. 5.5
    x = w.joints[np.flatnonzero(inst)[0], :, 0, 0]
    np.testing.assert_allclose(x[-1], 5.0 + 0.5, atol=1e-4)
    np.testing.assert_allclose(np.diff(x), 1 / 30, atol=1e-4)
    refs = w.reference_times[~inst] / 1e6 - 1.0                   # seconds into the recording
    assert refs.size > 0 and np.all((np.abs(refs - 5.0) >= 2.5) & (np.abs(refs - 12.0) >= 2.5))
    # lost tracking inside the first instance's window drops it (and no "none" window spans it)
    seq = _synthetic_sequence(lost=slice(140, 146))               # 4.67 - 4.87 s
    w2 = msrc12.gesture_windows([seq])
    assert (w2.labels != msrc12.NONE_LABEL).sum() == 1 and w2.dropped == {'gap_or_lost_tracking': 1}


def test_split_by_persons():
    persons = np.array([1, 2, 3, 1, 2, 3])
    train, test = msrc12.split_by_persons(persons, [2, 3])
    assert train.tolist() == [0, 3] and test.tolist() == [1, 2, 4, 5]


def test_malformed_files_give_clear_errors(tmp_path):
    data = tmp_path / 'data'
    data.mkdir()
    bad_tag = data / 'P1_1_1_p01.tagstream'
    bad_tag.write_text('Tick;Tag\n123;G1 lift outstretched arms\n')
    with pytest.raises(ValueError, match=r'P1_1_1_p01\.tagstream.*XQPCTick;Tag'):
        msrc12.read_tagstream(bad_tag)
    bad_tag.write_text('XQPCTick;Tag\n123;G13 nonsense\n')
    with pytest.raises(ValueError, match='line 2'):
        msrc12.read_tagstream(bad_tag)
    bad_csv = data / 'P1_1_1_p01.csv.xz'
    bad_csv.write_bytes(lzma.compress(b'1 0.5 0.5 0.5 1\n2 0.5 0.5 0.5 1\n'))
    with pytest.raises(ValueError, match=r'P1_1_1_p01\.csv\.xz.*5 values per line, expected 81'):
        msrc12.read_skeleton_csv(bad_csv)
    (data / 'P1_1_2_p01.csv.xz').write_bytes(b'')
    with pytest.raises(DataRootError, match='no matching P1_1_2_p01.tagstream'):
        msrc12.list_files(tmp_path)
    with pytest.raises(DataRootError, match='expected layout'):
        msrc12.list_files(tmp_path / 'missing')
