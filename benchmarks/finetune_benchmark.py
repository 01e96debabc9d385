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
voices, with pink room noise added and lips from AVLetters (training split for the
adaptation and validation voices, test split for the test voices), as in ``centralnet
demo``. Each adaptation voice is recorded twice: a plain session (two speeds, quiet
room) and a perturbed one (speed and pitch drawn per utterance, a room three times
louder). The settings (:data:`LETTER_SETTINGS`: which sessions, learning rate,
SpecAugment-like masking, which encoders adapt) are compared on validation voices
(held out from adaptation and test) and the bundle's own validation split
(:data:`SELECTION_RULE`); only the chosen setting's figures on the test voices,
never used for any choice, are the result. Every fine-tune rehearses the bundle's
own training split (``--rehearse``) and keeps BatchNorm's statistics; AVLetters'
own test split (letters) and the rejection of non-letters of unseen speakers are
measured before and after, since adaptation must not cost more than 3 points there.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/finetune_benchmark.py digits [--seeds 3] [--work /tmp/ft]
    OMP_NUM_THREADS=1 python benchmarks/finetune_benchmark.py letters [--seeds 2] [--settings B C D E]

Writes ``benchmarks/results/finetune_<part>.json`` and ``.md`` (machine and command
included). Wall and CPU times are of each fine-tune (sample collection excluded), one
thread, on the shared 2-core machine (the load average is recorded with each run).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys
import time

from centralnet_ros import paths
import numpy as np

RESULTS = Path(__file__).resolve().parent / 'results'
TRAIN_SPEAKERS = ('george', 'jackson', 'lucas', 'nicolas')
TEST_SPEAKERS = ('theo', 'yweweler')
VOICES_ADAPT = ('en-us', 'en+f3', 'en-gb-x-rp+m3', 'en-029', 'en-gb-scotland+f2', 'en-us+m5', 'en+Andy',
                'en-us+Annie', 'en+david', 'en-gb-x-gbclan+linda', 'en+klatt2', 'en-us+robert', 'en+steph',
                'en-029+m7', 'en+grandpa', 'en-us+f5')
VOICES_VAL = ('en-gb-x-gbclan+f4', 'en+Michael', 'en-us-nyc+m1')   # en-us-nyc: an accent no adaptation voice has
VOICES_TEST = ('en-gb', 'en-gb-x-gbcwmd+f1', 'en-us+m2')
SPEEDS = (150, 190)                           # plain sessions: every letter at 150 and 190 words/min
PERTURBED_SPEEDS = ((120, 170), (170, 230))   # perturbed sessions: every letter twice, speed and pitch drawn
PERTURBED_PITCH = (20, 80)                    # espeak-ng -p (default 50)
NOISE_RMS = {'quiet': 0.004, 'noisy': 0.012}  # pink room noise: plain sessions quiet, perturbed ones noisy
# letters: the settings compared on the validation voices (name, adaptation conditions, lr, augment, frozen)
BOTH = ('plain', 'perturbed')
LETTER_SETTINGS = [
    ('A: plain sessions, lr 1e-3', ('plain',), 1e-3, (), ()),
    ('B: plain + perturbed sessions, lr 1e-3', BOTH, 1e-3, (), ()),
    ('C: plain + perturbed, lr 3e-4', BOTH, 3e-4, (), ()),
    ('D: plain + perturbed, lr 1e-3, mfcc masking', BOTH, 1e-3, ('mfcc_masking',), ()),
    ('E: plain + perturbed, lr 1e-3, lip encoder frozen', BOTH, 1e-3, (), ('lip_video',)),
    # added after A-E lost 5-6 points on AVLetters' test split: the bundle's own data rehearsed twice per epoch
    ('F: plain + perturbed, lr 1e-3, rehearsal twice', BOTH, 1e-3, (), (), 2),
]
SELECTION_RULE = ('the setting with the best accuracy on the validation voices among those losing at most 3 points '
                  "on the bundle's own validation split (AVLetters, not_a_letter and espeak-ng letters of its "
                  "validation voice); one seed (0) per setting, then the chosen setting's other seeds")


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


