"""
Run a sweep of training runs (variants x folds x methods x seeds) on one machine or on a Ray cluster.

A run is a :class:`RunSpec`; :func:`plan_runs` lists an experiment's runs from its preset
(``variants:``, ``folds:``, ``methods``, ``seeds``) and :func:`run_sweep` trains them into
one folder, ``runs.json`` rewritten atomically after every finished run so that an
interrupted sweep continues with ``resume``.  ``centralnet compare`` and the benchmarks
under ``benchmarks/`` run their trainings through it.

What one run does is a pair of top-level (picklable) functions: ``load(cfg, data_root)``
returns the data of the run's resolved configuration (cached in each worker while the
dataset options stay the same) and ``run(cfg, data, spec)`` returns the run's record
(default: :func:`centralnet_ros.training.compare.run_one`, the test metric of the best
validation epoch).  A benchmark that measures more per run passes its own ``run``.

Three backends run them, so a run's record depends on its spec alone, whichever backend ran it:

- ``serial``: in this process, one run after the other (``jobs == 1``);
- ``local``: a pool of single-threaded worker processes on this machine (no extra dependency);
- ``ray``: one Ray task per run with its CPU/GPU request, preloaded data put once in Ray's
  object store; ``address`` is ``'local'`` (start a Ray instance here with ``jobs`` CPUs),
  ``'auto'`` (attach to the cluster this machine belongs to) or ``'HOST:PORT'``.
  Ray is an optional extra: ``pip install "centralnet_ros[ray]"``;
- ``vmap``: in this process, each (variant, fold, method)'s seeds trained together as one
  vmapped ensemble (:func:`centralnet_ros.training.compare.run_ensemble`; the default ``run``
  only); a member equals its run in distribution, not bit for bit (see
  :mod:`centralnet_ros.training.ensemble`).

Results stream back as they finish (``on_result`` is called in the driver, which writes
them atomically); a run that raises, or whose worker dies, is reported through
``on_failure`` without losing the others.  Ray retries a task whose worker process died
(``max_retries``) before reporting it.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import multiprocessing
from pathlib import Path
import sys
from typing import Any, Callable, Iterable

BACKENDS = ('serial', 'local', 'ray', 'vmap')
RAY_MAX_RETRIES = 2


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: a method and a seed, on a fold and a variant of the experiment when it has them."""

    method: str
    seed: int
    fold: int | None = None          # index into the experiment's folds.values
    variant: str | None = None       # a key of the experiment's variants

    @property
    def name(self) -> str:
        return ' '.join([*([f'[{self.variant}]'] if self.variant is not None else []), self.method,
                         f'seed {self.seed}', *([f'fold {self.fold}'] if self.fold is not None else [])])

    @property
    def key(self) -> tuple:
        return (self.variant, self.method, self.seed, self.fold)

    def fields(self) -> dict[str, Any]:
        """Return the spec as the keys of a run record (``fold`` and ``variant`` only when set)."""
        out: dict[str, Any] = {'method': self.method, 'seed': self.seed}
        if self.fold is not None:
            out['fold'] = self.fold
        if self.variant is not None:
            out['variant'] = self.variant
        return out

    @classmethod
    def of(cls, record: dict) -> RunSpec:
        """Return the spec of a run record (the inverse of :meth:`fields`)."""
        return cls(record['method'], record['seed'], record.get('fold'), record.get('variant'))


def plan_runs(cfg, *, methods: Iterable[str] | None = None, variants: Iterable[str] | None = None,
              folds: Iterable[int] | None = None, seeds: int | None = None) -> list[RunSpec]:
    """
    Return every run of experiment ``cfg``: variants x folds x seeds x methods, in that order.

    Seed-major within a fold: a sweep stopped part-way holds as many seeds of every method.

    ``methods``, ``variants`` and ``folds`` (fold indices) pick subsets; ``seeds`` replaces the
    number of seeds of every variant.  A variant may declare its own folds, seeds and methods.
    """
    from centralnet_ros.config import ConfigError
    names = list(variants) if variants is not None else (list(cfg.variants) or [None])
    unknown = [v for v in names if v is not None and v not in cfg.variants]
    if unknown:
        raise ConfigError(f'{cfg.name}: no variant(s) {unknown}; variants: {", ".join(cfg.variants) or "none"}')
    wanted = list(methods) if methods is not None else None
    runs = []
    for variant in names:
        vcfg = cfg.resolve(variant)
        n_folds = len(vcfg.folds.values) if vcfg.folds else 0
        fold_list: list[int | None] = [None] if not n_folds else (
            [f for f in folds if 0 <= f < n_folds] if folds is not None else list(range(n_folds)))
        chosen = [m for m in vcfg.methods if wanted is None or m in wanted]
        seed_list = [vcfg.seed_offset + s for s in range(vcfg.seeds if seeds is None else seeds)]
        shift = vcfg.folds is not None and vcfg.folds.seed_per_fold
        runs += [RunSpec(m, s + (f if shift else 0), f, variant) for f in fold_list for s in seed_list for m in chosen]
    return runs


