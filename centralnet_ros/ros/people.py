"""
The fusion node's per-person inputs and outputs, the ROS4HRI way (REP-155).

With ``people.bodies`` / ``people.faces`` / ``people.voices`` set, :class:`PeopleTopics`
subscribes to ``/humans/<kind>/tracked`` (``hri_msgs/IdsList``).  When an id appears
it subscribes to that id's topics (``/humans/bodies/<id>/skeleton2d``,
``/humans/faces/<id>/aligned`` or ``cropped``, ``/humans/voices/<id>/audio`` and
``audio_info``: only those feeding an input some task reads) and creates the id's
result publishers (``/humans/bodies/<id>/gesture``, ``/humans/faces/<id>/expression``,
``/humans/voices/<id>/speech``: :data:`centralnet_ros.runtime.people.HRI_OUTPUTS`); when
the id leaves the list its subscriptions are destroyed at once and the person's
pending decisions are still published.  At most ``people.max_people`` ids per kind
are subscribed (the others are counted as refused), and the publishers of ids that
left are kept for at most as many ids again (an id that comes back reuses them), so
the node's entities stay bounded whatever the detector does.

With ``people.persons`` (the default) it also follows REP-155's persons when a person
manager publishes them: ``/humans/persons/tracked`` (``hri_msgs/IdsList``) and, per tracked
person (at most ``people.max_people``), its latched ``/humans/persons/<id>/face_id``,
``body_id``, ``voice_id`` (``std_msgs/String``, reliable + transient local, as libhri reads
them; only those of the kinds followed).  Each change goes to
:meth:`PeopleRuntime.link`: the associated face, body and voice share one runtime, and a
person's results go to each of its ids' topics.  ``/humans/candidate_matches``
(``hri_msgs/IdsMatch``) is not read: resolving candidate matches into persons is the person
manager's job (``hri_person_manager``), whose output this follows; ``alias`` and
``anonymous`` are not read either (a merge shows as ids moving to the other person).

Everything that decides is :class:`~centralnet_ros.runtime.people.PeopleRuntime`: a
callback stores (:meth:`PeopleRuntime.store`), a
:class:`~centralnet_ros.runtime.worker.DecisionWorker` of its own decides and publishes.
Each person's results go to its per-id topic and, as without ROS4HRI, to ``~/<task>``.
"""
from __future__ import annotations

from collections import Counter, OrderedDict
import functools
from typing import Any, Callable, Iterable

from centralnet_ros import messages as M
from centralnet_ros.ros import input_qos, latched_qos, output_qos
from centralnet_ros.ros.diagnostics import LOG_THROTTLE_S, PEOPLE_DETAIL
from centralnet_ros.ros.interfaces import (AUDIO_INFO_TYPE, DELIVERY_TIMEOUT_S, INPUT_MSG_TYPES, message_class,
                                           ros_message, wait_delivered)
from centralnet_ros.runtime.people import (HRI_INPUTS, HRI_OUTPUTS, ids_list_to_ids, PeopleConfig, PeopleRuntime,
                                           PERSON_LINKS)
from centralnet_ros.runtime.worker import DecisionWorker

__all__ = ['IDS_LIST_TYPE', 'LINK_TYPE', 'PeopleTopics', 'people_runtime']

IDS_LIST_TYPE = 'hri_msgs/msg/IdsList'
LINK_TYPE = 'std_msgs/msg/String'
"""``/humans/persons/<id>/face_id|body_id|voice_id`` (REP-155: latched)."""


def people_runtime(config: Any, people: PeopleConfig, perception: Any) -> PeopleRuntime:
    """
    Build the per-person runtime of a node whose implicit person runs ``perception``.

    Bodies are ROS4HRI ``Skeleton2D``: the default gesture bundle becomes gesture2d for
    persons; aligned faces get the mouth stage's fixed geometry (``face_pipelines``).  Tasks
    that read none of the followed kinds' inputs are left to the implicit person; task models
    whose bundle is the implicit person's are shared with it.
    """
    import copy

    from centralnet_ros.runtime.people import face_pipelines, use_2d_gesture_bundle
    pcfg = copy.deepcopy(config)
    fed = {inp for kind in people.kinds for inp in HRI_INPUTS[kind].values()}
    for task, state in perception.tasks.items():      # a task no followed kind feeds stays with the implicit person
        if not {plan.input for plan in state.plans} & fed:
            del pcfg.tasks[task]
    if not pcfg.tasks:
        raise ValueError(f'people.{"/".join(people.kinds)} feed {", ".join(sorted(fed))}, which no task of '
                         f'{", ".join(perception.tasks)} reads')
    if people.bodies:
        use_2d_gesture_bundle(pcfg)
    shared = {task: perception.models[task] for task, tc in pcfg.tasks.items()
              if task in perception.models and tc.bundle == config.tasks[task].bundle}
    pipelines = face_pipelines(people.face_image) if people.faces else {}
    return PeopleRuntime(pcfg, people, bundles=shared, pipelines=pipelines)


