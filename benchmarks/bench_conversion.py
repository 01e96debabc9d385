"""
Conversion cost of sensor messages -> numpy (centralnet_ros.messages).

Measures the median time of converting a 640x480 ``sensor_msgs/Image`` (rgb8, bgr8,
16UC1, 32FC1; without and with row padding; big-endian 32FC1) and audio chunks
(``AudioDataStamped`` S16LE / F32LE, a Pepper ``AudioBuffer``), whether the result
shares memory with the message buffer (zero-copy), and for reference a plain copy of
the same bytes. Messages are decoded by rosbags from real CDR bytes, i.e. exactly
what the replay path sees; an rclpy message holds ``array.array`` data and converts
through the same buffer-protocol path (measured too for rgb8).

    python benchmarks/bench_conversion.py [--repeat 2000] [--out benchmarks/results]

Prints a table and writes ``conversion.json`` and ``conversion.md`` (atomically).
"""
from __future__ import annotations

import argparse
import array
from pathlib import Path
import statistics
import sys
import time

from centralnet_ros import messages as M
from centralnet_ros.machine import command_line, machine_description, machine_line, write_results
from centralnet_ros.replay import msgdefs as D
import numpy as np


def median_us(fn, repeat: int, *, warmup: int = 50) -> float:
    """Return the median wall time of ``fn()`` in microseconds over ``repeat`` calls, after a warm-up."""
    for _ in range(min(warmup, repeat)):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - t)
    return statistics.median(times) / 1e3


