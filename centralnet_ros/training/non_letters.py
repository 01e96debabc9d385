"""
"Not a letter": real speech that is no spoken letter, for the speech task's rejection class.

Speakers are split so that evaluation only ever hears speakers no training saw:

===========  =======================  ==========================  ==============================
split        FSDD digits (English)    EmoDB sentences (German)    other
===========  =======================  ==========================  ==============================
train        george, jackson          03, 08                      silence and noise segments
val          lucas                    09, 10                      silence and noise segments
test         nicolas, theo, yweweler  11, 12, 13, 14, 15, 16      --
===========  =======================  ==========================  ==============================

Each clip is one utterance through the runtime's own ``htk_mfcc`` pipeline
(:func:`centralnet_ros.features.speech.mfcc_input`), exactly what the robot computes on
a voice-activity segment.  The silence and noise segments are generated (low-level
white and brown noise, 0.3-1.5 s, seeded): what a voice detector lets through in a
quiet room.  A non-letter utterance is paired with the lip video of a random letter of
the same AVLetters split (a face in front of the camera while something else is said),
so the model cannot recognise the class by its video alone.
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ['NonLetterOptions', 'SPEAKERS', 'NOT_A_LETTER', 'non_letter_mfcc', 'SYNTHETIC_VOICES', 'utterance_mfcc',
           'espeak_letter', 'noise_segment',
           'synthetic_letter_mfcc']

NOT_A_LETTER = 'not_a_letter'

SPEAKERS: dict[str, dict[str, tuple]] = {
    'train': {'fsdd': ('george', 'jackson'), 'emodb': (3, 8)},
    'val': {'fsdd': ('lucas',), 'emodb': (9, 10)},
    'test': {'fsdd': ('nicolas', 'theo', 'yweweler'), 'emodb': (11, 12, 13, 14, 15, 16)},
}


@dataclasses.dataclass
class NonLetterOptions:
    """``dataset_options.not_a_letter`` of an AVLetters preset."""

    fsdd_per_speaker: int = 60          # FSDD clips per speaker (6 per digit)
    emodb_per_speaker: int = 30         # EmoDB utterances per speaker (0: all)
    noise_segments: int = 30            # generated silence / noise segments per split (train, val)
    synthetic_letters: bool = True      # also letters through our front end (espeak-ng, SYNTHETIC_VOICES)
    seed: int = 0
    # the same speakers (and voices) through the runtime's voice-activity windows: a file written by
    # ``centralnet speech-windows`` (relative: under the cache folder); None: whole clips only
    runtime_windows: str | None = None


def utterance_mfcc(wave: np.ndarray, sample_rate: int, *, num_frames: int, mfcc_norm: str = 'none') -> np.ndarray:
    """
    One utterance as the robot computes it: resampled once to the front end's rate, then ``htk_mfcc``.

    Returns ``(1, 26, num_frames)``, what the runtime feeds the speech model for a VAD segment.
    """
    from centralnet_ros.features.audio import resample_audio
    from centralnet_ros.features.htk import AVLETTERS_CONFIG
    from centralnet_ros.features.pipelines import Window
    from centralnet_ros.features.speech import mfcc_input
    rate = int(AVLETTERS_CONFIG.sample_rate)
    x = np.asarray(wave, np.float32)
    if int(sample_rate) != rate:
        x = resample_audio(x, orig_sample_rate=int(sample_rate), new_sample_rate=rate)
    return mfcc_input(Window(x, np.zeros(1, np.int64), sample_rate=rate), num_frames=num_frames, mfcc_norm=mfcc_norm)


def noise_segment(rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """Return a generated silence / noise burst: white or brown noise, 0.3-1.5 s, peak -60 to -25 dBFS."""
    n = int(rng.uniform(0.3, 1.5) * sample_rate)
    white = rng.standard_normal(n)
    x = white if rng.random() < 0.5 else np.cumsum(white) / np.sqrt(np.arange(1, n + 1))   # white or brown
    x = x / (np.abs(x).max() + 1e-9)
    return (x * 10 ** (rng.uniform(-60, -25) / 20)).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _cached(root: str, split: str, fsdd_n: int, emodb_n: int, noise_n: int, seed: int, num_frames: int,
            mfcc_norm: str) -> tuple[np.ndarray, tuple[str, ...]]:
    from centralnet_ros.data import emodb, fsdd
    root_p = Path(root)
    rng = np.random.default_rng([seed, ['train', 'val', 'test'].index(split)])
    clips: list[tuple[np.ndarray, int, str]] = []
    who = SPEAKERS[split]
    by_speaker: dict[str, list] = {}
    for c in fsdd.list_clips(root_p / 'fsdd'):
        by_speaker.setdefault(c.speaker, []).append(c)
    for speaker in who['fsdd']:
        cs = sorted(by_speaker.get(speaker, []), key=lambda c: (c.index, c.digit))[:fsdd_n]
        clips += [(fsdd.read_wav(c.path), fsdd.SAMPLE_RATE, f'fsdd:{speaker}') for c in cs]
    utts: dict[int, list] = {}
    for u in emodb.list_utterances(root_p / 'emodb'):
        utts.setdefault(u.speaker, []).append(u)
    for speaker in who['emodb']:
        us = utts.get(speaker, [])
        if emodb_n:
            us = [us[i] for i in sorted(rng.choice(len(us), size=min(emodb_n, len(us)), replace=False))]
        for u in us:
            wave, sr = emodb.read_wav(u.path)
            clips.append((wave, sr, f'emodb:{speaker:02d}'))
    if split != 'test':
        clips += [(noise_segment(rng, 16000), 16000, 'noise') for _ in range(noise_n)]
    x = np.stack([utterance_mfcc(w, sr, num_frames=num_frames, mfcc_norm=mfcc_norm) for w, sr, _ in clips])
    x.setflags(write=False)
    return x, tuple(src for _, _, src in clips)


def non_letter_mfcc(data_root: Path, split: str, options: NonLetterOptions | dict[str, Any], *, num_frames: int,
                    mfcc_norm: str = 'none') -> tuple[np.ndarray, tuple[str, ...]]:
    """``(mfcc (N, 1, 26, num_frames), sources)`` of the non-letter utterances of ``split``."""
    from centralnet_ros.config import from_dict
    opts = options if isinstance(options, NonLetterOptions) else from_dict(NonLetterOptions, dict(options),
                                                                           _where='dataset_options.not_a_letter')
    if split not in SPEAKERS:
        raise ValueError(f'split must be one of {list(SPEAKERS)}, got {split!r}')
    return _cached(str(Path(data_root).resolve()), split, opts.fsdd_per_speaker, opts.emodb_per_speaker,
                   opts.noise_segments, opts.seed, int(num_frames), mfcc_norm)


# --------------------------------------------------------------------------- runtime windows

def runtime_windows_path(path: str) -> Path:
    """Return the session-windows file of ``runtime_windows`` (a relative path is under ``paths.cache_dir()``)."""
    from centralnet_ros import paths
    p = Path(path)
    return p if p.is_absolute() else paths.cache_dir() / p


def runtime_window_mfcc(split: str, options: NonLetterOptions | dict[str, Any], *, num_frames: int,
                        mfcc_norm: str = 'none') -> tuple[np.ndarray, np.ndarray, tuple[str, ...], dict[str, Any]]:
    """
    ``(mfcc (N, 1, 26, num_frames), labels (N,) 0..26, sources, header)``: the runtime's windows over ``split``.

    Read from the file ``options.runtime_windows`` (``centralnet speech-windows``: the
    calibration speakers' FSDD / EmoDB / noise sessions and espeak-ng letters, replayed
    through the runtime's buffers, voice-activity detector and ``htk_mfcc`` window);
    labels 0..25 are letters, 26 is :data:`NOT_A_LETTER`.  The file must have been
    made for the same speakers and voices as :data:`SPEAKERS` / :data:`SYNTHETIC_VOICES`
    (so no test speaker leaks in) and the same ``num_frames`` / ``mfcc_norm``.  Empty
    for ``test`` (the benchmarks measure the test speakers' windows) or without the option.
    ``header``: what made the file (its command, the bundle whose pipelines ran, the date).
    """
    from centralnet_ros.config import from_dict
    from centralnet_ros.data.avletters import LETTERS
    from centralnet_ros.data.session_windows import load_windows
    opts = options if isinstance(options, NonLetterOptions) else from_dict(NonLetterOptions, dict(options),
                                                                           _where='dataset_options.not_a_letter')
    empty = np.zeros((0, 1, 26, num_frames), np.float32), np.zeros(0, np.int64), (), {}
    if not opts.runtime_windows or split == 'test':
        return empty
    path = runtime_windows_path(opts.runtime_windows)
    if not path.is_file():
        raise FileNotFoundError(f'dataset_options.not_a_letter.runtime_windows: {path} does not exist; make it '
                                f'with `centralnet speech-windows --out {path}` (it replays the calibration '
                                f"speakers' sessions through the runtime)")
    windows, splits, header = load_windows(path)
    where = f'{path} (dataset_options.not_a_letter.runtime_windows)'
    pre = header.get('preprocessing', {}).get('mfcc', {})
    if int(pre.get('num_frames', -1)) != int(num_frames) or pre.get('mfcc_norm', 'none') != mfcc_norm:
        raise ValueError(f'{where}: made with num_frames={pre.get("num_frames")}, mfcc_norm={pre.get("mfcc_norm")}; '
                         f'the preset asks for {num_frames}, {mfcc_norm}: rebuild it with centralnet speech-windows')
    want = {'fsdd': list(SPEAKERS[split]['fsdd']), 'emodb': list(SPEAKERS[split]['emodb'])}
    got = header.get('speakers', {}).get(split)
    if got != want:
        raise ValueError(f'{where}: its {split} speakers are {got}, training.non_letters.SPEAKERS says {want}')
    voices = header.get('voices', {}).get(split, [])
    if voices and voices != list(SYNTHETIC_VOICES.get(split, ())):
        raise ValueError(f'{where}: its {split} voices are {voices}, not {list(SYNTHETIC_VOICES.get(split, ()))}')
    keep = np.flatnonzero(splits == split)
    if not keep.size or 'mfcc' not in windows.inputs:
        raise ValueError(f'{where}: no {split} mfcc windows')
    names = {**{letter: k for k, letter in enumerate(LETTERS)}, NOT_A_LETTER: len(LETTERS)}
    bad = sorted(set(windows.labels[keep].tolist()) - set(names))
    if bad:
        raise ValueError(f'{where}: labels {bad} are neither letters nor {NOT_A_LETTER}')
    x = np.asarray(windows.inputs['mfcc'][keep], np.float32)
    if x.shape[1:] != (1, 26, num_frames):
        raise ValueError(f'{where}: mfcc windows of shape {x.shape[1:]}, expected (1, 26, {num_frames})')
    y = np.asarray([names[k] for k in windows.labels[keep]], np.int64)
    return x, y, tuple(windows.sources[keep].tolist()), header


# --------------------------------------------------------------------------- synthetic letters

SYNTHETIC_VOICES: dict[str, tuple[str, ...]] = {
    'train': ('en-us', 'en-gb-scotland', 'en-gb-x-gbclan', 'en-gb-x-gbcwmd', 'en-029', 'en-us-nyc'),
    'val': ('en-gb-x-rp',),
}
"""espeak-ng voices speaking the letters A-Z through our front end (``+f2``, a higher variant, too).
``en-gb`` (the demo's voice) is never used, so it measures what this costs on unseen synthetic speech."""


def espeak_letter(letter: str, voice: str) -> tuple[np.ndarray, int]:
    """``(waveform, sample_rate)`` of ``letter`` spelled by espeak-ng voice ``voice``."""
    import shutil
    import subprocess
    import tempfile
    from centralnet_ros.data.wav import read_pcm_wav
    exe = shutil.which('espeak-ng')
    if exe is None:
        raise RuntimeError('dataset_options.not_a_letter.synthetic_letters needs espeak-ng '
                           '(apt-get install espeak-ng), or set synthetic_letters: false')
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / 'letter.wav'
        ssml = f'<speak><say-as interpret-as="characters">{letter}</say-as></speak>'
        subprocess.run([exe, '-v', voice, '-m', '-w', str(wav), ssml], check=True, capture_output=True, timeout=30)
        return read_pcm_wav(wav)


@functools.lru_cache(maxsize=8)
def synthetic_letter_mfcc(split: str, num_frames: int, mfcc_norm: str = 'none') -> tuple[np.ndarray, np.ndarray]:
    """
    ``(mfcc (N, 1, 26, num_frames), labels (N,) 0..25)``: A-Z spoken by the split's espeak-ng voices.

    These are letters that went through the same front end as the non-letters, so the
    rejection class cannot tell the two apart by the front end alone (AVLetters' own
    letters come as HTK files).
    """
    from centralnet_ros.data.avletters import LETTERS
    xs, ys = [], []
    for voice in SYNTHETIC_VOICES.get(split, ()):
        for variant in ('', '+f2'):
            for k, letter in enumerate(LETTERS):
                wave, sr = espeak_letter(letter, voice + variant)
                xs.append(utterance_mfcc(wave, sr, num_frames=num_frames, mfcc_norm=mfcc_norm))
                ys.append(k)
    if not xs:
        return np.zeros((0, 1, 26, num_frames), np.float32), np.zeros(0, np.int64)
    x = np.stack(xs).astype(np.float32)
    x.setflags(write=False)
    return x, np.asarray(ys, np.int64)
