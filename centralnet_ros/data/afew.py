"""
AFEW (Acted Facial Expressions in the Wild; Dhall et al., EmotiW), read from its video clips.

Layout under the dataset folder (``<data root>/afew``), as the EmotiW challenge distributes it::

    Train_AFEW/{Angry,Disgust,Fear,Happy,Neutral,Sad,Surprise}/{clip}.avi
    Val_AFEW/{Angry,...}/{clip}.avi
    (optional) {split}/{emotion}/{clip}.wav    the clip's sound track, extracted beforehand

Clips are short movie excerpts (about 1-5 s, 25 fps) with one emotion label each.  Frames
are read with OpenCV.  OpenCV does not decode sound, so each clip's audio comes from a
``.wav`` beside it, or from the ``.avi`` through ``ffmpeg`` when that program is on the
PATH (``sudo apt-get install ffmpeg``); without either the audio modality is absent.  Labels
use the order of :data:`EMOTIONS` (the paper's AFEW setup, ``config/experiments/afew.yaml``).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
import shutil
import subprocess

from centralnet_ros.data.registry import DataRootError, DatasetSummary
from centralnet_ros.data.wav import read_pcm_wav
import cv2
import numpy as np

EMOTIONS = ('Angry', 'Disgust', 'Fear', 'Happy', 'Neutral', 'Sad', 'Surprise')
CLASS_NAMES = EMOTIONS
SPLITS = {'train': 'Train_AFEW', 'val': 'Val_AFEW'}
LAYOUT = '<root>/{Train_AFEW,Val_AFEW}/{Angry,Disgust,Fear,Happy,Neutral,Sad,Surprise}/*.avi (+ optional .wav)'
MAX_FRAMES = 2000          # a longer "clip" is not an AFEW excerpt


@dataclasses.dataclass(frozen=True)
class Clip:
    split: str
    emotion: str
    path: Path

    @property
    def label(self) -> int:
        return EMOTIONS.index(self.emotion)


def list_clips(root: Path) -> list[Clip]:
    root = Path(root)
    if not root.is_dir():
        raise DataRootError(f'AFEW folder {root} does not exist; expected {LAYOUT}')
    clips = []
    for split, folder in SPLITS.items():
        base = root / folder
        if not base.is_dir():
            continue
        for edir in sorted(p for p in base.iterdir() if p.is_dir()):
            if edir.name not in EMOTIONS:
                raise DataRootError(f'{edir}: emotion folders are {", ".join(EMOTIONS)}')
            clips.extend(Clip(split, edir.name, p) for p in sorted(edir.glob('*.avi')))
    if not clips:
        raise DataRootError(f'no clip under {root}; expected {LAYOUT}')
    return clips


def read_frames(clip: Clip) -> tuple[np.ndarray, float]:
    """Return the clip's frames ``(T, H, W, 3)`` uint8 RGB and its frame rate."""
    cap = cv2.VideoCapture(str(clip.path))
    if not cap.isOpened():
        raise DataRootError(f'{clip.path}: OpenCV cannot open this video')
    fps = float(cap.get(cv2.CAP_PROP_FPS)) or 25.0
    frames = []
    try:
        while len(frames) <= MAX_FRAMES:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()
    if not frames:
        raise DataRootError(f'{clip.path}: no frame could be decoded')
    if len(frames) > MAX_FRAMES:
        raise DataRootError(f'{clip.path}: more than {MAX_FRAMES} frames; AFEW clips are a few seconds long')
    return np.stack(frames), fps


def read_audio(clip: Clip, *, sample_rate: int = 16000) -> tuple[np.ndarray, int] | None:
    """
    Return ``(samples float32 mono, sample_rate)`` from the clip's ``.wav`` or through ffmpeg; None without either.

    A ``.wav`` is returned at its own rate; ffmpeg decodes at ``sample_rate``.
    """
    wav = clip.path.with_suffix('.wav')
    if wav.is_file():
        samples, rate = read_pcm_wav(wav)
        return samples, rate
    ffmpeg = shutil.which('ffmpeg')
    if ffmpeg is None:
        return None
    proc = subprocess.run([ffmpeg, '-v', 'error', '-i', str(clip.path), '-vn', '-ac', '1', '-ar', str(sample_rate),
                           '-f', 's16le', '-'], capture_output=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise DataRootError(f'{clip.path}: ffmpeg could not decode the sound track: '
                            f'{proc.stderr.decode(errors="replace").strip()[:200]}')
    return np.frombuffer(proc.stdout, '<i2').astype(np.float32) / 32768.0, sample_rate


def summarize(root: Path) -> DatasetSummary:
    clips = list_clips(root)
    counts: dict[str, dict[str, int]] = {}
    audio = frames = 0
    for clip in clips:
        video, _ = read_frames(clip)
        frames += len(video)
        if read_audio(clip) is not None:
            audio += 1
        column = counts.setdefault(clip.split, {})
        column[clip.emotion] = column.get(clip.emotion, 0) + 1
    notes = [] if audio == len(clips) else [f'{len(clips) - audio} clips have no audio: put a .wav beside each '
                                            'clip or install ffmpeg']
    return DatasetSummary(name='afew', root=str(root), counts=counts,
                          modalities={'video': f'{len(clips)} clips, {frames} frames',
                                      'audio': f'{audio}/{len(clips)} clips'}, notes=notes)
