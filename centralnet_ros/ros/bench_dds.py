"""
The load generator of ``benchmarks/bench_dds.py``: sensors at robot rates into a fusion_node process.

:func:`run_once` starts fusion_node (the three shipped bundles) in its own process, publishes
640x480 rgb8 images and skeletons at 30 Hz and 4-channel 48 kHz naoqi AudioBuffers in 8192-frame
buffers, all best effort, and measures delivery (the node's diagnostics), publish-to-decision
latency per task and the node's CPU use.  Here because only ``centralnet_ros.ros`` imports ROS.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
import subprocess
import sys
import threading
import time

import numpy as np

__all__ = ['run_once', 'TASKS', 'thread_stats']

REPO = Path(__file__).resolve().parents[2]
ROS_ENV = {'ROS_DOMAIN_ID': str(10 + os.getpid() % 200), 'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST'}
NS = '/bench'
TASKS = ('gesture', 'speech', 'emotion')
AUDIO_RATE, AUDIO_CHANNELS, AUDIO_FRAMES = 48000, 4, 8192
FPS = 30.0
DELAY_S = 0.1                                   # decision_delay_s (the node default)


def _sensor_qos(depth: int):
    from rclpy.qos import qos_profile_sensor_data, QoSProfile
    return QoSProfile(depth=depth, reliability=qos_profile_sensor_data.reliability,
                      durability=qos_profile_sensor_data.durability)


def _stamp_ns(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def _cpu_seconds(pid: int) -> float:
    fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def thread_stats(pid: int) -> dict[int, tuple[str, float, int]]:
    """``tid -> (name, CPU seconds, nice)`` of every thread of process ``pid`` (Linux /proc)."""
    out = {}
    for task in Path(f'/proc/{pid}/task').iterdir():
        try:
            stat = (task / 'stat').read_text()
        except OSError:                          # the thread ended meanwhile
            continue
        name = stat[stat.index('(') + 1:stat.rindex(')')]
        fields = stat.rsplit(')', 1)[1].split()
        out[int(task.name)] = (name, (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK'), int(fields[16]))
    return out


def child_processes(pid: int) -> dict[int, str]:
    """``pid -> name`` of the processes whose parent is ``pid`` (Linux /proc): the node's decision processes."""
    out = {}
    for stat in Path('/proc').glob('[0-9]*/stat'):
        try:
            text = stat.read_text()
        except OSError:                          # ended meanwhile
            continue
        if int(text.rsplit(')', 1)[1].split()[1]) == pid:
            out[int(stat.parent.name)] = text[text.index('(') + 1:text.rindex(')')]
    return out


def _process_stats(pids) -> dict[int, tuple[str, float, int]]:
    """``tid -> (name, CPU seconds, nice)`` of every thread of the processes ``pids``."""
    out = {}
    for pid in pids:
        try:
            out.update(thread_stats(pid))
        except OSError:
            pass
    return out


def _thread_use(before: dict, after: dict, wall: float) -> dict:
    """CPU use (% of one core) and nice values per thread name over ``wall`` s (threads of one name summed)."""
    use: dict[str, dict] = {}
    for tid, (name, cpu, nice) in after.items():
        entry = use.setdefault(name, {'threads': 0, 'cpu_percent': 0.0, 'nice': []})
        entry['threads'] += 1
        entry['cpu_percent'] += 100 * (cpu - before.get(tid, (name, 0.0, nice))[1]) / wall
        if nice not in entry['nice']:
            entry['nice'].append(nice)
    return {name: {**e, 'cpu_percent': round(e['cpu_percent'], 1)}
            for name, e in sorted(use.items(), key=lambda kv: -kv[1]['cpu_percent'])}


class InlineWorker:
    """
    Decide inside the subscription callback: the design the issue replaced, kept here to measure against.

    Has the interface of :class:`~centralnet_ros.runtime.worker.TaskWorkers`; ``submit`` runs the
    decisions at once, on the executor's thread, before the callback returns.
    """

    def __init__(self, perception, on_results, **_):
        self.perception, self.on_results = perception, on_results
        self.dropped = self.errors = 0

    def submit(self, due) -> None:
        due = list(due)
        if due:
            results = self.perception.decide(due)
            if results:
                self.on_results(results)

    def drain(self, timeout=None) -> bool:
        return True

    def stop(self, timeout=None) -> bool:
        return True


