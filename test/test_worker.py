"""The decision worker: callbacks that only store never wait for a model, and nothing is lost silently."""
from __future__ import annotations

import os
import sys
import threading
import time

from centralnet_ros.replay import msgdefs as D
from centralnet_ros.runtime.worker import DecisionWorker
import numpy as np
import pytest
from test_perception import bundle, make, skel_msg, T0  # noqa: F401 (bundle is a fixture)


class SlowPerception:
    """``decide`` takes ``delay`` seconds per call and returns its inputs as results."""

    def __init__(self, delay: float = 0.0, fail_on=None):
        self.delay, self.fail_on = delay, fail_on
        self.calls, self.threads = [], set()
        self.gate = threading.Event()
        self.gate.set()

    def decide(self, due):
        self.threads.add(threading.current_thread().name)
        self.gate.wait()
        time.sleep(self.delay)
        if self.fail_on is not None and self.fail_on in due:
            raise RuntimeError('model failed')
        self.calls.append(list(due))
        return [f'result {d}' for d in due]


def test_submit_returns_at_once_while_a_slow_model_runs():
    perception, published = SlowPerception(delay=0.2), []
    worker = DecisionWorker(perception, published.extend)
    t0 = time.perf_counter()
    for k in range(5):
        worker.submit([k])
    assert time.perf_counter() - t0 < 0.05              # five submits, none waited for the 0.2 s model
    assert worker.drain(timeout=5.0)
    assert published == [f'result {k}' for k in range(5)]          # all of them, in order
    assert perception.threads == {'centralnet-decisions'}            # never on the caller's thread
    s = worker.stats()
    assert (s['submitted'], s['decided'], s['dropped'], s['backlog']) == (5, 5, 0, 0)
    assert s['wait_ms']['p50'] is not None
    assert worker.stop()


def test_backlog_beyond_max_pending_drops_the_oldest_and_counts_them():
    perception, published = SlowPerception(), []
    perception.gate.clear()                              # the model hangs on its first call
    worker = DecisionWorker(perception, published.extend, max_pending=3)
    worker.submit(['first'])
    time.sleep(0.1)                                      # the worker took 'first' and is blocked in decide
    worker.submit(list(range(6)))
    perception.gate.set()
    assert worker.drain(timeout=5.0)
    assert published == ['result first', 'result 3', 'result 4', 'result 5']
    assert worker.dropped == 3 and worker.stats()['max_backlog'] == 3
    worker.stop()


def test_a_failing_decision_is_counted_and_the_worker_goes_on():
    perception, published = SlowPerception(fail_on='bad'), []
    worker = DecisionWorker(perception, published.extend)
    worker.submit(['bad'])
    assert worker.drain(timeout=5.0)
    worker.submit(['good'])
    assert worker.drain(timeout=5.0)
    assert published == ['result good'] and worker.errors == 1
    worker.stop()


def test_stop_drops_what_is_queued_and_refuses_more():
    perception, published = SlowPerception(delay=0.3), []
    worker = DecisionWorker(perception, published.extend)
    worker.submit(['a'])
    time.sleep(0.05)
    worker.submit(['b', 'c'])
    assert worker.stop(timeout=5.0)                      # waits for 'a' only
    worker.submit(['d'])
    assert published == ['result a'] and worker.dropped == 3


def test_max_pending_must_be_positive():
    with pytest.raises(ValueError, match='max_pending'):
        DecisionWorker(SlowPerception(), print, max_pending=0)


def test_a_slow_task_does_not_hold_up_another_tasks_decisions():
    """TaskWorkers: one worker per task; gesture decisions go on while a speech decision takes 0.5 s."""
    import types
    from centralnet_ros.runtime.worker import TaskWorkers

    class PerTask:

        def decide(self, due):
            if due[0].task == 'speech':
                time.sleep(0.5)
            return [(d.task, d.point, time.monotonic()) for d in due]

    published, lock = [], threading.Lock()

    def on_results(results):
        with lock:
            published.extend(results)

    workers = TaskWorkers(PerTask(), on_results, tasks=['gesture', 'speech'])
    due = types.SimpleNamespace
    t0 = time.monotonic()
    workers.submit([due(task='speech', point=0)])
    for k in range(1, 6):
        workers.submit([due(task='gesture', point=k)])
        time.sleep(0.02)
    assert workers.drain(timeout=5.0)
    done = {(task, point): t - t0 for task, point, t in published}
    assert len(done) == 6 and done[('speech', 0)] >= 0.5
    assert max(t for (task, _), t in done.items() if task == 'gesture') < 0.4   # none waited for speech
    workers.submit([due(task='emotion', point=9)])                              # no such task: dropped, logged
    assert workers.stop(timeout=5.0) and workers.dropped == 0 and workers.errors == 0
    assert set(workers.stats()) == {'gesture', 'speech'}


