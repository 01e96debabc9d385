"""
``centralnet demo``: a rosbag2 recording built from held-out real samples, replayed with the default models.

What the bag holds (all header stamps equal to the recording time, 2023-11-14 onwards):

================  =====================================  ===================================================
block             topics                                  source (samples the shipped model was not trained on)
================  =====================================  ===================================================
gesture           ``/skeleton`` geometry_msgs/PoseArray  MSRC-12 recordings of the bundle's test persons
                  (20 Kinect v1 joints, ~30 Hz)           (``evaluation.test_persons``): for each gesture
                                                          class, the first action points of one recording
speech            ``/image`` sensor_msgs/Image mono8      AVLetters lip sequences (60x80, 25 fps) of the
                  ``/audio`` AudioDataStamped S16LE       bundle's test split; AVLetters has no waveforms,
                                                          so the letter is spoken by espeak-ng (British
                                                          English) and centred in the lip sequence's span
                                                          (no espeak-ng: lips only, audio absent)
emotion           ``/audio`` AudioDataStamped S16LE       EmoDB utterances of the bundle's test speakers
                                                          (``evaluation.test_speaker``), one or two per
                                                          emotion
================  =====================================  ===================================================

``/audio`` is one continuous 16 kHz mono S16LE stream in 20 ms chunks (digital silence
between utterances) and ``/audio_info`` its AudioInfo, as the project's microphone node
publishes with its defaults (the 22.05 kHz of espeak-ng and of this EmoDB copy is
resampled with :func:`centralnet_ros.features.audio.resample_audio`, the readers'
function). The ground truth goes to ``labels.yaml`` (time segments, see
:mod:`centralnet_ros.replay.labels`); the bag is then replayed exactly as
``centralnet replay BAG --labels labels.yaml`` does, and the decisions the robot would
have published are printed with their accuracy and latency.

Which samples are held out is read from each bundle's manifest (``evaluation``:
``test_persons`` for gesture; ``test_speakers`` / ``test_speaker``, or ``split_seed``
and ``test_samples`` of the speaker-dependent split, for speech; ``test_speaker(s)``
for emotion). A task whose bundle is missing, or whose manifest does not say what
was held out, is skipped with a message.

Note on the speech audio: espeak-ng's synthetic voice is far from the AVLetters
speakers the audio branch learnt from (AVLetters ships only the HTK MFCCs of its
recordings), so expect the speech accuracy here well below the bundle's test
figure: the demo exercises the whole path (VAD segment, lips and audio windows,
HTK front end, fusion), it does not re-measure the model on AVLetters.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import os
from pathlib import Path
import re
import shutil
import sys
import time
from typing import Any

from centralnet_ros import paths
from centralnet_ros.data.registry import DataRootError, DATASETS, missing_markers
from centralnet_ros.node_params import TASKS
import numpy as np

__all__ = ['add_arguments', 'run', 'DemoOptions', 'build_demo_bag', 'DemoBag', 'embedded_recording',
           'read_recording_info', 'write_recording']

_NS = 1_000_000_000
T0_NS = 1_700_000_000 * _NS          # 2023-11-14 22:13:20 UTC: the demo's first stamp
AUDIO_RATE = 16000                   # microphone_node's default sample_rate
CHUNK_S = 0.02                       # as the microphone node publishes (chunk_ms 20)
LIPS_FPS = 25.0                      # AVLetters video rate
GAP_S = 1.0                          # silence between utterances

# The embedded recording: package data (so pip's wheel carries it), also installed by colcon as
# share/centralnet_ros/demo_recording; written by tools/make_demo_recording.py.
RECORDING = 'demo_recording'
RECORDING_BAG = 'demo_bag'           # rosbag2 folder (MCAP, zstd chunks)
RECORDING_LABELS = 'labels.yaml'
RECORDING_INFO = 'recording.yaml'    # provenance: samples, held-out rule, terms, the bundles it was built for


@dataclasses.dataclass
class DemoOptions:
    gestures_per_class: int = 2          # action points per gesture class (one recording each)
    letters: int = 26                    # AVLetters test samples (one per letter, in order)
    utterances_per_emotion: int = 2      # EmoDB test utterances per emotion
    voice: str = 'en-gb'                 # espeak-ng voice for the letters
    any_samples: bool = False            # when a manifest does not say what was held out, use the first
    #                                      persons/speakers anyway (benchmarks: timing only, no accuracy claim)


@dataclasses.dataclass
class DemoBag:
    path: Path
    labels: Path
    duration_s: float
    counts: dict[str, int]               # topic -> messages
    notes: list[str]
    tasks: list[str]                     # tasks with content in the bag
    sources: dict[str, dict] = dataclasses.field(default_factory=dict)   # task -> dataset, held out by, files


class _Timeline:
    """Collects messages and ground truth while the blocks are laid out one after the other."""

    def __init__(self) -> None:
        self.messages: list[tuple[int, int, str, str, Any]] = []   # (time, order, topic, type, msg)
        self.segments: list[dict] = []
        self.t = 0.0                   # seconds from T0 where the next block starts
        self.audio: list[tuple[float, np.ndarray]] = []
        self.sources: dict[str, dict] = {}   # task -> dataset, held-out rule, the files the samples come from

    def add(self, t_s: float, topic: str, msgtype: str, msg: Any) -> None:
        self.messages.append((T0_NS + int(round(t_s * _NS)), len(self.messages), topic, msgtype, msg))

    def label(self, task: str, start_s: float, end_s: float, label: str) -> None:
        self.segments.append({'task': task, 'start_s': round(float(start_s), 6), 'end_s': round(float(end_s), 6),
                              'label': str(label)})


# --------------------------------------------------------------------------- held-out samples

def _split_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value]
    return [v.strip() for v in str(value).replace(';', ',').split(',') if v.strip()]


def _gesture_block(tl: _Timeline, manifest, root: Path, opts: DemoOptions, notes: list[str]) -> bool:
    from centralnet_ros import messages as M
    from centralnet_ros.data import msrc12
    from .replay import msgdefs as D
    persons = _split_list(manifest.evaluation.get('test_persons', manifest.evaluation.get('test_person')))
    if not persons and opts.any_samples:
        persons = ['p01']
        notes.append('gesture: the manifest names no test persons; using p01 (may have been trained on)')
    if not persons:
        notes.append('gesture: skipped, the bundle manifest does not name its test persons '
                     '(evaluation.test_persons), so held-out recordings cannot be chosen')
        return False
    person_ids = [msrc12._person_number(p) for p in persons]
    labels = list(manifest.labels)
    files = msrc12.list_files(root / 'msrc12', persons=person_ids)
    window_s = max((m.window_s or 0.0) for m in manifest.modalities.values()) or 2.0
    found = re.search(r'to ([0-9.]+) s after', str(manifest.evaluation.get('protocol', '')))
    after_s = float(found.group(1)) if found else 0.5     # training windows end this long after the point
    chosen: dict[int, tuple[Path, Path]] = {}
    for csv, tag in files:
        g = msrc12.parse_name(csv.name).gesture
        if g not in chosen and msrc12.GESTURES[g - 1] in labels:
            chosen[g] = (csv, tag)
    none = msrc12.NONE_CLASS if msrc12.NONE_CLASS in labels else None
    factory = D.typestore_factory()
    count = 0
    used = []
    for g in sorted(chosen):
        seq = msrc12.read_sequence(*chosen[g])
        tracked = seq.tracked
        stamps_us = seq.timestamps[tracked]
        joints = seq.positions[tracked]
        aps = seq.action_times[: opts.gestures_per_class]
        if not aps.size or stamps_us.size < 2:
            continue
        begin = max(float(stamps_us[0]), float(aps[0]) - (window_s + 3.0) * 1e6)
        end = min(float(stamps_us[-1]), float(aps[-1]) + (after_s + 1.0) * 1e6)
        keep = (stamps_us >= begin) & (stamps_us <= end)
        offset = tl.t - begin / 1e6
        for ts, j in zip(stamps_us[keep], joints[keep]):
            t = ts / 1e6 + offset
            tl.add(t, '/skeleton', 'geometry_msgs/msg/PoseArray',
                   M.build_pose_array(factory, j, stamp_ns=T0_NS + int(round(t * _NS)), frame_id='kinect'))
        name = msrc12.GESTURES[g - 1]
        for ap in aps:
            ref = ap / 1e6 + offset + after_s          # the decision time the training windows end at
            tl.label('gesture', ref - 0.3, ref + 0.3, name)
        if none is not None:                       # decisions whose window lies >= 2.5 s before the first point
            lo = begin / 1e6 + offset + window_s
            hi = aps[0] / 1e6 + offset + after_s - msrc12.NONE_MIN_DISTANCE_S
            if hi - lo >= 0.2:
                tl.label('gesture', lo, hi, none)
        tl.t = end / 1e6 + offset + GAP_S
        count += 1
        used.append(chosen[g][0].name)
    notes.append(f'gesture: {count} MSRC-12 recordings of person(s) {", ".join(persons)} '
                 f'({opts.gestures_per_class} action point(s) each), skeleton at ~30 Hz')
    tl.sources['gesture'] = {'dataset': 'msrc12', 'held_out': f'test persons {", ".join(persons)}',
                             'files': used}
    return count > 0


def _speech_test_samples(manifest, samples: list, notes: list[str], any_samples: bool = False) -> list | None:
    from centralnet_ros.data import avletters
    ev = manifest.evaluation
    speakers = _split_list(ev.get('test_speakers', ev.get('test_speaker')))
    if speakers:
        return [s for s in samples if s.speaker in speakers]
    seed = ev.get('split_seed')
    if seed is not None:
        n_test = int(ev.get('test_samples', 180))
        _, test = avletters.speaker_dependent_split(samples, n_test=n_test, seed=int(seed))
        return [samples[i] for i in test]
    if any_samples:
        notes.append('speech: the manifest names no held-out split; using all samples (may have been trained on)')
        return list(samples)
    notes.append('speech: skipped, the bundle manifest says neither evaluation.test_speakers nor '
                 'evaluation.split_seed, so held-out AVLetters samples cannot be chosen')
    return None


def _speech_block(tl: _Timeline, manifest, root: Path, opts: DemoOptions, notes: list[str]) -> bool:
    from centralnet_ros import messages as M
    from centralnet_ros.data import avletters
    from centralnet_ros.features.audio import resample_audio
    from .replay import msgdefs as D
    from .replay.session_bag import espeak_letter
    samples = avletters.list_samples(root / 'avletters')
    test = _speech_test_samples(manifest, samples, notes, opts.any_samples)
    if test is None:
        return False
    labels = set(manifest.labels)
    picked, seen = [], set()
    for s in test:                                         # one per letter, in alphabetical order
        if s.letter not in seen and s.letter in labels:
            seen.add(s.letter)
            picked.append(s)
    picked.sort(key=lambda s: s.letter)
    picked = picked[: opts.letters]
    factory = D.typestore_factory()
    spoken = 0
    for s in picked:
        lips = avletters.read_lips(s.lips_path)            # (T, 60, 80) uint8
        span = lips.shape[0] / LIPS_FPS
        voice = espeak_letter(s.letter, opts.voice)
        start = tl.t
        audio_len = 0.0
        if voice is not None:
            x, rate = voice
            if rate != AUDIO_RATE:
                x = resample_audio(x, orig_sample_rate=rate, new_sample_rate=AUDIO_RATE)
            audio_len = x.size / AUDIO_RATE
            tl.audio.append((start + max(0.0, (span - audio_len) / 2), x))
            spoken += 1
        for k, frame in enumerate(lips):
            t = start + k / LIPS_FPS
            tl.add(t, '/image', 'sensor_msgs/msg/Image',
                   M.build_image(factory, frame, encoding='mono8', stamp_ns=T0_NS + int(round(t * _NS)),
                                 frame_id='lip_camera'))
        end = start + max(span, audio_len)
        tl.label('speech', start, end + 0.6, s.letter)
        tl.t = end + GAP_S
    how = (f'espeak-ng voice {opts.voice} ({spoken} letters)' if spoken
           else 'no espeak-ng found: lips only, the audio modality is absent')
    notes.append(f'speech: {len(picked)} AVLetters held-out samples (speakers '
                 f'{", ".join(sorted({s.speaker for s in picked}))}), lips 60x80 mono8 at 25 fps; audio: {how}')
    ev = manifest.evaluation
    rule = (f'test speakers {ev.get("test_speakers", ev.get("test_speaker"))}'
            if ev.get('test_speakers', ev.get('test_speaker')) else
            f'test split of the speaker-dependent split (seed {ev.get("split_seed")})')
    tl.sources['speech'] = {'dataset': 'avletters', 'held_out': rule, 'files': [s.lips_path.name for s in picked],
                            'audio': f'espeak-ng, voice {opts.voice}' if spoken else 'none'}
    return bool(picked)


def _emotion_block(tl: _Timeline, manifest, root: Path, opts: DemoOptions, notes: list[str]) -> bool:
    from centralnet_ros.data import emodb
    from centralnet_ros.features.audio import resample_audio
    named = manifest.evaluation.get('test_speakers', manifest.evaluation.get('test_speaker'))
    speakers = {int(re.sub(r'\D', '', s)) for s in _split_list(named) if re.sub(r'\D', '', s)}
    if not speakers and opts.any_samples:
        speakers = {3}
        notes.append('emotion: the manifest names no test speakers; using speaker 03 (may have been trained on)')
    if not speakers:
        notes.append('emotion: skipped, the bundle manifest does not name its test speakers '
                     '(evaluation.test_speakers), so held-out EmoDB utterances cannot be chosen')
        return False
    labels = list(manifest.labels)
    if all(e in labels for e in emodb.EMOTIONS):
        names = dict(zip(emodb.EMOTION_LETTERS, emodb.EMOTIONS))
    elif all(e in labels for e in emodb.EXPRESSIONS):
        names = dict(zip(emodb.EMOTION_LETTERS, emodb.EXPRESSIONS))
    else:
        notes.append(f'emotion: skipped, bundle labels {labels} are neither EmoDB emotions nor ROS4HRI expressions')
        return False
    utts = [u for u in emodb.list_utterances(root / 'emodb') if u.speaker in speakers]
    picked = []
    for letter in emodb.EMOTION_LETTERS:
        picked += [u for u in utts if u.emotion == letter][: opts.utterances_per_emotion]
    for u in picked:
        x, rate = emodb.read_wav(u.path)
        if rate != AUDIO_RATE:
            x = resample_audio(x, orig_sample_rate=rate, new_sample_rate=AUDIO_RATE)
        start = tl.t
        tl.audio.append((start, x))
        end = start + x.size / AUDIO_RATE
        tl.label('emotion', start, end + 0.6, names[u.emotion])
        tl.t = end + GAP_S
    notes.append(f'emotion: {len(picked)} EmoDB utterances of speaker(s) {", ".join(map(str, sorted(speakers)))}')
    tl.sources['emotion'] = {'dataset': 'emodb', 'held_out': f'test speaker(s) {", ".join(map(str, sorted(speakers)))}',
                             'files': [u.path.name for u in picked]}
    return bool(picked)


def build_demo_bag(out: Path, manifests: dict[str, Any], *, data_root: Path, storage: str = 'sqlite3',
                   options: DemoOptions | None = None, compress: bool = False) -> DemoBag:
    """
    Write ``out/demo_bag`` (rosbag2) and ``out/labels.yaml`` for the tasks in ``manifests``.

    ``compress``: zstd MCAP chunks (``storage='mcap'`` only), as the embedded recording is stored.
    """
    import yaml

    from centralnet_ros import messages as M
    from centralnet_ros.config import atomic_write_text
    from .replay import msgdefs as D
    opts = options or DemoOptions()
    tl = _Timeline()
    notes: list[str] = []
    tasks = []
    tl.t = 0.5
    blocks = {'gesture': _gesture_block, 'speech': _speech_block, 'emotion': _emotion_block}
    for task in blocks:
        if task in manifests and blocks[task](tl, manifests[task], data_root, opts, notes):
            tasks.append(task)
    duration = tl.t
    # the continuous microphone stream: silence with the utterances placed in it
    n = int(np.ceil(duration * AUDIO_RATE))
    wave = np.zeros(n, np.float32)
    for start, x in tl.audio:
        i = int(round(start * AUDIO_RATE))
        wave[i:i + x.size] += x[: max(0, n - i)]
    factory = D.typestore_factory()
    chunk = int(round(CHUNK_S * AUDIO_RATE))
    info = None
    for k in range(0, n - chunk + 1, chunk):
        t = k / AUDIO_RATE
        msg, info = M.build_audio(factory, wave[k:k + chunk, None], sample_rate=AUDIO_RATE,
                                  stamp_ns=T0_NS + k * _NS // AUDIO_RATE, sample_format='S16LE',
                                  frame_id='microphone')
        if k == 0:
            tl.add(0.0, '/audio_info', 'audio_common_msgs/msg/AudioInfo', info)
        tl.add(t, '/audio', 'audio_common_msgs/msg/AudioDataStamped', msg)
    tl.messages.sort(key=lambda m: (m[0], m[1]))
    bag = out / 'demo_bag'
    if bag.exists():
        shutil.rmtree(bag)
    D.write_bag(bag, ((topic, mt, t, msg) for t, _, topic, mt, msg in tl.messages), storage=storage,
                compress=compress)
    counts: dict[str, int] = {}
    for _, _, topic, _, _ in tl.messages:
        counts[topic] = counts.get(topic, 0) + 1
    labels = out / 'labels.yaml'
    header = ('# Ground truth of the demo bag (centralnet demo): seconds from the bag start.\n'
              '# gesture: +-0.3 s around action point + 0.5 s (where the training windows end), "none" well\n'
              '# before the first action point; speech/emotion: the utterance plus 0.6 s (the voice detector\n'
              '# decides after 0.3 s of silence).\n')
    atomic_write_text(labels, header + yaml.safe_dump({'time_base': 'bag_start', 'segments': tl.segments},
                                                      sort_keys=False))
    return DemoBag(bag, labels, duration, counts, notes, tasks, {t: tl.sources[t] for t in tasks if t in tl.sources})


# --------------------------------------------------------------------------- the embedded recording

def embedded_recording() -> Path:
    """Return the folder of the recording shipped with the package (package data, else colcon's share/ copy)."""
    candidates = [Path(__file__).resolve().parent / RECORDING, paths.share_dir() / RECORDING]
    for folder in candidates:
        if (folder / RECORDING_BAG / 'metadata.yaml').is_file() and (folder / RECORDING_LABELS).is_file():
            return folder
    raise FileNotFoundError('the embedded demo recording is missing (looked in '
                            + ', '.join(str(c) for c in candidates) + '); this installation lacks its package '
                            'data: reinstall centralnet_ros, or rebuild the recording with --data-root DIR')


def read_recording_info(folder: Path) -> dict:
    """Return the provenance of a demo recording (``recording.yaml``), checked for the keys the demo uses."""
    import yaml
    path = folder / RECORDING_INFO
    try:
        info = yaml.safe_load(path.read_text(encoding='utf-8'))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f'{path}: cannot read the recording description: {exc}') from exc
    if not isinstance(info, dict) or not isinstance(info.get('tasks'), dict):
        raise ValueError(f'{path}: expected a mapping with a tasks: mapping (task -> samples and terms)')
    return info


