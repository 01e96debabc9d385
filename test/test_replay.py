"""
Replay evaluation tests.

A generated rosbag2 file (sqlite3 and MCAP) replayed through the runtime gives the
decisions of feeding the same messages directly; ground-truth label files and label
topics; metrics on a known tiny case; the ``centralnet replay`` command.
"""
from __future__ import annotations

import json
from pathlib import Path

from centralnet_ros import messages as M
from centralnet_ros.bundle import Manifest, ModalitySpec, save_bundle
from centralnet_ros.encoders import EncoderConfig
from centralnet_ros.replay import evaluate as E, labels as LB, player as P, topics as T
from centralnet_ros.replay import msgdefs as D
from centralnet_ros.runtime.perception import Perception, PerceptionConfig, TaskConfig, TaskResult
import numpy as np
import pytest
import torch

T0 = 1_700_000_000 * 1_000_000_000
SR = 16000
LABELS = ['wave', 'point', 'rest']


@pytest.fixture(scope='module')
def bundle(tmp_path_factory) -> Path:
    """Skeleton (skeleton_sequence) + audio (htk_mfcc) CentralNet: registered pipelines only."""
    from centralnet_ros.fusion import FusionConfig, build_model
    mods = {'skeleton': EncoderConfig(kind='cnn1d', input_shape=[60, 10], widths=[8, 8]),
            'voice': EncoderConfig(kind='cnn2d', input_shape=[1, 26, 24], widths=[4, 8])}
    cfg = FusionConfig(method='centralnet', modalities=mods, num_classes=len(LABELS))
    torch.manual_seed(1)
    model = build_model(cfg).eval()
    skel = {'frame_rate': 10.0, 'num_frames': 10, 'channels': ['position'], 'layout': 'joints_time'}
    manifest = Manifest(
        format_version=1, task='gesture', labels=LABELS, model=cfg,
        modalities={'skeleton': ModalitySpec(source='skeleton', input_shape=[60, 10], pipeline='skeleton_sequence',
                                             preprocessing=skel, window_s=1.0),
                    'voice': ModalitySpec(source='audio', input_shape=[1, 26, 24], pipeline='htk_mfcc',
                                          preprocessing={'num_frames': 24}, window_s=0.6)})
    return save_bundle(tmp_path_factory.mktemp('bundles') / 'gesture', model, manifest)


