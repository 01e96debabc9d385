"""Bundles: round trip for every fusion method, refusal of bad bundles, ONNX parity, and the inference engine."""
from __future__ import annotations

import shutil

from centralnet_ros.bundle import BundleError, load_bundle, Manifest, ModalitySpec, save_bundle
from centralnet_ros.bundle.export import check_onnx_parity, export_onnx, export_onnx_bytes
from centralnet_ros.encoders import EncoderConfig
from centralnet_ros.fusion import build_model, fusion_methods, FusionConfig
from centralnet_ros.runtime.engine import TaskModel
import numpy as np
import pytest
import torch
import yaml

MODS = {'lips': EncoderConfig(kind='cnn3d', input_shape=[1, 4, 12, 16], widths=[4, 8], temporal_pool=[2, 1]),
        'mfcc': EncoderConfig(kind='cnn2d', input_shape=[1, 26, 24], widths=[6, 8])}
LABELS = [chr(ord('A') + i) for i in range(5)]


def make_bundle(tmp_path, method='centralnet', name='speech', members=1):
    cfg = FusionConfig(method=method, modalities=MODS, num_classes=len(LABELS),
                       unimodal='mfcc' if method == 'unimodal' else None, members=members)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    with torch.no_grad():                       # non-trivial BN statistics
        for mod in model.modules():
            if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
    manifest = Manifest(
        format_version=1, task='speech', labels=LABELS, model=cfg,
        modalities={'lips': ModalitySpec(source='image', input_shape=[1, 4, 12, 16], pipeline='lip_frames'),
                    'mfcc': ModalitySpec(source='audio', input_shape=[1, 26, 24], pipeline='htk_mfcc',
                                         window_s=1.0)},
        metrics={'accuracy': 0.5}, evaluation={'dataset': 'synthetic', 'protocol': 'none'})
    return save_bundle(tmp_path / name, model, manifest), model


