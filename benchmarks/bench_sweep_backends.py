"""
Wall time of one sweep on each backend of ``centralnet compare``: the local process pool against a local Ray.

    python benchmarks/bench_sweep_backends.py [--preset avmnist] [--methods late,centralnet] [--seeds 4]
                                              [--jobs 2] [--out benchmarks/results]

Runs the same ``centralnet compare --quick`` sweep (the preset's quick overrides, ``--methods`` x
``--seeds``) as a user would, one fresh process per backend: the local pool (``--jobs N``) and a
local Ray instance with N CPUs (``--ray``), plus the serial loop (``--jobs 1``) as the reference.
Wall time is the whole command, start-up included (a user waits for all of it); it also reports
the seconds per run and each backend's overhead over the serial loop divided by N. Every
backend trains the same runs on the same arrays, so the per-run test metrics must be equal:
the benchmark checks it and says so.  Needs the preset's dataset (AV-MNIST: MNIST + FSDD) and
Ray (the optional extra ``centralnet_ros[ray]``); a backend that fails is reported, not timed.

Writes ``sweep_backends.json`` and ``sweep_backends.md`` (atomically) with the machine and the command.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import subprocess
import sys
import tempfile
import time

from centralnet_ros.machine import command_line, machine_line, write_results

BACKENDS = {'serial': ['--jobs', '1'], 'local pool': ['--jobs', '{jobs}'], 'local Ray': ['--jobs', '{jobs}', '--ray']}


def run_backend(name: str, args, out: Path) -> dict:
    """Run one ``centralnet compare`` sweep; return its wall time, CPU time and per-run metrics."""
    extra = [a.format(jobs=args.jobs) for a in BACKENDS[name]]
    cmd = [sys.executable, '-m', 'centralnet_ros.cli', 'compare', '--preset', args.preset, '--quick',
           '--methods', args.methods, '--seeds', str(args.seeds), '--threads', '1', '--no-progress', '--out', str(out),
           *extra]
    if args.data_root:
        cmd += ['--data-root', args.data_root]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    row = {'backend': name, 'command': ' '.join(['centralnet'] + cmd[3:]), 'returncode': proc.returncode,
           'wall_s': round(wall, 2)}
    runs_path = out / 'runs.json'
    if proc.returncode != 0 or not runs_path.exists():
        row['error'] = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ['no output']
        return row
    stored = json.loads(runs_path.read_text())
    row['runs'] = len(stored['runs'])
    row['failed'] = len(stored['failed'])
    row['metrics'] = {f"{r['method']}/{r['seed']}": r.get('test') for r in stored['runs']}
    return row


def render(payload: dict) -> str:
    lines = [f"# One sweep, three backends ({payload['preset']} quick: {payload['methods']} x "
             f"{payload['seeds']} seeds = {payload['n_runs']} runs, {payload['jobs']} workers)", '',
             f"Machine: {machine_line(payload['machine'])}; load average before: {payload['load_before']}.",
             f"Command: `{payload['command']}`", '',
             '| backend | wall (s) | s per run | overhead vs serial / N | runs | same metrics as serial |',
             '|---|---:|---:|---:|---:|---|']
    serial = next((r for r in payload['rows'] if r['backend'] == 'serial' and 'metrics' in r), None)
    for r in payload['rows']:
        if 'error' in r:
            lines.append(f"| {r['backend']} | failed: {r['error'][0][:80]} | | | | |")
            continue
        ideal = serial['wall_s'] / payload['jobs'] if serial else None
        over = f"{r['wall_s'] - ideal:+.1f} s" if ideal is not None and r['backend'] != 'serial' else ''
        same = '' if serial is None or r is serial else ('yes' if r['metrics'] == serial['metrics'] else 'NO')
        lines.append(f"| {r['backend']} | {r['wall_s']:.1f} | {r['wall_s'] / max(r['runs'], 1):.1f} | "
                     f"{over} | {r['runs']} | {same} |")
    lines += ['', 'Every run single-threaded (`--threads 1`), so the backends train bit-identical runs. '
              'Wall time is the whole command (Python start, data loading, worker or Ray start-up, '
              'training, result files). "overhead vs serial / N" is the wall time minus the serial loop\'s '
              'divided by the number of workers: what the backend costs beyond perfect scaling.']
    return '\n'.join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--preset', default='avmnist')
    parser.add_argument('--methods', default='late,centralnet')
    parser.add_argument('--seeds', type=int, default=4)
    parser.add_argument('--jobs', type=int, default=2)
    parser.add_argument('--data-root', default=None)
    parser.add_argument('--backends', default=','.join(BACKENDS),
                        help='comma-separated subset of ' + ', '.join(BACKENDS))
    parser.add_argument('--out', type=Path, default=Path(__file__).parent / 'results')
    args = parser.parse_args(argv)
    unknown = set(args.backends.split(',')) - set(BACKENDS)
    if unknown:
        parser.error(f'unknown backend(s) {sorted(unknown)}; known: {", ".join(BACKENDS)}')
    rows = []
    load_before = ' '.join(f'{x:.2f}' for x in os.getloadavg())
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.backends.split(','):
            row = run_backend(name, args, Path(tmp) / name.replace(' ', '_'))
            print(f"{name}: {row.get('wall_s')} s {row.get('error', '')}", file=sys.stderr, flush=True)
            rows.append(row)
    n_runs = len(args.methods.split(',')) * args.seeds
    payload = {'preset': args.preset, 'methods': args.methods, 'seeds': args.seeds, 'jobs': args.jobs,
               'n_runs': n_runs, 'load_before': load_before, 'rows': rows}
    text = write_results(args.out, 'sweep_backends', payload, render,
                         command=command_line(argv, program='python benchmarks/bench_sweep_backends.py'))
    print(text)


if __name__ == '__main__':
    main()