def recording(n: int = 40) -> list[tuple[str, str, int, object]]:
    """
    Build a recording as ``(topic, type, log time, message)`` tuples.

    Skeleton at 10 Hz, 100 ms audio chunks, one AudioInfo, String labels on /labels/gesture;
    log times a little after the header stamps, as when recorded.
    """
    rng = np.random.default_rng(3)
    out = []
    _, info = D.audio_messages(np.zeros((1, 1), np.float32), sample_rate=SR, stamp_ns=T0)
    out.append(('/audio_info', 'audio_common_msgs/msg/AudioInfo', T0, info))
    String = D.make_typestore().types['std_msgs/msg/String']
    for k in range(n):
        t = T0 + k * 100_000_000
        j = np.zeros((20, 3), np.float32)
        j[:, 1] = np.linspace(0, 1, 20)
        j[11] = [0.3 * np.sin(0.5 * k), 0.8, 2.0]
        out.append(('/skeleton', 'geometry_msgs/msg/PoseArray', t + 2_000_000,
                    D.pose_array_message(j + 0.01 * rng.normal(size=j.shape).astype(np.float32), stamp_ns=t)))
        x = (0.2 * np.sin(2 * np.pi * (200 + 5 * k) * np.arange(1600) / SR) + 0.02 * rng.normal(size=1600))
        msg, _ = D.audio_messages(x[:, None].astype(np.float32), sample_rate=SR, stamp_ns=t)
        out.append(('/audio', 'audio_common_msgs/msg/AudioDataStamped', t + 100_000_000 + 1_000_000, msg))
        if k % 10 == 0:
            out.append(('/labels/gesture', 'std_msgs/msg/String', t + 500_000, String(data=LABELS[(k // 10) % 3])))
    out.sort(key=lambda m: m[2])
    return out


def config(bundle, **kw) -> PerceptionConfig:
    return PerceptionConfig(tasks={'gesture': TaskConfig(bundle=str(bundle), rate_hz=4.0, score_threshold=0.4)},
                            backend='torch', warmup=0, **kw)


def comparable(results) -> list[dict]:
    rows = [r.to_dict() for r in results]
    for row in rows:
        row.pop('timing_ms')
    return rows


@pytest.mark.parametrize('storage', ['sqlite3', 'mcap'])
def test_replay_equals_feeding_the_messages_directly(tmp_path, bundle, storage):
    msgs = recording()
    bag = D.write_bag(tmp_path / 'bag', msgs, storage=storage)
    info = T.bag_info(bag)
    assert info.storage == storage and info.start_ns == T0
    cfg = config(bundle)
    mapping = T.map_topics(info, cfg)
    assert mapping.topics == {'/audio': 'audio', '/audio_info': 'audio_info', '/skeleton': 'skeleton'}
    assert mapping.label_topics == ['/labels/gesture']
    run = P.replay_bag(bag, Perception(cfg), mapping, info=info, progress=False)

    direct = Perception(config(bundle))
    names = {'/audio': 'audio', '/audio_info': 'audio_info', '/skeleton': 'skeleton'}
    expected = []
    for topic, _, log_time, msg in msgs:
        if topic in names:
            expected += direct.ingest(names[topic], msg, log_time_ns=log_time)
    expected += direct.flush()
    assert len(run.results) >= 10 and run.messages == 81
    assert comparable(run.results) == comparable(expected)
    assert any(all(r.present.values()) for r in run.results)
    # the String label topic gives three segments, the last one to the end of the bag
    assert [(s.label, s.start_ns - T0) for s in run.label_segments] == [
        ('wave', 500_000), ('point', 1_000_500_000), ('rest', 2_000_500_000), ('wave', 3_000_500_000)]
    assert run.label_segments[-1].end_ns == info.end_ns + 1


def test_label_file_formats(tmp_path):
    csv = tmp_path / 'labels.csv'
    csv.write_text('# time_base: bag_start\ntask, start_s, end_s, label\ngesture,1.0,2.5,wave\n\nspeech,3,4.25,B\n')
    segs = LB.load_label_file(csv, bag_start_ns=T0)
    assert segs == [LB.LabelSegment('gesture', T0 + 1_000_000_000, T0 + 2_500_000_000, 'wave'),
                    LB.LabelSegment('speech', T0 + 3_000_000_000, T0 + 4_250_000_000, 'B')]
    yml = tmp_path / 'labels.yaml'
    yml.write_text('time_base: absolute\nsegments:\n  - {task: gesture, start_s: 1700000001.0, end_s: 1700000002.5, '
                   'label: wave}\n')
    assert LB.load_label_file(yml, bag_start_ns=0)[0] == segs[0]
    yml.write_text('- {task: gesture, start_s: 1.0, end_s: 2.5, label: wave}\n')      # a bare list: bag_start
    assert LB.load_label_file(yml, bag_start_ns=T0) == segs[:1]
    assert LB.load_label_file(yml, bag_start_ns=T0, time_base='absolute')[0].start_ns == 1_000_000_000


@pytest.mark.parametrize('name, text, message', [
    ('a.csv', 'task,start,end,label\ngesture,1,2,wave\n', r'a.csv: line 1: the first row must be the header'),
    ('b.csv', 'task,start_s,end_s,label\ngesture,1,two,wave\n', r'b.csv: line 2: end_s must be a number'),
    ('c.csv', 'task,start_s,end_s,label\ngesture,2,1,wave\n', r'c.csv: line 2: end_s \(1\) must be greater'),
    ('d.csv', 'task,start_s,end_s,label\ngesture,1,2\n', r'd.csv: line 2: expected 4 comma-separated columns'),
    ('e.csv', 'task,start_s,end_s,label\ngesture,1,3,wave\ngesture,2,4,rest\n',
     r'e.csv: gesture segments overlap \(line 2 and line 3\)'),
    ('f.csv', '# time_base: yesterday\ntask,start_s,end_s,label\n', r"f.csv: time_base 'yesterday' is not one of"),
    ('g.yaml', 'segments:\n  - {task: gesture, start_s: 1, end_s: 2}\n', r'g.yaml: line 2: missing label'),
    ('h.yaml', 'segments: []\nunits: s\n', r'h.yaml: line 1: unknown key\(s\) units'),
    ('i.yaml', 'segments:\n  - {task: gesture, start_s: 1, end_s: 2, label: x, who: me}\n', r'unknown field\(s\) who'),
    ('j.yaml', 'segments: {task: gesture}\n', r'j.yaml: expected a list of segments'),
    ('k.yaml', 'segments:\n  - {task: gesture, start_s: .nan, end_s: 2, label: x}\n', r'start_s must be finite'),
    ('l.txt', 'gesture 1 2 wave\n', r'l.txt: unknown label file type .txt'),
])
def test_label_file_errors_name_the_file_and_row(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(LB.LabelFileError, match=message):
        LB.load_label_file(path, bag_start_ns=T0)
    with pytest.raises(LB.LabelFileError, match='cannot read the label file'):
        LB.load_label_file(tmp_path / 'missing.csv', bag_start_ns=T0)


def test_classification_label_topic():
    store = D.make_typestore()
    f = D.typestore_factory(store)
    c = LB.LabelTopicCollector()

    def cls(label, stamp):
        results = [f('vision_msgs/msg/ObjectHypothesis', class_id=label, score=1.0)] if label else []
        return f('vision_msgs/msg/Classification', header=M.build_header(f, stamp_ns=stamp), results=results)

    for label, stamp in [('duck', T0 + 10), ('', T0 + 20), ('kick', T0 + 30)]:
        c.add('/labels/gesture', 'vision_msgs/msg/Classification', 0, cls(label, stamp))
    c.add('/other', 'std_msgs/msg/String', 5, None)                     # not a label topic: ignored
    assert c.segments(end_ns=T0 + 100) == [LB.LabelSegment('gesture', T0 + 10, T0 + 20, 'duck'),
                                           LB.LabelSegment('gesture', T0 + 30, T0 + 101, 'kick')]
    with pytest.raises(LB.LabelFileError, match='has type sensor_msgs/msg/Image'):
        c.add('/labels/speech', 'sensor_msgs/msg/Image', 0, None)


def result(task, t, label, score=0.9, published=True):
    return TaskResult(task=task, stamp_ns=t, frame_id='', label=label, score=score, top_k=[(label, score)],
                      probabilities=np.zeros(3), published=published, threshold=0.5, trigger='rate', segment=None,
                      present={'m': True}, missing={}, fusion_weights=None,
                      timing={'assembly': 0.0, 'features': 0.001, 'inference': 0.001, 'total': 0.002 * t})


def test_metrics_on_a_known_tiny_case():
    segs = [LB.LabelSegment('g', 0, 10, 'a'), LB.LabelSegment('g', 10, 20, 'b'), LB.LabelSegment('g', 30, 40, 'c')]
    rs = [result('g', 1, 'a'), result('g', 5, 'b', 0.3, published=False), result('g', 8, 'a'),   # seg a: a wins
          result('g', 10, 'b'), result('g', 15, 'c', 0.6), result('g', 19, 'c', 0.5),           # seg b: c wins 2-1
          result('g', 25, 'a'),                                                                   # unlabelled
          result('h', 5, 'x')]                                                                    # other task
    m = E.evaluate(rs, segs, {'g': ['a', 'b', 'c']})['g']
    assert (m['decisions'], m['labelled_decisions'], m['unlabelled_decisions'], m['published']) == (7, 6, 1, 6)
    assert m['decision_accuracy'] == pytest.approx(3 / 6)
    assert m['confusion'] == [[2, 1, 0], [0, 1, 2], [0, 0, 0]]
    assert m['decision_macro_accuracy'] == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert m['published_labelled'] == 5 and m['published_accuracy'] == pytest.approx(3 / 5)
    assert (m['segments'], m['segments_with_decisions']) == (3, 2)
    assert m['segment_accuracy'] == pytest.approx(1 / 3)              # a right, b wrong (c voted), c missed
    assert m['latency_ms']['max'] == pytest.approx(2 * 25) and m['chance'] == pytest.approx(1 / 3)
    with pytest.raises(LB.LabelFileError, match="label 'z' for g at .* classes: a, b, c"):
        E.evaluate(rs, [LB.LabelSegment('g', 0, 5, 'z')], {'g': ['a', 'b', 'c']})


def test_topic_mapping_follows_the_recorded_types(tmp_path, bundle):
    store = D.make_typestore()
    pts = np.tile([[0.5, 0.5, 1.0]], (18, 1)).astype(np.float32)
    msgs = [('/skeleton', 'hri_msgs/msg/Skeleton2D', T0, D.skeleton2d_message(pts, stamp_ns=T0, typestore=store)),
            ('/cam', 'sensor_msgs/msg/Image', T0 + 1,
             D.image_message(np.zeros((2, 2, 3), np.uint8), encoding='rgb8', stamp_ns=T0))]
    info = T.bag_info(D.write_bag(tmp_path / 'bag', msgs))
    cfg = config(bundle)
    mapping = T.map_topics(info, cfg)
    assert mapping.topics == {'/skeleton': 'skeleton'} and cfg.inputs['skeleton'].kind == 'skeleton2d'
    assert any('reading it as skeleton2d' in n for n in mapping.notes)
    assert any('ignored topics: /cam' in n for n in mapping.notes)
    assert T.map_topics(info, config(bundle), {'image': '/cam'}).topics['/cam'] == 'image'
    with pytest.raises(ValueError, match="topic /cam has type sensor_msgs/msg/Image, which input 'skeleton'"):
        T.map_topics(info, config(bundle), {'skeleton': '/cam'})
    with pytest.raises(ValueError, match='the bag has no topic /nope'):
        T.map_topics(info, config(bundle), {'audio': '/nope'})
    with pytest.raises(ValueError, match="'lidar' is not an input"):
        T.map_topics(info, config(bundle), {'lidar': '/cam'})


@pytest.mark.slow                                            # a fresh interpreter / the whole command
def test_replay_command_writes_the_evaluation(tmp_path, bundle, capsys):
    from centralnet_ros.cli import main
    bag = D.write_bag(tmp_path / 'bag', recording(), storage='mcap')
    labels = tmp_path / 'labels.csv'
    labels.write_text('task,start_s,end_s,label\ngesture,0.0,2.0,wave\ngesture,2.0,4.1,rest\n')
    out = tmp_path / 'out'
    argv = ['replay', str(bag), '--tasks', 'gesture', '--bundle', f'gesture={bundle}', '--labels', str(labels),
            '--out', str(out), '--no-progress', '--threshold', 'gesture=0.0', '--backend', 'torch']
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert 'gesture' in text and 'x real time' in text and 'label topics in the bag are ignored' in text
    names = {p.name for p in out.iterdir()}
    assert {'predictions.jsonl', 'metrics.json', 'summary.txt', 'config.yaml', 'timeline.png',
            'confusion_gesture.png'} <= names
    metrics = json.loads((out / 'metrics.json').read_text())
    rows = [json.loads(line) for line in (out / 'predictions.jsonl').read_text().splitlines()]
    g = metrics['tasks']['gesture']
    assert len(rows) == g['decisions'] > 0 and g['published'] == 0       # events task: events are published
    events = [json.loads(line) for line in (out / 'events.jsonl').read_text().splitlines()]
    assert len(events) == g['events']['events'] > 0                       # threshold 0: events open at once
    assert g['events']['instances'] == 2 and g['events']['matched'] <= 2
    assert g['labelled_decisions'] == sum(r['truth'] is not None for r in rows)
    assert {r['truth'] for r in rows} <= {'wave', 'rest', None}
    assert metrics['replay']['messages'] == 81 and metrics['stats']['inputs']['skeleton']['accepted'] == 40
    # errors come back as exit code 2 with the reason
    assert main(['replay', str(bag), '--storage', 'sqlite3', '--tasks', 'gesture', '--bundle',
                 f'gesture={bundle}', '--out', str(out), '--no-progress']) == 2
    assert 'stored as mcap, not sqlite3' in capsys.readouterr().err
    assert main(['replay', str(bag), '--tasks', 'gesture', '--bundle', f'gesture={tmp_path / "none"}',
                 '--out', str(out)]) == 2
    assert 'gesture: no model bundle at' in capsys.readouterr().err
    assert main(['replay', str(tmp_path / 'nobag'), '--tasks', 'gesture', '--bundle', f'gesture={bundle}']) == 2
    assert 'no such rosbag2' in capsys.readouterr().err


def test_audio_info_follows_the_recorded_audio_type(tmp_path, bundle):
    info = T.bag_info(D.write_bag(tmp_path / 'bag', recording(3)))
    cfg = config(bundle)
    cfg.inputs['audio'].kind = 'naoqi_audio'            # e.g. config/robots/pepper.yaml, but the bag has audio_common
    mapping = T.map_topics(info, cfg)
    assert cfg.inputs['audio'].kind == 'audio' and mapping.topics['/audio_info'] == 'audio_info'
