"""The demo phantom's grid and its slice-by-slice anatomy (everything except the lung trees and the nodules).

Coordinates are DICOM patient LPS millimetres: x towards the patient's left, y towards the back, z towards the head.
The grid is axial: column index along +x, row index along +y, slice index along +z (slice 0 is the lowest).  Each
structure is a simple analytic shape whose size and position may depend on z, so the stack changes smoothly from the
lung apices at the top to the domes of the diaphragm at the bottom.  HU values follow published CT attenuation ranges
for unenhanced adult chest CT (air -1000, lung about -850 with a gravity gradient, fat about -100, muscle and blood
+40..+50, liver +55..+65, cancellous bone a few hundred, cortical bone +1000).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# --- the grid ----------------------------------------------------------------------------------------------------
SHAPE = (80, 512, 512)  # (z, y, x)
SPACING = (2.5, 0.78125, 0.78125)  # (dz, dy, dx) mm: 400 mm field of view, 2.5 mm slices
ORIGIN = (-255.5 * SPACING[2], -190.0, -160.0)  # patient (x, y, z) of voxel (0, 0, 0)


def to_voxel(xyz) -> tuple[float, float, float]:
    """Patient (x, y, z) mm -> fractional voxel (z, y, x) on the phantom grid."""
    x, y, z = (float(v) for v in xyz)
    return ((z - ORIGIN[2]) / SPACING[0], (y - ORIGIN[1]) / SPACING[1], (x - ORIGIN[0]) / SPACING[2])


def to_patient(zyx) -> tuple[float, float, float]:
    """Fractional voxel (z, y, x) -> patient (x, y, z) mm on the phantom grid."""
    z, y, x = (float(v) for v in zyx)
    return (ORIGIN[0] + x * SPACING[2], ORIGIN[1] + y * SPACING[1], ORIGIN[2] + z * SPACING[0])


def slice_z(k: int) -> float:
    return ORIGIN[2] + k * SPACING[0]


# --- HU of the tissues -------------------------------------------------------------------------------------------
AIR, FAT, MUSCLE, SKIN = -1000.0, -95.0, 45.0, 25.0
BLOOD, HEART, LIVER, SPLEEN, BOWEL = 40.0, 42.0, 58.0, 48.0, 30.0
CORTEX, MARROW, RIB_MARROW, CARTILAGE, DISC, CSF = 1000.0, 230.0, 260.0, 140.0, 85.0, 20.0
LUNG_MEAN, LUNG_GRADIENT = -855.0, 0.35  # HU, HU per mm towards the back (dependent lung is denser)

# --- body wall (semi-axes in mm: lateral, anterior, posterior; centred on x = y = 0) -----------------------------
BODY = (168.0, 118.0, 104.0)
MUSCLE_WALL = (153.0, 105.0, 94.0)  # inner border of the subcutaneous fat
RIB_LINE = (138.0, 88.0, 80.0)  # centre line of the ribs
CAVITY = (131.0, 82.0, 76.0)  # inner (pleural) surface of the chest wall
SKIN_MM = 2.0
TABLE_TOP = 104.5  # y of the table's upper surface

# --- ribs: posterior height (mm), how far each descends towards the front (mm) ------------------------------------
RIB_TOPS = tuple(45.0 - 24.5 * k for k in range(9))
RIB_DROPS = tuple(50.0 + 4.0 * k for k in range(9))
RIB_THETA = (0.25, 2.35, 2.80)  # angle from the back: rib starts, bone becomes cartilage, cartilage ends (rad)
RIB_HALF = (3.5, 6.0)  # radial and vertical half-thickness (mm)
_SCAPULA = (11.0, 15.0)  # radial offset of the scapular plate outside the rib line (mm)


@dataclass(frozen=True)
class SliceAnatomy:
    """One painted slice: HU before noise and blur, and the masks the later stages need."""

    hu: np.ndarray  # (y, x) float32
    lung: np.ndarray  # (y, x) bool: lung parenchyma, where vessels and nodules may go
    airway_ok: np.ndarray  # (y, x) bool: lung or mediastinal fat, where airways may be drawn


@dataclass(frozen=True)
class _Plane:
    """Fields that do not depend on z, computed once over CROP (the box around the body)."""

    X: np.ndarray
    Y: np.ndarray
    rho_cavity: np.ndarray  # normalised radius of the pleural surface (homogeneous of degree 1 in x, y)
    rho_ribs: np.ndarray
    theta: np.ndarray  # angle from the back (0) to the front (pi), either side
    rib_radius: np.ndarray  # local radius (mm) of the rib line, to turn normalised radius into mm
    lung_hu: np.ndarray
    diaphragm_z: np.ndarray  # height (mm) of the diaphragm under each (x, y)


def _superellipse(X, Y, axes, power=2.2):
    a, b_ant, b_post = axes
    b = np.where(Y < 0, b_ant, b_post)
    return (np.abs(X / a) ** power + np.abs(Y / b) ** power) ** (1.0 / power)


def _index_range(lo_mm: float, hi_mm: float, origin: float, step: float, n: int) -> slice:
    return slice(max(int(np.floor((lo_mm - origin) / step)), 0), min(int(np.ceil((hi_mm - origin) / step)) + 1, n))


# all per-slice painting happens inside this (rows, cols) box around the body; outside it a slice is air and table
CROP = (_index_range(-BODY[1] - 4.0, BODY[2] + 4.0, ORIGIN[1], SPACING[1], SHAPE[1]),
        _index_range(-BODY[0] - 4.0, BODY[0] + 4.0, ORIGIN[0], SPACING[2], SHAPE[2]))


def _grid(rows: slice, cols: slice) -> tuple[np.ndarray, np.ndarray]:
    xs = ORIGIN[0] + np.arange(cols.start, cols.stop) * SPACING[2]
    ys = ORIGIN[1] + np.arange(rows.start, rows.stop) * SPACING[1]
    return np.meshgrid(xs.astype(np.float32), ys.astype(np.float32))


@lru_cache(maxsize=1)
def _base() -> np.ndarray:
    """The part of every slice that does not change with z: air, table, skin, subcutaneous fat, muscle."""
    X, Y = _grid(slice(0, SHAPE[1]), slice(0, SHAPE[2]))
    base = np.full(SHAPE[1:], AIR, np.float32)
    # table: carbon-fibre skins around a foam core, slightly dished
    top = TABLE_TOP + 0.0004 * X ** 2
    inside_table = np.abs(X) < 190
    base[inside_table & (Y >= top) & (Y < top + 2)] = 220.0
    base[inside_table & (Y >= top + 2) & (Y < top + 32)] = -880.0
    base[inside_table & (Y >= top + 32) & (Y < top + 34)] = 220.0
    base[_superellipse(X, Y, BODY, 2.4) <= 1] = SKIN
    base[_superellipse(X, Y, tuple(a - SKIN_MM for a in BODY), 2.4) <= 1] = FAT
    base[_superellipse(X, Y, MUSCLE_WALL, 2.3) <= 1] = MUSCLE
    return base


@lru_cache(maxsize=1)
def _plane() -> _Plane:
    X, Y = _grid(*CROP)
    theta = np.arctan2(np.abs(X) / RIB_LINE[0], np.where(Y >= 0, Y / RIB_LINE[2], Y / RIB_LINE[1]))
    rib_radius = np.hypot(RIB_LINE[0] * np.sin(theta), np.where(Y >= 0, RIB_LINE[2], RIB_LINE[1]) * np.cos(theta))
    lung_hu = (LUNG_MEAN + LUNG_GRADIENT * Y).astype(np.float32)
    return _Plane(X, Y, _superellipse(X, Y, CAVITY), _superellipse(X, Y, RIB_LINE), theta.astype(np.float32),
                  rib_radius.astype(np.float32), lung_hu, diaphragm_height(X, Y).astype(np.float32))


@lru_cache(maxsize=64)
def _rib_ring(g: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pixels (rows, cols in CROP) near the rib line of a cage scaled by g, their angle and radial offset (mm)."""
    p = _plane()
    dr = (p.rho_ribs / g - 1.0) * p.rib_radius * g
    rows, cols = np.nonzero((dr > -RIB_HALF[0] - 1.0) & (dr < _SCAPULA[1]))
    return rows, cols, p.theta[rows, cols], dr[rows, cols]


