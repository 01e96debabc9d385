"""
The one contract every fusion model follows (MultiBench's encoders -> fusion -> head).

``model(inputs, present)`` takes

* ``inputs``: ``{modality: (B, *input_shape)}``; a modality may be left out, which
  is the same as marking it absent;
* ``present``: optional ``(B, M)`` bool tensor in ``model.modalities`` order, False
  where a modality is missing for that sample (ModDrop in training, a sensor that
  went quiet at run time).

and returns a :class:`FusionOutput`: the final ``logits`` plus, for methods that
have them, each modality's own prediction (the unimodal losses of CentralNet).
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

from centralnet_ros.encoders import ModalityEncoder
# the configs and the registry live without torch in model_config; here for the fusion modules and old imports
from centralnet_ros.model_config import (_REGISTRY, fusion_methods, FusionConfig, FusionOptions,  # noqa: F401
                                         register_fusion, SHARED_OPTIONS)
import torch
from torch import nn
import torch.nn.functional as F


def build_model(config: 'FusionConfig') -> 'FusionModel':
    """Build the model a config describes (the bundle loader and the trainer both use this)."""
    if config.members > 1:
        return Ensemble(config)
    return _REGISTRY[config.method](config)


@dataclasses.dataclass
class FusionOutput:
    logits: torch.Tensor                                              # (B, num_classes)
    unimodal: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)  # each (B, num_classes)
    central: torch.Tensor | None = None                               # CentralNet's central prediction
    members: list['FusionOutput'] = dataclasses.field(default_factory=list)  # an Ensemble's: each member's output


class ModalityDropout(nn.Module):
    """
    Drop whole modalities per sample with probability p during training, never all of them.

    Returns the updated presence mask (B, M); samples whose every present modality
    was drawn for dropping keep one of them, chosen uniformly.
    """

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f'ModDrop probability must be in [0, 1), got {p}')
        self.p = p
        # True under torch.vmap (vmapped ensembles): always draw the fallback choice instead of
        # branching on the data; False keeps an independent run's random stream as it was
        self.branch_free = False

    def forward(self, mask: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return mask
        keep = (torch.rand(mask.shape, device=mask.device, generator=generator) >= self.p).to(mask.dtype)
        new = mask * keep
        emptied = (new.sum(1) == 0) & (mask.sum(1) > 0)                      # (B,)
        if self.branch_free or emptied.any():
            scores = torch.rand(mask.shape, device=mask.device, generator=generator) * mask
            choice = scores.argmax(1)                                       # a present modality
            restore = torch.zeros_like(mask).scatter(1, choice.unsqueeze(1), 1.0)
            new = torch.where(emptied.unsqueeze(1), restore, new)
        return new


class FusionModel(nn.Module):
    """Base class: keeps the modality order, checks inputs, builds the presence mask."""

    method: str = ''    # set by register_fusion

    def __init__(self, config: FusionConfig):
        super().__init__()
        self.config = config
        self.modalities: list[str] = config.names
        self.num_classes = config.num_classes
        self.modality_dropout = ModalityDropout(config.modality_dropout)

    # -- inputs ---------------------------------------------------------------------
    def _prepare(self, inputs: Mapping[str, torch.Tensor], present: torch.Tensor | None,
                 needed: list[str] | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Fill absent modalities with zeros and return ``(inputs, present (B, M) float)``."""
        needed = needed or self.modalities
        unknown = set(inputs) - set(self.config.modalities)
        if unknown:
            raise ValueError(f'unknown modality {sorted(unknown)}; this model takes {self.modalities}')
        given = [m for m in needed if m in inputs]
        if not given:
            raise ValueError(f'no input for any of {needed}')
        ref = inputs[given[0]]
        batch, device = ref.shape[0], ref.device
        full = {}
        for m in needed:
            shape = tuple(self.config.modalities[m].input_shape)
            x = inputs.get(m)
            if x is None:
                x = torch.zeros(batch, *shape, device=device, dtype=ref.dtype)
            elif tuple(x.shape[1:]) != shape or x.shape[0] != batch:
                raise ValueError(f'modality {m!r}: expected a tensor of shape (B={batch}, '
                                 f'{", ".join(map(str, shape))}), got {tuple(x.shape)}')
            full[m] = x
        mask = torch.ones(batch, len(self.modalities), device=device, dtype=ref.dtype)
        if present is not None:
            if tuple(present.shape) != (batch, len(self.modalities)):
                raise ValueError(f'present must be (B={batch}, M={len(self.modalities)}) for modalities '
                                 f'{self.modalities}, got {tuple(present.shape)}')
            mask = mask * present.to(device=device, dtype=ref.dtype)
        for i, m in enumerate(self.modalities):
            if m not in inputs:
                mask[:, i] = 0.0
        if self.training and self.modality_dropout.p > 0:       # among the modalities this model reads
            reads = torch.tensor([m in needed for m in self.modalities], device=device, dtype=mask.dtype)
            mask = self.modality_dropout(mask * reads)
        return full, mask

    def mask_of(self, mask: torch.Tensor, modality: str) -> torch.Tensor:
        return mask[:, self.modalities.index(modality)]  # (B,)

    def fusion_weights(self) -> dict | None:
        """Return the learned fusion weights, for models that have them (CentralNet)."""
        return None

    def fusion_weight_parameters(self) -> list[nn.Parameter]:
        """
        Return the scalar fusion weights (CentralNet alphas/betas, late-fusion score weights).

        The trainer gives them their own learning rate and no weight decay.
        """
        return []


