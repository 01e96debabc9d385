"""
Per-modality encoders built from a config: a stack of levels plus a classifier head.

Kinds (all share one contract, so every fusion method can tap every level):

=========  =================================  ===========================================
kind       input (without batch)              one level
=========  =================================  ===========================================
``mlp``    any shape, flattened               Linear -> BatchNorm1d -> ReLU -> Dropout
``cnn1d``  (C, T)  e.g. skeleton, MFCC frames Conv1d -> BatchNorm -> ReLU -> MaxPool
``cnn2d``  (C, H, W) e.g. image, spectrogram  Conv2d -> BatchNorm -> ReLU -> MaxPool
``cnn3d``  (C, T, H, W) e.g. lip video        Conv3d -> BatchNorm -> ReLU -> MaxPool
``tcn``    (C, T)  e.g. skeleton sequences    residual block of two dilated Conv1d -> BN
                                              (ReLU, Dropout between) + skip -> ReLU -> MaxPool
=========  =================================  ===========================================

The head (unimodal prediction) is global average pooling over the remaining
spatial/temporal axes, dropout, and a linear classifier.
"""
from __future__ import annotations

import math

from centralnet_ros.model_config import ENCODER_KINDS, EncoderConfig  # noqa: F401 (re-exported)
import torch
from torch import nn

_CONV = {'cnn1d': (nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d, 1),
         'cnn2d': (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, 2),
         'cnn3d': (nn.Conv3d, nn.BatchNorm3d, nn.MaxPool3d, 3)}


class ModalityEncoder(nn.Module):
    """levels[i] maps the level i-1 representation to level i; head classifies the last one."""

    def __init__(self, config: EncoderConfig, num_classes: int, n_levels: int | None = None,
                 with_head: bool = True):
        super().__init__()
        self.config = config
        self.input_shape = tuple(config.input_shape)
        widths = config.widths[: n_levels or len(config.widths)]
        self.levels = nn.ModuleList()
        if config.kind == 'mlp':
            in_dim = math.prod(self.input_shape)   # plain ints: builds on the meta device too
            for i, w in enumerate(widths):
                layers: list[nn.Module] = [nn.Flatten()] if i == 0 else []
                layers += [nn.Linear(in_dim, w)]
                layers += [nn.BatchNorm1d(w)] if config.batch_norm else []
                layers += [nn.ReLU(inplace=True), nn.Dropout(config.dropout)]
                self.levels.append(nn.Sequential(*layers))
                in_dim = w
            if not widths:                          # no hidden level: the flattened input is the only level
                self.levels.append(nn.Flatten())
        elif config.kind == 'tcn':
            in_ch = self.input_shape[0]
            for i, w in enumerate(widths):
                dilation = config.dilations[i] if config.dilations else 2 ** i
                self.levels.append(TemporalBlock(in_ch, w, config.kernel_size, dilation, config.dropout,
                                                 config.pool[i] if config.pool else 1, config.batch_norm))
                in_ch = w
        else:
            conv, norm, pool, n_axes = _CONV[config.kind]
            in_ch = self.input_shape[0]
            for i, w in enumerate(widths):
                factor = config.pool[i] if config.pool else 2
                kernel = [factor] * n_axes
                if config.kind == 'cnn3d':
                    kernel[0] = config.temporal_pool[i] if config.temporal_pool else 1
                layers = [conv(in_ch, w, config.kernel_size, padding=config.kernel_size // 2,
                               bias=not config.batch_norm)]
                layers += [norm(w)] if config.batch_norm else []
                layers += [nn.ReLU(inplace=True)]
                if any(k > 1 for k in kernel):
                    layers += [pool(tuple(kernel), ceil_mode=True)]
                self.levels.append(nn.Sequential(*layers))
                in_ch = w
        with torch.no_grad():
            was_training = self.training
            self.eval()
            shapes = [tuple(h.shape[1:]) for h in self.forward_levels(torch.zeros(1, *self.input_shape))]
            self.train(was_training)
        self.level_shapes: list[tuple[int, ...]] = shapes
        # methods without unimodal predictions (early, GMU, ModDrop) carry no dead head
        self.head = ClassifierHead(shapes[-1][0], num_classes, config.head_dropout) if with_head else None

    def forward_levels(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x: (B, *input_shape) -> one tensor per level, (B, C_i, *spatial_i)."""
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f'expected input of shape (B, {", ".join(map(str, self.input_shape))}), '
                             f'got {tuple(x.shape)}')
        out = []
        for level in self.levels:
            x = level(x)
            out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.head is None:
            raise RuntimeError('this encoder was built without a classifier head')
        return self.head(self.forward_levels(x)[-1])  # (B, num_classes)


class TemporalBlock(nn.Module):
    """
    One tcn level: a residual block of two dilated temporal convolutions.

    x -> Conv1d (dilated) -> BN -> ReLU -> Dropout -> Conv1d (dilated) -> BN, plus x (through a 1x1
    Conv1d -> BN when the width changes), -> ReLU -> MaxPool1d (when ``pool`` > 1).
    """

    def __init__(self, in_ch: int, width: int, kernel_size: int, dilation: int, dropout: float, pool: int,
                 batch_norm: bool = True):
        super().__init__()
        pad = dilation * (kernel_size // 2)

        def norm() -> nn.Module:
            return nn.BatchNorm1d(width) if batch_norm else nn.Identity()
        self.body = nn.Sequential(
            nn.Conv1d(in_ch, width, kernel_size, padding=pad, dilation=dilation, bias=not batch_norm), norm(),
            nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Conv1d(width, width, kernel_size, padding=pad, dilation=dilation, bias=not batch_norm), norm())
        self.skip = (nn.Identity() if in_ch == width else
                     nn.Sequential(nn.Conv1d(in_ch, width, 1, bias=not batch_norm), norm()))
        self.pool = nn.MaxPool1d(pool, ceil_mode=True) if pool > 1 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(torch.relu(self.body(x) + self.skip(x)))


class ClassifierHead(nn.Module):
    """Global average pooling over any spatial axes, dropout, linear."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if h.dim() > 2:
            h = h.flatten(2).mean(-1)  # (B, C, *S) -> (B, C)
        return self.fc(self.dropout(h))


def build_encoder(config: EncoderConfig, num_classes: int) -> ModalityEncoder:
    return ModalityEncoder(config, num_classes)
