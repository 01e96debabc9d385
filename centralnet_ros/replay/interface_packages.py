"""
Write ROS 2 interface packages (package.xml, CMakeLists.txt, msg/*.msg) from the message texts.

The message texts are kept in one place, :data:`centralnet_ros.messages.definitions.MSG_DEFINITIONS`,
where ``rosbags`` reads them too; ``tools/ros_wheels.sh`` builds the packages written here with
colcon + ``rosidl_generate_interfaces`` for machines without vision_msgs,
audio_common_msgs, hri_msgs and naoqi_bridge_msgs, so rosbags, the built interfaces
and the nodes agree by construction (``test/test_interface_hashes.py`` checks the RIHS01
type hashes against upstream)::

    python3 -m centralnet_ros.replay.interface_packages OUT_DIR     # prints the package names

Only the messages the project uses are written (a subset of each upstream package); a
package is named and versioned after the upstream release its texts come from.
"""
from __future__ import annotations

import argparse
from pathlib import Path
import re
import sys

from ..messages.definitions import MSG_DEFINITIONS

__all__ = ['PACKAGE_VERSIONS', 'interface_packages', 'write_interface_packages', 'main']

PACKAGE_VERSIONS = {'audio_common_msgs': '0.3.0', 'naoqi_bridge_msgs': '2.1.0', 'vision_msgs': '4.1.1',
                    'hri_msgs': '2.0.0', 'centralnet_msgs': '0.1.0'}
"""Upstream release each package's message texts follow (``package.xml`` version)."""

_BUILTIN = {'bool', 'byte', 'char', 'float32', 'float64', 'int8', 'uint8', 'int16', 'uint16', 'int32', 'uint32',
            'int64', 'uint64', 'string', 'wstring'}


def _field_packages(text: str, own: str) -> set[str]:
    """Return the packages whose types the fields of a ``.msg`` text use (other than ``own``)."""
    out = set()
    for line in text.splitlines():
        line = line.split('#', 1)[0].strip()
        if not line or '=' in line.split()[-1] or '=' in line:
            continue                                   # blank, comment or constant
        base = re.sub(r'\[.*\]$', '', line.split()[0])
        base = re.sub(r'<=\d+$', '', base)
        if base in _BUILTIN or '/' not in base:
            continue
        package = base.split('/', 1)[0]
        if package != own:
            out.add(package)
    return out


def interface_packages() -> dict[str, dict]:
    """Return ``package -> {'messages': {Name: text}, 'depends': [packages]}`` from MSG_DEFINITIONS."""
    packages: dict[str, dict] = {}
    for msgtype, text in MSG_DEFINITIONS.items():
        package, kind, name = msgtype.split('/')
        if kind != 'msg':
            raise ValueError(f'{msgtype}: only messages are supported')
        entry = packages.setdefault(package, {'messages': {}, 'depends': set()})
        entry['messages'][name] = text
        entry['depends'] |= _field_packages(text, package)
    for entry in packages.values():
        entry['depends'] = sorted(entry['depends'])
    return packages


def _package_xml(name: str, depends: list[str]) -> str:
    deps = ''.join(f'  <depend>{d}</depend>\n' for d in depends)
    return f"""<?xml version="1.0"?>
<?xml-model href="http://download.ros.org/schema/package_format3.xsd" schematypens="http://www.w3.org/2001/XMLSchema"?>
<package format="3">
  <name>{name}</name>
  <version>{PACKAGE_VERSIONS.get(name, '0.0.0')}</version>
  <description>The {name} messages centralnet_ros uses, generated from messages/definitions.py</description>
  <maintainer email="centralnet_ros@example.org">centralnet_ros</maintainer>
  <license>Apache License 2.0</license>
  <buildtool_depend>ament_cmake</buildtool_depend>
  <buildtool_depend>rosidl_default_generators</buildtool_depend>
{deps}  <exec_depend>rosidl_default_runtime</exec_depend>
  <member_of_group>rosidl_interface_packages</member_of_group>
  <export>
    <build_type>ament_cmake</build_type>
  </export>
</package>
"""


def _cmakelists(name: str, messages: list[str], depends: list[str]) -> str:
    finds = ''.join(f'find_package({d} REQUIRED)\n' for d in depends)
    files = '\n'.join(f'  "msg/{m}.msg"' for m in messages)
    dep = f'\n  DEPENDENCIES {" ".join(depends)}' if depends else ''
    return f"""cmake_minimum_required(VERSION 3.8)
project({name})
find_package(ament_cmake REQUIRED)
find_package(rosidl_default_generators REQUIRED)
{finds}rosidl_generate_interfaces(${{PROJECT_NAME}}
{files}{dep}
)
ament_export_dependencies(rosidl_default_runtime)
ament_package()
"""


def write_interface_packages(root: str | Path, packages: list[str] | None = None) -> list[Path]:
    """Write one folder per interface package under ``root``; return the folders (unchanged files are not rewritten)."""
    root = Path(root)
    everything = interface_packages()
    unknown = sorted(set(packages or []) - set(everything))
    if unknown:
        raise ValueError(f'no message definitions for {unknown}; known packages: {sorted(everything)}')
    out = []
    for name in packages or sorted(everything):
        entry = everything[name]
        folder = root / name
        files = {folder / 'package.xml': _package_xml(name, entry['depends']),
                 folder / 'CMakeLists.txt': _cmakelists(name, sorted(entry['messages']), entry['depends'])}
        files.update({folder / 'msg' / f'{m}.msg': text for m, text in entry['messages'].items()})
        for path, text in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.is_file() or path.read_text() != text:
                path.write_text(text)
        out.append(folder)
    return out


def main(argv: list[str] | None = None) -> int:
    """``python3 -m centralnet_ros.replay.interface_packages OUT_DIR [PACKAGE ...]``."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('out', type=Path, help='folder to write the packages into')
    parser.add_argument('packages', nargs='*', help='packages to write (default: all)')
    args = parser.parse_args(argv)
    try:
        folders = write_interface_packages(args.out, args.packages or None)
    except ValueError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    print(' '.join(f.name for f in folders))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
