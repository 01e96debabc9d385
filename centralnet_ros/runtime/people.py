"""
Per-person runtime, the ROS4HRI way (REP-155): one set of buffers and decisions per tracked person.

ROS4HRI stacks publish who is there as ids (``hri_msgs/IdsList``) on
``/humans/bodies/tracked``, ``/humans/faces/tracked`` and ``/humans/voices/tracked``, and
each id's data on its own topics: ``/humans/bodies/<id>/skeleton2d``
(``hri_msgs/Skeleton2D``), ``/humans/faces/<id>/aligned`` or ``.../cropped``
(``sensor_msgs/Image``), ``/humans/voices/<id>/audio``.  :class:`PeopleRuntime` keeps one
:class:`~.perception.Perception` (buffers, triggers, statistics) per person, all sharing
one copy of each task model, creates it when an id first delivers data, and drops it
(after deciding what was pending) when its ids leave the tracked lists or it has been
silent for ``idle_timeout_s`` of header time.  At most ``max_people`` persons are held:
ids beyond that are refused and counted, so memory stays bounded whatever the detector
does.

A *person* is one entity id (``bodies:3``, ``faces:f1``) unless :meth:`PeopleRuntime.associate`
merges a face, a body and a voice (REP-155's ``/humans/persons/<id>/face_id`` ...), so
that e.g. the speech model fuses that face's lips with that voice's audio.

Where results go (:func:`hri_topic`): emotion on ``/humans/faces/<face id>/expression``
(``hri_msgs/Expression``) and speech on ``/humans/voices/<voice id>/speech``
(``hri_msgs/LiveSpeech``), as REP-155 puts them; REP-155 defines nothing for gestures,
so a gesture goes on ``/humans/bodies/<body id>/gesture`` (``vision_msgs/Classification``,
this package's convention).  Nothing here takes a ROS node; the fusion node and
``centralnet replay`` call it.
"""
from __future__ import annotations

from collections import Counter, OrderedDict
import dataclasses
import logging
import re
import threading
from typing import Any, Callable, Literal, Mapping

import numpy as np

from .perception import Perception, PerceptionConfig, TaskResult
from ..config import check_settings, setting

log = logging.getLogger(__name__)

__all__ = ['ENTITY_KINDS', 'HRI_INPUTS', 'HRI_OUTPUTS', 'PeopleConfig', 'PersonDue', 'PersonResult', 'PeopleRuntime',
           'hri_topic', 'parse_hri_topic', 'ids_list_to_ids', 'use_2d_gesture_bundle']

ENTITY_KINDS = ('bodies', 'faces', 'voices')
"""ROS4HRI entity kinds with a ``/humans/<kind>/tracked`` list (persons: :meth:`PeopleRuntime.associate`)."""

HRI_INPUTS: dict[str, dict[str, str]] = {
    'bodies': {'skeleton2d': 'skeleton'},
    'faces': {'aligned': 'image', 'cropped': 'image'},
    'voices': {'audio': 'audio', 'audio_info': 'audio_info'},
}
"""Entity kind -> per-id topic name -> the runtime input it feeds (``/humans/<kind>/<id>/<topic>``)."""

HRI_OUTPUTS: dict[str, tuple[str, str, str]] = {
    'emotion': ('faces', 'expression', 'hri_msgs/msg/Expression'),
    'speech': ('voices', 'speech', 'hri_msgs/msg/LiveSpeech'),
    'gesture': ('bodies', 'gesture', 'vision_msgs/msg/Classification'),
}
"""Task -> (entity kind, topic name, message type): where a person's result is published."""

_TOPIC = re.compile(r'^/humans/(bodies|faces|voices)/(?:tracked|([A-Za-z0-9_]+)/([A-Za-z0-9_]+))$')
_ID = re.compile(r'^[A-Za-z0-9_]+$')
_NS = 1_000_000_000


def parse_hri_topic(topic: str) -> tuple[str, str | None, str | None] | None:
    """
    ``/humans/<kind>/tracked`` -> ``(kind, None, None)``; ``/humans/<kind>/<id>/<name>`` -> ``(kind, id, name)``.

    None for any other topic (and for ``/humans/<kind>/tracked/<x>``).
    """
    m = _TOPIC.match(topic)
    if m is None:
        return None
    kind, entity, name = m.groups()
    if entity == 'tracked':
        return None
    return kind, entity, name


