"""Percentile bootstrap confidence interval of a mean (per-case metric values → mean with a 95% interval)."""
from __future__ import annotations

import math

import numpy as np

# Resample in chunks so that n_boot × n indices never exceed this many (memory stays in the tens of MB).
_CHUNK_ELEMENTS = 4_000_000


def bootstrap_ci(values, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0) -> tuple[float, float, float]:
    """(mean, lo, hi): the mean of the finite values and its percentile bootstrap (1 − alpha) interval.

    NaN (and infinite) values are left out — a metric undefined on a case does not poison the summary. No finite
    value gives (NaN, NaN, NaN); one value, or values all equal, give a zero-width interval. Deterministic for a seed.
    """
    array = np.asarray(values, dtype=np.float64).ravel()
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    if int(n_boot) < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    finite = array[np.isfinite(array)]
    n = finite.size
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = float(finite.mean())
    if n == 1 or np.all(finite == finite[0]):
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    n_boot = int(n_boot)
    means = np.empty(n_boot, dtype=np.float64)
    step = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, n_boot, step):
        stop = min(n_boot, start + step)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = finite[idx].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2.0, 1.0 - alpha / 2.0])
    return mean, float(lo), float(hi)
