"""Shared test fixtures: the real data root, and one torch thread (tests share 2 cores)."""
from __future__ import annotations

import os
from pathlib import Path

from centralnet_ros import paths
import pytest

os.environ.setdefault('OMP_NUM_THREADS', '1')  # before torch is imported

import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope='session')
def data_root() -> Path:
    root = paths.data_root()
    if not root.is_dir():
        pytest.skip(f'real data root {root} not found (set ${paths.DATA_ROOT_ENV})')
    return root


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep test caches out of the user's cache (one cache per test session)."""
    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path_factory.getbasetemp() / 'cache'))
