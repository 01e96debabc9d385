"""
Every fusion method on every encoder kind: forward, backward, masks, CentralNet's invariants.

The invariants are those named in the paper; the tests are parametrised in timm's style.
"""
from __future__ import annotations

import copy

from centralnet_ros.encoders import build_encoder, EncoderConfig
from centralnet_ros.fusion import (build_model, CentralNet, fusion_loss, fusion_methods, FusionConfig, ModalityDropout,
                                   task_loss)
import pytest
import torch
from torch import nn

B, K = 5, 7

DENSE = {'a': EncoderConfig(kind='mlp', input_shape=[12], widths=[16, 8, 6]),
         'b': EncoderConfig(kind='mlp', input_shape=[3, 5], widths=[10, 12, 4]),
         'c': EncoderConfig(kind='mlp', input_shape=[9], widths=[8, 8, 8]),
         'd': EncoderConfig(kind='mlp', input_shape=[4], widths=[6, 5, 7])}
CONV = {'a': EncoderConfig(kind='cnn2d', input_shape=[1, 16, 16], widths=[4, 8, 8]),
        'b': EncoderConfig(kind='cnn2d', input_shape=[2, 12, 20], widths=[6, 4, 8]),
        'c': EncoderConfig(kind='cnn2d', input_shape=[1, 8, 8], widths=[3, 3, 5], pool=[1, 2, 1]),
        'd': EncoderConfig(kind='cnn2d', input_shape=[3, 10, 10], widths=[4, 6, 6])}
MIXED = {'lips': EncoderConfig(kind='cnn3d', input_shape=[1, 4, 12, 16], widths=[4, 8], temporal_pool=[2, 1]),
         'mfcc': EncoderConfig(kind='cnn2d', input_shape=[1, 26, 24], widths=[6, 8]),
         'skeleton': EncoderConfig(kind='cnn1d', input_shape=[9, 20], widths=[8, 8])}
TEMPORAL = {'skeleton': EncoderConfig(kind='tcn', input_shape=[9, 20], widths=[8, 12], pool=[2, 1], dropout=0.1),
            'audio': EncoderConfig(kind='cnn1d', input_shape=[6, 16], widths=[8, 8])}
FAMILIES = {'dense': DENSE, 'conv': CONV, 'mixed': MIXED, 'temporal': TEMPORAL}


def make_inputs(mods: dict[str, EncoderConfig], batch: int = B) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {m: torch.randn(batch, *c.input_shape, generator=g) for m, c in mods.items()}


def make(method: str, mods: dict[str, EncoderConfig], **kw):
    cfg = FusionConfig(method=method, modalities=mods, num_classes=K,
                       unimodal=next(iter(mods)) if method == 'unimodal' else None, **kw)
    torch.manual_seed(0)
    return build_model(cfg)


FUSION_WEIGHT_NAMES = ('alpha_modality', 'alpha_central', 'beta', 'score_weights')


@pytest.mark.parametrize('family', list(FAMILIES))
@pytest.mark.parametrize('method', fusion_methods())
def test_forward_backward_every_method(method, family):
    mods = FAMILIES[family]
    model = make(method, mods, align='project' if family == 'conv' else 'pad')
    x = make_inputs(mods)
    y = torch.randint(0, K, (B,))
    out = model(x)
    assert out.logits.shape == (B, K)
    for name, logits in out.unimodal.items():
        assert name in mods and logits.shape == (B, K)
    loss, _ = fusion_loss(out, y)
    loss.backward()
    used = set(mods) if method != 'unimodal' else {next(iter(mods))}
    for name, p in model.named_parameters():
        if name.split('.')[0] == 'encoders' and name.split('.')[1] not in used:
            continue
        assert p.grad is not None, f'{method}/{family}: no gradient reached {name}'
        if name in FUSION_WEIGHT_NAMES:
            assert torch.all(p.grad != 0), f'{method}/{family}: a fusion weight in {name} got a zero gradient'


