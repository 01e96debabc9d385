"""
The house: which room of ``centralnet_ros`` may import which.

:data:`HOUSE` is the folder table of the README's Layout section.  Every import in the
package is checked against it statically: module-level imports, imports inside
functions and ``try`` blocks, relative imports, and the string registries that name a
module to import later (``'centralnet_ros.training.compare'`` in ``cli.COMMANDS``,
``'module:function'`` in ``features.pipelines.PIPELINES``).  Third-party rules ride
along: only ``ros/`` imports rclpy or ROS message packages, only ``evaluation/`` draws
with matplotlib, and the rooms the robot's light side needs never import torch.  A
fresh interpreter then imports the ROS-free modules and looks at ``sys.modules``.
"""
from __future__ import annotations

import ast
import json
from pathlib import Path
import re
import subprocess
import sys

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / 'centralnet_ros'

FOUNDATION = frozenset({'config', 'paths', 'machine'})
"""Top-level helpers every room may import (strict YAML, atomic writes, data paths, machine description)."""

EVERYTHING = '*'
HOUSE: dict[str, frozenset[str] | str] = {
    # room: the rooms it may import (besides FOUNDATION), listed bottom-up
    'model_config': frozenset(),            # EncoderConfig, FusionConfig, the fusion registry: no torch
    'encoders': frozenset({'model_config'}),
    'fusion': frozenset({'encoders', 'model_config'}),
    'representation': frozenset({'encoders'}),
    'features': frozenset(),
    'data': frozenset({'features'}),
    'bundle': frozenset({'fusion', 'encoders', 'features', 'model_config'}),
    'evaluation': frozenset(),
    'torch_utils': frozenset(),
    'training': frozenset({'encoders', 'fusion', 'representation', 'features', 'data', 'bundle', 'evaluation',
                           'torch_utils'}),
    'messages': frozenset({'features'}),
    'capture': frozenset(),
    'runtime': frozenset({'bundle', 'features', 'messages', 'torch_utils'}),
    'node_params': frozenset({'runtime', 'messages'}),
    # replay reads WAV recordings (data.wav) when it writes session bags
    'replay': frozenset({'runtime', 'messages', 'evaluation', 'node_params', 'bundle', 'features', 'data'}),
    'ros': frozenset({'runtime', 'messages', 'node_params', 'capture'}),
    # applications at the top: the command line, and the commands that compose rooms which
    # may not import each other (the demo: data + replay; fine-tuning
    # and speech-windows: replay samples + training)
    'cli': EVERYTHING,
    'demo': EVERYTHING,
    'finetune_cli': EVERYTHING,
    'speech_windows': EVERYTHING,       # replay windows of calibration speakers -> arrays for training
    '__init__': frozenset(),
}
for _room in FOUNDATION:
    HOUSE[_room] = frozenset(FOUNDATION - {_room})

ROS_ROOTS = {'rclpy', 'rcl_interfaces', 'builtin_interfaces', 'launch', 'launch_ros', 'launch_testing',
             'launch_testing_ros', 'rosidl_runtime_py', 'rosbag2_py', 'diagnostic_updater', 'message_filters',
             'cv_bridge', 'tf2_ros'}
TORCH_FREE = {'features', 'data', 'evaluation', 'messages', 'capture', 'node_params', 'config', 'paths', 'model_config'}
THIRD_PARTY_ONLY_IN = {'matplotlib': {'evaluation'}}

_MODULE_STRING = re.compile(r'centralnet_ros(\.[A-Za-z_]\w*)+(:[A-Za-z_]\w*)?')


def _is_ros(root: str) -> bool:
    return root in ROS_ROOTS or root.endswith('_msgs')  # sensor_msgs, audio_common_msgs, ...


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix('').parts)
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def _room(module: str) -> str | None:
    """Return the room of ``centralnet_ros.<room>[...]`` (None outside the package)."""
    parts = module.split('.')
    if parts[0] != 'centralnet_ros':
        return None
    return parts[1] if len(parts) > 1 else '__init__'


