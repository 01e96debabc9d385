"""
Ground truth for replay evaluation: label files and label topics -> :class:`LabelSegment` s.

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
"""
from __future__ import annotations

from collections import defaultdict
import csv
import dataclasses
import io
import math
from pathlib import Path
from typing import Any, Mapping

import yaml

__all__ = ['LabelSegment', 'LabelFileError', 'load_label_file', 'LabelTopicCollector', 'LABEL_TYPES']

_NS = 1_000_000_000

LABEL_TYPES = ('std_msgs/msg/String', 'vision_msgs/msg/Classification')


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
            try:
                stamp = M.header_stamp_ns(msg)
                label = str(msg.results[0].class_id).strip() if len(msg.results) else ''
            except (M.MalformedMessage, AttributeError, TypeError, IndexError) as exc:
                raise LabelFileError(f'label topic {topic}: message at log time {log_time_ns} ns ignored ({exc})') \
                    from None
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