def _work_dir(args, part: str, base) -> Path:
    """Return the folder of ``part``'s bags and sample caches, one per speech bundle (samples depend on it)."""
    from centralnet_ros.bundle.io import bundle_sha256
    work = Path(args.work) / f'{part}-{bundle_sha256(base.path)[:12]}'
    work.mkdir(parents=True, exist_ok=True)
    return work


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
    base = load_bundle(paths.models_dir() / 'speech')
    work = _work_dir(args, 'digits', base)
    clips = fsdd.list_clips(Path(args.data_root) / 'fsdd')
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
    runs = list(args.previous_runs)                     # --merge: runs of an earlier invocation, same sessions
    result = {'part': 'digits', 'train_speakers': TRAIN_SPEAKERS, 'test_speakers': TEST_SPEAKERS,
              'sessions': counts, 'collect_s': round(collect_s, 1), 'runs': runs}
    for n in args.examples:
        train = []
        for spk in TRAIN_SPEAKERS:
            seen: dict[str, int] = {}
            for s in samples[(spk, 'train')]:             # in clip-index order: the first n clips per digit
                if seen.get(s.label, 0) < n:
                    seen[s.label] = seen.get(s.label, 0) + 1
                    train.append(s)
        for (mode, freeze), keep_bn in ((v, k) for v in args.variants for k in args.batch_norm):
            for seed in range(args.seeds):
                tc = TrainConfig(epochs=args.epochs, batch_size=32, lr=1e-3, patience=args.patience,
                                 num_threads=1, progress=False)
                t, c = time.perf_counter(), time.process_time()
                # keep: BatchNorm keeps the bundle's statistics (the bundle learned to call digits
                # not_a_letter); learn: re-estimated on the digits. The validation sessions choose.
                r = finetune(base.model, base.labels, train, val, test,
                             FinetuneConfig(mode=mode, freeze_encoders=freeze, labels=[str(d) for d in range(10)],
                                            keep_batch_norm=keep_bn == 'keep', seed=seed, train=tc))
                wall, cpu = time.perf_counter() - t, time.process_time() - c
                per_spk = {}
                for spk in TEST_SPEAKERS:
                    from centralnet_ros.training.finetune import accuracy_of, to_split
                    per_spk[spk] = accuracy_of(r.model, to_split(samples[(spk, 'test')], r.labels, r.modalities)[0])
                run = {'examples_per_digit_per_speaker': n, 'mode': mode, 'freeze_encoders': freeze, 'seed': seed,
                       'train_samples': r.counts['train'], 'val_samples': r.counts['val'],
                       'test_samples': r.counts['test'], 'test_accuracy': r.after, 'per_test_speaker': per_spk,
                       'val_accuracy': r.train.val_metric, 'epochs_run': r.train.epochs_run,
                       'best_epoch': r.train.best_epoch, 'keep_batch_norm': keep_bn == 'keep',
                       'wall_s': round(wall, 1),
                       'cpu_s': round(cpu, 1), 'load_average': _load()}
                runs.append(run)
                print(json.dumps(run), flush=True)
                args.partial(result)
    return result


def _load() -> float:
    import os
    return round(os.getloadavg()[0], 2)


def _room_noise(n: int, rng: np.random.Generator, rms: float) -> np.ndarray:
    """Pink (1/f) noise with the given RMS: the hum of a room."""
    white = rng.standard_normal(n)
    spectrum = np.fft.rfft(white)
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = 1.0
    pink = np.fft.irfft(spectrum / np.sqrt(f), n)
    return (pink / pink.std() * rms).astype(np.float32)


def _letter_session(voice: str, lips: list, k: int, *, speeds, pitch_range=None, seed=0):
    """Utterances of the 26 letters by ``voice`` at each of ``speeds`` (or at drawn speeds and pitches)."""
    from centralnet_ros.data import avletters
    from centralnet_ros.replay.session_bag import espeak_letter, Utterance

    def make():
        rng = np.random.default_rng(seed)
        by_letter: dict[str, list] = {}
        for s in lips:
            by_letter.setdefault(s.letter, []).append(s)
        out = []
        for j, speed in enumerate(speeds):
            for letter in avletters.LETTERS:
                if pitch_range is None:
                    x, rate = espeak_letter(letter, voice, speed=speed)
                else:                                     # speed and pitch perturbation, drawn per utterance
                    x, rate = espeak_letter(letter, voice, speed=int(rng.integers(speed[0], speed[1] + 1)),
                                            pitch=int(rng.integers(pitch_range[0], pitch_range[1] + 1)))
                cands = by_letter[letter]
                lip = cands[(k + 7 * j) % len(cands)]
                out.append(Utterance(letter, x, rate, frames=avletters.read_lips(lip.lips_path), fps=25.0))
        return out
    return make


