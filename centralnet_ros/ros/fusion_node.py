"""
fusion_node: the CentralNet perception runtime as a thin ROS 2 lifecycle node.

Everything that decides lives in :class:`centralnet_ros.runtime.perception.Perception`
(rclpy-free, shared with rosbag replay); this node only moves messages in and out:

* **configure** reads the parameters (:mod:`centralnet_ros.node_params`), loads the
  task bundles, builds the :class:`Perception` and starts the tasks' decision processes
  (waiting until they have loaded their bundles).  A bundle that cannot be loaded, a
  bad parameter, a missing message package or an unusable device (``device: cuda``
  without CUDA and ``on_device_failure: error``) fails the transition with one clear
  log line; with ``on_device_failure: fallback_cpu`` the node logs the fallback and
  runs on the CPU.
* **activate** creates the output publishers, publishes each task's LabelInfo (transient
  local) and subscribes to the inputs the tasks read.
* **deactivate** destroys the subscriptions, publishes what the runtime still had
  pending (an open speech segment), then destroys the publishers; **cleanup** closes
  the runtime (models dropped, CUDA cache emptied, decision processes stopped and reaped).
* ``ros2 run centralnet_ros fusion_node`` brings itself to active; ``--managed`` leaves
  the transitions to the launch file or a lifecycle manager.

Topics (relative names, remapped in ``launch/fusion.launch.py``):

======================================  =================================================
``image`` / ``image/compressed``        sensor_msgs/Image or CompressedImage (``image_transport``)
``depth``                               sensor_msgs/Image (16UC1 mm or 32FC1 m)
``audio`` + ``audio_info``              audio_common_msgs/AudioDataStamped + AudioInfo, or
                                        naoqi_bridge_msgs/AudioBuffer (``audio_type``)
``skeleton``                            geometry_msgs/PoseArray or hri_msgs/Skeleton2D
``~/<task>``                            vision_msgs/Classification (header of the data)
``~/<task>/events``                     centralnet_msgs/Event: onset, peak, end, label, score
``~/<task>/label_info``                 vision_msgs/LabelInfo, transient local
``~/<task>/fusion_weights``             std_msgs/Float32MultiArray (CentralNet weights)
``/humans/faces/<face_id>/expression``  hri_msgs/Expression (emotion, ``publish_hri``)
``/humans/voices/<voice_id>/speech``    hri_msgs/LiveSpeech (speech, ``publish_hri``)
``/humans/<kind>/tracked``, per-id      ROS4HRI people (``people.bodies|faces|voices``): one runtime per
topics in and out                       id, results also on ``/humans/bodies/<id>/gesture``,
                                        ``/humans/faces/<id>/expression``, ``/humans/voices/<id>/speech``
                                        (:mod:`centralnet_ros.ros.people`)
``/diagnostics``                        diagnostic_msgs/DiagnosticArray
======================================  =================================================

QoS: inputs use sensor-data QoS (keep last ``qos_depth``, volatile) with reliability
``qos_reliability``.  A *reliable* subscription receives nothing at all from a
*best-effort* publisher (most camera and audio drivers), silently; the diagnostics
say so when an input stays silent.  ``audio_info`` is subscribed twice, reliable +
transient local (to get the AudioInfo latched by a publisher that started earlier)
and best effort + volatile (to match any publisher), since each of the two alone
misses one kind of publisher.

A subscription callback only hands the message to :meth:`Perception.store` (convert and
buffer) and passes the decisions it made due to :class:`~centralnet_ros.runtime.worker.TaskWorkers`,
one decision thread per task that runs the features and model and publishes; a slow model therefore
never blocks or drops sensor messages, nor delays another task's decisions.  A task with
``<task>.decision_process`` (on by default for speech and emotion, off for gesture) runs its features
and model in a process of its own (:mod:`centralnet_ros.runtime.decision_process`, started and loaded at configure,
stopped and reaped at cleanup and shutdown, restarted if it dies), so their long decisions never
hold this interpreter's lock while gesture decides; that process runs ``<task>.decision_nice``
below the node's CPU priority.  A task decided in the node runs its decision thread at that nice
value (speech and emotion: 10), so its long decisions take only what the callbacks and the fast
tasks (gesture) leave.  Bad messages are counted and never stop the node.
Message types and topics are in :mod:`centralnet_ros.ros.interfaces`, the diagnostics in
:mod:`centralnet_ros.ros.diagnostics`.
"""
from __future__ import annotations

