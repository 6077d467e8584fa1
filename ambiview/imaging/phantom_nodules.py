"""The demo phantom's lung nodules: where they are, what they look like, and how they are painted.

Each nodule is a slightly lobulated sphere (its radius modulated by a few low-frequency cosines of the direction) with
a soft edge.  The kinds differ in how ambiguous their border is: a solid nodule with a sharp margin; a part-solid one
whose solid core sits in a ground-glass halo that fades into the lung; a pure ground-glass one; a juxta-vascular one
that a vessel runs into, so where the nodule ends is a matter of opinion; a subpleural one whose base lies on the
chest wall.  Attenuations follow the Fleischner Society glossary (solid nodules about soft tissue, ground glass a hazy
increase through which vessels stay visible, here -550..-650 HU).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .phantom_anatomy import CAVITY, ORIGIN, SHAPE, SPACING, _superellipse, cage_scale, to_voxel

_SLAB_OFFSETS = np.array([-1.0 / 3.0, 0.0, 1.0 / 3.0])


@dataclass(frozen=True)
class DemoNodule:
    """A nodule of the demo study.  center_zyx: voxel indices (slice 0 is the lowest); radius_mm: visible extent."""

    name: str
    kind: str  # "solid", "part-solid", "ground-glass", "juxta-vascular", "subpleural"
    center_zyx: tuple[float, float, float]
    radius_mm: float
    description: str


@dataclass(frozen=True)
class NoduleSpec:
    """How one nodule is painted.  Layers are (radius mm, HU, edge width mm) from the outside in."""

    name: str
    kind: str
    center_xyz: tuple[float, float, float]
    layers: tuple[tuple[float, float, float], ...]
    lobulation: float
    squash: tuple[float, float, float] = (1.0, 1.0, 1.0)  # stretch along x, y, z (a subpleural nodule is flat)
    description: str = ""

    @property
    def radius(self) -> float:
        return self.layers[0][0]

    @property
    def block_radius(self) -> float:
        """Radius that random vessels keep away from (the solid part, so small vessels may cross a halo)."""
        solid = [r for r, hu, _ in self.layers if hu > -300.0]
        return (max(solid) if solid else self.radius * 0.6) + 2.0


def _pleural_point(x_dir: float, y_dir: float, z: float, start=(60.0, 10.0)) -> np.ndarray:
    """Where a ray in the axial plane z from `start` meets the pleural surface (bisection on the cavity shape)."""
    g = cage_scale(z)
    d = np.array([x_dir, y_dir]) / np.hypot(x_dir, y_dir)
    lo, hi = 0.0, 250.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        x, y = np.array(start) + mid * d
        if _superellipse(np.float64(x), np.float64(y), CAVITY) <= g:
            lo = mid
        else:
            hi = mid
    x, y = np.array(start) + lo * d
    return np.array([x, y, z])


def _subpleural_center(radius: float) -> tuple[float, float, float]:
    wall = _pleural_point(0.85, 0.53, -70.0)  # left lower lobe, posterolateral
    inward = np.array([-0.85, -0.53, 0.0]) / np.hypot(0.85, 0.53)
    return tuple(float(v) for v in wall + inward * radius * 0.5)  # half inside the wall: a broad pleural base


_SUBPLEURAL_RADIUS = 5.0

NODULE_SPECS: tuple[NoduleSpec, ...] = (
    NoduleSpec("Solid nodule, right upper lobe", "solid", (-85.0, -35.0, -55.0),
               ((7.0, 35.0, 0.7),), lobulation=0.08,
               description="14 mm solid nodule with a well-defined, slightly lobulated margin."),
    NoduleSpec("Part-solid nodule, left upper lobe", "part-solid", (80.0, -20.0, -30.0),
               ((11.0, -560.0, 7.0), (4.5, 20.0, 1.0)), lobulation=0.18,
               description="22 mm part-solid nodule: a 9 mm solid core in a ground-glass halo that fades into the "
                           "lung; where the halo ends is uncertain."),
    NoduleSpec("Juxta-vascular nodule, right lower lobe", "juxta-vascular", (-72.0, 40.0, -72.0),
               ((6.0, 38.0, 0.8),), lobulation=0.06,
               description="12 mm solid nodule abutting a pulmonary vessel; the border between nodule and vessel "
                           "is ambiguous."),
    NoduleSpec("Subpleural nodule, left lower lobe", "subpleural", _subpleural_center(_SUBPLEURAL_RADIUS),
               ((_SUBPLEURAL_RADIUS, 35.0, 0.8),), lobulation=0.05, squash=(1.0, 1.0, 1.15),
               description="10 mm solid nodule with a broad base on the posterolateral chest wall."),
    NoduleSpec("Ground-glass nodule, right lung", "ground-glass", (-100.0, 15.0, -40.0),
               ((6.5, -620.0, 5.0),), lobulation=0.15,
               description="13 mm pure ground-glass nodule with a faint, fuzzy margin."),
)

# the vessel that runs into the juxta-vascular nodule: its direction, radius and how much it overlaps the nodule (mm)
JUXTA_VESSEL = {"direction": (-0.60, 0.78, -0.15), "radius": 2.2, "overlap": 1.5, "half_length": 16.0}


def juxta_vessel_path() -> tuple[np.ndarray, np.ndarray]:
    """Two points (x, y, z mm) of the straight vessel passing the juxta-vascular nodule, overlapping it."""
    spec = next(n for n in NODULE_SPECS if n.kind == "juxta-vascular")
    c = np.asarray(spec.center_xyz)
    d = np.asarray(JUXTA_VESSEL["direction"], dtype=np.float64)
    d /= np.linalg.norm(d)
    n = np.cross(d, [0.0, 0.0, 1.0])
    n /= np.linalg.norm(n)
    axis_point = c + n * (spec.radius + JUXTA_VESSEL["radius"] - JUXTA_VESSEL["overlap"])
    h = JUXTA_VESSEL["half_length"]
    return axis_point - h * d, axis_point + h * d


def demo_nodules() -> tuple[DemoNodule, ...]:
    """The public description of the nodules, in voxel coordinates of the demo grid."""
    return tuple(DemoNodule(s.name, s.kind, tuple(round(v, 3) for v in to_voxel(s.center_xyz)), s.radius,
                            s.description) for s in NODULE_SPECS)


def paint_nodules(hu: np.ndarray, specs=NODULE_SPECS) -> None:
    """Blend every nodule into the HU volume in place (only raising values: vessels inside a halo stay visible)."""
    for spec in specs:
        for radius, value, edge in spec.layers:
            _paint_layer(hu, spec, radius, value, edge)


def _paint_layer(hu: np.ndarray, spec: NoduleSpec, radius: float, value: float, edge: float) -> None:
    c = np.asarray(spec.center_xyz, dtype=np.float64)
    reach = radius * (1.0 + spec.lobulation) * max(spec.squash) + 2.0 * edge + 2.0
    dz, dy, dx = SPACING
    origin = np.asarray(ORIGIN)
    steps = np.array([dx, dy, dz])
    i0 = np.maximum(np.floor((c - reach - origin) / steps).astype(int), 0)
    i1 = np.minimum(np.ceil((c + reach - origin) / steps).astype(int) + 1, SHAPE[::-1])
    X = (origin[0] + np.arange(i0[0], i1[0]) * dx - c[0])[None, None, None, :] / spec.squash[0]
    Y = (origin[1] + np.arange(i0[1], i1[1]) * dy - c[1])[None, None, :, None] / spec.squash[1]
    zs = origin[2] + np.arange(i0[2], i1[2]) * dz - c[2]
    Z = (zs[None, :] + _SLAB_OFFSETS[:, None] * dz)[:, :, None, None] / spec.squash[2]
    dist = np.sqrt(X * X + Y * Y + Z * Z) + 1e-6
    ux, uy, uz = X / dist, Y / dist, Z / dist
    # a few fixed low-frequency lobes: the same shape every time, independent of the noise seed
    lobes = (np.cos(3.0 * ux + 1.0) * np.cos(2.0 * uy - 0.5) + 0.6 * np.sin(4.0 * uz + 2.0 * ux)
             + 0.4 * np.cos(5.0 * uy + 3.0 * uz + 0.7)) / 2.0
    r_eff = radius * (1.0 + spec.lobulation * lobes)
    weight = np.clip((r_eff - dist) / edge + 0.5, 0.0, 1.0)
    weight = weight * weight * (3.0 - 2.0 * weight)  # smoothstep
    if value < -300.0:  # ground glass is patchy: a fixed, smooth texture thins it here and there
        px, py, pz = X * spec.squash[0], Y * spec.squash[1], Z * spec.squash[2]
        weight = weight * (0.78 + 0.22 * np.cos(0.9 * px + 0.4 * pz + 1.3) * np.cos(0.7 * py - 0.5 * px + 0.4))
    weight = weight.mean(axis=0)  # the mean over the slab
    view = hu[i0[2]:i1[2], i0[1]:i1[1], i0[0]:i1[0]]
    raised = view + (value - view) * weight
    np.maximum(view, raised.astype(view.dtype), out=view)
