"""
``centralnet finetune``: adapt a shipped bundle to your own recordings.

::

    centralnet finetune --bundle models/speech --bags s1 s2 s3 s4 [--labels l1.eaf l2.eaf l3.eaf l4.eaf]
                        [--mode whole|head|new_labels] [--freeze-encoders] [--val-bags s3] [--test-bags s4]
                        [--keep-batch-norm] [--rehearse [TIMES]] [--l2-sp WEIGHT] [--interpolate ALPHA]
                        [--freeze-modality lip_video] [--augment mfcc_masking] [--second-take]
                        [--config config/fusion.yaml] [--out my_speech] [--epochs 40] [--seed 0]

Each bag is one recording session. The samples are the runtime's own model inputs
at its decisions inside labelled segments (:mod:`centralnet_ros.replay.samples`):
the same buffers, triggers, windows and feature pipelines the node runs, configured
like the node (``--config``: its params file; default: the node's defaults).
``--labels``: one label file per bag, in the bags' order (ELAN ``.eaf``, Audacity
``TASK=track.txt``, CSV or YAML); without it the bags' ``/labels/<task>`` topics.

Sessions are split, never samples: ``--test-bags`` are held out for the before/after
figures (default: the last bag), ``--val-bags`` drive early stopping (default: the
bag before it), the rest train. ``--second-take`` adds, for every training bag, a second
perturbed take of its labelled utterances (:mod:`centralnet_ros.replay.second_take`),
played through the runtime like the bag itself. Writes a new bundle (``--out``) whose manifest records
the base bundle and its sha256, the bags and labels used, the mode, and the held-out
accuracy before and after.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import logging
from pathlib import Path
import sys
import time
from typing import Any, Sequence

__all__ = ['add_arguments', 'run', 'FinetuneSetupError', 'split_sessions', 'finetuned_manifest', 'augmentation',
           'session_record', 'second_takes']


class FinetuneSetupError(ValueError):
    """Bad arguments: bags, labels, sessions or a bundle that cannot be used."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--bundle', required=True, help='the bundle to start from (folder or name in models/)')
    parser.add_argument('--bags', nargs='+', required=True, metavar='BAG', help='rosbag2 recordings, one per session')
    parser.add_argument('--labels', nargs='+', default=None, metavar='[TASK=]FILE',
                        help='one label file per bag, same order (.eaf, TASK=audacity.txt, .csv, .yaml); '
                             'without it: the /labels/<task> topics of each bag')
    parser.add_argument('--task', default=None, help="task to fine-tune (default: the bundle's)")
    parser.add_argument('--mode', choices=('whole', 'head', 'new_labels'), default=None,
                        help='train every weight, only the heads, or a new label set (new heads, encoders kept)')
    parser.add_argument('--freeze-encoders', action='store_true', help='new_labels: keep the encoders fixed')
    parser.add_argument('--keep-batch-norm', action='store_true',
                        help="BatchNorm layers keep the bundle's running statistics")
    parser.add_argument('--rehearse', nargs='?', type=int, const=2, default=0, metavar='TIMES',
                        help="mix the bundle's own training data into every epoch, TIMES over (default when given: "
                             "2; its preset's dataset, read from --data-root), and add its validation data to the "
                             'validation sessions for early stopping, so it keeps what it knew; modes whole and '
                             'head')
    parser.add_argument('--l2-sp', type=float, default=None, metavar='WEIGHT',
                        help="L2-SP: pull every trained weight towards the bundle's with this weight "
                             '(WEIGHT / 2 * sum of squared changes; default 0: off)')
    parser.add_argument('--interpolate', type=float, default=None, metavar='ALPHA',
                        help="keep only this fraction of the weights' change (WiSE-FT: bundle + ALPHA x change, "
                             'in (0, 1]; default 1); modes whole and head. New voices for the speech bundle, as '
                             'chosen on validation voices (benchmarks/results/finetune_letters.md): --mode whole '
                             '--keep-batch-norm --rehearse --interpolate 0.75')
    parser.add_argument('--data-root', default=None, help='datasets folder for --rehearse (default: the data root)')
    parser.add_argument('--freeze-modality', action='append', default=[], metavar='MODALITY',
                        help="keep this modality's encoder fixed (repeatable), e.g. lip_video to adapt to new "
                             'voices through the audio branch and the fusion only')
    parser.add_argument('--augment', action='append', default=[], metavar='NAME',
                        help='training-time augmentation of every batch (repeatable): mfcc_masking (SpecAugment-'
                             'like time and coefficient masks), lip_video (brightness, contrast, crop)')
    parser.add_argument('--second-take', action='store_true',
                        help='also train on a second, perturbed take of every training bag (never the validation '
                             'or test bags): each labelled segment of the task cut from its audio, played at a '
                             'speed of x0.9-1.1, a gain of -6..+6 dB and 0-150 ms later, in pink room noise, '
                             'written as a new session bag (audio only) and replayed through the runtime; the '
                             'recipe chosen for new words from speech_base (benchmarks/results/'
                             'finetune_digits_base.md)')
    parser.add_argument('--val-bags', nargs='+', default=None, metavar='BAG',
                        help='validation sessions (early stopping); default: the bag before the test bag')
    parser.add_argument('--test-bags', nargs='+', default=None, metavar='BAG',
                        help='held-out sessions for the before/after figures; default: the last bag')
    parser.add_argument('--config', default=None, help='the fusion node params file or a PerceptionConfig YAML')
    parser.add_argument('--topic', action='append', default=[], metavar='INPUT=/TOPIC', help='bag topic of an input')
    parser.add_argument('--out', default=None, help='bundle folder to write (default: ./<bundle name>-finetuned)')
    from centralnet_ros.training.finetune import FinetuneConfig
    defaults = FinetuneConfig()
    parser.add_argument('--epochs', type=int, default=None, help=f'train.epochs (default {defaults.train.epochs})')
    parser.add_argument('--lr', type=float, default=None, help=f'train.lr (default {defaults.train.lr:g})')
    parser.add_argument('--batch-size', type=int, default=None,
                        help=f'train.batch_size (default {defaults.train.batch_size})')
    parser.add_argument('--patience', type=int, default=None,
                        help=f'train.patience, early stopping: epochs without validation gain '
                             f'(default {defaults.train.patience})')
    parser.add_argument('--seed', type=int, default=None, help=f'seed (default {defaults.seed})')
    parser.add_argument('--set', dest='overrides', action='append', default=[], metavar='KEY=VALUE',
                        help='any FinetuneConfig field, dotted, e.g. --set train.weight_decay=0.0001 (repeatable)')
    parser.add_argument('--threads', type=int, default=1, help='torch threads')
    parser.add_argument('--no-progress', action='store_true', help='no progress bars')


