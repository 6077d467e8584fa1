"""Overlap and surface-distance metrics of one predicted mask against one reference mask, in 2D or 3D.

Dice, Jaccard, the 95 % Hausdorff distance (HD95) and the average symmetric surface distance (ASD), the four columns
of the semi-supervised segmentation tables (e.g. UP-SAM, BIBM 2024), computed as MedPy's `metric.binary` does
(formulas only, no code copied), on scipy's exact Euclidean distance transform:

- surface of a mask: its voxels with at least one face neighbour (6-connectivity in 3D, 4 in 2D) outside it; voxels on
  the array border count as surface (the outside is background);
- d(A -> B): for every surface voxel of A, the distance in mm (`spacing`) to the nearest surface voxel of B;
- HD95 = max(95th percentile of d(A -> B), 95th percentile of d(B -> A)) (MedPy's hd95; numpy's linear percentile);
- ASD = mean(mean d(A -> B), mean d(B -> A)): the symmetric form the paper's name says (MedPy's `assd`).  The SSL code
  bases those tables follow (e.g. UA-MT) call MedPy's one-directional `asd(pred, ref)`; `asd(..., symmetric=False)`
  gives that.

Conventions: Dice and Jaccard of two empty masks are 1, of an empty and a non-empty mask 0; surface distances need a
surface on both sides and are NaN when either mask is empty.  Spacing defaults to 1 per axis (distances in voxels).
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from ._arrays import as_mask, check_spacing


def _pair(pred, ref) -> tuple[np.ndarray, np.ndarray]:
    a = as_mask(pred, "pred")
    b = as_mask(ref, "ref")
    if a.shape != b.shape:
        raise ValueError(f"pred and ref differ in shape: {a.shape} vs {b.shape}")
    return a, b


def dice(pred, ref) -> float:
    a, b = _pair(pred, ref)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.count_nonzero(a & b)) / total


def jaccard(pred, ref) -> float:
    a, b = _pair(pred, ref)
    union = int(np.count_nonzero(a | b))
    return 1.0 if union == 0 else int(np.count_nonzero(a & b)) / union


def surface(mask: np.ndarray) -> np.ndarray:
    """The surface voxels of a bool mask (face connectivity; the array border counts as outside)."""
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=structure, border_value=0)


def surface_distances(pred, ref, spacing=None) -> tuple[np.ndarray, np.ndarray]:
    """(d(pred -> ref), d(ref -> pred)): distances in mm from each surface voxel of one mask to the other's surface.

    Both arrays are empty when either mask is empty."""
    a, b = _pair(pred, ref)
    sampling = check_spacing(spacing if spacing is not None else (1.0,) * a.ndim, a.ndim)
    if not a.any() or not b.any():
        return np.empty(0), np.empty(0)
    sa, sb = surface(a), surface(b)
    to_b = ndimage.distance_transform_edt(~sb, sampling=sampling)
    to_a = ndimage.distance_transform_edt(~sa, sampling=sampling)
    return to_b[sa], to_a[sb]


def hd95(pred, ref, spacing=None) -> float:
    d_ab, d_ba = surface_distances(pred, ref, spacing)
    if d_ab.size == 0:
        return math.nan
    return float(max(np.percentile(d_ab, 95), np.percentile(d_ba, 95)))


def asd(pred, ref, spacing=None, symmetric: bool = True) -> float:
    """Average (symmetric) surface distance; symmetric=False: mean of d(pred -> ref) only."""
    d_ab, d_ba = surface_distances(pred, ref, spacing)
    if d_ab.size == 0:
        return math.nan
    return float((d_ab.mean() + d_ba.mean()) / 2.0) if symmetric else float(d_ab.mean())


def overlap_and_surface(pred, ref, spacing=None) -> dict[str, float]:
    """The four table columns at once (one distance transform per side)."""
    d_ab, d_ba = surface_distances(pred, ref, spacing)
    empty = d_ab.size == 0
    return {
        "dice": dice(pred, ref),
        "jaccard": jaccard(pred, ref),
        "hd95": math.nan if empty else float(max(np.percentile(d_ab, 95), np.percentile(d_ba, 95))),
        "asd": math.nan if empty else float((d_ab.mean() + d_ba.mean()) / 2.0),
    }
