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
import math
from pathlib import Path
from typing import Any, Mapping

import yaml

__all__ = ['LabelSegment', 'LabelFileError', 'load_label_file', 'read_label_text', 'LabelTopicCollector', 'LABEL_TYPES',
           'MAX_LABEL_FILE_BYTES', 'MAX_SEGMENTS', 'MAX_SECONDS']

_NS = 1_000_000_000

LABEL_TYPES = ('std_msgs/msg/String', 'vision_msgs/msg/Classification')


@dataclasses.dataclass(frozen=True)
class LabelSegment:
    """Ground truth: ``label`` holds for ``task`` over header times ``[start_ns, end_ns)`` (``source``: where from)."""

    task: str
    start_ns: int
    end_ns: int
    label: str
    source: str = dataclasses.field(default='', compare=False)   # 'file: line N', for error messages


class LabelFileError(ValueError):
    """A label file (or label topic) that cannot be used; the message names the file and line."""


_TIME_BASES = ('bag_start', 'absolute')
MAX_LABEL_FILE_BYTES = 4 * 2 ** 20
"""A label file is at most 4 MiB (about 80,000 segments)."""
MAX_SEGMENTS = 100_000
"""Most segments one label file may hold."""
MAX_SECONDS = 1e10
"""Largest time (seconds) a label file may give: about 317 years, after the Unix epoch or the bag's start."""
_MAX_NS = 2 ** 62


def read_label_text(path: str | Path, *, max_bytes: int = MAX_LABEL_FILE_BYTES) -> str:
    """
    Return the text of a label file: a regular file of at most ``max_bytes``, in UTF-8.

    Raises :class:`LabelFileError` naming the file (and the line of the first byte
    that is not UTF-8); never reads more than ``max_bytes + 1`` bytes, so ``/dev/zero``
    or a FIFO cannot exhaust memory.
    """
    path = Path(path)
    try:
        if not path.is_file():
            what = 'does not exist' if not path.exists() else 'is not a regular file'
            raise LabelFileError(f'{path}: cannot read the label file (it {what})')
        with path.open('rb') as fh:
            raw = fh.read(max_bytes + 1)
    except OSError as exc:
        raise LabelFileError(f'{path}: cannot read the label file ({exc.strerror or exc})') from None
    if len(raw) > max_bytes:
        raise LabelFileError(f'{path}: larger than {max_bytes:,} bytes; a label file is at most that '
                             f'(about {MAX_SEGMENTS:,} segments)')
    try:
        return raw.decode('utf-8-sig')
    except UnicodeDecodeError as exc:
        line = raw.count(b'\n', 0, exc.start) + 1
        raise LabelFileError(f'{path}: line {line}: not UTF-8 text (byte {raw[exc.start]:#04x} at offset '
                             f'{exc.start}); save the file as UTF-8') from None


def _to_ns(value: Any, where: str, column: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise LabelFileError(f'{where}: {column} must be a number of seconds, got {_short(value)}')
    try:
        seconds = float(value)
    except (TypeError, ValueError, OverflowError):
        raise LabelFileError(f'{where}: {column} must be a number of seconds, got {_short(value)}') from None
    if not math.isfinite(seconds):
        raise LabelFileError(f'{where}: {column} must be finite, got {_short(value)}')
    if abs(seconds) > MAX_SECONDS:
        raise LabelFileError(f'{where}: {column} = {_short(value)} s is absurd; times are seconds from the bag '
                             f'start or since the epoch, at most {MAX_SECONDS:g}')
    return int(round(seconds * _NS))


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + '...'


def _segment(row: Mapping[Any, Any], where: str, offset_ns: int) -> LabelSegment:
    expected = ('task', 'start_s', 'end_s', 'label')
    missing = [c for c in expected if row.get(c) in (None, '')]
    if missing:
        raise LabelFileError(f'{where}: missing {", ".join(missing)} (each row needs {", ".join(expected)})')
    extra = sorted(str(k) for k in row if k not in expected)
    if extra:
        raise LabelFileError(f'{where}: unknown field(s) {", ".join(extra)}; expected {", ".join(expected)}')
    for column in ('task', 'label'):
        if not isinstance(row[column], (str, int)) or isinstance(row[column], bool):
            raise LabelFileError(f'{where}: {column} must be a name, got {type(row[column]).__name__} '
                                 f'{_short(row[column])}')
        if any(ord(c) < 32 for c in str(row[column])):
            raise LabelFileError(f'{where}: {column} holds control characters: {_short(row[column])}')
    start = _to_ns(row['start_s'], where, 'start_s') + offset_ns
    end = _to_ns(row['end_s'], where, 'end_s') + offset_ns
    if end <= start:
        raise LabelFileError(f'{where}: end_s ({row["end_s"]}) must be greater than start_s ({row["start_s"]})')
    if start < 0 or end > _MAX_NS:
        raise LabelFileError(f'{where}: [{row["start_s"]}, {row["end_s"]}] s lies outside the representable times '
                             '(before 1970 or after 2116, once the time base is applied)')
    return LabelSegment(str(row['task']).strip(), start, end, str(row['label']).strip(), where)


def _check_overlaps(segments: list[LabelSegment], source: str) -> None:
    by_task = defaultdict(list)
    for s in segments:
        by_task[s.task].append(s)
    for task, segs in by_task.items():
        segs.sort(key=lambda s: s.start_ns)
        for a, b in zip(segs, segs[1:]):
            if b.start_ns < a.end_ns:
                where = f' ({a.source.rsplit(": ", 1)[-1]} and {b.source.rsplit(": ", 1)[-1]})' \
                    if a.source and b.source else ''
                raise LabelFileError(f'{source}: {task} segments overlap{where}: {a.label!r} '
                                     f'[{a.start_ns / _NS:.3f}, {a.end_ns / _NS:.3f}) and {b.label!r} '
                                     f'[{b.start_ns / _NS:.3f}, {b.end_ns / _NS:.3f}) (seconds, after the time base)')


class _LineDict(dict):
    """A YAML mapping that remembers the line it starts on."""

    line = 0


class _LineLoader(getattr(yaml, 'CSafeLoader', yaml.SafeLoader)):
    """Safe YAML loader whose mappings carry their line (``_LineDict``)."""


def _line_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> _LineDict:
    out = _LineDict(loader.construct_mapping(node, deep=True))
    out.line = node.start_mark.line + 1
    return out


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _line_mapping)