class SweepError(RuntimeError):
    """The sweep could not start (e.g. Ray missing or unreachable)."""


def _progress(total: int, initial: int, enabled: bool):
    from tqdm import tqdm
    return tqdm(total=total, initial=initial, desc='sweep', unit='run', disable=not enabled, leave=False)


def execute(runs: Iterable[RunSpec], cfg, data, *, on_result: Callable[[RunSpec, dict], None],
            on_failure: Callable[[RunSpec, str], None], backend: str = 'local', jobs: int = 1,
            ray_address: str = 'local', total: int | None = None, done: int = 0, progress: bool = True,
            run: Callable | None = None, load: Callable | None = None, data_root: str | Path = '') -> None:
    """
    Train every run in ``runs`` of experiment ``cfg`` (an ExperimentConfig).

    ``data`` (ExperimentData) serves every run when given; with ``None`` each run's data is
    ``load(cfg, data_root)`` of its resolved configuration (default: the dataset adapter), loaded
    in the worker.  ``run(cfg, data, spec)`` returns a run's record (default: ``compare.run_one``).
    ``on_result(spec, record)`` receives each finished run's record (the spec's fields first);
    ``on_failure(spec, reason)`` each run that failed.  ``total``/``done`` size the progress bar
    of a resumed sweep.
    """
    runs = list(runs)
    if backend not in BACKENDS:
        raise SweepError(f'unknown sweep backend {backend!r}; known: {", ".join(BACKENDS)}')
    if not runs:
        return
    bar = _progress(total or len(runs), done, progress)
    task = {'run': run, 'load': load, 'data_root': str(data_root)}

    def ok(spec: RunSpec, rec: dict) -> None:
        bar.update(1)
        on_result(spec, rec)

    def failed(spec: RunSpec, reason: str) -> None:
        bar.update(1)
        on_failure(spec, reason)

    try:
        if backend == 'serial' or (backend == 'local' and jobs <= 1):
            _serial(runs, cfg, data, task, ok, failed)
        elif backend == 'local':
            _local(runs, cfg, data, task, ok, failed, jobs)
        elif backend == 'vmap':
            _vmap(runs, cfg, data, task, ok, failed)
        else:
            _ray(runs, cfg, data, task, ok, failed, jobs, ray_address)
    finally:
        bar.close()


def _reason(exc: BaseException) -> str:
    return f'{type(exc).__name__}: {exc}'.strip()


def default_run(cfg, data, spec: RunSpec) -> dict:
    """Train ``spec``'s method and seed on ``data`` with :func:`centralnet_ros.training.compare.run_one`."""
    from centralnet_ros.training.compare import run_one
    return run_one(cfg, data, spec.method, spec.seed, desc=spec.name)


def default_load(cfg, data_root: str | Path):
    """Return the ExperimentData of ``cfg``'s dataset and options (the dataset adapter)."""
    from centralnet_ros.training.datasets import load_experiment_data
    return load_experiment_data(cfg.dataset, cfg.dataset_options, Path(data_root))


def _config_and_data(state: dict, spec: RunSpec):
    """Return ``spec``'s resolved configuration and its data (loaded once while the dataset options stay)."""
    cfg = state['cfg'].resolve(spec.variant, spec.fold)
    data = state['data']
    if data is None:
        key = json.dumps([cfg.dataset, cfg.dataset_options], sort_keys=True, default=str)
        if state.get('loaded', (None,))[0] != key:
            state['loaded'] = (None, None)                                   # free the last fold's arrays first
            state['loaded'] = (key, (state['load'] or default_load)(cfg, state['data_root']))
        data = state['loaded'][1]
    return cfg, data


