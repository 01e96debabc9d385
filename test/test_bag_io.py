"""Real rosbag2 files (sqlite3 and MCAP) with the registered custom message types."""
from __future__ import annotations

import gzip
import wave

from centralnet_ros import messages as M
from centralnet_ros.messages.definitions import MSG_DEFINITIONS
from centralnet_ros.replay import msgdefs as D
from centralnet_ros.runtime import InputHub, InputSpec
from dataset_guard import require
import numpy as np
import pytest
from rosbags.rosbag2 import Reader
from rosbags.typesys import get_typestore, Stores

S = 1_000_000_000
MS = 1_000_000


def fsdd(name='5_jackson_2.wav'):
    path = require('fsdd') / 'fsdd' / 'recordings' / name
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), '<i2').copy(), w.getframerate()


def mnist_digits(n=3):
    path = require('mnist') / 'mnist' / 't10k-images-idx3-ubyte.gz'
    with gzip.open(path, 'rb') as f:
        raw = f.read(16 + n * 784)
    return np.frombuffer(raw[16:], np.uint8).reshape(n, 28, 28)


def recording(store):
    """(topic, msgtype, log_time, message) of a small multimodal recording from real samples."""
    pcm, sr = fsdd()
    digits = mnist_digits()
    out, t0 = [], 1_700_000_000 * S
    info_sent = False
    for i, k in enumerate(range(0, len(pcm), 800)):                      # 100 ms chunks of a spoken digit
        stamp = t0 + k * S // sr
        stamped, info = D.audio_messages(pcm[k:k + 800, None], sample_rate=sr, stamp_ns=stamp, typestore=store)
        if not info_sent:
            out.append(('/audio/info', 'audio_common_msgs/msg/AudioInfo', stamp, info))
            info_sent = True
        out.append(('/audio/audio', 'audio_common_msgs/msg/AudioDataStamped', stamp + 2 * MS, stamped))
    for i, d in enumerate(digits):                                       # camera frames, rgb8 and mono8
        stamp = t0 + i * 100 * MS
        out.append(('/camera/image_raw', 'sensor_msgs/msg/Image', stamp + 1 * MS,
                    D.image_message(np.repeat(d[..., None], 3, axis=2), encoding='bgr8', stamp_ns=stamp,
                                    row_padding=4, typestore=store)))
        out.append(('/camera/compressed', 'sensor_msgs/msg/CompressedImage', stamp + 1 * MS,
                    D.compressed_image_message(d, stamp_ns=stamp, typestore=store)))
    joints = np.random.default_rng(0).normal(size=(20, 3))
    out.append(('/skeleton', 'geometry_msgs/msg/PoseArray', t0,
                D.pose_array_message(joints, stamp_ns=t0, typestore=store)))
    out.append(('/humans/bodies/b1/skeleton2d', 'hri_msgs/msg/Skeleton2D', t0,
                D.skeleton2d_message(np.random.default_rng(1).random((18, 3)), stamp_ns=t0, typestore=store)))
    out.append(('/naoqi_driver/audio', 'naoqi_bridge_msgs/msg/AudioBuffer', t0,
                D.naoqi_audio_message(np.tile(pcm[:1360, None], (1, 4)), frequency=sr, stamp_ns=t0,
                                      channel_map=[0, 2, 3, 5], typestore=store)))
    f = D.typestore_factory(store)
    out.append(('/speech/label', 'vision_msgs/msg/Classification', t0 + S,
                M.build_classification(f, labels=['zero', 'five'], scores=[0.1, 0.9], stamp_ns=t0)))
    out.append(('/humans/voices/v1/speech', 'hri_msgs/msg/LiveSpeech', t0 + S,
                M.build_live_speech(f, final='five', confidence=0.9, stamp_ns=t0)))
    out.append(('/humans/faces/f1/expression', 'hri_msgs/msg/Expression', t0 + S,
                M.build_expression(f, expression='happy', confidence=0.5, stamp_ns=t0)))
    return out, pcm, sr, digits, joints