def finetune_config(args: argparse.Namespace):
    """Return the :class:`FinetuneConfig` of the options: its defaults, then the flags given, then ``--set``."""
    from centralnet_ros.config import from_dict, set_dotted, to_dict
    from centralnet_ros.training.experiment import parse_overrides
    from centralnet_ros.training.finetune import FinetuneConfig
    data = to_dict(FinetuneConfig())
    flags = {'mode': args.mode, 'seed': args.seed, 'train.epochs': args.epochs, 'train.lr': args.lr,
             'train.batch_size': args.batch_size, 'train.patience': args.patience}
    flags = {k: v for k, v in flags.items() if v is not None}
    flags.update({'train.num_threads': max(1, args.threads), 'train.progress': not args.no_progress})
    if args.freeze_encoders:
        flags['freeze_encoders'] = True
    if args.keep_batch_norm:
        flags['keep_batch_norm'] = True
    if args.l2_sp is not None:
        flags['l2_sp'] = args.l2_sp
    if args.interpolate is not None:
        flags['interpolation'] = args.interpolate
    if args.freeze_modality:
        flags['freeze_modalities'] = list(args.freeze_modality)
    for key, value in {**flags, **parse_overrides(args.overrides)}.items():
        set_dotted(data, key, value)
    return from_dict(FinetuneConfig, data, _where='finetune')