def decoded(store, msg):
    """Return the message as a rosbags reader hands it over: decoded from CDR bytes."""
    return store.deserialize_cdr(store.serialize_cdr(msg, msg.__msgtype__), msg.__msgtype__)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    ap.add_argument('--repeat', type=int, default=2000)
    ap.add_argument('--out', type=Path, default=Path(__file__).resolve().parent / 'results')
    args = ap.parse_args(argv)
    store = D.make_typestore()
    rng = np.random.default_rng(0)
    h, w = 480, 640
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    depth_mm = rng.integers(300, 8000, (h, w), dtype=np.uint16)
    depth_m = (depth_mm / 1000).astype(np.float32)

    cases = [
        ('Image 640x480 rgb8', D.image_message(rgb, encoding='rgb8', stamp_ns=0, typestore=store), {}),
        ('Image 640x480 bgr8 (-> RGB)', D.image_message(rgb, encoding='bgr8', stamp_ns=0, typestore=store), {}),
        ('Image 640x480 rgb8, rows padded to 2048 B',
         D.image_message(rgb, encoding='rgb8', stamp_ns=0, row_padding=2048 - 1920, typestore=store), {}),
        ('Image 640x480 16UC1 (mm -> float32 m)',
         D.image_message(depth_mm, encoding='16UC1', stamp_ns=0, typestore=store), {}),
        ('Image 640x480 16UC1 (raw uint16 mm)',
         D.image_message(depth_mm, encoding='16UC1', stamp_ns=0, typestore=store), {'depth_in_metres': False}),
        ('Image 640x480 32FC1', D.image_message(depth_m, encoding='32FC1', stamp_ns=0, typestore=store), {}),
        ('Image 640x480 32FC1 big-endian',
         D.image_message(depth_m, encoding='32FC1', stamp_ns=0, bigendian=True, typestore=store), {}),
    ]
    rows = []
    for name, msg, kw in cases:
        msg = decoded(store, msg)
        out = M.image_to_array(msg, **kw)
        rows.append({'case': name, 'median_us': median_us(lambda: M.image_to_array(msg, **kw), args.repeat),
                     'zero_copy': bool(np.shares_memory(out, msg.data)), 'shape': list(out.shape),
                     'dtype': str(out.dtype), 'bytes': int(msg.data.nbytes)})
    # rclpy holds uint8[] as array.array('B'): same path, measured once
    rcl = decoded(store, cases[0][1])
    rcl_data = array.array('B', rcl.data.tobytes())
    rcl.data = rcl_data
    out = M.image_to_array(rcl)
    rows.append({'case': 'Image 640x480 rgb8, data as array.array (rclpy)',
                 'median_us': median_us(lambda: M.image_to_array(rcl), args.repeat),
                 'zero_copy': bool(np.shares_memory(out, np.frombuffer(rcl_data, np.uint8))),
                 'shape': list(out.shape), 'dtype': str(out.dtype), 'bytes': len(rcl_data)})
    ref = decoded(store, cases[0][1]).data
    rows.append({'case': 'reference: copy of the 921600 rgb8 bytes (np.copy)',
                 'median_us': median_us(lambda: np.copy(ref), args.repeat), 'zero_copy': False,
                 'shape': [int(ref.size)], 'dtype': 'uint8', 'bytes': int(ref.nbytes)})

    audio_rows = []
    pcm16 = rng.integers(-20000, 20000, (1600, 1), dtype=np.int16)
    f32 = (pcm16 / 32768).astype(np.float32)
    naoqi = rng.integers(-20000, 20000, (8192, 4), dtype=np.int16)
    for name, (stamped, info) in [
        ('AudioDataStamped S16LE 16 kHz mono, 100 ms',
         D.audio_messages(pcm16, sample_rate=16000, stamp_ns=0, typestore=store)),
        ('AudioDataStamped F32LE 16 kHz mono, 100 ms',
         D.audio_messages(f32, sample_rate=16000, stamp_ns=0, sample_format='F32LE', typestore=store)),
    ]:
        msg = decoded(store, stamped)
        out = M.audio_to_array(msg, info).samples
        audio_rows.append({'case': name, 'median_us': median_us(lambda: M.audio_to_array(msg, info), args.repeat),
                           'zero_copy': bool(np.shares_memory(out, msg.audio.data)), 'shape': list(out.shape)})
    nmsg = decoded(store, D.naoqi_audio_message(naoqi, frequency=48000, stamp_ns=0, typestore=store))
    out = M.naoqi_audio_to_array(nmsg).samples
    audio_rows.append({'case': 'naoqi AudioBuffer 48 kHz 4 ch, 8192 frames (170 ms)',
                       'median_us': median_us(lambda: M.naoqi_audio_to_array(nmsg), args.repeat),
                       'zero_copy': bool(np.shares_memory(out, nmsg.data)), 'shape': list(out.shape)})

    command = command_line(argv, program='python benchmarks/bench_conversion.py')
    machine = machine_description(with_torch=False)
    result = {'benchmark': 'message conversion (centralnet_ros.messages)', 'command': command,
              'machine': machine, 'repeat': args.repeat, 'images': rows, 'audio': audio_rows}
    lines = ['# Message conversion cost', '',
             f'Command: `{command}`  ',
             f'Machine: {machine_line(machine)}, Python {machine["python"]}, numpy {machine["numpy"]}  ',
             f'Median of {args.repeat} conversions of a message decoded by rosbags from CDR bytes; zero-copy = '
             '`np.shares_memory(result, msg.data)`.', '',
             '| message | median (µs) | zero-copy | result |', '|---|---:|:---:|---|']
    for r in rows + audio_rows:
        lines.append(f"| {r['case']} | {r['median_us']:.1f} | {'yes' if r['zero_copy'] else 'no'} | "
                     f"{tuple(r['shape'])} {r.get('dtype', 'float32')} |")
    lines += ['', 'Views (zero-copy) are read-only and honour row padding through strides; bgr8 becomes RGB '
              'through a negative channel stride (call `np.ascontiguousarray` where a consumer needs C order). '
              '16UC1 -> metres and big-endian data need a conversion, hence a copy; audio is always scaled to '
              'float32 except native-order F32LE.', '']
    text = '\n'.join(lines)
    print(text)
    write_results(args.out, 'conversion', result, markdown=text, command=command, machine=machine)
    return 0


if __name__ == '__main__':
    sys.exit(main())
