"""
fusion_node's inputs, outputs, diagnostics, parameters and hot swap under real rclpy over Fast DDS.

These were the tests of the fake rclpy (``test/fake_rclpy.py``, deleted): every one now runs
the real node class on real rclpy, fed over real DDS by the test's own rclpy node
(``ros_harness``).  Most start the node in its own process (``python -m
centralnet_ros.ros.fusion_node`` with a params file) and observe it only through ROS:
topics, the ROS graph (QoS of its subscriptions, its publishers), parameter, lifecycle and
``~/reload_bundles`` services, ``/diagnostics`` and its log.  Two run the node inside the test
process (still real rclpy and DDS, driven through the real parameter services) because what
they check has no ROS face: the adaptation statistics per voice (``forget_voice``), and the
Humble branch of the parameter callbacks (rclpy < Iron has no post-set callback; here the
node is made to take that branch on Jazzy's rclpy, whose on-set callback behaves as Humble's).

The models are small untrained bundles saved here (CentralNet over skeleton + camera
frames, so the fusion weights have a layout to check; an audio model at 16 kHz), fed with
real recordings (EmoDB speech, MNIST digits as camera frames).  Where a count matters the
node subscribes reliably with a deep queue (``qos_reliability: reliable``), so that what is
tested is the node, not the delivery (``benchmarks/bench_dds.py`` measures delivery).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
import shutil

from centralnet_ros import messages as M
from centralnet_ros.bundle import load_bundle, Manifest, ModalitySpec, save_bundle
from centralnet_ros.encoders import EncoderConfig
from centralnet_ros.fusion import build_model, FusionConfig
from centralnet_ros.ros.interfaces import ros_message
import numpy as np
import pytest
import ros_harness as H
import torch
import yaml

pytestmark = pytest.mark.slow

NS = '/robot'
NODE = f'{NS}/fusion_node'
T0 = 1_700_000_000 * 1_000_000_000
SR = 16000
CHUNK = 320                                # 20 ms of audio per message
FRAME_NS = 100_000_000                     # skeleton and camera at 10 Hz
GESTURES = ['wave', 'point', 'rest']
EMOTIONS = ['anger', 'happiness', 'neutral']
LABEL_MAP = {'anger': 'angry', 'happiness': 'happy'}
SKELETON = {'frame_rate': 10.0, 'num_frames': 10, 'channels': ['position'], 'layout': 'joints_time'}
LOG_MEL = {'sample_rate': SR, 'duration_s': 1.0, 'n_fft': 400, 'hop_length': 160, 'n_mels': 16,
           'mean': -5.0, 'std': 3.0}


# --------------------------------------------------------------------------- bundles and recordings

@pytest.fixture(scope='module')
def bundles(tmp_path_factory) -> dict[str, Path]:
    """Two small untrained bundles: CentralNet over skeleton + camera frames, and an audio-only model."""
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp('bundles')
    mods = {'skeleton': EncoderConfig(kind='cnn1d', input_shape=[60, 10], widths=[8, 8]),
            'frames': EncoderConfig(kind='cnn3d', input_shape=[1, 4, 28, 28], widths=[4, 8])}
    cfg = FusionConfig(method='centralnet', modalities=mods, num_classes=len(GESTURES))
    model = build_model(cfg).eval()
    with torch.no_grad():                                # distinct weights, so the layout test can tell them apart
        for p in model.fusion_weight_parameters():
            p.uniform_(0.2, 2.0)
    gesture = save_bundle(root / 'gesture', model, Manifest(
        format_version=1, task='gesture', labels=GESTURES, model=cfg,
        modalities={'skeleton': ModalitySpec(source='skeleton', input_shape=[60, 10], pipeline='skeleton_sequence',
                                             preprocessing=SKELETON, window_s=1.0),
                    'frames': ModalitySpec(source='image', input_shape=[1, 4, 28, 28], pipeline='lip_video',
                                           preprocessing={'num_frames': 4, 'height': 28, 'width': 28},
                                           window_s=1.0)}))
    cfg = FusionConfig(method='unimodal', unimodal='audio', num_classes=len(EMOTIONS),
                       modalities={'audio': EncoderConfig(kind='cnn1d', input_shape=[16, 98], widths=[8, 8])})
    voice = save_bundle(root / 'voice', build_model(cfg).eval(), Manifest(
        format_version=1, task='emotion', labels=EMOTIONS, model=cfg, label_map=LABEL_MAP,
        modalities={'audio': ModalitySpec(source='audio', input_shape=[16, 98], pipeline='log_mel',
                                          preprocessing=LOG_MEL, sample_rate=SR, window_s=1.0)}))
    return {'gesture': gesture, 'voice': voice}


@pytest.fixture(scope='module')
def recordings(data_root) -> dict[str, np.ndarray]:
    """Real data: an EmoDB utterance at 16 kHz and MNIST test digits (the camera frames)."""
    from centralnet_ros.data.emodb import load_waveform
    from centralnet_ros.data.mnist import load_mnist
    speech = load_waveform(data_root / 'emodb' / 'wav' / '03a01Fa.wav', sample_rate=SR)
    digits, _ = load_mnist(data_root / 'mnist', 'test')
    return {'speech': speech, 'digits': digits[:64]}


joints = H.joints


# --------------------------------------------------------------------------- the node and the test's side

def qos(reliable: bool, depth: int = 1000):
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    return QoSProfile(depth=depth, durability=DurabilityPolicy.VOLATILE,
                      reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT)


def params_of(bundles, tasks=('gesture', 'speech', 'emotion'), **extra) -> dict:
    """
    Node parameters: the given tasks on the test bundles, every decision published, a reliable deep queue.

    Every task decides in the node's process (``decision_process`` off; the node's default is on for
    speech and emotion) unless ``extra`` says otherwise (a decision process is one more Python process
    per task per node start); test_ros_dds.py and test_ros_play.py run speech and emotion in processes
    of their own, test_ros_dds.py by the node's default.
    """
    params = {'tasks': list(tasks), 'qos_reliability': 'reliable', 'qos_depth': 1000, 'diagnostics_period_s': 0.5}
    for task in tasks:
        params.update({f'{task}.bundle': str(bundles['gesture' if task == 'gesture' else 'voice']),
                       f'{task}.score_threshold': 0.0, f'{task}.output': 'decisions',
                       f'{task}.decision_process': False})
    if 'gesture' in tasks:
        params['gesture.trigger'] = 'frame'
    params.update(extra)
    return params


@pytest.fixture
def tester():
    t = H.Tester('fusion_tester')
    yield t
    t.close()


@pytest.fixture
def fusion(tmp_path):
    """``start(params, *args, managed=True, ns=NS, env=None) -> NodeProcess``: fusion_node in its own process."""
    started = []

    def start(params: dict, *args: str, managed: bool = True, ns: str = NS, env: dict | None = None):
        path = tmp_path / f'params{len(started)}.yaml'
        path.write_text(yaml.safe_dump({'/**': {'ros__parameters': params}}))
        argv = (['--managed'] if managed else []) + ['--ros-args', '-r', f'__ns:={ns}', '--params-file', str(path),
                                                     *args]
        proc = H.NodeProcess('fusion_node', argv, tmp_path / f'fusion{len(started)}.log', env=env)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.close()


def bring_up(tester, node=NODE, *, activate: bool = True) -> None:
    assert tester.state(node, timeout=90) == 'unconfigured'
    assert tester.transition(node, 'configure'), 'configure failed'
    if activate:
        assert tester.transition(node, 'activate'), 'activate failed'


class Stream:
    """Test-side publishers (best effort like camera and audio drivers, or reliable) of recorded data."""

    def __init__(self, tester, recordings, *, ns: str = NS, reliable: bool = True) -> None:
        from audio_common_msgs.msg import AudioDataStamped, AudioInfo
        from geometry_msgs.msg import PoseArray
        from sensor_msgs.msg import Image
        node = tester.node
        self.tester, self.rec = tester, recordings
        self.image = node.create_publisher(Image, f'{ns}/image', qos(reliable))
        self.skeleton = node.create_publisher(PoseArray, f'{ns}/skeleton', qos(reliable))
        self.audio = node.create_publisher(AudioDataStamped, f'{ns}/audio', qos(reliable))
        self.audio_info = node.create_publisher(AudioInfo, f'{ns}/audio_info', H.latched_qos())
        self.skeleton_stamps: list[int] = []

    def publish_audio_info(self) -> None:
        _, info = M.build_audio(ros_message, np.zeros((CHUNK, 1), np.float32), sample_rate=SR, stamp_ns=T0)
        self.audio_info.publish(info)

    def wait_for_node(self, *publishers) -> None:
        for publisher in publishers or (self.image, self.skeleton):
            self.tester.wait_for(lambda: publisher.get_subscription_count() > 0, 30,
                                 f'the node to subscribe to {publisher.topic_name}')

    def play(self, seconds: float, *, start_ns: int = T0, speech_at_s: float | None = None,
             audio: bool = True, speed: float = 2.0) -> None:
        """Publish ``seconds`` of camera, skeleton and audio in header-stamp order, ``speed`` times real time."""
        events = []
        for k in range(int(seconds * 1e9) // FRAME_NS):
            t = start_ns + k * FRAME_NS
            events.append((t, 0, self.skeleton, M.build_pose_array(ros_message, joints(k), stamp_ns=t,
                                                                   frame_id='kinect')))
            digit = self.rec['digits'][k % len(self.rec['digits'])]
            events.append((t - FRAME_NS // 2, 1, self.image, M.build_image(
                ros_message, digit, encoding='mono8', stamp_ns=t - FRAME_NS // 2, frame_id='camera')))
            self.skeleton_stamps.append(t)
        if audio:
            signal = np.zeros(int(seconds * SR), np.float32)
            if speech_at_s is not None:
                speech = self.rec['speech'][: signal.size - int(speech_at_s * SR)]
                signal[int(speech_at_s * SR): int(speech_at_s * SR) + speech.size] = speech
            for i in range(0, signal.size - CHUNK + 1, CHUNK):
                t = start_ns + i * 1_000_000_000 // SR
                msg, _ = M.build_audio(ros_message, signal[i:i + CHUNK, None], sample_rate=SR, stamp_ns=t,
                                       frame_id='microphone')
                events.append((t, 2, self.audio, msg))
        play_sorted(self.tester, [(t, publisher, msg) for t, _, publisher, msg in
                                  sorted(events, key=lambda e: (e[0], e[1]))], speed)


def play_sorted(tester, events, speed: float = 2.0) -> None:
    """Publish ``(stamp_ns, publisher, msg)`` in order, paced at ``speed`` times their stamps' rate."""
    if not events:
        return
    first = events[0][0]
    import time
    t_start = time.monotonic()
    for stamp, publisher, msg in events:
        due = t_start + (stamp - first) / 1e9 / speed
        while time.monotonic() < due:
            tester.executor.spin_once(timeout_sec=max(0.0, min(0.01, due - time.monotonic())))
        publisher.publish(msg)


