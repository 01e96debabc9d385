"""
Training the auto-encoders of :mod:`centralnet_ros.representation` with the one loop (:func:`~.trainer.fit`).

Both minimise the L2 reconstruction error against the clean input with Adam and a
cosine-decayed learning rate; the denoising corruption is :func:`pixel_dropout`.
"""
from __future__ import annotations

from typing import Callable, Mapping

from centralnet_ros.representation.bimodal import BimodalCAE, draw_modality_dropout
from centralnet_ros.representation.cae import ConvAutoEncoder, pixel_dropout
from centralnet_ros.training.trainer import fit, make_optimizer
import numpy as np
import torch
import torch.nn.functional as F

__all__ = ['train_cae', 'train_bimodal']


def _shuffled_batches(n: int, batch_size: int, rng: np.random.Generator) -> Callable[[], list[np.ndarray]]:
    return lambda: np.array_split(rng.permutation(n), max(1, n // batch_size))


def _cosine(optimizer, epochs: int):
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(epochs, 1))


def train_cae(model: ConvAutoEncoder, x: np.ndarray, *, epochs: int = 10, batch_size: int = 128,
              lr: float = 2e-3, denoise_p: float | None = None, seed: int = 0,
              log: Callable[[str], None] | None = None) -> list[dict]:
    """
    Train ``model`` in place on ``x`` ``(N, C, H, W)`` with the L2 reconstruction loss.

    ``denoise_p`` (default: the config's) corrupts the input by :func:`pixel_dropout`;
    the target is always the clean input.  Returns one record per epoch (``loss`` = mean
    squared error on the clean target).
    """
    p = model.config.denoise_p if denoise_p is None else denoise_p
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    optimizer = make_optimizer(model.parameters(), lr=lr)

    def step(index):
        clean = torch.from_numpy(np.ascontiguousarray(x[index], dtype=np.float32))   # (B, C, H, W)
        return F.mse_loss(model(pixel_dropout(clean, p, generator=gen)), clean), len(index), {}

    def report(record):
        if log:
            log(f'  CAE {model.input_shape} epoch {record["epoch"]}/{epochs}: mse {record["loss"]:.4f}')

    fitted = fit(model, epochs=epochs, batches=_shuffled_batches(len(x), batch_size, rng), step=step,
                 optimizer=optimizer, scheduler=_cosine(optimizer, epochs), end_of_epoch=report)
    model.eval()
    return fitted.history


def train_bimodal(model: BimodalCAE, x: Mapping[str, np.ndarray], *, epochs: int = 10, batch_size: int = 128,
                  lr: float = 2e-3, denoise_p: float = 0.0, seed: int = 0,
                  log: Callable[[str], None] | None = None) -> list[dict]:
    """
    Train in place on paired arrays ``x[m]`` ``(N, C_m, H_m, W_m)`` with modality dropout.

    Loss: sum over both modalities of the mean squared reconstruction error against the
    clean input (also for the modality that was dropped).
    """
    names = model.modalities
    n = len(x[names[0]])
    for m in names:
        if m not in x or len(x[m]) != n:
            raise ValueError(f'train_bimodal needs paired arrays for {names}; got '
                             f'{ {k: len(v) for k, v in x.items()} }')
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    optimizer = make_optimizer(model.parameters(), lr=lr)

    def step(index):
        clean = {m: torch.from_numpy(np.ascontiguousarray(x[m][index], dtype=np.float32)) for m in names}
        present, _ = draw_modality_dropout(len(index), absent_threshold=model.config.absent_threshold,
                                           generator=gen)
        inputs = {m: (pixel_dropout(clean[m], denoise_p, generator=gen) if present[:, k].any() else None)
                  for k, m in enumerate(names)}
        out = model(inputs, present)
        return sum(F.mse_loss(out.reconstructions[m], clean[m]) for m in names), len(index), {}

    def report(record):
        if log:
            log(f'  bimodal CAE epoch {record["epoch"]}/{epochs}: summed mse {record["loss"]:.4f}')

    fitted = fit(model, epochs=epochs, batches=_shuffled_batches(n, batch_size, rng), step=step,
                 optimizer=optimizer, scheduler=_cosine(optimizer, epochs), end_of_epoch=report)
    model.eval()
    return fitted.history
