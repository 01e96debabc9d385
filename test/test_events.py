"""Event extraction (runtime/events.py) on synthetic posteriors, and the event metrics against hand counts."""
from __future__ import annotations

import dataclasses

from centralnet_ros.config import ConfigError
from centralnet_ros.evaluation.events import event_metrics, match_events, pool_event_metrics, union_ns
from centralnet_ros.replay.calibration import calibrate_events, calibrate_threshold, choose_target, Instance, Stream
from centralnet_ros.runtime.events import (detect_events, Event, EventConfig, GestureEventDetector, SmoothedState,
                                           UtteranceDecider)
import numpy as np
import pytest

NS = 1_000_000_000
LABELS = ['wave', 'point', 'none']


def posteriors(n: int, segments: list[tuple[int, int, int, float]]) -> np.ndarray:
    """(n, 3) posteriors: 'none' everywhere except ``(start, end, class, p)`` frame ranges."""
    p = np.tile([0.05, 0.05, 0.9], (n, 1))
    for a, b, k, v in segments:
        p[a:b] = (1 - v) / 2
        p[a:b, k] = v
    return p


def times(n: int, rate: float = 10.0) -> np.ndarray:
    return (np.arange(n) * NS / rate).astype(np.int64)


def cfg(**kw) -> EventConfig:
    base = {'mode': 'events', 'on_threshold': 0.6, 'off_threshold': 0.4, 'smoothing_s': 0.0, 'min_gap_s': 0.0,
            'min_duration_s': 0.0, 'max_duration_s': 10.0}
    base.update(kw)
    return EventConfig(**base)


def test_one_event_per_instance_with_onset_peak_end():
    p = posteriors(60, [(10, 20, 0, 0.9), (40, 48, 1, 0.8)])
    p[14, 0] = 0.95                                               # the peak
    events = detect_events(times(60), p, LABELS, cfg())
    assert [e.label for e in events] == ['wave', 'point']
    wave = events[0]
    assert wave.onset_ns == times(60)[10] and wave.peak_ns == times(60)[14] and wave.end_ns == times(60)[20]
    assert wave.stamp_ns == wave.end_ns                           # emitted when it closes
    assert wave.score == pytest.approx(0.95)
    assert wave.decisions == 11


def test_none_class_never_makes_an_event():
    p = posteriors(50, [])
    assert detect_events(times(50), p, LABELS, cfg(on_threshold=0.5)) == []


def test_hysteresis_keeps_a_dipping_instance_as_one_event():
    # the posterior dips to 0.5 (below on, above off) in the middle of one performance
    p = posteriors(40, [(10, 14, 0, 0.9), (14, 16, 0, 0.5), (16, 22, 0, 0.9)])
    assert len(detect_events(times(40), p, LABELS, cfg(off_threshold=0.4))) == 1
    # without hysteresis (off == on) the dip splits it in two
    assert len(detect_events(times(40), p, LABELS, cfg(off_threshold=0.6))) == 2


def test_minimum_gap_merges_a_flicker_after_an_event():
    p = posteriors(60, [(10, 20, 0, 0.9), (22, 25, 0, 0.9)])     # a second burst 0.2-0.4 s after the end
    assert len(detect_events(times(60), p, LABELS, cfg(min_gap_s=0.0))) == 2
    assert len(detect_events(times(60), p, LABELS, cfg(min_gap_s=0.5))) == 1
    # a burst 2 s later is a new instance even with the gap
    p = posteriors(80, [(10, 20, 0, 0.9), (40, 50, 1, 0.9)])
    assert len(detect_events(times(80), p, LABELS, cfg(min_gap_s=0.5))) == 2


def test_smoothing_removes_a_single_frame_spike():
    p = posteriors(40, [(20, 21, 1, 0.99)])
    assert len(detect_events(times(40), p, LABELS, cfg(smoothing_s=0.0))) == 1
    assert detect_events(times(40), p, LABELS, cfg(smoothing_s=0.3)) == []


def test_minimum_duration_and_maximum_duration():
    p = posteriors(40, [(10, 12, 0, 0.9)])
    assert detect_events(times(40), p, LABELS, cfg(min_duration_s=0.5)) == []
    p = posteriors(200, [(10, 190, 0, 0.9)])                     # 18 s of one class
    events = detect_events(times(200), p, LABELS, cfg(max_duration_s=4.0, min_gap_s=0.0))
    assert len(events) >= 4 and all(e.end_ns - e.onset_ns <= 4 * NS for e in events)


def test_label_is_the_class_with_most_posterior_over_the_event():
    # opens on a short 'point' frame, then 'wave' dominates
    p = posteriors(40, [(10, 11, 1, 0.7), (11, 20, 0, 0.9)])
    (event,) = detect_events(times(40), p, LABELS, cfg(off_threshold=0.3))
    assert event.label == 'wave'


