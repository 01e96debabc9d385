"""
Run a sweep of training runs (methods x seeds) on one machine or on a Ray cluster.

Three backends run the same function, :func:`centralnet_ros.training.compare.run_one`, on
the same arrays, so a run's record depends on its (method, seed) alone, whichever backend
ran it:

- ``serial``: in this process, one run after the other (``jobs == 1``);
- ``local``: a pool of single-threaded worker processes on this machine, each holding one
  copy of the data (no extra dependency);
- ``ray``: one Ray task per run with its CPU/GPU request, the data put once in Ray's
  object store; ``address`` is ``'local'`` (start a Ray instance here with ``jobs`` CPUs),
  ``'auto'`` (attach to the cluster this machine belongs to) or ``'HOST:PORT'``.
  Ray is an optional extra: ``pip install "centralnet_ros[ray]"``;
- ``vmap``: in this process, each method's seeds trained together as one vmapped ensemble
  (:func:`centralnet_ros.training.compare.run_ensemble`); a member equals its run in
  distribution, not bit for bit (see :mod:`centralnet_ros.training.ensemble`).

Results stream back as they finish (``on_result`` is called in the driver, which writes
them atomically); a run that raises, or whose worker dies, is reported through
``on_failure`` without losing the others.  Ray retries a task whose worker process died
(``max_retries``) before reporting it.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import multiprocessing
from typing import Callable, Iterable

BACKENDS = ('serial', 'local', 'ray', 'vmap')
RAY_MAX_RETRIES = 2


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One run of a sweep."""

    method: str
    seed: int

    @property
    def name(self) -> str:
        return f'{self.method} seed {self.seed}'


class SweepError(RuntimeError):
    """The sweep could not start (e.g. Ray missing or unreachable)."""


def _progress(total: int, initial: int, enabled: bool):
    from tqdm import tqdm
    return tqdm(total=total, initial=initial, desc='sweep', unit='run', disable=not enabled, leave=False)


def execute(runs: Iterable[RunSpec], cfg, data, *, on_result: Callable[[RunSpec, dict], None],
            on_failure: Callable[[RunSpec, str], None], backend: str = 'local', jobs: int = 1,
            ray_address: str = 'local', total: int | None = None, done: int = 0, progress: bool = True) -> None:
    """
    Train every run in ``runs`` with ``cfg`` (an ExperimentConfig) on ``data`` (ExperimentData).

    ``on_result(spec, record)`` receives each finished run's record; ``on_failure(spec, reason)``
    each run that failed.  ``total``/``done`` size the progress bar of a resumed sweep.
    """
    runs = list(runs)
    if backend not in BACKENDS:
        raise SweepError(f'unknown sweep backend {backend!r}; known: {", ".join(BACKENDS)}')
    if not runs:
        return
    bar = _progress(total or len(runs), done, progress)

    def ok(spec: RunSpec, rec: dict) -> None:
        bar.update(1)
        on_result(spec, rec)

    def failed(spec: RunSpec, reason: str) -> None:
        bar.update(1)
        on_failure(spec, reason)

    try:
        if backend == 'serial' or (backend == 'local' and jobs <= 1):
            _serial(runs, cfg, data, ok, failed)
        elif backend == 'local':
            _local(runs, cfg, data, ok, failed, jobs)
        elif backend == 'vmap':
            _vmap(runs, cfg, data, ok, failed)
        else:
            _ray(runs, cfg, data, ok, failed, jobs, ray_address)
    finally:
        bar.close()


def _reason(exc: BaseException) -> str:
    return f'{type(exc).__name__}: {exc}'.strip()


def _serial(runs, cfg, data, ok, failed) -> None:
    from centralnet_ros.training.compare import run_one
    for spec in runs:
        try:
            rec = run_one(cfg, data, spec.method, spec.seed, desc=spec.name)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - one failed run must not end the sweep
            failed(spec, _reason(exc))
        else:
            ok(spec, rec)