@pytest.mark.parametrize('method', fusion_methods())
def test_presence_mask_and_missing_modality(method):
    mods = CONV
    model = make(method, mods).eval()
    x = make_inputs(mods)
    present = torch.ones(B, len(mods), dtype=torch.bool)
    present[0, 1] = False
    out = model(x, present)
    assert out.logits.shape == (B, K) and torch.isfinite(out.logits).all()
    # an absent modality's content must not matter
    x2 = dict(x)
    x2['b'] = x['b'].clone()
    x2['b'][0] += 100.0
    torch.testing.assert_close(model(x2, present).logits[0], out.logits[0])
    # leaving a modality out of the mapping is the same as marking it absent
    dropped = {m: t for m, t in x.items() if m != 'd'}
    mask = torch.ones(B, len(mods), dtype=torch.bool)
    mask[:, list(mods).index('d')] = False
    torch.testing.assert_close(model(dropped).logits, model(x, mask).logits)


@pytest.mark.parametrize('n_modalities', [2, 3, 4])
@pytest.mark.parametrize('family', ['dense', 'conv'])
def test_centralnet_any_number_of_modalities(n_modalities, family):
    mods = dict(list(FAMILIES[family].items())[:n_modalities])
    model = make('centralnet', mods)
    out = model(make_inputs(mods))
    assert out.logits.shape == (B, K) and out.central.shape == (B, K)
    assert set(out.unimodal) == set(mods)
    assert model.alpha_modality.shape == (3, n_modalities)
    assert model.alpha_central.shape == (2,)
    assert model.beta.shape == (n_modalities + 1,)
    table = model.fusion_weights()
    assert [lv['level'] for lv in table['levels']] == [1, 2, 3, 'output']
    assert 'central' not in table['levels'][0]['share']            # level 1 fuses the modalities only
    for level in table['levels']:
        assert sum(level['share'].values()) == pytest.approx(1.0)


def test_centralnet_conv_fusion_keeps_feature_maps():
    model = make('centralnet', CONV)
    assert all(len(s) == 3 for s in model.space), 'equal-rank conv features are fused as feature maps'
    mixed = make('centralnet', MIXED)
    assert all(len(s) == 1 for s in mixed.space), 'unequal ranks meet as pooled vectors'


@pytest.mark.parametrize('align', ['pad', 'project'])
def test_unequal_feature_sizes(align):
    model = make('centralnet', DENSE, align=align)
    assert [s[0] for s in model.space] == [16, 12, 8]               # widest modality per level
    assert model(make_inputs(DENSE)).logits.shape == (B, K)


def _perturb_levels(model, from_level: int):
    with torch.no_grad():
        for enc in model.encoders.values():
            for level in enc.levels[from_level:]:
                for p in level.parameters():
                    p.add_(torch.randn_like(p))


def test_limit_early_fusion_when_modality_weights_vanish_beyond_level_one():
    """alpha_M_i = 0 for i > 1: the central path only sees first-level features."""
    model = make('centralnet', CONV).eval()
    with torch.no_grad():
        model.alpha_modality[1:] = 0.0
    x = make_inputs(CONV)
    before = model(x).central
    _perturb_levels(model, from_level=1)                             # change every modality above level 1
    after = model(x).central
    torch.testing.assert_close(before, after)
    _perturb_levels(model, from_level=0)                             # level 1 itself does matter
    assert not torch.allclose(after, model(x).central)


def test_limit_late_fusion_when_central_output_weight_vanishes():
    """beta_C = 0: the output is sum_k beta_k * unimodal_k, whatever the central network does."""
    model = make('centralnet', DENSE).eval()
    with torch.no_grad():
        model.beta[-1] = 0.0
        model.beta[:-1] = torch.tensor([0.5, 2.0, -1.0, 0.25])
    x = make_inputs(DENSE)
    out = model(x)
    expected = sum(model.beta[k] * out.unimodal[m] for k, m in enumerate(model.modalities))
    torch.testing.assert_close(out.logits, expected)
    with torch.no_grad():
        for p in model.central.parameters():
            p.add_(1.0)
    torch.testing.assert_close(model(x).logits, out.logits)


