"""
Both nodes under launch_testing, fed by a small rosbag2 recording (needs ROS 2).

Runs where rclpy, launch_testing and the message packages are installed
(``colcon test --packages-select centralnet_ros``, or ``launch_test
test/test_ros_nodes.py`` in a sourced workspace); skipped otherwise.

- fusion_node is started through ``launch/fusion.launch.py`` (namespace
  ``cnet_test``, task ``speech``) and brought to active by the launch events;
  ``ros2 bag play`` then plays a bag written here with the ``rosbags`` library:
  three real FSDD spoken digits (16 kHz, 20 ms AudioDataStamped chunks) separated
  by silence, plus the AudioInfo.  The test checks the Classification messages
  (labels from the LabelInfo, header stamps inside the played audio), and the
  diagnostics.
- microphone_node captures from an ALSA ``file`` device (the test-local
  asoundrc of test_capture.py, found through HOME) and must publish stamped
  S16LE chunks and a latched AudioInfo.

The speech bundle comes from ``$CENTRALNET_TEST_SPEECH_BUNDLE`` or the installed
``share/centralnet_ros/models/speech``.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path
import subprocess
import tempfile
import time
import unittest

from dataset_guard import require
import numpy as np
import pytest
from scipy.io import wavfile

try:
    from ament_index_python.packages import get_package_share_directory
    from audio_common_msgs.msg import AudioDataStamped, AudioInfo
    from diagnostic_msgs.msg import DiagnosticArray
    import launch
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    import launch_ros.actions
    import launch_testing
    import launch_testing.actions
    import launch_testing.asserts
    from lifecycle_msgs.srv import GetState
    import rclpy
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from vision_msgs.msg import Classification, LabelInfo
except ImportError:
    pytest.skip('rclpy/launch_testing not installed (ROS 2 absent)', allow_module_level=True)

PACKAGE = 'centralnet_ros'
NAMESPACE = 'cnet_test'
MIC_NAMESPACE = 'cnet_test_mic'
SAMPLE_RATE = 16000
CHUNK = 320  # 20 ms
BASE_NS = 1_700_000_000 * 1_000_000_000
CLIPS = ('3_theo_0.wav', '7_jackson_0.wav', '1_nicolas_0.wav')


def _speech_bundle() -> Path | None:
    env = os.environ.get('CENTRALNET_TEST_SPEECH_BUNDLE')
    if env:
        return Path(env)
    candidate = Path(get_package_share_directory(PACKAGE)) / 'models' / 'speech'
    return candidate if candidate.exists() else None


if _speech_bundle() is None:
    pytest.skip('no speech bundle: set CENTRALNET_TEST_SPEECH_BUNDLE or install '
                'share/centralnet_ros/models/speech', allow_module_level=True)


def _clip(name: str) -> np.ndarray:
    from centralnet_ros.features.audio import resample_audio
    rate, pcm = wavfile.read(require('fsdd') / 'fsdd' / 'recordings' / name)
    up = resample_audio(pcm.astype(np.float32), orig_sample_rate=rate, new_sample_rate=SAMPLE_RATE)
    return np.clip(np.round(up), -32768, 32767).astype(np.int16)  # (T,)


def _write_bag(path: Path) -> tuple[int, int]:
    """Write the audio bag; return the first and last audio stamps (ns)."""
    from centralnet_ros.replay.msgdefs import audio_messages, make_typestore, write_bag

    store = make_typestore()
    silence = np.zeros(int(0.8 * SAMPLE_RATE), np.int16)
    signal = np.concatenate([silence] + [np.concatenate([_clip(c), silence]) for c in CLIPS])
    signal = signal[:len(signal) // CHUNK * CHUNK].reshape(-1, CHUNK, 1)  # (N, 320, 1)
    records = []
    for i, chunk in enumerate(signal):
        stamp = BASE_NS + i * CHUNK * 1_000_000_000 // SAMPLE_RATE
        msg, info = audio_messages(chunk, sample_rate=SAMPLE_RATE, stamp_ns=stamp, typestore=store)
        if i == 0:
            records.append((f'/{NAMESPACE}/audio_info', 'audio_common_msgs/msg/AudioInfo',
                            stamp, info))
        records.append((f'/{NAMESPACE}/audio', 'audio_common_msgs/msg/AudioDataStamped',
                        stamp, msg))
    write_bag(path, records, typestore=store)
    return BASE_NS, records[-1][2]


def _launch_helpers():
    """Load the installed launch file as a module (for its lifecycle bring-up helper)."""
    path = Path(get_package_share_directory(PACKAGE)) / 'launch' / 'fusion.launch.py'
    spec = importlib.util.spec_from_file_location('fusion_launch', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, path


@pytest.mark.launch_test
def generate_test_description():
    tmp = Path(tempfile.mkdtemp(prefix='centralnet_ros_test_'))
    first_ns, last_ns = _write_bag(tmp / 'bag')
    (tmp / 'qos.yaml').write_text(
        f'/{NAMESPACE}/audio_info:\n  history: keep_last\n  depth: 1\n'
        '  reliability: reliable\n  durability: transient_local\n')
    (tmp / 'overlay.yaml').write_text(
        f'/**/fusion_node:\n  ros__parameters:\n    tasks: [speech]\n'
        f"    speech:\n      bundle: '{_speech_bundle()}'\n      trigger: speech_end\n"
        '      score_threshold: 0.0\n    diagnostics_period_s: 0.5\n')
    _clip(CLIPS[0]).astype('<i2').tofile(tmp / 'mono.raw')
    (tmp / '.asoundrc').write_text(
        'pcm.centralnet_test_mono {\n    type file\n    slave.pcm "null"\n    file "/dev/null"\n'
        f'    infile "{tmp / "mono.raw"}"\n    format "raw"\n}}\n')

    helpers, launch_file = _launch_helpers()
    fusion = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(launch_file)),
        launch_arguments={'namespace': NAMESPACE, 'robot': str(tmp / 'overlay.yaml'),
                          'start_microphone': 'false', 'device': 'cpu'}.items())
    microphone = launch_ros.actions.LifecycleNode(
        package=PACKAGE, executable='microphone_node', name='microphone_node',
        namespace=MIC_NAMESPACE, output='screen', arguments=['--managed'],
        parameters=[{'device': 'centralnet_test_mono', 'diagnostics_period_s': 0.5}],
        additional_env={'HOME': str(tmp), 'XDG_CONFIG_HOME': str(tmp / 'xdg')})
    description = launch.LaunchDescription(
        [fusion, *helpers._bring_up(microphone), launch_testing.actions.ReadyToTest()])
    return description, {'tmp': tmp, 'first_ns': first_ns, 'last_ns': last_ns}


def _stamp_ns(stamp) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


class TestNodes(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.node = rclpy.create_node('centralnet_test_probe')

    @classmethod
    def tearDownClass(cls):
        cls.node.destroy_node()
        rclpy.shutdown()

    def _spin_until(self, done, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end and not done():
            rclpy.spin_once(self.node, timeout_sec=0.1)
        return done()

    def _wait_active(self, fqn: str, timeout: float = 60.0):
        client = self.node.create_client(GetState, f'{fqn}/get_state')
        self.assertTrue(client.wait_for_service(timeout_sec=timeout), f'{fqn} has no get_state')
        end = time.monotonic() + timeout
        label = ''
        while time.monotonic() < end:
            future = client.call_async(GetState.Request())
            rclpy.spin_until_future_complete(self.node, future, timeout_sec=5.0)
            label = future.result().current_state.label if future.result() else ''
            if label == 'active':
                return
            time.sleep(0.2)
        self.fail(f'{fqn} did not reach active (last state {label!r})')

    def _collect(self, msg_type, topic, qos=10):
        received = []
        self.node.create_subscription(msg_type, topic, received.append, qos)
        return received

    def test_microphone_publishes_stamped_audio(self):
        self._wait_active(f'/{MIC_NAMESPACE}/microphone_node')
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        t0 = self.node.get_clock().now().nanoseconds
        audio = self._collect(AudioDataStamped, f'/{MIC_NAMESPACE}/audio')
        info = self._collect(AudioInfo, f'/{MIC_NAMESPACE}/audio_info', latched)
        diagnostics = self._collect(DiagnosticArray, '/diagnostics')
        self.assertTrue(self._spin_until(
            lambda: len(audio) >= 5 and info and any(
                'microphone_node' in s.name for d in diagnostics for s in d.status), 20.0))
        self.assertEqual((info[0].channels, info[0].sample_rate, info[0].sample_format,
                          info[0].coding_format), (1, SAMPLE_RATE, 'S16LE', 'wave'))
        now = self.node.get_clock().now().nanoseconds
        for msg in audio[:5]:
            self.assertEqual(len(msg.audio.data), CHUNK * 2)
            self.assertEqual(msg.header.frame_id, 'microphone')
            self.assertTrue(t0 - 5e9 <= _stamp_ns(msg.header.stamp) <= now,
                            'microphone stamps are not in ROS time')

    def test_fusion_classifies_the_bag(self, tmp, first_ns, last_ns):
        self._wait_active(f'/{NAMESPACE}/fusion_node')
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        results = self._collect(Classification, f'/{NAMESPACE}/fusion_node/speech')
        labels = self._collect(LabelInfo, f'/{NAMESPACE}/fusion_node/speech/label_info', latched)
        diagnostics = self._collect(DiagnosticArray, '/diagnostics')
        play = subprocess.Popen(['ros2', 'bag', 'play', str(tmp / 'bag'),
                                 '--qos-profile-overrides-path', str(tmp / 'qos.yaml')])
        try:
            self._spin_until(lambda: play.poll() is not None, 60.0)
            self._spin_until(lambda: len(results) >= len(CLIPS), 5.0)
        finally:
            if play.poll() is None:
                play.terminate()
        self.assertEqual(play.wait(timeout=10), 0, 'ros2 bag play failed')
        self.assertTrue(labels, 'no LabelInfo (transient local) on speech/label_info')
        names = {c.class_name for c in labels[0].class_map}
        self.assertEqual(labels[-1].threshold, 0.0)
        self.assertGreaterEqual(len(results), 1, 'no Classification for three spoken digits')
        self.assertLessEqual(len(results), 2 * len(CLIPS), 'far more decisions than utterances')
        for msg in results:
            stamp = _stamp_ns(msg.header.stamp)
            self.assertTrue(first_ns <= stamp <= last_ns,
                            f'result stamp {stamp} is not the stamp of the played audio')
            self.assertTrue(msg.results and msg.results[0].class_id in names)
            scores = [h.score for h in msg.results]
            self.assertEqual(scores, sorted(scores, reverse=True), 'hypotheses not best first')

        def latest():  # the newest status of each fusion_node diagnostic
            return {s.name: s for d in diagnostics for s in d.status if s.name.startswith('fusion_node: ')}

        def decisions():
            status = latest().get('fusion_node: task speech')
            values = {kv.key: kv.value for kv in status.values} if status else {}
            return int(values.get('decisions', -1))

        self._spin_until(lambda: decisions() >= len(results), 5.0)
        statuses = latest()
        self.assertTrue(statuses, 'fusion_node published no diagnostics')
        for name in ('runtime', 'input audio', 'task speech'):
            self.assertIn(f'fusion_node: {name}', statuses)
        self.assertGreaterEqual(decisions(), len(results))
        audio = {kv.key: kv.value for kv in statuses['fusion_node: input audio'].values}
        self.assertGreater(int(audio['accepted']), 0, 'audio never reached the runtime (AudioInfo QoS?)')


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):

    def test_exit_codes(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0, -2, -15])
