"""
Gesture: training adapters, the skeleton_sequence pipeline, presets and the shipped bundle.

MSRC-12 on its real files; ChaLearn on recordings generated in its published formats, as
test_chalearn.py does; the gesture, Montalbano and AFEW presets.
"""
from __future__ import annotations


from centralnet_ros import paths
from centralnet_ros.bundle.io import read_manifest
from centralnet_ros.config import ConfigError, from_dict
from centralnet_ros.data import msrc12
from centralnet_ros.features import skeleton as skel
from centralnet_ros.features.pipelines import resolve_params, run_pipeline, Window
from centralnet_ros.fusion import build_model
from centralnet_ros.torch_utils import seed_everything
from centralnet_ros.training.experiment import load_experiment
from centralnet_ros.training.gesture import load_chalearn, load_msrc12, msrc12_person_split, MSRC12Options
from centralnet_ros.training.trainer import train
import numpy as np
import pytest
import torch


def _disjoint(*groups):
    sets = [set(g) for g in groups]
    return all(not (a & b) for i, a in enumerate(sets) for b in sets[i + 1:])


# --------------------------------------------------------------------------- folds

@pytest.mark.parametrize('folds', [3, 4, 6])
def test_person_folds_cover_every_person_once(folds):
    persons = list(range(1, 13))
    tested = []
    for fold in range(folds):
        tr, va, te = msrc12_person_split(persons, MSRC12Options(folds=folds, fold=fold, n_val_persons=2))
        assert _disjoint(tr, va, te) and sorted(tr + va + te) == persons
        assert len(va) == 2 and te == sorted(te)
        assert max(te) - min(te) == len(te) - 1                         # a contiguous block
        tested += te
    assert sorted(tested) == persons                                     # every person tested exactly once


def test_explicit_persons_and_bad_choices():
    tr, va, te = msrc12_person_split(list(range(1, 13)), MSRC12Options(test_persons=[11, 12], n_val_persons=1))
    assert te == [11, 12] and va == [1] and tr == list(range(2, 11))
    tr, va, te = msrc12_person_split(list(range(1, 13)), MSRC12Options(test_persons=[3], val_persons=[7, 8]))
    assert va == [7, 8] and 3 not in tr and _disjoint(tr, va, te)
    with pytest.raises(ValueError, match='test_persons'):
        msrc12_person_split([1, 2, 3], MSRC12Options(test_persons=[9]))
    with pytest.raises(ValueError, match='val_persons'):
        msrc12_person_split([1, 2, 3, 4], MSRC12Options(test_persons=[1], val_persons=[1]))
    with pytest.raises(ConfigError, match='unknown key'):
        from_dict(MSRC12Options, {'test_person': [1]})


def test_fewer_training_persons_keep_the_fold_and_follow_the_validation_persons():
    persons = list(range(1, 13))
    full = msrc12_person_split(persons, MSRC12Options(folds=4, fold=1, n_val_persons=2))
    assert full == ([1, 2, 3, 9, 10, 11, 12], [7, 8], [4, 5, 6])
    tr, va, te = msrc12_person_split(persons, MSRC12Options(folds=4, fold=1, n_val_persons=2, n_train_persons=3))
    assert (va, te) == (full[1], full[2]) and tr == [9, 10, 11]        # the next ones after p07-p08, cyclically
    tr5, _, _ = msrc12_person_split(persons, MSRC12Options(folds=4, fold=3, n_val_persons=2, n_train_persons=5))
    assert tr5 == [3, 4, 5, 6, 7]                                       # after the block p10-p12 and p01-p02
    for bad in (0, 8):
        with pytest.raises(ValueError, match=r'n_train_persons must be in \[1, 7\]'):
            msrc12_person_split(persons, MSRC12Options(folds=4, fold=0, n_train_persons=bad))


# --------------------------------------------------------------------------- adapter on real files

@pytest.fixture(scope='module')
def small_msrc12(data_root):
    """Persons p01-p03: train p01, val p02, test p03 (all 12 gestures + none)."""
    opts = {'persons': [1, 2, 3], 'test_persons': [3], 'val_persons': [2]}
    return opts, load_msrc12(opts, data_root)


@pytest.mark.needs_data('msrc12')
def test_msrc12_adapter_shapes_labels_and_persons(small_msrc12, data_root):
    opts, data = small_msrc12
    o = MSRC12Options(**opts)
    assert data.label_names == list(msrc12.GESTURES) + ['none']
    for split in (data.train, data.val, data.test):
        x = split.inputs['skeleton']
        assert x.shape[1:] == (6 * 20, o.num_frames) and x.dtype == np.float32 and np.isfinite(x).all()
        assert set(np.unique(split.labels)) <= set(range(13)) and (split.labels == 12).any()
    assert data.info['train_persons'] == 'p01' and data.info['val_persons'] == 'p02'
    assert data.info['test_persons'] == 'p03'
    assert data.bundle_inputs == {'skeleton': {'preprocessing': o.pipeline_params(), 'window_s': 2.0}}
    # the hip-centre rows (joint 0) of the position channels are zero: centred on the hip
    pos_hip = data.train.inputs['skeleton'][:, [0, 20, 40]]
    assert np.abs(pos_hip).max() < 1e-6
    # iconic subset without none: 6 classes, only G2 G4 ... G12 kept
    iconic = load_msrc12({**opts, 'classes': 'iconic', 'include_none': False}, data_root)
    assert iconic.label_names == [msrc12.GESTURES[g - 1] for g in msrc12.ICONIC]
    assert set(np.unique(iconic.test.labels)) <= set(range(6))
    n_gestures = int((data.test.labels < 12).sum())
    assert 0 < len(iconic.test) < n_gestures


