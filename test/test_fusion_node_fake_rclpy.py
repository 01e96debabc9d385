"""
fusion_node driven in-process on the FAKE rclpy of ``test/fake_rclpy.py``.

rclpy cannot be installed here, so these tests run the real node class
(``centralnet_ros.ros.fusion_node.FusionNode``) on the fake rclpy and message modules
that a fixture puts into ``sys.modules`` for the duration of one test.  The runtime
underneath is the real one (bundles saved here, Perception, ONNX Runtime), fed with
real recordings (EmoDB speech, MNIST digits as camera frames) converted into messages
by :mod:`centralnet_ros.messages` builders.  What the fake cannot show (DDS, QoS
beyond reliability/durability, launch, executors) is covered by
``test/test_ros_nodes.py`` where ROS 2 is installed.
"""
from __future__ import annotations

import importlib
import math
from pathlib import Path
import sys

from centralnet_ros import messages as M
from centralnet_ros import node_params as NP
from centralnet_ros.bundle import load_bundle, Manifest, ModalitySpec, save_bundle
from centralnet_ros.encoders import EncoderConfig
from centralnet_ros.fusion import build_model, FusionConfig
import fake_rclpy
import numpy as np
import pytest
import torch

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


def joints(k: int) -> np.ndarray:
    """Return a standing 20-joint Kinect skeleton (metres) waving its right hand."""
    j = np.zeros((20, 3), np.float32)
    j[:, 1] = np.linspace(0.0, 1.0, 20)
    j[11] = [0.3 * math.sin(0.4 * k), 0.8, 0.1]
    j[:, 2] += 2.0
    return j


# --------------------------------------------------------------------------- the fake ROS

NODE_MODULES = ('fusion_node', 'interfaces', 'diagnostics')


class InlineWorker:
    """Decide inside the callback (the fake has no threads to wait for; the real worker: test_worker.py)."""

    def __init__(self, perception, on_results, **_):
        self.perception, self.on_results = perception, on_results
        self.dropped = self.errors = 0

    def submit(self, due):
        results = self.perception.decide(due)
        if results:
            self.on_results(results)

    def drain(self, timeout=None):
        return True

    def stop(self, timeout=None):
        return True


@pytest.fixture
def ros(monkeypatch):
    """``start(**install_options) -> (fake, fusion_node module)``: fake rclpy installed for this test only."""
    started = []

    def start(**options):
        fake = fake_rclpy.install(monkeypatch, **options)
        for name in NODE_MODULES:                    # they cache message classes of the fake
            sys.modules.pop(f'centralnet_ros.ros.{name}', None)
        module = importlib.import_module('centralnet_ros.ros.fusion_node')
        monkeypatch.setattr(module, 'DecisionWorker', InlineWorker)
        sys.modules['rclpy'].init(args=[])
        started.append(fake)
        return fake, module

    yield start
    for fake in started:
        for node in fake.nodes:
            if not node.destroyed:
                node.destroy_node()
    import centralnet_ros.ros as package
    for name in NODE_MODULES:
        sys.modules.pop(f'centralnet_ros.ros.{name}', None)
        package.__dict__.pop(name, None)


def make_node(fake, module, **params):
    overrides = [fake_rclpy.Parameter(name, value=value) for name, value in params.items()]
    return module.FusionNode(namespace=NS, parameter_overrides=overrides)


def sensor_qos():
    return fake_rclpy.QoSProfile(depth=5, reliability=fake_rclpy.ReliabilityPolicy.BEST_EFFORT)


def latched_qos():
    return fake_rclpy.QoSProfile(depth=1, durability=fake_rclpy.DurabilityPolicy.TRANSIENT_LOCAL)


