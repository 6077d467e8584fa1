"""Evaluation metrics for a set of sampled segmentations S (N masks) against a set of annotations Y (M masks).

Sources (formulas only; no code was copied):

- GED, the squared generalised energy distance with d = 1 − IoU: Kohl et al., "A Probabilistic U-Net for Segmentation
  of Ambiguous Images", NeurIPS 2018.
- NCC between the sample-variance map and the sample-vs-annotation cross-entropy maps: Baumgartner et al., "PHiSeg:
  Capturing Uncertainty in Medical Image Segmentation", MICCAI 2019.
- HM-IoU, Hungarian-matched IoU after tiling both sets to a common size: as used, e.g., by Zhang et al., "PixelSeg"
  (ACM MM 2022) and Gao et al., "Modeling Multimodal Aleatoric Uncertainty in Segmentation with Mixture of Stochastic
  Experts" (MoSE, ICLR 2023).
- Collective Insight (combined sensitivity, maximum Dice matching, diversity agreement): Rahman et al., "Ambiguous
  Medical Image Segmentation using Diffusion Models" (CIMD), CVPR 2023.

Conventions shared by all functions: inputs are stacks (N, H, W) or (N, D, H, W); bool masks are used as they are,
float probabilities become masks strictly above 0.5 (except in ``soft_dice`` and ``ncc``, which use the probabilities).
IoU and Dice of two empty masks are 1; of an empty and a non-empty mask 0.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.optimize import linear_sum_assignment, linprog

from ._arrays import as_masks, as_stack, same_image_shape

#: Largest tiled size lcm(N, M) solved by explicit Hungarian matching; above it the equivalent transportation
#: problem is solved instead (same optimum, far smaller).
HUNGARIAN_MAX_SIZE = 1024

# Counts up to 2**24 are exact in float32; larger masks are multiplied in float64.
_FLOAT32_EXACT = 2**24


def _flat(masks: np.ndarray) -> np.ndarray:
    """(N, P) float matrix of 0/1 for counting overlaps with one BLAS product."""
    pixels = int(np.prod(masks.shape[1:]))
    dtype = np.float32 if pixels < _FLOAT32_EXACT else np.float64
    return masks.reshape(masks.shape[0], pixels).astype(dtype)


def _overlaps(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intersections (len(a), len(b)) and the two foreground sizes, as float64."""
    fa = _flat(a)
    fb = fa if b is a else _flat(b)
    inter = (fa @ fb.T).astype(np.float64)
    return inter, fa.sum(axis=1, dtype=np.float64), fb.sum(axis=1, dtype=np.float64)


def _masks_pair(a, b, name_a: str, name_b: str) -> tuple[np.ndarray, np.ndarray]:
    ma = as_masks(a, name_a)
    mb = as_masks(b, name_b)
    same_image_shape(ma, mb, name_a, name_b)
    return ma, mb


def _iou_from(inter: np.ndarray, size_a: np.ndarray, size_b: np.ndarray) -> np.ndarray:
    union = size_a[:, None] + size_b[None, :] - inter
    out = np.ones_like(inter)
    np.divide(inter, union, out=out, where=union > 0)
    return out


def _dice_from(inter: np.ndarray, size_a: np.ndarray, size_b: np.ndarray) -> np.ndarray:
    total = size_a[:, None] + size_b[None, :]
    out = np.ones_like(inter)
    np.divide(2.0 * inter, total, out=out, where=total > 0)
    return out


def iou_matrix(a, b) -> np.ndarray:
    """IoU of every mask of ``a`` with every mask of ``b``: shape (len(a), len(b)), float64.

    IoU(∅, ∅) = 1 and IoU(∅, non-empty) = 0. One matrix product on the flattened masks.
    """
    ma, mb = _masks_pair(a, b, "a", "b")
    if a is b:
        mb = ma
    return _iou_from(*_overlaps(ma, mb))


def dice_matrix(a, b) -> np.ndarray:
    """Dice of every mask of ``a`` with every mask of ``b`` (len(a), len(b)); Dice(∅, ∅) = 1."""
    ma, mb = _masks_pair(a, b, "a", "b")
    if a is b:
        mb = ma
    return _dice_from(*_overlaps(ma, mb))


def ged(samples, annots) -> float:
    """Squared generalised energy distance 2·E[d(s, y)] − E[d(s, s′)] − E[d(y, y′)] with d = 1 − IoU (Kohl 2018).

    Expectations run over all ordered pairs, self-pairs included (their distance is 0), as in the Probabilistic U-Net
    evaluation. 0 for identical sets; at most 2.
    """
    s, y = _masks_pair(samples, annots, "samples", "annots")
    d_sy = 1.0 - _iou_from(*_overlaps(s, y))
    d_ss = 1.0 - _iou_from(*_overlaps(s, s))
    d_yy = 1.0 - _iou_from(*_overlaps(y, y))
    return float(2.0 * d_sy.mean() - d_ss.mean() - d_yy.mean())


