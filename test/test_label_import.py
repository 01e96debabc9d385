"""Label importers: ELAN .eaf, Audacity label tracks, and the dispatcher, on hand-written files."""
from __future__ import annotations

from pathlib import Path

from centralnet_ros.replay.label_import import load_audacity, load_eaf, load_labels
from centralnet_ros.replay.labels import LabelFileError, LabelSegment
import pytest

START = 1_700_000_000_123_456_789
MS = 1_000_000

EAF = """<?xml version="1.0" encoding="UTF-8"?>
<ANNOTATION_DOCUMENT AUTHOR="" DATE="2026-12-01T10:00:00+00:00" FORMAT="3.0" VERSION="3.0">
    <HEADER MEDIA_FILE="" TIME_UNITS="milliseconds">
        <MEDIA_DESCRIPTOR MEDIA_URL="file:///tmp/audio.wav" MIME_TYPE="audio/x-wav" RELATIVE_MEDIA_URL="./audio.wav"/>
        <PROPERTY NAME="lastUsedAnnotationId">4</PROPERTY>
    </HEADER>
    <TIME_ORDER>
        <TIME_SLOT TIME_SLOT_ID="ts1" TIME_VALUE="1200"/>
        <TIME_SLOT TIME_SLOT_ID="ts2" TIME_VALUE="1850"/>
        <TIME_SLOT TIME_SLOT_ID="ts3" TIME_VALUE="4000"/>
        <TIME_SLOT TIME_SLOT_ID="ts4" TIME_VALUE="5500"/>
        <TIME_SLOT TIME_SLOT_ID="ts5" TIME_VALUE="2000"/>
        <TIME_SLOT TIME_SLOT_ID="ts6" TIME_VALUE="2600"/>
    </TIME_ORDER>
    <TIER LINGUISTIC_TYPE_REF="default-lt" TIER_ID="speech">
        <ANNOTATION>
            <ALIGNABLE_ANNOTATION ANNOTATION_ID="a1" TIME_SLOT_REF1="ts1" TIME_SLOT_REF2="ts2">
                <ANNOTATION_VALUE>B</ANNOTATION_VALUE>
            </ALIGNABLE_ANNOTATION>
        </ANNOTATION>
        <ANNOTATION>
            <ALIGNABLE_ANNOTATION ANNOTATION_ID="a2" TIME_SLOT_REF1="ts5" TIME_SLOT_REF2="ts6">
                <ANNOTATION_VALUE>C</ANNOTATION_VALUE>
            </ALIGNABLE_ANNOTATION>
        </ANNOTATION>
    </TIER>
    <TIER LINGUISTIC_TYPE_REF="default-lt" TIER_ID="gesture">
        <ANNOTATION>
            <ALIGNABLE_ANNOTATION ANNOTATION_ID="a3" TIME_SLOT_REF1="ts3" TIME_SLOT_REF2="ts4">
                <ANNOTATION_VALUE>duck</ANNOTATION_VALUE>
            </ALIGNABLE_ANNOTATION>
        </ANNOTATION>
    </TIER>
    <TIER LINGUISTIC_TYPE_REF="default-lt" TIER_ID="notes"/>
    <LINGUISTIC_TYPE GRAPHIC_REFERENCES="false" LINGUISTIC_TYPE_ID="default-lt" TIME_ALIGNABLE="true"/>
</ANNOTATION_DOCUMENT>
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding='utf-8')
    return path


def test_eaf_segments_per_tier_in_header_time(tmp_path):
    path = _write(tmp_path, 'session.eaf', EAF)
    segs = sorted(load_eaf(path, bag_start_ns=START), key=lambda s: s.start_ns)
    assert segs == [LabelSegment('speech', START + 1200 * MS, START + 1850 * MS, 'B'),
                    LabelSegment('speech', START + 2000 * MS, START + 2600 * MS, 'C'),
                    LabelSegment('gesture', START + 4000 * MS, START + 5500 * MS, 'duck')]
    only = load_eaf(path, bag_start_ns=START, tiers=['gesture'])
    assert [s.label for s in only] == ['duck']
    renamed = load_eaf(path, bag_start_ns=START, tiers=['speech'], task_of_tier={'speech': 'letters'})
    assert {s.task for s in renamed} == {'letters'}


def test_eaf_bag_start_property_wins_and_mismatch_is_refused(tmp_path):
    text = EAF.replace('<PROPERTY NAME="lastUsedAnnotationId">4</PROPERTY>',
                       f'<PROPERTY NAME="centralnet:bag_start_ns">{START}</PROPERTY>')
    path = _write(tmp_path, 'exported.eaf', text)
    segs = load_eaf(path)                                   # no bag start needed
    assert min(s.start_ns for s in segs) == START + 1200 * MS
    with pytest.raises(LabelFileError, match='another recording'):
        load_eaf(path, bag_start_ns=START + 1)
    with pytest.raises(LabelFileError, match='bag start must be given'):
        load_eaf(_write(tmp_path, 'plain.eaf', EAF))


@pytest.mark.parametrize('old, new, match', [
    ('TIME_SLOT_REF2="ts2"', 'TIME_SLOT_REF2="ts9"', r'line 17: tier .speech., annotation a1: TIME_SLOT_REF2 .ts9.'),
    ('TIME_VALUE="1850"', 'TIME_VALUE="1.85"', r'line 9: TIME_SLOT ts2: TIME_VALUE must be whole milliseconds'),
    ('TIME_VALUE="1850"', 'TIME_VALUE="1000"', r'line 17: tier .speech., annotation a1 .+B.+ends at 1000 ms'),
    ('<ANNOTATION_VALUE>duck</ANNOTATION_VALUE>', '<ANNOTATION_VALUE>duck</ANNOTATION_VLUE>',
     r'line \d+, column \d+: not well-formed XML \(mismatched tag\)'),
    ('TIME_SLOT_REF1="ts5"', 'TIME_SLOT_REF1="ts1"', r'speech segments overlap'),
    ('ANNOTATION_DOCUMENT', 'DOCUMENT', r'line 2: root element is <DOCUMENT>'),
    ('TIME_SLOT_ID="ts6" TIME_VALUE="2600"', 'TIME_SLOT_ID="ts6"',
     r'line 22: .+TIME_SLOT_REF2 .ts6. has no TIME_VALUE'),
])
def test_malformed_eaf_names_file_line_and_element(tmp_path, old, new, match):
    assert old in EAF
    path = _write(tmp_path, 'bad.eaf', EAF.replace(old, new, 1 if old != 'ANNOTATION_DOCUMENT' else -1))
    with pytest.raises(LabelFileError, match=match) as err:
        load_eaf(path, bag_start_ns=START)
    assert str(path) in str(err.value)


def test_eaf_refuses_entities(tmp_path):
    text = EAF.replace('<ANNOTATION_DOCUMENT', '<!DOCTYPE x [<!ENTITY a "aaaa">]>\n<ANNOTATION_DOCUMENT', 1)
    with pytest.raises(LabelFileError, match='DOCTYPE/ENTITY'):
        load_eaf(_write(tmp_path, 'ent.eaf', text), bag_start_ns=START)


def test_eaf_unknown_tier_is_named(tmp_path):
    with pytest.raises(LabelFileError, match="no tier 'emotion'; tiers: gesture, notes, speech"):
        load_eaf(_write(tmp_path, 's.eaf', EAF), bag_start_ns=START, tiers=['emotion'])


AUDACITY = '1.200000\t1.850000\tB\n\\\t100.0\t3000.0\n2,000000\t2,600000\tC\n\n'


def test_audacity_track(tmp_path):
    path = _write(tmp_path, 'labels.txt', AUDACITY)
    assert load_audacity(path, task='speech', bag_start_ns=START) == [
        LabelSegment('speech', START + 1_200_000_000, START + 1_850_000_000, 'B'),
        LabelSegment('speech', START + 2_000_000_000, START + 2_600_000_000, 'C')]


@pytest.mark.parametrize('text, match', [
    ('1.0\t2.0\n', r'line 1: expected start<TAB>end<TAB>label'),
    ('1.0\t2.0\tA\n2.5\tx\tB\n', r'line 2: end must be a number of seconds'),
    ('1.0\t2.0\tA\n3.0\t3.0\tB\n', r'line 2: end 3.0 is not after start 3.0 \(point labels'),
    ('1.0\t2.0\tA\n1.5\t2.5\tB\n', r'speech segments overlap'),
    ('1.0\t2.0\t \n', r'line 1: empty label'),
    ('-1.0\t2.0\tA\n', r'line 1: start must be a finite time >= 0'),
])
def test_malformed_audacity_names_file_and_line(tmp_path, text, match):
    path = _write(tmp_path, 'bad.txt', text)
    with pytest.raises(LabelFileError, match=match) as err:
        load_audacity(path, task='speech', bag_start_ns=START)
    assert str(path) in str(err.value)


def test_dispatch_by_suffix_and_task(tmp_path):
    eaf = _write(tmp_path, 's.eaf', EAF)
    txt = _write(tmp_path, 'e.txt', '10.0\t12.0\tanger\n')
    csv = _write(tmp_path, 'g.csv', 'task,start_s,end_s,label\ngesture,20.0,21.0,goggles\n')
    segs = load_labels([f'speech={eaf}', f'emotion={txt}', str(csv)], bag_start_ns=START)
    assert sorted((s.task, s.label) for s in segs) == [('emotion', 'anger'), ('gesture', 'goggles'),
                                                       ('speech', 'B'), ('speech', 'C')]
    with pytest.raises(LabelFileError, match='give it as TASK='):
        load_labels([str(txt)], bag_start_ns=START)
    with pytest.raises(LabelFileError, match='unknown label file type .json'):
        load_labels([str(_write(tmp_path, 'x.json', '{}'))], bag_start_ns=START)
    with pytest.raises(LabelFileError, match='gesture segments overlap'):
        load_labels([str(eaf), str(_write(tmp_path, 'g2.csv', 'task,start_s,end_s,label\ngesture,4.5,4.9,duck\n'))],
                    bag_start_ns=START)
