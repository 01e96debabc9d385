"""
Fine-tuning from bags: samples made by the runtime itself, a new vocabulary learnt from real speech.

Sessions are rosbag2 recordings built from real FSDD recordings (one speaker per
session), written with :func:`~centralnet_ros.replay.session_bag.write_session_bag`.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from centralnet_ros import paths
from centralnet_ros.bundle.io import bundle_sha256, load_bundle
from centralnet_ros.replay.cli import build_config
from centralnet_ros.replay.player import replay_bag
from centralnet_ros.replay.samples import collect_samples
from centralnet_ros.replay.session_bag import Utterance, write_session_bag
from centralnet_ros.replay.topics import bag_info, map_topics
from dataset_guard import require
import numpy as np
import pytest

SPEECH = paths.models_dir() / 'speech'
BASE = paths.models_dir() / 'speech_base'         # the start for new vocabularies (no not_a_letter class)
pytestmark = pytest.mark.needs_data('fsdd')
DIGITS = (0, 1, 2)
SESSIONS = {'george': ('george', range(5, 13)), 'jackson': ('jackson', range(5, 13)),
            'nicolas': ('nicolas', range(5, 9)), 'theo': ('theo', range(5, 11)),
            'theo_again': ('theo', range(11, 19))}        # the held-out speaker's other session


@pytest.fixture(scope='module')
def sessions(tmp_path_factory):
    """Build five recorded sessions, bags and label files, one FSDD speaker each: digits 0-2 said several times."""
    from centralnet_ros.data import fsdd
    data_root = require('fsdd')                           # skipped (failed under CI) without FSDD
    if not (SPEECH / 'manifest.yaml').is_file():
        pytest.skip('no shipped speech bundle')
    out = tmp_path_factory.mktemp('sessions')
    clips = fsdd.list_clips(data_root / 'fsdd')
    made = {}
    for name, (speaker, indices) in SESSIONS.items():
        chosen = [c for i in indices for c in clips if c.speaker == speaker and c.digit in DIGITS and c.index == i]
        said = [Utterance(str(c.digit), fsdd.read_wav(c.path), fsdd.SAMPLE_RATE) for c in chosen]
        made[name] = write_session_bag(out / name, said, label_topic=name == 'nicolas')
    return made


def test_samples_are_what_the_runtime_feeds_the_model(sessions):
    """Every sample equals the input of the plain runtime's decision at the same stamp (same model output)."""
    from centralnet_ros.runtime.engine import TaskModel
    from centralnet_ros.runtime.perception import Perception
    cfg, _ = build_config(tasks=['speech'])
    bag = sessions['theo']
    got = collect_samples(bag.path, cfg, 'speech', labels=[bag.labels])
    assert len(got.samples) == len(bag.segments) == got.segments and got.segments_without_decision == 0
    assert [s.label for s in got.samples] == [seg['label'] for seg in bag.segments]
    info = bag_info(bag.path)
    plain = Perception(cfg)                               # the node's own configuration (ONNX Runtime backend)
    try:
        run = replay_bag(bag.path, plain, map_topics(info, cfg), info=info, progress=False)
    finally:
        plain.close()
    by_stamp = {r.stamp_ns: r for r in run.results}
    model = TaskModel(SPEECH, backend='torch', warmup=0)
    for s in got.samples:
        r = by_stamp[s.stamp_ns]                          # a decision of the plain runtime at that stamp
        assert s.missing == r.missing == {'lip_video': 'absent'}
        np.testing.assert_allclose(model.classify(s.inputs).probabilities, r.probabilities, atol=2e-5)
    # the label topics of a bag give the same samples as its label file
    topic = collect_samples(sessions['nicolas'].path, cfg, 'speech')
    from_file = collect_samples(sessions['nicolas'].path, cfg, 'speech', labels=[sessions['nicolas'].labels])
    assert topic.labels_from == 'bag topics'
    assert [(s.stamp_ns, s.label) for s in topic.samples] == [(s.stamp_ns, s.label) for s in from_file.samples]


