"""
MSRC-12 Kinect gesture dataset (Fothergill et al., CHI 2012), read from its own files.

Layout under the dataset folder (``<data root>/msrc12``)::

    data/P{A}_{B}_{C}[A]_p{D}.csv.xz     one Kinect frame per line: timestamp, then 20 joints
                                         x (x, y, z, confidence), xz-compressed
    data/P{A}_{B}_{C}[A]_p{D}.tagstream  header 'XQPCTick;Tag', then 'tick;G{n} name' lines
    MSRC_12_gesture_dataset.pdf          the dataset's description

File names (MSRC_12_gesture_dataset.pdf, "File Naming Convention"): ``A`` and ``B``
encode the instruction group, ``C`` the gesture (1-12, repeated in the tagstream),
``D`` the person.  A letter ``A`` marks a recording made with two instructions (the
PDF says "after #B"; in the files it follows ``C``, e.g. ``P1_1_12A_p06``).  The
PDF's table maps (group, gesture, one or two instructions) to the instruction
modality: video, images, text, video + text, images + text (:data:`INSTRUCTION_TABLE`).
Case varies (``p2_1_2A_p12.tagstream`` beside ``P2_1_2A_p12.csv.xz``), so names are
matched case-insensitively.

Time: the CSV timestamps are microseconds (consecutive frames are ~33,000 apart; the
PDF gives a 30 Hz sample rate); a tagstream tick is a QueryPerformanceCounter value
at 49.875 MHz, converted to the CSV's clock with the dataset's integer formula
``(tick * 1000 + 49875 // 2) // 49875`` (:func:`tick_to_timestamp`).

Leading all-zero frames (no skeleton tracked yet) are dropped when reading; all-zero
frames later in a recording (tracking lost) are kept in :class:`Sequence` but never
enter a window.

Windows (:func:`gesture_windows`): a gesture instance is the skeleton on a uniform
``frame_rate`` grid of ``round((before_s + after_s) * frame_rate)`` frames ending at
``action point + after_s`` (default 60 frames, the 2 s from 1.5 s before to 0.5 s
after the point at which the gesture should be detected), linearly interpolated
between the recorded frames by timestamp.  "No gesture" windows have the same shape
and are taken every ``none_stride_s`` along each recording at reference times at least
``none_min_distance_s`` (default 2.5 s, so the two kinds of window are at least 0.5 s
apart) from every action point of that recording.  A window that is not covered by
tracked frames (it reaches past the recording, or spans a gap longer than
``max_gap_s``, e.g. lost tracking) is dropped and counted.

Parsing the 236 ``.csv.xz`` files takes several seconds, so :func:`load_sequences`
caches the parsed arrays as one ``.npz`` (no pickle) under
:func:`centralnet_ros.paths.cache_dir`, keyed by the files' names, sizes and
modification times.
"""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
import re
import time
from typing import Iterable
import warnings

from centralnet_ros import paths
from centralnet_ros.config import atomic_savez
from centralnet_ros.data.registry import DataRootError, DatasetSummary
from centralnet_ros.features import skeleton as skel
import numpy as np

LAYOUT = ('<root>/data/P{A}_{B}_{C}[A]_p{D}.csv.xz (timestamp + 20 joints x (x, y, z, confidence) per line) '
          'and <root>/data/P{A}_{B}_{C}[A]_p{D}.tagstream (XQPCTick;Tag lines)')

GESTURE_CODES: tuple[str, ...] = tuple(f'G{i}' for i in range(1, 13))
GESTURES: tuple[str, ...] = (
    'lift_outstretched_arms', 'duck', 'push_right', 'goggles', 'wind_it_up', 'shoot',
    'bow', 'throw', 'had_enough', 'change_weapon', 'beat_both', 'kick',
)
NONE_CLASS = 'none'
CLASS_NAMES: tuple[str, ...] = GESTURES + (NONE_CLASS,)    # label 0..11 = G1..G12, 12 = no gesture
NONE_LABEL = len(GESTURES)
ICONIC: tuple[int, ...] = (2, 4, 6, 8, 10, 12)             # gesture numbers (PDF: iconic gestures)
METAPHORIC: tuple[int, ...] = (1, 3, 5, 7, 9, 11)

