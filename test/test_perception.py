"""
Perception runtime tests.

Window specs derived from bundle manifests, trigger wiring, header-time decisions equal
to running the pipelines and the model by hand, bad messages counted and never fatal,
thresholds, configuration from the fusion node's parameters.
"""
from __future__ import annotations

import math
from pathlib import Path

from centralnet_ros import messages as M
from centralnet_ros.bundle import Manifest, ModalitySpec, save_bundle
from centralnet_ros.encoders import EncoderConfig
from centralnet_ros.features import pipelines as P
from centralnet_ros.features.audio import fix_length, log_mel_spectrogram
from centralnet_ros.features.pipelines import resolve_params
from centralnet_ros.features.skeleton import skeleton_input
from centralnet_ros.node_params import load_perception_config, perception_config
from centralnet_ros.replay import msgdefs as D
from centralnet_ros.runtime.perception import InputConfig, Perception, PerceptionConfig, TaskConfig
import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
T0 = 1_700_000_000 * 1_000_000_000
SR = 16000
LABELS = ['wave', 'point', 'rest']
SKEL = {'frame_rate': 10.0, 'num_frames': 10, 'channels': ['position'], 'layout': 'joints_time'}


def mel_input(window, *, n_mels: int = 16, frames: int = 20) -> np.ndarray:
    """Test pipeline: a fixed-size log-mel map of the window's audio -> (1, n_mels, frames)."""
    x = fix_length(np.asarray(window.data, np.float32), length=(frames - 1) * 160 + 400)
    return log_mel_spectrogram(x, sample_rate=int(window.sample_rate), n_fft=400, hop_length=160,
                               n_mels=n_mels)[None, :, :frames]


PIPES = {'test_log_mel': mel_input}


@pytest.fixture(scope='module')
def bundle(tmp_path_factory) -> Path:
    """Build a small two-modality CentralNet bundle: skeleton (the real skeleton_sequence pipeline) + voice."""
    mods = {'skeleton': EncoderConfig(kind='cnn1d', input_shape=[60, 10], widths=[8, 8]),
            'voice': EncoderConfig(kind='cnn2d', input_shape=[1, 16, 20], widths=[4, 8])}
    from centralnet_ros.fusion import FusionConfig, build_model
    cfg = FusionConfig(method='centralnet', modalities=mods, num_classes=len(LABELS))
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    manifest = Manifest(
        format_version=1, task='gesture', labels=LABELS, model=cfg,
        modalities={'skeleton': ModalitySpec(source='skeleton', input_shape=[60, 10], pipeline='skeleton_sequence',
                                             preprocessing=SKEL, window_s=1.0),
                    'voice': ModalitySpec(source='audio', input_shape=[1, 16, 20], pipeline='test_log_mel',
                                          sample_rate=SR, window_s=0.5)},
        label_map={'wave': 'waving'})
    return save_bundle(tmp_path_factory.mktemp('bundles') / 'gesture', model, manifest)


def make(bundle, *, backend='torch', pipelines=None, inputs=None, delay=0.0, **task) -> Perception:
    task.setdefault('trigger', 'rate')
    cfg = PerceptionConfig(tasks={'gesture': TaskConfig(bundle=str(bundle), **task)}, backend=backend,
                           decision_delay_s=delay, warmup=0, **({'inputs': inputs} if inputs else {}))
    return Perception(cfg, pipelines=pipelines or PIPES)


def joints(k: int) -> np.ndarray:
    """Return a moving 20-joint skeleton (metres): hip at the origin, shoulders 0.5 m up, arm swinging."""
    j = np.zeros((20, 3), np.float32)
    j[:, 1] = np.linspace(0, 1.0, 20)
    j[2, 1] = 0.5
    j[11] = [0.3 * math.sin(0.4 * k), 0.8, 0.1]
    j[:, 2] += 2.0
    return j


def skel_msg(k: int, stamp: int):
    return D.pose_array_message(joints(k), stamp_ns=stamp, frame_id='kinect')


def audio_msgs(x: np.ndarray, stamp: int):
    return D.audio_messages(x[:, None].astype(np.float32), sample_rate=SR, stamp_ns=stamp, frame_id='mic')


