"""
fusion_node and microphone_node under real rclpy (Fast DDS), each in its own process.

Driven from the test's own rclpy node over the real lifecycle services (ChangeState,
GetState) and parameter services, fed by best-effort publishers (sensor-data QoS, like
camera and audio drivers), with ``ROS_PYTHON_CHECK_FIELDS=1`` and a ``ROS_DOMAIN_ID`` of
this test run (see ``ros_harness``).  The shipped gesture and speech bundles decide.
"""
from __future__ import annotations

import ctypes.util
import os
from pathlib import Path
import shutil
import subprocess
import time

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


joints = H.joints


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


@pytest.mark.needs_data('msrc12')
def test_lifecycle_services_drive_the_node_and_it_classifies_live_skeletons(fusion, tester, data_root):
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import PoseArray
    from vision_msgs.msg import Classification, LabelInfo

    from centralnet_ros.data import msrc12
    # real gestures of a person the shipped bundle never saw (p12): it answers "none" to made-up motion
    seq = msrc12.read_sequence(*msrc12.list_files(data_root / 'msrc12', persons=[12])[0])
    first = int(np.searchsorted(seq.timestamps, seq.action_times[0])) - 45
    performed = seq.positions[max(first, 0):][seq.tracked[max(first, 0):]][:150]      # 5 s from 1.5 s before

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
    for k, pose in enumerate(performed):                  # 5 s of skeleton at 30 Hz
        stamp = T0 + k * FRAME_NS
        skeleton.publish(M.build_pose_array(ros_message, pose, stamp_ns=stamp, frame_id='kinect'))
        sent.append(stamp)
        tester.spin(1 / 30)
    tester.wait_for(lambda: len(results) >= 20, 30, 'gesture Classifications', node)
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


def _require(program: str, why: str) -> None:
    """Skip without ``program`` (fail under CI, which installs it from apt-packages.txt)."""
    if shutil.which(program) is None:
        (pytest.fail if os.environ.get('CI') == 'true' else pytest.skip)(f'{program} is not installed ({why})')


@pytest.fixture
def paced_microphone(tmp_path):
    """
    Provide a capture device with a clock: PulseAudio's null sink read by PortAudio (ALSA ``pulse``).

    A private PulseAudio server (this test's HOME and runtime folder, no system or user instance)
    with a 16 kHz mono null sink, which the server paces in real time; ``paplay`` into the sink is
    what the "microphone" hears.  Returns ``(env for the nodes, play(wav))``.
    """
    _require('pulseaudio', 'apt install pulseaudio pulseaudio-utils libasound2-plugins')
    _require('paplay', 'apt install pulseaudio-utils')
    if not any(Path(d, 'libasound_module_pcm_pulse.so').exists()
               for d in ('/usr/lib/x86_64-linux-gnu/alsa-lib', '/usr/lib/aarch64-linux-gnu/alsa-lib',
                         '/usr/lib/alsa-lib', '/usr/lib64/alsa-lib')):
        _require('no-such-program-libasound2-plugins', 'apt install libasound2-plugins (ALSA pulse plugin)')
    run = tmp_path / 'run'
    run.mkdir()
    socket = run / 'pulse' / 'native'
    env = {**H.node_env(), 'HOME': str(tmp_path), 'XDG_RUNTIME_DIR': str(run), 'PULSE_SERVER': f'unix:{socket}'}
    (tmp_path / '.asoundrc').write_text('pcm.centralnet_ros_pulse {\n    type pulse\n'
                                        '    device "centralnet_sink.monitor"\n}\n')
    server = subprocess.Popen(['pulseaudio', '-n', '--daemonize=no', '--exit-idle-time=-1', '--use-pid-file=no',
                               '-L', 'module-null-sink sink_name=centralnet_sink rate=16000 channels=1',
                               '-L', 'module-native-protocol-unix auth-anonymous=1'],
                              env=env, stdout=open(tmp_path / 'pulseaudio.log', 'wb'), stderr=subprocess.STDOUT)
    try:
        end = time.monotonic() + 30
        while not socket.exists():
            assert server.poll() is None and time.monotonic() < end, (tmp_path / 'pulseaudio.log').read_text()
            time.sleep(0.1)

        def play(wav: Path) -> subprocess.Popen:
            return subprocess.Popen(['paplay', '--device=centralnet_sink', str(wav)], env=env)
        yield env, play
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)


