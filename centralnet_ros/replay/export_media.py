"""
``centralnet export-media BAG --out DIR``: a recording as media files an annotation tool opens.

Writes, into ``DIR``:

* one WAV per audio topic (``audio_common_msgs/AudioDataStamped`` with its
  ``AudioInfo``, or naoqi ``AudioBuffer``): 16-bit PCM, every channel, at the stream's
  own sample rate;
* one MP4 video per image topic (``sensor_msgs/Image`` / ``CompressedImage``; depth
  is shown as grey, 0-5 m), at the topic's median frame rate (or ``--fps``);
* ``<bag>.eaf``: an ELAN document linking those files, with one empty tier per task
  (``--tasks``), pre-filled with the bag's ``/labels/<task>`` segments or the
  ``--labels`` files if any, and the bag's start in its header
  (``PROPERTY centralnet:bag_start_ns``);
* ``media.yaml``: what was written and the offset rule below.

**Offset rule.** Media time 0 is the bag's start ``t0`` (the recording time of its
first message, what ``ros2 bag info`` calls Start and what label files'
``time_base: bag_start`` means). A sample or frame whose header stamp is ``s`` sits
at media time ``s - t0``: audio sample ``round((s - t0) * sample_rate)`` of the WAV
is the first sample of the chunk stamped ``s`` (chunks are stamped at their first
sample, as ``microphone_node`` does), gaps are silence, audio stamped before ``t0`` is
cut; video frame ``k`` (media time ``k / fps``) shows the newest image stamped at or
before ``t0 + k / fps`` (black before the first). So an annotation at media time
``t`` -- an ELAN time slot of ``t`` ms, an Audacity label at ``t`` s -- is header time
``t0 + t``: :mod:`centralnet_ros.replay.label_import` maps it back exactly (ELAN: to
the millisecond it stores; audio: to the sample).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
from pathlib import Path
import re
import sys
from typing import Any, Sequence
import xml.etree.ElementTree as ET

import numpy as np

__all__ = ['add_arguments', 'run', 'export_media', 'write_eaf', 'ExportError', 'BagAudio', 'read_audio']

_NS = 1_000_000_000
_MS = 1_000_000
AUDIO_TYPES = ('audio_common_msgs/msg/AudioDataStamped', 'naoqi_bridge_msgs/msg/AudioBuffer')
IMAGE_TYPES = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage')
AUDIO_INFO = 'audio_common_msgs/msg/AudioInfo'
DEPTH_RANGE_M = 5.0


class ExportError(ValueError):
    """A bag that cannot be exported (no media topics, an audio topic without its AudioInfo, ...)."""


def _file_name(topic: str, suffix: str) -> str:
    return (re.sub(r'[^A-Za-z0-9]+', '_', topic).strip('_') or 'topic') + suffix


def write_eaf(path: str | Path, *, media: Sequence[Path], bag_start_ns: int, tiers: Sequence[str],
              segments: Sequence[Any] = ()) -> Path:
    """
    Write an ELAN 3.0 ``.eaf``: ``media`` linked (absolute and relative URLs), one tier per name in ``tiers``.

    ``segments``: :class:`~centralnet_ros.replay.labels.LabelSegment` s (header time)
    put on the tier of their task, at ``round((t - bag_start_ns) / 1 ms)``.
    """
    from centralnet_ros.config import atomic_write_bytes
    from .label_import import BAG_START_PROPERTY
    path = Path(path)
    mime = {'.wav': 'audio/x-wav', '.mp4': 'video/mp4'}
    root = ET.Element('ANNOTATION_DOCUMENT', {
        'AUTHOR': 'centralnet export-media', 'DATE': _dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds'),
        'FORMAT': '3.0', 'VERSION': '3.0', 'xmlns:xsi': 'http://www.w3.org/2001/XMLSchema-instance',
        'xsi:noNamespaceSchemaLocation': 'http://www.mpi.nl/tools/elan/EAFv3.0.xsd'})
    header = ET.SubElement(root, 'HEADER', {'MEDIA_FILE': '', 'TIME_UNITS': 'milliseconds'})
    for f in media:
        f = Path(f)
        ET.SubElement(header, 'MEDIA_DESCRIPTOR', {'MEDIA_URL': f.resolve().as_uri(),
                                                   'MIME_TYPE': mime.get(f.suffix, 'application/octet-stream'),
                                                   'RELATIVE_MEDIA_URL': f'./{f.name}'})
    names = list(dict.fromkeys(list(tiers) + [s.task for s in segments]))
    ET.SubElement(header, 'PROPERTY', {'NAME': BAG_START_PROPERTY}).text = str(int(bag_start_ns))
    ET.SubElement(header, 'PROPERTY', {'NAME': 'lastUsedAnnotationId'}).text = str(len(segments))
    order = ET.SubElement(root, 'TIME_ORDER')
    tier_el = {}
    slot = 0
    for name in names:
        tier_el[name] = ET.Element('TIER', {'LINGUISTIC_TYPE_REF': 'default-lt', 'TIER_ID': name})
    for k, s in enumerate(sorted(segments, key=lambda s: (s.task, s.start_ns)), 1):
        refs = []
        for t in (s.start_ns, s.end_ns):
            slot += 1
            ms = max(0, int(round((t - bag_start_ns) / _MS)))
            ET.SubElement(order, 'TIME_SLOT', {'TIME_SLOT_ID': f'ts{slot}', 'TIME_VALUE': str(ms)})
            refs.append(f'ts{slot}')
        ann = ET.SubElement(ET.SubElement(tier_el[s.task], 'ANNOTATION'), 'ALIGNABLE_ANNOTATION',
                            {'ANNOTATION_ID': f'a{k}', 'TIME_SLOT_REF1': refs[0], 'TIME_SLOT_REF2': refs[1]})
        ET.SubElement(ann, 'ANNOTATION_VALUE').text = s.label
    for name in names:
        root.append(tier_el[name])
    ET.SubElement(root, 'LINGUISTIC_TYPE', {'GRAPHIC_REFERENCES': 'false', 'LINGUISTIC_TYPE_ID': 'default-lt',
                                            'TIME_ALIGNABLE': 'true'})
    for stereotype, text in (('Time_Subdivision', "Time subdivision of parent annotation's time interval, no "
                                                  'time gaps allowed within this interval'),
                             ('Symbolic_Subdivision', 'Symbolic subdivision of a parent annotation. Annotations '
                                                      'refering to the same parent are ordered'),
                             ('Symbolic_Association', '1-1 association with a parent annotation'),
                             ('Included_In', "Time alignable annotations within the parent annotation's time "
                                             'interval, gaps are allowed')):
        ET.SubElement(root, 'CONSTRAINT', {'DESCRIPTION': text, 'STEREOTYPE': stereotype})
    ET.indent(root)
    data = ET.tostring(root, encoding='UTF-8', xml_declaration=True)
    return atomic_write_bytes(path, data)


def _write_wav(path: Path, samples: np.ndarray, sample_rate: int) -> Path:
    import wave

    from centralnet_ros.config import atomic_write
    pcm = np.clip(np.round(samples * 32768.0), -32768, 32767).astype('<i2')      # (n, channels)

    def write(fh) -> None:
        with wave.open(fh, 'wb') as w:
            w.setnchannels(pcm.shape[1])
            w.setsampwidth(2)
            w.setframerate(int(sample_rate))
            w.writeframes(pcm.tobytes())

    return atomic_write(path, write)


def _to_bgr(frame: np.ndarray) -> np.ndarray:
    import cv2
    x = np.asarray(frame)
    if x.dtype != np.uint8:                                 # depth (metres or mm): grey over 0..5 m
        metres = x.astype(np.float32) / (1000.0 if np.issubdtype(x.dtype, np.integer) else 1.0)
        x = (np.clip(np.nan_to_num(metres) / DEPTH_RANGE_M, 0, 1) * 255).astype(np.uint8)
    if x.ndim == 2:
        return cv2.cvtColor(x, cv2.COLOR_GRAY2BGR)
    if x.shape[2] == 4:
        return cv2.cvtColor(x, cv2.COLOR_RGBA2BGR)
    return cv2.cvtColor(np.ascontiguousarray(x), cv2.COLOR_RGB2BGR)


def _write_video(path: Path, frames: list[tuple[int, np.ndarray]], *, t0_ns: int, end_ns: int, fps: float) -> dict:
    import os
    import tempfile

    import cv2
    h, w = frames[0][1].shape[:2]
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.stem}.', suffix='.mp4', dir=path.parent)
    os.close(fd)
    writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*'mp4v'), float(fps), (w, h))
    if not writer.isOpened():
        os.unlink(tmp)
        raise ExportError(f'{path}: OpenCV cannot write MP4 (mp4v) video here')
    n = int(np.floor((end_ns - t0_ns) * fps / _NS)) + 1
    stamps = np.asarray([s for s, _ in frames], np.int64)
    black = np.zeros((h, w, 3), np.uint8)
    try:
        for k in range(n):
            t = t0_ns + int(round(k * _NS / fps))
            i = int(np.searchsorted(stamps, t, side='right')) - 1          # newest frame stamped <= t
            img = black if i < 0 else _to_bgr(frames[i][1])
            if img.shape[:2] != (h, w):
                img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
            writer.write(img)
    finally:
        writer.release()
    os.replace(tmp, path)
    return {'frames': n, 'fps': float(fps), 'size': [w, h], 'images': len(frames)}


def _bag_topics(bag: Path, label_prefix: str):
    """Return ``(bag info, topic -> type, audio topics, image topics, label topics)`` of ``bag``."""
    from .labels import LABEL_TYPES
    from .msgdefs import normalize_msgtype
    from .topics import bag_info
    info = bag_info(bag)
    types = {t: normalize_msgtype(mt) for t, (mt, _) in info.topics.items()}
    audio = sorted(t for t, mt in types.items() if mt in AUDIO_TYPES)
    images = sorted(t for t, mt in types.items() if mt in IMAGE_TYPES)
    label_topics = sorted(t for t, mt in types.items() if t.startswith(label_prefix) and mt in LABEL_TYPES)
    return info, types, audio, images, label_topics


def _needs_info(bag: Path, types: dict[str, str], audio: Sequence[str]) -> dict[str, str]:
    """Return ``AudioDataStamped topic -> its AudioInfo topic``; raises :class:`ExportError` for one without."""
    infos = sorted(t for t, mt in types.items() if mt == AUDIO_INFO)

    def info_topic(topic: str) -> str | None:
        for cand in (f'{topic}_info', f'{topic.rsplit("/", 1)[0]}/audio_info', '/audio_info'):
            if cand in infos:
                return cand
        return infos[0] if len(infos) == 1 else None

    needs_info = {t: info_topic(t) for t in audio if types[t] == AUDIO_TYPES[0]}
    for t, i in needs_info.items():
        if i is None:
            raise ExportError(f'{bag}: audio topic {t} has no AudioInfo topic ({t}_info or /audio_info) saying '
                              f'its sample format and rate')
    return needs_info


def _read_streams(bag: Path, types: dict[str, str], audio: Sequence[str], images: Sequence[str],
                  needs_info: dict[str, str], label_topics: Sequence[str], label_prefix: str):
    """Read the bag once: ``(audio chunks per topic, frames per topic, label collector, notes)``."""
    from centralnet_ros import messages as M
    from .labels import LabelTopicCollector
    from .msgdefs import read_bag
    chunks: dict[str, list] = {t: [] for t in audio}
    frames: dict[str, list] = {t: [] for t in images}
    last_info: dict[str, Any] = {}
    collector = LabelTopicCollector(label_prefix)
    notes: list[str] = []
    wanted = list(audio) + list(images) + sorted({i for i in needs_info.values() if i}) + list(label_topics)
    for item in read_bag(bag, topics=wanted):
        mt = types[item.topic]
        try:
            if mt == AUDIO_INFO:
                last_info[item.topic] = item.message
            elif item.topic in chunks:
                if mt == AUDIO_TYPES[0]:
                    if needs_info[item.topic] not in last_info:
                        continue                        # no format yet: cannot decode (the node drops it too)
                    chunk = M.audio_to_array(item.message, last_info[needs_info[item.topic]])
                else:
                    chunk = M.naoqi_audio_to_array(item.message)
                chunks[item.topic].append((M.header_stamp_ns(item.message), chunk.samples, chunk.sample_rate))
            elif item.topic in frames:
                convert = M.image_to_array if mt == IMAGE_TYPES[0] else M.compressed_image_to_array
                frames[item.topic].append((M.header_stamp_ns(item.message), np.array(convert(item.message))))
            else:
                collector.add(item.topic, mt, item.log_time_ns, item.message)
        except M.MalformedMessage as exc:
            notes.append(f'{item.topic}: message at {item.log_time_ns} ns skipped ({exc})')
    return chunks, frames, collector, notes


def _assemble_audio(bag: Path, topic: str, cs: list, t0: int, notes: list[str]) -> tuple[np.ndarray, int]:
    """Return ``(samples (n, channels) at media time, sample rate)`` of one topic's chunks; notes what was cut."""
    rates = {r for _, _, r in cs}
    channels = {x.shape[1] for _, x, _ in cs}
    if len(rates) > 1 or len(channels) > 1:
        raise ExportError(f'{bag}: audio topic {topic} changes format (rates {sorted(rates)}, channels '
                          f'{sorted(channels)}); one WAV needs one format')
    rate, ch = rates.pop(), channels.pop()
    end = max(int(round((s - t0) * rate / _NS)) + x.shape[0] for s, x, _ in cs)
    wav = np.zeros((max(end, 0), ch), np.float32)
    cut = 0
    for s, x, _ in cs:
        i = int(round((s - t0) * rate / _NS))
        if i < 0:
            cut += min(-i, x.shape[0])
            x, i = x[-i:], 0
        wav[i:i + x.shape[0]] = x
    if cut:
        notes.append(f'{topic}: {cut} samples stamped before the bag start were cut')
    return wav, int(rate)


