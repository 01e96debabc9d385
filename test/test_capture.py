"""
The capture loop on a real PortAudio stream.

ALSA's ``file`` PCM plugin with an ``infile`` turns a raw S16LE file into a
capture device: a test-local ``.asoundrc`` (found through ``HOME``) defines
``pcm.centralnet_test_mono`` and ``pcm.centralnet_test_stereo`` of type
``file`` on the ``null`` slave.  PortAudio's ALSA host API lists the PCMs
defined in the configuration, so sounddevice sees and opens them like any
microphone.  PortAudio reads its configuration once, when it initialises (at
``import sounddevice``), so the capture runs in a subprocess started with that
environment.

Notes on this device, which shape the assertions:

* The ``null`` slave has no clock: PortAudio's callback thread runs as fast as
  the callback returns, so the queue fills at once.  The consumer therefore
  sleeps before reading and the queue holds the whole clip: every chunk
  before the queue is full is kept, so the first chunks are exactly the file
  and the later ones are dropped and counted (``dropped_chunks`` > 0: the
  loss is reported, the stream keeps running).
* After the infile ends the plugin leaves the ring buffer's stale contents
  (neither silence nor the file again), so only the first ``len(file)``
  frames are compared, sample for sample (exact equality, no alignment
  needed: the first captured frame is the file's first frame).
* Stamps cannot be checked against a real sample clock here (no clock); they
  are checked to be in the caller's clock (shifted 1000 s from the stream's)
  and non-decreasing.

Needs libportaudio2 (apt) and alsa-lib's built-in ``file`` and ``null``
plugins (libasound2); skipped only when libportaudio2 is missing.
"""
from __future__ import annotations

import ctypes.util
import json
import os
import subprocess
import sys
import textwrap
import types

from centralnet_ros.capture import (AudioChunk, ClockMapper, MicrophoneCapture,
                                    SAMPLE_FORMAT)
from centralnet_ros.features.audio import resample_audio
from dataset_guard import require
import numpy as np
import pytest
from scipy.io import wavfile

SAMPLE_RATE = 16000
CHUNK_MS = 20
CHUNK_FRAMES = SAMPLE_RATE * CHUNK_MS // 1000

_portaudio = ctypes.util.find_library('portaudio')
needs_portaudio = pytest.mark.skipif(
    _portaudio is None, reason='libportaudio2 is not installed (apt install libportaudio2)')

_SCRIPT = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    import numpy as np
    from centralnet_ros import capture

    out = Path(sys.argv[1])
    spec = json.loads((out / 'spec.json').read_text())
    result = {'devices': [d.__dict__ for d in capture.list_devices()], 'errors': {}}

    def clock():
        return time.monotonic() + 1000.0    # a caller clock that is not PortAudio's

    for name, device, channels in spec['captures']:
        mic = capture.MicrophoneCapture(device=device, sample_rate=spec['sample_rate'],
                                        channels=channels, chunk_ms=spec['chunk_ms'], clock=clock,
                                        max_queue_chunks=spec['max_queue_chunks'])
        t0 = clock()
        mic.start()
        time.sleep(0.3)                      # the null slave fills the queue meanwhile
        chunks = []
        for chunk in mic:
            chunks.append(chunk)
            if len(chunks) >= spec['max_queue_chunks'] + 3:   # past the queue: shows the gap
                break
        still_running = mic.running
        mic.stop()
        t1 = clock()
        stats = mic.stats()
        np.save(out / f'{name}.npy', np.concatenate([c.data for c in chunks]))
        (out / f'{name}.bin').write_bytes(b''.join(c.to_s16le() for c in chunks))
        result[name] = {'t0': t0, 't1': t1, 'stamps': [c.stamp for c in chunks],
                        'sequences': [c.sequence for c in chunks],
                        'frames': [c.frames for c in chunks], 'running': still_running,
                        'device': mic.device_info.__dict__, 'stats': stats.__dict__,
                        'info': mic.audio_info()}

    for name, device in spec['bad_devices']:
        try:
            capture.resolve_input_device(device)
        except capture.AudioDeviceError as exc:
            result['errors'][name] = str(exc)
    (out / 'result.json').write_text(json.dumps(result))
