"""
Representation learning: CAEs, bimodal CAE dropout, KNN transfer, fine-tuning, CLI commands.

Convolutional auto-encoders, the bimodal CAE's modality dropout, the KNN transfer mapping,
the transfer fine-tuning step and the ``probe`` / ``transfer`` commands.
"""
from __future__ import annotations

from centralnet_ros.encoders.base import EncoderConfig, ModalityEncoder
from centralnet_ros.representation.bimodal import BimodalCAE, BimodalCAEConfig, draw_modality_dropout, presence_scale
from centralnet_ros.representation.cae import CAEConfig, ConvAutoEncoder, pixel_dropout, REPORT_SHAPES, valid_layout
from centralnet_ros.representation.knn import KNNTransferMapping
from centralnet_ros.training.autoencoders import train_bimodal, train_cae
from centralnet_ros.training.transfer import finetune_from_layer, table_columns
import numpy as np
import pytest
import torch

torch.set_num_threads(1)


# ----------------------------------------------------------------------------- CAE

@pytest.mark.parametrize('name', sorted(REPORT_SHAPES))
def test_cae_restores_the_report_input_shapes(name):
    shape = REPORT_SHAPES[name]
    cae = ConvAutoEncoder(CAEConfig(list(shape)))
    x = torch.randn(3, *shape)
    code = cae.encode(x)
    assert tuple(code.shape[1:]) == cae.config.middle_shape
    assert cae(x).shape == x.shape
    # every layer has no padding (VALID)
    assert all(m.padding == (0, 0) for m in [*cae.encoder, *cae.decoder])


@pytest.mark.parametrize('hw', [(17, 33), (40, 41), (29, 64), (13, 13)])
def test_default_layout_is_exactly_invertible_for_other_sizes(hw):
    cae = ConvAutoEncoder(CAEConfig([2, *hw]))
    assert cae(torch.zeros(1, 2, *hw)).shape == (1, 2, *hw)


def test_cae_rejects_a_layout_that_valid_transposed_convs_cannot_invert():
    kernels, strides = valid_layout(28, 28)
    kernels[1] = [3, 3]                                       # 24 - 3 is odd with stride 2
    with pytest.raises(ValueError, match='layer 2.*not exactly invertible'):
        CAEConfig([1, 28, 28], kernels=kernels, strides=strides)
    with pytest.raises(ValueError, match='smaller than the kernel'):
        CAEConfig([1, 4, 28])
    with pytest.raises(ValueError, match=r'expects input of shape \(B, 1, 28, 28\)'):
        ConvAutoEncoder(CAEConfig([1, 28, 28]))(torch.zeros(2, 1, 24, 24))


def test_pixel_dropout_zeroes_the_requested_fraction():
    x = torch.ones(200, 1, 28, 28)
    gen = torch.Generator().manual_seed(0)
    y = pixel_dropout(x, 0.3, generator=gen)
    assert set(torch.unique(y).tolist()) == {0.0, 1.0}                  # masking, no rescaling
    assert abs(float((y == 0).float().mean()) - 0.3) < 0.01
    assert pixel_dropout(x, 0.0) is x


@pytest.mark.needs_data('mnist')
def test_training_reduces_the_reconstruction_error_on_real_digits(data_root):
    from centralnet_ros.data import mnist
    images, _ = mnist.load_mnist(data_root / 'mnist', 'test')
    x = (images[:512, None].astype(np.float32) / 255.0)
    torch.manual_seed(0)
    cae = ConvAutoEncoder(CAEConfig([1, 28, 28], channels=[8, 16, 16], denoise_p=0.3))
    with torch.no_grad():
        before = float(((cae(torch.from_numpy(x)) - torch.from_numpy(x)) ** 2).mean())
    hist = train_cae(cae, x, epochs=3, batch_size=64, lr=3e-3)
    assert hist[-1]['loss'] < 0.5 * before


# ------------------------------------------------------------------ bimodal CAE

def test_modality_dropout_never_removes_both_and_keeps_p_and_1_minus_p():
    gen = torch.Generator().manual_seed(0)
    draws = [draw_modality_dropout(64, absent_threshold=0.25, generator=gen) for _ in range(2000)]
    masks = torch.stack([m for m, _ in draws])                       # (D, 64, 2)
    ps = np.array([p for _, p in draws])
    assert not bool((~masks).all(dim=2).any())                       # never both removed
    # thresholded: p is 0 or 1 below tau / above 1 - tau, otherwise in [tau, 1 - tau]
    inside = ps[(ps > 0) & (ps < 1)]
    assert inside.min() >= 0.25 and inside.max() <= 0.75
    assert 0.4 < np.mean(ps == 0) / 0.25 < 1.6 and 0.4 < np.mean(ps == 1) / 0.25 < 1.6
    first_absent = masks[ps == 0][..., 0]
    assert first_absent.numel() and not bool(first_absent.any())     # a modality entirely absent
    assert bool(masks[ps == 1][..., 0].all())
    # within a step the two modalities are kept with probabilities p and 1 - p
    kept = masks[..., 0].float().mean(dim=1).numpy()
    assert np.abs(kept[(ps > 0) & (ps < 1)] - inside).mean() < 0.06
    assert abs(masks[..., 1].float().mean().item() - (1 - ps.mean())) < 0.01


