"""
A real ``colcon build`` of the package installs the executables and share files ROS expects.

Runs only where colcon is on PATH (python3-colcon-ros / python3-colcon-common-extensions);
build, install and log folders go to a temporary directory, the source tree is left alone.
"""
from __future__ import annotations

from pathlib import Path
import shutil
import subprocess

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = 'centralnet_ros'

pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def install(tmp_path_factory) -> Path:
    colcon = shutil.which('colcon')
    if colcon is None:
        pytest.skip('colcon is not on PATH (apt install python3-colcon-common-extensions)')
    tmp = tmp_path_factory.mktemp('colcon')
    proc = subprocess.run(
        [colcon, '--log-base', str(tmp / 'log'), 'build', '--base-paths', str(REPO),
         '--build-base', str(tmp / 'build'), '--install-base', str(tmp / 'install'),
         '--packages-select', PACKAGE, '--event-handlers', 'console_direct-'],
        cwd=tmp, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f'colcon build failed:\n{proc.stdout}\n{proc.stderr}'
    return tmp / 'install' / PACKAGE  # isolated layout: install/<package>/...


def test_package_is_indexed(install):
    assert (install / 'share' / 'ament_index' / 'resource_index' / 'packages' / PACKAGE).is_file()
    assert (install / 'share' / PACKAGE / 'package.xml').is_file()


@pytest.mark.parametrize('executable', ['fusion_node', 'microphone_node'])
def test_executables_are_in_lib(install, executable):
    path = install / 'lib' / PACKAGE / executable
    assert path.is_file(), f'{path} missing: `ros2 run {PACKAGE} {executable}` would not find it'
    text = path.read_text()
    assert f"'{executable}'" in text and 'console_scripts' in text


def test_launch_and_config_are_installed(install):
    share = install / 'share' / PACKAGE
    assert (share / 'launch' / 'fusion.launch.py').is_file()
    assert (share / 'config' / 'fusion.yaml').read_text() == \
        (REPO / 'config' / 'fusion.yaml').read_text()
    for robot in sorted((REPO / 'config' / 'robots').glob('*.yaml')):
        assert (share / 'config' / 'robots' / robot.name).is_file(), f'{robot.name} not installed'


def test_models_folder_is_installed(install):
    sources = [p for p in (REPO / 'models').rglob('*') if p.is_file()]
    assert sources, ('models/ holds no file, so setup.py installs no share/centralnet_ros/models; '
                     'add at least models/README.md (bundle names resolve there)')
    assert (install / 'share' / PACKAGE / 'models').is_dir()


def test_python_package_is_installed(install):
    site = list((install / 'lib').glob('python3*/site-packages'))
    assert site, 'no site-packages under the install prefix'
    for module in ('capture.py', 'node_params.py', 'ros/microphone_node.py'):
        assert (site[0] / PACKAGE / module).is_file(), f'{module} not installed'


def test_demo_recording_is_installed(install):
    """The embedded recording: under share/ for ROS tools (ros2 bag play), and inside the Python package."""
    for base in [install / 'share' / PACKAGE] + [p / PACKAGE for p in (install / 'lib').glob('python3*/site-packages')]:
        for name in ('labels.yaml', 'recording.yaml', 'demo_bag/metadata.yaml', 'demo_bag/demo_bag.mcap'):
            assert (base / 'demo_recording' / name).is_file(), f'{base}/demo_recording/{name} not installed'


def test_colcon_of_this_python_writes_this_python_into_the_executables(tmp_path):
    """
    Colcon installed in this Python writes this Python into the executables' shebang.

    Debian's colcon (/usr/bin/colcon) writes ``#!/usr/bin/python3``, which cannot import a venv's
    rclpy; colcon installed into the venv (tools/ros_wheels.sh does) writes the venv's Python, and
    the installed fusion_node then runs (here: refuses a bad parameter in one line).
    """
    pytest.importorskip('colcon_core', reason='colcon is not installed in this Python (tools/ros_wheels.sh)')
    pytest.importorskip('rclpy', reason='rclpy is not installed in this Python (tools/ros_wheels.sh)')
    import os
    import sys
    proc = subprocess.run(
        [sys.executable, '-m', 'colcon', '--log-base', str(tmp_path / 'log'), 'build', '--base-paths', str(REPO),
         '--build-base', str(tmp_path / 'build'), '--install-base', str(tmp_path / 'install'),
         '--packages-select', PACKAGE, '--event-handlers', 'console_direct-'],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f'colcon build failed:\n{proc.stdout}\n{proc.stderr}'
    exe = tmp_path / 'install' / PACKAGE / 'lib' / PACKAGE / 'fusion_node'
    shebang = exe.read_text().splitlines()[0]
    assert Path(shebang[2:].split()[0]).resolve() == Path(sys.executable).resolve(), shebang
    env = {**os.environ, 'ROS_DOMAIN_ID': str(10 + os.getpid() % 200)}
    run = subprocess.run([str(exe), '--ros-args', '-p', 'qos_depth:=many'], capture_output=True, text=True,
                         timeout=300, env=env)
    assert run.returncode == 2 and 'Traceback' not in run.stderr, run.stdout + run.stderr
    assert 'qos_depth' in run.stderr and 'many' in run.stderr