@pytest.mark.parametrize('storage', ['sqlite3', 'mcap'])
def test_write_then_read_real_bag(tmp_path, storage):
    store = D.make_typestore()
    msgs, pcm, sr, digits, joints = recording(store)
    path = D.write_bag(tmp_path / f'demo_{storage}', msgs, storage=storage, typestore=store)
    files = {p.suffix for p in path.iterdir()}
    assert '.yaml' in files and ('.db3' if storage == 'sqlite3' else '.mcap') in files
    topics = D.bag_topics(path)
    assert topics['/audio/audio'][0] == 'audio_common_msgs/msg/AudioDataStamped'
    assert topics['/camera/image_raw'][1] == len(digits)
    got = list(D.read_bag(path))
    assert len(got) == len(msgs)
    times = [m.log_time_ns for m in got]
    assert times == sorted(times)                                        # log-time order
    by_topic = {}
    for m in got:
        by_topic.setdefault(m.topic, []).append(m.message)
    # the decoded messages convert back to the real samples
    info = by_topic['/audio/info'][0]
    audio = np.concatenate([M.audio_to_array(a, info).samples for a in by_topic['/audio/audio']])
    np.testing.assert_array_equal(np.rint(audio[:, 0] * 32768).astype(np.int16), pcm)
    for d, img, comp in zip(digits, by_topic['/camera/image_raw'], by_topic['/camera/compressed']):
        np.testing.assert_array_equal(M.image_to_array(img)[..., 0], d)
        np.testing.assert_array_equal(M.compressed_image_to_array(comp), d)
    np.testing.assert_allclose(M.pose_array_to_joints(by_topic['/skeleton'][0]), joints, rtol=1e-6)
    assert M.skeleton2d_to_array(by_topic['/humans/bodies/b1/skeleton2d'][0]).shape == (18, 3)
    naoqi = M.naoqi_audio_to_array(by_topic['/naoqi_driver/audio'][0])
    assert naoqi.samples.shape == (1360, 4) and naoqi.sample_rate == sr
    assert [r.class_id for r in by_topic['/speech/label'][0].results] == ['five', 'zero']
    assert by_topic['/humans/voices/v1/speech'][0].final == 'five'
    assert by_topic['/humans/faces/f1/expression'][0].expression == 'happy'
    only = list(D.read_bag(path, topics=['/skeleton']))
    assert [m.topic for m in only] == ['/skeleton']


@pytest.mark.parametrize('storage', ['sqlite3', 'mcap'])
def test_bag_carries_definitions_a_plain_reader_can_use(tmp_path, storage):
    """The custom definitions are stored in the bag: a type store without them decodes it."""
    store = D.make_typestore()
    msgs, *_ = recording(store)
    path = D.write_bag(tmp_path / 'b', msgs, storage=storage, typestore=store, version=9)
    with Reader(path) as reader:
        conn = next(c for c in reader.connections if c.topic == '/naoqi_driver/audio')
        assert 'int16[] data' in conn.msgdef.data and conn.digest.startswith('RIHS01_')
        assert conn.digest == store.hash_rihs01('naoqi_bridge_msgs/msg/AudioBuffer')
    plain = get_typestore(Stores.ROS2_HUMBLE)
    assert 'hri_msgs/msg/Skeleton2D' not in plain.types
    got = {m.topic: m.message for m in D.read_bag(path, typestore=plain)}
    assert M.skeleton2d_to_array(got['/humans/bodies/b1/skeleton2d']).shape == (18, 3)
    assert got['/naoqi_driver/audio'].frequency == 8000


def test_sqlite3_and_mcap_decode_identically(tmp_path):
    store = D.make_typestore()
    msgs, *_ = recording(store)
    a = list(D.read_bag(D.write_bag(tmp_path / 'a', msgs, storage='sqlite3', typestore=store)))
    b = list(D.read_bag(D.write_bag(tmp_path / 'b', msgs, storage='mcap', typestore=store)))
    assert [(m.topic, m.log_time_ns) for m in a] == [(m.topic, m.log_time_ns) for m in b]
    for x, y in zip(a, b):
        assert (store.serialize_cdr(x.message, x.msgtype).tobytes()
                == store.serialize_cdr(y.message, y.msgtype).tobytes())