class PeopleTopics:
    """
    Per-id subscriptions and publishers of one active fusion node (see the module docstring).

    :param node: the rclpy node (subscriptions and publishers are created on it).
    :param runtime: the per-person runtime.
    :param settings: ``people.*`` parameters (:class:`PeopleConfig`), ``qos_reliability``, ``qos_depth``.
    :param publish_task: publishes one result on the node's ``~/<task>`` (``(result) -> None``).
    :param publish_events: publishes event-mode events on ``~/<task>`` (``(events, results) -> published events``).
    :param hri_message: builds the ROS4HRI message of an emotion or speech result.
    """

    def __init__(self, node: Any, runtime: PeopleRuntime, settings: PeopleConfig, *, qos_reliability: str,
                 qos_depth: int, publish_task: Callable[[Any], None],
                 publish_events: Callable[[list, list], list], hri_message: Callable[[Any], Any]) -> None:
        self.node = node
        self.runtime = runtime
        self.settings = settings
        self._qos = input_qos(qos_reliability, qos_depth)
        self._publish_task = publish_task
        self._publish_events = publish_events
        self._hri_message = hri_message
        self._tracked_subscriptions: list = []
        self._subscriptions: dict[tuple[str, str], list] = {}        # (kind, id) -> its subscriptions
        self._publishers: dict[tuple[str, str], dict[str, Any]] = {}  # (kind, id) -> task -> publisher
        self._retired: OrderedDict = OrderedDict()                    # publishers of ids that left (bounded)
        self.counts: Counter = Counter()
        self._worker: DecisionWorker | None = None
        self._started = False
        used = set(runtime.used_inputs)
        self._topics = {kind: {name: inp for name, inp in HRI_INPUTS[kind].items()
                               if (inp in used or (inp.endswith('_info') and inp[:-5] in used))
                               and (kind != 'faces' or name == settings.face_image)}
                        for kind in settings.kinds}
        self._outputs = {kind: [task for task, (k, _, _) in HRI_OUTPUTS.items() if k == kind and task in runtime.models]
                         for kind in settings.kinds}
        self._links = {name: kind for name, kind in PERSON_LINKS.items() if kind in settings.kinds} \
            if settings.persons else {}
        """Per-person link topics followed (``face_id`` -> ``faces``, ...): those of the kinds followed."""
        if self._links:
            message_class(LINK_TYPE)
        for kind, topics in self._topics.items():        # message types resolved now: configure fails, not a callback
            message_class(IDS_LIST_TYPE)
            for inp in topics.values():
                message_class(AUDIO_INFO_TYPE if inp.endswith('_info') else INPUT_MSG_TYPES[self._kind_of(inp)])
            for task in self._outputs[kind]:
                message_class(HRI_OUTPUTS[task][2])

    def topics_text(self) -> str:
        """Name the per-id topics subscribed, e.g. ``/humans/bodies/<id>/skeleton2d``."""
        text = ', '.join(f'/humans/{kind}/<id>/{name}' for kind, topics in self._topics.items() for name in topics) \
            or 'none (no task reads their inputs)'
        if self._links:
            text += '; persons: ' + ', '.join(f'/humans/persons/<id>/{name}' for name in self._links)
        return text

    def _kind_of(self, input_name: str) -> str:
        return self.runtime.config.inputs[input_name].kind

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Subscribe to the tracked lists and start the decision worker (the node's activate)."""
        self._started = True
        self._worker = DecisionWorker(self.runtime, self._publish, name='centralnet-people')
        ids_list = message_class(IDS_LIST_TYPE)
        for kind in self.settings.kinds + (('persons',) if self._links else ()):
            self._tracked_subscriptions.append(self.node.create_subscription(
                ids_list, f'/humans/{kind}/tracked', functools.partial(self._on_tracked, kind), self._qos))

    def stop(self) -> None:
        """Unsubscribe everything, decide and publish what is pending, destroy the publishers (deactivate)."""
        if not self._started:
            return
        self._started = False
        for sub in self._tracked_subscriptions:
            self._destroy(sub, self.node.destroy_subscription)
        self._tracked_subscriptions = []
        for key in list(self._subscriptions):
            self._unsubscribe(key)
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.drain(timeout=10.0)
            worker.stop(timeout=10.0)
        try:
            self._publish(self.runtime.flush())
        except Exception as exc:  # noqa: BLE001
            self.node.get_logger().warning(f'people: pending decisions lost ({type(exc).__name__}: {exc})')
        every = [pub for publishers in list(self._publishers.values()) + list(self._retired.values())
                 for pub in publishers.values()]
        if not wait_delivered(every, DELIVERY_TIMEOUT_S):
            self.node.get_logger().warning('people: decisions not acknowledged by every subscriber at deactivate')
        for pub in every:
            self._destroy(pub, self.node.destroy_publisher)
        self._publishers.clear()
        self._retired.clear()

    def stats(self) -> dict:
        """JSON-ready: the runtime's persons and counts, the ids subscribed, the node-side counts."""
        out = self.runtime.stats(detail=PEOPLE_DETAIL)
        out['subscribed'] = sorted(f'{k}:{i}' for k, i in self._subscriptions)
        out['node_counts'] = dict(self.counts)
        if self._worker is not None:
            out['worker'] = self._worker.stats()
        return out

    # -- ids coming and going -------------------------------------------------------------

    def _on_tracked(self, kind: str, msg: Any) -> None:
        if self._worker is None:
            return
        try:
            ids = ids_list_to_ids(msg)
        except ValueError as exc:
            self.counts['bad_ids_list'] += 1
            self.node.get_logger().warning(f'/humans/{kind}/tracked: message dropped ({exc})',
                                           throttle_duration_sec=LOG_THROTTLE_S)
            return
        wanted = list(dict.fromkeys(ids))
        held = [i for i in wanted if (kind, i) in self._subscriptions]
        room = self.settings.max_people - len(held)
        new = [i for i in wanted if (kind, i) not in self._subscriptions]
        if len(new) > room:
            self.counts['refused'] += len(new) - max(room, 0)
            new = new[:max(room, 0)]
        keep = set(held) | set(new)
        for key in [key for key in self._subscriptions if key[0] == kind and key[1] not in keep]:
            self._unsubscribe(key)
        for entity in new:
            try:
                self._subscribe(kind, entity)
            except Exception as exc:  # noqa: BLE001 - one id must never stop the node
                self.counts['subscribe_errors'] += 1
                self._unsubscribe((kind, entity))
                self.node.get_logger().error(f'/humans/{kind}/{entity}: cannot subscribe ({type(exc).__name__}: '
                                             f'{exc})', throttle_duration_sec=LOG_THROTTLE_S)
        self._worker.submit(self.runtime.track(kind, sorted(keep)))

    def _subscribe(self, kind: str, entity: str) -> None:
        subs = self._subscriptions.setdefault((kind, entity), [])
        self.counts['subscribed'] += 1
        if kind == 'persons':                   # its associations, latched by the person manager
            for name, linked in self._links.items():
                subs.append(self.node.create_subscription(
                    message_class(LINK_TYPE), f'/humans/persons/{entity}/{name}',
                    functools.partial(self._on_link, entity, linked), latched_qos()))
            return
        for name, inp in self._topics[kind].items():
            topic = f'/humans/{kind}/{entity}/{name}'
            callback = functools.partial(self._on_data, kind, entity, inp)
            if inp.endswith('_info'):           # latched format from a transient-local publisher, and any publisher
                info = message_class(AUDIO_INFO_TYPE)
                for qos in (latched_qos(), input_qos('best_effort', 1)):
                    subs.append(self.node.create_subscription(info, topic, callback, qos))
            else:
                subs.append(self.node.create_subscription(
                    message_class(INPUT_MSG_TYPES[self._kind_of(inp)]), topic, callback, self._qos))
        publishers = self._retired.pop((kind, entity), None)
        if publishers is None:
            publishers = {}
            for task in self._outputs[kind]:
                _, name, msgtype = HRI_OUTPUTS[task]
                publishers[task] = self.node.create_publisher(
                    message_class(msgtype), f'/humans/{kind}/{entity}/{name}', output_qos())
        self._publishers[(kind, entity)] = publishers

    def _unsubscribe(self, key: tuple[str, str]) -> None:
        for sub in self._subscriptions.pop(key, []):
            self._destroy(sub, self.node.destroy_subscription)
        self.counts['unsubscribed'] += 1
        publishers = self._publishers.pop(key, None)
        if publishers is not None:           # pending decisions of the id may still be published on them
            self._retired[key] = publishers
            while len(self._retired) > self.settings.max_people:
                _, old = self._retired.popitem(last=False)
                for pub in old.values():
                    self._destroy(pub, self.node.destroy_publisher)

    def _destroy(self, entity: Any, destroy: Callable[[Any], Any]) -> None:
        try:
            destroy(entity)
        except Exception as exc:  # noqa: BLE001
            self.node.get_logger().warning(f'people: destroying a subscription or publisher: {exc}')

    def _on_link(self, person: str, kind: str, msg: Any) -> None:
        worker = self._worker
        if worker is None or ('persons', person) not in self._subscriptions:
            return
        self.counts['person links'] += 1
        worker.submit(self.runtime.link(person, kind, msg))     # a malformed id is counted there

    # -- data and results -----------------------------------------------------------------

    def _on_data(self, kind: str, entity: str, input_name: str, msg: Any) -> None:
        worker = self._worker
        if worker is None:
            return
        self.counts[f'{kind} messages'] += 1
        try:
            due = self.runtime.store(kind, entity, input_name, msg, log_time_ns=self.node.get_clock().now().nanoseconds)
        except Exception as exc:  # noqa: BLE001 - the runtime counts bad messages; this is a last resort
            self.counts[f'ingest {kind}'] += 1
            self.node.get_logger().error(f'/humans/{kind}/{entity}: message dropped ({type(exc).__name__}: {exc})',
                                         throttle_duration_sec=LOG_THROTTLE_S)
            return
        worker.submit(due)

    def _publisher(self, task: str, ids: dict[str, str]) -> Any:
        kind = HRI_OUTPUTS[task][0]
        key = (kind, ids.get(kind))
        publishers = self._publishers.get(key) or self._retired.get(key) or {}
        return publishers.get(task)

    def _publish(self, results: Iterable[Any]) -> None:
        results = list(results)
        for result in results:
            self._publish_task(result)
            if not result.published or result.task not in HRI_OUTPUTS:
                continue
            self._send(result.task, result.ids, lambda r=result: self._message(r))
        events = self.runtime.take_events()
        if events:
            for event in self._publish_events(events, results):    # the events of event-mode tasks
                if event.task == 'gesture':
                    self._send(event.task, event.ids,                 # the ids the person had then
                               lambda e=event: self._event_message(e, results))

    def _send(self, task: str, ids: dict[str, str], build: Callable[[], Any]) -> None:
        publisher = self._publisher(task, ids)
        if publisher is None:
            self.counts['no publisher'] += 1
            return
        try:
            publisher.publish(build())
            self.counts[f'published {task}'] += 1
        except Exception as exc:  # noqa: BLE001 - never die on publishing
            self.counts[f'publish {task}'] += 1
            self.node.get_logger().error(f"{task}: publishing a person's result failed ({type(exc).__name__}: "
                                         f'{exc})', throttle_duration_sec=LOG_THROTTLE_S)

    def _message(self, result: Any) -> Any:
        if result.task == 'gesture':
            return M.build_classification(ros_message, labels=[label for label, _ in result.top_k],
                                          scores=[score for _, score in result.top_k], stamp_ns=result.stamp_ns,
                                          frame_id=result.frame_id)
        return self._hri_message(result)

    @staticmethod
    def _event_message(event: Any, results: list) -> Any:
        frame_id = next((r.frame_id for r in results if r.task == event.task), '')
        return M.build_classification(ros_message, labels=[event.label], scores=[event.score],
                                      stamp_ns=event.peak_ns, frame_id=frame_id)