import array
from collections import Counter
import dataclasses
import functools
import gc
import logging
import time
from typing import Any, Iterable, Mapping

from centralnet_ros import messages as M
from centralnet_ros import node_params as NP
from centralnet_ros.node_params import FUSION_NODE
from centralnet_ros.ros import (declare_parameters, input_qos, latched_qos, logged_transition, output_qos,
                                read_parameters, run_lifecycle_node)
from centralnet_ros.ros.diagnostics import diagnostic_reports, DiagnosticReport, LOG_THROTTLE_S, NodeDiagnostics
from centralnet_ros.ros.diagnostics import RosLogHandler
from centralnet_ros.ros.interfaces import (AUDIO_INFO_TYPE, DELIVERY_TIMEOUT_S, EVENT_TYPE, fusion_weights_layout,
                                           HRI_OUTPUTS, INPUT_MSG_TYPES, input_topic, message_class, ros_message,
                                           wait_delivered)
from centralnet_ros.runtime.perception import AudioFormatConfig, Perception, TaskResult
from centralnet_ros.runtime.worker import TaskWorkers
from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

__all__ = ['FusionNode', 'decision_thread_nice', 'freeze_heap', 'main']


@dataclasses.dataclass
class _TaskOutputs:
    """The publishers of one task while the node is active."""

    result: Any
    label_info: Any
    fusion_weights: Any
    hri: Any = None
    events: Any = None          # centralnet_msgs/Event, when that package is installed


# --------------------------------------------------------------------------- the node

