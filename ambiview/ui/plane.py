"""How one orthogonal plane of a (z, y, x) volume is laid out on screen, in millimetres.

A slice view shows the plane as an image whose scene coordinates are millimetres from the corner of the first
voxel, so non-square pixels and thick slices get their true aspect.  Voxel coordinates follow DICOM: integer
indices are voxel centres, so voxel i spans [i - 0.5, i + 0.5] and its centre sits at (i + 0.5) * spacing mm.

- axial (axis 0):    horizontal = x (column), vertical = y (row), row 0 at the top;
- coronal (axis 1):  horizontal = x, vertical = z;
- sagittal (axis 2): horizontal = y, vertical = z;
coronal and sagittal put the superior end at the top.  No Qt here: the layout is plain arithmetic.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..imaging.geometry import Geometry

AXIAL, CORONAL, SAGITTAL = 0, 1, 2
PLANE_NAMES = {AXIAL: "Axial", CORONAL: "Coronal", SAGITTAL: "Sagittal"}
_HORIZONTAL = {AXIAL: 2, CORONAL: 2, SAGITTAL: 1}
_VERTICAL = {AXIAL: 1, CORONAL: 0, SAGITTAL: 0}
_LPS_LETTERS = (("R", "L"), ("A", "P"), ("I", "S"))  # (negative, positive) end of each LPS axis


@dataclass(frozen=True)
class Plane:
    """The layout of the plane that holds voxel axis `axis` fixed."""

    axis: int
    geometry: Geometry

    @property
    def h_axis(self) -> int:
        """Voxel axis (0 z, 1 y, 2 x) that runs left to right on screen."""
        return _HORIZONTAL[self.axis]

    @property
    def v_axis(self) -> int:
        """Voxel axis that runs vertically on screen."""
        return _VERTICAL[self.axis]

    @property
    def name(self) -> str:
        return PLANE_NAMES[self.axis]

    @property
    def spacing(self) -> tuple[float, float, float]:
        dz, dy, dx = self.geometry.spacing
        return (abs(dz) or 1.0, dy, dx)

    @property
    def n_slices(self) -> int:
        return self.geometry.shape[self.axis]

    @property
    def size_mm(self) -> tuple[float, float]:
        """(width, height) of the whole plane in mm."""
        shape, spacing = self.geometry.shape, self.spacing
        return shape[self.h_axis] * spacing[self.h_axis], shape[self.v_axis] * spacing[self.v_axis]

    @property
    def row_zero_at_top(self) -> bool:
        """Whether array row 0 is drawn at the top (pyqtgraph: ViewBox.invertY)."""
        if self.axis == AXIAL:
            return True
        # the vertical axis is z; put the superior end (+S in LPS) at the top
        return bool(self._direction(self.v_axis)[2] < 0)

    def slice_of(self, voxels: np.ndarray, index: int) -> np.ndarray:
        """The 2-D (vertical, horizontal) array of slice `index` (a view into `voxels`, no copy)."""
        key: list[object] = [slice(None)] * 3
        key[self.axis] = int(index)
        return voxels[tuple(key)]

    # --- coordinates ------------------------------------------------------------------------------------------------
    def voxel_to_scene(self, zyx) -> tuple[float, float]:
        """Voxel coordinates (z, y, x) -> scene (mm) position of that point in this plane."""
        sp = self.spacing
        h, v = self.h_axis, self.v_axis
        return (float(zyx[h]) + 0.5) * sp[h], (float(zyx[v]) + 0.5) * sp[v]

    def scene_to_voxel(self, x_mm: float, y_mm: float, index: float) -> tuple[float, float, float]:
        """Scene position (mm) on slice `index` -> fractional voxel coordinates (z, y, x)."""
        sp = self.spacing
        zyx = [0.0, 0.0, 0.0]
        zyx[self.axis] = float(index)
        zyx[self.h_axis] = x_mm / sp[self.h_axis] - 0.5
        zyx[self.v_axis] = y_mm / sp[self.v_axis] - 0.5
        return tuple(zyx)  # type: ignore[return-value]

    # --- orientation labels -----------------------------------------------------------------------------------------
    def _direction(self, voxel_axis: int) -> np.ndarray:
        g = self.geometry
        return (g.normal, g.col_cosine, g.row_cosine)[voxel_axis]

    def edge_letters(self) -> dict[str, str]:
        """Patient direction letters at the screen edges: {'left', 'right', 'top', 'bottom'} -> e.g. 'R', 'L'."""
        right = self._direction(self.h_axis)
        down = self._direction(self.v_axis) * (1.0 if self.row_zero_at_top else -1.0)
        return {"left": direction_letters(-right), "right": direction_letters(right),
                "top": direction_letters(-down), "bottom": direction_letters(down)}


def direction_letters(vector, threshold: float = 0.25) -> str:
    """Patient-orientation letters (L/R, P/A, S/I) of an LPS direction, dominant component first ('L', 'LP')."""
    v = np.asarray(vector, dtype=float)
    order = np.argsort(-np.abs(v))
    letters = [_LPS_LETTERS[i][int(v[i] > 0)] for i in order if abs(v[i]) >= threshold]
    return "".join(letters[:2])