def ids_list_to_ids(msg: Any) -> list[str]:
    """``hri_msgs/IdsList`` -> its ids (field access; rclpy, rosbags or a dict)."""
    ids = msg.get('ids') if isinstance(msg, Mapping) else getattr(msg, 'ids', None)
    if ids is None or isinstance(ids, (str, bytes)):
        raise ValueError('IdsList without an ids sequence')
    out = [str(i) for i in ids]
    bad = [i for i in out if not _ID.match(i)]
    if bad:
        raise ValueError(f'IdsList holds ids that are not ROS name tokens: {bad[:3]}')
    return out


def use_2d_gesture_bundle(config: PerceptionConfig, *, default: str = 'gesture', bundle_2d: str = 'gesture2d') -> bool:
    """
    Give the gesture task the 2-D bundle when it has the default (3-D Kinect) one; the skeleton input becomes 2-D.

    For inputs that are ROS4HRI ``Skeleton2D`` bodies. Returns True when it changed the bundle.
    """
    if 'skeleton' in config.inputs:
        config.inputs['skeleton'].kind = 'skeleton2d'
        config.inputs['skeleton'].num_joints = None
    task = config.tasks.get('gesture')
    if task is not None and task.bundle == default:
        task.bundle = bundle_2d
        return True
    return False


def hri_topic(task: str, ids: Mapping[str, str]) -> str | None:
    """Where ``task``'s result for a person with entity ``ids`` (kind -> id) goes; None when it has no such entity."""
    out = HRI_OUTPUTS.get(task)
    if out is None or out[0] not in ids:
        return None
    return f'/humans/{out[0]}/{ids[out[0]]}/{out[1]}'


@dataclasses.dataclass
class PeopleConfig:
    """
    Which ROS4HRI entities the fusion node follows, and the limits of the per-person runtime.

    ``bodies`` / ``faces`` / ``voices``: follow that kind's ``/humans/<kind>/tracked`` list
    and subscribe to each tracked id's topics (the fusion node; replay follows what the
    bag holds).  ``max_people``: persons held at once (more ids are refused and counted).
    ``idle_timeout_s``: a person whose newest data is this much header time older than
    the newest data of anyone is dropped (0 disables; a person also goes when its ids
    leave the tracked lists).  ``require_tracked``: only accept data from ids listed on
    the ``tracked`` topics (once a list of that kind has been received).
    """

    bodies: bool = setting(False, doc='Follow ROS4HRI bodies: /humans/bodies/tracked (hri_msgs/IdsList) and each '
                           "tracked id's /humans/bodies/<id>/skeleton2d (hri_msgs/Skeleton2D), one gesture runtime "
                           'per body (the default gesture bundle becomes gesture2d for them); results also on '
                           '/humans/bodies/<id>/gesture.')
    faces: bool = setting(False, doc="Follow ROS4HRI faces: /humans/faces/tracked and each tracked id's "
                          "/humans/faces/<id>/<people.face_image> (sensor_msgs/Image) as that person's image input; "
                          'emotion also on /humans/faces/<id>/expression.')
    voices: bool = setting(False, doc="Follow ROS4HRI voices: /humans/voices/tracked and each tracked id's "
                           "/humans/voices/<id>/audio (+ audio_info) as that person's audio input; speech also on "
                           '/humans/voices/<id>/speech.')
    face_image: Literal['aligned', 'cropped'] = setting(
        'aligned', doc='Which per-face image feeds the image input: aligned (fixed geometry) or cropped.')
    max_people: int = setting(10, doc='Persons held at once; ids beyond this are refused (counted) and get no '
                              'subscriptions, so memory stays bounded.', bounds=(1, 1000))
    idle_timeout_s: float = setting(5.0, doc='Drop a person whose newest data is this much header time older than '
                                    "anyone's newest, s (0: only when its ids leave the tracked lists).",
                                    bounds=(0.0, 3600.0))
    require_tracked: bool = setting(True, doc='Only accept per-id data from ids listed on the tracked topics '
                                    '(once a list of that kind has arrived).')

    def __post_init__(self):
        check_settings(self)

    @property
    def kinds(self) -> tuple[str, ...]:
        """Return the entity kinds followed (``bodies``, ``faces``, ``voices``)."""
        return tuple(k for k in ENTITY_KINDS if getattr(self, k))


