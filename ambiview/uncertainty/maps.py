"""Per-pixel maps of how hypotheses disagree, from a stack P (N, H, W) or (N, D, H, W).

P holds per-hypothesis foreground probabilities in [0, 1]; binary masks (bool) are the special case. Where a map needs
a mask, a hypothesis covers a pixel when its probability is strictly above ``threshold`` (default 0.5).

The maps that only depend on how many hypotheses cover a pixel are computed from that count, ``coverage_count``, which
a caller computes once per result and reuses (see ``consensus.consensus_from_count``).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.special import xlogy

from ._arrays import DEFAULT_THRESHOLD, as_stack


def _check_threshold(threshold: float) -> float:
    threshold = float(threshold)
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold must lie in [0, 1), got {threshold:g}")
    return threshold


def coverage_count(P, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Number k of hypotheses covering each pixel (int32, image shape)."""
    stack = as_stack(P, "P")
    threshold = _check_threshold(threshold)
    count = np.zeros(stack.shape[1:], dtype=np.int32)
    for hypothesis in stack:  # one image at a time: no (N, ...) temporary
        count += hypothesis if hypothesis.dtype == bool else hypothesis > threshold
    return count


def coverage_fraction(P, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Share k / N of hypotheses covering each pixel, in [0, 1] (float64)."""
    stack = as_stack(P, "P")
    return coverage_count(stack, threshold) / float(stack.shape[0])


def mean_probability(P) -> np.ndarray:
    """Mean over hypotheses of the per-pixel probability (float64)."""
    stack = as_stack(P, "P")
    total = np.zeros(stack.shape[1:], dtype=np.float64)
    for hypothesis in stack:
        total += hypothesis
    return total / stack.shape[0]


def binary_entropy_of_mean(P) -> np.ndarray:
    """Entropy H(p̄) = −p̄·log₂p̄ − (1 − p̄)·log₂(1 − p̄) of the mean probability, in bits, 0..1 (0·log 0 = 0).

    Total predictive uncertainty: 1 bit where the hypotheses average to 0.5, 0 where all are certain and agree.
    """
    mean = mean_probability(P)
    entropy = -(xlogy(mean, mean) + xlogy(1.0 - mean, 1.0 - mean)) / np.log(2.0)
    return np.clip(entropy, 0.0, 1.0)


def variance_map(P) -> np.ndarray:
    """Population variance (divide by N) over hypotheses of the per-pixel probability, 0..0.25.

    For binary masks this is q·(1 − q) with q = k / N.
    """
    stack = as_stack(P, "P")
    n = stack.shape[0]
    total = np.zeros(stack.shape[1:], dtype=np.float64)
    squares = np.zeros(stack.shape[1:], dtype=np.float64)
    for hypothesis in stack:
        values = hypothesis.astype(np.float64)
        total += values
        squares += values * values
    mean = total / n
    return np.clip(squares / n - mean * mean, 0.0, 0.25)


def disagreement_from_count(count: np.ndarray, n: int) -> np.ndarray:
    """Pairwise disagreement 2·k·(N − k) / (N·(N − 1)) from a coverage count; zeros when N < 2."""
    k = np.asarray(count, dtype=np.float64)
    if n < 2:
        return np.zeros_like(k)
    return 2.0 * k * (n - k) / (n * (n - 1.0))


def pairwise_disagreement(P, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Probability that two different hypotheses, drawn without replacement, disagree on the pixel, 0..1.

    With k of N hypotheses covering the pixel this is 2·k·(N − k) / (N·(N − 1)): exactly the fraction of distinct
    hypothesis pairs that disagree. (Drawing with replacement would give 2·q·(1 − q), q = k / N, which never reaches 1
    and counts a hypothesis as agreeing with itself.) Zero everywhere for a single hypothesis.
    """
    stack = as_stack(P, "P")
    return disagreement_from_count(coverage_count(stack, threshold), stack.shape[0])


#: The per-pixel measures offered in the UI's heatmap picker: key → (label with unit and range, function of P).
MEASURES: dict[str, tuple[str, Callable[..., np.ndarray]]] = {
    "disagreement": ("Pairwise disagreement (share of pairs, 0–1)", pairwise_disagreement),
    "entropy": ("Entropy of the mean probability (bits, 0–1)", binary_entropy_of_mean),
    "variance": ("Variance of the probability (0–0.25)", variance_map),
    "coverage": ("Share of hypotheses covering (0–1)", coverage_fraction),
    "mean": ("Mean probability (0–1)", mean_probability),
}
