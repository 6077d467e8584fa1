"""Sizes of masks in physical units, from the geometry (uneven slice spacing included)."""
from __future__ import annotations

import numpy as np

from ..imaging.geometry import Geometry


def slice_thicknesses(geometry: Geometry) -> np.ndarray:
    """Thickness (mm) that each slice stands for: half the gap to each neighbour, the end slices their one gap.

    With even spacing this is the spacing everywhere; with a missing slice the slices beside the gap cover it.
    """
    n = geometry.shape[0]
    gaps = np.abs(geometry.slice_gaps)
    if n == 1:
        return np.array([abs(geometry.slice_spacing)])
    thick = np.empty(n)
    thick[0], thick[-1] = gaps[0], gaps[-1]
    thick[1:-1] = 0.5 * (gaps[:-1] + gaps[1:])
    return thick


def mask_volume_ml(mask: np.ndarray, geometry: Geometry) -> float:
    """Volume of a (z, y, x) mask in millilitres (cm^3)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != tuple(geometry.shape):
        raise ValueError(f"mask shape {mask.shape} does not match the geometry {geometry.shape}")
    dy, dx = geometry.pixel_spacing
    per_slice = mask.sum(axis=(1, 2))
    return float(np.sum(per_slice * slice_thicknesses(geometry)) * dy * dx / 1000.0)
