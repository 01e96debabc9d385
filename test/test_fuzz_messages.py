"""
Property-based fuzzing of message conversion and the hub.

Whatever a message holds, conversion returns an array or raises MalformedMessage (never
anything else), and the hub counts every malformed message.
"""
from __future__ import annotations

import array
import os
from types import SimpleNamespace as NS

from centralnet_ros import messages as M
from centralnet_ros.runtime import InputHub, InputSpec
from hypothesis import given, HealthCheck, settings
from hypothesis import strategies as st
import numpy as np

# CENTRALNET_FUZZ_EXAMPLES=5000 for a deeper run than the default quick one
EXAMPLES = int(os.environ.get('CENTRALNET_FUZZ_EXAMPLES', '150'))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

junk = st.one_of(st.none(), st.booleans(), st.text(max_size=5), st.floats(allow_nan=True),
                 st.integers(-2 ** 70, 2 ** 70), st.binary(max_size=8), st.lists(st.integers(-3, 3), max_size=3))
small_int = st.one_of(st.integers(-3, 40), st.integers(2 ** 31, 2 ** 40), junk)


@st.composite
def buffers(draw, max_size=2000):
    """Message data in every container a message can hold (and some it should not)."""
    raw = draw(st.binary(max_size=max_size))
    kind = draw(st.sampled_from(['bytes', 'ndarray', 'array', 'list', 'int16', 'float', '2d', 'junk']))
    if kind == 'bytes':
        return raw
    if kind == 'ndarray':
        return np.frombuffer(raw, np.uint8).copy()
    if kind == 'array':
        return array.array('B', raw)
    if kind == 'list':
        return draw(st.lists(st.integers(-300, 300), max_size=50))
    if kind == 'int16':
        return np.frombuffer(raw[: len(raw) // 2 * 2], np.int16).copy()
    if kind == 'float':
        return np.frombuffer(raw[: len(raw) // 4 * 4], np.float32).copy()
    if kind == '2d':
        return np.zeros((2, 3), np.uint8)
    return draw(junk)


stamps = st.builds(lambda s, n: NS(stamp=NS(sec=s, nanosec=n), frame_id=''),
                   st.one_of(st.integers(-2 ** 31, 2 ** 31 - 1), junk), st.one_of(st.integers(0, 10 ** 9), junk))


@st.composite
def images(draw):
    """Random Image messages: mostly consistent ones with a few fields broken, plus pure junk."""
    encoding = draw(st.one_of(st.sampled_from(sorted(M.IMAGE_ENCODINGS) + ['RGB8', 'yuv422', '', 'bayer_rggb8']),
                              junk))
    if draw(st.booleans()) and isinstance(encoding, str) and encoding.lower() in M.IMAGE_ENCODINGS:
        spec = M.IMAGE_ENCODINGS[encoding.lower()]
        h, w, pad = draw(st.integers(0, 6)), draw(st.integers(0, 6)), draw(st.integers(0, 5))
        step = w * spec.channels * int(spec.dtype[1:]) + pad
        data = draw(st.binary(min_size=step * h, max_size=step * h))
        msg = {'header': draw(stamps), 'height': h, 'width': w, 'encoding': encoding,
               'is_bigendian': draw(st.integers(0, 1)), 'step': step, 'data': data}
        for key in draw(st.sets(st.sampled_from(list(msg)), max_size=2)):   # break up to two fields
            msg[key] = draw(st.one_of(junk, buffers(50)))
        return NS(**msg)
    return NS(header=draw(stamps), height=draw(small_int), width=draw(small_int), encoding=encoding,
              is_bigendian=draw(st.one_of(st.integers(0, 1), junk)), step=draw(small_int), data=draw(buffers()))


def converts_or_malformed(fn, *args, **kwargs):
    try:
        out = fn(*args, **kwargs)
    except M.MalformedMessage as exc:
        assert exc.kind in M.MALFORMED_KINDS and str(exc)
        return None
    return out


@FUZZ
@given(images())
def test_fuzz_image(msg):
    out = converts_or_malformed(M.image_to_array, msg)
    if out is not None:
        assert out.shape[:2] == (msg.height, msg.width)


@FUZZ
@given(st.one_of(st.sampled_from(['png', 'jpeg', 'rgb8; jpeg compressed bgr8', '16UC1; compressedDepth png',
                                  '32FC1; compressedDepth png', 'tiff', 'h264']), junk),
       st.one_of(buffers(300), st.sampled_from([b'\x89PNG\r\n\x1a\n' + bytes(40), b'\xff\xd8\xff\xe0' + bytes(40)])))
def test_fuzz_compressed_image(fmt, data):
    converts_or_malformed(M.compressed_image_to_array, NS(header=None, format=fmt, data=data))


formats = st.one_of(st.sampled_from(sorted(M.AUDIO_SAMPLE_FORMATS) + ['s16le', 'MULAW', '']), junk)
codings = st.one_of(st.sampled_from(['wave', '', 'mp3', 'WAVE', 'opus']), junk)


@FUZZ
@given(buffers(), st.one_of(st.integers(0, 8), small_int), st.one_of(st.integers(0, 96000), small_int), formats,
       codings, st.booleans())
def test_fuzz_audio(data, channels, rate, fmt, coding, stamped):
    info = NS(channels=channels, sample_rate=rate, sample_format=fmt, bitrate=0, coding_format=coding)
    msg = NS(header=None, audio=NS(data=data)) if stamped else NS(data=data)
    out = converts_or_malformed(M.audio_to_array, msg, info)
    if out is not None:
        assert out.samples.dtype == np.float32 and out.samples.ndim == 2 and np.isfinite(out.samples).all()


@FUZZ
@given(buffers(), st.one_of(st.integers(0, 65535), small_int),
       st.one_of(st.lists(st.integers(0, 9), max_size=6), junk), st.one_of(st.none(), st.integers(1, 4)))
def test_fuzz_naoqi(data, freq, cmap, channels):
    converts_or_malformed(M.naoqi_audio_to_array, NS(header=None, frequency=freq, channel_map=cmap, data=data),
                          channels=channels)


numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-2 ** 1100, 2 ** 1100), junk)
points = st.builds(lambda x, y, z: NS(position=NS(x=x, y=y, z=z)), numbers, numbers, numbers)


@FUZZ
@given(st.one_of(st.lists(st.one_of(points, junk), max_size=22), junk), st.sampled_from([20, None]))
def test_fuzz_pose_array(poses, num_joints):
    converts_or_malformed(M.pose_array_to_joints, NS(header=None, poses=poses), num_joints=num_joints)


@FUZZ
@given(st.one_of(st.lists(st.one_of(st.builds(lambda x, y, c: NS(x=x, y=y, c=c), numbers, numbers, numbers), junk),
                          min_size=16, max_size=19), junk))
def test_fuzz_skeleton2d(kps):
    converts_or_malformed(M.skeleton2d_to_array, NS(header=None, skeleton=kps))


@FUZZ
@given(stamps)
def test_fuzz_header_stamp(header):
    ns = converts_or_malformed(M.header_stamp_ns, NS(header=header))
    if ns is not None:
        assert isinstance(ns, int)


@settings(max_examples=max(EXAMPLES // 3, 20), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(['cam', 'mic', 'skel']), images(), buffers(400), st.booleans()),
                min_size=1, max_size=12))
def test_fuzz_hub_counts_every_malformed_message(stream):
    """Random streams into the hub: ingest never raises; received, accepted and malformed add up."""
    hub = InputHub([InputSpec('cam', 'image'), InputSpec('mic', 'audio', audio_format=M.AudioFormat(2, 16000)),
                    InputSpec('skel', 'skeleton2d')])
    statuses = {'cam': [], 'mic': [], 'skel': []}
    for name, img, data, full in stream:
        if name == 'cam':
            msg = img
        elif name == 'mic':
            msg = NS(header=img.header, audio=NS(data=data))
        else:
            msg = NS(header=img.header, skeleton=[NS(x=0.5, y=0.5, c=1.0)] * (18 if full else 17))
        statuses[name].append(hub.ingest(name, msg).status)
    for name, got in statuses.items():
        s = hub.stats.input(name)
        assert s.received == len(got)
        assert s.malformed_total == got.count('malformed')
        assert s.accepted == got.count('accepted') + got.count('out_of_order')
        assert s.received == s.accepted + s.malformed_total + sum(s.dropped.values())
