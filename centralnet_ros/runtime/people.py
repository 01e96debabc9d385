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

A *person* is one entity id (``bodies:3``, ``faces:f1``) unless REP-155's persons associate
entities: ``/humans/persons/tracked`` (:meth:`PeopleRuntime.set_persons`) and each person's
latched ``/humans/persons/<id>/face_id``, ``body_id``, ``voice_id`` (:meth:`PeopleRuntime.link`)
make the face, body and voice of person ``<id>`` one person ``persons:<id>``: one set of
buffers and decisions fed by all three, so the speech model fuses that face's lips with that
voice's audio, the gesture model reads that body, and the person's results go to each of its
ids' topics (a voice's emotion on its face's ``expression``).  Association changes never mix
two entities' data in one person and never publish under a stale id:

* an entity joining a person that has no buffers yet brings its own (its per-id person is
  renamed ``persons:<id>``); joining a person that has some, its per-id person is closed
  (its pending decisions published under its own id) and its new data goes to the person;
* an entity leaving a person (re-associated, its ``*_id`` emptied, the person untracked)
  closes the person: pending decisions are published under the ids their data came from,
  and the person starts afresh, with new buffers, on its next data;
* every decision is tagged with the ids its person had when the decision was made due.

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

from .events import Event
from .perception import Perception, PerceptionConfig, TaskResult
from ..config import check_settings, setting

log = logging.getLogger(__name__)

__all__ = ['ENTITY_KINDS', 'HRI_INPUTS', 'HRI_OUTPUTS', 'PERSON_LINKS', 'PeopleConfig', 'PersonDue', 'PersonEvent',
           'PersonResult', 'PeopleRuntime', 'face_pipelines', 'hri_topic', 'parse_hri_topic', 'ids_list_to_ids',
           'link_to_id', 'use_2d_gesture_bundle']

ENTITY_KINDS = ('bodies', 'faces', 'voices')
"""ROS4HRI entity kinds with a ``/humans/<kind>/tracked`` list (persons: :data:`PERSON_LINKS`)."""

PERSON_LINKS: dict[str, str] = {'face_id': 'faces', 'body_id': 'bodies', 'voice_id': 'voices'}
"""``/humans/persons/<id>/<topic>`` (latched ``std_msgs/String``) -> the entity kind it associates with the person."""

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

_TOPIC = re.compile(r'^/humans/(bodies|faces|voices|persons)/(?:tracked|([A-Za-z0-9_]+)/([A-Za-z0-9_]+))$')
_ID = re.compile(r'^[A-Za-z0-9_]+$')
_NS = 1_000_000_000


def parse_hri_topic(topic: str) -> tuple[str, str | None, str | None] | None:
    """
    ``/humans/<kind>/tracked`` -> ``(kind, None, None)``; ``/humans/<kind>/<id>/<name>`` -> ``(kind, id, name)``.

    ``kind`` is one of :data:`ENTITY_KINDS` or ``persons`` (only with a :data:`PERSON_LINKS`
    name).  None for any other topic (and for ``/humans/<kind>/tracked/<x>``).
    """
    m = _TOPIC.match(topic)
    if m is None:
        return None
    kind, entity, name = m.groups()
    if entity == 'tracked' or (kind == 'persons' and name is not None and name not in PERSON_LINKS):
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


def link_to_id(msg: Any) -> str:
    """Read a person's ``face_id`` / ``body_id`` / ``voice_id`` (``std_msgs/String``, or a str): the id, '' for none."""
    if isinstance(msg, str):
        data = msg
    else:
        data = msg.get('data') if isinstance(msg, Mapping) else getattr(msg, 'data', None)
    if not isinstance(data, str):
        raise ValueError('a person link without a string data field (expected std_msgs/String)')
    data = data.strip()
    if data and not _ID.match(data):
        raise ValueError(f'person link {data[:40]!r} is not a ROS name token')
    return data


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


def _aligned_face_lips(window: Any, /, **params: Any) -> np.ndarray | None:
    """Pipeline ``lip_video`` on ROS4HRI aligned faces: with ``mouth.source: auto`` the mouth is at its fixed place."""
    from ..features.mouth import auto_source
    from ..features.speech import lip_input
    mouth = params.get('mouth')
    data = np.asarray(window.data)
    if mouth is not None and mouth.get('source', 'auto') == 'auto' and data.ndim >= 3:
        params = {**params, 'mouth': {**mouth, 'source': auto_source(*data.shape[1:3], aligned_faces=True)}}
    return lip_input(window, **params)