def cage_scale(z: float) -> float:
    """The rib cage narrows towards the thoracic inlet."""
    t = np.clip((z + 30.0) / 80.0, 0.0, 1.0)
    return float(1.0 - 0.22 * t ** 2)


def diaphragm_height(x, y):
    """Height (mm) of the diaphragm at (x, y): two domes, the right one higher, both sloping down to the back."""
    right = -116.0 - 0.0045 * ((x + 55.0) ** 2 + (y + 15.0) ** 2)
    left = -128.0 - 0.0045 * ((x - 55.0) ** 2 + (y + 10.0) ** 2)
    return np.maximum(right, left)


# --- simple 2D shapes evaluated on a bounding window -------------------------------------------------------------
_PAD = 8.0  # mm around every shape's box, so that painting with a margin (a rim of fat) is not clipped


def _window(cx0, cx1, cy0, cy1):
    """Index slices (rows, cols) of CROP covering the patient box [cx0, cx1] x [cy0, cy1] plus _PAD."""
    cx0, cy0, cx1, cy1 = cx0 - _PAD, cy0 - _PAD, cx1 + _PAD, cy1 + _PAD
    rows, cols = CROP
    x0, y0 = ORIGIN[0] + cols.start * SPACING[2], ORIGIN[1] + rows.start * SPACING[1]
    nr, nc = rows.stop - rows.start, cols.stop - cols.start
    c0 = max(int((cx0 - x0) / SPACING[2]) - 1, 0)
    c1 = min(int((cx1 - x0) / SPACING[2]) + 2, nc)
    r0 = max(int((cy0 - y0) / SPACING[1]) - 1, 0)
    r1 = min(int((cy1 - y0) / SPACING[1]) + 2, nr)
    return slice(r0, max(r1, r0)), slice(c0, max(c1, c0))


