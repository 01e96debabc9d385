"""
The licence, declared in package.xml (for ROS) and setup.py (for pip), is the same in both.

ament_copyright is not run: it recognises a licence only by the whole Apache-2.0
boilerplate repeated in every source file (it accepts no one-line SPDX identifier), and
the project declares its licence once per packaging system instead.  A test that always
skipped stood here before; this one can fail.
"""
import ast
from pathlib import Path
import xml.etree.ElementTree as ET

REPO = Path(__file__).resolve().parents[1]


def _setup_license() -> str:
    tree = ast.parse((REPO / 'setup.py').read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == 'license' and isinstance(node.value, ast.Constant):
            return node.value.value
    raise AssertionError('setup.py passes no license= to setup()')


def test_package_xml_and_setup_py_declare_the_same_licence():
    licences = [e.text.strip() for e in ET.parse(REPO / 'package.xml').getroot().findall('license')]
    assert licences == [_setup_license()], f'package.xml {licences} vs setup.py {_setup_license()!r}'
    assert licences[0] == 'Apache-2.0'
