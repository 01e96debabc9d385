"""
Real DDS between processes: delivery and publish-to-decision latency of fusion_node at robot rates.

    python benchmarks/bench_dds.py [--seconds 20] [--out benchmarks/results] [--runs 0,1]

fusion_node runs in its own process with the three shipped bundles; this process publishes,
all at once and best effort (sensor-data QoS, as drivers do): 640x480 rgb8 images at 30 Hz
(``image``; the lips of the speech model), 20-joint skeletons at 30 Hz (MSRC-12 recordings,
``skeleton``; gesture, frame trigger) and 4-channel 48 kHz naoqi_bridge_msgs/AudioBuffer in
8192-frame (~170 ms) buffers as naoqi_driver sends them (EmoDB speech on every channel,
separated by silence, ``audio``; speech and emotion, speech_end trigger).  Header stamps are
the wall clock at capture (the first sample of an audio buffer), published when the data is
complete.  Measured per run, with the shipped Fast DDS profile (``config/fastdds.xml``, 16 MiB
shared memory) and with Fast DDS' defaults:

- delivery: messages the node's callbacks received (its diagnostics) / messages sent, per input;
- latency: from the publish of the message that made a decision due (the first message of the
  task's trigger input stamped at or after the decision time plus ``decision_delay_s``) to the
  Classification arriving at a subscriber in a process of its own that does nothing else
  (``centralnet_ros.ros.bench_dds.receive_main``), p50/p95/p99 per task; also as measured before,
  at a subscriber in this process, which also builds and publishes the inputs (its own work and
  garbage collections delayed some decisions: ``in the load generator``);
- CPU use of the node process (user + system time over the streaming window), and per thread
  (``/proc/<pid>/task``: the decision workers ``cn-dec-<task>`` and the threads they started, the
  executor, DDS), with each thread's nice value; the same for its decision processes
  (``cn-proc-<task>``).

Runs (:data:`RUNS`): the shipped configuration (speech and emotion deciding in processes of their
own, ``<task>.decision_process``, at ``decision_nice`` 10) with the gesture decision stream
(``gesture.output: decisions``, the goal: p99 within 20 ms of the skeleton frame's arrival); the same
with speech and emotion deciding in the node (``<task>.decision_process:=false``, on threads of the
node below its priority, the default before), and in the node at the node's priority
(``decision_nice 0``, the design before that); Fast DDS' defaults;
input queues of 5; the decisions made inside the subscription callback, in the node (the design the
decision workers replaced); gesture events (``events``, the default), whose latency includes the gesture
itself; and the shipped configuration and the one with speech and emotion in the node traced
(``centralnet_ros.ros.bench_dds.trace_node_main``: every callback,
hand-over, decision, publish, buffer lock, garbage collection and stall of the node timed), which
splits each gesture decision's latency into its segments and says what the node was doing while
the slowest ones were under way.  About 9 minutes on 2 quiet cores (9 runs of 20 s plus the
node's start-up).

Writes ``dds.json`` and ``dds.md`` (atomically) with the machine and the command.  The load
generator is :mod:`centralnet_ros.ros.bench_dds` (only ``centralnet_ros.ros`` imports ROS).
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import subprocess
import sys

from centralnet_ros.machine import command_line, machine_description, machine_line, write_results
import numpy as np

REPO = Path(__file__).resolve().parents[1]
AUDIO_RATE, AUDIO_CHANNELS = 48000, 4


def _audio_source(data_root: Path, seconds: float) -> np.ndarray:
    """Return EmoDB utterances at 48 kHz, 1 s of silence between them, on 4 channels: ``(n, 4)`` int16."""
    from centralnet_ros.data.emodb import load_waveform
    files = sorted((data_root / 'emodb' / 'wav').glob('*.wav'))[:40]
    parts, total = [], 0
    for f in files:
        x = load_waveform(f, sample_rate=AUDIO_RATE)
        parts += [np.zeros(AUDIO_RATE, np.float32), x]
        total += AUDIO_RATE + x.size
        if total > seconds * AUDIO_RATE:
            break
    mono = np.clip(np.concatenate(parts) * 32767, -32768, 32767).astype(np.int16)
    return np.repeat(mono[:, None], AUDIO_CHANNELS, axis=1)


def _skeletons(data_root: Path) -> np.ndarray:
    """Return the joints of one MSRC-12 recording, ``(frames, 20, 3)`` metres."""
    from centralnet_ros.data.msrc12 import list_files, read_skeleton_csv
    csv, _ = list_files(data_root / 'msrc12')[0]
    return read_skeleton_csv(csv)[1][..., :3]


# one node process each: shipped Fast DDS profile?, decide in the subscription callback?, gesture output,
# input queue depth (None: the node's default), speech/emotion decision_nice (None: the node's default, 10),
# traced (every step of every decision timed: centralnet_ros.ros.bench_dds.trace_node_main),
# speech/emotion decision_process (None: the node's default, in processes of their own; False: in the node)
RUNS = [(True, False, 'decisions', None, None, False, None), (True, False, 'decisions', None, None, False, False),
        (True, False, 'decisions', None, 0, False, False), (False, False, 'decisions', None, None, False, None),
        (True, False, 'decisions', 5, None, False, None), (True, True, 'decisions', None, None, False, False),
        (True, False, 'events', None, None, False, None), (True, False, 'decisions', None, None, True, None),
        (True, False, 'decisions', None, None, True, False)]


def _label(r: dict) -> str:
    depth = '' if r.get('qos_depth') is None else f', qos_depth {r["qos_depth"]}'
    nice = '' if r.get('background_nice') is None else f', speech/emotion decision_nice {r["background_nice"]}'
    where = (', speech/emotion in processes of their own' if r.get('decision_processes')
             else ', speech/emotion in the node')
    traced = ', traced' if r.get('traced') else ''
    return f'{r["profile"]}, {r["decisions_in"]}, gesture {r["gesture_output"]}{where}{depth}{nice}{traced}'


def _markdown(results: list[dict], info: dict, command: str, seconds: float) -> str:
    lines = ['# fusion_node through real DDS (Fast DDS, rmw_fastrtps_cpp, Jazzy wheels)', '',
             f'{machine_line(info)}', '', f'Command: `{command}`', '',
             f'{seconds:.0f} s of streaming per run, all inputs at once, best effort: 640x480 rgb8 at 30 Hz, '
             '20-joint skeletons at 30 Hz, 4-channel 48 kHz naoqi AudioBuffer in 8192-frame (171 ms) buffers. '
             'One fusion_node process per run (tasks gesture, speech, emotion; shipped bundles; node defaults '
             'except the gesture frame trigger and the output mode): with the shipped profile '
             '(`config/fastdds.xml`) or Fast DDS defaults; decisions on the node’s decision workers, one '
             'per task, speech and emotion with their features and model in processes of their own '
             '(`<task>.decision_process`, the shipped design: at `decision_nice` 10; the node’s thread of the '
             'task only cuts the window, copies it into shared memory and waits) or in the node’s process '
             '(`in the node`, `<task>.decision_process:=false`, the default before: on decision threads at '
             '`decision_nice` 10, below the node’s priority, gesture at it; the run marked `decision_nice 0` '
             'runs them all at the node’s priority, as before that), or inside the subscription callback, in '
             'the node (the design the workers replaced, '
             '`centralnet_ros.ros.bench_dds.InlineWorker`); gesture publishing every decision '
             '(`gesture.output: decisions`, one per skeleton frame) or events (`events`, the default: one '
             'per performed gesture, after it ended).', '',
             'Load average of the machine (other jobs included) at the end of each run: '
             + ', '.join(f'{_label(r)}: {r["load_average_1min"]} on {r["cpu_cores"]} cores' for r in results)
             + '. On a loaded machine these figures measure the machine as much as DDS and the node.', '',
             '| run | input | sent | received | delivery | arrival delay (s) |', '|---|---|---|---|---|---|']
    for r in results:
        for name, d in r['inputs'].items():
            delivery = '-' if d['delivery'] is None else f'{100 * d["delivery"]:.1f} %'
            lines.append(f'| {_label(r)} | {name} | {d["sent"]} | {d["received"]} | {delivery} | '
                         f'{d.get("arrival_delay_s", "-")} |')
    lines += ['', '| run | task | decided | published | latency p50 (ms) | p95 | p99 | max | in the load generator: '
              'p50 / p95 / p99 / max (ms) | node compute p50 / p95 / max (ms) | node CPU | decision processes CPU |',
              '|---|---|---|---|---|---|---|---|---|---|---|---|']
    for r in results:
        for task, d in r['tasks'].items():
            lat, c = d['latency_ms'], d.get('node_compute_ms') or {}
            gen = d.get('latency_ms_in_load_generator') or {}
            name = f'{task} ({r["gesture_output"]})' if task == 'gesture' else task
            compute = ' / '.join(str(c.get(f'latency {k} (ms)', '-')) for k in ('p50', 'p95', 'max'))
            in_gen = ' / '.join(str(gen.get(k, '-')) for k in ('p50', 'p95', 'p99', 'p100'))
            lines.append(f'| {_label(r)} | {name} | {c.get("decisions", "-")} | {d["decisions"]} | {lat["p50"]} | '
                         f'{lat["p95"]} | {lat["p99"]} | '
                         f'{lat.get("p100")} | {in_gen} | {compute} | {r["node_cpu_percent"]} % | '
                         f'{r.get("processes_cpu_percent", "-")} % |')
    for r in results:
        t = r.get('trace')
        if not t:
            continue
        lines += ['', f'Where the published gesture decisions’ time went ({_label(r)}; {t["decisions"]} decisions; '
                  'ms):', '', '| segment | p50 | p95 | p99 | max |', '|---|---|---|---|---|']
        lines += [f'| {k} | {v.get("p50")} | {v.get("p95")} | {v.get("p99")} | {v.get("max")} |'
                  for k, v in t['segments_ms'].items()]
        slow = ', '.join(f'{k} {n}' for k, n in (t.get('slowest_5pct_largest_segment') or {}).items() if n)
        during = '; '.join(f'{d["total"]} ms: executor busy {d["executor busy"]}, stalled {d["stalled"]} '
                           f'({d["stalled waiting for a core"]} waiting for a core)'
                           for d in t.get('slowest_5pct_ms') or [])
        lines += ['', f'Largest segment of each decision slower than the p95: {slow or "-"}; while each was under '
                  f'way (publish to arrival), the node’s executor ran callbacks and its 1 ms sleeper was stalled '
                  f'for: {during or "-"}. Subscription callbacks '
                  '(ms, p50 / p99 / max): ' + '; '.join(f'{k} {v.get("p50")} / {v.get("p99")} / {v.get("max")}'
                                                        for k, v in t['callback_ms'].items())
                  + '. The runtime’s buffer lock, held (p50 / p99 / max) and waited for (p99 / max), by holder '
                  '(MainThread: the callbacks and the diagnostics timer): '
                  + '; '.join(f'{k} {v["hold"].get("p50")} / {v["hold"].get("p99")} / {v["hold"].get("max")}, '
                              f'{v["wait"].get("p99")} / {v["wait"].get("max")}'
                              for k, v in t['buffer_lock_ms'].items())
                  + '. Garbage collections in the node while streaming (count, max ms): '
                  + (', '.join(f'{k} {v["n"]}, {v.get("max")}' for k, v in t['gc_ms'].items()) or 'none')
                  + f'. A thread of the node sleeping 1 ms at a time woke more than 20 ms late '
                  f'{t["stalls_over_20ms"]} times (max {t["stall_max_ms"]} ms); of all the time it was late, a share '
                  f'of {t.get("stall_cpu_share")} was spent waiting for a core (the rest: for the interpreter lock). '
                  'Threads running Python when a stall of 20 ms or more on the interpreter lock ended (likely its '
                  'holders; count, ms): '
                  + ('; '.join(f'`{h["thread"]}` {h["stalls"]}, {h["ms"]}' for h in t.get('lock_stall_threads') or [])
                     or 'none') + f'. Over those stalls ({t.get("lock_stall_ms")} ms on the interpreter lock), each '
                  'decision thread was runnable but without a core for (ms; a holder of the lock preempted): '
                  + (', '.join(f'{k} {v}' for k, v in (t.get('lock_stall_threads_queued_ms') or {}).items())
                     or 'none') + '.']
    lines += ['', 'CPU use of the threads of the node and of its decision processes over the streaming window (% of '
              'one core; nice value; threads of one name summed: `cn-dec-<task>` are the decision workers, '
              '`cn-proc-<task>` the decision processes, threads a library starts from a worker inherit its name and '
              'nice value):', '', '| run | node thread (nice): CPU % | decision process thread (nice): CPU % |',
              '|---|---|---|']
    for r in results:
        use = [', '.join(f'{name} ({"/".join(map(str, t["nice"]))}): {t["cpu_percent"]}'
                         for name, t in (r.get(key) or {}).items() if t['cpu_percent'] >= 0.5) or '-'
               for key in ('node_threads', 'process_threads')]
        lines.append(f'| {_label(r)} | {use[0]} | {use[1]} |')
    lines += ['', 'Latency: from the publish of the message that made the decision due (gesture decisions: the '
              'skeleton frame they are stamped with; gesture events: the skeleton frame at the event’s peak, so '
              'the latency includes the rest of the gesture and the event’s confirmation; speech/emotion: the '
              'first audio buffer stamped after the end of the utterance plus decision_delay_s) to the '
              'Classification arriving at a subscriber in a process of its own that does nothing else; '
              '`in the load generator`: at a subscriber in the process that builds and publishes the inputs '
              '(the measurement before). Node compute: window assembly (with the wait '
              'for the buffer lock), features and model of one decision, from the node’s diagnostics (for a task '
              'in a process of its own: from the cut of its window to the answer in the node). '
              'Arrival delay: ROS time at the callback minus '
              'the header stamp (the node’s diagnostics): the time a message waited in DDS and the node’s queue. '
              'Decided: decisions the node made (one per skeleton frame it received); published: those it '
              'published (a gesture decision whose label is the bundle’s reject label is not published). Speech '
              'publishes nothing here: EmoDB sentences are not letters (not_a_letter, rejected).', '']
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seconds', type=float, default=20.0)
    parser.add_argument('--out', type=Path, default=REPO / 'benchmarks' / 'results')
    parser.add_argument('--data-root', default=None)
    parser.add_argument('--runs', type=lambda v: [int(k) for k in v.split(',')], default=list(range(len(RUNS))),
                        help='which of RUNS, comma-separated indices (default: all)')
    args = parser.parse_args(argv)
    from centralnet_ros import paths
    data_root = paths.data_root(args.data_root)
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for k in args.runs:
        profile, inline, output, depth, nice, trace, process = RUNS[k]
        # one process per run: Fast DDS reads its profile once per process
        proc = subprocess.run([sys.executable, __file__, '--_one', '1' if profile else '0', '--seconds',
                               str(args.seconds), '--data-root', str(data_root), '--inline', '1' if inline else '0',
                               '--gesture-output', output, '--qos-depth', str(depth or 0),
                               '--background-nice', str(-1 if nice is None else nice), '--trace', str(int(trace)),
                               '--decision-process', {None: 'default', True: '1', False: '0'}[process]],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stdout, proc.stderr, file=sys.stderr)
            return 1
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]))
    info = machine_description()
    command = command_line(argv, program='python benchmarks/bench_dds.py')
    write_results(args.out, 'dds', {'machine': info, 'runs': results}, command=command,
                  markdown=_markdown(results, info, command, args.seconds))
    print(f'wrote {args.out / "dds.md"}')
    return 0


if __name__ == '__main__':
    if '--_one' in sys.argv:
        i = sys.argv.index('--_one')
        profile = sys.argv[i + 1] == '1'
        seconds = float(sys.argv[sys.argv.index('--seconds') + 1])
        root = Path(sys.argv[sys.argv.index('--data-root') + 1])
        inline = sys.argv[sys.argv.index('--inline') + 1] == '1'
        output = sys.argv[sys.argv.index('--gesture-output') + 1]
        depth = int(sys.argv[sys.argv.index('--qos-depth') + 1]) or None
        nice = int(sys.argv[sys.argv.index('--background-nice') + 1])
        trace = sys.argv[sys.argv.index('--trace') + 1] == '1'
        process = {'default': None, '1': True, '0': False}[sys.argv[sys.argv.index('--decision-process') + 1]]
        from centralnet_ros.ros.bench_dds import run_once
        print(json.dumps(run_once(seconds, profile, _audio_source(root, seconds), _skeletons(root),
                                  Path(os.environ.get('TMPDIR', '/tmp')), gesture_output=output, inline=inline,
                                  qos_depth=depth, background_nice=None if nice < 0 else nice, trace=trace,
                                  decision_process=process)))
        raise SystemExit(0)
    raise SystemExit(main())
