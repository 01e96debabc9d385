"""
``centralnet speech-windows``: the speech bundle's training utterances played through the runtime's windows.

The speech bundle's ``not_a_letter`` class learns from real speech that is no
letter (:mod:`centralnet_ros.training.non_letters`).  Fed as whole clips, it
rejected every digit of new speakers; through the voice-activity windows the robot
really builds, a letter was published for a third to a half of the same digits
(``benchmarks/results/digits_probe.md``).  This command makes the training data
of that path: for the calibration splits (``train``, ``val``) of
:data:`~centralnet_ros.training.non_letters.SPEAKERS` and
:data:`~centralnet_ros.training.non_letters.SYNTHETIC_VOICES` only (never a test
speaker), it writes one session bag per speaker (FSDD digits, EmoDB sentences),
one of generated silence / noise bursts, and one per espeak-ng voice spelling A-Z,
replays each through the runtime (:func:`~centralnet_ros.replay.session_windows.session_windows`)
and stores every window the model was given (:mod:`centralnet_ros.data.session_windows`).
``centralnet train --task speech`` reads the file (the preset's
``dataset_options.not_a_letter.runtime_windows``).

Why a command at the top: training may not import the replay, and the replay should
not know which speakers a model may learn from; this application composes the two,
as ``centralnet finetune`` does, and hands training plain arrays.
"""
from __future__ import annotations

import argparse
import datetime as _dt
from pathlib import Path
import sys
import time

from centralnet_ros import paths
import numpy as np

