"""
Diagnostics of the fusion node: reports from the runtime's statistics, and their publication.

* :func:`diagnostic_reports` builds :class:`DiagnosticReport` s (one for the runtime,
  one per input, one per task, and with ROS4HRI people one for them: :func:`people_report`)
  from :meth:`Perception.stats`, :meth:`PeopleRuntime.stats` and the node's own
  counters -- pure Python, tested without ROS;
* :class:`NodeDiagnostics` publishes them on ``/diagnostics``, through
  ``diagnostic_updater`` when it is installed, else as a DiagnosticArray on a timer;
* :class:`RosLogHandler` forwards the runtime's Python log records to the node's
  logger, throttled per message template.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import time
from typing import Any, Callable, Mapping

from centralnet_ros.ros.interfaces import INPUT_MSG_TYPES, input_topic

__all__ = ['DiagnosticReport', 'diagnostic_reports', 'people_report', 'NodeDiagnostics', 'RosLogHandler',
           'LOG_THROTTLE_S', 'PEOPLE_DETAIL']

LOG_THROTTLE_S = 5.0
"""Seconds between two log lines of the same template (the counts are in the diagnostics)."""

PEOPLE_DETAIL = 10
"""Persons the ``people`` report describes one by one (task by task); the others are summarised in one line."""


@dataclasses.dataclass
class DiagnosticReport:
    """One diagnostic status before it becomes a diagnostic_msgs/DiagnosticStatus."""

    name: str
    level: str                      # 'ok', 'warn' or 'error'
    message: str
    values: dict[str, Any]


def _fmt_counts(counts: Mapping[str, int] | None) -> str:
    return ', '.join(f'{k}: {v}' for k, v in sorted((counts or {}).items())) or 'none'


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return '-'
    if isinstance(value, float):
        return f'{value:.{digits}f}'
    return str(value)


def diagnostic_reports(stats: Mapping[str, Any] | None, *, state: str, params: Mapping[str, Any],
                       inputs: Mapping[str, str], arrivals: Mapping[str, tuple[int, float | None]],
                       active_since: float | None, now: float, previous: dict[str, int],
                       last_results: Mapping[str, Any], node_errors: Mapping[str, int],
                       configure_error: str | None, people: Mapping[str, Any] | None = None) -> list[DiagnosticReport]:
    """
    Build the node's diagnostics from :meth:`Perception.stats` and the node's own counters.

    ``people``: the per-person runtime's statistics (``PeopleTopics.stats``) when the node
    follows ROS4HRI ids: one more report, :func:`people_report`.

    ``inputs``: input name -> kind; ``arrivals``: input name -> (messages received by the
    callback, monotonic time of the last one); ``active_since``: monotonic time of the
    activation (None when not active); ``previous``: counters of the last report (keys
    ``'<input>:bad'`` and ``'<task>:errors'``), updated in place, so that a WARN means
    "new problems since the last report".
    """
    timeout = float(params.get('input_timeout_s', 2.0))
    reliability = params.get('qos_reliability', 'best_effort')
    reports = []
    runtime_values = {'state': state, 'device requested': params.get('device', ''),
                      'on_device_failure': params.get('on_device_failure', ''),
                      'tasks': ', '.join(params.get('tasks', [])), 'qos_reliability': reliability}
    if stats is not None:
        runtime_values.update({'device': stats['device'], 'backend': stats['backend'],
                               'decisions': stats['decisions'], 'global resets (stamp loops)': stats['global_resets'],
                               'messages read by no task': _fmt_counts(stats['unused_messages'])})
    runtime_values.update({f'node errors ({k})': v for k, v in sorted(node_errors.items()) if v})
    if configure_error is not None:
        reports.append(DiagnosticReport('runtime', 'error', f'configure failed: {configure_error}', runtime_values))
    elif stats is None:
        reports.append(DiagnosticReport('runtime', 'ok', f'{state} (not configured)', runtime_values))
    else:
        reports.append(DiagnosticReport('runtime', 'ok', f'{state} on {stats["device"]} ({stats["backend"]})',
                                        runtime_values))
    if stats is None:
        return reports
    for name, kind in inputs.items():
        d = stats['inputs'].get(name, {})
        received, last = arrivals.get(name, (0, None))
        silence = None if last is None else now - last
        bad = int(d.get('malformed_total', 0)) + sum(d.get('dropped', {}).values()) + int(d.get('errors', 0))
        new_bad = bad - previous.get(f'{name}:bad', 0)
        previous[f'{name}:bad'] = bad
        topic = input_topic(name, kind)
        values = {'topic': topic, 'type': INPUT_MSG_TYPES.get(kind, kind), 'received': received,
                  'accepted': d.get('accepted', 0), 'rate (Hz, header time)': _fmt(d.get('rate_hz')),
                  'stamp age (s, ROS now - newest stamp)': _fmt(d.get('age_s')),
                  'since last message (s)': _fmt(silence), 'arrival delay (s)': _fmt(d.get('arrival_delay_s')),
                  'malformed': _fmt_counts(d.get('malformed')), 'dropped': _fmt_counts(d.get('dropped')),
                  'conversion errors': d.get('errors', 0), 'out of order': d.get('out_of_order', 0),
                  'gaps': d.get('gaps', 0), 'last malformed': d.get('last_malformed') or '-'}
        if active_since is None:
            level, message = 'ok', 'inactive'
        elif received == 0 and now - active_since > timeout:
            level = 'warn'
            message = f'no data on {topic} for {now - active_since:.1f} s'
            if reliability == 'reliable':
                message += (': qos_reliability is reliable, and a best-effort publisher (most camera and audio '
                            'drivers) delivers nothing to a reliable subscriber; try qos_reliability:=best_effort')
            else:
                message += ': check the topic remapping and that the publisher runs'
        elif silence is not None and silence > timeout:
            level, message = 'warn', f'stale: no message on {topic} for {silence:.1f} s'
        elif d.get('dropped', {}).get('no_format'):
            level = 'warn' if new_bad > 0 else 'ok'
            message = (f'{d["dropped"]["no_format"]} chunks dropped before an AudioInfo arrived on {name}_info '
                       '(its publisher should be reliable, and transient local to reach late subscribers)')
        elif new_bad > 0:
            level, message = 'warn', f'{new_bad} malformed or dropped messages since the last report'
        elif received == 0:
            level, message = 'ok', 'waiting for data'
        else:
            level, message = 'ok', f'receiving ({_fmt(d.get("rate_hz"), 1)} Hz)'
        reports.append(DiagnosticReport(f'input {name}', level, message, values))
    for task, t in stats['tasks'].items():
        errors = sum(t['errors'].values())
        new_errors = errors - previous.get(f'{task}:errors', 0)
        previous[f'{task}:errors'] = errors
        latency = t['latency_ms']
        last = last_results.get(task)
        values = {'trigger': t['trigger'], 'inputs': ', '.join(t['inputs']), 'decisions': t['decisions'],
                  'published': t['published'], 'score threshold': t['threshold'],
                  'bundle': t.get('bundle', '-'), 'bundle sha256': t.get('bundle_sha256', '-'),
                  'decision rate (Hz, header time)': _fmt(t['decision_rate_hz']),
                  'latency p50 (ms)': _fmt(latency['p50']), 'latency p95 (ms)': _fmt(latency['p95']),
                  'latency max (ms)': _fmt(latency['max']),
                  'skipped (every modality missing)': t['skipped_all_missing'],
                  'errors': _fmt_counts(t['errors']),
                  'last decision': '-' if last is None else f'{last.label} ({last.score:.3f})'}
        values.update({f'missing {m}': _fmt_counts(c) for m, c in t['missing'].items() if c})
        process = t.get('process')
        if process:                              # features and model in a process of their own
            values['decision process'] = (f'pid {process["pid"]}, {process["state"]}, {process["starts"]} started, '
                                          f'{process["deaths"]} died, {process["decisions"]} decisions')
            if process.get('last_error'):
                values['decision process last error'] = process['last_error']
        if process and process['state'] == 'down':
            level, message = 'error', f'decision process down ({process["last_error"]}); restarting'
        elif new_errors > 0:
            level, message = 'warn', f'{new_errors} failed decisions or feature errors since the last report'
        elif t['decisions'] == 0:
            level, message = 'ok', 'no decision yet'
        else:
            level = 'ok'
            message = f'{t["decisions"]} decisions, {t["published"]} published, p95 {_fmt(latency["p95"], 1)} ms'
        reports.append(DiagnosticReport(f'task {task}', level, message, values))
    if people is not None:
        reports.append(people_report(people, previous=previous, active=active_since is not None))
    return reports


def _person_text(person: Mapping[str, Any]) -> str:
    """One person in a line: its ids, then per task its decisions and last decision's age, or why it is idle."""
    parts = [' '.join(f'{k}:{v}' for k, v in sorted(person.get('ids', {}).items())) or 'no ids',
             f'{person.get("messages", 0)} messages']
    tasks = person.get('tasks')
    if not isinstance(tasks, Mapping) or 'error' in tasks:
        parts += [f'{t}: {n} decisions' for t, n in sorted(person.get('decisions', {}).items())]
        return '; '.join(parts)
    for task, t in sorted(tasks.items()):
        if t['decisions'] and not (t.get('idle') or '').startswith('idle'):
            text = f'{task}: {t["decisions"]} decisions, last {_fmt(t.get("last_decision_age_s"), 2)} s ago'
        else:
            text = f'{task}: {t.get("idle") or "no decision yet"}'
            if t['decisions']:
                text += f' ({t["decisions"]} decisions before)'
        missing = ', '.join(f'{m} ({_fmt_counts(c)})' for m, c in sorted(t.get('missing', {}).items()))
        parts.append(text + (f'; missing {missing}' if missing else ''))
    return '; '.join(parts)