@pytest.mark.needs_data('msrc12')
def test_training_offsets_add_shifted_windows_to_train_only(small_msrc12, data_root):
    opts, data = small_msrc12
    jitter = load_msrc12({**opts, 'train_offsets_s': [-0.1, 0.1]}, data_root)
    gestures = lambda s: int((s.labels < 12).sum())  # noqa: E731
    assert gestures(jitter.train) > 2.9 * gestures(data.train)        # ~3x the instances (a few may drop)
    assert (jitter.train.labels == 12).sum() == (data.train.labels == 12).sum()
    assert len(jitter.test) == len(data.test) and len(jitter.val) == len(data.val)


@pytest.mark.needs_data('msrc12')
def test_speed_and_yaw_augmentation_add_training_windows_only(small_msrc12, data_root):
    opts, data = small_msrc12
    aug = load_msrc12({**opts, 'train_speeds': [0.8], 'train_yaw_deg': [30.0]}, data_root)
    gestures = lambda s: int((s.labels < 12).sum())  # noqa: E731
    assert gestures(aug.train) > 2.9 * gestures(data.train)           # one pass each: ~3x (a few may drop)
    assert (aug.train.labels == 12).sum() == (data.train.labels == 12).sum()
    assert len(aug.test) == len(data.test) and len(aug.val) == len(data.val)
    assert aug.info['train_speeds'] == '0.8' and aug.info['train_yaw_deg'] == '30'


@pytest.mark.needs_data('msrc12')
def test_training_instructions_keep_only_those_recordings_in_train(small_msrc12, data_root):
    opts, data = small_msrc12
    kept = ['video', 'images', 'video+text', 'images+text']
    some = load_msrc12({**opts, 'train_instructions': kept}, data_root)
    p01 = msrc12.load_sequences(data_root / 'msrc12', persons=[1])
    assert {s.info.instruction for s in p01} >= {'text', 'video'}      # p01 was taught by text in some recordings
    gestures = lambda s: int((s.labels < 12).sum())  # noqa: E731
    assert 0 < gestures(some.train) < gestures(data.train)           # the text recordings' instances left out
    assert len(some.test) == len(data.test) and len(some.val) == len(data.val)
    assert some.info['train_instructions'] == ', '.join(kept)
    for bad in (['textual'], []):
        with pytest.raises(ValueError, match='train_instructions'):
            MSRC12Options(train_instructions=bad)


@pytest.mark.needs_data('msrc12')
def test_train_with_val_adds_the_validation_persons_to_training(small_msrc12, data_root):
    opts, data = small_msrc12
    refit = load_msrc12({**opts, 'train_with_val': True}, data_root)
    p02_trained = load_msrc12({**opts, 'val_persons': [1]}, data_root).train        # p02 as the training person
    assert len(refit.train) == len(data.train) + len(p02_trained)
    assert refit.info['train_persons'] == 'p01, p02' and refit.info['val_persons'] == 'p02'
    assert 'not held out' in refit.info['train_with_val'] and 'train_with_val' not in data.info
    assert len(refit.val) == len(data.val) and len(refit.test) == len(data.test)


def test_mirror_swaps_left_and_right_and_negates_x():
    rng = np.random.default_rng(0)
    joints = rng.normal(size=(5, 20, 3))
    joints[:, skel.HAND_RIGHT, 0] = 1.0                                # right hand out to the right (+x) ...
    joints[:, skel.HAND_LEFT, 0] = -0.2
    m = skel.mirror_kinect_joints(joints)
    np.testing.assert_allclose(m[:, skel.HAND_LEFT, 0], -1.0)          # ... becomes the left hand out to the left
    np.testing.assert_allclose(m[:, skel.HAND_RIGHT, 0], 0.2)
    np.testing.assert_allclose(m[:, skel.KNEE_LEFT, 1:], joints[:, skel.KNEE_RIGHT, 1:])   # height, depth kept
    np.testing.assert_allclose(m[:, skel.HEAD], joints[:, skel.HEAD] * [-1, 1, 1])          # midline stays
    np.testing.assert_allclose(skel.mirror_kinect_joints(m), joints)    # twice: the identity
    assert sorted(skel.KINECT_V1_MIRROR) == list(range(20))
    with pytest.raises(ValueError, match='shape'):
        skel.mirror_kinect_joints(np.zeros((5, 18, 2)))


@pytest.mark.needs_data('msrc12')
def test_mirror_adds_mirrored_training_windows_except_the_excluded_classes(small_msrc12, data_root):
    opts, data = small_msrc12
    mirrored = load_msrc12({**opts, 'train_mirror': True}, data_root)
    push = msrc12.GESTURES.index('push_right')
    n0 = np.bincount(data.train.labels, minlength=13)
    n1 = np.bincount(mirrored.train.labels, minlength=13)
    assert n1[push] == n0[push] and n0[push] > 0                       # its mirror image is another gesture
    others = np.arange(13) != push
    np.testing.assert_array_equal(n1[others], 2 * n0[others])          # every other class twice, "none" included
    assert len(mirrored.test) == len(data.test) and len(mirrored.val) == len(data.val)
    assert 'push_right' in mirrored.info['train_mirror'] and 'train_mirror' not in data.info
    every = load_msrc12({**opts, 'train_mirror': True, 'mirror_exclude': []}, data_root)
    assert len(every.train) == 2 * len(data.train)
    with pytest.raises(ValueError, match='mirror_exclude'):
        MSRC12Options(mirror_exclude=['push_left'])