def test_flush_closes_an_open_event_and_time_going_back_restarts():
    det = GestureEventDetector(LABELS, cfg())
    for t, row in zip(times(10), posteriors(10, [(5, 10, 0, 0.9)])):
        assert det.update(int(t), row) == []
    assert det.active == 'wave'
    (event,) = det.flush()
    assert event.label == 'wave' and det.flush() == []
    det = GestureEventDetector(LABELS, cfg())
    det.update(5 * NS, np.array([0.9, 0.05, 0.05]))
    out = det.update(1 * NS, np.array([0.05, 0.05, 0.9]))        # a loop in a bag: the open event is closed
    assert [e.label for e in out] == ['wave']


def test_bad_shapes_and_configs_are_refused():
    det = GestureEventDetector(LABELS, cfg())
    with pytest.raises(ValueError, match='expected 3 posteriors'):
        det.update(0, np.ones(4))
    with pytest.raises(ValueError, match='off_threshold'):
        EventConfig(on_threshold=0.4, off_threshold=0.6)
    with pytest.raises(ValueError, match='rejection label'):
        GestureEventDetector(['none'], cfg())
    with pytest.raises(ConfigError, match='bogus'):
        EventConfig.from_manifest({'bogus': 1})
    assert EventConfig.from_manifest(None, trigger='speech_end').mode == 'utterance'
    assert EventConfig.from_manifest(None, trigger='rate').mode == 'events'


def test_utterance_decider_rejects_the_reject_class_and_low_scores():
    d = UtteranceDecider(['A', 'B', 'not_a_letter'], EventConfig(threshold=0.6))
    assert d.update(5, np.array([0.1, 0.2, 0.7]), segment=(1, 9)) == []
    assert d.update(5, np.array([0.5, 0.4, 0.1]), segment=(1, 9)) == []
    (e,) = d.update(5, np.array([0.8, 0.1, 0.1]), segment=(1, 9), person='p1')
    assert (e.label, e.onset_ns, e.peak_ns, e.end_ns, e.stamp_ns, e.person) == ('A', 1, 5, 9, 5, 'p1')