def split_sessions(bags: Sequence[Path], val: Sequence[str] | None, test: Sequence[str] | None
                   ) -> tuple[list[Path], list[Path], list[Path]]:
    """``(train, val, test)`` bags: named ones (path or folder name), else test = last, val = the one before."""
    bags = [Path(b) for b in bags]

    def pick(names: Sequence[str], what: str) -> list[Path]:
        out = []
        for n in names:
            hit = [b for b in bags if str(b) == str(n) or b.name == Path(n).name]
            if not hit:
                raise FinetuneSetupError(f'--{what}-bags {n}: not among --bags ({", ".join(b.name for b in bags)})')
            out += [h for h in hit if h not in out]
        return out

    test_b = pick(test, 'test') if test else bags[-1:]
    rest = [b for b in bags if b not in test_b]
    val_b = pick(val, 'val') if val else rest[-1:]
    if set(val_b) & set(test_b):
        raise FinetuneSetupError('a bag cannot be both a validation and a test session')
    train_b = [b for b in rest if b not in val_b]
    if not train_b or not val_b:
        raise FinetuneSetupError(f'{len(bags)} bag(s): need at least one training and one validation session besides '
                                 f'the held-out test session (sessions are split, never samples)')
    return train_b, val_b, test_b


def finetuned_manifest(base: Any, result: Any, *, base_sha256: str, sessions: dict[str, list[dict]],
                       cfg: Any, command: str, augment: Sequence[str] = (), cpu_time_s: float | None = None,
                       second_take: dict | None = None) -> Any:
    """
    Return the new bundle's manifest: the base's pipelines, the new labels and model, and where it came from.

    ``second_take``: what ``--second-take`` added (its ranges, sessions and samples), recorded
    in ``training.second_take`` (None: not used).
    """
    import dataclasses

    from centralnet_ros.machine import machine_line
    m = base.manifest
    metrics = {'val_accuracy': float(result.train.val_metric)}
    if result.before is not None:
        metrics['heldout_accuracy_before'] = float(result.before)
    if result.after is not None:
        metrics['heldout_accuracy_after'] = float(result.after)
    evaluation = {'protocol': 'split by recording session: train / validation (early stopping) / held-out test',
                  'held_out_sessions': [s['session'] for s in sessions['test']],
                  'heldout_accuracy_before': result.before, 'heldout_accuracy_after': result.after,
                  'before_note': ('the base bundle on the held-out session' if result.before is not None
                                  else 'not applicable: a new label set the base bundle cannot output'),
                  'samples': dict(result.counts), 'modalities_trained': list(result.modalities),
                  'base_evaluation': dict(m.evaluation), 'base_metrics': dict(m.metrics)}
    training = {'finetune_of': str(base.path), 'base_bundle_sha256': base_sha256, 'mode': cfg.mode,
                'freeze_encoders': cfg.freeze_encoders, 'keep_batch_norm': cfg.keep_batch_norm,
                'freeze_modalities': list(cfg.freeze_modalities), 'augment': list(augment),
                'rehearsal_samples': result.counts.get('rehearsal', 0),
                'rehearsal_val_samples': result.counts.get('rehearsal_val', 0), 'l2_sp': cfg.l2_sp,
                'interpolation': cfg.interpolation, 'head_warmup_epochs': cfg.head_warmup_epochs,
                'frozen_modalities': [x for x in m.model.modalities if x not in result.modalities],
                'sessions': sessions, 'second_take': second_take, 'seed': cfg.seed,
                'epochs_run': result.train.epochs_run,
                'best_epoch': result.train.best_epoch, 'wall_time_s': round(result.train.wall_time_s, 2),
                'cpu_time_s': None if cpu_time_s is None else round(cpu_time_s, 2),
                'train': dataclasses.asdict(cfg.train), 'command': command,
                'date': _dt.date.today().isoformat(), 'machine': machine_line(), 'base_training': dict(m.training)}
    label_map = {k: v for k, v in m.label_map.items() if k in result.labels}
    note = (f'Fine-tuned ({cfg.mode}) from {base.path} on {sum(len(v) for v in sessions.values())} recorded '
            f'sessions; see training and evaluation.')
    return dataclasses.replace(m, labels=list(result.labels), model=result.model.config, metrics=metrics,
                               evaluation=evaluation, training=training, label_map=label_map,
                               notes=(note + '\n' + m.notes).strip(), weights_sha256='')


