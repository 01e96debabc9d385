"""
Real ROS 2 for the node tests: nodes in their own processes, driven from an rclpy node in the test.

Importing this module skips the importing test module where rclpy or the interface
packages are missing (``.ci/run`` fails before the tests in that case, so CI never skips).
Every test run gets its own ``ROS_DOMAIN_ID`` (from the pid), localhost discovery and
``ROS_PYTHON_CHECK_FIELDS=1``, for this process and the nodes it starts.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
import signal
import subprocess
import sys
import time
from typing import Any, Callable

import numpy as np
import pytest

try:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    import vision_msgs.msg  # noqa: F401 - built by tools/ros_wheels.sh
except ImportError as exc:  # pragma: no cover - CI installs ROS 2 (tools/ros_wheels.sh)
    pytest.skip(f'ROS 2 is not installed ({exc}); run tools/ros_wheels.sh', allow_module_level=True)

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / 'models'
DOMAIN_ID = 10 + os.getpid() % 200
ROS_ENV = {'ROS_DOMAIN_ID': str(DOMAIN_ID), 'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST',
           'ROS_PYTHON_CHECK_FIELDS': '1', 'RCUTILS_COLORIZED_OUTPUT': '0', 'PYTHONUNBUFFERED': '1'}
os.environ.update(ROS_ENV)


def node_env(**extra: str) -> dict[str, str]:
    """Environment of a node process: this one, the test's ROS settings, this checkout first on PYTHONPATH."""
    env = dict(os.environ)
    env.update(ROS_ENV)
    env['PYTHONPATH'] = os.pathsep.join(p for p in (str(REPO), env.get('PYTHONPATH', '')) if p)
    env.update(extra)
    return env


class NodeProcess:
    """A node started as ``python -m centralnet_ros.ros.<module>``; its output goes to a file."""

    def __init__(self, module: str, args: list[str], log: Path, env: dict | None = None) -> None:
        self.log = log
        self._out = open(log, 'wb')
        self.proc = subprocess.Popen([sys.executable, '-m', f'centralnet_ros.ros.{module}', *args],
                                     stdout=self._out, stderr=subprocess.STDOUT, env=env or node_env(),
                                     cwd=REPO)

    def output(self) -> str:
        if not self._out.closed:
            self._out.flush()
        return self.log.read_text(errors='replace')

    def interrupt(self, timeout: float = 30.0) -> int:
        """Send SIGINT (Ctrl-C) and wait for the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        return self.wait(timeout)

    def wait(self, timeout: float = 30.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f'the node did not exit within {timeout} s:\n{self.output()[-3000:]}') from None
        finally:
            self._out.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._out.close()


class Tester:
    """The test's own rclpy node: service calls, publishers, and waiting for messages."""

    def __init__(self, name: str = 'tester') -> None:
        if not rclpy.ok():
            rclpy.init()
        self.node = rclpy.create_node(name)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=min(0.05, max(end - time.monotonic(), 0.0)))

    def wait_for(self, condition: Callable[[], Any], timeout: float, what: str = 'condition',
                 process: Any = None) -> Any:
        """Spin until ``condition()`` is truthy; on timeout the error carries the tail of ``process``'s log."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            value = condition()
            if value:
                return value
            self.executor.spin_once(timeout_sec=0.05)
        log = '' if process is None else '\n--- the node printed (tail):\n' + process.output()[-4000:]
        raise AssertionError(f'timed out after {timeout} s waiting for {what}{log}')

    def topics_of(self, node_name: str, namespace: str) -> tuple[set[str], set[str]] | None:
        """
        Return ``(subscribed, published)`` topics of a remote node as this tester's graph sees it.

        None while the node is not discovered yet: rclpy raises for a node its graph has not
        seen, which a node answering its services can still be for a moment.
        """
        from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
        try:
            subs = self.node.get_subscriber_names_and_types_by_node(node_name, namespace)
            pubs = self.node.get_publisher_names_and_types_by_node(node_name, namespace)
        except _rclpy.NodeNameNonExistentError:
            return None
        return {t for t, _ in subs}, {t for t, _ in pubs}

    def call(self, srv_type: Any, name: str, request: Any, timeout: float = 30.0, *,
             resend_s: float | None = None) -> Any:
        """
        Call service ``name``; ``resend_s``: send the request again when no answer came within that time.

        Only for idempotent requests (GetState): a request sent while DDS still knows the server of a
        node that just exited under the same name, before the new server's reader matched, is lost.
        """
        client = self.node.create_client(srv_type, name)
        try:
            end = time.monotonic() + timeout
            if not client.wait_for_service(timeout_sec=timeout):
                raise AssertionError(f'service {name} not available after {timeout} s')
            while True:
                future = client.call_async(request)
                left = end - time.monotonic()
                self.executor.spin_until_future_complete(future, timeout_sec=max(0.0, min(
                    left, resend_s if resend_s else left)))
                if future.done():
                    return future.result()
                if time.monotonic() >= end:
                    raise AssertionError(f'no answer from {name} within {timeout} s')
                client.remove_pending_request(future)
        finally:
            self.node.destroy_client(client)

    def subscribe(self, msg_type: Any, topic: str, qos: Any) -> list:
        received: list = []
        self.node.create_subscription(msg_type, topic, received.append, qos)
        return received

    # lifecycle -------------------------------------------------------------------------
    def state(self, node: str, timeout: float = 30.0) -> str:
        from lifecycle_msgs.srv import GetState
        return self.call(GetState, f'{node}/get_state', GetState.Request(), timeout,
                         resend_s=3.0).current_state.label

    def transition(self, node: str, label: str, timeout: float = 120.0) -> bool:
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState
        ids = {'configure': Transition.TRANSITION_CONFIGURE, 'activate': Transition.TRANSITION_ACTIVATE,
               'deactivate': Transition.TRANSITION_DEACTIVATE, 'cleanup': Transition.TRANSITION_CLEANUP,
               'shutdown': Transition.TRANSITION_INACTIVE_SHUTDOWN}
        request = ChangeState.Request(transition=Transition(id=ids[label]))
        return self.call(ChangeState, f'{node}/change_state', request, timeout).success

    # parameters ------------------------------------------------------------------------
    def set_parameter(self, node: str, name: str, value: Any) -> Any:
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter
        request = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
        return self.call(SetParameters, f'{node}/set_parameters', request).results[0]

    def get_parameter(self, node: str, name: str) -> Any:
        from rcl_interfaces.srv import GetParameters
        from rclpy.parameter import parameter_value_to_python
        value = self.call(GetParameters, f'{node}/get_parameters', GetParameters.Request(names=[name])).values[0]
        return parameter_value_to_python(value)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


def sensor_qos(depth: int = 5) -> Any:
    """Best effort, volatile: what camera and audio drivers publish with."""
    from rclpy.qos import qos_profile_sensor_data, QoSProfile
    return QoSProfile(depth=depth, reliability=qos_profile_sensor_data.reliability,
                      durability=qos_profile_sensor_data.durability, history=qos_profile_sensor_data.history)


def latched_qos() -> Any:
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    return QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def stamp_ns(header: Any) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def joints(k: int) -> np.ndarray:
    """Return a standing 20-joint Kinect skeleton (metres) waving its right hand, frame ``k``."""
    j = np.zeros((20, 3), np.float32)
    j[:, 1] = np.linspace(0.0, 1.0, 20)
    j[11] = [0.3 * math.sin(0.4 * k), 0.8, 0.1]
    j[:, 2] += 2.0
    return j