@dataclasses.dataclass
class PersonDue:
    """A decision made due for one person (:meth:`PeopleRuntime.store`); ``due`` None: close the dropped person."""

    person: Any
    due: Any


@dataclasses.dataclass
class PersonResult(TaskResult):
    """A :class:`~.perception.TaskResult` of one person: its key and its entity ids (kind -> id)."""

    person: str = ''
    ids: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def hri_topic(self) -> str | None:
        return hri_topic(self.task, self.ids)

    def to_dict(self) -> dict:
        d = super().to_dict()
        d.update(person=self.person, ids=dict(self.ids), hri_topic=self.hri_topic)
        return d


@dataclasses.dataclass
class _Person:
    key: str
    ids: dict[str, str]
    perception: Perception
    last_stamp_ns: int | None = None
    messages: int = 0


class PeopleRuntime:
    """
    One :class:`~.perception.Perception` per person over shared task models. See the module docstring.

    :param config: the runtime configuration every person gets (tasks, inputs: ``skeleton``
        should be of kind ``skeleton2d`` for ROS4HRI bodies, ``image`` takes aligned faces).
    :param people: limits (:class:`PeopleConfig`).
    :param bundles: optional already-loaded bundles or task models per task.
    :param pipelines: optional custom feature pipelines (as for :class:`~.perception.Perception`).
    """

    def __init__(self, config: PerceptionConfig, people: PeopleConfig | None = None, *,
                 bundles: Mapping[str, Any] | None = None,
                 pipelines: Mapping[str, Callable[..., np.ndarray]] | None = None):
        from .engine import TaskModel
        self.config = config
        self.limits = people or PeopleConfig()
        self._pipelines = pipelines
        self.models: dict[str, Any] = {}
        for task, tc in config.tasks.items():
            b = (bundles or {}).get(task, tc.bundle)
            self.models[task] = b if isinstance(b, TaskModel) else TaskModel(
                b, device=config.device, precision=config.precision, backend=config.backend, threads=config.threads,
                on_device_failure=config.on_device_failure, warmup=config.warmup)
        # a template person validates the configuration now (unknown inputs, pipelines) rather than per id
        template = Perception(config, bundles=self.models, pipelines=pipelines)
        self.used_inputs: tuple[str, ...] = tuple(template.hub.specs)
        """The runtime inputs some task reads (a node subscribes per-id topics feeding these only)."""
        template.close()
        self.people: dict[str, _Person] = {}
        self._route: dict[tuple[str, str], str] = {}          # (kind, id) -> person key
        self._links: dict[tuple[str, str], str] = {}          # associations (kind, id) -> person key
        self._tracked: dict[str, set[str]] = {}               # kind -> ids of the last IdsList
        self._clock_ns: int | None = None
        self._infos: OrderedDict = OrderedDict()             # (kind, id, input) -> latest *_info message (latched)
        self.counts: Counter = Counter()                      # created, dropped, refused, unknown_id, ...
        self._events: list = []                               # events of dropped persons, not yet taken
        self._departed: OrderedDict = OrderedDict()          # key -> ids of recently dropped persons (bounded)
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ people
    def _key(self, kind: str, entity: str) -> str:
        return self._links.get((kind, entity), f'{kind}:{entity}')

    def _person(self, kind: str, entity: str) -> _Person | None:
        key = self._key(kind, entity)
        person = self.people.get(key)
        if person is None:
            if len(self.people) >= self.limits.max_people:
                self.counts['refused'] += 1
                return None
            person = _Person(key, {}, Perception(self.config, bundles=self.models, pipelines=self._pipelines),
                             last_stamp_ns=self._clock_ns)      # a person that never delivers good data expires too
            self.people[key] = person
            self.counts['created'] += 1
        for (k, e, name), info in list(self._infos.items()):
            if (k, e) == (kind, entity) and kind not in person.ids:
                person.perception.ingest(name, info)
        if kind == 'voices' and person.ids.get(kind) != entity:
            person.perception.set_voice(entity)          # speaker adaptation per ROS4HRI voice id
        person.ids[kind] = entity
        self._route[(kind, entity)] = key
        return person

    def _drop(self, key: str, why: str) -> list[PersonDue]:
        """Forget person ``key``: its pending decisions, then a closing item (``due`` None), for :meth:`decide`."""
        person = self.people.pop(key, None)
        if person is None:
            return []
        try:
            pending = person.perception.flush_due()
        except Exception as exc:  # noqa: BLE001 - dropping a person never fails
            log.warning('person %s: flush on drop failed (%s)', key, exc)
            pending = []
        for k in [k for k, v in self._route.items() if v == key]:
            del self._route[k]
        self._departed[key] = dict(person.ids)
        while len(self._departed) > 4 * self.limits.max_people:
            self._departed.popitem(last=False)
        self.counts['dropped'] += 1
        self.counts[f'dropped_{why}'] += 1
        return [PersonDue(person, d) for d in pending] + [PersonDue(person, None)]

    def decide(self, items: list[PersonDue]) -> list[PersonResult]:
        """
        Run the decisions of :meth:`store` / :meth:`track` (a decision worker may call this); their results in order.

        An item with ``due`` None closes its (dropped) person after its last decisions: its
        open events are closed and kept for :meth:`take_events`.  The models run outside
        this runtime's lock, so :meth:`store` is never blocked by them.
        """
        out = []
        for item in items:
            person = item.person
            if item.due is None:
                self._close_person(person)
                continue
            out += [self._tag(person, r) for r in person.perception.decide([item.due])]
        return out

    def _close_person(self, person: _Person) -> None:
        try:
            person.perception.flush_events()
        except Exception as exc:  # noqa: BLE001 - closing a person never fails
            log.warning('person %s: closing its events failed (%s)', person.key, exc)
        events = self._person_events(person)
        person.perception.close()
        with self._lock:
            self._events += events

    def person_ids(self, key: str) -> dict[str, str]:
        """Entity ids (kind -> id) of person ``key``, held or recently dropped ({} when unknown)."""
        with self._lock:
            person = self.people.get(key)
            return dict(person.ids) if person is not None else dict(self._departed.get(key, {}))

    @staticmethod
    def _tag(person: _Person, result: TaskResult) -> PersonResult:
        fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(TaskResult)}
        return PersonResult(**fields, person=person.key, ids=dict(person.ids))

    def associate(self, person_id: str, **ids: str) -> None:
        """
        Treat the given entities (``faces='f1', voices='v1', bodies='b2'``) as one person ``person_id``.

        Data already buffered under the entities' own keys stays there until they are
        dropped; new data goes to the merged person.
        """
        unknown = set(ids) - set(ENTITY_KINDS)
        if unknown:
            raise ValueError(f'associate: unknown entity kind(s) {sorted(unknown)}; kinds: {ENTITY_KINDS}')
        with self._lock:
            for kind, entity in ids.items():
                if entity:
                    self._links[(kind, str(entity))] = f'persons:{person_id}'

    def set_tracked(self, kind: str, ids: list[str] | Any) -> list[PersonResult]:
        """
        Take the ``/humans/<kind>/tracked`` list (a list of ids or an ``hri_msgs/IdsList``).

        Persons none of whose entities remain tracked are dropped; their pending
        decisions are returned.  The same as ``decide(track(kind, ids))``.
        """
        return self.decide(self.track(kind, ids))

    def track(self, kind: str, ids: list[str] | Any) -> list[PersonDue]:
        """:meth:`set_tracked` without deciding: the dropped persons' pending decisions, for :meth:`decide`."""
        if kind not in ENTITY_KINDS:
            raise KeyError(f'unknown entity kind {kind!r}; kinds: {ENTITY_KINDS}')
        if not isinstance(ids, (list, tuple, set)):
            try:
                ids = ids_list_to_ids(ids)
            except ValueError as exc:
                self.counts['bad_ids_list'] += 1
                log.warning('%s/tracked: message dropped (%s)', kind, exc)
                return []
        with self._lock:
            current = {str(i) for i in ids}
            self._tracked[kind] = current
            out = []
            for (k, entity) in [key for key in self._route if key[0] == kind and key[1] not in current]:
                key = self._route.pop((k, entity))
                person = self.people.get(key)
                if person is None:
                    continue
                if not any((kk, ee) in self._route for kk, ee in person.ids.items() if kk != kind):
                    out += self._drop(key, 'untracked')       # its pending decisions keep all its ids
                else:
                    person.ids.pop(kind, None)
            return out

    # ------------------------------------------------------------------ data
    def ingest(self, kind: str, entity: str, input_name: str, msg: Any, *,
               log_time_ns: int | None = None) -> list[PersonResult]:
        """
        One message of entity ``kind``/``entity`` for runtime input ``input_name``; the decisions it made due.

        The same as ``decide(store(...))`` (what replay calls).  Never raises on bad data
        (counted); raises ``KeyError`` for an unknown kind or input.
        """
        return self.decide(self.store(kind, entity, input_name, msg, log_time_ns=log_time_ns))

    def store(self, kind: str, entity: str, input_name: str, msg: Any, *,
              log_time_ns: int | None = None) -> list[PersonDue]:
        """
        Store one message of entity ``kind``/``entity``; the decisions it made due, for :meth:`decide`.

        What a node's subscription callback calls (no model runs here).  Never raises on
        bad data (counted); raises ``KeyError`` for an unknown kind or input.
        """
        if kind not in ENTITY_KINDS:
            raise KeyError(f'unknown entity kind {kind!r}; kinds: {ENTITY_KINDS}')
        with self._lock:
            entity = str(entity)
            if input_name.endswith('_info'):                  # latched stream formats: kept even before tracking
                self._infos[(kind, entity, input_name)] = msg
                self._infos.move_to_end((kind, entity, input_name))
                while len(self._infos) > 4 * self.limits.max_people:
                    self._infos.popitem(last=False)
            tracked = self._tracked.get(kind)
            if self.limits.require_tracked and tracked is not None and entity not in tracked:
                self.counts['untracked_data'] += 1
                return []
            person = self.people.get(self._route.get((kind, entity), self._key(kind, entity)))
            if person is None:
                person = self._person(kind, entity)
                if person is None:
                    return []
            elif kind not in person.ids or (kind, entity) not in self._route:
                person.ids[kind] = entity
                self._route[(kind, entity)] = person.key
            due = [PersonDue(person, d) for d in person.perception.store(input_name, msg, log_time_ns=log_time_ns)]
            person.messages += 1
            clock = person.perception.hub.clock_ns
            if clock is not None:
                person.last_stamp_ns = clock
                self._clock_ns = clock if self._clock_ns is None else max(self._clock_ns, clock)
            return due + self._expire()

    def route(self, topic: tuple[str, str | None, str | None], msg: Any, *,
              log_time_ns: int | None = None) -> list[PersonResult]:
        """One message of a parsed ROS4HRI topic (:func:`parse_hri_topic`): a tracked list or per-id data."""
        kind, entity, name = topic
        if entity is None:
            return self.set_tracked(kind, msg)
        return self.ingest(kind, entity, HRI_INPUTS[kind][name], msg, log_time_ns=log_time_ns)

    def _expire(self) -> list[PersonDue]:
        if not self.limits.idle_timeout_s or self._clock_ns is None:
            return []
        limit = self._clock_ns - int(self.limits.idle_timeout_s * _NS)
        out = []
        for key in [k for k, p in self.people.items() if p.last_stamp_ns is not None and p.last_stamp_ns < limit]:
            out += self._drop(key, 'idle')
        return out

    @staticmethod
    def _person_events(person: _Person) -> list:
        events = person.perception.take_events()
        for e in events:
            e.person = person.key
        return events

    def take_events(self) -> list:
        """Every person's events since the last call (``Event.person`` says whose), in time order."""
        with self._lock:
            out, self._events = self._events, []
            for person in self.people.values():
                out += self._person_events(person)
            return sorted(out, key=lambda e: (e.stamp_ns, e.person, e.task))

    def flush(self) -> list[PersonResult]:
        """End of stream: every person's pending decisions (the persons are kept)."""
        with self._lock:
            out = []
            for person in self.people.values():
                out += [self._tag(person, r) for r in person.perception.flush()]
            return sorted(out, key=lambda r: (r.stamp_ns, r.person, r.task))

    def stats(self) -> dict:
        """JSON-ready: persons held, created, dropped, refused; per person its ids, messages and decisions."""
        with self._lock:
            return {'people': len(self.people), 'max_people': self.limits.max_people, 'counts': dict(self.counts),
                    'tracked': {k: sorted(v) for k, v in self._tracked.items()},
                    'persons': {key: {'ids': dict(p.ids), 'messages': p.messages,
                                      'decisions': {t: s.decisions for t, s in p.perception.tasks.items()}}
                                for key, p in self.people.items()}}

    def close(self) -> None:
        """Drop every person and release the shared models."""
        with self._lock:
            for person in self.people.values():
                person.perception.close()
            self.people.clear()
            self._route.clear()
            self.models.clear()
