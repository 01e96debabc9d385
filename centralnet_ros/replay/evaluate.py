"""
Replay evaluation: a rosbag2 recording through :class:`~centralnet_ros.runtime.perception.Perception`.

The bag (sqlite3 or MCAP, read with ``rosbags``) is played in recording order and
each message handed to the same runtime the live node runs, in header time, so the
decisions are those the robot would have published. Against ground truth they give
per-task metrics; the processing latency of every decision is measured.

Ground truth, two ways (both give time segments ``[start, end)`` per task):

1. **A label file** (``--labels FILE``), CSV or YAML, one row per segment::

       task,start_s,end_s,label            # CSV: this header line is required
       gesture,12.0,13.5,duck
       speech,30.2,31.1,B

   .. code-block:: yaml

       time_base: bag_start                 # or absolute
       segments:
         - {task: gesture, start_s: 12.0, end_s: 13.5, label: duck}

   Times are seconds from the bag's start (``time_base: bag_start``, the default:
   the first message's recording time, what ``ros2 bag info`` calls Start and what
   bag players show as 0) or seconds since the Unix epoch (``absolute``, like header
   stamps). A CSV file may give its time base in a first comment line
   ``# time_base: absolute``. Labels must be class names of the task's bundle;
   segments of one task must not overlap.

2. **A label topic** in the bag, ``/labels/<task>``: ``std_msgs/msg/String`` (the
   label holds from the message's recording time until the next message on the
   topic; an empty string ends it), or ``vision_msgs/msg/Classification`` (same, with
   the header stamp as the time and ``results[0].class_id`` as the label; no result
   ends it). A person can publish these while recording
   (``ros2 topic pub --once /labels/gesture std_msgs/msg/String "{data: duck}"``).

A decision is scored against the segment of its task containing its header stamp;
decisions outside every segment of their task are *unlabelled* (counted, not scored).
Per segment, the majority label of the decisions inside it is the segment's
prediction (ties go to the larger summed score; a segment without decisions counts
as missed and wrong).
"""
from __future__ import annotations

from collections import Counter, defaultdict
import csv
import dataclasses
import io
import json
import math
from pathlib import Path
import time
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import yaml

from .msgdefs import bag_topics, BagReadError, normalize_msgtype, read_bag
from ..config import atomic_write_text
from ..runtime.perception import Perception, PerceptionConfig, SOURCE_KINDS, TaskResult

__all__ = ['LabelSegment', 'LabelFileError', 'load_label_file', 'LabelTopicCollector', 'MSGTYPE_KINDS',
           'DEFAULT_TOPICS', 'TopicMapping', 'map_topics', 'BagInfo', 'bag_info', 'ReplayRun', 'replay_bag',
           'assign_truth', 'evaluate', 'write_outputs', 'format_summary', 'plot_timeline']

_NS = 1_000_000_000

MSGTYPE_KINDS: dict[str, str] = {
    'sensor_msgs/msg/Image': 'image',
    'sensor_msgs/msg/CompressedImage': 'compressed_image',
    'audio_common_msgs/msg/AudioDataStamped': 'audio',
    'naoqi_bridge_msgs/msg/AudioBuffer': 'naoqi_audio',
    'geometry_msgs/msg/PoseArray': 'pose_array',
    'hri_msgs/msg/Skeleton2D': 'skeleton2d',
}
"""Bag message type -> runtime input kind (``audio_common_msgs/msg/AudioInfo`` feeds ``<audio input>_info``)."""

AUDIO_INFO_TYPE = 'audio_common_msgs/msg/AudioInfo'
LABEL_TYPES = ('std_msgs/msg/String', 'vision_msgs/msg/Classification')

DEFAULT_TOPICS: dict[str, tuple[str, ...]] = {
    'image': ('/image', '/image/compressed', '/camera/front/image_raw', '/naoqi_driver/camera/front/image_raw',
              '/camera/color/image_raw', '/camera/camera/color/image_raw', '/image_raw'),
    'depth': ('/depth', '/camera/depth/image_raw', '/naoqi_driver/camera/depth/image_raw',
              '/camera/camera/aligned_depth_to_color/image_raw', '/camera/aligned_depth_to_color/image_raw'),
    'audio': ('/audio', '/naoqi_driver/audio'),
    'audio_info': ('/audio_info',),
    'skeleton': ('/skeleton',),
}
"""Input -> topics tried in the bag, in order: the fusion node's topic names
(:data:`centralnet_ros.node_params.TOPICS`) at the root namespace, then the driver topics
the launch file remaps by default (naoqi_driver, RealSense, a plain ``image_raw``)."""


