"""
Free Spoken Digit Dataset (FSDD), read from its own wav files.

Layout under the dataset folder (``<data root>/fsdd``)::

    recordings/{digit}_{speaker}_{index}.wav    8 kHz, mono, 16-bit PCM

3,000 clips: 6 speakers x 10 digits x 50 repetitions (index 0-49).  The official
split (the dataset's README) puts index 0-4 of every speaker and digit in the test
set and 5-49 in the training set.  Clips are trimmed to near-minimal silence and
vary in length (about 0.14 s to 2.3 s).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
import re

from centralnet_ros.data.registry import DataRootError, DatasetSummary
from centralnet_ros.data.wav import read_pcm_wav
import numpy as np

SAMPLE_RATE = 8000
LAYOUT = '<root>/recordings/{digit}_{speaker}_{index}.wav (8 kHz mono 16-bit PCM)'
TEST_INDICES = range(0, 5)          # official split: index 0-4 test, 5-49 train
_NAME = re.compile(r'^(\d)_([A-Za-z]+)_(\d+)\.wav$')


@dataclasses.dataclass(frozen=True)
class FSDDClip:
    """One recording's identity, parsed from its file name."""

    path: Path
    digit: int
    speaker: str
    index: int

    @property
    def split(self) -> str:
        return split_of(self.index)


def split_of(index: int) -> str:
    """'test' for repetition index 0-4, else 'train' (the official FSDD split)."""
    return 'test' if index in TEST_INDICES else 'train'


def list_clips(root: str | Path, split: str | None = None) -> list[FSDDClip]:
    """
    Every ``recordings/*.wav`` of the dataset, sorted by (digit, speaker, index).

    ``split`` ('train' / 'test') keeps one split.  A wav whose name does not follow
    ``{digit}_{speaker}_{index}.wav`` is an error (naming the file).
    """
    root = Path(root)
    rec = root / 'recordings'
    if not rec.is_dir():
        raise DataRootError(f'FSDD folder {rec} does not exist; expected layout: {LAYOUT}')
    if split not in (None, 'train', 'test'):
        raise ValueError(f"FSDD split must be 'train', 'test' or None, got {split!r}")
    clips = []
    for path in rec.glob('*.wav'):
        m = _NAME.match(path.name)
        if m is None:
            raise DataRootError(f'{path}: file name does not follow {LAYOUT}')
        clip = FSDDClip(path=path, digit=int(m.group(1)), speaker=m.group(2), index=int(m.group(3)))
        if split is None or clip.split == split:
            clips.append(clip)
    if not clips:
        raise DataRootError(f'no FSDD recordings{"" if split is None else f" of split {split}"} in {rec}; '
                            f'expected layout: {LAYOUT}')
    clips.sort(key=lambda c: (c.digit, c.speaker, c.index))
    return clips


def read_wav(path: str | Path, *, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """
    Read a mono 16-bit PCM wav as float32 in [-1, 1), shape ``(time,)``.

    Checks the sample rate, channel count, sample width and that the file holds as
    many frames as its header says; any mismatch is an error naming the file.
    """
    return read_pcm_wav(path, sample_rate=sample_rate)[0]


def summarize(root: Path) -> DatasetSummary:
    """Read every wav (format checked) and count clips per split and digit."""
    clips = list_clips(root)
    counts: dict[str, dict[str, int]] = {'train': {}, 'test': {}}
    lengths = []
    for clip in clips:
        lengths.append(read_wav(clip.path).size)
        split = counts[clip.split]
        split[str(clip.digit)] = split.get(str(clip.digit), 0) + 1
    lengths_s = np.asarray(lengths) / SAMPLE_RATE
    speakers = sorted({c.speaker for c in clips})
    return DatasetSummary(
        name='fsdd', root=str(root), counts=counts,
        modalities={'audio': f'{SAMPLE_RATE} Hz mono PCM16, {lengths_s.min():.2f}-{lengths_s.max():.2f} s '
                             f'(median {np.median(lengths_s):.2f} s)'},
        notes=[f'speakers: {", ".join(speakers)}',
               'official split: index 0-4 test, 5-49 train'])
