"""
fusion_node and microphone_node under real rclpy (Fast DDS), each in its own process.

Driven from the test's own rclpy node over the real lifecycle services (ChangeState,
GetState) and parameter services, fed by best-effort publishers (sensor-data QoS, like
camera and audio drivers), with ``ROS_PYTHON_CHECK_FIELDS=1`` and a ``ROS_DOMAIN_ID`` of
this test run (see ``ros_harness``).  The shipped gesture and speech bundles decide.
"""
from __future__ import annotations

import math

from centralnet_ros import messages as M
from centralnet_ros.ros.interfaces import ros_message
import numpy as np
import pytest
import ros_harness as H

T0 = 1_700_000_000 * 1_000_000_000
NS = '/cnet'
NODE = f'{NS}/fusion_node'
FRAME_NS = 33_333_333                                  # 30 Hz skeleton

pytestmark = pytest.mark.slow


def joints(k: int) -> np.ndarray:
    """Return a standing 20-joint Kinect skeleton (metres) waving its right hand."""
    j = np.zeros((20, 3), np.float32)
    j[:, 1] = np.linspace(0.0, 1.0, 20)
    j[11] = [0.3 * math.sin(0.4 * k), 0.8, 0.1]
    j[:, 2] += 2.0
    return j


def fusion_args(*extra: str, managed: bool = True) -> list[str]:
    args = ['--managed'] if managed else []
    return args + ['--ros-args', '-r', f'__ns:={NS}', '-p', 'tasks:=[gesture]',
                   '-p', f'gesture.bundle:={H.MODELS / "gesture"}', '-p', 'gesture.trigger:=frame',
                   # the per-decision stream (events, the default, fire only on a performed instance)
                   '-p', 'gesture.output:=decisions',
                   '-p', 'diagnostics_period_s:=0.5', *extra]


@pytest.fixture
def tester():
    t = H.Tester()
    yield t
    t.close()


@pytest.fixture
def fusion(tmp_path):
    started = []

    def start(*args: str, managed: bool = True, **env) -> H.NodeProcess:
        proc = H.NodeProcess('fusion_node', fusion_args(*args, managed=managed), tmp_path / f'fusion{len(started)}.log',
                             env=H.node_env(**env) if env else None)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.close()


def test_lifecycle_services_drive_the_node_and_it_classifies_live_skeletons(fusion, tester):
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import PoseArray
    from vision_msgs.msg import Classification, LabelInfo

    node = fusion()
    assert tester.state(NODE, timeout=60) == 'unconfigured'
    results = tester.subscribe(Classification, f'{NODE}/gesture', H.sensor_qos(50))
    infos = tester.subscribe(LabelInfo, f'{NODE}/gesture/label_info', H.latched_qos())
    diagnostics = tester.subscribe(DiagnosticArray, '/diagnostics', H.sensor_qos(50))
    skeleton = tester.node.create_publisher(PoseArray, f'{NS}/skeleton', H.sensor_qos())

    assert tester.transition(NODE, 'configure') and tester.state(NODE) == 'inactive'
    assert tester.transition(NODE, 'activate') and tester.state(NODE) == 'active'
    tester.wait_for(lambda: infos, 20, 'LabelInfo (transient local)')
    labels = [c.class_name for c in infos[0].class_map]
    assert len(labels) >= 2 and [c.class_id for c in infos[0].class_map] == list(range(len(labels)))
    tester.wait_for(lambda: skeleton.get_subscription_count() > 0, 20, 'the node to subscribe')

    sent = []
    for k in range(90):                                   # 3 s of skeleton at 30 Hz
        stamp = T0 + k * FRAME_NS
        skeleton.publish(M.build_pose_array(ros_message, joints(k), stamp_ns=stamp, frame_id='kinect'))
        sent.append(stamp)
        tester.spin(1 / 30)
    tester.wait_for(lambda: len(results) >= 30, 30, 'gesture Classifications')
    stamps = [H.stamp_ns(m.header) for m in results]
    assert set(stamps) <= set(sent) and stamps == sorted(stamps)       # the header of the source frame
    for msg in results:
        assert msg.header.frame_id == 'kinect' and {h.class_id for h in msg.results} <= set(labels)
        scores = [h.score for h in msg.results]
        assert scores == sorted(scores, reverse=True) and 0 < scores[0] <= 1.0
    tester.wait_for(lambda: any('input skeleton' in s.name and 'receiving' in s.message
                                for d in diagnostics for s in d.status), 10, 'diagnostics of the skeleton input')

    assert tester.transition(NODE, 'deactivate') and tester.state(NODE) == 'inactive'
    count = len(results)
    skeleton.publish(M.build_pose_array(ros_message, joints(0), stamp_ns=T0 + 10**10, frame_id='kinect'))
    tester.spin(1.0)
    assert len(results) == count                                        # unsubscribed while inactive
    assert tester.transition(NODE, 'cleanup') and tester.state(NODE) == 'unconfigured'
    assert tester.transition(NODE, 'configure') and tester.state(NODE) == 'inactive'
    assert tester.transition(NODE, 'shutdown') and tester.state(NODE) == 'finalized'
    assert node.interrupt() == 0
    assert 'Traceback' not in node.output()


