"""NIfTI export (SimpleITK) of masks and probability maps, placed in patient space by the series' Geometry.

SimpleITK works in LPS like DICOM and converts to NIfTI's RAS when writing, so we hand it the LPS origin and the
direction cosines as they are.  One affine cannot describe uneven slice spacing, so such a series is written on an
even grid (each slice taken from the nearest source slice), and the returned notes say so.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..imaging.geometry import Geometry
from .atomic import atomic_write
from .items import ExportError


def to_sitk_image(array: np.ndarray, geometry: Geometry) -> tuple[sitk.Image, list[str]]:
    """A SimpleITK image of a (z, y, x) array placed by the geometry, and notes on what had to change.

    Unevenly spaced slices are put on an even grid (step: the median gap) by taking the nearest slice, since one
    affine cannot hold them; tilted slices are refused (ITK would silently square the sheared direction matrix).
    """
    array = np.asarray(array)
    if array.shape != tuple(geometry.shape):
        raise ExportError(f"array shape {array.shape} does not match the series {tuple(geometry.shape)}")
    if geometry.tilt_degrees > 0.01:
        raise ExportError(f"the slices are tilted by {geometry.tilt_degrees:.2f} degrees (gantry tilt); NIfTI "
                          "cannot place them without resampling; export DICOM SEG or RTSTRUCT instead")
    if array.dtype == bool:
        array = array.astype(np.uint8)
    elif array.dtype.kind == "f":
        array = array.astype(np.float32)
    array, dz, notes = _even_slices(array, geometry)
    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    dy, dx = geometry.pixel_spacing
    direction = np.column_stack([geometry.row_cosine, geometry.col_cosine, geometry.normal])
    image.SetSpacing((dx, dy, dz))
    image.SetOrigin(tuple(float(v) for v in geometry.origin))
    image.SetDirection(tuple(float(v) for v in direction.ravel()))
    return image, notes


def _even_slices(array: np.ndarray, geometry: Geometry) -> tuple[np.ndarray, float, list[str]]:
    """The array on evenly spaced slices starting at the first slice, its step (mm) and a note if resampled."""
    positions = geometry.slice_positions
    if geometry.shape[0] < 2:
        return array, 1.0, []
    step = geometry.slice_spacing
    if step <= 0:
        raise ExportError("the slices of the series all lie at the same position; no NIfTI affine exists")
    if geometry.is_evenly_spaced:
        return array, float(positions[-1] - positions[0]) / (len(positions) - 1), []
    count = round((positions[-1] - positions[0]) / step) + 1
    targets = positions[0] + step * np.arange(count)
    nearest = np.argmin(np.abs(positions[None, :] - targets[:, None]), axis=1)
    error = float(np.max(np.abs(positions[nearest] - targets)))
    note = (f"slices are unevenly spaced: written on {count} even slices {step:.3g} mm apart, each taken from the "
            f"nearest of the {len(positions)} slices (at most {error:.2f} mm away)")
    return array[nearest], step, [note]


def write_nifti(array: np.ndarray, geometry: Geometry, path: Path | str, protected=()) -> tuple[Path, list[str]]:
    """Write a mask (uint8 0/1) or probability map (float32) as .nii or .nii.gz atomically.

    Returns the path written and notes on what the file could not hold exactly (uneven slices).
    """
    path = Path(path)
    if not (path.name.endswith(".nii") or path.name.endswith(".nii.gz")):
        raise ExportError(f"{path}: a NIfTI file name must end in .nii or .nii.gz")
    image, notes = to_sitk_image(array, geometry)

    def write(tmp: Path) -> None:
        try:
            sitk.WriteImage(image, str(tmp), useCompression=tmp.name.endswith(".gz"))
        except RuntimeError as exc:  # SimpleITK reports I/O failures as RuntimeError
            raise OSError(f"SimpleITK could not write the file: {str(exc).strip().splitlines()[-1]}") from exc

    return atomic_write(path, write, protected), notes