@pytest.mark.needs_data('msrc12')
def test_yaw_turns_the_body_about_the_vertical_and_speed_keeps_the_frame_count(data_root):
    from centralnet_ros.training.gesture import msrc12_labels, msrc12_windows
    o = MSRC12Options(persons=[1], include_none=False)
    seqs = msrc12.load_sequences(data_root / o.folder, persons=[1])[:2]
    _, remap, _ = msrc12_labels(o)
    plain, y0, _ = msrc12_windows(seqs, [1], [0.0], o, remap)
    both, y1, _ = msrc12_windows(seqs, [1], [0.0], o, remap, speeds=[0.8], yaws_deg=[90.0])
    n = len(plain)
    assert both.shape[1:] == plain.shape[1:] and (y1[:n] == y0).all()
    turned = both[-n:]                                                 # the yaw pass comes last
    np.testing.assert_allclose(turned[..., 1], plain[..., 1], atol=1e-5)          # height unchanged
    np.testing.assert_allclose(turned[..., 0], plain[..., 2], atol=1e-4)          # 90 deg: x <- z
    slower = both[n:-n]                                                # stretched: the same frames, less motion
    assert np.abs(np.diff(slower, axis=1)).mean() < np.abs(np.diff(plain[:len(slower)], axis=1)).mean()


@pytest.mark.needs_data('msrc12')
def test_amplitude_scales_each_joints_motion_about_its_mean_and_adds_training_windows_only(small_msrc12,
                                                                                           data_root):
    from centralnet_ros.training.gesture import msrc12_labels, msrc12_windows
    o = MSRC12Options(persons=[1], include_none=False)
    seqs = msrc12.load_sequences(data_root / o.folder, persons=[1])[:2]
    _, remap, _ = msrc12_labels(o)
    plain, y0, _ = msrc12_windows(seqs, [1], [0.0], o, remap)
    both, y1, _ = msrc12_windows(seqs, [1], [0.0], o, remap, amplitudes=[0.5])
    n = len(plain)
    assert len(both) == 2 * n and (y1[n:] == y0).all()
    mean = plain.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(both[n:] - mean, 0.5 * (plain - mean), atol=1e-5)   # half the motion, same mean
    with pytest.raises(ValueError, match='train_amplitudes must be > 0'):
        msrc12_windows(seqs, [1], [0.0], o, remap, amplitudes=[0.0])
    opts, data = small_msrc12
    aug = load_msrc12({**opts, 'train_amplitudes': [0.75, 1.33]}, data_root)
    gestures = lambda s: int((s.labels < 12).sum())  # noqa: E731
    assert gestures(aug.train) > 2.9 * gestures(data.train) and aug.info['train_amplitudes'] == '0.75, 1.33'
    assert (aug.train.labels == 12).sum() == (data.train.labels == 12).sum() and len(aug.test) == len(data.test)


@pytest.mark.needs_data('msrc12')
def test_short_training_is_well_above_chance(small_msrc12):
    _, data = small_msrc12
    cfg = load_experiment('msrc12_gesture', overrides={'train.epochs': 15, 'train.progress': False})
    seed_everything(0)                                                 # initial weights from the seed alone
    model = build_model(cfg.fusion_config(cfg.bundle.method))
    result = train(model, data.train, data.val, cfg.train, seed=0, test_split=data.test)
    assert result.test_metric > 0.45, result.test_metric               # chance: 1/13 = 7.7 %


# --------------------------------------------------------------------------- runtime pipeline parity

def _raw_window(seq: msrc12.Sequence, end_us: float, span_s: float = 2.2) -> Window:
    """Return the recorded frames around [end - span, end + 0.1 s], stamps in ns, as the runtime holds them."""
    keep = (seq.timestamps >= end_us - span_s * 1e6) & (seq.timestamps <= end_us + 1e5)
    return Window(data=seq.positions[keep], stamps_ns=seq.timestamps[keep] * 1000,
                  extra={'end_ns': end_us * 1000})


@pytest.mark.needs_data('msrc12')
def test_skeleton_input_reproduces_training_arrays(small_msrc12, data_root):
    opts, data = small_msrc12
    cfg = load_experiment('msrc12_gesture')
    spec = read_manifest(paths.models_dir() / 'gesture').modalities['skeleton']       # the manifest alone
    params = spec.preprocessing
    o = MSRC12Options(**opts)
    assert params == resolve_params(spec.pipeline, o.pipeline_params())
    assert params == resolve_params(spec.pipeline, cfg.bundle.modalities['skeleton']['preprocessing'])
    seqs = list(msrc12.load_sequences(data_root / 'msrc12', persons=[3]))
    train_rows = data.test.inputs['skeleton'].reshape(len(data.test), -1)
    checked = 0
    for seq in seqs[:6]:
        for ref, g in zip(seq.action_times[:2], seq.action_gestures[:2]):
            window = _raw_window(seq, ref + o.after_s * 1e6)
            x = run_pipeline(spec.pipeline, window, params)
            assert x.shape == tuple(cfg.modalities['skeleton'].input_shape)
            dist = np.abs(train_rows - x.reshape(1, -1)).max(axis=1)
            i = int(np.argmin(dist))
            if data.test.labels[i] == g - 1 and dist[i] < 1e-4:
                checked += 1
    assert checked >= 8                                                 # the same arrays, not merely close


