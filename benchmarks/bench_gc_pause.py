"""
How long a full garbage collection stalls fusion_node, with and without the heap frozen after configure.

    python benchmarks/bench_gc_pause.py [--repeats 5] [--out benchmarks/results]

CPython's cyclic collector walks every tracked object of the oldest generation while it holds the
GIL, so a full collection stalls every thread of the node: subscription callbacks and decision
workers alike.  This script builds what fusion_node's configure builds (the runtime with the three
shipped bundles, ONNX Runtime sessions, the node module and rclpy imported), streams 10 s of the
DDS benchmark's inputs into it (640x480 frames at 30 Hz, skeletons, 4-channel 48 kHz audio, so the
buffers hold what a running node holds), and times ``gc.collect()`` (a full collection):

- as configured: nothing frozen (the node before ``fusion_node.freeze_heap``);
- after ``freeze_heap()`` (what configure now does: collect, then ``gc.freeze()``), with the same
  10 s streamed in after it.

Writes ``gc_pause.json`` and ``gc_pause.md`` with the machine, its load and the command.
"""
from __future__ import annotations

import argparse
import gc
from pathlib import Path
import time

from centralnet_ros.machine import command_line, machine_description, machine_line, write_results
import numpy as np

REPO = Path(__file__).resolve().parents[1]
TASKS = ('gesture', 'speech', 'emotion')


def _stream(perception, data_root: Path, seconds: float, t0: int) -> int:
    """Store ``seconds`` of the DDS benchmark's inputs (no decisions run); return the decisions made due."""
    import bench_dds                                                # the script's own folder is on sys.path
    from centralnet_ros import messages as M
    from centralnet_ros.messages.builders import dict_factory
    audio, joints = bench_dds._audio_source(data_root, seconds), bench_dds._skeletons(data_root)
    frame = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    due = k_frame = k_audio = 0
    frames = 8192
    while k_frame / 30 < seconds:
        if k_frame / 30 <= (k_audio + 1) * frames / 48000:
            stamp = t0 + int(k_frame / 30 * 1e9)
            due += len(perception.store('image', M.build_image(dict_factory, frame, encoding='rgb8', stamp_ns=stamp)))
            due += len(perception.store('skeleton', M.build_pose_array(dict_factory, joints[k_frame % len(joints)],
                                                                       stamp_ns=stamp)))
            k_frame += 1
        else:
            i = (k_audio * frames) % (len(audio) - frames)
            due += len(perception.store('audio', M.build_naoqi_audio(
                dict_factory, audio[i:i + frames], frequency=48000, stamp_ns=t0 + int(k_audio * frames / 48000 * 1e9))))
            k_audio += 1
    return due


def _full_collections(repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        gc.collect()
        out.append((time.perf_counter() - start) * 1e3)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--seconds', type=float, default=10.0, help='input streamed into the runtime before timing')
    parser.add_argument('--out', type=Path, default=REPO / 'benchmarks' / 'results')
    parser.add_argument('--data-root', default=None)
    args = parser.parse_args(argv)
    from centralnet_ros import node_params as NP, paths
    from centralnet_ros.ros import fusion_node                      # noqa: F401 - its imports (rclpy) are the node's
    from centralnet_ros.runtime.perception import Perception
    data_root = paths.data_root(args.data_root)
    params = {'tasks': list(TASKS), **{f'{t}.bundle': str(REPO / 'models' / t) for t in TASKS},
              'gesture.trigger': 'frame', 'audio_type': 'naoqi_audio_buffer', 'threads': 1}
    config = NP.perception_config({k: v for k, v in params.items() if k != 'threads'})
    rows = []
    for frozen in (False, True):
        perception = Perception(config)
        if frozen:
            fusion_node.freeze_heap()
        else:
            gc.unfreeze()
        _stream(perception, data_root, args.seconds, 1_000_000_000_000)
        tracked = len(gc.get_objects())
        pauses = _full_collections(args.repeats)
        rows.append({'heap': 'frozen after configure (freeze_heap)' if frozen else 'as configured (nothing frozen)',
                     'tracked_objects': tracked, 'frozen_objects': gc.get_freeze_count(),
                     'full_collection_ms': [round(p, 2) for p in pauses],
                     'median_ms': round(float(np.median(pauses)), 2), 'max_ms': round(max(pauses), 2)})
        perception.close()
        del perception
        gc.unfreeze()
    info = machine_description()
    command = command_line(argv, program='python benchmarks/bench_gc_pause.py')
    lines = ['# Full garbage collections in fusion_node: the stall, with and without the heap frozen', '',
             machine_line(info), '', f'Command: `{command}`', '',
             f'The runtime of the three shipped bundles (as fusion_node configures it, rclpy imported), '
             f'{args.seconds:.0f} s of the DDS benchmark’s inputs stored in it; then `gc.collect()` '
             f'(a full collection, which holds the GIL: every thread of the node waits) timed {args.repeats} '
             'times. Frozen: `fusion_node.freeze_heap()` after configure (collect, then `gc.freeze()`), as '
             'the node now does.', '',
             '| heap | tracked objects | frozen objects | full collection median (ms) | max (ms) |',
             '|---|---|---|---|---|']
    lines += [f'| {r["heap"]} | {r["tracked_objects"]} | {r["frozen_objects"]} | {r["median_ms"]} | {r["max_ms"]} |'
              for r in rows]
    lines += ['', 'On a loaded machine the times measure the machine as well (load average in the first line); '
              'the object counts do not depend on it.', '']
    write_results(args.out, 'gc_pause', {'machine': info, 'rows': rows}, command=command, markdown='\n'.join(lines))
    print('\n'.join(lines))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
