"""
fusion_node following ROS4HRI people (REP-155) under real rclpy over DDS: two bodies come and go; a person.

The node runs in its own process (``ros_harness``: own ``ROS_DOMAIN_ID``,
``ROS_PYTHON_CHECK_FIELDS=1``) with ``people.bodies:=true``; the test publishes
``/humans/bodies/tracked`` (``hri_msgs/IdsList``) and each body's
``/humans/bodies/<id>/skeleton2d`` (``hri_msgs/Skeleton2D``) as a body detector does, and
checks over the DDS graph that the node subscribes to a body's topic while its id is
tracked and unsubscribes when it leaves, and that each body's gestures arrive on its own
``/humans/bodies/<id>/gesture`` and on ``~/gesture``.

A person manager's ``/humans/persons/tracked`` and latched ``/humans/persons/<id>/face_id`` /
``voice_id`` make a voice's emotion that of a face: it goes on the face's ``expression``, and
``/diagnostics`` names the person, its ids and its decisions.
"""
from __future__ import annotations

import math

from centralnet_ros import messages as M
from centralnet_ros.ros.interfaces import ros_message
import numpy as np
import pytest
import ros_harness as H

T0 = 1_700_000_000 * 1_000_000_000
NS = '/cnet_people'
NODE = f'{NS}/fusion_node'
FRAME_NS = 33_333_333                                  # 30 Hz bodies

pytestmark = pytest.mark.slow


def body_points(k: int, x0: float) -> np.ndarray:
    """Return 18 ROS4HRI keypoints (normalised x, y, confidence) of a standing body at ``x0`` waving its right hand."""
    p = np.zeros((18, 3))
    p[:, 2] = 0.9
    neck = np.array([x0, 0.30])
    p[0, :2] = neck + [0.0, -0.08]                                    # nose
    p[1, :2] = neck
    p[2, :2], p[5, :2] = neck + [-0.06, 0.0], neck + [0.06, 0.0]      # shoulders
    p[3, :2], p[6, :2] = neck + [-0.08, 0.12], neck + [0.08, 0.12]    # elbows
    a = 0.8 * math.sin(0.3 * k)
    p[4, :2] = p[3, :2] + [-0.1 * math.cos(a), -0.1 * math.sin(a) - 0.05]   # right wrist waves
    p[7, :2] = neck + [0.09, 0.24]
    p[8, :2], p[11, :2] = neck + [-0.04, 0.28], neck + [0.04, 0.28]   # hips
    p[9, :2], p[12, :2] = neck + [-0.04, 0.45], neck + [0.04, 0.45]   # knees
    p[10, :2], p[13, :2] = neck + [-0.04, 0.6], neck + [0.04, 0.6]    # ankles
    p[14:18, :2] = neck + [[-0.02, -0.1], [0.02, -0.1], [-0.04, -0.09], [0.04, -0.09]]
    return p


@pytest.fixture
def tester():
    t = H.Tester('people_tester')
    yield t
    t.close()


