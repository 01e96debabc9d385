"""
Launch centralnet_ros: fusion_node, and microphone_node if asked, brought to active.

    ros2 launch centralnet_ros fusion.launch.py robot:=pepper
    ros2 launch centralnet_ros fusion.launch.py robot:=workstation start_microphone:=true
        image_topic:=image_raw device:=cuda tasks:=speech,emotion      (one line)
    ros2 launch centralnet_ros fusion.launch.py --show-args

Arguments (``ARGUMENTS`` below holds the defaults and descriptions):

config            params file; '' is share/centralnet_ros/config/fusion.yaml
robot             '' or pepper, nao, workstation (config/robots/<robot>.yaml), or the path of
                  a params file laid over config
namespace         namespace of both nodes (their relative topics resolve in it)
device            '' keeps the config; cpu, cuda or cuda:N
tasks             '' keeps the config; a comma-separated subset of gesture,speech,emotion
start_microphone  true starts microphone_node publishing on audio_topic / audio_info_topic
autostart         true configures and activates the lifecycle nodes; false leaves them
                  unconfigured for a lifecycle manager (``ros2 lifecycle set``)
use_sim_time      true when playing a rosbag with ``ros2 bag play --clock``
log_level         debug, info, warn, error or fatal
image_topic       RGB images; default camera/front/image_raw (naoqi_driver).  RealSense:
                  camera/camera/color/image_raw (realsense2_camera >= 4.54; camera/color/image_raw
                  before).  With image_transport compressed, <image_topic>/compressed is read.
depth_topic       depth images; default camera/depth/image_raw (naoqi_driver).  RealSense:
                  camera/camera/aligned_depth_to_color/image_raw (align_depth.enable:=true)
audio_topic       audio (AudioDataStamped, or naoqi_driver's AudioBuffer; see config/robots)
audio_info_topic  audio_info (AudioInfo, transient local)
skeleton_topic    skeletons (PoseArray or hri_msgs/Skeleton2D, see skeleton_type)
dds_profile       Fast DDS XML profile of the nodes; '' is share/centralnet_ros/config/fastdds.xml
                  (a 16 MiB shared-memory segment, so 640x480 rgb8 frames are not lost),
                  'none' keeps the environment's FASTRTPS_DEFAULT_PROFILES_FILE (or Fast DDS' defaults)

The lifecycle nodes are started with ``--managed`` (they wait to be driven) and brought up by
launch events: configure once started, activate when configuring reaches inactive (the same
on Humble and Jazzy; Jazzy's ``autostart=True`` is not used so that Humble works).

This file parses without ROS installed: launch imports live inside the functions, and the
pure helpers (``parse_bool``, ``parse_tasks``, ``param_files``, ``remappings``,
``overrides``) are tested on their own.
"""
from __future__ import annotations

from pathlib import Path

PACKAGE = 'centralnet_ros'
ROBOTS = ('pepper', 'nao', 'workstation')

# (name, default, description); every argument is declared from this table.
ARGUMENTS = (
    ('config', '', "Params file; '' is share/centralnet_ros/config/fusion.yaml."),
    ('robot', '', "'' or pepper, nao, workstation (config/robots/<robot>.yaml), or a params "
                  'file path, laid over config.'),
    ('namespace', '', 'Namespace of the nodes and their relative topics.'),
    ('device', '', "Inference device: '' keeps the config; cpu, cuda or cuda:N."),
    ('tasks', '', "'' keeps the config; comma-separated subset of gesture,speech,emotion."),
    ('start_microphone', 'false', 'Start microphone_node (PortAudio capture) on audio_topic.'),
    ('autostart', 'true', 'Configure and activate the lifecycle nodes; false leaves them '
                          'unconfigured for a lifecycle manager.'),
    ('use_sim_time', 'false', 'Use /clock (rosbag playback with --clock).'),
    ('log_level', 'info', 'Logging level of the nodes.'),
    ('image_topic', 'camera/front/image_raw', 'RGB images (naoqi_driver default; RealSense: '
                                              'camera/camera/color/image_raw).'),
    ('depth_topic', 'camera/depth/image_raw', 'Depth images (naoqi_driver default; RealSense: '
                                              'camera/camera/aligned_depth_to_color/image_raw).'),
    ('audio_topic', 'audio', 'Audio chunks (AudioDataStamped or naoqi AudioBuffer).'),
    ('audio_info_topic', 'audio_info', 'AudioInfo for audio_topic (transient local).'),
    ('skeleton_topic', 'skeleton', 'Skeletons (PoseArray or hri_msgs/Skeleton2D).'),
    ('dds_profile', '', "Fast DDS XML profile; '' is share/centralnet_ros/config/fastdds.xml, "
                        "'none' keeps the environment's."),
)

