"""
What a test needs from the data root, and what happens when it is not there.

A test that reads a dataset says so with ``@pytest.mark.needs_data('msrc12', ...)``
(registered in ``conftest.py``) or calls :func:`require` itself. When a dataset is
missing the test is skipped with a reason naming the dataset, the variable that sets
the data root and the layout expected there; under CI (``CI=true``) it fails instead,
so CI never passes by skipping.
"""
from __future__ import annotations

import os
from pathlib import Path

from centralnet_ros import paths
from centralnet_ros.data.registry import layout, missing_markers
import pytest


def under_ci() -> bool:
    """Return True under CI (``CI=true``, as GitHub Actions, GitLab CI and most runners set it)."""
    return os.environ.get('CI', '').strip().lower() in ('true', '1', 'yes')


def missing_reason(*names: str) -> str:
    """Return why the named datasets cannot be read under the data root ('' when they all can)."""
    root = paths.data_root()
    problems = []
    for name in names:
        missing = missing_markers(name, root)
        if missing:
            problems.append(f'dataset {name} not found (missing {", ".join(str(m) for m in missing)}); '
                            f'expected layout: {layout(name)}')
    if not problems:
        return ''
    return (f'{"; ".join(problems)}. The data root is {root} (${paths.DATA_ROOT_ENV}, '
            f'else {paths.user_data_dir()}); set ${paths.DATA_ROOT_ENV} to the folder holding it')


def require(*names: str) -> Path:
    """Return the data root when it holds every named dataset; else skip the test (fail it under CI)."""
    reason = missing_reason(*names)
    if reason:
        if under_ci():
            pytest.fail(f'{reason} (CI=true: a missing dataset fails the run)', pytrace=False)
        pytest.skip(reason)
    return paths.data_root()
