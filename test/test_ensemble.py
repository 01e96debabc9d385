"""Vmapped ensembles (training/ensemble.py): each member is the run ``train`` makes for its seed."""
from __future__ import annotations

from centralnet_ros.encoders import EncoderConfig
from centralnet_ros.fusion import build_model, fusion_methods, FusionConfig
from centralnet_ros.torch_utils import seed_everything
from centralnet_ros.training.ensemble import train_ensemble
from centralnet_ros.training.trainer import ArraySplit, train, TrainConfig
import numpy as np
import pytest
import torch


def _synthetic(n, seed):
    """Two weakly informative modalities (logits stay moderate, so float rounding does not grow over training)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    a = rng.normal(size=(n, 6)).astype(np.float32)
    a[:, 0] += 1.5 * y
    b = rng.normal(size=(n, 4)).astype(np.float32)
    b[:, 1] -= 1.5 * y
    return ArraySplit({'a': a, 'b': b}, y)


def _numbers(tree) -> list[float]:
    """Return the numeric leaves of a nested record, in order."""
    if isinstance(tree, dict):
        return [x for k in sorted(tree) for x in _numbers(tree[k])]
    if isinstance(tree, (list, tuple)):
        return [x for v in tree for x in _numbers(v)]
    return [float(tree)] if isinstance(tree, (int, float)) and not isinstance(tree, bool) else []


def _config(method, dropout=0.0):
    mods = {'a': EncoderConfig(kind='mlp', input_shape=[6], widths=[8, 8], head_dropout=dropout),
            'b': EncoderConfig(kind='mlp', input_shape=[4], widths=[8, 8], head_dropout=dropout)}
    return FusionConfig(method=method, modalities=mods, num_classes=3, central_dropout=dropout,
                        moddrop_p=0.3 if method == 'moddrop' else 0.5)


def _models(method, seeds, dropout=0.0):
    out = []
    for s in seeds:
        seed_everything(s)
        out.append(build_model(_config(method, dropout)))
    return out


@pytest.mark.parametrize('method', ['centralnet', 'late', 'gmu', 'early'])
def test_without_random_layers_each_member_equals_its_independent_run(method):
    # no dropout: the only randomness is the initial weights and the batch order, both per seed,
    # so the vmapped members must reproduce train(seed) (BatchNorm statistics, Adam state,
    # fusion weights' own learning rate, early stopping per member) up to float rounding
    cfg = TrainConfig(epochs=6, batch_size=32, lr=0.01, fusion_weight_lr=0.1, weight_decay=1e-4, patience=2,
                      progress=False)
    tr, va, te = _synthetic(240, 0), _synthetic(90, 1), _synthetic(90, 2)
    seeds = [3, 4, 5]
    members = train_ensemble(_models(method, seeds), seeds, tr, va, cfg, test_split=te)
    for seed, member in zip(seeds, members):
        model = _models(method, [seed])[0]
        alone = train(model, tr, va, cfg, seed=seed, test_split=te)
        assert member.best_epoch == alone.best_epoch and member.epochs_run == alone.epochs_run
        assert member.val_metric == pytest.approx(alone.val_metric)
        assert member.test_metric == pytest.approx(alone.test_metric)
        np.testing.assert_allclose(member.test_logits, alone.test_logits, atol=2e-3, rtol=1e-3)
        for name, value in alone.state_dict.items():
            if value.is_floating_point():
                torch.testing.assert_close(member.state_dict[name], value, atol=2e-3, rtol=1e-2)
        if method == 'centralnet':
            assert _numbers(member.history[-1]['fusion_weights']) == pytest.approx(
                _numbers(alone.history[-1]['fusion_weights']), abs=1e-3)


def test_select_last_keeps_each_members_last_epoch():
    tr, va, te = _synthetic(240, 0), _synthetic(90, 1), _synthetic(90, 2)
    seeds = [3, 4, 5, 6]
    kept = {}
    for select in ('best', 'last'):
        cfg = TrainConfig(epochs=6, batch_size=32, lr=0.05, progress=False, select=select)
        kept[select] = train_ensemble(_models('centralnet', seeds), seeds, tr, va, cfg, test_split=te)
    assert any(m.best_epoch < 6 for m in kept['best'])            # else this test could not tell them apart
    for best, last in zip(kept['best'], kept['last']):
        assert last.best_epoch == last.epochs_run == 6
        assert last.val_metric == last.history[-1]['val_accuracy']
        assert best.val_metric == max(r['val_accuracy'] for r in best.history)


def test_random_layers_draw_differently_per_member_and_every_method_trains():
    cfg = TrainConfig(epochs=3, batch_size=32, lr=0.01, progress=False)
    tr, va = _synthetic(240, 0), _synthetic(90, 1)
    for method in fusion_methods():
        if method == 'unimodal':
            continue
        seeds = [0, 0]                      # same seed twice: only the dropout / ModDrop draws differ
        members = train_ensemble(_models(method, seeds, dropout=0.3), seeds, tr, va, cfg)
        a, b = (m.state_dict for m in members)
        moved = [k for k in a if a[k].is_floating_point() and not torch.equal(a[k], b[k])]
        assert moved, f'{method}: two members with one seed ended equal: random layers drew the same masks'
        assert all(m.val_metric > 0.5 for m in members), f'{method}: a member did not learn'


def test_refuses_mismatched_members():
    tr, va = _synthetic(60, 0), _synthetic(30, 1)
    cfg = TrainConfig(epochs=1, progress=False)
    with pytest.raises(ValueError, match='one model per seed'):
        train_ensemble(_models('late', [0, 1]), [0], tr, va, cfg)
    with pytest.raises(ValueError, match='one architecture'):
        train_ensemble(_models('late', [0]) + _models('gmu', [1]), [0, 1], tr, va, cfg)


def test_the_vmap_sweep_backend_matches_serial_runs_and_reports_failures_per_run():
    from centralnet_ros.training import sweep
    from test_sweep import _setup
    cfg, data = _setup()
    runs = [sweep.RunSpec(m, s) for m in ('late', 'centralnet', 'no_such_method') for s in (0, 1, 2)]
    got = {}
    for backend in ('serial', 'vmap'):
        results, failures = {}, {}
        sweep.execute(runs, cfg, data, backend=backend, progress=False,
                      on_result=lambda spec, rec: results.__setitem__((spec.method, spec.seed), rec),
                      on_failure=lambda spec, why: failures.__setitem__((spec.method, spec.seed), why))
        assert sorted(failures) == [('no_such_method', s) for s in (0, 1, 2)]
        assert all('no_such_method' in why for why in failures.values())
        got[backend] = results
    assert sorted(got['vmap']) == sorted(got['serial'])
    for key, rec in got['vmap'].items():
        alone = got['serial'][key]
        assert rec['vmapped'] and 'vmapped' not in alone
        assert rec['test'] == pytest.approx(alone['test']) and rec['best_epoch'] == alone['best_epoch']
        assert rec['history'][-1]['loss'] == pytest.approx(alone['history'][-1]['loss'], rel=1e-3)
