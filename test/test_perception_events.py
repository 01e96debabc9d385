"""Perception's event layer: events equal the detector over the decisions, idle tasks say why, utterance rule."""
from __future__ import annotations

import dataclasses

from centralnet_ros.bundle import load_bundle, save_bundle
from centralnet_ros.runtime.events import detect_events
import numpy as np
import pytest

from test_perception import bundle, feed, LABELS, make  # noqa: F401 (bundle is a fixture)


def with_decision(bundle_dir, tmp_path, **decision):
    b = load_bundle(bundle_dir)
    return save_bundle(tmp_path / 'b', b.model, dataclasses.replace(b.manifest, decision=decision))


def test_events_are_the_detector_over_the_decisions(bundle, tmp_path):  # noqa: F811
    path = with_decision(bundle, tmp_path, on_threshold=0.34, off_threshold=0.3, smoothing_s=0.2, min_gap_s=0.0,
                         reject_labels=['rest'])
    p = make(path, rate_hz=10.0)
    results = feed(p, 40) + p.flush()
    events = p.take_events()
    assert p.take_events() == []                                  # taken once
    assert results and not any(r.published for r in results)     # events mode: decisions are not published
    cfg = p.tasks['gesture'].event_config
    assert (cfg.on_threshold, cfg.smoothing_s, cfg.reject_labels) == (0.34, 0.2, ['rest'])
    expected = detect_events([r.stamp_ns for r in results], np.stack([r.probabilities for r in results]),
                             LABELS, cfg)
    assert [e.to_dict() for e in events] == [e.to_dict() for e in expected]
    assert all(e.label != 'rest' for e in events)
    assert p.stats()['tasks']['gesture']['events'] == len(events)


def test_a_config_threshold_overrides_the_bundle(bundle, tmp_path):  # noqa: F811
    path = with_decision(bundle, tmp_path, on_threshold=0.9, off_threshold=0.45)
    p = make(path, rate_hz=10.0, score_threshold=0.6)
    cfg = p.tasks['gesture'].event_config
    assert cfg.on_threshold == 0.6 and cfg.off_threshold == pytest.approx(0.3)
    p.set_threshold('gesture', 0.8)
    assert p.tasks['gesture'].event_config.on_threshold == 0.8 and p.threshold('gesture') == 0.8


def test_a_task_without_a_required_input_is_idle_and_says_why(bundle, tmp_path):  # noqa: F811
    path = with_decision(bundle, tmp_path, required_modalities=['voice'])
    p = make(path, rate_hz=10.0)
    assert feed(p, 20, audio=False) == []
    task = p.stats()['tasks']['gesture']
    assert task['decisions'] == 0 and 'voice' in task['idle'] and task['idle_counts']['required_missing'] > 0
    fresh = make(path, rate_hz=10.0)
    assert 'no message on input(s) audio, skeleton' in fresh.stats()['tasks']['gesture']['idle']
    ok = make(path, rate_hz=10.0)
    assert feed(ok, 20) and ok.stats()['tasks']['gesture']['idle'] is None
    with pytest.raises(ValueError, match="requires modalities \\['lips'\\]"):
        make(with_decision(bundle, tmp_path / 'x', required_modalities=['lips']))


def test_utterance_mode_publishes_one_accepted_decision_per_utterance(bundle, tmp_path):  # noqa: F811
    path = with_decision(bundle, tmp_path, mode='utterance', threshold=0.0, reject_labels=['rest'],
                         state_time_constant_s=2.0)
    p = make(path, rate_hz=10.0)
    results = feed(p, 30) + p.flush()
    events = p.take_events()
    assert [r.published for r in results] == [r.label != 'rest' for r in results]
    assert len(events) == sum(r.published for r in results)
    state = p.stats()['tasks']['gesture']['state']
    assert set(state) == {''} and state[''][0] in LABELS


def test_smoothed_state_is_kept_per_voice_and_a_config_can_turn_it_on(bundle, tmp_path):  # noqa: F811
    path = with_decision(bundle, tmp_path, mode='utterance', threshold=0.0)      # the bundle keeps no state
    assert make(path, rate_hz=10.0).tasks['gesture'].person_state is None
    off = make(with_decision(bundle, tmp_path / 'on', mode='utterance', state_time_constant_s=2.0), rate_hz=10.0,
               state_time_constant_s=0.0)                                       # the config turns it off
    assert off.tasks['gesture'].person_state is None and all(r.state is None for r in feed(off, 10))
    p = make(path, rate_hz=10.0, state_time_constant_s=1.5)
    p.set_voice('anna')
    first = feed(p, 15)
    p.set_voice('ben')
    second = feed(p, 15, start=first[-1].stamp_ns + 100_000_000)
    assert first and second and {r.state[0] for r in first} == {'anna'} and {r.state[0] for r in second} == {'ben'}
    state = p.stats()['tasks']['gesture']['state']
    assert set(state) == {'anna', 'ben'}
    # the state is the exponential average of the voice's posteriors over header time
    expected = first[0].probabilities.astype(np.float64)
    for a, b in zip(first, first[1:]):
        w = np.exp(-(b.stamp_ns - a.stamp_ns) / 1.5e9)
        expected = w * expected + (1 - w) * b.probabilities
    k = int(np.argmax(expected))
    assert first[-1].state[1:] == (LABELS[k], pytest.approx(expected[k] / expected.sum()))
