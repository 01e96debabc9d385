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
