"""
Bimodal convolutional auto-encoder with a shared middle layer (Hsieh 2017).

Each modality keeps its own CAE encoder (three VALID convolutions) and decoder (three
VALID transposed convolutions), initialised from the unimodal CAEs
(:meth:`BimodalCAE.init_from_unimodal` copies every convolution and transposed
convolution).  The two middle layers meet in one shared layer by a sum::

    h_m = flatten(encoder_m(x_m))                         # (B, C3*h3*w3) per modality
    z   = ReLU(b + sum_m  s_m * present_m * W_m h_m)       # (B, shared_dim), shared middle layer
    x^_m = decoder_m(ReLU(V_m z + c_m).view(C3, h3, w3))   # both modalities decoded from z

``W_m`` brings modalities whose middle layers differ in shape (e.g. 32x5x5 for an image,
32x4x4 for a spectrogram) into one space so that they can be summed.

Modality dropout during training (:func:`draw_modality_dropout`), the exact rule
-------------------------------------------------------------------------------
For every training step (one batch):

1. draw ``p ~ Uniform(0, 1)`` once;
2. threshold it: ``p <- 0`` if ``p < tau`` and ``p <- 1`` if ``p > 1 - tau``
   (``tau = absent_threshold``, 0.25 by default), so with probability ``2 tau`` one
   modality is absent from the entire batch;
3. for each sample ``i`` draw ``u_i ~ Uniform(0, 1)``: the first modality is kept iff
   ``u_i < p``, the second iff ``u_i >= p``.  The modalities are therefore kept with
   probabilities ``p`` and ``1 - p``, and never both removed (the two events are
   complementary, which is the only way marginals ``p`` and ``1 - p`` can exclude a sample
   with no modality at all);
4. the present modality's contribution ``W_m h_m`` is multiplied by
   ``s_m = M / (number of present modalities)`` = 2 when the other one is absent (1 when
   both are present, as at evaluation).  With contributions of equal magnitude the sum is
   then exactly the full sum; averaged over the draws, ``E[sum_m s_m present_m W_m h_m]
   = sum_m W_m h_m`` because the distribution of ``p`` is symmetric about 1/2
   (``E[2 p] = 1``).

Both decoders always reconstruct their clean input, also for the absent modality, so the
shared layer learns to rebuild one modality from the other (the report's Figure 9).
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

from centralnet_ros.representation.cae import CAEConfig, ConvAutoEncoder
import torch
from torch import nn
import torch.nn.functional as F

__all__ = ['BimodalCAEConfig', 'BimodalCAE', 'BimodalOutput', 'draw_modality_dropout', 'presence_scale']


@dataclasses.dataclass
class BimodalCAEConfig:
    """Two modalities' CAEs (order matters for the dropout draw), the shared width, ``tau``."""

    modalities: dict[str, CAEConfig]
    shared_dim: int = 256
    absent_threshold: float = 0.25     # tau of the dropout rule (module docstring)

    def __post_init__(self):
        if len(self.modalities) != 2:
            raise ValueError(f'the bimodal CAE takes exactly two modalities, got {list(self.modalities)}')
        if self.shared_dim < 1:
            raise ValueError(f'shared_dim must be positive, got {self.shared_dim}')
        if not 0.0 <= self.absent_threshold < 0.5:
            raise ValueError(f'absent_threshold must be in [0, 0.5), got {self.absent_threshold}')


@dataclasses.dataclass
class BimodalOutput:
    reconstructions: dict[str, torch.Tensor]   # each (B, C_m, H_m, W_m)
    shared: torch.Tensor                       # (B, shared_dim)
    present: torch.Tensor                      # (B, 2) bool


def draw_modality_dropout(batch_size: int, *, absent_threshold: float = 0.25,
                          generator: torch.Generator | None = None) -> tuple[torch.Tensor, float]:
    """One training step's presence mask ``(B, 2)`` bool and its thresholded ``p`` (module docstring)."""
    p = float(torch.rand((), generator=generator))
    if p < absent_threshold:
        p = 0.0
    elif p > 1.0 - absent_threshold:
        p = 1.0
    first = torch.rand(batch_size, generator=generator) < p          # kept with probability p
    return torch.stack([first, ~first], dim=1), p                   # second kept with probability 1 - p


