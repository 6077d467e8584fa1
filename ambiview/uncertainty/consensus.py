"""Agreement-level consensus, confidence bands and STAPLE over a stack of hypotheses.

Consensus at level ℓ keeps the pixels covered by at least a share ℓ of the N hypotheses. Counting is exact in
integers: k ≥ ceil(ℓ·N − 1e-9), so 50% of 4 is k ≥ 2 and 55% of 100 is k ≥ 55 although 0.55·100 is
55.00000000000001 in floating point. For a slider, compute ``coverage_count`` once per result and call
``consensus_from_count`` per move (one comparison per pixel).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ._arrays import DEFAULT_THRESHOLD, as_masks, as_stack, check_fraction
from .maps import coverage_count, coverage_fraction


def required_count(n: int, level: float) -> int:
    """Smallest number of covering hypotheses (out of n) that reaches the agreement share ``level`` ∈ (0, 1]."""
    level = check_fraction(level, "level")
    return max(1, math.ceil(level * n - 1e-9))


def consensus_from_count(count: np.ndarray, n: int, level: float) -> np.ndarray:
    """Consensus mask from a precomputed coverage count (see ``maps.coverage_count``) of n hypotheses."""
    return np.asarray(count) >= required_count(n, level)


def consensus_mask(P, level: float, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Pixels covered by at least a share ``level`` ∈ (0, 1] of the hypotheses (bool, image shape)."""
    stack = as_stack(P, "P")
    return consensus_from_count(coverage_count(stack, threshold), stack.shape[0], level)


def confidence_band(P, inner: float = 0.9, outer: float = 0.1,
                    threshold: float = DEFAULT_THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """(inner_mask, outer_mask): consensus at the strict level ``inner`` and the lenient level ``outer``.

    The inner mask lies inside the outer one; the ring between them is where the hypotheses are unsure.
    """
    inner = check_fraction(inner, "inner")
    outer = check_fraction(outer, "outer")
    if outer > inner:
        raise ValueError(f"outer level ({outer:g}) must not exceed inner level ({inner:g})")
    stack = as_stack(P, "P")
    count = coverage_count(stack, threshold)
    n = stack.shape[0]
    return consensus_from_count(count, n, inner), consensus_from_count(count, n, outer)


@dataclass(frozen=True)
class StapleResult:
    """STAPLE's estimate of the hidden true mask and of each input's performance.

    probability: per-pixel probability of foreground (float64, image shape); mask: probability > 0.5.
    sensitivity, specificity: (N,) per input, NaN where undefined (no foreground, or no background, to find).
    note: None after a normal STAPLE run, otherwise why a closed-form answer was returned instead.
    """

    probability: np.ndarray
    mask: np.ndarray
    sensitivity: np.ndarray
    specificity: np.ndarray
    note: str | None = None


def staple(masks, max_iterations: int = 100, confidence_weight: float = 1.0,
           threshold: float = DEFAULT_THRESHOLD) -> StapleResult:
    """STAPLE (Warfield et al., IEEE TMI 2004) by SimpleITK's ``STAPLEImageFilter`` on N masks (probabilities are
    thresholded first).

    The filter estimates the prior from the inputs' mean foreground share and returns one sensitivity and one
    specificity per input (``GetSensitivity``/``GetSpecificity``, in input order). Degenerate inputs, where ITK's
    EM divides 0 by 0, are answered in closed form: identical inputs (all empty included) give that mask, with
    sensitivity 1 (NaN if the mask is empty) and specificity 1 (NaN if it fills the image); any other input whose
    estimate comes back NaN falls back to the share of inputs covering each pixel, with NaN performances.
    """
    stack = as_masks(masks, "masks", threshold=threshold)
    n = stack.shape[0]
    first = stack[0]
    if all(np.array_equal(first, other) for other in stack[1:]):
        sens = 1.0 if first.any() else math.nan
        spec = 1.0 if not first.all() else math.nan
        return StapleResult(first.astype(np.float64), first.copy(), np.full(n, sens), np.full(n, spec),
                            note="identical inputs")
    if max_iterations < 1:
        raise ValueError(f"max_iterations must be at least 1, got {max_iterations}")
    flt = sitk.STAPLEImageFilter()
    flt.SetForegroundValue(1.0)
    flt.SetMaximumIterations(int(max_iterations))
    flt.SetConfidenceWeight(float(confidence_weight))
    estimate = flt.Execute([sitk.GetImageFromArray(m.astype(np.uint8)) for m in stack])
    probability = sitk.GetArrayFromImage(estimate).astype(np.float64)
    if not np.all(np.isfinite(probability)):
        share = coverage_fraction(stack)
        return StapleResult(share, share > 0.5, np.full(n, math.nan), np.full(n, math.nan),
                            note="STAPLE did not converge; share of inputs covering each pixel returned")
    probability = np.clip(probability, 0.0, 1.0)
    return StapleResult(probability, probability > 0.5,
                        np.asarray(flt.GetSensitivity(), dtype=np.float64),
                        np.asarray(flt.GetSpecificity(), dtype=np.float64))