def test_two_bodies_come_and_go_with_their_own_subscriptions_and_gesture_topics(tester, tmp_path):
    from hri_msgs.msg import IdsList, Skeleton2D
    from vision_msgs.msg import Classification

    import shutil
    import yaml
    from centralnet_ros import paths
    # the shipped 2-D bundle with no rejection label, so every decision is published whatever the model makes of
    # these synthetic bodies ("none" included): the test is about ids, topics and pending decisions, not labels
    bundle = tmp_path / 'gesture2d'
    shutil.copytree(paths.models_dir() / 'gesture2d', bundle)
    manifest = yaml.safe_load((bundle / 'manifest.yaml').read_text())
    manifest['decision'] = {**manifest.get('decision', {}), 'reject_labels': []}
    (bundle / 'manifest.yaml').write_text(yaml.safe_dump(manifest, sort_keys=False))
    node = H.NodeProcess('fusion_node', [
        '--ros-args', '-r', f'__ns:={NS}', '-p', 'tasks:=[gesture]', '-p', f'gesture.bundle:={bundle}',
        '-p', 'gesture.output:=decisions', '-p', 'gesture.score_threshold:=0.0', '-p', 'people.bodies:=true',
        '-p', 'people.max_people:=2', '-p', 'diagnostics_period_s:=0.5'], tmp_path / 'fusion.log')
    try:
        per_id = {b: tester.subscribe(Classification, f'/humans/bodies/{b}/gesture', H.sensor_qos(100))
                  for b in ('b1', 'b2', 'b3')}
        per_task = tester.subscribe(Classification, f'{NODE}/gesture', H.sensor_qos(200))
        tracked = tester.node.create_publisher(IdsList, '/humans/bodies/tracked', H.sensor_qos())
        bodies = {b: tester.node.create_publisher(Skeleton2D, f'/humans/bodies/{b}/skeleton2d', H.sensor_qos())
                  for b in ('b1', 'b2', 'b3')}
        tester.wait_for(lambda: tester.state(NODE, timeout=60) == 'active', 180, 'the node to activate itself')
        tester.wait_for(lambda: tracked.get_subscription_count() > 0, 30, 'the node to subscribe the tracked list')
        assert all(p.get_subscription_count() == 0 for p in bodies.values())    # no id tracked yet

        k = 0

        def play(ids: list[str], frames: int) -> list[int]:
            nonlocal k
            sent = []
            for _ in range(frames):
                stamp = T0 + k * FRAME_NS
                tracked.publish(M.build_ids_list(ros_message, ids=ids, stamp_ns=stamp))
                for n, b in enumerate(ids):
                    if bodies[b].get_subscription_count():
                        bodies[b].publish(M.build_skeleton2d(ros_message, body_points(k, 0.3 + 0.4 * n),
                                                             stamp_ns=stamp, frame_id=f'cam_{b}'))
                sent.append(stamp)
                k += 1
                tester.spin(1 / 30)
            return sent

        def play_until(ids: list[str], condition, what: str, timeout: float = 30.0) -> None:
            for _ in range(int(timeout * 30)):
                if condition():
                    return
                play(ids, 1)
            raise AssertionError(f'timed out after {timeout} s waiting for {what}')

        def subscribed(b: str) -> bool:
            return bodies[b].get_subscription_count() > 0

        play_until(['b1'], lambda: subscribed('b1'), 'the node to subscribe b1')
        assert not subscribed('b2')
        sent_1 = play(['b1'], 60)
        play_until(['b1', 'b2'], lambda: subscribed('b2'), 'the node to subscribe b2')
        play(['b1', 'b2'], 60)
        play_until(['b1', 'b2'], lambda: per_id['b1'] and per_id['b2'], 'gestures of b1 and b2 on their own topics')

        play_until(['b2'], lambda: not subscribed('b1'), 'the node to unsubscribe b1 when it leaves')
        assert subscribed('b2')
        play_until(['b2', 'b3', 'b1'], lambda: subscribed('b3'), 'the node to subscribe b3')
        play(['b2', 'b3', 'b1'], 15)
        assert not subscribed('b1')                                     # max_people 2: the third id is refused
        play_until([], lambda: not any(subscribed(b) for b in bodies), 'the node to unsubscribe every body')
        assert per_id['b3']                                             # b3's pending decisions came out as it left

        assert min(H.stamp_ns(m.header) for m in per_id['b1']) >= min(sent_1) - 3 * FRAME_NS
        assert {m.header.frame_id for m in per_id['b1']} == {'cam_b1'}
        assert {m.header.frame_id for m in per_id['b2']} == {'cam_b2'}        # each body's own decisions
        for msg in per_id['b1'] + per_id['b2']:
            scores = [h.score for h in msg.results]
            assert scores == sorted(scores, reverse=True) and 0 < scores[0] <= 1.0
        task_frames = {m.header.frame_id for m in per_task}
        assert {'cam_b1', 'cam_b2'} <= task_frames                              # also on ~/gesture
        assert len(per_task) >= len(per_id['b1']) + len(per_id['b2'])
    finally:
        status = node.interrupt()
    out = node.output()
    assert status == 0 and 'Traceback' not in out, out[-3000:]
    assert 'ROS4HRI people: bodies' in out


def _speech(seconds: float, rng) -> np.ndarray:
    """Silence, a voiced burst (harmonics of 150 Hz) and silence: one utterance for the voice detector."""
    t = np.arange(int(seconds * 16000)) / 16000
    wave = rng.normal(0, 1e-3, t.size)
    a, b = int(0.3 * 16000), int((seconds - 0.6) * 16000)
    wave[a:b] += (sum(np.sin(2 * np.pi * 150 * h * t) / h for h in range(1, 8)) * 0.2)[a:b]
    return wave.astype(np.float32)