def inline_node_main(args: list[str]) -> int:
    """Run fusion_node with :class:`InlineWorker` (``python -m centralnet_ros.ros.bench_dds --inline-node ...``)."""
    from centralnet_ros.ros import fusion_node
    fusion_node.TaskWorkers = InlineWorker
    sys.argv = ['fusion_node', *args]
    return fusion_node.main()


class _TimedLock:
    """A lock proxy recording, per acquisition, the thread, the wait and the hold time (``with`` only)."""

    def __init__(self, lock, trace: list, name: str) -> None:
        self._inner, self._trace, self._name = lock, trace, name
        self._local = threading.local()

    def __enter__(self):
        t0 = time.time_ns()
        self._inner.acquire()
        depth = getattr(self._local, 'depth', 0)
        self._local.depth = depth + 1
        if depth == 0:
            self._local.t = (t0, time.time_ns())
        return self

    def __exit__(self, *exc) -> None:
        self._local.depth -= 1
        if self._local.depth == 0:
            t0, t1 = self._local.t
            self._trace.append(('lock', self._name, threading.current_thread().name, t0, t1, time.time_ns()))
        self._inner.release()

    def acquire(self, *a, **k):
        return self._inner.acquire(*a, **k)

    def release(self) -> None:
        self._inner.release()


_LINUX = sys.platform.startswith('linux')
_WAITING = ('wait', 'sleep', 'spin_once', 'select', 'poll', 'acquire', '_loop', 'recv')   # recv: a decision process


def _run_queue_ns(schedstat: str) -> int | None:
    """Return the ns a thread has spent runnable but waiting for a core, from its ``schedstat`` (None: unreadable)."""
    try:
        with open(schedstat) as f:
            return int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None


