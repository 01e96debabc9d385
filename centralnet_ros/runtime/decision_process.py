"""
A task's decisions in a process of its own, so that they never hold the node's interpreter lock.

Speech (a face detector over a second of lip video) and emotion (resampling and spectral
functionals) spend a second or more per decision, partly in Python between their native
calls. On a decision thread of the node they hold the interpreter lock for those stretches,
and at a lower CPU priority they are preempted while holding it: the gesture decisions,
which must answer within a frame, then wait for a thread that waits for a core (priority
inversion through the lock; ``benchmarks/results/dds.md``). :class:`DecisionProcess` runs
one task's features and model in a child Python process instead; the node keeps its
buffers, triggers, events and statistics, and a decision of that task only cuts its window
there (under the buffer lock, as before), hands the data over and waits without the lock.

How the data travels (nothing is pickled, in either direction):

* every message on the socket pair is ``struct '!II'`` (JSON header length, payload
  length), a UTF-8 JSON header, then raw payload bytes;
* a decision's window (a second of 640x480 frames: tens of MB) is written straight from
  the buffers' frames into a shared memory file (``memfd``) that both processes map,
  with the offset, dtype and shape of every array in the header; the child reads it in
  place. Stacking frames, padding and resampling the audio (the work
  :meth:`~.window.WindowAssembler.assemble` defers) run in the child;
* the reply carries the decision as JSON (floats round-trip exactly) and the class
  probabilities as raw bytes.

The child builds its own :class:`~.perception.Perception` for that one task from the same
configuration (the bundle's resolved path) and runs the same ``Perception._run`` on the
same window: the decisions are those of the in-process path. On ONNX Runtime (the CPU
default) the node hands the child the graph its own model exported and checked
(:class:`~.engine.ExportedModel`, the init message's payload): the child reads the manifest,
never loads the weights and never imports torch (a few hundred MB less per child;
``benchmarks/results/decision_process_memory.md``). Its per-voice adaptation
statistics live in the child (:meth:`DecisionProcess.forget_voice` reaches them).

Failure: a child that dies, answers garbage or takes longer than ``decision_timeout_s``
is killed and reaped, the decision fails (counted in the task's errors as
``DecisionProcessDied``), and the next decision starts a new child (not sooner than
``restart_delay_s`` after the death; in between decisions fail at once,
``DecisionProcessDown``). The caller never dies of it. :meth:`DecisionProcess.close` asks
the child to stop, then terminates and kills it if it must, and always reaps it (no zombie);
:meth:`DecisionProcess.interrupt` kills it at once when a stop must not wait for a decision.
A child ignores SIGINT (a Ctrl-C in the terminal reaches the whole process group: the node
decides when its children stop) and exits by itself when the node's end of the socket
closes, even if the node died.

Run as ``python -m centralnet_ros.runtime.decision_process --socket-fd N --memory-fd M``
by :class:`DecisionProcess` only. No ROS here.
"""
from __future__ import annotations

import argparse
import json
import logging
import mmap
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable, Mapping

import numpy as np

from .triggers import DecisionPoint
from .vad import SpeechSegment
from .window import DecisionWindow, ModalityWindow

__all__ = ['DecisionProcess', 'DecisionProcessError', 'pipeline_reference']

log = logging.getLogger(__name__)

_FRAME = struct.Struct('!II')               # JSON header length, payload length
_ALIGN = 64
_MAX_HEADER = 64 * 2 ** 20


class DecisionProcessError(RuntimeError):
    """A decision that the task's process could not make; ``type_name`` is what the task's errors count."""

    def __init__(self, message: str, type_name: str = 'DecisionProcessDied') -> None:
        super().__init__(message)
        self.type_name = type_name


# --------------------------------------------------------------------------- wire format

def _send(sock: socket.socket, header: Mapping[str, Any], payload: bytes | memoryview = b'') -> None:
    data = json.dumps(header, separators=(',', ':')).encode()
    sock.sendall(_FRAME.pack(len(data), len(payload)) + data)
    if len(payload):
        sock.sendall(payload)


def _recv_exact(sock: socket.socket, n: int, deadline: float | None) -> bytearray:
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError('no answer in time')
            sock.settimeout(left)
        k = sock.recv_into(view[got:])
        if k == 0:
            raise EOFError('the other end closed the connection')
        got += k
    return buf