def _embedded_tasks(info: dict, found: dict[str, tuple[str, Any]], notes: list[str]) -> list[str]:
    """Return the tasks to replay from the embedded recording, with notes on its samples and on bundle mismatches."""
    tasks = []
    for task, (where, manifest) in found.items():
        entry = info['tasks'].get(task)
        if not isinstance(entry, dict):
            notes.append(f'{task}: skipped, the embedded recording has no {task} samples')
            continue
        tasks.append(task)
        audio = f'; audio: {entry["audio"]}' if entry.get('audio') else ''
        notes.append(f'{task}: {len(entry.get("files", []))} {entry.get("dataset", "?")} samples '
                     f'({entry.get("held_out", "?")}{audio}); terms: {entry.get("terms", "?")}')
        if entry.get('bundle_weights_sha256') != manifest.weights_sha256:
            notes.append(f'{task}: the bundle at {where} is not the one the recording was built for, so its samples '
                         "may include that bundle's training data and the figures may be optimistic; rebuild with "
                         '--data-root DIR to hold out what this bundle did not see')
    return tasks


def write_recording(dest: Path, manifests: dict[str, Any], *, data_root: Path, options: DemoOptions | None = None,
                    command: str = '') -> DemoBag:
    """
    Build the embedded recording into ``dest`` (MCAP with zstd chunks, labels, ``recording.yaml``).

    Built beside ``dest`` and renamed into place, so an interrupted build leaves the old recording whole.
    """
    import yaml

    from centralnet_ros.config import atomic_write_text
    dest = Path(dest)
    tmp = dest.with_name(f'.{dest.name}.new')
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    opts = options or DemoOptions()
    demo = build_demo_bag(tmp, manifests, data_root=data_root, storage='mcap', options=opts, compress=True)
    info = {
        'what': 'centralnet demo recording: real samples the shipped bundles were not trained on (held out by '
                'their manifests), laid out one after the other on the topics a robot publishes',
        'command': command,
        'date': _dt.date.today().isoformat(),
        'duration_s': round(demo.duration_s, 3),
        'storage': 'rosbag2 MCAP, zstd-compressed chunks',
        'messages': dict(sorted(demo.counts.items())),
        'options': dataclasses.asdict(opts),
        # the terms of everything the task's bundle learned from (its manifest's data_terms), which
        # include those of the dataset the recording's samples come from
        'tasks': {task: {**demo.sources.get(task, {}), 'terms': manifests[task].data_terms,
                         'bundle_weights_sha256': manifests[task].weights_sha256} for task in demo.tasks},
        'notes': demo.notes,
    }
    atomic_write_text(tmp / RECORDING_INFO, yaml.safe_dump(info, sort_keys=False, allow_unicode=True, width=100))
    old = dest.with_name(f'.{dest.name}.old')
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    tmp.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
    return dataclasses.replace(demo, path=dest / RECORDING_BAG, labels=dest / RECORDING_LABELS)


