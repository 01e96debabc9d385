"""
The load generator of ``benchmarks/bench_dds.py``: sensors at robot rates into a fusion_node process.

:func:`run_once` starts fusion_node (the three shipped bundles) in its own process, publishes
640x480 rgb8 images and skeletons at 30 Hz and 4-channel 48 kHz naoqi AudioBuffers in 8192-frame
buffers, all best effort, and measures delivery (the node's diagnostics), publish-to-decision
latency per task and the node's CPU use.  Here because only ``centralnet_ros.ros`` imports ROS.
"""
from __future__ import annotations

import os
from pathlib import Path
import subprocess
import sys
import threading
import time

import numpy as np

__all__ = ['run_once', 'TASKS', 'thread_stats']

REPO = Path(__file__).resolve().parents[2]
ROS_ENV = {'ROS_DOMAIN_ID': str(10 + os.getpid() % 200), 'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST'}
NS = '/bench'
TASKS = ('gesture', 'speech', 'emotion')
AUDIO_RATE, AUDIO_CHANNELS, AUDIO_FRAMES = 48000, 4, 8192
FPS = 30.0
DELAY_S = 0.1                                   # decision_delay_s (the node default)


def _sensor_qos(depth: int):
    from rclpy.qos import qos_profile_sensor_data, QoSProfile
    return QoSProfile(depth=depth, reliability=qos_profile_sensor_data.reliability,
                      durability=qos_profile_sensor_data.durability)


