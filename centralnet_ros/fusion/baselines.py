"""
The baselines CentralNet is compared with, on the same encoders.

* :class:`Unimodal`     -- one modality's network alone.
* :class:`EarlyFusion`  -- first-level features of every modality concatenated, then shared layers.
* :class:`LateFusion`   -- full unimodal networks; their scores summed with learned weights.
* :class:`GatedMultimodalUnit` -- Arevalo et al. 2017: ``h_k = tanh(W_k x_k)``, a per-dimension
  sigmoid gate computed from all modalities (``z = sigma(W_z [x_1; x_2])``,
  ``h = z * h_1 + (1 - z) * h_2``; for M > 2 one gate per modality).
* :class:`ModDrop`      -- Neverova et al. 2016: unimodal networks whose top representations are
  concatenated into shared layers, with whole modalities dropped per sample during training
  (:class:`ModalityDropout`).
"""
from __future__ import annotations

from typing import Mapping

from centralnet_ros.encoders.base import ClassifierHead
from centralnet_ros.fusion.base import (Align, build_encoders, dense_or_conv_block, fusion_space, FusionConfig,
                                        FusionModel, FusionOutput, GlobalAvgPool, ModalityDropout,
                                        register_fusion)
import torch
from torch import nn


@register_fusion('unimodal')
class Unimodal(FusionModel):
    """One modality's network alone (``config.unimodal``)."""

    def __init__(self, config: FusionConfig):
        super().__init__(config)
        self.modality = config.unimodal
        self.encoders = build_encoders(config, [self.modality])

    def forward(self, inputs: Mapping[str, torch.Tensor], present: torch.Tensor | None = None) -> FusionOutput:
        x, mask = self._prepare(inputs, present, needed=[self.modality])
        logits = self.encoders[self.modality](x[self.modality])            # (B, num_classes)
        logits = logits * self.mask_of(mask, self.modality).unsqueeze(1)    # absent -> uninformative
        return FusionOutput(logits=logits)


@register_fusion('early')
class EarlyFusion(FusionModel):
    """Concatenate the modalities' first-level features; the rest of the network is shared."""

    def __init__(self, config: FusionConfig):
        super().__init__(config)
        self.encoders = build_encoders(config, self.modalities, n_levels=1, with_head=False)
        full = build_encoders(config, self.modalities, with_head=False)                    # only to read level shapes
        n = min(len(e.level_shapes) for e in full.values())
        shapes = [[full[m].level_shapes[i] for m in self.modalities] for i in range(n)]
        del full
        grid = config.mixed_rank_grid
        first = fusion_space(shapes[0], grid=grid)
        self.align = nn.ModuleList(Align(s, first, keep_channels=True, grid=grid) for s in shapes[0])
        concat = (sum(a.width for a in self.align), *first[1:])             # channels concatenated
        space = [concat] + [fusion_space(s, grid=grid) for s in shapes[1:]]
        self.shared = nn.Sequential(*(dense_or_conv_block(space[i - 1], space[i], dropout=config.central_dropout)
                                      for i in range(1, n)))
        self.head = ClassifierHead(space[-1][0], config.num_classes, config.central_dropout)

    def forward(self, inputs: Mapping[str, torch.Tensor], present: torch.Tensor | None = None) -> FusionOutput:
        x, mask = self._prepare(inputs, present)
        parts = []
        for k, m in enumerate(self.modalities):
            h = self.align[k](self.encoders[m].forward_levels(x[m])[0])     # (B, C_k, *S)
            parts.append(h * mask[:, k].view(-1, *([1] * (h.dim() - 1))))
        return FusionOutput(logits=self.head(self.shared(torch.cat(parts, dim=1))))


