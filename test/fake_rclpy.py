"""
A FAKE of rclpy and of the ROS 2 message packages, for in-process tests of ``centralnet_ros.ros``.

THIS IS NOT ROS.  It exists only because rclpy and the ROS message packages cannot be
installed on the machine these tests run on (they come from ROS 2 apt repositories,
not from pip); with ROS 2 installed, ``test/test_ros_nodes.py`` runs the real nodes
under launch_testing instead.  It is never imported by the package: a test fixture
calls :func:`install`, which puts these module objects into ``sys.modules`` through
pytest's ``monkeypatch`` (so they are removed again when the test ends).

What it models, after the rclpy sources of Humble and Jazzy:

- **messages**: one class per ROS type, generated from the interface definitions of
  the ``rosbags`` type store (plus the audio_common_msgs, vision_msgs, hri_msgs and
  naoqi_bridge_msgs definitions of :mod:`centralnet_ros.replay.msgdefs`), with the
  checks rclpy's generated setters make: unknown constructor arguments, ``float``
  fields refusing ``int``, integer ranges, ``byte`` fields taking one-byte ``bytes``,
  numeric sequences stored as ``array.array`` (numpy arrays refused), nested types
  checked by class, fixed-size arrays checked for length;
- **Node**: parameters declared with descriptors (type, read-only, ranges) and
  overrides, ``set_parameters`` with on-set callbacks (inserted in front, as rclpy
  does) and, except with ``distro='humble'``, post-set callbacks; publishers,
  subscriptions, timers, a settable clock, a recording logger; relative and ``~/``
  topic names resolved against the namespace;
- **lifecycle**: the state machine (configure, activate, deactivate, cleanup,
  shutdown, error processing), an exception in a transition callback turning into
  ERROR (recorded in ``node.transition_exceptions``), lifecycle publishers that drop
  messages unless activated;
- **graph**: a publish reaches the subscriptions of the same topic and type whose QoS
  is compatible (a reliable subscription gets nothing from a best-effort publisher; a
  transient-local subscription nothing from a volatile one), synchronously;
  transient-local publishers hand their last ``depth`` messages to late subscribers;
  an exception in a subscription callback propagates, as it would out of
  ``executor.spin()``;
- optionally a ``diagnostic_updater`` with the Humble/Jazzy ``Updater`` interface.

Not modelled: DDS, threads and executors (``spin`` returns at once), services, remapping,
QoS other than reliability and durability, parameter events, rosout.
"""
from __future__ import annotations

import array
import collections.abc
import dataclasses
import enum
import math
import sys
import time
import types
from typing import Any, Callable, NamedTuple

from centralnet_ros.replay.msgdefs import make_typestore
import numpy as np

PACKAGES = ('builtin_interfaces', 'std_msgs', 'sensor_msgs', 'geometry_msgs', 'vision_msgs', 'diagnostic_msgs',
            'audio_common_msgs', 'hri_msgs', 'naoqi_bridge_msgs', 'rcl_interfaces', 'lifecycle_msgs')

_INT_RANGES = {'int8': (-2 ** 7, 2 ** 7 - 1), 'uint8': (0, 2 ** 8 - 1), 'char': (0, 2 ** 8 - 1),
               'int16': (-2 ** 15, 2 ** 15 - 1), 'uint16': (0, 2 ** 16 - 1), 'int32': (-2 ** 31, 2 ** 31 - 1),
               'uint32': (0, 2 ** 32 - 1), 'int64': (-2 ** 63, 2 ** 63 - 1), 'uint64': (0, 2 ** 64 - 1)}
_TYPECODES = {'int8': 'b', 'uint8': 'B', 'int16': 'h', 'uint16': 'H', 'int32': 'i', 'uint32': 'I',
              'int64': 'q', 'uint64': 'Q', 'float32': 'f', 'float64': 'd'}
_FLOAT32_MAX = 3.402823466e+38


# --------------------------------------------------------------------------- messages

class FakeMessage:
    """Base of the generated message classes (rclpy-like checks on every field set)."""

    _msgtype = ''
    _fields: dict[str, tuple] = {}
    _types: 'MessageTypes' = None

    def __init__(self, **kwargs: Any) -> None:
        unknown = [k for k in kwargs if k not in self._fields]
        assert not unknown, f'Invalid arguments passed to constructor: {", ".join(unknown)}'
        for name, desc in self._fields.items():
            if name in kwargs:
                setattr(self, name, kwargs[name])
            else:
                object.__setattr__(self, name, self._types.default(desc))

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in self._fields:
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")
        object.__setattr__(self, name, self._types.check(self._msgtype, name, self._fields[name], value))

    def __eq__(self, other: Any) -> bool:
        if type(other) is not type(self):
            return False
        return all(_equal(getattr(self, f), getattr(other, f)) for f in self._fields)

    def __repr__(self) -> str:
        fields = ', '.join(f'{f}={getattr(self, f)!r}' for f in self._fields)
        return f'{self._msgtype.replace("/msg/", ".msg.").replace("/", ".")}({fields})'


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    return a == b