class FusionNode(LifecycleNode):
    """Lifecycle node around :class:`~centralnet_ros.runtime.perception.Perception` (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(FUSION_NODE, **kwargs)
        declare_parameters(self, FUSION_NODE)
        self._params: dict[str, Any] = {}
        self._perception: Perception | None = None
        self._configure_error: str | None = None
        self._lifecycle_label = 'unconfigured'
        self._input_subscriptions: list = []
        self._outputs: dict[str, _TaskOutputs] = {}
        self._output_publishers: list = []
        self._label_map: dict[str, dict[str, str]] = {}
        self._weights_msgs: dict[str, Any] = {}
        self._hri_available = False
        self._people: Any = None                      # PeopleTopics when people.* follows ROS4HRI ids
        self._events_available = False
        self._active_since: float | None = None
        self._arrivals: dict[str, list] = {}
        self._audio_format: dict[str, tuple] = {}
        self._last_results: dict[str, TaskResult] = {}
        self._node_errors: Counter = Counter()
        self._previous: dict[str, int] = {}
        self._worker: TaskWorkers | None = None
        self._diagnostics: NodeDiagnostics | None = None
        # thresholds at run time: after a successful set where rclpy has it (Iron, Jazzy),
        # else in the on-set callback, validating first (Humble)
        if hasattr(self, 'add_post_set_parameters_callback'):
            self.add_post_set_parameters_callback(self._after_parameters_set)
        else:
            self.add_on_set_parameters_callback(self._on_set_parameters)
        self._setup_bundle_swap()
        self._log_handler = RosLogHandler(self.get_logger())
        logging.getLogger('centralnet_ros').addHandler(self._log_handler)
        self._released = False
        self._diagnostics = NodeDiagnostics(self, float(self.get_parameter('diagnostics_period_s').value),
                                            self._compute_reports)

    def _setup_bundle_swap(self) -> None:
        """Hot swap (:mod:`.bundle_swap`): a new ``<task>.bundle`` value, or the ``~/reload_bundles`` service."""
        from . import bundle_swap
        self.add_on_set_parameters_callback(
            lambda parameters: bundle_swap.on_set_bundles(self, parameters, SetParametersResult))
        try:
            from std_srvs.srv import Trigger
        except ImportError:
            self.get_logger().info('std_srvs not installed: no ~/reload_bundles service (bundle parameters still swap)')
            return
        if hasattr(self, 'create_service'):
            self._reload_service = self.create_service(
                Trigger, bundle_swap.RELOAD_SERVICE, lambda req, res: bundle_swap.reload_bundles(self, req, res))

    # -- lifecycle ------------------------------------------------------------------------

    @logged_transition
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Read the parameters, load the bundles and build the runtime."""
        self._configure_error = None
        try:
            self._perception = self._build_perception()
        except Exception as exc:  # noqa: BLE001 - every configure failure is logged, none is fatal
            self._configure_error = self._describe_configure_error(exc)
            self.get_logger().error(f'cannot configure: {self._configure_error}')
            self._perception = None
            return TransitionCallbackReturn.FAILURE
        p, perception = self._params, self._perception
        requested = p['device']
        if requested.startswith('cuda') and 'cuda' not in perception.device:
            self.get_logger().warning(
                f'device {requested} is unusable (CUDA absent or GPU index out of range); running on '
                f'{perception.device} because on_device_failure is fallback_cpu')
        self._label_map = {task: perception.label_info(task).label_map for task in perception.tasks}
        self._arrivals = {name: [0, None] for name in perception.inputs}
        self._previous = {}
        self._diagnostics.set_hardware_id(perception.device)
        freeze_heap()
        inputs = ', '.join(f'{input_topic(n, k)} ({INPUT_MSG_TYPES[k]})' for n, k in perception.inputs.items())
        self.get_logger().info(
            f'configured tasks {", ".join(perception.tasks)} on {perception.device} ({perception.backend}); '
            f'inputs: {inputs}')
        self._lifecycle_label = 'inactive'
        return TransitionCallbackReturn.SUCCESS

    @logged_transition
    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Create the publishers, publish LabelInfo, subscribe to the inputs."""
        try:
            self._create_publishers()
        except Exception as exc:  # noqa: BLE001
            self.get_logger().error(f'cannot create the publishers: {type(exc).__name__}: {exc}')
            self._destroy_publishers()
            return TransitionCallbackReturn.FAILURE
        result = super().on_activate(state)  # enables the lifecycle publishers
        if result != TransitionCallbackReturn.SUCCESS:
            self._destroy_publishers()
            return result
        for task in self._outputs:
            self._publish_label_info(task)
        self._active_since = time.monotonic()
        self._worker = TaskWorkers(self._perception, self._publish_results, tasks=self._perception.tasks,
                                   nice=decision_thread_nice(self._perception))
        try:
            self._create_subscriptions()
            if self._people is not None:
                self._people.start()
        except Exception as exc:  # noqa: BLE001
            self.get_logger().error(f'cannot subscribe to the inputs: {type(exc).__name__}: {exc}')
            self._active_since = None
            self._destroy_subscriptions()
            self._stop_worker(drain=False)
            super().on_deactivate(state)
            self._destroy_publishers()
            return TransitionCallbackReturn.FAILURE
        self._lifecycle_label = 'active'
        return TransitionCallbackReturn.SUCCESS

    @logged_transition
    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Unsubscribe, publish what was pending, destroy the publishers."""
        self._destroy_subscriptions()
        self._active_since = None
        self._stop_worker(drain=True)
        if self._perception is not None:
            try:
                self._publish_results(self._perception.flush())
            except Exception as exc:  # noqa: BLE001
                self._node_errors['flush'] += 1
                self.get_logger().warning(f'pending decisions lost at deactivate: {type(exc).__name__}: {exc}')
        if not wait_delivered(self._output_publishers, DELIVERY_TIMEOUT_S):
            self.get_logger().warning(f'decisions not acknowledged by every subscriber within {DELIVERY_TIMEOUT_S} s '
                                      'at deactivate')
        result = super().on_deactivate(state)
        self._destroy_publishers()
        self._lifecycle_label = 'inactive'
        return result

    @logged_transition
    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Close the runtime: the models and their (GPU) memory are released."""
        self._destroy_subscriptions()
        self._stop_worker(drain=False)
        self._destroy_publishers()
        self._close_perception()
        self._lifecycle_label = 'unconfigured'
        self._diagnostics.sync()
        return TransitionCallbackReturn.SUCCESS

    @logged_transition
    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release everything."""
        self.release()
        self._lifecycle_label = 'finalized'
        return TransitionCallbackReturn.SUCCESS

    @logged_transition
    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Drop the runtime and go back to unconfigured."""
        self.get_logger().error(f'error during a transition from {state.label}; releasing the runtime')
        self._destroy_subscriptions()
        self._stop_worker(drain=False)
        self._destroy_publishers()
        self._close_perception()
        self._lifecycle_label = 'unconfigured'
        self._diagnostics.sync()
        return TransitionCallbackReturn.SUCCESS

    def release(self) -> None:
        """Destroy subscriptions, the decision worker, publishers, timers and the runtime (idempotent)."""
        self._destroy_subscriptions()
        self._stop_worker(drain=False)
        self._destroy_publishers()
        self._close_perception()
        if self._released:
            return
        self._released = True
        self._diagnostics.close()
        logging.getLogger('centralnet_ros').removeHandler(self._log_handler)

    def _stop_people(self) -> None:
        """Per-id subscriptions gone, persons' pending decisions published, their publishers destroyed."""
        if self._people is not None:
            try:
                self._people.stop()
            except Exception as exc:  # noqa: BLE001
                self.get_logger().warning(f'stopping the per-person topics: {type(exc).__name__}: {exc}')

    def _stop_worker(self, *, drain: bool) -> None:
        """Stop the decision worker (``drain``: run and publish what is queued first)."""
        worker, self._worker = self._worker, None
        if worker is None:
            return
        if not drain and self._perception is not None:
            self._perception.interrupt_processes()     # never wait for a long decision in a child
        if drain and not worker.drain(timeout=10.0):
            self.get_logger().warning('decisions still running after 10 s at deactivate; dropping the rest')
        if not worker.stop(timeout=10.0):
            self.get_logger().warning('the decision worker did not stop within 10 s')

    def destroy_node(self) -> None:
        """Release the runtime, then destroy the node."""
        self.release()
        super().destroy_node()

    # -- configuration --------------------------------------------------------------------

    def _build_perception(self) -> Perception:
        self._params = read_parameters(self, FUSION_NODE)
        config = NP.perception_config(self._params)
        fallback = _audio_fallback(self._params)
        if fallback is not None and 'audio' in config.inputs:
            config.inputs['audio'].audio_format = fallback
        perception = Perception(config)
        perception.set_voice(self._params['voice_id'])   # the voice the emotion model adapts to
        try:  # resolve every message type now: a missing package fails configure, not a callback
            for kind in set(perception.inputs.values()):
                message_class(INPUT_MSG_TYPES[kind])
            if perception.audio_inputs:
                message_class(AUDIO_INFO_TYPE)
            for msgtype in ('vision_msgs/msg/Classification', 'vision_msgs/msg/LabelInfo',
                            'std_msgs/msg/Float32MultiArray'):
                message_class(msgtype)
        except ImportError:
            perception.close()
            raise
        self._hri_available = False
        try:
            message_class(EVENT_TYPE)
            self._events_available = True
        except ImportError as exc:
            self._events_available = False
            self.get_logger().warning(f'{exc}; ~/<task>/events is not published (tools/ros_wheels.sh builds it), '
                                      'the Classification on ~/<task> still is')
        if self._params['publish_hri']:
            wanted = [HRI_OUTPUTS[t] for t in perception.tasks if t in HRI_OUTPUTS]
            try:
                for msgtype in wanted:
                    message_class(msgtype)
                self._hri_available = True
            except ImportError as exc:
                self.get_logger().warning(f'publish_hri is true but {exc}; the ROS4HRI outputs are disabled')
        try:
            self._start_decision_processes(perception)
            self._people = self._build_people(config, perception)
        except Exception:
            perception.close()
            raise
        return perception

    def _start_decision_processes(self, perception: Perception) -> None:
        """Start the processes of the tasks with ``<task>.decision_process`` and wait until their models are loaded."""
        for task, process in perception.start_processes().items():
            process.wait_ready()                 # a child that cannot load its bundle fails configure, named
            self.get_logger().info(f'{task}: features and model in process {process.pid} (nice +{process.nice}, '
                                   f'ready in {process.load_s:.1f} s)')

    def _build_people(self, config: Any, perception: Perception) -> Any:
        """Build the per-person runtime and its per-id topics when ``people.*`` follows ROS4HRI ids (else None)."""
        from centralnet_ros.ros.people import people_runtime, PeopleTopics
        from centralnet_ros.runtime.people import PeopleConfig
        settings = PeopleConfig(**{k.split('.', 1)[1]: v for k, v in self._params.items() if k.startswith('people.')})
        if not settings.kinds:
            return None
        runtime = people_runtime(config, settings, perception)
        try:
            people = PeopleTopics(self, runtime, settings, qos_reliability=self._params['qos_reliability'],
                                  qos_depth=self._params['qos_depth'],
                                  publish_task=lambda result: self._publish_decisions([result]),
                                  publish_events=self._publish_events, hri_message=self._hri_msg)
        except Exception:
            runtime.close()
            raise
        self.get_logger().info(f'ROS4HRI people: {", ".join(settings.kinds)} (at most {settings.max_people} '
                               f'ids each; per-id topics {people.topics_text()})')
        return people

    def _describe_configure_error(self, exc: BaseException) -> str:
        name = type(exc).__name__
        if name == 'DeviceUnavailable':
            return (f'{exc}. on_device_failure is error, so configure fails: set device:=cpu, or '
                    'on_device_failure:=fallback_cpu to run on the CPU')
        if name == 'BundleError':
            return f'{exc} (set <task>.bundle to a bundle folder or a name in share/centralnet_ros/models)'
        return f'{name}: {exc}'

    def _close_perception(self) -> None:
        perception, self._perception = self._perception, None
        self._weights_msgs = {}
        people, self._people = self._people, None
        if people is not None:
            people.runtime.close()
        if perception is not None:
            try:
                perception.close()
            except Exception as exc:  # noqa: BLE001
                self.get_logger().warning(f'closing the runtime: {type(exc).__name__}: {exc}')

    # -- publishers and subscriptions -----------------------------------------------------

    def _create_publishers(self) -> None:
        classification = message_class('vision_msgs/msg/Classification')
        label_info = message_class('vision_msgs/msg/LabelInfo')
        weights = message_class('std_msgs/msg/Float32MultiArray')
        for task in self._perception.tasks:
            outputs = _TaskOutputs(
                result=self.create_lifecycle_publisher(classification, f'~/{task}', output_qos()),
                label_info=self.create_lifecycle_publisher(label_info, f'~/{task}/label_info', latched_qos()),
                fusion_weights=self.create_lifecycle_publisher(weights, f'~/{task}/fusion_weights', output_qos()))
            self._outputs[task] = outputs
            self._output_publishers += [outputs.result, outputs.label_info, outputs.fusion_weights]
            if self._events_available:
                outputs.events = self.create_lifecycle_publisher(message_class(EVENT_TYPE), f'~/{task}/events',
                                                                 output_qos())
                self._output_publishers.append(outputs.events)
            if self._hri_available and task in HRI_OUTPUTS:
                topic = (f'/humans/faces/{self._params["face_id"]}/expression' if task == 'emotion'
                         else f'/humans/voices/{self._params["voice_id"]}/speech')
                outputs.hri = self.create_lifecycle_publisher(message_class(HRI_OUTPUTS[task]), topic, output_qos())
                self._output_publishers.append(outputs.hri)

    def _destroy_publishers(self) -> None:
        publishers, self._output_publishers, self._outputs = self._output_publishers, [], {}
        for publisher in publishers:
            try:
                self.destroy_lifecycle_publisher(publisher)
            except Exception as exc:  # noqa: BLE001
                self.get_logger().warning(f'destroying a publisher: {exc}')

    def _create_subscriptions(self) -> None:
        perception, p = self._perception, self._params
        qos = input_qos(p['qos_reliability'], p['qos_depth'])
        for name, kind in perception.inputs.items():
            callback = functools.partial(self._on_input, name)
            self._input_subscriptions.append(self.create_subscription(
                message_class(INPUT_MSG_TYPES[kind]), input_topic(name, kind), callback, qos))
        info = message_class(AUDIO_INFO_TYPE) if perception.audio_inputs else None
        for name in perception.audio_inputs:
            callback = functools.partial(self._on_audio_info, name)
            # latched AudioInfo from a transient-local publisher, and any publisher at all
            for info_qos in (latched_qos(), input_qos('best_effort', 1)):
                self._input_subscriptions.append(self.create_subscription(info, f'{name}_info', callback, info_qos))

    def _destroy_subscriptions(self) -> None:
        self._stop_people()
        subscriptions, self._input_subscriptions = self._input_subscriptions, []
        for subscription in subscriptions:
            try:
                self.destroy_subscription(subscription)
            except Exception as exc:  # noqa: BLE001
                self.get_logger().warning(f'destroying a subscription: {exc}')

    # -- callbacks ------------------------------------------------------------------------

    def _now_ns(self) -> int:
        return int(self.get_clock().now().nanoseconds)

    def _on_input(self, name: str, msg: Any) -> None:
        """Hand one input message to the runtime; the decisions it made due go to the worker."""
        perception, worker = self._perception, self._worker
        if perception is None or worker is None or self._active_since is None:
            return
        arrival = self._arrivals.setdefault(name, [0, None])
        arrival[0] += 1
        arrival[1] = time.monotonic()
        try:
            due = perception.store(name, msg, log_time_ns=self._now_ns())
        except Exception as exc:  # noqa: BLE001 - the runtime counts bad messages; this is a last resort
            self._node_errors[f'ingest {name}'] += 1
            self.get_logger().error(f'{name}: message dropped ({type(exc).__name__}: {exc})',
                                    throttle_duration_sec=LOG_THROTTLE_S)
            return
        worker.submit(due)

    def _on_audio_info(self, name: str, msg: Any) -> None:
        """Record the AudioInfo of audio input ``name``."""
        perception = self._perception
        if perception is None:
            return
        try:
            ok = perception.set_audio_info(name, msg)
        except Exception as exc:  # noqa: BLE001
            self._node_errors[f'audio_info {name}'] += 1
            self.get_logger().error(f'{name}_info: {type(exc).__name__}: {exc}', throttle_duration_sec=LOG_THROTTLE_S)
            return
        if not ok:
            self.get_logger().warning(f'{name}_info: malformed AudioInfo ignored (counted in diagnostics)',
                                      throttle_duration_sec=LOG_THROTTLE_S)
            return
        fmt = tuple(M.audio_format(msg)[:3])
        if self._audio_format.get(name) != fmt:
            self._audio_format[name] = fmt
            self.get_logger().info(f'{name}: {fmt[0]} channel(s), {fmt[1]} Hz, {fmt[2]}')

    def _publish_results(self, results: Iterable[TaskResult]) -> None:
        results = list(results)
        self._publish_decisions(results)
        if self._perception is not None:
            self._publish_events(self._perception.take_events(), results)

    def _publish_events(self, events: Iterable[Any], results: list[TaskResult]) -> list:
        """
        Publish every event as a centralnet_msgs/Event on ``~/<task>/events``; return those published on ``~/<task>``.

        Event tasks (``output: events``) also publish it as a Classification on ``~/<task>``,
        stamped at the peak (utterance tasks publish their accepted decisions there).
        """
        frame_ids = {r.task: r.frame_id for r in results}
        published = []
        for event in events:
            outputs = self._outputs.get(event.task)
            state = self._perception.tasks.get(event.task) if self._perception is not None else None
            last = self._last_results.get(event.task)
            frame_id = frame_ids.get(event.task, last.frame_id if last is not None else '')
            if outputs is not None and outputs.events is not None:
                try:
                    outputs.events.publish(M.build_event(
                        ros_message, task=event.task, label=event.label, score=event.score, onset_ns=event.onset_ns,
                        peak_ns=event.peak_ns, end_ns=event.end_ns, stamp_ns=event.stamp_ns,
                        decisions=event.decisions, person_id=event.person, frame_id=frame_id))
                except Exception as exc:  # noqa: BLE001 - never die on publishing
                    self._node_errors[f'publish {event.task} events'] += 1
                    self.get_logger().error(f'{event.task}: publishing an Event failed ({type(exc).__name__}: {exc})',
                                            throttle_duration_sec=LOG_THROTTLE_S)
            if outputs is None or state is None or state.event_config.mode != 'events' \
                    or state.config.output != 'events':
                continue
            try:
                outputs.result.publish(M.build_classification(
                    ros_message, labels=[event.label], scores=[event.score], stamp_ns=event.peak_ns,
                    frame_id=frame_id))
                published.append(event)
            except Exception as exc:  # noqa: BLE001 - never die on publishing
                self._node_errors[f'publish {event.task}'] += 1
                self.get_logger().error(f'{event.task}: publishing an event failed ({type(exc).__name__}: {exc})',
                                        throttle_duration_sec=LOG_THROTTLE_S)
        return published

    def _publish_decisions(self, results: list[TaskResult]) -> None:
        for result in results:
            self._last_results[result.task] = result
            outputs = self._outputs.get(result.task)
            if outputs is not None and outputs.hri is not None and result.state is not None \
                    and result.task == 'emotion' and not getattr(result, 'person', ''):
                # the voice's smoothed emotion, after every decision (a person's goes on its own topic)
                try:
                    outputs.hri.publish(self._hri_msg(result))
                except Exception as exc:  # noqa: BLE001 - never die on publishing
                    self._node_errors[f'publish {result.task}'] += 1
                    self.get_logger().error(f'{result.task}: publishing the state failed ({exc})',
                                            throttle_duration_sec=LOG_THROTTLE_S)
            if not result.published or outputs is None:
                continue
            try:
                outputs.result.publish(M.build_classification(
                    ros_message, labels=[label for label, _ in result.top_k],
                    scores=[score for _, score in result.top_k], stamp_ns=result.stamp_ns,
                    frame_id=result.frame_id))
                if result.fusion_weights is not None:
                    outputs.fusion_weights.publish(self._weights_msg(result.task, result.fusion_weights))
                if outputs.hri is not None and not getattr(result, 'person', '') \
                        and not (result.state is not None and result.task == 'emotion'):  # person: own topic
                    outputs.hri.publish(self._hri_msg(result))
            except Exception as exc:  # noqa: BLE001 - never die on publishing
                self._node_errors[f'publish {result.task}'] += 1
                self.get_logger().error(f'{result.task}: publishing failed ({type(exc).__name__}: {exc})',
                                        throttle_duration_sec=LOG_THROTTLE_S)

    def _weights_msg(self, task: str, weights: Mapping[str, Any]) -> Any:
        """Float32MultiArray of the task's fusion weights (built once: they are constants of the model)."""
        msg = self._weights_msgs.get(task)
        if msg is None:
            dims, data = fusion_weights_layout(weights)
            layout = ros_message('std_msgs/msg/MultiArrayLayout', data_offset=0, dim=[
                ros_message('std_msgs/msg/MultiArrayDimension', label=label, size=size, stride=stride)
                for label, size, stride in dims])
            msg = ros_message('std_msgs/msg/Float32MultiArray', layout=layout, data=array.array('f', data))
            self._weights_msgs[task] = msg
        return msg

    def _hri_msg(self, result: TaskResult) -> Any:
        label, score = result.label, result.score
        if result.task == 'emotion' and result.state is not None:      # (voice id, label, score) smoothed
            _, label, score = result.state
        label = self._label_map.get(result.task, {}).get(label, label)
        if result.task == 'emotion':
            return M.build_expression(ros_message, expression=label, confidence=score,
                                      stamp_ns=result.stamp_ns, frame_id=result.frame_id)
        return M.build_live_speech(ros_message, final=label, confidence=score,
                                   stamp_ns=result.stamp_ns, frame_id=result.frame_id)

    def _publish_label_info(self, task: str) -> None:
        outputs, perception = self._outputs.get(task), self._perception
        if outputs is None or perception is None:
            return
        info = perception.label_info(task)
        outputs.label_info.publish(M.build_label_info(ros_message, labels=info.labels, stamp_ns=self._now_ns(),
                                                      threshold=info.threshold))

    # -- parameters -----------------------------------------------------------------------

    @staticmethod
    def _thresholds(parameters: Iterable[Any]) -> dict[str, float]:
        out = {}
        for parameter in parameters:
            task, _, leaf = parameter.name.partition('.')
            if leaf == 'score_threshold' and task in NP.TASKS:
                out[task] = float(parameter.value)
        return out

    def _apply_thresholds(self, thresholds: Mapping[str, float]) -> None:
        perception = self._perception
        for task, value in thresholds.items():
            if perception is None or task not in perception.tasks:
                continue  # read at the next configure
            perception.set_threshold(task, value)
            self.get_logger().info(f'{task}: score threshold set to {value}')
            self._publish_label_info(task)  # LabelInfo carries the threshold

    def _forget_voices(self, parameters: Iterable[Any]) -> None:
        """``forget_voice``: drop a voice's adaptation statistics ('*': every voice)."""
        for parameter in parameters:
            if parameter.name == 'forget_voice' and parameter.value and self._perception is not None:
                voice = None if parameter.value == '*' else str(parameter.value)
                n = self._perception.forget_voice(voice)
                self.get_logger().info(f'forgot the adaptation statistics of {parameter.value} ({n} held)')

    def _after_parameters_set(self, parameters: list) -> None:
        """Post-set callback (rclpy >= Iron): the values are valid and stored."""
        self._apply_thresholds(self._thresholds(parameters))
        self._forget_voices(parameters)

    def _on_set_parameters(self, parameters: list) -> SetParametersResult:
        """On-set callback (Humble): validate against node_params, then apply the thresholds."""
        for parameter in parameters:
            spec = NP.parameter_spec(FUSION_NODE, parameter.name)
            if spec is None:
                continue
            value = list(parameter.value) if spec.value_type == 'string_array' else parameter.value
            problems = spec.check(value)
            if problems:
                return SetParametersResult(successful=False, reason='; '.join(problems))
        self._apply_thresholds(self._thresholds(parameters))
        self._forget_voices(parameters)
        return SetParametersResult(successful=True)

    # -- diagnostics ----------------------------------------------------------------------

    def _compute_reports(self, store: bool) -> list[DiagnosticReport]:
        """Compute the current diagnostic reports (``store``: update the "since the last report" counters)."""
        perception, people = self._perception, self._people
        stats = people_stats = None
        if perception is not None:
            ros_now = self._now_ns()
            try:
                stats = perception.stats(now_ns=ros_now if ros_now > 0 else None)
                people_stats = people.stats() if people is not None else None
            except Exception as exc:  # noqa: BLE001
                self._node_errors['stats'] += 1
                self.get_logger().error(f'diagnostics: {type(exc).__name__}: {exc}',
                                        throttle_duration_sec=LOG_THROTTLE_S)
        params = self._params or {'tasks': list(self.get_parameter('tasks').value),
                                  'device': self.get_parameter('device').value}
        errors = Counter(self._node_errors)
        if self._diagnostics is not None and self._diagnostics.errors:
            errors['diagnostics'] = self._diagnostics.errors
        worker = self._worker
        if worker is not None:
            errors['decisions dropped (backlog)'] = worker.dropped
            errors['decision worker errors'] = worker.errors
        return diagnostic_reports(
            stats, state=self._lifecycle_label, params=params,
            inputs=perception.inputs if perception is not None else {},
            arrivals={k: tuple(v) for k, v in self._arrivals.items()}, active_since=self._active_since,
            now=time.monotonic(), previous=self._previous if store else dict(self._previous),
            last_results=self._last_results, node_errors=errors, configure_error=self._configure_error,
            people=people_stats)


