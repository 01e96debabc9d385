"""
Fuzz harness for the files that enter centralnet_ros: rosbag2 recordings, model bundles, label files, images.

Hypothesis mutates small valid inputs generated here (a sqlite3 and an MCAP bag of
skeletons, the shipped gesture bundle, a CSV/YAML label file, PNG/JPEG frames): bytes
overwritten, truncated or inserted; manifest values replaced by other types, huge or
negative numbers, keys removed. Each target has one contract:

- **bags**: ``bag_info`` + reading every message end in success or :class:`BagReadError`,
  and a replay through the runtime never raises (a read error makes it ``incomplete``);
- **bundles**: ``load_bundle`` succeeds or raises :class:`BundleError`;
- **label files**: ``load_label_file`` succeeds or raises :class:`LabelFileError`;
- **compressed images**: conversion succeeds or raises :class:`MalformedMessage`.

Anything else (another exception type, a case slower than ``--slow-s``, resident memory
growing past ``--rss-mb``) is a *finding*, recorded with the input that produced it.
Findings and counts go to ``benchmarks/results/fuzz_inputs.{md,json}``.

    python benchmarks/fuzz_inputs.py [--examples 300] [--out benchmarks/results]
"""
from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
import resource
import shutil
import sys
import tempfile
import time
from typing import Any, Callable

from centralnet_ros.machine import command_line, machine_description, machine_line, write_results
from hypothesis import given, HealthCheck, settings
from hypothesis import strategies as st
import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
FIXED = [
    ('compressed images', 'a PNG whose IHDR libpng rejects (bad checksum, bit depth 226) took OpenCV 30-60 s and '
     '3 GB to decode as 64 x 23557 pixels', 'the IHDR is checked (checksum, depth, colour type, methods) before '
     'decoding: messages/image.py _check_png_header'),
    ('rosbag2 files', "a sqlite3 database with a corrupted row: TypeError '<' not supported between NoneType and "
     'int (a message without a log time)', 'every message read is checked for an integer log time and bytes: '
     'BagReadError naming the bag and the message (replay/msgdefs.py _raw_messages)'),
]
"""Findings of earlier runs of this harness, and what fixed them (listed in the result file)."""
T0 = 1_700_000_000 * 1_000_000_000