def rehearsal_split(base: Any, train_samples: Sequence, data_root: str | None, *, split: str = 'train',
                    times: int = 1) -> Any:
    """
    Return ``split`` of the bundle's own preset (``manifest.training.preset``), in the recordings' modalities.

    ``split``: ``train`` (rehearsed) or ``val`` (joined to the validation sessions);
    ``times``: the split repeated (rehearsing the old data that many times per epoch).
    A speech preset's runtime-window samples (``dataset_options.not_a_letter.runtime_windows``,
    made by ``centralnet speech-windows``) are rehearsed when their file exists; without it the
    rest of the preset's data is, and a note on stderr says so.
    Raises :class:`FinetuneSetupError` when the bundle names no preset or the preset's classes differ.
    """
    import numpy as np

    from centralnet_ros import paths
    from centralnet_ros.training.datasets import load_experiment_data
    from centralnet_ros.training.experiment import load_experiment
    from centralnet_ros.training.finetune import common_modalities
    from centralnet_ros.training.trainer import ArraySplit
    preset = base.manifest.training.get('preset')
    if not preset:
        raise FinetuneSetupError(f'--rehearse: {base.path} names no training preset (manifest training.preset)')
    exp = load_experiment(preset)
    options = dict(exp.dataset_options)
    windows = (options.get('not_a_letter') or {}).get('runtime_windows')
    if windows:
        from centralnet_ros.training.non_letters import runtime_windows_path
        if not runtime_windows_path(windows).is_file():
            print(f'centralnet finetune: --rehearse without the runtime-window samples of {preset} '
                  f'({runtime_windows_path(windows)} is missing; `centralnet speech-windows` makes it)',
                  file=sys.stderr)
            options['not_a_letter'] = {**options['not_a_letter'], 'runtime_windows': None}
    data = load_experiment_data(exp.dataset, options, paths.data_root(data_root))
    if list(data.label_names) != list(base.manifest.labels):
        raise FinetuneSetupError(f'--rehearse: preset {preset} has classes {data.label_names}, the bundle '
                                 f'{base.manifest.labels}')
    if split not in ('train', 'val') or times < 1:
        raise ValueError(f'split must be train or val and times >= 1, got {split!r}, {times}')
    mods = common_modalities(list(train_samples), base.model.modalities)
    part = getattr(data, split)
    return ArraySplit({m: np.concatenate([part.inputs[m]] * times) for m in mods},
                      np.concatenate([part.labels] * times))


def session_record(bag: Path, collected: Any, label_spec: str | None) -> dict:
    """
    Return what the manifest records of one session: the bag and its label file, each with a sha256.

    The bag's is that of its ``metadata.yaml`` (its files, topics and message counts); the
    label file's that of its bytes; a label topic in the bag is covered by the bag's.
    """
    from centralnet_ros.bundle.io import file_sha256
    from .replay.label_import import label_spec as split_spec
    record = {'session': bag.name, 'bag': str(bag), 'labels': collected.labels_from,
              'samples': len(collected.samples)}
    meta = bag / 'metadata.yaml'
    if meta.is_file():
        record['bag_metadata_sha256'] = file_sha256(meta)
    if label_spec is not None:
        path = split_spec(str(label_spec))[1]
        if path.is_file():
            record['labels_sha256'] = file_sha256(path)
    return record


