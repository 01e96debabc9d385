"""
Decisions on a thread of their own: subscription callbacks only store, a worker decides.

:class:`DecisionWorker` takes the :class:`~.perception.DueDecision` s that
:meth:`Perception.store` returns, runs :meth:`Perception.decide` on its own thread and
hands each batch of results to ``on_results`` (the node publishes them). Sensor
callbacks therefore return in the time a conversion takes, whatever the model costs;
a backlog beyond ``max_pending`` decisions drops the oldest, counted
(``stats()['dropped']``), so a model slower than its trigger rate degrades the
decision rate and never the sensor input. No ROS here.

:class:`TaskWorkers` gives every task its own worker, and a task with a long decision
(speech: a second of lip video through a face detector) a lower CPU priority: on Linux a
thread has its own nice value, so ``nice={'speech': 10}`` leaves the cores to the
subscription callbacks and to the tasks that must answer within a frame (gesture) while
a speech decision runs, which then takes what they leave.  Threads that a library starts
from a niced worker (OpenCV's pool) inherit its nice value.
"""
from __future__ import annotations

from collections import deque
import ctypes
import logging
import os
import sys
import threading
import time
from typing import Any, Callable, Iterable, Mapping

import numpy as np

__all__ = ['DecisionWorker', 'TaskWorkers']

log = logging.getLogger(__name__)
_LINUX = sys.platform.startswith('linux')


def _lower_priority(nice: int) -> int | None:
    """Add ``nice`` to the calling thread's nice value (Linux: per thread); return the value now (None elsewhere)."""
    if not _LINUX:
        if nice:
            log.warning('decision thread priorities (nice %d) are set on Linux only; ignored here', nice)
        return None
    tid = threading.get_native_id()
    current = os.getpriority(os.PRIO_PROCESS, tid)
    if nice > 0:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, min(19, current + nice))
        except OSError as exc:
            log.warning('cannot lower the priority of decision thread %d by %d: %s', tid, nice, exc)
    return os.getpriority(os.PRIO_PROCESS, tid)


def _name_os_thread(name: str) -> None:
    """Name the calling thread for the OS (``top -H``, ``/proc/<pid>/task/<tid>/comm``: 15 characters)."""
    if _LINUX:
        try:
            libc = ctypes.CDLL(None)
            libc.prctl(15, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)     # PR_SET_NAME
        except (OSError, AttributeError):   # pragma: no cover - a libc without prctl
            pass


