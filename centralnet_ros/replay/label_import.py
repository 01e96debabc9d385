"""
Label importers: segment labels from the tools people label recordings with.

Every importer returns :class:`~centralnet_ros.replay.labels.LabelSegment` s in
**header time** (nanoseconds since the epoch, what the runtime's decisions carry) and
raises :class:`~centralnet_ros.replay.labels.LabelFileError` naming the file and
the line or element of anything malformed.

=====================  ==========================================================  ==========================
source                 format                                                      task of a segment
=====================  ==========================================================  ==========================
ELAN ``.eaf``          ``TIME_ORDER`` of ``TIME_SLOT`` s in ms, one ``TIER`` per    the tier's ``TIER_ID``
                       task holding ``ALIGNABLE_ANNOTATION`` s
Audacity label track   ``start<TAB>end<TAB>label`` in seconds, one per line         given (``TASK=FILE``)
(``.txt``)             (backslash lines: spectral selections, skipped)
CSV / YAML             :func:`~centralnet_ros.replay.labels.load_label_file`      the ``task`` column
label topic            ``/labels/<task>`` in the bag                               the topic name
=====================  ==========================================================  ==========================

**Time base (the offset rule).** Times in ELAN and Audacity files are media times:
seconds (ms) from the start of the media file, and the media files written by
``centralnet export-media`` start at the bag's start (the recording time of its
first message, what ``ros2 bag info`` calls Start and bag players show as 0). So a
media time ``t`` is header time ``bag_start_ns + t``. An ``.eaf`` written by
``export-media`` carries that ``bag_start_ns`` in its header (``PROPERTY
centralnet:bag_start_ns``), so its labels map back exactly even without the bag;
ELAN's ``TIME_ORIGIN`` of a media descriptor (ms of the media that ELAN shows as 0)
is not applied: ELAN time slots are already on the annotation time line.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence
import xml.etree.ElementTree as ET

from .labels import _check_overlaps, LabelFileError, LabelSegment, load_label_file

__all__ = ['BAG_START_PROPERTY', 'load_eaf', 'load_audacity', 'load_labels', 'label_spec', 'EAF_SUFFIXES',
           'AUDACITY_SUFFIXES']

_NS = 1_000_000_000
_MS = 1_000_000
BAG_START_PROPERTY = 'centralnet:bag_start_ns'
EAF_SUFFIXES = ('.eaf',)
AUDACITY_SUFFIXES = ('.txt', '.tsv')


def _parse_xml(path: Path) -> tuple[ET.Element, dict[int, int]]:
    """Parse ``path`` with expat into an ElementTree, remembering each element's line (``lines[id(element)]``)."""
    from xml.parsers import expat
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LabelFileError(f'{path}: cannot read the label file ({exc})') from None
    if b'<!DOCTYPE' in data or b'<!ENTITY' in data:
        raise LabelFileError(f'{path}: DOCTYPE/ENTITY declarations are not accepted in an .eaf file')
    builder = ET.TreeBuilder()
    lines: dict[int, int] = {}
    parser = expat.ParserCreate()

    def start(tag, attrs):
        lines[id(builder.start(tag, attrs))] = parser.CurrentLineNumber

    parser.StartElementHandler = start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
        root = builder.close()
    except expat.ExpatError as exc:
        raise LabelFileError(f'{path}: line {exc.lineno}, column {exc.offset}: not well-formed XML '
                             f'({expat.ErrorString(exc.code)})') from None
    return root, lines