def trace_node_main(args: list[str]) -> int:
    """
    Run fusion_node with a timestamp on every step of a decision, written as JSON to ``$CENTRALNET_TRACE`` at exit.

    ``python -m centralnet_ros.ros.bench_dds --trace-node [--ros-args ...]``.  Recorded (wall clock
    in ns, comparable with the other processes on the machine): each subscription callback (input,
    header stamp, enter, exit), each decision handed to a worker, each decision run (task, decision
    time, start, end), each publish, every acquisition of the runtime's buffer lock (thread, wait,
    hold), every garbage collection (generation, start, end) and the stalls of a thread that sleeps
    1 ms in a loop (time when no thread of the node could get the interpreter lock or a core), with
    the part of each it spent waiting for a core.
    Summed up by :func:`trace_summary`.
    """
    import atexit
    import gc
    from centralnet_ros.config import atomic_write_text
    from centralnet_ros.ros import fusion_node
    from centralnet_ros.runtime import perception as perception_module
    from centralnet_ros.runtime import worker as worker_module

    path = os.environ['CENTRALNET_TRACE']
    trace: list = []
    node_cls = fusion_node.FusionNode
    on_input, build = node_cls._on_input, node_cls._build_perception
    publish, submit = node_cls._publish_results, worker_module.DecisionWorker.submit
    decide = perception_module.Perception._decide

    def traced_on_input(self, name, msg):
        t0 = time.time_ns()
        try:
            return on_input(self, name, msg)
        finally:
            trace.append(('cb', name, _stamp_ns(msg.header), t0, time.time_ns()))

    def traced_build(self):
        perception = build(self)
        perception._lock = _TimedLock(perception._lock, trace, 'buffers')
        return perception

    def traced_publish(self, results):
        results = list(results)
        t0 = time.time_ns()
        try:
            return publish(self, results)
        finally:
            trace.append(('publish', [(r.task, r.stamp_ns) for r in results], t0, time.time_ns()))

    def traced_submit(self, due):
        due = list(due)
        now = time.time_ns()
        trace.extend(('submit', d.task, d.point.t_ns, now) for d in due)
        return submit(self, due)

    def traced_decide(self, state, point):
        t0 = time.time_ns()
        try:
            return decide(self, state, point)
        finally:
            trace.append(('decide', state.name, point.t_ns, t0, time.time_ns()))

    def queued_ns() -> int:
        """Time this thread has spent runnable but waiting for a core (Linux schedstat; 0 elsewhere)."""
        return _run_queue_ns('/proc/thread-self/schedstat') or 0

    def where() -> list[str]:
        """``thread: file:line function`` of every other thread that is not waiting (it may have held the lock)."""
        names = {t.ident: t.name for t in threading.enumerate()}
        out = []
        for ident, frame in sys._current_frames().items():
            top = f'{Path(frame.f_code.co_filename).name}:{frame.f_lineno} {frame.f_code.co_name}'
            if ident != threading.get_ident() and not any(w in frame.f_code.co_name for w in _WAITING):
                out.append(f'{names.get(ident, ident)}: {top}')
        return out

    def workers() -> dict[str, str]:
        """``tid -> name`` of the decision threads (``cn-dec-<task>``, and the threads they started)."""
        out = {}
        for task in Path('/proc/self/task').iterdir():
            try:
                name = (task / 'comm').read_text().strip()
            except OSError:
                continue
            if name.startswith('cn-dec-'):
                out[task.name] = name
        return out

    def worker_queued(tids: dict) -> dict[str, int]:
        """``tid -> ns`` each decision thread has spent runnable but waiting for a core."""
        queued = {tid: _run_queue_ns(f'/proc/self/task/{tid}/schedstat') for tid in tids}
        return {tid: ns for tid, ns in queued.items() if ns is not None}

    def sleeper():
        last, queued = time.time_ns(), queued_ns()
        tids, refreshed = ({}, 0) if not _LINUX else (workers(), time.monotonic())
        before = worker_queued(tids)
        while True:
            time.sleep(0.001)
            now, now_queued = time.time_ns(), queued_ns()
            after = worker_queued(tids)
            if now - last > 5_000_000:       # late: waiting for a core (queued) or for the interpreter lock
                held = now - last - (now_queued - queued) > 20_000_000          # 20 ms and more on the lock
                # and how long each decision thread sat in a run queue meanwhile (preempted, perhaps holding the lock)
                preempted = {}
                for tid, ns in after.items():
                    if tid in before:
                        preempted[tids[tid]] = preempted.get(tids[tid], 0) + ns - before[tid]
                trace.append(('stall', now_queued - queued, last, now, where() if held else [],
                              preempted if held else {}))
            last, queued, before = now, now_queued, after
            if _LINUX and time.monotonic() - refreshed > 1.0:
                tids, refreshed = workers(), time.monotonic()
                before = worker_queued(tids)

    gc_start = [0]

    def on_gc(phase, info):
        if phase == 'start':
            gc_start[0] = time.time_ns()
        else:
            trace.append(('gc', info['generation'], gc_start[0], time.time_ns()))

    node_cls._on_input, node_cls._build_perception = traced_on_input, traced_build
    node_cls._publish_results = traced_publish
    worker_module.DecisionWorker.submit = traced_submit
    perception_module.Perception._decide = traced_decide
    threading.Thread(target=sleeper, name='cn-trace-sleeper', daemon=True).start()
    gc.callbacks.append(on_gc)

    def dump():
        atomic_write_text(path, json.dumps(trace))

    atexit.register(dump)
    sys.argv = ['fusion_node', *args]
    return fusion_node.main()


