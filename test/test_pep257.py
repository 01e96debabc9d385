"""ament_pep257 (docstring style) over the package; skipped without ament_pep257.

Debian 12 / Ubuntu and ROS 2 ship it as python3-ament-pep257 (or ros-<distro>-ament-pep257).
"""
from pathlib import Path

import pytest

main = pytest.importorskip(
    'ament_pep257.main',
    reason='ament_pep257 is not installed (apt install python3-ament-pep257, or source ROS 2)',
).main

REPO = Path(__file__).resolve().parents[1]
PATHS = [str(REPO / p) for p in ('centralnet_ros', 'test', 'launch', 'benchmarks', 'setup.py')
         if (REPO / p).exists()]


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257():
    rc = main(argv=PATHS)
    assert rc == 0, 'Found code style errors / warnings'
