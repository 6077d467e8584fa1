"""Tubes for the demo phantom: tapered capsules rasterised with partial volume, and branching trees of them.

Pulmonary vessels and airways are trees grown by space colonisation from the hila into the lung, their radii set
from the leaves up so that they taper towards the periphery.  The covered fraction of each voxel is estimated by
sampling the slab of each slice at a few depths, so thin oblique vessels fade in and out across slices as on a real
2.5 mm reconstruction instead of appearing as on/off dots.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

# depths (in units of the slice spacing) at which the slab of each slice is sampled
_SLAB_OFFSETS = np.array([-1.0 / 3.0, 0.0, 1.0 / 3.0])
_CHUNK_ELEMENTS = 4_000_000  # work arrays per batch of boxes


@dataclass(frozen=True)
class Segment:
    """A tapered capsule from p to q (patient mm, (x, y, z)), radius r0 at p and r1 at q (mm)."""

    p: tuple[float, float, float]
    q: tuple[float, float, float]
    r0: float
    r1: float


class TubeCanvas:
    """Accumulates, per voxel, the largest fraction covered by any tube drawn so far.

    The grid is axis aligned: voxel (z, y, x) has its centre at origin + (x*dx, y*dy, z*dz) in patient mm.
    """

    def __init__(self, shape: tuple[int, int, int], spacing: tuple[float, float, float],
                 origin: tuple[float, float, float]) -> None:
        self.shape = tuple(int(s) for s in shape)
        self.spacing = tuple(float(s) for s in spacing)  # (dz, dy, dx)
        self.origin = np.asarray(origin, dtype=np.float64)  # (x, y, z) of voxel (0, 0, 0)
        self.fraction = np.zeros(self.shape, dtype=np.float32)

    def add(self, seg: Segment) -> None:
        """Draw one tapered capsule (max-combined with what is already there)."""
        self.add_all([seg])

    def add_all(self, segments: list[Segment]) -> None:
        """Draw many capsules: those whose bounding boxes have the same (rounded) size are computed together."""
        if not segments:
            return
        p = np.array([s.p for s in segments], dtype=np.float64)
        q = np.array([s.q for s in segments], dtype=np.float64)
        r = np.array([(s.r0, s.r1) for s in segments], dtype=np.float64)
        dz, dy, dx = self.spacing
        steps = np.array([dx, dy, dz])
        reach = r.max(axis=1, keepdims=True) + 1.5 * dx
        i0 = np.floor((np.minimum(p, q) - reach - self.origin) / steps).astype(int)
        i1 = np.ceil((np.maximum(p, q) + reach - self.origin) / steps).astype(int) + 1
        box = i1 - i0
        box[:, :2] = (box[:, :2] + 3) // 4 * 4  # round up so that there are few distinct shapes
        box[:, 2] = (box[:, 2] + 1) // 2 * 2
        shapes, group = np.unique(box, axis=0, return_inverse=True)
        for g, shape in enumerate(shapes):
            members = np.flatnonzero(group.ravel() == g)
            per_item = len(_SLAB_OFFSETS) * int(np.prod(shape))
            chunk = max(1, _CHUNK_ELEMENTS // per_item)
            for k in range(0, len(members), chunk):
                sel = members[k:k + chunk]
                self._add_boxes(p[sel], q[sel], r[sel], i0[sel], tuple(int(v) for v in shape))

    def _add_boxes(self, p, q, r, i0, shape) -> None:
        bx, by, bz = shape
        dz, dy, dx = self.spacing
        nz, ny, nx = self.shape
        xi = i0[:, 0:1] + np.arange(bx)  # (n, bx) voxel indices
        yi = i0[:, 1:2] + np.arange(by)
        zi = i0[:, 2:3] + np.arange(bz)
        X = (self.origin[0] + xi * dx - p[:, 0:1]).astype(np.float32)[:, None, None, None, :]
        Y = (self.origin[1] + yi * dy - p[:, 1:2]).astype(np.float32)[:, None, None, :, None]
        Z = (self.origin[2] + zi * dz - p[:, 2:3])[:, None, :] + _SLAB_OFFSETS[None, :, None] * dz
        Z = Z.astype(np.float32)[:, :, :, None, None]  # (n, slab, bz, 1, 1)
        axis = (q - p).astype(np.float32)
        ax, ay, az = (axis[:, i].reshape(-1, 1, 1, 1, 1) for i in range(3))
        length2 = np.maximum((axis * axis).sum(axis=1), 1e-9).reshape(-1, 1, 1, 1, 1)
        t = np.clip((X * ax + Y * ay + Z * az) / length2, 0.0, 1.0)
        ex, ey, ez = X - t * ax, Y - t * ay, Z - t * az
        dist = np.sqrt(ex * ex + ey * ey + ez * ez)
        r0 = r[:, 0].astype(np.float32).reshape(-1, 1, 1, 1, 1)
        r1 = r[:, 1].astype(np.float32).reshape(-1, 1, 1, 1, 1)
        radius = r0 + t * (r1 - r0)
        # in-plane anti-aliasing over one pixel, then the mean over the slab depths
        cover = np.clip((radius - dist) / dx + 0.5, 0.0, 1.0).mean(axis=1)  # (n, bz, by, bx)
        valid = ((zi >= 0) & (zi < nz))[:, :, None, None] & ((yi >= 0) & (yi < ny))[:, None, :, None] \
            & ((xi >= 0) & (xi < nx))[:, None, None, :]
        keep = valid & (cover > 0)
        flat_index = (zi[:, :, None, None] * ny + yi[:, None, :, None]) * nx + xi[:, None, None, :]
        np.maximum.at(self.fraction.reshape(-1), flat_index[keep], cover[keep])


@dataclass(frozen=True)
class Colonization:
    """Parameters of space colonisation (Runions et al., 2007): branches grow towards scattered attraction points.

    Each round, every attraction point pulls the nearest node within `influence`; each pulled node grows one new
    node `step` mm along the mean direction of its pulls; points within `kill` of a node are reached and removed.
    Radii come afterwards from the leaves up: r_parent^k = sum of r_child^k (Murray's law has k = 3; measured
    pulmonary trees are closer to k = 2.3-2.7), so vessels taper from the hilum to the periphery on their own.
    """

    step: float = 4.0
    influence: float = 30.0
    kill: float = 8.0
    leaf_radius: float = 0.35
    exponent: float = 2.4
    jitter: float = 0.15  # random part of each growth direction (tortuosity)
    max_rounds: int = 150


@dataclass
class Tree:
    """Nodes of grown trees: positions (n, 3) mm, parent index (-1 for a root), radius (mm)."""

    positions: np.ndarray
    parents: np.ndarray
    radii: np.ndarray

    def segments(self, min_radius: float = 0.0) -> list[Segment]:
        """One capsule per node with a parent, as thick as the node, skipping those thinner than min_radius."""
        out = []
        for i in np.nonzero((self.parents >= 0) & (self.radii >= min_radius))[0]:
            r = float(self.radii[i])
            out.append(Segment(tuple(self.positions[self.parents[i]]), tuple(self.positions[i]), r, r))
        return out


def colonize(roots, attractors: np.ndarray, allowed: Callable[[np.ndarray], np.ndarray], params: Colonization,
             rng: np.random.Generator) -> Tree:
    """Grow trees from `roots` (start xyz, direction, trunk length mm) towards `attractors` (m, 3).

    The trunks are laid straight (they may start outside the organ, at a hilum); every later node must satisfy
    allowed(points) -> bool array.  Deterministic for a given generator state.
    """
    pos: list[np.ndarray] = []
    parents: list[int] = []
    for start, direction, trunk in roots:
        d = _normalise(np.asarray(direction, dtype=np.float64))
        start = np.asarray(start, dtype=np.float64)
        n = max(int(round(trunk / params.step)), 1)
        for j in range(n + 1):
            parents.append(-1 if j == 0 else len(pos) - 1)
            pos.append(start + d * j * params.step)
    positions = np.array(pos)
    parent = np.array(parents, dtype=np.int64)
    points = np.asarray(attractors, dtype=np.float64)
    for _ in range(params.max_rounds):
        if len(points) == 0:
            break
        tree = cKDTree(positions)
        dist, near = tree.query(points, distance_upper_bound=params.influence)
        keep = dist >= params.kill
        points, dist, near = points[keep], dist[keep], near[keep]
        pulled = np.isfinite(dist)
        if not pulled.any():
            break
        nodes, inverse = np.unique(near[pulled], return_inverse=True)
        pull = (points[pulled] - positions[near[pulled]]) / dist[pulled, None]
        total = np.zeros((len(nodes), 3))
        np.add.at(total, inverse, pull)
        total /= np.maximum(np.linalg.norm(total, axis=1, keepdims=True), 1e-9)
        total += params.jitter * rng.standard_normal(total.shape)
        total /= np.maximum(np.linalg.norm(total, axis=1, keepdims=True), 1e-9)
        new = positions[nodes] + params.step * total
        ok = allowed(new) & (tree.query(new)[0] > 0.5 * params.step)
        if not ok.all():
            # a node that cannot grow towards its points never will: those points are given up
            stuck = np.isin(near, nodes[~ok]) & pulled
            points = points[~stuck]
        if not ok.any():
            continue
        positions = np.vstack([positions, new[ok]])
        parent = np.concatenate([parent, nodes[ok]])
    return Tree(positions, parent, _radii(parent, params.leaf_radius, params.exponent))


def _radii(parent: np.ndarray, leaf: float, k: float) -> np.ndarray:
    """Radius of every node from the leaves up (children always come after their parent)."""
    flow = np.zeros(len(parent))
    has_child = np.zeros(len(parent), dtype=bool)
    has_child[parent[parent >= 0]] = True
    flow[~has_child] = leaf ** k
    for i in range(len(parent) - 1, 0, -1):
        if parent[i] >= 0:
            flow[parent[i]] += flow[i]
    return flow ** (1.0 / k)


def segment_point_distance(p: np.ndarray, q: np.ndarray, c: np.ndarray) -> float:
    """Distance (mm) from point c to the segment p-q."""
    axis = q - p
    length2 = float(axis @ axis)
    t = 0.0 if length2 == 0 else float(np.clip((c - p) @ axis / length2, 0.0, 1.0))
    return float(np.linalg.norm(c - (p + t * axis)))


def _normalise(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v)
    return v / n if n > 0 else v
