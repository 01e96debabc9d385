"""
Decisions in a process of their own (runtime/decision_process.py).

The process path must give the in-process decisions on the same input, must really run in
another process (the node's own model code is broken in these tests, and the child's pid and
parent are checked), must survive its child dying, and must leave no child behind.
"""
from __future__ import annotations

import os
import signal
import time

from centralnet_ros.runtime import decision_process as DP
from centralnet_ros.runtime.triggers import DecisionPoint
from centralnet_ros.runtime.vad import SpeechSegment
from centralnet_ros.runtime.window import DecisionWindow, ModalityWindow
import numpy as np
import pytest
from test_perception import audio_msgs, bundle, make, skel_msg, T0  # noqa: F401 (bundle is a fixture)

SR = 32000           # the bundle's voice is 16 kHz: every audio window is resampled (in the child)


def _audio(k: int):
    x = 0.3 * np.sin(2 * np.pi * 220 * (np.arange(3200) + k * 3200) / SR) + 0.01 * np.random.default_rng(k).normal(
        size=3200)
    from centralnet_ros.replay import msgdefs as D
    return D.audio_messages(x[:, None].astype(np.float32), sample_rate=SR, stamp_ns=T0 + k * 100_000_000,
                            frame_id='mic')


def _stream(p, n: int = 40) -> list:
    """Store ``n`` skeleton frames at 10 Hz and 100 ms of 32 kHz audio each, decide what they made due."""
    due = []
    for k in range(n):
        due += p.store('skeleton', skel_msg(k, T0 + k * 100_000_000))
        msg, info = _audio(k)
        if k == 0:
            p.store('audio_info', info)
        due += p.store('audio', msg)
    return p.decide(due) + p.decide(p.flush_due())


def _same(a, b) -> None:
    assert len(a) == len(b) and a
    for x, y in zip(a, b):
        assert (x.task, x.stamp_ns, x.frame_id, x.label, x.score, x.top_k, x.published, x.present, x.missing,
                x.segment, x.trigger) == \
               (y.task, y.stamp_ns, y.frame_id, y.label, y.score, y.top_k, y.published, y.present, y.missing,
                y.segment, y.trigger)
        assert x.probabilities.dtype == y.probabilities.dtype
        assert x.probabilities.tobytes() == y.probabilities.tobytes()          # bit for bit
        assert x.fusion_weights == y.fusion_weights


def _broken_run(*args, **kwargs):
    raise AssertionError('the in-process features and model ran')


def _maps_torch(pid: int) -> bool:
    """Return True when process ``pid`` has torch's library mapped (it imported torch)."""
    with open(f'/proc/{pid}/maps') as fh:
        return 'libtorch' in fh.read()