def test_speech_base_is_the_speech_bundle_without_its_rejection_class():
    """models/speech_base hears what models/speech hears (same inputs, same pipelines) and knows only the letters."""
    from centralnet_ros.bundle.io import read_manifest
    speech, base = read_manifest(SPEECH), read_manifest(BASE)
    assert base.task == speech.task == 'speech'
    assert base.labels == [x for x in speech.labels if x not in speech.decision.get('reject_labels', [])]
    assert 'not_a_letter' in speech.labels and 'not_a_letter' not in base.labels and len(base.labels) == 26
    assert base.modalities == speech.modalities, "a fine-tune from the base must see the robot's speech inputs"
    assert base.model.modalities == speech.model.modalities


def test_finetune_learns_a_new_vocabulary_from_bags(sessions, tmp_path):
    """`centralnet finetune --mode new_labels` from the base: digits from two speakers, checked on a third."""
    from centralnet_ros.cli import main
    from centralnet_ros.replay.cli import run_replay
    order = ['george', 'jackson', 'nicolas', 'theo']                 # theo: held out; nicolas: validation
    out = tmp_path / 'digits'
    rc = main(['finetune', '--bundle', 'speech_base', '--bags', *[str(sessions[s].path) for s in order],
               '--labels', *[str(sessions[s].labels) for s in order], '--mode', 'new_labels',
               '--epochs', '30', '--patience', '10', '--out', str(out), '--no-progress',
               '--keep-batch-norm'])          # 48 samples are too few to re-estimate BatchNorm statistics
    assert rc == 0
    bundle = load_bundle(out)
    m = bundle.manifest
    assert m.labels == ['0', '1', '2'] and m.model.num_classes == 3
    assert m.training['base_bundle_sha256'] == bundle_sha256(BASE)
    assert m.training['mode'] == 'new_labels' and m.training['frozen_modalities'] == ['lip_video']
    assert [s['session'] for s in m.training['sessions']['train']] == ['george', 'jackson']
    assert [s['session'] for s in m.training['sessions']['test']] == ['theo']
    assert m.training['sessions']['val'][0]['labels'].endswith('nicolas.labels.yaml')
    from centralnet_ros.bundle.io import file_sha256            # which files, exactly
    george = m.training['sessions']['train'][0]
    assert george['labels_sha256'] == file_sha256(sessions['george'].labels)
    assert george['bag_metadata_sha256'] == file_sha256(Path(sessions['george'].path) / 'metadata.yaml')
    assert m.training['cpu_time_s'] > 0 and m.training['wall_time_s'] > 0
    assert m.evaluation['heldout_accuracy_before'] is None
    after = m.metrics['heldout_accuracy_after']
    assert after >= 0.7, f'held-out speaker accuracy {after} (chance 0.33)'
    # the lip branch was not touched (absent in every sample)
    base = load_bundle(BASE).model.state_dict()
    new = bundle.model.state_dict()
    lips = [k for k in base if k.startswith('encoders.lip_video.') and k in new and new[k].shape == base[k].shape]
    assert lips and all(np.array_equal(base[k].numpy(), new[k].numpy()) for k in lips)
    # the new bundle runs in the runtime and recognises the held-out session as well
    cfg, _ = build_config(tasks=['speech'], bundles={'speech': str(out)})
    theo = sessions['theo']
    run, metrics, _ = run_replay(theo.path, cfg, out=tmp_path / 'replay', labels=str(theo.labels), progress=False,
                                 plots=False, echo=lambda *_: None)
    assert metrics['speech']['segment_accuracy'] == pytest.approx(after, abs=1e-9)