def statuses(arrays, after: int = 0) -> dict:
    """``{status name: status}`` of the DiagnosticArrays received from index ``after`` on (latest wins)."""
    out = {}
    for array in arrays[after:]:
        for status in array.status:
            out[status.name] = status
    return out


def values(status) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def wait_status(tester, arrays, name, predicate, timeout=20.0, what='', after: int = 0):
    """Wait for a report (from index ``after`` on) of status ``name`` satisfying ``predicate``; return the first."""
    def find():
        for array in list(arrays)[after:]:
            for status in array.status:
                if status.name == name and predicate(status):
                    return status
        return None
    return tester.wait_for(find, timeout, what or f'diagnostics {name}')


def node_errors(output: str) -> list[str]:
    return [line for line in output.splitlines() if '[ERROR]' in line or '[FATAL]' in line or 'Traceback' in line]


# --------------------------------------------------------------------------- tests

@pytest.mark.needs_data('emodb', 'mnist')
def test_active_node_publishes_classifications_with_the_source_stamps(fusion, tester, bundles, recordings):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    from hri_msgs.msg import Expression, LiveSpeech
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy
    from std_msgs.msg import Float32MultiArray
    from vision_msgs.msg import Classification, LabelInfo

    node = fusion(params_of(bundles, publish_hri=True, qos_reliability='best_effort', qos_depth=7))
    stream = Stream(tester, recordings)
    stream.publish_audio_info()                          # latched before the node subscribes
    results = {t: tester.subscribe(Classification, f'{NODE}/{t}', qos(True)) for t in ('gesture', 'speech', 'emotion')}
    weights = {t: tester.subscribe(Float32MultiArray, f'{NODE}/{t}/fusion_weights', qos(True))
               for t in ('gesture', 'emotion')}
    expression = tester.subscribe(Expression, '/humans/faces/face0/expression', qos(True))
    live_speech = tester.subscribe(LiveSpeech, '/humans/voices/voice0/speech', qos(True))
    diagnostics = tester.subscribe(DiagnosticArray, '/diagnostics', qos(True))
    bring_up(tester)
    stream.wait_for_node(stream.image, stream.skeleton, stream.audio)

    # the ROS graph: sensor-data QoS with qos_reliability; audio_info subscribed twice (the history depth,
    # qos_depth, is not announced over DDS discovery: the graph reports 0)
    infos = tester.node.get_subscriptions_info_by_topic(f'{NS}/image')
    assert [(i.qos_profile.reliability, i.qos_profile.durability) for i in infos] == [
        (ReliabilityPolicy.BEST_EFFORT, DurabilityPolicy.VOLATILE)]
    info_qos = {(i.qos_profile.reliability, i.qos_profile.durability)
                for i in tester.node.get_subscriptions_info_by_topic(f'{NS}/audio_info')}
    assert info_qos == {(ReliabilityPolicy.RELIABLE, DurabilityPolicy.TRANSIENT_LOCAL),
                        (ReliabilityPolicy.BEST_EFFORT, DurabilityPolicy.VOLATILE)}
    tester.wait_for(lambda: 'audio: 1 channel(s), 16000 Hz, S16LE' in node.output(), 20,
                    'the latched AudioInfo to arrive')

    # LabelInfo: once per task, transient local (this subscriber comes late), class names of the bundle
    for task, labels in (('gesture', GESTURES), ('speech', EMOTIONS), ('emotion', EMOTIONS)):
        late = tester.subscribe(LabelInfo, f'{NODE}/{task}/label_info', H.latched_qos())
        tester.wait_for(lambda: late, 20, f'{task} LabelInfo')
        tester.spin(0.2)
        assert len(late) == 1 and [c.class_name for c in late[0].class_map] == labels
        assert [c.class_id for c in late[0].class_map] == list(range(len(labels)))

    # best effort into a queue of 7: published at real time so that none is lost on the way
    stream.play(4.0, speech_at_s=0.8, speed=1.0)
    tester.wait_for(lambda: len(results['gesture']) >= 30 and results['speech'] and results['emotion'], 30,
                    'gesture, speech and emotion Classifications')
    tester.spin(1.0)
    gestures = results['gesture']
    stamps = [H.stamp_ns(m.header) for m in gestures]
    assert stamps == sorted(stamps) and set(stamps) <= set(stream.skeleton_stamps)
    for msg in gestures:
        assert msg.header.frame_id in ('kinect', 'camera')
        scores = [h.score for h in msg.results]
        assert sorted({h.class_id for h in msg.results}) == sorted(GESTURES)
        assert scores == sorted(scores, reverse=True) and abs(sum(scores) - 1.0) < 1e-4

    # CentralNet fusion weights: (level, source, raw/share) with labelled dimensions
    tester.wait_for(lambda: len(weights['gesture']) == len(gestures), 10, 'one fusion_weights per decision')
    w = weights['gesture'][0]
    dims = [(d.label, d.size, d.stride) for d in w.layout.dim]
    assert dims == [('level=1,2,output', 3, 18), ('source=skeleton,frames,central', 3, 6), ('value=raw,share', 2, 2)]
    expected = load_bundle(bundles['gesture']).model.fusion_weights()
    data = np.asarray(w.data, np.float32).reshape(3, 3, 2)
    for i, level in enumerate(expected['levels']):
        for j, source in enumerate(['skeleton', 'frames', 'central']):
            np.testing.assert_allclose(data[i, j], [level['raw'].get(source, 0.0), level['share'].get(source, 0.0)],
                                       rtol=1e-6)
    assert data[0, 2].tolist() == [0.0, 0.0]                         # no central input at level 1
    assert weights['emotion'] == []                                  # unimodal bundle: no fusion weights

    # one utterance -> one speech_end decision per audio task, stamped at the end of the speech
    onset = T0 + int(0.8 * 1e9)
    end = onset + recordings['speech'].size * 1_000_000_000 // SR
    for task in ('speech', 'emotion'):
        assert len(results[task]) == 1, task
        assert onset < H.stamp_ns(results[task][0].header) <= end + 400_000_000
        assert results[task][0].header.frame_id == 'microphone'
    # ROS4HRI: the emotion as an Expression (label_map applied), the speech as LiveSpeech
    emotion = results['emotion'][0]
    tester.wait_for(lambda: expression and live_speech, 10, 'the ROS4HRI messages')
    assert len(expression) == 1 and expression[0].header == emotion.header
    top = emotion.results[0]
    assert expression[0].expression == LABEL_MAP.get(top.class_id, top.class_id)
    assert expression[0].confidence == pytest.approx(top.score, rel=1e-6)
    assert len(live_speech) == 1 and live_speech[0].final in {LABEL_MAP.get(x, x) for x in EMOTIONS}

    names = {'fusion_node: runtime', 'fusion_node: input image', 'fusion_node: input skeleton',
             'fusion_node: input audio', 'fusion_node: task gesture', 'fusion_node: task speech',
             'fusion_node: task emotion'}
    tester.wait_for(lambda: names <= set(statuses(diagnostics)), 10, 'every diagnostic status')
    task = wait_status(tester, diagnostics, 'fusion_node: task gesture', lambda s: int(values(s)['decisions']) >= 30)
    gesture = values(task)
    assert gesture['latency p50 (ms)'] != '-'
    assert float(gesture['decision rate (Hz, header time)']) == pytest.approx(10.0, rel=0.05)
    status = statuses(diagnostics)
    assert status['fusion_node: input skeleton'].level == DiagnosticStatus.OK
    assert values(status['fusion_node: runtime'])['device'] == 'cpu'
    assert node.interrupt() == 0
    assert node_errors(node.output()) == []