def presence_scale(present: torch.Tensor) -> torch.Tensor:
    """``(B, M)`` bool -> ``(B, M)`` float: ``M / #present`` where present, 0 where absent."""
    present = present.to(torch.float32)
    count = present.sum(dim=1, keepdim=True)
    if bool((count == 0).any()):
        raise ValueError('every sample needs at least one present modality')
    return present * (present.shape[1] / count)


class BimodalCAE(nn.Module):
    """Two CAEs whose middle layers are summed into one shared layer (module docstring)."""

    def __init__(self, config: BimodalCAEConfig):
        super().__init__()
        self.config = config
        self.modalities: list[str] = list(config.modalities)
        self.caes = nn.ModuleDict({m: ConvAutoEncoder(c) for m, c in config.modalities.items()})
        d = config.shared_dim
        self.to_shared = nn.ModuleDict({m: nn.Linear(c.code_size, d, bias=False)
                                        for m, c in config.modalities.items()})
        self.shared_bias = nn.Parameter(torch.zeros(d))
        self.from_shared = nn.ModuleDict({m: nn.Linear(d, c.code_size) for m, c in config.modalities.items()})

    def init_from_unimodal(self, caes: Mapping[str, ConvAutoEncoder]) -> None:
        """Copy each unimodal CAE's convolutions and transposed convolutions."""
        for m in self.modalities:
            if m not in caes:
                raise KeyError(f'no unimodal CAE for modality {m!r} (given: {sorted(caes)})')
            if tuple(caes[m].input_shape) != tuple(self.caes[m].input_shape):
                raise ValueError(f'modality {m!r}: unimodal CAE takes {caes[m].input_shape}, '
                                 f'the bimodal CAE {self.caes[m].input_shape}')
            self.caes[m].load_state_dict(caes[m].state_dict())

    def _present(self, inputs: Mapping[str, torch.Tensor | None], present: torch.Tensor | None) -> torch.Tensor:
        unknown = set(inputs) - set(self.modalities)
        if unknown:
            raise ValueError(f'unknown modality {sorted(unknown)}; this model takes {self.modalities}')
        given = [m for m in self.modalities if inputs.get(m) is not None]
        if not given:
            raise ValueError(f'no input for any of {self.modalities}')
        batch = inputs[given[0]].shape[0]
        mask = torch.tensor([inputs.get(m) is not None for m in self.modalities]).expand(batch, -1)
        if present is not None:
            if tuple(present.shape) != (batch, len(self.modalities)):
                raise ValueError(f'present must be (B={batch}, 2) for modalities {self.modalities}, '
                                 f'got {tuple(present.shape)}')
            mask = mask & present.to(torch.bool).cpu()
        return mask

    def contributions(self, inputs: Mapping[str, torch.Tensor | None]) -> dict[str, torch.Tensor]:
        """``{m: W_m flatten(encoder_m(x_m))}``, each (B, shared_dim), for the given modalities."""
        return {m: self.to_shared[m](self.caes[m].encode(x).flatten(1))
                for m, x in inputs.items() if x is not None}

    def shared(self, inputs: Mapping[str, torch.Tensor | None], present: torch.Tensor | None = None) -> torch.Tensor:
        """Return the shared middle layer (B, shared_dim); a modality left out (or None) is absent."""
        return self._shared(inputs, self._present(inputs, present))

    def _shared(self, inputs, mask: torch.Tensor) -> torch.Tensor:
        scale = presence_scale(mask)                                        # (B, 2)
        contrib = self.contributions({m: x for m, x in inputs.items() if x is not None})
        z = self.shared_bias.expand(mask.shape[0], -1)
        for k, m in enumerate(self.modalities):
            if m in contrib:
                z = z + scale[:, k:k + 1].to(contrib[m].device) * contrib[m]   # (B, d)
        return F.relu(z)

    def decode(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Decode z (B, shared_dim) -> ``{m: (B, C_m, H_m, W_m)}`` reconstructions of both modalities."""
        out = {}
        for m in self.modalities:
            middle = self.config.modalities[m].middle_shape
            h = F.relu(self.from_shared[m](z)).view(z.shape[0], *middle)     # (B, C3, h3, w3)
            out[m] = self.caes[m].decode(h)
        return out

    def forward(self, inputs: Mapping[str, torch.Tensor | None], present: torch.Tensor | None = None) -> BimodalOutput:
        mask = self._present(inputs, present)
        z = self._shared(inputs, mask)
        return BimodalOutput(reconstructions=self.decode(z), shared=z, present=mask)
