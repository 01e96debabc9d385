"""
ament_pep257 (docstring style, ament's convention) over the package's Python sources.

Runs the installed command-line tool (``/usr/bin/ament_pep257`` from Debian 12's python3-ament-pep257,
or ``ament_pep257`` from a sourced ROS 2), so it works whichever Python runs pytest; skipped only when
no ``ament_pep257`` is on PATH.  ament's convention is pydocstyle's pep257 checks less D100-D107
(missing docstrings), D203, D212 and D404: a multi-line docstring starts its summary on the second
line (D213).
"""
from pathlib import Path
import shutil
import subprocess

import pytest

REPO = Path(__file__).resolve().parents[1]
PATHS = [p for p in ('centralnet_ros', 'test', 'launch', 'benchmarks', 'tools', 'setup.py') if (REPO / p).exists()]
TOOL = shutil.which('ament_pep257')


@pytest.mark.skipif(TOOL is None, reason='ament_pep257 is not installed (apt install python3-ament-pep257, '
                                         'or source ROS 2)')
@pytest.mark.linter
@pytest.mark.pep257
def test_pep257():
    proc = subprocess.run([TOOL, *PATHS], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f'ament_pep257 failed (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}'
