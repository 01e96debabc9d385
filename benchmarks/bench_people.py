"""
Per-person runtime cost (1, 3, 10 people) and the mouth stage's cost per frame and face-found rate.

* People: :class:`~centralnet_ros.runtime.people.PeopleRuntime` with the shipped ``gesture2d``
  (every 0.2 s per body) and ``emotion`` (end of each utterance per voice) bundles; each person
  is a body streaming ``Skeleton2D`` at 30 Hz (MSRC-12 p11 projected through a robot camera)
  and a voice streaming 16 kHz audio in 20 ms chunks (an EmoDB utterance every 3 s), for 10 s
  of header time.  Each count twice: body and voice as two persons (ids not associated), and
  associated by REP-155 persons (``/humans/persons/<id>/body_id``, ``voice_id``) into one person
  with one set of buffers.  Reported: processing time per second of stream (all people), per
  message, per decision, and the memory the persons' buffers hold.
* Mouth stage (:mod:`centralnet_ros.features.mouth`): the face detector on 640x480 frames, and
  the face-found rate of the tracked window on a real photograph (``skimage.data.astronaut()``)
  pasted at random places and sizes (face 70-200 px wide) into 640x480 scenes made from
  scikit-image's photographs without faces; false detections on those scenes alone.

Writes ``benchmarks/results/people.md`` and ``people.json``.

    python benchmarks/bench_people.py [--people 1 3 10] [--seconds 10] [--scenes 40]
"""
from __future__ import annotations

import argparse
from pathlib import Path
import sys
import time
import tracemalloc

import numpy as np

_NS = 1_000_000_000
RATE = 16000


def _streams(seconds: float, rng):
    """Skeleton2D frames (30 Hz) of a gesturing body and a voice wave, both ``seconds`` long."""
    from centralnet_ros import paths
    from centralnet_ros.data import emodb, msrc12
    from centralnet_ros.features import skeleton2d as s2d
    from centralnet_ros.features.audio import resample_audio
    seq = msrc12.load_sequences(paths.data_root() / 'msrc12', persons=[11])[0]
    joints = seq.positions[seq.tracked][: int(seconds * 30)].astype(np.float64)
    cam = s2d.sample_camera(rng, joints, s2d.CameraRanges(distance_m=(2.5, 2.5), yaw_deg=(0.0, 0.0)))
    kp = s2d.corrupt_keypoints(s2d.kinect_to_skeleton2d(joints, cam), rng)
    utt = [u for u in emodb.list_utterances(paths.data_root() / 'emodb') if u.speaker == 14][0]
    x, rate = emodb.read_wav(utt.path)
    x = resample_audio(x, orig_sample_rate=rate, new_sample_rate=RATE)[: int(1.5 * RATE)]
    wave = rng.normal(0, 1e-3, int(seconds * RATE)).astype(np.float32)
    for start in np.arange(0.5, seconds - 2.0, 3.0):
        i = int(start * RATE)
        wave[i:i + x.size] += x
    return kp, wave