def test_presence_scaling_keeps_the_expected_magnitude_of_the_sum():
    scale = presence_scale(torch.tensor([[True, True], [True, False], [False, True]]))
    assert torch.equal(scale, torch.tensor([[1.0, 1.0], [2.0, 0.0], [0.0, 2.0]]))
    with pytest.raises(ValueError, match='at least one present'):
        presence_scale(torch.tensor([[False, False]]))
    # averaged over the training draws the scaled sum equals the full sum
    a, b = torch.tensor([1.0, -2.0, 3.0]), torch.tensor([0.5, 4.0, -1.0])
    gen = torch.Generator().manual_seed(1)
    total, count = torch.zeros(3), 0
    for _ in range(3000):
        mask, _ = draw_modality_dropout(32, generator=gen)
        s = presence_scale(mask)                                     # (B, 2)
        total += (s[:, :1] * a + s[:, 1:] * b).sum(0)
        count += 32
    assert torch.allclose(total / count, a + b, atol=0.08)


def _bimodal():
    torch.manual_seed(0)
    return BimodalCAE(BimodalCAEConfig({'image': CAEConfig([1, 28, 28], channels=[4, 8, 8]),
                                        'audio': CAEConfig([1, 24, 24], channels=[4, 8, 8])}, shared_dim=16))


def test_bimodal_cae_sums_scaled_contributions_and_decodes_both():
    model = _bimodal().eval()
    with torch.no_grad():
        model.shared_bias.fill_(0.1)
        x = {'image': torch.randn(5, 1, 28, 28), 'audio': torch.randn(5, 1, 24, 24)}
        c = model.contributions(x)
        assert torch.allclose(model.shared(x), torch.relu(0.1 + c['image'] + c['audio']), atol=1e-6)
        assert torch.allclose(model.shared({'image': x['image']}), torch.relu(0.1 + 2 * c['image']), atol=1e-6)
        present = torch.tensor([[True, False], [False, True], [True, True], [True, False], [False, True]])
        z = model.shared(x, present)
        s = presence_scale(present)
        expect = torch.relu(0.1 + s[:, :1] * c['image'] + s[:, 1:] * c['audio'])
        assert torch.allclose(z, expect, atol=1e-6)
        out = model({'audio': x['audio']})
    assert out.reconstructions['image'].shape == (5, 1, 28, 28)     # rebuilt from the other modality
    assert out.reconstructions['audio'].shape == (5, 1, 24, 24)
    assert out.present.tolist() == [[False, True]] * 5
    with pytest.raises(ValueError, match='unknown modality'):
        model({'depth': torch.zeros(1, 1, 8, 8)})


def test_bimodal_cae_starts_from_the_unimodal_caes_and_trains():
    model = _bimodal()
    torch.manual_seed(5)
    uni = {m: ConvAutoEncoder(model.config.modalities[m]) for m in model.modalities}
    model.init_from_unimodal(uni)
    for m in model.modalities:
        for (name, p), q in zip(model.caes[m].named_parameters(), uni[m].parameters()):
            assert torch.equal(p, q), f'{m}.{name} not copied'
    rng = np.random.default_rng(0)
    x = {'image': rng.standard_normal((64, 1, 28, 28)).astype(np.float32),
         'audio': rng.standard_normal((64, 1, 24, 24)).astype(np.float32)}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    hist = train_bimodal(model, x, epochs=1, batch_size=32, seed=0)
    assert np.isfinite(hist[0]['loss'])
    assert all(not torch.equal(before[n], p) for n, p in model.named_parameters())


# ------------------------------------------------------------------ KNN mapping

def _hand_made_mapping(k=2):
    source = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [10.0, 0.0], [11.0, 0.0]], np.float32)
    target = np.arange(5 * 2 * 3, dtype=np.float32).reshape(5, 2, 3)       # (N, 2, 3) "video" maps
    return KNNTransferMapping(source, target, k=k, metadata={'note': 'hand made'})


def test_knn_mapping_averages_the_targets_of_the_right_neighbours():
    mapping = _hand_made_mapping()
    query = np.array([[0.4, 0.0], [10.6, 0.3], [1.6, -1.0]], np.float32)
    assert mapping.neighbours(query).tolist() == [[0, 1], [4, 3], [2, 1]]
    out = mapping.transform(query)
    assert out.shape == (3, 2, 3)
    t = mapping.target
    np.testing.assert_allclose(out[0], (t[0] + t[1]) / 2)
    np.testing.assert_allclose(out[1], (t[3] + t[4]) / 2)
    np.testing.assert_allclose(out[2], (t[1] + t[2]) / 2)
    # ties go to the lower reference index; k = 1 returns the nearest target itself
    assert _hand_made_mapping(k=1).neighbours(np.array([[0.5, 0.0]])).tolist() == [[0]]
    np.testing.assert_allclose(_hand_made_mapping(k=1).transform(np.array([[9.0, 0.0]])), t[3:4])