class Ensemble(FusionModel):
    """
    ``config.members`` copies of one fusion model, each from its own initial weights, deciding together.

    The output's logits (and unimodal and central predictions) are the mean of the members'
    (a normalised geometric mean of their posteriors), so the ensemble exports, runs and is
    calibrated as one model.  Each member is trained on its own loss
    (:func:`~centralnet_ros.fusion.losses.fusion_loss` sums the members' losses, and nothing
    in the loss couples them): the same as training the members apart on the same batches,
    one training loop for all.  The weights file holds them as ``members.<i>.<name>``.
    """

    def __init__(self, config: FusionConfig):
        super().__init__(config)
        self.method = config.method
        single = dataclasses.replace(config, members=1)
        self.members = nn.ModuleList(_REGISTRY[config.method](single) for _ in range(config.members))

    def forward(self, inputs: Mapping[str, torch.Tensor], present: torch.Tensor | None = None) -> FusionOutput:
        outs = [member(inputs, present) for member in self.members]

        def mean(tensors: list[torch.Tensor]) -> torch.Tensor:
            return torch.stack(tensors).mean(0)

        return FusionOutput(logits=mean([o.logits for o in outs]),
                            unimodal={m: mean([o.unimodal[m] for o in outs]) for m in outs[0].unimodal},
                            central=None if outs[0].central is None else mean([o.central for o in outs]),
                            members=outs)

    def fusion_weights(self) -> dict | None:
        """Return the first member's fusion weights (what plots read) with every member's under ``'members'``."""
        weights = [member.fusion_weights() for member in self.members]
        return None if weights[0] is None else {**weights[0], 'members': weights}

    def fusion_weight_parameters(self) -> list[nn.Parameter]:
        return [p for member in self.members for p in member.fusion_weight_parameters()]


# -- shape alignment shared by CentralNet and early fusion --------------------------------

def fusion_space(shapes: list[tuple[int, ...]], widest: bool = True, grid: int = 1) -> tuple[int, ...]:
    """
    Return the common shape in which features of several modalities are summed or concatenated.

    Equal rank: (max channels, smallest size on each spatial axis).  Unequal rank: vectors of
    the widest ``C x grid^d`` -- each modality average-pooled to ``grid`` cells on each of its
    ``d`` spatial axes and flattened (``grid=1``: globally pooled channels).
    """
    if len({len(s) for s in shapes}) > 1:
        widths = [s[0] * grid ** (len(s) - 1) for s in shapes]
        return (max(widths) if widest else min(widths),)
    channels = max(s[0] for s in shapes) if widest else min(s[0] for s in shapes)
    spatial = tuple(min(s[d] for s in shapes) for d in range(1, len(shapes[0])))
    return (channels, *spatial)