class MessageTypes:
    """Message classes generated from a rosbags type store."""

    def __init__(self) -> None:
        self.store = make_typestore()
        self.classes: dict[str, type] = {}

    def get(self, msgtype: str) -> type:
        cls = self.classes.get(msgtype)
        if cls is None:
            if msgtype not in self.store.fielddefs:
                raise ImportError(f'no message definition for {msgtype}')
            consts, fields = self.store.fielddefs[msgtype]
            attrs: dict[str, Any] = {'_msgtype': msgtype, '_fields': dict(fields), '_types': self,
                                     '__slots__': tuple(name for name, _ in fields)}
            for name, typename, value in consts:
                attrs[name] = bytes([value]) if typename == 'byte' else value
            cls = type(msgtype.split('/')[-1], (FakeMessage,), attrs)
            cls.__module__ = msgtype.split('/')[0] + '.msg'
            self.classes[msgtype] = cls
        return cls

    def names(self, package: str) -> list[str]:
        return [t for t in self.store.fielddefs if t.startswith(package + '/msg/')]

    # field descriptions: (Nodetype, payload) as rosbags gives them
    def default(self, desc: tuple) -> Any:
        kind, payload = desc[0].name, desc[1]
        if kind == 'BASE':
            return _base_default(payload[0])
        if kind == 'NAME':
            return self.get(payload)()
        sub, size = payload
        if kind == 'ARRAY':
            if sub[0].name == 'BASE' and sub[1][0] in _TYPECODES:
                return np.zeros(size, dtype=np.dtype(_TYPECODES[sub[1][0]]))   # rclpy: numpy for fixed arrays
            return [self.default(sub) for _ in range(size)]
        if sub[0].name == 'BASE' and sub[1][0] in _TYPECODES:
            return array.array(_TYPECODES[sub[1][0]])
        return []

    def check(self, msgtype: str, field: str, desc: tuple, value: Any) -> Any:
        where = f'{msgtype}.{field}'
        kind, payload = desc[0].name, desc[1]
        if kind == 'BASE':
            return _check_base(where, payload[0], value)
        if kind == 'NAME':
            cls = self.get(payload)
            assert isinstance(value, cls), f"The '{where}' field must be a sub message of type '{cls.__name__}'"
            return value
        sub, size = payload
        numeric = sub[0].name == 'BASE' and sub[1][0] in _TYPECODES
        if numeric and isinstance(value, array.array) and kind == 'SEQUENCE':
            assert value.typecode == _TYPECODES[sub[1][0]], \
                f"The '{where}' array.array() must have the type code of '{_TYPECODES[sub[1][0]]}'"
            return value
        if kind == 'ARRAY' and isinstance(value, np.ndarray):
            assert value.size == size and value.ndim == 1, f"The '{where}' numpy.ndarray() must have the size {size}"
            return value
        assert (isinstance(value, (collections.abc.Sequence, collections.abc.Set, collections.UserList))
                and not isinstance(value, (str, collections.UserString))), \
            f"The '{where}' field must be a set or sequence (numpy arrays are refused), got {type(value).__name__}"
        items = list(value)
        if kind == 'ARRAY':
            assert len(items) == size, f"The '{where}' field must have {size} items, got {len(items)}"
        elif size:
            assert len(items) <= size, f"The '{where}' field must have at most {size} items"
        checked = [self.check(msgtype, field, sub, v) for v in items]
        if numeric and kind == 'SEQUENCE':
            return array.array(_TYPECODES[sub[1][0]], checked)
        return checked


def _base_default(typename: str) -> Any:
    if typename == 'bool':
        return False
    if typename == 'string':
        return ''
    if typename == 'byte':
        return b'\x00'
    if typename in ('float32', 'float64'):
        return 0.0
    return 0


def _check_base(where: str, typename: str, value: Any) -> Any:
    if typename == 'bool':
        assert isinstance(value, bool), f"The '{where}' field must be of type 'bool'"
    elif typename == 'string':
        assert isinstance(value, str), f"The '{where}' field must be of type 'str'"
    elif typename == 'byte':
        assert isinstance(value, bytes) and len(value) == 1, f"The '{where}' field must be of type 'bytes' (length 1)"
    elif typename in ('float32', 'float64'):
        assert isinstance(value, float), f"The '{where}' field must be of type 'float'"
        if typename == 'float32':
            assert math.isnan(value) or math.isinf(value) or -_FLOAT32_MAX <= value <= _FLOAT32_MAX, \
                f"The '{where}' field must be a float in [-3.4e38, 3.4e38]"
    else:
        low, high = _INT_RANGES[typename]
        assert isinstance(value, int) and not isinstance(value, bool), f"The '{where}' field must be of type 'int'"
        assert low <= value <= high, f"The '{where}' field must be an integer in [{low}, {high}]"
    return value


# --------------------------------------------------------------------------- QoS

class HistoryPolicy(enum.IntEnum):
    SYSTEM_DEFAULT = 0
    KEEP_LAST = 1
    KEEP_ALL = 2


class ReliabilityPolicy(enum.IntEnum):
    SYSTEM_DEFAULT = 0
    RELIABLE = 1
    BEST_EFFORT = 2