def test_loss_is_the_sum_of_its_parts():
    model = make('centralnet', DENSE)
    out = model(make_inputs(DENSE))
    y = torch.randint(0, K, (B,))
    total, parts = fusion_loss(out, y, central_weight=1.0, unimodal_weight=1.0)
    manual = task_loss(out.logits, y) + sum(task_loss(u, y) for u in out.unimodal.values())
    torch.testing.assert_close(total, manual)
    assert set(parts) == {'fused', *DENSE}
    assert total.item() == pytest.approx(sum(parts.values()), rel=1e-5)
    weighted, _ = fusion_loss(out, y, central_weight=2.0, unimodal_weight=0.5)
    torch.testing.assert_close(weighted, 2 * task_loss(out.logits, y)
                               + 0.5 * sum(task_loss(u, y) for u in out.unimodal.values()))


def test_multilabel_loss_weights_positives_by_two():
    logits = torch.randn(4, 6)
    target = (torch.rand(4, 6) > 0.5).float()
    s = torch.sigmoid(logits)
    manual = -(2 * target * torch.log(s) + (1 - target) * torch.log(1 - s)).sum(1).mean()
    torch.testing.assert_close(task_loss(logits, target, 'multilabel'), manual)


def test_gmu_gates_stay_in_open_unit_interval():
    for mods in (dict(list(CONV.items())[:2]), CONV):
        model = make('gmu', mods)
        vectors = [torch.randn(B, p.in_features) * 10 for p in model.project]    # one top vector per modality
        z = model.gates(vectors)
        assert z.shape == (B, 1 if len(mods) == 2 else len(mods), model.hidden)
        assert torch.all((z > 0) & (z < 1))
        with torch.no_grad():
            model.gate.weight.zero_()
            model.gate.bias.zero_()
        torch.testing.assert_close(model.gates(vectors), torch.full_like(z, 0.5))


def test_moddrop_drops_whole_modalities_never_all():
    drop = ModalityDropout(0.7).train()
    g = torch.Generator().manual_seed(1)
    mask = torch.ones(4000, 3)
    mask[::4, 2] = 0.0                                               # some samples already lack one
    new = drop(mask, generator=g)
    assert set(new.unique().tolist()) <= {0.0, 1.0}                   # whole modalities, no scaling
    assert torch.all(new.sum(1) >= 1)                                # never all
    assert torch.all(new <= mask)                                    # never revives an absent one
    rate = 1 - new[mask.bool()].mean().item()
    assert 0.5 < rate < 0.7                                          # about p, less the rescued ones
    drop.eval()
    assert torch.equal(drop(mask), mask)


def test_moddrop_model_masks_in_training_only():
    model = make('moddrop', CONV, moddrop_p=0.9)
    x = make_inputs(CONV)
    masks = []
    model.dropout.register_forward_hook(lambda module, args, out: masks.append(out))
    model.train()
    torch.manual_seed(0)
    model(x)
    dropped = masks[-1]                                                # (B, M) after ModDrop
    assert (dropped == 0).any(), 'p = 0.9 dropped no modality while training'
    assert torch.all(dropped.sum(1) >= 1)                              # never all of them
    model.eval()
    a, b = model(x).logits, model(x).logits
    assert torch.equal(masks[-1], torch.ones_like(dropped))            # nothing dropped in eval
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize('method', fusion_methods())
def test_wrong_input_shape_is_a_clear_error(method):
    model = make(method, CONV)
    x = make_inputs(CONV)
    x['a'] = torch.zeros(B, 1, 15, 16)
    with pytest.raises(ValueError, match=r"'a'.*expected a tensor of shape \(B=5, 1, 16, 16\)"):
        model(x)
    with pytest.raises(ValueError, match='unknown modality'):
        model({**make_inputs(CONV), 'thermal': torch.zeros(B, 3)})
    with pytest.raises(ValueError, match='present must be'):
        model(make_inputs(CONV), torch.ones(B, 2, dtype=torch.bool))


def test_config_errors_name_the_problem():
    with pytest.raises(ValueError, match='unknown fusion method'):
        FusionConfig(method='attention', modalities=CONV, num_classes=3)
    with pytest.raises(ValueError, match='at least 2 modalities'):
        FusionConfig(method='centralnet', modalities={'a': CONV['a']}, num_classes=3)
    with pytest.raises(ValueError, match='cnn2d expects input_shape of 3'):
        EncoderConfig(kind='cnn2d', input_shape=[16, 16], widths=[4])
    with pytest.raises(ValueError, match='same number of levels'):
        CentralNet(FusionConfig(method='centralnet', num_classes=3, modalities={
            'a': DENSE['a'], 'b': EncoderConfig(kind='mlp', input_shape=[3], widths=[4])}))