def decision_thread_nice(perception: Perception) -> dict[str, int]:
    """
    Return the nice value of each task's decision thread in this process.

    ``<task>.decision_nice`` for a task decided here; 0 for a task with a decision process, whose
    thread here only cuts the window, copies it out and waits (the process runs at
    ``decision_nice``): at a low priority that thread would again be preempted while it holds the
    interpreter lock between those steps.
    """
    return {task: 0 if state.process is not None else state.config.decision_nice
            for task, state in perception.tasks.items()}


def freeze_heap() -> None:
    """
    Collect the garbage, then put every object alive now beyond the cyclic garbage collector's reach.

    Configure leaves some 350,000 tracked objects (modules, bundles, ONNX Runtime sessions) that live
    as long as the node; a full collection walks them all while holding the GIL, which stalls every
    thread of the node, callbacks and decision workers alike: 0.45 s on this project's (loaded) 2-core
    machine (benchmarks/results/gc_pause.md).  Frozen (``gc.freeze``), they are no longer walked, so a
    full collection while active walks only the objects made since: well under a millisecond.
    Frozen objects are still freed by reference counting when dropped (a model replaced by a hot swap
    or closed at cleanup has no reference cycles); configure thaws and collects before it freezes again.
    A bundle swapped in while active stays with the collector (a few thousand objects: a millisecond).
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _audio_fallback(values: Mapping[str, Any]) -> AudioFormatConfig | None:
    """
    Return the audio format assumed until an AudioInfo arrives, if the parameters give one.

    Read from ``audio_info.sample_rate`` (0: none, wait for AudioInfo),
    ``audio_info.channels`` and ``audio_info.sample_format`` when node_params declares
    them; without them audio waits for its AudioInfo.
    """
    rate = values.get('audio_info.sample_rate')
    if not rate:
        return None
    return AudioFormatConfig(channels=int(values.get('audio_info.channels', 1)), sample_rate=int(rate),
                             sample_format=str(values.get('audio_info.sample_format', 'S16LE')))


def main(args: list[str] | None = None) -> int:
    """``ros2 run centralnet_ros fusion_node [--managed] [--ros-args ...]``."""
    return run_lifecycle_node(FusionNode, args, node_name=FUSION_NODE)


if __name__ == '__main__':
    raise SystemExit(main())