def _run_in(state: dict, spec: RunSpec) -> dict:
    """Run ``spec`` with a worker's ``state`` (cfg, data, run, load, data_root, the last loaded data)."""
    cfg, data = _config_and_data(state, spec)
    rec = (state['run'] or default_run)(cfg, data, spec)
    return {**spec.fields(), **{k: v for k, v in rec.items() if k not in ('method', 'seed', 'fold', 'variant')}}


def _serial(runs, cfg, data, task, ok, failed) -> None:
    state = {'cfg': cfg, 'data': data, **task}
    for spec in runs:
        try:
            rec = _run_in(state, spec)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - one failed run must not end the sweep
            failed(spec, _reason(exc))
        else:
            ok(spec, rec)


def _vmap(runs, cfg, data, task, ok, failed) -> None:
    from centralnet_ros.training.compare import run_ensemble
    if task['run'] is not None:
        raise SweepError("the vmap backend trains with compare's own run only, not a benchmark's run function")
    state = {'cfg': cfg, 'data': data, **task}
    groups: dict[tuple, list[RunSpec]] = {}
    for spec in runs:
        groups.setdefault((spec.variant, spec.fold, spec.method), []).append(spec)
    for (variant, fold, method), specs in groups.items():
        try:
            rcfg, rdata = _config_and_data(state, specs[0])
            records = run_ensemble(rcfg, rdata, method, [s.seed for s in specs])
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - one failed ensemble must not end the sweep
            for spec in specs:
                failed(spec, _reason(exc))
        else:
            for spec, rec in zip(specs, records):
                ok(spec, {**spec.fields(), **{k: v for k, v in rec.items() if k not in ('method', 'seed')}})


def worker_config(cfg):
    """Return ``cfg`` as a worker runs it: no progress bars, one torch thread unless set."""
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, progress=False,
                                                              num_threads=cfg.train.num_threads or 1))


# --------------------------------------------------------------------------- local process pool

_WORKER: dict = {}


def _worker_init(cfg_dict: dict, data, task: dict) -> None:
    import torch

    from centralnet_ros.config import from_dict
    from centralnet_ros.training.experiment import ExperimentConfig
    cfg = from_dict(ExperimentConfig, cfg_dict)
    torch.set_num_threads(cfg.train.num_threads or 1)
    _WORKER.clear()
    _WORKER.update(cfg=cfg, data=data, **task)


def _worker_run(spec: RunSpec) -> dict:
    return _run_in(_WORKER, spec)


def _local(runs, cfg, data, task, ok, failed, jobs: int) -> None:
    from centralnet_ros.training.experiment import experiment_dict
    jobs = max(1, min(jobs, len(runs)))
    with concurrent.futures.ProcessPoolExecutor(
            jobs, mp_context=multiprocessing.get_context('spawn'), initializer=_worker_init,
            initargs=(experiment_dict(worker_config(cfg)), data, task)) as pool:
        futures = {pool.submit(_worker_run, spec): spec for spec in runs}
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


def _ray_run(cfg_dict: dict, data, task: dict, spec: RunSpec) -> dict:
    _worker_init(cfg_dict, data, task)
    return _worker_run(spec)


def _ray(runs, cfg, data, task, ok, failed, jobs: int, address: str) -> None:
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
        pending = {remote.remote(cfg_dict, data_ref, task, spec): spec for spec in runs}
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


# --------------------------------------------------------------------------- a sweep into a folder