def _gone(pid: int) -> bool:
    """Return True when ``pid`` is neither running nor a zombie (reaped)."""
    try:
        with open(f'/proc/{pid}/stat') as fh:
            state = fh.read().rsplit(')', 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == 'X'


def test_a_task_decided_in_its_own_process_gives_the_in_process_decisions(bundle):  # noqa: F811
    here = make(bundle, rate_hz=4.0, delay=0.1)
    expected = _stream(here)
    there = make(bundle, rate_hz=4.0, delay=0.1)
    processes = there.start_processes(['gesture'], decision_timeout_s=120.0)
    there._run = _broken_run                        # only the child's features and model may run
    try:
        results = _stream(there)
        _same(results, expected)
        stats = there.stats()['tasks']['gesture']
        assert stats['errors'] == {} and stats['decisions'] == len(expected)
        process = stats['process']
        assert process['state'] == 'ready' and process['decisions'] == len(expected)
        pid = process['pid']
        assert pid != os.getpid()
        with open(f'/proc/{pid}/stat') as fh:                            # a child of this process, alive
            assert int(fh.read().rsplit(')', 1)[1].split()[1]) == os.getpid()
        assert all('transfer' in r.timing for r in results)
        assert _maps_torch(pid)          # the torch backend: the child loads the weights with torch itself
    finally:
        there.close()
    assert _gone(processes['gesture'].pid)                              # stopped and reaped: no zombie
    assert processes['gesture'].stats()['state'] == 'closed'


def _emotion(backend: str):
    from centralnet_ros.runtime.perception import Perception, PerceptionConfig, TaskConfig
    cfg = PerceptionConfig(tasks={'emotion': TaskConfig(bundle='emotion', trigger='rate', rate_hz=2.0)},
                           backend=backend, threads=1, warmup=0)
    return Perception(cfg)


def _audio_stream(p, n: int = 40) -> list:
    due = []
    for k in range(n):
        msg, info = _audio(k)
        if k == 0:
            p.store('audio_info', info)
        due += p.store('audio', msg)
    return p.decide(due) + p.decide(p.flush_due())


def test_on_onnx_runtime_the_child_runs_the_nodes_graph_without_importing_torch():
    """The shipped emotion bundle: the child gets the node's checked ONNX graph, maps no libtorch, decides the same."""
    expected = _audio_stream(_emotion('onnxruntime'))
    there = _emotion('onnxruntime')
    process = there.start_processes(['emotion'], decision_timeout_s=120.0)['emotion']
    there._run = _broken_run
    try:
        process.wait_ready()
        assert _maps_torch(os.getpid())                 # this process exported the graph with torch
        assert not _maps_torch(process.pid)             # the child never imported it
        with open(f'/proc/{process.pid}/status') as fh:
            rss_kb = int(next(line for line in fh if line.startswith('VmRSS:')).split()[1])
        assert rss_kb < 300_000                         # ~140 MB measured; ~360 MB with torch
        _same(_audio_stream(there), expected)
        assert there.stats()['tasks']['emotion']['process']['decisions'] >= len(expected)   # each ran there
    finally:
        there.close()
    assert _gone(process.pid)


def test_an_exported_graph_is_refused_for_another_bundle(bundle):  # noqa: F811
    from centralnet_ros.bundle import BundleError
    from centralnet_ros.runtime.engine import ExportedModel, TaskModel
    exported = TaskModel('emotion', backend='onnxruntime', warmup=0).exported()
    assert isinstance(exported, ExportedModel) and exported.onnx_model
    model = TaskModel('emotion', exported=exported, warmup=1)
    assert model.model is None and model.backend == 'onnxruntime' and model.labels
    with pytest.raises(BundleError, match='not the bundle the exported graph was made from'):
        TaskModel(bundle, exported=exported, warmup=0)
    with pytest.raises(ValueError, match='runs on ONNX Runtime'):
        TaskModel('emotion', exported=exported, backend='torch', warmup=0)
    assert TaskModel(bundle, backend='torch', warmup=0).exported() is None


def test_a_dead_child_fails_one_decision_and_the_next_starts_a_new_one(bundle):  # noqa: F811
    p = make(bundle, rate_hz=4.0, delay=0.1)
    process = p.start_processes(['gesture'], restart_delay_s=0.0)['gesture']
    try:
        process.wait_ready()
        first = process.pid
        os.kill(first, signal.SIGKILL)
        results = _stream(p, 20)                        # the first decision finds it dead, the next restart it
        stats = p.stats()['tasks']['gesture']
        assert stats['errors'].get('DecisionProcessDied') == 1
        assert results and stats['decisions'] == len(results)
        assert stats['process']['deaths'] == 1 and stats['process']['starts'] == 2
        assert stats['process']['pid'] != first and 'exit code -9' in stats['process']['last_error']
        assert _gone(first)                             # the dead child was reaped
    finally:
        p.close()
    assert _gone(process.pid)


def test_a_child_that_never_answers_is_killed_after_the_timeout(bundle):  # noqa: F811
    p = make(bundle, rate_hz=4.0, delay=0.1)
    process = p.start_processes(['gesture'], decision_timeout_s=1.0, restart_delay_s=60.0)['gesture']
    try:
        process.wait_ready()
        pid = process.pid
        os.kill(pid, signal.SIGSTOP)                    # hangs
        t = time.monotonic()
        _stream(p, 12)
        assert time.monotonic() - t < 10.0              # one timeout, then "down" answers at once
        stats = p.stats()['tasks']['gesture']
        assert stats['errors'].get('DecisionProcessDied', 0) >= 1 and stats['process']['state'] == 'down'
        assert _gone(pid)
    finally:
        p.close()


def test_close_drops_a_decision_running_in_the_child_instead_of_waiting_for_it(bundle):  # noqa: F811
    import threading
    p = make(bundle, rate_hz=4.0, delay=0.1)
    process = p.start_processes(['gesture'], decision_timeout_s=120.0)['gesture']
    process.wait_ready()
    os.kill(process.pid, signal.SIGSTOP)                # the next decision hangs in the child
    due = []
    for k in range(12):
        due += p.store('skeleton', skel_msg(k, T0 + k * 100_000_000))
        msg, info = _audio(k)
        if k == 0:
            p.store('audio_info', info)
        due += p.store('audio', msg)
    assert due
    worker = threading.Thread(target=p.decide, args=(due,))      # what a decision worker does
    worker.start()
    deadline = time.monotonic() + 30.0
    while not process._busy and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process._busy
    t = time.monotonic()
    p.close()                                           # the node's cleanup / shutdown
    worker.join(10.0)
    assert not worker.is_alive() and time.monotonic() - t < 10.0       # not the 120 s decision timeout
    errors = p.tasks['gesture'].errors
    assert errors.get('DecisionProcessInterrupted') == 1 and 'DecisionProcessDied' not in errors
    assert process.stats()['deaths'] == 0 and _gone(process.pid)


def test_a_hot_swap_brings_its_own_process_and_close_stops_it_cleanly(bundle):  # noqa: F811
    from centralnet_ros.runtime.hot_swap import swap_bundle
    p = make(bundle, rate_hz=4.0, delay=0.1)
    old = p.start_processes(['gesture'])['gesture']
    old.wait_ready()
    result = swap_bundle(p, 'gesture', bundle)           # loaded beside the old one, swapped between decisions
    assert result.accepted, result.reason
    new = p.tasks['gesture'].process
    assert new is not old and new.alive and new.pid != old.pid
    assert _gone(old.pid) and old.stats()['state'] == 'closed'           # the old one stopped and reaped
    p._run = _broken_run
    assert _stream(p, 12) and p.stats()['tasks']['gesture']['process']['decisions'] > 0
    assert new.close() is True                          # it stopped when asked, exit code 0
    assert _gone(new.pid)
    p.close()


def test_a_pipeline_another_process_cannot_import_is_refused(bundle):  # noqa: F811
    p = make(bundle, pipelines={'test_log_mel': lambda window, **kw: np.zeros((1, 16, 20), np.float32)})
    with pytest.raises(ValueError, match='cannot import'):
        p.start_processes(['gesture'])
    p.close()


def test_a_window_crosses_the_shared_memory_as_it_is():
    """Frames still to stack and pad, audio still to resample: finished in the child, the same arrays."""
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (6, 8, 3), dtype=np.uint8) for _ in range(3)]
    audio = rng.normal(size=(500, 2)).astype(np.float32)
    point = DecisionPoint(T0, 'speech_end', 'audio', SpeechSegment(T0 - 10, T0))

    def window() -> DecisionWindow:
        w = DecisionWindow(T0, point)
        w.modalities['lips'] = ModalityWindow('lips', True, 'ok', T0 - 5, T0, valid=np.array([False, True, True, True]),
                                              stamps_ns=np.arange(4, dtype=np.int64), newest_stamp_ns=T0,
                                              items=list(frames), pad=1)
        w.modalities['audio'] = ModalityWindow('audio', True, 'ok', T0 - 5, T0, data=audio.copy(),
                                               valid=np.ones(500, bool), sample_rate=32000, coverage=0.9,
                                               resample_to=16000)
        w.modalities['depth'] = ModalityWindow('depth', False, 'stale', T0 - 5, T0, items=list(frames))
        return w

    memory = DP._SharedMemory(64)
    header = {'point': DP._encode_point(point), 'modalities': DP._encode_window(window(), memory),
              'memory_size': memory.size}
    header = __import__('json').loads(__import__('json').dumps(header))          # what travels
    reader = DP._SharedMemory(fd=os.dup(memory.fd))
    got, want = DP._decode_window(header, reader).finish(), window().finish()
    assert got.point == want.point and list(got.modalities) == list(want.modalities)
    for name, m in want.modalities.items():
        g = got.modalities[name]
        assert (g.present, g.reason, g.sample_rate, g.coverage, g.newest_stamp_ns) == \
               (m.present, m.reason, m.sample_rate, m.coverage, m.newest_stamp_ns)
        if m.present:
            for key in ('data', 'valid', 'stamps_ns'):
                a, b = getattr(g, key), getattr(m, key)
                assert (a is None) == (b is None)
                if b is not None:
                    assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    assert got.modalities['lips'].data.shape == (4, 6, 8, 3)         # padded in front
    assert got.modalities['depth'].data is None                      # a missing modality's data stays home
    reader.close()
    memory.close()