def _circle(cx, cy, r):
    win = _window(cx - r, cx + r, cy - r, cy + r)
    p = _plane()
    return win, np.hypot(p.X[win] - cx, p.Y[win] - cy) - r


def _capsule(ax, ay, bx, by, r):
    win = _window(min(ax, bx) - r, max(ax, bx) + r, min(ay, by) - r, max(ay, by) + r)
    p = _plane()
    X, Y = p.X[win] - ax, p.Y[win] - ay
    dx, dy = bx - ax, by - ay
    t = np.clip((X * dx + Y * dy) / max(dx * dx + dy * dy, 1e-9), 0.0, 1.0)
    return win, np.hypot(X - t * dx, Y - t * dy) - r


def _ellipse(cx, cy, a, b, angle_deg=0.0):
    """Approximate signed distance (mm) to a rotated ellipse (exact on the axes, good enough for painting)."""
    reach = max(a, b)
    win = _window(cx - reach, cx + reach, cy - reach, cy + reach)
    p = _plane()
    c, s = np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))
    X, Y = p.X[win] - cx, p.Y[win] - cy
    u, v = X * c + Y * s, -X * s + Y * c
    rho = np.hypot(u / a, v / b)
    return win, (rho - 1.0) * min(a, b)


def _paint(hu, shape, value, margin=0.0, mask=None):
    """Paint `value` where the shape's signed distance <= margin; returns the full-size mask painted."""
    win, sd = shape
    inside = sd <= margin
    hu[win][inside] = value
    if mask is not None:
        mask[win] |= inside
    return inside