def run_sweep(cfg, runs: list[RunSpec], out: Path, *, resume: bool = False, command: str = '', data=None,
              run: Callable | None = None, load: Callable | None = None, data_root: str | Path = '',
              backend: str = 'local', jobs: int = 1, ray_address: str = 'local', progress: bool = True,
              info: dict | None = None, metric: str | None = None) -> tuple[list[dict], list[dict]]:
    """
    Train ``runs`` of ``cfg`` into folder ``out`` and return ``(records, failures)``.

    Writes ``out/config.yaml`` (the resolved experiment) and ``out/runs.json`` (experiment,
    machine, command, data info, every finished run and the failed ones), rewritten atomically
    after every run.  With ``resume`` the runs already in ``runs.json`` are kept and not trained
    again; records are returned in the order of ``runs``.  ``metric`` names the record key
    printed per finished run (default: ``test``).  The runs train ``jobs`` at a time.
    """
    from centralnet_ros.config import dump_yaml
    from centralnet_ros.training.experiment import experiment_dict
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dump_yaml(cfg, out / 'config.yaml')
    runs_path = out / 'runs.json'
    records: list[dict] = []
    if resume and runs_path.exists():
        stored = json.loads(runs_path.read_text())
        changed = _changed_keys(stored.get('experiment', {}), json.loads(json.dumps(experiment_dict(cfg))),
                                defaults=_schema_defaults())
        if changed:
            raise SweepError(f'{runs_path} holds runs of another experiment (differs in {", ".join(changed[:5])}); '
                             'resume with the same preset and overrides, or choose another output folder')
        records = stored['runs']
    wanted = {spec.key for spec in runs}
    done = {RunSpec.of(r).key for r in records}
    todo = [spec for spec in runs if spec.key not in done]
    finished = len(wanted & done)
    failures: list[dict] = []
    metric = metric or 'test'

    def record(spec: RunSpec, rec: dict) -> None:
        nonlocal finished
        finished += 1
        records.append(rec)
        print(f'[{finished}/{len(wanted)}] {spec.name}: {_outcome(rec, metric)}', file=sys.stderr, flush=True)
        write_runs(runs_path, cfg, records, info or {}, command, failures)

    def failed(spec: RunSpec, reason: str) -> None:
        nonlocal finished
        finished += 1
        failures.append({**spec.fields(), 'reason': reason})
        print(f'[{finished}/{len(wanted)}] {spec.name}: FAILED: {reason}', file=sys.stderr, flush=True)
        write_runs(runs_path, cfg, records, info or {}, command, failures)

    write_runs(runs_path, cfg, records, info or {}, command, failures)
    execute(todo, cfg, data, on_result=record, on_failure=failed, backend=backend, jobs=jobs,
            ray_address=ray_address, total=len(wanted), done=finished, progress=progress, run=run, load=load,
            data_root=data_root)
    order = {spec.key: i for i, spec in enumerate(runs)}
    records.sort(key=lambda r: order.get(RunSpec.of(r).key, len(order)))
    write_runs(runs_path, cfg, records, info or {}, command, failures)
    return [r for r in records if RunSpec.of(r).key in order], failures


RESUME_IGNORES = ('train.progress', 'train.num_threads', 'train.device')   # do not change what a run learns


def _changed_keys(old: dict, new: dict, prefix: str = '', defaults: dict | None = None) -> list[str]:
    """
    Return the dotted keys whose values differ between two experiment dicts (``RESUME_IGNORES`` aside).

    A key missing from ``old`` whose new value is its schema default (``defaults``) is no change: the
    schema grew that option after the runs were stored, and its default keeps what they learned.
    """
    out = []
    defaults = defaults or {}
    for key in sorted(set(old) | set(new)):
        name = f'{prefix}{key}'
        a, b, default = old.get(key), new.get(key), defaults.get(key, _NO_DEFAULT)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _changed_keys(a, b, name + '.', default if isinstance(default, dict) else None)
        elif key not in old and b == default:
            continue
        elif a != b and name not in RESUME_IGNORES:
            out.append(name)
    return out


_NO_DEFAULT = object()


def _schema_defaults() -> dict:
    """Return the default of every experiment option that has one, nested as an experiment dict is."""
    from centralnet_ros.config import to_dict
    from centralnet_ros.training.experiment import ExperimentConfig
    out = {}
    for field in dataclasses.fields(ExperimentConfig):
        if field.default is not dataclasses.MISSING:
            value = field.default
        elif field.default_factory is not dataclasses.MISSING:
            value = field.default_factory()
        else:
            continue
        out[field.name] = json.loads(json.dumps(to_dict(value) if dataclasses.is_dataclass(value) else value))
    return out


def _outcome(rec: dict, metric: str) -> str:
    value = rec.get(metric)
    if not isinstance(value, (int, float)):
        return 'done'
    extra = [f'val {rec["val"]:.4f}'] if isinstance(rec.get('val'), (int, float)) else []
    extra += [f'epoch {rec["best_epoch"]}'] if 'best_epoch' in rec else []
    extra += [f'{rec["wall_time_s"]:.0f} s'] if isinstance(rec.get('wall_time_s'), (int, float)) else []
    return f'{metric} {value:.4f}' + (f' ({", ".join(extra)})' if extra else '')


