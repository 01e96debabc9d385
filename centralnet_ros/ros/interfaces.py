"""
ROS interfaces of the fusion node: message classes by type name, topics, and message layouts.

* :func:`message_class` imports ``pkg/msg/Name`` (an ImportError names the missing
  package and how to install it); :func:`ros_message` is the factory handed to the
  :mod:`centralnet_ros.messages` builders;
* :data:`INPUT_MSG_TYPES` (from the runtime: input kind -> message type),
  :data:`HRI_OUTPUTS` (task -> ROS4HRI message) and :func:`input_topic`;
* :func:`fusion_weights_layout`: CentralNet's fusion weights as a labelled
  std_msgs/Float32MultiArray.

Importing this module does not import rclpy (only the message packages, when asked).
"""
from __future__ import annotations

import functools
import importlib
from typing import Any, Mapping

from centralnet_ros import messages as M
from centralnet_ros.runtime.buffers import AUDIO_INFO_TYPE, INPUT_MSG_TYPES

__all__ = ['INPUT_MSG_TYPES', 'AUDIO_INFO_TYPE', 'HRI_OUTPUTS', 'EVENT_TYPE', 'input_topic', 'message_class',
           'ros_message', 'fusion_weights_layout', 'wait_delivered', 'DELIVERY_TIMEOUT_S']

HRI_OUTPUTS = {'emotion': 'hri_msgs/msg/Expression', 'speech': 'hri_msgs/msg/LiveSpeech'}
"""Task -> the ROS4HRI message it is also published as when ``publish_hri`` is true."""

EVENT_TYPE = 'centralnet_msgs/msg/Event'
"""Every task's events (onset, peak, end, label, score) on ``~/<task>/events``: this project's own interface."""

DELIVERY_TIMEOUT_S = 2.0
"""How long deactivate waits for reliable subscribers to acknowledge the last decisions."""


def input_topic(name: str, kind: str) -> str:
    """Return the relative topic of input ``name`` (``image/compressed`` for compressed images)."""
    return f'{name}/compressed' if kind == 'compressed_image' else name


@functools.lru_cache(maxsize=None)
def message_class(msgtype: str) -> type:
    """Return the rclpy class of ``'pkg/msg/Name'``; ImportError names the missing package."""
    package, _, name = msgtype.split('/')
    try:
        module = importlib.import_module(f'{package}.msg')
    except ImportError as exc:
        raise ImportError(f'{msgtype}: the ROS package {package} is not installed '
                          f'(apt install ros-$ROS_DISTRO-{package.replace("_", "-")})') from exc
    try:
        return getattr(module, name)
    except AttributeError:
        raise ImportError(f'{msgtype}: {package} has no message {name} (an older {package}?)') from None


def ros_message(msgtype: str, **fields: Any) -> Any:
    """Make an rclpy message: the factory handed to the :mod:`centralnet_ros.messages` builders."""
    return message_class(msgtype)(**M.sequences_to_python(fields))


def fusion_weights_layout(weights: Mapping[str, Any]) -> tuple[list[tuple[str, int, int]], list[float]]:
    """
    Lay CentralNet's fusion weights out as a labelled 3-D array.

    ``weights`` is :meth:`CentralNet.fusion_weights` (``{'modalities': [...],
    'levels': [{'level', 'raw', 'share'}, ...]}``).  Returns ``(dims, data)``:
    ``dims`` are ``(label, size, stride)`` for std_msgs/MultiArrayDimension, row-major,
    with the index names in the label after ``=``::

        level=1,2,output          one row per fusion level, the output weights last
        source=<modality...>,central
        value=raw,share           the learned weight and its share of the level (|w| / sum |w|)

    The first level has no central input: its ``central`` entries are 0.
    """
    sources = [str(m) for m in weights['modalities']] + ['central']
    levels = list(weights['levels'])
    values = ('raw', 'share')
    data: list[float] = []
    for level in levels:
        for source in sources:
            data += [float(level['raw'].get(source, 0.0)), float(level['share'].get(source, 0.0))]
    n_level, n_source, n_value = len(levels), len(sources), len(values)
    dims = [('level=' + ','.join(str(level['level']) for level in levels), n_level, n_level * n_source * n_value),
            ('source=' + ','.join(sources), n_source, n_source * n_value),
            ('value=' + ','.join(values), n_value, n_value)]
    return dims, data


def wait_delivered(publishers: list, timeout_s: float) -> bool:
    """
    Wait (``timeout_s`` in all) until every reliable subscriber acknowledged what ``publishers`` sent.

    Called before publishers are destroyed (deactivate): a reliable sample still
    unacknowledged when its writer goes away is never repaired, so the last
    decision of a stream could be lost exactly when it matters. Returns whether
    everything was acknowledged in time (best-effort publishers count as delivered).
    """
    import time

    from rclpy.duration import Duration

    deadline = time.monotonic() + timeout_s
    delivered = True
    for publisher in publishers:
        left = max(0.0, deadline - time.monotonic())
        try:
            delivered &= bool(publisher.wait_for_all_acked(Duration(nanoseconds=int(left * 1e9))))
        except Exception:  # noqa: BLE001  (a publisher already invalid has nothing left to deliver)
            continue
    return delivered