class DurabilityPolicy(enum.IntEnum):
    SYSTEM_DEFAULT = 0
    TRANSIENT_LOCAL = 1
    VOLATILE = 2


@dataclasses.dataclass
class QoSProfile:
    history: HistoryPolicy = HistoryPolicy.KEEP_LAST
    depth: int = 10
    reliability: ReliabilityPolicy = ReliabilityPolicy.RELIABLE
    durability: DurabilityPolicy = DurabilityPolicy.VOLATILE


def _qos(qos: Any) -> QoSProfile:
    if isinstance(qos, int):
        return QoSProfile(depth=qos)
    assert isinstance(qos, QoSProfile), f'expected a QoSProfile or a depth, got {type(qos).__name__}'
    return qos


def compatible(pub: QoSProfile, sub: QoSProfile) -> bool:
    """DDS request/offered rules for reliability and durability."""
    if sub.reliability == ReliabilityPolicy.RELIABLE and pub.reliability == ReliabilityPolicy.BEST_EFFORT:
        return False
    if sub.durability == DurabilityPolicy.TRANSIENT_LOCAL and pub.durability == DurabilityPolicy.VOLATILE:
        return False
    return True


# --------------------------------------------------------------------------- graph, endpoints

class Publisher:
    """A publisher on the fake graph: records what it published."""

    def __init__(self, graph: 'Graph', msg_type: type, topic: str, qos: QoSProfile, node: Any = None) -> None:
        self.graph, self.msg_type, self.topic_name, self.qos, self.node = graph, msg_type, topic, qos, node
        self.published: list = []
        self.history: list = []
        self.destroyed = False

    @property
    def topic(self) -> str:
        return self.topic_name

    def publish(self, msg: Any) -> None:
        assert not self.destroyed, f'publish on destroyed publisher {self.topic_name}'
        if not isinstance(msg, self.msg_type):
            raise TypeError(f'Expected {self.msg_type.__name__}, got {type(msg).__name__}')
        self.published.append(msg)
        if self.qos.durability == DurabilityPolicy.TRANSIENT_LOCAL:
            self.history = (self.history + [msg])[-max(1, self.qos.depth):]
        self.graph.deliver(self, msg)


class LifecyclePublisher(Publisher):
    """Drops messages unless activated (rclpy's ``SimpleManagedEntity.when_enabled``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._enabled = False
        self.dropped_inactive = 0

    def on_activate(self, state: Any) -> Any:
        self._enabled = True
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: Any) -> Any:
        self._enabled = False
        return TransitionCallbackReturn.SUCCESS

    def on_configure(self, state: Any) -> Any:
        return TransitionCallbackReturn.SUCCESS

    on_cleanup = on_shutdown = on_error = on_configure

    @property
    def is_activated(self) -> bool:
        return self._enabled

    def publish(self, msg: Any) -> None:
        if not self._enabled:
            self.dropped_inactive += 1
            return
        super().publish(msg)


class Subscription:
    """A subscription on the fake graph: calls its callback with each matching message."""

    def __init__(self, msg_type: type, topic: str, callback: Callable, qos: QoSProfile) -> None:
        self.msg_type, self.topic_name, self.callback, self.qos = msg_type, topic, callback, qos
        self.destroyed = False
        self.received = 0


class Graph:
    """Every endpoint in the process; publishing delivers synchronously."""

    def __init__(self) -> None:
        self.publishers: list[Publisher] = []
        self.subscriptions: list[Subscription] = []
        self.history: list[Publisher] = []        # every publisher ever created, destroyed ones included

    def published(self, topic: str) -> list:
        """Every message published on ``topic`` so far, by any publisher (destroyed ones included)."""
        return [m for p in self.history if p.topic_name == topic for m in p.published]

    def publisher(self, msg_type: type, topic: str, qos: Any = 10) -> Publisher:
        """Create a test-side publisher on an absolute topic."""
        pub = Publisher(self, msg_type, topic, _qos(qos))
        self.publishers.append(pub)
        self.history.append(pub)
        return pub

    def subscriptions_on(self, topic: str) -> list[Subscription]:
        return [s for s in self.subscriptions if s.topic_name == topic and not s.destroyed]

    def publishers_on(self, topic: str) -> list[Publisher]:
        return [p for p in self.publishers if p.topic_name == topic and not p.destroyed]

    def deliver(self, pub: Publisher, msg: Any) -> None:
        for sub in list(self.subscriptions_on(pub.topic_name)):
            if sub.msg_type is pub.msg_type and compatible(pub.qos, sub.qos) and not sub.destroyed:
                sub.received += 1
                sub.callback(msg)

    def add_subscription(self, sub: Subscription) -> None:
        self.subscriptions.append(sub)
        if sub.qos.durability == DurabilityPolicy.TRANSIENT_LOCAL:
            for pub in self.publishers_on(sub.topic_name):
                if pub.msg_type is sub.msg_type and compatible(pub.qos, sub.qos):
                    for msg in pub.history:
                        sub.received += 1
                        sub.callback(msg)


class Timer:
    """A timer: its period and callback; a test fires it (:meth:`fire`), nothing runs on its own."""

    def __init__(self, period: float, callback: Callable) -> None:
        self.timer_period_ns = int(period * 1e9)
        self.callback = callback
        self.destroyed = False
        self.canceled = False

    def cancel(self) -> None:
        self.canceled = True

    def reset(self) -> None:
        self.canceled = False

    def fire(self) -> None:
        assert not self.destroyed and not self.canceled
        self.callback()


# --------------------------------------------------------------------------- time, logging

class Time:
    """rclpy.time.Time: nanoseconds, convertible to a builtin_interfaces/Time message."""

    def __init__(self, *, nanoseconds: int = 0, seconds: float = 0.0) -> None:
        self.nanoseconds = int(nanoseconds + seconds * 1e9)

    def to_msg(self) -> Any:
        sec, nanosec = divmod(self.nanoseconds, 1_000_000_000)
        return _FAKE.types.get('builtin_interfaces/msg/Time')(sec=sec, nanosec=nanosec)


class Clock:
    """The node clock: the fake graph's time."""

    def now(self) -> Time:
        return Time(nanoseconds=_FAKE.now_ns())


