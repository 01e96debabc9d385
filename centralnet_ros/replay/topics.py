"""What a bag holds (:func:`bag_info`) and which of its topics feeds which runtime input (:func:`map_topics`)."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterable, Mapping

import yaml

from .labels import LABEL_TYPES
from .msgdefs import bag_topics, normalize_msgtype, scan_bag
from ..runtime.buffers import AUDIO_INFO_TYPE, INPUT_MSG_TYPES
from ..runtime.perception import PerceptionConfig, SOURCE_KINDS

__all__ = ['MSGTYPE_KINDS', 'AUDIO_INFO_TYPE', 'DEFAULT_TOPICS', 'BagInfo', 'bag_info', 'TopicMapping', 'map_topics',
           'people_topics']

_NS = 1_000_000_000

MSGTYPE_KINDS: dict[str, str] = {msgtype: kind for kind, msgtype in INPUT_MSG_TYPES.items()}
"""Bag message type -> runtime input kind (``audio_common_msgs/msg/AudioInfo`` feeds ``<audio input>_info``)."""

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


@dataclasses.dataclass
class BagInfo:
    """
    What a rosbag2 recording holds, from its messages (its metadata is only a hint).

    ``notes`` say where the metadata disagrees with the messages; ``read_error`` is the
    read error that ends the bag early (what comes before it can still be replayed).
    """

    path: Path
    storage: str                   # 'sqlite3' | 'mcap' | '?'
    start_ns: int                  # recording time of the first message
    end_ns: int
    topics: dict[str, tuple[str, int]]   # topic -> (msgtype, count)
    notes: list[str] = dataclasses.field(default_factory=list)
    read_error: str | None = None

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / _NS


def bag_info(path: str | Path) -> BagInfo:
    """
    Storage, time span and topics of a rosbag2 recording. Raises :class:`~.msgdefs.BagReadError` when unopenable.

    Counts and times come from the messages themselves (:func:`~.msgdefs.scan_bag` reads
    them without decoding): a ``metadata.yaml`` claiming ``message_count: 0`` or another
    start time does not move the bag's start, it only adds a note.
    """
    path = Path(path)
    types = {topic: msgtype for topic, (msgtype, _) in bag_topics(path).items()}
    storage = '?'
    meta = path / 'metadata.yaml' if path.is_dir() else None
    if meta is not None and meta.is_file():
        try:
            info = yaml.safe_load(meta.read_text()) or {}
            storage = str(info.get('rosbag2_bagfile_information', {}).get('storage_identifier', '?'))
        except (yaml.YAMLError, AttributeError, UnicodeDecodeError):
            pass
    elif path.suffix in ('.mcap', '.db3'):
        storage = 'mcap' if path.suffix == '.mcap' else 'sqlite3'
    scan = scan_bag(path)
    topics = {topic: (msgtype, scan.counts.get(topic, 0)) for topic, msgtype in types.items()}
    start = scan.start_ns if scan.start_ns is not None else 0
    end = scan.end_ns if scan.end_ns is not None else start
    notes = []
    if scan.error is None:
        wrong = [f'{topic}: {scan.metadata_counts[topic]} (holds {n})' for topic, n in sorted(scan.counts.items())
                 if scan.metadata_counts.get(topic, n) != n]
        if wrong:
            notes.append(f'the metadata miscounts messages ({", ".join(wrong[:5])}); the messages are used')
    if scan.start_ns is not None and scan.metadata_start_ns is not None and scan.error is None and (
            scan.metadata_start_ns != scan.start_ns or scan.metadata_end_ns not in (scan.end_ns, scan.end_ns + 1)):
        notes.append(f'the metadata says the bag spans [{scan.metadata_start_ns}, {scan.metadata_end_ns}] ns, its '
                     f'messages span [{scan.start_ns}, {scan.end_ns}] ns; times are taken from the messages')
    error = None
    if scan.error is not None:
        error = str(scan.error)
        notes.append(f'{error}; the replay stops there')
    return BagInfo(path, storage, start, end, topics, notes, error)


@dataclasses.dataclass
class TopicMapping:
    """Which bag topic feeds which runtime input, and what was adjusted or left out."""

    topics: dict[str, str]                 # topic -> input name ('audio_info' style for AudioInfo)
    notes: list[str]
    label_topics: list[str]
    unmapped: list[str] = dataclasses.field(default_factory=list)   # configured inputs without a topic
    people: dict[str, tuple[str, str | None, str | None]] = dataclasses.field(default_factory=dict)
    # ^ ROS4HRI topics: topic -> (entity kind, id or None for .../tracked, per-id topic name)

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
    people = people_topics(info)
    ignored = sorted(set(info.topics) - set(topics) - set(label_topics) - set(people))
    if ignored:
        notes.append(f'ignored topics: {", ".join(ignored)}')
    return TopicMapping(topics, notes, label_topics, unmapped, people)


def people_topics(info: BagInfo) -> dict[str, tuple[str, str | None, str | None]]:
    """Return the bag's ROS4HRI topics the per-person runtime reads (``HRI_INPUTS``, REP-155 person links)."""
    from ..runtime.people import HRI_INPUTS, parse_hri_topic
    out = {}
    for topic in info.topics:
        parsed = parse_hri_topic(topic)
        if parsed is not None and (parsed[1] is None or parsed[0] == 'persons' or parsed[2] in HRI_INPUTS[parsed[0]]):
            out[topic] = parsed
    return out