DEFAULT_FILE = 'speech/session_windows.npz'
"""Where the preset expects the windows, relative to the cache folder (``paths.cache_dir()``)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--bundle', default=None,
                        help='speech bundle whose manifest makes the inputs (default: the shipped models/speech; '
                             'the windows depend on its pipelines, not on its weights)')
    parser.add_argument('--out', default=None, help=f'file to write (default: <cache>/{DEFAULT_FILE})')
    parser.add_argument('--data-root', default=None, help='folder holding fsdd/ and emodb/ (default: the data root)')
    parser.add_argument('--splits', nargs='+', default=['train', 'val'], choices=['train', 'val'],
                        help='calibration splits to build (test speakers are never built here)')
    parser.add_argument('--fsdd-per-digit', type=int, default=20, help='FSDD clips per digit per speaker')
    parser.add_argument('--emodb-per-speaker', type=int, default=0, help='EmoDB utterances per speaker (0: all)')
    parser.add_argument('--noise-segments', type=int, default=20, help='generated silence / noise bursts per split')
    parser.add_argument('--no-synthetic-letters', action='store_true',
                        help='no espeak-ng letters (the letters of the same path, so the class cannot learn it)')
    parser.add_argument('--seed', type=int, default=0, help='noise and EmoDB draws')
    parser.add_argument('--work', default=None, help='folder for the temporary bags (default: beside --out)')


def sessions(data_root: Path, split: str, *, fsdd_per_digit: int, emodb_per_speaker: int, noise_segments: int,
             synthetic_letters: bool, seed: int) -> list[tuple[str, list, list[str]]]:
    """``[(session name, utterances, sources)]`` of ``split`` (``train`` or ``val`` speakers and voices only)."""
    from centralnet_ros.data import emodb, fsdd
    from centralnet_ros.data.avletters import LETTERS
    from centralnet_ros.replay.session_bag import Utterance
    from centralnet_ros.training.non_letters import NOT_A_LETTER, SPEAKERS, SYNTHETIC_VOICES, espeak_letter, \
        noise_segment
    if split not in ('train', 'val'):
        raise ValueError(f'only the calibration splits train and val are built, not {split!r}')
    rng = np.random.default_rng([seed, ['train', 'val'].index(split), 11])
    out = []
    clips = fsdd.list_clips(data_root / 'fsdd')
    for speaker in SPEAKERS[split]['fsdd']:
        chosen = sorted((c for c in clips if c.speaker == speaker and c.index < fsdd_per_digit),
                        key=lambda c: (c.index, c.digit))
        if not chosen:
            raise FileNotFoundError(f'{data_root / "fsdd"}: no clips of speaker {speaker}')
        out.append((f'{split}_fsdd_{speaker}', [Utterance(NOT_A_LETTER, fsdd.read_wav(c.path), fsdd.SAMPLE_RATE)
                                                for c in chosen], [f'fsdd:{speaker}'] * len(chosen)))
    utts: dict[int, list] = {}
    for u in emodb.list_utterances(data_root / 'emodb'):
        utts.setdefault(u.speaker, []).append(u)
    for speaker in SPEAKERS[split]['emodb']:
        us = utts.get(speaker, [])
        if not us:
            raise FileNotFoundError(f'{data_root / "emodb"}: no utterances of speaker {speaker:02d}')
        if emodb_per_speaker:
            us = [us[i] for i in sorted(rng.choice(len(us), size=min(emodb_per_speaker, len(us)), replace=False))]
        made = []
        for u in us:
            wave, sr = emodb.read_wav(u.path)
            made.append(Utterance(NOT_A_LETTER, wave, sr))
        out.append((f'{split}_emodb_{speaker:02d}', made, [f'emodb:{speaker:02d}'] * len(made)))
    if noise_segments:
        out.append((f'{split}_noise', [Utterance(NOT_A_LETTER, noise_segment(rng, 16000), 16000)
                                       for _ in range(noise_segments)], ['noise'] * noise_segments))
    if synthetic_letters:
        for voice in SYNTHETIC_VOICES.get(split, ()):
            for variant in ('', '+f2'):
                made = []
                for letter in LETTERS:
                    wave, sr = espeak_letter(letter, voice + variant)
                    made.append(Utterance(letter, wave, sr))
                out.append((f'{split}_espeak_{voice}{variant}'.replace('+', '_'), made,
                            [f'espeak:{voice}{variant}'] * len(made)))
    return out


def run(args: argparse.Namespace) -> int:
    from centralnet_ros.bundle.io import bundle_sha256, load_bundle
    from centralnet_ros.data.session_windows import concatenate, save_windows
    from centralnet_ros.replay.cli import build_config
    from centralnet_ros.replay.session_windows import session_windows
    from centralnet_ros.training.non_letters import SPEAKERS, SYNTHETIC_VOICES
    import torch
    torch.set_num_threads(1)
    data_root = paths.data_root(args.data_root)
    bundle_path = Path(args.bundle) if args.bundle else paths.models_dir() / 'speech'
    bundle = load_bundle(bundle_path)
    if bundle.manifest.task != 'speech':
        print(f'centralnet speech-windows: {bundle_path} is a {bundle.manifest.task} bundle, not speech',
              file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else paths.cache_dir() / DEFAULT_FILE
    work = Path(args.work) if args.work else out.parent / (out.stem + '-bags')
    cfg, _ = build_config(tasks=['speech'], bundles={'speech': str(bundle.path)})
    parts, splits = [], []
    t0 = time.perf_counter()
    for split in args.splits:
        for name, utts, sources in sessions(data_root, split, fsdd_per_digit=args.fsdd_per_digit,
                                            emodb_per_speaker=args.emodb_per_speaker,
                                            noise_segments=args.noise_segments,
                                            synthetic_letters=not args.no_synthetic_letters, seed=args.seed):
            got = session_windows(name, utts, sources, config=cfg, bundle=bundle, work=work, gap_s=0.8)
            print(f'{got.notes[0]} ({time.perf_counter() - t0:.0f} s)', flush=True)
            parts.append(got)
            splits += [split] * len(got)
    windows = concatenate(parts)
    work.rmdir() if work.is_dir() and not any(work.iterdir()) else None
    header = {'what': 'speech model inputs at the runtime decisions over calibration-speaker sessions',
              'bundle': str(bundle.path), 'bundle_sha256': bundle_sha256(bundle.path),
              'preprocessing': {m: dict(spec.preprocessing) for m, spec in bundle.manifest.modalities.items()
                                if m in windows.inputs},
              'speakers': {s: {'fsdd': list(SPEAKERS[s]['fsdd']), 'emodb': list(SPEAKERS[s]['emodb'])}
                           for s in args.splits},
              'voices': {s: [] if args.no_synthetic_letters else list(SYNTHETIC_VOICES.get(s, ()))
                         for s in args.splits},
              'fsdd_per_digit': args.fsdd_per_digit, 'emodb_per_speaker': args.emodb_per_speaker,
              'noise_segments': args.noise_segments, 'seed': args.seed, 'data_root': str(data_root),
              'command': getattr(args, 'command_line', ''), 'date': _dt.date.today().isoformat(),
              'seconds': round(time.perf_counter() - t0, 1)}
    save_windows(out, windows, splits=np.asarray(splits), header=header)
    labels, counts = np.unique(np.char.add(np.asarray(splits), np.char.add(':', windows.labels)),
                               return_counts=True)
    print(f'{len(windows)} windows ({", ".join(f"{k} {v}" for k, v in zip(labels, counts) if "not_a" in k)}, '
          f'letters {int(sum(v for k, v in zip(labels, counts) if "not_a" not in k))}) -> {out} '
          f'({time.perf_counter() - t0:.0f} s)')
    return 0
