"""
Builders (numpy -> message) over a caller-chosen message factory.

``factory(msgtype, **fields)`` makes one message of type ``msgtype``; see :mod:`centralnet_ros.messages`.
"""
from __future__ import annotations

import array
from collections.abc import Mapping, Sequence
from typing import Any, Callable

import numpy as np

from .audio import AUDIO_SAMPLE_FORMATS
from .fields import _NATIVE_BIG, ns_to_stamp
from .image import IMAGE_ENCODINGS


MessageFactory = Callable[..., Any]
"""``factory(msgtype, **fields) -> message``; ``msgtype`` is ``'pkg/msg/Name'``."""


def dict_factory(msgtype: str, **fields: Any) -> dict:
    """Make a plain field dict (a message factory; the message type is not recorded)."""
    return dict(fields)


_ARRAY_TYPECODES = {np.dtype(np.uint8): 'B', np.dtype(np.int8): 'b', np.dtype(np.int16): 'h',
                    np.dtype(np.uint16): 'H', np.dtype(np.int32): 'i', np.dtype(np.uint32): 'I',
                    np.dtype(np.int64): 'q', np.dtype(np.uint64): 'Q', np.dtype(np.float32): 'f',
                    np.dtype(np.float64): 'd'}


def sequences_to_python(fields: Mapping[str, Any]) -> dict:
    """
    Turn numpy arrays in ``fields`` into ``array.array`` and numpy scalars into Python ones.

    For an rclpy factory: generated rclpy setters accept ``array.array`` for numeric
    sequences and refuse numpy arrays. Use as
    ``lambda t, **f: resolve(t)(**sequences_to_python(f))``.
    """
    out = {}
    for key, value in fields.items():
        if isinstance(value, np.ndarray):
            out[key] = array.array(_ARRAY_TYPECODES[value.dtype.newbyteorder('=')],
                                   np.ascontiguousarray(value, dtype=value.dtype.newbyteorder('=')).tobytes())
        elif isinstance(value, np.generic):
            out[key] = value.item()
        else:
            out[key] = value
    return out


def build_header(factory: MessageFactory, *, stamp_ns: int, frame_id: str = '') -> Any:
    """``std_msgs/Header`` for ``stamp_ns``."""
    sec, nanosec = ns_to_stamp(stamp_ns)
    return factory('std_msgs/msg/Header', stamp=factory('builtin_interfaces/msg/Time', sec=sec, nanosec=nanosec),
                   frame_id=str(frame_id))


def build_image(factory: MessageFactory, image: np.ndarray, *, encoding: str, stamp_ns: int,
                frame_id: str = '', row_padding: int = 0, bigendian: bool = False) -> Any:
    """
    ``sensor_msgs/Image`` from an array in this module's output convention.

    ``image``: ``(H, W, 3)`` uint8 RGB for rgb8/bgr8 (reordered for bgr8), ``(H, W, 4)``
    for rgba8/bgra8 (RGBA order), ``(H, W)`` uint8 for mono8, uint16 for mono16/16UC1
    (a float array for 16UC1 is taken as metres and rounded to mm), float32 metres for
    32FC1. ``row_padding`` bytes are appended to every row (``step`` grows), and
    ``bigendian`` writes multi-byte data big-endian, both to exercise readers.
    """
    key = encoding.strip().lower()
    spec = IMAGE_ENCODINGS.get(key)
    if spec is None:
        raise ValueError(f'cannot build an Image with encoding {encoding!r}; expected one of {sorted(IMAGE_ENCODINGS)}')
    a = np.asarray(image)
    if key == '16uc1' and a.dtype.kind == 'f':
        a = np.clip(np.rint(np.nan_to_num(a, nan=0.0) * 1000.0), 0, 65535).astype(np.uint16)
    expected_ndim = 3 if spec.channels > 1 else 2
    if a.ndim != expected_ndim or (spec.channels > 1 and a.shape[2] != spec.channels):
        raise ValueError(f'{encoding} needs an array of shape '
                         f'(H, W{", %d" % spec.channels if spec.channels > 1 else ""}), got {a.shape}')
    if key in ('bgr8', 'bgra8'):
        a = np.concatenate([a[..., 2::-1], a[..., 3:]], axis=-1)
    itemsize = int(spec.dtype[1:])
    dtype = np.dtype(('>' if bigendian else '<') + spec.dtype) if itemsize > 1 else np.dtype(spec.dtype)
    a = np.ascontiguousarray(a, dtype=dtype)
    height, width = a.shape[:2]
    row = a.reshape(height, -1).view(np.uint8)              # (H, W * C * itemsize)
    if row_padding:
        row = np.concatenate([row, np.zeros((height, row_padding), np.uint8)], axis=1)
    return factory('sensor_msgs/msg/Image', header=build_header(factory, stamp_ns=stamp_ns, frame_id=frame_id),
                   height=int(height), width=int(width), encoding=encoding,
                   is_bigendian=int(bool(bigendian) and itemsize > 1), step=int(row.shape[1]),
                   data=np.ascontiguousarray(row).reshape(-1))


