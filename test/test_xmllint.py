"""
ament_xmllint on package.xml: well-formed and valid against the package_format3 schema it names.

Runs the installed command-line tool (``/usr/bin/ament_xmllint`` from Debian 12's python3-ament-xmllint,
or ``ament_xmllint`` from a sourced ROS 2); skipped only when no ``ament_xmllint`` is on PATH.  It calls
``xmllint`` (libxml2-utils); Debian's package reads the schema from its local copy under
/usr/share/ament_xmllint/xml-catalog, so no network is needed.
"""
from pathlib import Path
import shutil
import subprocess

import pytest

REPO = Path(__file__).resolve().parents[1]
TOOL = shutil.which('ament_xmllint')


@pytest.mark.skipif(TOOL is None, reason='ament_xmllint is not installed (apt install python3-ament-xmllint '
                                         'libxml2-utils, or source ROS 2)')
@pytest.mark.linter
@pytest.mark.xmllint
def test_xmllint():
    proc = subprocess.run([TOOL, 'package.xml'], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f'ament_xmllint failed (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}'
    assert 'is valid' in proc.stdout, f'ament_xmllint did not validate package.xml:\n{proc.stdout}'
