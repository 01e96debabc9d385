"""
640x480 rgb8 frames between two processes, best effort, with the shipped Fast DDS profile: none is lost.

Also: the running fusion_node decides each task on its own thread, the long ones (speech,
emotion: ``<task>.decision_nice``) at a lower CPU priority than the node, gesture at the node's.

With Fast DDS' defaults (a 512 KiB shared-memory segment, so a 900 KiB frame goes over UDP
fragments) about half of them were lost on this machine (93 of 200 arrived); with
``config/fastdds.xml`` (16 MiB segment) all arrive.  Publisher and subscriber are separate
processes here, both started with the profile, as the launch file starts the nodes.
``benchmarks/bench_dds.py`` measures delivery with and without it for every input at once.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
import subprocess
import sys
import textwrap

import pytest
import ros_harness as H
from test_ros_fusion_node import bring_up, bundles, fusion, NODE, params_of, tester  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow
FRAMES = 200

_SUBSCRIBER = textwrap.dedent("""
    import json, sys, time
    import rclpy
    from rclpy.qos import qos_profile_sensor_data, QoSProfile
    from sensor_msgs.msg import Image
    rclpy.init()
    node = rclpy.create_node('frames_in')
    got = []
    qos = QoSProfile(depth=5, reliability=qos_profile_sensor_data.reliability)
    node.create_subscription(Image, '/frames', lambda m: got.append(m.header.frame_id), qos)
    print('ready', flush=True)
    end = time.monotonic() + float(sys.argv[1])
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
        if got and got[-1] == 'last':
            break
    print(json.dumps({'received': len(got)}), flush=True)
""")

_PUBLISHER = textwrap.dedent("""
    import sys, time
    import numpy as np
    import rclpy
    from rclpy.qos import qos_profile_sensor_data, QoSProfile
    from sensor_msgs.msg import Image
    rclpy.init()
    node = rclpy.create_node('frames_out')
    pub = node.create_publisher(Image, '/frames', QoSProfile(depth=5, reliability=qos_profile_sensor_data.reliability))
    while pub.get_subscription_count() == 0:
        time.sleep(0.05)
    time.sleep(1.0)
    data = np.random.default_rng(0).integers(0, 256, 640 * 480 * 3, dtype=np.uint8).tobytes()
    n = int(sys.argv[1])
    for k in range(n):
        msg = Image(height=480, width=640, encoding='rgb8', step=640 * 3, data=data)
        msg.header.frame_id = 'last' if k == n - 1 else str(k)
        pub.publish(msg)
        time.sleep(1 / 30)
""")


def _deliver(profile: bool, tmp_path) -> int:
    env = H.node_env()
    for key in ('FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_DEFAULT_PROFILES_FILE'):
        env.pop(key, None)
        if profile:
            env[key] = str(H.REPO / 'config' / 'fastdds.xml')
    sub = subprocess.Popen([sys.executable, '-c', _SUBSCRIBER, '120'], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert sub.stdout.readline().strip() == 'ready'
        pub = subprocess.run([sys.executable, '-c', _PUBLISHER, str(FRAMES)], env=env, timeout=300)
        assert pub.returncode == 0
        out, _ = sub.communicate(timeout=150)
    finally:
        if sub.poll() is None:
            sub.kill()
    return json.loads(out.strip().splitlines()[-1])['received']


def test_the_shipped_profile_delivers_every_640x480_frame(tmp_path):
    received = _deliver(True, tmp_path)
    assert received == FRAMES, f'{received} of {FRAMES} frames arrived with config/fastdds.xml'


def _decision_threads(pid: int) -> dict[str, int]:
    """``name -> nice`` of the node's decision threads (``cn-dec-<task>``)."""
    from centralnet_ros.ros.bench_dds import thread_stats
    return {name: nice for name, _, nice in thread_stats(pid).values() if name.startswith('cn-dec-')}


def _decision_processes(pid: int) -> dict[str, tuple[int, int]]:
    """``name -> (pid, nice)`` of the node's decision processes (``cn-proc-<task>``, children of ``pid``)."""
    out = {}
    for stat in Path('/proc').glob('[0-9]*/stat'):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, fields = text[text.index('(') + 1:text.rindex(')')], text[text.rindex(')') + 2:].split()
        if int(fields[1]) == pid and name.startswith('cn-proc-'):
            out[name] = (int(stat.parent.name), int(fields[16]))
    return out


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='per-thread nice values are Linux')
def test_long_decisions_run_at_a_lower_priority_than_the_node(bundles, fusion, tester):  # noqa: F811
    """
    speech.decision_nice 10 (the default), emotion 3 (set), gesture 0: where each task decides carries them.

    With ``decision_process`` on (the node's default for speech and emotion), speech and emotion decide
    in processes of their own: the processes run at the nice values, the node's threads that hand them
    the windows at the node's. With it off, the node's decision thread of the task runs at its nice value.
    """
    params = params_of(bundles, **{'emotion.decision_nice': 3})
    del params['speech.decision_process'], params['emotion.decision_process']         # the node's default
    proc = fusion(params)
    bring_up(tester)
    pid = proc.proc.pid
    base = os.getpriority(os.PRIO_PROCESS, pid)
    assert _decision_threads(pid) == {'cn-dec-gesture': base, 'cn-dec-speech': base, 'cn-dec-emotion': base}
    children = _decision_processes(pid)
    nices = {name: nice for name, (_, nice) in children.items()}
    assert nices == {'cn-proc-speech': min(19, base + 10), 'cn-proc-emotion': min(19, base + 3)}
    assert tester.transition(NODE, 'deactivate')
    assert tester.transition(NODE, 'cleanup')                # cleanup stops the processes and reaps them
    assert all(not Path(f'/proc/{child}').exists() for child, _ in children.values())
    assert proc.interrupt() == 0
    proc = fusion(params_of(bundles, **{'emotion.decision_nice': 3}), ns='/inproc')
    bring_up(tester, '/inproc/fusion_node')
    base = os.getpriority(os.PRIO_PROCESS, proc.proc.pid)
    assert _decision_threads(proc.proc.pid) == {'cn-dec-gesture': base, 'cn-dec-speech': min(19, base + 10),
                                                'cn-dec-emotion': min(19, base + 3)}
    assert _decision_processes(proc.proc.pid) == {}
    assert tester.transition('/inproc/fusion_node', 'deactivate')
    assert proc.interrupt() == 0
