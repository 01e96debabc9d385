"""The decision worker: callbacks that only store never wait for a model, and nothing is lost silently."""
from __future__ import annotations

import threading
import time

from centralnet_ros.runtime.worker import DecisionWorker
import pytest


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
