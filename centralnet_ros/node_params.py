"""
Every parameter and topic of ``fusion_node`` and ``microphone_node``: the one source of truth.

rclpy-free.  ``ros/`` turns :data:`PARAMETERS` into ``declare_parameter`` calls
(with descriptors, ranges and read-only flags); ``config/fusion.yaml`` is
rendered from it (:func:`render_params_yaml`); the parameter and topic
tables of docs/ros_interface.md are rendered from it (:func:`render_parameter_table`,
:func:`render_topic_table`); the tests check config files against it
(:func:`validate_params_file`) without ROS installed.

Types follow ROS 2 parameter types: ``bool``, ``integer``, ``double``,
``string``, ``string_array``.  A ``double`` must be written as a float in YAML
(``5.0``, not ``5``): ROS 2 refuses an integer for a double parameter.

``python -m centralnet_ros.node_params [--write-config PATH]`` prints the
tables, or writes the params file.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
import re
import textwrap
import typing
from typing import Any, Iterable, Mapping

from centralnet_ros.runtime.perception_config import InputConfig, PerceptionConfig, TaskConfig
from centralnet_ros.runtime.vad import VADConfig
import yaml

FUSION_NODE = 'fusion_node'
MICROPHONE_NODE = 'microphone_node'
NODES = (FUSION_NODE, MICROPHONE_NODE)

INPUTS = ('image', 'depth', 'audio', 'skeleton')
TYPES = ('bool', 'integer', 'double', 'string', 'string_array')

ROS_BUILTIN_PARAMETERS = {'use_sim_time': 'bool'}
"""Declared by rclpy itself on every node; allowed in params files, not in the table."""


class ParameterError(ValueError):
    """A parameter value or params file does not match the declarations; lists every problem."""

    def __init__(self, problems: Iterable[str], where: str = '') -> None:
        self.problems = list(problems)
        head = f'{where}: ' if where else ''
        if len(self.problems) == 1:
            super().__init__(head + self.problems[0])
        else:
            listing = '\n  - '.join(self.problems)
            super().__init__(head + f'{len(self.problems)} problems:\n  - {listing}')


@dataclass(frozen=True)
class ParamSpec:
    """One declared parameter."""

    name: str
    value_type: str  # one of TYPES
    default: Any
    description: str
    bounds: tuple[float, float] | None = None  # inclusive, integer/double only
    choices: tuple[str, ...] | None = None  # string, or each item of a string_array
    pattern: str | None = None  # full-match regex for a string
    dynamic: bool = False  # may change at run time; otherwise read-only after start

    def constraints_text(self) -> str:
        """Human-readable constraints (ParameterDescriptor.additional_constraints)."""
        parts = []
        if self.bounds is not None:
            parts.append(f'{_fmt(self.bounds[0])} to {_fmt(self.bounds[1])} inclusive')
        if self.choices is not None:
            each = 'each one of' if self.value_type == 'string_array' else 'one of'
            parts.append(f'{each}: {", ".join(self.choices)}')
        if self.pattern is not None:
            parts.append(f'matches {self.pattern}')
        return '; '.join(parts)

    def check(self, value: Any) -> list[str]:
        """Problems with ``value`` for this parameter (empty when it is valid)."""
        where = f'{self.name!r}'
        if self.value_type == 'bool':
            if not isinstance(value, bool):
                return [f'{where}: expected a bool (true/false), got {_show(value)}']
        elif self.value_type == 'integer':
            if isinstance(value, bool) or not isinstance(value, int):
                return [f'{where}: expected an integer, got {_show(value)}']
        elif self.value_type == 'double':
            if isinstance(value, int) and not isinstance(value, bool):
                return [f'{where}: expected a double, got the integer {value}; write {value}.0 '
                        '(ROS 2 refuses an integer for a double parameter)']
            if not isinstance(value, float):
                return [f'{where}: expected a double, got {_show(value)}']
        elif self.value_type == 'string':
            if not isinstance(value, str):
                return [f'{where}: expected a string, got {_show(value)}']
        elif self.value_type == 'string_array':
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                return [f'{where}: expected a list of strings, got {_show(value)}']
            if not value:
                return [f'{where}: the list is empty (ROS 2 cannot type an empty list from YAML)']
            if len(set(value)) != len(value):
                return [f'{where}: repeated items in {list(value)}']
        problems = []
        if self.bounds is not None and not (self.bounds[0] <= value <= self.bounds[1]):
            low, high = (_fmt(b) for b in self.bounds)
            problems.append(f'{where}: {value} is outside {low}..{high}')
        if self.choices is not None:
            items = value if self.value_type == 'string_array' else [value]
            bad = [v for v in items if v not in self.choices]
            if bad:
                shown = ', '.join(map(repr, bad))
                problems.append(f'{where}: {shown} is not one of {list(self.choices)}')
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            problems.append(f'{where}: {value!r} does not match {self.pattern}')
        return problems


@dataclass(frozen=True)
class TopicSpec:
    """One topic a node subscribes to or publishes (names relative to the node's namespace)."""

    node: str
    direction: str  # 'in' or 'out'
    name: str
    msg_type: str
    qos: str
    description: str


def _fmt(x: float) -> str:
    return f'{x:g}' if isinstance(x, float) else str(x)


def _show(value: Any) -> str:
    return f'{type(value).__name__} {value!r}'


# -- parameters derived from the runtime's config dataclasses ---------------------------

_ROS_TYPES = {bool: 'bool', int: 'integer', float: 'double', str: 'string'}


def _ros_type(tp: Any) -> tuple[str, tuple[str, ...] | None]:
    """Return the ROS 2 parameter type of annotation ``tp``, and its choices when it is a Literal."""
    if typing.get_origin(tp) is typing.Literal:
        return 'string', tuple(typing.get_args(tp))
    if typing.get_origin(tp) in (list, tuple) and typing.get_args(tp)[:1] == (str,):
        return 'string_array', None
    if tp not in _ROS_TYPES:
        raise TypeError(f'no ROS 2 parameter type for {tp}')
    return _ROS_TYPES[tp], None


def derived_parameters(cls: type, *, prefix: str = '', defaults: Mapping[str, Any] | None = None,
                       names: Iterable[str] | None = None, **fmt: str) -> list[ParamSpec]:
    """
    Declare the ``node`` fields of dataclass ``cls`` (:func:`centralnet_ros.config.setting`) as parameters.

    Names are ``prefix + field``; type, default, description, bounds and choices come from
    the field, so a runtime default or range is written once.  ``defaults`` overrides a
    default (per-task defaults), ``names`` keeps only those fields, and ``fmt`` fills
    ``{task}``-style blanks in descriptions.
    """
    hints = typing.get_type_hints(cls)
    keep = None if names is None else set(names)
    specs = []
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if not meta.get('node') or (keep is not None and f.name not in keep):
            continue
        value_type, literal_choices = _ros_type(hints[f.name])
        default = (defaults or {}).get(f.name, f.default)
        if default is dataclasses.MISSING:
            raise TypeError(f'{cls.__name__}.{f.name}: a node parameter needs a default')
        specs.append(ParamSpec(prefix + f.name, value_type, default, meta['doc'].format(**fmt),
                               bounds=meta['bounds'], choices=meta['choices'] or literal_choices,
                               pattern=meta['pattern'], dynamic=meta['dynamic']))
    return specs


# -- the table ----------------------------------------------------------------------------

TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    # task: its TaskConfig fields that differ from the dataclass's defaults (bundle: the task's name)
    # (score_threshold: the dataclass's -1, i.e. the threshold calibrated in the bundle's manifest)
    'gesture': {'trigger': 'rate', 'rate_hz': 10.0},
    # speech and emotion decide in processes of their own (benchmarks/results/decision_process_memory.md)
    'speech': {'trigger': 'speech_end', 'rate_hz': 2.0, 'decision_nice': 10, 'decision_process': True},
    'emotion': {'trigger': 'speech_end', 'rate_hz': 1.0, 'decision_nice': 10, 'decision_process': True},
}
"""The tasks the node runs by default, and their defaults for the runtime's TaskConfig."""
TASKS = tuple(TASK_DEFAULTS)


