"""ament_xmllint on package.xml (schema package_format3); skipped without ament_xmllint.

Debian 12 / Ubuntu and ROS 2 ship it as python3-ament-xmllint (or ros-<distro>-ament-xmllint);
it runs ``xmllint`` (libxml2-utils) and fetches the schema named in package.xml.
"""
from pathlib import Path

import pytest

main = pytest.importorskip(
    'ament_xmllint.main',
    reason='ament_xmllint is not installed (apt install python3-ament-xmllint, or source ROS 2)',
).main

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.linter
@pytest.mark.xmllint
def test_xmllint():
    rc = main(argv=[str(REPO / 'package.xml')])
    assert rc == 0, 'Found errors'
