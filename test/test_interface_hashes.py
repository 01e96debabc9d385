"""
The message texts of ``messages/definitions.py`` hash-equal upstream (RIHS01), in rosbags and in the built interfaces.

Upstream hashes, recorded here:

- vision_msgs 4.x and audio_common_msgs (ros2 branch): the hashes rosidl generated for the
  upstream packages (``<type>__get_type_hash`` in generated ``*__description.c`` files of
  public colcon builds of those packages, found with a code search);
- hri_msgs 2.0.0 (ros4hri/hri_msgs tag 2.0.0, 5d52c81) and naoqi_bridge_msgs 2.1.0
  (ros-naoqi/naoqi_bridge_msgs2, f345491): computed from the upstream ``.msg`` files at
  those commits (no generated file of theirs was found to copy a hash from).

Without ROS the rosbags hashes of our texts are checked; where ``tools/ros_wheels.sh``
(or a ROS 2 installation) provides the interfaces, the type descriptions rosidl
generated (``share/<pkg>/msg/<Name>.json``) are checked too.  hri_msgs 2.1 added
``LiveSpeech.locale`` beside ``language``; the node fills ``language``, which both have.
"""
from __future__ import annotations

import json
from pathlib import Path

from centralnet_ros.messages.definitions import MSG_DEFINITIONS
from centralnet_ros.replay.interface_packages import interface_packages, write_interface_packages
from centralnet_ros.replay.msgdefs import make_typestore
import pytest

UPSTREAM_RIHS01 = {
    'audio_common_msgs/msg/AudioData': 'a9742fba1567e649bbdba6ae034a72c7ef129b97c7a4da50fd2f3e1bfd8ffa86',
    'audio_common_msgs/msg/AudioDataStamped': '6fc679d5a868ed68e4d301f1ef42abecc86140afb57d255656ff2d9e476ea9e3',
    'audio_common_msgs/msg/AudioInfo': 'b3494d204e513d2cceefae1888e5be3da7c8c8ca31eb277f7b5b62f364bcb1fb',
    'vision_msgs/msg/ObjectHypothesis': '51da43cec11c01957a64d1e05a24acd18aae7745ec30b74348ad5f6d634f7f90',
    'vision_msgs/msg/Classification': 'f74db28d0eaef3afb78f48bf2161cd709a1383a0309d3454383b25be11345143',
    'vision_msgs/msg/VisionClass': '1e4a11f0fed50b5623cb8ff26ca0e37952a48a9c074d16f804b44e9164c2037a',
    'vision_msgs/msg/LabelInfo': '3d37df4015cdf660cc851c51897f2acd957e1ca6205ba0a99aebffb9406b0783',
    'vision_msgs/msg/VisionInfo': '95d3116a17484ad91c9a2686e1d54890bbfc3ff6c6a2de137738c4950d45d284',
    'naoqi_bridge_msgs/msg/AudioBuffer': '74b1fa80d19a087b210cef045e054a0bfc34bc8d5621d3500bf6f343696b51cf',
    'hri_msgs/msg/NormalizedPointOfInterest2D': 'cc1d2f720c82afeb850ff1dbf66f41ecb7caf19f842987f1247e66160cf03953',
    'hri_msgs/msg/NormalizedRegionOfInterest2D': '2e50c93f1ca166ee77af9a5424dc951ae4e452b740162a7f83c082d917dcaff5',
    'hri_msgs/msg/Skeleton2D': '1cb61f012db6ca43c48fa0097ccab9a00108ea39323c13f01bb983323c1e3420',
    'hri_msgs/msg/Expression': '411b88e0604397d44775d8ec6a4bc69398fb0dfbfe864c33a40fa99ee85f1b00',
    'hri_msgs/msg/LiveSpeech': 'de61fbbcc7ef8727328315f4600d9e7cdab1b4e71e718f45e7a1eeb2d5d58080',
    'hri_msgs/msg/IdsList': '7e0812d1ac945c98fd3e393568d581ad0ab567f37b24eff633eab778c1bfe62d',
}
"""Upstream RIHS01 hash (hex) per type the project uses (see the module docstring for where each comes from)."""