def test_a_persons_voice_emotion_goes_on_its_face_and_diagnostics_name_the_person(tester, tmp_path):
    from audio_common_msgs.msg import AudioDataStamped, AudioInfo
    from diagnostic_msgs.msg import DiagnosticArray
    from hri_msgs.msg import Expression, IdsList
    from std_msgs.msg import String

    node = H.NodeProcess('fusion_node', [
        '--ros-args', '-r', f'__ns:={NS}', '-p', 'tasks:=[emotion]', '-p', 'emotion.score_threshold:=0.0',
        '-p', 'people.faces:=true', '-p', 'people.voices:=true', '-p', 'diagnostics_period_s:=0.5'],
        tmp_path / 'fusion.log')
    try:
        expressions = {f: tester.subscribe(Expression, f'/humans/faces/{f}/expression', H.sensor_qos(50))
                       for f in ('f1', 'f2')}
        diagnostics = tester.subscribe(DiagnosticArray, '/diagnostics', H.sensor_qos(50))
        tracked = {kind: tester.node.create_publisher(IdsList, f'/humans/{kind}/tracked', H.sensor_qos())
                   for kind in ('faces', 'voices', 'persons')}
        links = {name: tester.node.create_publisher(String, f'/humans/persons/p1/{name}', H.latched_qos())
                 for name in ('face_id', 'voice_id')}
        audio = tester.node.create_publisher(AudioDataStamped, '/humans/voices/v1/audio', H.sensor_qos(50))
        audio_info = tester.node.create_publisher(AudioInfo, '/humans/voices/v1/audio_info', H.latched_qos())
        tester.wait_for(lambda: tester.state(NODE, timeout=60) == 'active', 180, 'the node to activate itself',
                        process=node)
        links['face_id'].publish(String(data='f1'))          # latched: the node reads them when it follows p1
        links['voice_id'].publish(String(data='v1'))
        rng = np.random.default_rng(0)
        k = 0

        def play(persons: list[str], seconds: float) -> None:
            nonlocal k
            wave = _speech(seconds, rng)
            for start in range(0, wave.size - 320 + 1, 320):               # 20 ms chunks
                stamp = T0 + k * 20_000_000
                if k % 5 == 0:
                    for kind, ids in (('faces', ['f1', 'f2']), ('voices', ['v1']), ('persons', persons)):
                        tracked[kind].publish(M.build_ids_list(ros_message, ids=ids, stamp_ns=stamp))
                msg, info = M.build_audio(ros_message, wave[start:start + 320], sample_rate=16000, stamp_ns=stamp,
                                          frame_id='mic_v1')
                if k == 0:
                    audio_info.publish(info)
                audio.publish(msg)
                k += 1
                tester.spin(0.02)

        def play_until(persons: list[str], condition, what: str, timeout: float = 60.0) -> None:
            for _ in range(int(timeout / 1.5)):
                if condition():
                    return
                play(persons, 1.5)
            raise AssertionError(f'timed out after {timeout} s waiting for {what}\n{node.output()[-3000:]}')

        play_until(['p1'], lambda: links['face_id'].get_subscription_count() and audio.get_subscription_count(),
                   'the node to follow p1 and v1')
        assert links['voice_id'].get_subscription_count() > 0
        play_until(['p1'], lambda: expressions['f1'], "v1's emotion on its face f1's expression")
        assert not expressions['f2'] and {m.header.frame_id for m in expressions['f1']} == {'mic_v1'}

        def person_p1():
            for array in diagnostics:
                for status in array.status:
                    if status.name.endswith('people'):
                        value = {kv.key: kv.value for kv in status.values}.get('person persons:p1', '')
                        if value.startswith('faces:f1 voices:v1;') and 'emotion: ' in value and ' decisions' in value:
                            return value
            return None
        tester.wait_for(person_p1, 20, 'the people diagnostics to describe p1', process=node)

        play_until([], lambda: not links['face_id'].get_subscription_count(), 'the node to stop following p1')
        gone_ns = T0 + k * 20_000_000                        # v1's data from here on is no longer p1's
        play([], 1.5)
        play([], 1.5)
        tester.spin(2.0)
        assert all(H.stamp_ns(m.header) < gone_ns for m in expressions['f1'])   # nothing of v1 alone on f1
    finally:
        status = node.interrupt()
    out = node.output()
    assert status == 0 and 'Traceback' not in out, out[-3000:]
    assert 'persons: /humans/persons/<id>/face_id' in out
