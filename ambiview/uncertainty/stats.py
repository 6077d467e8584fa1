"""Sizes and diameters of masks in millimetres, and overlap with a reference.

Spacing is (dy, dx) for a 2D mask and (dz, dy, dx) for a 3D one, in mm, in the array's axis order.

Diameters are measured on the pixel outline: every face between a foreground pixel and a background (or outside)
neighbour contributes its centre point, i.e. the pixel centre moved half a pixel towards that neighbour. Those points
are where a 0.5 iso-contour of the mask (marching squares/cubes) passes, the same outline mesh-based radiomics
diameters measure. The longest diameter is the largest distance between two of them, found among the vertices of
their convex hull. A bar of 10 × 1 pixels is therefore 10 pixels long (edge to edge, as calipers on the image would
measure it), not 9 (centre to centre) nor its corner-to-corner diagonal; a single pixel measures its larger side.
RECIST asks for the longest diameter in an axial plane: ``longest_axial_diameter_mm`` for volumes.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial import ConvexHull, QhullError

from ._arrays import as_mask, as_masks, check_spacing, same_image_shape
from .metrics import iou_matrix

# Pairs of hull vertices compared per block when searching the farthest pair.
_BLOCK = 2048


def mask_area_mm2(mask2d, spacing_yx) -> float:
    """Area of a 2D mask: pixel count × dy × dx, in mm²."""
    mask = as_mask(mask2d, "mask2d", ndim=(2,))
    dy, dx = check_spacing(spacing_yx, 2, "spacing_yx")
    return float(np.count_nonzero(mask)) * dy * dx


def mask_volume_mm3(mask3d, spacing_zyx) -> float:
    """Volume of a 3D mask: voxel count × dz × dy × dx, in mm³."""
    mask = as_mask(mask3d, "mask3d", ndim=(3,))
    dz, dy, dx = check_spacing(spacing_zyx, 3, "spacing_zyx")
    return float(np.count_nonzero(mask)) * dz * dy * dx


def mask_size(mask, spacing) -> float:
    """Area in mm² of a 2D mask or volume in mm³ of a 3D mask."""
    mask = as_mask(mask)
    return mask_area_mm2(mask, spacing) if mask.ndim == 2 else mask_volume_mm3(mask, spacing)


def outline_points_mm(mask: np.ndarray, spacing: tuple[float, ...], axes: tuple[int, ...] | None = None) -> np.ndarray:
    """(P, ndim) centres of the faces between foreground and background pixels, in mm (see the module docstring);
    with `axes`, only the faces across those axes (e.g. (1, 2): the in-plane outline of every slice of a volume)."""
    padded = np.pad(mask, 1, constant_values=False)
    points = []
    for axis in range(mask.ndim) if axes is None else axes:
        for step in (-1, 1):
            neighbour = np.roll(padded, -step, axis=axis)  # neighbour[i] = padded[i + step]
            faces = padded & ~neighbour
            index = np.argwhere(faces).astype(np.float64) - 1.0  # undo the padding
            index[:, axis] += 0.5 * step
            points.append(index)
    return np.concatenate(points) * np.asarray(spacing, dtype=np.float64)


def _crop_to_content(mask: np.ndarray) -> np.ndarray:
    """The mask cut to the bounding box of its foreground (distances do not depend on where the box sits)."""
    box = []
    for axis in range(mask.ndim):
        present = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        box.append(slice(present[0], present[-1] + 1))
    return mask[tuple(box)]


def _farthest_pair_distance(points: np.ndarray) -> float:
    if len(points) < 2:
        return 0.0
    try:
        candidates = points[ConvexHull(points).vertices]
    except (QhullError, ValueError):  # flat point sets: every point is a candidate
        candidates = np.unique(points, axis=0)
    best = 0.0
    for start in range(0, len(candidates), _BLOCK):
        block = candidates[start:start + _BLOCK]
        diff = block[:, None, :] - candidates[None, :, :]
        best = max(best, float(np.sqrt((diff * diff).sum(axis=-1).max())))
    return best


def longest_diameter_mm(mask, spacing) -> float:
    """Longest distance in mm across a 2D mask (in plane) or a 3D mask (in space), on the pixel outline; 0 if empty."""
    mask = as_mask(mask)
    spacing = check_spacing(spacing, mask.ndim)
    if not mask.any():
        return 0.0
    return _farthest_pair_distance(outline_points_mm(_crop_to_content(mask), spacing))


def longest_axial_diameter_mm(mask3d, spacing_zyx) -> float:
    """RECIST-style longest in-plane diameter of a 3D mask: the largest 2D diameter over its axial slices, in mm.

    The in-plane outline points of every slice are found at once; slices are then measured in decreasing order of
    the diagonal of their points' bounding box, which no diameter in the slice can exceed, until that bound is no
    longer above the longest diameter found (the same value as measuring every slice, in a fraction of the time)."""
    mask = as_mask(mask3d, "mask3d", ndim=(3,))
    _, dy, dx = check_spacing(spacing_zyx, 3, "spacing_zyx")
    if not mask.any():
        return 0.0
    mask = _crop_to_content(mask)
    points = outline_points_mm(mask, (1.0, dy, dx), axes=(1, 2))  # column 0 stays the slice index
    points = points[np.argsort(points[:, 0], kind="stable")]
    starts = np.searchsorted(points[:, 0], np.arange(mask.shape[0] + 1))
    yx = points[:, 1:]
    filled = np.flatnonzero(np.diff(starts))  # slices with outline points
    extent = np.maximum.reduceat(yx, starts[filled]) - np.minimum.reduceat(yx, starts[filled])
    slices = sorted(zip(np.hypot(extent[:, 0], extent[:, 1]).tolist(), filled.tolist()), reverse=True)
    best = 0.0
    for bound, k in slices:
        if bound <= best:
            break
        best = max(best, _farthest_pair_distance(yx[starts[k]:starts[k + 1]]))
    return best


def iou_with(masks, reference) -> np.ndarray:
    """(N,) IoU of each mask of a stack with one reference mask (IoU(∅, ∅) = 1)."""
    stack = as_masks(masks, "masks")
    ref = as_mask(reference, "reference")[None]
    same_image_shape(stack, ref, "masks", "reference")
    return iou_matrix(stack, ref)[:, 0]
