"""The parameter table is the single source of truth: configs map onto it, errors are clear."""
from __future__ import annotations

from pathlib import Path

from centralnet_ros import node_params
from centralnet_ros.node_params import (FUSION_NODE, MICROPHONE_NODE, NODES, ParameterError,
                                        TASKS)
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / 'config' / 'fusion.yaml'
ROBOTS = sorted((REPO / 'config' / 'robots').glob('*.yaml'))


def test_fusion_yaml_declares_every_parameter_and_nothing_else():
    values = node_params.validate_params_file(CONFIG, complete=True)
    assert set(values) == set(NODES)
    for node in NODES:
        assert set(values[node]) == {s.name for s in node_params.node_parameters(node)}


def test_fusion_yaml_is_the_rendered_table():
    assert CONFIG.read_text() == node_params.render_params_yaml(), (
        'config/fusion.yaml differs from the table in centralnet_ros/node_params.py; regenerate '
        'it with `python -m centralnet_ros.node_params --write-config config/fusion.yaml`')


def test_every_parameter_in_fusion_yaml_has_a_comment():
    lines = CONFIG.read_text().splitlines()
    leaves = 0
    for i, line in enumerate(lines):
        stripped = line.strip()
        if ':' in stripped and not stripped.startswith('#') and not stripped.endswith(':'):
            leaves += 1
            assert lines[i - 1].strip().startswith('#'), f'no comment above line {i + 1}: {line}'
    assert leaves == sum(len(node_params.node_parameters(n)) for n in NODES)


def test_fusion_yaml_keys_apply_in_any_namespace():
    tree = yaml.safe_load(CONFIG.read_text())
    assert set(tree) == {f'/**/{n}' for n in NODES}


@pytest.mark.parametrize('path', ROBOTS, ids=[p.stem for p in ROBOTS])
def test_robot_overlays_are_valid(path):
    values = node_params.validate_params_file(path)
    assert FUSION_NODE in values


def test_robot_overlays_exist():
    assert {p.stem for p in ROBOTS} >= {'pepper', 'nao', 'workstation'}


def test_naoqi_robots_read_audio_buffers_and_shift_stamps():
    for robot in ('pepper', 'nao'):
        values = node_params.load_params_file(REPO / 'config' / 'robots' / f'{robot}.yaml')
        fusion = values[FUSION_NODE]
        assert fusion['audio_type'] == 'naoqi_audio_buffer'
        assert fusion['audio.offset_s'] < 0  # naoqi stamps on arrival at the bridge


def test_table_is_consistent():
    fusion = {s.name: s for s in node_params.node_parameters(FUSION_NODE)}
    for task in TASKS:
        for leaf in ('bundle', 'trigger', 'rate_hz', 'window_s', 'score_threshold'):
            assert f'{task}.{leaf}' in fusion
        assert fusion[f'{task}.score_threshold'].dynamic
    for name in ('image.offset_s', 'depth.offset_s', 'audio.offset_s', 'skeleton.offset_s',
                 'device', 'precision', 'on_device_failure', 'max_data_age_s', 'qos_reliability',
                 'qos_depth', 'skeleton_type', 'image_transport', 'publish_hri', 'face_id',
                 'voice_id', 'diagnostics_period_s'):
        assert name in fusion
    assert not fusion['device'].dynamic and not fusion['tasks'].dynamic
    mic = {s.name for s in node_params.node_parameters(MICROPHONE_NODE)}
    assert mic == {'device', 'sample_rate', 'channels', 'chunk_ms', 'frame_id',
                   'diagnostics_period_s'}
    for node in NODES:
        for spec in node_params.node_parameters(node):
            assert spec.description.strip(), f'{node}.{spec.name} has no description'
            if spec.value_type in ('integer', 'double'):
                assert spec.bounds is not None, f'{node}.{spec.name} has no range'


def _error(node, values, complete=False):
    with pytest.raises(ParameterError) as info:
        node_params.validate_parameters(node, values, complete=complete)
    return str(info.value)


def test_unknown_key_is_named_with_a_hint():
    message = _error(FUSION_NODE, {'speech.threshold': 0.5})
    assert "unknown parameter 'speech.threshold'" in message


def test_missing_keys_are_listed():
    values = node_params.defaults(FUSION_NODE)
    del values['speech.bundle'], values['qos_depth']
    message = _error(FUSION_NODE, values, complete=True)
    assert 'speech.bundle' in message and 'qos_depth' in message


@pytest.mark.parametrize('name, value, expected', [
    ('speech.rate_hz', 5, 'write 5.0'),
    ('qos_depth', 5.0, 'expected an integer'),
    ('qos_depth', True, 'expected an integer'),
    ('publish_hri', 'yes', 'expected a bool'),
    ('tasks', 'speech', 'expected a list of strings'),
    ('tasks', [], 'empty'),
    ('tasks', ['speech', 'speech'], 'repeated'),
    ('tasks', ['speech', 'dance'], "'dance' is not one of"),
    ('speech.score_threshold', 1.5, 'outside -1..1'),
    ('qos_depth', 0, 'outside 1..1000'),
    ('qos_reliability', 'sometimes', 'is not one of'),
    ('device', 'gpu', 'does not match'),
    ('device', 'cuda:x', 'does not match'),
])
def test_bad_values_say_what_was_expected(name, value, expected):
    assert expected in _error(FUSION_NODE, {name: value})


