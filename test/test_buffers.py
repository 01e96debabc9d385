"""Buffers, the input hub, windows, triggers and stats on synthetic streams with known stamps."""
from __future__ import annotations

import json
import subprocess
import sys
import time

from centralnet_ros import messages as M
from centralnet_ros.features.audio import resample_audio
from centralnet_ros.runtime import (AnyTrigger, AudioBuffer, DecisionPoint, FrameBuffer, FrameTrigger, InputHub,
                                    InputSpec, RateTrigger, SpeechSegment, WindowAssembler, WindowSpec)
import numpy as np
import pytest

S = 1_000_000_000          # one second in ns
MS = 1_000_000
SR = 16_000


def tone(n: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """(n, channels) float32 distinct, non-periodic samples (so misplacement shows)."""
    return np.random.default_rng(seed).uniform(-0.9, 0.9, (n, channels)).astype(np.float32)


def image(value: int) -> dict:
    return M.build_image(M.dict_factory, np.full((2, 3, 3), value, np.uint8), encoding='rgb8', stamp_ns=0)


def with_stamp(msg: dict, ns: int) -> dict:
    sec, nanosec = M.ns_to_stamp(ns)
    msg['header'] = {'stamp': {'sec': sec, 'nanosec': nanosec}, 'frame_id': ''}
    return msg


# --------------------------------------------------------------------------- FrameBuffer

def test_frame_buffer_out_of_order_duplicate_too_old_and_retention():
    buf = FrameBuffer('cam', retention_ns=1 * S)
    assert buf.push(100 * MS, 'a').status == 'accepted'
    assert buf.push(300 * MS, 'c').status == 'accepted'
    assert buf.push(200 * MS, 'b').status == 'out_of_order'          # inserted in order
    assert buf.push(200 * MS, 'b2').status == 'duplicate'
    assert buf.last_n(1 * S, 3) == ([100 * MS, 200 * MS, 300 * MS], ['a', 'b', 'c'])
    assert buf.push(1250 * MS, 'd').status == 'accepted'               # prunes a, b (older than 0.25 s)
    assert buf.last_n(2 * S, 10)[1] == ['c', 'd']
    assert buf.push(200 * MS, 'late').status == 'too_old'
    st = buf.stats
    assert (st.out_of_order, st.duplicates, st.dropped['duplicate'], st.dropped['too_old']) == (1, 1, 1, 1)
    assert buf.latest(1 * S) == (300 * MS, 'c') and buf.latest(50 * MS) is None
    assert buf.between(300 * MS, 1250 * MS)[1] == ['c', 'd']


def test_frame_buffer_max_items_and_loop_jump():
    buf = FrameBuffer('cam', retention_ns=100 * S, max_items=3, loop_jump_ns=2 * S)
    for k in range(5):
        buf.push(10 * S + k * 100 * MS, k)
    assert buf.last_n(20 * S, 10)[1] == [2, 3, 4]
    push = buf.push(10 * S - 500 * MS, 'small backward step')           # within the threshold
    assert push.status == 'too_old' or push.status == 'out_of_order'
    push = buf.push(1 * S, 'restart')                                    # 9 s back: a loop
    assert push.reset and push.status == 'accepted' and len(buf) == 1


# --------------------------------------------------------------------------- AudioBuffer

def chunks_of(x: np.ndarray, size: int):
    for i in range(0, len(x), size):
        yield i, x[i:i + size]


@pytest.mark.parametrize('jitter_ms', [0.0, 4.0])
def test_audio_chunks_with_jittered_stamps_are_stitched_exactly(jitter_ms):
    x = tone(SR * 2)
    buf = AudioBuffer('mic')
    rng = np.random.default_rng(1)
    t0 = 7 * S
    for i, chunk in chunks_of(x, 400):                                 # 25 ms chunks
        jitter = 0 if i == 0 else int(rng.uniform(-jitter_ms, jitter_ms) * MS)
        push = buf.push(t0 + i * S // SR + jitter, chunk, sample_rate=SR)
        assert push.status == 'accepted'
    win = buf.window(t0, t0 + 2 * S)
    assert win.samples.shape == (2 * SR, 1) and win.coverage == 1.0
    np.testing.assert_array_equal(win.samples, x)                     # every sample in place
    assert buf.stats.gaps == 0 and buf.stats.overlaps == 0
    sub = buf.window(t0 + S // 2, t0 + S)
    np.testing.assert_array_equal(sub.samples, x[SR // 2:SR])


def test_audio_gap_is_zero_filled_marked_and_counted():
    x = tone(SR)
    buf = AudioBuffer('mic')
    t0 = 3 * S
    for i, chunk in chunks_of(x, 1600):                                # 100 ms chunks
        if i in (4800, 6400):                                          # lose 2 chunks = 200 ms
            continue
        buf.push(t0 + i * S // SR, chunk, sample_rate=SR)
    win = buf.window(t0, t0 + S)
    assert buf.stats.gaps == 1 and buf.stats.gap_ns == 200 * MS
    assert not win.valid[4800:8000].any() and win.valid[:4800].all() and win.valid[8000:].all()
    assert np.all(win.samples[4800:8000] == 0)
    np.testing.assert_array_equal(win.samples[8000:], x[8000:])
    assert win.coverage == pytest.approx(0.8)


def test_audio_stamp_marks_end_and_duplicates_and_out_of_order():
    x = tone(3200)
    buf = AudioBuffer('naoqi', stamp_marks='end')                      # stamped at publication
    t0 = 10 * S
    buf.push(t0 + 100 * MS, x[:1600], sample_rate=SR)                   # covers [t0, t0 + 100 ms)
    assert buf.push(t0 + 100 * MS, x[:1600], sample_rate=SR).status == 'duplicate'
    buf.push(t0 + 200 * MS, x[1600:], sample_rate=SR)
    np.testing.assert_array_equal(buf.window(t0, t0 + 200 * MS).samples, x)
    early = AudioBuffer('mic')
    early.push(t0 + 100 * MS, x[1600:], sample_rate=SR)
    push = early.push(t0, x[:1600], sample_rate=SR)                    # arrives late, fills the hole
    assert push.status == 'out_of_order' and early.stats.out_of_order == 1
    np.testing.assert_array_equal(early.window(t0, t0 + 200 * MS).samples, x)


def test_audio_format_change_resets():
    buf = AudioBuffer('mic')
    buf.push(0, tone(160), sample_rate=SR)
    push = buf.push(10 * MS, tone(441, channels=2), sample_rate=44100)
    assert push.reset and buf.stats.format_changes == 1 and buf.sample_rate == 44100 and buf.channels == 2


# --------------------------------------------------------------------------- InputHub

def make_hub(**kw):
    return InputHub([InputSpec('mic', 'audio', **kw.get('mic', {})), InputSpec('cam', 'image', **kw.get('cam', {})),
                     InputSpec('skel', 'pose_array')])


def test_hub_counts_malformed_and_never_raises():
    hub = make_hub()
    bad = with_stamp(image(1), S)
    bad['encoding'] = 'yuv422'
    r = hub.ingest('cam', bad)
    assert r.status == 'malformed' and r.malformed_kind == 'encoding'
    truncated = with_stamp(image(1), S)
    truncated['data'] = truncated['data'][:-1]
    assert hub.ingest('cam', truncated).malformed_kind == 'size'
    assert hub.ingest('cam', {'height': 1}).malformed_kind == 'field'
    assert hub.ingest('cam', with_stamp(image(1), S)).status == 'accepted'
    stats = hub.stats.input('cam')
    assert stats.received == 4 and stats.accepted == 1
    assert dict(stats.malformed) == {'encoding': 1, 'size': 1, 'field': 1}
    with pytest.raises(KeyError, match='unknown input'):
        hub.ingest('nope', image(1))


def test_hub_audio_needs_a_format_then_uses_audio_info():
    hub = make_hub()
    stamped, info = M.build_audio(M.dict_factory, tone(160), sample_rate=SR, stamp_ns=S)
    assert hub.ingest('mic', stamped).status == 'no_format'
    bad_info = dict(info, sample_format='ULAW')
    assert not hub.set_audio_info('mic', bad_info)
    assert hub.stats.input('mic').malformed['encoding'] == 1
    assert hub.set_audio_info('mic', info)
    r = hub.ingest('mic', stamped)
    assert r.status == 'accepted' and r.start_ns == S and r.samples.shape == (160, 1)
    configured = make_hub(mic={'audio_format': M.AudioFormat(1, SR, 'S16LE')})
    assert configured.ingest('mic', stamped).status == 'accepted'


def test_hub_applies_the_per_input_offset():
    hub = make_hub(cam={'offset_ns': -40 * MS})
    r = hub.ingest('cam', with_stamp(image(3), 5 * S))
    assert r.stamp_ns == 5 * S - 40 * MS
    assert hub.buffers['cam'].latest()[0] == 5 * S - 40 * MS


def test_hub_loop_resets_everything_and_drops_stragglers():
    hub = make_hub()
    x = tone(SR * 4)
    for k in range(40):                                                # a 4 s pass: audio + 10 fps video
        t = 100 * S + k * 100 * MS
        hub.ingest_array('mic', t, x[k * 1600:(k + 1) * 1600], sample_rate=SR)
        hub.ingest('cam', with_stamp(image(k), t))
    # the bag loops: audio of the new pass arrives first, then a video frame still in flight
    r = hub.ingest_array('mic', 100 * S, x[:1600], sample_rate=SR)
    assert r.reset and r.status == 'accepted'
    assert hub.epoch == 1 and hub.stats.global_resets == 1 and hub.stats.input('mic').loop_resets == 1
    assert len(hub.buffers['cam']) == 0                                # every buffer cleared
    straggler = hub.ingest('cam', with_stamp(image(99), 100 * S + 3950 * MS))
    assert straggler.status == 'stale_epoch' and not straggler.stored
    fresh = hub.ingest('cam', with_stamp(image(0), 100 * S))
    assert fresh.status == 'accepted' and not fresh.reset                # no second reset
    assert hub.stats.input('cam').dropped['stale_epoch'] == 1
    assert hub.stats.global_resets == 1


# --------------------------------------------------------------------------- windows

def assembler(hub, **audio_kw):
    specs = [WindowSpec('audio', 'mic', 'audio', window_ns=S, max_age_ns=200 * MS, **audio_kw),
             WindowSpec('video', 'cam', 'last_frames', num_frames=4, min_frames=2, max_age_ns=200 * MS),
             WindowSpec('skeleton', 'skel', 'sequence', window_ns=S, min_items=5, max_age_ns=200 * MS)]
    return WindowAssembler(specs, hub.buffers)


def feed_skeletons(hub, t0, n, period=100 * MS):
    for k in range(n):
        joints = np.full((20, 3), k, np.float32)
        hub.ingest('skel', M.build_pose_array(M.dict_factory, joints, stamp_ns=t0 + k * period))


def test_window_absent_stale_insufficient_and_ok():
    hub = make_hub()
    asm = assembler(hub)
    w = asm.assemble(10 * S)
    assert w.missing == {'audio': 'absent', 'video': 'absent', 'skeleton': 'absent'}
    x = tone(SR * 2)
    for i, c in chunks_of(x, 1600):
        hub.ingest_array('mic', 9 * S + i * S // SR, c, sample_rate=SR)          # audio in [9 s, 11 s)
    for k in range(3):
        hub.ingest('cam', with_stamp(image(k), 10 * S + k * 100 * MS))
    feed_skeletons(hub, 10 * S, 3)
    w = asm.assemble(10 * S + 250 * MS)
    assert w.present == {'audio': True, 'video': True, 'skeleton': False}
    assert w.missing == {'skeleton': 'insufficient'}                             # 3 items < min_items 5
    np.testing.assert_array_equal(w.modalities['audio'].data, x[int(0.25 * SR):int(1.25 * SR)])
    video = w.modalities['video']
    assert video.data.shape == (4, 2, 3, 3) and video.valid.tolist() == [False, True, True, True]
    assert video.data[0, 0, 0, 0] == 0 and video.data[-1, 0, 0, 0] == 2          # oldest repeated in front
    assert video.stamps_ns.tolist()[1:] == [10 * S, 10 * S + 100 * MS, 10 * S + 200 * MS]
    late = asm.assemble(11 * S + 500 * MS)                                       # all data older than 200 ms
    assert late.missing == {'audio': 'stale', 'video': 'stale', 'skeleton': 'stale'}
    assert late.arrays() == {'audio': None, 'video': None, 'skeleton': None}


def test_window_never_uses_data_after_t():
    hub = make_hub()
    for k in range(10):
        hub.ingest('cam', with_stamp(image(k), S + k * 100 * MS))
    feed_skeletons(hub, S, 10)
    w = assembler(hub).assemble(S + 450 * MS)
    assert w.modalities['video'].stamps_ns.max() <= S + 450 * MS
    assert w.modalities['video'].data[-1, 0, 0, 0] == 4
    sk = w.modalities['skeleton']
    assert sk.present and sk.data.shape == (5, 20, 3) and sk.stamps_ns.max() <= S + 450 * MS
    np.testing.assert_array_equal(sk.data[:, 0, 0], np.arange(5))


def test_audio_window_coverage_threshold_and_resampling():
    hub = make_hub()
    x = tone(SR // 2)
    for i, c in chunks_of(x, 800):
        hub.ingest_array('mic', 2 * S + i * S // SR, c, sample_rate=SR)         # only 0.5 s of audio
    asm = assembler(hub, min_coverage=0.8)
    assert asm.assemble(2 * S + 500 * MS).missing == {'audio': 'insufficient', 'video': 'absent',
                                                      'skeleton': 'absent'}
    asm = assembler(hub, min_coverage=0.4, sample_rate=8000)
    audio = asm.assemble(2 * S + 500 * MS).modalities['audio']
    assert audio.present and audio.sample_rate == 8000 and audio.data.shape == (8000, 1)
    full = hub.buffers['mic'].window(1 * S + 500 * MS, 2 * S + 500 * MS).samples
    expected = resample_audio(full.T, orig_sample_rate=SR, new_sample_rate=8000).T   # the training code path
    np.testing.assert_allclose(audio.data, expected, atol=1e-6)


def test_window_over_a_speech_segment():
    hub = make_hub()
    x = tone(SR * 2)
    for i, c in chunks_of(x, 320):
        hub.ingest_array('mic', i * S // SR, c, sample_rate=SR)
    spec = WindowSpec('audio', 'mic', 'audio', use_segment=True, segment_padding_ns=100 * MS)
    point = DecisionPoint(S + 200 * MS, 'speech_end', 'mic', SpeechSegment(500 * MS, S + 200 * MS))
    audio = WindowAssembler([spec], hub.buffers).assemble(point).modalities['audio']
    assert (audio.start_ns, audio.end_ns) == (400 * MS, S + 300 * MS)
    np.testing.assert_array_equal(audio.data, x[int(0.4 * SR):int(1.3 * SR)])


def test_assembler_checks_its_specs():
    hub = make_hub()
    with pytest.raises(KeyError, match='not configured'):
        WindowAssembler([WindowSpec('a', 'nope', 'audio')], hub.buffers)
    with pytest.raises(ValueError, match='does not fit'):
        WindowAssembler([WindowSpec('a', 'cam', 'audio')], hub.buffers)


# --------------------------------------------------------------------------- triggers

def test_rate_trigger_absolute_grid_delay_and_catch_up():
    hub = make_hub()
    trig = RateTrigger(rate_hz=4, delay_ns=100 * MS)
    points = []
    for k in range(1, 21):                                            # frames every 50 ms from 10.05 s
        points += trig.observe(hub.ingest('cam', with_stamp(image(k), 10 * S + k * 50 * MS)))
    # grid points 10.25, 10.5, 10.75 are due once the clock passed them by 100 ms (clock 11.0)
    assert [p.t_ns for p in points] == [10 * S + 250 * MS, 10 * S + 500 * MS, 10 * S + 750 * MS]
    assert all(p.reason == 'rate' for p in points)
    assert [p.t_ns for p in trig.flush()] == [11 * S]
    jump = RateTrigger(rate_hz=10, max_catch_up=5)
    jump.observe(hub.ingest('cam', with_stamp(image(0), 20 * S)))
    out = jump.observe(hub.ingest('cam', with_stamp(image(0), 30 * S)))
    assert [p.t_ns for p in out] == [30 * S] and jump.skipped == 99


def test_frame_trigger_every_nth_in_order_frame_and_reset_on_loop():
    hub = make_hub()
    trig = FrameTrigger('cam', every=2)
    pts = []
    for k in range(6):
        pts += trig.observe(hub.ingest('cam', with_stamp(image(k), 50 * S + k * 100 * MS)))
    pts += trig.observe(hub.ingest('cam', with_stamp(image(9), 50 * S + 250 * MS)))   # out of order: ignored
    assert [p.t_ns for p in pts] == [50 * S, 50 * S + 200 * MS, 50 * S + 400 * MS]
    r = hub.ingest('cam', with_stamp(image(0), 10 * S))                               # loop
    assert r.reset and trig.observe(r)[0].t_ns == 10 * S and trig.resets == 1


def test_any_trigger_merges_in_time_order():
    hub = make_hub()
    trig = AnyTrigger([RateTrigger(rate_hz=1), FrameTrigger('cam', every=5)])
    pts = []
    for k in range(30):
        pts += trig.observe(hub.ingest('cam', with_stamp(image(k), S + k * 100 * MS)))
    assert [p.reason for p in pts].count('rate') == 3
    assert [p.reason for p in pts].count('frame') == 6


# --------------------------------------------------------------------------- stats, time, imports

def test_stats_rate_age_and_json():
    hub = make_hub()
    for k in range(31):
        hub.ingest('cam', with_stamp(image(k), 2 * S + k * S // 30))
    d = hub.stats.to_dict(now_ns=3 * S + 500 * MS)
    assert d['inputs']['cam']['rate_hz'] == pytest.approx(30, rel=1e-3)
    assert d['inputs']['cam']['age_s'] == pytest.approx(0.5)
    assert d['inputs']['mic']['rate_hz'] is None
    json.dumps(d)                                                       # publishable as is


def test_runtime_never_reads_the_wall_clock(monkeypatch):
    hub = make_hub(mic={'audio_format': M.AudioFormat(1, SR, 'S16LE')})
    trig = AnyTrigger([RateTrigger(rate_hz=5), FrameTrigger('cam')])
    asm = assembler(hub)

    def forbidden(*a, **k):
        raise AssertionError('the runtime read the wall clock')
    for name in ('time', 'time_ns', 'monotonic', 'monotonic_ns', 'perf_counter', 'perf_counter_ns'):
        monkeypatch.setattr(time, name, forbidden)
    x = tone(SR)
    for i, c in chunks_of(x, 1600):
        stamped, _ = M.build_audio(M.dict_factory, c, sample_rate=SR, stamp_ns=4 * S + i * S // SR)
        for p in trig.observe(hub.ingest('mic', stamped)):
            asm.assemble(p)
        for p in trig.observe(hub.ingest('cam', with_stamp(image(1), 4 * S + i * S // SR))):
            asm.assemble(p)
    hub.stats.to_dict(now_ns=5 * S)


@pytest.mark.slow                                            # a fresh interpreter / the whole command
def test_importing_the_runtime_does_not_import_rclpy(tmp_path):
    """A poisoned ``rclpy`` on the path: importing it anywhere in these modules would fail."""
    for name in ('rclpy', 'rosidl_runtime_py'):
        (tmp_path / name).mkdir()
        (tmp_path / name / '__init__.py').write_text("raise ImportError('imported from the runtime')\n")
    code = ('import sys, centralnet_ros.runtime, centralnet_ros.messages, centralnet_ros.replay.msgdefs; '
            'bad = [m for m in sys.modules if m.split(".")[0] in ("rclpy", "rosidl_runtime_py")]; '
            'assert not bad, bad')
    env = {**__import__('os').environ, 'PYTHONPATH': str(tmp_path)}
    subprocess.run([sys.executable, '-c', code], check=True, env=env)