def tone(k: int) -> np.ndarray:
    """Audio chunk k (100 ms): a 220 Hz tone with a little noise."""
    noise = np.random.default_rng(k).normal(size=1600)
    return 0.3 * np.sin(2 * np.pi * 220 * (np.arange(1600) + k * 1600) / SR) + 0.01 * noise


def feed(p, n=30, *, audio=True, period=100_000_000, start=T0):
    """Feed ``n`` skeleton frames at 10 Hz and 100 ms audio chunks, interleaved; return the decisions."""
    out = []
    for k in range(n):
        t = start + k * period
        out += p.ingest('skeleton', skel_msg(k, t))
        if audio:
            msg, info = audio_msgs(tone(k), t)
            if k == 0:
                p.ingest('audio_info', info)
            out += p.ingest('audio', msg)
    return out


# --------------------------------------------------------------------------- plans from manifests

def test_window_specs_come_from_the_manifest(bundle):
    p = make(bundle)
    plans = {pl.name: pl for pl in p.tasks['gesture'].plans}
    assert p.inputs == {'skeleton': 'pose_array', 'audio': 'audio'}           # depth/image: nobody reads them
    sk, vo = plans['skeleton'].spec, plans['voice'].spec
    assert (sk.input, sk.mode, sk.window_ns, sk.use_segment) == ('skeleton', 'sequence', 1_000_000_000, False)
    assert (vo.input, vo.mode, vo.window_ns, vo.sample_rate) == ('audio', 'audio', 500_000_000, SR)
    assert plans['skeleton'].pipeline is skeleton_input
    assert plans['skeleton'].params == resolve_params('skeleton_sequence', SKEL)     # every parameter, resolved
    assert sk.max_age_ns == vo.max_age_ns == 1_000_000_000                      # PerceptionConfig.max_data_age_s
    # task overrides: one window length for every modality; the speech segment for speech_end
    q = make(bundle, window_s=2.5, trigger='speech_end', segment_padding_s=0.1, max_data_age_s=0.3)
    specs = {pl.name: pl.spec for pl in q.tasks['gesture'].plans}
    assert {s.window_ns for s in specs.values()} == {2_500_000_000}
    assert all(s.use_segment and s.segment_padding_ns == 100_000_000 and s.max_age_ns == 300_000_000
               for s in specs.values())
    assert q.tasks['gesture'].trigger_key == ('speech_end', 'audio')


def test_configuration_errors_name_the_problem(bundle):
    with pytest.raises(ValueError, match="modality 'voice' reads input 'mic'"):
        make(bundle, sources={'voice': 'mic'})
    inputs = {'skeleton': InputConfig('image'), 'audio': InputConfig('audio')}
    with pytest.raises(ValueError, match="needs a skeleton input .* 'skeleton' is image"):
        make(bundle, inputs=inputs)
    with pytest.raises(KeyError, match="unknown input pipeline 'test_log_mel'"):
        make(bundle, pipelines={'other': mel_input})
    with pytest.raises(ValueError, match='trigger must be rate, frame'):
        TaskConfig(bundle='x', trigger='sometimes')
    with pytest.raises(ValueError, match='score_threshold must be in'):
        TaskConfig(bundle='x', score_threshold=1.5)
    p = make(bundle)
    with pytest.raises(KeyError, match="unknown input 'camera'"):
        p.ingest('camera', object())


# --------------------------------------------------------------------------- decisions