def test_knn_mapping_rejects_bad_input():
    with pytest.raises(ValueError, match='k must be in'):
        _hand_made_mapping(k=6)
    with pytest.raises(ValueError, match=r'query must be \(Q, 2\)'):
        _hand_made_mapping().transform(np.zeros((1, 3)))
    with pytest.raises(ValueError, match='target'):
        KNNTransferMapping(np.zeros((3, 2)), np.zeros((4, 2)))


def test_knn_mapping_save_and_reload(tmp_path):
    mapping = _hand_made_mapping(k=3)
    path = mapping.save(tmp_path / 'sub' / 'map.safetensors')
    assert not list(path.parent.glob('.*.tmp'))                      # atomic: no leftover temp file
    again = KNNTransferMapping.load(path)
    assert again.k == 3 and again.metadata == {'note': 'hand made'}
    np.testing.assert_array_equal(again.source, mapping.source)
    np.testing.assert_array_equal(again.target, mapping.target)
    q = np.random.default_rng(0).standard_normal((7, 2)).astype(np.float32) * 5
    np.testing.assert_array_equal(again.transform(q), mapping.transform(q))
    bad = tmp_path / 'truncated.safetensors'
    bad.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ValueError, match='truncated.safetensors'):
        KNNTransferMapping.load(bad)
    from safetensors.numpy import save_file
    other = tmp_path / 'other.safetensors'
    save_file({'source': np.zeros((2, 2), np.float32)}, str(other))
    with pytest.raises(ValueError, match='other.safetensors: not a KNN transfer mapping'):
        KNNTransferMapping.load(other)


# ---------------------------------------------------------------- transfer step

def test_finetune_from_layer_trains_only_the_upper_layers():
    torch.manual_seed(0)
    enc = ModalityEncoder(EncoderConfig('cnn2d', [1, 12, 12], [4, 8, 8]), 6)
    lower = {n: p.detach().clone() for n, p in enc.levels[:2].named_parameters()}
    upper = {n: p.detach().clone() for n, p in enc.levels[2:].named_parameters()}
    bn_mean = enc.levels[2][1].running_mean.clone()
    rng = np.random.default_rng(0)
    shape = enc.level_shapes[1]
    real = rng.standard_normal((20, *shape)).astype(np.float32)
    transferred = rng.standard_normal((8, *shape)).astype(np.float32)
    info = finetune_from_layer(enc, 2, real, rng.integers(0, 4, 20), transferred, np.full(8, 5),
                               p_audio=0.5, epochs=3, batch_size=4)
    assert 0 < info['transferred_batches'] < info['steps']
    assert all(torch.equal(p, lower[n]) for n, p in enc.levels[:2].named_parameters())
    assert any(not torch.equal(p, upper[n]) for n, p in enc.levels[2:].named_parameters())
    assert torch.equal(enc.levels[2][1].running_mean, bn_mean)       # batch-norm statistics frozen
    assert all(p.requires_grad for p in enc.parameters())


def test_table_columns():
    y_tr, p_tr = np.array([0, 1, 20, 25]), np.array([0, 2, 20, 24])
    y_te, p_te = np.array([3, 21]), np.array([3, 21])
    cols = table_columns(p_tr, y_tr, p_te, y_te, n_seen=20)
    assert cols == {'Tr': 50.0, 'Tr A-T': 50.0, 'Tr U-Z': 50.0, 'Te': 100.0, 'Te A-T': 100.0, 'Te U-Z': 100.0}


# ---------------------------------------------------------------------- commands

@pytest.mark.parametrize('command, option', [('probe', 'n_train='), ('transfer', 'finetune_epochs=')])
def test_command_help(command, option, capsys):
    from centralnet_ros.cli import main
    with pytest.raises(SystemExit) as exc:
        main([command, '--help'])
    assert exc.value.code == 0
    assert option in capsys.readouterr().out


def test_probe_and_transfer_refuse_an_unknown_setting(capsys):
    from centralnet_ros.cli import main
    assert main(['probe', '--set', 'cae_epoch=3']) == 2
    assert 'cae_epoch' in capsys.readouterr().err
    assert main(['transfer', '--set', 'finetune_epochs=many']) == 2
    assert 'finetune_epochs' in capsys.readouterr().err


def test_transfer_command_rejects_a_malformed_setting(capsys):
    from centralnet_ros.cli import main
    with pytest.raises(SystemExit) as exc:
        main(['transfer', '--setting', 'Exp1-2'])
    assert exc.value.code == 2
    assert 'NAME:VIDEO_LAYER:P_AUDIO' in capsys.readouterr().err