@dataclasses.dataclass
class BagAudio:
    """One audio topic of a bag as a waveform at media time (sample 0 = the bag start) and its label topics."""

    topic: str
    samples: np.ndarray                  # (n, channels) float32
    sample_rate: int
    start_ns: int                        # the bag start: media time 0
    end_ns: int
    label_segments: list                 # LabelSegment s of the bag's label topics (header time)
    notes: list[str]


def read_audio(bag: str | Path, topic: str | None = None, *, label_prefix: str = '/labels/') -> BagAudio:
    """
    Read one audio topic of ``bag`` as :func:`export_media` writes its WAV (same offset rule), with its label topics.

    ``topic``: default the first of the runtime's default audio topics the bag has
    (``/audio``, ``/naoqi_driver/audio``), else its first audio topic. Raises
    :class:`ExportError` when the bag has no (decodable) audio topic.
    """
    from .topics import DEFAULT_TOPICS
    bag = Path(bag)
    info, types, audio, _, label_topics = _bag_topics(bag, label_prefix)
    if topic is None:
        preferred = [t for t in DEFAULT_TOPICS['audio'] if t in audio]
        if not (preferred or audio):
            raise ExportError(f'{bag}: no audio topic ({", ".join(AUDIO_TYPES)}); topics: '
                              f'{", ".join(sorted(types)) or "none"}')
        topic = (preferred or audio)[0]
    elif topic not in audio:
        raise ExportError(f'{bag}: {topic} is not an audio topic of the bag (audio topics: '
                          f'{", ".join(audio) or "none"})')
    needs_info = _needs_info(bag, types, [topic])
    chunks, _, collector, notes = _read_streams(bag, types, [topic], [], needs_info, label_topics, label_prefix)
    if not chunks[topic]:
        raise ExportError(f'{bag}: {topic}: no decodable audio (AudioInfo missing before the data?)')
    wav, rate = _assemble_audio(bag, topic, chunks[topic], info.start_ns, notes)
    return BagAudio(topic, wav, rate, info.start_ns, info.end_ns, collector.segments(info.end_ns), notes)