def _recv(sock: socket.socket, timeout: float | None = None) -> tuple[dict, bytearray]:
    deadline = None if timeout is None else time.monotonic() + timeout
    n_header, n_payload = _FRAME.unpack(_recv_exact(sock, _FRAME.size, deadline))
    if n_header > _MAX_HEADER:
        raise ValueError(f'message header of {n_header} bytes')
    header = json.loads(_recv_exact(sock, n_header, deadline).decode())
    payload = _recv_exact(sock, n_payload, deadline) if n_payload else bytearray()
    if not isinstance(header, dict):
        raise ValueError('message header is not a JSON object')
    return header, payload


class _SharedMemory:
    """A file in memory (``memfd``; elsewhere a temporary file) mapped by both processes; grows on demand."""

    def __init__(self, size: int = 0, fd: int | None = None) -> None:
        self._file = None
        if fd is None:
            if hasattr(os, 'memfd_create'):
                fd = os.memfd_create('centralnet-decision')
            else:                                           # pragma: no cover - not Linux
                self._file = tempfile.TemporaryFile()
                fd = self._file.fileno()
            os.ftruncate(fd, max(size, mmap.PAGESIZE))
        self.fd = fd
        self.size = 0
        self.mm: mmap.mmap | None = None
        self._map(os.fstat(fd).st_size)

    def _map(self, size: int) -> None:
        self.mm = mmap.mmap(self.fd, size)       # the old map goes when the arrays viewing it are gone
        self.size = size

    def ensure(self, size: int) -> None:
        """Grow to at least ``size`` bytes (the writer)."""
        if size > self.size:
            size = max(size, 2 * self.size)
            size = -(-size // mmap.PAGESIZE) * mmap.PAGESIZE
            os.ftruncate(self.fd, size)
            self._map(size)

    def follow(self, size: int) -> None:
        """Map ``size`` bytes that the writer has made (the reader)."""
        if size > self.size:
            self._map(size)

    def array(self, offset: int, dtype: str, shape: list[int]) -> np.ndarray:
        return np.ndarray(tuple(shape), np.dtype(dtype), buffer=self.mm, offset=offset)

    def close(self) -> None:
        self.mm = None
        if self._file is not None:
            self._file.close()
        else:
            try:
                os.close(self.fd)
            except OSError:
                pass


def _place(arrays: list[tuple[str, Any]]) -> tuple[list[dict], int]:
    """Lay ``(key, array or list of same-shape arrays)`` out one after another; return their specs and the size."""
    specs, offset = [], 0
    for key, value in arrays:
        if isinstance(value, list):
            first = np.asarray(value[0])
            dtype = np.result_type(*[np.asarray(a).dtype for a in value])
            shape = (len(value), *first.shape)
        else:
            dtype, shape = value.dtype, value.shape
        if dtype.hasobject:
            raise TypeError(f'{key}: arrays of Python objects cannot leave the process')
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        specs.append({'key': key, 'offset': offset, 'dtype': dtype.str, 'shape': [int(s) for s in shape]})
        offset += -(-nbytes // _ALIGN) * _ALIGN
    return specs, offset


def _encode_window(window: DecisionWindow, memory: _SharedMemory) -> list[dict]:
    """Header entries of the modalities of ``window``; their arrays written into ``memory``."""
    entries, arrays = [], []
    for mw in window.modalities.values():
        entry = {'name': mw.name, 'present': bool(mw.present), 'reason': mw.reason, 'start_ns': int(mw.start_ns),
                 'end_ns': int(mw.end_ns), 'sample_rate': None if mw.sample_rate is None else int(mw.sample_rate),
                 'coverage': float(mw.coverage),
                 'newest_stamp_ns': None if mw.newest_stamp_ns is None else int(mw.newest_stamp_ns),
                 'pad': int(mw.pad), 'resample_to': mw.resample_to, 'arrays': []}
        entries.append(entry)
        if not mw.present:               # a missing modality is never read: its name and reason are enough
            entry['pad'], entry['resample_to'] = 0, None
            continue
        data = mw.items if mw.items is not None else mw.data
        for key, value in (('data', data), ('valid', mw.valid), ('stamps_ns', mw.stamps_ns)):
            if value is None:
                continue
            arrays.append(((len(entries) - 1, key), value if isinstance(value, list) else np.asarray(value)))
    specs, size = _place([(f'{k[0]}:{k[1]}', v) for k, v in arrays])
    memory.ensure(size)
    for ((index, key), value), spec in zip(arrays, specs):
        out = memory.array(spec['offset'], spec['dtype'], spec['shape'])
        if isinstance(value, list):
            np.stack([np.asarray(a) for a in value], out=out)          # frames: one copy, without the GIL
        else:
            np.copyto(out, value)
        del out
        entries[index]['arrays'].append({**spec, 'key': key})
    return entries


def _decode_window(header: Mapping[str, Any], memory: _SharedMemory) -> DecisionWindow:
    p = header['point']
    segment = None if p['segment'] is None else SpeechSegment(int(p['segment'][0]), int(p['segment'][1]))
    point = DecisionPoint(int(p['t_ns']), p['reason'], p['input'], segment)
    window = DecisionWindow(point.t_ns, point)
    memory.follow(int(header['memory_size']))
    for e in header['modalities']:
        mw = ModalityWindow(e['name'], e['present'], e['reason'], e['start_ns'], e['end_ns'],
                            sample_rate=e['sample_rate'], coverage=e['coverage'], newest_stamp_ns=e['newest_stamp_ns'],
                            pad=e['pad'], resample_to=e['resample_to'])
        for spec in e['arrays']:
            setattr(mw, spec['key'], memory.array(spec['offset'], spec['dtype'], spec['shape']))
        window.modalities[mw.name] = mw
    return window


def _encode_point(point: DecisionPoint) -> dict:
    return {'t_ns': int(point.t_ns), 'reason': point.reason, 'input': point.input,
            'segment': None if point.segment is None else [int(point.segment[0]), int(point.segment[1])]}


def pipeline_reference(fn: Callable[..., Any]) -> str | None:
    """``'module:qualified.name'`` of a module-level function another process can import (None otherwise)."""
    module, qualname = getattr(fn, '__module__', None), getattr(fn, '__qualname__', '')
    if not module or not qualname or '<' in qualname or module == '__main__':
        return None
    return f'{module}:{qualname}'


def _import_reference(reference: str) -> Callable[..., Any]:
    import importlib
    module, _, qualname = reference.partition(':')
    obj: Any = importlib.import_module(module)
    for part in qualname.split('.'):
        obj = getattr(obj, part)
    return obj


# --------------------------------------------------------------------------- the node's side

class DecisionProcess:
    """
    The features and model of one task in a child process, seen from the node (see the module docstring).

    :param config: the child's :class:`~.perception_config.PerceptionConfig`: the node's, with
        only ``task`` (its bundle as a resolved path).
    :param pipelines: ``pipeline name -> 'module:function'`` for pipelines that are not in the
        registry (:func:`pipeline_reference`).
    :param nice: added to the child's CPU nice value (its threads inherit it).
    :param exported: the node's :meth:`~.engine.TaskModel.exported` graph of the task's bundle;
        the child runs it without loading the weights or importing torch (None: the child
        loads the bundle itself, with torch, as for the torch backend).

    The child is started at once and loads its model while the node goes on; the first
    :meth:`run` waits for it (``start_timeout_s``). One decision at a time (a lock).
    """

    def __init__(self, config: Any, task: str, *, pipelines: Mapping[str, str] | None = None, nice: int = 0,
                 exported: Any = None, start_timeout_s: float = 300.0, decision_timeout_s: float = 60.0,
                 restart_delay_s: float = 5.0) -> None:
        from ..config import to_dict
        if task not in config.tasks or len(config.tasks) != 1:
            raise ValueError(f'a decision process runs one task; config has {sorted(config.tasks)}, asked {task!r}')
        if not 0 <= int(nice) <= 19:
            raise ValueError(f'nice must be in [0, 19], got {nice}')
        self.task = task
        self.nice = int(nice)
        self.start_timeout_s = float(start_timeout_s)
        self.decision_timeout_s = float(decision_timeout_s)
        self.restart_delay_s = float(restart_delay_s)
        self._init = {'op': 'init', 'task': task, 'config': to_dict(config), 'pipelines': dict(pipelines or {}),
                      'nice': self.nice, 'exported': None}
        self._init_payload = b''
        if exported is not None:
            self._init['exported'] = {'bundle_sha256': exported.bundle_sha256,
                                      'fusion_weights': exported.fusion_weights}
            self._init_payload = exported.onnx_model
        json.dumps(self._init)                           # a config that cannot travel fails here, not in the child
        self._lock = threading.Lock()                    # one request at a time
        self._proc: subprocess.Popen | None = None
        self._sock: socket.socket | None = None
        self._memory: _SharedMemory | None = None
        self._ready = False
        self._closed = False
        self._busy = False                               # a request is in flight
        self._interrupted = False
        self._died_at: float | None = None
        self.starts = self.deaths = self.decisions = 0
        self.pid: int | None = None
        self.last_error: str | None = None
        self.adapted_voices: dict = {}
        self.load_s: float | None = None
        with self._lock:
            self._start()

    # -- life cycle ------------------------------------------------------------------------
    def _start(self) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        memory = _SharedMemory(2 ** 20)
        env = dict(os.environ)
        # the child imports what this process imports (a source checkout, a test folder)
        env['PYTHONPATH'] = os.pathsep.join([p for p in sys.path if p] + [env.get('PYTHONPATH', '')]).rstrip(os.pathsep)
        try:
            proc = subprocess.Popen(
                [sys.executable, '-m', 'centralnet_ros.runtime.decision_process', '--socket-fd', str(child.fileno()),
                 '--memory-fd', str(memory.fd)],
                pass_fds=(child.fileno(), memory.fd), stdin=subprocess.DEVNULL, env=env, close_fds=True)
        except Exception:
            parent.close()
            memory.close()
            raise
        finally:
            child.close()
        self._proc, self._sock, self._memory, self._ready = proc, parent, memory, False
        self.pid = proc.pid
        self.starts += 1
        self._started_at = time.monotonic()
        try:
            _send(parent, self._init, self._init_payload)
        except OSError as exc:
            self._fail(f'could not send the configuration: {exc}')

    def _fail(self, reason: str) -> None:
        """Kill and reap the child, forget it; raise :class:`DecisionProcessError` naming ``reason``."""
        proc, sock, memory = self._proc, self._sock, self._memory
        self._proc = self._sock = self._memory = None
        self._ready = False
        code = None
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            try:
                code = proc.wait(timeout=10.0)
            except subprocess.TimeoutExpired:             # pragma: no cover - a process that survives SIGKILL
                pass
        for thing in (sock, memory):
            if thing is not None:
                thing.close()
        if self._interrupted:                  # interrupt(): asked for, not a death; a new child when needed
            self._interrupted = False
            self._died_at = time.monotonic()   # (after restart_delay_s: a stop in progress is not undone)
            raise DecisionProcessError(f'decision process of {self.task}: decision interrupted',
                                       'DecisionProcessInterrupted')
        self.deaths += 1
        self._died_at = time.monotonic()
        self.last_error = f'{reason} (exit code {code})' if code is not None else reason
        log.error('task %s: decision process %s: %s; a new one starts with the next decision (after %.0f s)',
                  self.task, self.pid, self.last_error, self.restart_delay_s)
        raise DecisionProcessError(f'decision process of {self.task}: {self.last_error}')

    def _ensure(self) -> None:
        if self._closed:
            raise DecisionProcessError(f'decision process of {self.task} is closed', 'DecisionProcessClosed')
        if self._proc is None:
            wait = self.restart_delay_s - (time.monotonic() - (self._died_at or 0.0))
            if wait > 0:
                raise DecisionProcessError(f'decision process of {self.task} down ({self.last_error}); restarting '
                                           f'in {wait:.1f} s', 'DecisionProcessDown')
            self._start()
        if not self._ready:
            self._busy = True                            # interrupt() may stop the wait
            try:
                header, _ = _recv(self._sock, self.start_timeout_s)
            except (OSError, EOFError, ValueError) as exc:
                self._fail(f'did not start: {type(exc).__name__}: {exc}')
            finally:
                self._busy = False
            if header.get('op') != 'ready':
                self._fail(f'did not start: {header.get("error", header)}')
            self._ready = True
            self.load_s = time.monotonic() - self._started_at
            log.info('task %s: decision process %d ready (%.1f s)', self.task, self.pid, self.load_s)

    def wait_ready(self) -> None:
        """Wait until the child has loaded its model (raises :class:`DecisionProcessError` if it cannot)."""
        with self._lock:
            self._ensure()

    def interrupt(self) -> bool:
        """
        Kill the child if a decision is in flight (that decision fails, counted as ``DecisionProcessInterrupted``).

        For stopping without waiting for a long decision (a speech decision at a low priority on
        a loaded machine takes seconds); a new child starts with the next decision. Returns
        whether a decision was interrupted. Never blocks.
        """
        proc = self._proc
        if proc is None or not self._busy or proc.poll() is not None:
            return False
        self._interrupted = True
        proc.kill()
        return True

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def close(self, timeout: float = 5.0) -> bool:
        """Stop the child (after the decision it runs), reap it; True if it stopped by itself. Idempotent."""
        with self._lock:
            self._closed = True
            proc, sock, memory = self._proc, self._sock, self._memory
            self._proc = self._sock = self._memory = None
            if proc is None:
                return True
            clean = True
            try:
                _send(sock, {'op': 'stop'})
            except OSError:
                pass
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                clean = False
                proc.terminate()
                try:
                    proc.wait(timeout=2.0)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            sock.close()
            memory.close()
            clean = clean and proc.returncode == 0
            if not clean:
                log.warning('task %s: decision process %d ended with code %s', self.task, proc.pid, proc.returncode)
            return clean

    # -- requests --------------------------------------------------------------------------
    def _request(self, header: dict, timeout: float) -> tuple[dict, bytearray]:
        self._busy = True
        try:
            _send(self._sock, header)
            reply, payload = _recv(self._sock, timeout)
        except (OSError, EOFError, ValueError) as exc:       # died, timed out, or garbage
            self._fail(f'{type(exc).__name__}: {exc}' if str(exc) else type(exc).__name__)
        finally:
            self._busy = False
        if reply.get('op') == 'error':
            raise DecisionProcessError(f'{reply.get("type")}: {reply.get("message")}',
                                       str(reply.get('type') or 'DecisionProcessError'))
        return reply, payload

    def run(self, window: DecisionWindow, point: DecisionPoint, frame_ids: Mapping[str, str],
            voices: Mapping[str, str], t0: float) -> tuple:
        """
        Features and model of ``window`` (from ``assemble(defer=True)``) in the child.

        Returns what ``Perception._run`` returns: ``(missing, errors, frame_id, decision or
        None, timing)``; raises :class:`DecisionProcessError` when the child cannot answer.
        """
        from collections import Counter
        with self._lock:
            self._ensure()
            modalities = _encode_window(window, self._memory)
            header = {'op': 'decide', 'point': _encode_point(point), 'frame_ids': dict(frame_ids),
                      'voices': dict(voices), 'memory_size': self._memory.size, 'modalities': modalities}
            sent = time.perf_counter()
            reply, payload = self._request(header, self.decision_timeout_s)
            self.decisions += 1
        total = time.perf_counter() - t0
        self.adapted_voices = reply.get('adapted_voices') or {}
        timing = {k: float(v) for k, v in reply['timing'].items()}
        timing['assembly'] = (sent - t0) + timing.get('assembly', 0.0)       # node: cut + copy; child: stack
        decision = None
        if reply['decision'] is not None:
            from .engine import Classification
            d = reply['decision']
            spec = d['probabilities']
            probabilities = np.frombuffer(bytes(payload), np.dtype(spec['dtype'])).reshape(spec['shape']).copy()
            decision = Classification(task=d['task'], stamp_ns=d['stamp_ns'], frame_id=d['frame_id'],
                                      label=d['label'], score=d['score'],
                                      top_k=[(str(label), float(s)) for label, s in d['top_k']],
                                      probabilities=probabilities, present=d['present'],
                                      fusion_weights=d['fusion_weights'], latency_s=d['latency_s'])
            timing['total'] = total
            timing['transfer'] = max(0.0, total - timing['assembly'] - timing['features'] - timing['inference'])
        return reply['missing'], Counter(reply['errors']), reply['frame_id'], decision, timing

    def forget_voice(self, voice_id: str | None) -> int:
        """Drop the child's adaptation statistics of ``voice_id`` (None: every voice); how many it held."""
        with self._lock:
            if self._proc is None:
                return 0                          # a new child starts with none
            self._ensure()
            reply, _ = self._request({'op': 'forget_voice', 'voice': voice_id}, self.decision_timeout_s)
            self.adapted_voices = reply.get('adapted_voices') or {}
            return int(reply['forgotten'])

    def stats(self) -> dict:
        """pid, state (starting, ready, down, closed), starts, deaths, decisions, last error, load time."""
        state = ('closed' if self._closed else 'down' if self._proc is None
                 else 'ready' if self._ready else 'starting')
        return {'pid': self.pid, 'state': state, 'nice': self.nice, 'starts': self.starts, 'deaths': self.deaths,
                'decisions': self.decisions, 'last_error': self.last_error,
                'load_s': None if self.load_s is None else round(self.load_s, 3)}


# --------------------------------------------------------------------------- the child's side

def _classification_header(decision: Any) -> tuple[dict, bytes]:
    probs = np.ascontiguousarray(decision.probabilities)
    return ({'task': decision.task, 'stamp_ns': int(decision.stamp_ns), 'frame_id': decision.frame_id,
             'label': decision.label, 'score': float(decision.score),
             'top_k': [[label, float(s)] for label, s in decision.top_k],
             'present': {k: bool(v) for k, v in decision.present.items()},
             'fusion_weights': decision.fusion_weights, 'latency_s': float(decision.latency_s),
             'probabilities': {'dtype': probs.dtype.str, 'shape': list(probs.shape)}}, probs.tobytes())


def _serve(sock: socket.socket, memory: _SharedMemory) -> int:
    from ..config import from_dict
    from .perception import Perception, PerceptionConfig
    header, payload = _recv(sock)
    if header.get('op') != 'init':
        return 2
    task = header['task']
    _name_process(f'cn-proc-{task}')
    if header.get('nice'):
        os.nice(int(header['nice']))
    try:
        config = from_dict(PerceptionConfig, header['config'])
        pipelines = {name: _import_reference(ref) for name, ref in header.get('pipelines', {}).items()}
        bundles = None
        if header.get('exported') is not None:       # the node's checked graph: no weights, no torch here
            from .engine import ExportedModel, TaskModel
            e = header['exported']
            exported = ExportedModel(bytes(payload), e['bundle_sha256'], e['fusion_weights'])
            bundles = {task: TaskModel(config.tasks[task].bundle, backend='onnxruntime', threads=config.threads,
                                       warmup=config.warmup, exported=exported)}
        del payload
        perception = Perception(config, bundles=bundles, pipelines=pipelines)
        state = perception.tasks[task]
    except Exception as exc:  # noqa: BLE001 - said to the node, which reports it
        _send(sock, {'op': 'error', 'error': f'{type(exc).__name__}: {exc}'})
        return 1
    _send(sock, {'op': 'ready', 'pid': os.getpid()})

    def adapted() -> dict:
        return {p.name: p.adaptation.voices() for p in state.plans if p.adaptation is not None}

    while True:
        try:
            header, _ = _recv(sock)
        except EOFError:                         # the node is gone: nothing left to decide for
            return 0
        op = header.get('op')
        if op == 'stop':
            perception.close()
            return 0
        try:
            if op == 'decide':
                t0 = time.perf_counter()
                window = _decode_window(header, memory)
                window.finish()                  # stacking, padding and resampling: here, not in the node
                perception._voice_ids = dict(header['voices'])
                missing, errors, frame_id, decision, timing = perception._run(
                    state, window, window.point, header['frame_ids'], t0)
                del window
                reply = {'op': 'result', 'pid': os.getpid(), 'missing': missing, 'errors': dict(errors),
                         'frame_id': frame_id, 'timing': timing, 'decision': None, 'adapted_voices': adapted()}
                payload = b''
                if decision is not None:
                    reply['decision'], payload = _classification_header(decision)
                _send(sock, reply, payload)
            elif op == 'forget_voice':
                n = sum(p.adaptation.forget(header['voice']) for p in state.plans if p.adaptation is not None)
                _send(sock, {'op': 'forgotten', 'forgotten': int(n), 'adapted_voices': adapted()})
            else:
                _send(sock, {'op': 'error', 'type': 'ValueError', 'message': f'unknown request {op!r}'})
        except Exception as exc:  # noqa: BLE001 - a failing decision is the node's to count; go on
            _send(sock, {'op': 'error', 'type': type(exc).__name__, 'message': str(exc)})


def _name_process(name: str) -> None:
    """Name the child for the OS (``ps``, ``top``: 15 characters) where it can be named."""
    if sys.platform.startswith('linux'):
        import ctypes
        try:
            ctypes.CDLL(None).prctl(15, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)     # PR_SET_NAME
        except (OSError, AttributeError):   # pragma: no cover
            pass


def main(argv: list[str] | None = None) -> int:
    """Child entry point (started by :class:`DecisionProcess`)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--socket-fd', type=int, required=True)
    parser.add_argument('--memory-fd', type=int, required=True)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)          # the node stops its children, not the terminal
    logging.basicConfig(level=logging.WARNING, format=f'[decision process {os.getpid()}] %(levelname)s %(message)s')
    sock = socket.socket(fileno=args.socket_fd)
    memory = _SharedMemory(fd=args.memory_fd)
    try:
        return _serve(sock, memory)
    except (EOFError, ConnectionError):
        return 0
    finally:
        sock.close()


if __name__ == '__main__':
    _status = main()
    for _stream in (sys.stdout, sys.stderr):
        _stream.flush()
    os._exit(_status)            # no module teardown: torch and ONNX Runtime take seconds to tear down
