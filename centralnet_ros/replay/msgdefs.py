"""
Message definitions the ``rosbags`` type stores lack, and rosbag2 reading/writing.

``rosbags`` ships the core ROS 2 interfaces (std_msgs, sensor_msgs, geometry_msgs,
...) but not audio_common_msgs, vision_msgs, hri_msgs or naoqi_bridge_msgs. Their
``.msg`` texts (ROS 2 Humble/Jazzy versions: audio_common_msgs 0.3.x, vision_msgs
4.x, hri_msgs 2.x, naoqi_bridge_msgs 2.x) are kept below and registered by
:func:`make_typestore`. The field lines are what matters for the wire format and
the RIHS01 type hash; comments are our own summaries.

Bag I/O: :func:`write_bag` writes rosbag2 (sqlite3 or MCAP, format version 8 or 9)
from ``(topic, msgtype, stamp_ns, message)`` tuples; :func:`read_bag` yields the
messages decoded, in log-time order; :func:`scan_bag` counts them without decoding.
Any failure while reading (a corrupted chunk, a truncated database, an undecodable
message) is a :class:`BagReadError` naming the file and how far it got. Factories (:func:`image_message`,
:func:`audio_messages`, ...) build rosbags message objects from numpy through the
builders of :mod:`centralnet_ros.messages`.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
import functools
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal, Sequence

import numpy as np
from rosbags.rosbag2 import CompressionFormat, CompressionMode, Reader, StoragePlugin, Writer
from rosbags.typesys import get_types_from_msg, get_typestore, Stores

from .. import messages as M
from ..messages.definitions import MSG_DEFINITIONS

__all__ = [
    'make_typestore', 'typestore_factory', 'BagMessage', 'BagReadError',
    'write_bag', 'read_bag', 'bag_topics', 'BagScan', 'scan_bag', 'image_message', 'compressed_image_message',
    'audio_messages',
    'naoqi_audio_message', 'pose_array_message', 'skeleton2d_message', 'normalize_msgtype',
]


_STORES = {'humble': Stores.ROS2_HUMBLE, 'jazzy': Stores.ROS2_JAZZY}


@functools.lru_cache(maxsize=None)
def make_typestore(distro: Literal['humble', 'jazzy'] = 'humble'):
    """
    Return a rosbags ``Typestore`` for ``distro`` with :data:`MSG_DEFINITIONS` registered.

    Cached: the same object is returned on each call (registering is not free).
    Callers that register more types should use a fresh ``get_typestore`` instead.
    """
    if distro not in _STORES:
        raise ValueError(f'unknown ROS distro {distro!r}; expected one of {sorted(_STORES)}')
    store = get_typestore(_STORES[distro])
    types: dict = {}
    for name, text in MSG_DEFINITIONS.items():
        types.update(get_types_from_msg(text, name))
    store.register(types)
    return store


def normalize_msgtype(msgtype: str) -> str:
    """``'sensor_msgs/Image'`` or ``'sensor_msgs/msg/Image'`` -> ``'sensor_msgs/msg/Image'``."""
    parts = msgtype.strip().split('/')
    if len(parts) == 2:
        return f'{parts[0]}/msg/{parts[1]}'
    if len(parts) == 3:
        return msgtype.strip()
    raise ValueError(f'message type {msgtype!r} is not of the form pkg/Name or pkg/msg/Name')


def typestore_factory(typestore=None) -> M.MessageFactory:
    """Return a :data:`centralnet_ros.messages.MessageFactory` making rosbags message objects."""
    store = typestore if typestore is not None else make_typestore()

    def factory(msgtype: str, **fields: Any) -> Any:
        name = normalize_msgtype(msgtype)
        try:
            cls = store.types[name]
        except KeyError:
            raise KeyError(f'message type {name} is not in the typestore; register its .msg text') from None
        return cls(**fields)

    return factory


# --------------------------------------------------------------------------- writing

_STORAGE = {'sqlite3': StoragePlugin.SQLITE3, 'mcap': StoragePlugin.MCAP}


def write_bag(path: str | Path, messages: Iterable[tuple[str, str, int, Any]], *,
              storage: Literal['sqlite3', 'mcap'] = 'sqlite3', typestore=None, version: int = 8,
              compress: bool = False) -> Path:
    """
    Write a rosbag2 directory at ``path`` (which must not exist yet).

    ``messages``: ``(topic, msgtype, log_time_ns, message)``; ``message`` is a rosbags
    object (see the factories below) or already CDR-serialised ``bytes``. A topic's
    type must not change. The connection records the message definition and its
    RIHS01 hash, so ``ros2 bag info/play`` and other readers can decode it.
    ``compress``: zstd-compress the MCAP chunks (MCAP's own chunk compression, read
    transparently by every MCAP reader; sqlite3 has no such option). Returns ``path``.
    """
    path = Path(path)
    if storage not in _STORAGE:
        raise ValueError(f'storage must be one of {sorted(_STORAGE)}, got {storage!r}')
    if path.exists():
        raise FileExistsError(f'{path} already exists; rosbag2 writes a new directory')
    store = typestore if typestore is not None else make_typestore()
    connections: dict[str, Any] = {}
    writer = Writer(path, version=version, storage_plugin=_STORAGE[storage])
    if compress:
        chunks = getattr(CompressionMode, 'STORAGE', None)
        if storage != 'mcap' or chunks is None:
            raise ValueError('compress=True needs storage="mcap" and a rosbags with MCAP chunk compression '
                             '(CompressionMode.STORAGE); '
                             f'got storage={storage!r}')
        writer.set_compression(chunks, CompressionFormat.ZSTD)
    with writer:
        for topic, msgtype, stamp_ns, message in messages:
            msgtype = normalize_msgtype(msgtype)
            conn = connections.get(topic)
            if conn is None:
                conn = connections[topic] = writer.add_connection(topic, msgtype, typestore=store)
            elif conn.msgtype != msgtype:
                raise ValueError(f'topic {topic} was {conn.msgtype}, now {msgtype}')
            data = message if isinstance(message, (bytes, memoryview)) else store.serialize_cdr(message, msgtype)
            writer.write(conn, int(stamp_ns), data)
    return path


# --------------------------------------------------------------------------- reading

@dataclass(frozen=True)
class BagMessage:
    """One decoded bag message. ``log_time_ns`` is the recording time (not the header stamp)."""

    topic: str
    msgtype: str
    log_time_ns: int
    message: Any


class BagReadError(RuntimeError):
    """
    A bag cannot be opened, or read, or a message cannot be decoded with the known definitions.

    ``messages_read``: how many messages were read before the failure (of the topics read).
    """

    def __init__(self, message: str, *, messages_read: int = 0):
        super().__init__(message)
        self.messages_read = messages_read


def _storages(reader, depth: int = 0) -> list:
    """Return the per-file storage readers inside a rosbags reader (a directory reader holds one per file)."""
    inner = getattr(reader, 'storages', None)
    if inner:
        return [s for x in inner for s in _storages(x, depth + 1)]
    sub = getattr(reader, 'storage', None)
    if sub is not None and depth < 3:
        return _storages(sub, depth + 1)
    return [reader]


def _position(reader) -> str:
    """Describe where the reader is: the storage files and, for MCAP, the byte offset reached in each."""
    where = []
    for storage in _storages(reader):
        path = getattr(storage, 'path', None)
        if path is None:
            continue
        bio = getattr(storage, 'bio', None)
        try:
            offset = None if bio is None or bio.closed else bio.tell()
        except (OSError, ValueError):
            offset = None
        where.append(f'{Path(path).name}' + ('' if offset is None else f' (read up to byte {offset:,})'))
    return ', '.join(where)


def _raw_messages(reader, path: Path, conns, start_ns: int | None = None, stop_ns: int | None = None):
    """``reader.messages`` with every read failure turned into :class:`BagReadError` (file and offset named)."""
    n, last = 0, None
    it = iter(reader.messages(connections=conns, start=start_ns, stop=stop_ns))
    while True:
        try:
            conn, log_time, raw = next(it)
        except StopIteration:
            return
        except Exception as exc:  # noqa: BLE001 - rosbags, sqlite3 and struct raise many types on corrupted files
            after = 'at the first message' if last is None else f'after message {n} (log time {last} ns)'
            where = _position(reader)
            raise BagReadError(f'{path}: read error {after}{f" in {where}" if where else ""}: '
                               f'{type(exc).__name__}: {exc}', messages_read=n) from exc
        if isinstance(log_time, bool) or not isinstance(log_time, int) or not isinstance(raw, (bytes, memoryview)):
            raise BagReadError(f'{path}: message {n + 1} has no valid log time or data ({_position(reader)}): '
                               f'log time {log_time!r}, data {type(raw).__name__}', messages_read=n)
        n, last = n + 1, log_time
        yield conn, log_time, raw


@dataclass
class BagScan:
    """What a bag's messages say about it (see :func:`scan_bag`), as opposed to its metadata."""

    counts: dict[str, int]               # topic -> messages
    start_ns: int | None                 # first log time
    end_ns: int | None                   # last log time
    metadata_counts: dict[str, int]      # topic -> what the metadata claims
    metadata_start_ns: int | None
    metadata_end_ns: int | None
    error: BagReadError | None = None    # the read error that ended the scan