def receive_main(path: str) -> int:
    """
    Subscribe to every task's Classification in a process of its own; write ``[task, arrival ns, stamp ns]`` at SIGINT.

    ``python -m centralnet_ros.ros.bench_dds --receive OUT.json``.  A consumer that does nothing
    else (one thread, its heap frozen): the load generator's own work (building 900 KB images at
    30 Hz) and its garbage collections do not delay what it measures.  ``OUT.json.ready`` appears
    once every task's publisher is matched.
    """
    import gc
    import signal
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions
    from vision_msgs.msg import Classification
    got: list = []
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    node = rclpy.create_node('bench_receiver')
    subscriptions = [node.create_subscription(
        Classification, f'{NS}/fusion_node/{task}',
        lambda m, t=task: got.append((t, time.time_ns(), _stamp_ns(m.header))), _sensor_qos(100)) for task in TASKS]
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    gc.collect()
    gc.freeze()
    ready = False
    while not stop.is_set():
        executor.spin_once(timeout_sec=0.1)
        if not ready and all(s.get_publisher_count() > 0 for s in subscriptions):
            Path(path + '.ready').write_text('')
            ready = True
    with open(path, 'w') as f:
        json.dump(got, f)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


def _ms_percentiles(values) -> dict:
    a = np.asarray(values, np.float64)
    if not len(a):
        return {'n': 0}
    return {'n': int(len(a)), **{f'p{q}': round(float(np.percentile(a, q)), 2) for q in (50, 95, 99)},
            'max': round(float(a.max()), 2)}


SEGMENTS = ('arrival', 'callback', 'worker wait', 'compute', 'publish', 'delivery')