def rater_spread(annots) -> float:
    """δ: the raters' mean 1 − IoU over distinct pairs (self-pairs left out); NaN for fewer than 2 raters.

    A model's `diversity` is over distinct pairs too, so the two compare directly (the `ref-raters` row's diversity
    is lower: its copies of one rater are distinct pairs at distance 0).
    """
    y = as_masks(as_stack(annots, "annots"))
    m = y.shape[0]
    if m < 2:
        return math.nan
    d_yy = 1.0 - _iou_from(*_overlaps(y, y))
    return float(d_yy.sum() / (m * (m - 1)))  # self-pairs are 0, so the sum runs over distinct pairs


def rater_sampler_ged(annots, n: int) -> float:
    """Expected GED of a model that draws its n hypotheses exactly as the raters draw their masks.

    If the raters' M masks and the model's n samples are all independent draws from one population with mean
    pairwise distance δ (distinct draws), then E[GED] = 2δ − δ(n − 1)/n − δ(M − 1)/M = δ(1/n + 1/M), and
    `rater_spread` estimates δ without bias.  A model-free floor to read a model's GED against: unlike the consensus
    repeated, this reference has not seen the annotations it is scored on.  NaN for M < 2.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    m = as_stack(annots, "annots").shape[0]
    return rater_spread(annots) * (1.0 / n + 1.0 / m)


def hm_iou(samples, annots) -> float:
    """Hungarian-matched IoU: tile both sets to L = lcm(N, M), match with cost 1 − IoU, mean IoU of the matched pairs.

    For L ≤ ``HUNGARIAN_MAX_SIZE`` this is ``scipy.optimize.linear_sum_assignment`` on the tiled (L, L) matrix. Larger
    L (coprime large N and M) solve the equivalent transportation problem — each sample carries mass 1/N, each
    annotation 1/M — whose optimum equals the tiled assignment's mean (the transportation polytope has integral
    vertices), at the cost of an N·M linear programme instead of an L² matrix.
    """
    s, y = _masks_pair(samples, annots, "samples", "annots")
    iou = _iou_from(*_overlaps(s, y))
    n, m = iou.shape
    size = math.lcm(n, m)
    if size <= HUNGARIAN_MAX_SIZE:
        return _hm_iou_hungarian(iou, size)
    return _hm_iou_transport(iou)


def _hm_iou_hungarian(iou: np.ndarray, size: int) -> float:
    n, m = iou.shape
    tiled = np.tile(iou, (size // n, size // m))
    rows, cols = linear_sum_assignment(1.0 - tiled)
    return float(tiled[rows, cols].mean())


def _hm_iou_transport(iou: np.ndarray) -> float:
    n, m = iou.shape
    # Variables x[i, j] (row-major): mass of sample i matched to annotation j.
    a_rows = np.kron(np.eye(n), np.ones((1, m)))
    a_cols = np.kron(np.ones((1, n)), np.eye(m))
    result = linprog(
        -iou.ravel(),
        A_eq=np.vstack([a_rows, a_cols]),
        b_eq=np.concatenate([np.full(n, 1.0 / n), np.full(m, 1.0 / m)]),
        bounds=(0, None),
        method="highs",
    )
    if not result.success:  # cannot happen for a balanced transportation problem; fail loudly if it does
        raise RuntimeError(f"HM-IoU transportation problem failed: {result.message}")
    return float(-result.fun)


def soft_dice(sample_probs_or_masks, annots, thresholds=(0.1, 0.3, 0.5, 0.7, 0.9)) -> float:
    """Mean over τ of Dice(mean of samples > τ, mean of annotations > τ); Dice(∅, ∅) = 1.

    Samples may be probabilities (their mean is taken as they are) or masks; annotations likewise.
    """
    s = as_stack(sample_probs_or_masks, "samples")
    y = as_stack(annots, "annots")
    same_image_shape(s, y, "samples", "annots")
    taus = np.asarray(tuple(thresholds), dtype=np.float64)
    if taus.size == 0 or np.any((taus < 0) | (taus >= 1)):
        raise ValueError(f"thresholds must be a non-empty list of values in [0, 1), got {tuple(thresholds)}")
    mean_s = s.mean(axis=0, dtype=np.float64).ravel()
    mean_y = y.mean(axis=0, dtype=np.float64).ravel()
    scores = []
    for tau in taus:
        a = mean_s > tau
        b = mean_y > tau
        total = int(a.sum()) + int(b.sum())
        scores.append(1.0 if total == 0 else 2.0 * int(np.count_nonzero(a & b)) / total)
    return float(np.mean(scores))


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of two flat float64 arrays; NaN when either is constant (to rounding)."""
    dx = x - x.mean()
    dy = y - y.mean()
    sx = math.sqrt(float(dx @ dx))
    sy = math.sqrt(float(dy @ dy))
    # Constant maps pick up ~1e-16 noise from the logarithms; treat that as zero variance.
    tol = 1e-12 * math.sqrt(x.size)
    if sx <= tol * (1.0 + float(np.abs(x).max())) or sy <= tol * (1.0 + float(np.abs(y).max())):
        return math.nan
    return float(np.clip((dx @ dy) / (sx * sy), -1.0, 1.0))