def export_media(bag: str | Path, out: str | Path, *, tasks: Sequence[str] = ('gesture', 'speech', 'emotion'),
                 labels: Sequence[str] | None = None, fps: float | None = None, label_prefix: str = '/labels/',
                 progress: bool = False) -> dict:
    """
    Export ``bag`` into ``out`` (see the module docstring); returns the ``media.yaml`` content.

    Raises :class:`ExportError` when the bag has no audio or image topic, or an audio
    topic has no AudioInfo to say its format.
    """
    import yaml

    from centralnet_ros.config import atomic_write_text
    from .label_import import load_labels
    bag = Path(bag)
    out = Path(out)
    info, types, audio, images, label_topics = _bag_topics(bag, label_prefix)
    if not audio and not images:
        raise ExportError(f'{bag}: no audio ({", ".join(AUDIO_TYPES)}) or image ({", ".join(IMAGE_TYPES)}) topic; '
                          f'topics: {", ".join(sorted(types)) or "none"}')
    needs_info = _needs_info(bag, types, audio)
    out.mkdir(parents=True, exist_ok=True)
    t0 = info.start_ns
    chunks, frames, collector, notes = _read_streams(bag, types, audio, images, needs_info, label_topics,
                                                     label_prefix)
    written: dict[str, dict] = {}
    media: list[Path] = []
    for topic, cs in chunks.items():
        if not cs:
            notes.append(f'{topic}: no decodable audio (AudioInfo missing before the data?)')
            continue
        wav, rate = _assemble_audio(bag, topic, cs, t0, notes)
        path = _write_wav(out / _file_name(topic, '.wav'), wav, rate)
        media.append(path)
        written[topic] = {'file': path.name, 'kind': 'audio', 'sample_rate': int(rate), 'channels': int(wav.shape[1]),
                          'samples': int(wav.shape[0]), 'chunks': len(cs)}
    for topic, fs in frames.items():
        if not fs:
            continue
        fs.sort(key=lambda f: f[0])
        rate = fps
        if rate is None:
            gaps = np.diff([s for s, _ in fs])
            gaps = gaps[gaps > 0]
            rate = float(np.clip(round(_NS / np.median(gaps), 3), 1.0, 120.0)) if len(gaps) else 10.0
        end = max(info.end_ns, fs[-1][0])
        path = out / _file_name(topic, '.mp4')
        written[topic] = {'file': path.name, 'kind': 'video', **_write_video(path, fs, t0_ns=t0, end_ns=end, fps=rate)}
        media.append(path)
    segments = load_labels(labels, bag_start_ns=t0) if labels else collector.segments(info.end_ns)
    eaf = write_eaf(out / f'{bag.name}.eaf', media=media, bag_start_ns=t0,
                    tiers=list(dict.fromkeys(list(tasks) + [s.task for s in segments])), segments=segments)
    report = {'bag': str(bag), 'bag_start_ns': int(t0), 'eaf': eaf.name, 'media': written,
              'labels': ('files: ' + ', '.join(map(str, labels))) if labels else
              (f'bag topics ({len(segments)} segments)' if segments else 'none'),
              'offset_rule': 'media time 0 = bag start (recording time of the first message); a sample or frame '
                             'stamped s is at media time s - bag_start; an annotation at media time t is header '
                             'time bag_start + t', 'notes': notes}
    atomic_write_text(out / 'media.yaml', yaml.safe_dump(report, sort_keys=False))
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('bag', help='rosbag2 recording (folder or .mcap)')
    parser.add_argument('--out', required=True, help='folder for the WAV/MP4 files, the .eaf and media.yaml')
    parser.add_argument('--tasks', nargs='+', default=['gesture', 'speech', 'emotion'],
                        help='one ELAN tier per task')
    parser.add_argument('--labels', nargs='+', default=None, metavar='[TASK=]FILE',
                        help='label files to pre-fill the tiers with (default: the /labels/<task> topics)')
    parser.add_argument('--fps', type=float, default=None, help="video frame rate (default: each topic's median)")


def run(args: argparse.Namespace) -> int:
    from .labels import LabelFileError
    from .msgdefs import BagReadError
    try:
        report = export_media(args.bag, args.out, tasks=args.tasks, labels=args.labels, fps=args.fps)
    except (ExportError, BagReadError, LabelFileError) as exc:
        print(f'centralnet export-media: {exc}', file=sys.stderr)
        return 2
    for topic, m in report['media'].items():
        what = (f'{m["sample_rate"]} Hz, {m["channels"]} ch, {m["samples"] / m["sample_rate"]:.1f} s'
                if m['kind'] == 'audio' else f'{m["fps"]:g} fps, {m["frames"]} frames, {m["size"][0]}x{m["size"][1]}')
        print(f'{topic:<30} -> {m["file"]} ({what})')
    for note in report['notes']:
        print(f'note: {note}')
    print(f'ELAN: {Path(args.out) / report["eaf"]} (media time 0 = bag start {report["bag_start_ns"]} ns; '
          f'labels: {report["labels"]})')
    return 0