# --- the mediastinum ------------------------------------------------------------------------------------------------
def _heart_scale(z: float) -> float:
    t = (z + 92.0) / 46.0
    return float(np.sqrt(max(0.0, 1.0 - t * t)))


def _across(z: float, z0: float, z1: float, radius: float) -> float:
    """In-plane radius at height z of a vessel running across the slices between z0 and z1 (round in coronal)."""
    t = (2.0 * z - z0 - z1) / (z1 - z0)
    r = radius * float(np.sqrt(max(0.0, 1.0 - t * t)))
    return r if r >= 1.5 else 0.0


def mediastinal_shapes(z: float) -> list[tuple[str, float, tuple]]:
    """(name, HU, shape) of the mediastinal organs present at height z, painted in this order."""
    shapes: list[tuple[str, float, tuple]] = []
    s = _heart_scale(z)
    if s > 0.3:
        shapes.append(("heart", HEART, _ellipse(22.0, -22.0, 64.0 * s, 47.0 * s, -40.0)))
    if -97.0 <= z <= -60.0:
        shapes.append(("left atrium", HEART, _circle(8.0, 12.0, 24.0)))
    shapes.append(("esophagus", MUSCLE - 10.0, _circle(6.0 + 0.04 * max(0.0, -z - 40.0), 24.0, 7.0)))
    if z <= -22.0:
        shapes.append(("descending aorta", BLOOD, _circle(24.0, 30.0, 12.0)))
    if (r := _across(z, -27.0, -3.0, 12.0)) > 0:
        shapes.append(("aortic arch", BLOOD, _capsule(-12.0, -24.0, 24.0, 30.0, r)))
    if -80.0 <= z <= -22.0:
        shapes.append(("ascending aorta", BLOOD, _circle(-12.0, -24.0, 15.0)))
    if -72.0 <= z <= -38.0:
        shapes.append(("pulmonary trunk", BLOOD, _circle(16.0, -36.0, 13.0)))
    if (r := _across(z, -49.0, -32.0, 10.0)) > 0:
        shapes.append(("left pulmonary artery", BLOOD, _capsule(16.0, -32.0, 50.0, 2.0, r)))
    if (r := _across(z, -57.0, -40.0, 10.0)) > 0:
        shapes.append(("right pulmonary artery", BLOOD, _capsule(8.0, -20.0, -6.0, -5.0, r)))
        shapes.append(("right pulmonary artery", BLOOD, _capsule(-6.0, -5.0, -52.0, 0.0, r)))
    if -62.0 <= z:
        shapes.append(("superior vena cava", BLOOD, _circle(-30.0 - 0.25 * max(0.0, z), -18.0, 9.0)))
    if (r := _across(z, -4.0, 13.0, 6.0)) > 0:
        shapes.append(("left brachiocephalic vein", BLOOD, _capsule(42.0, -32.0, -26.0, -20.0, r)))
    if z > -5.0:
        rise = z + 5.0
        shapes.append(("brachiocephalic artery", BLOOD, _circle(-10.0 - 0.2 * rise, -22.0 + 0.1 * rise, 6.5)))
        shapes.append(("left common carotid", BLOOD, _circle(5.0 + 0.05 * rise, -16.0, 4.5)))
        shapes.append(("left subclavian artery", BLOOD, _circle(18.0 + 0.3 * rise, -4.0, 5.5)))
    return shapes