CHOICES = {
    'start_microphone': ('true', 'false'),
    'autostart': ('true', 'false'),
    'use_sim_time': ('true', 'false'),
    'log_level': ('debug', 'info', 'warn', 'error', 'fatal'),
}


def parse_bool(name: str, text: str) -> bool:
    """Parse true/false (or 1/0, yes/no, on/off); anything else is an error naming ``name``."""
    value = text.strip().lower()
    if value in ('true', '1', 'yes', 'on'):
        return True
    if value in ('false', '0', 'no', 'off'):
        return False
    raise ValueError(f'launch argument {name}:={text!r}: expected true or false')


def parse_tasks(text: str, known: tuple[str, ...] | None = None) -> list[str] | None:
    """Parse 'speech, emotion' -> ['speech', 'emotion']; '' -> None (keep the config); ``known``: node_params.TASKS."""
    if known is None:
        from centralnet_ros.node_params import TASKS as known
    items = [t for t in text.replace(',', ' ').split() if t]
    if not items:
        return None
    unknown = [t for t in items if t not in known]
    if unknown or len(set(items)) != len(items):
        raise ValueError(f'launch argument tasks:={text!r}: expected distinct names from '
                         f'{",".join(known)}')
    return items


def param_files(share: Path, config: str, robot: str) -> list[Path]:
    """Return the params files in the order they apply: the base config, then the overlay."""
    base = Path(config).expanduser() if config else share / 'config' / 'fusion.yaml'
    files = [base]
    if robot in ROBOTS:
        files.append(share / 'config' / 'robots' / f'{robot}.yaml')
    elif robot:
        path = Path(robot).expanduser()
        if path.suffix not in ('.yaml', '.yml'):
            raise ValueError(f'launch argument robot:={robot!r}: expected one of '
                             f'{", ".join(ROBOTS)} or the path of a .yaml params file')
        files.append(path)
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f'params file(s) not found: {", ".join(missing)}')
    return files


def remappings(image: str, depth: str, audio: str, audio_info: str,
               skeleton: str) -> list[tuple[str, str]]:
    """Map fusion_node's relative input names to the topics (compressed images follow image)."""
    return [('image', image), ('image/compressed', image.rstrip('/') + '/compressed'),
            ('depth', depth), ('audio', audio), ('audio_info', audio_info),
            ('skeleton', skeleton)]


def overrides(device: str, tasks: str, use_sim_time: bool) -> dict:
    """Return the parameters set by launch arguments (applied after the params files)."""
    out = {'use_sim_time': use_sim_time}
    if device:
        out['device'] = device
    chosen = parse_tasks(tasks)
    if chosen is not None:
        out['tasks'] = chosen
    return out


def dds_environment(share: Path, profile: str) -> dict[str, str]:
    """Return the environment that makes the nodes' Fast DDS read ``profile`` ('' the shipped one, 'none' none)."""
    if profile.strip().lower() == 'none':
        return {}
    path = Path(profile).expanduser() if profile else share / 'config' / 'fastdds.xml'
    if not path.is_file():
        raise FileNotFoundError(f'launch argument dds_profile:={profile!r}: {path} not found')
    # Fast DDS 2.x (Humble, Jazzy) reads the first name, 3.x the second
    return {'FASTRTPS_DEFAULT_PROFILES_FILE': str(path), 'FASTDDS_DEFAULT_PROFILES_FILE': str(path)}