# --------------------------------------------------------------------------- ground truth

@dataclasses.dataclass(frozen=True)
class LabelSegment:
    """Ground truth: ``label`` holds for ``task`` over header times ``[start_ns, end_ns)``."""

    task: str
    start_ns: int
    end_ns: int
    label: str


class LabelFileError(ValueError):
    """A label file (or label topic) that cannot be used; the message names the file and row."""


_TIME_BASES = ('bag_start', 'absolute')


def _to_ns(value: Any, where: str, column: str) -> int:
    if isinstance(value, bool):
        raise LabelFileError(f'{where}: {column} must be a number of seconds, got {value!r}')
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise LabelFileError(f'{where}: {column} must be a number of seconds, got {value!r}') from None
    if not math.isfinite(seconds):
        raise LabelFileError(f'{where}: {column} must be finite, got {value!r}')
    return int(round(seconds * _NS))


def _segment(row: Mapping[str, Any], where: str, offset_ns: int) -> LabelSegment:
    expected = ('task', 'start_s', 'end_s', 'label')
    missing = [c for c in expected if row.get(c) in (None, '')]
    if missing:
        raise LabelFileError(f'{where}: missing {", ".join(missing)} (each row needs {", ".join(expected)})')
    extra = sorted(set(row) - set(expected))
    if extra:
        raise LabelFileError(f'{where}: unknown field(s) {", ".join(map(str, extra))}; expected {", ".join(expected)}')
    start = _to_ns(row['start_s'], where, 'start_s')
    end = _to_ns(row['end_s'], where, 'end_s')
    if end <= start:
        raise LabelFileError(f'{where}: end_s ({row["end_s"]}) must be greater than start_s ({row["start_s"]})')
    return LabelSegment(str(row['task']).strip(), start + offset_ns, end + offset_ns, str(row['label']).strip())


def _check_overlaps(segments: list[LabelSegment], source: str) -> None:
    by_task = defaultdict(list)
    for s in segments:
        by_task[s.task].append(s)
    for task, segs in by_task.items():
        segs.sort(key=lambda s: s.start_ns)
        for a, b in zip(segs, segs[1:]):
            if b.start_ns < a.end_ns:
                raise LabelFileError(f'{source}: {task} segments overlap: {a.label!r} [{a.start_ns / _NS:.3f}, '
                                     f'{a.end_ns / _NS:.3f}) and {b.label!r} [{b.start_ns / _NS:.3f}, '
                                     f'{b.end_ns / _NS:.3f}) (seconds, after the time base)')