def _paint_spine(hu, z, excluded):
    """Vertebra, spinal canal, posterior elements and paraspinal muscles; marks them in `excluded`."""
    for side in (-1.0, 1.0):
        _paint(hu, _ellipse(side * 25.0, 86.0, 19.0, 13.0), MUSCLE, margin=3.0, mask=excluded)
    disc = ((z + 150.0) % 27.0) < 5.0
    body = _circle(0.0, 52.0, 16.0)
    if disc:
        _paint(hu, body, DISC, mask=excluded)
    else:
        _paint(hu, body, CORTEX, mask=excluded)
        _paint(hu, body, MARROW, margin=-2.0)
        for side in (-1.0, 1.0):  # transverse processes, where the ribs articulate
            _paint(hu, _capsule(side * 10.0, 74.0, side * 32.0, 80.0, 4.0), CORTEX * 0.75, mask=excluded)
    win, sd = body  # keep a rim of soft tissue between the vertebra and the lung
    excluded[win] |= sd <= 3.0
    _paint(hu, _circle(0.0, 79.0, 12.0), CORTEX * 0.75, mask=excluded)  # pedicles and laminae
    _paint(hu, _capsule(0.0, 88.0, 0.0, 98.0, 3.5), CORTEX * 0.75, mask=excluded)  # spinous process
    _paint(hu, _circle(0.0, 79.0, 7.5), CSF, mask=excluded)
    win, sd = _capsule(0.0, 50.0, 0.0, 100.0, 14.0)
    excluded[win] |= sd <= 0.0


def _paint_ribs(hu, z, g, bone_mask):
    """Ribs (cortex, marrow, costal cartilage) crossing this slice; each rib slopes down towards the front."""
    rows, cols, theta, dr = _rib_ring(g)
    descent = (1.0 - np.cos(theta)) / 2.0
    near = np.abs(dr) <= RIB_HALF[0]
    for top, drop in zip(RIB_TOPS, RIB_DROPS):
        if not (top - drop - RIB_HALF[1] <= z <= top + RIB_HALF[1]):
            continue
        dz = z - (top - drop * descent)
        e = (dr / RIB_HALF[0]) ** 2 + (dz / RIB_HALF[1]) ** 2
        hit = near & (e <= 1.0) & (theta >= RIB_THETA[0]) & (theta <= RIB_THETA[2])
        if not hit.any():
            continue
        values = np.where(theta <= RIB_THETA[1], np.where(e < 0.45, RIB_MARROW, CORTEX), CARTILAGE)
        hu[rows[hit], cols[hit]] = values[hit]
        bone_mask[rows[hit], cols[hit]] = True


def _paint_sternum_scapulae_clavicles(hu, z, g, bone_mask):
    if z > -125.0:  # sternum (manubrium and body), not at the xiphoid level
        shape = _ellipse(0.0, -RIB_LINE[1] * g - 3.0, 17.0, 6.5)
        _paint(hu, shape, CORTEX, mask=bone_mask)
        _paint(hu, shape, MARROW, margin=-1.5)
    if -100.0 < z < 38.0:  # scapulae: thin plates behind the ribs, posterolaterally
        rows, cols, theta, dr = _rib_ring(g)
        plate = (dr > _SCAPULA[0]) & (theta > 0.45) & (theta < 1.2)
        hu[rows[plate], cols[plate]] = CORTEX * 0.7
        bone_mask[rows[plate], cols[plate]] = True
    if z > 25.0:  # clavicles at the thoracic inlet
        for side in (-1.0, 1.0):
            _paint(hu, _capsule(side * 24.0, -98.0, side * 80.0, -90.0, 5.5), CORTEX * 0.8, mask=bone_mask)


def _paint_abdomen(hu, below, p):
    """Organs under the diaphragm: liver on the right, stomach (air anterior: the patient lies supine) and spleen."""
    rows, cols = np.nonzero(below)
    X, Y = p.X[rows, cols], p.Y[rows, cols]
    values = np.full(len(rows), BOWEL, np.float32)
    border = X + 0.45 * Y - 12.0  # the liver's left border runs obliquely, its left lobe reaching forwards
    liver = border < -2.0
    values[liver] = LIVER
    values[np.abs(border) <= 2.0] = FAT
    values[(((X - 78.0) / 30.0) ** 2 + ((Y - 42.0) / 22.0) ** 2) <= 1.0] = SPLEEN
    stomach_r = np.hypot(X - 58.0, Y + 28.0)
    stomach = (stomach_r <= 40.0) & ~liver
    values[stomach] = BOWEL
    values[stomach & (stomach_r <= 37.0) & (Y < -42.0)] = AIR
    hu[rows, cols] = values


