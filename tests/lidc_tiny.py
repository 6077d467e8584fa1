"""Tiny folders in the lidc-crops64 layout (scans/, masks/annots/, masks/GT/), written with tifffile for tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile


def square(y0: int, x0: int, side: int, size: int = 64) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    mask[y0:y0 + side, x0:x0 + side] = True
    return mask


def write_item(split: Path, name: str, raters: list[np.ndarray], gt: np.ndarray, seed: int = 0) -> None:
    """One crop: a standardised scan with a bright blob where the consensus is, R rater masks, the consensus."""
    rng = np.random.default_rng(seed)
    scan = rng.normal(0.0, 0.3, gt.shape) + 2.0 * gt
    scan = (scan - scan.mean()) / scan.std()
    for sub in ("scans", "masks/annots", "masks/GT"):
        (split / sub).mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(split / "scans" / f"{name}.tif", scan[None].astype(np.float64))
    tifffile.imwrite(split / "masks" / "annots" / f"{name}.tif", np.stack(raters, axis=-1)[None])
    tifffile.imwrite(split / "masks" / "GT" / f"{name}.tif", gt[None])


def write_split(split: Path, count: int = 4, seed: int = 0) -> Path:
    """`count` crops with 2-4 raters each: squares of varying size around the centre, one rater empty on odd items."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        r = 2 + i % 3
        raters = [square(24 + int(rng.integers(-3, 4)), 24 + int(rng.integers(-3, 4)), 10 + int(rng.integers(0, 8)))
                  for _ in range(r)]
        if i % 2:
            raters[-1] = np.zeros_like(raters[0])
        gt = np.mean(raters, axis=0) >= 0.5
        write_item(split, f"pid_{9000 + i:04d}_nod_0_slice_{i}", raters, gt, seed=seed + i)
    return split
