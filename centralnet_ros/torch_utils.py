"""Small torch helpers shared by training and the runtime: device choice and seeding."""
from __future__ import annotations

import logging
import random

import numpy as np
import torch

log = logging.getLogger(__name__)


class DeviceUnavailable(RuntimeError):
    """The requested device cannot be used and no fallback was allowed."""


def resolve_device(spec: str = 'cpu', *, fallback: str = 'cpu') -> torch.device:
    """
    ``'cpu'``, ``'cuda'``, ``'cuda:N'`` or ``'auto'`` -> a usable :class:`torch.device`.

    When CUDA (or GPU N) is requested but absent, ``fallback='cpu'`` logs a clear
    warning and returns the CPU; ``fallback='error'`` raises :class:`DeviceUnavailable`.
    """
    spec = (spec or 'cpu').strip().lower()
    if spec == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if spec == 'cpu':
        return torch.device('cpu')
    if not (spec == 'cuda' or (spec.startswith('cuda:') and spec[5:].isdigit())):
        raise ValueError(f'device must be "cpu", "cuda", "cuda:N" or "auto", got {spec!r}')
    reason = None
    if not torch.cuda.is_available():
        reason = 'CUDA is not available (no GPU, or a CPU-only torch build)'
    elif ':' in spec and int(spec[5:]) >= torch.cuda.device_count():
        reason = f'{spec} requested but only {torch.cuda.device_count()} GPU(s) are visible'
    if reason is None:
        return torch.device(spec)
    if fallback == 'cpu':
        log.warning('device %s unusable: %s; falling back to cpu', spec, reason)
        return torch.device('cpu')
    raise DeviceUnavailable(f'device {spec} unusable: {reason}')


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