def _validate(files: list[Path], fusion_overrides: dict) -> None:
    """Check the params files and overrides against centralnet_ros.node_params before starting."""
    from centralnet_ros import node_params

    node_params.validate_params_file(files[0], complete=False)
    for overlay in files[1:]:
        node_params.validate_params_file(overlay, complete=False)
    node_params.validate_parameters(node_params.FUSION_NODE, fusion_overrides, complete=False,
                                    where='fusion.launch.py arguments')


def _bring_up(node) -> list:
    """Return [handler, node, configure event]: configure, then activate once inactive."""
    import launch.events
    from launch.actions import EmitEvent, RegisterEventHandler
    from launch_ros.event_handlers import OnStateTransition
    from launch_ros.events.lifecycle import ChangeState
    from lifecycle_msgs.msg import Transition

    matcher = launch.events.matches_action(node)
    activate = RegisterEventHandler(OnStateTransition(
        target_lifecycle_node=node, start_state='configuring', goal_state='inactive',
        entities=[EmitEvent(event=ChangeState(lifecycle_node_matcher=matcher,
                                              transition_id=Transition.TRANSITION_ACTIVATE))]))
    configure = EmitEvent(event=ChangeState(lifecycle_node_matcher=matcher,
                                            transition_id=Transition.TRANSITION_CONFIGURE))
    return [activate, node, configure]


def _launch_setup(context, *args, **kwargs) -> list:
    """Resolve the arguments to strings, then build the nodes (an OpaqueFunction)."""
    from ament_index_python.packages import get_package_share_directory
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import LifecycleNode

    arg = {name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGUMENTS}
    share = Path(get_package_share_directory(PACKAGE))
    files = param_files(share, arg['config'], arg['robot'])
    sim_time = parse_bool('use_sim_time', arg['use_sim_time'])
    fusion_overrides = overrides(arg['device'], arg['tasks'], sim_time)
    _validate(files, fusion_overrides)
    node_args = ['--managed', '--ros-args', '--log-level', arg['log_level']]
    env = dds_environment(share, arg['dds_profile'])
    autostart = parse_bool('autostart', arg['autostart'])

    fusion = LifecycleNode(
        package=PACKAGE, executable='fusion_node', name='fusion_node',
        namespace=arg['namespace'], output='screen', emulate_tty=True, additional_env=env,
        parameters=[str(f) for f in files] + [fusion_overrides],
        remappings=remappings(arg['image_topic'], arg['depth_topic'], arg['audio_topic'],
                              arg['audio_info_topic'], arg['skeleton_topic']),
        arguments=node_args)
    nodes = [fusion]
    if parse_bool('start_microphone', arg['start_microphone']):
        nodes.append(LifecycleNode(
            package=PACKAGE, executable='microphone_node', name='microphone_node',
            namespace=arg['namespace'], output='screen', emulate_tty=True, additional_env=env,
            parameters=[str(f) for f in files] + [{'use_sim_time': sim_time}],
            remappings=[('audio', arg['audio_topic']), ('audio_info', arg['audio_info_topic'])],
            arguments=node_args))
    actions: list = []
    for node in nodes:
        actions += _bring_up(node) if autostart else [node]
    return actions


def generate_launch_description():
    """Declare every argument of ``ARGUMENTS``, then build the nodes once they are resolved."""
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    declared = []
    for name, default, description in ARGUMENTS:
        extra = {'choices': list(CHOICES[name])} if name in CHOICES else {}
        declared.append(DeclareLaunchArgument(name, default_value=default,
                                              description=description, **extra))
    return LaunchDescription(declared + [OpaqueFunction(function=_launch_setup)])