def load_label_file(path: str | Path, *, bag_start_ns: int, time_base: str | None = None) -> list[LabelSegment]:
    """
    Read a CSV (``.csv``) or YAML (``.yaml``/``.yml``) label file (format: module docstring).

    ``bag_start_ns``: recording time of the bag's first message (for ``bag_start``
    times). ``time_base`` overrides the one the file gives. Raises
    :class:`LabelFileError` naming the file and the row for anything malformed.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding='utf-8')
    except OSError as exc:
        raise LabelFileError(f'{path}: cannot read the label file ({exc})') from None
    suffix = path.suffix.lower()
    file_base = None
    if suffix == '.csv':
        lines = text.splitlines()
        body = []
        for line in lines:
            stripped = line.strip()
            if stripped.startswith('#'):
                key, _, value = stripped[1:].partition(':')
                if key.strip() == 'time_base':
                    file_base = value.strip()
                continue
            if stripped:
                body.append(line)
        reader = csv.DictReader(io.StringIO('\n'.join(body)), skipinitialspace=True)
        header = [h.strip() for h in (reader.fieldnames or [])]
        if sorted(header) != sorted(['task', 'start_s', 'end_s', 'label']):
            raise LabelFileError(f'{path}: the first row must be the header task,start_s,end_s,label '
                                 f'(any order), got {",".join(header) or "nothing"}')
        rows = []
        for i, raw in enumerate(reader):
            if None in raw or any(v is None for v in raw.values()):
                cells = [v for k, v in raw.items() if k is not None and v is not None] + list(raw.get(None) or [])
                raise LabelFileError(f'{path}: data row {i + 1}: expected 4 comma-separated columns '
                                     f'(task,start_s,end_s,label), got {len(cells)}')
            rows.append(({k.strip(): v.strip() for k, v in raw.items()}, i + 1))
    elif suffix in ('.yaml', '.yml'):
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise LabelFileError(f'{path}: not valid YAML: {exc}') from None
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - {'time_base', 'segments'})
            if unknown:
                raise LabelFileError(f'{path}: unknown key(s) {", ".join(map(str, unknown))}; '
                                     'expected time_base and segments')
            file_base = data.get('time_base')
            data = data.get('segments')
        if not isinstance(data, list):
            raise LabelFileError(f'{path}: expected a list of segments (or a mapping with segments:), '
                                 f'got {type(data).__name__}')
        rows = []
        for i, r in enumerate(data):
            if not isinstance(r, Mapping):
                raise LabelFileError(f'{path}: segment {i + 1}: expected a mapping with task, start_s, end_s, label')
            rows.append((dict(r), i + 1))
    else:
        raise LabelFileError(f'{path}: unknown label file type {suffix or "(none)"}; expected .csv, .yaml or .yml')
    base = time_base or file_base or 'bag_start'
    if base not in _TIME_BASES:
        raise LabelFileError(f'{path}: time_base {base!r} is not one of {list(_TIME_BASES)}')
    offset = int(bag_start_ns) if base == 'bag_start' else 0
    what = 'data row' if suffix == '.csv' else 'segment'
    segments = [_segment(r, f'{path}: {what} {line}', offset) for r, line in rows]
    _check_overlaps(segments, str(path))
    return segments


class LabelTopicCollector:
    """Turns ``/labels/<task>`` messages (String or Classification) into :class:`LabelSegment` s."""

    def __init__(self, prefix: str = '/labels/'):
        self.prefix = prefix
        self._changes: dict[str, list[tuple[int, str]]] = defaultdict(list)

    def task_of(self, topic: str) -> str | None:
        return topic[len(self.prefix):] if topic.startswith(self.prefix) and len(topic) > len(self.prefix) else None

    def add(self, topic: str, msgtype: str, log_time_ns: int, msg: Any) -> None:
        task = self.task_of(topic)
        if task is None:
            return
        if msgtype == 'std_msgs/msg/String':
            self._changes[task].append((int(log_time_ns), str(msg.data).strip()))
        elif msgtype == 'vision_msgs/msg/Classification':
            from .. import messages as M
            stamp = M.header_stamp_ns(msg)
            label = str(msg.results[0].class_id).strip() if len(msg.results) else ''
            self._changes[task].append((stamp, label))
        else:
            raise LabelFileError(f'label topic {topic} has type {msgtype}; expected one of {list(LABEL_TYPES)}')

    def segments(self, end_ns: int) -> list[LabelSegment]:
        """Segments from the collected changes; the last one ends at ``end_ns`` (the bag's end)."""
        out = []
        for task, changes in self._changes.items():
            changes = sorted(changes, key=lambda c: c[0])
            for (t, label), nxt in zip(changes, changes[1:] + [(max(int(end_ns), changes[-1][0]) + 1, '')]):
                if label and nxt[0] > t:
                    out.append(LabelSegment(task, t, nxt[0], label))
        _check_overlaps(out, 'label topics')
        return out


# --------------------------------------------------------------------------- bag and topics

@dataclasses.dataclass
class BagInfo:
    path: Path
    storage: str                   # 'sqlite3' | 'mcap' | '?'
    start_ns: int                  # recording time of the first message
    end_ns: int
    topics: dict[str, tuple[str, int]]   # topic -> (msgtype, count)

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / _NS


def bag_info(path: str | Path) -> BagInfo:
    """Storage, time span and topics of a rosbag2 recording. Raises :class:`BagReadError`."""
    from rosbags.rosbag2 import Reader
    path = Path(path)
    topics = bag_topics(path)
    storage = '?'
    meta = path / 'metadata.yaml' if path.is_dir() else None
    if meta is not None and meta.is_file():
        try:
            info = yaml.safe_load(meta.read_text()) or {}
            storage = str(info.get('rosbag2_bagfile_information', {}).get('storage_identifier', '?'))
        except yaml.YAMLError:
            pass
    elif path.suffix in ('.mcap', '.db3'):
        storage = 'mcap' if path.suffix == '.mcap' else 'sqlite3'
    try:
        with Reader(path) as reader:
            start, end = int(reader.start_time), int(reader.end_time)
    except Exception as exc:  # noqa: BLE001 - rosbags raises its own types
        raise BagReadError(f'{path}: cannot open as rosbag2 ({type(exc).__name__}: {exc})') from exc
    if not any(count for _, count in topics.values()):
        start = end = 0
    return BagInfo(path, storage, start, end, topics)


@dataclasses.dataclass
class TopicMapping:
    """Which bag topic feeds which runtime input, and what was adjusted or left out."""

    topics: dict[str, str]                 # topic -> input name ('audio_info' style for AudioInfo)
    notes: list[str]
    label_topics: list[str]
    unmapped: list[str] = dataclasses.field(default_factory=list)   # configured inputs without a topic

    def missing_notes(self, needed: Iterable[str]) -> list[str]:
        """Return notes on the ``needed`` inputs (those some task reads) that no topic feeds."""
        return [f'input {name}: no topic in the bag (tried {", ".join(DEFAULT_TOPICS.get(name, (f"/{name}",)))}; '
                f'use --topic {name}=/your/topic): its modalities will be missing'
                for name in self.unmapped if name in set(needed)]


def map_topics(info: BagInfo, config: PerceptionConfig, overrides: Mapping[str, str] | None = None, *,
               label_prefix: str = '/labels/') -> TopicMapping:
    """
    Map the bag's topics onto ``config.inputs`` (adjusting input kinds to the recorded types).

    ``overrides``: ``input -> topic`` (``audio_info`` for the AudioInfo of input
    ``audio``). Default topics: :data:`DEFAULT_TOPICS`, else ``/<input>``. An input
    whose topic has a type the input cannot take is an error; a configured input
    without a topic is noted (its modalities will be missing).
    """
    overrides = dict(overrides or {})
    notes: list[str] = []
    topics: dict[str, str] = {}
    names = list(config.inputs) + [f'{n}_info' for n in config.inputs]     # inputs first: kinds may change
    for key in overrides:
        if key not in names:
            raise ValueError(f'--topic {key}=...: {key!r} is not an input; inputs: {", ".join(sorted(names))}')
    for name in names:
        if name.endswith('_info') and config.inputs[name[:-5]].kind != 'audio':
            continue                                   # AudioInfo only goes with AudioDataStamped
        if name in overrides:
            topic = overrides[name]
            if topic not in info.topics:
                raise ValueError(f'--topic {name}={topic}: the bag has no topic {topic} '
                                 f'(topics: {", ".join(sorted(info.topics))})')
            candidates = [topic]
        else:
            candidates = [t for t in DEFAULT_TOPICS.get(name, (f'/{name}',)) if t in info.topics]
        if not candidates:
            continue
        topic = candidates[0]
        msgtype = normalize_msgtype(info.topics[topic][0])
        if name.endswith('_info'):
            if msgtype != AUDIO_INFO_TYPE:
                raise ValueError(f'topic {topic} ({msgtype}) cannot feed {name}: expected {AUDIO_INFO_TYPE}')
            topics[topic] = name
            continue
        kind = MSGTYPE_KINDS.get(msgtype)
        ic = config.inputs[name]
        family = next((kinds for kinds in SOURCE_KINDS.values() if ic.kind in kinds), (ic.kind,))
        if kind is None or kind not in family:
            raise ValueError(f'topic {topic} has type {msgtype}, which input {name!r} ({ic.kind}) cannot take '
                             f'(it takes {", ".join(k for k, v in MSGTYPE_KINDS.items() if v in family)})')
        if kind != ic.kind:
            notes.append(f'input {name}: the bag records {msgtype} on {topic}; reading it as {kind}')
            ic.kind = kind
        topics[topic] = name
    mapped_inputs = set(topics.values())
    unmapped = [name for name in config.inputs if name not in mapped_inputs]
    label_topics = sorted(t for t, (mt, _) in info.topics.items()
                          if t.startswith(label_prefix) and normalize_msgtype(mt) in LABEL_TYPES)
    ignored = sorted(set(info.topics) - set(topics) - set(label_topics))
    if ignored:
        notes.append(f'ignored topics: {", ".join(ignored)}')
    return TopicMapping(topics, notes, label_topics, unmapped)


# --------------------------------------------------------------------------- replay

@dataclasses.dataclass
class ReplayRun:
    """What one replay produced."""

    results: list[TaskResult]
    messages: int                    # messages handed to the runtime (label topics excluded)
    wall_s: float                    # replay wall time (reading + decoding + runtime)
    runtime_s: float                 # time spent inside Perception.ingest / flush
    bag_start_ns: int
    bag_end_ns: int
    label_segments: list[LabelSegment]

    @property
    def bag_duration_s(self) -> float:
        return (self.bag_end_ns - self.bag_start_ns) / _NS

    @property
    def messages_per_s(self) -> float:
        return self.messages / self.wall_s if self.wall_s > 0 else float('nan')

    @property
    def real_time_factor(self) -> float:
        """How many times faster than real time the bag was replayed."""
        return self.bag_duration_s / self.wall_s if self.wall_s > 0 else float('nan')


def replay_bag(path: str | Path, perception: Perception, mapping: TopicMapping, *, info: BagInfo | None = None,
               progress: bool = True, label_prefix: str = '/labels/') -> ReplayRun:
    """Play the bag's mapped topics through ``perception`` in recording order (then flush)."""
    from tqdm import tqdm
    info = info or bag_info(path)
    wanted = sorted(set(mapping.topics) | set(mapping.label_topics))
    total = sum(info.topics[t][1] for t in wanted)
    labels = LabelTopicCollector(label_prefix)
    results: list[TaskResult] = []
    n = 0
    runtime = 0.0
    start = time.perf_counter()
    with tqdm(total=total, unit='msg', disable=not progress, mininterval=0.5, desc='replay') as bar:
        for item in read_bag(path, topics=wanted) if wanted else ():
            bar.update(1)
            name = mapping.topics.get(item.topic)
            if name is None:
                labels.add(item.topic, normalize_msgtype(item.msgtype), item.log_time_ns, item.message)
                continue
            n += 1
            t = time.perf_counter()
            results += perception.ingest(name, item.message, log_time_ns=item.log_time_ns)
            runtime += time.perf_counter() - t
        t = time.perf_counter()
        results += perception.flush()
        runtime += time.perf_counter() - t
    wall = time.perf_counter() - start
    return ReplayRun(results, n, wall, runtime, info.start_ns, info.end_ns, labels.segments(info.end_ns))


# --------------------------------------------------------------------------- metrics

def assign_truth(results: Sequence[TaskResult], segments: Sequence[LabelSegment]) -> list[LabelSegment | None]:
    """For each result, the segment of its task containing its stamp (or None)."""
    by_task: dict[str, list[LabelSegment]] = defaultdict(list)
    for s in segments:
        by_task[s.task].append(s)
    starts = {}
    for task, segs in by_task.items():
        segs.sort(key=lambda s: s.start_ns)
        starts[task] = np.asarray([s.start_ns for s in segs], np.int64)
    out = []
    for r in results:
        segs = by_task.get(r.task)
        if not segs:
            out.append(None)
            continue
        k = int(np.searchsorted(starts[r.task], r.stamp_ns, side='right')) - 1
        out.append(segs[k] if k >= 0 and r.stamp_ns < segs[k].end_ns else None)
    return out


def _vote(rs: list[TaskResult]) -> str | None:
    if not rs:
        return None
    votes = Counter(r.label for r in rs)
    scores = defaultdict(float)
    for r in rs:
        scores[r.label] += r.score
    return max(votes, key=lambda lab: (votes[lab], scores[lab]))


def evaluate(results: Sequence[TaskResult], segments: Sequence[LabelSegment],
             labels: Mapping[str, Sequence[str]]) -> dict[str, dict]:
    """
    Per-task metrics (see the module docstring). ``labels``: task -> class names of its bundle.

    Raises :class:`LabelFileError` when a ground-truth label is not a class of the task.
    """
    from ..training.metrics import confusion_matrix, macro_accuracy
    for s in segments:
        if s.task in labels and s.label not in labels[s.task]:
            raise LabelFileError(f'ground truth label {s.label!r} for {s.task} at {s.start_ns / _NS:.3f} s is not a '
                                 f'class of its bundle; classes: {", ".join(labels[s.task])}')
    truth = assign_truth(results, segments)
    out = {}
    for task, names in labels.items():
        index = {n: i for i, n in enumerate(names)}
        idx = [i for i, r in enumerate(results) if r.task == task]
        rs = [results[i] for i in idx]
        tr = [truth[i] for i in idx]
        scored = [(r, s) for r, s in zip(rs, tr) if s is not None]
        pred = np.asarray([index[r.label] for r, _ in scored], np.int64)
        target = np.asarray([index[s.label] for _, s in scored], np.int64)
        pub = [(r, s) for r, s in scored if r.published]
        segs = sorted((s for s in segments if s.task == task), key=lambda s: s.start_ns)
        inside: dict[LabelSegment, list[TaskResult]] = defaultdict(list)
        for r, s in scored:
            inside[s].append(r)
        seg_pred = [_vote(inside[s]) for s in segs]
        seg_pub = [_vote([r for r in inside[s] if r.published]) for s in segs]
        lat = [r.timing for r in rs]
        cm = confusion_matrix(pred, target, len(names)) if len(scored) else np.zeros((len(names),) * 2, np.int64)

        def pct(values):
            if not values:
                return {'p50': None, 'p95': None, 'p99': None, 'mean': None, 'max': None}
            a = np.asarray(values) * 1e3
            return {'p50': float(np.percentile(a, 50)), 'p95': float(np.percentile(a, 95)),
                    'p99': float(np.percentile(a, 99)), 'mean': float(a.mean()), 'max': float(a.max())}

        out[task] = {
            'labels': list(names),
            'decisions': len(rs),
            'published': sum(r.published for r in rs),
            'labelled_decisions': len(scored),
            'unlabelled_decisions': len(rs) - len(scored),
            'decision_accuracy': float((pred == target).mean()) if len(scored) else None,
            'decision_macro_accuracy': macro_accuracy(pred, target, len(names)) if len(scored) else None,
            'published_labelled': len(pub),
            'published_accuracy': (float(np.mean([r.label == s.label for r, s in pub])) if pub else None),
            'segments': len(segs),
            'segments_with_decisions': sum(p is not None for p in seg_pred),
            'segment_accuracy': (float(np.mean([p == s.label for p, s in zip(seg_pred, segs)])) if segs else None),
            'segment_accuracy_published': (float(np.mean([p == s.label for p, s in zip(seg_pub, segs)]))
                                           if segs else None),
            'chance': 1.0 / len(names),
            'confusion': cm.tolist(),
            'latency_ms': pct([t['total'] for t in lat]),
            'features_ms': pct([t['features'] for t in lat]),
            'inference_ms': pct([t['inference'] for t in lat]),
            'missing': dict(Counter(f'{m}:{why}' for r in rs for m, why in r.missing.items())),
        }
    return out


# --------------------------------------------------------------------------- outputs

def plot_timeline(results: Sequence[TaskResult], segments: Sequence[LabelSegment], labels: Mapping[str, Sequence[str]],
                  path: Path, *, t0_ns: int, title: str = 'replay timeline') -> Path:
    """
    Plot, per task, the ground-truth segments (bars) and the decisions, class on the y axis.

    Decisions are dots: green correct, red wrong, grey unlabelled; filled = published,
    hollow = below the threshold.
    """
    from ..training.plots import pyplot, save_figure
    plt = pyplot()
    tasks = list(labels)
    heights = [max(1.6, 0.16 * len(labels[t]) + 0.8) for t in tasks]
    fig, axes = plt.subplots(len(tasks), 1, figsize=(11, sum(heights) + 0.6), squeeze=False,
                             gridspec_kw={'height_ratios': heights}, sharex=True)
    truth = assign_truth(results, segments)
    for ax, task in zip(axes[:, 0], tasks):
        names = list(labels[task])
        index = {n: i for i, n in enumerate(names)}
        for s in segments:
            if s.task == task and s.label in index:
                ax.broken_barh([((s.start_ns - t0_ns) / _NS, (s.end_ns - s.start_ns) / _NS)],
                               (index[s.label] - 0.4, 0.8), facecolors='#c6dbef', edgecolors='none')
        for r, s in zip(results, truth):
            if r.task != task:
                continue
            color = '#999999' if s is None else ('#2ca02c' if s.label == r.label else '#d62728')
            ax.scatter([(r.stamp_ns - t0_ns) / _NS], [index.get(r.label, -1)], s=14, zorder=3,
                       facecolors=color if r.published else 'none', edgecolors=color, linewidths=0.8)
        ax.set_yticks(range(len(names)), names, fontsize=6 if len(names) > 14 else 7)
        ax.set_ylim(-0.7, len(names) - 0.3)
        ax.set_ylabel(task, fontsize=9)
        ax.grid(axis='x', alpha=0.3)
    axes[-1, 0].set_xlabel('time from the start of the bag (s)')
    axes[0, 0].set_title(title + '  (bars: truth; dots: decisions, green correct, red wrong, grey unlabelled; '
                         'hollow: below threshold)', fontsize=8)
    return save_figure(fig, path)


def _fmt_pct(x: float | None) -> str:
    return '   -  ' if x is None else f'{x * 100:5.1f} %'


def format_summary(metrics: Mapping[str, dict], run: ReplayRun) -> str:
    """Return the terminal summary: per task accuracy, decisions and latency; replay throughput."""
    lines = [f'{"task":<9} {"decisions":>9} {"published":>9} {"scored":>6} {"acc":>8} {"acc(pub)":>8} '
             f'{"segments":>8} {"seg acc":>8} {"chance":>7}  latency ms p50/p95/p99']
    for task, m in metrics.items():
        lat = m['latency_ms']
        latency = '-' if lat['p50'] is None else f'{lat["p50"]:.2f}/{lat["p95"]:.2f}/{lat["p99"]:.2f}'
        lines.append(f'{task:<9} {m["decisions"]:>9} {m["published"]:>9} {m["labelled_decisions"]:>6} '
                     f'{_fmt_pct(m["decision_accuracy"]):>8} {_fmt_pct(m["published_accuracy"]):>8} '
                     f'{m["segments"]:>8} {_fmt_pct(m["segment_accuracy"]):>8} {_fmt_pct(m["chance"]):>7}  {latency}')
    lines.append(f'replay: {run.messages} messages, {run.bag_duration_s:.1f} s of recording in {run.wall_s:.2f} s '
                 f'({run.messages_per_s:,.0f} msg/s, {run.real_time_factor:.0f}x real time)')
    return '\n'.join(lines)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f'{type(obj).__name__} is not JSON serialisable')