def inputs(batch=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    return {m: torch.randn(batch, *c.input_shape, generator=g) for m, c in MODS.items()}


@pytest.mark.parametrize('method', fusion_methods())
def test_round_trip_every_method(tmp_path, method):
    path, model = make_bundle(tmp_path, method)
    assert sorted(p.name for p in path.iterdir()) == ['manifest.yaml', 'model.safetensors']
    loaded = load_bundle(path)
    x = inputs()
    torch.testing.assert_close(loaded.model(x).logits, model(x).logits)
    assert loaded.manifest.labels == LABELS and loaded.manifest.weights_sha256
    assert not list(tmp_path.glob('.*')), 'no temporary folders left behind'


@pytest.mark.parametrize('backend', ['torch', 'onnxruntime'])
def test_ensemble_bundle_round_trip_and_engine(tmp_path, backend):
    path, model = make_bundle(tmp_path, members=3)
    loaded = load_bundle(path)
    assert loaded.manifest.model.members == 3 and len(loaded.model.members) == 3
    x = inputs()
    torch.testing.assert_close(loaded.model(x).logits, model(x).logits)
    assert check_onnx_parity(model, export_onnx_bytes(model)) < 1e-4
    task = TaskModel(path, backend=backend, warmup=1)
    one = {m: t[0].numpy() for m, t in x.items()}
    with torch.inference_mode():
        members = [torch.softmax(m({k: torch.from_numpy(v)[None] for k, v in one.items()}).logits, -1)[0]
                   for m in model.members]
    d = task.classify(one)
    # the ensemble decides by its members' mean logits: a normalised geometric mean of their posteriors
    geometric = torch.exp(torch.log(torch.stack(members)).mean(0))
    np.testing.assert_allclose(d.probabilities, (geometric / geometric.sum()).numpy(), atol=1e-4)
    assert len(d.fusion_weights['members']) == 3
    from centralnet_ros.bundle.info_cli import describe
    assert 'an ensemble of 3 members' in describe(loaded.manifest)
    assert 'ensemble' not in describe(load_bundle(make_bundle(tmp_path, name='single')[0]).manifest)


def test_refuses_newer_format(tmp_path):
    path, _ = make_bundle(tmp_path)
    data = yaml.safe_load((path / 'manifest.yaml').read_text())
    data['format_version'] = 99
    (path / 'manifest.yaml').write_text(yaml.safe_dump(data))
    with pytest.raises(BundleError, match='format 99 is newer'):
        load_bundle(path)


def test_refuses_unknown_manifest_keys(tmp_path):
    path, _ = make_bundle(tmp_path)
    data = yaml.safe_load((path / 'manifest.yaml').read_text())
    data['modalities']['mfcc']['hop'] = 3
    (path / 'manifest.yaml').write_text(yaml.safe_dump(data))
    with pytest.raises(BundleError, match=r'unknown key\(s\) modalities.mfcc.hop'):
        load_bundle(path)


def test_refuses_missing_files(tmp_path):
    path, _ = make_bundle(tmp_path)
    (path / 'model.safetensors').unlink()
    with pytest.raises(BundleError, match='model.safetensors is missing'):
        load_bundle(path)
    with pytest.raises(BundleError, match='no model bundle'):
        load_bundle(tmp_path / 'nowhere')


def test_refuses_mismatched_weights(tmp_path):
    path, _ = make_bundle(tmp_path)
    other, _ = make_bundle(tmp_path, method='late', name='late')
    shutil.copy(other / 'model.safetensors', path / 'model.safetensors')
    with pytest.raises(BundleError, match='checksum differs'):
        load_bundle(path)
    with pytest.raises(BundleError, match='do not match the architecture'):
        load_bundle(path, verify=False)


def test_refuses_inconsistent_manifest(tmp_path):
    path, _ = make_bundle(tmp_path)
    data = yaml.safe_load((path / 'manifest.yaml').read_text())
    data['labels'] = data['labels'][:-1]
    (path / 'manifest.yaml').write_text(yaml.safe_dump(data))
    with pytest.raises(BundleError, match='4 labels for a model with 5 classes'):
        load_bundle(path)


def test_weights_are_never_unpickled(tmp_path):
    path, _ = make_bundle(tmp_path)
    (path / 'model.safetensors').write_bytes(b'\x80\x04K\x01.')     # a pickle, not safetensors
    with pytest.raises(BundleError):
        load_bundle(path, verify=False)


@pytest.mark.parametrize('method', fusion_methods())
def test_onnx_parity(tmp_path, method):
    _, model = make_bundle(tmp_path, method)
    onnx_path = export_onnx(model, tmp_path / 'm.onnx')
    assert check_onnx_parity(model, onnx_path) < 1e-4
    broken = build_model(model.config).eval()                      # other weights must be caught
    with pytest.raises(AssertionError, match='differs from torch'):
        check_onnx_parity(broken, export_onnx_bytes(model))


@pytest.mark.parametrize('backend', ['torch', 'onnxruntime'])
def test_engine_decisions(tmp_path, backend):
    path, model = make_bundle(tmp_path)
    task = TaskModel(path, backend=backend, warmup=1)
    x = {m: t[0].numpy() for m, t in inputs(1).items()}
    d = task.classify(x, stamp_ns=123, frame_id='cam', top_k=3)
    with torch.inference_mode():
        ref = torch.softmax(model({m: torch.from_numpy(v)[None] for m, v in x.items()}).logits, -1)[0].numpy()
    np.testing.assert_allclose(d.probabilities, ref, atol=1e-4)
    assert d.stamp_ns == 123 and d.frame_id == 'cam'
    assert d.label == LABELS[int(ref.argmax())] and [lab for lab, _ in d.top_k][0] == d.label
    assert len(d.top_k) == 3 and d.score == pytest.approx(float(ref.max()), abs=1e-4)
    assert d.fusion_weights['levels'][0]['level'] == 1
    partial = task.classify({'mfcc': x['mfcc'], 'lips': None})
    assert partial.present == {'lips': False, 'mfcc': True}
    assert task.classify({'mfcc': None, 'lips': None}) is None
    with pytest.raises(ValueError, match="'mfcc' expects shape"):
        task.classify({'mfcc': np.zeros((26, 24), np.float32)})


def test_engine_cpu_fallback(tmp_path, caplog):
    a, _ = make_bundle(tmp_path, name='a')
    b, _ = make_bundle(tmp_path, method='late', name='b')
    if torch.cuda.is_available():
        pytest.skip('fallback only observable without CUDA')
    models = [TaskModel(p, device='cuda', on_device_failure='fallback_cpu', warmup=0) for p in (a, b)]
    assert [str(m.device) for m in models] == ['cpu', 'cpu']
    assert 'falling back to cpu' in caplog.text
    x = {m: t[0].numpy() for m, t in inputs(1).items()}
    assert models[1].classify(x).label in LABELS
    from centralnet_ros.torch_utils import DeviceUnavailable
    with pytest.raises(DeviceUnavailable, match='CUDA is not available'):
        TaskModel(a, device='cuda', on_device_failure='error')


@pytest.mark.skipif(not torch.cuda.is_available(), reason='CUDA not available')
def test_engine_cuda_fp16(tmp_path):
    path, model = make_bundle(tmp_path)
    task = TaskModel(path, device='cuda', precision='fp16')
    assert task.backend == 'torch' and task.dtype == torch.float16
    x = {m: t[0].numpy() for m, t in inputs(1).items()}
    ref = TaskModel(path, backend='torch').classify(x)
    d = task.classify(x)
    np.testing.assert_allclose(d.probabilities, ref.probabilities, atol=2e-2)


def shipped_bundles() -> list[str]:
    """Every bundle folder under models/ (the three task bundles, gesture2d, speech_base)."""
    from centralnet_ros import paths
    return sorted(p.name for p in paths.models_dir().iterdir() if (p / 'manifest.yaml').is_file())


@pytest.mark.parametrize('task', shipped_bundles())
def test_shipped_manifest_states_the_terms_of_its_training_data(task):
    from centralnet_ros import paths
    from centralnet_ros.bundle.io import read_manifest
    from centralnet_ros.data.registry import training_terms
    manifest = read_manifest(paths.models_dir() / task)
    assert manifest.data_terms, f'models/{task}/manifest.yaml has no data_terms'
    learned_from = manifest.evaluation.get('training_datasets', manifest.evaluation['dataset'])
    assert manifest.data_terms == training_terms(learned_from), \
        'data_terms drifted from the dataset registry (centralnet_ros/data/registry.py)'


@pytest.mark.parametrize('task', shipped_bundles())
def test_shipped_manifest_holds_every_pipeline_parameter(task):
    """The file itself (not only what loading makes of it) is format 2 with every parameter resolved."""
    from centralnet_ros import paths
    from centralnet_ros.bundle.manifest import FORMAT_VERSION
    from centralnet_ros.features.pipelines import input_sample_rate, resolve_params
    raw = yaml.safe_load((paths.models_dir() / task / 'manifest.yaml').read_text())
    assert raw['format_version'] == FORMAT_VERSION
    for name, spec in raw['modalities'].items():
        assert spec['preprocessing'] == resolve_params(spec['pipeline'], spec['preprocessing']), name
        if spec['source'] == 'audio':        # the one rate: the runtime resamples to it, the pipeline runs at it
            assert spec['sample_rate'] == input_sample_rate(spec['pipeline'], spec['preprocessing'])
            assert spec['frame_rate'] is None
        else:
            assert spec['sample_rate'] is None


def test_format_1_manifests_are_migrated(tmp_path):
    """A format-1 bundle loads: frame rates move to frame_rate, speech audio is resampled once (22.05 kHz)."""
    path, _ = make_bundle(tmp_path)
    data = yaml.safe_load((path / 'manifest.yaml').read_text())
    data['format_version'] = 1
    data['modalities']['lips']['sample_rate'] = 25.0
    del data['modalities']['lips']['frame_rate']
    data['modalities']['mfcc'].update(sample_rate=16000.0, preprocessing={'num_frames': 24})
    del data['modalities']['mfcc']['frame_rate']
    (path / 'manifest.yaml').write_text(yaml.safe_dump(data))
    manifest = load_bundle(path).manifest
    assert manifest.modalities['lips'].frame_rate == 25.0 and manifest.modalities['lips'].sample_rate is None
    assert manifest.modalities['mfcc'].sample_rate == 22050
    assert manifest.modalities['mfcc'].preprocessing['htk']['delta_edge'] == 'simple'     # AVLetters' front end
    data['format_version'] = 2                                                              # not migrated
    data['modalities']['lips']['frame_rate'] = data['modalities']['lips'].pop('sample_rate')
    (path / 'manifest.yaml').write_text(yaml.safe_dump(data))
    with pytest.raises(BundleError, match='16000 Hz differs from the 22050 Hz'):
        load_bundle(path)
    data['modalities']['lips']['sample_rate'] = 25.0
    (path / 'manifest.yaml').write_text(yaml.safe_dump(data))
    with pytest.raises(BundleError, match='sample_rate is for audio'):
        load_bundle(path)


def test_pipeline_parameters_are_checked_when_the_manifest_is_made():
    with pytest.raises(ValueError, match='unknown key'):
        ModalitySpec(source='image', input_shape=[1, 4, 12, 16], pipeline='lip_video', preprocessing={'frames': 4})
    with pytest.raises(ValueError, match='sample_rate is for audio'):
        ModalitySpec(source='image', input_shape=[1, 4, 12, 16], pipeline='lip_video', sample_rate=25.0)
