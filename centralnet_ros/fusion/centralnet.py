"""
CentralNet (Vielzeuf, Lechervy, Pateux, Jurie 2018).

One network per modality plus a central network.  With ``h_M_i^k`` the level-i
representation of modality k and ``h_C_i`` the central one, the central input at
level i is (the paper's equation 1)::

    z_1     = sum_k alpha_M_1^k * h_M_1^k                      (first level: modalities only)
    z_i     = alpha_C_i * C_i(z_{i-1}) + sum_k alpha_M_i^k * h_M_i^k      (i = 2 .. L)
    central = head_C(z_L)
    output  = beta_C * central + sum_k beta_k * head_k(h_M_L^k)

``C_i`` is a central layer of the same kind as the modalities' level i (dense or
convolutional).  All alphas and betas are learned scalars; their shares per level
(:meth:`CentralNet.fusion_weights`) show where the network chose to fuse.  The loss
(see :mod:`centralnet_ros.fusion.losses`) is the loss of ``output`` plus every
unimodal loss.

Limiting cases (tested): alpha_M_i = 0 for i > 1 leaves the central path with
first-level features only, i.e. early fusion; beta_C = 0 gives a weighted late
fusion of the unimodal predictions.
"""
from __future__ import annotations

from typing import Mapping

from centralnet_ros.encoders.base import ClassifierHead
from centralnet_ros.fusion.base import (Align, build_encoders, dense_or_conv_block, fusion_space, FusionConfig,
                                        FusionModel, FusionOutput, register_fusion)
import torch
from torch import nn


@register_fusion('centralnet')
class CentralNet(FusionModel):
    """Unimodal networks plus a central network fed their weighted sums at every level (module docstring)."""

    def __init__(self, config: FusionConfig):
        super().__init__(config)
        self.encoders = build_encoders(config, self.modalities)
        levels = {m: len(enc.level_shapes) for m, enc in self.encoders.items()}
        if len(set(levels.values())) != 1:
            raise ValueError(f'CentralNet needs the same number of levels in every modality, got {levels}')
        self.n_levels = n = next(iter(levels.values()))
        shapes = [[self.encoders[m].level_shapes[i] for m in self.modalities] for i in range(n)]
        grid = config.mixed_rank_grid
        self.space = [fusion_space(s, grid=grid) for s in shapes]          # fusion space per level
        self.align = nn.ModuleList(
            nn.ModuleList(Align(s, self.space[i], config.align, grid=grid) for s in shapes[i]) for i in range(n))
        self.central = nn.ModuleList(                                      # C_2 .. C_L
            dense_or_conv_block(self.space[i - 1], self.space[i], dropout=config.central_dropout)
            for i in range(1, n))
        self.central_head = ClassifierHead(self.space[-1][0], config.num_classes, config.central_dropout)
        init = float(config.fusion_weight_init)
        m = len(self.modalities)
        self.alpha_modality = nn.Parameter(torch.full((n, m), init))       # alpha_M_i^k
        self.alpha_central = nn.Parameter(torch.full((n - 1,), init))      # alpha_C_i, i = 2..L
        self.beta = nn.Parameter(torch.full((m + 1,), init))               # output: modalities.., central

    def forward(self, inputs: Mapping[str, torch.Tensor], present: torch.Tensor | None = None) -> FusionOutput:
        x, mask = self._prepare(inputs, present)                           # mask (B, M)
        feats = [self.encoders[m].forward_levels(x[m]) for m in self.modalities]  # M lists of L tensors
        unimodal = {m: self.encoders[m].head(feats[k][-1]) for k, m in enumerate(self.modalities)}
        z = None
        for i in range(self.n_levels):
            fused = 0.0
            for k in range(len(self.modalities)):
                h = self.align[i][k](feats[k][i])                          # (B, *space_i)
                w = self.alpha_modality[i, k] * mask[:, k]                 # (B,)
                fused = fused + w.view(-1, *([1] * (h.dim() - 1))) * h
            z = fused if i == 0 else self.alpha_central[i - 1] * self.central[i - 1](z) + fused
        central = self.central_head(z)                                     # (B, num_classes)
        logits = self.beta[-1] * central
        for k, m in enumerate(self.modalities):
            logits = logits + (self.beta[k] * mask[:, k]).unsqueeze(1) * unimodal[m]
        return FusionOutput(logits=logits, unimodal=unimodal, central=central)

    def fusion_weight_parameters(self) -> list[nn.Parameter]:
        return [self.alpha_modality, self.alpha_central, self.beta]

    @torch.no_grad()
    def fusion_weights(self) -> dict:
        """
        Raw weights and each weight's share of its level (|w| / sum |w|), like the paper's Fig. 2.

        Returns ``{'modalities': [...], 'levels': [{'level': i, 'raw': {...}, 'share': {...}}, ...,
        {'level': 'output', ...}]}`` with keys the modality names and ``'central'``.
        """
        out = []
        for i in range(self.n_levels):
            raw = {m: float(self.alpha_modality[i, k]) for k, m in enumerate(self.modalities)}
            if i > 0:
                raw['central'] = float(self.alpha_central[i - 1])
            out.append({'level': i + 1, 'raw': raw, 'share': _shares(raw)})
        raw = {m: float(self.beta[k]) for k, m in enumerate(self.modalities)}
        raw['central'] = float(self.beta[-1])
        out.append({'level': 'output', 'raw': raw, 'share': _shares(raw)})
        return {'modalities': list(self.modalities), 'levels': out}


def _shares(raw: dict[str, float]) -> dict[str, float]:
    total = sum(abs(v) for v in raw.values())
    return {k: (abs(v) / total if total > 0 else 0.0) for k, v in raw.items()}