def bench_people(counts: list[int], seconds: float, *, modes: tuple[bool, ...] = (False, True)) -> list[dict]:
    from centralnet_ros import messages as M
    from centralnet_ros.runtime.people import PeopleConfig, PeopleRuntime, use_2d_gesture_bundle
    from centralnet_ros.runtime.perception import PerceptionConfig, TaskConfig
    cfg = PerceptionConfig(tasks={'gesture': TaskConfig(bundle='gesture', trigger='rate', rate_hz=5.0),
                                  'emotion': TaskConfig(bundle='emotion', trigger='speech_end')})
    use_2d_gesture_bundle(cfg)
    kp, wave = _streams(seconds, np.random.default_rng(0))
    chunk = RATE // 50
    rows = []
    for n, associated in [(n, a) for n in counts for a in modes]:
        people = PeopleRuntime(cfg, PeopleConfig(max_people=2 * max(counts)))   # a body and a voice each
        bodies, voices = [f'b{i}' for i in range(n)], [f'v{i}' for i in range(n)]
        people.set_tracked('bodies', bodies)
        people.set_tracked('voices', voices)
        if associated:                             # REP-155: person p<i> is body b<i> + voice v<i>
            people.set_tracked('persons', [f'p{i}' for i in range(n)])
            for i in range(n):
                people.associate(f'p{i}', bodies=bodies[i], voices=voices[i])
        events = []                                # (t_ns, kind, id, input, msg), built before timing
        for i, (b, v) in enumerate(zip(bodies, voices)):
            lag = int(i * 7_000_000)               # people's streams not in lockstep
            for k, points in enumerate(kp):
                t = _NS + k * _NS // 30 + lag
                events.append((t, 'bodies', b, 'skeleton', M.build_skeleton2d(M.dict_factory, points, stamp_ns=t)))
            for k in range(0, wave.size - chunk + 1, chunk):
                t = _NS + k * _NS // RATE + lag
                msg, info = M.build_audio(M.dict_factory, wave[k:k + chunk, None], sample_rate=RATE, stamp_ns=t)
                if k == 0:
                    events.append((t - 1, 'voices', v, 'audio_info', info))
                events.append((t, 'voices', v, 'audio', msg))
        events.sort(key=lambda e: e[0])
        tracemalloc.start()
        decisions = 0
        start = time.process_time()
        for _, kind, entity, name, msg in events:
            decisions += len(people.ingest(kind, entity, name, msg))
        decisions += len(people.flush())
        cpu = time.process_time() - start
        held = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        stats = people.stats()
        lat = []
        for key, p in people.people.items():
            for task, s in p.perception.tasks.items():
                lat += list(s.latencies)
        people.close()
        rows.append({'people': n, 'associated': associated, 'messages': len(events), 'decisions': decisions,
                     'stream_s': seconds,
                     'cpu_s': round(cpu, 3), 'cpu_per_stream_s': round(cpu / seconds, 4),
                     'real_time_factor': round(seconds / cpu, 1) if cpu else None,
                     'us_per_message': round(1e6 * cpu / len(events), 1),
                     'decision_latency_ms_p50': round(1e3 * float(np.median(lat)), 3) if lat else None,
                     'decision_latency_ms_p95': round(1e3 * float(np.percentile(lat, 95)), 3) if lat else None,
                     'memory_mb': round(held / 1e6, 2), 'persons_held': stats['people']})
        print(rows[-1], flush=True)
    return rows