@pytest.mark.needs_data('emodb', 'mnist')
def test_bad_messages_are_counted_and_the_node_goes_on(fusion, tester, bundles, recordings):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    from vision_msgs.msg import Classification

    node = fusion(params_of(bundles, tasks=('gesture',)))
    results = tester.subscribe(Classification, f'{NODE}/gesture', qos(True))
    diagnostics = tester.subscribe(DiagnosticArray, '/diagnostics', qos(True))
    bring_up(tester)
    stream = Stream(tester, recordings)
    stream.wait_for_node()
    stream.play(1.0, audio=False)
    tester.wait_for(lambda: results, 20, 'gesture decisions')
    t = T0 + 2 * 1_000_000_000
    truncated = M.build_image(ros_message, recordings['digits'][0], encoding='mono8', stamp_ns=t)
    truncated.data = truncated.data[:-7]
    stream.image.publish(truncated)                                  # data shorter than step x height
    odd = M.build_image(ros_message, recordings['digits'][0], encoding='mono8', stamp_ns=t + 1)
    odd.encoding = 'yuv422'                                          # an encoding the runtime does not read
    stream.image.publish(odd)
    stream.skeleton.publish(M.build_pose_array(ros_message, np.zeros((7, 3), np.float32), stamp_ns=t))  # 7 joints
    nan = M.build_pose_array(ros_message, joints(0), stamp_ns=t)
    nan.poses[4].position.x = float('nan')
    stream.skeleton.publish(nan)
    tester.spin(0.5)
    before = len(results)
    stream.play(1.0, start_ns=T0 + 3_000_000_000, audio=False)        # good data again
    tester.wait_for(lambda: len(results) >= before + 8, 20, 'decisions after the bad messages')
    assert tester.state(NODE) == 'active'
    skeleton = wait_status(tester, diagnostics, 'fusion_node: input skeleton',
                           lambda s: values(s).get('malformed') == 'nan: 1, size: 1', what='the malformed skeletons')
    assert skeleton.level == DiagnosticStatus.WARN and 'malformed or dropped' in skeleton.message
    image = wait_status(tester, diagnostics, 'fusion_node: input image',
                        lambda s: values(s).get('malformed') == 'encoding: 1, size: 1', what='the malformed images')
    assert image.level == DiagnosticStatus.WARN
    n = len(diagnostics)                                             # the next report has nothing new: back to OK
    wait_status(tester, diagnostics, 'fusion_node: input skeleton', lambda s: s.level == DiagnosticStatus.OK,
                what='the skeleton input back to OK', after=n)
    assert node.interrupt() == 0
    out = node.output()
    assert 'Traceback' not in out and '[FATAL]' not in out


