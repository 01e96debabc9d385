"""The front door: where data is looked for, what ``centralnet data check`` says, and the terms of data."""
from __future__ import annotations

import json
import os
from pathlib import Path
import re
import shutil
import subprocess
import sys

from centralnet_ros import paths
from centralnet_ros.cli import invocation
from centralnet_ros.data.registry import DATASETS, missing_markers
from centralnet_ros.node_params import TASKS
import dataset_guard
import pytest

REPO = Path(__file__).resolve().parents[1]


def test_data_root_is_the_variable_else_the_per_user_folder_never_the_checkout(monkeypatch, tmp_path):
    monkeypatch.setenv(paths.DATA_ROOT_ENV, str(tmp_path / 'mine'))
    assert paths.data_root() == tmp_path / 'mine'
    assert paths.data_root(tmp_path / 'flag') == tmp_path / 'flag'
    monkeypatch.delenv(paths.DATA_ROOT_ENV)
    monkeypatch.setenv('XDG_DATA_HOME', str(tmp_path / 'xdg'))
    assert paths.data_root() == tmp_path / 'xdg' / 'centralnet_ros'
    monkeypatch.setenv('XDG_DATA_HOME', 'relative/xdg')          # the XDG spec: relative values are ignored
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    assert paths.data_root() == tmp_path / 'home' / '.local' / 'share' / 'centralnet_ros'
    assert REPO not in paths.data_root().parents


def test_missing_datasets_are_named_with_the_variable_and_the_layout(monkeypatch, tmp_path):
    monkeypatch.setenv(paths.DATA_ROOT_ENV, str(tmp_path))
    (tmp_path / 'msrc12').mkdir()                                # the folder alone is not the dataset
    assert missing_markers('msrc12', tmp_path) == [tmp_path / 'msrc12' / 'data']
    reason = dataset_guard.missing_reason('msrc12')
    assert 'msrc12' in reason and paths.DATA_ROOT_ENV in reason and '.tagstream' in reason
    (tmp_path / 'msrc12' / 'data').mkdir()
    assert dataset_guard.missing_reason('msrc12') == ''


def test_a_missing_dataset_skips_but_fails_under_ci(monkeypatch, tmp_path):
    monkeypatch.setenv(paths.DATA_ROOT_ENV, str(tmp_path))
    monkeypatch.delenv('CI', raising=False)
    with pytest.raises(pytest.skip.Exception, match='emodb'):
        dataset_guard.require('emodb')
    monkeypatch.setenv('CI', 'true')
    with pytest.raises(pytest.fail.Exception, match='CI=true'):
        dataset_guard.require('emodb')


