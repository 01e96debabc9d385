"""
``centralnet replay BAG``: replay a rosbag2 recording through the runtime and evaluate it.

::

    centralnet replay BAG [--labels FILE] [--config FILE] [--out DIR] [--tasks T ...]
                          [--bundle TASK=PATH ...] [--topic INPUT=/TOPIC ...] [--storage auto]

The runtime is configured like the fusion node: ``--config`` takes the node's ROS 2
params file (``config/fusion.yaml`` or a robot overlay) or a
:class:`~centralnet_ros.runtime.perception.PerceptionConfig` YAML; without it the
node's defaults apply (all three tasks, bundles ``gesture``, ``speech``, ``emotion``
from ``models/``). Writes into ``--out``: ``predictions.jsonl``, ``metrics.json``,
``summary.txt``, ``confusion_<task>.png``, ``timeline.png`` and the resolved
``config.yaml``. See :mod:`centralnet_ros.replay.labels` for the label formats.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path
import sys
import time
from typing import Any, Sequence

__all__ = ['add_arguments', 'run', 'ReplaySetupError', 'build_config', 'run_replay']


class ReplaySetupError(ValueError):
    """Bad arguments: a bundle, topic, label file or config that cannot be used."""


def _pairs(values: Sequence[str], what: str) -> dict[str, str]:
    out = {}
    for v in values or ():
        key, sep, value = v.partition('=')
        if not sep or not key or not value:
            raise ReplaySetupError(f'{what} expects NAME=VALUE, got {v!r}')
        out[key.strip()] = value.strip()
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('bag', help='rosbag2 recording: a folder with metadata.yaml (sqlite3 or MCAP), or a .mcap file')
    parser.add_argument('--labels', default=None,
                        help='ground truth: CSV/YAML file of segments task,start_s,end_s,label; '
                             'without it: the /labels/<task> topics of the bag, if any')
    parser.add_argument('--label-time-base', choices=('bag_start', 'absolute'), default=None,
                        help="times in the label file: seconds from the bag's start, or since the epoch; "
                             "without it: the file's time_base, else bag_start")
    parser.add_argument('--config', default=None,
                        help='the fusion node params file (config/fusion.yaml or a robot overlay) or a '
                             'PerceptionConfig YAML; without it: the node defaults')
    parser.add_argument('--out', default=None, help='output folder; without it: ./replay-<bag name>')
    parser.add_argument('--tasks', nargs='+', default=None, metavar='TASK',
                        help='tasks to run; without it: all configured tasks with a bundle')
    parser.add_argument('--bundle', action='append', default=[], metavar='TASK=PATH',
                        help='model bundle for a task (folder or name in models/); repeatable')
    parser.add_argument('--topic', action='append', default=[], metavar='INPUT=/TOPIC',
                        help='bag topic feeding an input (image, depth, audio, audio_info, skeleton); repeatable')
    parser.add_argument('--threshold', action='append', default=[], metavar='TASK=VALUE',
                        help='score threshold of a task (decisions below it are not published)')
    parser.add_argument('--storage', choices=('auto', 'sqlite3', 'mcap'), default='auto',
                        help='expected storage of the bag (auto: whatever its metadata says)')
    parser.add_argument('--device', default=None, help="cpu, cuda or cuda:N; without it: the config's")
    parser.add_argument('--backend', choices=('auto', 'torch', 'onnxruntime'), default=None,
                        help='inference backend (auto: ONNX Runtime on the CPU, torch on CUDA)')
    parser.add_argument('--label-prefix', default='/labels/', help='prefix of label topics in the bag')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    parser.add_argument('--no-plots', action='store_true', help='skip the PNG figures')


def build_config(*, config_path: str | None = None, tasks: Sequence[str] | None = None,
                 bundles: dict[str, str] | None = None, thresholds: dict[str, str] | None = None,
                 device: str | None = None, backend: str | None = None,
                 skip_missing: bool = True) -> tuple[Any, list[str]]:
    """
    Return the :class:`PerceptionConfig` for a replay, and notes on skipped tasks.

    Tasks whose bundle cannot be found are skipped with a note when they were not
    asked for explicitly (``tasks``/``bundles``) and ``skip_missing``; otherwise
    :class:`ReplaySetupError`.
    """
    from centralnet_ros import node_params as NP
    from centralnet_ros.bundle.io import BundleError, resolve_bundle_path
    from centralnet_ros.config import ConfigError
    from centralnet_ros.runtime.perception import TaskConfig
    try:
        cfg = NP.load_perception_config(config_path) if config_path else NP.perception_config({})
    except (ConfigError, NP.ParameterError, ValueError) as exc:
        raise ReplaySetupError(str(exc)) from None
    bundles = dict(bundles or {})
    explicit = set(tasks or ()) | set(bundles)
    defaults = NP.defaults(NP.FUSION_NODE)
    for task in explicit:
        if task not in cfg.tasks:
            if task not in NP.TASKS:
                raise ReplaySetupError(f'unknown task {task!r}; tasks: {", ".join(NP.TASKS)}')
            cfg.tasks[task] = TaskConfig(bundle=defaults[f'{task}.bundle'], trigger=defaults[f'{task}.trigger'],
                                         rate_hz=defaults[f'{task}.rate_hz'],
                                         score_threshold=defaults[f'{task}.score_threshold'])
    if tasks:
        cfg.tasks = {t: cfg.tasks[t] for t in tasks}
    for task, path in bundles.items():
        if tasks and task not in tasks:
            raise ReplaySetupError(f'--bundle {task}=...: {task} is not among --tasks {" ".join(tasks)}')
        cfg.tasks[task].bundle = path
    for task, value in (thresholds or {}).items():
        if task not in cfg.tasks:
            raise ReplaySetupError(f'--threshold {task}=...: no task {task!r} (tasks: {", ".join(cfg.tasks)})')
        try:
            cfg.tasks[task] = dataclasses.replace(cfg.tasks[task], score_threshold=float(value))
        except ValueError as exc:              # not a number, or outside TaskConfig's declared range
            raise ReplaySetupError(f'--threshold {task}={value}: {exc}') from None
    notes = []
    for task in list(cfg.tasks):
        try:
            resolve_bundle_path(cfg.tasks[task].bundle)
        except BundleError as exc:
            if task in explicit or not skip_missing:
                raise ReplaySetupError(f'{task}: {exc}') from None
            notes.append(f'{task}: skipped, no bundle ({exc})')
            del cfg.tasks[task]
    if not cfg.tasks:
        raise ReplaySetupError('no task has a model bundle; ' + '; '.join(notes))
    if device:
        cfg.device = device
    if backend:
        cfg.backend = backend
    return cfg, notes


def run_replay(bag: str | Path, cfg, *, out: str | Path, labels: str | None = None, label_time_base: str | None = None,
               topics: dict[str, str] | None = None, storage: str = 'auto', progress: bool = True,
               plots: bool = True, label_prefix: str = '/labels/', command: str = '',
               echo=print) -> tuple[Any, dict, dict]:
    """
    Replay ``bag`` with config ``cfg`` and write the evaluation into ``out``.

    Returns ``(ReplayRun, metrics per task, written files)``. ``echo`` receives the
    progress notes (``print`` by default). ``out`` is checked before anything else and
    the results are written as one set (:mod:`.outputs`); a read error in the bag ends
    the replay with the results so far, marked incomplete (``run.incomplete``).
    """
    from centralnet_ros.config import dump_yaml
    from centralnet_ros.runtime.perception import Perception
    from .msgdefs import BagReadError
    from . import evaluate as E, labels as LB, player as P, report as RP, topics as T
    from .outputs import check_output_folder, OutputError, result_set
    bag = Path(bag)
    try:
        out = check_output_folder(out)
    except OutputError as exc:
        raise ReplaySetupError(str(exc)) from None
    try:
        info = T.bag_info(bag)
    except BagReadError as exc:
        raise ReplaySetupError(str(exc)) from None
    if storage != 'auto' and info.storage != storage:
        raise ReplaySetupError(f'{bag}: the bag is stored as {info.storage}, not {storage} (use --storage auto)')
    try:
        mapping = T.map_topics(info, cfg, topics, label_prefix=label_prefix)
    except ValueError as exc:
        raise ReplaySetupError(str(exc)) from None
    file_segments = None
    if labels:
        try:
            file_segments = LB.load_label_file(labels, bag_start_ns=info.start_ns, time_base=label_time_base)
        except LB.LabelFileError as exc:
            raise ReplaySetupError(str(exc)) from None
        _check_label_tasks(file_segments, cfg)
    from centralnet_ros.bundle.io import BundleError
    people = None
    try:
        if mapping.people:                        # ROS4HRI topics: one runtime per person (runtime/people.py)
            people, people_notes = _people_runtime(cfg, mapping)
            mapping.notes += people_notes
        perception = Perception(cfg)
    except (BundleError, KeyError, ValueError) as exc:
        raise ReplaySetupError(f'cannot build the runtime: {exc}') from None
    try:
        echo(f'bag {bag} ({info.storage}, {info.duration_s:.1f} s, '
             f'{sum(c for _, c in info.topics.values())} messages on {len(info.topics)} topics)')
        for topic, name in sorted(mapping.topics.items(), key=lambda kv: kv[1]):
            echo(f'  {name:<11} <- {topic} ({info.topics[topic][0]}, {info.topics[topic][1]} messages)')
        for note in info.notes + mapping.notes + mapping.missing_notes(perception.inputs):
            echo(f'  note: {note}')
        for task, state in perception.tasks.items():
            m = state.model.manifest
            echo(f'  {task:<8} {state.model.bundle.path} ({m.model.method}, {len(m.labels)} classes, '
                 f'{", ".join(f"{p.name}<-{p.input}" for p in state.plans)}; trigger {state.config.trigger}; '
                 f'threshold {state.threshold:g}; {state.model.backend} on {state.model.device})')
        run = P.replay_bag(bag, perception, mapping, info=info, progress=progress, label_prefix=label_prefix,
                           people=people)
        for note in run.notes[:5]:
            echo(f'  note: {note}')
        segments = file_segments if file_segments is not None else run.label_segments
        if file_segments is not None and run.label_segments:
            echo('  note: --labels given; the label topics in the bag are ignored')
        run.label_segments = segments
        for note in _label_task_notes(segments, cfg, 'the labels' if file_segments is not None else 'label topics'):
            echo(f'  note: {note}')
        label_names = {t: list(s.model.manifest.labels) for t, s in perception.tasks.items()}
        report_start = time.perf_counter()
        if progress:
            echo(f'report: scoring {len(run.results)} decisions and {len(run.events)} events, writing files ...')
        try:
            metrics = E.evaluate(run.results, segments, label_names, events=run.events,
                                 span_ns=(run.bag_start_ns, run.bag_end_ns))
        except LB.LabelFileError as exc:
            raise ReplaySetupError(str(exc)) from None
        extra = {'bag': str(bag), 'storage': info.storage, 'command': command,
                 'topics': mapping.topics,
                 'notes': info.notes + mapping.notes + mapping.missing_notes(perception.inputs) + run.notes,
                 'labels': str(labels) if labels else ('bag topics' if segments else None),
                 'bundles': {t: str(s.model.bundle.path) for t, s in perception.tasks.items()}}
        if people is not None:
            extra['people'] = people.stats()
        try:
            with result_set(out, command=command) as results:
                results.incomplete = run.incomplete
                written = RP.write_outputs(results.path, run, metrics, segments, perception, extra=extra,
                                           plots=plots)
                written['config'] = dump_yaml(cfg, results.path / 'config.yaml')
        except OSError as exc:
            raise ReplaySetupError(f'{out}: cannot write the results ({exc.strerror or exc}); nothing was written '
                                   'and earlier results there are unchanged') from None
        written = {name: out / path.name for name, path in written.items()}
        run.report_s = time.perf_counter() - report_start
        if progress:
            echo(f'report: done in {run.report_s:.1f} s (replay {run.wall_s:.1f} s)')
    finally:
        perception.close()
        if people is not None:
            people.close()
    return run, metrics, written


def _people_runtime(cfg, mapping) -> tuple[Any, list[str]]:
    """Build a PeopleRuntime for the bag's ROS4HRI topics (bodies as Skeleton2D: the 2-D gesture bundle)."""
    import copy

    from centralnet_ros.runtime.people import face_pipelines, PeopleRuntime, use_2d_gesture_bundle
    pcfg = copy.deepcopy(cfg)
    notes = []
    kinds = sorted({kind for kind, _, _ in mapping.people.values()})
    if 'bodies' in kinds and use_2d_gesture_bundle(pcfg):
        notes.append('ROS4HRI bodies (Skeleton2D): the per-person gesture task uses the gesture2d bundle')
    aligned = any(kind == 'faces' and name == 'aligned' for kind, _, name in mapping.people.values())
    ids = sorted({f'{k}:{e}' for k, e, _ in mapping.people.values() if e is not None})
    notes.append(f'ROS4HRI: {len(mapping.people)} topics of {", ".join(kinds)} ({len(ids)} ids), '
                 'one runtime per person')
    return PeopleRuntime(pcfg, pipelines=face_pipelines('aligned' if aligned else 'cropped')), notes