# --------------------------------------------------------------------------- command

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--out', default='demo-out', help='folder for the replay results (and a rebuilt bag)')
    parser.add_argument('--tasks', nargs='+', default=list(TASKS), metavar='TASK',
                        help='tasks to include')
    parser.add_argument('--bundle', action='append', default=[], metavar='TASK=PATH',
                        help='use this bundle instead of models/<task> (repeatable)')
    parser.add_argument('--data-root', default=None,
                        help='rebuild the recording from the full datasets in this folder instead of replaying the '
                             f'embedded one (so does ${paths.DATA_ROOT_ENV} when it holds the datasets)')
    parser.add_argument('--rebuild', action='store_true',
                        help=f'rebuild from the data root ({paths.DATA_ROOT_DEFAULT})')
    parser.add_argument('--embedded', action='store_true',
                        help=f'replay the embedded recording even when ${paths.DATA_ROOT_ENV} is set')
    rebuild = parser.add_argument_group('when rebuilding')
    rebuild.add_argument('--storage', choices=('sqlite3', 'mcap'), default='sqlite3', help='rosbag2 storage')
    rebuild.add_argument('--letters', type=int, default=DemoOptions.letters, help='AVLetters samples (<= 26)')
    rebuild.add_argument('--gestures-per-class', type=int, default=DemoOptions.gestures_per_class,
                         help='MSRC-12 action points per gesture class')
    rebuild.add_argument('--utterances-per-emotion', type=int, default=DemoOptions.utterances_per_emotion,
                         help='EmoDB utterances per emotion')
    parser.add_argument('--show', type=int, default=12, help='published decisions printed per task')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def _manifests(tasks: list[str], bundles: dict[str, str], notes: list[str]) -> dict[str, tuple[str, Any]]:
    from centralnet_ros import paths
    from centralnet_ros.bundle.io import BundleError, read_manifest
    out = {}
    for task in tasks:
        where = bundles.get(task, str(paths.models_dir() / task))
        if not Path(where).exists():
            notes.append(f'{task}: skipped, no bundle at {where} (train one with `centralnet train --task {task}`)')
            continue
        try:
            manifest = read_manifest(where)
        except BundleError as exc:
            notes.append(f'{task}: skipped, the bundle at {where} is not usable: {exc}')
            continue
        if manifest.task != task:
            notes.append(f'{task}: note, the bundle at {where} declares task {manifest.task}')
        out[task] = (where, manifest)
    return out


