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
from centralnet_ros.runtime.people import (hri_topic, ids_list_to_ids, parse_hri_topic, PeopleConfig, PeopleRuntime)
from centralnet_ros.runtime.perception import PerceptionConfig, TaskConfig
import numpy as np
import pytest

_NS = 1_000_000_000
RATE = 16000


def test_topics_ids_and_outputs_follow_rep155():
    assert parse_hri_topic('/humans/bodies/tracked') == ('bodies', None, None)
    assert parse_hri_topic('/humans/faces/f3/aligned') == ('faces', 'f3', 'aligned')
    assert parse_hri_topic('/humans/voices/anonymous_speaker/audio') == ('voices', 'anonymous_speaker', 'audio')
    assert parse_hri_topic('/humans/persons/p1/face_id') is None
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
    with pytest.raises(KeyError):
        people.ingest('hands', 'h1', 'audio', later[0])
    people.close()


@pytest.fixture(scope='module')
def people_replay(data_root, tmp_path_factory):
    from centralnet_ros.replay.people_bag import build_people_bag
    out = tmp_path_factory.mktemp('people')
    bag = build_people_bag(out, data_root=data_root)
    tasks = ['emotion'] + (['gesture'] if (paths.models_dir() / 'gesture2d' / 'manifest.yaml').is_file() else [])
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                        os.environ.get('PYTHONPATH', '')])}
    proc = subprocess.run([sys.executable, '-m', 'centralnet_ros.cli', 'replay', str(bag.path), '--tasks', *tasks,
                           '--out', str(out / 'replay'), '--no-progress', '--no-plots'],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    rows = [json.loads(line) for line in (out / 'replay' / 'predictions.jsonl').read_text().splitlines()]
    return bag, rows, tasks, proc.stdout, json.loads((out / 'replay' / 'metrics.json').read_text())


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