def _fusion_parameters() -> tuple[ParamSpec, ...]:
    p = [
        ParamSpec('tasks', 'string_array', list(TASKS),
                  'Tasks to run; each needs <task>.bundle.', choices=TASKS),
    ]
    for task in TASKS:
        p += derived_parameters(TaskConfig, prefix=f'{task}.', defaults={'bundle': task, **TASK_DEFAULTS[task]},
                                task=task)
    p += derived_parameters(PerceptionConfig)
    p += derived_parameters(VADConfig, prefix='vad.')
    p += [
        ParamSpec('qos_reliability', 'string', 'best_effort',
                  'Reliability of the input subscriptions (sensor-data QoS by default); a '
                  'reliable subscriber gets nothing from a best-effort publisher.',
                  choices=('best_effort', 'reliable')),
        ParamSpec('qos_depth', 'integer', 30, 'History depth of the input subscriptions: how long the node '
                  'may stall (GIL, garbage collection, a loaded CPU) before a queue drops messages; 30 is 1 s '
                  'at 30 Hz (benchmarks/results/dds.md).', bounds=(1, 1000)),
    ]
    for name in INPUTS:
        p += derived_parameters(InputConfig, prefix=f'{name}.', names=('offset_s',), input=name)
    limits = InputConfig.__dataclass_fields__           # the runtime's defaults, declared once there
    p += [
        ParamSpec('max_image_pixels', 'integer', limits['max_pixels'].default,
                  'Image and depth frames (raw or compressed) declaring more pixels than this are refused '
                  'as malformed before anything is decoded (decompression bombs).', bounds=(1, 2 ** 31 - 1)),
        ParamSpec('max_buffer_mb', 'double', limits['max_buffer_mb'].default,
                  'Memory bound of each input buffer, MB: the oldest items are dropped beyond it.',
                  bounds=(1.0, 65536.0)),
    ]
    p += [
        ParamSpec('audio_type', 'string', 'audio_data_stamped',
                  'Message type on audio: audio_data_stamped (audio_common_msgs/AudioDataStamped '
                  'with audio_info) or naoqi_audio_buffer (naoqi_bridge_msgs/AudioBuffer).',
                  choices=('audio_data_stamped', 'naoqi_audio_buffer')),
    ]
    p += derived_parameters(InputConfig, prefix='audio.', names=('channel',))
    p += [
        ParamSpec('audio_info.sample_rate', 'integer', 0,
                  'Audio format assumed until an AudioInfo arrives (a volatile publisher such as a '
                  'plain ros2 bag play never reaches the transient-local subscriber), Hz; 0 waits '
                  'for AudioInfo and drops audio until then.', bounds=(0, 192000)),
        ParamSpec('audio_info.channels', 'integer', 1,
                  'Channels of the assumed audio format (see audio_info.sample_rate).', bounds=(1, 64)),
        ParamSpec('audio_info.sample_format', 'string', 'S16LE',
                  'Sample format of the assumed audio format (see audio_info.sample_rate).',
                  choices=('S16LE', 'S32LE', 'F32LE', 'U8')),
        ParamSpec('skeleton_type', 'string', 'pose_array',
                  'Message type on skeleton: pose_array (geometry_msgs/PoseArray) or skeleton2d '
                  '(hri_msgs/Skeleton2D).', choices=('pose_array', 'skeleton2d')),
        ParamSpec('image_transport', 'string', 'raw',
                  'raw subscribes image (sensor_msgs/Image); compressed subscribes '
                  'image/compressed (sensor_msgs/CompressedImage).',
                  choices=('raw', 'compressed')),
        ParamSpec('publish_hri', 'bool', False,
                  'Also publish ROS4HRI messages (needs hri_msgs): emotion on '
                  '/humans/faces/<face_id>/expression, speech on '
                  '/humans/voices/<voice_id>/speech.'),
        ParamSpec('face_id', 'string', 'face0', 'ROS4HRI face id that receives the emotion.',
                  pattern=r'[A-Za-z0-9_]+'),
        ParamSpec('voice_id', 'string', 'voice0', 'ROS4HRI voice id that receives the speech; also the voice '
                  'whose speech the emotion model adapts to.', pattern=r'[A-Za-z0-9_]+'),
        ParamSpec('forget_voice', 'string', '',
                  'Set to a voice id to drop its adaptation statistics ("*": every voice); each set drops again.',
                  pattern=r'(|\*|[A-Za-z0-9_]+)', dynamic=True),
        ParamSpec('diagnostics_period_s', 'double', 1.0, 'Period of /diagnostics updates, s.',
                  bounds=(0.1, 60.0)),
    ]
    from centralnet_ros.runtime.people import PeopleConfig      # per person, the ROS4HRI way (REP-155)
    p += derived_parameters(PeopleConfig, prefix='people.')
    return tuple(p)