def build_compressed_image(factory: MessageFactory, image: np.ndarray, *, format: str = 'png',  # noqa: A002
                           stamp_ns: int, frame_id: str = '', jpeg_quality: int = 90) -> Any:
    """``sensor_msgs/CompressedImage`` (png or jpeg) from ``(H, W, 3)`` uint8 RGB or ``(H, W)``."""
    import cv2
    a = np.asarray(image)
    if a.ndim == 3:
        a = np.ascontiguousarray(a[..., ::-1])              # RGB -> BGR for cv2
    ext = {'png': '.png', 'jpeg': '.jpg', 'jpg': '.jpg'}.get(format.lower())
    if ext is None:
        raise ValueError(f'format must be png or jpeg, got {format!r}')
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if ext == '.jpg' else []
    ok, buf = cv2.imencode(ext, a, params)
    if not ok:
        raise ValueError(f'cv2 could not encode a {a.shape} {a.dtype} image as {format}')
    return factory('sensor_msgs/msg/CompressedImage',
                   header=build_header(factory, stamp_ns=stamp_ns, frame_id=frame_id),
                   format='jpeg' if ext == '.jpg' else 'png', data=buf.reshape(-1).astype(np.uint8))


def _encode_samples(samples: np.ndarray, sample_format: str) -> np.ndarray:
    """``(frames, channels)`` float in [-1, 1] (or integers of the target width) -> bytes (uint8)."""
    spec = AUDIO_SAMPLE_FORMATS[sample_format]
    x = np.asarray(samples)
    if spec.dtype.startswith('S24'):
        ints = (x.astype(np.int32) if x.dtype.kind in 'iu'
                else np.clip(np.rint(x * 2 ** 23), -2 ** 23, 2 ** 23 - 1).astype(np.int32))
        b = ints.reshape(-1, 1).view(np.uint8).reshape(-1, 4)[:, :3] if not _NATIVE_BIG else None
        if b is None:
            raise NotImplementedError('S24 encoding on a big-endian host')
        b = b[:, ::-1] if spec.dtype.endswith('>') else b
        return np.ascontiguousarray(b).reshape(-1)
    dtype = np.dtype(spec.dtype)
    if dtype.kind == 'f':
        values = x.astype(dtype)
    elif x.dtype.kind in 'iu':
        values = x.astype(dtype)
    else:
        info = np.iinfo(dtype)
        values = np.clip(np.rint(x / spec.scale + spec.offset), info.min, info.max).astype(dtype)
    return np.ascontiguousarray(values).reshape(-1).view(np.uint8)


