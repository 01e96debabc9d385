"""
ament_flake8 over the package's Python sources, as ``colcon test`` runs it (ROS 2 ament_python template).

The check runs the installed command-line tool (``/usr/bin/ament_flake8`` from Debian 12's
python3-ament-flake8, or ``ament_flake8`` from a sourced ROS 2), so it works whichever Python runs
pytest; it is skipped only when no ``ament_flake8`` is on PATH.  The line length is 120, the
project's limit, instead of ament's 99; everything else is ament's own configuration.  ROS 2's CI
also installs the flake8 plugins that configuration names (import order, quotes, docstrings,
builtins, comprehensions, blind except, class newline, deprecated): Debian ships them as
python3-flake8-*, and without them ament_flake8 checks pycodestyle and pyflakes only.
"""
from pathlib import Path
import shutil
import subprocess

import pytest

REPO = Path(__file__).resolve().parents[1]
PATHS = [p for p in ('centralnet_ros', 'test', 'launch', 'benchmarks', 'tools', 'setup.py') if (REPO / p).exists()]
TOOL = shutil.which('ament_flake8')


@pytest.mark.skipif(TOOL is None, reason='ament_flake8 is not installed (apt install python3-ament-flake8, '
                                         'or source ROS 2)')
@pytest.mark.flake8
@pytest.mark.linter
def test_flake8():
    proc = subprocess.run([TOOL, '--linelength', '120', *PATHS], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, f'ament_flake8 failed (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}'