def _microphone_parameters() -> tuple[ParamSpec, ...]:
    return (
        ParamSpec('device', 'string', '',
                  'Capture device: a PortAudio name (or unique part of it), an index such as '
                  '"3", or empty for the default input.'),
        ParamSpec('sample_rate', 'integer', 16000, 'Capture sample rate, Hz.',
                  bounds=(8000, 192000)),
        ParamSpec('channels', 'integer', 1, 'Captured channels (interleaved in the messages).',
                  bounds=(1, 32)),
        ParamSpec('chunk_ms', 'integer', 20, 'Audio per message, ms.', bounds=(5, 1000)),
        ParamSpec('frame_id', 'string', 'microphone', 'header.frame_id of the audio messages.'),
        ParamSpec('diagnostics_period_s', 'double', 1.0, 'Period of /diagnostics updates, s.',
                  bounds=(0.1, 60.0)),
    )


PARAMETERS: dict[str, tuple[ParamSpec, ...]] = {
    FUSION_NODE: _fusion_parameters(),
    MICROPHONE_NODE: _microphone_parameters(),
}

_SENSOR_QOS = 'sensor data (best effort, keep last qos_depth; reliability: qos_reliability)'
_LATCHED_QOS = 'reliable, transient local, depth 1'

TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(FUSION_NODE, 'in', 'image', 'sensor_msgs/msg/Image', _SENSOR_QOS,
              'RGB camera (image_transport raw).'),
    TopicSpec(FUSION_NODE, 'in', 'image/compressed', 'sensor_msgs/msg/CompressedImage',
              _SENSOR_QOS, 'RGB camera (image_transport compressed).'),
    TopicSpec(FUSION_NODE, 'in', 'depth', 'sensor_msgs/msg/Image', _SENSOR_QOS,
              'Depth image (16UC1 mm or 32FC1 m).'),
    TopicSpec(FUSION_NODE, 'in', 'audio', 'audio_common_msgs/msg/AudioDataStamped', _SENSOR_QOS,
              'Interleaved PCM (format from audio_info); naoqi_bridge_msgs/msg/AudioBuffer when '
              'audio_type is naoqi_audio_buffer.'),
    TopicSpec(FUSION_NODE, 'in', 'audio_info', 'audio_common_msgs/msg/AudioInfo', _LATCHED_QOS,
              'Channels, sample rate and sample format of audio.'),
    TopicSpec(FUSION_NODE, 'in', 'skeleton', 'geometry_msgs/msg/PoseArray', _SENSOR_QOS,
              'Body joints; hri_msgs/msg/Skeleton2D when skeleton_type is skeleton2d.'),
    TopicSpec(FUSION_NODE, 'out', '~/<task>', 'vision_msgs/msg/Classification',
              'reliable, volatile, depth 10',
              'Label and score per decision (output: decisions), or per event stamped at its peak (output: '
              'events); header copied from the data it was computed from.'),
    TopicSpec(FUSION_NODE, 'out', '~/<task>/events', 'centralnet_msgs/msg/Event', 'reliable, volatile, depth 10',
              'One message per event (a performed gesture, an accepted utterance) when it is decided: task, '
              'label, score, onset, peak and end (header time of the data), person_id; built by '
              'tools/ros_wheels.sh from messages/definitions.py.'),
    TopicSpec(FUSION_NODE, 'out', '~/<task>/label_info', 'vision_msgs/msg/LabelInfo', _LATCHED_QOS,
              'Class names of the bundle of the task, published once.'),
    TopicSpec(FUSION_NODE, 'out', '~/<task>/fusion_weights', 'std_msgs/msg/Float32MultiArray',
              'reliable, volatile, depth 10',
              'CentralNet fusion weights per level and modality (labelled dimensions).'),
    TopicSpec(FUSION_NODE, 'out', '/humans/faces/<face_id>/expression', 'hri_msgs/msg/Expression',
              'reliable, volatile, depth 10',
              'Emotion in ROS4HRI form (publish_hri): each accepted utterance; with emotion.state_time_constant_s > 0 '
              'instead the smoothed state of the voice, after every emotion decision.'),
    TopicSpec(FUSION_NODE, 'out', '/humans/voices/<voice_id>/speech', 'hri_msgs/msg/LiveSpeech',
              'reliable, volatile, depth 10', 'Recognised word in ROS4HRI form (publish_hri).'),
    TopicSpec(FUSION_NODE, 'in', '/humans/<bodies|faces|voices>/tracked', 'hri_msgs/msg/IdsList', _SENSOR_QOS,
              'ROS4HRI ids in view (people.bodies / faces / voices); each id gets its own runtime.'),
    TopicSpec(FUSION_NODE, 'in', '/humans/bodies/<id>/skeleton2d', 'hri_msgs/msg/Skeleton2D', _SENSOR_QOS,
              "A tracked body's 2-D skeleton (people.bodies); subscribed while the id is tracked."),
    TopicSpec(FUSION_NODE, 'in', '/humans/faces/<id>/aligned', 'sensor_msgs/msg/Image', _SENSOR_QOS,
              "A tracked face's image (people.faces; cropped instead with people.face_image)."),
    TopicSpec(FUSION_NODE, 'in', '/humans/voices/<id>/audio', 'audio_common_msgs/msg/AudioDataStamped',
              _SENSOR_QOS, "A tracked voice's audio, format from /humans/voices/<id>/audio_info (people.voices)."),
    TopicSpec(FUSION_NODE, 'in', '/humans/persons/tracked', 'hri_msgs/msg/IdsList', _SENSOR_QOS,
              'ROS4HRI persons (people.persons, with people.bodies / faces / voices); at most people.max_people.'),
    TopicSpec(FUSION_NODE, 'in', '/humans/persons/<id>/<face_id|body_id|voice_id>', 'std_msgs/msg/String',
              _LATCHED_QOS, "A tracked person's face, body and voice: they share one runtime (REP-155 association)."),
    TopicSpec(FUSION_NODE, 'out', '/humans/bodies/<id>/gesture', 'vision_msgs/msg/Classification',
              'reliable, volatile, depth 10',
              "A tracked body's gesture (people.bodies; REP-155 defines no gesture topic: this package's)."),
    TopicSpec(FUSION_NODE, 'out', '/humans/faces/<id>/expression', 'hri_msgs/msg/Expression',
              'reliable, volatile, depth 10',
              "Emotion of a person with a face id (people.faces; a voice's emotion when /humans/persons "
              'associates the voice with the face).'),
    TopicSpec(FUSION_NODE, 'out', '/humans/voices/<id>/speech', 'hri_msgs/msg/LiveSpeech',
              'reliable, volatile, depth 10', "A tracked voice's recognised word (people.voices)."),
    TopicSpec(FUSION_NODE, 'out', '/diagnostics', 'diagnostic_msgs/msg/DiagnosticArray',
              'reliable, volatile, depth 10',
              'Per input rate and stamp age; per task decision rate and latency; drop counts; '
              'device.'),
    TopicSpec(MICROPHONE_NODE, 'out', 'audio', 'audio_common_msgs/msg/AudioDataStamped',
              'reliable, volatile, depth 10',
              'Raw interleaved S16LE PCM, stamped with the capture time of the first frame.'),
    TopicSpec(MICROPHONE_NODE, 'out', 'audio_info', 'audio_common_msgs/msg/AudioInfo',
              _LATCHED_QOS, 'channels, sample_rate, sample_format S16LE, coding_format wave.'),
    TopicSpec(MICROPHONE_NODE, 'out', '/diagnostics', 'diagnostic_msgs/msg/DiagnosticArray',
              'reliable, volatile, depth 10', 'Chunk rate, overflow and drop counts, device.'),
)