def trace_summary(trace: list, published: list, received: dict, window: tuple[int, int]) -> dict:
    """
    Where the gesture decisions' time went, from a ``--trace-node`` trace.

    ``published``: ``(publish ns, stamp ns)`` of the skeleton frames; ``received``: stamp ->
    arrival ns at the receiver; ``window``: the streaming interval (ns).  Per published gesture
    decision: *arrival* (frame published -> its callback starts: DDS and the executor's queue),
    *callback*, *worker wait* (handed to the worker -> its decision starts), *compute* (window,
    features, model, with the buffer lock waits), *publish* (decision end -> publish returns),
    *delivery* (-> the receiver's callback).  Then the largest segment of each decision slower than
    the p95, callback times per input, the buffer lock per holder, garbage collections, stalls in
    the streaming window, and which threads were running Python (and where) when a stall spent
    on the interpreter lock ended (``lock_stall_threads``: likely its holders).
    """
    pub = {s: p for p, s in published}
    cb = {e[2]: e for e in trace if e[0] == 'cb' and e[1] == 'skeleton'}
    sub = {e[2]: e for e in trace if e[0] == 'submit' and e[1] == 'gesture'}
    dec = {e[2]: e for e in trace if e[0] == 'decide' and e[1] == 'gesture'}
    pubn = {stamp: e for e in trace if e[0] == 'publish' for task, stamp in e[1] if task == 'gesture'}
    rows = []
    for stamp, got in received.items():
        parts = [pub.get(stamp), cb.get(stamp), sub.get(stamp), dec.get(stamp), pubn.get(stamp)]
        if any(p is None for p in parts):
            continue
        p, c, su, d, pn = parts
        rows.append({'arrival': c[3] - p, 'callback': c[4] - c[3], 'worker wait': d[3] - su[3],
                     'compute': d[4] - d[3], 'publish': pn[3] - d[4], 'delivery': got - pn[3], 'total': got - p,
                     'span': (p, got)})
    segments = {k: _ms_percentiles([r[k] / 1e6 for r in rows]) for k in (*SEGMENTS, 'total')}
    out: dict = {'decisions': len(rows), 'segments_ms': segments}
    if rows:
        p95 = np.percentile([r['total'] for r in rows], 95)
        slow = [r for r in rows if r['total'] > p95]
        out['slowest_5pct_largest_segment'] = {k: sum(1 for r in slow if max(SEGMENTS, key=r.get) == k)
                                               for k in SEGMENTS}
        callbacks = [e for e in trace if e[0] == 'cb']
        stall_list = [e for e in trace if e[0] == 'stall']

        def overlap(a: int, b: int, entries: list, i: int, j: int) -> float:
            return sum(max(0, min(b, e[j]) - max(a, e[i])) for e in entries) / 1e6
        # while each slow decision was under way: the executor running callbacks, the node's threads stalled
        out['slowest_5pct_ms'] = [{'total': round(r['total'] / 1e6, 1),
                                   'executor busy': round(overlap(*r['span'], callbacks, 3, 4), 1),
                                   'stalled': round(overlap(*r['span'], stall_list, 2, 3), 1),
                                   'stalled waiting for a core': round(sum(
                                       e[1] * max(0, min(r['span'][1], e[3]) - max(r['span'][0], e[2]))
                                       / max(1, e[3] - e[2]) for e in stall_list) / 1e6, 1)} for r in slow]
    t0, t1 = window
    # the threads running Python when a stall of 20 ms or more spent on the interpreter lock ended: its holders
    holders_at: dict[str, list] = {}
    for e in trace:
        if e[0] == 'stall' and len(e) > 4 and t0 <= e[3] and e[2] <= t1:
            for who in e[4]:
                holders_at.setdefault(who, []).append((e[3] - e[2] - e[1]) / 1e6)
    out['lock_stall_threads'] = [{'thread': who, 'stalls': len(v), 'ms': round(sum(v), 1)}
                                 for who, v in sorted(holders_at.items(), key=lambda kv: -sum(kv[1]))[:8]]
    # during those stalls: how long each decision thread was runnable but had no core (a holder preempted)
    on_lock = [e for e in trace if e[0] == 'stall' and len(e) > 5 and e[5] and t0 <= e[3] and e[2] <= t1]
    out['lock_stall_ms'] = round(sum((e[3] - e[2] - e[1]) / 1e6 for e in on_lock), 1)
    out['lock_stall_threads_queued_ms'] = {name: round(sum(e[5].get(name, 0) for e in on_lock) / 1e6, 1)
                                           for name in sorted({n for e in on_lock for n in e[5]})}
    trace = [e[:4] if e[0] == 'stall' else e for e in trace]          # (stall, queued, start, end)
    inside = [e for e in trace if e[0] in ('cb', 'lock', 'gc', 'stall') and t0 <= e[-1] and e[-2] <= t1]
    out['callback_ms'] = {name: _ms_percentiles([(e[4] - e[3]) / 1e6 for e in inside if e[0] == 'cb' and e[1] == name])
                          for name in sorted({e[1] for e in inside if e[0] == 'cb'})}
    holders = sorted({e[2] for e in inside if e[0] == 'lock'})
    out['buffer_lock_ms'] = {h.replace('centralnet-decisions-', 'worker '): {
        'hold': _ms_percentiles([(e[5] - e[4]) / 1e6 for e in inside if e[0] == 'lock' and e[2] == h]),
        'wait': _ms_percentiles([(e[4] - e[3]) / 1e6 for e in inside if e[0] == 'lock' and e[2] == h])}
        for h in holders}
    collections = [e for e in inside if e[0] == 'gc']
    out['gc_ms'] = {f'generation {g}': _ms_percentiles([(e[3] - e[2]) / 1e6 for e in collections if e[1] == g])
                    for g in sorted({e[1] for e in collections})}
    stalls = [((e[3] - e[2]) / 1e6, e[1] / 1e6) for e in inside if e[0] == 'stall']
    out['stalls_over_20ms'] = sum(1 for v, _ in stalls if v > 20)
    out['stall_max_ms'] = round(max(v for v, _ in stalls), 1) if stalls else 0.0
    # of the time the sleeper was late: waiting for a core (CPU) or not (the interpreter lock)
    late = sum(v - 1.0 for v, _ in stalls)
    out['stall_cpu_share'] = round(sum(min(q, v) for v, q in stalls) / late, 3) if late > 0 else None
    return out