def test_tcn_levels_are_dilated_residual_blocks():
    cfg = EncoderConfig(kind='tcn', input_shape=[3, 40], widths=[4, 4, 6], pool=[2, 1, 1], dilations=[1, 3, 2])
    enc = build_encoder(cfg, K).eval()
    assert enc.level_shapes == [(4, 20), (4, 20), (6, 20)]          # same-length convolutions, pooled where asked
    assert [lvl.body[0].dilation for lvl in enc.levels] == [(1,), (3,), (2,)]
    assert isinstance(enc.levels[1].skip, nn.Identity) and not isinstance(enc.levels[2].skip, nn.Identity)
    assert [lvl.body[0].dilation for lvl in build_encoder(  # default dilations: 1, 2, 4
        EncoderConfig(kind='tcn', input_shape=[3, 40], widths=[4, 4, 4]), K).levels] == [(1,), (2,), (4,)]


def _frames_reached(enc, level, body=True):
    """Frames of ``level``'s output that an impulse at input frame 20 changes (every ReLU kept in its linear part)."""
    with torch.no_grad():
        for m in enc.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.bias.fill_(10.0)
        if not body:
            for lvl in enc.levels:
                lvl.body[-1].weight.zero_()                          # the block's body silent: its skip alone
        x = torch.zeros(1, *enc.input_shape)
        base = enc.forward_levels(x)[level]
        x[0, :, 20] = 0.01
        changed = (enc.forward_levels(x)[level] - base).abs().sum(1)[0] > 1e-9
    return changed.nonzero().flatten().tolist()


def test_tcn_receptive_field_is_the_dilated_convolutions_and_the_skip():
    cfg = EncoderConfig(kind='tcn', input_shape=[3, 40], widths=[4, 4], dilations=[1, 3])
    torch.manual_seed(0)
    # two convolutions of dilation 1 (+-2 frames), then two of dilation 3 (+-6)
    assert _frames_reached(build_encoder(cfg, K).eval(), 0) == list(range(18, 23))
    assert _frames_reached(build_encoder(cfg, K).eval(), 1) == list(range(12, 29))
    assert _frames_reached(build_encoder(cfg, K).eval(), 1, body=False) == [20]


def test_tcn_config_errors():
    with pytest.raises(ValueError, match='tcn expects input_shape of 2'):
        EncoderConfig(kind='tcn', input_shape=[3, 4, 40], widths=[4])
    with pytest.raises(ValueError, match='dilations needs one factor per level'):
        EncoderConfig(kind='tcn', input_shape=[3, 40], widths=[4, 4], dilations=[1])
    with pytest.raises(ValueError, match='dilations are for kind tcn'):
        EncoderConfig(kind='cnn1d', input_shape=[3, 40], widths=[4], dilations=[2])
    with pytest.raises(ValueError, match='odd kernel_size'):
        EncoderConfig(kind='tcn', input_shape=[3, 40], widths=[4], kernel_size=4)


def test_state_dict_round_trip_rebuilds_identical_model():
    for method in fusion_methods():
        model = make(method, MIXED).eval()
        clone = make(method, MIXED).eval()
        with torch.no_grad():
            for p in clone.parameters():
                p.add_(1.0)
        clone.load_state_dict(copy.deepcopy(model.state_dict()))
        x = make_inputs(MIXED)
        torch.testing.assert_close(clone(x).logits, model(x).logits)


@pytest.mark.parametrize('method', fusion_methods())
def test_modality_dropout_option_trains_any_method_with_missing_modalities(method):
    model = make(method, CONV, modality_dropout=0.6).train()
    x = make_inputs(CONV, batch=64)
    masks = []
    original = model.modality_dropout.forward
    model.modality_dropout.forward = lambda m, generator=None: masks.append(original(m)) or masks[-1]
    model(x)
    if method == 'unimodal':
        assert torch.all(masks[0][:, 0] == 1), 'the only modality a unimodal model reads is never dropped'
    else:
        assert torch.all(masks[0].sum(1) >= 1) and (masks[0] == 0).any()
    model.eval()
    masks.clear()
    torch.testing.assert_close(model(x).logits, model(x).logits)   # no dropout in eval mode


