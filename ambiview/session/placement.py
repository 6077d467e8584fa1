"""Where a ROI-grid mask lands on the volume, without building a whole volume per mask.

`Roi.paste` fills a full (z, y, x) array; for a 512 × 512 × 134 CT that is 140 MB per hypothesis.  Overlays and
comparisons only need the ROI's footprint, so masks are pasted into that region alone (the same resampling, shifted by
whole pixels, hence the same pixels) and carried with their offset as a `LocalMask`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..imaging.roi import Roi


def roi_region(roi: Roi, volume_shape) -> tuple[slice, slice, slice]:
    """The (z, y, x) slices of the volume whose voxel centres lie inside the ROI (clipped to the volume).

    Voxel i covers [i - 0.5, i + 0.5], the ROI [top, top + extent): centres i with top <= i < top + extent.
    """
    nz, ny, nx = (int(s) for s in volume_shape)
    z0, z1 = max(roi.z0, 0), min(roi.z1, nz)
    y0, y1 = max(math.ceil(roi.top), 0), min(math.ceil(roi.top + roi.extent), ny)
    x0, x1 = max(math.ceil(roi.left), 0), min(math.ceil(roi.left + roi.extent), nx)
    return slice(z0, max(z1, z0)), slice(y0, max(y1, y0)), slice(x0, max(x1, x0))


@dataclass(frozen=True)
class LocalMask:
    """A bool mask on part of the volume grid: `mask[i, j, k]` is voxel `offset + (i, j, k)`."""

    offset: tuple[int, int, int]
    mask: np.ndarray

    @property
    def is_empty(self) -> bool:
        return not self.mask.any()

    def plane(self, axis: int, index: int) -> tuple[np.ndarray, tuple[int, int]] | None:
        """The part of slice `index` along voxel `axis` (0 axial, 1 coronal, 2 sagittal) that this mask covers:
        (2D mask with rows along the remaining first axis, (row offset, column offset)), or None when it misses."""
        local = int(index) - self.offset[axis]
        if not 0 <= local < self.mask.shape[axis]:
            return None
        rest = [a for a in range(3) if a != axis]
        return np.take(self.mask, local, axis=axis), (self.offset[rest[0]], self.offset[rest[1]])

    def to_volume(self, shape) -> np.ndarray:
        out = np.zeros(tuple(shape), bool)
        z, y, x = self.offset
        d, h, w = self.mask.shape
        out[z:z + d, y:y + h, x:x + w] = self.mask
        return out


def local_paste(roi: Roi, values: np.ndarray, volume_shape, order: int = 1) -> tuple[tuple[int, int, int], np.ndarray]:
    """`Roi.paste` restricted to the ROI's region: (offset, float32 array of the region's shape)."""
    region = roi_region(roi, volume_shape)
    offset = (region[0].start, region[1].start, region[2].start)
    shape = tuple(s.stop - s.start for s in region)
    shifted = Roi(roi.z0 - offset[0], roi.z1 - offset[0], roi.top - offset[1], roi.left - offset[2], roi.extent,
                  roi.size)
    return offset, shifted.paste(values, shape, order=order)


def local_mask(roi: Roi, mask: np.ndarray, volume_shape) -> LocalMask:
    """A ROI-grid mask ((H, W) or (D, H, W)) placed on the volume grid, as `KeptItem.volume_mask` would (>= 0.5)."""
    offset, values = local_paste(roi, np.asarray(mask, np.float32), volume_shape)
    return LocalMask(offset, values >= 0.5)


def kept_local_mask(item) -> LocalMask:
    """A kept item's mask on the volume grid, within its ROI's footprint."""
    return local_mask(item.roi, item.mask, item.volume_shape)


def hypotheses_in_region(result) -> np.ndarray:
    """(n, dz, dy, dx) bool: every hypothesis (p >= 0.5) on the volume grid within the ROI's region."""
    masks = result.masks()
    return np.stack([local_mask(result.roi, m, result.volume_shape).mask for m in masks])


def volume_local_mask(mask: np.ndarray) -> LocalMask:
    """A whole-volume bool mask (an expert's) cut to its bounding box, so drawing it only touches its footprint."""
    mask = np.asarray(mask, bool)
    if not mask.any():
        return LocalMask((0, 0, 0), np.zeros((0, 0, 0), bool))
    box = []
    for axis in range(3):
        present = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        box.append(slice(int(present[0]), int(present[-1]) + 1))
    return LocalMask((box[0].start, box[1].start, box[2].start), mask[tuple(box)])


def outline_polylines(local: LocalMask, axis: int, index: int) -> list[np.ndarray]:
    """The mask's outline on slice `index` of voxel `axis`, as (k, 3) polylines in volume voxel coordinates (z, y, x).

    Iso-lines at 0.5 between pixel centres (marching squares on the mask padded with background), the same kind of
    line the hypothesis overlay draws, so a kept hypothesis lies exactly on its hypothesis's contour.
    """
    from skimage.measure import find_contours

    cut = local.plane(axis, index)
    if cut is None or not cut[0].any():
        return []
    plane, (row0, col0) = cut
    rest = [a for a in range(3) if a != axis]
    lines = []
    for line in find_contours(np.pad(plane.astype(np.float32), 1), 0.5):
        zyx = np.empty((len(line), 3))
        zyx[:, axis] = index
        zyx[:, rest[0]] = line[:, 0] - 1.0 + row0
        zyx[:, rest[1]] = line[:, 1] - 1.0 + col0
        lines.append(zyx)
    return lines
