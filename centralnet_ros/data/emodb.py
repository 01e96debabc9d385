"""
Berlin Database of Emotional Speech (EmoDB, Burkhardt et al. 2005), read from its wav files.

Layout under the dataset folder (``<data root>/emodb``)::

    wav/{speaker:2}{text:3}{emotion}{version}.wav    e.g. 03a01Wa.wav

``speaker`` two digits (the actors 03, 08-16), ``text`` the sentence code (a01 ...
b10), ``emotion`` one letter of the German name (W Wut anger, L Langeweile boredom,
E Ekel disgust, A Angst fear, F Freude happiness, T Trauer sadness, N neutral) and
``version`` a letter a-f telling takes apart.  The sample rate is read from every file
(the development copy is 22.05 kHz; the original distribution 16 kHz) and
waveforms are resampled with :func:`centralnet_ros.features.audio.resample_audio`.

Labels also map onto ROS4HRI's expression vocabulary (the string constants of
``hri_msgs/msg/Expression``: ``angry``, ``bored``, ``disgusted``, ``scared``,
``happy``, ``sad``, ``neutral``), which is what the emotion node publishes.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
import re
from typing import Iterator

from centralnet_ros.data.registry import DataRootError, DatasetSummary
from centralnet_ros.data.wav import read_pcm_wav
from centralnet_ros.features.audio import resample_audio
import numpy as np

LAYOUT = '<root>/wav/{speaker:2 digits}{text:3}{emotion letter}{version letter}.wav (mono 16-bit PCM)'
DEFAULT_SAMPLE_RATE = 16000

# Emotion letters in the order of the label indices.
EMOTION_LETTERS: tuple[str, ...] = ('W', 'L', 'E', 'A', 'F', 'T', 'N')
EMOTIONS: tuple[str, ...] = ('anger', 'boredom', 'disgust', 'fear', 'happiness', 'sadness', 'neutral')
# hri_msgs/msg/Expression string constants (ANGRY, BORED, DISGUSTED, SCARED, HAPPY, SAD, NEUTRAL).
EXPRESSIONS: tuple[str, ...] = ('angry', 'bored', 'disgusted', 'scared', 'happy', 'sad', 'neutral')
LETTER_TO_EMOTION: dict[str, str] = dict(zip(EMOTION_LETTERS, EMOTIONS))
EMOTION_TO_EXPRESSION: dict[str, str] = dict(zip(EMOTIONS, EXPRESSIONS))
CLASS_NAMES = EMOTIONS

_NAME = re.compile(r'^(\d{2})([a-z]\d{2})([WLEAFTN])([a-z])\.wav$')


@dataclasses.dataclass(frozen=True)
class Utterance:
    """One recording's identity, parsed from its file name."""

    path: Path
    speaker: int        # 3, 8, ..., 16
    text: str           # 'a01' ... 'b10'
    emotion: str        # letter W L E A F T N
    version: str        # 'a' ...

    @property
    def label(self) -> int:
        """Index into :data:`EMOTIONS` / :data:`EXPRESSIONS`."""
        return EMOTION_LETTERS.index(self.emotion)

    @property
    def emotion_name(self) -> str:
        return LETTER_TO_EMOTION[self.emotion]

    @property
    def expression(self) -> str:
        """Return the ROS4HRI ``hri_msgs/Expression`` name."""
        return EXPRESSIONS[self.label]


def parse_name(path: str | Path) -> Utterance:
    """``03a01Wa.wav`` -> :class:`Utterance`; any other name is an error naming the file."""
    path = Path(path)
    m = _NAME.match(path.name)
    if m is None:
        raise ValueError(f'{path}: file name does not follow {LAYOUT} with emotion letter one of '
                         f'{"".join(EMOTION_LETTERS)}')
    return Utterance(path=path, speaker=int(m.group(1)), text=m.group(2), emotion=m.group(3),
                     version=m.group(4))