class Logger:
    """Records (severity, message); rclpy's keyword arguments are accepted."""

    def __init__(self, name: str, records: list) -> None:
        self.name, self.records = name, records

    def _log(self, severity: str, message: Any, **kwargs: Any) -> bool:
        assert isinstance(message, str), 'rclpy logs strings only'
        unknown = set(kwargs) - {'throttle_duration_sec', 'throttle_time_source_type', 'once', 'skip_first'}
        assert not unknown, f'unknown logging arguments {unknown}'
        self.records.append((severity, message))
        return True

    def debug(self, message: Any, **kwargs: Any) -> bool:
        return self._log('debug', message, **kwargs)

    def info(self, message: Any, **kwargs: Any) -> bool:
        return self._log('info', message, **kwargs)

    def warning(self, message: Any, **kwargs: Any) -> bool:
        return self._log('warn', message, **kwargs)

    warn = warning

    def error(self, message: Any, **kwargs: Any) -> bool:
        return self._log('error', message, **kwargs)

    def fatal(self, message: Any, **kwargs: Any) -> bool:
        return self._log('fatal', message, **kwargs)


# --------------------------------------------------------------------------- parameters

class ParameterNotDeclaredException(Exception):
    pass


class ParameterAlreadyDeclaredException(Exception):
    pass


class InvalidParameterTypeException(TypeError):
    pass


class InvalidParameterValueException(ValueError):
    pass


class Parameter:
    class Type(enum.IntEnum):
        NOT_SET = 0
        BOOL = 1
        INTEGER = 2
        DOUBLE = 3
        STRING = 4
        BYTE_ARRAY = 5
        BOOL_ARRAY = 6
        INTEGER_ARRAY = 7
        DOUBLE_ARRAY = 8
        STRING_ARRAY = 9

        @classmethod
        def from_parameter_value(cls, value: Any) -> 'Parameter.Type':
            if value is None:
                return cls.NOT_SET
            if isinstance(value, bool):
                return cls.BOOL
            if isinstance(value, int):
                return cls.INTEGER
            if isinstance(value, float):
                return cls.DOUBLE
            if isinstance(value, str):
                return cls.STRING
            if isinstance(value, (list, tuple)):
                if all(isinstance(v, str) for v in value):
                    return cls.STRING_ARRAY
                if all(isinstance(v, bool) for v in value):
                    return cls.BOOL_ARRAY
                if all(isinstance(v, int) for v in value):
                    return cls.INTEGER_ARRAY
                if all(isinstance(v, float) for v in value):
                    return cls.DOUBLE_ARRAY
            raise TypeError(f'the parameter value {value!r} has no ROS parameter type')

    def __init__(self, name: str, type_: 'Parameter.Type | None' = None, value: Any = None) -> None:
        self.name = name
        self.type_ = Parameter.Type.from_parameter_value(value) if type_ is None else type_
        self.value = list(value) if isinstance(value, tuple) else value

    def __repr__(self) -> str:
        return f'Parameter({self.name!r}, {self.type_.name}, {self.value!r})'


# --------------------------------------------------------------------------- nodes

class TransitionCallbackReturn(enum.Enum):
    SUCCESS = 'success'
    FAILURE = 'failure'
    ERROR = 'error'

    def to_label(self) -> str:
        return self.value


class LifecycleState(NamedTuple):
    label: str
    state_id: int


_STATE_IDS = {'unconfigured': 1, 'inactive': 2, 'active': 3, 'finalized': 4}


def _resolve(namespace: str, node_name: str, topic: str) -> str:
    if topic.startswith('/'):
        return topic
    base = namespace.rstrip('/')
    if topic.startswith('~'):
        return f'{base}/{node_name}{topic[1:]}'
    return f'{base}/{topic}'