def test_rate_decisions_in_header_time_equal_the_pipelines_and_model_by_hand(bundle):
    p = make(bundle, rate_hz=2.0, delay=0.15)        # every input stamped up to t is in when t is decided
    results = feed(p, 30) + p.flush()
    period = 500_000_000
    stamps = [r.stamp_ns for r in results]
    assert stamps == sorted(stamps) and all(s % period == 0 for s in stamps)   # the absolute grid
    assert stamps[0] == T0 and stamps[-1] >= T0 + 29 * 100_000_000
    full = [r for r in results if r.present == {'skeleton': True, 'voice': True}]
    assert len(full) >= 4 and all(r.trigger == 'rate' and r.frame_id in ('kinect', 'mic') for r in full)
    assert results[0].missing == {'voice': 'absent'}                           # no audio before T0
    # recompute one decision by hand from the same samples
    r = full[2]
    t = r.stamp_ns
    ks = [k for k in range(30) if t - 1_000_000_000 <= T0 + k * 100_000_000 <= t]
    skel = skeleton_input(P.Window(np.stack([joints(k) for k in ks]),
                                   np.array([T0 + k * 100_000_000 for k in ks]), extra={'end_ns': t}), **SKEL)
    fmt = M.AudioFormat(1, SR, 'S16LE')
    pcm = np.concatenate([M.audio_to_array(audio_msgs(tone(k), T0)[0], fmt).samples[:, 0] for k in range(30)])
    s0 = (t - 500_000_000 - T0) * SR // 1_000_000_000
    voice = mel_input(P.Window(pcm[s0:s0 + SR // 2], np.array([t]), SR))
    expected = p.models['gesture'].classify({'skeleton': skel, 'voice': voice}, stamp_ns=t)
    assert r.label == expected.label
    np.testing.assert_allclose(r.probabilities, expected.probabilities, rtol=1e-4, atol=1e-5)
    assert r.timing['total'] >= r.timing['inference'] > 0


def test_frame_trigger_decides_at_each_frame_stamp(bundle):
    p = make(bundle, trigger='frame')
    results = feed(p, 12, audio=False)
    assert [r.stamp_ns for r in results] == [T0 + k * 100_000_000 for k in range(12)]
    assert all(r.trigger == 'frame' and r.missing == {'voice': 'absent'} for r in results)
    q = make(bundle, trigger='frame:audio')
    assert q.tasks['gesture'].trigger_key == ('frame', 'audio')


def test_stale_modality_is_missing(bundle):
    p = make(bundle, rate_hz=10.0, max_data_age_s=0.25)
    feed(p, 10)
    out = []
    for k in range(10, 20):                                   # audio stops, skeleton goes on
        out += p.ingest('skeleton', skel_msg(k, T0 + k * 100_000_000))
    reasons = [r.missing.get('voice') for r in out]
    assert reasons[0] is None and reasons[-1] == 'stale'
    assert p.stats()['tasks']['gesture']['missing']['voice']['stale'] >= 5


@pytest.mark.needs_data('emodb')
def test_speech_end_trigger_decides_once_per_utterance(bundle, data_root):
    from centralnet_ros.data.emodb import load_waveform
    speech = load_waveform(data_root / 'emodb' / 'wav' / '03a01Fa.wav', sample_rate=SR)
    seen = []

    def recording_pipeline(window, **kw):
        seen.append((int(window.stamps_ns[0]), window.data.size, window.extra['segment']))
        return mel_input(window, **kw)

    p = make(bundle, trigger='speech_end', segment_padding_s=0.2, pipelines={'test_log_mel': recording_pipeline})
    wav = np.concatenate([np.zeros(SR), speech, np.zeros(SR)]).astype(np.float32)
    results = []
    chunk = 320
    _, info = audio_msgs(wav[:chunk], T0)
    p.ingest('audio_info', info)
    for i in range(0, wav.size - chunk + 1, chunk):
        results += p.ingest('audio', audio_msgs(wav[i:i + chunk], T0 + i * 1_000_000_000 // SR)[0])
    results += p.flush()
    assert len(results) == 1
    r = results[0]
    start, end = r.segment
    onset, offset = T0 + 1_000_000_000, T0 + 1_000_000_000 + speech.size * 1_000_000_000 // SR
    assert onset - 200_000_000 <= start and end <= offset + 200_000_000 and r.stamp_ns == end
    assert r.trigger == 'speech_end' and r.missing == {'skeleton': 'absent'}
    # the audio window handed to the features is the segment widened by the padding
    w_start, n, segment = seen[0]
    assert segment == (start, end)
    assert w_start == start - 200_000_000 and abs(n - (end - start + 400_000_000) * SR / 1e9) <= 2


def test_shared_speech_trigger_serves_two_tasks(bundle):
    cfg = PerceptionConfig(tasks={'gesture': TaskConfig(bundle=str(bundle), trigger='speech_end'),
                                  'other': TaskConfig(bundle=str(bundle), trigger='speech_end:audio')},
                           backend='torch', warmup=0)
    p = Perception(cfg, pipelines=PIPES)
    assert len(p._triggers) == 1 and p._subscribers[('speech_end', 'audio')] == ['gesture', 'other']


# --------------------------------------------------------------------------- robustness

def bad_messages(stamp):
    good = skel_msg(0, stamp)
    nan = skel_msg(0, stamp)
    nan.poses[3].position.x = float('nan')
    img = D.image_message(np.zeros((4, 6, 3), np.uint8), encoding='rgb8', stamp_ns=stamp)
    img.data = img.data[:-5]
    return [('skeleton', nan), ('skeleton', {'poses': good.poses}), ('skeleton', 'garbage'),
            ('skeleton', D.pose_array_message(np.zeros((7, 3), np.float32), stamp_ns=stamp)),
            ('audio', audio_msgs(np.zeros(0, np.float32), stamp)[0]), ('image', img)]


def test_bad_messages_are_counted_never_fatal(bundle):
    inputs = {'skeleton': InputConfig('pose_array'), 'audio': InputConfig('audio'), 'image': InputConfig('image')}
    p = make(bundle, rate_hz=2.0, inputs=inputs)
    feed(p, 5)
    for name, msg in bad_messages(T0 + 550_000_000):
        assert p.ingest(name, msg) == []
    p.ingest('audio_info', {'channels': 0, 'sample_rate': SR, 'sample_format': 'S16LE', 'coding_format': 'wave'})
    results = feed(p, 15, start=T0 + 600_000_000)                      # still deciding afterwards
    assert results and all(r.present['skeleton'] for r in results)
    stats = p.stats()
    sk = stats['inputs']['skeleton']['malformed']
    assert sk == {'field': 2, 'nan': 1, 'size': 1}
    assert stats['inputs']['audio']['malformed'] == {'empty': 1, 'field': 1}
    assert stats['unused_messages'] == {'image': 1}                    # configured, read by no task


def test_failing_pipeline_is_counted_and_the_other_modality_decides(bundle):
    calls = []

    def broken(window, **kw):
        calls.append(1)
        raise RuntimeError('feature extractor crashed')

    p = make(bundle, rate_hz=2.0, pipelines={'test_log_mel': broken})
    results = feed(p, 20)
    assert calls and results
    assert all(r.present == {'skeleton': True, 'voice': False} for r in results)
    assert {r.missing['voice'] for r in results if len(calls)} <= {'feature_error', 'absent'}
    assert p.stats()['tasks']['gesture']['errors']['feature_error:voice'] == len(calls)

    p = make(bundle, rate_hz=2.0, pipelines={'test_log_mel': lambda w, **kw: np.zeros((1, 3, 3), np.float32)})
    results = feed(p, 20)
    assert any(r.missing.get('voice') == 'feature_shape' for r in results)


def test_audio_before_its_info_is_dropped_and_counted(bundle):
    p = make(bundle)
    assert p.ingest('audio', audio_msgs(np.zeros(1600), T0)[0]) == []
    assert p.stats()['inputs']['audio']['dropped'] == {'no_format': 1}
    from centralnet_ros.config import from_dict
    cfg = from_dict(PerceptionConfig, {'tasks': {'gesture': {'bundle': str(bundle)}}, 'backend': 'torch', 'warmup': 0,
                                       'inputs': {'skeleton': {'kind': 'pose_array'},
                                                  'audio': {'kind': 'audio',
                                                            'audio_format': {'channels': 1, 'sample_rate': SR}}}})
    q = Perception(cfg, pipelines=PIPES)
    q.ingest('audio', audio_msgs(np.zeros(1600), T0)[0])
    assert q.stats()['inputs']['audio']['accepted'] == 1


def test_a_loop_in_the_stamps_resets_and_decisions_go_on(bundle):
    p = make(bundle, rate_hz=2.0)
    first = feed(p, 40)
    second = feed(p, 40)                                    # the same 4 s again: a bag played in a loop
    assert second and [r.stamp_ns for r in second] == [r.stamp_ns for r in first]
    assert [r.label for r in second] == [r.label for r in first]
    assert p.stats()['global_resets'] == 1


# --------------------------------------------------------------------------- thresholds, info, stats

def test_threshold_changes_apply_to_later_decisions(bundle):
    p = make(bundle, rate_hz=2.0, score_threshold=0.0, output='decisions')   # the per-decision stream
    before = feed(p, 10)
    assert before and all(r.published for r in before)
    p.set_threshold('gesture', 1.0)
    after = feed(p, 10, start=T0 + 1_000_000_000)
    assert after and not any(r.published for r in after) and all(r.threshold == 1.0 for r in after)
    assert p.label_info('gesture').threshold == 1.0 == p.threshold('gesture')
    with pytest.raises(ValueError, match='must be in'):
        p.set_threshold('gesture', 1.1)
    with pytest.raises(KeyError, match="no task 'speech'"):
        p.set_threshold('speech', 0.5)
    stats = p.stats()['tasks']['gesture']
    assert stats['published'] == len(before) and stats['decisions'] == len(before) + len(after)


def test_label_info_and_stats(bundle):
    p = make(bundle, rate_hz=5.0)
    feed(p, 20)
    info = p.label_info('gesture')
    assert info.labels == LABELS and info.label_map == {'wave': 'waving'}
    assert info.modalities == {'skeleton': 'skeleton', 'voice': 'audio'} and info.fusion_method == 'centralnet'
    s = p.stats()
    assert s['device'] == 'cpu' and s['backend'] == 'torch'
    assert s['inputs']['skeleton']['rate_hz'] == pytest.approx(10.0)
    assert s['inputs']['skeleton']['stale'] is False and s['inputs']['skeleton']['conversion']['count'] == 20
    assert s['tasks']['gesture']['decision_rate_hz'] == pytest.approx(5.0)
    assert s['tasks']['gesture']['latency_ms']['p50'] > 0
    later = p.stats(now_ns=T0 + 60 * 1_000_000_000)
    assert later['inputs']['skeleton']['stale'] is True                   # silent for longer than input_timeout_s
    p.close()
    assert not p.models and all(t.model is None for t in p.tasks.values())
    with pytest.raises(RuntimeError, match='closed'):
        p.ingest('skeleton', skel_msg(0, T0))


def test_onnxruntime_backend_gives_the_torch_decisions(bundle):
    a = feed(make(bundle, rate_hz=2.0, backend='torch'), 20)
    b = feed(make(bundle, rate_hz=2.0, backend='onnxruntime'), 20)
    assert [r.label for r in a] == [r.label for r in b]
    np.testing.assert_allclose([r.score for r in a], [r.score for r in b], atol=1e-4)


# --------------------------------------------------------------------------- configuration files

def test_config_from_the_fusion_node_parameters():
    cfg = load_perception_config(REPO / 'config' / 'fusion.yaml')
    assert list(cfg.tasks) == ['gesture', 'speech', 'emotion']
    assert cfg.tasks['speech'].trigger == 'speech_end' and cfg.tasks['gesture'].rate_hz == 10.0
    assert cfg.tasks['emotion'].score_threshold == -1.0 and cfg.vad['hangover_ms'] == 300.0
    cfg = perception_config({'tasks': ['gesture'], 'skeleton_type': 'skeleton2d',
                             'image_transport': 'compressed', 'audio.offset_s': -0.17,
                             'audio_type': 'naoqi_audio_buffer', 'gesture.trigger': 'frame'})
    assert list(cfg.tasks) == ['gesture'] and cfg.tasks['gesture'].trigger == 'frame'
    assert cfg.inputs['skeleton'].kind == 'skeleton2d' and cfg.inputs['image'].kind == 'compressed_image'
    assert cfg.inputs['audio'].kind == 'naoqi_audio' and cfg.inputs['audio'].offset_s == -0.17
    from centralnet_ros.node_params import ParameterError
    with pytest.raises(ParameterError, match="unknown parameter 'gesture.rate'"):
        perception_config({'gesture.rate': 3.0})


def test_perception_yaml_config_is_strict(tmp_path):
    from centralnet_ros.config import ConfigError
    path = tmp_path / 'perception.yaml'
    path.write_text('tasks:\n  gesture: {bundle: gesture, trigger: rate, rate_hz: 4.0}\ndecision_delay: 0.2\n')
    with pytest.raises(ConfigError, match=r'perception.yaml: unknown key\(s\) decision_delay'):
        load_perception_config(path)
    path.write_text('tasks:\n  gesture: {bundle: gesture, rate_hz: 4.0}\nvad: {hangover_ms: 200.0}\n')
    cfg = load_perception_config(path)
    assert cfg.tasks['gesture'].rate_hz == 4.0 and cfg.vad == {'hangover_ms': 200.0}
    path.write_text('tasks:\n  gesture: {bundle: gesture}\nvad: {hangover: 200.0}\n')
    with pytest.raises(ConfigError, match='hangover'):
        load_perception_config(path)


@pytest.mark.slow                                            # a fresh interpreter / the whole command
def test_importing_the_runtime_does_not_import_torch():
    import subprocess
    import sys
    code = ('import sys, centralnet_ros.runtime, centralnet_ros.runtime.perception; '
            'print("torch" in sys.modules)')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == 'False'


def test_decide_window_reruns_a_decision_without_touching_the_stats(bundle):
    p = make(bundle, rate_hz=2.0, delay=0.15)
    kept = []
    assemble = p.tasks['gesture'].assembler.assemble
    p.tasks['gesture'].assembler.assemble = lambda point: kept.append(assemble(point)) or kept[-1]
    results = feed(p, 20)
    before = p.stats()['tasks']['gesture']
    again = [p.decide_window('gesture', w) for w in kept]
    assert [r.label for r in again] == [r.label for r in results]
    np.testing.assert_array_equal([r.probabilities for r in again], [r.probabilities for r in results])
    assert p.stats()['tasks']['gesture'] == before


def test_store_then_decide_later_gives_the_decisions_of_ingest(bundle):
    """Ingest split from deciding: storing everything first and deciding afterwards changes nothing."""
    at_once = make(bundle, rate_hz=2.0, delay=0.15)
    expected = feed(at_once, 30) + at_once.flush()
    split = make(bundle, rate_hz=2.0, delay=0.15)
    due = []
    for k in range(30):                                # what a subscription callback does: store only
        t = T0 + k * 100_000_000
        due += split.store('skeleton', skel_msg(k, t))
        msg, info = audio_msgs(tone(k), t)
        if k == 0:
            assert split.store('audio_info', info) == []
        due += split.store('audio', msg)
    assert split.stats()['tasks']['gesture']['decisions'] == 0          # no model ran while storing
    assert due and all(d.task == 'gesture' for d in due)
    results = split.decide(due) + split.decide(split.flush_due())       # what the decision worker does
    assert [(r.stamp_ns, r.label, r.frame_id, r.present) for r in results] == \
        [(r.stamp_ns, r.label, r.frame_id, r.present) for r in expected]
    for a, b in zip(results, expected):
        np.testing.assert_allclose(a.probabilities, b.probabilities, rtol=1e-5, atol=1e-6)
    split.close()
    assert split.decide(due) == []                     # after close: dropped, never a crash


def test_a_frame_trigger_waits_for_other_inputs_only_when_its_tasks_read_them(bundle):
    # decision_delay_s holds a decision until newer data of every input is in; a task that reads only
    # the triggering frames has nothing to wait for (frames are stored in order) and decides at once
    from centralnet_ros.runtime.plan import make_trigger
    cfg = PerceptionConfig(tasks={'gesture': TaskConfig(bundle=str(bundle))}, decision_delay_s=0.1)
    assert make_trigger(cfg, ('frame', 'skeleton'), reads={'skeleton'}).delay_ns == 0
    assert make_trigger(cfg, ('frame', 'skeleton'), reads={'skeleton', 'voice'}).delay_ns == 100_000_000
    p = make(bundle, trigger='frame', delay=0.1)            # this bundle reads skeleton and voice: it waits
    assert p._triggers[p.tasks['gesture'].trigger_key].delay_ns == 100_000_000