# --------------------------------------------------------------------------- priorities and the buffer lock

def _nice_of_this_thread() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='per-thread nice values are Linux')
def test_a_background_tasks_decisions_run_at_a_lower_priority_and_the_others_at_the_processs():
    """TaskWorkers(nice=...): speech decides on a thread niced by 10 (as do threads it starts), gesture does not."""
    import types
    from centralnet_ros.runtime.worker import TaskWorkers

    class Recorder:

        def __init__(self):
            self.nice = {}

        def decide(self, due):
            self.nice[due[0].task] = _nice_of_this_thread()
            child = []                                   # a library's pool thread started from this worker
            t = threading.Thread(target=lambda: child.append(_nice_of_this_thread()))
            t.start()
            t.join()
            self.nice[due[0].task + ' pool'] = child[0]
            return []

    process = _nice_of_this_thread()
    recorder = Recorder()
    workers = TaskWorkers(recorder, print, tasks=['gesture', 'speech'], nice={'speech': 10})
    workers.submit([types.SimpleNamespace(task='gesture', point=1), types.SimpleNamespace(task='speech', point=1)])
    assert workers.drain(timeout=10.0)
    expected = min(19, process + 10)
    assert recorder.nice == {'gesture': process, 'gesture pool': process, 'speech': expected,
                             'speech pool': expected}
    stats = workers.stats()
    assert (stats['gesture']['nice'], stats['speech']['nice']) == (process, expected)
    assert _nice_of_this_thread() == process                 # the caller's own priority is untouched
    assert workers.stop()
    with pytest.raises(ValueError, match='nice must be in'):
        DecisionWorker(SlowPerception(), print, nice=20)


def test_inputs_are_stored_while_a_decision_stacks_and_resamples_its_window(monkeypatch, bundle):  # noqa: F811
    """
    Perception.decide reads the buffers under their lock and resamples / stacks after releasing it.

    Instrumented: while the decision's audio window is being resampled (32 kHz -> the bundle's
    16 kHz), another thread stores a skeleton frame; it must get through before the resampling
    ends (it waited for the whole window before: a large speech window held every input back).
    """
    from centralnet_ros.runtime import window as W

    p = make(bundle, rate_hz=2.0)
    due = []
    for k in range(30):                                    # 3 s of skeletons at 10 Hz, 32 kHz audio
        t = T0 + k * 100_000_000
        due += p.store('skeleton', skel_msg(k, t))
        rng = np.random.default_rng(k)
        msg, info = D.audio_messages(0.1 * rng.standard_normal((3200, 1)).astype(np.float32), sample_rate=32000,
                                     stamp_ns=t, frame_id='mic')
        if k == 0:
            p.store('audio_info', info)
        due += p.store('audio', msg)
    assert due, 'the rate trigger made no decision due'
    resample, seen, others = W.resample_audio, [], []

    def instrumented(*args, **kwargs):
        other = threading.Thread(target=lambda: p.store('skeleton', skel_msg(99, T0 + 3_050_000_000)), daemon=True)
        others.append(other)
        other.start()
        other.join(timeout=5.0)
        seen.append(not other.is_alive())                 # stored while this decision was resampling
        return resample(*args, **kwargs)

    monkeypatch.setattr(W, 'resample_audio', instrumented)
    assert len(p.decide(due[-1:])) == 1
    others[0].join(timeout=10.0)
    assert seen == [True], 'store() waited for the decision to resample its window'
    monkeypatch.setattr(W, 'resample_audio', resample)
    # the deferred window is the window: the same arrays as assembling it in one go
    assembler = p.tasks['gesture'].assembler
    whole, deferred = assembler.assemble(due[-1].point), assembler.assemble(due[-1].point, defer=True)
    assert all(m.pending for m in deferred.modalities.values())   # nothing stacked, resampled yet
    assert deferred.modalities['skeleton'].data is None and deferred.modalities['voice'].sample_rate == 32000
    deferred.finish()
    for name, m in whole.modalities.items():
        assert m.present and deferred.modalities[name].present
        np.testing.assert_array_equal(deferred.modalities[name].data, m.data)
        assert deferred.modalities[name].sample_rate == m.sample_rate