def list_utterances(root: str | Path) -> list[Utterance]:
    """Every ``wav/*.wav`` under ``root`` (the ``emodb`` folder), sorted by file name."""
    wav_dir = Path(root) / 'wav'
    if not wav_dir.is_dir():
        raise DataRootError(f'EmoDB folder {wav_dir} does not exist; expected layout: {LAYOUT}')
    items = [parse_name(p) for p in sorted(wav_dir.iterdir()) if p.suffix.lower() == '.wav']
    if not items:
        raise DataRootError(f'no wav files in {wav_dir}; expected layout: {LAYOUT}')
    return items


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a mono 16-bit PCM wav: float32 waveform in [-1, 1) of shape ``(time,)`` and its sample rate."""
    return read_pcm_wav(path)


def load_waveform(path: str | Path, *, sample_rate: int = DEFAULT_SAMPLE_RATE) -> np.ndarray:
    """Load a file's waveform resampled from its own rate to ``sample_rate``: float32 ``(time,)``."""
    x, rate = read_wav(path)
    return resample_audio(x, orig_sample_rate=rate, new_sample_rate=sample_rate)


@dataclasses.dataclass
class EmoDBData:
    """All utterances: waveforms (variable length) with labels and speakers."""

    waveforms: list[np.ndarray]     # N x (time,) float32 at sample_rate
    labels: np.ndarray              # (N,) int64 index into EMOTIONS
    speakers: np.ndarray            # (N,) int64
    utterances: list[Utterance]
    sample_rate: int
    class_names: tuple[str, ...] = EMOTIONS

    def __len__(self) -> int:
        return len(self.waveforms)


def load_dataset(root: str | Path, *, sample_rate: int = DEFAULT_SAMPLE_RATE) -> EmoDBData:
    """Read and resample every utterance under ``root``."""
    utts = list_utterances(root)
    return EmoDBData(waveforms=[load_waveform(u.path, sample_rate=sample_rate) for u in utts],
                     labels=np.asarray([u.label for u in utts], np.int64),
                     speakers=np.asarray([u.speaker for u in utts], np.int64),
                     utterances=utts, sample_rate=int(sample_rate))


def loso_folds(speakers: np.ndarray) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Leave-one-speaker-out: ``(speaker, train_indices, test_indices)`` for each speaker, in order."""
    speakers = np.asarray(speakers)
    for spk in np.unique(speakers):
        test = speakers == spk
        yield int(spk), np.flatnonzero(~test), np.flatnonzero(test)


def summarize(root: Path) -> DatasetSummary:
    """Read every wav (format checked) and count utterances per speaker and emotion."""
    utts = list_utterances(root)
    counts: dict[str, dict[str, int]] = {}
    rates: dict[int, int] = {}
    durations = []
    for u in utts:
        x, rate = read_wav(u.path)
        rates[rate] = rates.get(rate, 0) + 1
        durations.append(x.size / rate)
        split = counts.setdefault(f'spk{u.speaker:02d}', {})
        split[u.emotion_name] = split.get(u.emotion_name, 0) + 1
    counts = dict(sorted(counts.items()))
    d = np.asarray(durations)
    notes = ['columns are speakers (leave-one-speaker-out folds)',
             'emotion -> hri_msgs/Expression: ' + ', '.join(f'{e} -> {x}' for e, x in EMOTION_TO_EXPRESSION.items())]
    if d.size > 1 and np.ptp(d) == 0:
        notes.append(f'every file lasts exactly {d[0]:.3f} s: this copy was cut or zero-padded to one length '
                     '(the original recordings vary in length)')
    return DatasetSummary(
        name='emodb', root=str(root), counts=counts,
        modalities={'audio': 'mono PCM16 at ' + ', '.join(f'{r} Hz ({n} files)' for r, n in sorted(rates.items()))
                             + f', {d.min():.2f}-{d.max():.2f} s (median {np.median(d):.2f} s); '
                             f'resampled to {DEFAULT_SAMPLE_RATE} Hz by default'},
        notes=notes)