def _setting(s: tuple) -> tuple:
    """``(name, conditions, lr, augment, frozen, rehearsal repeats)`` of a :data:`LETTER_SETTINGS` entry."""
    return tuple(s) + (1,) * (6 - len(s))


def letters(args) -> dict:
    from centralnet_ros.bundle.io import load_bundle
    from centralnet_ros.data import avletters
    from centralnet_ros.finetune_cli import augmentation, rehearsal_split
    from centralnet_ros.replay.cli import build_config
    from centralnet_ros.training.finetune import accuracy_of, finetune, FinetuneConfig, to_split
    from centralnet_ros.training.datasets import load_experiment_data
    from centralnet_ros.training.experiment import load_experiment
    from centralnet_ros.training.trainer import ArraySplit, predict, TrainConfig
    base = load_bundle(paths.models_dir() / 'speech')
    work = _work_dir(args, 'letters', base)
    cfg, _ = build_config(tasks=['speech'])
    all_samples = avletters.list_samples(Path(args.data_root) / 'avletters')
    split_seed = int(base.manifest.evaluation.get('split_seed', 0))
    train_idx, test_idx = avletters.speaker_dependent_split(all_samples, seed=split_seed)
    lips = {'train': [all_samples[i] for i in train_idx], 'test': [all_samples[i] for i in test_idx]}
    # sessions: (group, voice, condition) -> samples; adaptation voices in two conditions, the others plain
    plan = [('adapt', v, c) for c in ('plain', 'perturbed') for v in VOICES_ADAPT]
    plan += [('val', v, 'plain') for v in VOICES_VAL] + [('test', v, 'plain') for v in VOICES_TEST]
    sessions = {}
    t0 = time.perf_counter()
    for group, voice, cond in plan:
        j = (VOICES_ADAPT + VOICES_VAL + VOICES_TEST).index(voice)
        k = ('adapt', 'val', 'test').index(group)
        name = f'{group}_{voice.replace("+", "_")}' + ('_perturbed' if cond == 'perturbed' else '')
        pool = 'test' if group == 'test' else 'train'
        if cond == 'plain':
            make = _letter_session(voice, lips[pool], j, speeds=SPEEDS)
            rms = NOISE_RMS['quiet']
        else:
            make = _letter_session(voice, lips[pool], j + 3, speeds=PERTURBED_SPEEDS, pitch_range=PERTURBED_PITCH,
                                   seed=j)
            rms = NOISE_RMS['noisy']
        noise = _room_noise(16000 * 30, np.random.default_rng([k, j, cond == 'perturbed']), rms=rms)
        bag, labels = _session(work, name, make, gap_s=0.8, noise=noise)
        sessions[(group, voice, cond)] = _collect(bag, labels, cfg, base, work / f'{name}.npz')
    collect_s = time.perf_counter() - t0
    counts = {f'{g}:{v}:{c}': len(s) for (g, v, c), s in sessions.items()}
    print('samples per session:', counts, f'({collect_s:.0f} s)', flush=True)
    # the bundle's own data (its preset: AVLetters + not_a_letter + espeak-ng letters of its training voices):
    # the train split is rehearsed, the val split guards the choice of settings, the test split measures
    exp = load_experiment(base.manifest.training['preset'])
    own = load_experiment_data(exp.dataset, dict(exp.dataset_options), Path(args.data_root))
    nal = len(avletters.LETTERS)
    mods = list(base.model.modalities)
    own_val = ArraySplit({m: own.val.inputs[m] for m in mods}, own.val.labels)
    n_av_val = int(base.manifest.evaluation['val_samples'])       # AVLetters' own come first in the split
    own_test = ArraySplit({m: own.test.inputs[m] for m in mods}, own.test.labels)

    def own_figures(model) -> dict:
        pred = predict(model, own_test).argmax(1)
        letters_, rej = own_test.labels < nal, own_test.labels == nal
        return {'avletters_test': float((pred[letters_] == own_test.labels[letters_]).mean()),
                'non_letters_rejected': float((pred[rej] == nal).mean()),
                'own_val': accuracy_of(model, own_val),
                'own_val_avletters': accuracy_of(model, own_val.subset(np.arange(n_av_val)))}

    before_own = own_figures(base.model)
    val = [s for (g, _, _), ss in sessions.items() if g == 'val' for s in ss]
    test_voices = [s for (g, _, _), ss in sessions.items() if g == 'test' for s in ss]
    val_split = to_split(val, base.labels, mods)[0]
    runs = list(args.previous_runs)                     # --merge: runs of an earlier invocation, same sessions

    def run_one(name, conditions, lr, augment, freeze, rehearse_times, seed_):
        train = [s for v in VOICES_ADAPT for c in conditions for s in sessions[('adapt', v, c)]]
        rehearsal = rehearsal_split(base, train, args.data_root)
        rehearsal = ArraySplit({m: np.concatenate([x] * rehearse_times) for m, x in rehearsal.inputs.items()},
                               np.concatenate([rehearsal.labels] * rehearse_times))
        tc = TrainConfig(epochs=args.epochs, batch_size=32, lr=lr, patience=args.patience, num_threads=1,
                         progress=False)
        t, c = time.perf_counter(), time.process_time()
        r = finetune(base.model, base.labels, train, val, test_voices,
                     FinetuneConfig(mode='whole', seed=seed_, keep_batch_norm=True, freeze_modalities=freeze,
                                    train=tc), rehearsal=rehearsal, augment=augmentation(augment))
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        per_voice = {}
        for v in VOICES_TEST:
            split = to_split(sessions[('test', v, 'plain')], r.labels, r.modalities)[0]
            per_voice[v] = {'before': accuracy_of(base.model, split), 'after': accuracy_of(r.model, split)}
        after_own = own_figures(r.model)
        run = {'setting': name, 'conditions': list(conditions), 'lr': lr, 'augment': list(augment),
               'frozen_modalities': list(freeze), 'keep_batch_norm': True, 'seed': seed_,
               'train_samples': r.counts['train'], 'rehearsal': r.counts['rehearsal'], 'val_samples': r.counts['val'],
               'test_samples': r.counts['test'],
               'val_voices_before': accuracy_of(base.model, val_split), 'val_voices_after': r.train.val_metric,
               'own_val_before': before_own['own_val'], 'own_val_after': after_own['own_val'],
               'own_val_avletters_before': before_own['own_val_avletters'],
               'own_val_avletters_after': after_own['own_val_avletters'],
               'unseen_voices_before': r.before, 'unseen_voices_after': r.after, 'per_test_voice': per_voice,
               'avletters_test_before': before_own['avletters_test'],
               'avletters_test_after': after_own['avletters_test'],
               'non_letters_rejected_before': before_own['non_letters_rejected'],
               'non_letters_rejected_after': after_own['non_letters_rejected'],
               'epochs_run': r.train.epochs_run, 'best_epoch': r.train.best_epoch,
               'wall_s': round(wall, 1), 'cpu_s': round(cpu, 1), 'load_average': _load()}
        runs.append(run)
        print(json.dumps(run), flush=True)
        return run

    result = {'part': 'letters', 'voices': {'adapt': VOICES_ADAPT, 'val': VOICES_VAL, 'test': VOICES_TEST},
              'speeds_wpm': SPEEDS, 'perturbed': {'speeds_wpm': PERTURBED_SPEEDS, 'pitch': PERTURBED_PITCH},
              'noise_rms': NOISE_RMS, 'sessions': counts, 'collect_s': round(collect_s, 1),
              'own_before': before_own, 'selection_rule': SELECTION_RULE, 'runs': runs}
    settings = [s for s in LETTER_SETTINGS if not args.settings or s[0] in args.settings]
    for setting in settings:                                       # the choice: one seed each, on validation
        if any(r['setting'] == setting[0] and r['seed'] == 0 for r in runs):
            continue                                               # merged from an earlier invocation
        run_one(*_setting(setting), 0)
        if args.partial:
            args.partial(result)
    first = [r for r in runs if r['seed'] == 0]
    ok = [r for r in first if r['own_val_before'] - r['own_val_after'] <= 0.03] or first
    chosen = max(ok, key=lambda r: r['val_voices_after'])
    result['chosen'] = chosen['setting']
    print(f'chosen on validation voices: {chosen["setting"]}', flush=True)
    setting = next(s for s in LETTER_SETTINGS if s[0] == chosen['setting'])
    extra = [setting] + [s for s in LETTER_SETTINGS if s[0].split(':')[0] in args.record_seeds and s != setting]
    for other in extra:                                            # the chosen's seeds, then others for the record
        done = {r['seed'] for r in runs if r['setting'] == other[0]}
        for seed_ in (s for s in range(1, args.seeds) if s not in done):
            run_one(*_setting(other), seed_)
            if args.partial:
                args.partial(result)
    return result