def _check_table() -> None:
    for node, specs in PARAMETERS.items():
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise AssertionError(f'{node}: duplicate parameter names')
        for spec in specs:
            if spec.value_type not in TYPES:
                raise AssertionError(f'{node}.{spec.name}: unknown type {spec.value_type}')
            problems = spec.check(spec.default)
            if problems:
                raise AssertionError(f'{node}: default of {spec.name} is invalid: {problems}')


_check_table()


# -- queries and validation ----------------------------------------------------------------


def node_parameters(node: str) -> tuple[ParamSpec, ...]:
    """Return the declarations of ``node`` (fusion_node or microphone_node)."""
    try:
        return PARAMETERS[node]
    except KeyError:
        raise ParameterError([f'unknown node {node!r}; expected one of {list(NODES)}']) from None


def parameter_spec(node: str, name: str) -> ParamSpec | None:
    return next((s for s in node_parameters(node) if s.name == name), None)


def defaults(node: str) -> dict[str, Any]:
    """``{name: default}`` for every parameter of ``node`` (lists copied)."""
    return {s.name: list(s.default) if isinstance(s.default, list) else s.default
            for s in node_parameters(node)}


def validate_parameters(node: str, values: Mapping[str, Any], *, complete: bool = True,
                        where: str = '') -> dict[str, Any]:
    """
    Check ``values`` (flat, dotted names) against ``node``'s declarations.

    Unknown names, wrong types, out-of-range values and bad choices are errors;
    with ``complete`` so is a missing name.  Returns the values with defaults
    filled in.  Raises :class:`ParameterError` listing every problem.
    """
    specs = {s.name: s for s in node_parameters(node)}
    problems = []
    for name, value in values.items():
        spec = specs.get(name)
        if spec is None:
            if ROS_BUILTIN_PARAMETERS.get(name) == 'bool' and isinstance(value, bool):
                continue
            close = [n for n in specs if n.split('.')[-1] == str(name).split('.')[-1]]
            hint = f' (did you mean {" or ".join(close)}?)' if close else ''
            problems.append(f'unknown parameter {name!r} for {node}{hint}')
            continue
        problems += spec.check(value)
    if complete:
        missing = [n for n in specs if n not in values]
        if missing:
            problems.append(f'missing parameters for {node}: {", ".join(missing)}')
    if problems:
        raise ParameterError(problems, where or node)
    out = defaults(node)
    out.update({k: v for k, v in values.items() if k in specs})
    return out


