"""The synthetic chest CT of the demo study, in Hounsfield units.

`make_demo_volume(seed)` paints the anatomy slice by slice (phantom_anatomy), grows pulmonary vessel and airway trees
from the hila (phantom_tubes), blends in the nodules (phantom_nodules), and finally adds CT noise and the scanner's
blur: white noise is added to the ideal image and the sum is smoothed in-plane by one small Gaussian (the point
spread function), which both softens the edges and gives the noise its fine, correlated grain.  The noise is scaled
so that its standard deviation after smoothing is NOISE_HU.  Partial volume across the 2.5 mm slab is modelled where
structures are painted (tubes and nodules average a few depths of each slab).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.ndimage import gaussian_filter

from . import phantom_anatomy as anatomy
from .phantom_nodules import JUXTA_VESSEL, NODULE_SPECS, DemoNodule, demo_nodules, juxta_vessel_path, paint_nodules
from .phantom_tubes import Colonization, Segment, TubeCanvas, colonize

NOISE_HU = 12.0  # standard deviation of the final noise (HU)
BLUR_SIGMA = (0.0, 0.7, 0.7)  # (z, y, x) in voxels: in-plane point spread; slabs are averaged when painted
BRONCHIAL_WALL = 20.0  # HU
DEMO_NODULES: tuple[DemoNodule, ...] = demo_nodules()

Progress = Callable[[int, int], None]

VESSEL_ATTRACTORS = 7000  # attraction points for the vessel trees, spread through the lungs
AIRWAY_ATTRACTORS = 1200
PLEURAL_MARGIN = 6.0  # mm: vessels stop short of the pleura, as on CT
VESSELS = Colonization(step=4.0, influence=30.0, kill=6.0, leaf_radius=0.6, exponent=2.0, jitter=0.08)
AIRWAYS = Colonization(step=4.0, influence=30.0, kill=10.0, leaf_radius=0.3, exponent=2.0)
AIRWAY_MIN_LUMEN = 1.2  # mm: thinner airways are hard to see on CT

# (start (x, y, z) mm, direction, trunk length mm): lobar arteries and pulmonary veins at the hila
VESSEL_ROOTS = (
    ((-50.0, -2.0, -42.0), (-0.45, -0.15, 0.88), 12.0),  # right upper lobe artery
    ((-52.0, 6.0, -46.0), (-0.50, 0.60, 0.60), 16.0),  # right upper lobe, posterior
    ((-55.0, -8.0, -58.0), (-0.55, -0.75, -0.35), 8.0),  # middle lobe
    ((-55.0, 8.0, -62.0), (-0.40, 0.45, -0.80), 12.0),  # right lower lobe
    ((-38.0, 16.0, -84.0), (-0.80, 0.30, -0.50), 12.0),  # right inferior pulmonary vein
    ((-40.0, -6.0, -68.0), (-0.70, -0.50, 0.35), 12.0),  # right superior pulmonary vein
    ((48.0, -2.0, -38.0), (0.40, -0.25, 0.88), 12.0),  # left upper lobe artery
    ((50.0, 8.0, -42.0), (0.45, 0.60, 0.60), 16.0),  # left upper lobe, posterior
    ((56.0, 0.0, -48.0), (0.55, -0.80, -0.25), 8.0),  # lingula
    ((52.0, 10.0, -60.0), (0.35, 0.45, -0.82), 12.0),  # left lower lobe
    ((34.0, 20.0, -84.0), (0.80, 0.30, -0.50), 16.0),  # left inferior pulmonary vein
)
# airways: trachea and main bronchi as fixed tubes (lumen radius, mm), then bronchial trees from the main bronchi
TRACHEA = (((0.0, 4.0, 60.0), (0.0, 4.0, -40.0), 8.0),
           ((0.0, 4.0, -40.0), (-38.0, 8.0, -50.0), 6.0),
           ((0.0, 4.0, -40.0), (40.0, 10.0, -56.0), 5.5))
AIRWAY_ROOTS = (
    ((-38.0, 8.0, -50.0), (-0.45, -0.10, 0.88), 8.0),
    ((-38.0, 8.0, -50.0), (-0.45, 0.35, -0.82), 8.0),
    ((-38.0, 8.0, -50.0), (-0.55, -0.80, -0.25), 4.0),
    ((40.0, 10.0, -56.0), (0.40, -0.20, 0.89), 8.0),
    ((40.0, 10.0, -56.0), (0.35, 0.40, -0.85), 8.0),
)


def make_demo_volume(seed: int = 0, progress: Progress | None = None) -> tuple[np.ndarray, dict]:
    """The demo chest CT: (z, y, x) int16 HU, and its geometry {"spacing": (dz, dy, dx), "origin": (x, y, z)}.

    Same seed, same voxels.  `progress(done, total)` is called as the work advances.  The geometry dict fits
    `Volume.from_array(voxels, **geometry)`.
    """
    nz = anatomy.SHAPE[0]
    total = nz + 3
    report = progress or (lambda done, total: None)
    rng = np.random.default_rng(seed)
    hu = np.empty(anatomy.SHAPE, dtype=np.float32)
    lung = np.empty(anatomy.SHAPE, dtype=bool)
    airway_ok = np.empty(anatomy.SHAPE, dtype=bool)
    for k in range(nz):
        s = anatomy.paint_slice(k)
        hu[k], lung[k], airway_ok[k] = s.hu, s.lung, s.airway_ok
        report(k + 1, total)
    _draw_trees(hu, lung, airway_ok, rng)
    report(nz + 1, total)
    paint_nodules(hu)
    report(nz + 2, total)
    _add_noise_and_blur(hu, rng)
    report(total, total)
    voxels = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
    return voxels, {"spacing": tuple(anatomy.SPACING), "origin": tuple(anatomy.ORIGIN)}


class _LungLookup:
    """Point queries against the painted lung mask."""

    def __init__(self, lung: np.ndarray) -> None:
        self.lung = lung
        self.origin = np.asarray(anatomy.ORIGIN)
        self.steps = np.array(anatomy.SPACING[::-1])  # (dx, dy, dz)
        self.limits = np.array(anatomy.SHAPE[::-1]) - 1

    def contains(self, points: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """True where the point, and its six neighbours `margin` mm away along the axes, all lie in the lung."""
        points = np.atleast_2d(points)
        ok = np.ones(len(points), dtype=bool)
        offsets = [np.zeros(3)] + ([np.eye(3)[i] * s * margin for i in range(3) for s in (-1, 1)] if margin else [])
        for offset in offsets:
            idx = np.rint((points + offset - self.origin) / self.steps).astype(int)
            idx[:, 2] = np.clip(idx[:, 2], 0, self.limits[2])  # the lungs go on above and below the scan
            valid = np.all((idx >= 0) & (idx <= self.limits), axis=1)
            hit = np.zeros(len(points), dtype=bool)
            hit[valid] = self.lung[idx[valid, 2], idx[valid, 1], idx[valid, 0]]
            ok &= hit
        return ok

    def sample(self, n: int, margin: float, rng: np.random.Generator) -> np.ndarray:
        """n random points (x, y, z mm) of the lung at least `margin` mm from its border (along the axes)."""
        flat = np.flatnonzero(self.lung[:, ::2, ::2])  # a coarser grid is plenty to draw candidates from
        nz, ny, nx = self.lung[:, ::2, ::2].shape
        out = np.empty((0, 3))
        while len(out) < n:
            pick = rng.choice(flat, size=2 * n)
            z, y, x = np.unravel_index(pick, (nz, ny, nx))
            zyx = np.stack([z, 2 * y, 2 * x], axis=1) + rng.uniform(-0.5, 0.5, (len(pick), 3)) * (1, 2, 2)
            points = self.origin + zyx[:, ::-1] * self.steps
            points = points[self.contains(points, margin) & ~_near_nodule(points)]
            out = np.vstack([out, points])
        return out[:n]


def _near_nodule(points: np.ndarray) -> np.ndarray:
    """True for points where random vessels must not go: only the juxta-vascular nodule touches a vessel."""
    near = np.zeros(len(points), dtype=bool)
    for spec in NODULE_SPECS:
        keep_out = spec.block_radius if spec.kind != "juxta-vascular" else spec.radius + 2.0
        near |= np.linalg.norm(points - np.asarray(spec.center_xyz), axis=1) < keep_out + 1.0
    return near


def _box_of(mask: np.ndarray) -> tuple[slice, slice, slice]:
    """The (z, y, x) bounding box of a mask, a few voxels wider in-plane."""
    box = []
    for axis, pad in ((0, 0), (1, 6), (2, 6)):
        other = tuple(a for a in range(3) if a != axis)
        idx = np.flatnonzero(mask.any(axis=other))
        box.append(slice(max(int(idx[0]) - pad, 0), min(int(idx[-1]) + pad + 1, mask.shape[axis])))
    return tuple(box)


def _canvas(box: tuple[slice, slice, slice]) -> TubeCanvas:
    shape = tuple(b.stop - b.start for b in box)
    origin = anatomy.to_patient((box[0].start, box[1].start, box[2].start))
    return TubeCanvas(shape, anatomy.SPACING, origin)


def _draw_trees(hu: np.ndarray, lung: np.ndarray, airway_ok: np.ndarray, rng: np.random.Generator) -> None:
    """Grow and paint the vessels (in the lung) and the airways (in the lung and mediastinal fat)."""
    lookup = _LungLookup(lung)

    def allowed(points: np.ndarray) -> np.ndarray:
        return lookup.contains(points, 1.0) & ~_near_nodule(points)

    attractors = lookup.sample(VESSEL_ATTRACTORS, PLEURAL_MARGIN, rng)
    tree = colonize(VESSEL_ROOTS, attractors, allowed, VESSELS, rng)
    box = _box_of(lung)  # tubes are painted in the box around the lungs only
    vessels = _canvas(box)
    # the vessel that runs into the juxta-vascular nodule, branching off the right lower lobe artery
    a, b = juxta_vessel_path()
    r = JUXTA_VESSEL["radius"]
    tip = b + (b - a) / np.linalg.norm(b - a) * 20.0
    vessels.add_all(tree.segments() + [Segment(VESSEL_ROOTS[3][0], tuple(a), r * 1.3, r),
                                       Segment(tuple(a), tuple(b), r, r * 0.9),
                                       Segment(tuple(b), tuple(tip), r * 0.9, r * 0.5)])
    weight = vessels.fraction
    weight *= lung[box]
    sub = hu[box]
    sub += (anatomy.BLOOD - sub) * weight
    del vessels, weight

    airway_tree = colonize(AIRWAY_ROOTS, lookup.sample(AIRWAY_ATTRACTORS, PLEURAL_MARGIN, rng), allowed, AIRWAYS, rng)
    segments = [Segment(p, q, r, r) for p, q, r in TRACHEA] + airway_tree.segments(AIRWAY_MIN_LUMEN)
    walls, lumens = _canvas(box), _canvas(box)
    walls.add_all([Segment(s.p, s.q, s.r0 * 1.2 + 0.6, s.r1 * 1.2 + 0.6) for s in segments])
    lumens.add_all(segments)
    ok = airway_ok[box]
    wall = np.maximum(walls.fraction - lumens.fraction, 0.0) * ok
    lumen = lumens.fraction * ok
    sub += (BRONCHIAL_WALL - sub) * wall
    sub += (anatomy.AIR - sub) * lumen


def _add_noise_and_blur(hu: np.ndarray, rng: np.random.Generator) -> None:
    """hu <- blur(hu + white noise), the white noise scaled so that the blurred noise has std NOISE_HU."""
    impulse = np.zeros((9, 9, 9), dtype=np.float64)
    impulse[4, 4, 4] = 1.0
    gain = float(np.sqrt((gaussian_filter(impulse, BLUR_SIGMA) ** 2).sum()))  # std of blurred unit white noise
    noise = rng.standard_normal(hu.shape, dtype=np.float32)
    noise *= NOISE_HU / gain
    hu += noise
    del noise
    gaussian_filter(hu, BLUR_SIGMA, output=hu)