def test_quick_finetune_improves_on_a_held_out_session(sessions):
    """A rough digits model, fine-tuned (whole) on a new user's session, improves on their next session."""
    from centralnet_ros.training.finetune import finetune, FinetuneConfig
    from centralnet_ros.training.trainer import TrainConfig
    cfg, _ = build_config(tasks=['speech'])
    got = {s: collect_samples(b.path, cfg, 'speech', labels=[b.labels]).samples
           for s, b in sessions.items() if s != 'jackson'}
    base = load_bundle(SPEECH)
    quick = TrainConfig(epochs=15, batch_size=16, lr=1e-3, patience=0, num_threads=1, progress=False)
    # a first, rough model of the new words: new heads on frozen encoders, a few epochs, one speaker
    rough = TrainConfig(epochs=3, batch_size=16, lr=1e-3, patience=0, num_threads=1, progress=False)
    first = finetune(base.model, base.labels, got['george'], got['nicolas'], got['theo'],
                     FinetuneConfig(mode='new_labels', freeze_encoders=True, train=rough))
    second = finetune(first.model, first.labels, got['theo_again'], got['nicolas'], got['theo'],
                      FinetuneConfig(mode='whole', train=quick, seed=1))
    assert second.before == pytest.approx(first.after)
    print(f'held-out session of theo: {second.before:.3f} -> {second.after:.3f}')
    assert second.after >= second.before + 0.15


def test_session_split_and_setup_errors(sessions, tmp_path, capsys):
    from centralnet_ros.cli import main
    from centralnet_ros.finetune_cli import FinetuneSetupError, split_sessions
    bags = [Path(f'/x/s{i}') for i in range(4)]
    assert split_sessions(bags, None, None) == (bags[:2], [bags[2]], [bags[3]])
    assert split_sessions(bags, ['s0'], ['s1']) == ([bags[2], bags[3]], [bags[0]], [bags[1]])
    with pytest.raises(FinetuneSetupError, match='need at least one training and one validation'):
        split_sessions(bags[:2], None, None)
    with pytest.raises(FinetuneSetupError, match='not among --bags'):
        split_sessions(bags, ['s9'], None)
    rc = main(['finetune', '--bundle', str(SPEECH), '--bags', str(sessions['george'].path),
               str(sessions['jackson'].path), str(sessions['theo'].path), '--labels', str(sessions['george'].labels),
               '--no-progress'])
    assert rc == 2 and '1 label files for 3 bags' in capsys.readouterr().err
    three = ('george', 'jackson', 'theo')
    rc = main(['finetune', '--bundle', str(SPEECH), '--bags', *[str(sessions[s].path) for s in three],
               '--labels', *[str(sessions[s].labels) for s in three], '--mode', 'whole', '--no-progress',
               '--out', str(tmp_path / 'x')])
    err = capsys.readouterr().err
    assert rc == 2 and 'are not classes of the bundle' in err and 'new_labels' in err
    rc = main(['finetune', '--bundle', str(SPEECH), '--bags', *[str(sessions[s].path) for s in three],
               '--no-progress', '--out', str(tmp_path / 'x')])
    assert rc == 2 and 'need runtime decisions inside labelled segments' in capsys.readouterr().err
    labelled = ['--bags', *[str(sessions[s].path) for s in three],
                '--labels', *[str(sessions[s].labels) for s in three],
                '--mode', 'new_labels', '--no-progress', '--out', str(tmp_path / 'x')]
    rc = main(['finetune', '--bundle', str(SPEECH), *labelled, '--augment', 'mfcc_masking', '--augment', 'nope'])
    assert rc == 2 and '--augment nope: known augmentations are' in capsys.readouterr().err
    rc = main(['finetune', '--bundle', str(SPEECH), *labelled, '--freeze-modality', 'depth'])
    err = capsys.readouterr().err
    assert rc == 2 and "freeze_modalities ['depth']" in err and 'lip_video' in err
    assert not (tmp_path / 'x').exists()