def paint_slice(k: int) -> SliceAnatomy:
    """Paint slice k of the phantom (no vessels, airways, nodules, noise or blur)."""
    z = slice_z(k)
    p = _plane()
    full = _base().copy()
    hu = full[CROP]  # a view: painting it paints the slice
    g = cage_scale(z)
    cavity = p.rho_cavity <= g
    hu[cavity] = FAT
    lung = cavity.copy()
    if z > -25.0:  # the apices: each lung ends in a dome
        cap = 100.0 * np.sqrt(max(0.0, 1.0 - ((z + 25.0) / 68.0) ** 2))
        apex = (np.hypot(p.X + 58.0, p.Y - 10.0) <= cap) | (np.hypot(p.X - 58.0, p.Y - 10.0) <= cap)
        lung &= apex
    mediastinum = np.zeros_like(lung)
    _paint(hu, _capsule(0.0, -80.0, 0.0, -40.0, 7.0), FAT, mask=mediastinum)  # anterior junction, prevascular fat
    if z > -50.0:  # superior mediastinum: trachea, oesophagus, great vessels in fat
        _paint(hu, _ellipse(2.0, -8.0, 24.0, 38.0), FAT, mask=mediastinum)
    organs = mediastinal_shapes(z)
    for _, _, shape in organs:  # a rim of mediastinal (and pericardial) fat around every organ
        _paint(hu, shape, FAT, margin=4.0, mask=mediastinum)
    solid = np.zeros_like(lung)
    for _, value, shape in organs:
        _paint(hu, shape, value, mask=solid)
    spine = np.zeros_like(lung)
    _paint_spine(hu, z, spine)
    bone = np.zeros_like(lung)
    _paint_ribs(hu, z, g, bone)
    _paint_sternum_scapulae_clavicles(hu, z, g, bone)
    if z < float(p.diaphragm_z.max()):
        below = cavity & (z < p.diaphragm_z)
        _paint_abdomen(hu, below, p)
        lung &= ~below
    else:
        below = None
    lung &= ~(mediastinum | spine | bone)
    hu[lung] = p.lung_hu[lung]
    airway_ok = (lung | (mediastinum & ~solid)) & ~spine
    if below is not None:
        airway_ok &= ~below
    lung_full = np.zeros(SHAPE[1:], dtype=bool)
    airway_full = np.zeros(SHAPE[1:], dtype=bool)
    lung_full[CROP] = lung
    airway_full[CROP] = airway_ok
    return SliceAnatomy(full, lung_full, airway_full)


def landmarks() -> dict[str, tuple[float, float, float]]:
    """Named reference points (voxel z, y, x) with a known tissue, for tests and for orientation checks."""
    mid = -60.0
    points = {
        "air_outside": (0.0, -150.0, mid),  # in front of the body, top of the image
        "subcutaneous_fat": (-BODY[0] + SKIN_MM + 6.0, 0.0, mid),
        "lateral_muscle": (-(MUSCLE_WALL[0] + CAVITY[0]) / 2 - 1.0, -30.0, mid),
        "right_lung": (-95.0, -45.0, -20.0),
        "left_lung": (95.0, -30.0, -20.0),
        "heart": (30.0, -30.0, -95.0),
        "descending_aorta": (24.0, 30.0, mid),
        "vertebral_body": (0.0, 52.0, mid + 8.0),
        "liver": (-60.0, 0.0, -150.0),
        "spinal_canal": (0.0, 79.0, mid),
    }
    return {name: to_voxel(xyz) for name, xyz in points.items()}
