"""
Replay report time on a long recording: every report step should scale with the events.

Builds a long rosbag2 recording (MCAP) from MSRC-12 skeleton recordings of held-out
persons played one after another (PoseArray at the recorded 30 Hz, header stamps from
the dataset's clock), with a label file of the gesture instances (the rule of
``gesture_events_benchmark.py``), replays it through the shipped gesture bundle with
``centralnet replay`` and compares the time of the replay (reading + decisions) with the
time of the report (scoring decisions and events, predictions, metrics, confusion
matrices, timeline). Goal (issue #11): the whole replay within 1.5x of its decision time.

    python benchmarks/bench_report.py [--recordings 60] [--persons 11 12]
"""
from __future__ import annotations

import argparse
from pathlib import Path
import sys
import tempfile
import time

import numpy as np


def build_bag(path: Path, labels_csv: Path, persons: list[int], recordings: int) -> tuple[int, float]:
    """Write the bag and its label file; return ``(messages, seconds of recording)``."""
    from centralnet_ros import paths
    from centralnet_ros.data import msrc12
    from centralnet_ros.replay import msgdefs as D
    from centralnet_ros.replay.calibration import msrc12_instances
    seqs = list(msrc12.load_sequences(paths.data_root() / 'msrc12', persons=persons))[:recordings]
    store = D.make_typestore()
    t0 = 1_700_000_000 * 10**9
    msgs, rows, offset = [], [], 0
    for s in seqs:
        tracked = s.tracked
        stamps = s.timestamps[tracked].astype(np.int64) * 1000
        shift = t0 + offset - int(stamps[0])
        for t, j in zip(stamps, s.positions[tracked]):
            msgs.append(('/skeleton', 'geometry_msgs/msg/PoseArray', int(t + shift),
                         D.pose_array_message(j, stamp_ns=int(t + shift), typestore=store)))
        for inst in msrc12_instances(s, msrc12.GESTURES, before_s=1.5, after_s=1.0):
            rows.append(f'gesture,{(inst.start_ns + shift - t0) / 1e9:.3f},{(inst.end_ns + shift - t0) / 1e9:.3f},'
                        f'{inst.label}')
        offset += int(stamps[-1] - stamps[0]) + 2 * 10**9          # 2 s between recordings
    D.write_bag(path, msgs, storage='mcap')
    labels_csv.write_text('task,start_s,end_s,label\n' + '\n'.join(rows) + '\n')
    return len(msgs), offset / 1e9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--recordings', type=int, default=60)
    parser.add_argument('--persons', type=int, nargs='*', default=[11, 12])
    parser.add_argument('--out', default=str(Path(__file__).resolve().parent / 'results'))
    args = parser.parse_args(argv)

    import torch
    torch.set_num_threads(1)
    from centralnet_ros.machine import command_line, machine_line, write_results
    from centralnet_ros.replay.cli import build_config, run_replay

    command = command_line(argv, program='python benchmarks/bench_report.py')
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        n, seconds = build_bag(tmp / 'bag', tmp / 'labels.csv', args.persons, args.recordings)
        build_s = time.perf_counter() - t
        cfg, _ = build_config(tasks=['gesture'])
        t = time.perf_counter()
        run, metrics, written = run_replay(tmp / 'bag', cfg, out=tmp / 'out', labels=str(tmp / 'labels.csv'),
                                           progress=True, echo=lambda s: print(s, flush=True))
        total_s = time.perf_counter() - t
        sizes = {name: p.stat().st_size for name, p in written.items()}
    g = metrics['gesture']
    e = g['events']
    result = {'benchmark': 'replay report time on a long recording', 'recordings': args.recordings,
              'persons': args.persons, 'messages': n, 'recording_s': round(seconds, 1),
              'decisions': g['decisions'], 'events': e['events'], 'instances': e['instances'],
              'bag_build_s': round(build_s, 1), 'replay_s': round(run.wall_s, 2),
              'report_s': round(run.report_s, 2), 'total_s': round(total_s, 2),
              'total_over_replay': round(total_s / run.wall_s, 3), 'goal_total_over_replay': 1.5,
              'event_f1': e['f1'], 'false_alarms_per_min': e['false_alarms_per_min'],
              'files': sizes, 'machine': machine_line(), 'command': command, 'date': time.strftime('%Y-%m-%d')}
    md = '\n'.join([
        '# Replay report time on a long recording', '',
        f'{args.recordings} MSRC-12 recordings of persons {", ".join(f"p{p:02d}" for p in args.persons)} played one '
        f'after another: {n} PoseArray messages, {seconds / 60:.1f} min of recording; the shipped gesture bundle '
        f'made {g["decisions"]} decisions and {e["events"]} events ({e["instances"]} labelled instances).', '',
        '| step | seconds |', '|---|---|',
        f'| replay (reading, decoding, decisions, events) | {run.wall_s:.1f} |',
        f'| report (scoring, predictions, events, metrics, confusion matrices, timeline) | {run.report_s:.1f} |',
        f'| whole `run_replay` | {total_s:.1f} ({total_s / run.wall_s:.2f}x the replay; goal <= 1.5x) |', '',
        'Before this change the timeline drew one scatter artist per decision: the issue measured about 5 minutes '
        'for the plot of a 42 s replay of a 60-recording skeleton bag.', '',
        f'Machine: {result["machine"]}, {result["date"]}.', '', f'Command: `{command}`', ''])
    print(write_results(args.out, 'report_time', result, markdown=md, command=command))
    return 0


if __name__ == '__main__':
    sys.exit(main())
