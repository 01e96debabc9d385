"""
A second, perturbed take of a recorded session: every labelled utterance said again, differently.

:func:`second_take_bag` cuts every labelled segment of a task out of a bag's audio
(with a margin), perturbs each cut (:func:`perturb_utterance`: a speed drawn as a
tape would play it, a gain, a few ms of leading silence), and writes the cuts as a
new session bag (:func:`~centralnet_ros.replay.session_bag.write_session_bag`, audio
only, pink room noise added: :func:`room_noise`) with its label file. Played through
the runtime like any session (:func:`~centralnet_ros.replay.samples.collect_samples`),
it gives as many samples again from the same examples. The ranges are those of
``benchmarks/finetune_benchmark.py digits --perturbed``, the recipe chosen for new
words from ``models/speech_base`` (``benchmarks/results/finetune_digits_base.md``).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ['TakeRanges', 'perturb_utterance', 'room_noise', 'second_take_bag', 'SecondTakeError', 'MARGIN_S',
           'GAP_S', 'NOISE_S']

MARGIN_S = 0.15          # cut this much before and after every labelled segment (clipped to the audio)
GAP_S = 0.8              # silence between the utterances of the second take
NOISE_S = 30.0           # length of the room noise, tiled over the session


class SecondTakeError(ValueError):
    """A bag that cannot give a second take (no audio, no labelled segment of the task); names the bag."""


@dataclasses.dataclass(frozen=True)
class TakeRanges:
    """How a second take differs: each utterance's speed, gain and onset drawn uniformly; the room's noise."""

    speed: tuple[float, float] = (0.9, 1.1)        # playback speed factor (tempo and pitch together, as a tape)
    gain_db: tuple[float, float] = (-6.0, 6.0)
    onset_s: tuple[float, float] = (0.0, 0.15)     # silence before the utterance: the voice detector's window shifts
    noise_rms: float = 0.008                       # pink room noise over the whole session (0: none)


def perturb_utterance(x: np.ndarray, sample_rate: int, rng: np.random.Generator,
                      ranges: TakeRanges = TakeRanges()) -> np.ndarray:
    """``x`` at a drawn speed (resampled, played at the same rate), gain and onset (leading silence)."""
    from centralnet_ros.features.audio import resample_audio
    speed = rng.uniform(*ranges.speed)
    y = resample_audio(x, orig_sample_rate=sample_rate, new_sample_rate=int(round(sample_rate / speed)))
    y = np.clip(y * 10 ** (rng.uniform(*ranges.gain_db) / 20), -1.0, 1.0)
    onset = np.zeros(int(round(rng.uniform(*ranges.onset_s) * sample_rate)), np.float32)
    return np.concatenate([onset, y]).astype(np.float32)


def room_noise(n: int, rng: np.random.Generator, rms: float) -> np.ndarray:
    """Pink (1/f) noise with the given RMS: the hum of a room."""
    white = rng.standard_normal(n)
    spectrum = np.fft.rfft(white)
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = 1.0
    pink = np.fft.irfft(spectrum / np.sqrt(f), n)
    return (pink / pink.std() * rms).astype(np.float32)


def _seed(seed: int | Sequence[int], stream: int) -> list[int]:
    return [*np.atleast_1d(np.asarray(seed, np.int64)).tolist(), stream]


def second_take_bag(bag: str | Path, labels: Sequence[str | Path] | None, out_dir: str | Path, task: str,
                    ranges: TakeRanges = TakeRanges(), seed: int | Sequence[int] = 0, *, topic: str | None = None,
                    label_prefix: str = '/labels/', name: str | None = None) -> tuple[Path, Path]:
    """
    Write the second take of ``bag``'s ``task`` segments into ``out_dir``; return ``(bag path, labels path)``.

    ``labels``: ``[TASK=]FILE`` label files of the bag (as for ``collect_samples``;
    default: its ``/labels/<task>`` topics). ``topic``: the audio topic (default: as
    :func:`~centralnet_ros.replay.export_media.read_audio`). Every segment is cut with
    :data:`MARGIN_S` each side (clipped to the audio), mixed to mono, perturbed with
    ``np.random.default_rng([*seed, 7])`` in segment order, and the noise is drawn from
    ``[*seed, 8]`` (the benchmark's draws for the same seed). The new bag is named
    ``<bag>_second_take`` (or ``name``). Raises :class:`SecondTakeError` when the bag has
    no audio or no labelled segment of ``task``.
    """
    from .export_media import ExportError, read_audio
    from .label_import import load_labels
    from .session_bag import Utterance, write_session_bag
    bag = Path(bag)
    try:
        audio = read_audio(bag, topic, label_prefix=label_prefix)
    except ExportError as exc:
        raise SecondTakeError(f'second take of {bag}: {exc}') from None
    if labels:
        segments = load_labels(labels, bag_start_ns=audio.start_ns)
    else:
        segments = audio.label_segments
    segments = sorted((s for s in segments if s.task == task), key=lambda s: s.start_ns)
    if not segments:
        where = 'label files ' + ', '.join(map(str, labels)) if labels else f'label topics ({label_prefix}{task})'
        raise SecondTakeError(f'second take of {bag}: no labelled segment of task {task!r} in its {where}')
    rate = audio.sample_rate
    wave = audio.samples.mean(axis=1) if audio.samples.shape[1] > 1 else audio.samples[:, 0]
    margin = int(round(MARGIN_S * rate))
    rng = np.random.default_rng(_seed(seed, 7))
    said = []
    for s in segments:
        i = max(0, int(round((s.start_ns - audio.start_ns) * rate / 1e9)) - margin)
        j = min(wave.size, int(round((s.end_ns - audio.start_ns) * rate / 1e9)) + margin)
        if j <= i:
            at = (s.start_ns - audio.start_ns) / 1e9
            raise SecondTakeError(f'second take of {bag}: segment {s.label!r} at {at:.2f} s lies outside its audio '
                                  f'({audio.topic}, {wave.size / rate:.2f} s)')
        said.append(Utterance(s.label, perturb_utterance(wave[i:j], rate, rng, ranges), rate))
    noise = None
    if ranges.noise_rms > 0:
        noise = room_noise(int(rate * NOISE_S), np.random.default_rng(_seed(seed, 8)), rms=ranges.noise_rms)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    made = write_session_bag(out_dir / (name or f'{bag.name}_second_take'), said, task=task, sample_rate=rate,
                             gap_s=GAP_S, noise=noise)
    return made.path, made.labels