@pytest.mark.needs_data('avletters')
def test_rehearsal_split_is_the_bundles_own_training_data(sessions):
    """--rehearse mixes in the preset's training split, in the modalities the recordings carry."""
    from centralnet_ros.finetune_cli import FinetuneSetupError, rehearsal_split
    from centralnet_ros.training.finetune import finetune, FinetuneConfig
    base = load_bundle(SPEECH)
    cfg, _ = build_config(tasks=['speech'])
    audio_only = collect_samples(sessions['theo'].path, cfg, 'speech', labels=[sessions['theo'].labels]).samples
    split = rehearsal_split(base, audio_only, None)
    assert set(split.inputs) == {'mfcc'} and split.inputs['mfcc'].shape[1:] == (1, 26, 24)
    ev = base.manifest.evaluation    # AVLetters' 548, the not_a_letter speech, and the espeak-ng letters
    whole_clips = ev['not_a_letter_train_samples'] - ev.get('runtime_windows_train_not_a_letter', 0)
    assert len(split) > ev['train_samples'] + whole_clips > ev['train_samples']
    assert set(np.unique(split.labels)) <= set(range(len(base.labels)))
    with pytest.raises(ValueError, match='does not go with new_labels'):
        finetune(base.model, base.labels, audio_only, audio_only, [], FinetuneConfig(mode='new_labels'),
                 rehearsal=split)
    digits = load_bundle(SPEECH)
    digits.manifest.training.pop('preset')
    with pytest.raises(FinetuneSetupError, match='names no training preset'):
        rehearsal_split(digits, audio_only, None)


def test_mfcc_masking_masks_frames_and_coefficients():
    """SpecAugment-like masks: masked frames hold the map's per-coefficient mean, the lips pass untouched."""
    from centralnet_ros.training.speech import make_augmentation
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 1, 26, 24)).astype(np.float32) + np.arange(26, dtype=np.float32)[:, None]
    lips = rng.normal(size=(8, 1, 12, 18, 24)).astype(np.float32)
    only_time = make_augmentation('mfcc_masking', time_masks=1, max_time=3, coefficient_masks=0)
    out = only_time({'mfcc': x, 'lip_video': lips}, np.random.default_rng(1))
    assert out['lip_video'] is lips and out['mfcc'].shape == x.shape and not np.shares_memory(out['mfcc'], x)
    changed = (out['mfcc'] != x).any(axis=(1, 2))                     # (B, T): frames that were masked
    assert changed.any() and (changed.sum(1) <= 3).all()
    for b, t in zip(*np.nonzero(changed)):
        np.testing.assert_allclose(out['mfcc'][b, 0, :, t], x[b, 0].mean(axis=1), rtol=1e-5)
    only_coef = make_augmentation('mfcc_masking', time_masks=0, coefficient_masks=1, max_coefficients=26)
    out = only_coef({'mfcc': x}, np.random.default_rng(2))['mfcc']
    rows = (out != x).any(axis=(1, 3))                                 # (B, C): coefficients that were masked
    assert rows.any()
    for b, c in zip(*np.nonzero(rows)):
        np.testing.assert_allclose(out[b, 0, c], x[:, 0, c].mean(), rtol=1e-5)
    with pytest.raises(ValueError, match=r'\(B, 1, C, T\)'):
        only_time({'mfcc': x[:, 0]}, rng)
    with pytest.raises(ValueError, match='p must be'):
        make_augmentation('mfcc_masking', p=2.0)


def test_freeze_modalities_keeps_that_encoder_fixed():
    """FinetuneConfig.freeze_modalities: the lip encoder (and its head, same classes) stays out of training."""
    from centralnet_ros.finetune_cli import augmentation, FinetuneSetupError
    from centralnet_ros.training.finetune import adapt_model, FinetuneConfig, head_parameter_names
    if not (SPEECH / 'manifest.yaml').is_file():
        pytest.skip('no shipped speech bundle')
    base = load_bundle(SPEECH).model
    model, frozen = adapt_model(base, FinetuneConfig(mode='whole', freeze_modalities=['lip_video']),
                                num_classes=base.config.num_classes)
    lips = [n for n, _ in model.named_parameters() if n.startswith('encoders.lip_video.')]
    assert lips and set(lips) == set(frozen)
    assert any(p.requires_grad for n, p in model.named_parameters() if n.startswith('encoders.mfcc.'))
    new, frozen = adapt_model(base, FinetuneConfig(mode='new_labels', freeze_modalities=['lip_video']),
                              num_classes=3)
    heads = head_parameter_names(new)                                  # new classes: the lip head must learn
    assert not set(frozen) & heads and any(n.startswith('encoders.lip_video.') for n in heads)
    with pytest.raises(ValueError, match="freeze_modalities \\['depth'\\]"):
        adapt_model(base, FinetuneConfig(freeze_modalities=['depth']), num_classes=base.config.num_classes)
    with pytest.raises(FinetuneSetupError, match='known augmentations are'):
        augmentation(['mfcc_masking', 'nope'])
    assert augmentation([]) is None