def scan_bag(path: str | Path) -> BagScan:
    """
    Count the messages of every topic and their first and last log time, reading but not decoding them.

    The metadata (``metadata.yaml``, an MCAP summary) is kept beside as a hint. A read
    error ends the scan: it is returned in ``error`` with what was counted until then.
    """
    path = Path(path)
    counts: dict[str, int] = {}
    start = end = None
    with _open(path) as reader:
        meta_counts: dict[str, int] = {}
        for conn in reader.connections:
            meta_counts[conn.topic] = meta_counts.get(conn.topic, 0) + int(conn.msgcount)
            counts.setdefault(conn.topic, 0)
        try:
            meta_start, meta_end = int(reader.start_time), int(reader.end_time)
        except Exception:  # noqa: BLE001 - absent or absurd metadata times are only a hint
            meta_start = meta_end = None
        error = None
        try:
            for conn, log_time, _ in _raw_messages(reader, path, list(reader.connections)):
                counts[conn.topic] += 1
                start = log_time if start is None else min(start, log_time)
                end = log_time if end is None else max(end, log_time)
        except BagReadError as exc:
            error = exc
    return BagScan(counts, start, end, meta_counts, meta_start, meta_end, error)


def _definition_types(conn) -> dict:
    """Return the types a connection's stored definition declares ({} when it has none or it does not parse)."""
    text = getattr(getattr(conn, 'msgdef', None), 'data', None) or ''
    if not text:
        return {}
    try:
        return get_types_from_msg(text, conn.msgtype)
    except Exception:  # noqa: BLE001 - an unparsable definition only matters if we decode it
        return {}


