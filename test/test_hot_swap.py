"""Hot swap on the runtime without ROS: a new bundle replaces the old between decisions; a bad one is refused."""
from __future__ import annotations

import dataclasses
import shutil

from centralnet_ros import paths
from centralnet_ros.bundle.io import bundle_sha256, load_bundle, save_bundle
from centralnet_ros.replay.msgdefs import read_bag
from centralnet_ros.replay.session_bag import Utterance, write_session_bag
from centralnet_ros.replay.topics import bag_info, map_topics
from centralnet_ros.runtime.hot_swap import swap_bundle
import pytest

SPEECH = paths.models_dir() / 'speech'
pytestmark = pytest.mark.needs_data('fsdd')


@pytest.fixture(scope='module')
def setup(data_root, tmp_path_factory):
    """Build a bag of 8 FSDD utterances and a second speech bundle with a new label set (digits 0-2)."""
    from centralnet_ros.data import fsdd
    from centralnet_ros.training.finetune import adapt_model, FinetuneConfig
    if not (SPEECH / 'manifest.yaml').is_file():
        pytest.skip('no shipped speech bundle')
    tmp = tmp_path_factory.mktemp('swap')
    clips = [c for c in fsdd.list_clips(data_root / 'fsdd') if c.speaker == 'jackson' and c.digit < 2 and c.index < 4]
    bag = write_session_bag(tmp / 'bag', [Utterance(str(c.digit), fsdd.read_wav(c.path), fsdd.SAMPLE_RATE)
                                          for c in clips], label_file=False)
    base = load_bundle(SPEECH)
    model, _ = adapt_model(base.model, FinetuneConfig(mode='new_labels'), num_classes=3)
    manifest = dataclasses.replace(base.manifest, labels=['0', '1', '2'], model=model.config, label_map={},
                                   weights_sha256='')
    digits = save_bundle(tmp / 'digits', model, manifest)
    corrupt = tmp / 'corrupt'
    shutil.copytree(digits, corrupt)
    weights = corrupt / 'model.safetensors'
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    return bag, digits, corrupt


def _runtime():
    from centralnet_ros.replay.cli import build_config
    from centralnet_ros.runtime.perception import Perception
    cfg, _ = build_config(tasks=['speech'], backend='torch')
    cfg.warmup = 1
    return cfg, Perception(cfg)


def test_swap_between_decisions_keeps_deciding(setup):
    bag, digits, corrupt = setup
    cfg, p = _runtime()
    info = bag_info(bag.path)
    mapping = map_topics(info, cfg)
    items = list(read_bag(bag.path, topics=sorted(mapping.topics)))
    results, swaps = [], []
    try:
        old_sha = p.stats()['tasks']['speech']['bundle_sha256']
        assert old_sha == bundle_sha256(SPEECH)
        for k, item in enumerate(items):
            results += [(k, r) for r in p.ingest(mapping.topics[item.topic], item.message)]
            if k == len(items) // 2:
                refused = swap_bundle(p, 'speech', corrupt)
                assert not refused.accepted and 'checksum' in refused.reason
                assert refused.running_sha256 == old_sha
                wrong = swap_bundle(p, 'speech', paths.models_dir() / 'gesture')
                assert not wrong.accepted and 'speech_end needs an audio modality' in wrong.reason
                missing = swap_bundle(p, 'speech', bag.path.parent / 'nowhere')
                assert not missing.accepted and 'no model bundle' in missing.reason
                swaps.append(swap_bundle(p, 'speech', digits))
        results += [(len(items), r) for r in p.flush()]
        stats = p.stats()
    finally:
        p.close()
    assert swaps[0].accepted and swaps[0].sha256 == bundle_sha256(digits) != old_sha
    assert stats['tasks']['speech']['bundle_sha256'] == bundle_sha256(digits)
    assert stats['tasks']['speech']['bundle'] == str(digits)
    assert stats['tasks']['speech']['decisions'] == len(results) == len(bag.segments)     # none lost, none failed
    assert not stats['tasks']['speech']['errors']
    before = [r for k, r in results if k <= len(items) // 2]
    after = [r for k, r in results if k > len(items) // 2]
    assert before and after
    assert all(r.label in set('ABCDEFGHIJKLMNOPQRSTUVWXYZ') | {'not_a_letter'} for r in before)
    assert all(r.label in {'0', '1', '2'} for r in after)


def test_refused_bundle_leaves_the_task_untouched(setup):
    _, _, corrupt = setup
    cfg, p = _runtime()
    try:
        state = p.tasks['speech']
        p.set_threshold('speech', 0.25)
        result = swap_bundle(p, 'speech', corrupt)
        assert not result.accepted and result.running == str(SPEECH)
        assert p.tasks['speech'] is state and p.threshold('speech') == 0.25
        with pytest.raises(KeyError):
            swap_bundle(p, 'gesture', corrupt)
    finally:
        p.close()
