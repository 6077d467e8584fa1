"""Mask <-> planar contours, following pixel edges, and the fill rule that reads them back.

Convention (what we write and what our reader assumes):

- A contour runs along pixel EDGES: its vertices are pixel corners, (y +- 0.5, x +- 0.5) in voxel coordinates, so the
  polygon encloses exactly the pixel squares of the mask (not a curve through pixel centres, which loses half a pixel
  all round).
- Foreground is 4-connected: each 4-connected component gives one closed polygon; pixels touching only at a corner
  are separate components whose polygons share that corner.
- Holes are "keyholed": each hole's boundary is joined to its component's polygon by a zero-width cut running along a
  pixel edge (out and back on the same line), so a component with holes is still ONE polygon.  An island inside a
  hole is a component of its own.
- Filling tests pixel centres against all polygons of a slice with the even-odd rule.  Because every cut is traversed
  once in each direction and lies on pixel edges, the same pixels result whether a reader fills each polygon alone and
  takes the union (plastimatch's default), XORs the polygons (plastimatch --xor-contours, Eclipse, RayStation), or
  uses the non-zero winding rule.
"""
from __future__ import annotations

import numpy as np

# Directions as (dr, dc) in image coordinates (row down, column right); index order used in the lookup table.
_DIRS = np.array([(0, 1), (1, 0), (0, -1), (-1, 0)])  # E, S, W, N


