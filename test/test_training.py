"""Trainer, statistics, experiment presets and the compare command, on real AV-MNIST."""
from __future__ import annotations

import json
import math

from centralnet_ros.config import ConfigError
from centralnet_ros.encoders import EncoderConfig
from centralnet_ros.evaluation import metrics
from centralnet_ros.evaluation.statistics import mean_std, two_sample_z_test
from centralnet_ros.fusion import build_model, FusionConfig
from centralnet_ros.training.experiment import available_presets, load_experiment
from centralnet_ros.training.trainer import _batches, ArraySplit, train, TrainConfig
import numpy as np
import pytest
from scipy import stats as sps

SMALL = {'dataset_options.n_train': 600, 'dataset_options.n_val': 200, 'dataset_options.n_test': 400}


def test_z_test_matches_the_normal_distribution():
    a, b = [0.91, 0.93, 0.92, 0.95], [0.88, 0.90, 0.87, 0.89, 0.91]
    z, p = two_sample_z_test(a, b)
    se = math.sqrt(np.var(a, ddof=1) / len(a) + np.var(b, ddof=1) / len(b))
    assert z == pytest.approx((np.mean(a) - np.mean(b)) / se)
    assert p == pytest.approx(2 * sps.norm.sf(abs(z)))
    assert two_sample_z_test(b, a)[0] == pytest.approx(-z)
    assert two_sample_z_test([0.5, 0.5], [0.5, 0.5]) == (0.0, 1.0)
    with pytest.raises(ValueError, match='at least 2 runs'):
        two_sample_z_test([0.5], [0.4, 0.6])
    assert mean_std([1.0, 3.0]) == (2.0, pytest.approx(math.sqrt(2)))


def test_metrics():
    target = np.array([0, 0, 0, 1, 2, 2])
    pred = np.array([0, 0, 1, 1, 2, 0])
    assert metrics.accuracy(pred, target) == pytest.approx(4 / 6)
    assert metrics.macro_accuracy(pred, target, 3) == pytest.approx((2 / 3 + 1 + 1 / 2) / 3)
    cm = metrics.confusion_matrix(pred, target, 3)
    assert cm.sum() == 6 and cm[0, 1] == 1 and cm[2, 0] == 1


def test_class_balanced_batches_hold_every_class_equally():
    labels = np.repeat(np.arange(4), [50, 10, 30, 7])
    batches = _batches(len(labels), 8, np.random.default_rng(0), labels, 4)
    assert len(batches) == len(labels) // 8
    for b in batches:
        assert np.bincount(labels[b], minlength=4).tolist() == [2, 2, 2, 2]


