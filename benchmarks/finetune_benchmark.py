"""
Adapting the speech bundle to new words and new voices, from recorded sessions (issue #13).

Two experiments, each on rosbag2 sessions played through the runtime
(:func:`centralnet_ros.replay.samples.collect_samples`, the node's own path) and
fine-tuned with :func:`centralnet_ros.training.finetune.finetune` (the one trainer):

``digits`` -- a new vocabulary from real speech. FSDD (real people saying digits,
8 kHz) stands in for a user's sessions: one session per speaker, the 16 kHz
microphone stream of ``microphone_node``. Four speakers train (their clips 0-39, the
first N per digit: N = 5, 10, 40), their clips 40-44 form four validation sessions
(early stopping), and the two other speakers (all 50 clips per digit) are the
held-out test: speaker-independent accuracy. Mode ``new_labels`` (new heads, encoders
kept and trained; the lip branch, absent from audio-only sessions, is frozen).

``letters`` -- letters in new voices. Sessions of the 26 letters spoken by espeak-ng
voices (several voices and variants, each letter at two speeds), with room noise
added (pink noise, ~25 dB below the speech), lips from AVLetters (training split for
the adaptation voices, test split for the test voices), as in ``centralnet demo``.
Adapt on some voices, test on voices never used; also measure AVLetters' own test
split (HTK files + lips, as the bundle was trained) before and after, since
adaptation must not cost more than 3 points there.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/finetune_benchmark.py digits [--seeds 3] [--work /tmp/ft]
    OMP_NUM_THREADS=1 python benchmarks/finetune_benchmark.py letters [--seeds 3]

Writes ``benchmarks/results/finetune_<part>.json`` and ``.md`` (machine and command
included). Wall times are of each fine-tune (sample collection excluded), one thread,
on the shared 2-core machine.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import shlex
import sys
import time

from centralnet_ros import paths
from centralnet_ros.config import atomic_write_text
import numpy as np

RESULTS = Path(__file__).resolve().parent / 'results'
TRAIN_SPEAKERS = ('george', 'jackson', 'lucas', 'nicolas')
TEST_SPEAKERS = ('theo', 'yweweler')
VOICES_ADAPT = ('en-us', 'en+f3', 'en-gb-x-rp+m3', 'en-029', 'en-gb-scotland+f2', 'en-us+m5', 'en+Andy',
                'en-us+Annie', 'en+david', 'en-gb-x-gbclan+linda', 'en+klatt2', 'en-us+robert', 'en+steph',
                'en-029+m7', 'en+grandpa', 'en-us+f5')
VOICES_VAL = ('en-gb-x-gbclan+f4', 'en+Michael')
VOICES_TEST = ('en-gb', 'en-gb-x-gbcwmd+f1', 'en-us+m2')
SPEEDS = (150, 190)


def _collect(bag, labels, cfg, bundle, cache: Path):
    """Return the samples of one session (cached as npz beside the bag: the replay is the slow part)."""
    from centralnet_ros.replay.samples import collect_samples, Sample
    if cache.is_file():
        z = np.load(cache, allow_pickle=False)
        mods = [k[len('x_'):] for k in z.files if k.startswith('x_')]
        return [Sample(session=bag.name, stamp_ns=int(z['stamps'][i]), label=str(z['labels'][i]),
                       inputs={m: z[f'x_{m}'][i] for m in mods if z[f'p_{m}'][i]}, missing={})
                for i in range(len(z['stamps']))]
    got = collect_samples(bag, cfg, 'speech', labels=[labels], bundle=bundle).samples
    from centralnet_ros.config import atomic_savez
    mods = sorted({m for s in got for m in s.inputs})
    arrays = {'stamps': np.asarray([s.stamp_ns for s in got], np.int64), 'labels': np.asarray([s.label for s in got])}
    for m in mods:
        shape = next(s.inputs[m].shape for s in got if m in s.inputs)
        arrays[f'x_{m}'] = np.stack([s.inputs.get(m, np.zeros(shape, np.float32)) for s in got])
        arrays[f'p_{m}'] = np.asarray([m in s.inputs for s in got])
    atomic_savez(cache, **arrays)
    return got


def _session(work: Path, name: str, utterances, **kw):
    from centralnet_ros.replay.session_bag import write_session_bag
    bag = work / name
    labels = work / f'{name}.labels.yaml'
    if not (bag.exists() and labels.exists()):
        import shutil
        shutil.rmtree(bag, ignore_errors=True)
        write_session_bag(bag, utterances(), **kw)
    return bag, labels


def digits(args) -> dict:
    from centralnet_ros.bundle.io import load_bundle
    from centralnet_ros.data import fsdd
    from centralnet_ros.replay.cli import build_config
    from centralnet_ros.replay.session_bag import Utterance
    from centralnet_ros.training.finetune import finetune, FinetuneConfig
    from centralnet_ros.training.trainer import TrainConfig
    work = Path(args.work) / 'digits'
    work.mkdir(parents=True, exist_ok=True)
    clips = fsdd.list_clips(Path(args.data_root) / 'fsdd')
    base = load_bundle(paths.models_dir() / 'speech')
    cfg, _ = build_config(tasks=['speech'])

    def utt(speaker, indices):
        chosen = sorted((c for c in clips if c.speaker == speaker and c.index in indices),
                        key=lambda c: (c.index, c.digit))
        return lambda: [Utterance(str(c.digit), fsdd.read_wav(c.path), fsdd.SAMPLE_RATE) for c in chosen]

    samples = {}
    t0 = time.perf_counter()
    for spk in TRAIN_SPEAKERS:
        for split, idx in (('train', range(0, 40)), ('val', range(40, 45))):
            bag, labels = _session(work, f'{spk}_{split}', utt(spk, idx), gap_s=0.8)
            samples[(spk, split)] = _collect(bag, labels, cfg, base, work / f'{spk}_{split}.npz')
    for spk in TEST_SPEAKERS:
        bag, labels = _session(work, f'{spk}_test', utt(spk, range(0, 50)), gap_s=0.8)
        samples[(spk, 'test')] = _collect(bag, labels, cfg, base, work / f'{spk}_test.npz')
    collect_s = time.perf_counter() - t0
    counts = {f'{k[0]}_{k[1]}': len(v) for k, v in samples.items()}
    print('samples per session:', counts, f'({collect_s:.0f} s)', flush=True)
    val = [s for spk in TRAIN_SPEAKERS for s in samples[(spk, 'val')]]
    test = [s for spk in TEST_SPEAKERS for s in samples[(spk, 'test')]]
    runs = []
    for n in args.examples:
        train = []
        for spk in TRAIN_SPEAKERS:
            seen: dict[str, int] = {}
            for s in samples[(spk, 'train')]:             # in clip-index order: the first n clips per digit
                if seen.get(s.label, 0) < n:
                    seen[s.label] = seen.get(s.label, 0) + 1
                    train.append(s)
        for mode, freeze in args.variants:
            for seed in range(args.seeds):
                tc = TrainConfig(epochs=args.epochs, batch_size=32, lr=1e-3, patience=args.patience,
                                 num_threads=1, progress=False)
                t = time.perf_counter()
                r = finetune(base.model, base.labels, train, val, test,
                             FinetuneConfig(mode=mode, freeze_encoders=freeze, labels=[str(d) for d in range(10)],
                                            seed=seed, train=tc))
                wall = time.perf_counter() - t
                per_spk = {}
                for spk in TEST_SPEAKERS:
                    from centralnet_ros.training.finetune import accuracy_of, to_split
                    per_spk[spk] = accuracy_of(r.model, to_split(samples[(spk, 'test')], r.labels, r.modalities)[0])
                run = {'examples_per_digit_per_speaker': n, 'mode': mode, 'freeze_encoders': freeze, 'seed': seed,
                       'train_samples': r.counts['train'], 'val_samples': r.counts['val'],
                       'test_samples': r.counts['test'], 'test_accuracy': r.after, 'per_test_speaker': per_spk,
                       'val_accuracy': r.train.val_metric, 'epochs_run': r.train.epochs_run,
                       'best_epoch': r.train.best_epoch, 'wall_s': round(wall, 1)}
                runs.append(run)
                print(json.dumps(run), flush=True)
    return {'part': 'digits', 'train_speakers': TRAIN_SPEAKERS, 'test_speakers': TEST_SPEAKERS,
            'sessions': counts, 'collect_s': round(collect_s, 1), 'runs': runs}


def _room_noise(n: int, rng: np.random.Generator, rms: float) -> np.ndarray:
    """Pink (1/f) noise with the given RMS: the hum of a room."""
    white = rng.standard_normal(n)
    spectrum = np.fft.rfft(white)
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = 1.0
    pink = np.fft.irfft(spectrum / np.sqrt(f), n)
    return (pink / pink.std() * rms).astype(np.float32)


def letters(args) -> dict:
    from centralnet_ros.bundle.io import load_bundle
    from centralnet_ros.data import avletters
    from centralnet_ros.replay.cli import build_config
    from centralnet_ros.replay.session_bag import espeak_letter, Utterance
    from centralnet_ros.training.finetune import accuracy_of, finetune, FinetuneConfig
    from centralnet_ros.training.speech import AVLettersOptions, avletters_arrays, protocol_indices
    from centralnet_ros.training.trainer import ArraySplit, TrainConfig
    work = Path(args.work) / 'letters'
    work.mkdir(parents=True, exist_ok=True)
    base = load_bundle(paths.models_dir() / 'speech')
    cfg, _ = build_config(tasks=['speech'])
    all_samples = avletters.list_samples(Path(args.data_root) / 'avletters')
    seed = int(base.manifest.evaluation.get('split_seed', 0))
    train_idx, test_idx = avletters.speaker_dependent_split(all_samples, seed=seed)
    lips_pool = {'train': [all_samples[i] for i in train_idx], 'test': [all_samples[i] for i in test_idx]}
    rng = np.random.default_rng(0)

    def utt(voice, pool, k):
        def make():
            out = []
            by_letter = {}
            for s in lips_pool[pool]:
                by_letter.setdefault(s.letter, []).append(s)
            for speed in SPEEDS:
                for letter in avletters.LETTERS:
                    x, rate = espeak_letter(letter, voice, speed=speed)
                    cands = by_letter[letter]
                    lip = cands[(k + speed) % len(cands)]
                    out.append(Utterance(letter, x, rate, frames=avletters.read_lips(lip.lips_path), fps=25.0))
            return out
        return make

    sessions = {}
    t0 = time.perf_counter()
    for k, (group, voices, pool) in enumerate([('adapt', VOICES_ADAPT, 'train'), ('val', VOICES_VAL, 'train'),
                                               ('test', VOICES_TEST, 'test')]):
        for j, voice in enumerate(voices):
            name = f'{group}_{voice.replace("+", "_")}'
            noise = _room_noise(16000 * 30, np.random.default_rng([k, j]), rms=0.004)
            bag, labels = _session(work, name, utt(voice, pool, j), gap_s=0.8, noise=noise)
            sessions[(group, voice)] = _collect(bag, labels, cfg, base, work / f'{name}.npz')
    collect_s = time.perf_counter() - t0
    del rng
    counts = {f'{g}:{v}': len(s) for (g, v), s in sessions.items()}
    print('samples per session:', counts, f'({collect_s:.0f} s)', flush=True)
    # AVLetters' own test split, as the bundle was trained (HTK files + lips, the training adapter)
    opts = AVLettersOptions(protocol='speaker_dependent', seed=seed, audio_frames=24, video_frames=12,
                            video_size=[18, 24])
    arrays = avletters_arrays(Path(args.data_root), opts)
    train_av, _, test, _ = protocol_indices(arrays.labels, arrays.speaker, arrays.speakers, opts, all_samples)
    av_test = ArraySplit({'mfcc': arrays.mfcc[test], 'lip_video': arrays.lip_video[test]}, arrays.labels[test])
    # rehearsal: the bundle's own training samples (548; AVLetters ships HTK features, not waveforms, so these
    # come from its files through the training adapter, as the bundle was trained)
    av_train = ArraySplit({'mfcc': arrays.mfcc[train_av], 'lip_video': arrays.lip_video[train_av]},
                          arrays.labels[train_av])
    av_before = accuracy_of(base.model, av_test)
    val = [s for (g, _), ss in sessions.items() if g == 'val' for s in ss]
    test_voices = [s for (g, _), ss in sessions.items() if g == 'test' for s in ss]
    runs = []
    for n_voices in args.voices:
        adapt_voices = VOICES_ADAPT[:n_voices]
        train = [s for v in adapt_voices for s in sessions[('adapt', v)]]
        for mode, lr, keep_bn, rehearse, seeds in args.letter_variants:
            for seed_ in range(seeds):
                tc = TrainConfig(epochs=args.epochs, batch_size=32, lr=lr, patience=args.patience, num_threads=1,
                                 progress=False)
                t = time.perf_counter()
                r = finetune(base.model, base.labels, train, val, test_voices,
                             FinetuneConfig(mode=mode, seed=seed_, keep_batch_norm=keep_bn, train=tc),
                             rehearsal=av_train if rehearse else None)
                wall = time.perf_counter() - t
                per_voice = {}
                for v in VOICES_TEST:
                    from centralnet_ros.training.finetune import to_split
                    split = to_split(sessions[('test', v)], r.labels, r.modalities)[0]
                    per_voice[v] = {'before': accuracy_of(base.model, split), 'after': accuracy_of(r.model, split)}
                run = {'adapt_voices': list(adapt_voices), 'mode': mode, 'lr': lr, 'keep_batch_norm': keep_bn,
                       'rehearsal': r.counts['rehearsal'], 'seed': seed_, 'train_samples': r.counts['train'],
                       'test_samples': r.counts['test'],
                       'unseen_voices_before': r.before, 'unseen_voices_after': r.after, 'per_test_voice': per_voice,
                       'avletters_test_before': av_before, 'avletters_test_after': accuracy_of(r.model, av_test),
                       'modalities': r.modalities, 'epochs_run': r.train.epochs_run, 'best_epoch': r.train.best_epoch,
                       'wall_s': round(wall, 1)}
                runs.append(run)
                print(json.dumps(run), flush=True)
    return {'part': 'letters', 'voices': {'adapt': VOICES_ADAPT, 'val': VOICES_VAL, 'test': VOICES_TEST},
            'speeds_wpm': SPEEDS, 'sessions': counts, 'collect_s': round(collect_s, 1),
            'avletters_test_before': av_before, 'runs': runs}


def _mean_std(values) -> str:
    v = np.asarray([x for x in values if x is not None], np.float64) * 100
    if not len(v):
        return '-'
    return f'{v.mean():.1f} ± {v.std(ddof=1):.1f}' if len(v) > 1 else f'{v[0]:.1f}'


def write_report(result: dict, out: Path) -> None:
    from centralnet_ros.machine import machine_description, machine_line
    result['machine'] = machine_description()
    m = machine_line(result['machine'])
    lines = [f'# Fine-tuning the speech bundle from recorded sessions: {result["part"]}', '',
             f'`{result["command"]}` ({result["date"]}; {m}; one thread per fine-tune, the 2 cores shared with '
             f"other jobs). Samples: the runtime's own model inputs at its decisions inside labelled segments "
             f'(`replay/samples.py`), {result["collect_s"]:.0f} s to replay every session.', '']
    groups: dict[tuple, list] = {}
    if result['part'] == 'digits':
        lines += [f'New vocabulary (10 digits, mode new_labels) learnt from FSDD sessions of '
                  f'{", ".join(result["train_speakers"])}; tested on {", ".join(result["test_speakers"])} '
                  f'(never heard). Validation: clips 40-44 of the training speakers, their own sessions.', '',
                  '| examples per digit per speaker | training samples | encoders | speaker-independent test '
                  'accuracy (%) | per test speaker (%) | epochs (best) | wall time per fine-tune (s) |',
                  '|---|---|---|---|---|---|---|']
        for r in result['runs']:
            groups.setdefault((r['examples_per_digit_per_speaker'], r['freeze_encoders']), []).append(r)
        for (n, freeze), rs in groups.items():
            per = ', '.join(f'{s} {_mean_std([r["per_test_speaker"][s] for r in rs])}'
                            for s in result['test_speakers'])
            lines.append(f'| {n} | {rs[0]["train_samples"]} | {"frozen" if freeze else "trained"} | '
                         f'**{_mean_std([r["test_accuracy"] for r in rs])}** ({len(rs)} seeds) | {per} | '
                         f'{np.mean([r["epochs_run"] for r in rs]):.0f} ({np.mean([r["best_epoch"] for r in rs]):.0f})'
                         f' | {np.mean([r["wall_s"] for r in rs]):.0f} |')
    else:
        lines += [f'Letters spoken by espeak-ng voices with pink room noise and AVLetters lips. Adaptation voices: '
                  f'{", ".join(result["voices"]["adapt"])}; validation: {", ".join(result["voices"]["val"])}; '
                  f'test (never used): {", ".join(result["voices"]["test"])}; each letter at '
                  f'{" and ".join(map(str, result["speeds_wpm"]))} words/min. AVLetters test split: the 180 '
                  f"held-out samples of the bundle's own split (HTK files + lips), base "
                  f'{100 * result["avletters_test_before"]:.1f} %.', '',
                  '| adaptation voices | mode | lr | unseen voices before (%) | unseen voices after (%) | '
                  'AVLetters test after (%) | change on AVLetters (points) | wall time per fine-tune (s) |',
                  '|---|---|---|---|---|---|---|---|']
        for r in result['runs']:
            groups.setdefault((len(r['adapt_voices']), r['mode'], r['lr'], r['keep_batch_norm'], r['rehearsal']),
                              []).append(r)
        for (nv, mode, lr, kbn, reh), rs in groups.items():
            change = [(r['avletters_test_after'] - r['avletters_test_before']) for r in rs]
            how = f'{mode}{", BatchNorm kept" if kbn else ""}{f", rehearsal of {reh} AVLetters" if reh else ""}'
            lines.append(f'| {nv} | {how} | {lr:g} | {_mean_std([r["unseen_voices_before"] for r in rs])} | '
                         f'**{_mean_std([r["unseen_voices_after"] for r in rs])}** ({len(rs)} seeds) | '
                         f'{_mean_std([r["avletters_test_after"] for r in rs])} | {_mean_std(change)} | '
                         f'{np.mean([r["wall_s"] for r in rs]):.0f} |')
    lines += ['', 'Every run (seed, epochs, per speaker/voice) is in the JSON file beside this one.', '']
    atomic_write_text(out.with_suffix('.json'), json.dumps(result, indent=2, default=str) + '\n')
    atomic_write_text(out.with_suffix('.md'), '\n'.join(lines))
    print('\n'.join(lines))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('part', choices=('digits', 'letters'))
    parser.add_argument('--data-root', default=str(paths.data_root()))
    parser.add_argument('--work', default='/tmp/centralnet-finetune-bench', help='bags and sample caches (not in git)')
    parser.add_argument('--seeds', type=int, default=3)
    parser.add_argument('--epochs', type=int, default=40)
    parser.add_argument('--patience', type=int, default=8)
    parser.add_argument('--examples', type=int, nargs='+', default=[5, 10, 40])
    parser.add_argument('--voices', type=int, nargs='+', default=[16, 6], help='letters: numbers of adaptation voices')
    parser.add_argument('--freeze', action='store_true', help='digits: also the frozen-encoder variant')
    parser.add_argument('--out', default=None)
    args = parser.parse_args(argv)
    args.variants = [('new_labels', False)] + ([('new_labels', True)] if args.freeze else [])
    # letters: (mode, lr, keep_batch_norm, rehearsal, seeds); the plain variant once, to show the forgetting
    args.letter_variants = [('whole', 1e-3, True, True, args.seeds), ('whole', 1e-3, False, False, 1)]
    import torch
    torch.set_num_threads(1)
    result = digits(args) if args.part == 'digits' else letters(args)
    result['command'] = 'python benchmarks/finetune_benchmark.py ' + ' '.join(shlex.quote(a) for a in sys.argv[1:])
    result['date'] = time.strftime('%Y-%m-%d')
    write_report(result, Path(args.out) if args.out else RESULTS / f'finetune_{args.part}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
