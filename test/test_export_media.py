"""export-media: WAV/MP4/.eaf from a bag, and the round trip ELAN time -> bag header time."""
from __future__ import annotations

import wave

from centralnet_ros import messages as M
from centralnet_ros.replay import msgdefs as D
from centralnet_ros.replay.export_media import export_media
from centralnet_ros.replay.label_import import load_eaf
from centralnet_ros.replay.labels import LabelSegment
import numpy as np
import pytest

T0 = 1_767_225_600_000_000_000
RATE = 16000
NS = 1_000_000_000
TONE_AT = 1.234            # s after the bag start: header time of the tone's first sample
FLASH_AT = 2.0             # s: first white frame
FPS = 10.0


@pytest.fixture()
def bag(tmp_path):
    """Write a 4 s bag: 20 ms microphone chunks (a tone from 1.234 s), 10 fps camera (white 2-2.5 s), label topic."""
    f = D.typestore_factory()
    msgs = []
    n = 4 * RATE
    wave_ = np.zeros(n, np.float32)
    i = int(TONE_AT * RATE)
    wave_[i:i + RATE // 4] = 0.5 * np.cos(2 * np.pi * 1000 * np.arange(RATE // 4) / RATE)
    chunk = RATE // 50
    for k in range(0, n, chunk):
        data, info = M.build_audio(f, wave_[k:k + chunk, None], sample_rate=RATE, stamp_ns=T0 + k * NS // RATE,
                                   sample_format='S16LE', frame_id='mic')
        if k == 0:
            msgs.append(('/audio_info', 'audio_common_msgs/msg/AudioInfo', T0, info))
        msgs.append(('/audio', 'audio_common_msgs/msg/AudioDataStamped', T0 + k * NS // RATE + 1000, data))
    for k in range(int(4 * FPS)):
        t = T0 + int(k * NS / FPS) + 3_000_000                  # frames stamped 3 ms after the grid
        white = FLASH_AT <= (t - T0) / NS < FLASH_AT + 0.5
        img = np.full((48, 64), 255 if white else 0, np.uint8)
        image = M.build_image(f, img, encoding='mono8', stamp_ns=t, frame_id='cam')
        msgs.append(('/camera/image_raw', 'sensor_msgs/msg/Image', t, image))
    for t, label in ((1.2, 'B'), (1.8, ''), (3.0, 'C'), (3.5, '')):
        msgs.append(('/labels/speech', 'std_msgs/msg/String', T0 + int(t * NS), f('std_msgs/msg/String', data=label)))
    msgs.sort(key=lambda m: m[2])
    path = tmp_path / 'session'
    D.write_bag(path, msgs)
    return path


def test_export_media_round_trip(bag, tmp_path):
    import cv2
    out = tmp_path / 'media'
    report = export_media(bag, out, tasks=['speech', 'gesture'])
    assert report['bag_start_ns'] == T0
    # audio: sample-exact placement, header time of the tone = bag start + index / rate
    with wave.open(str(out / report['media']['/audio']['file']), 'rb') as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (RATE, 1, 2)
        x = np.frombuffer(w.readframes(w.getnframes()), '<i2')
    onset = int(np.flatnonzero(np.abs(x) > 100)[0])
    assert T0 + onset * NS // RATE == T0 + int(round(TONE_AT * RATE)) * NS // RATE
    # video: frame k shows the newest image stamped at or before k / fps
    cap = cv2.VideoCapture(str(out / report['media']['/camera/image_raw']['file']))
    bright = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        bright.append(frame.mean() > 128)
    cap.release()
    first = bright.index(True)
    assert first / FPS - (FLASH_AT + 0.003) == pytest.approx(1 / FPS - 0.003, abs=1e-9)   # next grid frame
    assert report['media']['/camera/image_raw']['fps'] == FPS
    # the .eaf: pre-filled from the label topic, mapping back exactly
    eaf = out / report['eaf']
    segs = sorted(load_eaf(eaf), key=lambda s: s.start_ns)
    assert segs == [LabelSegment('speech', T0 + int(1.2 * NS), T0 + int(1.8 * NS), 'B'),
                    LabelSegment('speech', T0 + 3 * NS, T0 + int(3.5 * NS), 'C')]
    text = eaf.read_text()
    assert 'RELATIVE_MEDIA_URL="./audio.wav"' in text and 'TIER_ID="gesture"' in text
    # a label made in ELAN at the tone's onset (the ms ELAN shows for that WAV sample) is the tone's header time
    onset_ms = round(onset * 1000 / RATE)
    edited = text.replace('<TIME_ORDER>', '<TIME_ORDER>\n    <TIME_SLOT TIME_SLOT_ID="u1" TIME_VALUE="%d" />\n'
                          '    <TIME_SLOT TIME_SLOT_ID="u2" TIME_VALUE="%d" />' % (onset_ms, onset_ms + 250), 1)
    edited = edited.replace('<TIER LINGUISTIC_TYPE_REF="default-lt" TIER_ID="gesture" />',
                            '<TIER LINGUISTIC_TYPE_REF="default-lt" TIER_ID="gesture"><ANNOTATION>'
                            '<ALIGNABLE_ANNOTATION ANNOTATION_ID="a9" TIME_SLOT_REF1="u1" TIME_SLOT_REF2="u2">'
                            '<ANNOTATION_VALUE>wave</ANNOTATION_VALUE></ALIGNABLE_ANNOTATION></ANNOTATION></TIER>')
    eaf.write_text(edited)
    made = [s for s in load_eaf(eaf, bag_start_ns=T0) if s.task == 'gesture']
    assert made == [LabelSegment('gesture', T0 + int(TONE_AT * NS), T0 + int((TONE_AT + 0.25) * NS), 'wave')]


def test_export_media_errors_and_label_files(bag, tmp_path):
    from centralnet_ros.cli import main
    labels = tmp_path / 'l.txt'
    labels.write_text('0.5\t0.9\tduck\n')
    out = tmp_path / 'm'
    assert main(['export-media', str(bag), '--out', str(out), '--labels', f'gesture={labels}']) == 0
    segs = load_eaf(next(out.glob('*.eaf')))
    assert [(s.task, s.label, s.start_ns - T0) for s in segs] == [('gesture', 'duck', NS // 2)]
    empty = tmp_path / 'empty'
    D.write_bag(empty, [('/labels/speech', 'std_msgs/msg/String', T0,
                         D.typestore_factory()('std_msgs/msg/String', data='A'))])
    with pytest.raises(Exception, match='no audio .* or image .* topic'):
        export_media(empty, tmp_path / 'x')