class Stream:
    """Test-side publishers (best effort, like camera and audio drivers) and the recorded messages."""

    def __init__(self, fake, recordings, *, reliability=fake_rclpy.ReliabilityPolicy.BEST_EFFORT):
        qos = fake_rclpy.QoSProfile(depth=5, reliability=reliability)
        self.fake, self.rec = fake, recordings
        self.image = fake.graph.publisher(fake.msg('sensor_msgs/msg/Image'), f'{NS}/image', qos)
        self.skeleton = fake.graph.publisher(fake.msg('geometry_msgs/msg/PoseArray'), f'{NS}/skeleton', qos)
        self.audio = fake.graph.publisher(fake.msg('audio_common_msgs/msg/AudioDataStamped'), f'{NS}/audio', qos)
        self.audio_info = fake.graph.publisher(fake.msg('audio_common_msgs/msg/AudioInfo'), f'{NS}/audio_info',
                                               latched_qos())
        self.skeleton_stamps: list[int] = []

    def publish_audio_info(self):
        _, info = M.build_audio(self.fake.factory, np.zeros((CHUNK, 1), np.float32), sample_rate=SR, stamp_ns=T0)
        self.audio_info.publish(info)

    def play(self, seconds: float, *, start_ns: int = T0, speech_at_s: float | None = None):
        """Publish ``seconds`` of camera, skeleton and audio in header-stamp order."""
        events = []
        for k in range(int(seconds * 1e9) // FRAME_NS):
            t = start_ns + k * FRAME_NS
            events.append((t, 0, self.skeleton, M.build_pose_array(self.fake.factory, joints(k), stamp_ns=t,
                                                                   frame_id='kinect')))
            digit = self.rec['digits'][k % len(self.rec['digits'])]
            events.append((t - FRAME_NS // 2, 1, self.image, M.build_image(
                self.fake.factory, digit, encoding='mono8', stamp_ns=t - FRAME_NS // 2, frame_id='camera')))
            self.skeleton_stamps.append(t)
        signal = np.zeros(int(seconds * SR), np.float32)
        if speech_at_s is not None:
            speech = self.rec['speech'][: signal.size - int(speech_at_s * SR)]
            signal[int(speech_at_s * SR): int(speech_at_s * SR) + speech.size] = speech
        for i in range(0, signal.size - CHUNK + 1, CHUNK):
            t = start_ns + i * 1_000_000_000 // SR
            msg, _ = M.build_audio(self.fake.factory, signal[i:i + CHUNK, None], sample_rate=SR, stamp_ns=t,
                                   frame_id='microphone')
            events.append((t, 2, self.audio, msg))
        for _, _, publisher, msg in sorted(events, key=lambda e: (e[0], e[1])):
            publisher.publish(msg)


def published(fake, topic):
    return fake.graph.published(topic)


def stamp_ns(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def diagnostics(fake, node):
    """Fire the node's diagnostics timer; return {status name: status} of the DiagnosticArray."""
    for timer in list(node.timers):
        timer.fire()
    arrays = published(fake, '/diagnostics')
    assert arrays, 'no DiagnosticArray on /diagnostics'
    return {s.name: s for s in arrays[-1].status}


def values(status) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


SUCCESS = fake_rclpy.TransitionCallbackReturn.SUCCESS
FAILURE = fake_rclpy.TransitionCallbackReturn.FAILURE


def all_tasks(bundles, **extra):
    params = {'tasks': ['gesture', 'speech', 'emotion'], 'gesture.bundle': str(bundles['gesture']),
              'gesture.trigger': 'frame', 'gesture.score_threshold': 0.0, 'gesture.output': 'decisions',
              'speech.bundle': str(bundles['voice']),
              'speech.score_threshold': 0.0, 'speech.output': 'decisions', 'emotion.bundle': str(bundles['voice']),
              'emotion.score_threshold': 0.0, 'emotion.output': 'decisions'}
    params.update(extra)
    return params


# --------------------------------------------------------------------------- tests

@pytest.mark.needs_data('emodb', 'mnist')
def test_active_node_publishes_classifications_with_the_source_stamps(ros, bundles, recordings):
    fake, module = ros()
    node = make_node(fake, module, **all_tasks(bundles, publish_hri=True))
    stream = Stream(fake, recordings)
    stream.publish_audio_info()                      # latched before the node subscribes
    assert node.trigger_configure() == SUCCESS and node.trigger_activate() == SUCCESS, node.log
    assert node.lifecycle_state == 'active' and not node.transition_exceptions

    subs = {s.topic_name: s for s in node.subscriptions}
    assert set(subs) == {f'{NS}/image', f'{NS}/skeleton', f'{NS}/audio', f'{NS}/audio_info'}
    assert subs[f'{NS}/image'].qos.reliability == fake_rclpy.ReliabilityPolicy.BEST_EFFORT
    assert subs[f'{NS}/image'].qos.depth == 5                      # qos_depth
    info_qos = {(s.qos.reliability, s.qos.durability) for s in node.subscriptions if s.topic_name.endswith('_info')}
    assert info_qos == {(fake_rclpy.ReliabilityPolicy.RELIABLE, fake_rclpy.DurabilityPolicy.TRANSIENT_LOCAL),
                        (fake_rclpy.ReliabilityPolicy.BEST_EFFORT, fake_rclpy.DurabilityPolicy.VOLATILE)}
    assert ('info', 'audio: 1 channel(s), 16000 Hz, S16LE') in node.log   # the latched AudioInfo arrived

    # LabelInfo: once per task, transient local, class names of the bundle
    for task, labels in (('gesture', GESTURES), ('speech', EMOTIONS), ('emotion', EMOTIONS)):
        infos = published(fake, f'{NODE}/{task}/label_info')
        assert len(infos) == 1 and [c.class_name for c in infos[0].class_map] == labels
        assert [c.class_id for c in infos[0].class_map] == list(range(len(labels)))
    late = []
    fake.graph.add_subscription(fake_rclpy.Subscription(
        fake.msg('vision_msgs/msg/LabelInfo'), f'{NODE}/gesture/label_info', late.append, latched_qos()))
    assert len(late) == 1                                            # a late subscriber still gets it

    stream.play(4.0, speech_at_s=0.8)

    gestures = published(fake, f'{NODE}/gesture')
    assert len(gestures) >= 30                                       # one per skeleton frame (frame trigger)
    stamps = [stamp_ns(m.header) for m in gestures]
    assert stamps == sorted(stamps) and set(stamps) <= set(stream.skeleton_stamps)
    for msg in gestures:
        assert msg.header.frame_id in ('kinect', 'camera')
        scores = [h.score for h in msg.results]
        assert sorted({h.class_id for h in msg.results}) == sorted(GESTURES)
        assert scores == sorted(scores, reverse=True) and abs(sum(scores) - 1.0) < 1e-4

    # CentralNet fusion weights: (level, source, raw/share) with labelled dimensions
    weights = published(fake, f'{NODE}/gesture/fusion_weights')
    assert len(weights) == len(gestures)
    w = weights[0]
    dims = [(d.label, d.size, d.stride) for d in w.layout.dim]
    assert dims == [('level=1,2,output', 3, 18), ('source=skeleton,frames,central', 3, 6), ('value=raw,share', 2, 2)]
    expected = load_bundle(bundles['gesture']).model.fusion_weights()
    data = np.asarray(w.data, np.float32).reshape(3, 3, 2)
    for i, level in enumerate(expected['levels']):
        for j, source in enumerate(['skeleton', 'frames', 'central']):
            np.testing.assert_allclose(data[i, j], [level['raw'].get(source, 0.0), level['share'].get(source, 0.0)],
                                       rtol=1e-6)
    assert data[0, 2].tolist() == [0.0, 0.0]                         # no central input at level 1
    assert published(fake, f'{NODE}/emotion/fusion_weights') == []   # unimodal bundle: no fusion weights

    # one utterance -> one speech_end decision per audio task, stamped at the end of the speech
    onset = T0 + int(0.8 * 1e9)
    end = onset + recordings['speech'].size * 1_000_000_000 // SR
    for task in ('speech', 'emotion'):
        results = published(fake, f'{NODE}/{task}')
        assert len(results) == 1, task
        assert onset < stamp_ns(results[0].header) <= end + 400_000_000
        assert results[0].header.frame_id == 'microphone'
    # ROS4HRI: the emotion as an Expression (label_map applied), the speech as LiveSpeech
    emotion = published(fake, f'{NODE}/emotion')[0]
    expression = published(fake, '/humans/faces/face0/expression')
    assert len(expression) == 1 and expression[0].header == emotion.header
    top = emotion.results[0]
    assert expression[0].expression == LABEL_MAP.get(top.class_id, top.class_id)
    assert expression[0].confidence == pytest.approx(top.score, rel=1e-6)
    speech = published(fake, '/humans/voices/voice0/speech')
    assert len(speech) == 1 and speech[0].final in {LABEL_MAP.get(x, x) for x in EMOTIONS}

    status = diagnostics(fake, node)
    assert {'fusion_node: runtime', 'fusion_node: input image', 'fusion_node: input skeleton',
            'fusion_node: input audio', 'fusion_node: task gesture', 'fusion_node: task speech',
            'fusion_node: task emotion'} <= set(status)
    gesture = values(status['fusion_node: task gesture'])
    assert int(gesture['decisions']) >= 30 and gesture['latency p50 (ms)'] != '-'
    assert float(gesture['decision rate (Hz, header time)']) == pytest.approx(10.0, rel=0.05)
    assert status['fusion_node: input skeleton'].level == fake.msg('diagnostic_msgs/msg/DiagnosticStatus').OK
    assert values(status['fusion_node: runtime'])['device'] == 'cpu'
    assert not [r for r in node.log if r[0] in ('error', 'fatal')], node.log


@pytest.mark.needs_data('emodb', 'mnist')
def test_bad_messages_are_counted_and_the_node_goes_on(ros, bundles, recordings):
    fake, module = ros()
    node = make_node(fake, module, **{'tasks': ['gesture'], 'gesture.bundle': str(bundles['gesture']),
                                      'gesture.trigger': 'frame', 'gesture.score_threshold': 0.0,
                                      'gesture.output': 'decisions'})
    assert node.trigger_configure() == SUCCESS and node.trigger_activate() == SUCCESS, node.log
    stream = Stream(fake, recordings)
    stream.play(1.0)
    before = len(published(fake, f'{NODE}/gesture'))
    assert before > 0
    t = T0 + 2 * 1_000_000_000
    truncated = M.build_image(fake.factory, recordings['digits'][0], encoding='mono8', stamp_ns=t)
    truncated.data = truncated.data[:-7]
    stream.image.publish(truncated)                                  # data shorter than step x height
    odd = M.build_image(fake.factory, recordings['digits'][0], encoding='mono8', stamp_ns=t + 1)
    odd.encoding = 'yuv422'                                          # an encoding the runtime does not read
    stream.image.publish(odd)
    stream.skeleton.publish(M.build_pose_array(fake.factory, np.zeros((7, 3), np.float32), stamp_ns=t))  # 7 joints
    nan = M.build_pose_array(fake.factory, joints(0), stamp_ns=t)
    nan.poses[4].position.x = float('nan')
    stream.skeleton.publish(nan)
    stream.play(1.0, start_ns=T0 + 1_000_000_000)                     # good data again
    assert len(published(fake, f'{NODE}/gesture')) >= before + 8
    assert node.lifecycle_state == 'active' and not node.transition_exceptions
    status = diagnostics(fake, node)
    image, skeleton = values(status['fusion_node: input image']), values(status['fusion_node: input skeleton'])
    assert image['malformed'] == 'encoding: 1, size: 1'
    assert skeleton['malformed'] == 'nan: 1, size: 1'
    warn = fake.msg('diagnostic_msgs/msg/DiagnosticStatus').WARN
    assert status['fusion_node: input skeleton'].level == warn
    assert 'malformed or dropped' in status['fusion_node: input skeleton'].message
    # the next report has nothing new: back to OK
    assert diagnostics(fake, node)['fusion_node: input skeleton'].level != warn


@pytest.mark.needs_data('emodb', 'mnist')
@pytest.mark.parametrize('distro', ['humble', 'jazzy'])
def test_threshold_changes_at_run_time(ros, bundles, recordings, distro):
    fake, module = ros(distro=distro)
    node = make_node(fake, module, **{'tasks': ['gesture'], 'gesture.bundle': str(bundles['gesture']),
                                      'gesture.trigger': 'frame', 'gesture.score_threshold': 0.0,
                                      'gesture.output': 'decisions'})
    assert hasattr(node, 'add_post_set_parameters_callback') == (distro == 'jazzy')
    assert node.trigger_configure() == SUCCESS and node.trigger_activate() == SUCCESS, node.log
    stream = Stream(fake, recordings)
    stream.play(1.0)
    n = len(published(fake, f'{NODE}/gesture'))
    assert n > 0
    (result,) = node.set_parameters([fake_rclpy.Parameter('gesture.score_threshold', value=1.0)])
    assert result.successful
    assert node._perception.threshold('gesture') == 1.0
    infos = published(fake, f'{NODE}/gesture/label_info')
    assert [i.threshold for i in infos] == [0.0, 1.0]                 # LabelInfo carries the new threshold
    stream.play(1.0, start_ns=T0 + 1_000_000_000)
    assert len(published(fake, f'{NODE}/gesture')) == n               # nothing reaches a score of 1
    assert node._perception.stats()['tasks']['gesture']['decisions'] > n
    # out of range, or read-only: refused, nothing changes
    (bad,) = node.set_parameters([fake_rclpy.Parameter('gesture.score_threshold', value=1.5)])
    assert not bad.successful and node._perception.threshold('gesture') == 1.0
    (ro,) = node.set_parameters([fake_rclpy.Parameter('device', value='cuda')])
    assert not ro.successful and 'read-only' in ro.reason
    # a threshold set before configure is read at configure
    assert node.trigger_deactivate() == SUCCESS and node.trigger_cleanup() == SUCCESS
    assert node.set_parameters([fake_rclpy.Parameter('gesture.score_threshold', value=0.25)])[0].successful
    assert node.trigger_configure() == SUCCESS and node._perception.threshold('gesture') == 0.25


@pytest.mark.needs_data('emodb', 'mnist')
def test_silent_input_diagnostics_name_the_reliability_mismatch(ros, bundles, recordings):
    fake, module = ros(diagnostic_updater=True)
    node = make_node(fake, module, **{'tasks': ['gesture'], 'gesture.bundle': str(bundles['gesture']),
                                      'gesture.score_threshold': 0.0, 'gesture.output': 'decisions',
                                      'qos_reliability': 'reliable',
                                      'input_timeout_s': 0.1})
    assert node.trigger_configure() == SUCCESS and node.trigger_activate() == SUCCESS, node.log
    assert all(s.qos.reliability == fake_rclpy.ReliabilityPolicy.RELIABLE
               for s in node.subscriptions if not s.topic_name.endswith('_info'))
    stream = Stream(fake, recordings)                                # best-effort publishers
    stream.play(0.5)
    assert all(s.received == 0 for s in node.subscriptions)           # nothing arrives, silently
    node._active_since -= 1.0                                         # as if active for a second
    status = diagnostics(fake, node)                                  # published by diagnostic_updater
    skeleton = status['fusion_node: input skeleton']
    assert skeleton.level == fake.msg('diagnostic_msgs/msg/DiagnosticStatus').WARN
    assert 'no data' in skeleton.message and 'best-effort publisher' in skeleton.message
    assert skeleton.hardware_id == 'cpu'
    # a reliable publisher is heard
    reliable = Stream(fake, recordings, reliability=fake_rclpy.ReliabilityPolicy.RELIABLE)
    reliable.play(1.0)
    assert len(published(fake, f'{NODE}/gesture')) > 0


@pytest.mark.needs_data('emodb', 'mnist')
def test_deactivate_and_cleanup_release_everything(ros, bundles, recordings):
    fake, module = ros()
    node = make_node(fake, module, **all_tasks(bundles))
    assert [p.topic_name for p in list(node.publishers)] == ['/diagnostics']
    assert node.trigger_configure() == SUCCESS
    assert list(node.subscriptions) == [] and [p.topic_name for p in list(node.publishers)] == ['/diagnostics']
    assert node.trigger_activate() == SUCCESS
    assert len(list(node.subscriptions)) == 5 and len(list(node.publishers)) == 1 + 3 * 3
    stream = Stream(fake, recordings)
    stream.publish_audio_info()
    stream.play(2.2, speech_at_s=0.2)                                 # the utterance is still open at the end
    assert published(fake, f'{NODE}/speech') == []
    perception = node._perception
    assert node.trigger_deactivate() == SUCCESS
    assert len(published(fake, f'{NODE}/speech')) == 1                # pending decision published at deactivate
    assert list(node.subscriptions) == [] and [p.topic_name for p in list(node.publishers)] == ['/diagnostics']
    assert not fake.graph.subscriptions_on(f'{NS}/audio')
    stream.play(0.5, start_ns=T0 + 3_000_000_000)                     # nobody listens: nothing happens
    assert node.trigger_cleanup() == SUCCESS
    assert node._perception is None and not perception.models         # models (and GPU memory) released
    with pytest.raises(RuntimeError, match='closed'):
        perception.ingest('skeleton', M.build_pose_array(fake.factory, joints(0), stamp_ns=T0))
    status = diagnostics(fake, node)
    assert set(status) == {'fusion_node: runtime'} and 'unconfigured' in status['fusion_node: runtime'].message
    # and it comes back
    assert node.trigger_configure() == SUCCESS and node.trigger_activate() == SUCCESS
    assert len(list(node.subscriptions)) == 5 and not node.transition_exceptions
    node.destroy_node()
    assert list(node.publishers) == [] and list(node.timers) == [] and node._perception is None


def test_cuda_absent_fails_configure_or_falls_back_as_the_parameter_says(ros, bundles, monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    fake, module = ros()
    node = make_node(fake, module, **{'tasks': ['gesture'], 'gesture.bundle': str(bundles['gesture']),
                                      'device': 'cuda', 'on_device_failure': 'error'})
    assert node.trigger_configure() == FAILURE
    assert node.lifecycle_state == 'unconfigured' and not node.transition_exceptions
    errors = [m for level, m in node.log if level == 'error']
    assert len(errors) == 1 and 'cuda' in errors[0] and 'CUDA is not available' in errors[0]
    assert 'on_device_failure:=fallback_cpu' in errors[0]
    status = diagnostics(fake, node)['fusion_node: runtime']
    assert status.level == fake.msg('diagnostic_msgs/msg/DiagnosticStatus').ERROR and 'CUDA' in status.message

    other = module.FusionNode(namespace='/other', parameter_overrides=[
        fake_rclpy.Parameter('tasks', value=['gesture']), fake_rclpy.Parameter('device', value='cuda'),
        fake_rclpy.Parameter('gesture.bundle', value=str(bundles['gesture']))])
    assert other.trigger_configure() == SUCCESS and other._perception.device == 'cpu'
    assert any(level == 'warn' and 'running on cpu' in m and 'fallback_cpu' in m for level, m in other.log)


def test_configure_errors_are_logged_and_main_exits_cleanly(ros, bundles, tmp_path):
    fake, module = ros(missing=('hri_msgs',))
    node = make_node(fake, module, **{'tasks': ['gesture'], 'gesture.bundle': str(tmp_path / 'nowhere')})
    assert node.trigger_configure() == FAILURE and not node.transition_exceptions
    (error,) = [m for level, m in node.log if level == 'error']
    assert 'nowhere' in error and '<task>.bundle' in error
    # skeleton2d needs hri_msgs, which is missing here: configure says so
    node2 = module.FusionNode(namespace='/two', parameter_overrides=[
        fake_rclpy.Parameter('tasks', value=['gesture']), fake_rclpy.Parameter('skeleton_type', value='skeleton2d'),
        fake_rclpy.Parameter('gesture.bundle', value=str(bundles['gesture']))])
    assert node2.trigger_configure() == FAILURE
    assert any(level == 'error' and 'hri_msgs' in m for level, m in node2.log)
    # main(): a bundle that does not exist -> configure fails -> exit status 1, no traceback
    missing = ['fusion_node', '--ros-args', '-p', 'tasks:=[gesture]', '-p', f'gesture.bundle:={tmp_path / "none"}']
    assert module.main(missing) == 1
    # with a bundle it brings itself to active, spins, and releases everything at the end
    seen = []
    fake.on_spin = lambda executor: seen.extend((n.lifecycle_state, len(list(n.subscriptions))) for n in executor.nodes)
    args = ['fusion_node', '--ros-args', '-p', 'tasks:=[gesture]', '-p', f'gesture.bundle:={bundles["gesture"]}']
    assert module.main(args) == 0
    assert seen == [('active', 2)]
    last = fake.nodes[-1]
    assert last.destroyed and last._perception is None


@pytest.mark.needs_data('emodb', 'mnist')
def test_audio_waits_for_audio_info_or_uses_a_declared_fallback(ros, bundles, recordings, monkeypatch):
    fake, module = ros()
    params = {'tasks': ['emotion'], 'emotion.bundle': str(bundles['voice']), 'emotion.score_threshold': 0.0,
              'emotion.output': 'decisions'}
    node = make_node(fake, module, **params)
    assert node.trigger_configure() == SUCCESS and node.trigger_activate() == SUCCESS
    Stream(fake, recordings).play(2.5, speech_at_s=0.3)               # no AudioInfo at all
    assert published(fake, f'{NODE}/emotion') == []
    audio = diagnostics(fake, node)['fusion_node: input audio']
    assert 'before an AudioInfo arrived' in audio.message and 'no_format' in values(audio)['dropped']
    node.destroy_node()
    # with the fallback parameters (audio_info.*) declared in node_params, audio is read at once
    extra = (NP.ParamSpec('audio_info.sample_rate', 'integer', 0, 'Fallback rate; 0 waits.', bounds=(0, 192000)),
             NP.ParamSpec('audio_info.channels', 'integer', 1, 'Fallback channels.', bounds=(1, 64)),
             NP.ParamSpec('audio_info.sample_format', 'string', 'S16LE', 'Fallback format.'))
    monkeypatch.setitem(NP.PARAMETERS, NP.FUSION_NODE, NP.PARAMETERS[NP.FUSION_NODE] + extra)
    node = module.FusionNode(namespace='/fallback', parameter_overrides=[
        fake_rclpy.Parameter(k, value=v) for k, v in {**params, 'audio_info.sample_rate': SR}.items()])
    assert node.trigger_configure() == SUCCESS and node.trigger_activate() == SUCCESS
    stream = Stream(fake, recordings)
    for name in ('image', 'skeleton', 'audio', 'audio_info'):
        setattr(getattr(stream, name), 'topic_name', f'/fallback/{name}')
    stream.play(2.5, speech_at_s=0.3)
    assert len(published(fake, '/fallback/fusion_node/emotion')) == 1


@pytest.mark.needs_data('emodb', 'mnist')
def test_compressed_images_and_naoqi_audio(ros, bundles, recordings):
    fake, module = ros()
    params = all_tasks(bundles, tasks=['gesture', 'emotion'], image_transport='compressed',
                       audio_type='naoqi_audio_buffer')
    node = make_node(fake, module, **params)
    assert node.trigger_configure() == SUCCESS and node.trigger_activate() == SUCCESS, node.log
    types = {s.topic_name: s.msg_type.__name__ for s in node.subscriptions}
    assert types == {f'{NS}/image/compressed': 'CompressedImage', f'{NS}/skeleton': 'PoseArray',
                     f'{NS}/audio': 'AudioBuffer'}                    # no audio_info: AudioBuffer says its rate
    qos = fake_rclpy.QoSProfile(depth=5, reliability=fake_rclpy.ReliabilityPolicy.BEST_EFFORT)
    image = fake.graph.publisher(fake.msg('sensor_msgs/msg/CompressedImage'), f'{NS}/image/compressed', qos)
    skeleton = fake.graph.publisher(fake.msg('geometry_msgs/msg/PoseArray'), f'{NS}/skeleton', qos)
    audio = fake.graph.publisher(fake.msg('naoqi_bridge_msgs/msg/AudioBuffer'), f'{NS}/audio', qos)
    signal = np.zeros(3 * SR, np.float32)
    signal[SR // 2: SR // 2 + recordings['speech'].size] = recordings['speech'][: 5 * SR // 2]
    events = []
    for k in range(30):
        t = T0 + k * FRAME_NS
        events.append((t, skeleton, M.build_pose_array(fake.factory, joints(k), stamp_ns=t, frame_id='kinect')))
        png = M.build_compressed_image(fake.factory, recordings['digits'][k], format='png', stamp_ns=t - 1,
                                       frame_id='camera')
        events.append((t - 1, image, png))
    for i in range(0, signal.size, 1365):                              # buffers of an odd size, 16 kHz mono
        t = T0 + i * 1_000_000_000 // SR
        events.append((t, audio, M.build_naoqi_audio(fake.factory, signal[i:i + 1365, None], frequency=SR,
                                                     stamp_ns=t, frame_id='naoqi')))
    for _, publisher, msg in sorted(events, key=lambda e: e[0]):
        publisher.publish(msg)
    assert len(published(fake, f'{NODE}/gesture')) >= 25
    assert len(published(fake, f'{NODE}/emotion')) == 1
    assert published(fake, f'{NODE}/emotion')[0].header.frame_id == 'naoqi'


@pytest.mark.needs_data('emodb', 'mnist')
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_device_runs_and_cleanup_frees_its_memory(ros, bundles, recordings):
    fake, module = ros()
    torch.cuda.empty_cache()
    baseline = torch.cuda.memory_allocated()
    node = make_node(fake, module, **{'tasks': ['gesture'], 'gesture.bundle': str(bundles['gesture']),
                                      'gesture.trigger': 'frame', 'gesture.score_threshold': 0.0,
                                      'gesture.output': 'decisions',
                                      'device': 'cuda', 'on_device_failure': 'error'})
    assert node.trigger_configure() == SUCCESS and node.trigger_activate() == SUCCESS, node.log
    assert node._perception.device.startswith('cuda') and torch.cuda.memory_allocated() > baseline
    Stream(fake, recordings).play(1.5)
    assert len(published(fake, f'{NODE}/gesture')) >= 10
    assert node.trigger_deactivate() == SUCCESS and node.trigger_cleanup() == SUCCESS
    import gc
    gc.collect()
    assert torch.cuda.memory_allocated() == baseline                  # the models left the GPU


@pytest.mark.needs_data('emodb', 'mnist')
def test_bundle_parameter_hot_swaps_the_model_and_refuses_a_bad_one(ros, bundles, recordings, tmp_path):
    """A new <task>.bundle is swapped in while the node keeps publishing; a corrupt one is refused with the reason."""
    import dataclasses
    import shutil
    import types

    from centralnet_ros.bundle.io import bundle_sha256
    from centralnet_ros.ros import bundle_swap
    base = load_bundle(bundles['gesture'])
    with torch.no_grad():
        for p in base.model.parameters():
            p.mul_(-1.0)
    other = save_bundle(tmp_path / 'gesture2', base.model,
                        dataclasses.replace(base.manifest, labels=['left', 'right', 'still'], label_map={}))
    corrupt = tmp_path / 'corrupt'
    shutil.copytree(other, corrupt)
    (corrupt / 'model.safetensors').write_bytes(b'\0' * 64)
    fake, module = ros()
    node = make_node(fake, module, **{'tasks': ['gesture'], 'gesture.bundle': str(bundles['gesture']),
                                      'gesture.trigger': 'frame', 'gesture.score_threshold': 0.0,
                                      'gesture.output': 'decisions'})
    assert node.trigger_configure() == SUCCESS and node.trigger_activate() == SUCCESS, node.log
    stream = Stream(fake, recordings)
    stream.play(1.0)
    n = len(published(fake, f'{NODE}/gesture'))
    old = values(diagnostics(fake, node)[next(k for k in diagnostics(fake, node) if 'gesture' in k)])
    assert n > 0 and old['bundle sha256'] == bundle_sha256(bundles['gesture'])
    (ok,) = node.set_parameters([fake_rclpy.Parameter('gesture.bundle', value=str(other))])
    assert ok.successful, ok.reason
    assert published(fake, f'{NODE}/gesture/label_info')[-1].class_map[0].class_name == 'left'
    stream.play(1.0, start_ns=T0 + 1_000_000_000)
    after = published(fake, f'{NODE}/gesture')[n:]
    assert after and {r.results[0].class_id for r in after} <= {'left', 'right', 'still'}   # kept publishing
    status = diagnostics(fake, node)
    assert values(status[next(k for k in status if 'gesture' in k)])['bundle sha256'] == bundle_sha256(other)
    (bad,) = node.set_parameters([fake_rclpy.Parameter('gesture.bundle', value=str(corrupt))])
    assert not bad.successful and 'refused, keeping' in bad.reason and str(other) in bad.reason
    assert node.get_parameter('gesture.bundle').value == str(other)
    assert node._perception.tasks['gesture'].model.bundle_sha256 == bundle_sha256(other)
    # the service: a bundle rewritten in place is reloaded; an unchanged one is left alone
    response = bundle_swap.reload_bundles(node, None, types.SimpleNamespace(success=None, message=''))
    assert response.success and 'unchanged' in response.message
    save_bundle(other, load_bundle(bundles['gesture']).model,
                dataclasses.replace(base.manifest, labels=['up', 'down', 'still'], label_map={}))
    response = bundle_swap.reload_bundles(node, None, types.SimpleNamespace(success=None, message=''))
    assert response.success and node._perception.label_info('gesture').labels == ['up', 'down', 'still']
    node.trigger_deactivate()
    node.trigger_cleanup()


@pytest.mark.parametrize('distro', ['humble', 'jazzy'])
def test_forget_voice_parameter_drops_the_adaptation_statistics(ros, distro):
    from centralnet_ros import paths
    fake, module = ros(distro=distro)
    node = make_node(fake, module, **{'tasks': ['emotion'], 'emotion.bundle': str(paths.models_dir() / 'emotion'),
                                      'voice_id': 'alice'})
    assert node.trigger_configure() == SUCCESS, node.log
    perception = node._perception
    (plan,) = perception.tasks['emotion'].plans
    assert plan.adaptation is not None and plan.adaptation.adapting      # the shipped bundle adapts per voice
    assert perception._voice_ids == {'*': 'alice'}                       # the node's voice_id is the speaker
    for voice in ('alice', 'bob'):
        plan.adaptation.observe(np.asarray(plan.adaptation.norm.prior_mean), voice_id=voice)
    assert set(plan.adaptation.voices()) == {'alice', 'bob'}
    assert node.set_parameters([fake_rclpy.Parameter('forget_voice', value='alice')])[0].successful
    assert set(plan.adaptation.voices()) == {'bob'}
    assert node.set_parameters([fake_rclpy.Parameter('forget_voice', value='*')])[0].successful
    assert plan.adaptation.voices() == {}
    (bad,) = node.set_parameters([fake_rclpy.Parameter('forget_voice', value='no such/id')])
    assert not bad.successful                                            # not a voice id: refused, named