def ncc(samples, annots, eps: float = 1e-8) -> float:
    """PHiSeg's NCC (Baumgartner 2019): how well the samples' spread predicts where they are wrong.

    With CE(s; t) = −[t·log(s + ε) + (1 − t)·log(1 − s + ε)] per pixel (two classes), E_ss = mean over samples of
    CE(sample; target = sample mean) and E_sy[j] = mean over samples of CE(sample; target = annotation j);
    NCC = mean over annotations j of the Pearson correlation of E_ss and E_sy[j] over the pixels. Samples may be
    probabilities, used as they are (PHiSeg's evaluation passes its softmax outputs), or masks (0/1).

    Undefined cases give NaN, never an exception or a warning: when E_ss is constant (for example all samples are the
    same binary mask) the result is NaN; an annotation whose E_sy[j] is constant is left out of the mean, and NaN is
    returned if that leaves none.
    """
    s = as_stack(samples, "samples")
    y = as_stack(annots, "annots")
    same_image_shape(s, y, "samples", "annots")
    n = s.shape[0]
    log_fg = np.zeros(s.shape[1:], dtype=np.float64)  # mean over samples of log(s + ε)
    log_bg = np.zeros(s.shape[1:], dtype=np.float64)  # mean over samples of log(1 − s + ε)
    total = np.zeros(s.shape[1:], dtype=np.float64)
    for sample in s:
        p = sample.astype(np.float64)
        log_fg += np.log(p + eps)
        log_bg += np.log(1.0 - p + eps)
        total += p
    log_fg /= n
    log_bg /= n
    mean = total / n
    # CE is linear in the target, so the mean over samples only needs the two mean logarithms.
    e_ss = -(mean * log_fg + (1.0 - mean) * log_bg).ravel()
    values = []
    for annotation in y:
        t = annotation.astype(np.float64)
        e_sy = -(t * log_fg + (1.0 - t) * log_bg).ravel()
        values.append(_pearson(e_ss, e_sy))
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def _pairwise_variances(masks: np.ndarray) -> np.ndarray:
    """1 − Dice over the distinct pairs i < j of one set (empty for a single mask)."""
    dice = _dice_from(*_overlaps(masks, masks))
    upper = np.triu_indices(masks.shape[0], k=1)
    return 1.0 - dice[upper]


def collective_insight(samples, annots) -> dict:
    """Collective Insight score of CIMD (Rahman et al., CVPR 2023) and its three parts.

    - combined_sensitivity S_c = TP / (TP + FN) of the union of samples against the union of annotations
      (1 when the annotations' union is empty: there is nothing to miss; false positives are D_max's business).
    - max_dice D_max: for each annotation the best Dice over the samples, averaged over annotations.
    - diversity_agreement D_a = 1 − (|ΔV_max| + |ΔV_min|)/2, where V is the set of pairwise variances of one set,
      taken (our choice, as in the Dice-based variant of public CIMD re-implementations) as 1 − Dice over the distinct
      pairs i < j; V_max, V_min are its largest and smallest values and Δ is samples minus annotations. A set with a
      single mask has no pairs and V_max = V_min = 0. D_a lies in [0, 1].
    - ci = 3·S_c·D_max·D_a / (S_c·D_max + D_max·D_a + D_a·S_c), the harmonic mean of the three; 0 when any part is 0.
    """
    s, y = _masks_pair(samples, annots, "samples", "annots")
    union_s = s.any(axis=0)
    union_y = y.any(axis=0)
    positives = int(np.count_nonzero(union_y))
    sens = 1.0 if positives == 0 else np.count_nonzero(union_s & union_y) / positives

    dice_sy = _dice_from(*_overlaps(s, y))  # (N, M)
    max_dice = float(dice_sy.max(axis=0).mean())

    v_s = _pairwise_variances(s)
    v_y = _pairwise_variances(y)
    vs_max, vs_min = (float(v_s.max()), float(v_s.min())) if v_s.size else (0.0, 0.0)
    vy_max, vy_min = (float(v_y.max()), float(v_y.min())) if v_y.size else (0.0, 0.0)
    agreement = 1.0 - (abs(vs_max - vy_max) + abs(vs_min - vy_min)) / 2.0

    denominator = sens * max_dice + max_dice * agreement + agreement * sens
    ci = 0.0 if denominator == 0 else 3.0 * sens * max_dice * agreement / denominator
    return {
        "ci": float(ci),
        "combined_sensitivity": float(sens),
        "max_dice": max_dice,
        "diversity_agreement": float(agreement),
    }


def diversity(samples) -> float:
    """Mean 1 − IoU over the distinct pairs of samples (0 for fewer than two): how different the hypotheses are."""
    s = as_masks(samples, "samples")
    if s.shape[0] < 2:
        return 0.0
    iou = _iou_from(*_overlaps(s, s))
    upper = np.triu_indices(s.shape[0], k=1)
    return float((1.0 - iou[upper]).mean())