@pytest.mark.needs_data('emodb', 'mnist')
def test_silent_input_diagnostics_name_the_reliability_mismatch(fusion, tester, bundles, recordings):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    from vision_msgs.msg import Classification

    node = fusion(params_of(bundles, tasks=('gesture',), input_timeout_s=0.1))   # subscribes reliably
    results = tester.subscribe(Classification, f'{NODE}/gesture', qos(True))
    diagnostics = tester.subscribe(DiagnosticArray, '/diagnostics', qos(True))
    bring_up(tester)
    best_effort = Stream(tester, recordings, reliable=False)         # camera-driver publishers
    tester.spin(2.0)                                                 # discovery; DDS never matches the two
    assert best_effort.skeleton.get_subscription_count() == 0
    best_effort.play(1.5, audio=False)
    tester.spin(0.5)
    assert results == []                                             # nothing arrives, silently
    skeleton = wait_status(tester, diagnostics, 'fusion_node: input skeleton', lambda s: 'no data' in s.message)
    assert skeleton.level == DiagnosticStatus.WARN and 'best-effort publisher' in skeleton.message
    assert skeleton.hardware_id == 'cpu'
    reliable = Stream(tester, recordings, reliable=True)              # a reliable publisher is heard
    reliable.wait_for_node()
    reliable.play(1.5, audio=False)
    tester.wait_for(lambda: results, 20, 'decisions from the reliable publisher')
    assert node.interrupt() == 0 and node_errors(node.output()) == []