def rss_mb() -> float:
    """Peak resident memory of this process so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Target:
    """One fuzz target: counts outcomes, keeps the findings."""

    def __init__(self, name: str, expected: tuple[type, ...], slow_s: float, rss_limit_mb: float):
        self.name, self.expected, self.slow_s, self.rss_limit_mb = name, expected, slow_s, rss_limit_mb
        self.outcomes: Counter = Counter()
        self.findings: list[dict] = []
        self.times: list[float] = []

    def run(self, describe: str, call: Callable[[], Any]) -> None:
        start = time.perf_counter()
        try:
            call()
            outcome = 'ok'
        except self.expected as exc:
            outcome = type(exc).__name__
        except Exception as exc:  # noqa: BLE001 - this is what the harness looks for
            outcome = f'UNEXPECTED {type(exc).__name__}'
            self.finding(describe, f'{type(exc).__name__}: {str(exc)[:300]}')
        elapsed = time.perf_counter() - start
        self.times.append(elapsed)
        self.outcomes[outcome] += 1
        if elapsed > self.slow_s:
            self.finding(describe, f'slow: {elapsed:.2f} s (limit {self.slow_s} s)')
        if rss_mb() > self.rss_limit_mb:
            self.finding(describe, f'peak resident memory {rss_mb():.0f} MiB (limit {self.rss_limit_mb:.0f} MiB)')

    def finding(self, describe: str, what: str) -> None:
        if len(self.findings) < 20 and not any(f['what'] == what for f in self.findings):
            self.findings.append({'input': describe[:400], 'what': what})

    def summary(self) -> dict:
        t = np.asarray(self.times) if self.times else np.zeros(1)
        return {'target': self.name, 'cases': len(self.times), 'outcomes': dict(self.outcomes.most_common()),
                'findings': self.findings, 'median_ms': float(np.median(t) * 1e3), 'max_ms': float(t.max() * 1e3)}


# --------------------------------------------------------------------------- mutations

@st.composite
def mutated(draw, data: bytes, *, protect: int = 0) -> tuple[bytes, str]:
    """Return ``data`` with a few byte-level edits (overwrite, truncate, insert, fill), and what was done."""
    out = bytearray(data)
    done = []
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(['overwrite', 'overwrite', 'truncate', 'insert', 'zero', 'ff']))
        if len(out) <= protect + 1:
            break
        at = draw(st.integers(protect, len(out) - 1))
        if op == 'overwrite':
            chunk = draw(st.binary(min_size=1, max_size=16))
            out[at:at + len(chunk)] = chunk
        elif op == 'truncate':
            del out[at:]
        elif op == 'insert':
            out[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            n = draw(st.integers(1, 64))
            out[at:at + n] = (b'\x00' if op == 'zero' else b'\xff') * min(n, len(out) - at)
        done.append(f'{op}@{at}')
    return bytes(out), ' '.join(done)


NASTY = st.one_of(st.integers(-2 ** 40, 2 ** 40), st.sampled_from([0, -1, -3, 2_000_000, 2 ** 31, 10 ** 12]),
                  st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8), st.none(), st.booleans(),
                  st.lists(st.integers(-5, 10 ** 7), max_size=4),
                  st.dictionaries(st.text(max_size=3), st.none(), max_size=2))


def paths_of(obj: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path in a nested dict/list."""
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.append(prefix + (k,))
            out += paths_of(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.append(prefix + (i,))
            out += paths_of(v, prefix + (i,))
    return out


@st.composite
def edited_manifest(draw, manifest: dict) -> tuple[dict, str]:
    """Return a manifest with a few values replaced by nasty ones, or keys removed, and what was done."""
    import copy
    data = copy.deepcopy(manifest)
    done = []
    keys = paths_of(data)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(keys))
        parent = data
        try:
            for k in path[:-1]:
                parent = parent[k]
            if draw(st.integers(0, 5)) == 0 and isinstance(parent, dict):
                parent.pop(path[-1], None)
                done.append(f'del {"/".join(map(str, path))}')
            else:
                value = draw(NASTY)
                parent[path[-1]] = value
                done.append(f'{"/".join(map(str, path))}={value!r}'[:80])
        except (KeyError, IndexError, TypeError):
            continue
    return data, '; '.join(done)


# --------------------------------------------------------------------------- targets

def skeleton_bag(root: Path, storage: str, n: int = 60) -> Path:
    from centralnet_ros.replay import msgdefs as D
    rng = np.random.default_rng(0)
    msgs = []
    for k in range(n):
        t = T0 + k * 33_333_333
        msgs.append(('/skeleton', 'geometry_msgs/msg/PoseArray', t,
                     D.pose_array_message((rng.normal(size=(20, 3)) * 0.1 + [0, 0.5, 2]).astype(np.float32),
                                          stamp_ns=t)))
    return D.write_bag(root / f'bag-{storage}', msgs, storage=storage)


def fuzz_bags(examples: int, work: Path, slow_s: float, rss_limit: float) -> dict:
    from centralnet_ros.replay.msgdefs import BagReadError, read_bag
    from centralnet_ros.replay.player import replay_bag
    from centralnet_ros.replay.topics import bag_info, map_topics
    from centralnet_ros.runtime.perception import Perception, PerceptionConfig, TaskConfig
    target = Target('rosbag2 files (sqlite3, MCAP, metadata.yaml)', (BagReadError,), slow_s, rss_limit)
    cfg = PerceptionConfig(tasks={'gesture': TaskConfig(bundle=str(REPO / 'models' / 'gesture'))},
                           backend='torch', warmup=0)
    originals = {s: skeleton_bag(work, s) for s in ('sqlite3', 'mcap')}
    files = {s: {p.name: p.read_bytes() for p in bag.iterdir()} for s, bag in originals.items()}
    for bag in originals.values():                         # warm-up (imports, first model build): not timed
        replay_bag(bag, Perception(cfg), map_topics(bag_info(bag), cfg), progress=False)

    def replay(bag: Path) -> None:
        info = bag_info(bag)
        if info.read_error is None:
            for _ in read_bag(bag):
                pass
        perception = Perception(cfg)
        run = replay_bag(bag, perception, map_topics(info, cfg), info=info, progress=False)
        perception.close()
        assert run.incomplete is None or 'read error' in run.incomplete or 'cannot decode' in run.incomplete

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(storage=st.sampled_from(['sqlite3', 'mcap']), which=st.sampled_from(['storage', 'storage', 'metadata']),
           data=st.data())
    def case(storage, which, data):
        bag = work / 'case'
        shutil.rmtree(bag, ignore_errors=True)
        shutil.copytree(originals[storage], bag)
        name = 'metadata.yaml' if which == 'metadata' else next(n for n in files[storage] if n != 'metadata.yaml')
        content, done = data.draw(mutated(files[storage][name], protect=0))
        (bag / name).write_bytes(content)
        target.run(f'{storage} {name}: {done}', lambda: replay(bag))

    case()
    return target.summary()


