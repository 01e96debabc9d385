#!/usr/bin/env python3
"""
Build the demo recording shipped with the package (``centralnet_ros/demo_recording/``).

::

    python tools/make_demo_recording.py --data-root /path/to/datasets

It takes, from the full datasets under the data root, the samples each shipped bundle
(``models/<task>``) was NOT trained on, as its manifest says (MSRC-12 test persons, the
AVLetters test split, the EmoDB test speaker), lays them out as a robot would publish
them (``centralnet_ros.demo.build_demo_bag``) and writes a rosbag2 MCAP with
zstd-compressed chunks, its ``labels.yaml`` and ``recording.yaml`` (the files the
samples come from, how they were held out, the datasets' terms, and the weights hash
of each bundle it was built for). ``centralnet demo`` replays it by default; rebuild it
whenever a shipped bundle is retrained. The letters are spoken by espeak-ng
(``apt install espeak-ng``), since AVLetters ships no waveforms.
"""
from __future__ import annotations

import argparse
from pathlib import Path
import sys

from centralnet_ros import paths
from centralnet_ros.bundle.io import read_manifest
from centralnet_ros.demo import DemoOptions, RECORDING, write_recording
from centralnet_ros.node_params import TASKS

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--data-root', default=None, help=f'folder holding the datasets ({paths.DATA_ROOT_DEFAULT})')
    parser.add_argument('--out', type=Path, default=REPO / 'centralnet_ros' / RECORDING,
                        help='recording folder to (re)write')
    parser.add_argument('--models', type=Path, default=REPO / 'models', help='the shipped bundles, one folder per task')
    parser.add_argument('--tasks', nargs='+', default=list(TASKS), metavar='TASK')
    args = parser.parse_args(argv)
    manifests = {task: read_manifest(args.models / task) for task in args.tasks}
    command = ' '.join(['python tools/make_demo_recording.py', *(['--data-root DATA_ROOT'] if args.data_root else []),
                        *(['--tasks', *args.tasks] if args.tasks != list(TASKS) else [])])
    demo = write_recording(args.out, manifests, data_root=paths.data_root(args.data_root), options=DemoOptions(),
                           command=command)
    size = sum(f.stat().st_size for f in args.out.rglob('*') if f.is_file())
    print(f'wrote {args.out} ({size / 1e6:.2f} MB; {demo.duration_s:.1f} s; tasks {", ".join(demo.tasks)})')
    for note in demo.notes:
        print(f'  {note}')
    missing = sorted(set(args.tasks) - set(demo.tasks))
    if missing:
        print(f'make_demo_recording: no samples for {", ".join(missing)} (see the notes)', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