class Align(nn.Module):
    """Bring one modality's features (B, C, *S) to a fusion space (B, C', *S')."""

    def __init__(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...], mode: str = 'pad',
                 keep_channels: bool = False, grid: int = 1):
        super().__init__()
        self.in_shape, self.out_shape, self.mode = tuple(in_shape), tuple(out_shape), mode
        self.keep_channels = keep_channels
        # a feature map meeting vectors: pooled to `grid` cells per spatial axis, then flattened
        self.grid = grid if (len(out_shape) == 1 and len(in_shape) > 1) else None
        c_in = in_shape[0] * (grid ** (len(in_shape) - 1) if self.grid else 1)
        c_out = out_shape[0]
        self.width = c_in if keep_channels else c_out          # channels (vector size) of the output
        self.proj = None
        if mode == 'project' and c_in != c_out and not keep_channels:
            n_spatial = len(out_shape) - 1
            conv = {0: None, 1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[n_spatial]
            self.proj = nn.Linear(c_in, c_out, bias=False) if conv is None else conv(c_in, c_out, 1, bias=False)
        elif mode not in ('pad', 'project'):
            raise ValueError(f'align must be "pad" or "project", got {mode!r}')

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out_spatial = self.out_shape[1:]
        if self.grid == 1:
            h = h.flatten(2).mean(-1)                          # (B, C, *S) -> (B, C)
        elif self.grid:
            pool = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}
            h = pool[h.dim() - 2](h, (self.grid,) * (h.dim() - 2)).flatten(1)   # (B, C * grid^d)
        elif tuple(h.shape[2:]) != out_spatial:
            pool = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}
            h = pool[len(out_spatial)](h, out_spatial)
        if self.keep_channels:
            return h
        if self.proj is not None:
            return self.proj(h)
        missing = self.out_shape[0] - h.shape[1]
        if missing > 0:                                        # zero-pad the channel axis
            pad = [0, 0] * (h.dim() - 2) + [0, missing]
            h = F.pad(h, pad)
        return h


def dense_or_conv_block(in_shape: tuple[int, ...], out_shape: tuple[int, ...], *,
                        kernel_size: int = 3, dropout: float = 0.0) -> nn.Module:
    """Build a central/shared layer mapping a fusion-space shape to the next level's shape."""
    if len(out_shape) == 1:
        layers: list[nn.Module] = []
        if len(in_shape) > 1:
            layers.append(GlobalAvgPool())
        layers += [nn.Linear(in_shape[0], out_shape[0]), nn.BatchNorm1d(out_shape[0]),
                   nn.ReLU(inplace=True), nn.Dropout(dropout)]
        return nn.Sequential(*layers)
    n_spatial = len(out_shape) - 1
    if len(in_shape) != len(out_shape):
        raise ValueError(f'cannot build a conv block from {in_shape} to {out_shape}')
    conv, norm, pool = {1: (nn.Conv1d, nn.BatchNorm1d, nn.AdaptiveMaxPool1d),
                        2: (nn.Conv2d, nn.BatchNorm2d, nn.AdaptiveMaxPool2d),
                        3: (nn.Conv3d, nn.BatchNorm3d, nn.AdaptiveMaxPool3d)}[n_spatial]
    layers = [conv(in_shape[0], out_shape[0], kernel_size, padding=kernel_size // 2, bias=False),
              norm(out_shape[0]), nn.ReLU(inplace=True)]
    if tuple(in_shape[1:]) != tuple(out_shape[1:]):
        layers.append(pool(tuple(out_shape[1:])))
    return nn.Sequential(*layers)


class GlobalAvgPool(nn.Module):
    """Mean over every spatial axis: ``(B, C, ...) -> (B, C)``; a ``(B, C)`` vector passes unchanged."""

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h.flatten(2).mean(-1) if h.dim() > 2 else h


def build_encoders(config: FusionConfig, names: list[str], n_levels: int | None = None,
                   with_head: bool = True) -> nn.ModuleDict:
    return nn.ModuleDict({m: ModalityEncoder(config.modalities[m], config.num_classes, n_levels, with_head)
                          for m in names})
