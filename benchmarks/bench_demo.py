#!/usr/bin/env python3
"""
``centralnet demo`` as a newcomer runs it: figures and time of the README's quick start.

::

    python benchmarks/bench_demo.py [--runs 2]

Runs the ``centralnet`` command of this Python's environment in a fresh temporary
working directory, with ``HOME`` an empty temporary folder (so empty caches) and
``$CENTRALNET_DATA_ROOT`` an empty folder: the demo then replays the embedded recording
(``centralnet_ros/demo_recording``). The first run starts cold; later runs reuse that
``HOME``. Records per run the wall and CPU time of the whole command, the replay's own
throughput, and per task the accuracy over the labelled segments (from the demo's
``metrics.json``). Writes ``benchmarks/results/demo.md`` and ``demo.json`` (atomically)
with the machine and the command.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import resource
import subprocess
import sys
import tempfile
import time

from centralnet_ros.cli import invocation
from centralnet_ros.demo import embedded_recording, read_recording_info
from centralnet_ros.machine import command_line, machine_description, machine_line, write_results

REPO = Path(__file__).resolve().parents[1]


def one_run(tmp: Path, k: int) -> dict:
    cwd = tmp / f'run{k}'
    cwd.mkdir()
    env = {key: v for key, v in os.environ.items()
           if key not in ('CI', 'XDG_DATA_HOME', 'XDG_CACHE_HOME', 'CENTRALNET_CACHE')}
    env.update(HOME=str(tmp / 'home'), CENTRALNET_DATA_ROOT=str(tmp / 'data'))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([*invocation(), 'demo', '--no-progress'], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f'centralnet demo failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}')
    metrics = json.loads((cwd / 'demo-out' / 'replay' / 'metrics.json').read_text())
    tasks = {task: {'decisions': m['decisions'], 'scored': m['labelled_decisions'], 'segments': m['segments'],
                    'decision_accuracy': m['decision_accuracy'], 'segment_accuracy': m['segment_accuracy'],
                    'chance': m['chance']} for task, m in metrics['tasks'].items()}
    return {'wall_s': round(wall, 2),
            'cpu_s': round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 2),
            'embedded': 'the embedded recording' in proc.stdout,
            'replay': {key: metrics['replay'][key]
                       for key in ('messages', 'bag_duration_s', 'wall_s', 'runtime_s', 'real_time_factor')},
            'tasks': tasks}


def render(res: dict) -> str:
    m = res['machine']
    rec = res['recording']
    lines = ["# `centralnet demo` on a new user's machine", '',
             f'Command: `{res["command"]}`  ',
             f'Machine: {machine_line(m)} (shared machine), Python {m["python"]}  ',
             f'Recording: the embedded one, {rec["size_mb"]:.2f} MB (MCAP, zstd chunks), {rec["duration_s"]:.1f} s, '
             + ', '.join(f'{c} {t}' for t, c in sorted(rec['messages'].items())) + '.  ',
             'Each run: `centralnet demo --no-progress` in an empty working directory, HOME a temporary folder '
             '(run 1 with empty caches, later runs reuse it), $CENTRALNET_DATA_ROOT an empty folder.', '',
             '| run | wall (s) | CPU (s) | replay wall (s) | replay x real time | '
             + ' | '.join(f'{t} acc (segments)' for t in res['runs'][0]['tasks']) + ' |',
             '|---:|---:|---:|---:|---:|' + '---:|' * len(res['runs'][0]['tasks'])]
    for k, r in enumerate(res['runs'], 1):
        cells = [f'{t["decision_accuracy"] * 100:.1f} % ({t["segment_accuracy"] * 100:.1f} %)'
                 for t in r['tasks'].values()]
        lines.append(f'| {k}{" (cold)" if k == 1 else ""} | {r["wall_s"]:.1f} | {r["cpu_s"]:.1f} | '
                     f'{r["replay"]["wall_s"]:.1f} | {r["replay"]["real_time_factor"]:.0f}x | '
                     + ' | '.join(cells) + ' |')
    first = res['runs'][0]['tasks']
    lines += ['', 'Accuracy: decisions inside labelled segments that name the right label (in brackets: segments '
              'whose decisions are right); chance: '
              + ', '.join(f'{t} {v["chance"] * 100:.1f} %' for t, v in first.items())
              + '; scored decisions: ' + ', '.join(f'{t} {v["scored"]}' for t, v in first.items()) + '.', '']
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--runs', type=int, default=2, help='runs (the first with empty caches)')
    parser.add_argument('--out', type=Path, default=REPO / 'benchmarks' / 'results', help='results folder')
    args = parser.parse_args(argv)
    recording = embedded_recording()
    info = read_recording_info(recording)
    res = {'command': command_line(argv, program='python benchmarks/bench_demo.py'), 'machine': machine_description(),
           'recording': {'size_mb': sum(f.stat().st_size for f in recording.rglob('*') if f.is_file()) / 1e6,
                         'duration_s': info['duration_s'], 'messages': info['messages']},
           'runs': []}
    with tempfile.TemporaryDirectory(prefix='bench-demo-') as tmp:
        for sub in ('home', 'data'):
            (Path(tmp) / sub).mkdir()
        for k in range(args.runs):
            res['runs'].append(one_run(Path(tmp), k))
            print(json.dumps(res['runs'][-1]))
    print(write_results(args.out, 'demo', res, render, command=res['command']))
    return 0


if __name__ == '__main__':
    sys.exit(main())
