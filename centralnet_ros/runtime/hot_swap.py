"""
Deploy a new bundle into a running :class:`~centralnet_ros.runtime.perception.Perception` without a restart.

:func:`swap_bundle` loads the new bundle **beside** the old one (the old keeps
deciding meanwhile), builds its inference session and warms it up, plans its inputs
from its manifest, and checks that it fits the running runtime: its modalities read
inputs the runtime already buffers, and its trigger is the same (the triggers and
buffers are shared with the other tasks and are not rebuilt). Only then, holding the
runtime's locks, it replaces the task's state in one assignment, so every decision
runs entirely with the old bundle or entirely with the new one ("between
decisions"). Thresholds, counters and statistics carry over.

A bundle that cannot be used is refused and the old one keeps running;
:class:`SwapResult` says why (missing files, checksum mismatch, an unknown pipeline,
an input the runtime does not read, a model that fails its warm-up, ...). Each task's
bundle hash (:func:`~centralnet_ros.bundle.io.bundle_sha256`) is in
``Perception.stats()['tasks'][task]['bundle_sha256']``.

The fusion node calls this when a ``<task>.bundle`` parameter changes and on its
``~/reload_bundles`` service; nothing here knows ROS.
"""
from __future__ import annotations

from collections import Counter
import dataclasses
import logging
from pathlib import Path
import time
from typing import Any

__all__ = ['SwapResult', 'swap_bundle', 'bundle_changed']

log = logging.getLogger(__name__)


@dataclasses.dataclass
class SwapResult:
    """What became of one request to deploy ``bundle`` for ``task``."""

    task: str
    bundle: str
    accepted: bool
    reason: str                          # why refused ('' when accepted)
    sha256: str | None                   # of the requested bundle (None when unreadable)
    running: str                         # bundle path now running for the task
    running_sha256: str
    load_s: float                        # loading + warm-up, beside the old model

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _plan(perception: Any, task: str, tc: Any, model: Any) -> tuple[list, tuple]:
    from .plan import plan_task, trigger_key
    plans = plan_task(perception.config, task, tc, model, perception._pipelines)
    return plans, trigger_key(perception.config, task, tc, plans)


def _check_fits(perception: Any, state: Any, plans: list, key: tuple) -> None:
    missing = sorted({p.input for p in plans} - set(perception.hub.specs))
    if missing:
        raise ValueError(f'the new bundle reads input(s) {", ".join(missing)}, which the running runtime does not '
                         f'buffer (inputs: {", ".join(sorted(perception.hub.specs))}); reconfigure the node')
    if key != state.trigger_key:
        raise ValueError(f'the new bundle needs trigger {key}, the task runs {state.trigger_key}; reconfigure the node')
    for p in plans:
        buffer = perception.hub.buffers[p.input]
        retention = getattr(buffer, 'retention_ns', None)
        if retention is not None and p.spec.window_ns and p.spec.window_ns > retention:
            raise ValueError(f'modality {p.name!r} needs a {p.spec.window_ns / 1e9:.2f} s window, input '
                             f'{p.input} keeps {retention / 1e9:.2f} s; reconfigure the node')


def _start_process(perception: Any, task: str, state: Any, tc: Any, model: Any, plans: list) -> Any:
    """Start a new process for the new bundle, beside the old, when the task has one (else None)."""
    if state.process is None:
        return None
    old = state.process
    process = perception._new_process(task, tc, model, plans, nice=old.nice, start_timeout_s=old.start_timeout_s,
                                      decision_timeout_s=old.decision_timeout_s, restart_delay_s=old.restart_delay_s)
    try:
        process.wait_ready()
    except Exception:
        process.close()
        raise
    return process


def swap_bundle(perception: Any, task: str, bundle: str | Path) -> SwapResult:
    """
    Load ``bundle`` for ``task`` beside the running one, warm it up, and swap it in between decisions.

    Never raises for a bad bundle: the old one stays and the result says why. Raises
    ``KeyError`` for a task the runtime does not run.
    """
    from ..bundle.io import bundle_sha256, resolve_bundle_path
    from .engine import TaskModel
    from .window import WindowAssembler
    state = perception._task(task)
    cfg = perception.config
    t0 = time.perf_counter()
    sha = None
    try:
        path = resolve_bundle_path(bundle)
        sha = bundle_sha256(path)
        model = TaskModel(path, device=cfg.device, precision=cfg.precision, backend=cfg.backend, threads=cfg.threads,
                          on_device_failure=cfg.on_device_failure, warmup=max(1, cfg.warmup))
        tc = dataclasses.replace(state.config, bundle=str(path))
        plans, key = _plan(perception, task, tc, model)
        _check_fits(perception, state, plans, key)
        assembler = WindowAssembler([p.spec for p in plans], perception.hub.buffers)
        events = dataclasses.replace(state, config=tc, model=model, plans=plans)
        perception._setup_events(events)          # the new bundle's decision section (thresholds, mode)
        process = _start_process(perception, task, state, tc, model, plans)
    except Exception as exc:  # noqa: BLE001 - any failure refuses the bundle, the old one stays
        old = perception.tasks[task].model
        reason = f'{type(exc).__name__}: {exc}'
        log.warning('task %s: bundle %s refused, keeping %s (%s)', task, bundle, old.bundle.path, reason)
        return SwapResult(task, str(bundle), False, reason, sha, str(old.bundle.path), old.bundle_sha256,
                          time.perf_counter() - t0)
    load_s = time.perf_counter() - t0
    with perception._model_lock, perception._lock:          # between decisions (none is running features or model)
        if getattr(perception, '_closed', False):
            if process is not None:
                process.close()
            return SwapResult(task, str(bundle), False, 'the runtime is closed', sha, '', '', load_s)
        current = perception.tasks[task]
        missing = {p.name: current.missing.get(p.name, Counter()) for p in plans}
        new = dataclasses.replace(current, config=tc, model=model, plans=plans, assembler=assembler, missing=missing,
                                  threshold=events.threshold, event_config=events.event_config,
                                  event_layer=events.event_layer, person_state=events.person_state, process=process)
        perception.tasks[task] = new              # one assignment: a decision sees the old state or the new
        perception.models[task] = model
        perception.config.tasks[task] = tc
    if current.process is not None:               # the old bundle's process: stopped and reaped
        current.process.close()
    log.info('task %s: now running bundle %s (sha256 %s, loaded and warmed in %.2f s)', task, path, sha[:12], load_s)
    return SwapResult(task, str(bundle), True, '', sha, str(path), sha, load_s)


def bundle_changed(perception: Any, task: str, bundle: str | Path) -> bool:
    """Whether ``bundle`` differs from what ``task`` runs (by sha256; an unreadable bundle counts as changed)."""
    from ..bundle.io import bundle_sha256
    try:
        return bundle_sha256(bundle) != perception._task(task).model.bundle_sha256
    except Exception:  # noqa: BLE001 - unreadable: let swap_bundle say why
        return True