def run_once(seconds: float, profile: bool, audio: np.ndarray, joints: np.ndarray, log_dir: Path, *,
             gesture_output: str = 'decisions', inline: bool = False, qos_depth: int | None = None,
             background_nice: int | None = None, trace: bool = False, decision_process: bool | None = None) -> dict:
    """
    Stream ``seconds`` into fusion_node (``audio``: (n, 4) int16 at 48 kHz; ``joints``: (T, 20, 3)).

    ``gesture_output``: the gesture task's ``output`` (``decisions``: one Classification per skeleton
    frame; ``events``: one per performed gesture, after it ended). ``inline``: decide in the
    subscription callback (:class:`InlineWorker`) instead of on the node's decision worker.
    ``qos_depth``: the node's input queue depth (None: the node's default). ``background_nice``:
    ``speech.decision_nice`` and ``emotion.decision_nice`` (None: the node's defaults).
    ``decision_process``: ``speech.decision_process`` and ``emotion.decision_process`` (None: the
    node's defaults; CPU use of those processes is reported beside the node's). ``trace``:
    run the node under :func:`trace_node_main` and add :func:`trace_summary` (``result['trace']``).

    Latency is measured at a subscriber in a process of its own (:func:`receive_main`), and also,
    as before, in this process, which publishes the inputs (``latency_ms_in_load_generator``).
    """
    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from centralnet_ros import messages as M
    from centralnet_ros.ros.interfaces import ros_message
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import PoseArray
    from naoqi_bridge_msgs.msg import AudioBuffer
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Classification

    dds = {'FASTRTPS_DEFAULT_PROFILES_FILE': str(REPO / 'config' / 'fastdds.xml'),
           'FASTDDS_DEFAULT_PROFILES_FILE': str(REPO / 'config' / 'fastdds.xml')} if profile else {}
    env = {**os.environ, **ROS_ENV, **dds}
    for key in ('FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_DEFAULT_PROFILES_FILE'):
        if not profile:
            env.pop(key, None)
    args = ['--ros-args', '-r', f'__ns:={NS}', '-p', f'tasks:=[{",".join(TASKS)}]',
            *[a for t in TASKS for a in ('-p', f'{t}.bundle:={REPO / "models" / t}')],
            '-p', 'gesture.trigger:=frame', '-p', 'audio_type:=naoqi_audio_buffer', '-p', 'diagnostics_period_s:=1.0',
            '-p', 'speech.score_threshold:=0.0', '-p', 'emotion.score_threshold:=0.0',
            '-p', 'gesture.score_threshold:=0.0', '-p', f'gesture.output:={gesture_output}']
    if qos_depth is not None:
        args += ['-p', f'qos_depth:={qos_depth}']
    if background_nice is not None:
        args += ['-p', f'speech.decision_nice:={background_nice}', '-p', f'emotion.decision_nice:={background_nice}']
    if decision_process is not None:
        flag = str(bool(decision_process)).lower()
        args += ['-p', f'speech.decision_process:={flag}', '-p', f'emotion.decision_process:={flag}']
    program = (['-m', 'centralnet_ros.ros.bench_dds', '--inline-node'] if inline
               else ['-m', 'centralnet_ros.ros.bench_dds', '--trace-node'] if trace
               else ['-m', 'centralnet_ros.ros.fusion_node'])
    label = (f'{"profile" if profile else "default"}_{"inline" if inline else "split"}_{gesture_output}_{qos_depth}'
             f'_{background_nice}_{decision_process}{"_trace" if trace else ""}')
    trace_path, received_path = log_dir / f'trace_{label}.json', log_dir / f'received_{label}.json'
    for stale in (trace_path, received_path, Path(f'{received_path}.ready')):
        stale.unlink(missing_ok=True)
    if trace:
        env['CENTRALNET_TRACE'] = str(trace_path)
    node = subprocess.Popen([sys.executable, *program, *args], env=env,
                            stdout=open(log_dir / f'fusion_{label}.log', 'wb'), stderr=subprocess.STDOUT)
    receiver = subprocess.Popen([sys.executable, '-m', 'centralnet_ros.ros.bench_dds', '--receive', str(received_path)],
                                env=env, stdout=open(log_dir / f'receiver_{label}.log', 'wb'), stderr=subprocess.STDOUT)
    # this process: the same DDS settings as the node (the shared-memory segment is per participant)
    os.environ.update(ROS_ENV)
    for key, value in dds.items():
        os.environ[key] = value
    if not profile:
        for key in ('FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_DEFAULT_PROFILES_FILE'):
            os.environ.pop(key, None)
    rclpy.init()
    pub_node = rclpy.create_node('bench_sensors')
    sub_node = rclpy.create_node('bench_decisions')
    qos = _sensor_qos(5)
    image_pub = pub_node.create_publisher(Image, f'{NS}/image', qos)
    skeleton_pub = pub_node.create_publisher(PoseArray, f'{NS}/skeleton', qos)
    audio_pub = pub_node.create_publisher(AudioBuffer, f'{NS}/audio', qos)
    decisions: dict[str, list] = {t: [] for t in TASKS}
    diag: dict[str, int] = {}
    lock = threading.Lock()

    def on_decision(task, msg):
        with lock:
            decisions[task].append((time.time_ns(), _stamp_ns(msg.header)))

    task_diag: dict[str, dict] = {}
    arrival: dict[str, str | None] = {}

    def on_diag(msg):
        for status in msg.status:
            values = {kv.key: kv.value for kv in status.values}
            if status.name.endswith(('input image', 'input skeleton', 'input audio')):
                if values.get('received', '0').isdigit():
                    diag[status.name.rsplit(' ', 1)[1]] = int(values['received'])
                    arrival[status.name.rsplit(' ', 1)[1]] = values.get('arrival delay (s)')
            elif ': task ' in status.name:
                task_diag[status.name.rsplit(' ', 1)[1]] = {
                    k: values.get(k) for k in ('decisions', 'published', 'latency p50 (ms)', 'latency p95 (ms)',
                                               'latency max (ms)')}

    for task in TASKS:
        sub_node.create_subscription(Classification, f'{NS}/fusion_node/{task}',
                                     lambda m, t=task: on_decision(t, m), _sensor_qos(100))
    sub_node.create_subscription(DiagnosticArray, '/diagnostics', on_diag, _sensor_qos(50))
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(sub_node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        deadline = time.monotonic() + 180
        while not (all(p.get_subscription_count() > 0 for p in (image_pub, skeleton_pub, audio_pub))
                   and Path(f'{received_path}.ready').exists()):
            if time.monotonic() > deadline or node.poll() is not None or receiver.poll() is not None:
                raise RuntimeError(f'fusion_node did not subscribe (exit {node.poll()}) or its decisions did not '
                                   f'reach the receiver (exit {receiver.poll()})')
            time.sleep(0.2)
        time.sleep(1.0)
        rng = np.random.default_rng(0)
        frame = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
        published = {'image': [], 'skeleton': [], 'audio': []}        # (publish wall ns, stamp ns)
        children = child_processes(node.pid)                          # decision processes, if any
        children0 = _process_stats(children)
        threads0, cpu0, t_start = thread_stats(node.pid), _cpu_seconds(node.pid), time.monotonic()
        start_ns = time.time_ns()
        k_frame = k_audio = 0
        while time.monotonic() - t_start < seconds:
            now = time.monotonic() - t_start
            frame_due = k_frame / FPS
            audio_due = (k_audio + 1) * AUDIO_FRAMES / AUDIO_RATE    # a buffer goes out when it is full
            if frame_due <= now:
                stamp = start_ns + int(frame_due * 1e9)
                image_pub.publish(M.build_image(ros_message, frame, encoding='rgb8', stamp_ns=stamp, frame_id='camera'))
                published['image'].append((time.time_ns(), stamp))
                skeleton_pub.publish(M.build_pose_array(ros_message, joints[k_frame % len(joints)], stamp_ns=stamp,
                                                        frame_id='kinect'))
                published['skeleton'].append((time.time_ns(), stamp))
                k_frame += 1
            elif audio_due <= now:
                i = (k_audio * AUDIO_FRAMES) % (len(audio) - AUDIO_FRAMES)
                stamp = start_ns + int(k_audio * AUDIO_FRAMES / AUDIO_RATE * 1e9)
                audio_pub.publish(M.build_naoqi_audio(ros_message, audio[i:i + AUDIO_FRAMES], frequency=AUDIO_RATE,
                                                      stamp_ns=stamp, frame_id='microphone'))
                published['audio'].append((time.time_ns(), stamp))
                k_audio += 1
            else:
                time.sleep(max(0.0, min(frame_due, audio_due) - now))
        cpu = _cpu_seconds(node.pid) - cpu0
        wall = time.monotonic() - t_start
        threads = _thread_use(threads0, thread_stats(node.pid), wall)
        processes = _thread_use(children0, _process_stats(children), wall)
        time.sleep(3.0)                                              # last decisions and a diagnostics report
        end_ns = time.time_ns()
    finally:
        receiver.send_signal(2)
        try:
            receiver.wait(30)
        except subprocess.TimeoutExpired:
            receiver.kill()
        node.send_signal(2)
        try:
            node.wait(60)
        except subprocess.TimeoutExpired:
            node.kill()
        executor.shutdown()
        pub_node.destroy_node()
        sub_node.destroy_node()
        rclpy.try_shutdown()
    trigger_input = {'gesture': 'skeleton', 'speech': 'audio', 'emotion': 'audio'}
    result = {'profile': 'config/fastdds.xml' if profile else 'Fast DDS defaults',
              'decisions_in': 'subscription callback' if inline else 'decision worker',
              'gesture_output': gesture_output, 'qos_depth': qos_depth, 'background_nice': background_nice,
              'traced': trace, 'decision_processes': sorted(children.values()),
              'seconds': round(wall, 2), 'node_threads': threads, 'process_threads': processes,
              'processes_cpu_percent': round(sum(t['cpu_percent'] for t in processes.values()), 1),
              'load_average_1min': round(os.getloadavg()[0], 1), 'cpu_cores': os.cpu_count(),
              'node_cpu_percent': round(100 * cpu / wall, 1), 'exit_status': node.returncode, 'inputs': {},
              'tasks': {}}
    for name, sent in published.items():
        got = diag.get(name)
        result['inputs'][name] = {'sent': len(sent), 'received': got, 'arrival_delay_s': arrival.get(name),
                                  'delivery': None if got is None else round(got / max(len(sent), 1), 4)}
    received: dict[str, list] = {t: [] for t in TASKS}
    try:
        for task, arrival_ns, stamp in json.loads(received_path.read_text()):
            received[task].append((arrival_ns, stamp))
    except (OSError, ValueError) as exc:
        raise RuntimeError(f'the receiver wrote no decisions ({exc}); see {log_dir}/receiver_{label}.log') from None

    def latency(task: str, got: list) -> dict:
        pubs = published[trigger_input[task]]
        stamps = np.asarray([s for _, s in pubs], np.int64)
        times = np.asarray([p for p, _ in pubs], np.int64)
        lat = []
        for recv, stamp in got:
            k = int(np.searchsorted(stamps, stamp + int(DELAY_S * 1e9) * (task != 'gesture')))
            if k < len(stamps):
                lat.append((recv - times[k]) / 1e6)
        return {f'p{q}': (round(float(np.percentile(lat, q)), 2) if lat else None) for q in (50, 95, 99, 100)}

    for task, got in received.items():
        result['tasks'][task] = {
            'decisions': len(got), 'node_compute_ms': task_diag.get(task, {}), 'latency_ms': latency(task, got),
            'decisions_in_load_generator': len(decisions[task]),
            'latency_ms_in_load_generator': latency(task, decisions[task])}
    if trace:
        result['trace'] = trace_summary(json.loads(trace_path.read_text()), published['skeleton'],
                                        {stamp: t for t, stamp in received['gesture']}, (start_ns, end_ns))
    return result


if __name__ == '__main__':
    if sys.argv[1:2] == ['--inline-node']:
        raise SystemExit(inline_node_main(sys.argv[2:]))
    if sys.argv[1:2] == ['--receive']:
        raise SystemExit(receive_main(sys.argv[2]))
    if sys.argv[1:2] == ['--trace-node']:
        raise SystemExit(trace_node_main(sys.argv[2:]))
    raise SystemExit(f'usage: python -m {__spec__.name} --inline-node [--ros-args ...]')