@pytest.mark.needs_data('emodb', 'mnist')
def test_deactivate_and_cleanup_release_everything(fusion, tester, bundles, recordings):
    from diagnostic_msgs.msg import DiagnosticArray
    from vision_msgs.msg import Classification

    node = fusion(params_of(bundles))

    def graph():
        seen = tester.topics_of('fusion_node', NS)           # None until the tester's graph has discovered it
        if seen is None:
            return None
        subs, pubs = seen
        return ({t for t in subs if not t.endswith('/transition_event')},
                pubs - {'/rosout', '/parameter_events', f'{NODE}/transition_event'})

    speech = tester.subscribe(Classification, f'{NODE}/speech', qos(True))
    diagnostics = tester.subscribe(DiagnosticArray, '/diagnostics', qos(True))
    assert tester.state(NODE, timeout=90) == 'unconfigured'
    tester.wait_for(lambda: graph() == (set(), {'/diagnostics'}), 20, 'the node in the ROS graph')
    assert tester.transition(NODE, 'configure')
    tester.spin(1.0)
    assert graph() == (set(), {'/diagnostics'})
    assert tester.transition(NODE, 'activate')
    inputs = {f'{NS}/image', f'{NS}/skeleton', f'{NS}/audio', f'{NS}/audio_info'}
    outputs = {f'{NODE}/{t}{leaf}' for t in ('gesture', 'speech', 'emotion')
               for leaf in ('', '/label_info', '/fusion_weights', '/events')}
    tester.wait_for(lambda: graph() == (inputs, outputs | {'/diagnostics'}), 20, 'the subscriptions and publishers')
    stream = Stream(tester, recordings)
    stream.publish_audio_info()
    stream.wait_for_node(stream.audio)
    stream.play(2.2, speech_at_s=0.2)                                # the utterance is still open at the end
    chunks = int(2.2 * SR) // CHUNK
    wait_status(tester, diagnostics, 'fusion_node: input audio', lambda s: values(s)['accepted'] == str(chunks),
                what=f'all {chunks} audio messages taken in')
    tester.spin(0.5)
    assert speech == []
    assert tester.transition(NODE, 'deactivate')
    tester.wait_for(lambda: speech, 10, 'the pending decision published at deactivate', node)
    assert len(speech) == 1
    tester.wait_for(lambda: graph() == (set(), {'/diagnostics'}), 20, 'subscriptions and publishers released')
    assert tester.transition(NODE, 'cleanup')
    n = len(diagnostics)
    wait_status(tester, diagnostics, 'fusion_node: runtime', lambda s: 'unconfigured' in s.message, after=n)
    tester.spin(1.0)
    assert set(statuses(diagnostics, after=len(diagnostics) - 1)) == {'fusion_node: runtime'}
    # and it comes back
    assert tester.transition(NODE, 'configure') and tester.transition(NODE, 'activate')
    tester.wait_for(lambda: graph() == (inputs, outputs | {'/diagnostics'}), 20, 'subscribed again')
    assert node.interrupt() == 0 and node_errors(node.output()) == []


def test_cuda_absent_fails_configure_or_falls_back_as_the_parameter_says(fusion, tester, bundles):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

    no_gpu = H.node_env(CUDA_VISIBLE_DEVICES='')                      # a GPU machine too: CUDA is absent here
    diagnostics = tester.subscribe(DiagnosticArray, '/diagnostics', qos(True))
    strict = fusion(params_of(bundles, tasks=('gesture',), device='cuda', on_device_failure='error'), env=no_gpu)
    assert tester.state(NODE, timeout=90) == 'unconfigured'
    assert not tester.transition(NODE, 'configure')
    assert tester.state(NODE) == 'unconfigured'
    status = wait_status(tester, diagnostics, 'fusion_node: runtime', lambda s: 'CUDA' in s.message)
    assert status.level == DiagnosticStatus.ERROR
    errors = node_errors(strict.output())
    assert len(errors) == 1 and 'cuda' in errors[0] and 'CUDA is not available' in errors[0], errors
    assert 'on_device_failure:=fallback_cpu' in errors[0]
    assert strict.interrupt() == 0

    fallback = fusion(params_of(bundles, tasks=('gesture',), device='cuda'), ns='/other', env=no_gpu)
    bring_up(tester, '/other/fusion_node', activate=False)
    out = fallback.output()
    assert 'running on cpu' in out and 'fallback_cpu' in out and '[WARN]' in out
    assert fallback.interrupt() == 0


def test_configure_errors_are_logged_and_main_exits_cleanly(fusion, tester, bundles, tmp_path):
    # a bundle that does not exist: configure fails with one line, ros2 run exits 1 without a traceback
    missing = fusion(params_of(bundles, tasks=('gesture',), **{'gesture.bundle': str(tmp_path / 'nowhere')}),
                     managed=False)
    assert missing.wait(120) == 1
    out = missing.output()
    (error, fatal) = node_errors(out)
    assert 'nowhere' in error and '<task>.bundle' in error and 'configure failed' in fatal
    assert 'Traceback' not in out
    # skeleton2d needs hri_msgs: on a machine without it configure says so (hri_msgs hidden from the node)
    hidden = tmp_path / 'no_hri'
    (hidden / 'hri_msgs').mkdir(parents=True)
    (hidden / 'hri_msgs' / '__init__.py').write_text("raise ImportError('No module named hri_msgs')\n")
    env = H.node_env()
    env['PYTHONPATH'] = f'{hidden}:{env["PYTHONPATH"]}'
    node = fusion(params_of(bundles, tasks=('gesture',), skeleton_type='skeleton2d'), ns='/nohri', env=env)
    assert tester.state('/nohri/fusion_node', timeout=90) == 'unconfigured'
    assert not tester.transition('/nohri/fusion_node', 'configure')
    assert any('hri_msgs' in line for line in node_errors(node.output())), node.output()
    assert node.interrupt() == 0