OWN_TYPES = ('centralnet_msgs/msg/Event',)
"""This project's own interfaces: no upstream; the built type hash must equal the one rosbags computes."""


def test_every_definition_has_an_upstream_hash():
    assert set(MSG_DEFINITIONS) == set(UPSTREAM_RIHS01) | set(OWN_TYPES)


@pytest.mark.parametrize('msgtype', sorted(UPSTREAM_RIHS01))
def test_rosbags_hash_of_our_text_equals_upstream(msgtype):
    assert make_typestore('jazzy').hash_rihs01(msgtype) == f'RIHS01_{UPSTREAM_RIHS01[msgtype]}'


def test_generated_packages_carry_every_definition_verbatim(tmp_path):
    folders = write_interface_packages(tmp_path)
    assert sorted(f.name for f in folders) == sorted(interface_packages())
    for msgtype, text in MSG_DEFINITIONS.items():
        package, _, name = msgtype.split('/')
        assert (tmp_path / package / 'msg' / f'{name}.msg').read_text() == text
    cmake = (tmp_path / 'hri_msgs' / 'CMakeLists.txt').read_text()
    assert 'rosidl_generate_interfaces' in cmake and 'DEPENDENCIES std_msgs' in cmake
    assert interface_packages()['vision_msgs']['depends'] == ['std_msgs']


def _share(package: str) -> Path:
    """Return ``share/<package>``: from the ament index of a sourced ROS 2, else beside the wheels (sys.prefix)."""
    import importlib.util
    import os
    import sys
    if importlib.util.find_spec(f'{package}') is None:
        pytest.skip(f'{package} is not installed (tools/ros_wheels.sh builds it)')
    if os.environ.get('AMENT_PREFIX_PATH'):
        from ament_index_python.packages import get_package_share_directory, PackageNotFoundError
        try:
            return Path(get_package_share_directory(package))
        except PackageNotFoundError:
            pass
    return Path(sys.prefix) / 'share' / package


@pytest.mark.parametrize('msgtype', sorted(UPSTREAM_RIHS01))
def test_built_interface_hash_equals_upstream(msgtype):
    """The type description rosidl generated for the installed interface carries the upstream hash."""
    package, _, name = msgtype.split('/')
    path = _share(package) / 'msg' / f'{name}.json'
    assert path.is_file(), f'{path} missing: not built by rosidl >= Iron?'
    hashes = {h['type_name']: h['hash_string'] for h in json.loads(path.read_text())['type_hashes']}
    assert hashes[msgtype] == f'RIHS01_{UPSTREAM_RIHS01[msgtype]}'


@pytest.mark.parametrize('msgtype', OWN_TYPES)
def test_built_own_interface_hash_equals_rosbags(msgtype):
    """Our own messages: rosidl (built by tools/ros_wheels.sh) and rosbags hash the same text the same way."""
    package, _, name = msgtype.split('/')
    path = _share(package) / 'msg' / f'{name}.json'
    assert path.is_file(), f'{path} missing: not built by rosidl >= Iron?'
    hashes = {h['type_name']: h['hash_string'] for h in json.loads(path.read_text())['type_hashes']}
    assert hashes[msgtype] == make_typestore('jazzy').hash_rihs01(msgtype)


def test_rclpy_live_speech_takes_language():
    """Defect 1: hri_msgs has no ``locale`` in 2.0.0; with field checks every speech result failed to publish."""
    pytest.importorskip('rclpy')
    hri = pytest.importorskip('hri_msgs.msg')
    from centralnet_ros import messages as M
    from centralnet_ros.ros.interfaces import ros_message
    msg = M.build_live_speech(ros_message, final='seven', confidence=0.7, stamp_ns=5, language='en-GB')
    assert isinstance(msg, hri.LiveSpeech) and msg.language == 'en-GB' and msg.final == 'seven'