def _csv_rows(path: Path, text: str) -> tuple[list[tuple[dict, int]], str | None]:
    """``([(row, line)], time_base)`` of a CSV label file; each line parsed on its own, so lines are exact."""
    file_base = None
    header: list[str] | None = None
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith('#'):
            key, _, value = stripped[1:].partition(':')
            if key.strip() == 'time_base':
                file_base = value.strip()
            continue
        if not stripped:
            continue
        try:
            cells = [c.strip() for c in next(csv.reader([line], skipinitialspace=True))]
        except csv.Error as exc:
            raise LabelFileError(f'{path}: line {number}: not CSV ({exc})') from None
        if header is None:
            header = cells
            if sorted(header) != sorted(['task', 'start_s', 'end_s', 'label']):
                raise LabelFileError(f'{path}: line {number}: the first row must be the header '
                                     f'task,start_s,end_s,label (any order), got {",".join(header)[:80]}')
            continue
        if len(cells) != len(header):
            raise LabelFileError(f'{path}: line {number}: expected 4 comma-separated columns '
                                 f'(task,start_s,end_s,label), got {len(cells)}')
        rows.append((dict(zip(header, cells)), number))
        if len(rows) > MAX_SEGMENTS:
            raise LabelFileError(f'{path}: line {number}: more than {MAX_SEGMENTS:,} segments')
    if header is None:
        raise LabelFileError(f'{path}: the first row must be the header task,start_s,end_s,label (any order), '
                             'got nothing')
    return rows, file_base


def _yaml_rows(path: Path, text: str) -> tuple[list[tuple[dict, int]], str | None]:
    """``([(segment, line)], time_base)`` of a YAML label file (safe loading; lines from the parser)."""
    try:
        data = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a safe loader (CSafeLoader/SafeLoader)
    except yaml.YAMLError as exc:
        raise LabelFileError(f'{path}: not valid YAML: {exc}') from None
    except RecursionError:
        raise LabelFileError(f'{path}: not valid YAML: nested too deeply') from None
    file_base = None
    if isinstance(data, Mapping):
        unknown = sorted(str(k) for k in data if k not in ('time_base', 'segments'))
        if unknown:
            raise LabelFileError(f'{path}: line {getattr(data, "line", 1)}: unknown key(s) {", ".join(unknown)}; '
                                 'expected time_base and segments')
        file_base = data.get('time_base')
        if file_base is not None and not isinstance(file_base, str):
            raise LabelFileError(f'{path}: time_base must be one of {list(_TIME_BASES)}, got {_short(file_base)}')
        data = data.get('segments')
    if not isinstance(data, list):
        raise LabelFileError(f'{path}: expected a list of segments (or a mapping with segments:), '
                             f'got {type(data).__name__}')
    if len(data) > MAX_SEGMENTS:
        raise LabelFileError(f'{path}: {len(data):,} segments; at most {MAX_SEGMENTS:,}')
    rows = []
    for i, r in enumerate(data):
        if not isinstance(r, Mapping):
            raise LabelFileError(f'{path}: segment {i + 1}: expected a mapping with task, start_s, end_s, label, '
                                 f'got {type(r).__name__}')
        rows.append((dict(r), getattr(r, 'line', 0)))
    return rows, file_base


def load_label_file(path: str | Path, *, bag_start_ns: int, time_base: str | None = None) -> list[LabelSegment]:
    """
    Read a CSV (``.csv``) or YAML (``.yaml``/``.yml``) label file (format: module docstring).

    ``bag_start_ns``: recording time of the bag's first message (for ``bag_start``
    times). ``time_base`` overrides the one the file gives. Raises
    :class:`LabelFileError` naming the file and the line for anything malformed; the
    file is bounded (:data:`MAX_LABEL_FILE_BYTES`, :data:`MAX_SEGMENTS`, times within
    :data:`MAX_SECONDS`).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in ('.csv', '.yaml', '.yml'):
        raise LabelFileError(f'{path}: unknown label file type {suffix or "(none)"}; expected .csv, .yaml or .yml')
    text = read_label_text(path)
    rows, file_base = (_csv_rows if suffix == '.csv' else _yaml_rows)(path, text)
    base = time_base or file_base or 'bag_start'
    if base not in _TIME_BASES:
        raise LabelFileError(f'{path}: time_base {base!r} is not one of {list(_TIME_BASES)}')
    offset = int(bag_start_ns) if base == 'bag_start' else 0
    segments = [_segment(r, f'{path}: line {line}', offset) for r, line in rows]
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