def test_bag_replayed_into_the_hub_gives_the_audio_back(tmp_path):
    store = D.make_typestore()
    msgs, pcm, sr, *_ = recording(store)
    path = D.write_bag(tmp_path / 'r', msgs, storage='mcap', typestore=store)
    hub = InputHub([InputSpec('mic', 'audio'), InputSpec('cam', 'image')])
    for m in D.read_bag(path, topics=['/audio/info', '/audio/audio', '/camera/image_raw']):
        if m.topic == '/audio/info':
            assert hub.set_audio_info('mic', m.message)
        else:
            assert hub.ingest('mic' if m.topic == '/audio/audio' else 'cam', m.message).stored
    t0 = msgs[0][2]
    win = hub.buffers['mic'].window(t0, t0 + len(pcm) * S // sr)
    assert win.coverage == 1.0
    np.testing.assert_array_equal(np.rint(win.samples[:, 0] * 32768).astype(np.int16), pcm)
    assert hub.stats.input('cam').accepted == 3 and hub.stats.input('mic').gaps == 0


def test_bag_errors_name_the_problem(tmp_path):
    store = D.make_typestore()
    with pytest.raises(D.BagReadError, match='no such rosbag2'):
        list(D.read_bag(tmp_path / 'missing'))
    (tmp_path / 'junk').mkdir()
    with pytest.raises(D.BagReadError, match='cannot open'):
        list(D.read_bag(tmp_path / 'junk'))
    msgs, *_ = recording(store)
    path = D.write_bag(tmp_path / 'ok', msgs[:3], typestore=store)
    with pytest.raises(D.BagReadError, match='not in the bag'):
        list(D.read_bag(path, topics=['/nope']))
    with pytest.raises(FileExistsError):
        D.write_bag(path, msgs[:1], typestore=store)
    with pytest.raises(ValueError, match='storage'):
        D.write_bag(tmp_path / 'x', msgs[:1], storage='zip', typestore=store)
    with pytest.raises(KeyError, match='register'):
        D.typestore_factory(store)('nope_msgs/msg/Thing')


def test_msgtype_names_are_normalised():
    assert D.normalize_msgtype('sensor_msgs/Image') == 'sensor_msgs/msg/Image'
    assert D.normalize_msgtype('hri_msgs/msg/Skeleton2D') == 'hri_msgs/msg/Skeleton2D'
    with pytest.raises(ValueError):
        D.normalize_msgtype('Image')
    assert set(MSG_DEFINITIONS) <= set(D.make_typestore('jazzy').types)


def test_a_different_version_of_a_type_is_decoded_with_the_bags_definition(tmp_path):
    """
    A bag recorded with another hri_msgs LiveSpeech is decoded with the definition it carries.

    Here the bag's type is hri_msgs 2.1's, with a ``locale`` field before ``language``; ours (2.0.0) is not used.
    """
    from rosbags.typesys import get_types_from_msg
    other = get_typestore(Stores.ROS2_HUMBLE)
    other.register(get_types_from_msg('std_msgs/Header header\nstring incremental\nstring final\n'
                                      'float64 confidence\nstring locale\nstring language\n',
                                      'hri_msgs/msg/LiveSpeech'))
    cls = other.types['hri_msgs/msg/LiveSpeech']
    hdr = other.types['std_msgs/msg/Header'](stamp=other.types['builtin_interfaces/msg/Time'](sec=1, nanosec=2),
                                             frame_id='')
    msg = cls(header=hdr, incremental='', final='three', confidence=0.5, locale='en_GB', language='en-GB')
    for storage in ('sqlite3', 'mcap'):
        path = D.write_bag(tmp_path / storage, [('/speech', 'hri_msgs/msg/LiveSpeech', 5, msg)], storage=storage,
                           typestore=other)
        got = list(D.read_bag(path))[0].message                        # default store: hri_msgs 2.0.0
        assert got.final == 'three' and got.locale == 'en_GB' and got.language == 'en-GB'