def _synthetic(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    a = rng.normal(size=(n, 6)).astype(np.float32)
    a[:, 0] += 2.5 * y
    b = rng.normal(size=(n, 4)).astype(np.float32)
    b[:, 1] -= 2.5 * y
    return ArraySplit({'a': a, 'b': b}, y)


def test_training_logs_fusion_weights_and_stops_early():
    mods = {'a': EncoderConfig(kind='mlp', input_shape=[6], widths=[8, 8]),
            'b': EncoderConfig(kind='mlp', input_shape=[4], widths=[8, 8])}
    model = build_model(FusionConfig(method='centralnet', modalities=mods, num_classes=3))
    cfg = TrainConfig(epochs=30, batch_size=32, lr=0.01, fusion_weight_lr=0.1, patience=2, progress=False)
    before = model.alpha_modality.detach().clone()
    result = train(model, _synthetic(300, 0), _synthetic(100, 1), cfg, test_split=_synthetic(200, 2))
    assert result.epochs_run < 30, 'early stopping never triggered'
    assert all('fusion_weights' in h for h in result.history)
    assert not np.allclose(model.alpha_modality.detach(), before), 'fusion weights never moved'
    assert result.test_metric > 0.8
    assert result.best_epoch == 1 + int(np.argmax([h['val_accuracy'] for h in result.history]))


def test_select_last_keeps_the_last_epochs_weights():
    import copy
    import torch
    mods = {'a': EncoderConfig(kind='mlp', input_shape=[6], widths=[8]),
            'b': EncoderConfig(kind='mlp', input_shape=[4], widths=[8])}
    data = _synthetic(200, 0), _synthetic(60, 1)
    results, weights = {}, {}
    for select in ('best', 'last'):
        torch.manual_seed(0)
        model = build_model(FusionConfig(method='late', modalities=mods, num_classes=3))
        seen = []
        cfg = TrainConfig(epochs=6, batch_size=32, lr=0.05, progress=False, select=select)
        from centralnet_ros.training import trainer as T
        fit = T.fit

        def spy(*args, end_of_epoch=None, **kw):                # the weights after each epoch
            def record(r):
                seen.append(copy.deepcopy(model.state_dict()))
                if end_of_epoch is not None:
                    end_of_epoch(r)
            return fit(*args, end_of_epoch=record, **kw)
        T.fit = spy
        try:
            results[select] = train(model, *data, cfg)
        finally:
            T.fit = fit
        weights[select] = (model.state_dict(), seen)
    last = results['last']
    assert last.best_epoch == len(last.history) == 6
    assert last.val_metric == last.history[-1]['val_accuracy']
    state, seen = weights['last']
    assert all(torch.equal(state[k], seen[-1][k]) for k in state)
    state, seen = weights['best']
    best = results['best'].best_epoch
    assert all(torch.equal(state[k], seen[best - 1][k]) for k in state)


@pytest.mark.needs_data('mnist', 'fsdd')
def test_quick_training_on_real_avmnist_learns_well_above_chance(data_root):
    from centralnet_ros.fusion import build_model
    from centralnet_ros.training.datasets import load_experiment_data
    cfg = load_experiment('avmnist', quick=True, overrides={**SMALL, 'train.epochs': 4, 'train.batch_size': 32,
                                                            'train.progress': False, 'train.num_threads': 1})
    data = load_experiment_data(cfg.dataset, cfg.dataset_options, data_root)
    assert len(data.train) == 600 and len(data.test) == 400
    model = build_model(cfg.fusion_config('centralnet'))
    result = train(model, data.train, data.val, cfg.train, seed=0, test_split=data.test)
    assert result.test_metric > 0.4, f'CentralNet reached only {result.test_metric:.2f} (chance 0.10)'


def test_presets_parse_and_refuse_unknown_keys(tmp_path):
    assert 'avmnist' in available_presets()
    for name in available_presets():
        load_experiment(name)
        load_experiment(name, quick=True)
    bad = tmp_path / 'bad.yaml'
    bad.write_text((tmp_path.parent / 'x').as_posix() and
                   'name: x\ndataset: avmnist\nnum_classes: 10\nmethods: [centralnet]\n'
                   'modalities: {a: {kind: mlp, input_shape: [3], widths: [4]}}\ntrain: {epochs: 2, lr_typo: 1}\n')
    with pytest.raises(ConfigError, match=r'unknown key\(s\) train.lr_typo'):
        load_experiment(bad)
    with pytest.raises(ConfigError, match='train.epochs: expected an integer'):
        load_experiment('avmnist', overrides={'train.epochs': 'many'})
    with pytest.raises(ConfigError, match="no experiment preset 'nope'"):
        load_experiment('nope')


def _centralnet(capsys, *args) -> tuple[int, str, str]:
    """Run the ``centralnet`` command in this process (exit code, stdout, stderr)."""
    from centralnet_ros.cli import main
    capsys.readouterr()
    try:
        code = main(list(args))
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.needs_data('mnist', 'fsdd')
def test_compare_writes_table_json_and_plots(tmp_path, data_root, capsys):
    out = tmp_path / 'cmp'
    sets = [f'--set={k}={v}' for k, v in {**SMALL, 'train.epochs': 1}.items()]
    args = ['compare', '--quick', '--no-progress', '--methods', 'unimodal:audio,centralnet', '--jobs', '1',
            '--out', str(out), *sets]
    code, _, err = _centralnet(capsys, *args)
    assert code == 0, err[-2000:]
    runs = json.loads((out / 'runs.json').read_text())
    assert {(r['method'], r['seed']) for r in runs['runs']} == {(m, s) for m in ('unimodal:audio', 'centralnet')
                                                                for s in (0, 1)}
    assert runs['machine']['cpu_count'] >= 1 and 'compare' in runs['command']
    report = (out / 'results.md').read_text()
    assert '| centralnet |' in report and '| unimodal:audio |' in report and 'z vs CentralNet' in report
    assert '## CentralNet fusion weights' in report
    for png in ('accuracy.png', 'fusion_weights.png', 'fusion_weights_training.png'):
        assert (out / png).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert (out / 'config.yaml').exists()
    # --resume keeps the finished runs and trains nothing new
    code, _, err = _centralnet(capsys, *args, '--resume')
    assert code == 0 and ' seed ' not in err
    # --render-only renders what a larger (unfinished) sweep holds so far, training nothing
    (out / 'results.md').unlink()
    more = [a if a != 'unimodal:audio,centralnet' else 'unimodal:audio,centralnet,late' for a in args]
    code, _, err = _centralnet(capsys, *more, '--render-only')
    assert code == 0 and ' seed ' not in err, err[-2000:]
    report = (out / 'results.md').read_text()
    assert 'Partial sweep: 4 of the 6 planned runs' in report and '| centralnet |' in report
    code, _, err = _centralnet(capsys, *args[:-len(sets)], '--render-only', '--out', str(tmp_path / 'none'))
    assert code == 1 and 'runs.json' in err


def test_compare_bad_data_root_names_the_layout(tmp_path, capsys):
    code, _, err = _centralnet(capsys, 'compare', '--quick', '--no-progress', '--data-root',
                               str(tmp_path / 'missing'), '--out', str(tmp_path / 'o'))
    assert code == 1
    assert 'mnist' in err and 'fsdd' in err and 'expected layout' in err


def test_every_command_has_help(capsys):
    from centralnet_ros.cli import COMMANDS
    for name in COMMANDS:
        code, out, err = _centralnet(capsys, *name.split(), '--help')
        assert code == 0 and 'usage: centralnet' in out, (name, err[-500:])
        assert '--help' in out


def test_preset_augmentation_is_wired_to_a_registered_hook():
    from centralnet_ros.training.datasets import make_augmentation
    cfg = load_experiment('avletters', overrides={'augment': 'lip_video', 'augment_options': {'p': 1.0}})
    hook = make_augmentation(cfg.augment, cfg.augment_options)
    shape = [1] + cfg.modalities['lip_video'].input_shape
    rng = np.random.default_rng(0)
    x = {'lip_video': rng.normal(size=[2] + shape[1:]).astype(np.float32)}
    y = hook(dict(x), rng)
    assert y['lip_video'].shape == x['lip_video'].shape and not np.allclose(y['lip_video'], x['lip_video'])
    assert make_augmentation('', {}) is None
    with pytest.raises(KeyError, match="unknown augmentation 'blur'"):
        make_augmentation('blur')


def test_a_run_depends_on_its_seed_alone():
    """The initial weights come from the run's seed, not from whatever ran before in the process."""
    import torch

    from centralnet_ros.training.compare import run_one
    from centralnet_ros.training.datasets import ExperimentData
    from centralnet_ros.training.experiment import ExperimentConfig
    mods = {'a': EncoderConfig(kind='mlp', input_shape=[6], widths=[8, 8]),
            'b': EncoderConfig(kind='mlp', input_shape=[4], widths=[8, 8])}
    cfg = ExperimentConfig(name='t', dataset='synthetic', num_classes=3, modalities=mods, methods=['centralnet'],
                           train=TrainConfig(epochs=2, batch_size=32, progress=False))
    data = ExperimentData(_synthetic(200, 0), _synthetic(60, 1), _synthetic(60, 2), ['0', '1', '2'])
    torch.manual_seed(123)
    first = run_one(cfg, data, 'centralnet', seed=5)
    torch.manual_seed(456)
    np.random.seed(7)
    second = run_one(cfg, data, 'centralnet', seed=5)
    assert first['history'][0]['loss'] == second['history'][0]['loss']
    assert first['test'] == second['test']


def test_a_last_batch_of_one_is_joined_to_the_previous():
    """Join a last batch of one sample to the previous one (BatchNorm cannot train on one): 65 by 32 give 32 + 33."""
    from centralnet_ros.training.trainer import _batches
    batches = _batches(65, 32, np.random.default_rng(0))
    assert [len(b) for b in batches] == [32, 33]
    assert sorted(np.concatenate(batches).tolist()) == list(range(65))
    assert [len(b) for b in _batches(1, 32, np.random.default_rng(0))] == [1]


def test_encoder_lr_scale_and_label_smoothing():
    """train.encoder_lr_scale scales the encoders' feature layers' steps (not their heads'); label smoothing's loss."""
    import torch
    import torch.nn.functional as F

    from centralnet_ros.fusion.base import FusionOutput
    from centralnet_ros.fusion.losses import fusion_loss
    mods = {'a': EncoderConfig(kind='mlp', input_shape=[6], widths=[8]),
            'b': EncoderConfig(kind='mlp', input_shape=[4], widths=[8])}
    data = _synthetic(64, 0), _synthetic(30, 1)
    moved = {}
    for scale in (1.0, 0.25):
        torch.manual_seed(0)
        model = build_model(FusionConfig(method='late', modalities=mods, num_classes=3))
        start = {n: p.detach().clone() for n, p in model.named_parameters()}
        cfg = TrainConfig(epochs=1, batch_size=64, lr=0.1, optimizer='sgd', momentum=0.0, schedule='none',
                          progress=False, encoder_lr_scale=scale)
        train(model, *data, cfg)                    # one batch: one step of plain SGD
        moved[scale] = {n: p.detach() - start[n] for n, p in model.named_parameters()}
    features = [n for n in moved[1.0] if n.startswith('encoders.') and '.head.' not in n]
    heads = [n for n in moved[1.0] if '.head.' in n]
    assert features and heads
    for n in features:
        assert moved[1.0][n].abs().max() > 0
        torch.testing.assert_close(moved[0.25][n], 0.25 * moved[1.0][n])
    for n in heads:
        torch.testing.assert_close(moved[0.25][n], moved[1.0][n])
    logits, y = torch.randn(5, 3), torch.tensor([0, 1, 2, 1, 0])
    out = FusionOutput(logits=logits, unimodal={})
    smooth = fusion_loss(out, y, label_smoothing=0.3)[0]
    want = 0.7 * F.cross_entropy(logits, y) + 0.3 * (-F.log_softmax(logits, 1).mean(1)).mean()
    torch.testing.assert_close(smooth, want)
    assert fusion_loss(out, y)[0] != smooth
    with pytest.raises(ValueError, match='label_smoothing goes with multiclass'):
        fusion_loss(out, torch.zeros(5, 3), task='multilabel', label_smoothing=0.1)
    for bad in ({'encoder_lr_scale': 0.0}, {'label_smoothing': 1.0}):
        model = build_model(FusionConfig(method='late', modalities=mods, num_classes=3))
        with pytest.raises(ValueError, match=next(iter(bad))):
            train(model, *data, TrainConfig(epochs=1, progress=False, **bad))
