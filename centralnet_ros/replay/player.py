"""
Replay: a rosbag2 recording through :class:`~centralnet_ros.runtime.perception.Perception`.

The bag (sqlite3 or MCAP, read with ``rosbags``) is played in recording order and
each message handed to the same runtime the live node runs, in header time, so the
decisions are those the robot would have published. Against ground truth they give
per-task metrics; the processing latency of every decision is measured.

Ground truth: :mod:`.labels`; metrics: :mod:`.evaluate`; files written: :mod:`.report`.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
import time

from .labels import LabelFileError, LabelSegment, LabelTopicCollector
from .msgdefs import BagReadError, normalize_msgtype, read_bag
from .topics import bag_info, BagInfo, TopicMapping
from ..runtime.events import Event
from ..runtime.perception import Perception, TaskResult

__all__ = ['ReplayRun', 'replay_bag']

_NS = 1_000_000_000


@dataclasses.dataclass
class ReplayRun:
    """What one replay produced."""

    results: list[TaskResult]
    messages: int                    # messages handed to the runtime (label topics excluded)
    wall_s: float                    # replay wall time (reading + decoding + runtime)
    runtime_s: float                 # time spent inside Perception.ingest / flush
    bag_start_ns: int
    bag_end_ns: int
    label_segments: list[LabelSegment]
    incomplete: str | None = None    # the read error that ended the replay early (outputs are partial)
    notes: list[str] = dataclasses.field(default_factory=list)   # label messages that could not be used
    events: list[Event] = dataclasses.field(default_factory=list)   # what the robot acts on (take_events)
    report_s: float | None = None    # scoring + writing the report (set by the replay command)

    @property
    def bag_duration_s(self) -> float:
        return (self.bag_end_ns - self.bag_start_ns) / _NS

    @property
    def messages_per_s(self) -> float:
        return self.messages / self.wall_s if self.wall_s > 0 else float('nan')

    @property
    def real_time_factor(self) -> float:
        """How many times faster than real time the bag was replayed."""
        return self.bag_duration_s / self.wall_s if self.wall_s > 0 else float('nan')


def replay_bag(path: str | Path, perception: Perception, mapping: TopicMapping, *, info: BagInfo | None = None,
               progress: bool = True, label_prefix: str = '/labels/', people=None) -> ReplayRun:
    """
    Play the bag's mapped topics through ``perception`` in recording order (then flush).

    ``people``: a :class:`~centralnet_ros.runtime.people.PeopleRuntime` that receives the
    ROS4HRI topics (``mapping.people``): tracked lists and per-id data.

    A read error (a corrupted chunk or database, an undecodable message) ends the replay
    cleanly: what was read so far is flushed and the run is marked ``incomplete`` with
    the error, which names the file and how far it got.
    """
    from tqdm import tqdm
    info = info or bag_info(path)
    wanted = sorted(set(mapping.topics) | set(mapping.label_topics) | (set(mapping.people) if people else set()))
    total = sum(info.topics[t][1] for t in wanted)
    labels = LabelTopicCollector(label_prefix)
    results: list[TaskResult] = []
    events: list[Event] = []
    n = 0
    runtime = 0.0
    incomplete = None
    notes: list[str] = []
    start = time.perf_counter()
    with tqdm(total=total, unit='msg', disable=None if progress else True, mininterval=0.5, desc='replay') as bar:
        try:
            for item in read_bag(path, topics=wanted) if wanted else ():
                bar.update(1)
                name = mapping.topics.get(item.topic)
                hri = mapping.people.get(item.topic) if people is not None else None
                if name is None and hri is None:
                    try:
                        labels.add(item.topic, normalize_msgtype(item.msgtype), item.log_time_ns, item.message)
                    except LabelFileError as exc:
                        notes.append(str(exc))
                    continue
                n += 1
                t = time.perf_counter()
                if hri is not None:
                    results += people.route(hri, item.message, log_time_ns=item.log_time_ns)
                    events += people.take_events()
                else:
                    results += perception.ingest(name, item.message, log_time_ns=item.log_time_ns)
                    events += perception.take_events()
                runtime += time.perf_counter() - t
        except BagReadError as exc:
            incomplete = str(exc)
        t = time.perf_counter()
        results += perception.flush()
        events += perception.take_events()
        if people is not None:
            results += people.flush()
            events += people.take_events()
        runtime += time.perf_counter() - t
    wall = time.perf_counter() - start
    return ReplayRun(results, n, wall, runtime, info.start_ns, info.end_ns, labels.segments(info.end_ns),
                     incomplete, notes, events)