def test_parameter_services_in_range_out_of_range_and_read_only(fusion, tester):
    from vision_msgs.msg import LabelInfo

    node = fusion(managed=False)
    infos = tester.subscribe(LabelInfo, f'{NODE}/gesture/label_info', H.latched_qos())
    tester.wait_for(lambda: tester.state(NODE, timeout=60) == 'active', 120, 'the node to activate itself')
    ok = tester.set_parameter(NODE, 'gesture.score_threshold', 0.75)
    assert ok.successful, ok.reason
    assert tester.get_parameter(NODE, 'gesture.score_threshold') == 0.75
    tester.wait_for(lambda: any(abs(i.threshold - 0.75) < 1e-6 for i in infos), 10, 'LabelInfo with the threshold')
    bad = tester.set_parameter(NODE, 'gesture.score_threshold', 1.5)
    assert not bad.successful and 'gesture.score_threshold' in bad.reason or '1.5' in bad.reason
    assert tester.get_parameter(NODE, 'gesture.score_threshold') == 0.75
    wrong_type = tester.set_parameter(NODE, 'gesture.score_threshold', 'high')
    assert not wrong_type.successful
    read_only = tester.set_parameter(NODE, 'device', 'cuda')
    assert not read_only.successful and 'read-only' in read_only.reason
    assert node.interrupt() == 0 and 'Traceback' not in node.output()


@pytest.mark.parametrize('override, named', [('gesture.score_threshold:=1', 'gesture.score_threshold'),
                                             ('gesture.score_threshold:=1.5', 'gesture.score_threshold'),
                                             ('qos_depth:=many', 'qos_depth')])
def test_a_bad_parameter_override_gives_one_clear_line_and_a_non_zero_exit(fusion, override, named):
    node = fusion('-p', override, managed=False)
    status = node.wait(120)
    out = node.output()
    assert status != 0 and 'Traceback' not in out, out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out
    value = override.split(':=')[1]
    assert named in lines[0] and value in lines[0] and 'expect' in lines[0].lower(), lines[0]


def test_an_exception_in_a_transition_is_logged_with_its_cause(tester, monkeypatch):
    """Rclpy would swallow it (ERROR, no reason); the node logs type, message and traceback (in-process)."""
    from rcl_interfaces.msg import Log
    from centralnet_ros.ros import fusion_node as F
    from rclpy.lifecycle import TransitionCallbackReturn

    logs = tester.subscribe(Log, '/rosout', H.latched_qos().__class__(depth=100))
    node = F.FusionNode(namespace='/inproc', parameter_overrides=[
        rclpy_parameter('tasks', ['gesture']), rclpy_parameter('gesture.bundle', str(H.MODELS / 'gesture'))])
    tester.executor.add_node(node)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS

        def broken(task):
            raise RuntimeError('label info exploded')
        monkeypatch.setattr(node, '_publish_label_info', broken)
        node.trigger_activate()
        tester.wait_for(lambda: [m for m in logs if 'label info exploded' in m.msg], 10, 'the cause in /rosout')
        line = next(m.msg for m in logs if 'label info exploded' in m.msg)
        assert line.startswith('activate failed: RuntimeError: label info exploded') and 'Traceback' in line
        assert node._state_machine.current_state[1] == 'unconfigured'    # on_error released the runtime
    finally:
        tester.executor.remove_node(node)
        node.destroy_node()


def rclpy_parameter(name, value):
    from rclpy.parameter import Parameter
    return Parameter(name, value=value)
