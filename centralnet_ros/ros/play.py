"""
``centralnet play BAG``: publish a rosbag2 recording onto live ROS 2 topics (``ros2 bag play`` without rosbag2).

The recording (sqlite3 or MCAP) is read with ``rosbags``; each message's raw CDR bytes are
published unchanged with rclpy, so the header stamps, and everything else, are what was
recorded.  Messages go out at the recording's pace (log time), ``--rate`` times faster,
``--loop`` repeats; ``--remap /from:=/to`` renames topics; ``--clock`` publishes
``/clock`` with the recording's log time (for nodes with ``use_sim_time:=true``).
Publishers take the QoS the recording offered (reliability, durability, depth) where the
bag stores it, else reliable and volatile (which best-effort subscribers receive too);
``*_info`` topics (AudioInfo) are always transient local, as drivers latch them.

    centralnet play demo-out/demo_bag --rate 2 --remap /audio:=/robot/audio
    centralnet play my_recording/ --loop --clock 100 --topics /audio /audio_info

Every message type must be importable in this Python (the interface packages of
``tools/ros_wheels.sh``, or a sourced ROS 2); a missing one is named before playing.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
import signal
import sys
import threading
import time
from typing import Any, Iterable, Iterator, Sequence

__all__ = ['PlayOptions', 'play', 'parse_remaps', 'add_arguments', 'run', 'main']

_NS = 1_000_000_000


@dataclass
class PlayOptions:
    """How to play: speed, repetition, topic renaming and selection, clock rate (0: no /clock)."""

    rate: float = 1.0
    loop: bool = False
    remaps: dict[str, str] | None = None
    topics: Sequence[str] | None = None
    clock_hz: float = 0.0
    wait_for_subscribers_s: float = 0.0
    start_delay_s: float = 0.0

    def __post_init__(self):
        if not self.rate > 0:
            raise ValueError(f'--rate must be > 0, got {self.rate}')
        if self.clock_hz < 0:
            raise ValueError(f'--clock must be >= 0 Hz, got {self.clock_hz}')


def parse_remaps(items: Iterable[str]) -> dict[str, str]:
    """Parse ``/from:=/to`` items (the ROS remapping syntax) into a mapping; errors name the item."""
    out = {}
    for item in items:
        src, sep, dst = item.partition(':=')
        if not sep or not src.startswith('/') or not dst.startswith('/'):
            raise ValueError(f'--remap {item!r}: expected /from_topic:=/to_topic')
        out[src] = dst
    return out


def _open(path: Path):
    from rosbags.rosbag2 import Reader
    if not path.exists():
        raise FileNotFoundError(f'{path}: no such rosbag2 directory or file')
    reader = Reader(path)
    try:
        reader.open()
    except Exception as exc:  # noqa: BLE001 - rosbags raises its own error types
        raise ValueError(f'{path}: cannot open as rosbag2 ({type(exc).__name__}: {exc})') from exc
    return reader


def _qos(conn: Any, topic: str) -> Any:
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    reliability, durability, depth = ReliabilityPolicy.RELIABLE, DurabilityPolicy.VOLATILE, 100
    for offered in getattr(getattr(conn, 'ext', None), 'offered_qos_profiles', None) or []:
        if int(getattr(offered.reliability, 'value', offered.reliability)) == 2:
            reliability = ReliabilityPolicy.BEST_EFFORT
        if int(getattr(offered.durability, 'value', offered.durability)) == 1:
            durability = DurabilityPolicy.TRANSIENT_LOCAL
        depth = max(depth, int(offered.depth or 0))
    if topic.endswith('_info'):
        reliability, durability = ReliabilityPolicy.RELIABLE, DurabilityPolicy.TRANSIENT_LOCAL
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=reliability, durability=durability)


def _schedule(reader: Any, conns: list, options: PlayOptions) -> Iterator[tuple[float, Any, int, bytes]]:
    """Yield ``(seconds after the start, connection, log time, raw CDR)`` (looping when asked)."""
    first = reader.start_time
    span = max(reader.end_time - first, 1)
    lap = 0
    while True:
        for conn, log_ns, raw in reader.messages(connections=conns):
            yield ((lap * (span + _NS // 100) + log_ns - first) / _NS / options.rate, conn, log_ns, raw)
        lap += 1
        if not options.loop:
            return


def play(path: str | Path, options: PlayOptions | None = None, *, node: Any = None,
         stop: threading.Event | None = None, log=print) -> dict[str, int]:
    """
    Publish the recording at ``path`` onto live topics; return ``topic -> messages published``.

    ``node``: an rclpy node to publish from (default: a node ``centralnet_play`` in the
    current context, which must be initialised). ``stop``: set it to end playback early.
    """
    from centralnet_ros.ros.interfaces import message_class
    options = options or PlayOptions()
    stop = stop or threading.Event()
    remaps = options.remaps or {}
    reader = _open(Path(path))
    own_node = node is None
    if own_node:
        import rclpy
        node = rclpy.create_node('centralnet_play')
    publishers: dict[int, Any] = {}
    counts: dict[str, int] = {}
    clock_pub = None
    try:
        conns = list(reader.connections)
        if options.topics:
            known = {c.topic for c in conns}
            unknown = sorted(set(options.topics) - known)
            if unknown:
                raise ValueError(f'{path}: topics {unknown} are not in the recording (it has {sorted(known)})')
            conns = [c for c in conns if c.topic in set(options.topics)]
        missing = []
        for conn in conns:
            try:
                cls = message_class(conn.msgtype)
            except ImportError as exc:
                missing.append(str(exc))
                continue
            topic = remaps.get(conn.topic, conn.topic)
            publishers[conn.id] = node.create_publisher(cls, topic, _qos(conn, topic))
            counts.setdefault(topic, 0)
        if missing:
            raise ImportError('cannot publish: ' + '; '.join(missing))
        if options.clock_hz > 0:
            from rclpy.qos import QoSProfile, ReliabilityPolicy
            clock_pub = node.create_publisher(message_class('rosgraph_msgs/msg/Clock'), '/clock',
                                              QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
        if options.wait_for_subscribers_s > 0:
            deadline = time.monotonic() + options.wait_for_subscribers_s
            while not stop.is_set() and time.monotonic() < deadline and \
                    not all(p.get_subscription_count() > 0 for p in publishers.values()):
                time.sleep(0.05)
        if options.start_delay_s > 0:
            stop.wait(options.start_delay_s)
        span_s = (reader.end_time - reader.start_time) / _NS
        log(f'playing {path}: {sum(c.msgcount for c in conns)} messages on {len(conns)} topics, '
            f'{span_s:.1f} s at {options.rate}x{" in a loop" if options.loop else ""}')
        start = time.monotonic()
        clock_period = 1.0 / options.clock_hz if options.clock_hz > 0 else None
        next_clock = 0.0
        last_log_ns = reader.start_time
        for at, conn, log_ns, raw in _schedule(reader, conns, options):
            while True:
                now = time.monotonic() - start
                if clock_pub is not None and now >= next_clock:
                    _publish_clock(clock_pub, last_log_ns + int((now - at) * options.rate * _NS) if now < at
                                   else log_ns)
                    next_clock = now + clock_period
                wait = at - now
                if wait <= 0 or stop.is_set():
                    break
                stop.wait(min(wait, clock_period or wait))
            if stop.is_set():
                break
            publishers[conn.id].publish(raw)             # raw CDR, exactly as recorded
            last_log_ns = log_ns
            topic = remaps.get(conn.topic, conn.topic)
            counts[topic] += 1
        return counts
    finally:
        for publisher in publishers.values():
            node.destroy_publisher(publisher)
        if clock_pub is not None:
            node.destroy_publisher(clock_pub)
        if own_node:
            node.destroy_node()
        reader.close()


def _publish_clock(publisher: Any, log_ns: int) -> None:
    from centralnet_ros.ros import stamp_msg
    from centralnet_ros.ros.interfaces import message_class
    publisher.publish(message_class('rosgraph_msgs/msg/Clock')(clock=stamp_msg(log_ns)))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``centralnet play``."""
    parser.add_argument('bag', help='rosbag2 directory (sqlite3 or MCAP) or .mcap/.db3 file')
    parser.add_argument('--rate', type=float, default=1.0, help='playback speed relative to the recording')
    parser.add_argument('--loop', action='store_true', help='play the recording again and again')
    parser.add_argument('--remap', action='append', default=[], metavar='/FROM:=/TO', help='rename a topic')
    parser.add_argument('--topics', nargs='+', default=None, metavar='TOPIC', help='play only these topics')
    parser.add_argument('--clock', type=float, default=0.0, metavar='HZ', nargs='?', const=100.0,
                        help='publish /clock with the recording time at HZ (for use_sim_time); 0: none')
    parser.add_argument('--wait-for-subscribers', type=float, default=0.0, metavar='S',
                        help='wait up to S seconds until every topic has a subscriber')
    parser.add_argument('--delay', type=float, default=0.0, metavar='S', help='wait S seconds before playing')