@pytest.mark.parametrize('device', ['cpu', 'cuda', 'cuda:0', 'cuda:12'])
def test_device_pattern_accepts_cpu_cuda_and_cuda_n(device):
    node_params.check_value(FUSION_NODE, 'device', device)


def test_all_problems_are_reported_at_once():
    message = _error(MICROPHONE_NODE, {'sample_rate': 4000, 'channels': 0, 'colour': 'red'})
    assert '3 problems' in message


def test_params_file_errors_name_the_file(tmp_path):
    path = tmp_path / 'bad.yaml'
    path.write_text('/**/fusion_node:\n  ros__parameters:\n    speech:\n      rate_hz: 2\n')
    with pytest.raises(ParameterError) as info:
        node_params.validate_params_file(path)
    assert str(path) in str(info.value) and 'write 2.0' in str(info.value)


@pytest.mark.parametrize('text, expected', [
    ('fusion_nod:\n  ros__parameters: {}\n', "unknown node 'fusion_nod'"),
    ('fusion_node:\n  qos_depth: 3\n', 'ros__parameters'),
    ('fusion_node:\n  ros__parameters:\n    qos_depth: 3\n    qos_depth: 4\n', 'repeated key'),
    ('- a\n- b\n', 'expected a mapping'),
    ('/**:\n  ros__parameters:\n    nonsense: 1\n', 'no node declares'),
])
def test_params_file_structure_errors(tmp_path, text, expected):
    path = tmp_path / 'bad.yaml'
    path.write_text(text)
    with pytest.raises(ParameterError, match=expected):
        node_params.validate_params_file(path)


def test_node_keys_with_namespaces_and_wildcards(tmp_path):
    path = tmp_path / 'ns.yaml'
    path.write_text('/**:\n  ros__parameters:\n    use_sim_time: true\n    qos_depth: 7\n'
                    '/robot1/fusion_node:\n  ros__parameters:\n    device: cuda:1\n'
                    '/**/microphone_node:\n  ros__parameters:\n    channels: 2\n')
    values = node_params.validate_params_file(path)
    assert values[FUSION_NODE]['device'] == 'cuda:1'
    assert values[FUSION_NODE]['qos_depth'] == 7
    assert values[MICROPHONE_NODE]['channels'] == 2


def test_rendered_tables_list_every_parameter_and_topic():
    for node in NODES:
        table = node_params.render_parameter_table(node)
        for spec in node_params.node_parameters(node):
            assert f'`{spec.name}`' in table
    topics = node_params.render_topic_table()
    for topic in ('`image`', '`depth`', '`audio`', '`audio_info`', '`skeleton`', '`~/<task>`',
                  '`~/<task>/label_info`', '`~/<task>/fusion_weights`', '`/diagnostics`'):
        assert topic in topics
    assert 'vision_msgs/msg/Classification' in topics


def test_write_config_round_trips(tmp_path):
    out = tmp_path / 'fusion.yaml'
    assert node_params.main(['--write-config', str(out)]) == 0
    assert node_params.validate_params_file(out, complete=True)[MICROPHONE_NODE]['sample_rate'] \
        == 16000


def test_docs_ros_interface_is_rendered_from_the_table(capsys):
    assert node_params.main([]) == 0
    assert (REPO / 'docs' / 'ros_interface.md').read_text() == capsys.readouterr().out, (
        'docs/ros_interface.md differs from centralnet_ros/node_params.py; regenerate it with '
        '`python -m centralnet_ros.node_params > docs/ros_interface.md`')


def test_runtime_settings_are_declared_once():
    """The node's parameters for the runtime's dataclasses carry their defaults and ranges, and both refuse alike."""
    import dataclasses

    from centralnet_ros.runtime.perception_config import PerceptionConfig, TaskConfig
    from centralnet_ros.runtime.vad import VADConfig
    fusion = {s.name: s for s in node_params.node_parameters(FUSION_NODE)}
    for f in dataclasses.fields(VADConfig):
        if f.metadata.get('node'):
            assert fusion[f'vad.{f.name}'].default == f.default
            assert fusion[f'vad.{f.name}'].bounds == f.metadata['bounds']
    assert fusion['max_data_age_s'].default == PerceptionConfig(tasks={'x': TaskConfig('x')}).max_data_age_s
    with pytest.raises(ParameterError, match='outside -1..1'):
        node_params.check_value(FUSION_NODE, 'speech.score_threshold', 1.5)
    with pytest.raises(ValueError, match=r'score_threshold must be in \[-1, 1\]'):
        TaskConfig('speech', score_threshold=1.5)
    with pytest.raises(ValueError, match=r'hangover_ms must be in \[0, 5000\]'):
        VADConfig(hangover_ms=6000.0)


def test_speech_and_emotion_decide_in_processes_of_their_own_by_default_in_the_node_only():
    """The node's default (its parameters) is a process for speech and emotion; the runtime's own default is none."""
    from centralnet_ros.runtime.perception import TaskConfig
    config = node_params.perception_config({})
    assert {t: tc.decision_process for t, tc in config.tasks.items()} == \
        {'gesture': False, 'speech': True, 'emotion': True}
    assert TaskConfig(bundle='x').decision_process is False          # Perception as a library, replay: in-process