def _mean_std(values) -> str:
    v = np.asarray([x for x in values if x is not None], np.float64) * 100
    if not len(v):
        return '-'
    return f'{v.mean():.1f} ± {v.std(ddof=1):.1f}' if len(v) > 1 else f'{v[0]:.1f}'


def _times(runs) -> str:
    """Mean wall / CPU seconds of ``runs`` (CPU time: one thread, so what the fine-tune cost on a quiet core)."""
    wall = np.mean([r['wall_s'] for r in runs])
    cpu = [r['cpu_s'] for r in runs if r.get('cpu_s') is not None]
    return f'{wall:.0f} / {np.mean(cpu):.0f}' if cpu else f'{wall:.0f}'


def _pct(x) -> str:
    return '-' if x is None else f'{100 * x:.1f}'


def _letters_lines(result: dict) -> list[str]:
    v, pert, noise = result['voices'], result['perturbed'], result['noise_rms']
    own = result['own_before']
    lines = [f'Letters spoken by espeak-ng voices with pink room noise and AVLetters lips, every session played '
             f'through the runtime. Adaptation voices ({len(v["adapt"])}): {", ".join(v["adapt"])}, each in two '
             f'sessions: *plain* (every letter at {" and ".join(map(str, result["speeds_wpm"]))} words/min, room '
             f'noise RMS {noise["quiet"]}) and *perturbed* (every letter twice, at speeds drawn from '
             f'{pert["speeds_wpm"][0][0]}-{pert["speeds_wpm"][0][1]} and {pert["speeds_wpm"][1][0]}-'
             f'{pert["speeds_wpm"][1][1]} words/min and pitches from {pert["pitch"][0]}-{pert["pitch"][1]} '
             f'(espeak-ng -p), room noise RMS {noise["noisy"]}, three times louder). Validation voices (early '
             f'stopping and the choice of settings): {", ".join(v["val"])}. Test voices, never used for any choice: '
             f'{", ".join(v["test"])} (plain sessions, AVLetters test-split lips). Every fine-tune: mode whole, '
             f"BatchNorm statistics kept, the bundle's own training split rehearsed in every epoch (AVLetters, "
             f'not_a_letter and the espeak-ng letters of its training voices), one thread.', '',
             f'Choice rule: {result["selection_rule"]}. The test figures of the settings not chosen are shown for '
             f'the record only.', '',
             f"The bundle before: its own validation split {_pct(own['own_val'])} % (AVLetters' letters in it "
             f"{_pct(own.get('own_val_avletters'))} %), AVLetters test letters "
             f"{_pct(own['avletters_test'])} %, non-letters of unseen speakers rejected "
             f"{_pct(own['non_letters_rejected'])} %.",
             '', '| setting | adaptation samples (+ rehearsed) | validation voices before -> after (%) | '
             "bundle's own validation after (points) | its AVLetters letters after (%) | test voices after (%) | "
             'AVLetters test after (points) | '
             'non-letters rejected after (%) | epochs (best) | wall / CPU time (s) |',
             '|---|---|---|---|---|---|---|---|---|---|']
    first = {}
    for r in result['runs']:
        first.setdefault(r['setting'], r)
    for name, r in first.items():
        mark = '**' if name == result.get('chosen') else ''
        lines.append(f'| {mark}{name}{mark} | {r["train_samples"]} (+{r["rehearsal"]}) | '
                     f'{_pct(r["val_voices_before"])} -> {_pct(r["val_voices_after"])} | {_pct(r["own_val_after"])} '
                     f'({100 * (r["own_val_after"] - r["own_val_before"]):+.1f}) | '
                     f'{_pct(r.get("own_val_avletters_after"))} | {_pct(r["unseen_voices_after"])} | '
                     f'{_pct(r["avletters_test_after"])} '
                     f'({100 * (r["avletters_test_after"] - r["avletters_test_before"]):+.1f}) | '
                     f'{_pct(r["non_letters_rejected_after"])} | {r["epochs_run"]} ({r["best_epoch"]}) | '
                     f'{_times([r])} |')
    chosen = [r for r in result['runs'] if r['setting'] == result.get('chosen')]
    if chosen:
        tv = result['voices']['test']
        per = ', '.join(f'{x} {_mean_std([r["per_test_voice"][x]["before"] for r in chosen[:1]])} -> '
                        f'{_mean_std([r["per_test_voice"][x]["after"] for r in chosen])}' for x in tv)
        change = [r['avletters_test_after'] - r['avletters_test_before'] for r in chosen]
        lines += ['', f'The chosen setting, {result["chosen"]}, over {len(chosen)} seeds (mean ± sd):', '',
                  '| | before | after |', '|---|---|---|',
                  f'| test voices (never used), accuracy (%) | {_pct(chosen[0]["unseen_voices_before"])} | '
                  f'**{_mean_std([r["unseen_voices_after"] for r in chosen])}** |',
                  f'| per test voice (%) | {per} | |',
                  f'| AVLetters test split, letters (%) | {_pct(chosen[0]["avletters_test_before"])} | '
                  f'{_mean_std([r["avletters_test_after"] for r in chosen])} (change {_mean_std(change)} points) |',
                  f'| non-letters of unseen speakers rejected (%) | {_pct(chosen[0]["non_letters_rejected_before"])} | '
                  f'{_mean_std([r["non_letters_rejected_after"] for r in chosen])} |',
                  f'| wall / CPU time per fine-tune (s) | | {_times(chosen)} (load average '
                  f'{np.mean([r["load_average"] for r in chosen]):.1f}) |']
    for name in first:
        rs = [r for r in result['runs'] if r['setting'] == name]
        if name != result.get('chosen') and len(rs) > 1:
            change = [r['avletters_test_after'] - r['avletters_test_before'] for r in rs]
            lines += ['', f'For the record (not chosen), {name} over {len(rs)} seeds: validation voices '
                          f'{_mean_std([r["val_voices_after"] for r in rs])} %, test voices '
                          f'{_mean_std([r["unseen_voices_after"] for r in rs])} %, AVLetters test change '
                          f'{_mean_std(change)} points, wall / CPU time {_times(rs)} s.']
    return lines