def mask_to_polygons(mask: np.ndarray) -> list[np.ndarray]:
    """Closed polygons (k, 2) of (y, x) voxel coordinates tracing the pixel edges of a 2D mask.

    Each polygon is listed once (the closing edge from the last vertex to the first is implied); outer boundaries run
    clockwise on screen (row down), hole boundaries counter-clockwise inside the keyholed polygon.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"expected a 2D mask, got shape {mask.shape}")
    if not mask.any():
        return []
    rows, cols = np.nonzero(mask)
    r0, c0 = rows.min(), cols.min()
    m = np.zeros((rows.max() - r0 + 3, cols.max() - c0 + 3), dtype=bool)  # one pixel of background all round
    m[1:-1, 1:-1] = mask[r0:rows.max() + 1, c0:cols.max() + 1]
    loops = _trace_loops(m)
    polygons = _keyhole(loops, m)
    offset = np.array([r0 - 1 - 0.5, c0 - 1 - 0.5])
    return [_simplify(p).astype(np.float64) + offset for p in polygons]


def _trace_loops(m: np.ndarray) -> list[np.ndarray]:
    """Boundary loops of a padded mask as (k, 2) integer corner sequences (corner (r, c) = top-left of pixel)."""
    h, w = m.shape
    # a pixel edge is on the boundary where the neighbour across it is background (m is padded, so np.roll only
    # brings in background); each edge is oriented with its pixel on the right: top E, right S, bottom W, left N
    top = m & ~np.roll(m, 1, axis=0)
    right = m & ~np.roll(m, -1, axis=1)
    bottom = m & ~np.roll(m, -1, axis=0)
    left = m & ~np.roll(m, 1, axis=1)
    starts, dirs = [], []
    for sel, start_offset, d in ((top, (0, 0), 0), (right, (0, 1), 1), (bottom, (1, 1), 2), (left, (1, 0), 3)):
        r, c = np.nonzero(sel)
        starts.append(np.stack([r + start_offset[0], c + start_offset[1]], axis=1))
        dirs.append(np.full(r.size, d))
    start = np.concatenate(starts)
    direction = np.concatenate(dirs)
    end = start + _DIRS[direction]
    n = start.shape[0]
    # outgoing edge per (corner, direction)
    out = np.full((h + 1, w + 1, 4), -1, dtype=np.int64)
    out[start[:, 0], start[:, 1], direction] = np.arange(n)
    # successor: prefer the right turn (keeps 4-connected pixels together), then straight, then the left turn
    succ = np.full(n, -1, dtype=np.int64)
    for turn in (1, 0, 3):
        todo = succ < 0
        cand = out[end[todo, 0], end[todo, 1], (direction[todo] + turn) % 4]
        succ[np.nonzero(todo)[0]] = cand
    loops = []
    seen = np.zeros(n, dtype=bool)
    for e0 in range(n):
        if seen[e0]:
            continue
        chain = []
        e = e0
        while not seen[e]:
            seen[e] = True
            chain.append(e)
            e = succ[e]
        loops.append(start[np.array(chain)])
    return loops


def _signed_area(loop: np.ndarray) -> float:
    """Shoelace area in (column, row) coordinates: positive for outer loops as traced here."""
    x, y = loop[:, 1].astype(float), loop[:, 0].astype(float)
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def _keyhole(loops: list[np.ndarray], m: np.ndarray) -> list[np.ndarray]:
    """Join each hole loop to the loop found straight above its top-left corner, through foreground only."""
    vertex_loop: dict[tuple[int, int], int] = {}
    for i, loop in enumerate(loops):
        for r, c in loop:
            vertex_loop.setdefault((int(r), int(c)), i)
    children: dict[int, list[tuple[int, int, int]]] = {}  # target loop -> [(vertex row, col, hole loop)]
    holes = set()
    for i, loop in enumerate(loops):
        if _signed_area(loop) >= 0:
            continue
        holes.add(i)
        top = loop[:, 0].min()
        c = int(loop[loop[:, 0] == top, 1].min())
        r = int(top)
        k = r - 1
        # walk up the edge line between columns c-1 and c while both pixels above the corner are foreground
        while m[k - 1, c - 1] and m[k - 1, c]:
            k -= 1
        children.setdefault(vertex_loop[(k, c)], []).append((k, c, i))
    return [_expand(i, loops, children) for i in range(len(loops)) if i not in holes]


def _expand(i: int, loops: list[np.ndarray], children: dict) -> np.ndarray:
    """Loop i as a vertex list with its attached holes (and theirs) spliced in along vertical cuts."""
    seq = [tuple(v) for v in loops[i].tolist()]
    for k, c, hole in children.get(i, []):
        hole_seq = [tuple(v) for v in _expand(hole, loops, children).tolist()]
        top = hole_seq.index((int(loops[hole][:, 0].min()), c))
        hole_seq = hole_seq[top:] + hole_seq[:top]
        r = hole_seq[0][0]
        at = seq.index((k, c))
        down = [(row, c) for row in range(k + 1, r + 1)]  # ends at the hole's top-left corner
        back = [(row, c) for row in range(r - 1, k - 1, -1)]  # from just above it back to (k, c)
        seq = seq[:at + 1] + down + hole_seq[1:] + [hole_seq[0]] + back + seq[at + 1:]
    return np.array(seq, dtype=np.int64)


def _simplify(loop: np.ndarray) -> np.ndarray:
    """Drop vertices in the middle of straight runs; keep the corners (and both ends of each cut)."""
    step = np.roll(loop, -1, axis=0) - loop
    prev = np.roll(step, 1, axis=0)
    keep = np.any(step != prev, axis=1)
    return loop[keep] if keep.any() else loop[:1]


def fill_polygons(polygons: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Rasterise closed polygons of (y, x) voxel coordinates with the even-odd rule at pixel centres.

    All polygons of a slice are filled together, so a polygon inside another is a hole (and an island inside that
    a component again).  A row's centre line y counts an edge when min(y0, y1) <= y < max(y0, y1); a pixel centre
    x is inside when an odd number of crossings lie at or left of it.  Parts outside the image are clipped.
    """
    h, w = int(shape[0]), int(shape[1])
    toggles = np.zeros((h, w + 1), dtype=np.int32)
    for poly in polygons:
        p = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
        if p.shape[0] < 3:
            continue
        y0, x0 = p[:, 0], p[:, 1]
        y1, x1 = np.roll(y0, -1), np.roll(x0, -1)
        lo, hi = np.minimum(y0, y1), np.maximum(y0, y1)
        first = np.clip(np.ceil(lo), 0, h).astype(np.int64)
        stop = np.clip(np.ceil(hi), 0, h).astype(np.int64)
        count = np.maximum(stop - first, 0)
        if not count.any():
            continue
        edge = np.repeat(np.arange(p.shape[0]), count)
        row = first[edge] + (np.arange(edge.size) - np.repeat(np.cumsum(count) - count, count))
        t = (row - y0[edge]) / (y1[edge] - y0[edge])
        x = x0[edge] + t * (x1[edge] - x0[edge])
        col = np.clip(np.ceil(x), 0, w).astype(np.int64)
        np.add.at(toggles, (row, col), 1)
    return (np.cumsum(toggles, axis=1)[:, :w] % 2).astype(bool)