def fuzz_bundles(examples: int, work: Path, slow_s: float, rss_limit: float) -> dict:
    from centralnet_ros.bundle.io import BundleError, load_bundle
    target = Target('model bundles (manifest.yaml, model.safetensors)', (BundleError,), slow_s, rss_limit)
    src = REPO / 'models' / 'gesture'
    manifest = yaml.safe_load((src / 'manifest.yaml').read_text())
    weights = (src / 'model.safetensors').read_bytes()
    load_bundle(src)                                       # warm-up: not timed

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(which=st.sampled_from(['manifest', 'manifest', 'weights', 'weights-unchecked']), data=st.data())
    def case(which, data):
        bundle = work / 'bundle'
        shutil.rmtree(bundle, ignore_errors=True)
        shutil.copytree(src, bundle)
        if which == 'manifest':
            edited, done = data.draw(edited_manifest(manifest))
            (bundle / 'manifest.yaml').write_text(yaml.safe_dump(edited, sort_keys=False))
        else:
            content, done = data.draw(mutated(weights))
            (bundle / 'model.safetensors').write_bytes(content)
            if which == 'weights-unchecked':          # the checksum updated: the loader's own checks must hold
                import hashlib
                m = dict(manifest, weights_sha256=hashlib.sha256(content).hexdigest())
                (bundle / 'manifest.yaml').write_text(yaml.safe_dump(m, sort_keys=False))
        target.run(f'{which}: {done}', lambda: load_bundle(bundle))

    case()
    return target.summary()


def fuzz_labels(examples: int, work: Path, slow_s: float, rss_limit: float) -> dict:
    from centralnet_ros.replay.labels import LabelFileError, load_label_file
    target = Target('label files (CSV, YAML)', (LabelFileError,), slow_s, rss_limit)
    seeds = {'.csv': b'# time_base: bag_start\ntask,start_s,end_s,label\ngesture,1.0,2.5,duck\nspeech,3,4.25,B\n',
             '.yaml': b'time_base: bag_start\nsegments:\n  - {task: gesture, start_s: 12.0, end_s: 13.5, '
                      b'label: duck}\n  - {task: speech, start_s: 30, end_s: 31, label: B}\n'}

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(suffix=st.sampled_from(['.csv', '.yaml']), data=st.data())
    def case(suffix, data):
        content, done = data.draw(st.one_of(mutated(seeds[suffix]),
                                            st.binary(max_size=200).map(lambda b: (b, 'random bytes'))))
        path = work / f'labels{suffix}'
        path.write_bytes(content)
        target.run(f'{suffix}: {done}: {content[:120]!r}', lambda: load_label_file(path, bag_start_ns=T0))

    case()
    return target.summary()