NONE_MIN_DISTANCE_S = 2.5         # default distance of a "no gesture" reference from every action point
NOMINAL_FRAME_RATE = 30.0          # Hz (PDF); measured: median interval ~33.1 ms, see summarize()
TIMESTAMP_UNIT_S = 1e-6            # CSV timestamps are microseconds
TICK_RATE_HZ = 49_875_000          # XQPCTick clock
NUM_JOINTS = skel.NUM_KINECT_V1_JOINTS
VALUES_PER_JOINT = 4               # x, y, z, confidence
TAGSTREAM_HEADER = 'XQPCTick;Tag'

INSTRUCTIONS: tuple[str, ...] = ('video', 'images', 'text', 'video+text', 'images+text')
# MSRC_12_gesture_dataset.pdf, the table under "File Naming Convention": for each gesture,
# the instruction groups P{A}_{B} of the columns C1=Video, C2=Images, C3=Written
# description, C4=Video + written description, C5=Images + written description.
INSTRUCTION_TABLE: dict[int, tuple[tuple[str, str], ...]] = {
    1: (('P1_1', 'P1_2'), ('P2_1', 'P2_2'), ('P3_1', 'P3_2'), ('P1_1', 'P3_1'), ('P2_1', 'P3_2')),
    2: (('P3_1', 'P3_2'), ('P1_1', 'P1_2'), ('P2_1', 'P2_2'), ('P3_1', 'P2_1'), ('P1_1', 'P2_2')),
    3: (('P2_1', 'P2_2'), ('P3_1', 'P3_2'), ('P1_1', 'P1_2'), ('P2_1', 'P1_1'), ('P3_1', 'P1_2')),
    4: (('P1_1', 'P1_2'), ('P2_1', 'P2_2'), ('P3_1', 'P3_2'), ('P1_2', 'P3_2'), ('P2_2', 'P3_1')),
    5: (('P3_1', 'P3_2'), ('P1_1', 'P1_2'), ('P2_1', 'P2_2'), ('P3_2', 'P2_2'), ('P1_2', 'P2_1')),
    6: (('P2_1', 'P2_2'), ('P3_1', 'P3_2'), ('P1_1', 'P1_2'), ('P2_2', 'P1_2'), ('P3_2', 'P1_1')),
    7: (('P1_1', 'P1_2'), ('P2_1', 'P2_2'), ('P3_1', 'P3_2'), ('P1_1', 'P3_1'), ('P2_1', 'P3_2')),
    8: (('P3_1', 'P3_2'), ('P1_1', 'P1_2'), ('P2_1', 'P2_2'), ('P3_1', 'P2_1'), ('P1_1', 'P2_2')),
    9: (('P2_1', 'P2_2'), ('P3_1', 'P3_2'), ('P1_1', 'P1_2'), ('P2_1', 'P1_1'), ('P3_1', 'P1_2')),
    10: (('P1_1', 'P1_2'), ('P2_1', 'P2_2'), ('P3_1', 'P3_2'), ('P1_2', 'P3_2'), ('P2_2', 'P3_1')),
    11: (('P3_1', 'P3_2'), ('P1_1', 'P1_2'), ('P2_1', 'P2_2'), ('P3_2', 'P2_2'), ('P1_2', 'P2_1')),
    12: (('P2_1', 'P2_2'), ('P3_1', 'P3_2'), ('P1_1', 'P1_2'), ('P2_2', 'P1_2'), ('P3_2', 'P1_1')),
}

_NAME = re.compile(r'^P(\d)_(\d)_(\d{1,2})(A?)_P(\d{1,2})$', re.IGNORECASE)
_TAG = re.compile(r'^(\d+);\s*G(\d{1,2})\b')
_CACHE_VERSION = 1


# --------------------------------------------------------------------------- names, ticks

@dataclasses.dataclass(frozen=True)
class SequenceInfo:
    """The fields of a recording's file name ``P{group}_{subgroup}_{gesture}[A]_p{person}``."""

    name: str                # the stem as on disk, e.g. 'P1_1_12A_p06'
    group: int               # A: instruction group 1-3
    subgroup: int            # B: 1-2
    gesture: int             # C: gesture number 1-12 (G1..G12)
    two_instructions: bool   # the 'A' suffix
    person: int              # D: person 1-30

    @property
    def instruction(self) -> str:
        """Return the instruction modality from the PDF's table ('video', ..., 'images+text'), or 'unknown'."""
        key = f'P{self.group}_{self.subgroup}'
        columns = INSTRUCTION_TABLE.get(self.gesture, ())
        candidates = range(3, 5) if self.two_instructions else range(0, 3)
        for col in candidates:
            if col < len(columns) and key in columns[col]:
                return INSTRUCTIONS[col]
        return 'unknown'


