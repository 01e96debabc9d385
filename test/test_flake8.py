"""ament_flake8 over the package (ROS 2 ament_python template; skipped without ament_flake8).

Debian 12 / Ubuntu and ROS 2 ship it as python3-ament-flake8 (or ros-<distro>-ament-flake8);
``colcon test`` runs it.  The line length is 120, the project's limit, instead of ament's 99.
"""
from pathlib import Path

import pytest

main_with_errors = pytest.importorskip(
    'ament_flake8.main',
    reason='ament_flake8 is not installed (apt install python3-ament-flake8, or source ROS 2)',
).main_with_errors

REPO = Path(__file__).resolve().parents[1]
PATHS = [str(REPO / p) for p in ('centralnet_ros', 'test', 'launch', 'benchmarks', 'setup.py')
         if (REPO / p).exists()]


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8():
    rc, errors = main_with_errors(argv=['--linelength', '120', *PATHS])
    assert rc == 0, \
        'Found %d code style errors / warnings:\n' % len(errors) + \
        '\n'.join(errors)