def second_takes(train_bags: Sequence[Path], labels_of: dict, task: str, cfg: Any, base: Any, *, seed: int,
                 topic: str | None = None, ranges: Any = None, progress: bool = False) -> tuple[list, dict]:
    """
    Return ``(samples, manifest record)`` of a second take of every training bag (``--second-take``).

    Each take (:func:`~centralnet_ros.replay.second_take.second_take_bag`, seeded with
    ``(seed, index of the bag)``) is written into a temporary folder, replayed through
    the runtime (:func:`~centralnet_ros.replay.samples.collect_samples`), then removed.
    Raises :class:`~centralnet_ros.replay.second_take.SecondTakeError` naming a bag with
    no audio or no labelled segment of ``task``.
    """
    import dataclasses
    import tempfile

    from .replay.samples import collect_samples
    from .replay.second_take import MARGIN_S, second_take_bag, TakeRanges
    ranges = ranges or TakeRanges()
    out, records = [], []
    with tempfile.TemporaryDirectory(prefix='centralnet-second-take-') as work:
        for i, bag in enumerate(train_bags):
            take, take_labels = second_take_bag(bag, [labels_of[bag]] if bag in labels_of else None, work, task,
                                                ranges, seed=(seed, i), topic=topic)
            got = collect_samples(take, cfg, task, labels=[take_labels], bundle=base, progress=progress)
            print(f'{bag.name} (second take): {len(got.samples)} samples from {got.decisions} decisions '
                  f'({got.segments} labelled segments, {got.segments_without_decision} without a decision)')
            out += got.samples
            records.append({'of_session': bag.name, 'segments': got.segments, 'samples': len(got.samples),
                            'seed': [seed, i]})
    record = {'used': True, 'ranges': {k: list(v) if isinstance(v, tuple) else v
                                       for k, v in dataclasses.asdict(ranges).items()},
              'samples': len(out), 'sessions': records,
              'how': f'every labelled segment of each training bag cut from its audio ({MARGIN_S} s margins), '
                     'perturbed (speed, gain, onset drawn per segment), in pink room noise, replayed through the '
                     'runtime'}
    return out, record


