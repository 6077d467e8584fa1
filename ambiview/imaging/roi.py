"""The region of interest a prompt selects: crop from the HU volume into the model's grid, and paste results back.

The models were trained on 64x64 crops at the scan's native pixel spacing, each standardised on its own
((HU - mean) / std), centred on the lesion (see ../shared/data/README.md).  The app must show the models the same
thing, so a ROI is a square of `extent` volume pixels (native spacing) resampled to `size` model pixels.  It is only
grown (extent > size, i.e. coarser pixels) when the lesion would not fit: the training nodules span at most about half
of their crop, so a box prompt gets an extent of at least twice its longest side.

Coordinates: volume pixel centres are integers, so pixel i covers [i - 0.5, i + 0.5].  `top`/`left` are the ROI's
outer edge in those coordinates, and model pixel c has its centre at volume coordinate top + (c + 0.5) * scale.
All patient-space geometry goes through `Geometry.voxel_to_patient`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from .geometry import Geometry

MODEL_CROP = 64      # model pixels per side (the training crops)
LESION_SHARE = 0.5   # the longest side of a box may cover at most this share of the crop


@dataclass(frozen=True)
class Roi:
    """z0..z1-1: slices (2D ROIs have z1 = z0 + 1); top/left: outer edge in volume pixels; extent: side in volume
    pixels; size: side in model pixels."""

    z0: int
    z1: int
    top: float
    left: float
    extent: float
    size: int = MODEL_CROP

    @property
    def scale(self) -> float:
        """Volume pixels per model pixel (1.0 = native spacing)."""
        return self.extent / self.size

    @property
    def depth(self) -> int:
        return self.z1 - self.z0

    # --- construction -----------------------------------------------------------------------------------------------
    @classmethod
    def around(cls, z: int, cy: float, cx: float, lesion_side: float = 0.0, size: int = MODEL_CROP,
               depth: int = 1) -> "Roi":
        """A ROI centred on (cy, cx) of slice z, grown when a lesion of `lesion_side` volume pixels would not fit.

        depth > 1 gives a 3D ROI of that many slices centred on z (the caller clips it to the volume)."""
        extent = float(max(size, math.ceil(lesion_side / LESION_SHARE)))
        top, left = cy - extent / 2.0, cx - extent / 2.0
        if extent == size:  # native spacing: snap to the pixel grid so crop and paste are exact copies
            top, left = math.floor(top + 0.5) - 0.5, math.floor(left + 0.5) - 0.5
        z0 = int(z) - (depth - 1) // 2
        return cls(z0, z0 + depth, top, left, extent, size)

    @classmethod
    def for_box(cls, z: int, y0: float, x0: float, y1: float, x1: float, size: int = MODEL_CROP,
                depth: int = 1) -> "Roi":
        side = max(abs(y1 - y0), abs(x1 - x0)) + 1.0
        return cls.around(z, (y0 + y1) / 2.0, (x0 + x1) / 2.0, side, size, depth)

    def clipped_to(self, nz: int) -> "Roi":
        """Shift a 3D ROI's slice range inside 0..nz (keeping its depth where the volume allows)."""
        depth = min(self.depth, nz)
        z0 = min(max(self.z0, 0), nz - depth)
        return Roi(z0, z0 + depth, self.top, self.left, self.extent, self.size)

    # --- coordinate maps --------------------------------------------------------------------------------------------
    def volume_to_model(self, y, x):
        """Volume pixel coordinates -> model pixel coordinates (centres)."""
        return ((np.asarray(y, float) - self.top) / self.scale - 0.5,
                (np.asarray(x, float) - self.left) / self.scale - 0.5)

    def model_to_volume(self, r, c):
        return (self.top + (np.asarray(r, float) + 0.5) * self.scale,
                self.left + (np.asarray(c, float) + 0.5) * self.scale)

    def box_to_model(self, y0, x0, y1, x1) -> tuple[float, float, float, float]:
        """A box given by inclusive pixel bounds in the volume -> inclusive bounds in the model grid, clipped."""
        (my0, my1), (mx0, mx1) = self.volume_to_model([y0, y1], [x0, x1])
        lo, hi = 0.0, float(self.size - 1)
        return (float(np.clip(my0, lo, hi)), float(np.clip(mx0, lo, hi)),
                float(np.clip(my1, lo, hi)), float(np.clip(mx1, lo, hi)))

    def geometry(self, volume_geometry: Geometry) -> Geometry:
        """Patient-space geometry of the model grid (pixel centres), through the volume's one mapping."""
        zs = np.arange(self.z0, self.z1, dtype=float)
        cy, cx = self.model_to_volume(0.0, 0.0)
        corners = np.stack([zs, np.full_like(zs, cy), np.full_like(zs, cx)], axis=1)
        dy, dx = volume_geometry.pixel_spacing
        return Geometry(volume_geometry.voxel_to_patient(corners), volume_geometry.row_cosine,
                        volume_geometry.col_cosine, (dy * self.scale, dx * self.scale),
                        (self.depth, self.size, self.size))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Roi":
        return cls(int(d["z0"]), int(d["z1"]), float(d["top"]), float(d["left"]), float(d["extent"]),
                   int(d["size"]))

    # --- data -------------------------------------------------------------------------------------------------------
    def crop(self, voxels: np.ndarray) -> np.ndarray:
        """(depth, size, size) float32 HU sampled at the model pixel centres (bilinear in-plane; edge values
        repeated outside the volume, as a scanner's field of view would not end at the lesion)."""
        rows, cols = self.model_to_volume(np.arange(self.size), np.arange(self.size))
        out = np.empty((self.depth, self.size, self.size), np.float32)
        nz = voxels.shape[0]
        exact = self.scale == 1.0 and float(self.top + 0.5).is_integer() and float(self.left + 0.5).is_integer()
        for i, z in enumerate(range(self.z0, self.z1)):
            plane = voxels[min(max(z, 0), nz - 1)]
            if exact:  # integer shift at native spacing: plain indexing, no interpolation blur
                r = np.clip(rows.astype(int), 0, plane.shape[0] - 1)
                c = np.clip(cols.astype(int), 0, plane.shape[1] - 1)
                out[i] = plane[np.ix_(r, c)]
            else:
                rr, cc = np.meshgrid(rows, cols, indexing="ij")
                out[i] = ndimage.map_coordinates(plane.astype(np.float32), [rr, cc], order=1, mode="nearest")
        return out

    def paste(self, values: np.ndarray, shape: tuple[int, int, int], order: int = 1) -> np.ndarray:
        """Model-grid values (depth, size, size) or (size, size) -> a (z, y, x) float32 array of `shape`, zero outside
        the ROI.  Sampled at each volume pixel centre (bilinear by default)."""
        values = np.asarray(values, np.float32)
        if values.ndim == 2:
            values = values[None]
        out = np.zeros(shape, np.float32)
        y_lo = max(int(math.floor(self.top)), 0)
        y_hi = min(int(math.ceil(self.top + self.extent)) + 1, shape[1])
        x_lo = max(int(math.floor(self.left)), 0)
        x_hi = min(int(math.ceil(self.left + self.extent)) + 1, shape[2])
        if y_hi <= y_lo or x_hi <= x_lo:
            return out
        my, mx = self.volume_to_model(np.arange(y_lo, y_hi), np.arange(x_lo, x_hi))
        rr, cc = np.meshgrid(my, mx, indexing="ij")
        # half-open [top, top + extent): a pixel centre on the far edge belongs to the next ROI
        inside = (rr >= -0.5) & (rr < self.size - 0.5) & (cc >= -0.5) & (cc < self.size - 0.5)
        for i, z in enumerate(range(self.z0, self.z1)):
            if 0 <= z < shape[0]:
                sampled = ndimage.map_coordinates(values[i], [rr, cc], order=order, mode="nearest")
                out[z, y_lo:y_hi, x_lo:x_hi] = np.where(inside, sampled, 0.0)
        return out


def standardise(crop: np.ndarray) -> np.ndarray:
    """The training crops' normalisation, per 2D slice: (HU - mean) / std (std floor 1e-6 for flat crops)."""
    crop = np.asarray(crop, np.float32)
    axes = (-2, -1)
    mean = crop.mean(axis=axes, keepdims=True)
    std = crop.std(axis=axes, keepdims=True)
    return ((crop - mean) / np.maximum(std, 1e-6)).astype(np.float32)