@pytest.mark.needs_data('avletters', 'emodb')
def test_rehearsal_and_l2_sp_keep_the_bundles_own_task(tmp_path):
    """
    Letters of a voice the bundle never heard, through the runtime: adapting without rehearsal forgets the old task.

    Fine-tuned (whole, audio) on one session, the bundle's own test split (AVLetters letters and
    non-letters of unseen speakers) is kept better with ``--rehearse`` (its training data mixed
    in, its validation data in early stopping); L2-SP keeps the weights nearer the bundle's.
    """
    import dataclasses
    import shutil

    from centralnet_ros.finetune_cli import rehearsal_split
    from centralnet_ros.replay.session_bag import espeak_letter
    from centralnet_ros.training.finetune import accuracy_of, finetune, FinetuneConfig
    from centralnet_ros.training.trainer import TrainConfig
    from centralnet_ros.training.datasets import load_experiment_data
    from centralnet_ros.training.experiment import load_experiment
    if shutil.which('espeak-ng') is None:
        pytest.skip('espeak-ng is not installed (apt install espeak-ng): the letters cannot be spoken')
    if not (SPEECH / 'manifest.yaml').is_file():
        pytest.skip('no shipped speech bundle')
    base = load_bundle(SPEECH)
    cfg, _ = build_config(tasks=['speech'])
    got = {}
    for name, speed in (('train', 150), ('val', 190)):
        said = [Utterance(x, *espeak_letter(x, 'en+f3', speed=speed)) for x in 'ABCDEFGHIJKLMNOPQRSTUVWXYZ']
        bag = write_session_bag(tmp_path / name, said)
        got[name] = collect_samples(bag.path, cfg, 'speech', labels=[bag.labels]).samples
    assert len(got['train']) >= 20 and len(got['val']) >= 20
    exp = load_experiment(base.manifest.training['preset'])
    options = dict(exp.dataset_options)              # only its test split is used: no runtime-window file needed
    options['not_a_letter'] = {**options['not_a_letter'], 'runtime_windows': None}
    own = load_experiment_data(exp.dataset, options, paths.data_root())
    rehearsal = rehearsal_split(base, got['train'], None)
    rehearsal_val = rehearsal_split(base, got['train'], None, split='val')
    assert len(rehearsal_split(base, got['train'], None, times=2)) == 2 * len(rehearsal)
    # lr 5e-3: the bundle trained on the runtime's windows barely forgets at 1e-3 (own test 0.971 -> 0.960),
    # so the step that shows what rehearsal is for is larger (0.756 without, 0.969 with, when written)
    quick = TrainConfig(epochs=5, batch_size=32, lr=5e-3, patience=0, num_threads=1, progress=False)

    def adapt(l2_sp=0.0, train=quick, **kw):
        return finetune(base.model, base.labels, got['train'], got['val'], got['val'],
                        FinetuneConfig(mode='whole', keep_batch_norm=True, l2_sp=l2_sp, train=train), **kw)

    plain = adapt()
    kept = adapt(rehearsal=rehearsal, rehearsal_val=rehearsal_val)
    assert kept.counts['rehearsal'] == len(rehearsal) and kept.counts['rehearsal_val'] == len(rehearsal_val)
    assert kept.counts['val'] == len(got['val'])
    before, without, with_ = (accuracy_of(m, own.test) for m in (base.model, plain.model, kept.model))
    print(f"bundle's own test split: {before:.3f}; adapted without rehearsal {without:.3f}, with {with_:.3f}")
    assert with_ >= without + 0.05 and with_ >= before - 0.05
    assert kept.after >= 0.5, f'the new voice: {kept.after} after adapting with rehearsal'

    def distance(model):
        start = dict(base.model.named_parameters())
        return sum(float(((p.detach() - start[n].detach()) ** 2).sum()) for n, p in model.named_parameters())

    steps = dataclasses.replace(quick, batch_size=8, lr=1e-3)  # L2-SP under Adam needs a few steps to hold back
    free, held = adapt(train=steps), adapt(l2_sp=100.0, train=steps)
    assert held.train.history[-1]['loss_parts']['regularizer'] > 0         # 0 before the first step
    assert distance(held.model) < 0.25 * distance(free.model)
    with pytest.raises(ValueError, match='l2_sp must be >= 0'):
        FinetuneConfig(l2_sp=-1.0)


