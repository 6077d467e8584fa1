"""Volume voxel coordinates -> a slice view's scene millimetres, for whole arrays of points at once.

`Plane.voxel_to_scene` is THE mapping for one point; it is affine, so evaluating it at the origin and the three unit
steps gives the same mapping for arrays (contour polylines, image placement) without a second formula.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
from PySide6.QtGui import QTransform

from .plane import Plane

_REMEMBERED = 12  # planes (three views, a few volumes)
_AFFINES: OrderedDict[int, tuple[Plane, tuple[np.ndarray, np.ndarray]]] = OrderedDict()


def plane_affine(plane: Plane) -> tuple[np.ndarray, np.ndarray]:
    """(offset (2,), linear (3, 2)): scene = offset + zyx @ linear, built from plane.voxel_to_scene.

    Remembered per plane object (a plane's spacing takes a median over its slices: too slow for every update)."""
    key = id(plane)
    known = _AFFINES.get(key)
    if known is not None and known[0] is plane:
        return known[1]
    offset = np.asarray(plane.voxel_to_scene((0.0, 0.0, 0.0)), np.float64)
    linear = np.array([np.asarray(plane.voxel_to_scene(unit), np.float64) - offset for unit in np.eye(3)])
    _AFFINES[key] = (plane, (offset, linear))  # the plane is kept, so its id cannot be reused while listed
    while len(_AFFINES) > _REMEMBERED:
        _AFFINES.popitem(last=False)
    return offset, linear


def polylines_to_scene(plane: Plane, lines) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) scene arrays of several (k, 3) voxel polylines, NaN between them (draw with connect='finite')."""
    lines = [np.asarray(line, np.float64) for line in lines if len(line)]
    if not lines:
        return np.empty(0), np.empty(0)
    gap = np.full((1, 3), np.nan)
    points = np.concatenate([part for line in lines for part in (line, gap)][:-1])
    offset, linear = plane_affine(plane)
    xy = offset + points @ linear
    return xy[:, 0], xy[:, 1]


def section_transform(plane: Plane, corner, row_step, col_step) -> QTransform:
    """The QTransform that puts image pixel (row, col) of a section (views_model.Section) at its place in the scene:
    the image's x runs along col_step, its y along row_step, (0, 0) at the outer corner."""
    offset, linear = plane_affine(plane)
    origin = offset + np.asarray(corner, np.float64) @ linear
    col = np.asarray(col_step, np.float64) @ linear
    row = np.asarray(row_step, np.float64) @ linear
    return QTransform(col[0], col[1], row[0], row[1], origin[0], origin[1])
