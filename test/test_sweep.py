"""Sweep backends: the same runs give the same records on every backend; failures are reported per run."""
from __future__ import annotations

import os

from centralnet_ros.encoders import EncoderConfig
from centralnet_ros.training import sweep
from centralnet_ros.training.datasets import ExperimentData
from centralnet_ros.training.experiment import ExperimentConfig
from centralnet_ros.training.trainer import ArraySplit, TrainConfig
import numpy as np
import pytest

RAY_REQUIRED = os.environ.get('CI') == 'true'


def _ray():
    try:
        import ray
    except ImportError:
        if RAY_REQUIRED:
            pytest.fail('Ray is not installed, but CI must run the Ray sweep tests (pip install -e ".[test]")')
        pytest.skip('Ray is not installed (optional extra: pip install "centralnet_ros[ray]")')
    return ray


def _split(n: int, seed: int) -> ArraySplit:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    a = rng.normal(size=(n, 6)).astype(np.float32) + y[:, None]
    b = rng.normal(size=(n, 4)).astype(np.float32) - y[:, None]
    return ArraySplit({'a': a, 'b': b}, y)


def _setup():
    mods = {'a': EncoderConfig(kind='mlp', input_shape=[6], widths=[8]),
            'b': EncoderConfig(kind='mlp', input_shape=[4], widths=[8])}
    cfg = ExperimentConfig(name='t', dataset='synthetic', num_classes=3, modalities=mods,
                           methods=['late', 'centralnet'],
                           train=TrainConfig(epochs=2, batch_size=32, progress=False, num_threads=1))
    data = ExperimentData(_split(120, 0), _split(40, 1), _split(40, 2), ['0', '1', '2'])
    return cfg, data


RUNS = [sweep.RunSpec(m, s) for m in ('late', 'centralnet') for s in (0, 1)]


def _collect(backend: str, runs=RUNS, data=None, **kw) -> tuple[dict, dict]:
    cfg, default = _setup()
    results, failures = {}, {}
    sweep.execute(runs, cfg, default if data is None else data, backend=backend, progress=False,
                  on_result=lambda spec, rec: results.__setitem__((spec.method, spec.seed), rec),
                  on_failure=lambda spec, why: failures.__setitem__((spec.method, spec.seed), why), **kw)
    return results, failures


def _summary(results: dict) -> dict:
    return {k: (r['test'], r['val'], r['history'][-1]['loss']) for k, r in results.items()}


@pytest.mark.slow
def test_local_pool_equals_serial_and_reports_failures():
    serial, none = _collect('serial')
    pooled, none2 = _collect('local', jobs=2)
    assert not none and not none2 and len(serial) == len(RUNS)
    assert _summary(pooled) == _summary(serial)
    results, failures = _collect('local', runs=[sweep.RunSpec('late', 0), sweep.RunSpec('no_such_method', 0)], jobs=2)
    assert list(results) == [('late', 0)]
    assert 'no_such_method' in failures[('no_such_method', 0)]


class _ExitOnUnpickle:
    """Pickles into a call of os._exit: the process that unpickles it dies, as a killed worker does."""

    def __reduce__(self):
        return os._exit, (3,)


@pytest.mark.slow
def test_a_dying_local_worker_is_reported_not_half_written():
    results, failures = _collect('local', runs=RUNS[:2], data=_ExitOnUnpickle(), jobs=2)
    assert not results and set(failures) == {(s.method, s.seed) for s in RUNS[:2]}
    assert all('died' in why for why in failures.values())


@pytest.mark.slow
def test_ray_equals_local_pool_and_reports_failures_and_crashes():
    ray = _ray()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        pooled, _ = _collect('local', jobs=2)
        on_ray, failures = _collect('ray', jobs=2)
        assert not failures and _summary(on_ray) == _summary(pooled)
        results, failures = _collect('ray', runs=[sweep.RunSpec('late', 1), sweep.RunSpec('no_such_method', 1)])
        assert list(results) == [('late', 1)] and 'no_such_method' in failures[('no_such_method', 1)]
        results, failures = _collect('ray', runs=RUNS[:1], data=_ExitOnUnpickle())
        assert not results and list(failures) == [('late', 0)]
    finally:
        ray.shutdown()


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(sweep.SweepError, match="unknown sweep backend 'spark'"):
        _collect('spark')


# --------------------------------------------------------------------------- folds and variants

CALLS: list = []


def _fold_load(cfg, data_root) -> ExperimentData:
    """Each fold has its own data (the fold's number seeds it), as a person-split dataset has."""
    k = int(cfg.dataset_options['fold'])
    return ExperimentData(_split(60, 10 * k), _split(20, 10 * k + 1), _split(20, 10 * k + 2), ['0', '1', '2'],
                          info={'fold': k})


def _fold_run(cfg, data, spec) -> dict:
    CALLS.append(spec)
    return {'fold_seen': data.info['fold'], 'epochs': cfg.train.epochs, 'classes': cfg.num_classes,
            'test': float(spec.seed)}


def _folded(tmp_path=None) -> ExperimentConfig:
    from centralnet_ros.config import from_dict
    from centralnet_ros.training.experiment import experiment_dict
    cfg, _ = _setup()
    data = experiment_dict(cfg)
    data.update(seeds=2, folds={'scheme': 'leave-one-block-out', 'key': 'dataset_options.fold', 'values': [3, 5, 7],
                                'apply': {'dataset_options.blocks': 3}},
                variants={'plain': {}, 'long': {'train.epochs': 4, 'seeds': 1, 'methods': ['late']}})
    return from_dict(ExperimentConfig, data)