def test_interpolated_weights_lie_between_the_bundle_and_the_fine_tune():
    """WiSE-FT: alpha 0 is the bundle, 1 the fine-tuned model, 0.5 their mean; a new head stays the fine-tune's."""
    import torch

    from centralnet_ros.training.finetune import adapt_model, FinetuneConfig, interpolate_weights
    if not (SPEECH / 'manifest.yaml').is_file():
        pytest.skip('no shipped speech bundle')
    base = load_bundle(SPEECH).model
    tuned, _ = adapt_model(base, FinetuneConfig(mode='whole'), num_classes=base.config.num_classes)
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(1.0)
    start = {n: w.clone() for n, w in base.state_dict().items()}
    end = tuned.state_dict()
    for alpha in (0.0, 0.5, 1.0):
        got = interpolate_weights(base, tuned, alpha).state_dict()
        for name, w in got.items():
            if w.is_floating_point():
                torch.testing.assert_close(w, start[name] + alpha * (end[name] - start[name]))
            else:
                assert torch.equal(w, end[name])
    assert all(torch.equal(w, start[n]) for n, w in base.state_dict().items())      # the bundle is untouched
    digits, _ = adapt_model(base, FinetuneConfig(mode='new_labels'), num_classes=3)
    half = interpolate_weights(base, digits, 0.5).state_dict()
    heads = [n for n, w in digits.state_dict().items() if n in start and start[n].shape != w.shape]
    assert heads and all(torch.equal(half[n], digits.state_dict()[n]) for n in heads)
    with pytest.raises(ValueError, match='interpolation must be in'):
        FinetuneConfig(mode='new_labels', interpolation=0.5)
    with pytest.raises(ValueError, match='head_warmup_epochs'):
        FinetuneConfig(mode='whole', head_warmup_epochs=3)


def test_freeze_encoder_levels_keeps_the_first_levels_fixed():
    """FinetuneConfig.freeze_encoder_levels: the first K levels of every encoder stay out of training."""
    from centralnet_ros.training.finetune import adapt_model, FinetuneConfig
    if not (SPEECH / 'manifest.yaml').is_file():
        pytest.skip('no shipped speech bundle')
    base = load_bundle(SPEECH).model
    model, frozen = adapt_model(base, FinetuneConfig(mode='new_labels', freeze_encoder_levels=2), num_classes=10)
    for m in ('mfcc', 'lip_video'):
        for i, level in enumerate(model.encoders[m].levels):
            names = {f'encoders.{m}.levels.{i}.{n}' for n, _ in level.named_parameters()}
            assert names and (names <= set(frozen) if i < 2 else not names & set(frozen)), (m, i)
    assert any(p.requires_grad for n, p in model.named_parameters() if n.startswith('encoders.mfcc.levels.2.'))
    assert adapt_model(base, FinetuneConfig(mode='new_labels'), num_classes=10)[1] == []
    with pytest.raises(ValueError, match='the mfcc encoder has 4 levels'):
        adapt_model(base, FinetuneConfig(mode='new_labels', freeze_encoder_levels=5), num_classes=10)
    with pytest.raises(ValueError, match='freeze_encoder_levels must be >= 0'):
        FinetuneConfig(freeze_encoder_levels=-1)