def build_audio(factory: MessageFactory, samples: np.ndarray, *, sample_rate: int, stamp_ns: int,
                sample_format: str = 'S16LE', frame_id: str = '') -> tuple[Any, Any]:
    """
    ``(AudioDataStamped, AudioInfo)`` for ``samples`` ``(frames, channels)`` (or ``(frames,)``).

    Float samples are in [-1, 1] and quantised to ``sample_format``; integer samples are
    written as they are. ``stamp_ns`` is the time of the first sample.
    """
    x = np.asarray(samples)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] < 1:
        raise ValueError(f'samples must be (frames, channels), got {np.shape(samples)}')
    fmt = sample_format.upper()
    if fmt not in AUDIO_SAMPLE_FORMATS:
        raise ValueError(f'sample_format {sample_format!r} is not one of {sorted(AUDIO_SAMPLE_FORMATS)}')
    data = _encode_samples(x, fmt)
    width = 3 if fmt.startswith('S24') else np.dtype(AUDIO_SAMPLE_FORMATS[fmt].dtype).itemsize
    stamped = factory('audio_common_msgs/msg/AudioDataStamped',
                      header=build_header(factory, stamp_ns=stamp_ns, frame_id=frame_id),
                      audio=factory('audio_common_msgs/msg/AudioData', data=data))
    info = factory('audio_common_msgs/msg/AudioInfo', channels=int(x.shape[1]), sample_rate=int(sample_rate),
                   sample_format=fmt, bitrate=int(sample_rate * x.shape[1] * width * 8), coding_format='wave')
    return stamped, info


def build_naoqi_audio(factory: MessageFactory, samples: np.ndarray, *, frequency: int, stamp_ns: int,
                      channel_map: Sequence[int] | None = None, frame_id: str = '') -> Any:
    """``naoqi_bridge_msgs/AudioBuffer`` from ``(frames, channels)`` int16 or float in [-1, 1]."""
    x = np.asarray(samples)
    if x.ndim == 1:
        x = x[:, None]
    if x.dtype.kind == 'f':
        x = np.clip(np.rint(x * 32768), -32768, 32767)
    x = x.astype(np.int16)
    cmap = np.asarray(channel_map if channel_map is not None else range(x.shape[1]), dtype=np.uint8)
    return factory('naoqi_bridge_msgs/msg/AudioBuffer',
                   header=build_header(factory, stamp_ns=stamp_ns, frame_id=frame_id),
                   frequency=int(frequency), channel_map=cmap, data=np.ascontiguousarray(x).reshape(-1))


def build_pose_array(factory: MessageFactory, joints: np.ndarray, *, stamp_ns: int, frame_id: str = '') -> Any:
    """``geometry_msgs/PoseArray`` with joint ``i`` in ``poses[i].position`` (identity orientation)."""
    j = np.asarray(joints, dtype=np.float64)
    if j.ndim != 2 or j.shape[1] != 3:
        raise ValueError(f'joints must be (J, 3), got {j.shape}')
    poses = [factory('geometry_msgs/msg/Pose',
                     position=factory('geometry_msgs/msg/Point', x=float(x), y=float(y), z=float(z)),
                     orientation=factory('geometry_msgs/msg/Quaternion', x=0.0, y=0.0, z=0.0, w=1.0))
             for x, y, z in j]
    return factory('geometry_msgs/msg/PoseArray', header=build_header(factory, stamp_ns=stamp_ns, frame_id=frame_id),
                   poses=poses)


def build_skeleton2d(factory: MessageFactory, points: np.ndarray, *, stamp_ns: int, frame_id: str = '') -> Any:
    """``hri_msgs/Skeleton2D`` from ``(18, 3)`` rows ``(x, y, c)``."""
    p = np.asarray(points, dtype=np.float64)
    if p.shape != (18, 3):
        raise ValueError(f'points must be (18, 3), got {p.shape}')
    kps = [factory('hri_msgs/msg/NormalizedPointOfInterest2D', x=float(x), y=float(y), c=float(c)) for x, y, c in p]
    return factory('hri_msgs/msg/Skeleton2D', header=build_header(factory, stamp_ns=stamp_ns, frame_id=frame_id),
                   skeleton=kps)


def _ranked(labels: Sequence[str], scores: Sequence[float], top_k: int | None) -> list[tuple[str, float]]:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(labels) != s.size:
        raise ValueError(f'{len(labels)} labels but {s.size} scores')
    order = np.argsort(-s, kind='stable')
    if top_k is not None:
        order = order[:top_k]
    return [(str(labels[i]), float(s[i])) for i in order]


