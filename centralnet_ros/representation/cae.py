"""
Convolutional auto-encoder (CAE) of the internship report (Hsieh 2017).

Three convolutions encode, three transposed convolutions decode; every layer uses
VALID padding (no padding), and the output of the third convolution -- the middle of
the network -- is the learned representation.  Training minimises the L2
reconstruction error end to end; the denoising variant corrupts the input by pixel
dropout (each input value set to 0 with probability ``denoise_p``, no rescaling) and
still reconstructs the clean input.

Exact shape restoration
-----------------------
A VALID convolution with kernel ``k`` and stride ``s`` maps a size ``n`` to
``(n - k) // s + 1``; the matching VALID transposed convolution maps ``m`` back to
``(m - 1) * s + k``.  The two are inverse exactly when ``(n - k) % s == 0`` on every
axis, which :class:`CAEConfig` checks layer by layer (no ``output_padding`` tricks).
The default layout (:func:`valid_layout`) is, per spatial axis of size ``n``:

====== ======= ====== ================================================
layer  kernel  stride  why
====== ======= ====== ================================================
conv1  5       1       any ``n >= 5`` works
conv2  4 or 3  2       4 if the size reaching it is even, 3 if odd
conv3  4 or 3  2       same rule
====== ======= ====== ================================================

which gives, for the report's sizes (``C x H x W -> middle``, with channels 16-32-32):

* MNIST / AV-MNIST image ``1 x 28 x 28``: 24x24 -> 11x11 -> ``32 x 5 x 5``
* AV-MNIST log-mel spectrogram ``1 x 24 x 24``: 20x20 -> 9x9 -> ``32 x 4 x 4``
* AVLetters lip frame ``1 x 60 x 80``: 56x76 -> 27x37 -> ``32 x 13 x 18``
* AVLetters MFCC map ``1 x 26 x 24``: 22x20 -> 10x9 -> ``32 x 4 x 4`` (conv3 kernel 4x3)

(with 32 channels the lip frame's middle layer, 7488 values, is larger than the frame;
pass fewer ``channels`` for a bottleneck there, or rely on the denoising objective.)
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

__all__ = ['CAEConfig', 'ConvAutoEncoder', 'valid_layout', 'conv_out_size', 'pixel_dropout',
           'encode_array', 'REPORT_SHAPES']

# the report's input sizes (channels first) for which the CAE must restore the shape exactly
REPORT_SHAPES: dict[str, tuple[int, int, int]] = {
    'mnist_image': (1, 28, 28),
    'avmnist_spectrogram': (1, 24, 24),
    'avletters_lip_frame': (1, 60, 80),
    'avletters_mfcc': (1, 26, 24),
}


def conv_out_size(n: int, kernel: int, stride: int) -> int:
    """Output size of a VALID convolution on an axis of size ``n``."""
    return (n - kernel) // stride + 1


def valid_layout(height: int, width: int) -> tuple[list[list[int]], list[list[int]]]:
    """
    Return default ``(kernels, strides)`` (three ``[kh, kw]`` each) restoring ``height x width`` exactly.

    conv1: kernel 5, stride 1; conv2 and conv3: stride 2 and, per axis, kernel 4 when the
    incoming size is even and 3 when it is odd, so ``(n - k) % 2 == 0``.
    """
    kernels, strides = [[5, 5]], [[1, 1]]
    sizes = [conv_out_size(height, 5, 1), conv_out_size(width, 5, 1)]
    for _ in range(2):
        k = [4 if n % 2 == 0 else 3 for n in sizes]
        kernels.append(k)
        strides.append([2, 2])
        sizes = [conv_out_size(n, kk, 2) for n, kk in zip(sizes, k)]
    return kernels, strides


@dataclasses.dataclass
class CAEConfig:
    """
    A CAE for ``input_shape = [C, H, W]``.

    ``kernels`` / ``strides``: one ``[kh, kw]`` per layer (three); ``None`` uses
    :func:`valid_layout`.  ``denoise_p``: probability of zeroing each input value during
    training (0 = plain CAE).
    """

    input_shape: list[int]
    channels: list[int] = dataclasses.field(default_factory=lambda: [16, 32, 32])
    kernels: list[list[int]] | None = None
    strides: list[list[int]] | None = None
    denoise_p: float = 0.0

    def __post_init__(self):
        if len(self.input_shape) != 3 or any(int(v) < 1 for v in self.input_shape):
            raise ValueError(f'CAE input_shape must be [C, H, W] of positive ints, got {list(self.input_shape)}')
        self.input_shape = [int(v) for v in self.input_shape]
        if len(self.channels) != 3 or any(c < 1 for c in self.channels):
            raise ValueError(f'CAE channels must be three positive ints (one per conv layer), got {self.channels}')
        if not 0.0 <= self.denoise_p < 1.0:
            raise ValueError(f'denoise_p must be in [0, 1), got {self.denoise_p}')
        default_k, default_s = valid_layout(*self.input_shape[1:])
        self.kernels = [list(k) for k in (self.kernels or default_k)]
        self.strides = [list(s) for s in (self.strides or default_s)]
        for name, value in (('kernels', self.kernels), ('strides', self.strides)):
            if len(value) != 3 or any(len(v) != 2 or min(v) < 1 for v in value):
                raise ValueError(f'CAE {name} must be three [h, w] pairs of positive ints, got {value}')
        sizes = list(self.input_shape[1:])
        for i, (k, s) in enumerate(zip(self.kernels, self.strides), start=1):
            for axis, (n, kk, ss) in enumerate(zip(sizes, k, s)):
                name = 'HW'[axis]
                if n < kk:
                    raise ValueError(f'CAE layer {i}: {name} size {n} is smaller than the kernel {kk} '
                                     f'(input_shape {self.input_shape})')
                if (n - kk) % ss:
                    raise ValueError(
                        f'CAE layer {i}: {name} size {n} with kernel {kk} and stride {ss} is not exactly '
                        f'invertible by a VALID transposed convolution ((n - k) % s = {(n - kk) % ss}, '
                        f'expected 0); pick a kernel of the other parity or leave kernels=None')
            sizes = [conv_out_size(n, kk, ss) for n, kk, ss in zip(sizes, k, s)]
        self._middle = (self.channels[-1], *sizes)

    @property
    def middle_shape(self) -> tuple[int, int, int]:
        """Shape ``(C3, h3, w3)`` of the representation (output of the third convolution)."""
        return self._middle

    @property
    def code_size(self) -> int:
        c, h, w = self._middle
        return c * h * w


class ConvAutoEncoder(nn.Module):
    """``encode``: 3 x (VALID conv -> ReLU); ``decode``: 3 VALID transposed convs (ReLU, ReLU, linear)."""

    def __init__(self, config: CAEConfig):
        super().__init__()
        self.config = config
        self.input_shape = tuple(config.input_shape)
        chans = [config.input_shape[0], *config.channels]
        self.encoder = nn.ModuleList(
            nn.Conv2d(chans[i], chans[i + 1], tuple(config.kernels[i]), stride=tuple(config.strides[i]))
            for i in range(3))
        self.decoder = nn.ModuleList(
            nn.ConvTranspose2d(chans[i + 1], chans[i], tuple(config.kernels[i]), stride=tuple(config.strides[i]))
            for i in reversed(range(3)))

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f'CAE expects input of shape (B, {", ".join(map(str, self.input_shape))}), '
                             f'got {tuple(x.shape)}')

    def encode_levels(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x: (B, C, H, W) -> the three conv activations; the last is the representation."""
        self._check(x)
        out = []
        for conv in self.encoder:
            x = F.relu(conv(x))
            out.append(x)
        return out

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) -> middle representation (B, C3, h3, w3)."""
        return self.encode_levels(x)[-1]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, C3, h3, w3) -> reconstruction (B, C, H, W) (the last layer is linear)."""
        for i, deconv in enumerate(self.decoder):
            z = deconv(z)
            if i < len(self.decoder) - 1:
                z = F.relu(z)
        return z

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) -> reconstruction of the same shape."""
        return self.decode(self.encode(x))


def pixel_dropout(x: torch.Tensor, p: float, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Denoising corruption: each value of ``x`` set to 0 with probability ``p`` (no rescaling)."""
    if p <= 0.0:
        return x
    keep = torch.rand(x.shape, generator=generator, device=x.device) >= p
    return x * keep.to(x.dtype)


@torch.inference_mode()
def encode_array(fn: Callable[[torch.Tensor], torch.Tensor], x: np.ndarray, *,
                 batch_size: int = 512) -> np.ndarray:
    """Apply ``fn`` ((B, ...) tensor -> (B, ...) tensor) to ``x`` in batches; flattened ``(N, D)`` float32."""
    out = []
    for start in range(0, len(x), batch_size):
        xb = torch.from_numpy(np.ascontiguousarray(x[start:start + batch_size], dtype=np.float32))
        out.append(fn(xb).reshape(len(xb), -1).float().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)