def test_plan_covers_variants_folds_methods_seeds_and_resolve_applies_them():
    cfg = _folded()
    plan = sweep.plan_runs(cfg)
    assert len(plan) == 3 * 2 * 2 + 3 * 1 * 1 and len({s.key for s in plan}) == len(plan)
    assert plan[0] == sweep.RunSpec('late', 0, 0, 'plain') and plan[-1] == sweep.RunSpec('late', 0, 2, 'long')
    assert len(sweep.plan_runs(cfg, variants=['long'], folds=[1], methods=['late'])) == 1
    one = cfg.resolve('long', 2)
    assert one.dataset_options == {'blocks': 3, 'fold': 7} and one.train.epochs == 4 and one.methods == ['late']
    assert one.folds is None and one.variants == {} and cfg.resolve('plain', 0).train.epochs == 2
    from centralnet_ros.config import ConfigError
    with pytest.raises(ConfigError, match=r"no variant\(s\) \['short'\]"):
        sweep.plan_runs(cfg, variants=['short'])
    with pytest.raises(ConfigError, match='fold 3 out of range'):
        cfg.resolve('plain', 3)


def test_run_sweep_loads_each_fold_resumes_and_refuses_another_experiment(tmp_path):
    import json
    cfg = _folded()
    plan = sweep.plan_runs(cfg)
    CALLS.clear()
    runs, failures = sweep.run_sweep(cfg, plan[:5], tmp_path, backend='serial', run=_fold_run, load=_fold_load,
                                     progress=False)
    assert not failures and [sweep.RunSpec.of(r) for r in runs] == plan[:5]
    assert [r['fold_seen'] for r in runs] == [3, 3, 3, 3, 5]       # the data of each run's own fold
    stored = json.loads((tmp_path / 'runs.json').read_text())
    assert len(stored['runs']) == 5 and stored['experiment']['folds']['values'] == [3, 5, 7]
    CALLS.clear()
    runs, _ = sweep.run_sweep(cfg, plan, tmp_path, resume=True, backend='serial', run=_fold_run, load=_fold_load,
                              progress=False)
    assert len(CALLS) == len(plan) - 5 and [sweep.RunSpec.of(r) for r in runs] == plan
    assert {r['epochs'] for r in runs if r.get('variant') == 'long'} == {4}
    import dataclasses
    other = dataclasses.replace(cfg, num_classes=4)
    with pytest.raises(sweep.SweepError, match='another experiment.*num_classes'):
        sweep.run_sweep(other, plan, tmp_path, resume=True, backend='serial', run=_fold_run, load=_fold_load)


def test_resume_accepts_an_option_added_since_at_its_default_and_refuses_it_set(tmp_path):
    import json
    cfg = _folded()
    plan = sweep.plan_runs(cfg)
    sweep.run_sweep(cfg, plan[:2], tmp_path, backend='serial', run=_fold_run, load=_fold_load, progress=False)
    stored = json.loads((tmp_path / 'runs.json').read_text())
    del stored['experiment']['train']['select']             # runs stored before the schema had train.select
    (tmp_path / 'runs.json').write_text(json.dumps(stored))
    CALLS.clear()
    runs, _ = sweep.run_sweep(cfg, plan[:3], tmp_path, resume=True, backend='serial', run=_fold_run,
                              load=_fold_load, progress=False)
    assert len(CALLS) == 1 and len(runs) == 3               # the default keeps what the stored runs learned
    import dataclasses
    (tmp_path / 'runs.json').write_text(json.dumps(stored))
    last = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, select='last'))
    with pytest.raises(sweep.SweepError, match='another experiment.*train.select'):
        sweep.run_sweep(last, plan, tmp_path, resume=True, backend='serial', run=_fold_run, load=_fold_load)


@pytest.mark.slow
def test_folds_train_the_same_in_the_pool_as_in_series(tmp_path):
    cfg = _folded()
    plan = sweep.plan_runs(cfg, variants=['plain'], folds=[0, 2], seeds=1)
    serial, _ = sweep.run_sweep(cfg, plan, tmp_path / 's', backend='serial', load=_fold_load, progress=False)
    pooled, failures = sweep.run_sweep(cfg, plan, tmp_path / 'p', jobs=2, load=_fold_load, progress=False)
    assert not failures and len(serial) == 4
    assert [(r['fold'], r['method'], r['test'], r['val']) for r in pooled] == \
        [(r['fold'], r['method'], r['test'], r['val']) for r in serial]


def test_a_preset_extends_another(tmp_path):
    from centralnet_ros.config import ConfigError
    from centralnet_ros.training.experiment import load_experiment
    base = load_experiment('msrc12_gesture')
    loso = load_experiment('msrc12_loso')
    assert loso.modalities == base.modalities and loso.train == base.train and loso.bundle == base.bundle
    assert loso.folds.values == [0, 1, 2, 3] and base.folds is None and set(loso.variants) >= {'all13', 'iconic6'}
    assert loso.resolve('iconic6', 1).dataset_options['fold'] == 1
    (tmp_path / 'a.yaml').write_text('extends: b.yaml\nseeds: 2\n')
    (tmp_path / 'b.yaml').write_text('extends: a.yaml\n')
    with pytest.raises(ConfigError, match='extends it back'):
        load_experiment(tmp_path / 'a.yaml')
    (tmp_path / 'c.yaml').write_text('extends: no_such_preset\n')
    with pytest.raises(ConfigError, match="extends 'no_such_preset', which is no preset"):
        load_experiment(tmp_path / 'c.yaml')