def face_pipelines(face_image: str) -> dict[str, Callable[..., Any]]:
    """
    Pipelines for persons whose image input is a ROS4HRI face (``aligned`` or ``cropped``), for :class:`PeopleRuntime`.

    Aligned faces (eyes level at fixed places) get the mouth stage's fixed geometry
    (``aligned_face``) instead of a face detector run on the face; cropped faces (not aligned)
    keep the bundle's mouth stage.
    """
    return {'lip_video': _aligned_face_lips} if face_image == 'aligned' else {}


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
    the ``tracked`` topics (once a list of that kind has been received).  ``persons``:
    follow REP-155's person associations (``/humans/persons/...``) when they are published.
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
    persons: bool = setting(True, doc='With people.bodies/faces/voices: follow ROS4HRI persons when a person '
                            "manager publishes them: /humans/persons/tracked and each tracked person's latched "
                            '/humans/persons/<id>/face_id, body_id, voice_id (std_msgs/String). A face, body and voice '
                            'of one person share one runtime (speech fuses its lips and voice, gesture reads its body) '
                            "and its results go to each of its ids' topics (a voice's emotion on its face's "
                            'expression); at most max_people persons are followed. Without them: one runtime per id.')
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
    """
    A decision made due for one person (:meth:`PeopleRuntime.store`); ``due`` None: close the dropped person.

    ``ids``: the person's entity ids when it was made due (its result is published under them).
    """

    person: Any
    due: Any
    ids: dict[str, str] = dataclasses.field(default_factory=dict)


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
class PersonEvent(Event):
    """An :class:`~.events.Event` of one person (``person``: its key) with its entity ids (kind -> id) then."""

    ids: dict[str, str] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict:
        d = super().to_dict()
        d['ids'] = dict(self.ids)
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
        self._links: dict[tuple[str, str], str] = {}          # associations (kind, id) -> 'persons:<id>'
        self._assoc: dict[str, dict[str, str]] = {}           # person id -> kind -> id (the same, per person)
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

    def _linked(self, key: str) -> dict[str, str]:
        """Entities associated with person ``key`` (``persons:<id>``) that are tracked (or whose kind has no list)."""
        if not key.startswith('persons:'):
            return {}
        out = {}
        for kind, entity in self._assoc.get(key[len('persons:'):], {}).items():
            tracked = self._tracked.get(kind)
            if tracked is None or entity in tracked:
                out[kind] = entity
        return out

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
            for k, e in self._linked(key).items():             # its face's id even before the face sends data
                self._attach(person, k, e)
        self._attach(person, kind, entity)
        return person

    def _attach(self, person: _Person, kind: str, entity: str) -> None:
        """Make ``entity`` the person's ``kind``: its route, its latched stream formats, the voice adapted to."""
        if person.ids.get(kind) == entity and self._route.get((kind, entity)) == person.key:
            return
        old = person.ids.get(kind)
        if old is not None and old != entity and self._route.get((kind, old)) == person.key:
            del self._route[(kind, old)]
        if old != entity:
            for (k, e, name), info in list(self._infos.items()):
                if (k, e) == (kind, entity):
                    person.perception.ingest(name, info)
            if kind == 'voices':
                person.perception.set_voice(entity)          # speaker adaptation per ROS4HRI voice id
        person.ids[kind] = entity
        self._route[(kind, entity)] = person.key

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
        ids = dict(person.ids)                                 # the ids its buffered data came from
        return [PersonDue(person, d, ids) for d in pending] + [PersonDue(person, None, ids)]

    def decide(self, items: list[PersonDue]) -> list[PersonResult]:
        """
        Run the decisions of :meth:`store` / :meth:`track` (a decision worker may call this); their results in order.

        An item with ``due`` None closes its (dropped) person after its last decisions: its
        open events are closed and kept for :meth:`take_events`.  The models run outside
        this runtime's lock, so :meth:`store` is never blocked by them.  Each result carries
        the ids its person had when the decision was made due.
        """
        out = []
        for item in items:
            person = item.person
            if item.due is None:
                self._close_person(person)
                continue
            out += [self._tag(person, r, item.ids) for r in person.perception.decide([item.due])]
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
    def _tag(person: _Person, result: TaskResult, ids: Mapping[str, str]) -> PersonResult:
        fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(TaskResult)}
        return PersonResult(**fields, person=person.key, ids=dict(ids))

    # ------------------------------------------------------------------ persons (REP-155 associations)
    def associate(self, person_id: str, **ids: str) -> list[PersonResult]:
        """
        Associate entities with person ``person_id`` (``faces='f1', voices='v1', bodies='b2'``; '' removes that kind).

        The same as :meth:`link` per kind, deciding what the changes closed; their results.
        """
        unknown = set(ids) - set(ENTITY_KINDS)
        if unknown:
            raise ValueError(f'associate: unknown entity kind(s) {sorted(unknown)}; kinds: {ENTITY_KINDS}')
        items = []
        with self._lock:
            for kind, entity in ids.items():
                items += self.link(person_id, kind, entity or '')
        return self.decide(items)

    def link(self, person_id: str, kind: str, entity: Any) -> list[PersonDue]:
        """
        Take ``/humans/persons/<person_id>/<face|body|voice>_id``: person ``person_id``'s entity of ``kind``.

        ``entity``: an id, '' for none, or the ``std_msgs/String`` message.  Returns the
        decisions of the persons the change closed (see the module docstring), for
        :meth:`decide`.  At most ``4 * max_people`` persons are associated at once (more are
        refused and counted); a malformed id is counted and ignored.
        """
        if kind not in ENTITY_KINDS:
            raise KeyError(f'unknown entity kind {kind!r}; kinds: {ENTITY_KINDS}')
        pid = str(person_id)
        try:
            if not _ID.match(pid):
                raise ValueError(f'person id {pid[:40]!r} is not a ROS name token')
            entity = link_to_id(entity)
        except ValueError as exc:
            self.counts['bad_link'] += 1
            log.warning('/humans/persons/%s: %s id dropped (%s)', pid[:40], kind, exc)
            return []
        with self._lock:
            key = f'persons:{pid}'
            assoc = self._assoc.get(pid)
            if assoc is None:
                if not entity:
                    return []
                if len(self._assoc) >= 4 * self.limits.max_people:
                    self.counts['persons_refused'] += 1
                    return []
                assoc = self._assoc[pid] = {}
            old = assoc.get(kind, '')
            if old == entity:
                return []
            out = []
            if old:                                     # its buffers hold the old entity's data: start afresh
                del assoc[kind]
                if self._links.get((kind, old)) == key:
                    del self._links[(kind, old)]
                out += self._drop(key, 'reassociated')
                self.counts['unlinked'] += 1
            if entity:
                out += self._link(pid, kind, entity)
            if not assoc:
                del self._assoc[pid]
            return out

    def _link(self, pid: str, kind: str, entity: str) -> list[PersonDue]:
        key = f'persons:{pid}'
        out = []
        prev = self._links.get((kind, entity))
        if prev is not None and prev != key:            # taken from another person, which starts afresh
            other = prev[len('persons:'):]
            if self._assoc.get(other, {}).get(kind) == entity:
                del self._assoc[other][kind]
                if not self._assoc[other]:
                    del self._assoc[other]
            out += self._drop(prev, 'reassociated')
        self._links[(kind, entity)] = key
        self._assoc[pid][kind] = entity
        self.counts['linked'] += 1
        src = self._route.get((kind, entity))
        if src is not None and src != key:              # the entity's own person
            if key not in self.people and src == f'{kind}:{entity}' and src in self.people:
                person = self.people.pop(src)           # brings its buffers: renamed, nothing lost
                person.key = key
                self.people[key] = person
                for k, e in person.ids.items():
                    self._route[(k, e)] = key
                self.counts['renamed'] += 1
            else:                                       # the person has buffers of its own: close the entity's
                out += self._drop(src, 'associated')
        person = self.people.get(key)
        if person is not None:
            for k, e in self._linked(key).items():
                self._attach(person, k, e)
        return out

    def _track_persons(self, current: set[str]) -> list[PersonDue]:
        """``/humans/persons/tracked``: persons that left lose their associations (their entities go on alone)."""
        out = []
        for pid in [p for p in self._assoc if p not in current]:
            key = f'persons:{pid}'
            for kind, entity in self._assoc.pop(pid).items():
                if self._links.get((kind, entity)) == key:
                    del self._links[(kind, entity)]
            out += self._drop(key, 'person_untracked')
            self.counts['persons_left'] += 1
        return out

    def set_tracked(self, kind: str, ids: list[str] | Any) -> list[PersonResult]:
        """
        Take the ``/humans/<kind>/tracked`` list (a list of ids or an ``hri_msgs/IdsList``); ``kind`` may be persons.

        Persons none of whose entities remain tracked are dropped; their pending
        decisions are returned.  The same as ``decide(track(kind, ids))``.
        """
        return self.decide(self.track(kind, ids))

    def track(self, kind: str, ids: list[str] | Any) -> list[PersonDue]:
        """:meth:`set_tracked` without deciding: the dropped persons' pending decisions, for :meth:`decide`."""
        if kind not in ENTITY_KINDS and kind != 'persons':
            raise KeyError(f'unknown entity kind {kind!r}; kinds: {ENTITY_KINDS} and persons')
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
            if kind == 'persons':
                return self._track_persons(current)
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
            for entity in current:                           # an associated entity back in view rejoins its person
                person = self.people.get(self._links.get((kind, entity), ''))
                if person is not None:
                    self._attach(person, kind, entity)
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
            else:
                self._attach(person, kind, entity)
            due = person.perception.store(input_name, msg, log_time_ns=log_time_ns)
            if due:
                ids = dict(person.ids)
                due = [PersonDue(person, d, ids) for d in due]
            person.messages += 1
            clock = person.perception.hub.clock_ns
            if clock is not None:
                person.last_stamp_ns = clock
                self._clock_ns = clock if self._clock_ns is None else max(self._clock_ns, clock)
            return due + self._expire()

    def route(self, topic: tuple[str, str | None, str | None], msg: Any, *,
              log_time_ns: int | None = None) -> list[PersonResult]:
        """One message of a parsed ROS4HRI topic (:func:`parse_hri_topic`): a tracked list, a person link, data."""
        kind, entity, name = topic
        if entity is None:
            return self.set_tracked(kind, msg)
        if kind == 'persons':
            return self.decide(self.link(entity, PERSON_LINKS[name], msg))
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
    def _person_events(person: _Person) -> list[PersonEvent]:
        out = []
        for e in person.perception.take_events():
            fields = {f.name: getattr(e, f.name) for f in dataclasses.fields(Event)}
            fields['person'] = person.key
            out.append(PersonEvent(**fields, ids=dict(person.ids)))
        return out

    def take_events(self) -> list[PersonEvent]:
        """Every person's events since the last call (``person``, ``ids``: whose), in time order."""
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
                out += [self._tag(person, r, person.ids) for r in person.perception.flush()]
            return sorted(out, key=lambda r: (r.stamp_ns, r.person, r.task))

    def stats(self, *, detail: int = 0) -> dict:
        """
        JSON-ready: persons held, created, dropped, refused; per person its ids, messages and decisions.

        ``associations``: person id -> kind -> entity id (REP-155 persons).  ``detail``: for
        the first ``detail`` persons (by key) also per task its decisions, the age of its last
        decision (s of header time behind the newest data of anyone), why it is idle
        (:meth:`Perception.stats`' ``idle``) and its missing modalities.
        """
        with self._lock:
            persons = {key: {'ids': dict(p.ids), 'messages': p.messages,
                             'decisions': {t: s.decisions for t, s in p.perception.tasks.items()}}
                       for key, p in sorted(self.people.items())}
            for key in list(persons)[:max(0, int(detail))]:
                persons[key]['tasks'] = self._task_detail(self.people[key])
            return {'people': len(self.people), 'max_people': self.limits.max_people, 'counts': dict(self.counts),
                    'tracked': {k: sorted(v) for k, v in self._tracked.items()},
                    'associations': {pid: dict(a) for pid, a in sorted(self._assoc.items())},
                    'persons': persons}

    def _task_detail(self, person: _Person) -> dict:
        try:
            tasks = person.perception.stats()['tasks']
        except Exception as exc:  # noqa: BLE001 - diagnostics never fail
            return {'error': f'{type(exc).__name__}: {exc}'}
        out = {}
        for task, t in tasks.items():
            last = t.get('last_stamp_ns')
            age = None if last is None or self._clock_ns is None else round((self._clock_ns - last) / _NS, 3)
            out[task] = {'decisions': t['decisions'], 'published': t['published'], 'last_decision_age_s': age,
                         'idle': t['idle'],
                         'missing': {m: dict(c) for m, c in t['missing'].items() if c}}
        return out

    def close(self) -> None:
        """Drop every person and release the shared models."""
        with self._lock:
            for person in self.people.values():
                person.perception.close()
            self.people.clear()
            self._route.clear()
            self.models.clear()