def build_classification(factory: MessageFactory, *, labels: Sequence[str], scores: Sequence[float],
                         stamp_ns: int, frame_id: str = '', top_k: int | None = None) -> Any:
    """
    Build a ``vision_msgs/Classification``: one ``ObjectHypothesis(class_id=label, score)`` per label.

    Best first (``top_k`` keeps the best k). The stamp should be the source
    data's header stamp, as the vision_msgs README asks.
    """
    results = [factory('vision_msgs/msg/ObjectHypothesis', class_id=label, score=score)
               for label, score in _ranked(labels, scores, top_k)]
    return factory('vision_msgs/msg/Classification',
                   header=build_header(factory, stamp_ns=stamp_ns, frame_id=frame_id), results=results)


def build_event(factory: MessageFactory, *, task: str, label: str, score: float, onset_ns: int, peak_ns: int,
                end_ns: int, stamp_ns: int, decisions: int = 1, person_id: str = '', frame_id: str = '') -> Any:
    """Build a ``centralnet_msgs/Event`` (onset, peak and end as ``builtin_interfaces/Time``)."""
    def time(ns: int) -> Any:
        sec, nanosec = ns_to_stamp(ns)
        return factory('builtin_interfaces/msg/Time', sec=sec, nanosec=nanosec)
    return factory('centralnet_msgs/msg/Event', header=build_header(factory, stamp_ns=stamp_ns, frame_id=frame_id),
                   task=str(task), label=str(label), score=float(score), onset=time(onset_ns), peak=time(peak_ns),
                   end=time(end_ns), decisions=int(decisions), person_id=str(person_id))


def build_label_info(factory: MessageFactory, *, labels: Sequence[str], stamp_ns: int, frame_id: str = '',
                     threshold: float = 0.0) -> Any:
    """``vision_msgs/LabelInfo`` mapping class index -> label name (latched beside the results)."""
    class_map = [factory('vision_msgs/msg/VisionClass', class_id=i, class_name=str(name))
                 for i, name in enumerate(labels)]
    return factory('vision_msgs/msg/LabelInfo', header=build_header(factory, stamp_ns=stamp_ns, frame_id=frame_id),
                   class_map=class_map, threshold=float(threshold))


def build_vision_info(factory: MessageFactory, *, method: str, database_location: str, stamp_ns: int,
                      database_version: int = 0, frame_id: str = '') -> Any:
    """``vision_msgs/VisionInfo`` naming the pipeline (e.g. the bundle) and where its labels live."""
    return factory('vision_msgs/msg/VisionInfo', header=build_header(factory, stamp_ns=stamp_ns, frame_id=frame_id),
                   method=str(method), database_location=str(database_location),
                   database_version=int(database_version))


def build_expression(factory: MessageFactory, *, expression: str, confidence: float, stamp_ns: int,
                     frame_id: str = '', valence: float = 0.0, arousal: float = 0.0) -> Any:
    """``hri_msgs/Expression`` (categorical; valence/arousal default to 0)."""
    return factory('hri_msgs/msg/Expression', header=build_header(factory, stamp_ns=stamp_ns, frame_id=frame_id),
                   expression=str(expression), valence=float(valence), arousal=float(arousal),
                   confidence=float(confidence))


def build_live_speech(factory: MessageFactory, *, final: str, confidence: float, stamp_ns: int,
                      frame_id: str = '', incremental: str = '', language: str = '') -> Any:
    """``hri_msgs/LiveSpeech`` carrying a recognised word/label as ``final`` (``language``: IETF code, e.g. en-GB)."""
    return factory('hri_msgs/msg/LiveSpeech', header=build_header(factory, stamp_ns=stamp_ns, frame_id=frame_id),
                   incremental=str(incremental), final=str(final), confidence=float(confidence),
                   language=str(language))


def build_ids_list(factory: MessageFactory, *, ids: Sequence[str], stamp_ns: int, frame_id: str = '') -> Any:
    """``hri_msgs/IdsList``."""
    return factory('hri_msgs/msg/IdsList', header=build_header(factory, stamp_ns=stamp_ns, frame_id=frame_id),
                   ids=[str(i) for i in ids])