def parse_name(name: str) -> SequenceInfo:
    """Parse ``P1_1_12A_p06`` (a stem, or a name ending in ``.csv.xz`` / ``.tagstream``)."""
    stem = Path(name).name
    for suffix in ('.csv.xz', '.tagstream', '.csv'):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    m = _NAME.match(stem)
    if m is None:
        raise ValueError(f'{name!r}: not an MSRC-12 file name; expected P{{A}}_{{B}}_{{C}}[A]_p{{D}} '
                         f'(e.g. P1_1_12A_p06)')
    gesture = int(m.group(3))
    if not 1 <= gesture <= 12:
        raise ValueError(f'{name!r}: gesture number {gesture} outside 1-12')
    return SequenceInfo(name=stem, group=int(m.group(1)), subgroup=int(m.group(2)), gesture=gesture,
                        two_instructions=bool(m.group(4)), person=int(m.group(5)))


def tick_to_timestamp(tick: int | np.ndarray) -> int | np.ndarray:
    """Convert XQPCTick -> CSV timestamp (microseconds): ``(tick * 1000 + 49875 // 2) // 49875``, in integers."""
    if isinstance(tick, np.ndarray):
        t = tick.astype(np.int64)
        return (t * 1000 + 49875 // 2) // 49875
    return (int(tick) * 1000 + 49875 // 2) // 49875


def read_tagstream(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """
    Read the action points of a ``.tagstream``: ticks ``(N,)`` int64 and gesture numbers ``(N,)`` int64 (1-12).

    The first line must be ``XQPCTick;Tag``; every other non-blank line ``tick;G{n} name``.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding='ascii')
    except UnicodeDecodeError as exc:
        raise ValueError(f'{path}: not an ASCII tagstream ({exc})') from exc
    lines = text.splitlines()
    if not lines or lines[0].strip() != TAGSTREAM_HEADER:
        raise ValueError(f'{path}: first line must be {TAGSTREAM_HEADER!r}, got {lines[0] if lines else ""!r}')
    ticks, gestures = [], []
    for number, line in enumerate(lines[1:], start=2):
        line = line.strip()
        if not line:
            continue
        m = _TAG.match(line)
        if m is None or not 1 <= int(m.group(2)) <= 12:
            raise ValueError(f'{path}, line {number}: expected "tick;G<1-12> name", got {line!r}')
        ticks.append(int(m.group(1)))
        gestures.append(int(m.group(2)))
    return np.asarray(ticks, dtype=np.int64), np.asarray(gestures, dtype=np.int64)


def read_skeleton_csv(path: str | Path) -> tuple[np.ndarray, np.ndarray, int]:
    """
    One ``.csv.xz`` (read by numpy.loadtxt straight from the xz file).

    Returns timestamps ``(T,)`` int64 microseconds, joints ``(T, 20, 4)`` float32
    (x, y, z in metres, confidence) and the number of leading all-zero frames dropped.
    """
    path = Path(path)
    try:
        raw = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f'{path}: cannot be read as MSRC-12 skeleton CSV ({exc})') from exc
    width = 1 + NUM_JOINTS * VALUES_PER_JOINT
    if raw.shape[1] != width:
        raise ValueError(f'{path}: {raw.shape[1]} values per line, expected {width} '
                         f'(timestamp + {NUM_JOINTS} joints x (x, y, z, confidence))')
    joints = raw[:, 1:]
    tracked = np.any(joints != 0, axis=1)
    if not tracked.any():
        raise ValueError(f'{path}: every frame is all zeros (no skeleton tracked)')
    first = int(np.argmax(tracked))
    stamps = raw[first:, 0]
    if not np.all(stamps == np.round(stamps)) or np.any(np.diff(stamps) <= 0):
        raise ValueError(f'{path}: timestamps must be integers increasing strictly')
    return (stamps.astype(np.int64),
            joints[first:].reshape(-1, NUM_JOINTS, VALUES_PER_JOINT).astype(np.float32), first)


# --------------------------------------------------------------------------- sequences

@dataclasses.dataclass
class Sequence:
    """One recording: frames from the first tracked one, and its action points."""

    info: SequenceInfo
    timestamps: np.ndarray        # (T,) int64, microseconds
    joints: np.ndarray            # (T, 20, 4) float32: x, y, z (m), confidence
    action_times: np.ndarray      # (N,) int64, microseconds (CSV clock)
    action_gestures: np.ndarray   # (N,) int64, 1..12
    leading_dropped: int = 0      # all-zero frames dropped at the start

    @property
    def tracked(self) -> np.ndarray:
        """(T,) bool: the frame holds a skeleton (not all zeros)."""
        return np.any(self.joints != 0, axis=(1, 2))

    @property
    def positions(self) -> np.ndarray:
        """(T, 20, 3) float32 joint positions in metres."""
        return self.joints[..., :3]


def list_files(root: str | Path, persons: Iterable[int | str] | None = None) -> list[tuple[Path, Path]]:
    """
    ``(csv.xz, tagstream)`` path pairs, sorted by name, optionally of some persons only.

    ``persons``: person numbers (``6``) or names (``'p06'``).  Every csv.xz needs a
    tagstream of the same name (compared case-insensitively).
    """
    root = Path(root)
    data = root / 'data'
    if not data.is_dir():
        raise DataRootError(f'MSRC-12 folder {data} does not exist; expected layout: {LAYOUT}')
    wanted = None if persons is None else {_person_number(p) for p in persons}
    tags = {p.name.lower(): p for p in data.iterdir() if p.name.lower().endswith('.tagstream')}
    pairs = []
    for csv in data.iterdir():
        if not csv.name.lower().endswith('.csv.xz'):
            continue
        info = parse_name(csv.name)
        if wanted is not None and info.person not in wanted:
            continue
        tag = tags.get(csv.name[:-len('.csv.xz')].lower() + '.tagstream')
        if tag is None:
            raise DataRootError(f'{csv}: no matching {info.name}.tagstream beside it; expected layout: {LAYOUT}')
        pairs.append((csv, tag))
    if not pairs:
        who = '' if wanted is None else f' of persons {sorted(wanted)}'
        raise DataRootError(f'no MSRC-12 recordings{who} in {data}; expected layout: {LAYOUT}')
    pairs.sort(key=lambda p: p[0].name.lower())
    return pairs


def _person_number(p: int | str) -> int:
    if isinstance(p, str):
        s = p.strip().lower()
        s = s[1:] if s.startswith('p') else s
        if not s.isdigit():
            raise ValueError(f'person must be a number or "pNN", got {p!r}')
        return int(s)
    return int(p)


def read_sequence(csv_path: str | Path, tagstream_path: str | Path) -> Sequence:
    """Read one recording (its ``.csv.xz`` and ``.tagstream``); checks that the tags match the name."""
    csv_path, tagstream_path = Path(csv_path), Path(tagstream_path)
    info = parse_name(csv_path.name)
    stamps, joints, dropped = read_skeleton_csv(csv_path)
    ticks, gestures = read_tagstream(tagstream_path)
    if gestures.size and np.any(gestures != info.gesture):
        raise ValueError(f'{tagstream_path}: tags {sorted(set(gestures.tolist()))} do not match the gesture '
                         f'G{info.gesture} of the file name')
    return Sequence(info=info, timestamps=stamps, joints=joints, action_times=tick_to_timestamp(ticks),
                    action_gestures=gestures, leading_dropped=dropped)


def cache_path(root: str | Path, persons: Iterable[int | str] | None = None,
               cache_dir: str | Path | None = None) -> Path:
    """Return the cache file :func:`load_sequences` uses for these files (it changes when a file does)."""
    h = hashlib.sha256(f'msrc12-v{_CACHE_VERSION}'.encode())
    for csv, tag in list_files(root, persons):
        for p in (csv, tag):
            st = p.stat()
            h.update(f'{p.name}\0{st.st_size}\0{st.st_mtime_ns}\n'.encode())
    return paths.cache_dir(cache_dir) / 'msrc12' / f'sequences_{h.hexdigest()[:20]}.npz'


def load_sequences(root: str | Path, *, persons: Iterable[int | str] | None = None, cache: bool = True,
                   cache_dir: str | Path | None = None) -> list[Sequence]:
    """
    Every recording under ``root`` (the ``msrc12`` folder), sorted by file name.

    With ``cache=True`` the parsed arrays are read from / written to
    :func:`cache_path` (an atomic ``np.savez``, loaded without pickle).
    """
    persons = None if persons is None else list(persons)
    pairs = list_files(root, persons)
    path = cache_path(root, persons, cache_dir) if cache else None
    if path is not None and path.is_file():
        try:
            return _read_cache(path)
        except (ValueError, KeyError, OSError) as exc:
            raise ValueError(f'{path}: unreadable MSRC-12 cache ({exc}); delete it to rebuild') from exc
    sequences = [read_sequence(csv, tag) for csv, tag in pairs]
    if path is not None:
        try:
            _write_cache(path, sequences)
        except OSError as exc:          # a read-only cache folder must not stop reading the data
            warnings.warn(f'MSRC-12: could not write the cache {path} ({exc})', RuntimeWarning, stacklevel=2)
    return sequences


def _write_cache(path: Path, sequences: list[Sequence]) -> None:
    frame_counts = [len(s.timestamps) for s in sequences]
    action_counts = [len(s.action_times) for s in sequences]
    arrays = {
        'version': np.asarray(_CACHE_VERSION, dtype=np.int64),
        'names': np.asarray([s.info.name for s in sequences], dtype=np.str_),
        'frame_offsets': np.concatenate([[0], np.cumsum(frame_counts)]).astype(np.int64),
        'timestamps': np.concatenate([s.timestamps for s in sequences]).astype(np.int64),
        'joints': np.concatenate([s.joints for s in sequences]).astype(np.float32),
        'action_offsets': np.concatenate([[0], np.cumsum(action_counts)]).astype(np.int64),
        'action_times': np.concatenate([s.action_times for s in sequences]).astype(np.int64),
        'action_gestures': np.concatenate([s.action_gestures for s in sequences]).astype(np.int64),
        'leading_dropped': np.asarray([s.leading_dropped for s in sequences], dtype=np.int64),
    }
    atomic_savez(path, **arrays)


def _read_cache(path: Path) -> list[Sequence]:
    with np.load(path, allow_pickle=False) as z:
        if int(z['version']) != _CACHE_VERSION:
            raise ValueError(f'cache version {int(z["version"])}, expected {_CACHE_VERSION}')
        names = z['names']
        fo, ao = z['frame_offsets'], z['action_offsets']
        stamps, joints = z['timestamps'], z['joints']
        atimes, agest, dropped = z['action_times'], z['action_gestures'], z['leading_dropped']
    out = []
    for i, name in enumerate(names):
        out.append(Sequence(info=parse_name(str(name)), timestamps=stamps[fo[i]:fo[i + 1]],
                            joints=joints[fo[i]:fo[i + 1]], action_times=atimes[ao[i]:ao[i + 1]],
                            action_gestures=agest[ao[i]:ao[i + 1]], leading_dropped=int(dropped[i])))
    return out


# --------------------------------------------------------------------------- windows

@dataclasses.dataclass
class GestureWindows:
    """Fixed-length skeleton windows: gesture instances and "no gesture" windows."""

    joints: np.ndarray            # (N, T, 20, 3) float32 joint positions (m) on a uniform grid
    labels: np.ndarray            # (N,) int64 index into class_names (NONE_LABEL = no gesture)
    persons: np.ndarray           # (N,) int64 person number
    sequences: np.ndarray         # (N,) int64 index into the sequence list given
    reference_times: np.ndarray   # (N,) int64 us: the action point (or the "none" reference time)
    frame_rate: float             # Hz of the grid
    before_s: float
    after_s: float
    class_names: tuple[str, ...] = CLASS_NAMES
    dropped: dict[str, int] = dataclasses.field(default_factory=dict)   # reason -> instances dropped

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def counts(self) -> dict[str, int]:
        """Windows per class name."""
        return {name: int(np.sum(self.labels == i)) for i, name in enumerate(self.class_names)}

    def feature_maps(self, **kwargs) -> np.ndarray:
        """:func:`centralnet_ros.features.skeleton.skeleton_feature_map` of every window: ``(N, C, T, 20)``."""
        if len(self) == 0:
            raise ValueError('no windows')
        return np.stack([skel.skeleton_feature_map(w, **kwargs) for w in self.joints])


def window_times(reference_time: int | float, *, before_s: float, after_s: float,
                 frame_rate: float) -> np.ndarray:
    """
    Return the grid of a window: ``round((before_s + after_s) * frame_rate)`` times (us).

    Spaced ``1 / frame_rate`` apart and ending at ``reference_time + after_s``.
    """
    n = int(round((before_s + after_s) * frame_rate))
    if n < 1:
        raise ValueError(f'window of {before_s} + {after_s} s at {frame_rate} Hz has no frame')
    k = np.arange(n, dtype=np.float64)
    return reference_time + (after_s - (n - 1 - k) / frame_rate) / TIMESTAMP_UNIT_S


def _window(t: np.ndarray, x: np.ndarray, q: np.ndarray, max_gap_us: float) -> tuple[np.ndarray | None, str]:
    """Interpolate tracked frames (t, x) at q, or say why not."""
    if t.size < 2 or q[0] < t[0] or q[-1] > t[-1]:
        return None, 'outside_recording'
    lo = max(int(np.searchsorted(t, q[0], side='right')) - 1, 0)
    hi = min(int(np.searchsorted(t, q[-1], side='left')), t.size - 1)
    if hi > lo and np.max(np.diff(t[lo:hi + 1])) > max_gap_us:
        return None, 'gap_or_lost_tracking'
    return skel.interpolate_frames(x, timestamps=t, query_times=q), ''


def gesture_windows(sequences: list[Sequence], *, before_s: float = 1.5, after_s: float = 0.5,
                    frame_rate: float = NOMINAL_FRAME_RATE, include_none: bool = True,
                    none_min_distance_s: float = NONE_MIN_DISTANCE_S, none_stride_s: float = 1.0,
                    max_gap_s: float = 0.2) -> GestureWindows:
    """
    Cut gesture instances around their action points, plus "no gesture" windows.

    Every window holds ``round((before_s + after_s) * frame_rate)`` frames (default 60)
    ending at ``reference + after_s``.  Instances use the action points as references;
    "no gesture" references lie every ``none_stride_s`` from ``before_s`` after the
    first frame, at least ``none_min_distance_s`` from every action point of the same
    recording.  Only tracked (non-zero) frames are interpolated; a window reaching past
    the recording or over a gap above ``max_gap_s`` is dropped (counted in ``dropped``).
    """
    if before_s < 0 or after_s < 0 or before_s + after_s <= 0:
        raise ValueError(f'need before_s, after_s >= 0 with a positive sum, got {before_s}, {after_s}')
    if none_stride_s <= 0 or frame_rate <= 0 or max_gap_s <= 0:
        raise ValueError('none_stride_s, frame_rate and max_gap_s must be positive')
    if include_none and none_min_distance_s < 0:
        raise ValueError(f'none_min_distance_s must be >= 0, got {none_min_distance_s}')
    n_frames = int(round((before_s + after_s) * frame_rate))
    max_gap_us = max_gap_s / TIMESTAMP_UNIT_S
    joints, labels, persons, seq_ids, refs = [], [], [], [], []
    dropped: dict[str, int] = {}
    for i, seq in enumerate(sequences):
        tracked = seq.tracked
        t = seq.timestamps[tracked].astype(np.float64)
        x = seq.positions[tracked]
        for ref, gesture in zip(seq.action_times, seq.action_gestures):
            q = window_times(ref, before_s=before_s, after_s=after_s, frame_rate=frame_rate)
            w, why = _window(t, x, q, max_gap_us)
            if w is None:
                dropped[why] = dropped.get(why, 0) + 1
                continue
            joints.append(w)
            labels.append(int(gesture) - 1)
            persons.append(seq.info.person)
            seq_ids.append(i)
            refs.append(int(ref))
        if not include_none or t.size < 2:
            continue
        stride_us = none_stride_s / TIMESTAMP_UNIT_S
        candidates = np.arange(t[0] + before_s / TIMESTAMP_UNIT_S, t[-1] - after_s / TIMESTAMP_UNIT_S + 1,
                               stride_us)
        if seq.action_times.size:
            dist = np.min(np.abs(candidates[:, None] - seq.action_times[None, :].astype(np.float64)), axis=1)
            candidates = candidates[dist >= none_min_distance_s / TIMESTAMP_UNIT_S]
        for ref in candidates:
            q = window_times(ref, before_s=before_s, after_s=after_s, frame_rate=frame_rate)
            w, _ = _window(t, x, q, max_gap_us)
            if w is None:
                continue
            joints.append(w)
            labels.append(NONE_LABEL)
            persons.append(seq.info.person)
            seq_ids.append(i)
            refs.append(int(round(ref)))
    arr = (np.stack(joints).astype(np.float32) if joints
           else np.zeros((0, n_frames, NUM_JOINTS, 3), np.float32))
    return GestureWindows(joints=arr, labels=np.asarray(labels, np.int64), persons=np.asarray(persons, np.int64),
                          sequences=np.asarray(seq_ids, np.int64), reference_times=np.asarray(refs, np.int64),
                          frame_rate=float(frame_rate), before_s=float(before_s), after_s=float(after_s),
                          dropped=dropped)


def split_by_persons(persons: np.ndarray, test_persons: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
    """Leave-persons-out split: indices ``(train, test)`` of samples whose person is not / is in ``test_persons``."""
    persons = np.asarray(persons)
    test = np.isin(persons, np.asarray(sorted({int(p) for p in test_persons}), dtype=persons.dtype))
    return np.flatnonzero(~test), np.flatnonzero(test)


def frame_rate_stats(sequences: list[Sequence]) -> dict[str, float]:
    """Measured frame timing over tracked spans: median interval (ms), its rate, and frames / duration."""
    intervals = np.concatenate([np.diff(s.timestamps) for s in sequences]) * TIMESTAMP_UNIT_S
    frames = sum(len(s.timestamps) - 1 for s in sequences)
    duration = sum(float(s.timestamps[-1] - s.timestamps[0]) for s in sequences) * TIMESTAMP_UNIT_S
    return {'median_interval_ms': float(np.median(intervals) * 1e3),
            'median_rate_hz': float(1.0 / np.median(intervals)),
            'mean_rate_hz': frames / duration}


# --------------------------------------------------------------------------- summary

def summarize(root: Path) -> DatasetSummary:
    """Read every recording (through the cache) and count sequences, action points and windows per class."""
    path = cache_path(root)
    cached = path.is_file()
    t0 = time.perf_counter()
    sequences = load_sequences(root)
    elapsed = time.perf_counter() - t0
    windows = gesture_windows(sequences)
    counts: dict[str, dict[str, int]] = {'sequences': {}, 'instances': {}, 'windows': {}}
    for s in sequences:
        name = GESTURES[s.info.gesture - 1]
        counts['sequences'][name] = counts['sequences'].get(name, 0) + 1
        for g in s.action_gestures:
            gname = GESTURES[int(g) - 1]
            counts['instances'][gname] = counts['instances'].get(gname, 0) + 1
    counts['windows'] = {k: v for k, v in windows.counts().items() if v}
    persons = sorted({s.info.person for s in sequences})
    per_person = {p: sum(1 for s in sequences if s.info.person == p) for p in persons}
    rate = frame_rate_stats(sequences)
    frames = sum(len(s.timestamps) for s in sequences)
    lost = sum(int((~s.tracked).sum()) for s in sequences)
    instructions: dict[str, int] = {}
    for s in sequences:
        instructions[s.info.instruction] = instructions.get(s.info.instruction, 0) + 1
    return DatasetSummary(
        name='msrc12', root=str(root), counts=counts,
        modalities={'skeleton': f'(T, {NUM_JOINTS}, 4) x, y, z (m) + confidence, Kinect v1 joint order; '
                                f'windows (N, {windows.joints.shape[1]}, {NUM_JOINTS}, 3) at '
                                f'{windows.frame_rate:g} Hz'},
        notes=['persons: ' + ', '.join(f'p{p:02d} ({n} seq)' for p, n in per_person.items()),
               f'{frames} frames after dropping leading all-zero ones; {lost} later frames with tracking lost',
               f'frame timing: median interval {rate["median_interval_ms"]:.1f} ms '
               f'({rate["median_rate_hz"]:.1f} Hz), mean {rate["mean_rate_hz"]:.2f} frames/s',
               'instruction modalities: ' + ', '.join(f'{k} {v}' for k, v in sorted(instructions.items())),
               f'windows: {windows.before_s:g} s before to {windows.after_s:g} s after each action point; '
               f'"none" at >= {NONE_MIN_DISTANCE_S:g} s from every action point; dropped instances: '
               + (', '.join(f'{k} {v}' for k, v in sorted(windows.dropped.items())) or 'none'),
               f'{"read from cache" if cached else "parsed .csv.xz and wrote cache"} {path} in {elapsed:.2f} s'])