def write_runs(path: Path, cfg, runs: list[dict], info: dict, command: str,
               failures: list[dict] | None = None) -> None:
    """Write ``runs.json`` atomically: experiment, machine, command, data info, runs and failures."""
    from centralnet_ros.config import atomic_write_text
    from centralnet_ros.machine import machine_description
    from centralnet_ros.training.experiment import experiment_dict
    payload = {'experiment': experiment_dict(cfg), 'machine': machine_description(), 'command': command,
               'data': jsonable(info), 'runs': runs, 'failed': list(failures or [])}
    atomic_write_text(path, json.dumps(payload, indent=1, default=jsonable))


def jsonable(obj):
    """Return ``obj`` with numpy values as plain JSON values (arrays over 64 values as a shape note)."""
    import numpy as np
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist() if obj.size <= 64 else f'array{obj.shape}'
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    return obj


# --------------------------------------------------------------------------- command-line options of a sweep

def add_arguments(parser, *, jobs: int = 2, runs: str | None = None) -> None:
    """
    Add the sweep's options to ``parser``: ``--jobs``, ``--ray``, ``--resume``.

    With ``runs`` (a benchmark's default sweep folder) also ``--runs`` and ``--render-only``.
    """
    parser.add_argument('--jobs', type=int, default=jobs,
                        help='runs trained in parallel, each in its own single-threaded process'
                             + (' (0: one per CPU core)' if jobs == 0 else ''))
    parser.add_argument('--ray', nargs='?', const='local', default=None, metavar='ADDRESS',
                        help="run the sweep on Ray (optional extra): no value or 'local' starts a local Ray "
                             "instance with --jobs CPUs, 'auto' attaches to this machine's cluster, "
                             'HOST:PORT to a remote one')
    parser.add_argument('--resume', action='store_true', help='keep the finished runs found in runs.json')
    if runs is not None:
        parser.add_argument('--runs', default=runs, help='the sweep folder (runs.json, config.yaml)')
        parser.add_argument('--render-only', action='store_true', help='render --runs/runs.json, train nothing')


def add_plan_arguments(parser, *, preset: str) -> None:
    """Add the runs a benchmark plans: ``--preset``, ``--variants``, ``--folds``, ``--seeds``, ``--set``."""
    parser.add_argument('--preset', default=preset)
    parser.add_argument('--variants', nargs='*', default=None, help='variants of the preset (default: all)')
    parser.add_argument('--folds', type=int, nargs='*', default=None, help='fold indices (default: all)')
    parser.add_argument('--seeds', type=int, default=None, help="seeds per fold (default: the preset's)")
    parser.add_argument('--set', dest='overrides', action='append', default=[], metavar='KEY=VALUE')


def plan_from_args(args) -> tuple:
    """
    Return ``(cfg, plan, overrides)`` of the options of :func:`add_plan_arguments` (workers: 1 thread, no bars).

    With ``--render-only`` (see :func:`add_arguments`) nothing is planned: ``(None, None, overrides)``.
    """
    from centralnet_ros.training.experiment import load_experiment, parse_overrides
    overrides = parse_overrides(args.overrides)
    if getattr(args, 'render_only', False):
        return None, None, overrides
    cfg = load_experiment(args.preset, overrides={**overrides, 'train.progress': False, 'train.num_threads': 1})
    return cfg, plan_runs(cfg, variants=args.variants, folds=args.folds, seeds=args.seeds), overrides


def sweep_from_args(args, cfg, plan: list[RunSpec] | None, *, command: str, run: Callable | None = None,
                    load: Callable | None = None, data_root: str | Path = '', info: dict | None = None,
                    metric: str | None = None) -> dict:
    """
    Run ``plan`` into ``args.runs`` as the options of :func:`add_arguments` ask; return its ``runs.json``.

    With ``--render-only`` nothing is trained (``cfg`` and ``plan`` may be None).  A sweep that cannot
    start or resume, or a missing ``runs.json``, ends the program with one line saying why.
    """
    from centralnet_ros.config import ConfigError
    out = Path(args.runs)
    try:
        if not args.render_only:
            run_sweep(cfg, plan, out, resume=args.resume, command=command, run=run, load=load, data_root=data_root,
                      backend='ray' if args.ray else 'local', jobs=args.jobs, ray_address=args.ray or 'local',
                      progress=False, info={**(info or {}), 'jobs': args.jobs}, metric=metric)
        path = out / 'runs.json'
        if not path.is_file():
            raise SweepError(f'{path} does not exist: run the sweep first (without --render-only)')
        return json.loads(path.read_text())
    except (SweepError, ConfigError) as exc:        # one line for the command line, not a traceback
        raise SystemExit(f'error: {exc}') from None