def augmentation(names: Sequence[str]) -> Any:
    """Return the trainer's ``augment`` hook applying the named augmentations in turn (None for none)."""
    from centralnet_ros.training.speech import AUGMENTATIONS, make_augmentation
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise FinetuneSetupError(f'--augment {", ".join(unknown)}: known augmentations are '
                                 f'{", ".join(sorted(AUGMENTATIONS))}')
    hooks = [make_augmentation(n) for n in names]
    if not hooks:
        return None

    def augment(inputs, rng):
        for hook in hooks:
            inputs = hook(inputs, rng)
        return inputs

    return augment


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(name)s: %(message)s')
    import torch
    torch.set_num_threads(max(1, args.threads))
    from centralnet_ros.bundle.io import bundle_sha256, BundleError, load_bundle, save_bundle
    from centralnet_ros.config import ConfigError
    from centralnet_ros.training.finetune import finetune
    from .replay.cli import _pairs, build_config, ReplaySetupError
    from .replay.labels import LabelFileError
    from .replay.msgdefs import BagReadError
    from .replay.samples import collect_samples
    from centralnet_ros.machine import command_line
    command = command_line(args=args)
    try:
        try:
            base = load_bundle(args.bundle)
        except BundleError as exc:
            raise FinetuneSetupError(str(exc)) from None
        task = args.task or base.manifest.task
        bags = [Path(b) for b in args.bags]
        if args.labels is not None and len(args.labels) != len(bags):
            raise FinetuneSetupError(f'{len(args.labels)} label files for {len(bags)} bags: give one per bag, '
                                     f'in the same order')
        train_b, val_b, test_b = split_sessions(bags, args.val_bags, args.test_bags)
        try:
            ft = finetune_config(args)
        except (ConfigError, ValueError) as exc:
            raise FinetuneSetupError(str(exc)) from None
        cfg, _ = build_config(config_path=args.config, tasks=[task], bundles={task: str(base.path)})
        labels_of = dict(zip(bags, args.labels)) if args.labels else {}
        sets = {}
        for bag in bags:
            s = collect_samples(bag, cfg, task, labels=[labels_of[bag]] if bag in labels_of else None,
                                topics=_pairs(args.topic, '--topic'), bundle=base, progress=not args.no_progress)
            print(f'{bag.name}: {len(s.samples)} samples from {s.decisions} decisions '
                  f'({s.segments} labelled segments, {s.segments_without_decision} without a decision; '
                  f'labels from {s.labels_from})')
            for note in s.notes:
                print(f'  note: {note}')
            sets[bag] = s

        def samples(bs):
            return [x for b in bs for x in sets[b].samples]

        takes, take_record = [], None
        if args.second_take:
            takes, take_record = second_takes(train_b, labels_of, task, cfg, base, seed=ft.seed,
                                              topic=_pairs(args.topic, '--topic').get('audio'),
                                              progress=not args.no_progress)
            plain = {m for x in samples(train_b) for m in x.inputs}
            lacking = sorted(plain - {m for x in takes for m in x.inputs})
            if lacking:
                print(f'  note: --second-take: the second takes are audio only and lack {", ".join(lacking)}, '
                      f'which the training sessions carry; a fine-tune keeps only samples with every trained '
                      f'modality, so their samples are left out', file=sys.stderr)

        rehearsal = rehearsal_val = None
        if args.rehearse:
            if args.rehearse < 0:
                raise FinetuneSetupError(f'--rehearse {args.rehearse}: give how many times per epoch (>= 1)')
            rehearsal = rehearsal_split(base, samples(train_b), args.data_root, times=args.rehearse)
            rehearsal_val = rehearsal_split(base, samples(train_b), args.data_root, split='val')
        cpu0 = time.process_time()
        result = finetune(base.model, base.manifest.labels, samples(train_b) + takes, samples(val_b),
                          samples(test_b), ft,
                          rehearsal=rehearsal, rehearsal_val=rehearsal_val, augment=augmentation(args.augment))
        cpu_s = time.process_time() - cpu0
    except (FinetuneSetupError, ReplaySetupError, LabelFileError, BagReadError, ValueError, OSError) as exc:
        print(f'centralnet finetune: {exc}', file=sys.stderr)
        return 2
    sessions = {split: [session_record(b, sets[b], labels_of.get(b)) for b in bs]
                for split, bs in (('train', train_b), ('val', val_b), ('test', test_b))}
    manifest = finetuned_manifest(base, result, base_sha256=bundle_sha256(base.path), sessions=sessions, cfg=ft,
                                  command=command, augment=args.augment, cpu_time_s=cpu_s, second_take=take_record)
    out = Path(args.out) if args.out else Path.cwd() / f'{base.path.name}-finetuned'
    save_bundle(out, result.model, manifest)

    def pct(x):
        return '-' if x is None else f'{100 * x:.1f} %'

    print(f'{task}: {result.counts["train"]} train / {result.counts["val"]} val / {result.counts["test"]} held-out '
          f'samples; modalities {", ".join(result.modalities)}; {result.train.epochs_run} epochs '
          f'(best {result.train.best_epoch}) in {result.train.wall_time_s:.1f} s ({cpu_s:.1f} s of CPU)')
    print(f'held-out sessions {", ".join(b.name for b in test_b)}: before {pct(result.before)}, '
          f'after {pct(result.after)}')
    print(f'wrote {out} (sha256 {bundle_sha256(out)[:16]})')
    return 0