def write_outputs(out: str | Path, run: ReplayRun, metrics: Mapping[str, dict], segments: Sequence[LabelSegment],
                  perception: Perception, *, extra: Mapping[str, Any] | None = None, plots: bool = True) -> dict:
    """
    Write ``predictions.jsonl``, ``metrics.json``, ``confusion_<task>.png``, ``timeline.png`` and ``summary.txt``.

    Each goes into ``out``, written atomically.

    :return: ``{name: path}``.
    """
    from ..training.plots import plot_confusion
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    truth = assign_truth(run.results, segments)
    lines = []
    for r, s in zip(run.results, truth):
        d = r.to_dict()
        d['time_s'] = round((r.stamp_ns - run.bag_start_ns) / _NS, 6)
        d['truth'] = None if s is None else s.label
        d['correct'] = None if s is None else (s.label == r.label)
        lines.append(json.dumps(d, default=_json_default))
    written['predictions'] = atomic_write_text(out / 'predictions.jsonl', '\n'.join(lines) + ('\n' if lines else ''))
    payload = {
        'replay': {'messages': run.messages, 'bag_duration_s': run.bag_duration_s, 'wall_s': run.wall_s,
                   'runtime_s': run.runtime_s, 'messages_per_s': run.messages_per_s,
                   'real_time_factor': run.real_time_factor},
        'tasks': metrics,
        'ground_truth_segments': len(segments),
        'stats': perception.stats(),
        **dict(extra or {}),
    }
    written['metrics'] = atomic_write_text(out / 'metrics.json', json.dumps(payload, indent=2, default=_json_default))
    written['summary'] = atomic_write_text(out / 'summary.txt', format_summary(metrics, run) + '\n')
    if plots:
        labels = {t: m['labels'] for t, m in metrics.items()}
        for task, m in metrics.items():
            if m['labelled_decisions']:
                acc = m['decision_accuracy']
                written[f'confusion_{task}'] = plot_confusion(
                    np.asarray(m['confusion']), m['labels'], out / f'confusion_{task}.png',
                    title=f'{task}: {m["labelled_decisions"]} scored decisions, accuracy {acc * 100:.1f} %')
        if labels:
            written['timeline'] = plot_timeline(run.results, segments, labels, out / 'timeline.png',
                                                t0_ns=run.bag_start_ns)
    return written


def result_rows(results: Iterable[TaskResult]) -> list[dict]:
    """``TaskResult.to_dict`` of each result (for tests and comparisons)."""
    return [r.to_dict() for r in results]