class Node:
    """rclpy.node.Node (Humble flavour: no post-set parameter callbacks)."""

    def __init__(self, node_name: str, *, namespace: str | None = None, parameter_overrides: Any = None,
                 context: Any = None, cli_args: Any = None, use_global_arguments: bool = True,
                 enable_rosout: bool = True, start_parameter_services: bool = True,
                 allow_undeclared_parameters: bool = False,
                 automatically_declare_parameters_from_overrides: bool = False) -> None:
        assert _FAKE.initialized, 'rclpy.init() was not called'
        self._name = node_name
        ns = namespace or '/'
        self._namespace = ns if ns.startswith('/') else '/' + ns
        self._overrides = dict(_FAKE.global_overrides) if use_global_arguments else {}
        for item in parameter_overrides or []:
            if isinstance(item, Parameter):
                self._overrides[item.name] = item.value
        if isinstance(parameter_overrides, dict):
            self._overrides.update(parameter_overrides)
        self._parameters: dict[str, tuple[Parameter, Any]] = {}
        self._on_set_parameters_callbacks: list[Callable] = []
        self._post_set_parameters_callbacks: list[Callable] = []
        # rclpy's own private names, so that a node class overwriting them breaks here as it would there
        self._publishers: list[Publisher] = []
        self._subscriptions: list[Subscription] = []
        self._timers: list[Timer] = []
        self.log: list[tuple[str, str]] = []
        self._logger = Logger(node_name, self.log)
        self.destroyed = False
        _FAKE.nodes.append(self)
        self.declare_parameter('use_sim_time', False)

    @property
    def publishers(self):
        yield from self._publishers

    @property
    def subscriptions(self):
        yield from self._subscriptions

    @property
    def timers(self):
        yield from self._timers

    # names
    def get_name(self) -> str:
        return self._name

    def get_namespace(self) -> str:
        return self._namespace

    def get_fully_qualified_name(self) -> str:
        return _resolve(self._namespace, self._name, '~')

    def get_logger(self) -> Logger:
        return self._logger

    def get_clock(self) -> Clock:
        return Clock()

    # parameters
    def declare_parameter(self, name: str, value: Any = None, descriptor: Any = None,
                          ignore_override: bool = False) -> Parameter:
        if name in self._parameters:
            raise ParameterAlreadyDeclaredException(name)
        if not ignore_override and name in self._overrides:
            value = self._overrides[name]
        if descriptor is None:
            descriptor = _FAKE.types.get('rcl_interfaces/msg/ParameterDescriptor')()
        parameter = Parameter(name, value=value)
        problem = self._check(parameter, descriptor, declaring=True)
        if problem:
            raise (InvalidParameterTypeException if 'type' in problem else InvalidParameterValueException)(
                f'{name}: {problem}')
        for callback in list(self._on_set_parameters_callbacks):
            result = callback([parameter])
            if not result.successful:
                raise InvalidParameterValueException(f'{name}: {result.reason}')
        self._parameters[name] = (parameter, descriptor)
        for callback in list(self._post_set_parameters_callbacks):
            callback([parameter])
        return parameter

    def has_parameter(self, name: str) -> bool:
        return name in self._parameters

    def get_parameter(self, name: str) -> Parameter:
        if name not in self._parameters:
            raise ParameterNotDeclaredException(name)
        return self._parameters[name][0]

    def describe_parameter(self, name: str) -> Any:
        return self._parameters[name][1]

    def _check(self, parameter: Parameter, descriptor: Any, *, declaring: bool = False) -> str | None:
        if not declaring and descriptor.read_only:
            return f'Trying to set a read-only parameter: {parameter.name}'
        if descriptor.type and not descriptor.dynamic_typing and parameter.type_ != descriptor.type:
            return (f'Wrong parameter type, parameter {{{parameter.name}}} is of type '
                    f'{{{Parameter.Type(descriptor.type).name}}}, setting it to {{{parameter.type_.name}}} '
                    'is not allowed.')
        for rng in descriptor.floating_point_range:
            if not rng.from_value <= parameter.value <= rng.to_value:
                return f'Parameter {parameter.name} out of range [{rng.from_value}, {rng.to_value}]'
        for rng in descriptor.integer_range:
            if not rng.from_value <= parameter.value <= rng.to_value:
                return f'Parameter {parameter.name} out of range [{rng.from_value}, {rng.to_value}]'
        return None

    def set_parameters(self, parameters: list[Parameter]) -> list[Any]:
        result_type = _FAKE.types.get('rcl_interfaces/msg/SetParametersResult')
        results = []
        for parameter in parameters:
            if parameter.name not in self._parameters:
                raise ParameterNotDeclaredException(parameter.name)
            problem = self._check(parameter, self._parameters[parameter.name][1])
            if problem:
                results.append(result_type(successful=False, reason=problem))
                continue
            result = result_type(successful=True)
            for callback in list(self._on_set_parameters_callbacks):
                result = callback([parameter])
                if not result.successful:
                    break
            if result.successful:
                self._parameters[parameter.name] = (parameter, self._parameters[parameter.name][1])
                for callback in list(self._post_set_parameters_callbacks):
                    callback([parameter])
            results.append(result)
        return results

    def add_on_set_parameters_callback(self, callback: Callable) -> None:
        self._on_set_parameters_callbacks.insert(0, callback)

    # endpoints
    def create_publisher(self, msg_type: type, topic: str, qos_profile: Any, *,
                         publisher_class: type = Publisher, **kwargs: Any) -> Publisher:
        pub = publisher_class(_FAKE.graph, msg_type, _resolve(self._namespace, self._name, topic),
                              _qos(qos_profile), node=self)
        _FAKE.graph.publishers.append(pub)
        _FAKE.graph.history.append(pub)
        self._publishers.append(pub)
        return pub

    def destroy_publisher(self, publisher: Publisher) -> bool:
        if publisher not in self._publishers:
            return False
        publisher.destroyed = True
        self._publishers.remove(publisher)
        _FAKE.graph.publishers.remove(publisher)
        return True

    def create_subscription(self, msg_type: type, topic: str, callback: Callable, qos_profile: Any,
                            **kwargs: Any) -> Subscription:
        assert isinstance(msg_type, type) and issubclass(msg_type, FakeMessage), f'{msg_type} is not a message type'
        sub = Subscription(msg_type, _resolve(self._namespace, self._name, topic), callback, _qos(qos_profile))
        self._subscriptions.append(sub)
        _FAKE.graph.add_subscription(sub)
        return sub

    def destroy_subscription(self, subscription: Subscription) -> bool:
        if subscription not in self._subscriptions:
            return False
        subscription.destroyed = True
        self._subscriptions.remove(subscription)
        _FAKE.graph.subscriptions.remove(subscription)
        return True

    def create_timer(self, timer_period_sec: float, callback: Callable, **kwargs: Any) -> Timer:
        timer = Timer(timer_period_sec, callback)
        self._timers.append(timer)
        return timer

    def destroy_timer(self, timer: Timer) -> bool:
        if timer not in self._timers:
            return False
        timer.destroyed = True
        self._timers.remove(timer)
        return True

    def destroy_node(self) -> None:
        for pub in list(self._publishers):
            self.destroy_publisher(pub)
        for sub in list(self._subscriptions):
            self.destroy_subscription(sub)
        for timer in list(self._timers):
            self.destroy_timer(timer)
        self.destroyed = True