def test_skeleton_input_drops_untracked_frames_and_holds_ends():
    rng = np.random.default_rng(0)
    joints = rng.normal(0, 0.3, (50, 20, 3)).astype(np.float32) + np.float32([0, 0, 2])
    stamps = np.arange(50, dtype=np.int64) * 33_000_000
    params = {'frame_rate': 15.0, 'num_frames': 30, 'channels': ['position', 'velocity'], 'layout': 'joints_time'}
    base = skel.skeleton_input(Window(joints, stamps), **params)
    lost = joints.copy()
    lost[[10, 25]] = 0                                                   # tracking lost: all-zero frames
    keep = np.ones(50, bool)
    keep[[10, 25]] = False
    np.testing.assert_allclose(skel.skeleton_input(Window(lost, stamps), **params),
                               skel.skeleton_input(Window(joints[keep], stamps[keep]), **params), atol=1e-6)
    short = skel.skeleton_input(Window(joints[-20:], stamps[-20:]), **params)   # 0.66 s of a 2 s window
    assert short.shape == base.shape and np.isfinite(short).all()
    np.testing.assert_allclose(short[:, -9:], base[:, -9:], atol=1e-5)          # recent part identical
    grid = skel.skeleton_input(Window(joints, stamps), **{**params, 'layout': 'channels_time_joints'})
    assert grid.shape == (6, 30, 20)
    np.testing.assert_allclose(skel.feature_layout(grid, layout='joints_time'), base)
    with pytest.raises(ValueError, match='Kinect v1'):
        skel.skeleton_input(Window(joints[:, :18], stamps), **params)
    with pytest.raises(ValueError, match='no tracked skeleton'):
        skel.skeleton_input(Window(np.zeros_like(joints), stamps), **params)


# --------------------------------------------------------------------------- presets

@pytest.mark.parametrize('name', ['msrc12_gesture', 'montalbano', 'afew'])
def test_presets_parse_and_build_every_method(name):
    cfg = load_experiment(name)
    for method in cfg.methods:
        model = build_model(cfg.fusion_config(method)).eval()
        batch = {m: torch.randn(3, *e.input_shape) for m, e in cfg.modalities.items()}
        with torch.no_grad():
            out = model(batch)
        assert out.logits.shape == (3, cfg.num_classes)


@pytest.mark.parametrize('name,base', [('msrc12_events', 'msrc12_gesture'), ('msrc12_2d_loso', 'msrc12_gesture2d')])
def test_msrc12_benchmark_presets_are_the_shipped_model_on_the_3d_benchmarks_folds(name, base):
    loso, cfg, shipped = load_experiment('msrc12_loso'), load_experiment(name), load_experiment(base)
    assert cfg.folds == loso.folds                       # the same persons tested, whatever the input
    assert cfg.modalities == shipped.modalities and cfg.train == shipped.train and cfg.bundle == shipped.bundle
    assert cfg.resolve('shipped').dataset_options == shipped.dataset_options
    for variant in cfg.variants:
        tested = []
        for fold in range(len(cfg.folds.values)):
            opts = from_dict(MSRC12Options, dict(cfg.resolve(variant, fold).dataset_options))
            assert opts.fold == fold and opts.test_persons is None and opts.n_val_persons == 2
            tested += msrc12_person_split(list(range(1, 13)), opts)[2]
        assert sorted(tested) == list(range(1, 13))     # every person tested once


def test_a_benchmarks_plan_comes_from_its_command_line():
    import argparse
    from centralnet_ros.training import sweep
    parser = argparse.ArgumentParser()
    sweep.add_plan_arguments(parser, preset='msrc12_events')
    sweep.add_arguments(parser, runs='runs/x')
    cfg, plan, overrides = sweep.plan_from_args(parser.parse_args(
        ['--variants', 'shipped', '--folds', '1', '3', '--set', 'train.epochs=2']))
    assert [(r.variant, r.fold) for r in plan] == [('shipped', 1), ('shipped', 3)]
    assert overrides == {'train.epochs': 2} and cfg.train.epochs == 2 and cfg.train.num_threads == 1
    assert sweep.plan_from_args(parser.parse_args(['--render-only']))[:2] == (None, None)


def _benchmark_module(name):
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / 'benchmarks' / f'{name}.py'
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_2d_benchmark_says_when_folds_are_missing_and_times_the_variants_graph():
    import copy
    import json
    from pathlib import Path
    bench = _benchmark_module('msrc12_2d_benchmark')
    full = json.loads((Path(__file__).resolve().parents[1] / 'benchmarks/results/msrc12_2d_mirror.json').read_text())
    assert 'Partial' not in bench.render(full)                    # a result file of 4 folds, none missing
    part = copy.deepcopy(full)
    part['runs'], part['folds_planned'] = part['runs'][:2], [0, 1, 2, 3]
    assert '**Partial: folds 0, 1 of 4 finished**' in bench.render(part)
    part['folds_planned'] = [0, 1]
    assert 'Partial' not in bench.render(part)
    cost = bench.decision_cost(load_experiment('msrc12_2d_loso'), 'tcn', repeat=100)
    assert [c['kind'] for c in cost.values()] == ['cnn1d', 'tcn'] and list(cost) == ['preset', 'tcn']
    assert all(c['runs'] == 100 and 0 < c['median_ms'] <= c['p95_ms'] for c in cost.values())
    assert cost['tcn']['parameters'] > cost['preset']['parameters']
    assert '| variant `tcn` | tcn |' in bench.render({**full, 'decision_cost': cost})