def _rebuild_root(args: argparse.Namespace, found: dict[str, tuple[str, Any]], notes: list[str]) -> Path | None:
    """
    Return the data root to rebuild the recording from, or None to replay the embedded recording.

    ``--data-root`` or ``--rebuild``: rebuild (a missing dataset is then an error). Otherwise
    ``$CENTRALNET_DATA_ROOT`` rebuilds when it holds every dataset the bundles were trained on.
    """
    if args.embedded:
        return None
    if args.data_root or args.rebuild:
        return paths.data_root(args.data_root)
    if not os.environ.get(paths.DATA_ROOT_ENV):
        return None
    root = paths.data_root()
    needed = sorted({str(m.evaluation.get('dataset')) for _, m in found.values()} & set(DATASETS))
    missing = [name for name in needed if missing_markers(name, root)]
    if missing:
        notes.append(f'${paths.DATA_ROOT_ENV} is {root}, which lacks {", ".join(missing)}: replaying the embedded '
                     f'recording (`centralnet data check` lists what is looked for)')
        return None
    return root


def run(args: argparse.Namespace) -> int:
    import torch
    torch.set_num_threads(1)
    from .replay.cli import ReplaySetupError, _pairs, build_config, run_replay
    start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    try:
        bundles = _pairs(args.bundle, '--bundle')
    except ReplaySetupError as exc:
        print(f'centralnet demo: {exc}', file=sys.stderr)
        return 2
    found = _manifests(list(args.tasks), bundles, notes)
    if not found:
        print('centralnet demo: no model bundle to demonstrate: ' + '; '.join(notes), file=sys.stderr)
        return 1
    root = _rebuild_root(args, found, notes)
    if root is not None:
        opts = DemoOptions(gestures_per_class=args.gestures_per_class, letters=max(1, min(26, args.letters)),
                           utterances_per_emotion=args.utterances_per_emotion)
        try:
            demo = build_demo_bag(out, {t: m for t, (_, m) in found.items()}, data_root=root, storage=args.storage,
                                  options=opts)
        except (DataRootError, FileNotFoundError) as exc:
            print(f'centralnet demo: {exc} (data root {root}; without --data-root/--rebuild the embedded recording '
                  'is replayed)', file=sys.stderr)
            return 1
        notes += demo.notes
        bag, labels, tasks = demo.path, demo.labels, demo.tasks
        print(f'centralnet demo: a rosbag2 recording rebuilt from held-out real samples under {root}, '
              'replayed through the runtime')
        described = (f'  bag: {demo.path} ({args.storage}, {demo.duration_s:.1f} s, '
                     + ', '.join(f'{c} on {t}' for t, c in sorted(demo.counts.items())) + f'); labels: {demo.labels}')
    else:
        try:
            recording = embedded_recording()
            info = read_recording_info(recording)
        except (FileNotFoundError, ValueError) as exc:
            print(f'centralnet demo: {exc}', file=sys.stderr)
            return 1
        tasks = _embedded_tasks(info, found, notes)
        bag, labels = recording / RECORDING_BAG, recording / RECORDING_LABELS
        print(f'centralnet demo: the embedded recording (held-out real samples; {recording}), '
              'replayed through the runtime')
        described = (f'  bag: {bag} (MCAP, zstd chunks, {info.get("duration_s", 0):.1f} s); labels: {labels}; '
                     f'rebuild it from the full datasets with --data-root DIR')
    for note in notes:
        print(f'  {note}')
    if not tasks:
        print('centralnet demo: no task could be demonstrated (see the notes above)', file=sys.stderr)
        return 1
    print(described)
    built = time.perf_counter() - start
    try:
        cfg, _ = build_config(tasks=tasks, bundles={t: found[t][0] for t in tasks})
        run_, metrics, written = run_replay(bag, cfg, out=out / 'replay', labels=str(labels),
                                            progress=not args.no_progress, command='centralnet demo',
                                            echo=lambda s: print('  ' + s))
    except ReplaySetupError as exc:
        print(f'centralnet demo: {exc}', file=sys.stderr)
        return 2
    from .replay.evaluate import assign_truth
    from .replay.report import format_summary
    truth = assign_truth(run_.results, run_.label_segments)
    print('\nWhat the robot would have published (vision_msgs/Classification on ~/<task>); '
          'the first decisions inside labelled segments:')
    for task in tasks:
        rows = [(r, s) for r, s in zip(run_.results, truth) if r.task == task and r.published]
        labelled = [(r, s) for r, s in rows if s is not None]
        print(f'  {task}: {len(rows)} published of {metrics[task]["decisions"]} decisions '
              f'(threshold {cfg.tasks[task].score_threshold:g}); {len(rows) - len(labelled)} of them outside the '
              f'labelled segments (not scored)')
        for r, s in labelled[: args.show]:
            t = (r.stamp_ns - run_.bag_start_ns) / _NS
            present = '+'.join(m for m, p in r.present.items() if p)
            print(f'    t={t:7.2f} s  {r.label:<24} score {r.score:.2f}  truth {s.label:<24} '
                  f'{"ok" if s.label == r.label else "x ":<2} [{present}] {r.timing["total"] * 1e3:.1f} ms')
    print()
    print(format_summary(metrics, run_))
    print(f'{"bag built" if root is not None else "set-up"} in {built:.1f} s; '
          f'total {time.perf_counter() - start:.1f} s. '
          f'Results: {out / "replay"} ({", ".join(sorted(p.name for p in written.values()))})')
    print(f'Replay it yourself: centralnet replay {bag} --labels {labels} --tasks {" ".join(tasks)}')
    return 0