def write_report(result: dict, out: Path) -> None:
    from centralnet_ros.machine import machine_description, machine_line, write_results
    result['machine'] = machine_description()
    m = machine_line(result['machine'])
    lines = [f'# Fine-tuning the speech bundle from recorded sessions: {result["part"]}', '',
             ''.join(f'`{c}`, then ' for c in result.get('earlier_commands', [])) +
             f'`{result["command"]}` ({result["date"]}; {m}; one thread per fine-tune, the 2 cores shared with '
             f"other jobs). Samples: the runtime's own model inputs at its decisions inside labelled segments "
             f'(`replay/samples.py`), {result["collect_s"]:.0f} s to replay every session.', '']
    groups: dict[tuple, list] = {}
    if result['part'] == 'digits':
        lines += [f'New vocabulary (10 digits, mode new_labels) learnt from FSDD sessions of '
                  f'{", ".join(result["train_speakers"])}; tested on {", ".join(result["test_speakers"])} '
                  f'(never heard). Validation: clips 40-44 of the training speakers, their own sessions. BatchNorm '
                  f"layers keep the bundle's statistics (`--keep-batch-norm`) or re-estimate them on the digits; "
                  f'where both were run, the one with the better validation accuracy is in bold (chosen on '
                  f'validation, not on the test speakers).', '',
                  '| examples per digit per speaker | training samples | encoders | BatchNorm statistics | '
                  'validation accuracy (%) | speaker-independent test accuracy (%) | per test speaker (%) | '
                  'epochs (best) | wall / CPU time per fine-tune (s) |',
                  '|---|---|---|---|---|---|---|---|---|']
        for r in result['runs']:
            groups.setdefault((r['examples_per_digit_per_speaker'], r['freeze_encoders'],
                               r.get('keep_batch_norm', False)), []).append(r)
        best = {}                                          # per number of examples: the best on validation
        for key, rs in groups.items():
            v = float(np.mean([r['val_accuracy'] for r in rs]))
            if key[0] not in best or v > best[key[0]][0]:
                best[key[0]] = (v, key)
        for key in sorted(groups, key=lambda k: (k[0], k[1], not k[2])):
            (n, freeze, kbn), rs = key, groups[key]
            per = ', '.join(f'{s} {_mean_std([r["per_test_speaker"][s] for r in rs])}'
                            for s in result['test_speakers'])
            mark = '**' if best[n][1] == key and sum(k[0] == n for k in groups) > 1 else ''
            lines.append(f'| {n} | {rs[0]["train_samples"]} | {"frozen" if freeze else "trained"} | '
                         f'{"kept" if kbn else "re-estimated"} | {_mean_std([r["val_accuracy"] for r in rs])} | '
                         f'{mark}{_mean_std([r["test_accuracy"] for r in rs])}{mark} ({len(rs)} seeds) | {per} | '
                         f'{np.mean([r["epochs_run"] for r in rs]):.0f} ({np.mean([r["best_epoch"] for r in rs]):.0f})'
                         f' | {_times(rs)} |')
    else:
        lines += _letters_lines(result)
    lines += ['', 'Every run (seed, epochs, per speaker/voice) is in the JSON file beside this one.', '']
    print(write_results(out.parent, out.name, result, markdown='\n'.join(lines), command=result['command']))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('part', choices=('digits', 'letters'))
    parser.add_argument('--data-root', default=str(paths.data_root()))
    parser.add_argument('--work', default='/tmp/centralnet-finetune-bench', help='bags and sample caches (not in git)')
    parser.add_argument('--seeds', type=int, default=3)
    parser.add_argument('--epochs', type=int, default=40)
    parser.add_argument('--patience', type=int, default=8)
    parser.add_argument('--examples', type=int, nargs='+', default=[5, 10, 40])
    parser.add_argument('--settings', nargs='+', default=None, metavar='LETTER',
                        help='letters: only these settings (their letters A-E); default: all')
    parser.add_argument('--freeze', action='store_true', help='digits: also the frozen-encoder variant')
    parser.add_argument('--batch-norm', nargs='+', choices=('keep', 'learn'), default=['keep'],
                        help="digits: BatchNorm keeps the bundle's statistics and/or re-estimates them")
    parser.add_argument('--record-seeds', nargs='+', default=[], metavar='LETTER',
                        help='letters: also run the other seeds of these settings (for the record; not the choice)')
    parser.add_argument('--merge', default=None, metavar='JSON',
                        help='also report (and, letters, choose among) the runs of this earlier result file')
    parser.add_argument('--out', default=None)
    args = parser.parse_args(argv)
    args.variants = [('new_labels', False)] + ([('new_labels', True)] if args.freeze else [])
    previous = json.loads(Path(args.merge).read_text()) if args.merge else {}
    args.previous_runs = previous.get('runs', [])
    if args.settings:
        args.settings = [next((s[0] for s in LETTER_SETTINGS if s[0].split(':')[0] == x), x) for x in args.settings]
    import torch
    torch.set_num_threads(1)
    out = Path(args.out) if args.out else RESULTS / f'finetune_{args.part}'
    from centralnet_ros.machine import command_line
    command = command_line(argv, program='python benchmarks/finetune_benchmark.py')

    def report(result: dict) -> None:
        result['command'] = command
        if previous:                                       # the merged runs' own commands, in order
            result['earlier_commands'] = previous.get('earlier_commands', []) + [previous['command']]
        result['date'] = time.strftime('%Y-%m-%d')
        write_report(result, out)

    args.partial = report                                  # letters: the report so far after every fine-tune
    report(digits(args) if args.part == 'digits' else letters(args))
    return 0


if __name__ == '__main__':
    sys.exit(main())
