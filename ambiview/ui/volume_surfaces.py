"""Smoothed iso-surfaces of ROI-grid fields (a hypothesis's probabilities, the disagreement shell), in patient LPS mm.

The field is padded with one voxel of zeros all round, so a lesion touching the ROI's edge still gives a closed
surface (the 2D contours pad the same way).  vtkFlyingEdges3D extracts the iso-surface at `level` in index space;
its vertices are then mapped through the ROI's `Geometry.voxel_to_patient` -- the one voxel <-> LPS mapping of the
project -- and only then smoothed (vtkWindowedSincPolyDataFilter), so the smoothing sees millimetres: a 2.5 mm slice
step is a larger stair than a 0.7 mm pixel step, and is treated as one.  Normals come last, from the final vertices.
No Qt here.

`SurfaceCache.prefetch` extracts surfaces in background threads (VTK's filters release the GIL while they run), so
hypotheses streaming in from a model are turned into surfaces on the second core while the GUI thread lays out the
2D views; `SurfaceCache.surface` then finds them made (or waits for them).  The pool has at most two threads, at a
lower priority (`EXTRACT_NICE`), so on a machine busy with other work they do not slow the GUI or the model; the GUI
thread takes back what they have not started when it has nothing else to do (`take_back`).
"""
from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor

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
EXTRACT_THREADS = max(1, min(2, os.cpu_count() or 1))
EXTRACT_NICE = 10        # the background threads yield the CPU to the GUI and the model (Linux: per-thread nice)

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _lower_priority() -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), EXTRACT_NICE)
    except (AttributeError, OSError):  # not on Linux: the threads run at the process's priority
        pass


def extraction_pool() -> ThreadPoolExecutor:
    """The process's surface-extraction threads (made on first use), at a lower priority than the rest of the
    process: they use a core the GUI thread and the model leave idle, and never delay either."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=EXTRACT_THREADS, thread_name_prefix="ambiview-surfaces",
                                       initializer=_lower_priority)
        return _pool


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
    again.  The least recently used surface goes first.  Surfaces can be extracted ahead in background threads
    (`prefetch`); `ready` tells whether one is made, `surface` returns it (waiting for it if it is being made)."""

    def __init__(self, capacity: int = 96) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, vtkPolyData] = OrderedDict()
        self._futures: dict[str, Future] = {}
        self._started: dict[str, float] = {}  # perf_counter() when a background thread began each surface
        self.extracted = 0  # surfaces computed (not found), for tests and the benchmark

    def get(self, key: str) -> vtkPolyData | None:
        surface = self._items.get(key)
        if surface is not None:
            self._items.move_to_end(key)
        return surface

    def prefetch(self, values: np.ndarray, geometry: Geometry, level: float = ISO_LEVEL,
                 key: str | None = None) -> str:
        """Start extracting a surface in the background (nothing when it is made or being made); returns its key.
        `values` must not change afterwards."""
        key = key or field_key(values, geometry, level)
        if key not in self._items and key not in self._futures:
            started = self._started

            def run() -> vtkPolyData:
                started[key] = time.perf_counter()
                return iso_surface(values, geometry, level)

            self._futures[key] = extraction_pool().submit(run)
        return key

    def ready(self, key: str) -> bool:
        """Whether `surface(key=key)` returns without extracting or waiting."""
        future = self._futures.get(key)
        return key in self._items or (future is not None and future.done())

    def prefetching(self, key: str) -> bool:
        return key in self._futures

    def running_for(self, key: str) -> float | None:
        """Seconds a background thread has been extracting this surface (None: not started, done, or none)."""
        future, start = self._futures.get(key), self._started.get(key)
        if future is None or start is None or future.done():
            return None
        return time.perf_counter() - start

    def take_back(self, key: str) -> bool:
        """Withdraw a background extraction that has not started yet (the caller will make the surface itself);
        False when it is running or done, or there is none."""
        future = self._futures.get(key)
        if future is not None and future.cancel():
            del self._futures[key]
            self._started.pop(key, None)
            return True
        return False

    def abandon(self, key: str) -> None:
        """Stop waiting for one background extraction (the caller makes the surface itself: a thread starved of CPU
        by other processes must not hold the last surface up)."""
        future = self._futures.pop(key, None)
        self._started.pop(key, None)
        if future is not None:
            future.cancel()

    def forget_prefetches(self, keep=()) -> None:
        """Stop waiting for background surfaces other than `keep` (those not started yet are not made at all)."""
        keep = set(keep)
        for key in [k for k in self._futures if k not in keep]:
            self._futures.pop(key).cancel()
            self._started.pop(key, None)

    def surface(self, values: np.ndarray, geometry: Geometry, level: float = ISO_LEVEL,
                key: str | None = None) -> vtkPolyData:
        key = key or field_key(values, geometry, level)
        found = self.get(key)
        if found is not None:
            return found
        future = self._futures.pop(key, None)
        self._started.pop(key, None)
        surface = None
        if future is not None and not future.cancelled():
            try:
                surface = future.result()
            except Exception:  # made again below, where the error (if any) reaches the caller
                surface = None
        if surface is None:
            surface = iso_surface(values, geometry, level)
        self.extracted += 1
        self._items[key] = surface
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)
        return surface

    def clear(self) -> None:
        self.forget_prefetches()
        self._items.clear()