def _stamp_ns(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def _cpu_seconds(pid: int) -> float:
    fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def thread_stats(pid: int) -> dict[int, tuple[str, float, int]]:
    """``tid -> (name, CPU seconds, nice)`` of every thread of process ``pid`` (Linux /proc)."""
    out = {}
    for task in Path(f'/proc/{pid}/task').iterdir():
        try:
            stat = (task / 'stat').read_text()
        except OSError:                          # the thread ended meanwhile
            continue
        name = stat[stat.index('(') + 1:stat.rindex(')')]
        fields = stat.rsplit(')', 1)[1].split()
        out[int(task.name)] = (name, (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK'), int(fields[16]))
    return out


def _thread_use(before: dict, after: dict, wall: float) -> dict:
    """CPU use (% of one core) and nice values per thread name over ``wall`` s (threads of one name summed)."""
    use: dict[str, dict] = {}
    for tid, (name, cpu, nice) in after.items():
        entry = use.setdefault(name, {'threads': 0, 'cpu_percent': 0.0, 'nice': []})
        entry['threads'] += 1
        entry['cpu_percent'] += 100 * (cpu - before.get(tid, (name, 0.0, nice))[1]) / wall
        if nice not in entry['nice']:
            entry['nice'].append(nice)
    return {name: {**e, 'cpu_percent': round(e['cpu_percent'], 1)}
            for name, e in sorted(use.items(), key=lambda kv: -kv[1]['cpu_percent'])}


class InlineWorker:
    """
    Decide inside the subscription callback: the design the issue replaced, kept here to measure against.

    Has the interface of :class:`~centralnet_ros.runtime.worker.TaskWorkers`; ``submit`` runs the
    decisions at once, on the executor's thread, before the callback returns.
    """

    def __init__(self, perception, on_results, **_):
        self.perception, self.on_results = perception, on_results
        self.dropped = self.errors = 0

    def submit(self, due) -> None:
        due = list(due)
        if due:
            results = self.perception.decide(due)
            if results:
                self.on_results(results)

    def drain(self, timeout=None) -> bool:
        return True

    def stop(self, timeout=None) -> bool:
        return True


def inline_node_main(args: list[str]) -> int:
    """Run fusion_node with :class:`InlineWorker` (``python -m centralnet_ros.ros.bench_dds --inline-node ...``)."""
    from centralnet_ros.ros import fusion_node
    fusion_node.TaskWorkers = InlineWorker
    sys.argv = ['fusion_node', *args]
    return fusion_node.main()


def run_once(seconds: float, profile: bool, audio: np.ndarray, joints: np.ndarray, log_dir: Path, *,
             gesture_output: str = 'decisions', inline: bool = False, qos_depth: int | None = None,
             background_nice: int | None = None) -> dict:
    """
    Stream ``seconds`` into fusion_node (``audio``: (n, 4) int16 at 48 kHz; ``joints``: (T, 20, 3)).

    ``gesture_output``: the gesture task's ``output`` (``decisions``: one Classification per skeleton
    frame; ``events``: one per performed gesture, after it ended). ``inline``: decide in the
    subscription callback (:class:`InlineWorker`) instead of on the node's decision worker.
    ``qos_depth``: the node's input queue depth (None: the node's default). ``background_nice``:
    ``speech.decision_nice`` and ``emotion.decision_nice`` (None: the node's defaults).
    """
    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from centralnet_ros import messages as M
    from centralnet_ros.ros.interfaces import ros_message
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import PoseArray
    from naoqi_bridge_msgs.msg import AudioBuffer
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Classification

    dds = {'FASTRTPS_DEFAULT_PROFILES_FILE': str(REPO / 'config' / 'fastdds.xml'),
           'FASTDDS_DEFAULT_PROFILES_FILE': str(REPO / 'config' / 'fastdds.xml')} if profile else {}
    env = {**os.environ, **ROS_ENV, **dds}
    for key in ('FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_DEFAULT_PROFILES_FILE'):
        if not profile:
            env.pop(key, None)
    args = ['--ros-args', '-r', f'__ns:={NS}', '-p', f'tasks:=[{",".join(TASKS)}]',
            *[a for t in TASKS for a in ('-p', f'{t}.bundle:={REPO / "models" / t}')],
            '-p', 'gesture.trigger:=frame', '-p', 'audio_type:=naoqi_audio_buffer', '-p', 'diagnostics_period_s:=1.0',
            '-p', 'speech.score_threshold:=0.0', '-p', 'emotion.score_threshold:=0.0',
            '-p', 'gesture.score_threshold:=0.0', '-p', f'gesture.output:={gesture_output}']
    if qos_depth is not None:
        args += ['-p', f'qos_depth:={qos_depth}']
    if background_nice is not None:
        args += ['-p', f'speech.decision_nice:={background_nice}', '-p', f'emotion.decision_nice:={background_nice}']
    program = (['-m', 'centralnet_ros.ros.bench_dds', '--inline-node'] if inline
               else ['-m', 'centralnet_ros.ros.fusion_node'])
    label = (f'{"profile" if profile else "default"}_{"inline" if inline else "split"}_{gesture_output}_{qos_depth}'
             f'_{background_nice}')
    node = subprocess.Popen([sys.executable, *program, *args], env=env,
                            stdout=open(log_dir / f'fusion_{label}.log', 'wb'), stderr=subprocess.STDOUT)
    # this process: the same DDS settings as the node (the shared-memory segment is per participant)
    os.environ.update(ROS_ENV)
    for key, value in dds.items():
        os.environ[key] = value
    if not profile:
        for key in ('FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_DEFAULT_PROFILES_FILE'):
            os.environ.pop(key, None)
    rclpy.init()
    pub_node = rclpy.create_node('bench_sensors')
    sub_node = rclpy.create_node('bench_decisions')
    qos = _sensor_qos(5)
    image_pub = pub_node.create_publisher(Image, f'{NS}/image', qos)
    skeleton_pub = pub_node.create_publisher(PoseArray, f'{NS}/skeleton', qos)
    audio_pub = pub_node.create_publisher(AudioBuffer, f'{NS}/audio', qos)
    decisions: dict[str, list] = {t: [] for t in TASKS}
    diag: dict[str, int] = {}
    lock = threading.Lock()

    def on_decision(task, msg):
        with lock:
            decisions[task].append((time.time_ns(), _stamp_ns(msg.header)))

    task_diag: dict[str, dict] = {}
    arrival: dict[str, str | None] = {}

    def on_diag(msg):
        for status in msg.status:
            values = {kv.key: kv.value for kv in status.values}
            if status.name.endswith(('input image', 'input skeleton', 'input audio')):
                if values.get('received', '0').isdigit():
                    diag[status.name.rsplit(' ', 1)[1]] = int(values['received'])
                    arrival[status.name.rsplit(' ', 1)[1]] = values.get('arrival delay (s)')
            elif ': task ' in status.name:
                task_diag[status.name.rsplit(' ', 1)[1]] = {
                    k: values.get(k) for k in ('decisions', 'published', 'latency p50 (ms)', 'latency p95 (ms)',
                                               'latency max (ms)')}

    for task in TASKS:
        sub_node.create_subscription(Classification, f'{NS}/fusion_node/{task}',
                                     lambda m, t=task: on_decision(t, m), _sensor_qos(100))
    sub_node.create_subscription(DiagnosticArray, '/diagnostics', on_diag, _sensor_qos(50))
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(sub_node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        deadline = time.monotonic() + 180
        while not all(p.get_subscription_count() > 0 for p in (image_pub, skeleton_pub, audio_pub)):
            if time.monotonic() > deadline or node.poll() is not None:
                raise RuntimeError(f'fusion_node did not subscribe (exit {node.poll()})')
            time.sleep(0.2)
        time.sleep(1.0)
        rng = np.random.default_rng(0)
        frame = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
        published = {'image': [], 'skeleton': [], 'audio': []}        # (publish wall ns, stamp ns)
        threads0, cpu0, t_start = thread_stats(node.pid), _cpu_seconds(node.pid), time.monotonic()
        start_ns = time.time_ns()
        k_frame = k_audio = 0
        while time.monotonic() - t_start < seconds:
            now = time.monotonic() - t_start
            frame_due = k_frame / FPS
            audio_due = (k_audio + 1) * AUDIO_FRAMES / AUDIO_RATE    # a buffer goes out when it is full
            if frame_due <= now:
                stamp = start_ns + int(frame_due * 1e9)
                image_pub.publish(M.build_image(ros_message, frame, encoding='rgb8', stamp_ns=stamp, frame_id='camera'))
                published['image'].append((time.time_ns(), stamp))
                skeleton_pub.publish(M.build_pose_array(ros_message, joints[k_frame % len(joints)], stamp_ns=stamp,
                                                        frame_id='kinect'))
                published['skeleton'].append((time.time_ns(), stamp))
                k_frame += 1
            elif audio_due <= now:
                i = (k_audio * AUDIO_FRAMES) % (len(audio) - AUDIO_FRAMES)
                stamp = start_ns + int(k_audio * AUDIO_FRAMES / AUDIO_RATE * 1e9)
                audio_pub.publish(M.build_naoqi_audio(ros_message, audio[i:i + AUDIO_FRAMES], frequency=AUDIO_RATE,
                                                      stamp_ns=stamp, frame_id='microphone'))
                published['audio'].append((time.time_ns(), stamp))
                k_audio += 1
            else:
                time.sleep(max(0.0, min(frame_due, audio_due) - now))
        cpu = _cpu_seconds(node.pid) - cpu0
        wall = time.monotonic() - t_start
        threads = _thread_use(threads0, thread_stats(node.pid), wall)
        time.sleep(3.0)                                              # last decisions and a diagnostics report
    finally:
        node.send_signal(2)
        try:
            node.wait(60)
        except subprocess.TimeoutExpired:
            node.kill()
        executor.shutdown()
        pub_node.destroy_node()
        sub_node.destroy_node()
        rclpy.try_shutdown()
    trigger_input = {'gesture': 'skeleton', 'speech': 'audio', 'emotion': 'audio'}
    result = {'profile': 'config/fastdds.xml' if profile else 'Fast DDS defaults',
              'decisions_in': 'subscription callback' if inline else 'decision worker',
              'gesture_output': gesture_output, 'qos_depth': qos_depth, 'background_nice': background_nice,
              'seconds': round(wall, 2), 'node_threads': threads,
              'load_average_1min': round(os.getloadavg()[0], 1), 'cpu_cores': os.cpu_count(),
              'node_cpu_percent': round(100 * cpu / wall, 1), 'exit_status': node.returncode, 'inputs': {},
              'tasks': {}}
    for name, sent in published.items():
        got = diag.get(name)
        result['inputs'][name] = {'sent': len(sent), 'received': got, 'arrival_delay_s': arrival.get(name),
                                  'delivery': None if got is None else round(got / max(len(sent), 1), 4)}
    for task, got in decisions.items():
        pubs = published[trigger_input[task]]
        stamps = np.asarray([s for _, s in pubs], np.int64)
        times = np.asarray([p for p, _ in pubs], np.int64)
        lat = []
        for recv, stamp in got:
            k = int(np.searchsorted(stamps, stamp + int(DELAY_S * 1e9) * (task != 'gesture')))
            if k < len(stamps):
                lat.append((recv - times[k]) / 1e6)
        lat_a = np.asarray(lat)
        result['tasks'][task] = {
            'decisions': len(got), 'node_compute_ms': task_diag.get(task, {}),
            'latency_ms': {f'p{q}': (round(float(np.percentile(lat_a, q)), 2) if len(lat) else None)
                           for q in (50, 95, 99, 100)}}
    return result


if __name__ == '__main__':
    if sys.argv[1:2] == ['--inline-node']:
        raise SystemExit(inline_node_main(sys.argv[2:]))
    raise SystemExit(f'usage: python -m {__spec__.name} --inline-node [--ros-args ...]')