class NodeWithPostSet(Node):
    """rclpy.node.Node of Iron / Jazzy: also post-set parameter callbacks."""

    def add_post_set_parameters_callback(self, callback: Callable) -> None:
        self._post_set_parameters_callbacks.insert(0, callback)


_TRANSITIONS = {
    # transition: (start state, callback, state on SUCCESS, state on FAILURE)
    'configure': ('unconfigured', 'on_configure', 'inactive', 'unconfigured'),
    'activate': ('inactive', 'on_activate', 'active', 'inactive'),
    'deactivate': ('active', 'on_deactivate', 'inactive', 'active'),
    'cleanup': ('inactive', 'on_cleanup', 'unconfigured', 'inactive'),
}


class LifecycleMixin:
    """rclpy.lifecycle.LifecycleNode's state machine and managed entities."""

    def __init__(self, node_name: str, *, enable_communication_interface: bool = True, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._state_machine = 'unconfigured'
        self._managed_entities: set = set()
        self.transition_exceptions: list[BaseException] = []

    @property
    def lifecycle_state(self) -> str:
        """Label of the current state (test helper; rclpy has no such property)."""
        return self._state_machine

    def _current_state(self) -> LifecycleState:
        return LifecycleState(self._state_machine, _STATE_IDS[self._state_machine])

    def _run(self, callback: str, previous: LifecycleState) -> TransitionCallbackReturn:
        try:
            ret = getattr(self, callback)(previous)
        except Exception as exc:  # as rclpy: an exception in a transition callback is ERROR
            self.transition_exceptions.append(exc)
            return TransitionCallbackReturn.ERROR
        assert isinstance(ret, TransitionCallbackReturn), f'{callback} returned {ret!r}'
        return ret

    def _change(self, transition: str) -> TransitionCallbackReturn:
        start, callback, ok, failed = _TRANSITIONS[transition]
        if self._state_machine != start:
            raise RuntimeError(f'transition {transition} is not available in state {self._state_machine}')
        previous = self._current_state()
        ret = self._run(callback, previous)
        if ret == TransitionCallbackReturn.SUCCESS:
            self._state_machine = ok
        elif ret == TransitionCallbackReturn.FAILURE:
            self._state_machine = failed
        else:
            err = self._run('on_error', previous)
            self._state_machine = 'unconfigured' if err == TransitionCallbackReturn.SUCCESS else 'finalized'
        return ret

    def trigger_configure(self) -> TransitionCallbackReturn:
        return self._change('configure')

    def trigger_activate(self) -> TransitionCallbackReturn:
        return self._change('activate')

    def trigger_deactivate(self) -> TransitionCallbackReturn:
        return self._change('deactivate')

    def trigger_cleanup(self) -> TransitionCallbackReturn:
        return self._change('cleanup')

    def trigger_shutdown(self) -> TransitionCallbackReturn:
        assert self._state_machine != 'finalized'
        ret = self._run('on_shutdown', self._current_state())
        self._state_machine = 'finalized'
        return ret

    def _entities(self, method: str, state: LifecycleState) -> TransitionCallbackReturn:
        for entity in list(self._managed_entities):
            ret = getattr(entity, method)(state)
            if ret != TransitionCallbackReturn.SUCCESS:
                return ret
        return TransitionCallbackReturn.SUCCESS

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._entities('on_configure', state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._entities('on_cleanup', state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._entities('on_shutdown', state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._entities('on_activate', state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._entities('on_deactivate', state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._entities('on_error', state)

    def create_lifecycle_publisher(self, *args: Any, **kwargs: Any) -> LifecyclePublisher:
        assert 'publisher_class' not in kwargs
        pub = self.create_publisher(*args, publisher_class=LifecyclePublisher, **kwargs)
        self._managed_entities.add(pub)
        return pub

    def destroy_lifecycle_publisher(self, publisher: LifecyclePublisher) -> bool:
        self._managed_entities.discard(publisher)
        return self.destroy_publisher(publisher)


# --------------------------------------------------------------------------- executors, init

class ExternalShutdownException(Exception):
    pass


class SingleThreadedExecutor:
    """rclpy's executor: ``spin`` hands control to the test's ``on_spin`` hook, if one is set."""

    def __init__(self, context: Any = None) -> None:
        self.nodes: list = []

    def add_node(self, node: Any) -> bool:
        self.nodes.append(node)
        return True

    def spin(self) -> None:
        if _FAKE.on_spin is not None:
            _FAKE.on_spin(self)

    def spin_once(self, timeout_sec: float | None = None) -> None:
        """Run the test's ``on_spin`` hook, then end the context (as Ctrl-C does): the node's spin loop."""
        if _FAKE.on_spin is not None:
            _FAKE.on_spin(self)
        _FAKE.initialized = False

    def shutdown(self, timeout_sec: float | None = None) -> bool:
        return True


def remove_ros_args(args: list[str] | None = None) -> list[str]:
    args = list(sys.argv if args is None else args)
    out, inside = [], False
    for arg in args:
        if arg == '--ros-args':
            inside = True
        elif inside and arg == '--':
            inside = False
        elif not inside:
            out.append(arg)
    return out


def _parse_ros_args(args: list[str]) -> dict[str, Any]:
    """``--ros-args -p name:=value`` overrides (values parsed as YAML, as ros2 does)."""
    import yaml
    out, inside, it = {}, False, iter(args)
    for arg in it:
        if arg == '--ros-args':
            inside = True
        elif arg == '--':
            inside = False
        elif inside and arg in ('-p', '--param'):
            name, _, text = next(it).partition(':=')
            out[name] = yaml.safe_load(text)
    return out


# --------------------------------------------------------------------------- diagnostic_updater

def _diagnostic_updater_module() -> types.ModuleType:
    """``diagnostic_updater`` with the Humble/Jazzy ``Updater(node, period)`` interface."""
    status_cls = _FAKE.types.get('diagnostic_msgs/msg/DiagnosticStatus')
    key_value = _FAKE.types.get('diagnostic_msgs/msg/KeyValue')
    array_cls = _FAKE.types.get('diagnostic_msgs/msg/DiagnosticArray')

    class DiagnosticStatusWrapper(status_cls):
        __slots__ = ()

        def summary(self, *args: Any) -> None:
            if len(args) == 1:
                self.level, self.message = args[0].level, args[0].message
            else:
                self.level, self.message = args[0], args[1]

        def add(self, key: str, value: Any) -> None:
            self.values = list(self.values) + [key_value(key=key, value=str(value))]

    class Updater:
        """diagnostic_updater.Updater: publishes the registered tasks on /diagnostics."""

        def __init__(self, node: Any, period: float = 1.0) -> None:
            self.node, self.tasks, self.hwid = node, [], ''
            self.publisher = node.create_publisher(array_cls, '/diagnostics', 1)
            self.period = node.declare_parameter('diagnostic_updater.period', period).value
            self.timer = node.create_timer(self.period, self.update)

        def add(self, *args: Any) -> None:
            name, fn = (args[0].getName(), args[0].run) if len(args) == 1 else args
            self.tasks.append((name, fn))
            stat = DiagnosticStatusWrapper(name=name)
            stat.summary(status_cls.OK, 'Node starting up')
            self.publish([stat])

        def removeByName(self, name: str) -> bool:  # noqa: N802 - the real API's name
            for i, (task, _) in enumerate(self.tasks):
                if task == name:
                    self.tasks.pop(i)
                    return True
            return False

        def setHardwareID(self, hwid: str) -> None:  # noqa: N802 - the real API's name
            self.hwid = hwid

        def update(self) -> None:
            statuses = []
            for name, fn in self.tasks:
                stat = DiagnosticStatusWrapper(level=status_cls.ERROR, name=name, message='No message was set',
                                               hardware_id=self.hwid)
                statuses.append(fn(stat))
            self.publish(statuses)

        force_update = update

        def publish(self, statuses: list) -> None:
            msg = array_cls()
            msg.header.stamp = self.node.get_clock().now().to_msg()
            msg.status = [status_cls(level=s.level, name=f'{self.node.get_name()}: {s.name}', message=s.message,
                                     hardware_id=s.hardware_id, values=list(s.values)) for s in statuses]
            self.publisher.publish(msg)

    module = types.ModuleType('diagnostic_updater')
    module.Updater, module.DiagnosticStatusWrapper = Updater, DiagnosticStatusWrapper
    return module


# --------------------------------------------------------------------------- installation

class FakeROS:
    """The state behind the fake modules; :func:`install` returns it."""

    def __init__(self, distro: str) -> None:
        self.distro = distro
        self.types = MessageTypes()
        self.graph = Graph()
        self.nodes: list[Node] = []
        self.initialized = False
        self.global_overrides: dict[str, Any] = {}
        self.clock_ns: int | None = None
        self.on_spin: Callable | None = None

    def now_ns(self) -> int:
        return time.time_ns() if self.clock_ns is None else self.clock_ns

    def msg(self, msgtype: str) -> type:
        """Return the fake class of ``'pkg/msg/Name'``."""
        return self.types.get(msgtype)

    def factory(self, msgtype: str, **fields: Any) -> Any:
        """Make a fake rclpy message (a :data:`centralnet_ros.messages.MessageFactory`)."""
        from centralnet_ros.messages import sequences_to_python
        return self.types.get(msgtype)(**sequences_to_python(fields))


_FAKE: FakeROS = None  # set by install()


def install(monkeypatch: Any, *, distro: str = 'jazzy', diagnostic_updater: bool = False,
            missing: tuple[str, ...] = ()) -> FakeROS:
    """
    Put the fake modules into ``sys.modules`` for one test (``monkeypatch`` removes them).

    ``distro``: 'humble' (no post-set parameter callbacks) or 'jazzy'.
    ``diagnostic_updater``: also provide a fake ``diagnostic_updater``.
    ``missing``: message packages to leave out (importing them fails).
    """
    fake = FakeROS(distro)
    monkeypatch.setattr(sys.modules[__name__], '_FAKE', fake)   # the module global the fakes read

    def module(name: str, **attrs: Any) -> types.ModuleType:
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        mod.__fake__ = True
        monkeypatch.setitem(sys.modules, name, mod)
        return mod

    base = NodeWithPostSet if distro != 'humble' else Node
    lifecycle_node = type('LifecycleNode', (LifecycleMixin, base), {})

    def init(args: list[str] | None = None, context: Any = None) -> None:
        fake.initialized = True
        fake.global_overrides = _parse_ros_args(list(args or []))

    def shutdown(context: Any = None) -> None:
        fake.initialized = False

    def try_shutdown(context: Any = None) -> None:
        fake.initialized = False

    rclpy = module('rclpy', init=init, shutdown=shutdown, try_shutdown=try_shutdown,
                   ok=lambda context=None: fake.initialized)
    rclpy.__path__ = []
    rclpy.node = module('rclpy.node', Node=base)
    rclpy.lifecycle = module('rclpy.lifecycle', LifecycleNode=lifecycle_node, Node=lifecycle_node,
                             LifecycleState=LifecycleState, State=LifecycleState,
                             TransitionCallbackReturn=TransitionCallbackReturn,
                             LifecyclePublisher=LifecyclePublisher, Publisher=LifecyclePublisher)
    rclpy.qos = module('rclpy.qos', QoSProfile=QoSProfile, HistoryPolicy=HistoryPolicy,
                       ReliabilityPolicy=ReliabilityPolicy, DurabilityPolicy=DurabilityPolicy,
                       qos_profile_sensor_data=QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT))
    rclpy.parameter = module('rclpy.parameter', Parameter=Parameter)
    rclpy.exceptions = module('rclpy.exceptions', ParameterNotDeclaredException=ParameterNotDeclaredException,
                              ParameterAlreadyDeclaredException=ParameterAlreadyDeclaredException,
                              InvalidParameterTypeException=InvalidParameterTypeException,
                              InvalidParameterValueException=InvalidParameterValueException)
    rclpy.executors = module('rclpy.executors', SingleThreadedExecutor=SingleThreadedExecutor,
                             ExternalShutdownException=ExternalShutdownException)
    rclpy.utilities = module('rclpy.utilities', remove_ros_args=remove_ros_args)
    rclpy.time = module('rclpy.time', Time=Time)
    rclpy.clock = module('rclpy.clock', Clock=Clock)
    for package in PACKAGES:
        if package in missing:
            monkeypatch.setitem(sys.modules, package, None)        # import fails
            monkeypatch.setitem(sys.modules, package + '.msg', None)
            continue
        pkg = module(package)
        pkg.__path__ = []
        pkg.msg = module(package + '.msg', **{t.split('/')[-1]: fake.types.get(t) for t in fake.types.names(package)})
    if diagnostic_updater:
        module('diagnostic_updater', **vars(_diagnostic_updater_module()))
    else:
        monkeypatch.setitem(sys.modules, 'diagnostic_updater', None)
    return fake
