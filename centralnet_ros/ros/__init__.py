"""
ROS 2 glue: the only folder that imports rclpy (Humble and Jazzy).

Importing this package does not import rclpy: the helpers below import it when
called, so tools can list ``centralnet_ros.ros`` without a ROS installation.

Shared by the nodes:

* :func:`declare_parameters` / :func:`read_parameters` declare and read the
  parameters of :mod:`centralnet_ros.node_params` (the single source of truth)
  with descriptors, ranges and read-only flags, and validate every set,
  including the overrides from params files at declaration time.
* :func:`input_qos` / :func:`latched_qos` / :func:`output_qos`: the QoS
  profiles in :data:`centralnet_ros.node_params.TOPICS`.
* :func:`run_lifecycle_node`: ``main()`` of a lifecycle node.  Without
  ``--managed`` the node configures and activates itself (``ros2 run``); with
  it, it waits for a lifecycle manager or the launch file's events.  Ctrl-C
  stops it cleanly (exit 0); a bad parameter override exits 2 with one line.
* :func:`logged_transition`: transition callbacks log the cause of an exception
  (rclpy swallows it).
"""
from __future__ import annotations

import functools
import signal
import sys
import threading
import traceback
from typing import Any, Callable

from centralnet_ros import node_params

_ROS_TYPES = {'bool': 'PARAMETER_BOOL', 'integer': 'PARAMETER_INTEGER',
              'double': 'PARAMETER_DOUBLE', 'string': 'PARAMETER_STRING',
              'string_array': 'PARAMETER_STRING_ARRAY'}


def declare_parameters(node: Any, node_name: str) -> None:
    """
    Declare every parameter of ``node_name`` on ``node`` and validate all later sets.

    The validation callback is added before declaring, so a bad value in a
    params file fails at declaration with node_params' message.  Ranges are
    also in the descriptors (``ros2 param describe`` shows them); choices and
    patterns are in ``additional_constraints`` and enforced by the callback.
    """
    from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                    ParameterType, SetParametersResult)

    specs = {s.name: s for s in node_params.node_parameters(node_name)}

    def validate(parameters: list) -> SetParametersResult:
        for parameter in parameters:
            spec = specs.get(parameter.name)
            if spec is None:
                continue  # use_sim_time, qos_overrides.*: rclpy's own
            value = list(parameter.value) if spec.value_type == 'string_array' else parameter.value
            problems = spec.check(value)
            if problems:
                return SetParametersResult(successful=False, reason='; '.join(problems))
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(validate)
    for spec in specs.values():
        descriptor = ParameterDescriptor(
            name=spec.name, type=getattr(ParameterType, _ROS_TYPES[spec.value_type]),
            description=spec.description, additional_constraints=spec.constraints_text(),
            read_only=not spec.dynamic)
        if spec.bounds is not None and spec.value_type == 'integer':
            descriptor.integer_range = [IntegerRange(
                from_value=int(spec.bounds[0]), to_value=int(spec.bounds[1]), step=1)]
        elif spec.bounds is not None and spec.value_type == 'double':
            descriptor.floating_point_range = [FloatingPointRange(
                from_value=float(spec.bounds[0]), to_value=float(spec.bounds[1]), step=0.0)]
        default = list(spec.default) if isinstance(spec.default, list) else spec.default
        node.declare_parameter(spec.name, default, descriptor)


def read_parameters(node: Any, node_name: str) -> dict[str, Any]:
    """``{name: value}`` of every declared parameter, checked against node_params."""
    values = {}
    for spec in node_params.node_parameters(node_name):
        value = node.get_parameter(spec.name).value
        values[spec.name] = list(value) if spec.value_type == 'string_array' else value
    return node_params.validate_parameters(node_name, values,
                                           where=node.get_fully_qualified_name())


def input_qos(reliability: str = 'best_effort', depth: int = 5) -> Any:
    """Sensor-data QoS (keep last ``depth``, volatile) with the given reliability."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    policies = {'best_effort': ReliabilityPolicy.BEST_EFFORT,
                'reliable': ReliabilityPolicy.RELIABLE}
    if reliability not in policies:
        raise ValueError(f'qos_reliability must be one of {sorted(policies)}, got {reliability!r}')
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(depth),
                      reliability=policies[reliability], durability=DurabilityPolicy.VOLATILE)


def latched_qos() -> Any:
    """Reliable, transient local, depth 1: late subscribers get the last message."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


