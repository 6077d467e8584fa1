"""The one voxel <-> patient (DICOM LPS, mm) mapping used everywhere.

Voxel arrays are indexed (z, y, x): z is the slice index in the series sorted by position along the slice normal,
y the row and x the column of a slice.  DICOM defines, per slice:

- ImagePositionPatient: patient position of the centre of the first transmitted pixel (row 0, column 0);
- ImageOrientationPatient: the row direction cosine (direction of increasing column index, our x) followed by the
  column direction cosine (direction of increasing row index, our y);
- PixelSpacing: [spacing between rows (y), spacing between columns (x)] -- the order that some writers swap.

Slices need not be evenly spaced (a missing slice) and their origins need not lie on the slice normal (gantry tilt),
so the z part of the mapping interpolates between the stored per-slice origins instead of assuming one affine matrix.
For an evenly spaced, untilted series the mapping is exactly affine.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Geometry:
    """Geometry of a stack of parallel slices.

    slice_origins: (nz, 3) patient position of pixel (row 0, col 0) of each slice, in sorted order.
    row_cosine: unit vector of increasing x (column index).  col_cosine: unit vector of increasing y (row index).
    pixel_spacing: (dy, dx) in mm -- row spacing first, as in DICOM PixelSpacing.
    shape: (nz, ny, nx).
    """

    slice_origins: np.ndarray
    row_cosine: np.ndarray
    col_cosine: np.ndarray
    pixel_spacing: tuple[float, float]
    shape: tuple[int, int, int]

    def __post_init__(self) -> None:
        origins = np.asarray(self.slice_origins, dtype=np.float64).reshape(-1, 3)
        object.__setattr__(self, "slice_origins", origins)
        object.__setattr__(self, "row_cosine", _unit(self.row_cosine))
        object.__setattr__(self, "col_cosine", _unit(self.col_cosine))
        object.__setattr__(self, "pixel_spacing", (float(self.pixel_spacing[0]), float(self.pixel_spacing[1])))
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        if origins.shape[0] != self.shape[0]:
            raise ValueError(f"{origins.shape[0]} slice origins for {self.shape[0]} slices")

    # --- derived quantities -------------------------------------------------------------------------------------
    @property
    def normal(self) -> np.ndarray:
        """Slice normal (row x col), the direction in which the sorted slice positions increase."""
        return np.cross(self.row_cosine, self.col_cosine)

    @property
    def slice_positions(self) -> np.ndarray:
        """Position of each slice along the normal (mm), increasing with z."""
        return self.slice_origins @ self.normal

    @property
    def slice_gaps(self) -> np.ndarray:
        return np.diff(self.slice_positions)

    @property
    def slice_spacing(self) -> float:
        """Typical distance between slices, from positions (median gap); 1.0 for a single slice."""
        gaps = self.slice_gaps
        return float(np.median(gaps)) if gaps.size else 1.0

    @property
    def spacing(self) -> tuple[float, float, float]:
        """(dz, dy, dx) in mm, dz from slice positions, never from SliceThickness."""
        return (self.slice_spacing, self.pixel_spacing[0], self.pixel_spacing[1])

    @property
    def origin(self) -> np.ndarray:
        return self.slice_origins[0]

    @property
    def is_evenly_spaced(self) -> bool:
        gaps = self.slice_gaps
        if gaps.size < 2:
            return True
        return bool(np.all(np.abs(gaps - np.median(gaps)) <= 0.01 * abs(np.median(gaps)) + 1e-3))

    @property
    def tilt_degrees(self) -> float:
        """Angle between the slice normal and the line through the slice origins (gantry tilt); 0 when untilted."""
        if self.shape[0] < 2:
            return 0.0
        step = self.slice_origins[-1] - self.slice_origins[0]
        norm = np.linalg.norm(step)
        if norm == 0:
            return 0.0
        cos = abs(float(step @ self.normal)) / norm
        return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))

    @property
    def is_oblique(self) -> bool:
        """True when the slice plane is not aligned with a patient axis (axial, coronal or sagittal)."""
        return not (_is_axis_aligned(self.row_cosine) and _is_axis_aligned(self.col_cosine))

    @property
    def orientation_label(self) -> str:
        """AXIAL, CORONAL, SAGITTAL or OBLIQUE, from the dominant axis of the normal."""
        if self.is_oblique:
            return "OBLIQUE"
        return ("SAGITTAL", "CORONAL", "AXIAL")[int(np.argmax(np.abs(self.normal)))]

    def affine(self) -> np.ndarray:
        """4x4 matrix mapping homogeneous (x, y, z, 1) indices to LPS mm, using the first slice and mean spacing.

        Exact for evenly spaced untilted series; use voxel_to_patient for the exact per-slice mapping.
        """
        a = np.eye(4)
        dy, dx = self.pixel_spacing
        a[:3, 0] = self.row_cosine * dx
        a[:3, 1] = self.col_cosine * dy
        if self.shape[0] > 1:
            a[:3, 2] = (self.slice_origins[-1] - self.slice_origins[0]) / (self.shape[0] - 1)
        else:
            a[:3, 2] = self.normal
        a[:3, 3] = self.slice_origins[0]
        return a

    # --- the mapping ------------------------------------------------------------------------------------------------
    def _origin_at(self, z: np.ndarray) -> np.ndarray:
        """Slice origin at fractional slice index z, linear between slices, extrapolated beyond the ends."""
        n = self.shape[0]
        if n == 1:
            return self.slice_origins[0] + np.multiply.outer(z, self.normal)
        i0 = np.clip(np.floor(z).astype(int), 0, n - 2)
        t = (z - i0)[..., None]
        return self.slice_origins[i0] * (1 - t) + self.slice_origins[i0 + 1] * t

    def voxel_to_patient(self, zyx) -> np.ndarray:
        """(..., 3) voxel indices (z, y, x), fractional allowed -> (..., 3) LPS mm."""
        zyx = np.asarray(zyx, dtype=np.float64)
        z, y, x = zyx[..., 0], zyx[..., 1], zyx[..., 2]
        dy, dx = self.pixel_spacing
        return (self._origin_at(z) + np.multiply.outer(x * dx, self.row_cosine)
                + np.multiply.outer(y * dy, self.col_cosine))

    def patient_to_voxel(self, xyz) -> np.ndarray:
        """(..., 3) LPS mm -> (..., 3) fractional voxel indices (z, y, x); the inverse of voxel_to_patient."""
        p = np.asarray(xyz, dtype=np.float64)
        positions = self.slice_positions
        s = p @ self.normal
        n = self.shape[0]
        if n == 1:
            z = (s - positions[0])
        else:
            # fractional index from the position along the normal, extrapolating linearly at both ends
            z = np.interp(s, positions, np.arange(n, dtype=np.float64))
            below, above = s < positions[0], s > positions[-1]
            z = np.where(below, (s - positions[0]) / (positions[1] - positions[0]), z)
            z = np.where(above, n - 1 + (s - positions[-1]) / (positions[-1] - positions[-2]), z)
        d = p - self._origin_at(np.asarray(z))
        dy, dx = self.pixel_spacing
        x = (d @ self.row_cosine) / dx
        y = (d @ self.col_cosine) / dy
        return np.stack([z, y, x], axis=-1)

    def with_shape_crop(self, z0: int, z1: int) -> "Geometry":
        """Geometry of slices z0..z1-1 (used for ROI stacks)."""
        return Geometry(self.slice_origins[z0:z1], self.row_cosine, self.col_cosine, self.pixel_spacing,
                        (z1 - z0, self.shape[1], self.shape[2]))

    @classmethod
    def regular(cls, shape, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0),
                row_cosine=(1.0, 0.0, 0.0), col_cosine=(0.0, 1.0, 0.0)) -> "Geometry":
        """An evenly spaced stack (for demos, tests and model ROIs)."""
        row, col = _unit(row_cosine), _unit(col_cosine)
        normal = np.cross(row, col)
        origins = np.asarray(origin, float)[None, :] + np.arange(shape[0])[:, None] * spacing[0] * normal[None, :]
        return cls(origins, row, col, (spacing[1], spacing[2]), tuple(shape))


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64).reshape(3)
    n = np.linalg.norm(v)
    if n == 0:
        raise ValueError("zero direction cosine")
    return v / n


def _is_axis_aligned(v: np.ndarray, tol: float = 1e-3) -> bool:
    return bool(np.sum(np.abs(v) > tol) == 1)
