"""
The DDS benchmark's trace summary: each decision's time split into its segments, the slow ones named.

:func:`centralnet_ros.ros.bench_dds.trace_summary` reads what ``--trace-node`` records in the
node (callback, hand-over to the worker, decision, publish, buffer lock, garbage collections)
plus the publish times of the load generator and the arrival times at the receiver.  No ROS
here: the trace is made up, with one decision held in the worker's queue.
"""
from __future__ import annotations

from centralnet_ros.ros.bench_dds import SEGMENTS, trace_summary

MS = 1_000_000


def _decision(stamp: int, t: int, *, wait: int = 1) -> tuple[list, tuple, int]:
    """Trace entries of one gesture decision whose frame was published at ``t`` (ms); ``wait``: in the worker queue."""
    cb0, cb1 = t + 2 * MS, t + 3 * MS
    d0 = cb1 + wait * MS
    d1 = d0 + 2 * MS
    trace = [('cb', 'skeleton', stamp, cb0, cb1), ('submit', 'gesture', stamp, cb1),
             ('lock', 'buffers', 'MainThread', cb0, cb0, cb0 + MS // 2),
             ('decide', 'gesture', stamp, d0, d1), ('publish', [('gesture', stamp)], d1, d1 + MS)]
    return trace, (t, stamp), d1 + 3 * MS


def test_segments_add_up_and_the_slow_decision_is_blamed_on_its_queue():
    trace, published, received = [], [], {}
    for k in range(40):
        stamp, t = 10_000 + k, 1_000 * MS + k * 33 * MS
        entries, pub, arrival = _decision(stamp, t, wait=150 if k == 17 else 1)
        trace += entries
        published.append(pub)
        received[stamp] = arrival
    trace.append(('gc', 2, 1_500 * MS, 1_600 * MS))
    trace += [('stall', 30 * MS, 2_000 * MS, 2_041 * MS, []), ('stall', 0, 3_000 * MS, 3_011 * MS, []),
              ('stall', 0, 4_000 * MS, 4_030 * MS, ['cn-dec-speech: face.py:99 detect'], {'cn-dec-speech': 25 * MS})]
    summary = trace_summary(trace, published, received, (0, 10_000 * MS))
    assert summary['decisions'] == 40
    seg = summary['segments_ms']
    assert seg['worker wait']['max'] == 150 and seg['worker wait']['p50'] == 1
    assert seg['total']['max'] == sum(seg[k]['max'] for k in SEGMENTS)        # the slow one: every segment's max
    assert summary['slowest_5pct_largest_segment'] == {**{k: 0 for k in SEGMENTS}, 'worker wait': 1}
    (slow,) = summary['slowest_5pct_ms']                        # under way 158 ms: 5 frames' callbacks, no stall
    assert slow == {'total': 158.0, 'executor busy': 5.0, 'stalled': 0.0, 'stalled waiting for a core': 0.0}
    assert summary['callback_ms']['skeleton']['n'] == 40
    assert summary['buffer_lock_ms']['MainThread']['hold']['max'] == 0.5
    assert summary['stalls_over_20ms'] == 2 and summary['stall_max_ms'] == 41
    assert summary['stall_cpu_share'] == round(30 / 79, 3)                    # 30 of the 79 ms late were queued
    assert summary['lock_stall_ms'] == 30 and summary['lock_stall_threads_queued_ms'] == {'cn-dec-speech': 25.0}
    assert summary['lock_stall_threads'] == [{'thread': 'cn-dec-speech: face.py:99 detect', 'stalls': 1, 'ms': 30.0}]
    assert summary['gc_ms'] == {'generation 2': {'n': 1, 'p50': 100.0, 'p95': 100.0, 'p99': 100.0, 'max': 100.0}}


def test_a_decision_missing_from_the_trace_is_left_out():
    entries, pub, arrival = _decision(7, 1_000 * MS)
    summary = trace_summary([e for e in entries if e[0] != 'decide'], [pub], {7: arrival}, (0, 2_000 * MS))
    assert summary['decisions'] == 0 and 'slowest_5pct_largest_segment' not in summary