@pytest.mark.needs_data('emodb')
@pytest.mark.skipif(ctypes.util.find_library('portaudio') is None, reason='libportaudio2 is not installed')
def test_portaudio_speech_through_microphone_node_into_fusion_node(fusion, tester, tmp_path, data_root,
                                                                   paced_microphone):
    """
    Spoken audio through PortAudio -> microphone_node -> fusion_node -> an emotion decision.

    The "microphone" is PulseAudio's null sink (paced in real time) read by PortAudio through ALSA's
    ``pulse`` plugin; an EmoDB utterance between silences is played into it with ``paplay``.
    microphone_node stamps by the sample count from the stream's start; fusion_node's decision must
    carry the stamp of the end of the utterance in those stamps, which the test finds in the audio
    it receives itself (the utterance located by cross-correlation).  (The speech task would reject
    an EmoDB sentence as not_a_letter, so emotion is the task here.)
    """
    from audio_common_msgs.msg import AudioDataStamped
    from centralnet_ros.data.emodb import load_waveform
    from scipy.io import wavfile
    from vision_msgs.msg import Classification
    env, play = paced_microphone
    rate = 16000
    speech = load_waveform(data_root / 'emodb' / 'wav' / '03a01Fa.wav', sample_rate=rate)
    signal = np.concatenate([np.zeros(rate // 2), speech, np.zeros(rate)])
    wavfile.write(tmp_path / 'utterance.wav', rate, np.clip(np.round(signal * 32767), -32768, 32767).astype('<i2'))

    node = fusion('-p', 'tasks:=[emotion]', '-p', f'emotion.bundle:={H.MODELS / "emotion"}',
                  '-p', 'emotion.output:=decisions', '-p', 'emotion.score_threshold:=0.0',
                  '-p', 'qos_reliability:=reliable', '-p', 'qos_depth:=1000')
    mic = H.NodeProcess('microphone_node', ['--managed', '--ros-args', '-r', f'__ns:={NS}', '-p',
                                            'device:=centralnet_ros_pulse', '-p', f'sample_rate:={rate}',
                                            '-p', 'frame_id:=mic_array'], tmp_path / 'mic.log', env=env)
    try:
        results = tester.subscribe(Classification, f'{NODE}/emotion', H.latched_qos().__class__(depth=100))
        chunks = tester.subscribe(AudioDataStamped, f'{NS}/audio', H.latched_qos().__class__(depth=5000))
        for name in (NODE, f'{NS}/microphone_node'):
            assert tester.state(name, timeout=90) == 'unconfigured'
            assert tester.transition(name, 'configure'), name
        assert tester.transition(NODE, 'activate')
        tester.wait_for(lambda: tester.node.count_subscribers(f'{NS}/audio') >= 2, 30,
                        'fusion_node and the test subscribed to the microphone')
        assert tester.transition(f'{NS}/microphone_node', 'activate')
        tester.wait_for(lambda: len(chunks) > 25, 30, 'half a second of captured audio')
        player = play(tmp_path / 'utterance.wav')
        tester.wait_for(lambda: results, 60, 'the emotion decision')
        assert player.wait(30) == 0
        tester.spin(1.0)
        # the audio clock: every chunk exactly its length after the one before, and in step with ROS time
        stamps = np.asarray([H.stamp_ns(c.header) for c in chunks], np.int64)
        audio = np.concatenate([np.frombuffer(bytes(c.audio.data), '<i2') for c in chunks]).astype(np.float32)
        chunk = audio.size // len(chunks)
        step = np.diff(stamps) - chunk * 1_000_000_000 // rate      # within the float seconds' 0.25 us
        assert np.abs(step).max() <= 1000, np.unique(np.diff(stamps))
        now = tester.node.get_clock().now().nanoseconds
        assert abs(now - stamps[-1]) < 2_000_000_000, 'the stamps left the ROS clock (an unpaced device?)'
        # where the utterance is in the captured audio, in the microphone's stamps
        corr = np.correlate(audio / 32767, speech, mode='valid')
        onset = int(stamps[0]) + int(np.argmax(np.abs(corr))) * 1_000_000_000 // rate
        end = onset + speech.size * 1_000_000_000 // rate
        assert len(results) == 1, [H.stamp_ns(r.header) for r in results]
        stamp = H.stamp_ns(results[0].header)
        assert onset < stamp <= end + 500_000_000, ((stamp - onset) / 1e9, (end - onset) / 1e9)
        assert results[0].header.frame_id == 'mic_array' and results[0].results[0].class_id
        assert mic.interrupt() == 0 and node.interrupt() == 0
        for out in (mic.output(), node.output()):
            assert 'Traceback' not in out and '[ERROR]' not in out, out
    finally:
        mic.close()
