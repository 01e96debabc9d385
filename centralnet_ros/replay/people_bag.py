"""
A rosbag2 recording of two people in view, published the ROS4HRI way (REP-155), from real samples.

Bodies: MSRC-12 recordings of two held-out persons (default p11 and p12, whom the
shipped gesture bundles never saw), placed side by side 2.5 m in front of a robot's
camera (1.1 m high, 640x480, focal 550 px) and projected onto ``hri_msgs/Skeleton2D``
keypoints (2 px detector noise) on ``/humans/bodies/<id>/skeleton2d`` at the recording's
~30 Hz, both gesturing at the same time; ``/humans/bodies/tracked`` (``hri_msgs/IdsList``,
10 Hz) lists who is in view.  Halfway the second person leaves the view and comes back
under a new id (a tracker losing someone), so one id goes and another comes.
Voices: EmoDB utterances of two held-out speakers on ``/humans/voices/<id>/audio``
(``audio_common_msgs/AudioDataStamped``, 16 kHz, 20 ms chunks, with ``.../audio_info``),
each voice listed on ``/humans/voices/tracked`` while it speaks.

With ``associate``, a person manager's output is recorded too (REP-155): person ``p1`` is the
first body and the first voice (latched ``/humans/persons/p1/body_id`` = ``b1`` and
``voice_id`` = ``v1``, ``std_msgs/String``; ``/humans/persons/tracked`` at 10 Hz).

The ground truth is per person (``people_labels.yaml``: ``person`` = ``bodies:<id>`` or
``voices:<id>``, or ``persons:p1`` for the associated ones, task, segment, label), since two
people do different things at the same time.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
import shutil
from typing import Any

import numpy as np

_NS = 1_000_000_000
T0_NS = 1_700_000_000 * _NS
AUDIO_RATE = 16000
CHUNK_S = 0.02
TRACKED_HZ = 10.0

__all__ = ['PeopleBag', 'build_people_bag']


@dataclasses.dataclass
class PeopleBag:
    path: Path
    labels: Path
    duration_s: float
    counts: dict[str, int]
    segments: list[dict]


def _scene_camera():
    from centralnet_ros.features.skeleton2d import look_at_camera
    # Kinect space: the camera at the origin 1.1 m above the floor (floor at y = -1.07 m as in MSRC-12)
    return look_at_camera(np.array([0.0, 0.03, 0.0]), np.array([0.0, -0.2, 2.5]), fx=550.0, fy=550.0, cx=320.0,
                          cy=240.0, width=640, height=480)


def _body_track(seqs, x_offset: float, gestures: int, skip: int = 0, after_s: float = 0.5):
    """Frames ``(t_s, joints)`` of ``gestures`` recordings played one after the other, and their labels."""
    from centralnet_ros.data import msrc12
    frames, labels, t = [], [], 0.5
    picked, seen = {}, set()
    for s in seqs:
        if s.info.gesture in seen or not s.action_times.size:
            continue
        seen.add(s.info.gesture)
        if len(seen) > skip:
            picked[s.info.gesture] = s
        if len(picked) == gestures:
            break
    for g, s in picked.items():
        tracked = s.tracked
        stamps = s.timestamps[tracked] / 1e6
        joints = s.positions[tracked].astype(np.float64)
        ap = s.action_times[0] / 1e6
        keep = (stamps >= ap - 5.0) & (stamps <= ap + after_s + 1.0)
        if keep.sum() < 10:
            continue
        hip = joints[keep][:, 0].mean(axis=0)
        shift = np.array([x_offset - hip[0], 0.0, 2.5 - hip[2]])
        offset = t - stamps[keep][0]
        for ts, j in zip(stamps[keep], joints[keep]):
            frames.append((ts + offset, j + shift))
        ref = ap + offset + after_s
        labels.append(('gesture', ref - 0.3, ref + 0.3, msrc12.GESTURES[g - 1]))
        t = stamps[keep][-1] + offset + 1.0 / 30
    return frames, labels


def build_people_bag(out: Path, *, data_root: Path, storage: str = 'sqlite3', persons: tuple[int, int] = (11, 12),
                     speakers: tuple[int, int] = (14, 3), gestures: int = 2, utterances: int = 2,
                     seed: int = 0, associate: bool = False) -> PeopleBag:
    """Write ``out/people_bag`` (rosbag2) and ``out/people_labels.yaml``; see the module docstring."""
    import yaml

    from centralnet_ros import messages as M
    from centralnet_ros.config import atomic_write_text
    from centralnet_ros.data import emodb, msrc12
    from centralnet_ros.features import skeleton2d as s2d
    from centralnet_ros.features.audio import resample_audio
    from . import msgdefs as D
    rng = np.random.default_rng(seed)
    factory = D.typestore_factory()
    cam = _scene_camera()
    msgs: list[tuple[int, int, str, str, Any]] = []
    segments: list[dict] = []

    def add(t_s: float, topic: str, msgtype: str, msg: Any) -> None:
        msgs.append((T0_NS + int(round(t_s * _NS)), len(msgs), topic, msgtype, msg))

    def stamp(t_s: float) -> int:
        return T0_NS + int(round(t_s * _NS))

    # ---- bodies
    root = Path(data_root)
    presence: dict[str, tuple[float, float]] = {}
    end = 0.0
    for k, person in enumerate(persons):
        seqs = msrc12.load_sequences(root / 'msrc12', persons=[person])
        frames, labels = _body_track(seqs, (-0.7, 0.7)[k % 2], gestures, skip=k * gestures)
        ids = [f'b{k + 1}']
        if k == 1 and frames:                    # the second person is lost halfway and re-found as a new id
            ids.append(f'b{len(persons) + 1}')
        cut = frames[len(frames) // 2][0] if k == 1 and frames else None
        kp = s2d.corrupt_keypoints(s2d.kinect_to_skeleton2d(np.stack([j for _, j in frames]), cam), rng,
                                   dropout=0.0, limb_dropout=0.0, confidence=(0.8, 1.0))
        for (t, _), points in zip(frames, kp):
            body = ids[0] if cut is None or t < cut else ids[1]
            if cut is not None and cut <= t < cut + 0.5:
                continue                              # out of view for half a second
            add(t, f'/humans/bodies/{body}/skeleton2d', 'hri_msgs/msg/Skeleton2D',
                M.build_skeleton2d(factory, points, stamp_ns=stamp(t), frame_id='camera'))
            lo, hi = presence.get(body, (t, t))
            presence[body] = (min(lo, t), max(hi, t))
        for task, lo, hi, label in labels:
            body = ids[0] if cut is None or hi < cut else ids[1]
            segments.append({'person': f'bodies:{body}', 'task': task, 'start_s': round(float(lo), 6),
                             'end_s': round(float(hi), 6), 'label': label})
        end = max(end, frames[-1][0] if frames else 0.0)
    # ---- voices
    voice_span: dict[str, tuple[float, float]] = {}
    t_voice = 0.8
    waves = []
    for k, speaker in enumerate(speakers):
        vid = f'v{k + 1}'
        utts = [u for u in emodb.list_utterances(root / 'emodb') if u.speaker == speaker]
        picked, seen = [], set()
        for u in utts:
            if u.emotion not in seen:
                seen.add(u.emotion)
                picked.append(u)
            if len(picked) == utterances:
                break
        for u in picked:
            x, rate = emodb.read_wav(u.path)
            if rate != AUDIO_RATE:
                x = resample_audio(x, orig_sample_rate=rate, new_sample_rate=AUDIO_RATE)
            start = t_voice
            waves.append((vid, start, x.astype(np.float32)))
            stop = start + x.size / AUDIO_RATE
            emotion = dict(zip(emodb.EMOTION_LETTERS, emodb.EMOTIONS))[u.emotion]
            segments.append({'person': f'voices:{vid}', 'task': 'emotion', 'start_s': round(float(start), 6),
                             'end_s': round(float(stop) + 0.6, 6), 'label': emotion})
            lo, hi = voice_span.get(vid, (start, stop))
            voice_span[vid] = (min(lo, start), max(hi, stop))
            t_voice = stop + 1.0
    for vid, (lo, hi) in voice_span.items():
        # a voice's stream: 0.3 s of silence around its utterances, only while it is tracked
        a, b = lo - 0.3, hi + 0.9
        n = int(round((b - a) * AUDIO_RATE))
        wave = np.zeros(n, np.float32)
        for v, start, x in waves:
            if v == vid:
                i = int(round((start - a) * AUDIO_RATE))
                wave[i:i + x.size] += x[: max(0, n - i)]
        wave += rng.normal(0.0, 1e-3, n).astype(np.float32)          # a microphone's noise floor
        chunk = int(round(CHUNK_S * AUDIO_RATE))
        for j in range(0, n - chunk + 1, chunk):
            t = a + j / AUDIO_RATE
            msg, info = M.build_audio(factory, wave[j:j + chunk, None], sample_rate=AUDIO_RATE, stamp_ns=stamp(t),
                                      frame_id='microphone')
            if j == 0:
                add(t, f'/humans/voices/{vid}/audio_info', 'audio_common_msgs/msg/AudioInfo', info)
            add(t, f'/humans/voices/{vid}/audio', 'audio_common_msgs/msg/AudioDataStamped', msg)
        presence[f'voice:{vid}'] = (a, b)
        end = max(end, b)
    # ---- tracked lists
    for t in np.arange(0.0, end + 0.5, 1.0 / TRACKED_HZ):
        bodies = [b for b, (lo, hi) in presence.items() if not b.startswith('voice:') and lo - 0.05 <= t <= hi]
        voices = [v[6:] for v, (lo, hi) in presence.items() if v.startswith('voice:') and lo <= t <= hi]
        add(float(t), '/humans/bodies/tracked', 'hri_msgs/msg/IdsList',
            M.build_ids_list(factory, ids=sorted(bodies), stamp_ns=stamp(float(t))))
        add(float(t), '/humans/voices/tracked', 'hri_msgs/msg/IdsList',
            M.build_ids_list(factory, ids=sorted(voices), stamp_ns=stamp(float(t))))
    if associate:                                # a person manager: p1 is body b1 and voice v1
        for name, entity in (('body_id', 'b1'), ('voice_id', 'v1')):
            add(0.0, f'/humans/persons/p1/{name}', 'std_msgs/msg/String', factory('std_msgs/msg/String', data=entity))
        for t in np.arange(0.0, end + 0.5, 1.0 / TRACKED_HZ):
            add(float(t), '/humans/persons/tracked', 'hri_msgs/msg/IdsList',
                M.build_ids_list(factory, ids=['p1'], stamp_ns=stamp(float(t))))
        for seg in segments:
            if seg['person'] in ('bodies:b1', 'voices:v1'):
                seg['person'] = 'persons:p1'
    msgs.sort(key=lambda m: (m[0], m[1]))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bag = out / 'people_bag'
    if bag.exists():
        shutil.rmtree(bag)
    D.write_bag(bag, ((topic, mt, t, msg) for t, _, topic, mt, msg in msgs), storage=storage)
    counts: dict[str, int] = {}
    for _, _, topic, _, _ in msgs:
        counts[topic] = counts.get(topic, 0) + 1
    labels = out / 'people_labels.yaml'
    atomic_write_text(labels, '# Per-person ground truth of people_bag: seconds from T0 (the bag start).\n'
                      + yaml.safe_dump({'time_base': 'bag_start', 'segments': segments}, sort_keys=False))
    return PeopleBag(bag, labels, end, counts, segments)