def _centralnet(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'centralnet_ros.cli', *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def _newcomer_env(tmp_path: Path) -> dict[str, str]:
    """Return an environment like a new user's: HOME empty, the data root an empty folder, no CI."""
    env = {k: v for k, v in os.environ.items() if k not in ('CI', 'XDG_DATA_HOME', 'XDG_CACHE_HOME')}
    (tmp_path / 'home').mkdir()
    (tmp_path / 'data').mkdir()
    env.update(HOME=str(tmp_path / 'home'), CENTRALNET_DATA_ROOT=str(tmp_path / 'data'),
               PYTHONPATH=os.pathsep.join([str(REPO)] + [p for p in [os.environ.get('PYTHONPATH')] if p]))
    env.pop(paths.CACHE_ENV, None)
    return env


def test_data_check_without_a_dataset_lists_what_it_looked_for_and_where(tmp_path):
    env = _newcomer_env(tmp_path)
    (tmp_path / 'data' / 'emodb' / 'wav').mkdir(parents=True)
    proc = _centralnet('data', 'check', env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert f'data root: {tmp_path / "data"} (${paths.DATA_ROOT_ENV})' in out
    for name, entry in DATASETS.items():
        assert f'  {name} ' in out and entry.terms in out
    assert str(tmp_path / 'data' / 'msrc12' / 'data') in out and 'P{A}_{B}_{C}' in out   # where, and the layout
    emodb = out[out.index('  emodb '):].splitlines()
    assert 'found' in emodb[0] and f'found    {tmp_path / "data" / "emodb" / "wav"}' in emodb[1]
    env.pop(paths.DATA_ROOT_ENV)
    proc = _centralnet('data', 'check', env=env, cwd=tmp_path)
    assert f'data root: {tmp_path / "home" / ".local" / "share" / "centralnet_ros"} (the per-user default)' \
        in proc.stdout


@pytest.mark.parametrize('task', TASKS)
def test_info_prints_task_labels_inputs_metrics_data_and_terms(task, capsys):
    from centralnet_ros.bundle.io import read_manifest
    from centralnet_ros.cli import main
    manifest = read_manifest(task)
    assert main(['info', task]) == 0
    out = capsys.readouterr().out
    flat = ' '.join(out.split())                                  # wrapped lines joined
    assert f'task: {task}' in out
    assert all(label in flat for label in manifest.labels)
    for name, spec in manifest.modalities.items():
        assert f'{name} <- {spec.source} input' in out and f'pipeline {spec.pipeline}' in out
    for metric in manifest.metrics:
        assert metric in out
    assert f'measured on: {manifest.evaluation["dataset"]}' in out
    assert ' '.join(manifest.data_terms.split()) in flat


def test_info_on_a_missing_bundle_says_what_is_available(tmp_path, capsys):
    from centralnet_ros.cli import main
    assert main(['info', str(tmp_path / 'nothing')]) == 1
    err = capsys.readouterr().err
    assert 'no model bundle' in err and 'gesture' in err


@pytest.mark.slow
def test_demo_on_a_new_users_machine_replays_the_embedded_recording(tmp_path):
    """The README's quick start, as a newcomer runs it: no datasets, an empty HOME and working directory."""
    from centralnet_ros.demo import embedded_recording, read_recording_info
    env = _newcomer_env(tmp_path)
    cwd = tmp_path / 'cwd'
    cwd.mkdir()
    proc = subprocess.run([*invocation(), 'demo'], cwd=cwd, env=env,                  # the README's command
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f'{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}'
    out = proc.stdout
    assert 'centralnet demo: the embedded recording' in out
    assert str(embedded_recording() / 'demo_bag') in out
    info = read_recording_info(embedded_recording())
    metrics = json.loads((cwd / 'demo-out' / 'replay' / 'metrics.json').read_text())
    for task in TASKS:
        assert info['tasks'][task]['terms'] in out                   # where the samples come from, their terms
        row = re.search(rf'^{task}\s+(\d+)\s+(\d+)\s+(\d+)\s+([0-9.]+) %', out, re.MULTILINE)
        assert row, f'no {task} figures in the summary:\n{out[-2500:]}'
        assert int(row.group(3)) > 0                                   # decisions scored against the labels
        m = metrics['tasks'][task]
        assert m['decisions'] == int(row.group(1))
        assert m['decision_accuracy'] > m['chance'], f'{task}: the shipped model is at chance on the recording'
    assert not any((tmp_path / 'data').iterdir()), 'the demo wrote into the data root'


def _source_tree(tmp_path: Path) -> Path:
    """Copy the files git would ship (tracked and new, not ignored) into a clean folder to build from."""
    git = shutil.which('git')
    if git is None or not (REPO / '.git').exists():
        pytest.skip('not a git checkout: cannot tell which files a fresh clone has')
    listed = subprocess.run([git, 'ls-files', '--cached', '--others', '--exclude-standard', '-z'], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split('\0')
    src = tmp_path / 'src'
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    return src


@pytest.mark.slow
def test_pip_wheel_and_sdist_carry_the_demo_recording_and_an_installed_copy_finds_it(tmp_path):
    import tarfile
    import venv
    import zipfile
    src = _source_tree(tmp_path)
    shipped = ['demo_recording/recording.yaml', 'demo_recording/labels.yaml', 'demo_recording/demo_bag/metadata.yaml',
               'demo_recording/demo_bag/demo_bag.mcap']
    proc = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q',
                           '-w', str(tmp_path / 'dist'), str(src)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    wheel = next((tmp_path / 'dist').glob('centralnet_ros-*.whl'))
    names = zipfile.ZipFile(wheel).namelist()
    for f in shipped:
        assert f'centralnet_ros/{f}' in names, f'{f} is not in the wheel'
        assert any(n.endswith(f'.data/data/share/centralnet_ros/{f}') for n in names), f'{f}: no share/ copy'
    proc = subprocess.run([sys.executable, 'setup.py', '-q', 'sdist', '-d', str(tmp_path / 'sdist')], cwd=src,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    members = tarfile.open(next((tmp_path / 'sdist').glob('*.tar.gz'))).getnames()
    for f in shipped:
        assert any(m.endswith(f'/centralnet_ros/{f}') for m in members), f'{f} is not in the sdist'
    # a non-editable install (dependencies from this environment) finds the recording inside itself
    env_dir = tmp_path / 'venv'
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = env_dir / 'bin' / 'python'
    proc = subprocess.run([sys.executable, '-m', 'pip', '--python', str(python), 'install', '-q', '--no-deps',
                           str(wheel)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    proc = subprocess.run([str(python), '-c', 'from centralnet_ros.demo import embedded_recording; '
                                              'print(embedded_recording())'],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = Path(proc.stdout.strip())
    assert env_dir in found.parents and (found / 'demo_bag' / 'demo_bag.mcap').is_file()


def test_readme_terms_table_is_the_registry():
    """The README's table of datasets and terms says what centralnet_ros/data/registry.py says."""
    readme = (REPO / 'README.md').read_text(encoding='utf-8')
    for name, entry in DATASETS.items():
        if entry.folder == '.':                       # built from other datasets (AV-MNIST)
            continue
        row = re.search(rf'^\|[^|\n]*\| `{re.escape(entry.folder)}/` \| ([^|\n]*) \|', readme, re.MULTILINE)
        assert row, f'README: no row for {name} (`{entry.folder}/`) in the datasets and terms table'
        assert row.group(1).strip() == entry.terms.split(': ', 1)[1], f'README terms of {name} drifted'


def test_embedded_recording_was_built_for_the_shipped_bundles():
    """Retraining a shipped bundle without rebuilding the recording (tools/make_demo_recording.py) fails here."""
    from centralnet_ros.bundle.io import read_manifest
    from centralnet_ros.demo import embedded_recording, read_recording_info
    info = read_recording_info(embedded_recording())
    for task in TASKS:
        manifest = read_manifest(task)
        entry = info['tasks'][task]
        assert entry['bundle_weights_sha256'] == manifest.weights_sha256, \
            f'models/{task} changed since the demo recording was built: run tools/make_demo_recording.py'
        assert entry['dataset'] == manifest.evaluation['dataset'] and entry['terms'] == manifest.data_terms


@pytest.mark.slow
@pytest.mark.needs_data('msrc12', 'avletters', 'emodb')
def test_embedded_recording_is_what_the_script_builds_from_the_datasets(tmp_path):
    """Same samples and ground truth: the committed recording is reproducible from the datasets (espeak-ng 1.51)."""
    import yaml
    from centralnet_ros.bundle.io import read_manifest
    from centralnet_ros.demo import build_demo_bag, DemoOptions, embedded_recording, read_recording_info
    if shutil.which('espeak-ng') is None:
        pytest.skip('espeak-ng is not installed (apt install espeak-ng): the letters cannot be spoken')
    recording = embedded_recording()
    info = read_recording_info(recording)
    demo = build_demo_bag(tmp_path, {t: read_manifest(t) for t in TASKS}, data_root=paths.data_root(),
                          options=DemoOptions(**info['options']))
    assert yaml.safe_load(demo.labels.read_text()) == yaml.safe_load((recording / 'labels.yaml').read_text())
    assert demo.counts == info['messages']
    for task in TASKS:
        assert demo.sources[task]['files'] == info['tasks'][task]['files']