def people_report(people: Mapping[str, Any], *, previous: dict[str, int], active: bool = True) -> DiagnosticReport:
    """
    Build the ``people`` report: persons held, REP-155 associations, refusals, per person why it (does not) decide.

    ``people``: :meth:`PeopleRuntime.stats` (with ``detail``) plus the node's ``subscribed``
    ids and ``node_counts``.  The first :data:`PEOPLE_DETAIL` persons get one value each
    (``person <key>``: ids, then per task its decisions and the age of the last one, in s of
    header time behind the newest data of anyone, or the reason it is idle, and the missing
    modalities); the others one summary line.  WARN when ids were refused (more than
    ``people.max_people`` in view) or tracked lists / person links were malformed since the
    last report (``previous`` is updated in place).
    """
    counts, node_counts = people.get('counts', {}), people.get('node_counts', {})
    persons = people.get('persons', {})
    associations = people.get('associations', {})
    refused = sum(int(c.get(k, 0)) for c in (counts, node_counts) for k in ('refused', 'persons_refused'))
    bad = sum(int(c.get(k, 0)) for c in (counts, node_counts) for k in ('bad_ids_list', 'bad_link'))
    new_refused, new_bad = refused - previous.get('people:refused', 0), bad - previous.get('people:bad', 0)
    previous['people:refused'], previous['people:bad'] = refused, bad
    deciding = [k for k, p in persons.items() if any(p.get('decisions', {}).values())]
    values = {'persons held': f'{len(persons)} (at most {people.get("max_people", "-")})',
              'deciding': len(deciding), 'without a decision yet': len(persons) - len(deciding),
              'tracked': ', '.join(f'{k}: {len(v)}' for k, v in sorted(people.get('tracked', {}).items())) or 'none',
              'associations (REP-155 persons)': '; '.join(
                  f'{pid}: ' + ' '.join(f'{k}:{v}' for k, v in sorted(a.items()))
                  for pid, a in list(associations.items())[:PEOPLE_DETAIL]) or 'none',
              'subscribed ids': len(people.get('subscribed', [])), 'counts': _fmt_counts(counts),
              'node counts': _fmt_counts(node_counts)}
    if len(associations) > PEOPLE_DETAIL:
        values['associations (REP-155 persons)'] += f'; and {len(associations) - PEOPLE_DETAIL} more'
    worker = people.get('worker')
    if worker:
        values['decision worker'] = _fmt_counts({k: v for k, v in worker.items() if isinstance(v, (int, float))})
    keys = list(persons)
    for key in keys[:PEOPLE_DETAIL]:
        values[f'person {key}'] = _person_text(persons[key])
    rest = keys[PEOPLE_DETAIL:]
    if rest:
        n = sum(k in deciding for k in rest)
        values['other persons'] = (f'{len(rest)} more ({n} deciding, {len(rest) - n} without a decision yet): '
                                   + ', '.join(rest[:5]) + (', ...' if len(rest) > 5 else ''))
    if not active:
        level, message = 'ok', 'inactive'
    elif new_refused > 0:
        level = 'warn'
        message = (f'{new_refused} ids refused since the last report: more than people.max_people '
                   f'({people.get("max_people", "-")}) in view; raise people.max_people')
    elif new_bad > 0:
        level, message = 'warn', f'{new_bad} malformed tracked lists or person links since the last report'
    elif not persons:
        level, message = 'ok', 'no person in view'
    else:
        level = 'ok'
        message = (f'{len(persons)} persons ({sum(k.startswith("persons:") for k in persons)} associated), '
                   f'{len(deciding)} deciding')
    return DiagnosticReport('people', level, message, values)