def _take_segments(labels) -> list[dict]:
    import yaml
    return yaml.safe_load(Path(labels).read_text())['segments']


def test_second_take_says_every_labelled_segment_again(sessions, tmp_path):
    """One perturbed utterance per labelled segment, same labels in order, each cut perturbed as the library does."""
    from centralnet_ros.replay.export_media import read_audio
    from centralnet_ros.replay.second_take import (GAP_S, MARGIN_S, perturb_utterance, second_take_bag,
                                                   SecondTakeError, TakeRanges)
    from centralnet_ros.replay.session_bag import T0_NS
    src = sessions['george']
    bag, labels = second_take_bag(src.path, [src.labels], tmp_path / 'noisy', 'speech', seed=3)
    assert bag.name == 'george_second_take' and labels.is_file()
    got = _take_segments(labels)
    assert [s['label'] for s in got] == [s['label'] for s in src.segments]
    source = read_audio(src.path)
    take = read_audio(bag)
    rate = take.sample_rate
    assert rate == source.sample_rate == 16000
    ranges = TakeRanges()
    for s, t in zip(src.segments, got):            # each cut: the segment and its margins, at speed 0.9-1.1, onset
        cut = (s['end_s'] - s['start_s']) + 2 * MARGIN_S
        length = t['end_s'] - t['start_s'] - 0.6   # the session writer's tail after each utterance
        assert cut / ranges.speed[1] - 0.01 <= length <= cut / ranges.speed[0] + ranges.onset_s[1] + 0.01
    assert take.samples.shape[0] / rate == pytest.approx(got[-1]['end_s'] - 0.6 + GAP_S, abs=0.03)
    # without room noise the take is, to 16-bit rounding, the library's perturbation of each cut, in order
    quiet, quiet_labels = second_take_bag(src.path, [src.labels], tmp_path / 'quiet', 'speech',
                                          dataclasses.replace(ranges, noise_rms=0.0), seed=3)
    quiet_audio = read_audio(quiet).samples[:, 0]
    wave = source.samples[:, 0]
    rng = np.random.default_rng([3, 7])
    offset = (source.start_ns - T0_NS) / 1e9                      # the writer's segment times are from T0
    for s, t in zip(src.segments, _take_segments(quiet_labels)):
        i = max(0, int(round((s['start_s'] - offset) * rate)) - int(round(MARGIN_S * rate)))
        j = min(wave.size, int(round((s['end_s'] - offset) * rate)) + int(round(MARGIN_S * rate)))
        cut = wave[i:j]
        expected = perturb_utterance(cut, rate, rng, ranges)
        k = int(round((t['start_s'] - offset) * rate))
        said = quiet_audio[k:k + expected.size]
        np.testing.assert_allclose(said, expected, atol=2 / 32768)
        n = min(cut.size, expected.size)
        assert not np.allclose(said[:n], cut[:n], atol=1e-3)     # perturbed: not the source
    # and the noisy take differs from the quiet one by room noise of the declared RMS
    assert np.std(take.samples[:quiet_audio.size, 0] - quiet_audio) == pytest.approx(ranges.noise_rms, rel=0.25)
    # labels from the bag's topics give the same take as its label file
    nic = sessions['nicolas']
    _, from_topics = second_take_bag(nic.path, None, tmp_path / 'topics', 'speech', seed=1)
    _, from_file = second_take_bag(nic.path, [nic.labels], tmp_path / 'file', 'speech', seed=1)
    assert _take_segments(from_topics) == _take_segments(from_file)
    # clear errors naming the bag: no segment of the task, no audio
    with pytest.raises(SecondTakeError, match=r'george.*no labelled segment of task .gesture.'):
        second_take_bag(src.path, [src.labels], tmp_path / 'x', 'gesture')
    from centralnet_ros.replay import msgdefs as D
    factory = D.typestore_factory()
    mute = D.write_bag(tmp_path / 'mute', [('/labels/speech', 'std_msgs/msg/String', T0_NS,
                                            factory('std_msgs/msg/String', data='1'))])
    with pytest.raises(SecondTakeError, match=r'mute.*no audio topic'):
        second_take_bag(mute, None, tmp_path / 'x', 'speech')


