"""
What a decision process costs: resident memory and load time of a child, and fusion_node's start.

    python benchmarks/bench_decision_process_memory.py [--repeats 2] [--out benchmarks/results]

Children (``runtime/decision_process.py``), for the shipped speech and emotion bundles, each way
a child can load its model, alternated ``--repeats`` times:

- ``self-loading (torch)``: the child loads the bundle itself (``exported=None``): torch, the
  weights, the ONNX export and its check against torch, as every child did before (and as a
  child of a node on the torch backend still does);
- ``node's graph (no torch)``: the child gets the ONNX graph the node's own model exported and
  checked (:class:`~centralnet_ros.runtime.engine.ExportedModel`) and reads only the manifest.

Per child: ``VmRSS`` and ``VmHWM`` from ``/proc/<pid>/status`` once it is ready (model loaded,
warmed up, no decision yet), whether ``libtorch`` is mapped, and the load time (start to ready).

Node start: ``python -m centralnet_ros.ros.fusion_node`` with the three shipped bundles, from the
process start to its ``configured tasks`` log line (configure waits until the children have loaded),
with speech and emotion deciding in the node (``<task>.decision_process:=false``, the default
before) and in processes of their own (the default now), alternated; the node's and its children's
``VmRSS`` then. Every process here runs at this process's priority: run it at ``nice -n 10`` on a
shared machine and read the times as that machine's.

Writes ``decision_process_memory.json`` and ``.md`` (atomically) with the machine and the command.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path
import re
import signal
import statistics
import subprocess
import sys
import time

from centralnet_ros.machine import command_line, machine_description, machine_line, write_results
from centralnet_ros.ros.bench_dds import child_processes

REPO = Path(__file__).resolve().parents[1]
TASKS = ('gesture', 'speech', 'emotion')
CHILD_TASKS = ('speech', 'emotion')
MODES = ('self-loading (torch)', "node's graph (no torch)")


def _status(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` of ``pid`` in MB."""
    text = Path(f'/proc/{pid}/status').read_text()
    return {k: round(int(re.search(rf'^{k}:\s+(\d+) kB', text, re.M).group(1)) / 1024, 1) for k in ('VmRSS', 'VmHWM')}


def _maps_torch(pid: int) -> bool:
    return 'libtorch' in Path(f'/proc/{pid}/maps').read_text()


def measure_children(repeats: int) -> list[dict]:
    """Start each task's child both ways, ``repeats`` times, alternating; RSS and load time once ready."""
    from centralnet_ros.runtime.decision_process import DecisionProcess
    from centralnet_ros.runtime.perception import Perception, PerceptionConfig, TaskConfig
    config = PerceptionConfig(tasks={t: TaskConfig(bundle=str(REPO / 'models' / t), trigger='speech_end')
                                     for t in CHILD_TASKS})
    perception = Perception(config)               # as the node: its models export and check the graphs
    rows = []
    try:
        for k in range(repeats):
            for task in CHILD_TASKS:
                model = perception.models[task]
                child_config = dataclasses.replace(config, tasks={task: config.tasks[task]})
                for mode in (MODES if k % 2 == 0 else MODES[::-1]):
                    exported = model.exported() if mode == MODES[1] else None
                    process = DecisionProcess(child_config, task, exported=exported)
                    try:
                        process.wait_ready()
                        row = {'task': task, 'mode': mode, 'repeat': k, 'load_s': round(process.load_s, 2),
                               **_status(process.pid), 'torch_mapped': _maps_torch(process.pid)}
                    finally:
                        process.close()
                    rows.append(row)
                    print(row, flush=True)
    finally:
        perception.close()
    return rows


def _node_args(processes: bool) -> list[str]:
    flag = str(processes).lower()
    return ['--ros-args', '-r', '__ns:=/memory_bench', '-p', f'tasks:=[{",".join(TASKS)}]',
            *[a for t in TASKS for a in ('-p', f'{t}.bundle:={REPO / "models" / t}')],
            '-p', f'speech.decision_process:={flag}', '-p', f'emotion.decision_process:={flag}']


