"""
ament_copyright over the package's Python sources; skipped, as in the ROS 2 ament_python template.

Why skipped: ament_copyright (0.13, Debian 12 and ROS 2 Humble) recognises a licence only by the
whole 13-line Apache-2.0 boilerplate under a ``Copyright <year> <holder>`` line in every file; it
does not accept a one-line ``SPDX-License-Identifier: Apache-2.0``.  The project declares its
licence once, in package.xml and setup.py, rather than repeat that block in every source file.
Remove the skip once every file starts with the header; the test then runs the installed
``ament_copyright`` (python3-ament-copyright, or a sourced ROS 2).
"""
from pathlib import Path
import shutil
import subprocess

import pytest

REPO = Path(__file__).resolve().parents[1]
PATHS = [p for p in ('centralnet_ros', 'test', 'launch', 'benchmarks', 'setup.py') if (REPO / p).exists()]
TOOL = shutil.which('ament_copyright')


@pytest.mark.skip(reason='no per-file Apache-2.0 boilerplate (ament_copyright accepts no SPDX one-liner); '
                         'licence declared once in package.xml and setup.py')
@pytest.mark.copyright
@pytest.mark.linter
def test_copyright():
    if TOOL is None:
        pytest.skip('ament_copyright is not installed (apt install python3-ament-copyright, or source ROS 2)')
    proc = subprocess.run([TOOL, *PATHS], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f'ament_copyright failed (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}'
