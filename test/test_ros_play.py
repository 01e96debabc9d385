"""
``centralnet play`` into a running fusion_node gives the decisions of ``centralnet replay`` on the same bag.

A short demo recording (real held-out samples: MSRC-12 skeletons, AVLetters lips with the
letters spoken by espeak-ng, EmoDB speech; see ``centralnet demo``) is replayed through the
runtime by ``centralnet replay``, then played onto live topics with ``centralnet play``
into fusion_node in its own process.  The published Classifications, label and source
header stamp, must be the replay's published decisions.  The node subscribes reliably
with a deep queue here, so that what is compared is the decision path, not the delivery
(which benchmarks/bench_dds.py measures).

A PortAudio stream through microphone_node into fusion_node is tested in test_ros_nodes.py (a
PulseAudio null sink as the paced capture device).
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import ros_harness as H
import yaml

pytestmark = pytest.mark.slow
TASKS = ('gesture', 'speech', 'emotion')


@pytest.fixture(scope='module')
def demo_bag(tmp_path_factory, data_root):
    from centralnet_ros.bundle.io import read_manifest
    from centralnet_ros.demo import build_demo_bag, DemoOptions
    out = tmp_path_factory.mktemp('play')
    manifests = {task: read_manifest(H.MODELS / task) for task in TASKS}
    demo = build_demo_bag(out, manifests, data_root=data_root,
                          options=DemoOptions(gestures_per_class=1, letters=3, utterances_per_emotion=1))
    params = {'fusion_node': {'ros__parameters': {
        'tasks': list(TASKS), **{f'{t}.bundle': str(H.MODELS / t) for t in TASKS},
        # every gesture decision, not only events: one short instance per class rarely makes an event
        'gesture.output': 'decisions',
        # speech and emotion decided in processes of their own (replay decides in-process): same decisions
        'speech.decision_process': True, 'emotion.decision_process': True,
        'qos_reliability': 'reliable', 'qos_depth': 1000}}}
    (out / 'params.yaml').write_text(yaml.safe_dump(params))
    return demo, out


def _replay(demo, out) -> list[tuple[str, int, str]]:
    proc = subprocess.run([sys.executable, '-m', 'centralnet_ros.cli', 'replay', str(demo.path), '--config',
                           str(out / 'params.yaml'), '--out', str(out / 'replay'), '--no-plots', '--no-progress'],
                          env=H.node_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [json.loads(line) for line in (out / 'replay' / 'predictions.jsonl').read_text().splitlines()]
    return sorted((r['task'], r['stamp_ns'], r['label']) for r in rows if r['published'])


@pytest.mark.needs_data('msrc12', 'avletters', 'emodb')
def test_played_bag_gives_the_decisions_of_replay(demo_bag):
    from vision_msgs.msg import Classification
    demo, out = demo_bag
    expected = _replay(demo, out)
    assert {t for t, _, _ in expected} == set(demo.tasks)
    tester = H.Tester('play_listener')
    results = {t: tester.subscribe(Classification, f'/fusion_node/{t}', H.latched_qos().__class__(depth=1000))
               for t in TASKS}
    node = H.NodeProcess('fusion_node', ['--ros-args', '--params-file', str(out / 'params.yaml')],
                         out / 'fusion.log')
    try:
        tester.wait_for(lambda: tester.state('/fusion_node', timeout=120) == 'active', 180, 'fusion_node active')
        play = subprocess.run([sys.executable, '-m', 'centralnet_ros.cli', 'play', str(demo.path),
                               '--wait-for-subscribers', '30'], env=H.node_env(), capture_output=True, text=True,
                              timeout=600)
        assert play.returncode == 0, play.stdout + play.stderr
        assert 'published' in play.stdout and '/audio:' in play.stdout
        # deactivate publishes what was still pending (an open speech segment), as replay's flush does
        assert tester.transition('/fusion_node', 'deactivate')
        tester.spin(2.0)
        got = sorted((t, H.stamp_ns(m.header), m.results[0].class_id) for t in TASKS for m in results[t])
        assert got == expected
        assert node.interrupt() == 0
    finally:
        node.close()
        tester.close()