@register_fusion('late')
class LateFusion(FusionModel):
    """Unimodal networks trained with their own losses; output = sum_k w_k * score_k."""

    def __init__(self, config: FusionConfig):
        super().__init__(config)
        self.encoders = build_encoders(config, self.modalities)
        self.score_weights = nn.Parameter(torch.full((len(self.modalities),), 1.0))

    def fusion_weight_parameters(self) -> list[nn.Parameter]:
        return [self.score_weights]

    def forward(self, inputs: Mapping[str, torch.Tensor], present: torch.Tensor | None = None) -> FusionOutput:
        x, mask = self._prepare(inputs, present)
        unimodal = {m: self.encoders[m](x[m]) for m in self.modalities}     # each (B, num_classes)
        logits = sum((self.score_weights[k] * mask[:, k]).unsqueeze(1) * unimodal[m]
                     for k, m in enumerate(self.modalities))
        return FusionOutput(logits=logits, unimodal=unimodal)


def _top_vectors(model: FusionModel, x: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """Each modality's last-level representation, globally pooled: M tensors (B, C_k)."""
    return [GlobalAvgPool()(model.encoders[m].forward_levels(x[m])[-1]) for m in model.modalities]


@register_fusion('gmu')
class GatedMultimodalUnit(FusionModel):
    """Arevalo et al. 2017: modality features mixed through learned per-dimension gates."""

    def __init__(self, config: FusionConfig):
        super().__init__(config)
        self.encoders = build_encoders(config, self.modalities, with_head=False)
        dims = [self.encoders[m].level_shapes[-1][0] for m in self.modalities]
        hidden = config.hidden or max(dims)
        self.project = nn.ModuleList(nn.Linear(d, hidden) for d in dims)
        n_gates = 1 if len(dims) == 2 else len(dims)
        self.gate = nn.Linear(sum(dims), hidden * n_gates)
        self.hidden = hidden
        self.head = ClassifierHead(hidden, config.num_classes, config.central_dropout)

    def gates(self, vectors: list[torch.Tensor]) -> torch.Tensor:
        """(B, G, hidden) gate values in (0, 1); G = 1 for two modalities, else M."""
        z = torch.sigmoid(self.gate(torch.cat(vectors, dim=1)))
        return z.view(z.shape[0], -1, self.hidden)

    def forward(self, inputs: Mapping[str, torch.Tensor], present: torch.Tensor | None = None) -> FusionOutput:
        x, mask = self._prepare(inputs, present)
        vectors = [v * mask[:, k:k + 1] for k, v in enumerate(_top_vectors(self, x))]
        h = [torch.tanh(p(v)) for p, v in zip(self.project, vectors)]      # M x (B, hidden)
        z = self.gates(vectors)
        if len(h) == 2:
            fused = z[:, 0] * h[0] + (1 - z[:, 0]) * h[1]
        else:
            fused = sum(z[:, k] * h[k] for k in range(len(h)))
        return FusionOutput(logits=self.head(fused))


@register_fusion('moddrop')
class ModDrop(FusionModel):
    """Neverova et al. 2016: shared layers over the unimodal top features, whole modalities dropped."""

    def __init__(self, config: FusionConfig):
        super().__init__(config)
        self.encoders = build_encoders(config, self.modalities, with_head=False)
        dims = [self.encoders[m].level_shapes[-1][0] for m in self.modalities]
        hidden = config.hidden or max(dims)
        self.dropout = ModalityDropout(config.moddrop_p)
        self.shared = dense_or_conv_block((sum(dims),), (hidden,), dropout=config.central_dropout)
        self.head = ClassifierHead(hidden, config.num_classes, config.central_dropout)

    def forward(self, inputs: Mapping[str, torch.Tensor], present: torch.Tensor | None = None) -> FusionOutput:
        x, mask = self._prepare(inputs, present)
        mask = self.dropout(mask)
        vectors = [v * mask[:, k:k + 1] for k, v in enumerate(_top_vectors(self, x))]
        return FusionOutput(logits=self.head(self.shared(torch.cat(vectors, dim=1))))