def measure_node(repeats: int, timeout_s: float = 300.0) -> list[dict]:
    """Start fusion_node both ways, ``repeats`` times, alternating: time to configured, RSS of it and its children."""
    env = {**os.environ, 'ROS_DOMAIN_ID': str(10 + os.getpid() % 200), 'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST',
           'PYTHONPATH': os.pathsep.join(p for p in (str(REPO), os.environ.get('PYTHONPATH', '')) if p)}
    rows = []
    for k in range(repeats):
        for processes in ((True, False) if k % 2 == 0 else (False, True)):
            log = Path(os.environ.get('TMPDIR', '/tmp')) / f'decision_process_memory_node_{os.getpid()}.log'
            t0 = time.monotonic()
            with open(log, 'wb') as out:
                node = subprocess.Popen([sys.executable, '-m', 'centralnet_ros.ros.fusion_node',
                                         *_node_args(processes)], stdout=out, stderr=subprocess.STDOUT, env=env)
            try:
                while 'configured tasks' not in log.read_text(errors='replace'):
                    if node.poll() is not None or time.monotonic() - t0 > timeout_s:
                        raise RuntimeError(f'fusion_node did not configure (exit {node.poll()}):\n'
                                           + log.read_text(errors='replace')[-3000:])
                    time.sleep(0.05)
                start_s = time.monotonic() - t0
                children = [_status(pid) for pid in child_processes(node.pid)]
                row = {'decision_processes': processes, 'repeat': k, 'start_to_configured_s': round(start_s, 2),
                       'node': _status(node.pid), 'children': children,
                       'total_rss_mb': round(_status(node.pid)['VmRSS'] + sum(c['VmRSS'] for c in children), 1)}
            finally:
                node.send_signal(signal.SIGINT)
                try:
                    node.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    node.kill()
                    node.wait()
                log.unlink(missing_ok=True)
            rows.append(row)
            print(row, flush=True)
    return rows


def _median(rows: list[dict], key: str) -> float:
    return round(statistics.median(r[key] for r in rows), 2)


def _markdown(payload: dict, info: dict, command: str) -> str:
    lines = ['# What a decision process costs', '', machine_line(info), '', f'Command: `{command}`', '',
             f'Load average at the start: {payload["load_average_start"]}, at the end: {payload["load_average_end"]} '
             f'(on {os.cpu_count()} cores; other jobs included: the times are this machine’s at that load).', '',
             '## A decision child, once its model is loaded (no decision yet)', '',
             'Each way a child loads its model (module docstring), alternated; medians over the repeats '
             '(every repeat in the JSON).', '',
             '| task | child | resident (VmRSS, MB) | peak (VmHWM, MB) | load time (s) | libtorch mapped |',
             '|---|---|---|---|---|---|']
    for task in CHILD_TASKS:
        for mode in MODES:
            rows = [r for r in payload['children'] if r['task'] == task and r['mode'] == mode]
            lines.append(f'| {task} | {mode} | {_median(rows, "VmRSS")} | {_median(rows, "VmHWM")} | '
                         f'{_median(rows, "load_s")} | {"yes" if any(r["torch_mapped"] for r in rows) else "no"} |')
    if payload['node']:
        lines += ['', '## fusion_node start (three shipped bundles)', '',
                  'From the process start to its `configured tasks` log line (configure waits for the children); '
                  'resident memory then.', '',
                  '| speech and emotion decide | start to configured (s), each | median | node VmRSS (MB) | '
                  'children VmRSS (MB) | total (MB) |', '|---|---|---|---|---|---|']
        for processes in (False, True):
            rows = [r for r in payload['node'] if r['decision_processes'] == processes]
            if not rows:
                continue
            children = ', '.join(str(c['VmRSS']) for c in rows[-1]['children']) or '-'
            lines.append(f'| {"in processes of their own (default)" if processes else "in the node"} | '
                         f'{", ".join(str(r["start_to_configured_s"]) for r in rows)} | '
                         f'{_median(rows, "start_to_configured_s")} | {rows[-1]["node"]["VmRSS"]} | {children} | '
                         f'{rows[-1]["total_rss_mb"]} |')
    return '\n'.join(lines) + '\n'


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--repeats', type=int, default=2)
    parser.add_argument('--out', type=Path, default=REPO / 'benchmarks' / 'results')
    parser.add_argument('--no-node', action='store_true', help='only the children (no ROS needed)')
    args = parser.parse_args(argv)
    load_start = os.getloadavg()[0]
    payload = {'children': measure_children(args.repeats),
               'node': [] if args.no_node else measure_node(args.repeats)}
    payload['load_average_start'], payload['load_average_end'] = round(load_start, 2), round(os.getloadavg()[0], 2)
    info = machine_description()
    command = command_line(argv, program='python benchmarks/bench_decision_process_memory.py')
    write_results(args.out, 'decision_process_memory', payload, command=command, machine=info,
                  markdown=_markdown(payload, info, command))
    print(f'wrote {args.out / "decision_process_memory.md"}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