def fuzz_images(examples: int, slow_s: float, rss_limit: float) -> dict:
    import cv2
    from centralnet_ros import messages as M
    target = Target('compressed images (PNG, JPEG headers and data)', (M.MalformedMessage,), slow_s, rss_limit)
    image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    seeds = {ext: cv2.imencode(ext, image)[1].tobytes() for ext in ('.png', '.jpg')}

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(ext=st.sampled_from(['.png', '.jpg']), data=st.data())
    def case(ext, data):
        content, done = data.draw(mutated(seeds[ext]))
        msg = {'format': 'png' if ext == '.png' else 'jpeg', 'data': np.frombuffer(content, np.uint8)}
        target.run(f'{ext}: {done}', lambda: M.compressed_image_to_array(msg))

    case()
    return target.summary()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--examples', type=int, default=300, help='hypothesis examples per target')
    ap.add_argument('--targets', nargs='+', default=['bags', 'bundles', 'labels', 'images'])
    ap.add_argument('--slow-s', type=float, default=10.0, help='a case slower than this is a finding')
    ap.add_argument('--rss-mb', type=float, default=2048.0, help='peak resident memory above this is a finding')
    ap.add_argument('--out', type=Path, default=Path(__file__).resolve().parent / 'results')
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    start = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix='centralnet-fuzz-') as tmp:
        work = Path(tmp)
        for name in args.targets:
            t = time.perf_counter()
            if name == 'bags':
                rows.append(fuzz_bags(args.examples, work, args.slow_s, args.rss_mb))
            elif name == 'bundles':
                rows.append(fuzz_bundles(args.examples, work, args.slow_s, args.rss_mb))
            elif name == 'labels':
                rows.append(fuzz_labels(args.examples, work, args.slow_s, args.rss_mb))
            elif name == 'images':
                rows.append(fuzz_images(args.examples, args.slow_s, args.rss_mb))
            else:
                ap.error(f'unknown target {name!r}')
            rows[-1]['wall_s'] = round(time.perf_counter() - t, 1)
            print(f'{name}: {rows[-1]["cases"]} cases, {len(rows[-1]["findings"])} findings, '
                  f'{rows[-1]["wall_s"]} s', file=sys.stderr)
    command = command_line(argv, program='python benchmarks/fuzz_inputs.py')
    machine = machine_description(with_torch=True)
    result = {'benchmark': 'fuzzing hostile inputs (issue #17)', 'command': command, 'machine': machine,
              'examples_per_target': args.examples, 'slow_s': args.slow_s, 'rss_limit_mb': args.rss_mb,
              'peak_rss_mb': round(rss_mb()), 'wall_s': round(time.perf_counter() - start, 1), 'targets': rows,
              'fixed_earlier': [dict(zip(('target', 'finding', 'fix'), f)) for f in FIXED]}
    lines = ['# Fuzzing hostile inputs', '', f'Command: `{command}`  ', f'Machine: {machine_line(machine)}  ',
             f'{args.examples} hypothesis examples per target; a finding is an exception other than the '
             f"target's own error type, a case slower than {args.slow_s:g} s, or peak resident memory above "
             f'{args.rss_mb:g} MiB. Peak resident memory of the whole run: {result["peak_rss_mb"]} MiB; '
             f'wall time {result["wall_s"]} s.', '',
             '| target | cases | outcomes | median / max per case (ms) | findings |', '|---|---:|---|---|---:|']
    for r in rows:
        outcomes = ', '.join(f'{k} {v}' for k, v in r['outcomes'].items())
        lines.append(f"| {r['target']} | {r['cases']} | {outcomes} | {r['median_ms']:.1f} / {r['max_ms']:.0f} | "
                     f"{len(r['findings'])} |")
    for r in rows:
        if r['findings']:
            lines += ['', f"## Findings: {r['target']}", '']
            lines += [f"- `{f['what']}` from `{f['input']}`" for f in r['findings']]
    if not any(r['findings'] for r in rows):
        lines += ['', "No findings: every case ended in success or the target's own error."]
    lines += ['', '## Findings of earlier runs, fixed', '', '| target | finding | fix |', '|---|---|---|']
    lines += [f'| {target} | {finding} | {fix} |' for target, finding, fix in FIXED]
    text = '\n'.join(lines) + '\n'
    print(text)
    write_results(args.out, 'fuzz_inputs', result, markdown=text, command=command, machine=machine)
    return 0


if __name__ == '__main__':
    sys.exit(main())
