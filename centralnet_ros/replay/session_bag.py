"""
Write a recording session as a rosbag2: utterances (audio, optionally lip frames) one after the other.

This is how benchmarks and tests stand in for a user's ``ros2 bag record`` of their
robot: a continuous microphone stream (``/audio``, ``audio_common_msgs/AudioDataStamped``
in 20 ms chunks, as ``microphone_node`` publishes, with ``/audio_info``), silence
between utterances, optional camera frames (``/image``, ``sensor_msgs/Image`` mono8)
during each utterance, header stamps equal to recording times, and the ground truth
as a label file (``labels.yaml``, seconds from the bag start) and/or as
``/labels/<task>`` ``std_msgs/String`` messages.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ['Utterance', 'SessionBag', 'write_session_bag', 'T0_NS', 'espeak_letter']

_NS = 1_000_000_000
T0_NS = 1_767_225_600 * _NS          # 2026-01-01T00:00:00Z: the first message's stamp


def espeak_letter(letter: str, voice: str, *, speed: int | None = None, pitch: int | None = None
                  ) -> tuple[np.ndarray, int] | None:
    """
    Speak one letter with espeak-ng (``voice`` e.g. ``en-us``, ``en+f3``): ``(float32 waveform, sample rate)``.

    ``speed`` (words per minute, espeak's ``-s``) and ``pitch`` (0-99, ``-p``) vary
    the delivery. Returns None when espeak-ng is not installed.
    """
    import shutil
    import subprocess
    import tempfile

    from centralnet_ros.data.wav import read_pcm_wav
    exe = shutil.which('espeak-ng')
    if exe is None:
        return None
    args = [exe, '-v', voice, '-m']
    if speed is not None:
        args += ['-s', str(int(speed))]
    if pitch is not None:
        args += ['-p', str(int(pitch))]
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / 'letter.wav'
        ssml = f'<speak><say-as interpret-as="characters">{letter}</say-as></speak>'
        subprocess.run(args + ['-w', str(wav), ssml], check=True, capture_output=True, timeout=30)
        x, rate = read_pcm_wav(wav)
    return x, rate


@dataclasses.dataclass
class Utterance:
    """One labelled utterance: mono audio at ``sample_rate`` and/or ``(T, H, W)`` uint8 frames at ``fps``."""

    label: str
    audio: np.ndarray | None = None
    sample_rate: int = 16000
    frames: np.ndarray | None = None
    fps: float = 25.0


@dataclasses.dataclass
class SessionBag:
    path: Path
    labels: Path | None
    segments: list[dict]                   # {'task', 'start_s', 'end_s', 'label'}, seconds from the bag start
    duration_s: float


def write_session_bag(path: str | Path, utterances: Sequence[Utterance], *, task: str = 'speech',
                      sample_rate: int = 16000, gap_s: float = 1.0, lead_s: float = 0.5, tail_s: float = 0.6,
                      label_file: bool = True, label_topic: bool = False, storage: str = 'sqlite3',
                      noise: np.ndarray | None = None) -> SessionBag:
    """
    Write ``path`` (a new rosbag2 folder) and, with ``label_file``, ``<path>.labels.yaml`` beside it.

    Each utterance's segment runs from its start to ``tail_s`` after its end (the
    voice detector decides after its hangover). ``noise``: a mono stream at
    ``sample_rate`` added to the whole microphone signal (tiled), e.g. room noise.
    """
    import yaml

    from centralnet_ros import messages as M
    from centralnet_ros.config import atomic_write_text
    from centralnet_ros.features.audio import resample_audio
    from . import msgdefs as D
    path = Path(path)
    factory = D.typestore_factory()
    messages: list[tuple[int, int, str, str, object]] = []

    def add(t_s: float, topic: str, msgtype: str, msg) -> None:
        messages.append((T0_NS + int(round(t_s * _NS)), len(messages), topic, msgtype, msg))

    t = lead_s
    placed, segments = [], []
    for u in utterances:
        length = 0.0
        if u.audio is not None:
            x = np.asarray(u.audio, np.float32).reshape(-1)
            if u.sample_rate != sample_rate:
                x = resample_audio(x, orig_sample_rate=u.sample_rate, new_sample_rate=sample_rate)
            placed.append((t, x))
            length = x.size / sample_rate
        if u.frames is not None:
            for k, frame in enumerate(np.asarray(u.frames, np.uint8)):
                stamp = t + k / u.fps
                add(stamp, '/image', 'sensor_msgs/msg/Image',
                    M.build_image(factory, frame, encoding='mono8', stamp_ns=T0_NS + int(round(stamp * _NS)),
                                  frame_id='camera'))
            length = max(length, len(u.frames) / u.fps)
        seg = {'task': task, 'start_s': round(t, 6), 'end_s': round(t + length + tail_s, 6), 'label': str(u.label)}
        segments.append(seg)
        if label_topic:
            add(seg['start_s'], f'/labels/{task}', 'std_msgs/msg/String', factory('std_msgs/msg/String', data=u.label))
            add(seg['end_s'], f'/labels/{task}', 'std_msgs/msg/String', factory('std_msgs/msg/String', data=''))
        t += length + gap_s
    n = int(np.ceil(t * sample_rate))
    wave = np.zeros(n, np.float32)
    for start, x in placed:
        i = int(round(start * sample_rate))
        wave[i:i + x.size] += x[: max(0, n - i)]
    if noise is not None and len(noise):
        wave += np.resize(np.asarray(noise, np.float32), n)
    np.clip(wave, -1.0, 1.0, out=wave)
    chunk = int(round(0.02 * sample_rate))
    for k in range(0, n - chunk + 1, chunk):
        msg, info = M.build_audio(factory, wave[k:k + chunk, None], sample_rate=sample_rate,
                                  stamp_ns=T0_NS + k * _NS // sample_rate, sample_format='S16LE', frame_id='microphone')
        if k == 0:
            add(0.0, '/audio_info', 'audio_common_msgs/msg/AudioInfo', info)
        add(k / sample_rate, '/audio', 'audio_common_msgs/msg/AudioDataStamped', msg)
    messages.sort(key=lambda m: (m[0], m[1]))
    D.write_bag(path, ((topic, mt, stamp, msg) for stamp, _, topic, mt, msg in messages), storage=storage)
    labels = None
    if label_file:
        labels = path.parent / f'{path.name}.labels.yaml'
        atomic_write_text(labels, yaml.safe_dump({'time_base': 'bag_start', 'segments': segments}, sort_keys=False))
    return SessionBag(path, labels, segments, t)