def imports(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports or names for import: (line, absolute module name)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = _module_name(path) if PACKAGE in path.parents else ''
    package = here if path.name == '__init__.py' else here.rpartition('.')[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ''
            if node.level:
                base = package.split('.')
                module = '.'.join(base[:len(base) - (node.level - 1)] + ([module] if module else []))
            # ``from centralnet_ros import node_params`` imports the room node_params
            found += [(node.lineno, f'{module}.{a.name}') for a in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and _MODULE_STRING.fullmatch(node.value):
            found.append((node.lineno, node.value.partition(':')[0]))
    return found


def problems(path: Path) -> list[str]:
    """Wrong-way imports of one file of the package (or of a benchmark: ROS only)."""
    room = _room(_module_name(path)) if PACKAGE in path.parents else None
    out = []
    for line, module in imports(path):
        where = f'{path.relative_to(REPO)}:{line}: {module}'
        root = module.split('.')[0]
        target = _room(module)
        if _is_ros(root):
            if room != 'ros':
                out.append(f'{where}: only centralnet_ros/ros imports ROS')
            continue
        if room is None:
            continue
        if root == 'torch' and room in TORCH_FREE:
            out.append(f'{where}: {room} stays free of torch')
        if root in THIRD_PARTY_ONLY_IN and room not in THIRD_PARTY_ONLY_IN[root]:
            out.append(f'{where}: only {", ".join(sorted(THIRD_PARTY_ONLY_IN[root]))} imports {root}')
        if target is None or target == room or target in FOUNDATION:
            continue
        allowed = HOUSE.get(room)
        if allowed is None:
            out.append(f'{where}: the room {room!r} is not in the house table (test_import_boundary.HOUSE)')
        elif target not in HOUSE:
            out.append(f'{where}: the room {target!r} is not in the house table (test_import_boundary.HOUSE)')
        elif allowed != EVERYTHING and target not in allowed:
            may = ', '.join(sorted(allowed | FOUNDATION))
            out.append(f'{where}: {room} may not import {target} (it may import {may})')
    return out


def _checked_files() -> list[Path]:
    files = list(PACKAGE.rglob('*.py')) + sorted((REPO / 'benchmarks').rglob('*.py')) + [REPO / 'setup.py']
    return sorted(f for f in files if f.is_file())


def test_every_import_follows_the_house():
    found = [p for path in _checked_files() for p in problems(path)]
    assert not found, 'imports that run the wrong way:\n' + '\n'.join(found)


def test_every_room_is_in_the_table():
    rooms = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / '__init__.py').exists()}
    rooms |= {p.stem for p in PACKAGE.glob('*.py')}
    assert rooms <= set(HOUSE), f'rooms missing from the house table: {sorted(rooms - set(HOUSE))}'


@pytest.mark.parametrize('source, expected', [
    # a function-level import of rclpy and of ROS messages outside ros/
    ('def f():\n    try:\n        from sensor_msgs.msg import Image\n    except ImportError:\n'
     '        import rclpy.node\n', ['only centralnet_ros/ros imports ROS'] * 2),
    # a function-level upward import (the runtime reading ROS parameter names)
    ('def f():\n    from centralnet_ros import node_params\n', ['runtime may not import node_params']),
    # a relative upward import
    ('from ..replay import msgdefs\n', ['runtime may not import replay']),
    # a string registry naming a module of a higher room
    ("COMMANDS = {'x': ('centralnet_ros.training.compare', 'help')}\n", ['runtime may not import training']),
    ("PIPELINES = {'x': 'centralnet_ros.data.msrc12:read'}\n", ['runtime may not import data']),
    # allowed: downward, foundation, own room; docstrings that merely mention a module
    ('from ..bundle import io\nfrom centralnet_ros.config import load_yaml\nfrom . import window\n'
     '"""See centralnet_ros.training.compare for the other side."""\n', []),
])
def test_the_check_sees_a_violation(tmp_path, monkeypatch, source, expected):
    room = tmp_path / 'centralnet_ros' / 'runtime'
    room.mkdir(parents=True)
    bad = room / 'bad.py'
    bad.write_text(source)
    monkeypatch.setattr(sys.modules[__name__], 'REPO', tmp_path)
    monkeypatch.setattr(sys.modules[__name__], 'PACKAGE', tmp_path / 'centralnet_ros')
    found = problems(bad)
    assert len(found) == len(expected), found
    for message, want in zip(found, expected):
        assert want in message


NAMED = ('centralnet_ros.runtime', 'centralnet_ros.messages', 'centralnet_ros.capture',
         'centralnet_ros.node_params', 'centralnet_ros.replay', 'centralnet_ros.evaluation')

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
    loaded = [r for r in probe['roots'] if _is_ros(r)]
    assert not loaded, f'importing {", ".join(NAMED)} loaded {loaded}'
    assert 'rclpy' not in probe['roots']


@pytest.mark.parametrize('module', NAMED)
def test_named_module_was_imported(probe, module):
    assert module in probe['modules'], f'{module} does not exist'
    assert module not in probe['failed'], probe['failed'].get(module)


_NO_TORCH = """
import sys
from centralnet_ros.bundle.io import read_manifest
from centralnet_ros.runtime import decision_process, engine, perception
for name in ('gesture', 'speech', 'emotion'):
    read_manifest(name)
print('torch' in sys.modules)
"""


def test_reading_a_manifest_and_the_decision_process_modules_import_no_torch():
    """What a decision process loads (runtime/decision_process.py, the ONNX path of the engine) stays free of torch."""
    proc = subprocess.run([sys.executable, '-c', _NO_TORCH], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-1] == 'False', 'torch was imported'