def load_eaf(path: str | Path, *, bag_start_ns: int | None = None, tiers: Sequence[str] | None = None,
             task_of_tier: dict[str, str] | None = None) -> list[LabelSegment]:
    """
    Read an ELAN ``.eaf`` file: one tier per task, annotations between time slots in ms.

    ``bag_start_ns``: the bag's start (media time 0), required unless the file carries
    the ``centralnet:bag_start_ns`` property (then the file's value is used; a
    different ``bag_start_ns`` is an error, the media was exported from another bag).
    ``tiers``: tiers to read (default: every tier with annotations); ``task_of_tier``
    renames tiers to tasks. Reference annotations (``REF_ANNOTATION``, symbolic
    subdivisions) carry no time of their own and are skipped. Annotations with an
    empty value are skipped (ELAN creates them with a click). Raises
    :class:`LabelFileError` naming the file, line and element.
    """
    path = Path(path)
    root, lines = _parse_xml(path)

    def where(elem: ET.Element, what: str) -> str:
        return f'{path}: line {lines.get(id(elem), "?")}: {what}'

    if root.tag != 'ANNOTATION_DOCUMENT':
        raise LabelFileError(where(root, f'root element is <{root.tag}>, expected <ANNOTATION_DOCUMENT> (ELAN .eaf)'))
    start = None
    for prop in root.iter('PROPERTY'):
        if prop.get('NAME') == BAG_START_PROPERTY:
            try:
                start = int((prop.text or '').strip())
            except ValueError:
                raise LabelFileError(where(prop, f'PROPERTY {BAG_START_PROPERTY} must be an integer (ns), '
                                                 f'got {prop.text!r}')) from None
    if start is not None and bag_start_ns is not None and int(bag_start_ns) != start:
        raise LabelFileError(f'{path}: exported from a bag starting at {start} ns, but this bag starts at '
                             f'{int(bag_start_ns)} ns: the labels belong to another recording')
    if start is None:
        if bag_start_ns is None:
            raise LabelFileError(f'{path}: no {BAG_START_PROPERTY} property, so the bag start must be given '
                                 f'(media time 0 = the bag start)')
        start = int(bag_start_ns)
    order = root.find('TIME_ORDER')
    if order is None:
        raise LabelFileError(where(root, 'no <TIME_ORDER> element (the time slots of the annotations)'))
    slots: dict[str, int | None] = {}
    for slot in order:
        if slot.tag != 'TIME_SLOT':
            raise LabelFileError(where(slot, f'unexpected <{slot.tag}> in <TIME_ORDER>; expected <TIME_SLOT>'))
        sid = slot.get('TIME_SLOT_ID')
        if not sid:
            raise LabelFileError(where(slot, '<TIME_SLOT> without TIME_SLOT_ID'))
        if sid in slots:
            raise LabelFileError(where(slot, f'TIME_SLOT_ID {sid!r} defined twice'))
        value = slot.get('TIME_VALUE')
        if value is None:
            slots[sid] = None                         # an unaligned slot (ELAN allows them inside chains)
            continue
        try:
            ms = int(value)
        except ValueError:
            raise LabelFileError(where(slot, f'TIME_SLOT {sid}: TIME_VALUE must be whole milliseconds, '
                                             f'got {value!r}')) from None
        if ms < 0:
            raise LabelFileError(where(slot, f'TIME_SLOT {sid}: negative TIME_VALUE {ms}'))
        slots[sid] = ms
    wanted = set(tiers) if tiers else None
    rename = dict(task_of_tier or {})
    found_tiers = set()
    segments = []
    for tier in root.iter('TIER'):
        tid = tier.get('TIER_ID')
        if not tid:
            raise LabelFileError(where(tier, '<TIER> without TIER_ID'))
        found_tiers.add(tid)
        if wanted is not None and tid not in wanted:
            continue
        task = rename.get(tid, tid)
        for ann in tier.iter('ALIGNABLE_ANNOTATION'):
            aid = ann.get('ANNOTATION_ID', '?')
            what = f'tier {tid!r}, annotation {aid}'
            refs = []
            for key in ('TIME_SLOT_REF1', 'TIME_SLOT_REF2'):
                ref = ann.get(key)
                if ref is None:
                    raise LabelFileError(where(ann, f'{what}: missing {key}'))
                if ref not in slots:
                    raise LabelFileError(where(ann, f'{what}: {key} {ref!r} is not a TIME_SLOT of <TIME_ORDER>'))
                if slots[ref] is None:
                    raise LabelFileError(where(ann, f'{what}: {key} {ref!r} has no TIME_VALUE (unaligned); '
                                                    f'align the annotation in ELAN'))
                refs.append(slots[ref])
            value = ann.find('ANNOTATION_VALUE')
            if value is None:
                raise LabelFileError(where(ann, f'{what}: no <ANNOTATION_VALUE>'))
            label = (value.text or '').strip()
            if not label:
                continue
            t0, t1 = refs
            if t1 <= t0:
                raise LabelFileError(where(ann, f'{what} ({label!r}): ends at {t1} ms, not after its start {t0} ms'))
            segments.append(LabelSegment(task, start + t0 * _MS, start + t1 * _MS, label))
    if wanted is not None:
        absent = sorted(wanted - found_tiers)
        if absent:
            raise LabelFileError(f'{path}: no tier {", ".join(map(repr, absent))}; tiers: '
                                 f'{", ".join(sorted(found_tiers)) or "none"}')
    _check_overlaps(segments, str(path))
    return segments


