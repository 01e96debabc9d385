"""
Per-person runtime (ROS4HRI): persons come and go with their ids, memory stays bounded, results are per person.

With the shipped emotion (and, when built, 2-D gesture) bundles; two people in a rosbag2
recording generated from real MSRC-12 and EmoDB samples, replayed by ``centralnet replay``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
import subprocess
import sys
import tracemalloc

from centralnet_ros import messages as M
from centralnet_ros import paths
from centralnet_ros.runtime.people import (hri_topic, ids_list_to_ids, link_to_id, parse_hri_topic, PeopleConfig,
                                           PeopleRuntime)
from centralnet_ros.runtime.perception import PerceptionConfig, TaskConfig
import numpy as np
import pytest

_NS = 1_000_000_000
RATE = 16000


def test_topics_ids_and_outputs_follow_rep155():
    assert parse_hri_topic('/humans/bodies/tracked') == ('bodies', None, None)
    assert parse_hri_topic('/humans/faces/f3/aligned') == ('faces', 'f3', 'aligned')
    assert parse_hri_topic('/humans/voices/anonymous_speaker/audio') == ('voices', 'anonymous_speaker', 'audio')
    assert parse_hri_topic('/humans/persons/p1/face_id') == ('persons', 'p1', 'face_id')
    assert parse_hri_topic('/humans/persons/tracked') == ('persons', None, None)
    assert parse_hri_topic('/humans/persons/p1/engagement_status') is None      # not an association
    assert parse_hri_topic('/humans/bodies/tracked/x') is None and parse_hri_topic('/camera/image') is None
    assert ids_list_to_ids({'ids': ['a1', 'b_2']}) == ['a1', 'b_2']
    with pytest.raises(ValueError, match='name tokens'):
        ids_list_to_ids({'ids': ['a/b']})
    ids = {'faces': 'f1', 'voices': 'v1', 'bodies': 'b1'}
    assert hri_topic('emotion', ids) == '/humans/faces/f1/expression'
    assert hri_topic('speech', ids) == '/humans/voices/v1/speech'
    assert hri_topic('gesture', ids) == '/humans/bodies/b1/gesture'
    assert hri_topic('emotion', {'voices': 'v1'}) is None


@pytest.fixture(scope='module')
def emotion_people_config():
    return PerceptionConfig(tasks={'emotion': TaskConfig(bundle=str(paths.models_dir() / 'emotion'),
                                                         trigger='speech_end')},
                            backend='torch', warmup=0)


def _chunks(wave: np.ndarray, t0_ns: int):
    """Cut 20 ms AudioDataStamped (dict) chunks, and give the stream's AudioInfo."""
    n = RATE // 50
    out, info = [], None
    for k in range(0, wave.size - n + 1, n):
        msg, info = M.build_audio(M.dict_factory, wave[k:k + n, None], sample_rate=RATE,
                                  stamp_ns=t0_ns + k * _NS // RATE)
        out.append(msg)
    return out, info


def _speech(seconds: float, rng) -> np.ndarray:
    """Silence, a voiced burst (harmonics of 150 Hz) and silence: something the voice detector ends."""
    t = np.arange(int(seconds * RATE)) / RATE
    voiced = sum(np.sin(2 * np.pi * 150 * h * t) / h for h in range(1, 8)) * 0.2
    wave = rng.normal(0, 1e-3, t.size)
    a, b = int(0.3 * RATE), int((seconds - 0.6) * RATE)
    wave[a:b] += voiced[a:b]
    return wave.astype(np.float32)


def test_fifty_voices_coming_and_going_keep_memory_bounded(emotion_people_config):
    people = PeopleRuntime(emotion_people_config, PeopleConfig(max_people=5))
    rng = np.random.default_rng(0)
    wave = _speech(1.5, rng)
    held, decided = [], set()
    sizes = {}
    tracemalloc.start()
    for i in range(50):
        t0 = (10 + 2 * i) * _NS
        people.set_tracked('voices', [f'v{i}', f'v{i + 1}'])          # two voices at a time; v{i-1} has left
        chunks, info = _chunks(wave, t0)
        people.ingest('voices', f'v{i}', 'audio_info', info)
        for msg in chunks:
            for r in people.ingest('voices', f'v{i}', 'audio', msg):
                decided.add(r.person)
                assert r.ids == {'voices': f'v{i}'} and r.hri_topic is None   # a voice has no face to publish on
        held.append(len(people.people))
        if i in (9, 49):
            sizes[i] = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    stats = people.stats()
    assert max(held) <= 2                                          # only the tracked voices are held
    assert stats['counts']['created'] == 50 and stats['counts']['dropped'] == 49
    assert len(decided) >= 45                                      # nearly every voice got its decision
    assert sizes[49] - sizes[9] < 2_000_000                        # 40 more persons came and went: no growth
    people.close()


def test_ids_beyond_the_limit_are_refused_and_idle_persons_dropped(emotion_people_config):
    people = PeopleRuntime(emotion_people_config, PeopleConfig(max_people=3, idle_timeout_s=1.0,
                                                               require_tracked=False))
    chunks, info = _chunks(np.zeros(RATE // 10, np.float32), 5 * _NS)
    for i in range(5):
        people.ingest('voices', f'v{i}', 'audio_info', info)
        people.ingest('voices', f'v{i}', 'audio', chunks[0])
    assert len(people.people) == 3 and people.counts['refused'] == 4      # 2 ids x 2 messages refused
    later, _ = _chunks(np.zeros(RATE // 10, np.float32), 8 * _NS)
    people.ingest('voices', 'v0', 'audio', later[0])               # v1, v2 silent for 3 s of header time
    assert set(people.people) == {'voices:v0'} and people.counts['dropped_idle'] == 2
    people.associate('alice', faces='f1', voices='v7')
    people.ingest('voices', 'v7', 'audio', later[1])
    people.ingest('faces', 'f1', 'image', {'bad': 'message'})     # counted by the person's runtime, no exception
    assert people.stats()['persons']['persons:alice']['ids'] == {'voices': 'v7', 'faces': 'f1'}
    assert people.link('alice', 'voices', {'data': 'v/8'}) == [] and people.counts['bad_link'] == 1
    assert link_to_id({'data': ' v8 '}) == 'v8' and link_to_id({'data': ''}) == ''
    with pytest.raises(ValueError, match='std_msgs/String'):
        link_to_id({'ids': ['v8']})
    with pytest.raises(KeyError):
        people.ingest('hands', 'h1', 'audio', later[0])
    people.close()


def _replay_people(data_root, out, **options):
    from centralnet_ros.replay.people_bag import build_people_bag
    bag = build_people_bag(out, data_root=data_root, **options)
    tasks = ['emotion'] + (['gesture'] if (paths.models_dir() / 'gesture2d' / 'manifest.yaml').is_file() else [])
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                        os.environ.get('PYTHONPATH', '')])}
    proc = subprocess.run([sys.executable, '-m', 'centralnet_ros.cli', 'replay', str(bag.path), '--tasks', *tasks,
                           '--out', str(out / 'replay'), '--no-progress', '--no-plots'],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    rows = [json.loads(line) for line in (out / 'replay' / 'predictions.jsonl').read_text().splitlines()]
    return bag, rows, tasks, proc.stdout, json.loads((out / 'replay' / 'metrics.json').read_text())


@pytest.fixture(scope='module')
def people_replay(data_root, tmp_path_factory):
    return _replay_people(data_root, tmp_path_factory.mktemp('people'))


def test_replay_of_two_people_gives_each_their_own_decisions(people_replay):
    bag, rows, tasks, stdout, metrics = people_replay
    assert 'one runtime per person' in stdout
    t0 = min(s['start_s'] for s in bag.segments)
    emotion = [r for r in rows if r['task'] == 'emotion']
    assert {r['person'] for r in emotion} == {'voices:v1', 'voices:v2'}
    for r in emotion:                                              # each decision lies in its own voice's speech
        voice = [s for s in bag.segments if s['person'] == r['person']]
        assert any(s['start_s'] <= r['time_s'] <= s['end_s'] for s in voice), (r, t0)
        assert r['hri_topic'] is None and r['ids'] == {'voices': r['person'].split(':')[1]}
    assert metrics['people']['counts']['created'] >= 4             # b1, b2, b3, v1, v2 (those with data)
    assert metrics['people']['counts']['dropped_untracked'] >= 1   # b2 left the view


def test_replay_of_two_people_recognises_each_persons_gestures(people_replay):
    bag, rows, tasks, _, _ = people_replay
    if 'gesture' not in tasks:
        pytest.skip('models/gesture2d not built')
    gestures = [r for r in rows if r['task'] == 'gesture']
    bodies = {r['person'] for r in gestures}
    assert {'bodies:b1', 'bodies:b2', 'bodies:b3'} <= bodies
    for r in gestures:
        assert r['hri_topic'] == f'/humans/bodies/{r["ids"]["bodies"]}/gesture'
    cut = min(r['time_s'] for r in gestures if r['person'] == 'bodies:b3')
    assert max(r['time_s'] for r in gestures if r['person'] == 'bodies:b2') < cut   # b2 went, b3 came
    hits = 0
    for s in [s for s in bag.segments if s['task'] == 'gesture']:
        inside = [r['label'] for r in gestures
                  if r['person'] == s['person'] and s['start_s'] <= r['time_s'] <= s['end_s']]
        hits += bool(inside) and max(set(inside), key=inside.count) == s['label']
    assert hits >= 2                                               # of 4 gestures, 2 people at once (chance 1/13)


# ---------------------------------------------------------------- REP-155 persons: associated face, body, voice
FPS = 25


def _face_frames(seconds: float, t0_ns: int, rng) -> list:
    """25 fps 60x80 grey mouth-region images (Image dicts): what an aligned-face pipeline hands the lips model."""
    base = rng.integers(60, 200, (60, 80)).astype(np.float32)
    out = []
    for k in range(int(seconds * FPS)):
        img = np.clip(base + 20 * np.sin(0.5 * k) * np.linspace(-1, 1, 60)[:, None], 0, 255).astype(np.uint8)
        out.append(M.build_image(M.dict_factory, img, encoding='mono8', stamp_ns=t0_ns + k * _NS // FPS))
    return out


def _play(people, streams) -> list:
    """Feed ``(kind, id, input, [msgs])`` streams in header-time order; the results."""
    items = []
    for kind, entity, name, msgs in streams:
        for msg in msgs:
            stamp = msg['header']['stamp']
            items.append((stamp['sec'] * _NS + stamp['nanosec'], kind, entity, name, msg))
    out = []
    for _, kind, entity, name, msg in sorted(items, key=lambda i: i[0]):
        out += people.ingest(kind, entity, name, msg)
    return out


@pytest.fixture(scope='module')
def speech_people_config():
    return PerceptionConfig(tasks={'speech': TaskConfig(bundle=str(paths.models_dir() / 'speech'),
                                                        trigger='speech_end'),
                                   'emotion': TaskConfig(bundle=str(paths.models_dir() / 'emotion'),
                                                         trigger='speech_end')},
                            backend='torch', warmup=0)


@pytest.mark.parametrize('associated', [False, True])
def test_a_person_fuses_its_faces_lips_with_its_voice_and_publishes_on_both(speech_people_config, associated):
    """With /humans/persons/p1 = face f1 + voice v1: one runtime, speech fuses f1's lips, emotion goes on f1."""
    people = PeopleRuntime(speech_people_config, PeopleConfig(max_people=4))
    rng = np.random.default_rng(1)
    people.set_tracked('faces', ['f1'])
    people.set_tracked('voices', ['v1'])
    if associated:
        people.set_tracked('persons', ['p1'])
        people.route(('persons', 'p1', 'face_id'), {'data': 'f1'})        # as /humans/persons/p1/face_id carries it
        people.route(('persons', 'p1', 'voice_id'), {'data': 'v1'})
    t0 = 10 * _NS
    wave = np.concatenate([_speech(1.5, rng), _speech(1.5, rng)])
    chunks, info = _chunks(wave, t0)
    people.ingest('voices', 'v1', 'audio_info', info)
    results = _play(people, [('voices', 'v1', 'audio', chunks), ('faces', 'f1', 'image', _face_frames(3.0, t0, rng))])
    results += people.flush()
    speech = [r for r in results if r.task == 'speech']
    emotion = [r for r in results if r.task == 'emotion']
    assert speech and emotion
    if associated:
        assert set(people.people) == {'persons:p1'}                        # ONE set of buffers for face and voice
        assert all(r.person == 'persons:p1' and r.ids == {'faces': 'f1', 'voices': 'v1'} for r in results)
        assert all(r.present['lip_video'] and r.present['mfcc'] for r in speech)        # its lips and its voice
        assert {r.hri_topic for r in speech} == {'/humans/voices/v1/speech'}
        assert {r.hri_topic for r in emotion} == {'/humans/faces/f1/expression'}      # REP-155 puts it on the face
    else:
        assert {r.person for r in results} == {'voices:v1'}                # the face alone never decides
        assert not any(r.present['lip_video'] for r in speech)
        assert {r.hri_topic for r in emotion} == {None}
    people.close()


def _utterance(people, voice: str, t0_ns: int, rng, *, split: float | None = None, between=None) -> list:
    """One utterance of ``voice``; ``between()`` runs (its results kept) after ``split`` of its chunks."""
    chunks, info = _chunks(_speech(1.5, rng), t0_ns)
    people.ingest('voices', voice, 'audio_info', info)
    cut = len(chunks) if split is None else int(split * len(chunks))
    out = []
    for msg in chunks[:cut]:
        out += people.ingest('voices', voice, 'audio', msg)
    if between is not None:
        out += between()
    for msg in chunks[cut:]:
        out += people.ingest('voices', voice, 'audio', msg)
    return out


def test_association_changes_never_publish_under_a_stale_id_nor_keep_buffers(emotion_people_config):
    people = PeopleRuntime(emotion_people_config, PeopleConfig(max_people=4))
    rng = np.random.default_rng(2)
    people.set_tracked('voices', ['v1'])
    people.set_tracked('faces', ['f1', 'f2'])
    people.set_tracked('persons', ['p1', 'p2'])

    # v1 speaks alone, and is associated with p1 mid-utterance: its buffers move along, nothing is lost
    first = _utterance(people, 'v1', 10 * _NS, rng, split=0.5,
                       between=lambda: people.decide(people.link('p1', 'voices', {'data': 'v1'})))
    assert people.counts['renamed'] == 1 and people.counts['dropped'] == 0 and set(people.people) == {'persons:p1'}
    assert [r.person for r in first] == ['persons:p1'] and first[0].ids == {'voices': 'v1'}

    # p1's face becomes f1: the same buffers, and emotion now goes on the face (REP-155)
    assert people.associate('p1', faces='f1') == []
    second = _utterance(people, 'v1', 12 * _NS, rng)
    assert [r.hri_topic for r in second] == ['/humans/faces/f1/expression']

    # f1 is re-associated with p2 mid-utterance: p1 closes (its open utterance is decided under the ids its data
    # came from) and starts afresh; nothing p1 decides afterwards goes to f1
    moved = []
    third = _utterance(people, 'v1', 14 * _NS, rng, split=0.5,
                       between=lambda: moved.extend(people.decide(people.link('p2', 'faces', 'f1'))) or [])
    assert people.counts['dropped_reassociated'] == 1
    assert [r.ids for r in moved] == [{'voices': 'v1', 'faces': 'f1'}]           # the data was f1's person's
    fourth = _utterance(people, 'v1', 16 * _NS, rng)
    assert third + fourth and all(r.ids == {'voices': 'v1'} and r.hri_topic is None for r in third + fourth)
    assert people.stats()['associations'] == {'p1': {'voices': 'v1'}, 'p2': {'faces': 'f1'}}

    # p1's face becomes f2, then p1 leaves /humans/persons/tracked: v1 goes on alone
    people.associate('p1', faces='f2')
    fifth = _utterance(people, 'v1', 18 * _NS, rng)
    assert [r.hri_topic for r in fifth] == ['/humans/faces/f2/expression']
    people.set_tracked('persons', ['p2'])
    assert 'persons:p1' not in people.people and people.stats()['associations'] == {'p2': {'faces': 'f1'}}
    sixth = _utterance(people, 'v1', 20 * _NS, rng)
    assert [(r.person, r.hri_topic) for r in sixth] == [('voices:v1', None)]
    people.set_tracked('persons', [])
    assert people._links == {} and people._assoc == {}
    assert set(people._route) == {('voices', 'v1')}
    people.close()


def test_fifty_persons_coming_and_going_keep_memory_bounded(emotion_people_config):
    people = PeopleRuntime(emotion_people_config, PeopleConfig(max_people=4))
    rng = np.random.default_rng(3)
    sizes, held = {}, []
    tracemalloc.start()
    for i in range(50):
        face, voice, person = f'f{i}', f'v{i}', f'p{i}'
        people.set_tracked('faces', [face])
        people.set_tracked('voices', [voice])
        people.set_tracked('persons', [person])
        link = lambda: people.associate(person, faces=face, voices=voice)     # noqa: E731
        if i % 2:
            link()                                     # associated before its data, or while it speaks
        results = _utterance(people, voice, (10 + 2 * i) * _NS, rng, split=0.3, between=None if i % 2 else link)
        assert results and all(set(r.ids.values()) <= {face, voice} for r in results)    # never another's id
        assert results[-1].hri_topic == f'/humans/faces/{face}/expression'
        held.append((len(people.people), len(people._route), len(people._links), len(people._assoc)))
        if i in (9, 49):
            sizes[i] = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert max(h[0] for h in held) <= 2 and max(h[1] for h in held) <= 3
    assert max(h[2] for h in held) <= 2 and max(h[3] for h in held) <= 1
    assert people.counts['persons_left'] == 49
    assert sizes[49] - sizes[9] < 2_000_000
    people.close()


def test_diagnostics_say_per_person_why_it_gets_no_decisions(emotion_people_config):
    from centralnet_ros.ros.diagnostics import PEOPLE_DETAIL, people_report
    people = PeopleRuntime(emotion_people_config, PeopleConfig(max_people=PEOPLE_DETAIL + 3))
    rng = np.random.default_rng(4)
    people.set_tracked('persons', ['p1'])
    people.associate('p1', faces='f1', voices='v1')
    _utterance(people, 'v1', 10 * _NS, rng)                              # p1 decides
    face = M.build_image(M.dict_factory, np.zeros((60, 80), np.uint8), encoding='mono8', stamp_ns=11 * _NS)
    people.ingest('faces', 'f2', 'image', face)                           # a face without a voice: emotion idles
    silence, info = _chunks(np.zeros(RATE // 10, np.float32), 11 * _NS)
    for i in range(2, PEOPLE_DETAIL + 3):                                 # 11 voices: more than the detail cap
        people.ingest('voices', f'v{i}', 'audio_info', info)
        people.ingest('voices', f'v{i}', 'audio', silence[0])
    people.ingest('voices', 'v99', 'audio', silence[1])                   # one too many: refused
    previous: dict = {}
    report = people_report(people.stats(detail=PEOPLE_DETAIL), previous=previous)
    assert report.level == 'warn' and 'max_people' in report.message
    values = report.values
    assert values['associations (REP-155 persons)'] == 'p1: faces:f1 voices:v1'
    p1 = values['person persons:p1']
    assert p1.startswith('faces:f1 voices:v1;') and 'emotion: 1 decisions, last ' in p1
    assert 'emotion: no decision yet: no message on input(s) audio' in values['person faces:f2']
    described = [k for k in values if k.startswith('person ')]
    assert len(described) == PEOPLE_DETAIL                                # bounded, the rest in one line
    assert values['other persons'].startswith('3 more (0 deciding, 3 without a decision yet): voices:')   # 13 held
    again = people_report(people.stats(detail=PEOPLE_DETAIL), previous=previous)
    assert again.level == 'ok' and again.message == f'{PEOPLE_DETAIL + 3} persons (1 associated), 1 deciding'
    people.close()


def test_aligned_faces_give_lips_at_the_fixed_mouth_place():
    """ROS4HRI aligned faces (128x128, eyes level) need no face detector: the mouth is at a fixed place."""
    import yaml

    from centralnet_ros.features.pipelines import Window
    from centralnet_ros.features.speech import lip_input
    from centralnet_ros.runtime.people import face_pipelines
    manifest = yaml.safe_load((paths.models_dir() / 'speech' / 'manifest.yaml').read_text())
    params = manifest['modalities']['lip_video']['preprocessing']
    assert params['mouth']['source'] == 'auto'
    rng = np.random.default_rng(5)
    faces = Window(rng.integers(0, 255, (20, 128, 128, 3), dtype=np.uint8), np.arange(20) * _NS // FPS)
    assert lip_input(faces, **params) is None                       # a detector finds no face in a face crop of noise
    lips = face_pipelines('aligned')['lip_video'](faces, **params)
    assert lips is not None and lips.shape == tuple(manifest['modalities']['lip_video']['input_shape'])
    crops = Window(rng.integers(0, 255, (20, 60, 80), dtype=np.uint8), np.arange(20) * _NS // FPS)
    np.testing.assert_array_equal(face_pipelines('aligned')['lip_video'](crops, **params), lip_input(crops, **params))
    assert face_pipelines('cropped') == {}


@pytest.mark.slow
def test_replay_follows_a_person_manager_s_associations(data_root, tmp_path):
    """The bag's /humans/persons: p1 = body b1 + voice v1 decide as one person, results on both ids' topics."""
    bag, rows, tasks, stdout, metrics = _replay_people(data_root, tmp_path, associate=True)
    assert metrics['people']['associations'] == {'p1': {'bodies': 'b1', 'voices': 'v1'}}
    assert metrics['people']['counts']['linked'] == 2
    emotion = [r for r in rows if r['task'] == 'emotion']
    assert {r['person'] for r in emotion} == {'persons:p1', 'voices:v2'}
    assert all(r['ids'] == {'bodies': 'b1', 'voices': 'v1'} for r in emotion if r['person'] == 'persons:p1')
    if 'gesture' in tasks:
        gestures = [r for r in rows if r['task'] == 'gesture']
        assert {'persons:p1', 'bodies:b2', 'bodies:b3'} <= {r['person'] for r in gestures}
        assert {r['hri_topic'] for r in gestures if r['person'] == 'persons:p1'} == {'/humans/bodies/b1/gesture'}