def bench_mouth(scenes: int, seed: int) -> dict:
    import cv2
    from skimage import data

    from centralnet_ros.features import mouth as MO
    rng = np.random.default_rng(seed)
    face = data.astronaut()[20:240, 120:330]                       # head and shoulders, 220 x 210
    backgrounds = [data.coffee(), data.rocket(), data.hubble_deep_field(), data.immunohistochemistry(),
                   data.retina(), data.chelsea()]
    backgrounds = [cv2.resize(b if b.ndim == 3 else cv2.cvtColor(b, cv2.COLOR_GRAY2RGB), (640, 480))
                   for b in backgrounds]
    frame = np.ascontiguousarray(backgrounds[0])
    timings = {}
    for width in (320, 640):
        MO.detect_face_boxes(frame[None], max_detect_width=width)  # warm-up (cascade load)
        t = []
        for _ in range(10):
            s = time.process_time()
            MO.detect_face_boxes(frame[None], max_detect_width=width)
            t.append(time.process_time() - s)
        timings[f'haar_{width}px_ms'] = round(1e3 * float(np.median(t)), 2)
    found = placed = false_pos = 0
    window_ms = []
    stage = MO.MouthStage(source='full_frame')
    for k in range(scenes):
        bg = backgrounds[k % len(backgrounds)]
        size = int(rng.uniform(70, 200) / 0.47)                    # the face is ~47 % of the pasted crop's width
        patch = cv2.resize(face, (size, int(size * face.shape[0] / face.shape[1])), interpolation=cv2.INTER_AREA)
        x0, y0 = int(rng.integers(0, 640 - patch.shape[1])), int(rng.integers(0, max(1, 480 - patch.shape[0])))
        scene = bg.copy()
        ph = min(patch.shape[0], 480 - y0)
        scene[y0:y0 + ph, x0:x0 + patch.shape[1]] = patch[:ph]
        frames = np.stack([np.roll(scene, int(d), axis=1) for d in rng.integers(-3, 4, 40)])   # 1.6 s, jitter
        s = time.process_time()
        crops = MO.mouth_frames(frames, stage)
        window_ms.append(1e3 * (time.process_time() - s))
        placed += 1
        found += crops is not None
        false_pos += MO.mouth_frames(np.repeat(bg[None], 4, axis=0), stage) is not None
    return {**timings, 'scenes': placed, 'face_found_rate': round(found / placed, 3),
            'false_detection_rate_no_face': round(false_pos / placed, 3),
            'window_ms_p50': round(float(np.median(window_ms)), 1),
            'window_frames': 40, 'detect_every': stage.detect_every}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--people', type=int, nargs='*', default=[1, 3, 10])
    parser.add_argument('--seconds', type=float, default=10.0)
    parser.add_argument('--scenes', type=int, default=40)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', default=str(Path(__file__).resolve().parent / 'results'))
    args = parser.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    from centralnet_ros.machine import command_line, machine_description, write_results
    command = command_line(argv, program='python benchmarks/bench_people.py')
    mouth = bench_mouth(args.scenes, args.seed)
    print(mouth, flush=True)
    rows = bench_people(args.people, args.seconds)
    result = {'people': rows, 'mouth': mouth, 'machine': machine_description(), 'command': command,
              'date': time.strftime('%Y-%m-%d')}
    m = result['machine']
    lines = ['# Per-person runtime and the mouth stage', '',
             f'Machine: {m.get("cpu_model", m["processor"])} x{m["cpu_count"]}, 1 thread, ONNX Runtime; shared with '
             f'other jobs while measured (load average {m.get("load_average_1min", "-")}; CPU time, not wall time, '
             'is reported).', '',
             '## People (ROS4HRI): gesture2d every 0.2 s per body + emotion per utterance per voice', '',
             f'Each person: a body (Skeleton2D, 30 Hz) and a voice (16 kHz, 20 ms chunks, an EmoDB utterance '
             f'every 3 s), {args.seconds:g} s of header time.', '',
             'Associated: body and voice are one REP-155 person (one set of buffers, gesture and emotion); '
             'not: two persons (ids not associated), each holding both tasks.', '',
             '| people | associated | persons held | messages | decisions | CPU s per s of stream | x real time | '
             'us per message | decision ms p50 / p95 (wall, loaded machine) | buffers MB |',
             '|---|---|---|---|---|---|---|---|---|---|']
    for r in rows:
        lines.append(f'| {r["people"]} | {"yes" if r["associated"] else "no"} | {r["persons_held"]} | '
                     f'{r["messages"]} | {r["decisions"]} | {r["cpu_per_stream_s"]} | '
                     f'{r["real_time_factor"]} | {r["us_per_message"]} | {r["decision_latency_ms_p50"]} / '
                     f'{r["decision_latency_ms_p95"]} | {r["memory_mb"]} |')
    lines += ['', '## Mouth stage (OpenCV Haar cascade, no download)', '',
              '(CPU time, 1 thread)', '',
              f'- face detector per 640x480 frame: {mouth["haar_320px_ms"]} ms downscaled to 320 px wide (the '
              f'default), {mouth["haar_640px_ms"]} ms at full size;',
              f'- a 1.6 s window (40 frames, detection every {mouth["detect_every"]}th frame, tracked): '
              f'{mouth["window_ms_p50"]} ms (median);',
              f'- face found in {100 * mouth["face_found_rate"]:.0f} % of {mouth["scenes"]} scenes (a real portrait, '
              'face 70-200 px wide, pasted into 640x480 photographs); a face reported in '
              f'{100 * mouth["false_detection_rate_no_face"]:.0f} % of the same scenes without the portrait.',
              '', f'Command: `{command}`, {result["date"]}.', '']
    print(write_results(args.out, 'people', result, markdown='\n'.join(lines), command=command))
    return 0


if __name__ == '__main__':
    sys.exit(main())