def test_the_benchmarks_second_takes_are_the_librarys():
    """benchmarks/finetune_benchmark.py digits --perturbed draws its takes with the library's functions and ranges."""
    import importlib.util
    from centralnet_ros.replay import second_take as st
    path = Path(__file__).resolve().parents[1] / 'benchmarks' / 'finetune_benchmark.py'
    spec = importlib.util.spec_from_file_location('finetune_benchmark', path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.DIGIT_TAKE == st.TakeRanges()
    assert (bench.DIGIT_SPEED, bench.DIGIT_GAIN_DB, bench.DIGIT_ONSET_S, bench.DIGIT_NOISE_RMS) == (
        (0.9, 1.1), (-6.0, 6.0), (0.0, 0.15), 0.008)             # the values finetune_digits_base.md was run with
    assert bench.perturb_utterance is st.perturb_utterance and bench.room_noise is st.room_noise
    x = np.sin(np.arange(8000) * 0.05).astype(np.float32) * 0.3
    lib, ben = np.random.default_rng([2, 7]), np.random.default_rng([2, 7])   # three clips in turn, one rng
    a = [st.perturb_utterance(x, 8000, lib) for _ in range(3)]
    b = [bench.perturb_utterance(x, 8000, ben, bench.DIGIT_TAKE) for _ in range(3)]
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert np.array_equal(st.room_noise(4000, np.random.default_rng([2, 8]), 0.008),
                          bench.room_noise(4000, np.random.default_rng([2, 8]), rms=bench.DIGIT_NOISE_RMS))


def test_finetune_second_take_adds_training_samples_only(sessions, tmp_path, capsys):
    """`--second-take`: a second take of each training bag joins training; validation and test are untouched."""
    from centralnet_ros.cli import main
    order = ['george', 'nicolas', 'theo']
    out = tmp_path / 'digits'
    rc = main(['finetune', '--bundle', 'speech_base', '--bags', *[str(sessions[s].path) for s in order],
               '--labels', *[str(sessions[s].labels) for s in order], '--mode', 'new_labels', '--epochs', '2',
               '--out', str(out), '--no-progress', '--keep-batch-norm', '--second-take'])
    assert rc == 0, capsys.readouterr().err
    assert 'george (second take):' in capsys.readouterr().out
    m = load_bundle(out).manifest
    sessions_of = m.training['sessions']
    take = m.training['second_take']
    assert take['used'] and take['ranges'] == {'speed': [0.9, 1.1], 'gain_db': [-6.0, 6.0], 'onset_s': [0.0, 0.15],
                                               'noise_rms': 0.008}
    assert [s['of_session'] for s in take['sessions']] == ['george']          # training bags only
    assert take['sessions'][0]['segments'] == len(sessions['george'].segments)
    george = sessions_of['train'][0]['samples']
    assert take['samples'] >= 0.8 * george
    counts = m.evaluation['samples']
    assert counts['train'] == george + take['samples']
    assert counts['val'] == sessions_of['val'][0]['samples'] and counts['test'] == sessions_of['test'][0]['samples']
    assert not list(tmp_path.glob('**/*second_take*'))                       # the work folder is gone
    # a training bag whose labels hold no segment of the task is named, and nothing is written
    other = tmp_path / 'george.gesture.yaml'
    other.write_text(sessions['george'].labels.read_text().replace('task: speech', 'task: gesture'))
    rc = main(['finetune', '--bundle', 'speech_base', '--bags', *[str(sessions[s].path) for s in order],
               '--labels', str(other), *[str(sessions[s].labels) for s in order[1:]], '--mode', 'new_labels',
               '--out', str(tmp_path / 'x'), '--no-progress', '--second-take'])
    err = capsys.readouterr().err
    assert rc == 2 and 'second take of' in err and 'george' in err and "no labelled segment of task 'speech'" in err
    assert not (tmp_path / 'x').exists()