""")


def _fsdd_clip(name: str) -> np.ndarray:
    """Read a real FSDD recording (8 kHz) resampled to 16 kHz int16."""
    path = require('fsdd') / 'fsdd' / 'recordings' / name
    rate, pcm = wavfile.read(path)
    up = resample_audio(pcm.astype(np.float32), orig_sample_rate=rate, new_sample_rate=SAMPLE_RATE)
    return np.clip(np.round(up), -32768, 32767).astype(np.int16)  # (T,)


@pytest.fixture(scope='module')
def captured(tmp_path_factory):
    """Run the capture subprocess once against two ALSA file devices."""
    if _portaudio is None:
        pytest.skip('libportaudio2 is not installed (apt install libportaudio2)')
    tmp = tmp_path_factory.mktemp('alsa')
    mono = _fsdd_clip('3_theo_0.wav')
    left, right = _fsdd_clip('7_jackson_0.wav'), _fsdd_clip('1_nicolas_0.wav')
    n = min(len(left), len(right))
    stereo = np.stack([left[:n], right[:n]], axis=1)  # (T, 2)
    mono.astype('<i2').tofile(tmp / 'mono.raw')
    stereo.astype('<i2').tofile(tmp / 'stereo.raw')  # interleaved L R L R ...
    asoundrc = ''.join(
        f'pcm.centralnet_test_{name} {{\n'
        f'    type file\n    slave.pcm "null"\n    file "/dev/null"\n'
        f'    infile "{tmp / (name + ".raw")}"\n    format "raw"\n}}\n'
        for name in ('mono', 'stereo'))
    (tmp / '.asoundrc').write_text(asoundrc)
    queue_chunks = -(-max(len(mono), n) // CHUNK_FRAMES) + 4
    spec = {'sample_rate': SAMPLE_RATE, 'chunk_ms': CHUNK_MS, 'chunk_frames': CHUNK_FRAMES,
            'max_queue_chunks': queue_chunks,
            'captures': [['mono', 'centralnet_test_mono', 1],
                         ['stereo', 'centralnet_test_stereo', 2]],
            'bad_devices': [['unknown', 'no_such_microphone'], ['index', '999'],
                            ['ambiguous', 'centralnet_test']]}
    (tmp / 'spec.json').write_text(json.dumps(spec))
    env = {k: v for k, v in os.environ.items() if not k.startswith('ALSA_')}
    env.update(HOME=str(tmp), XDG_CONFIG_HOME=str(tmp / 'xdg'))
    proc = subprocess.run([sys.executable, '-c', _SCRIPT, str(tmp)], env=env, cwd=tmp,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f'capture subprocess failed:\n{proc.stdout}\n{proc.stderr}'
    result = json.loads((tmp / 'result.json').read_text())
    return types.SimpleNamespace(tmp=tmp, mono=mono, stereo=stereo, result=result)


@needs_portaudio
def test_sounddevice_lists_the_file_device(captured):
    names = {d['name']: d for d in captured.result['devices']}
    for name in ('centralnet_test_mono', 'centralnet_test_stereo'):
        assert name in names, f'PortAudio did not list {name}: {sorted(names)}'
        assert names[name]['max_input_channels'] >= 2
        assert names[name]['hostapi'] == 'ALSA'


@needs_portaudio
def test_mono_capture_equals_the_file(captured):
    run = captured.result['mono']
    data = np.load(captured.tmp / 'mono.npy')  # (frames, 1) int16
    clip = captured.mono
    assert data.dtype == np.int16 and data.shape[1] == 1
    assert run['device']['name'] == 'centralnet_test_mono'
    assert set(run['frames']) == {CHUNK_FRAMES}
    k = -(-len(clip) // CHUNK_FRAMES)
    assert run['sequences'][:k] == list(range(k)), 'chunks of the clip were lost or reordered'
    np.testing.assert_array_equal(data[:len(clip), 0], clip)


@needs_portaudio
def test_stereo_capture_is_interleaved_s16le(captured):
    run = captured.result['stereo']
    data = np.load(captured.tmp / 'stereo.npy')  # (frames, 2)
    stereo = captured.stereo
    np.testing.assert_array_equal(data[:len(stereo)], stereo)
    raw = (captured.tmp / 'stereo.raw').read_bytes()
    assert (captured.tmp / 'stereo.bin').read_bytes()[:len(raw)] == raw
    assert run['info'] == {'channels': 2, 'sample_rate': SAMPLE_RATE,
                           'sample_format': SAMPLE_FORMAT, 'bitrate': 512000,
                           'coding_format': 'wave'}


@needs_portaudio
def test_stamps_are_in_the_callers_clock_and_follow_the_sample_count(captured):
    for name in ('mono', 'stereo'):
        run = captured.result[name]
        stamps = np.asarray(run['stamps'])
        # the caller's clock is monotonic + 1000 s: unmapped PortAudio times would be far off
        assert run['t0'] - 1.0 <= stamps[0] <= run['t1'], (
            f'{name}: first stamp {stamps[0]:.3f} outside the capture window {run["t0"]:.3f}..{run["t1"]:.3f} '
            'of the caller clock')
        assert run['stats']['clock_offset'] is not None
        # the file device has no clock (it delivers seconds of audio in a fraction of one): the stamps are
        # its sample count, chunks dropped at the full queue included, not the times the callbacks came
        expected = stamps[0] + (np.asarray(run['sequences']) - run['sequences'][0]) * CHUNK_FRAMES / SAMPLE_RATE
        np.testing.assert_allclose(stamps, expected, rtol=0, atol=1e-6)
        assert run['stats']['reanchors'] == 0 and stamps[-1] > run['t1'], 'faster than real time, as expected'


@needs_portaudio
def test_full_queue_drops_are_counted_not_fatal(captured):
    for name in ('mono', 'stereo'):
        run = captured.result[name]
        stats = run['stats']
        assert run['running'], f'{name}: the stream stopped when the queue overflowed'
        assert stats['dropped_chunks'] > 0
        assert stats['chunks'] >= len(run['sequences']) + stats['dropped_chunks']
        gaps = np.diff(run['sequences'])
        assert gaps.max() > 1, 'the sequence numbers do not show the dropped chunks'


@needs_portaudio
def test_unknown_device_lists_what_portaudio_sees(captured):
    errors = captured.result['errors']
    unknown = errors['unknown']
    assert "'no_such_microphone'" in unknown
    for d in captured.result['devices']:
        assert f"[{d['index']}] {d['name']!r}" in unknown
        assert f"{d['max_input_channels']} input channels" in unknown
    assert 'no audio device with index 999' in errors['index']
    assert 'matches 2 input devices' in errors['ambiguous']


# -- pure parts: no PortAudio stream needed --------------------------------------------


def test_clock_mapper_takes_the_least_delayed_observation():
    now = iter([100.30, 100.52, 100.41])
    mapper = ClockMapper(lambda: next(now), window=8)
    # stream clock 0.25, 0.50, 0.40: delays 0.05, 0.02, 0.01 above a true offset of 100.0
    assert mapper.observe(0.25) == pytest.approx(100.05)
    assert mapper.observe(0.50) == pytest.approx(100.02)
    assert mapper.observe(0.40) == pytest.approx(100.01)
    assert mapper.to_clock(1.0) == pytest.approx(101.01)


def test_clock_mapper_follows_a_clock_step_within_its_window():
    readings = [10.0 + i * 0.01 for i in range(4)] + [50.0 + i * 0.01 for i in range(4, 12)]
    clock = iter(readings)
    mapper = ClockMapper(lambda: next(clock), window=4)
    for i in range(12):
        mapper.observe(i * 0.01)
    assert mapper.offset == pytest.approx(50.0)  # the old offset (10) left the window


def test_callback_counts_overflows_and_stamps_the_first_frame():
    mic = MicrophoneCapture(sample_rate=16000, channels=2, chunk_ms=10, clock=lambda: 500.0,
                            max_queue_chunks=2)
    flags = types.SimpleNamespace(input_overflow=True)
    quiet = types.SimpleNamespace(input_overflow=False)
    block = np.arange(320, dtype=np.int16).reshape(160, 2)
    t = types.SimpleNamespace(currentTime=20.0, inputBufferAdcTime=19.99)
    mic._callback(block, 160, t, flags)
    mic._callback(block, 160, t, quiet)
    mic._callback(block, 160, t, quiet)  # queue of 2 is full: dropped
    stats = mic.stats()
    assert (stats.chunks, stats.overflows, stats.dropped_chunks) == (3, 1, 1)
    first = mic.read(timeout=0)
    assert first.sequence == 0 and first.stamp == pytest.approx(499.99)
    assert first.to_s16le() == block.astype('<i2').tobytes()
    block[:] = 0  # the chunk holds a copy, not PortAudio's buffer
    assert mic.read(timeout=0).data.any()


def test_missing_adc_time_falls_back_to_current_time_minus_latency():
    mic = MicrophoneCapture(sample_rate=16000, chunk_ms=20, clock=lambda: 7.0)
    mic._input_latency = 0.05
    ok = types.SimpleNamespace(input_overflow=False)
    silence = np.zeros((320, 1), np.int16)
    mic._callback(silence, 320, types.SimpleNamespace(currentTime=3.0, inputBufferAdcTime=0.0), ok)
    mic._callback(silence, 320, types.SimpleNamespace(currentTime=0.0, inputBufferAdcTime=0.0), ok)
    assert mic.read(timeout=0).stamp == pytest.approx(7.0 - 0.05)  # offset 4.0, 3.0 - 0.05 + 4.0
    # observed: clock() - latency, 6.95; the sample count says 20 ms after the first chunk
    assert mic.read(timeout=0).stamp == pytest.approx(7.0 - 0.05 + 0.02)
    assert mic.stats().adc_time_fallbacks == 2


def test_stamps_follow_the_sample_count_and_re_anchor_after_lost_input():
    now = [100.0]
    mic = MicrophoneCapture(sample_rate=16000, chunk_ms=20, clock=lambda: now[0], max_queue_chunks=100,
                            resync_s=0.5)
    ok, overflow = types.SimpleNamespace(input_overflow=False), types.SimpleNamespace(input_overflow=True)
    block = np.zeros((320, 1), np.int16)

    def deliver(n, status=ok, adc=0.0):
        for _ in range(n):
            mic._callback(block, 320, types.SimpleNamespace(currentTime=now[0] - 90.0, inputBufferAdcTime=adc), status)
        return [mic.read(timeout=0).stamp for _ in range(n)]

    # 10 chunks delivered in one burst (the same moment): 20 ms apart all the same
    stamps = deliver(10)
    assert stamps == pytest.approx([100.0 + 0.02 * k for k in range(10)])
    # late delivery (the callback 0.3 s after its time) does not move the stamps
    now[0] = 100.5
    assert deliver(1) == pytest.approx([100.2])
    # an overflow: frames were lost, the count is set again from the observed time
    assert deliver(1, overflow) == pytest.approx([100.5])
    # the count falls more than resync_s behind (input lost without a flag): set again
    now[0] = 101.2
    assert deliver(1) == pytest.approx([101.2])
    # ahead of the observed time (a device faster than real time): kept, never moved back
    assert deliver(100)[-1] == pytest.approx(101.2 + 0.02 * 100)
    assert mic.stats().reanchors == 2


def test_resync_must_be_positive():
    with pytest.raises(ValueError, match='resync_s'):
        MicrophoneCapture(resync_s=0)


def test_chunk_bytes_are_little_endian_interleaved():
    data = np.array([[1, -2], [256, 32767]], dtype=np.int16)
    chunk = AudioChunk(data=data, stamp=1.5, sequence=0, sample_rate=16000)
    assert chunk.to_s16le() == bytes([1, 0, 0xFE, 0xFF, 0, 1, 0xFF, 0x7F])
    assert (chunk.frames, chunk.channels, chunk.stamp_ns) == (2, 2, 1_500_000_000)


@pytest.mark.parametrize('kwargs, message', [
    ({'sample_rate': 0}, 'sample_rate'),
    ({'channels': 0}, 'channels'),
    ({'chunk_ms': 0}, 'chunk_ms'),
    ({'sample_rate': 16000, 'chunk_ms': 0.01}, 'whole number of frames'),
    ({'max_queue_chunks': 0}, 'max_queue_chunks'),
])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MicrophoneCapture(**kwargs)