def check_value(node: str, name: str, value: Any) -> None:
    """Raise :class:`ParameterError` unless ``value`` is valid for ``node``'s ``name``."""
    validate_parameters(node, {name: value}, complete=False, where=f'{node}.{name}')


def _flatten(tree: Mapping[str, Any], prefix: str = '') -> dict[str, Any]:
    """Flatten to dotted names: ``{'speech': {'bundle': x}}`` -> ``speech.bundle``."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f'{prefix}{key}'
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name + '.'))
        else:
            flat[name] = value
    return flat


def _node_of(key: str) -> str | None:
    """Return the node a params-file key addresses (``/ns/fusion_node``, ``/**/fusion_node``)."""
    last = str(key).rstrip('/').split('/')[-1]
    if last == '**':
        return '**'
    return last if last in NODES else None


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a repeated key (plain safe_load keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f'repeated key {key!r}', key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_params_file(path: str | Path) -> dict[str, dict[str, Any]]:
    """
    Read a ROS 2 params file into ``{node: {dotted name: value}}`` (structure checked only).

    ``/**`` sections apply to every node and are merged under each.
    """
    path = Path(path)
    try:
        tree = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except (OSError, yaml.YAMLError) as exc:
        raise ParameterError([f'cannot read a YAML params file: {exc}'], str(path)) from exc
    if not isinstance(tree, Mapping):
        raise ParameterError(['expected a mapping of node names to {ros__parameters: ...}'],
                             str(path))
    out: dict[str, dict[str, Any]] = {}
    wildcard: dict[str, Any] = {}
    problems = []
    for key, section in tree.items():
        node = _node_of(key)
        if node is None:
            problems.append(f'unknown node {key!r}; expected one of {list(NODES)} or /**')
            continue
        if not isinstance(section, Mapping) or set(section) != {'ros__parameters'} \
                or not isinstance(section['ros__parameters'], Mapping):
            problems.append(f'{key!r} must hold exactly one key, ros__parameters, with a mapping')
            continue
        flat = _flatten(section['ros__parameters'])
        if node == '**':
            wildcard.update(flat)
        else:
            out.setdefault(node, {}).update(flat)
    if problems:
        raise ParameterError(problems, str(path))
    for node in out:
        out[node] = {**{k: v for k, v in wildcard.items()
                        if parameter_spec(node, k) or k in ROS_BUILTIN_PARAMETERS}, **out[node]}
    unknown = [k for k in wildcard
               if k not in ROS_BUILTIN_PARAMETERS and not any(parameter_spec(n, k) for n in NODES)]
    if unknown:
        raise ParameterError([f'/** sets {k!r}, which no node declares' for k in unknown],
                             str(path))
    return out


def validate_params_file(path: str | Path, *, complete: bool = False,
                         nodes: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
    """
    Check a params file against the declarations; returns ``{node: values with defaults}``.

    ``complete``: every parameter of every node in ``nodes`` (default: all
    nodes) must be present, as in ``config/fusion.yaml``; otherwise (per-robot
    overlays) only what is there is checked.
    """
    path = Path(path)
    sections = load_params_file(path)
    problems = []
    result = {}
    expected = list(nodes) if nodes is not None else (list(NODES) if complete else list(sections))
    for node in expected:
        if node not in sections:
            problems.append(f'no section for {node}')
            continue
        try:
            result[node] = validate_parameters(node, sections[node], complete=complete,
                                               where=f'{path} [{node}]')
        except ParameterError as exc:
            problems += [f'[{node}] {p}' for p in exc.problems]
    if problems:
        raise ParameterError(problems, str(path))
    return result


# -- runtime configuration from parameters -------------------------------------------------
# The runtime knows no ROS parameter names: the parameter table builds its config here.


def perception_config(values: Mapping[str, Any]):
    """
    Build the runtime's :class:`~centralnet_ros.runtime.perception.PerceptionConfig` from ``fusion_node`` parameters.

    ``values`` holds flat dotted names; missing names take their declared defaults; unknown
    names and bad values raise :class:`ParameterError`. Node-only parameters (QoS, ROS4HRI
    ids, diagnostics period) are not part of the runtime's config.
    """
    from centralnet_ros.runtime.perception import default_inputs, PerceptionConfig, TaskConfig
    v = validate_parameters(FUSION_NODE, dict(values), complete=False)
    tasks = {}
    for task in v['tasks']:
        tasks[task] = TaskConfig(bundle=v[f'{task}.bundle'], trigger=v[f'{task}.trigger'],
                                 rate_hz=v[f'{task}.rate_hz'], window_s=v[f'{task}.window_s'],
                                 score_threshold=v[f'{task}.score_threshold'], output=v[f'{task}.output'],
                                 state_time_constant_s=v[f'{task}.state_time_constant_s'],
                                 decision_nice=v[f'{task}.decision_nice'],
                                 decision_process=v[f'{task}.decision_process'])
    inputs = default_inputs()
    inputs['image'].kind = 'compressed_image' if v['image_transport'] == 'compressed' else 'image'
    inputs['audio'].kind = 'naoqi_audio' if v['audio_type'] == 'naoqi_audio_buffer' else 'audio'
    inputs['skeleton'].kind = 'skeleton2d' if v['skeleton_type'] == 'skeleton2d' else 'pose_array'
    inputs['skeleton'].num_joints = None if v['skeleton_type'] == 'skeleton2d' else 20
    for name in INPUTS:
        inputs[name].offset_s = v[f'{name}.offset_s']
        inputs[name].max_pixels = v['max_image_pixels']
        inputs[name].max_buffer_mb = v['max_buffer_mb']
    inputs['audio'].channel = v['audio.channel']
    vad = {k.split('.', 1)[1]: v[k] for k in v if k.startswith('vad.')}
    cfg = PerceptionConfig(tasks=tasks, inputs=inputs, device=v['device'], precision=v['precision'],
                           on_device_failure=v['on_device_failure'], max_data_age_s=v['max_data_age_s'],
                           input_timeout_s=v['input_timeout_s'], decision_delay_s=v['decision_delay_s'], vad=vad,
                           speaker_adaptation=v['speaker_adaptation'])
    if v['skeleton_type'] == 'skeleton2d':          # 2-D bodies: the default gesture bundle becomes gesture2d
        from centralnet_ros.runtime.people import use_2d_gesture_bundle
        use_2d_gesture_bundle(cfg)
    return cfg


def load_perception_config(path: str | Path):
    """
    Load the runtime's :class:`~centralnet_ros.runtime.perception.PerceptionConfig` from ``path``.

    ``path`` is either a ROS 2 params file with a ``fusion_node`` section (``config/fusion.yaml``
    and the robot overlays), or a YAML mapping of ``PerceptionConfig`` fields. Errors name
    the file.
    """
    from centralnet_ros.config import ConfigError, from_dict, load_yaml
    from centralnet_ros.runtime.perception import PerceptionConfig
    path = Path(path)
    data = load_yaml(path)
    if not isinstance(data, Mapping):
        raise ConfigError(f'{path}: expected a mapping (a ROS 2 params file or PerceptionConfig fields)')
    if any(isinstance(s, Mapping) and 'ros__parameters' in s for s in data.values()):
        sections = load_params_file(path)
        if FUSION_NODE not in sections:
            raise ConfigError(f'{path}: a ROS 2 params file without a {FUSION_NODE} section')
        try:
            return perception_config(sections[FUSION_NODE])
        except (ParameterError, ValueError) as exc:
            raise ConfigError(f'{path}: {exc}') from exc
    try:
        return from_dict(PerceptionConfig, data)
    except ConfigError as exc:
        raise ConfigError(f'{path}: {exc}') from exc


# -- rendering -------------------------------------------------------------------------


def _yaml_scalar(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=1000)
    return text.strip().removesuffix('...').strip()


def _tree(specs: Iterable[ParamSpec]) -> dict[str, Any]:
    """Nest dotted names in first-appearance order: ``{'speech': {'bundle': spec}, ...}``."""
    tree: dict[str, Any] = {}
    for spec in specs:
        *groups, leaf = spec.name.split('.')
        node = tree
        for group in groups:
            node = node.setdefault(group, {})
        node[leaf] = spec
    return tree


def _render_tree(tree: Mapping[str, Any], depth: int) -> list[str]:
    indent = '    ' + '  ' * depth
    lines = []
    for key, item in tree.items():
        if isinstance(item, Mapping):
            lines.append(f'{indent}{key}:')
            lines += _render_tree(item, depth + 1)
            continue
        note = item.constraints_text()
        text = (item.description + (' [dynamic]' if item.dynamic else '')
                + (f' ({note})' if note else ''))
        lines += textwrap.wrap(text, width=96, initial_indent=f'{indent}# ',
                               subsequent_indent=f'{indent}#   ', break_on_hyphens=False)
        lines.append(f'{indent}{key}: {_yaml_scalar(item.default)}')
    return lines


def render_params_yaml(nodes: Iterable[str] = NODES) -> str:
    """Render a complete ROS 2 params file: every parameter at its default, a comment each."""
    lines = [
        '# centralnet_ros parameters: every parameter of fusion_node and microphone_node at its',
        '# default, one comment each.  Rendered from centralnet_ros/node_params.py (the single',
        '# source of truth): edit the table there, then run',
        '#   python -m centralnet_ros.node_params --write-config config/fusion.yaml',
        '# Per-robot overlays in config/robots/ set only what differs.  Doubles are written',
        '# with a decimal point (ROS 2 refuses 5 for a double).  [dynamic] parameters can be',
        '# changed at run time with `ros2 param set`; the others are read at configure.',
        '# Sections are keyed /**/<node> so that they apply in any namespace (a plain',
        '# `fusion_node:` key means /fusion_node, the root namespace only).',
    ]
    for node in nodes:
        lines += ['', f'/**/{node}:', '  ros__parameters:']
        lines += _render_tree(_tree(node_parameters(node)), 0)
    return '\n'.join(lines) + '\n'