def _decoders(store, connections, distro: str) -> dict:
    """
    Return ``connection id -> typestore`` to decode each connection with.

    A type the store lacks is registered from the definition the bag carries. A type
    the store knows but whose RIHS01 hash differs from the one recorded in the bag (an
    older or newer version of hri_msgs, say) is decoded with a separate store built
    from the bag's own definition, so both versions coexist.
    """
    out, missing = {}, {}
    for conn in connections:
        if conn.msgtype not in store.types:
            missing.update({k: v for k, v in _definition_types(conn).items() if k not in store.types})
            out[conn.id] = store
            continue
        digest = getattr(conn, 'digest', '') or ''
        out[conn.id] = store
        if digest.startswith('RIHS01_') and digest != store.hash_rihs01(conn.msgtype):
            types = _definition_types(conn)
            if types:
                own = get_typestore(_STORES[distro])
                try:
                    own.register(types)
                    out[conn.id] = own
                except Exception:  # noqa: BLE001 - keep the registered definition then
                    pass
    if missing:
        store.register(missing)
    return out


def bag_topics(path: str | Path) -> dict[str, tuple[str, int]]:
    """``topic -> (msgtype, message count)`` of a rosbag2 directory."""
    with _open(path) as reader:
        out: dict[str, tuple[str, int]] = {}
        for conn in reader.connections:
            old = out.get(conn.topic, (conn.msgtype, 0))
            out[conn.topic] = (conn.msgtype, old[1] + conn.msgcount)
        return out


@contextlib.contextmanager
def _open(path: str | Path) -> Iterator[Reader]:
    path = Path(path)
    if not path.exists():
        raise BagReadError(f'{path}: no such rosbag2 directory or file')
    try:
        reader = Reader(path)
        reader.open()
    except Exception as exc:  # rosbags raises its own error types
        raise BagReadError(f'{path}: cannot open as rosbag2 ({type(exc).__name__}: {exc})') from exc
    try:
        yield reader
    finally:
        reader.close()