def load_audacity(path: str | Path, *, task: str, bag_start_ns: int) -> list[LabelSegment]:
    """
    Read an Audacity label track export (``File > Export > Labels``): ``start<TAB>end<TAB>label`` per line.

    Times are seconds from the media start (= ``bag_start_ns``, see the module
    docstring); lines starting with a backslash (spectral selection) are skipped, as are
    blank lines. A point label (``start == end``) is an error: segments need a length.
    Raises :class:`LabelFileError` naming the file and line.
    """
    path = Path(path)
    if not task:
        raise LabelFileError(f'{path}: an Audacity label track names no task: give it as TASK={path}')
    try:
        text = path.read_text(encoding='utf-8')
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelFileError(f'{path}: cannot read the label file ({exc})') from None
    segments = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith('\\'):
            continue
        cells = line.split('\t')
        if len(cells) != 3:
            raise LabelFileError(f'{path}: line {n}: expected start<TAB>end<TAB>label (3 tab-separated fields), '
                                 f'got {len(cells)}: {line[:60]!r}')
        times = []
        for name, cell in zip(('start', 'end'), cells[:2]):
            try:
                seconds = float(cell.replace(',', '.'))          # Audacity writes the locale's decimal mark
            except ValueError:
                raise LabelFileError(f'{path}: line {n}: {name} must be a number of seconds, got {cell!r}') from None
            if not (seconds >= 0 and seconds < float('inf')):
                raise LabelFileError(f'{path}: line {n}: {name} must be a finite time >= 0, got {cell!r}')
            times.append(int(round(seconds * _NS)))
        label = cells[2].strip()
        if not label:
            raise LabelFileError(f'{path}: line {n}: empty label')
        if times[1] <= times[0]:
            raise LabelFileError(f'{path}: line {n}: end {cells[1]} is not after start {cells[0]} '
                                 f'(point labels have no extent; drag a region in Audacity)')
        segments.append(LabelSegment(task, int(bag_start_ns) + times[0], int(bag_start_ns) + times[1], label))
    _check_overlaps(segments, str(path))
    return segments


def label_spec(spec: str) -> tuple[str | None, Path]:
    """Split a ``[TASK=]FILE`` command-line value into ``(task or None, path)``."""
    task, sep, rest = spec.partition('=')
    if sep and task and '/' not in task and not Path(spec).exists():
        return task.strip(), Path(rest)
    return None, Path(spec)


def load_labels(specs: Iterable[str | Path], *, bag_start_ns: int, time_base: str | None = None) -> list[LabelSegment]:
    """
    Load every ``[TASK=]FILE`` in ``specs`` by its suffix and merge them (segments of one task must not overlap).

    ``.eaf`` (ELAN; ``TASK=`` reads only that tier), ``.txt``/``.tsv`` (Audacity;
    ``TASK=`` required), ``.csv``/``.yaml``/``.yml`` (the replay label files;
    ``time_base`` as in :func:`~centralnet_ros.replay.labels.load_label_file`).
    """
    segments: list[LabelSegment] = []
    for spec in specs:
        task, path = label_spec(str(spec))
        suffix = path.suffix.lower()
        if suffix in EAF_SUFFIXES:
            segments += load_eaf(path, bag_start_ns=bag_start_ns, tiers=[task] if task else None)
        elif suffix in AUDACITY_SUFFIXES:
            segments += load_audacity(path, task=task or '', bag_start_ns=bag_start_ns)
        elif suffix in ('.csv', '.yaml', '.yml'):
            got = load_label_file(path, bag_start_ns=bag_start_ns, time_base=time_base)
            segments += [s for s in got if task is None or s.task == task]
        else:
            raise LabelFileError(f'{path}: unknown label file type {suffix or "(none)"}; expected .eaf (ELAN), '
                                 f'.txt (Audacity label track), .csv or .yaml')
    _check_overlaps(segments, ', '.join(str(s) for s in specs))
    return segments