def test_smoothed_state_per_person():
    s = SmoothedState(['happy', 'sad'], time_constant_s=1.0)
    assert s.update('a', 0, np.array([1.0, 0.0]))[0] == 'happy'
    label, score, _ = s.update('a', NS // 10, np.array([0.0, 1.0]))   # 0.1 s later: the state barely moves
    assert label == 'happy' and score > 0.85
    label, _, _ = s.update('a', 10 * NS, np.array([0.0, 1.0]))         # 10 s later: the new posterior wins
    assert label == 'sad'
    assert s.update('b', 0, np.array([0.0, 1.0]))[0] == 'sad' and s.persons == ['a', 'b']


# --------------------------------------------------------------------------- metrics, by hand


def ev(label, peak_s, stamp_s=None, score=0.9):
    peak = int(peak_s * NS)
    stamp = int((stamp_s if stamp_s is not None else peak_s) * NS)
    return Event('gesture', label, score, peak, peak, peak, stamp)


def inst(label, a, b):
    return Instance(label, int(a * NS), int(b * NS))


def test_metrics_against_hand_counts():
    instances = [inst('wave', 10, 12), inst('point', 20, 22), inst('wave', 30, 32)]
    events = [ev('wave', 11, 12.5),            # match (latency +0.5 s)
              ev('wave', 11.5, score=0.5),     # second event in a matched instance: substitution
              ev('wave', 21),                  # wrong label in 'point': substitution, point missed
              ev('point', 40),                 # outside: false alarm
              ev('wave', 31.9, 31.5)]          # match (latency -0.5 s)
    m = event_metrics(events, instances, span_ns=(0, 60 * NS), labels=['wave', 'point'])
    assert (m['events'], m['instances'], m['matched']) == (5, 3, 2)
    assert (m['false_alarms'], m['substitutions'], m['missed']) == (1, 2, 1)
    assert m['precision'] == pytest.approx(2 / 5) and m['recall'] == pytest.approx(2 / 3)
    assert m['f1'] == pytest.approx(2 * (2 / 5) * (2 / 3) / (2 / 5 + 2 / 3))
    assert m['non_target_s'] == pytest.approx(54.0)                  # 60 s minus 3 x 2 s
    assert m['false_alarms_per_min'] == pytest.approx(1 / 0.9)
    assert sorted(m['latencies_s']) == pytest.approx([-0.5, 0.5])
    # rows: truth; columns: wave, point, (missed)
    assert m['confusion'] == [[2, 0, 0], [1, 0, 0]]


def test_the_higher_scored_event_takes_the_instance():
    instances = [inst('wave', 0, 2)]
    m = match_events([ev('wave', 0.5, score=0.6), ev('wave', 1.5, score=0.9)], instances)
    assert m.pairs == [(1, 0)] and m.substitutions == [(0, 0)]


def test_no_target_recording():
    m = event_metrics([], [], span_ns=(0, 120 * NS))
    assert m['precision'] is None and m['recall'] is None and m['false_alarms_per_min'] == 0.0
    m = event_metrics([ev('wave', 5), ev('point', 50)], [], span_ns=(0, 120 * NS))
    assert m['false_alarms'] == 2 and m['false_alarms_per_min'] == pytest.approx(1.0)
    assert m['precision'] == 0.0 and m['recall'] is None


def test_explicit_background_segments_define_non_target_time():
    instances = [inst('wave', 10, 12)]
    events = [ev('wave', 5), ev('wave', 50)]
    m = event_metrics(events, instances, span_ns=(0, 60 * NS), background=[(40 * NS, 70 * NS)])
    assert m['non_target_s'] == pytest.approx(20.0)                  # clipped to the span
    assert m['false_alarms'] == 2 and m['false_alarms_in_non_target'] == 1
    assert m['false_alarms_per_min'] == pytest.approx(3.0)


def test_pooling_sums_counts():
    a = event_metrics([ev('wave', 11)], [inst('wave', 10, 12)], span_ns=(0, 60 * NS))
    b = event_metrics([ev('wave', 30)], [inst('wave', 10, 12)], span_ns=(0, 60 * NS))
    p = pool_event_metrics([a, b])
    assert (p['events'], p['instances'], p['matched'], p['false_alarms']) == (2, 2, 1, 1)
    assert p['f1'] == pytest.approx(0.5) and p['non_target_s'] == pytest.approx(116.0)
    assert union_ns([(0, 5), (3, 8), (10, 12)]) == 10


# --------------------------------------------------------------------------- calibration


def test_calibration_meets_the_false_alarm_target_on_synthetic_streams():
    rng = np.random.default_rng(0)
    streams = []
    for k in range(4):
        n = 600                                                      # 60 s at 10 Hz
        segs, inst_list = [], []
        for start in range(50, 550, 100):
            segs.append((start, start + 10, k % 2, 0.9))
            inst_list.append(Instance(LABELS[k % 2], int(times(n)[start - 5]), int(times(n)[start + 15])))
        p = posteriors(n, segs)
        for spike in rng.integers(0, n, 6):                         # one-frame distractor spikes
            p[spike] = [0.05, 0.85, 0.1] if k % 2 == 0 else [0.85, 0.05, 0.1]
        streams.append(Stream(f's{k}', times(n), p, inst_list, (0, int(times(n)[-1]))))
    config = calibrate_events(streams, LABELS, target_false_alarms_per_min=0.1,
                              grid={'on_threshold': (0.6, 0.8), 'smoothing_s': (0.0, 0.3)}, data='synthetic')
    assert config.calibration['target_met'] and config.calibration['false_alarms_per_min'] <= 0.1
    assert config.smoothing_s == 0.3 and config.calibration['f1'] == pytest.approx(1.0)
    assert dataclasses.asdict(config)['calibration']['data'] == 'synthetic'


def test_per_person_calibration_holds_the_target_for_each_person_not_only_pooled():
    # person a: distractors of score 0.7 (6 in 1 min); persons b, c, d: none, and some gestures of theirs
    # reach only 0.7. Pooled over the 3.3 min of non-target time a threshold of 0.6 finds every gesture with
    # 1.8 false alarms / min; person a alone has 7.2, so per person only 0.8 holds the target (missing some).
    streams = []
    for k, person in enumerate('abcd'):
        n = 600
        segs = [(start, start + 10, 0, 0.9 if person == 'a' or start // 100 % 2 else 0.7)
                for start in range(50, 550, 100)]
        inst = [Instance('wave', int(times(n)[s - 5]), int(times(n)[s + 15])) for s, *_ in segs]
        p = posteriors(n, segs)
        if person == 'a':
            for spike in range(0, 600, 100):
                p[spike:spike + 3] = [0.7, 0.2, 0.1]
        streams.append(Stream(f'rec_{person}', times(n), p, inst, (0, int(times(n)[-1]))))
    grid = {'on_threshold': (0.6, 0.8)}
    pooled = calibrate_events(streams, LABELS, target_false_alarms_per_min=2.0, grid=grid)
    each = calibrate_events(streams, LABELS, target_false_alarms_per_min=2.0, grid=grid,
                            group=lambda s: s.name.split('_')[1])
    assert pooled.on_threshold == 0.6 and pooled.calibration['false_alarms_per_min'] == pytest.approx(1.8, abs=0.05)
    assert each.on_threshold == 0.8 and each.calibration['worst_group_false_alarms_per_min'] == 0.0
    assert each.calibration['target_met'] and each.calibration['recall'] < pooled.calibration['recall'] == 1.0


def test_choose_target_keeps_the_largest_target_whose_held_out_person_stays_within_the_budget():
    # persons a and b, 2 recordings each (50 s of non-target time each): one distractor of score 0.7 per
    # recording (1.2 false alarms / min at threshold 0.6), gestures at 0.9 and 0.75. Calibrated on one person
    # for 2 / min, threshold 0.6 keeps the distractors and the held-out person gets 1.2 / min; for 0 / min,
    # threshold 0.8 drops them (and the 0.75 gestures) and the held-out person gets none.
    streams = []
    for person in 'ab':
        for r in range(2):
            n = 600
            segs = [(start, start + 10, 0, 0.9 if start // 100 % 2 else 0.75) for start in range(50, 550, 100)]
            p = posteriors(n, segs)
            p[100:103] = [0.7, 0.2, 0.1]
            inst = [Instance('wave', int(times(n)[s - 5]), int(times(n)[s + 15])) for s, *_ in segs]
            streams.append(Stream(f'rec{r}_{person}', times(n), p, inst, (0, int(times(n)[-1]))))
    kw = {'group': lambda s: s.name.split('_')[1], 'targets': (2.0, 0.0), 'grid': {'on_threshold': (0.6, 0.8)}}
    target, rows = choose_target(streams, LABELS, budget_per_min=0.5, **kw)
    assert target == 0.0 and [r['target'] for r in rows] == [2.0, 0.0]
    assert rows[0]['held_out_worst_false_alarms_per_min'] == pytest.approx(1.2, abs=0.01) and not rows[0]['budget_met']
    assert rows[1]['held_out_worst_false_alarms_per_min'] == 0.0 and rows[1]['budget_met']
    assert rows[1]['held_out_f1'] < rows[0]['held_out_f1']            # the tighter target costs recall
    assert choose_target(streams, LABELS, budget_per_min=2.0, **kw)[0] == 2.0
    with pytest.raises(ValueError, match='at least 2 persons'):
        choose_target(streams[:2], LABELS, budget_per_min=1.0, **kw)


def test_threshold_calibration_hand_example():
    neg = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95])
    thr, rec = calibrate_threshold(neg, target_rate=0.1, positive_scores=np.array([0.92, 0.99, 0.5]))
    assert 0.9 < thr <= 0.95 and rec['negative_rate'] == pytest.approx(0.1)
    assert rec['positive_kept'] == pytest.approx(2 / 3)
    thr, rec = calibrate_threshold(neg, target_rate=0.0)
    assert thr > 0.95 and rec['negative_rate'] == 0.0


def test_whole_stream_smoothing_equals_streaming():
    rng = np.random.default_rng(1)
    p = rng.dirichlet([0.5, 0.5, 0.5], size=300)
    t = np.cumsum(rng.integers(50, 150, 300)) * 1_000_000             # irregular decision times
    config = cfg(smoothing_s=0.35, on_threshold=0.55, off_threshold=0.45, min_gap_s=0.3)
    det = GestureEventDetector(LABELS, config)
    streamed = [e for ti, pi in zip(t, p) for e in det.update(int(ti), pi)] + det.flush()
    whole = detect_events(t, p, LABELS, config)
    assert len(whole) > 3
    assert [(e.label, e.onset_ns, e.peak_ns, e.end_ns) for e in streamed] == \
        [(e.label, e.onset_ns, e.peak_ns, e.end_ns) for e in whole]


def test_replay_evaluation_counts_events_background_and_no_target_recordings():
    from centralnet_ros.replay.evaluate import evaluate
    from centralnet_ros.replay.labels import LabelSegment
    names = {'gesture': ['wave', 'point', 'none'], 'speech': ['A', 'B', 'not_a_letter']}
    segs = [LabelSegment('gesture', 10 * NS, 12 * NS, 'wave'), LabelSegment('gesture', 20 * NS, 40 * NS, 'background'),
            LabelSegment('gesture', 50 * NS, 52 * NS, 'none')]
    events = [ev('wave', 11), ev('point', 30), ev('point', 51)]
    events.append(Event('speech', 'A', 0.9, 5 * NS, 6 * NS, 7 * NS, 7 * NS))
    m = evaluate([], segs, names, events=events, span_ns=(0, 60 * NS))
    g = m['gesture']['events']
    assert (g['matched'], g['false_alarms'], g['false_alarms_in_non_target']) == (1, 2, 1)
    assert g['non_target_s'] == pytest.approx(20.0) and g['false_alarms_per_min'] == pytest.approx(3.0)
    s = m['speech']['events']
    assert s['no_target'] and s['events_on_no_target'] == 1 and s['false_alarms_per_min'] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="'dance'"):
        evaluate([], [LabelSegment('gesture', 0, NS, 'dance')], names, events=[])