def read_bag(path: str | Path, *, topics: Sequence[str] | None = None, typestore=None,
             start_ns: int | None = None, stop_ns: int | None = None,
             distro: Literal['humble', 'jazzy'] = 'humble') -> Iterator[BagMessage]:
    """
    Yield the messages of a rosbag2 recording (sqlite3 or MCAP) decoded, in log-time order.

    ``topics`` restricts to those topics (unknown names are an error). Types missing
    from the store are registered from definitions stored in the bag; a type whose
    recorded hash differs from the store's is decoded with the bag's own definition.
    A message that still cannot be decoded, or a read failure, raises :class:`BagReadError`
    naming the file, the topic or offset and the log time.
    """
    store = typestore if typestore is not None else make_typestore(distro)
    with _open(path) as reader:
        conns = list(reader.connections)
        if topics is not None:
            known = {c.topic for c in conns}
            unknown = sorted(set(topics) - known)
            if unknown:
                raise BagReadError(f'{path}: topics {unknown} are not in the bag (it has {sorted(known)})')
            conns = [c for c in conns if c.topic in set(topics)]
        decoders = _decoders(store, conns, distro)
        for conn, log_time, raw in _raw_messages(reader, Path(path), conns, start_ns, stop_ns):
            try:
                msg = decoders[conn.id].deserialize_cdr(raw, conn.msgtype)
            except Exception as exc:  # noqa: BLE001 - any decoder failure is reported the same way
                raise BagReadError(f'{path}: cannot decode {conn.msgtype} on {conn.topic} at {log_time} ns '
                                   f'({type(exc).__name__}: {exc})') from exc
            yield BagMessage(conn.topic, conn.msgtype, int(log_time), msg)


# --------------------------------------------------------------------------- factories

def image_message(image: np.ndarray, *, encoding: str, stamp_ns: int, frame_id: str = 'camera',
                  row_padding: int = 0, bigendian: bool = False, typestore=None):
    """Build a rosbags ``sensor_msgs/msg/Image`` (see :func:`centralnet_ros.messages.build_image`)."""
    return M.build_image(typestore_factory(typestore), image, encoding=encoding, stamp_ns=stamp_ns,
                         frame_id=frame_id, row_padding=row_padding, bigendian=bigendian)


def compressed_image_message(image: np.ndarray, *, format: str = 'png', stamp_ns: int,  # noqa: A002 (public keyword)
                             frame_id: str = 'camera', typestore=None):
    """Build a rosbags ``sensor_msgs/msg/CompressedImage`` (png or jpeg)."""
    return M.build_compressed_image(typestore_factory(typestore), image, format=format, stamp_ns=stamp_ns,
                                    frame_id=frame_id)


def audio_messages(samples: np.ndarray, *, sample_rate: int, stamp_ns: int, sample_format: str = 'S16LE',
                   frame_id: str = 'microphone', typestore=None):
    """Build rosbags ``(AudioDataStamped, AudioInfo)`` for one chunk ``(frames, channels)``."""
    return M.build_audio(typestore_factory(typestore), samples, sample_rate=sample_rate, stamp_ns=stamp_ns,
                         sample_format=sample_format, frame_id=frame_id)


def naoqi_audio_message(samples: np.ndarray, *, frequency: int, stamp_ns: int,
                        channel_map: Sequence[int] | None = None, frame_id: str = 'microphone', typestore=None):
    """Build a rosbags ``naoqi_bridge_msgs/msg/AudioBuffer``."""
    return M.build_naoqi_audio(typestore_factory(typestore), samples, frequency=frequency, stamp_ns=stamp_ns,
                               channel_map=channel_map, frame_id=frame_id)


def pose_array_message(joints: np.ndarray, *, stamp_ns: int, frame_id: str = 'kinect', typestore=None):
    """Build a rosbags ``geometry_msgs/msg/PoseArray`` from ``(J, 3)`` joints."""
    return M.build_pose_array(typestore_factory(typestore), joints, stamp_ns=stamp_ns, frame_id=frame_id)


def skeleton2d_message(points: np.ndarray, *, stamp_ns: int, frame_id: str = 'camera', typestore=None):
    """Build a rosbags ``hri_msgs/msg/Skeleton2D`` from ``(18, 3)`` ``(x, y, c)`` rows."""
    return M.build_skeleton2d(typestore_factory(typestore), points, stamp_ns=stamp_ns, frame_id=frame_id)