class DecisionWorker:
    """Run ``perception.decide`` on a worker thread; see the module docstring."""

    def __init__(self, perception: Any, on_results: Callable[[list], None], *, max_pending: int = 256,
                 name: str = 'centralnet-decisions', nice: int = 0) -> None:
        if max_pending < 1:
            raise ValueError(f'max_pending must be >= 1, got {max_pending}')
        if not 0 <= nice <= 19:
            raise ValueError(f'nice must be in [0, 19] (added to the process priority), got {nice}')
        self._perception = perception
        self._on_results = on_results
        self._max_pending = int(max_pending)
        self._queue: deque = deque()                 # (due, monotonic time submitted)
        self._cond = threading.Condition()
        self._busy = False
        self._stopping = False
        self.submitted = self.decided = self.dropped = self.errors = 0
        self.max_backlog = 0
        self.nice = int(nice)                        # added to the process's nice value on the worker thread
        self.thread_nice: int | None = None          # the worker thread's nice value, once it runs (Linux)
        self.cpu_s = 0.0                             # CPU time of the worker thread in decisions
        self._waits: deque = deque(maxlen=2000)
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()
        self._started.wait(5.0)

    def submit(self, due: Iterable[Any]) -> None:
        """Queue decisions (never blocks, never runs a model); the oldest are dropped beyond ``max_pending``."""
        due = list(due)
        if not due:
            return
        now = time.monotonic()
        with self._cond:
            if self._stopping:
                self.dropped += len(due)
                return
            self._queue.extend((d, now) for d in due)
            self.submitted += len(due)
            while len(self._queue) > self._max_pending:
                self._queue.popleft()
                self.dropped += 1
            self.max_backlog = max(self.max_backlog, len(self._queue))
            self._cond.notify()

    def drain(self, timeout: float | None = 10.0) -> bool:
        """Wait until every queued decision has run; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop after the decision that is running (queued ones are dropped, counted); False if it hung."""
        with self._cond:
            self._stopping = True
            self.dropped += len(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def stats(self) -> dict:
        """Counters and the queue wait (submit to start of the decision) percentiles in ms."""
        with self._cond:
            waits = np.asarray(self._waits, np.float64) * 1e3
            backlog = len(self._queue)
        wait = ({f'p{q}': round(float(np.percentile(waits, q)), 3) for q in (50, 95, 99)} if len(waits)
                else {'p50': None, 'p95': None, 'p99': None})
        return {'submitted': self.submitted, 'decided': self.decided, 'dropped': self.dropped,
                'errors': self.errors, 'backlog': backlog, 'max_backlog': self.max_backlog, 'wait_ms': wait,
                'nice': self.thread_nice, 'cpu_s': round(self.cpu_s, 3)}

    def _loop(self) -> None:
        try:
            _name_os_thread(self._thread.name.replace('centralnet-decisions', 'cn-dec'))
            self.thread_nice = _lower_priority(self.nice)
        finally:
            self._started.set()
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    self._busy = False
                    self._cond.notify_all()
                    return
                batch = list(self._queue)
                self._queue.clear()
                self._busy = True
            now = time.monotonic()
            self._waits.extend(now - t for _, t in batch)
            cpu = time.thread_time()
            try:
                results = self._perception.decide([d for d, _ in batch])
                self.decided += len(batch)
                self.cpu_s += time.thread_time() - cpu
                if results:
                    self._on_results(results)
            except Exception as exc:  # noqa: BLE001 - the worker must outlive any failure
                self.errors += 1
                log.error('decision worker: %s: %s', type(exc).__name__, exc)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()


class TaskWorkers:
    """
    One :class:`DecisionWorker` per task: a slow task (speech on lips and audio) never delays another (gesture).

    The same interface as :class:`DecisionWorker` (``submit``, ``drain``, ``stop``, the counters
    summed); ``submit`` routes each due decision to its task's worker. With
    :class:`~.perception.Perception` taking one lock per task, decisions of different tasks run
    at once (models and feature code largely release the GIL). ``nice``: task -> how much
    lower its worker's CPU priority is (0 to 19, Linux; see the module docstring).
    """

    def __init__(self, perception: Any, on_results: Callable[[list], None], *, tasks: Iterable[str],
                 max_pending: int = 256, nice: Mapping[str, int] | None = None) -> None:
        nice = dict(nice or {})
        self._workers = {task: DecisionWorker(perception, on_results, max_pending=max_pending,
                                              name=f'centralnet-decisions-{task}', nice=int(nice.get(task, 0)))
                         for task in tasks}

    def submit(self, due: Iterable[Any]) -> None:
        """Queue each decision on its task's worker (never blocks)."""
        by_task: dict[str, list] = {}
        for item in due:
            by_task.setdefault(item.task, []).append(item)
        for task, items in by_task.items():
            worker = self._workers.get(task)
            if worker is None:
                log.warning('decision of unknown task %s dropped', task)
                continue
            worker.submit(items)

    def drain(self, timeout: float | None = 10.0) -> bool:
        """Wait until every worker has run what was queued; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        return all([w.drain(None if deadline is None else max(0.0, deadline - time.monotonic()))
                    for w in self._workers.values()])

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop every worker (see :meth:`DecisionWorker.stop`)."""
        deadline = time.monotonic() + timeout
        return all([w.stop(max(0.0, deadline - time.monotonic())) for w in self._workers.values()])

    @property
    def dropped(self) -> int:
        return sum(w.dropped for w in self._workers.values())

    @property
    def errors(self) -> int:
        return sum(w.errors for w in self._workers.values())

    def stats(self) -> dict:
        """:meth:`DecisionWorker.stats` per task."""
        return {task: w.stats() for task, w in self._workers.items()}