@pytest.mark.needs_data('emodb', 'mnist')
def test_audio_waits_for_audio_info_or_uses_a_declared_fallback(fusion, tester, bundles, recordings):
    from diagnostic_msgs.msg import DiagnosticArray
    from vision_msgs.msg import Classification

    diagnostics = tester.subscribe(DiagnosticArray, '/diagnostics', qos(True))
    waiting = fusion(params_of(bundles, tasks=('emotion',)))
    emotion = tester.subscribe(Classification, f'{NODE}/emotion', qos(True))
    bring_up(tester)
    stream = Stream(tester, recordings)                               # no AudioInfo at all
    stream.wait_for_node(stream.audio)
    stream.play(2.5, speech_at_s=0.3)
    audio = wait_status(tester, diagnostics, 'fusion_node: input audio',
                        lambda s: 'before an AudioInfo arrived' in s.message)
    assert 'no_format' in values(audio)['dropped'] and emotion == []
    assert waiting.interrupt() == 0
    # with the fallback parameters (audio_info.*) audio is read at once
    fallback = fusion(params_of(bundles, tasks=('emotion',), **{'audio_info.sample_rate': SR}), ns='/fallback')
    results = tester.subscribe(Classification, '/fallback/fusion_node/emotion', qos(True))
    bring_up(tester, '/fallback/fusion_node')
    stream = Stream(tester, recordings, ns='/fallback')
    stream.wait_for_node(stream.audio)
    stream.play(2.5, speech_at_s=0.3)
    tester.wait_for(lambda: results, 20, 'the emotion decision')
    tester.spin(0.5)
    assert len(results) == 1
    assert fallback.interrupt() == 0 and node_errors(fallback.output()) == []