class RosLogHandler(logging.Handler):
    """
    Forward the runtime's Python log records (``centralnet_ros.*``) to the node's logger.

    Warnings repeat per bad message, so each message template is throttled to one line
    every few seconds (the counts are in the diagnostics).
    """

    def __init__(self, logger: Any) -> None:
        super().__init__(level=logging.WARNING)
        self._logger = logger
        self._last: dict[tuple[str, str], float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        key = (record.name, str(record.msg))
        now = time.monotonic()
        if record.levelno < logging.ERROR and now - self._last.get(key, -1e9) < LOG_THROTTLE_S:
            return
        self._last[key] = now
        try:
            text = f'[{record.name}] {record.getMessage()}'
            if record.levelno >= logging.ERROR:
                self._logger.error(text)
            else:
                self._logger.warning(text)
        except Exception:  # noqa: BLE001 - logging must never raise into the runtime
            pass


class NodeDiagnostics:
    """
    Publish a node's :class:`DiagnosticReport` s on ``/diagnostics`` every ``period`` seconds.

    ``compute(store)`` returns the current reports (``store=False``: a dry run that
    must not update the "since the last report" counters). With diagnostic_updater
    installed, one updater task per report name (kept in sync by :meth:`sync`); else a
    timer publishes one DiagnosticArray with every report.
    """

    def __init__(self, node: Any, period: float, compute: Callable[[bool], list[DiagnosticReport]]) -> None:
        from diagnostic_msgs.msg import DiagnosticStatus
        self._node = node
        self._compute = compute
        self._levels = {'ok': DiagnosticStatus.OK, 'warn': DiagnosticStatus.WARN, 'error': DiagnosticStatus.ERROR}
        self._stale = DiagnosticStatus.STALE
        self._cache: tuple[float, list[DiagnosticReport]] = (-1.0, [])
        self._hardware_id = 'none'
        self._updater = None
        self._updater_tasks: list[str] = []
        self._pub = None
        self._timer = None
        self.errors = 0
        try:
            import diagnostic_updater
        except ImportError:
            diagnostic_updater = None
        if diagnostic_updater is not None:
            try:
                self._updater = diagnostic_updater.Updater(node, period=period)
            except TypeError:
                # an Updater without period and timer (diagnostic_updater < 3, whose publish()
                # also kept only the last status): publish directly instead
                self._updater = None
        if self._updater is not None:
            self._updater.setHardwareID('none')
            self.sync()
            return
        from diagnostic_msgs.msg import DiagnosticArray
        from centralnet_ros.ros import output_qos
        self._pub = node.create_publisher(DiagnosticArray, '/diagnostics', output_qos())
        self._timer = node.create_timer(period, self.publish)

    def close(self) -> None:
        """Destroy the updater's or the timer's publisher and timer (idempotent)."""
        node = self._node
        if self._updater is not None:
            for name in self._updater_tasks:
                self._updater.removeByName(name)
            self._updater_tasks = []
            timer, publisher = getattr(self._updater, 'timer', None), getattr(self._updater, 'publisher', None)
            if timer is not None:
                node.destroy_timer(timer)
            if publisher is not None:
                node.destroy_publisher(publisher)
            self._updater = None
        if self._timer is not None:
            node.destroy_timer(self._timer)
        if self._pub is not None:
            node.destroy_publisher(self._pub)
        self._timer = self._pub = None

    def set_hardware_id(self, device: str) -> None:
        """Name the device the runtime runs on, and resync the report names (inputs and tasks change at configure)."""
        self._hardware_id = device
        if self._updater is not None:
            self._updater.setHardwareID(device)
        self.sync()

    def sync(self) -> None:
        """Keep one updater task per report name."""
        if self._updater is None:
            return
        names = [r.name for r in self._compute(False)]
        for name in [n for n in self._updater_tasks if n not in names]:
            self._updater.removeByName(name)
        for name in [n for n in names if n not in self._updater_tasks]:
            self._updater.add(name, functools.partial(self._fill_status, name))
        self._updater_tasks = names

    def reports(self, *, force: bool = False) -> list[DiagnosticReport]:
        """Return the current reports, computed at most every 0.1 s (the updater asks once per task)."""
        now = time.monotonic()
        stamp, cached = self._cache
        if not force and now - stamp < 0.1:
            return cached
        reports = self._compute(True)
        self._cache = (now, reports)
        return reports

    def _fill_status(self, name: str, stat: Any) -> Any:
        """diagnostic_updater task: fill ``stat`` (a DiagnosticStatusWrapper) from the report ``name``."""
        report = next((r for r in self.reports() if r.name == name), None)
        if report is None:
            stat.summary(self._stale, 'not configured')
            return stat
        stat.summary(self._levels[report.level], report.message)
        for key, value in report.values.items():
            stat.add(key, str(value))
        return stat

    def publish(self) -> None:
        """Timer callback without diagnostic_updater: one DiagnosticArray with every report."""
        if self._pub is None:
            return
        from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
        node = self._node
        try:
            statuses = [DiagnosticStatus(level=self._levels[r.level], name=f'{node.get_name()}: {r.name}',
                                         message=r.message, hardware_id=self._hardware_id,
                                         values=[KeyValue(key=str(k), value=str(v)) for k, v in r.values.items()])
                        for r in self.reports(force=True)]
            msg = DiagnosticArray(status=statuses)
            msg.header.stamp = node.get_clock().now().to_msg()
            self._pub.publish(msg)
        except Exception as exc:  # noqa: BLE001 - diagnostics must not stop the node
            self.errors += 1
            node.get_logger().error(f'diagnostics: {type(exc).__name__}: {exc}',
                                    throttle_duration_sec=LOG_THROTTLE_S)
