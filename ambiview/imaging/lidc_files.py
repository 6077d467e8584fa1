"""The files of a lidc-crops64 split, read once for everyone: names, and one crop with its raters and consensus.

Layout: `scans/`, `masks/annots/`, `masks/GT/`, each holding `pid_PPPP_nod_N_slice_K.tif` (see the data README).
Both the viewer's study reader (`imaging.lidc_study`) and the training/evaluation reader (`models.lidc`) use this
module and turn `LidcFileError` into their own error type.  tifffile is imported on first read only.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

SPLIT_PARTS = ("scans", "masks/annots", "masks/GT")
NAME = re.compile(r"^pid_(?P<pid>\d+)_nod_(?P<nod>\d+)_slice_(?P<slice>\d+)$")


class LidcFileError(Exception):
    """A crop file that cannot be used; the message names the file and the problem."""


def parse_name(name: str) -> tuple[str, int, int]:
    """(patient, nodule, slice) from a file stem like `pid_0035_nod_0_slice_2`."""
    match = NAME.match(name)
    if match is None:
        raise LidcFileError(f"{name}: not a lidc-crops64 name (expected pid_PPPP_nod_N_slice_K)")
    return match["pid"], int(match["nod"]), int(match["slice"])


def read_tif(path: Path) -> np.ndarray:
    import tifffile

    if not Path(path).is_file():
        raise LidcFileError(f"{path}: file missing")
    try:
        return np.asarray(tifffile.imread(path))
    except Exception as exc:  # tifffile raises many types for a damaged file
        raise LidcFileError(f"{path}: cannot read TIFF ({exc})") from exc


def read_crop(split_dir: Path, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scan (H, W) float32, raters (R, H, W) bool, consensus (H, W) bool) of one crop, shapes checked."""
    split_dir = Path(split_dir)
    scan_path = split_dir / "scans" / f"{name}.tif"
    annots_path = split_dir / "masks" / "annots" / f"{name}.tif"
    gt_path = split_dir / "masks" / "GT" / f"{name}.tif"
    scan = read_tif(scan_path)
    scan = scan[0] if scan.ndim == 3 and scan.shape[0] == 1 else scan
    if scan.ndim != 2 or min(scan.shape) < 2:
        raise LidcFileError(f"{scan_path}: expected a crop of shape (1, H, W), got {scan.shape}")
    if not np.all(np.isfinite(scan)):
        raise LidcFileError(f"{scan_path}: contains NaN or infinite values")
    h, w = scan.shape
    annots = read_tif(annots_path)
    annots = annots[0] if annots.ndim == 4 and annots.shape[0] == 1 else annots
    if annots.ndim != 3 or annots.shape[:2] != (h, w) or not 1 <= annots.shape[2] <= 16:
        raise LidcFileError(f"{annots_path}: expected rater masks of shape (1, {h}, {w}, R), got {annots.shape}")
    gt = read_tif(gt_path)
    gt = gt[0] if gt.ndim == 3 and gt.shape[0] == 1 else gt
    if gt.shape != (h, w):
        raise LidcFileError(f"{gt_path}: expected a consensus mask of shape (1, {h}, {w}), got {gt.shape}")
    raters = np.ascontiguousarray(np.moveaxis(annots, -1, 0) > 0)
    return scan.astype(np.float32), raters, gt > 0
