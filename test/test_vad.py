"""The energy VAD on real speech (FSDD recordings) padded with silence / background noise."""
from __future__ import annotations

import wave

from centralnet_ros import messages as M
from centralnet_ros.runtime import detect_speech, InputHub, InputSpec, SpeechEndTrigger, StreamingVAD, VADConfig
from centralnet_ros.runtime.vad import frame_energies_db
from dataset_guard import require
import numpy as np
import pytest

S = 1_000_000_000


def fsdd_clip(name: str) -> tuple[np.ndarray, int]:
    path = require('fsdd') / 'fsdd' / 'recordings' / name
    with wave.open(str(path)) as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1
        x = np.frombuffer(w.readframes(w.getnframes()), '<i2').astype(np.float32) / 32768
        return x, w.getframerate()


def speech_extent(x: np.ndarray, sample_rate: int) -> tuple[float, float]:
    """
    Return start/end (s) of the clip's speech.

    Speech: 20 ms frames within 25 dB of its loudest frame and 10 dB above its quietest
    (the recording's own background).
    """
    L = sample_rate // 50
    e = frame_energies_db(x, frame_length=L)
    loud = np.flatnonzero(e >= max(e.max() - 25, e.min() + 10))
    return loud[0] * L / sample_rate, (loud[-1] + 1) * L / sample_rate


CLIPS = ['3_george_0.wav', '7_jackson_1.wav', '0_theo_2.wav', '6_nicolas_3.wav', '9_yweweler_4.wav']


@pytest.mark.parametrize('clip', CLIPS)
@pytest.mark.parametrize('noise_dbfs', [None, -60.0])
def test_segment_covers_the_speech(clip, noise_dbfs):
    x, sr = fsdd_clip(clip)
    lead, tail = 1.0, 1.5
    sig = np.concatenate([np.zeros(int(lead * sr), np.float32), x, np.zeros(int(tail * sr), np.float32)])
    if noise_dbfs is not None:                     # stationary background under the whole recording
        sig = sig + np.random.default_rng(0).normal(0, 10 ** (noise_dbfs / 20), sig.shape).astype(np.float32)
    t0 = 42 * S
    segments = detect_speech(sig, sample_rate=sr, start_ns=t0)
    assert len(segments) == 1, segments
    seg = segments[0]
    s0, s1 = speech_extent(x, sr)
    speech_start, speech_end = t0 + (lead + s0) * S, t0 + (lead + s1) * S
    assert seg.start_ns <= speech_start and seg.end_ns >= speech_end          # covers the speech
    assert seg.start_ns >= t0 + (lead - 0.3) * S                               # without swallowing the padding
    assert seg.end_ns <= t0 + (lead + len(x) / sr + 0.3) * S


def test_silence_and_noise_alone_give_no_segment():
    sr = 8000
    assert detect_speech(np.zeros(3 * sr, np.float32), sample_rate=sr) == []
    noise = np.random.default_rng(1).normal(0, 0.01, 3 * sr).astype(np.float32)   # -40 dBFS, stationary
    assert detect_speech(noise, sample_rate=sr) == []


def test_two_utterances_two_segments_in_order():
    a, sr = fsdd_clip('1_jackson_0.wav')
    b, _ = fsdd_clip('5_theo_1.wav')
    gap = np.zeros(sr, np.float32)
    sig = np.concatenate([gap, a, gap, b, gap])
    segs = detect_speech(sig, sample_rate=sr)
    assert len(segs) == 2 and segs[0].end_ns < segs[1].start_ns
    assert segs[0].end_ns < (1 + len(a) / sr + 0.5) * S < segs[1].start_ns


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_streaming_equals_offline_for_any_chunking(seed):
    x, sr = fsdd_clip('4_george_2.wav')
    y, _ = fsdd_clip('8_nicolas_0.wav')
    rng = np.random.default_rng(seed)
    sig = np.concatenate([np.zeros(sr // 2), x, np.zeros(sr), y, np.zeros(sr)]).astype(np.float32)
    sig += rng.normal(0, 1e-3, sig.shape).astype(np.float32)
    t0 = 5 * S
    offline = detect_speech(sig, sample_rate=sr, start_ns=t0)
    assert len(offline) == 2
    vad, streamed, pos = StreamingVAD(), [], 0
    while pos < len(sig):
        n = int(rng.integers(1, 900))
        streamed += vad.process(t0 + pos * S // sr, sig[pos:pos + n], sample_rate=sr)
        pos += n
    streamed += vad.flush()
    assert streamed == offline


def test_segment_is_emitted_after_the_hangover_only():
    x, sr = fsdd_clip('2_theo_0.wav')
    cfg = VADConfig(hangover_ms=300)
    sig = np.concatenate([np.zeros(sr // 2), x, np.zeros(sr)]).astype(np.float32)
    vad, emitted_at = StreamingVAD(cfg), None
    for pos in range(0, len(sig), 80):                                         # 10 ms chunks
        out = vad.process(pos * S // sr, sig[pos:pos + 80], sample_rate=sr)
        if out:
            emitted_at = (pos + 80) * S // sr
            seg = out[0]
            break
    assert emitted_at is not None
    raw_end = seg.end_ns - int(cfg.pad_ms * 1e6)                               # last active frame
    assert raw_end + 300e6 <= emitted_at <= raw_end + 300e6 + 30e6


def test_speech_end_trigger_through_the_hub_with_naoqi_like_stamps():
    """
    Chunks stamped at publication (end) with jitter.

    The trigger sees the sample clock and finds the same segment as the offline VAD on the signal.
    """
    x, sr = fsdd_clip('7_george_3.wav')
    sig = np.concatenate([np.zeros(sr), x, np.zeros(sr)]).astype(np.float32)
    hub = InputHub([InputSpec('mic', 'naoqi_audio', stamp_marks='end')])
    trig = SpeechEndTrigger('mic', delay_ns=0)
    rng = np.random.default_rng(3)
    t0, points, chunk = 100 * S, [], 1360                                      # 170 ms chunks
    for pos in range(0, len(sig), chunk):
        part = sig[pos:pos + chunk]
        stamp = t0 + (pos + len(part)) * S // sr + (int(rng.integers(-5, 5) * 1e6) if pos else 0)
        msg = M.build_naoqi_audio(M.dict_factory, part[:, None], frequency=sr, stamp_ns=stamp)
        points += trig.observe(hub.ingest('mic', msg))
    points += trig.flush()
    assert hub.stats.input('mic').gaps == 0
    q = np.clip(np.rint(sig * 32768), -32768, 32767) / 32768                  # what the int16 messages carry
    offline = detect_speech(q.astype(np.float32), sample_rate=sr, start_ns=t0)
    assert [p.segment for p in points] == offline and len(offline) == 1
    assert points[0].t_ns == offline[0].end_ns and points[0].reason == 'speech_end'


def test_vad_config_is_checked():
    with pytest.raises(ValueError):
        VADConfig(start_db=3, end_db=6)
    with pytest.raises(ValueError):
        VADConfig(frame_ms=0)
