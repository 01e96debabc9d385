"""
Gesture events on the wire: fusion_node under real rclpy publishes ``centralnet_msgs/Event`` (onset, peak, end).

A real MSRC-12 recording of a person the shipped gesture bundle never trained on is
written to a rosbag2 file, replayed through the runtime by ``centralnet replay`` (its
``events.jsonl``), then played with ``centralnet play`` into fusion_node in its own
process.  Every event the replay decided must arrive once on ``~/gesture/events`` with
the same label, score, onset, peak and end, and, for compatibility, as a
``vision_msgs/Classification`` on ``~/gesture`` stamped at its peak.  The node
subscribes reliably with a deep queue, so that what is compared is the decision path,
not the delivery.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import ros_harness as H
import yaml

pytestmark = pytest.mark.slow
SECONDS = 16.0                           # of the recording: a few performed gestures


def _ns(t) -> int:
    """builtin_interfaces/Time -> ns."""
    return t.sec * 1_000_000_000 + t.nanosec


def _recording_bag(out, data_root):
    """Write the first SECONDS of the first recording of the bundle's first test person: (bag, gesture, start)."""
    from centralnet_ros.bundle.io import read_manifest
    from centralnet_ros.data import msrc12
    from centralnet_ros.replay.msgdefs import pose_array_message, write_bag
    person = int(str(read_manifest(H.MODELS / 'gesture').evaluation['test_persons']).split(',')[0].strip()[1:])
    seq = sorted(msrc12.load_sequences(data_root / 'msrc12', persons=[person], cache=False),
                 key=lambda s: s.info.name)[0]
    stamps = seq.timestamps[seq.tracked].astype(np.int64) * 1000
    joints = seq.positions[seq.tracked]
    keep = stamps < stamps[0] + int(SECONDS * 1e9)
    t0 = 1_700_000_000 * 1_000_000_000 - stamps[0]          # a wall-clock-like header time
    messages = [('/skeleton', 'geometry_msgs/msg/PoseArray', int(t0 + t),
                 pose_array_message(j, stamp_ns=int(t0 + t), frame_id='kinect'))
                for t, j in zip(stamps[keep], joints[keep])]
    return write_bag(out / 'recording', messages), msrc12.GESTURES[int(seq.info.gesture) - 1], messages[0][2]


@pytest.mark.needs_data('msrc12')
def test_the_node_publishes_the_events_of_replay_with_onset_peak_and_end(tmp_path, data_root):
    from centralnet_msgs.msg import Event
    from vision_msgs.msg import Classification
    bag, gesture, start_ns = _recording_bag(tmp_path, data_root)
    params = {'fusion_node': {'ros__parameters': {
        'tasks': ['gesture'], 'gesture.bundle': str(H.MODELS / 'gesture'),
        'qos_reliability': 'reliable', 'qos_depth': 1000}}}
    (tmp_path / 'params.yaml').write_text(yaml.safe_dump(params))
    proc = subprocess.run([sys.executable, '-m', 'centralnet_ros.cli', 'replay', str(bag), '--config',
                           str(tmp_path / 'params.yaml'), '--out', str(tmp_path / 'replay'), '--no-plots',
                           '--no-progress'], env=H.node_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    expected = [json.loads(line) for line in (tmp_path / 'replay' / 'events.jsonl').read_text().splitlines()]
    expected = [e for e in expected if e['task'] == 'gesture']
    assert expected, 'the replay decided no gesture event on a recording of performed gestures'
    assert any(e['label'] == gesture for e in expected)

    tester = H.Tester('events_listener')
    qos = H.latched_qos().__class__(depth=1000)
    events = tester.subscribe(Event, '/fusion_node/gesture/events', qos)
    results = tester.subscribe(Classification, '/fusion_node/gesture', qos)
    node = H.NodeProcess('fusion_node', ['--ros-args', '--params-file', str(tmp_path / 'params.yaml')],
                         tmp_path / 'fusion.log')
    try:
        tester.wait_for(lambda: tester.state('/fusion_node', timeout=120) == 'active', 180, 'fusion_node active')
        play = subprocess.run([sys.executable, '-m', 'centralnet_ros.cli', 'play', str(bag),
                               '--wait-for-subscribers', '30'], env=H.node_env(), capture_output=True, text=True,
                              timeout=600)
        assert play.returncode == 0, play.stdout + play.stderr
        assert tester.transition('/fusion_node', 'deactivate')     # closes the event still open, as replay's flush
        tester.spin(2.0)
        got = [{'label': m.label, 'stamp_ns': H.stamp_ns(m.header), 'decisions': m.decisions} for m in events]
        assert got == [{k: e[k] for k in ('label', 'stamp_ns', 'decisions')} for e in expected]
        times = [(_ns(m.onset), _ns(m.peak), _ns(m.end)) for m in events]
        # events.jsonl: seconds from the start of the bag, rounded to the microsecond
        want = [[e['onset_s'] * 1e9, e['peak_s'] * 1e9, e['end_s'] * 1e9] for e in expected]
        np.testing.assert_allclose(np.asarray(times) - start_ns, want, rtol=0, atol=1e3)
        assert [m.score for m in events] == pytest.approx([e['score'] for e in expected], abs=1e-6)
        for m in events:
            assert m.task == 'gesture' and m.header.frame_id == 'kinect' and m.person_id == ''
            assert _ns(m.onset) <= _ns(m.peak) <= _ns(m.end) <= H.stamp_ns(m.header)
        # the compatible Classification: one per event, stamped at its peak
        assert sorted((H.stamp_ns(m.header), m.results[0].class_id) for m in results) == \
            sorted((peak, m.label) for (_, peak, _), m in zip(times, events))
        assert node.interrupt() == 0
        assert 'Traceback' not in node.output()
    finally:
        node.close()
        tester.close()
