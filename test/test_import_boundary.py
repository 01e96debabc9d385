"""
Only centralnet_ros/ros imports rclpy, launch or ROS message packages.

Checked two ways: statically over every Python file (imports inside functions
and ``try`` blocks included), and by importing the ROS-free modules in a fresh
interpreter and looking at ``sys.modules``.
"""
from __future__ import annotations

import ast
import json
from pathlib import Path
import subprocess
import sys

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / 'centralnet_ros'
ROS_ONLY = PACKAGE / 'ros'

FORBIDDEN = {'rclpy', 'rcl_interfaces', 'builtin_interfaces', 'launch', 'launch_ros',
             'launch_testing', 'launch_testing_ros', 'rosidl_runtime_py', 'rosbag2_py',
             'diagnostic_updater', 'message_filters', 'cv_bridge', 'tf2_ros'}


def _forbidden(module: str) -> bool:
    root = module.split('.')[0]
    return root in FORBIDDEN or root.endswith('_msgs')  # sensor_msgs, audio_common_msgs, ...


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def _checked_files() -> list[Path]:
    files = [p for p in PACKAGE.rglob('*.py') if ROS_ONLY not in p.parents]
    files += sorted((REPO / 'benchmarks').rglob('*.py')) + [REPO / 'setup.py']
    return sorted(f for f in files if f.is_file())


def test_static_imports_stay_inside_ros():
    offenders = [f'{path.relative_to(REPO)}:{line}: import {module}'
                 for path in _checked_files() for line, module in _imports(path)
                 if _forbidden(module)]
    assert not offenders, 'ROS imports outside centralnet_ros/ros:\n' + '\n'.join(offenders)


def test_the_check_sees_a_violation(tmp_path):
    bad = tmp_path / 'bad.py'
    bad.write_text('def f():\n    try:\n        from sensor_msgs.msg import Image\n'
                   '    except ImportError:\n        import rclpy.node\n')
    assert [m for _, m in _imports(bad) if _forbidden(m)] == ['sensor_msgs.msg', 'rclpy.node']


NAMED = ('centralnet_ros.runtime', 'centralnet_ros.messages', 'centralnet_ros.capture',
         'centralnet_ros.node_params', 'centralnet_ros.replay')

_PROBE = """
import importlib, json, pkgutil, sys
names, failed = [], {}
for name in sys.argv[1:]:
    if importlib.util.find_spec(name) is None:
        continue
    names.append(name)
    try:
        module = importlib.import_module(name)
    except Exception as exc:
        failed[name] = f'{type(exc).__name__}: {exc}'
        continue
    for sub in pkgutil.walk_packages(getattr(module, '__path__', []), name + '.'):
        names.append(sub.name)
        try:
            importlib.import_module(sub.name)
        except Exception as exc:
            failed[sub.name] = f'{type(exc).__name__}: {exc}'
roots = sorted({m.split('.')[0] for m in sys.modules})
print(json.dumps({'modules': names, 'failed': failed, 'roots': roots}))
"""


@pytest.fixture(scope='module')
def probe():
    """Import the named modules (and their submodules) in a fresh interpreter."""
    proc = subprocess.run([sys.executable, '-c', _PROBE, *NAMED], capture_output=True,
                          text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_rclpy_free_modules_load_no_ros_module(probe):
    assert not probe['failed'], f'modules that fail to import: {probe["failed"]}'
    loaded = [r for r in probe['roots'] if _forbidden(r)]
    assert not loaded, f'importing {", ".join(NAMED)} loaded {loaded}'
    assert 'rclpy' not in probe['roots']


@pytest.mark.parametrize('module', NAMED)
def test_named_module_was_imported(probe, module):
    if module not in probe['modules']:
        pytest.skip(f'{module} does not exist yet')
    assert module not in probe['failed'], probe['failed'].get(module)