def test_2d_benchmark_counts_hands_up_episodes_and_says_where_the_errors_lie():
    import numpy as np
    from centralnet_ros.features import skeleton as skel
    bench = _benchmark_module('msrc12_2d_benchmark')
    t = np.arange(300)
    joints = np.zeros((300, 20, 4), np.float32)
    joints[:, skel.SHOULDER_CENTER, 1] = 0.5
    raised = ((t // 25) % 2 == 1)                                  # up for 25 frames, down for 25: 6 raises
    joints[:, skel.HAND_LEFT, 1] = np.where(raised, 0.8, 0.1)
    joints[:, skel.HAND_RIGHT, 1] = np.where(raised, 0.9, 0.2)
    assert bench.hands_up_episodes(joints) == 6
    joints[:, skel.HAND_RIGHT, 1] = 0.2                            # one hand up is not both
    assert bench.hands_up_episodes(joints) == 0
    joints[:, skel.HAND_LEFT, 1] = joints[:, skel.HAND_RIGHT, 1] = 0.8   # up from the first frame: one
    assert bench.hands_up_episodes(joints) == 1
    rec = [{'name': f'r{i}', 'person': 2, 'gesture': 'duck', 'windows': 10, 'wrong': w, 'none_windows': 4,
            'none_wrong': min(w, 4), 'none_called': {'bow': 1} if w else {}, 'instances': 3,
            'hands_up_episodes': 0} for i, w in enumerate([0, 6, 2, 1, 3])]
    lines = bench._recording_lines({'runs': [{'fold': 0, 'recordings': rec}]}, top=2)
    rows = [line for line in lines if line.startswith('| 0 |')]
    assert [r.split(' | ')[1] for r in rows] == ['r1', 'r4', 'all 5 recordings']
    assert '| 50 % |' in rows[0] and '| 50 (12) | 100 % |' in rows[-1]
    assert bench._recording_lines({'runs': [{'fold': 0}]}) == []      # result files from before the breakdown


def test_2d_benchmark_tables_every_seed_of_every_variant():
    bench = _benchmark_module('msrc12_2d_benchmark')

    def run(variant, seed, fold, test, val):
        return {'variant': variant, 'seed': seed, 'fold': fold, 'conditions': {'all': {'accuracy': test}},
                'calibration': {'val_accuracy': val - 0.01, 'val_accuracy_calibrated': val}}
    runs = [run('a', s, f, 0.8 + 0.02 * s + 0.01 * f, 0.9) for s in (0, 1) for f in (0, 1)] + [run('b', 2, 0, 0.5, 0.6)]
    summary = bench.seed_summary({'runs': runs})
    assert [x['seed'] for x in summary['a']] == [0, 1] and summary['b'][0]['folds'] == [0]
    assert abs(summary['a'][1]['test_accuracy'] - 0.825) < 1e-9
    lines = bench._seed_lines({'seeds': summary, 'folds_planned': [0, 1]})
    assert '| a | mean of 2 | 89.0 % ± 0.0 -> 90.0 % ± 0.0 | 81.5 % ± 1.4 |' in lines
    assert '| b | 2 (folds 0) | 59.0 % -> 60.0 % | 50.0 % |' in lines
    assert not any('| b | mean' in line for line in lines)          # a seed that missed folds is no mean
    assert bench._seed_lines({'runs': runs}) == []


def test_event_benchmark_caches_posteriors_by_what_the_model_learns_from():
    bench = _benchmark_module('gesture_events_benchmark')
    cfg = load_experiment('msrc12_events')

    def key(variant, fold=0, **overrides):
        c = cfg.resolve(variant)
        c.dataset_options.update({'fold': fold, 'folds': 4, 'test_persons': None, 'n_val_persons': 2})
        for k, v in overrides.items():
            setattr(c.train, k, v)
        return bench.posterior_key(c, 0, 10.0)

    shipped = key('shipped')
    assert shipped == key('shipped') and shipped.startswith('msrc12_events_fold0_')
    assert len({shipped, key('members3'), key('amplitude'), key('shipped', fold=1), key('shipped', epochs=3)}) == 5
    assert key('shipped', progress=False) == shipped           # how a run reports itself is not what it learns
    # the refit (trained on the validation persons too) is calibrated on the shipped variant's validation streams
    refit = cfg.resolve('refit')
    refit.dataset_options.update({'fold': 0, 'folds': 4, 'test_persons': None, 'n_val_persons': 2})
    assert bench.posterior_key(refit, 0, 10.0) != shipped
    assert bench.posterior_key(bench.calibration_preset(refit), 0, 10.0) == shipped
    assert bench.calibration_preset(cfg.resolve('shipped')) is None and refit.dataset_options['train_with_val']
    assert cfg.resolve('refit').dataset_options == load_experiment('msrc12_gesture_refit').dataset_options


def test_event_benchmark_counts_by_instruction_and_fits_the_learning_curve():
    from centralnet_ros.replay.calibration import Instance, Stream
    from centralnet_ros.runtime.events import EventConfig
    bench = _benchmark_module('gesture_events_benchmark')
    labels = ['start', 'none']
    t = np.arange(0, 10_000_000_000, 100_000_000, dtype=np.int64)          # 10 s at 10 Hz
    found = np.tile([0.02, 0.98], (len(t), 1)).astype(np.float32)
    found[40:50] = [0.99, 0.01]                                            # a clear peak inside the instance at 3-6 s
    silent = np.tile([0.02, 0.98], (len(t), 1)).astype(np.float32)
    inst = [Instance('start', 3_000_000_000, 6_000_000_000)]
    # gesture 1 ("start"): P1_1 was taught by video, P3_1 by a written text (the dataset PDF's table)
    streams = [Stream('P1_1_1_p01', t, found, inst, (0, int(t[-1]))),
               Stream('P3_1_1_p01@camera0', t, silent, inst, (0, int(t[-1])))]
    detector = EventConfig(mode='events', on_threshold=0.8, off_threshold=0.4, smoothing_s=0.0, min_gap_s=0.5)
    by = bench.negatives(streams, labels, detector)['by_instruction']
    assert set(by) == {'video', 'text'}
    assert (by['video']['matched'], by['video']['events'], by['video']['recordings_missed_whole']) == (1, 1, 0)
    assert (by['text']['matched'], by['text']['events'], by['text']['recordings_missed_whole']) == (0, 0, 1)
    assert by['text']['instances'] == 1 and by['text']['non_target_s'] > 6
    table = '\n'.join(bench._instruction_table(by))
    assert '| video | 1 | 1 | 100.0 % |' in table and '| text | 1 | 1 | 0.0 % |' in table
    pooled = bench._pool_negatives([{'lead': {'seconds': 1.0, 'false_alarms': 0, 'segments': 1},
                                     'between': {'seconds': 1.0, 'false_alarms': 0, 'segments': 1},
                                     'by_instruction': by}] * 2)['by_instruction']
    assert pooled['text']['recordings'] == 2 and pooled['video']['matched'] == 2

    fit = bench.learning_curve_fit([(n, 0.7 + 0.1 * np.log(n)) for n in (3, 5, 7)])
    assert fit['persons_at_goal'] == pytest.approx(np.exp(2.0)) and fit['b'] == pytest.approx(0.1)
    assert bench.learning_curve_fit([(7, 0.8), (7, 0.9)]) is None              # one person count: no line
    assert bench.learning_curve_fit([(3, 0.9), (7, 0.8)])['persons_at_goal'] is None   # falling: never reaches it
    variants = {name: {'train_persons_per_fold': n, 'overrides': over, 'folds': [0, 1], 'mean_window_accuracy': 0.9,
                       'max_false_alarms_per_min': 1.0,
                       'pooled': {'f1': f1, 'recall': f1, 'precision': f1, 'false_alarms_per_min': 0.5}}
                for name, n, over, f1 in (('shipped', 7, {}, 0.87), ('mirror', 7, {'x': 1}, 0.85),
                                          ('persons3', 3, {'dataset_options.n_train_persons': 3}, 0.77))}
    curve = '\n'.join(bench._learning_curve(variants))
    assert '| 3 | persons3 | 77.0 %' in curve and '| 7 | shipped | 87.0 %' in curve and 'mirror' not in curve
    assert 'reaches 90.0 % at about 9 training persons' in curve      # 0.77 at 3 and 0.87 at 7, as a line in ln(n)


def test_a_refit_bundle_is_calibrated_by_the_same_preset_trained_without_its_validation_persons(tmp_path):
    import yaml
    bench = _benchmark_module('gesture_events_benchmark')
    base = yaml.safe_load((paths.models_dir() / 'gesture' / 'manifest.yaml').read_text())
    heldout = dict(base, evaluation={k: v for k, v in base['evaluation'].items() if k != 'train_with_val'})
    refit = dict(base, evaluation={**heldout['evaluation'], 'train_with_val': 'the validation persons are training '
                                   'data too'})
    (tmp_path / 'heldout').mkdir()
    (tmp_path / 'heldout' / 'manifest.yaml').write_text(yaml.safe_dump(heldout))
    assert bench.check_calibrator(heldout, None) is None                   # a held-out bundle calibrates on its own
    with pytest.raises(SystemExit, match='trained on its validation persons .*--calibrated-by'):
        bench.check_calibrator(refit, None)
    assert bench.check_calibrator(refit, str(tmp_path / 'heldout'))['evaluation'] == heldout['evaluation']
    with pytest.raises(SystemExit, match='calibrates on its own'):
        bench.check_calibrator(heldout, str(tmp_path / 'heldout'))
    other = dict(refit, evaluation={**refit['evaluation'], 'val_persons': 'p02'})
    with pytest.raises(SystemExit, match="validation persons: 'p02' here, 'p01' there"):
        bench.check_calibrator(other, str(tmp_path / 'heldout'))
    with pytest.raises(SystemExit, match='no manifest.yaml'):
        bench.check_calibrator(refit, str(tmp_path))


def _arrays_made_by(cfg, rows: int | None = None):
    """Return an ExperimentData stating how ``cfg``'s dataset_options make its arrays (as load_msrc12 does); no data."""
    from centralnet_ros.training.datasets import ExperimentData
    from centralnet_ros.training.trainer import ArraySplit
    o = from_dict(MSRC12Options, dict(cfg.dataset_options), _where='dataset_options')
    shape = list(cfg.modalities['skeleton'].input_shape) if rows is None else [rows, o.num_frames]
    split = ArraySplit({'skeleton': np.zeros([2, *shape], np.float32)}, np.zeros(2, np.int64))
    return ExperimentData(split, split, split, ['a', 'none'], bundle_inputs={'skeleton': o.bundle_inputs()})


def test_bundle_inputs_check_names_every_disagreement_with_the_training_arrays():
    from centralnet_ros.training.datasets import check_bundle_inputs
    for preset, variant in (('msrc12_events', 'bone'), ('msrc12_2d_loso', 'single_window25'), ('msrc12_gesture', None)):
        cfg = load_experiment(preset)
        cfg = cfg.resolve(variant) if variant else cfg
        check_bundle_inputs(cfg, _arrays_made_by(cfg))                     # the presets agree
    cfg = load_experiment('msrc12_events').resolve('bone')
    cfg.bundle.modalities['skeleton']['preprocessing']['channels'] = ['position', 'velocity']   # forgotten
    with pytest.raises(ConfigError, match=r"preprocessing disagrees with the training arrays.*'channels'"):
        check_bundle_inputs(cfg, _arrays_made_by(cfg))
    cfg = load_experiment('msrc12_2d_loso').resolve('single_window25')
    cfg.bundle.modalities['skeleton']['window_s'] = 2.0                                         # forgotten
    with pytest.raises(ConfigError, match=r'window_s is 2.0 but the training arrays were made with 2.5'):
        check_bundle_inputs(cfg, _arrays_made_by(cfg))
    cfg = load_experiment('msrc12_gesture')
    with pytest.raises(ConfigError, match=r'input_shape is \[120, 30\] but the training arrays are \[180, 30\]'):
        check_bundle_inputs(cfg, _arrays_made_by(cfg, rows=180))
    cfg.bundle = None                                                     # no bundle: nothing to hold it to
    check_bundle_inputs(cfg, _arrays_made_by(cfg, rows=180))


def test_train_and_event_benchmark_refuse_a_preset_unlike_its_arrays_before_training(tmp_path, monkeypatch, capsys):
    import types
    from centralnet_ros.training import datasets, trainer
    bench = _benchmark_module('gesture_events_benchmark')
    monkeypatch.setenv('CENTRALNET_CACHE', str(tmp_path))
    made = _arrays_made_by(load_experiment('msrc12_events').resolve('bone'))      # arrays with the bone channels

    def no_training(*a, **k):
        raise AssertionError('trained although the bundle disagrees with the arrays')

    monkeypatch.setattr(trainer, 'train', no_training)
    monkeypatch.setattr('centralnet_ros.training.gesture.load_msrc12', lambda options, root: made)
    monkeypatch.setattr(datasets, 'load_experiment_data', lambda dataset, options, root: made)
    cfg = load_experiment('msrc12_events').resolve('bone')
    cfg.bundle.modalities['skeleton']['preprocessing']['channels'] = ['position', 'velocity']   # forgotten
    with pytest.raises(ConfigError, match=r"disagrees with the training arrays.*'channels'"):
        bench.fold_posteriors(cfg, types.SimpleNamespace(seed=0, method='unimodal:skeleton'), rate=10.0)
    from centralnet_ros.cli import main
    capsys.readouterr()
    code = main(['train', '--task', 'gesture', '--no-progress', '--out', str(tmp_path / 'bundle'),
                 '--set', 'dataset_options.channels=[position,velocity,bone]'])    # the preset's bundle not told
    err = capsys.readouterr().err
    assert code == 2 and 'channels' in err and 'input_shape is [120, 30]' in err, err
    assert not (tmp_path / 'bundle').exists()


def test_a_refit_chooses_nothing_on_the_persons_it_trains_on():
    from centralnet_ros.training.datasets import check_refit, ExperimentData
    from centralnet_ros.training.trainer import ArraySplit
    split = ArraySplit({'skeleton': np.zeros((2, 90, 38), np.float32)}, np.zeros(2, np.int64))

    def data(**info):
        return ExperimentData(split, split, split, ['a', 'none'], info=info)
    refit = {'train_with_val': 'the validation persons are training data too'}
    for preset in ('msrc12_events', 'msrc12_2d_loso'):
        check_refit(load_experiment(preset).resolve('refit'), data(**refit))        # the variants as declared
    check_refit(load_experiment('msrc12_gesture_refit'), data(**refit))
    best = load_experiment('msrc12_gesture2d')                                     # best epoch, "none" bias
    check_refit(best, data(calibrate_bias_class=1))                                # not a refit: nothing to refuse
    with pytest.raises(ConfigError, match=r'a refit.*train.select: last.*calibrate_none_bias: false'):
        check_refit(best, data(calibrate_bias_class=1, **refit))


def test_montalbano_preset_is_the_papers_setup():
    cfg = load_experiment('montalbano')
    assert set(cfg.modalities) == {'skeleton', 'audio', 'color_hands', 'depth_hands'}
    model = build_model(cfg.fusion_config('centralnet'))
    for m, enc in model.encoders.items():
        linears = [layer for layer in enc.modules() if isinstance(layer, torch.nn.Linear)]
        assert [(lin.in_features, lin.out_features) for lin in linears] == [(400, 128), (128, 42), (42, 21)]
        assert any(isinstance(layer, torch.nn.BatchNorm1d) for layer in enc.modules())
    assert model.n_levels == 2 and cfg.num_classes == 21                 # + the 21 outputs: three fusion points
    t = cfg.train
    assert (t.lr, t.gamma, t.schedule, t.batch_size, t.epochs) == (0.05, 0.96, 'exponential', 42, 100)
    assert t.class_balanced_batches and t.batch_size // cfg.num_classes == 2
    assert cfg.fusion.moddrop_p == 0.5 and t.metric == 'macro_accuracy'
    d = cfg.dataset_options                                             # the paper's descriptor sizes
    assert d['n_mels'] * d['audio_frames'] == 350 and d['crop_frames'] * 2 * d['crop_resize'] ** 2 == 400


def test_afew_preset_pads_visual_to_audio_size():
    cfg = load_experiment('afew')
    assert cfg.modalities['audio'].input_shape == [1583] == cfg.modalities['visual'].input_shape
    model = build_model(cfg.fusion_config('centralnet'))
    lin = [(m.in_features, m.out_features) for m in model.encoders['audio'].modules() if isinstance(m, torch.nn.Linear)]
    assert lin == [(1583, 128), (128, 7)]


# --------------------------------------------------------------------------- ChaLearn adapter

def test_chalearn_adapter_on_generated_recordings(tmp_path):
    import test_chalearn as gen                                             # the writers of the reader's tests
    root = tmp_path / 'chalearn'
    gen.write_2013(root / 'Sample00001', 'Sample00001')
    gen.write_2013(root / 'Sample00002', 'Sample00002')
    gen.write_2014(root / 'Sample0003', 'Sample0003')
    opts = {'none_frames': 4, 'none_margin': 1, 'crop_size': 20, 'val_fraction': 0.3, 'test_fraction': 0.3}
    data = load_chalearn(opts, tmp_path)
    assert data.label_names[-1] == 'none' and len(data.label_names) == 21
    for split, n_rec in ((data.train, 1), (data.val, 1), (data.test, 1)):
        assert set(split.inputs) == {'skeleton', 'audio', 'color_hands', 'depth_hands'}
        for x in split.inputs.values():
            assert x.shape == (len(split), 400) and x.dtype == np.float32 and np.isfinite(x).all()
        labels = split.labels.tolist()
        assert labels.count(3) == n_rec and labels.count(10) == n_rec    # furbo and ok, once per recording
        assert labels.count(20) >= 1                                      # "no gesture" segments
    # 2014 has no audio: the test recording (Sample0003) has all-zero audio descriptors
    assert np.all(data.test.inputs['audio'] == 0) and np.any(data.train.inputs['audio'] != 0)
    assert np.any(data.test.inputs['skeleton'] != 0) and np.any(data.test.inputs['depth_hands'] != 0)
    # the Montalbano preset trains on these arrays (a few epochs, every modality)
    cfg = load_experiment('montalbano', overrides={'train.epochs': 2, 'train.progress': False})
    model = build_model(cfg.fusion_config('centralnet'))
    result = train(model, data.train, data.val, cfg.train, seed=0, test_split=data.test)
    assert np.isfinite(result.history[-1]['loss'])
    too_long = {**opts, 'skeleton_frames': 10, 'n_mels': 80}             # 640 audio values > 400
    with pytest.raises(ValueError, match='feature_dim'):
        load_chalearn(too_long, tmp_path)


def test_none_segments_avoid_labelled_instances(tmp_path):
    import test_chalearn as gen
    from centralnet_ros.data import chalearn
    from centralnet_ros.training.gesture import ChalearnOptions, _none_segments
    sample = chalearn.read_sample(gen.write_2014(tmp_path / 'Sample0001', media=False))
    opts = ChalearnOptions(none_frames=3, none_margin=1)               # instances at frames 5-15 and 22-35 of 40
    rows = _none_segments(sample, opts)
    np.testing.assert_array_equal(rows, [[21, 1, 3], [21, 17, 19], [21, 37, 39]])
    for _, b, e in sample.labels:
        assert np.all((rows[:, 2] < b - 1) | (rows[:, 1] > e + 1))
    assert rows[:, 1].min() >= 1 and rows[:, 2].max() <= sample.num_frames


# --------------------------------------------------------------------------- shipped bundle

@pytest.mark.needs_data('msrc12')
def test_shipped_gesture_bundle_classifies_held_out_persons(data_root):
    from centralnet_ros.runtime.engine import TaskModel
    bundle_dir = paths.models_dir() / 'gesture'
    if not (bundle_dir / 'manifest.yaml').is_file():
        pytest.fail(f'no shipped gesture bundle in {bundle_dir}; run `centralnet train --task gesture`')
    model = TaskModel(bundle_dir, backend='torch', warmup=0)
    spec = model.manifest.modalities['skeleton']
    assert model.manifest.task == 'gesture' and spec.pipeline == 'skeleton_sequence'
    assert 'p11' in model.manifest.evaluation['test_persons']            # never trained on
    after_s = 0.5
    correct = total = 0
    for seq in msrc12.load_sequences(data_root / 'msrc12', persons=[11, 12])[::3]:
        for ref, g in list(zip(seq.action_times, seq.action_gestures))[1:4]:
            x = run_pipeline(spec.pipeline, _raw_window(seq, ref + after_s * 1e6), spec.preprocessing)
            decision = model.classify({'skeleton': x})
            correct += decision.label == msrc12.GESTURES[g - 1]
            total += 1
    assert total >= 20
    assert correct / total > 0.5, f'{correct}/{total}'                   # chance: 1/13