def _check_label_tasks(segments: Sequence[Any], cfg) -> None:
    """Refuse ground truth for a task that does not exist (a misspelt name would score nothing, silently)."""
    from centralnet_ros import node_params as NP
    known = set(NP.TASKS) | set(cfg.tasks)
    for s in segments:
        if s.task not in known:
            raise ReplaySetupError(f'{s.source or "labels"}: unknown task {s.task!r}; tasks: '
                                   f'{", ".join(sorted(known))}')


def _label_task_notes(segments: Sequence[Any], cfg, what: str) -> list[str]:
    """Return notes on ground truth for tasks this replay does not run (their segments are not scored)."""
    idle = sorted({s.task for s in segments} - set(cfg.tasks))
    return [f'{what} give segments for {", ".join(idle)}, not replayed (--tasks): not scored'] if idle else []


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(name)s: %(message)s')
    try:
        import torch
        torch.set_num_threads(1)
        cfg, notes = build_config(config_path=args.config, tasks=args.tasks,
                                  bundles=_pairs(args.bundle, '--bundle'),
                                  thresholds=_pairs(args.threshold, '--threshold'),
                                  device=args.device, backend=args.backend)
        for note in notes:
            print(f'note: {note}')
        out = Path(args.out) if args.out else Path.cwd() / f'replay-{Path(args.bag).name}'
        from centralnet_ros.machine import command_line
        command = command_line(args=args)
        run_, metrics, written = run_replay(args.bag, cfg, out=out, labels=args.labels,
                                            label_time_base=args.label_time_base,
                                            topics=_pairs(args.topic, '--topic'), storage=args.storage,
                                            progress=not args.no_progress, plots=not args.no_plots,
                                            label_prefix=args.label_prefix, command=command)
    except ReplaySetupError as exc:
        print(f'centralnet replay: {exc}', file=sys.stderr)
        return 2
    from .report import format_summary
    print(format_summary(metrics, run_))
    if not run_.label_segments:
        print('no ground truth (give --labels FILE or record /labels/<task> topics): accuracy not measured')
    print(f'wrote {", ".join(p.name for p in written.values())} to {out}')
    if run_.incomplete:
        print(f'centralnet replay: incomplete: {run_.incomplete}; the results so far are in {out}, '
              'marked incomplete', file=sys.stderr)
        return 3
    return 0
