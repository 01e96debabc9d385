"""Message conversions against hand-built messages (every encoding, padding, byte order)."""
from __future__ import annotations

import array
import struct
from types import SimpleNamespace as NS

from centralnet_ros import messages as M
from centralnet_ros.replay import msgdefs as D
import cv2
import numpy as np
import pytest


def header(ns=1_500_000_000):
    return NS(stamp=NS(sec=ns // 10**9, nanosec=ns % 10**9), frame_id='cam')


def image_msg(data, *, height, width, encoding, step, is_bigendian=0):
    return NS(header=header(), height=height, width=width, encoding=encoding, is_bigendian=is_bigendian,
              step=step, data=data)


def padded_rows(rows: list[bytes], pad: int) -> bytes:
    return b''.join(r + b'\xee' * pad for r in rows)


RNG = np.random.default_rng(0)


def shares(out: np.ndarray, data) -> bool:
    """Whether ``out`` views the message buffer ``data`` (bytes, array.array or ndarray)."""
    return np.shares_memory(out, data if isinstance(data, np.ndarray) else np.frombuffer(data, np.uint8))


# --------------------------------------------------------------------------- images

@pytest.mark.parametrize('pad', [0, 5])
@pytest.mark.parametrize('container', ['bytes', 'ndarray', 'array', 'list'])
def test_rgb8_and_bgr8_give_rgb(pad, container):
    rgb = RNG.integers(0, 256, (3, 4, 3), dtype=np.uint8)
    for encoding, order in (('rgb8', [0, 1, 2]), ('bgr8', [2, 1, 0])):
        rows = [rgb[r][:, order].tobytes() for r in range(3)]
        raw = padded_rows(rows, pad)
        data = {'bytes': raw, 'ndarray': np.frombuffer(raw, np.uint8).copy(),
                'array': array.array('B', raw), 'list': list(raw)}[container]
        msg = image_msg(data, height=3, width=4, encoding=encoding, step=12 + pad)
        out = M.image_to_array(msg)
        assert out.shape == (3, 4, 3) and out.dtype == np.uint8
        np.testing.assert_array_equal(out, rgb)
        if container != 'list':            # buffers are viewed, never copied
            assert shares(out, data)
            assert not out.flags.writeable


@pytest.mark.parametrize('encoding,order', [('rgba8', [0, 1, 2, 3]), ('bgra8', [2, 1, 0, 3])])
def test_four_channel_encodings_drop_alpha(encoding, order):
    rgba = RNG.integers(0, 256, (2, 3, 4), dtype=np.uint8)
    raw = padded_rows([rgba[r][:, order].tobytes() for r in range(2)], 4)
    data = np.frombuffer(raw, np.uint8).copy()
    out = M.image_to_array(image_msg(data, height=2, width=3, encoding=encoding, step=16))
    np.testing.assert_array_equal(out, rgba[..., :3])
    assert np.shares_memory(out, data)


@pytest.mark.parametrize('encoding', ['mono8', '8UC1'])
def test_mono8(encoding):
    g = RNG.integers(0, 256, (5, 7), dtype=np.uint8)
    data = np.frombuffer(padded_rows([g[r].tobytes() for r in range(5)], 1), np.uint8).copy()
    out = M.image_to_array(image_msg(data, height=5, width=7, encoding=encoding, step=8))
    np.testing.assert_array_equal(out, g)
    assert np.shares_memory(out, data)


@pytest.mark.parametrize('big', [False, True])
def test_mono16_byte_order(big):
    g = RNG.integers(0, 65536, (3, 4), dtype=np.uint16)
    fmt = '>' if big else '<'
    rows = [struct.pack(f'{fmt}4H', *map(int, g[r])) for r in range(3)]
    data = np.frombuffer(padded_rows(rows, 2), np.uint8).copy()
    out = M.image_to_array(image_msg(data, height=3, width=4, encoding='mono16', step=10, is_bigendian=int(big)))
    assert out.dtype == np.uint16 and out.dtype.isnative
    np.testing.assert_array_equal(out, g)
    assert np.shares_memory(out, data) == (not big)      # big-endian data is copied into native order


@pytest.mark.parametrize('big', [False, True])
@pytest.mark.parametrize('pad', [0, 3])
def test_16uc1_depth_millimetres_to_metres(big, pad):
    mm = np.array([[0, 1000, 1500], [65535, 250, 1]], np.uint16)
    fmt = '>' if big else '<'
    rows = [struct.pack(f'{fmt}3H', *map(int, mm[r])) for r in range(2)]
    data = np.frombuffer(padded_rows(rows, pad), np.uint8).copy()
    msg = image_msg(data, height=2, width=3, encoding='16UC1', step=6 + pad, is_bigendian=int(big))
    metres = M.image_to_array(msg)
    assert metres.dtype == np.float32
    np.testing.assert_allclose(metres, mm / 1000.0, rtol=1e-6)
    assert metres[0, 0] == 0.0                             # REP 118: 0 = no measurement, kept
    raw = M.image_to_array(msg, depth_in_metres=False)
    assert raw.dtype == np.uint16
    np.testing.assert_array_equal(raw, mm)
    assert np.shares_memory(raw, data) == (not big)


@pytest.mark.parametrize('big', [False, True])
@pytest.mark.parametrize('pad', [0, 6])
def test_32fc1_metres(big, pad):
    d = np.array([[0.5, 1.25, np.nan], [3.0, 0.001, 7.5]], np.float32)
    fmt = '>' if big else '<'
    rows = [struct.pack(f'{fmt}3f', *map(float, d[r])) for r in range(2)]
    data = np.frombuffer(padded_rows(rows, pad), np.uint8).copy()
    out = M.image_to_array(image_msg(data, height=2, width=3, encoding='32FC1', step=12 + pad, is_bigendian=int(big)))
    assert out.dtype == np.float32 and out.shape == (2, 3)
    np.testing.assert_array_equal(out, d)                  # NaN (no measurement) is kept, not malformed
    assert np.shares_memory(out, data) == (not big)


@pytest.mark.parametrize('bad,kind', [
    ({'encoding': 'yuv422'}, 'encoding'),
    ({'step': 5}, 'size'),                                # smaller than width * 3
    ({'data': b'\x00' * 35}, 'size'),                     # not step * height
    ({'height': 0, 'data': b''}, 'empty'),
    ({'width': -1}, 'field'),
    ({'data': 'text'}, 'field'),
    ({'data': [1, 2, 300] * 12}, 'field'),                # list value out of uint8 range
])
def test_malformed_images(bad, kind):
    fields = {'header': header(), 'height': 3, 'width': 4, 'encoding': 'rgb8', 'is_bigendian': 0, 'step': 12,
              'data': b'\x00' * 36}
    fields.update(bad)
    with pytest.raises(M.MalformedMessage) as err:
        M.image_to_array(NS(**fields))
    assert err.value.kind == kind
    assert 'Image' in str(err.value)


def test_image_without_a_field_is_malformed():
    with pytest.raises(M.MalformedMessage) as err:
        M.image_to_array(NS(height=1, width=1, encoding='mono8', is_bigendian=0, step=1))
    assert err.value.kind == 'field' and "'data'" in str(err.value)


def test_dict_messages_convert_like_objects():
    g = RNG.integers(0, 256, (2, 2), dtype=np.uint8)
    msg = {'header': {'stamp': {'sec': 3, 'nanosec': 7}}, 'height': 2, 'width': 2, 'encoding': 'mono8',
           'is_bigendian': 0, 'step': 2, 'data': g.tobytes()}
    np.testing.assert_array_equal(M.image_to_array(msg), g)
    assert M.header_stamp_ns(msg) == 3_000_000_007


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', 'mono16', '16UC1', '32FC1'])
@pytest.mark.parametrize('pad,big', [(0, False), (3, False), (2, True)])
def test_build_image_round_trip_through_rosbags_cdr(encoding, pad, big):
    """Builder -> rosbags CDR bytes -> decoded dataclass -> converter gives the array back."""
    shape = {'rgba8': (4, 5, 4), 'bgra8': (4, 5, 4), 'rgb8': (4, 5, 3), 'bgr8': (4, 5, 3)}.get(encoding, (4, 5))
    if encoding in ('mono16', '16UC1'):
        a = RNG.integers(0, 65536, shape, dtype=np.uint16)
    elif encoding == '32FC1':
        a = RNG.random(shape, dtype=np.float32)
    else:
        a = RNG.integers(0, 256, shape, dtype=np.uint8)
    store = D.make_typestore()
    msg = D.image_message(a, encoding=encoding, stamp_ns=42, row_padding=pad, bigendian=big, typestore=store)
    back = store.deserialize_cdr(store.serialize_cdr(msg, 'sensor_msgs/msg/Image'), 'sensor_msgs/msg/Image')
    assert back.step == a.shape[1] * (a.shape[2] if a.ndim == 3 else 1) * a.dtype.itemsize + pad
    out = M.image_to_array(back, depth_in_metres=False)
    expected = a[..., :3] if a.ndim == 3 else a
    np.testing.assert_array_equal(out, expected)
    assert M.header_stamp_ns(back) == 42


# --------------------------------------------------------------------------- compressed

def compressed(data: bytes, fmt: str):
    return NS(header=header(), format=fmt, data=np.frombuffer(data, np.uint8).copy())


def test_compressed_png_colour_and_grey():
    rgb = RNG.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    ok, png = cv2.imencode('.png', rgb[..., ::-1].copy())  # cv2 writes BGR
    assert ok
    np.testing.assert_array_equal(M.compressed_image_to_array(compressed(png.tobytes(), 'rgb8; png compressed bgr8')),
                                  rgb)
    grey = RNG.integers(0, 256, (6, 8), dtype=np.uint8)
    ok, png = cv2.imencode('.png', grey)
    np.testing.assert_array_equal(M.compressed_image_to_array(compressed(png.tobytes(), 'png')), grey)


def test_compressed_jpeg_is_close():
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., 0] = 200                                      # red: channel order matters
    ok, jpg = cv2.imencode('.jpg', rgb[..., ::-1].copy(), [cv2.IMWRITE_JPEG_QUALITY, 95])
    out = M.compressed_image_to_array(compressed(jpg.tobytes(), 'jpeg'))
    assert out.shape == (16, 16, 3)
    assert abs(int(out[..., 0].mean()) - 200) < 6 and out[..., 2].mean() < 6


def test_compressed_depth_png_16uc1_and_32fc1():
    mm = np.array([[0, 1000], [2500, 65535]], np.uint16)
    ok, png = cv2.imencode('.png', mm)
    payload = struct.pack('<iff', 0, 0.0, 0.0) + png.tobytes()
    metres = M.compressed_image_to_array(compressed(payload, '16UC1; compressedDepth png'))
    np.testing.assert_allclose(metres, mm / 1000.0, rtol=1e-6)
    # 32FC1: quantised inverse depth v = A / d + B
    depth = np.array([[1.0, 2.0], [4.0, np.nan]], np.float32)
    a, b = 100.0, 10.0
    v = np.where(np.isnan(depth), 0, np.round(a / np.nan_to_num(depth, nan=1.0) + b)).astype(np.uint16)
    ok, png = cv2.imencode('.png', v)
    payload = struct.pack('<iff', 0, a, b) + png.tobytes()
    out = M.compressed_image_to_array(compressed(payload, '32FC1; compressedDepth png'))
    np.testing.assert_allclose(out[~np.isnan(depth)], depth[~np.isnan(depth)], rtol=1e-5)
    assert np.isnan(out[1, 1])


@pytest.mark.parametrize('data,fmt,kind', [
    (b'', 'png', 'empty'),
    (b'not an image at all', 'png', 'decode'),
    (b'\x00' * 20, 'h264', 'encoding'),
    (b'\x00' * 8, '16UC1; compressedDepth png', 'size'),
    (b'\x00' * 40, '16UC1; compressedDepth rvl', 'encoding'),
])
def test_malformed_compressed(data, fmt, kind):
    with pytest.raises(M.MalformedMessage) as err:
        M.compressed_image_to_array(NS(header=header(), format=fmt, data=data))
    assert err.value.kind == kind


# --------------------------------------------------------------------------- audio

def audio_msg(raw: bytes, container='ndarray'):
    data = np.frombuffer(raw, np.uint8).copy() if container == 'ndarray' else array.array('B', raw)
    return NS(header=header(), audio=NS(data=data))


def info(channels, rate, fmt, coding='wave'):
    return NS(channels=channels, sample_rate=rate, sample_format=fmt, bitrate=0, coding_format=coding)


@pytest.mark.parametrize('container', ['ndarray', 'array'])
def test_s16le_stereo_interleaving(container):
    left, right = [0, 16384, -32768], [100, -16384, 32767]
    raw = struct.pack('<6h', *[v for pair in zip(left, right) for v in pair])
    chunk = M.audio_to_array(audio_msg(raw, container), info(2, 16000, 'S16LE'))
    assert chunk.sample_rate == 16000
    assert chunk.samples.dtype == np.float32 and chunk.samples.shape == (3, 2)
    np.testing.assert_allclose(chunk.samples[:, 0], np.array(left) / 32768)
    np.testing.assert_allclose(chunk.samples[:, 1], np.array(right) / 32768)


@pytest.mark.parametrize('fmt,pack,scale', [
    ('S16BE', '>h', 32768), ('S32LE', '<i', 2 ** 31), ('S32BE', '>i', 2 ** 31),
    ('F32LE', '<f', 1), ('F32BE', '>f', 1), ('F64LE', '<d', 1), ('S8', 'b', 128),
])
def test_other_sample_formats(fmt, pack, scale):
    ints = [0, 1, -2, 3, 100, -100] if scale != 1 else [0.0, 0.5, -0.25, 1.0, -1.0, 0.125]
    raw = b''.join(struct.pack(pack, v) for v in ints)
    chunk = M.audio_to_array(audio_msg(raw), info(3, 48000, fmt))
    assert chunk.samples.shape == (2, 3)
    np.testing.assert_allclose(chunk.samples.reshape(-1), np.array(ints) / scale, rtol=1e-6)


def test_u8_and_s24():
    chunk = M.audio_to_array(audio_msg(bytes([0, 128, 255])), info(1, 8000, 'U8'))
    np.testing.assert_allclose(chunk.samples[:, 0], [-1.0, 0.0, 127 / 128])
    vals = [0, 1, -1, 2 ** 23 - 1, -2 ** 23]
    le = b''.join(struct.pack('<i', v)[:3] for v in vals)
    be = b''.join(struct.pack('>i', v)[1:] for v in vals)
    for raw, fmt in ((le, 'S24LE'), (be, 'S24BE')):
        out = M.audio_to_array(audio_msg(raw), info(1, 8000, fmt)).samples[:, 0]
        np.testing.assert_allclose(out, np.array(vals) / 2 ** 23)


def test_native_f32_is_zero_copy_and_others_copy():
    x = np.array([0.1, -0.2, 0.3, 0.4], np.float32)
    msg = audio_msg(x.tobytes())
    out = M.audio_to_array(msg, info(2, 16000, 'F32LE')).samples
    assert shares(out, msg.audio.data) and not out.flags.writeable
    msg16 = audio_msg(np.array([1, 2], '<i2').tobytes())
    assert not np.shares_memory(M.audio_to_array(msg16, info(1, 16000, 'S16LE')).samples, msg16.audio.data)


def test_audio_data_without_stamp_and_audio_format_stand_in():
    msg = NS(data=np.frombuffer(struct.pack('<2h', 1, 2), np.uint8).copy())          # AudioData
    chunk = M.audio_to_array(msg, M.AudioFormat(channels=1, sample_rate=22050))
    assert chunk.sample_rate == 22050 and chunk.samples.shape == (2, 1)


@pytest.mark.parametrize('raw,inf,kind', [
    (b'', info(1, 16000, 'S16LE'), 'empty'),
    (b'\x00\x00\x00', info(1, 16000, 'S16LE'), 'size'),
    (b'\x00' * 6, info(2, 16000, 'S16LE'), 'size'),        # 1.5 stereo frames
    (b'\x00' * 4, info(1, 16000, 'S16LE', 'mp3'), 'encoding'),
    (b'\x00' * 4, info(1, 16000, 'MULAW'), 'encoding'),
    (b'\x00' * 4, info(0, 16000, 'S16LE'), 'field'),
    (b'\x00' * 4, info(1, 0, 'S16LE'), 'field'),
    (struct.pack('<f', float('nan')), info(1, 16000, 'F32LE'), 'nan'),
    (struct.pack('<f', float('inf')), info(1, 16000, 'F32LE'), 'nan'),
])
def test_malformed_audio(raw, inf, kind):
    with pytest.raises(M.MalformedMessage) as err:
        M.audio_to_array(audio_msg(raw), inf)
    assert err.value.kind == kind


def test_naoqi_audio_buffer_four_channels():
    frames = np.array([[1, 2, 3, 4], [-1, -2, -3, -4], [32767, 0, -32768, 5]], np.int16)
    msg = NS(header=header(), frequency=48000, channel_map=array.array('B', [0, 2, 3, 5]),
             data=array.array('h', frames.reshape(-1).tolist()))                    # rclpy containers
    chunk = M.naoqi_audio_to_array(msg)
    assert chunk.sample_rate == 48000 and chunk.samples.shape == (3, 4)
    np.testing.assert_allclose(chunk.samples, frames / 32768)
    empty_map = NS(header=header(), frequency=16000, channel_map=[], data=frames.reshape(-1))
    with pytest.raises(M.MalformedMessage) as err:
        M.naoqi_audio_to_array(empty_map)
    assert err.value.kind == 'field'
    assert M.naoqi_audio_to_array(empty_map, channels=4).samples.shape == (3, 4)
    bad = NS(header=header(), frequency=16000, channel_map=[0, 1, 2], data=frames.reshape(-1)[:4])
    assert pytest.raises(M.MalformedMessage, M.naoqi_audio_to_array, bad).value.kind == 'size'


# --------------------------------------------------------------------------- skeletons

def test_pose_array_to_joints_in_order():
    joints = RNG.normal(size=(20, 3))
    poses = [NS(position=NS(x=x, y=y, z=z), orientation=NS(x=0, y=0, z=0, w=1)) for x, y, z in joints]
    out = M.pose_array_to_joints(NS(header=header(), poses=poses))
    assert out.shape == (20, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, joints, rtol=1e-6)
    assert M.KINECT_V1_JOINTS[0] == 'hip_center' and M.KINECT_V1_JOINTS[3] == 'head'
    assert pytest.raises(M.MalformedMessage, M.pose_array_to_joints, NS(poses=poses[:19])).value.kind == 'size'
    assert M.pose_array_to_joints(NS(poses=poses[:15]), num_joints=None).shape == (15, 3)
    assert pytest.raises(M.MalformedMessage, M.pose_array_to_joints, NS(poses=[])).value.kind == 'empty'
    poses[4] = NS(position=NS(x=float('nan'), y=0.0, z=0.0))
    assert pytest.raises(M.MalformedMessage, M.pose_array_to_joints, NS(poses=poses)).value.kind == 'nan'
    assert np.isnan(M.pose_array_to_joints(NS(poses=poses), allow_nan=True)[4, 0])


def test_skeleton2d():
    pts = RNG.random((18, 3))
    msg = NS(header=header(), skeleton=[NS(x=x, y=y, c=c) for x, y, c in pts])
    np.testing.assert_allclose(M.skeleton2d_to_array(msg), pts, rtol=1e-6)
    assert M.SKELETON2D_JOINTS[M.SKELETON2D_JOINTS.index('neck')] == 'neck'
    store = D.make_typestore()
    assert store.types['hri_msgs/msg/Skeleton2D'].RIGHT_EAR == M.SKELETON2D_JOINTS.index('right_ear')
    short = NS(skeleton=msg.skeleton[:17])
    assert pytest.raises(M.MalformedMessage, M.skeleton2d_to_array, short).value.kind == 'size'


# --------------------------------------------------------------------------- builders, time

def test_stamp_helpers():
    assert M.ns_to_stamp(1_000_000_001) == (1, 1)
    assert M.ns_to_stamp(-1) == (-1, 999_999_999)
    assert M.stamp_to_ns(NS(sec=-1, nanosec=999_999_999)) == -1
    with pytest.raises(M.MalformedMessage):
        M.stamp_to_ns(NS(sec=0, nanosec=1_000_000_000))


def test_build_classification_ranks_and_truncates():
    msg = M.build_classification(M.dict_factory, labels=['a', 'b', 'c'], scores=[0.2, 0.5, 0.3],
                                 stamp_ns=2_000_000_005, frame_id='mic', top_k=2)
    assert [r['class_id'] for r in msg['results']] == ['b', 'c']
    assert msg['header'] == {'stamp': {'sec': 2, 'nanosec': 5}, 'frame_id': 'mic'}
    with pytest.raises(ValueError):
        M.build_classification(M.dict_factory, labels=['a'], scores=[0.1, 0.9], stamp_ns=0)


def test_output_builders_make_rosbags_messages():
    store = D.make_typestore()
    f = D.typestore_factory(store)
    built = [
        M.build_classification(f, labels=['x', 'y'], scores=[0.9, 0.1], stamp_ns=5),
        M.build_label_info(f, labels=['x', 'y'], stamp_ns=5, threshold=0.5),
        M.build_vision_info(f, method='centralnet', database_location='models/speech', stamp_ns=5),
        M.build_expression(f, expression='happy', confidence=0.8, stamp_ns=5),
        M.build_live_speech(f, final='seven', confidence=0.7, stamp_ns=5, language='en-US'),
        M.build_ids_list(f, ids=['p1'], stamp_ns=5),
    ]
    for msg in built:
        back = store.deserialize_cdr(store.serialize_cdr(msg, msg.__msgtype__), msg.__msgtype__)
        assert M.header_stamp_ns(back) == 5
    assert built[1].class_map[1].class_name == 'y' and built[1].class_map[1].class_id == 1


def test_sequences_to_python_for_rclpy():
    out = M.sequences_to_python({'data': np.array([1, 2], np.int16), 'n': np.uint8(3), 's': 'x'})
    assert isinstance(out['data'], array.array) and out['data'].typecode == 'h' and list(out['data']) == [1, 2]
    assert type(out['n']) is int and out['s'] == 'x'


def test_build_audio_round_trip_all_formats():
    x = np.clip(RNG.normal(0, 0.3, (50, 2)), -1, 0.99).astype(np.float32)
    for fmt in M.AUDIO_SAMPLE_FORMATS:
        stamped, inf = M.build_audio(M.dict_factory, x, sample_rate=16000, stamp_ns=0, sample_format=fmt)
        out = M.audio_to_array(stamped, inf).samples
        step = M.AUDIO_SAMPLE_FORMATS[fmt].scale if fmt[0] != 'F' else 1e-6
        np.testing.assert_allclose(out, x, atol=step)