@pytest.mark.parametrize('method', ['early', 'centralnet'])
def test_mixed_rank_grid_keeps_coarse_structure(method):
    """Unequal-rank features meet as C x grid^d vectors; grid 1 is global average pooling."""
    for grid in (1, 2):
        model = make(method, MIXED, mixed_rank_grid=grid)
        out = model(make_inputs(MIXED))
        assert out.logits.shape == (B, K)
        fusion_model = model
    widths = {'lips': 4 * 2 ** 3, 'mfcc': 6 * 2 ** 2, 'skeleton': 8 * 2}       # first-level C x grid^d
    if method == 'centralnet':
        assert fusion_model.space[0] == (max(widths.values()),)
    else:
        assert [a.width for a in fusion_model.align] == [widths[m] for m in fusion_model.modalities]
    from centralnet_ros.fusion.base import Align
    h = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    pooled = Align((3, 4, 4), (12,), grid=2)(h)                                  # 3 x 2 x 2 = 12
    manual = h.view(2, 3, 2, 2, 2, 2).mean((3, 5)).flatten(1)
    torch.testing.assert_close(pooled, manual)
    torch.testing.assert_close(Align((3, 4, 4), (3,), grid=1)(h), h.mean((2, 3)))


def test_the_builtin_method_names_are_the_methods_the_package_registers():
    """``model_config.BUILTIN_METHODS`` lets a config name a method without torch: it must be the registry's list."""
    from centralnet_ros.model_config import BUILTIN_METHODS
    assert fusion_methods() == BUILTIN_METHODS
    with pytest.raises(ValueError, match='unknown fusion method'):
        FusionConfig(method='no_such_method', modalities=DENSE, num_classes=K)


@pytest.mark.parametrize('method', fusion_methods())
def test_ensemble_members_learn_apart_and_decide_by_their_mean_logits(method):
    model = make(method, DENSE, members=3).train()
    assert len(model.members) == 3 and model.method == method
    first = [p.detach().clone() for p in model.members[0].parameters()]
    assert any(not torch.equal(a, b) for a, b in zip(first, model.members[1].parameters())), \
        'members must start from their own initial weights'
    x, y = make_inputs(DENSE), torch.randint(0, K, (B,))
    model.eval()
    out = model(x)
    torch.testing.assert_close(out.logits, torch.stack([m(x).logits for m in model.members]).mean(0))
    # the loss of the ensemble is the sum of its members' losses: no gradient crosses between members
    loss, _ = fusion_loss(out, y)
    loss.backward()
    alone = copy.deepcopy(model.members[0])
    alone.zero_grad()
    fusion_loss(alone(x), y)[0].backward()
    for (name, a), b in zip(model.members[0].named_parameters(), alone.parameters()):
        if b.grad is None:
            assert a.grad is None or torch.all(a.grad == 0), name
        else:
            torch.testing.assert_close(a.grad, b.grad, msg=f'{method}: member 0 gradient of {name}')
    weights = model.fusion_weight_parameters()
    assert len(weights) == sum(len(m.fusion_weight_parameters()) for m in model.members)


def test_ensemble_config_errors_and_bias_calibration():
    with pytest.raises(ValueError, match='members must be >= 1'):
        FusionConfig(method='late', modalities=DENSE, num_classes=K, members=0)
    import numpy as np
    from centralnet_ros.training.gesture import calibrate_class_bias
    from centralnet_ros.training.trainer import ArraySplit, predict
    model = make('unimodal', {'a': DENSE['a']}, members=2).eval()
    g = torch.Generator().manual_seed(3)
    val = ArraySplit({'a': torch.randn(40, 12, generator=g).numpy()}, np.full(40, K - 1))   # all the last class
    before = predict(model, val)
    result = calibrate_class_bias(model, val, cls=K - 1)
    assert result['bias'] > 0 and result['val_accuracy_after'] > result['val_accuracy_before']
    after = predict(model, val)
    shift = np.zeros(K)
    shift[K - 1] = result['bias']
    np.testing.assert_allclose(after, before + shift, atol=1e-5)