def _vmap(runs, cfg, data, ok, failed) -> None:
    from centralnet_ros.training.compare import run_ensemble
    by_method: dict[str, list[RunSpec]] = {}
    for spec in runs:
        by_method.setdefault(spec.method, []).append(spec)
    for method, specs in by_method.items():
        try:
            records = run_ensemble(cfg, data, method, [s.seed for s in specs])
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - one failed ensemble must not end the sweep
            for spec in specs:
                failed(spec, _reason(exc))
        else:
            for spec, rec in zip(specs, records):
                ok(spec, rec)


def worker_config(cfg):
    """Return ``cfg`` as a worker runs it: no progress bars, one torch thread unless set."""
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, progress=False,
                                                              num_threads=cfg.train.num_threads or 1))


# --------------------------------------------------------------------------- local process pool

_WORKER: dict = {}


def _worker_init(cfg_dict: dict, data) -> None:
    import torch

    from centralnet_ros.config import from_dict
    from centralnet_ros.training.experiment import ExperimentConfig
    cfg = from_dict(ExperimentConfig, cfg_dict)
    torch.set_num_threads(cfg.train.num_threads or 1)
    _WORKER.update(cfg=cfg, data=data)


def _worker_run(method: str, seed: int) -> dict:
    from centralnet_ros.training.compare import run_one
    return run_one(_WORKER['cfg'], _WORKER['data'], method, seed)


def _local(runs, cfg, data, ok, failed, jobs: int) -> None:
    from centralnet_ros.training.experiment import experiment_dict
    jobs = max(1, min(jobs, len(runs)))
    with concurrent.futures.ProcessPoolExecutor(
            jobs, mp_context=multiprocessing.get_context('spawn'), initializer=_worker_init,
            initargs=(experiment_dict(worker_config(cfg)), data)) as pool:
        futures = {pool.submit(_worker_run, spec.method, spec.seed): spec for spec in runs}
        for future in concurrent.futures.as_completed(futures):
            spec = futures[future]
            try:
                rec = future.result()
            except concurrent.futures.process.BrokenProcessPool as exc:
                failed(spec, f'its worker process died ({exc}); run again with --resume')
            except Exception as exc:  # noqa: BLE001 - reported per run
                failed(spec, _reason(exc))
            else:
                ok(spec, rec)


# --------------------------------------------------------------------------- Ray

def _import_ray():
    try:
        import ray
    except ImportError as exc:
        raise SweepError('--ray needs Ray, an optional extra: pip install "centralnet_ros[ray]" '
                         '(or pip install ray)') from exc
    return ray


def _ray_run(cfg_dict: dict, data, method: str, seed: int) -> dict:
    _worker_init(cfg_dict, data)
    return _worker_run(method, seed)


def _ray(runs, cfg, data, ok, failed, jobs: int, address: str) -> None:
    ray = _import_ray()
    from centralnet_ros.training.experiment import experiment_dict
    started_here = False
    if not ray.is_initialized():
        try:
            if address == 'local':
                ray.init(num_cpus=max(1, jobs), include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=address, log_to_driver=False)
        except Exception as exc:  # noqa: BLE001 - Ray raises several types for an unreachable cluster
            raise SweepError(f'could not start or reach Ray at {address!r}: {_reason(exc)}') from exc
        started_here = True
    try:
        wcfg = worker_config(cfg)
        gpus = 1 if str(wcfg.train.device).startswith('cuda') else 0
        remote = ray.remote(num_cpus=wcfg.train.num_threads or 1, num_gpus=gpus,
                            max_retries=RAY_MAX_RETRIES)(_ray_run)
        cfg_dict, data_ref = experiment_dict(wcfg), ray.put(data)
        pending = {remote.remote(cfg_dict, data_ref, spec.method, spec.seed): spec for spec in runs}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                spec = pending.pop(ref)
                try:
                    rec = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - RayTaskError, WorkerCrashedError, ...
                    cause = getattr(exc, 'cause', None)       # a RayTaskError wraps the run's own exception
                    failed(spec, _reason(cause if isinstance(cause, BaseException) else exc).splitlines()[0][:500])
                else:
                    ok(spec, rec)
    finally:
        if started_here:
            ray.shutdown()