def _md(text: str) -> str:
    return text.replace('|', '\\|')


def render_parameter_table(node: str) -> str:
    """Markdown table of ``node``'s parameters (for docs/ros_interface.md)."""
    rows = ['| parameter | type | default | allowed | run time | description |',
            '|---|---|---|---|---|---|']
    for s in node_parameters(node):
        allowed = _md(s.constraints_text()) or 'any'
        when = 'dynamic' if s.dynamic else 'read-only'
        rows.append(f'| `{s.name}` | {s.value_type} | `{_md(_yaml_scalar(s.default))}` | '
                    f'{allowed} | {when} | {_md(s.description)} |')
    return '\n'.join(rows) + '\n'


def render_topic_table(node: str | None = None) -> str:
    """Markdown table of the topics of ``node`` (all nodes when None)."""
    rows = ['| node | direction | topic | type | QoS | description |', '|---|---|---|---|---|---|']
    for t in TOPICS:
        if node is None or t.node == node:
            rows.append(f'| {t.node} | {t.direction} | `{t.name}` | {t.msg_type} | {_md(t.qos)} | '
                        f'{_md(t.description)} |')
    return '\n'.join(rows) + '\n'


def render_own_messages() -> str:
    """Markdown of this project's own messages (centralnet_msgs, from messages/definitions.py), fields and comments."""
    from centralnet_ros.messages.definitions import MSG_DEFINITIONS
    out = []
    for msgtype, text in MSG_DEFINITIONS.items():
        if msgtype.startswith('centralnet_msgs/'):
            out += [f'### {msgtype}\n', '```', text.rstrip('\n'), '```\n']
    return '\n'.join(out)


def main(argv: list[str] | None = None) -> int:
    """Print the tables of docs/ros_interface.md, or write the params file (``--write-config PATH``)."""
    import argparse

    from centralnet_ros.config import atomic_write_text

    parser = argparse.ArgumentParser(prog='python -m centralnet_ros.node_params',
                                     description=main.__doc__)
    parser.add_argument('--write-config', metavar='PATH', type=Path,
                        help='write the complete params file (config/fusion.yaml) here')
    args = parser.parse_args(argv)
    if args.write_config:
        atomic_write_text(args.write_config, render_params_yaml())
        print(f'wrote {args.write_config}')
        return 0
    print('## Topics\n')
    print(render_topic_table())
    print(render_own_messages())
    for node in NODES:
        print(f'## {node} parameters\n')
        print(render_parameter_table(node))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