def run(args: argparse.Namespace) -> int:
    """``centralnet play``: play until the end (or Ctrl-C); exit 2 on bad input."""
    try:
        options = PlayOptions(rate=args.rate, loop=args.loop, remaps=parse_remaps(args.remap), topics=args.topics,
                              clock_hz=args.clock or 0.0, wait_for_subscribers_s=args.wait_for_subscribers,
                              start_delay_s=args.delay)
    except ValueError as exc:
        print(f'centralnet play: {exc}', file=sys.stderr)
        return 2
    try:
        import rclpy
        from rclpy.signals import SignalHandlerOptions
    except ImportError as exc:
        print(f'centralnet play: needs rclpy ({exc}); run tools/ros_wheels.sh or source ROS 2', file=sys.stderr)
        return 2
    stop = threading.Event()
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        counts = play(args.bag, options, stop=stop)
    except (FileNotFoundError, ValueError, ImportError) as exc:
        print(f'centralnet play: {exc}', file=sys.stderr)
        return 2
    finally:
        rclpy.try_shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print('published ' + ', '.join(f'{topic}: {n}' for topic, n in sorted(counts.items())))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python3 -m centralnet_ros.ros.play BAG ...``."""
    parser = argparse.ArgumentParser(prog='centralnet play', description=__doc__.split('\n\n')[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == '__main__':
    raise SystemExit(main())
