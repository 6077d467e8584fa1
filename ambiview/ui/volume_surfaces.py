"""Smoothed iso-surfaces of ROI-grid fields (a hypothesis's probabilities, the disagreement shell), in patient LPS mm.

The field is padded with one voxel of zeros all round, so a lesion touching the ROI's edge still gives a closed
surface (the 2D contours pad the same way).  vtkFlyingEdges3D extracts the iso-surface at `level` in index space;
its vertices are then mapped through the ROI's `Geometry.voxel_to_patient` -- the one voxel <-> LPS mapping of the
project -- and only then smoothed (vtkWindowedSincPolyDataFilter), so the smoothing sees millimetres: a 2.5 mm slice
step is a larger stair than a 0.7 mm pixel step, and is treated as one.  Normals come last, from the final vertices.
No Qt here.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np
from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkImageData, vtkPolyData
from vtkmodules.vtkFiltersCore import vtkFlyingEdges3D, vtkPolyDataNormals, vtkWindowedSincPolyDataFilter

from ..imaging.geometry import Geometry

ISO_LEVEL = 0.5          # the 2D contours' level: a surface cut by a slice gives that slice's contour
SMOOTH_ITERATIONS = 25   # windowed-sinc smoothing (Taubin et al. 1996) removes the voxel stairs while keeping the
PASS_BAND = 0.02         # volume (no shrinkage as with Laplacian smoothing); a pass band of 0.1 left rings at every
                         # 2.5 mm slice of the demo CT (0.78 mm pixels), 0.02 with 25 iterations did not


def _image(values: np.ndarray) -> vtkImageData:
    """(D, H, W) values padded by one zero voxel -> vtkImageData whose index (x, y, z) is (column, row, slice)."""
    padded = np.pad(np.ascontiguousarray(values, np.float32), 1)
    image = vtkImageData()
    image.SetDimensions(padded.shape[2], padded.shape[1], padded.shape[0])
    image.SetOrigin(-1.0, -1.0, -1.0)  # so that point coordinates are indices of the unpadded grid
    image.GetPointData().SetScalars(numpy_to_vtk(padded.ravel(), deep=True))
    return image


def iso_surface(values: np.ndarray, geometry: Geometry, level: float = ISO_LEVEL, smooth: bool = True) -> vtkPolyData:
    """The smoothed iso-surface of a (D, H, W) ROI-grid field at `level`, vertices in LPS mm; empty when nothing
    reaches the level."""
    values = np.asarray(values, np.float32)
    if values.ndim != 3:
        raise ValueError(f"expected a (D, H, W) field, got shape {values.shape}")
    if tuple(values.shape) != tuple(geometry.shape):
        raise ValueError(f"field shape {values.shape} does not match its geometry {geometry.shape}")
    edges = vtkFlyingEdges3D()
    edges.SetInputData(_image(values))
    edges.SetValue(0, float(level))
    edges.ComputeNormalsOff()
    edges.ComputeGradientsOff()
    edges.ComputeScalarsOff()
    edges.Update()
    surface = vtkPolyData()
    surface.ShallowCopy(edges.GetOutput())
    if surface.GetNumberOfPoints() == 0:
        return surface
    xyz = vtk_to_numpy(surface.GetPoints().GetData()).astype(np.float64)
    lps = geometry.voxel_to_patient(xyz[:, ::-1])  # (x, y, z) index = (column, row, slice) -> (z, y, x) voxel
    points = vtkPoints()
    points.SetData(numpy_to_vtk(np.ascontiguousarray(lps), deep=True))
    surface.SetPoints(points)
    if smooth:
        smoother = vtkWindowedSincPolyDataFilter()
        smoother.SetInputData(surface)
        smoother.SetNumberOfIterations(SMOOTH_ITERATIONS)
        smoother.SetPassBand(PASS_BAND)
        smoother.NormalizeCoordinatesOn()  # numerically stable for any extent in mm
        smoother.BoundarySmoothingOff()
        smoother.FeatureEdgeSmoothingOff()
        smoother.NonManifoldSmoothingOn()
        smoother.Update()
        surface = smoother.GetOutput()
    normals = vtkPolyDataNormals()
    normals.SetInputData(surface)
    normals.SplittingOff()       # one normal per vertex: smooth shading over the whole surface
    normals.ConsistencyOff()     # flying edges already orients every triangle alike
    normals.Update()
    out = vtkPolyData()
    out.ShallowCopy(normals.GetOutput())
    return out


def field_key(values: np.ndarray, geometry: Geometry, level: float = ISO_LEVEL) -> str:
    """A fingerprint of a field, its placement and level: equal keys give equal surfaces."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(np.ascontiguousarray(values, np.float32).tobytes())
    digest.update(repr(values.shape).encode())
    for part in (geometry.slice_origins, geometry.row_cosine, geometry.col_cosine,
                 np.asarray(geometry.pixel_spacing), np.asarray([level])):
        digest.update(np.ascontiguousarray(part, np.float64).tobytes())
    return digest.hexdigest()


class SurfaceCache:
    """Surfaces by field key; a streamed result re-sends the hypotheses already shown, which are then not extracted
    again.  The least recently used surface goes first."""

    def __init__(self, capacity: int = 96) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, vtkPolyData] = OrderedDict()
        self.extracted = 0  # surfaces computed (not found), for tests and the benchmark

    def get(self, key: str) -> vtkPolyData | None:
        surface = self._items.get(key)
        if surface is not None:
            self._items.move_to_end(key)
        return surface

    def surface(self, values: np.ndarray, geometry: Geometry, level: float = ISO_LEVEL,
                key: str | None = None) -> vtkPolyData:
        key = key or field_key(values, geometry, level)
        found = self.get(key)
        if found is not None:
            return found
        surface = iso_surface(values, geometry, level)
        self.extracted += 1
        self._items[key] = surface
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)
        return surface

    def clear(self) -> None:
        self._items.clear()
