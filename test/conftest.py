"""Shared test fixtures: the real data root (``needs_data`` marker), and one torch thread (tests share 2 cores)."""
from __future__ import annotations

import os
from pathlib import Path

from centralnet_ros import paths
import dataset_guard
import pytest

os.environ.setdefault('OMP_NUM_THREADS', '1')  # before torch is imported
os.environ.setdefault('ROS_PYTHON_CHECK_FIELDS', '1')  # rclpy messages refuse unknown fields (as on Humble)

import torch  # noqa: E402

torch.set_num_threads(1)


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'needs_data(*datasets): reads these datasets under the data root; skipped with the reason '
        'when one is missing, failed under CI=true')


SLOW_MODULES = {
    # whole modules that lint, build, train, fuzz or start subprocesses
    'test_flake8', 'test_pep257', 'test_colcon_build', 'test_sweep', 'test_front_door', 'test_finetune',
    'test_fuzz_messages', 'test_import_boundary', 'test_training',
    'test_people', 'test_skeleton2d', 'test_mouth',
}


def pytest_collection_modifyitems(config, items):
    """
    Mark ``slow`` what reads real datasets (``needs_data``), the modules in :data:`SLOW_MODULES` and tests marked so.

    ``pytest -m "not slow"`` is the quick subset (about a minute on two quiet cores); CI
    (``.ci/run``) and a plain ``pytest`` run everything.
    """
    for item in items:
        if item.get_closest_marker('needs_data') or item.module.__name__.rpartition('.')[2] in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Before any fixture reads data: skip (or fail under CI) a test whose datasets are missing."""
    for mark in item.iter_markers('needs_data'):
        dataset_guard.require(*mark.args)


@pytest.fixture(scope='session')
def data_root() -> Path:
    """Return the data root; the test names the datasets it reads with ``@pytest.mark.needs_data``."""
    return paths.data_root()


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep test caches out of the user's cache (one cache per test session)."""
    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path_factory.getbasetemp() / 'cache'))