def output_qos(depth: int = 10) -> Any:
    """Reliable, volatile: matches both reliable and best-effort subscribers."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)


def stamp_msg(nanoseconds: int) -> Any:
    """builtin_interfaces/Time for integer nanoseconds."""
    from builtin_interfaces.msg import Time

    sec, nanosec = divmod(int(nanoseconds), 1_000_000_000)
    return Time(sec=sec, nanosec=nanosec)


def logged_transition(method: Callable) -> Callable:
    """
    Wrap a lifecycle transition callback (``on_configure`` ...) so an exception is logged, not swallowed.

    rclpy turns an exception raised in a transition into ERROR without saying why; here
    the node logs the cause (type, message and traceback) and then returns ERROR itself.
    """
    transition = method.__name__.removeprefix('on_')

    @functools.wraps(method)
    def wrapper(self: Any, state: Any) -> Any:
        try:
            return method(self, state)
        except Exception as exc:  # noqa: BLE001 - logged here, ERROR returned like rclpy does
            from rclpy.lifecycle import TransitionCallbackReturn
            self.get_logger().error(f'{transition} failed: {type(exc).__name__}: {exc}\n'
                                    f'{traceback.format_exc().rstrip()}')
            return TransitionCallbackReturn.ERROR
    return wrapper


def run_lifecycle_node(factory: Callable[[], Any], args: list[str] | None = None, *, node_name: str = '') -> int:
    """
    Spin the lifecycle node ``factory()`` until SIGINT/SIGTERM or shutdown; returns the exit status.

    Non-ROS argument ``--managed``: do not configure/activate here (the launch
    file or a lifecycle manager drives the transitions).

    Shutdown is ours, not rclpy's: rclpy's own SIGINT handler invalidates the context
    while callbacks and the nodes' worker threads still publish (``RCLError``,
    "publisher's context is invalid").  Here a signal only asks the spin loop to stop;
    the node then releases its threads and publishers, and only then is the context shut
    down, so Ctrl-C exits 0 without a traceback.  A bad parameter override (wrong type,
    out of range) exits 2 with one line naming the parameter, the value and what is expected.

    Called as a program (``args`` None), the process ends right after the clean shutdown
    (exit handlers run, streams flushed, no module teardown): tearing down torch and ONNX
    Runtime took 4-15 s on a loaded machine, past launch's 5 s before it escalates to SIGTERM.
    """
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.utilities import remove_ros_args

    argv = sys.argv if args is None else args
    stop = threading.Event()
    try:
        from rclpy.signals import SignalHandlerOptions
        rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)
    except (ImportError, TypeError):               # an rclpy without the option
        rclpy.init(args=argv)
    for sig in (signal.SIGINT, signal.SIGTERM):        # kept to the end: a second signal must not kill the
        signal.signal(sig, lambda *_: stop.set())      # process while it releases (launch sends SIGTERM 5 s on)
    managed = '--managed' in remove_ros_args(args=argv)[1:]
    node = None
    status = 0
    try:
        try:
            node = factory()
        except Exception as exc:  # noqa: BLE001 - only parameter problems are expected here
            if not _is_parameter_error(exc):
                raise
            print(parameter_problem(node_name or getattr(factory, '__name__', 'node'), exc), file=sys.stderr)
            status = 2
            return status
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        if not managed:
            for step in (node.trigger_configure, node.trigger_activate):
                if stop.is_set():
                    break
                if step() != TransitionCallbackReturn.SUCCESS:
                    node.get_logger().fatal(f'{step.__name__} failed; see the errors above')
                    status = 1
                    return status
        while not stop.is_set() and rclpy.ok():
            try:
                executor.spin_once(timeout_sec=0.1)
            except (KeyboardInterrupt, ExternalShutdownException):
                raise
            except Exception as exc:  # noqa: BLE001 - e.g. rclpy's RCLError for a transition that does not exist
                node.get_logger().error(f'a request failed and was dropped: {type(exc).__name__}: {exc}')
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            shutdown = getattr(node, 'release', None)
            if shutdown is not None:
                shutdown()
            node.destroy_node()
        rclpy.try_shutdown()
        if args is None and sys.exc_info()[0] is None:   # an unexpected error still shows its traceback
            _exit_now(status)
    return status


def _exit_now(status: int) -> None:
    """End the process now: exit handlers (rclpy's logging) and streams first, no module teardown."""
    import atexit
    import os
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed stream
            pass
    os._exit(status)


def parameter_problem(node_name: str, exc: BaseException) -> str:
    """One line for a refused parameter: rclpy's reason, then the type and range node_params declares."""
    text = ' '.join(str(exc.args[0] if exc.args else exc).split())
    specs = [s for s in node_params.node_parameters(node_name) if s.name in text] if node_name in (
        node_params.FUSION_NODE, node_params.MICROPHONE_NODE) else []
    if specs:
        spec = max(specs, key=lambda s: len(s.name))
        constraints = spec.constraints_text()
        kind = spec.value_type.replace('_', ' ')
        text += f'; {spec.name} expects {"an" if kind[0] in "aeiou" else "a"} {kind}' + (
            f' ({constraints})' if constraints else '')
    return f'{node_name}: bad parameter: {text}'


def _is_parameter_error(exc: BaseException) -> bool:
    try:
        from rclpy.exceptions import ParameterException
    except ImportError:                            # an rclpy without the base class
        ParameterException = ()                    # noqa: N806
    if ParameterException and isinstance(exc, ParameterException):
        return True
    return type(exc).__name__ in ('InvalidParameterTypeException', 'InvalidParameterValueException',
                                  'ParameterError')