@pytest.mark.needs_data('emodb', 'mnist')
def test_compressed_images_and_naoqi_audio(fusion, tester, bundles, recordings):
    from geometry_msgs.msg import PoseArray
    from naoqi_bridge_msgs.msg import AudioBuffer
    from sensor_msgs.msg import CompressedImage
    from vision_msgs.msg import Classification

    node = fusion(params_of(bundles, tasks=('gesture', 'emotion'), image_transport='compressed',
                            audio_type='naoqi_audio_buffer'))
    results = {t: tester.subscribe(Classification, f'{NODE}/{t}', qos(True)) for t in ('gesture', 'emotion')}
    bring_up(tester)
    tester.wait_for(lambda: len((tester.topics_of('fusion_node', NS) or ((),))[0]) >= 3, 20, 'the subscriptions')
    types = {t: ty for t, ty in tester.node.get_subscriber_names_and_types_by_node('fusion_node', NS)
             if not t.endswith('transition_event')}
    assert types == {f'{NS}/image/compressed': ['sensor_msgs/msg/CompressedImage'],
                     f'{NS}/skeleton': ['geometry_msgs/msg/PoseArray'],
                     f'{NS}/audio': ['naoqi_bridge_msgs/msg/AudioBuffer']}  # no audio_info: AudioBuffer has its rate
    image = tester.node.create_publisher(CompressedImage, f'{NS}/image/compressed', qos(True))
    skeleton = tester.node.create_publisher(PoseArray, f'{NS}/skeleton', qos(True))
    audio = tester.node.create_publisher(AudioBuffer, f'{NS}/audio', qos(True))
    for publisher in (image, skeleton, audio):
        tester.wait_for(lambda: publisher.get_subscription_count() > 0, 20, f'a subscriber on {publisher.topic_name}')
    signal = np.zeros(3 * SR, np.float32)
    signal[SR // 2: SR // 2 + recordings['speech'].size] = recordings['speech'][: 5 * SR // 2]
    events = []
    for k in range(30):
        t = T0 + k * FRAME_NS
        events.append((t, skeleton, M.build_pose_array(ros_message, joints(k), stamp_ns=t, frame_id='kinect')))
        png = M.build_compressed_image(ros_message, recordings['digits'][k], format='png', stamp_ns=t - 1,
                                       frame_id='camera')
        events.append((t - 1, image, png))
    for i in range(0, signal.size, 1365):                              # buffers of an odd size, 16 kHz mono
        t = T0 + i * 1_000_000_000 // SR
        events.append((t, audio, M.build_naoqi_audio(ros_message, signal[i:i + 1365, None], frequency=SR,
                                                     stamp_ns=t, frame_id='naoqi')))
    play_sorted(tester, sorted(events, key=lambda e: e[0]))
    tester.wait_for(lambda: len(results['gesture']) >= 25 and results['emotion'], 20, 'gesture and emotion decisions')
    tester.spin(0.5)
    assert len(results['emotion']) == 1 and results['emotion'][0].header.frame_id == 'naoqi'
    assert node.interrupt() == 0 and node_errors(node.output()) == []


@pytest.mark.needs_data('emodb', 'mnist')
def test_bundle_parameter_and_service_hot_swap_the_model_and_refuse_a_bad_one(
        fusion, tester, bundles, recordings, tmp_path):
    """A new <task>.bundle is swapped in while the node keeps publishing; a corrupt one is refused, the old kept."""
    from centralnet_ros.bundle.io import bundle_sha256
    from diagnostic_msgs.msg import DiagnosticArray
    from std_srvs.srv import Trigger
    from vision_msgs.msg import Classification, LabelInfo

    base = load_bundle(bundles['gesture'])
    with torch.no_grad():
        for p in base.model.parameters():
            p.mul_(-1.0)
    other = save_bundle(tmp_path / 'gesture2', base.model,
                        dataclasses.replace(base.manifest, labels=['left', 'right', 'still'], label_map={}))
    corrupt = tmp_path / 'corrupt'
    shutil.copytree(other, corrupt)
    (corrupt / 'model.safetensors').write_bytes(b'\0' * 64)

    node = fusion(params_of(bundles, tasks=('gesture',)))
    results = tester.subscribe(Classification, f'{NODE}/gesture', qos(True))
    infos = tester.subscribe(LabelInfo, f'{NODE}/gesture/label_info', H.latched_qos().__class__(
        depth=10, reliability=H.latched_qos().reliability, durability=H.latched_qos().durability))
    diagnostics = tester.subscribe(DiagnosticArray, '/diagnostics', qos(True))
    bring_up(tester)
    stream = Stream(tester, recordings)
    stream.wait_for_node()

    def sha():
        status = statuses(diagnostics).get('fusion_node: task gesture')
        return values(status).get('bundle sha256') if status is not None else None

    stream.play(1.0, audio=False)
    tester.wait_for(lambda: results and sha() == bundle_sha256(bundles['gesture']), 20, 'decisions of the first bundle')
    assert {r.results[0].class_id for r in results} <= set(GESTURES)
    ok = tester.set_parameter(NODE, 'gesture.bundle', str(other))
    assert ok.successful, ok.reason
    tester.wait_for(lambda: infos and infos[-1].class_map[0].class_name == 'left', 10, 'LabelInfo of the new bundle')
    n = len(results)
    stream.play(1.0, start_ns=T0 + 1_000_000_000, audio=False)
    tester.wait_for(lambda: len(results) > n + 5, 20, 'decisions after the swap')
    assert {r.results[0].class_id for r in results[n:]} <= {'left', 'right', 'still'}    # kept publishing
    tester.wait_for(lambda: sha() == bundle_sha256(other), 10, 'the new sha256 in the diagnostics')

    bad = tester.set_parameter(NODE, 'gesture.bundle', str(corrupt))
    assert not bad.successful and 'refused, keeping' in bad.reason and str(other) in bad.reason
    assert tester.get_parameter(NODE, 'gesture.bundle') == str(other)
    n = len(results)
    stream.play(0.6, start_ns=T0 + 2_000_000_000, audio=False)
    tester.wait_for(lambda: len(results) > n, 20, 'decisions after the refused bundle')
    assert {r.results[0].class_id for r in results[n:]} <= {'left', 'right', 'still'}   # the old one still runs
    tester.spin(1.2)
    assert sha() == bundle_sha256(other)

    # ~/reload_bundles: an unchanged bundle is left alone; one rewritten in place is reloaded
    response = tester.call(Trigger, f'{NODE}/reload_bundles', Trigger.Request())
    assert response.success and 'unchanged' in response.message
    save_bundle(other, load_bundle(bundles['gesture']).model,
                dataclasses.replace(base.manifest, labels=['up', 'down', 'still'], label_map={}))
    response = tester.call(Trigger, f'{NODE}/reload_bundles', Trigger.Request())
    assert response.success and 'gesture' in response.message, response.message
    tester.wait_for(lambda: infos[-1].class_map[0].class_name == 'up', 10, 'LabelInfo of the reloaded bundle')
    assert [c.class_name for c in infos[-1].class_map] == ['up', 'down', 'still']
    # and a corrupt rewrite in place is refused by the service, the running model kept
    (other / 'model.safetensors').write_bytes(b'\0' * 64)
    response = tester.call(Trigger, f'{NODE}/reload_bundles', Trigger.Request())
    assert not response.success and 'refused, keeping' in response.message
    n = len(results)
    stream.play(0.6, start_ns=T0 + 3_000_000_000, audio=False)
    tester.wait_for(lambda: len(results) > n, 20, 'decisions after the refused reload')
    assert {r.results[0].class_id for r in results[n:]} <= {'up', 'down', 'still'}
    assert node.interrupt() == 0
    assert 'Traceback' not in node.output()


def _in_process_node(tester, namespace: str, params: dict, *, humble: bool = False):
    """Create the node in this process on real rclpy, spun by the tester's executor (``humble``: no post-set hook)."""
    from centralnet_ros.ros import fusion_node as F
    from rclpy.parameter import Parameter
    cls = F.FusionNode
    if humble:                          # rclpy < Iron: only the on-set callback (validate, then apply)
        class HumbleFusionNode(F.FusionNode):

            def __getattribute__(self, name):
                if name == 'add_post_set_parameters_callback':
                    raise AttributeError(name)
                return super().__getattribute__(name)
        cls = HumbleFusionNode
    node = cls(namespace=namespace, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    tester.executor.add_node(node)
    return node


@pytest.mark.needs_data('emodb', 'mnist')
@pytest.mark.parametrize('distro', ['humble', 'jazzy'])
def test_threshold_changes_at_run_time(tester, bundles, recordings, distro):
    """Through the real parameter services; ``humble`` takes the on-set callback branch rclpy < Iron needs."""
    from vision_msgs.msg import Classification, LabelInfo
    ns = f'/thr_{distro}'
    name = f'{ns}/fusion_node'
    node = _in_process_node(tester, ns, params_of(bundles, tasks=('gesture',)), humble=distro == 'humble')
    try:
        assert hasattr(node, 'add_post_set_parameters_callback') == (distro == 'jazzy')
        results = tester.subscribe(Classification, f'{name}/gesture', qos(True))
        infos = tester.subscribe(LabelInfo, f'{name}/gesture/label_info', H.latched_qos().__class__(
            depth=10, reliability=H.latched_qos().reliability, durability=H.latched_qos().durability))
        assert tester.transition(name, 'configure') and tester.transition(name, 'activate')
        stream = Stream(tester, recordings, ns=ns)
        stream.wait_for_node()
        stream.play(1.0, audio=False)
        tester.wait_for(lambda: results, 20, 'decisions')
        tester.spin(0.5)
        n = len(results)
        result = tester.set_parameter(name, 'gesture.score_threshold', 1.0)
        assert result.successful, result.reason
        assert node._perception.threshold('gesture') == 1.0
        tester.wait_for(lambda: [i.threshold for i in infos] == [0.0, 1.0], 10, 'LabelInfo with the new threshold')
        decided = node._perception.stats()['tasks']['gesture']['decisions']
        stream.play(1.0, start_ns=T0 + 1_000_000_000, audio=False)
        tester.wait_for(lambda: node._perception.stats()['tasks']['gesture']['decisions'] > decided + 5, 20,
                        'decisions under the new threshold')
        tester.spin(0.3)
        assert len(results) == n                                      # nothing reaches a score of 1
        bad = tester.set_parameter(name, 'gesture.score_threshold', 1.5)
        assert not bad.successful and node._perception.threshold('gesture') == 1.0
        read_only = tester.set_parameter(name, 'device', 'cuda')
        assert not read_only.successful and 'read-only' in read_only.reason
        # a threshold set before configure is read at configure
        assert tester.transition(name, 'deactivate') and tester.transition(name, 'cleanup')
        assert tester.set_parameter(name, 'gesture.score_threshold', 0.25).successful
        assert tester.transition(name, 'configure') and node._perception.threshold('gesture') == 0.25
    finally:
        tester.executor.remove_node(node)
        node.destroy_node()


@pytest.mark.parametrize('distro', ['humble', 'jazzy'])
def test_forget_voice_parameter_drops_the_adaptation_statistics(tester, distro):
    """Through the real parameter service; the statistics per voice are looked at inside the runtime."""
    ns = f'/voice_{distro}'
    name = f'{ns}/fusion_node'
    node = _in_process_node(tester, ns, {'tasks': ['emotion'], 'emotion.bundle': str(H.MODELS / 'emotion'),
                                         'voice_id': 'alice', 'emotion.decision_process': False},   # stats here
                            humble=distro == 'humble')
    try:
        assert tester.transition(name, 'configure')
        perception = node._perception
        (plan,) = perception.tasks['emotion'].plans
        assert plan.adaptation is not None and plan.adaptation.adapting    # the shipped bundle adapts per voice
        assert perception._voice_ids == {'*': 'alice'}                     # the node's voice_id is the speaker
        for voice in ('alice', 'bob'):
            plan.adaptation.observe(np.asarray(plan.adaptation.norm.prior_mean), voice_id=voice)
        assert set(plan.adaptation.voices()) == {'alice', 'bob'}
        assert tester.set_parameter(name, 'forget_voice', 'alice').successful
        assert set(plan.adaptation.voices()) == {'bob'}
        assert tester.set_parameter(name, 'forget_voice', '*').successful
        assert plan.adaptation.voices() == {}
        bad = tester.set_parameter(name, 'forget_voice', 'no such/id')
        assert not bad.successful and 'forget_voice' in bad.reason         # not a voice id: refused, named
    finally:
        tester.executor.remove_node(node)
        node.destroy_node()


def test_configure_puts_the_loaded_models_beyond_the_garbage_collector(tester):
    """
    After configure the bundles' objects are frozen (``gc.freeze``): a full collection while active does not walk them.

    A full collection holds the GIL for the whole walk, stalling the callbacks and the gesture
    decisions (benchmarks/results/gc_pause.md); the objects ``gc.get_objects()`` lists are those
    a collection walks.
    """
    import gc
    ns = '/gc_freeze'
    name = f'{ns}/fusion_node'
    node = _in_process_node(tester, ns, {'tasks': ['emotion'], 'emotion.bundle': str(H.MODELS / 'emotion'),
                                         'emotion.decision_process': False})            # the model in this heap
    try:
        gc.unfreeze()
        assert tester.transition(name, 'configure')
        model = node._perception.models['emotion']
        walked = {id(o) for o in gc.get_objects()}
        assert gc.is_tracked(model) and id(model) not in walked and id(node._perception) not in walked
        assert gc.get_freeze_count() > 100_000                  # modules, torch, the ONNX session: all of it
        # configure again after cleanup: the old runtime is freed, the new one frozen in its turn
        assert tester.transition(name, 'cleanup') and tester.transition(name, 'configure')
        assert id(node._perception.models['emotion']) not in {id(o) for o in gc.get_objects()}
    finally:
        tester.executor.remove_node(node)
        node.destroy_node()
        gc.unfreeze()


@pytest.mark.gpu
@pytest.mark.needs_data('emodb', 'mnist')
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_device_runs_and_cleanup_frees_its_memory(tester, bundles, recordings):
    """In this process, so that the GPU memory the node's models hold can be read."""
    from vision_msgs.msg import Classification
    import gc
    torch.cuda.empty_cache()
    baseline = torch.cuda.memory_allocated()
    node = _in_process_node(tester, '/gpu', params_of(bundles, tasks=('gesture',), device='cuda',
                                                      on_device_failure='error'))
    try:
        results = tester.subscribe(Classification, '/gpu/fusion_node/gesture', qos(True))
        assert tester.transition('/gpu/fusion_node', 'configure')
        assert tester.transition('/gpu/fusion_node', 'activate')
        assert node._perception.device.startswith('cuda') and torch.cuda.memory_allocated() > baseline
        stream = Stream(tester, recordings, ns='/gpu')
        stream.wait_for_node()
        stream.play(1.5, audio=False)
        tester.wait_for(lambda: len(results) >= 10, 20, 'gesture decisions on the GPU')
        assert tester.transition('/gpu/fusion_node', 'deactivate') and tester.transition('/gpu/fusion_node', 'cleanup')
        gc.collect()
        assert torch.cuda.memory_allocated() == baseline                 # the models left the GPU
    finally:
        tester.executor.remove_node(node)
        node.destroy_node()
