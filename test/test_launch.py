"""launch/fusion.launch.py parses without ROS, declares the documented arguments, works."""
from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

from centralnet_ros.node_params import ParameterError
import pytest

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / 'launch' / 'fusion.launch.py'

DOCUMENTED = {
    'config': '',
    'robot': '',
    'namespace': '',
    'device': '',
    'tasks': '',
    'start_microphone': 'false',
    'autostart': 'true',
    'use_sim_time': 'false',
    'log_level': 'info',
    'image_topic': 'camera/front/image_raw',  # naoqi_driver
    'depth_topic': 'camera/depth/image_raw',  # naoqi_driver
    'audio_topic': 'audio',
    'audio_info_topic': 'audio_info',
    'skeleton_topic': 'skeleton',
    'dds_profile': '',
}
ROS_MODULES = ('launch', 'launch_ros', 'lifecycle_msgs', 'ament_index_python', 'rclpy')


@pytest.fixture(scope='module')
def tree():
    return ast.parse(LAUNCH.read_text(), filename=str(LAUNCH))


@pytest.fixture(scope='module')
def launch_module():
    """Import the launch file as a module (possible without ROS: its ROS imports are lazy)."""
    spec = importlib.util.spec_from_file_location('fusion_launch', LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _arguments(tree: ast.Module) -> list[tuple[str, str, str]]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == 'ARGUMENTS' for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError('launch/fusion.launch.py has no ARGUMENTS table')


def test_declares_the_documented_arguments(tree):
    declared = {name: default for name, default, _ in _arguments(tree)}
    assert declared == DOCUMENTED
    for name, _, description in _arguments(tree):
        assert description.strip(), f'argument {name} has no description'


def test_module_docstring_documents_every_argument(tree):
    doc = ast.get_docstring(tree)
    for name in DOCUMENTED:
        assert f'\n{name} ' in doc, f'{name} is not described in the launch file docstring'
    assert 'camera/color/image_raw' in doc  # the RealSense alternative


def test_generate_launch_description_declares_from_the_table(tree):
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert 'generate_launch_description' in functions
    calls = {getattr(c.func, 'id', getattr(c.func, 'attr', None))
             for c in ast.walk(functions['generate_launch_description'])
             if isinstance(c, ast.Call)}
    assert {'DeclareLaunchArgument', 'LaunchDescription', 'OpaqueFunction'} <= calls
    setup_calls = {getattr(c.func, 'id', getattr(c.func, 'attr', None))
                   for c in ast.walk(functions['_launch_setup']) if isinstance(c, ast.Call)}
    assert 'LifecycleNode' in setup_calls


def test_ros_imports_are_inside_functions(tree):
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            assert not any(n.split('.')[0] in ROS_MODULES for n in names), (
                f'line {node.lineno}: top-level import of {names}; import it inside a function '
                'so the launch file parses without ROS')


def test_lifecycle_nodes_are_brought_to_active(tree):
    source = ast.unparse(tree)
    assert 'TRANSITION_CONFIGURE' in source and 'TRANSITION_ACTIVATE' in source
    assert "goal_state='inactive'" in source and "start_state='configuring'" in source
    assert "'--managed'" in source


def test_parse_bool_and_tasks(launch_module):
    assert launch_module.parse_bool('x', 'True') is True
    assert launch_module.parse_bool('x', 'off') is False
    with pytest.raises(ValueError, match='start_microphone'):
        launch_module.parse_bool('start_microphone', 'maybe')
    assert launch_module.parse_tasks('') is None
    assert launch_module.parse_tasks('speech, emotion') == ['speech', 'emotion']
    with pytest.raises(ValueError, match='tasks'):
        launch_module.parse_tasks('speech,dance')


def test_param_files_layer_the_robot_over_the_config(launch_module):
    files = launch_module.param_files(REPO, '', 'pepper')
    assert files == [REPO / 'config' / 'fusion.yaml', REPO / 'config' / 'robots' / 'pepper.yaml']
    custom = REPO / 'config' / 'robots' / 'nao.yaml'
    assert launch_module.param_files(REPO, '', str(custom))[-1] == custom
    with pytest.raises(ValueError, match='robot'):
        launch_module.param_files(REPO, '', 'r2d2')
    with pytest.raises(FileNotFoundError, match='nowhere.yaml'):
        launch_module.param_files(REPO, '/nowhere.yaml', '')


def test_remappings_follow_image_to_compressed(launch_module):
    mapping = dict(launch_module.remappings('camera/color/image_raw', 'd', 'a', 'ai', 's'))
    assert mapping['image'] == 'camera/color/image_raw'
    assert mapping['image/compressed'] == 'camera/color/image_raw/compressed'
    assert (mapping['depth'], mapping['audio'], mapping['audio_info'], mapping['skeleton']) == \
        ('d', 'a', 'ai', 's')


def test_overrides_are_validated_against_the_table(launch_module):
    files = launch_module.param_files(REPO, '', 'workstation')
    good = launch_module.overrides('cuda:1', 'speech', False)
    assert good == {'use_sim_time': False, 'device': 'cuda:1', 'tasks': ['speech']}
    launch_module._validate(files, good)
    with pytest.raises(ParameterError, match='device'):
        launch_module._validate(files, launch_module.overrides('gpu', '', False))


def test_the_shipped_dds_profile_is_used_unless_overridden(launch_module, tmp_path):
    env = launch_module.dds_environment(REPO, '')
    assert env['FASTRTPS_DEFAULT_PROFILES_FILE'] == str(REPO / 'config' / 'fastdds.xml')
    assert env['FASTDDS_DEFAULT_PROFILES_FILE'] == env['FASTRTPS_DEFAULT_PROFILES_FILE']
    assert launch_module.dds_environment(REPO, 'none') == {}
    own = tmp_path / 'mine.xml'
    own.write_text('<profiles/>')
    assert launch_module.dds_environment(REPO, str(own))['FASTRTPS_DEFAULT_PROFILES_FILE'] == str(own)
    with pytest.raises(FileNotFoundError, match='dds_profile'):
        launch_module.dds_environment(REPO, str(tmp_path / 'missing.xml'))
    source = (REPO / 'launch' / 'fusion.launch.py').read_text()
    assert source.count('additional_env=env') == 2                  # both nodes


def test_the_shipped_dds_profile_has_a_16_mib_shared_memory_segment():
    import xml.etree.ElementTree as ET
    ns = {'f': 'http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles'}
    root = ET.parse(REPO / 'config' / 'fastdds.xml').getroot()
    shm = [t for t in root.iterfind('.//f:transport_descriptor', ns) if t.findtext('f:type', namespaces=ns) == 'SHM']
    assert len(shm) == 1 and int(shm[0].findtext('f:segment_size', namespaces=ns)) == 16 * 1024 * 1024
    participant = root.find('f:participant', ns)
    assert participant.get('is_default_profile') == 'true'
    assert participant.findtext('.//f:useBuiltinTransports', namespaces=ns) == 'false'
