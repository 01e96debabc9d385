"""Statistics over seeds: mean +- std and the two-sample z-test the CentralNet paper uses."""
from __future__ import annotations

import math

import numpy as np


def mean_std(values) -> tuple[float, float]:
    v = np.asarray(list(values), dtype=float)
    if v.size == 0:
        return float('nan'), float('nan')
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def two_sample_z_test(a, b) -> tuple[float, float]:
    """
    Return the z statistic and two-sided p-value for mean(a) - mean(b), using the sample variances.

    ``z = (mean_a - mean_b) / sqrt(s_a^2 / n_a + s_b^2 / n_b)``; ``p = 2 (1 - Phi(|z|))``.
    With zero variance on both sides, z is +-inf (p = 0) when the means differ, else 0 (p = 1).
    """
    a, b = np.asarray(list(a), dtype=float), np.asarray(list(b), dtype=float)
    if a.size < 2 or b.size < 2:
        raise ValueError(f'the z-test needs at least 2 runs per side, got {a.size} and {b.size}')
    diff = a.mean() - b.mean()
    se = math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    if se == 0.0:
        return (math.copysign(math.inf, diff), 0.0) if diff != 0 else (0.0, 1.0)
    z = diff / se
    p = math.erfc(abs(z) / math.sqrt(2.0))
    return float(z), float(p)
