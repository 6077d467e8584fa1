"""Reader for the multi-rater LIDC-IDRI crops (a split of lidc-crops64: `scans/`, `masks/annots/`, `masks/GT/`).

Each item is one 64x64 axial crop, standardised on its own ((HU - mean) / std of the crop), with one mask per rater
(R = 2..4, a rater's mask may be empty) and the 50% consensus.  File names are `pid_PPPP_nod_N_slice_K.tif`;
consecutive K of one nodule are consecutive axial slices, so `nodule_stacks` can rebuild small 3D stacks.
Data: LIDC-IDRI (Armato et al. 2011, CC BY 3.0); crops from rCampSemp/learn-vae-noisy-label.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..imaging.lidc_files import NAME, LidcFileError, read_crop
from ..imaging.lidc_files import parse_name as _parse_name
from .base import ModelError


class LidcDataError(ModelError):
    """A split folder or one of its files is missing or malformed; the message names the file."""


@dataclass(frozen=True)
class LidcItem:
    """One crop: scan (H, W) float32 standardised, raters (R, H, W) bool, gt (H, W) bool."""

    name: str
    scan: np.ndarray
    raters: np.ndarray
    gt: np.ndarray
    patient: str
    nodule: int
    slice_index: int

    @property
    def nodule_id(self) -> str:
        return f"pid_{self.patient}_nod_{self.nodule}"


@dataclass(frozen=True)
class NoduleStack:
    """Consecutive axial slices of one nodule: scans (D, H, W), raters (D, R, H, W), gt (D, H, W)."""

    nodule_id: str
    slice_indices: tuple[int, ...]
    names: tuple[str, ...]
    scans: np.ndarray
    raters: np.ndarray
    gt: np.ndarray


def parse_name(name: str) -> tuple[str, int, int]:
    """(patient, nodule, slice) from a file stem like `pid_0035_nod_0_slice_2`."""
    try:
        return _parse_name(name)
    except LidcFileError as exc:
        raise LidcDataError(str(exc)) from exc


def _sort_key(name: str) -> tuple[str, int, int]:
    return parse_name(name)


def check_split(split_dir: Path) -> Path:
    """The split folder if it has the expected layout, else LidcDataError naming what is missing."""
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise LidcDataError(f"{split_dir}: no such folder")
    for sub in ("scans", "masks/annots", "masks/GT"):
        if not (split_dir / sub).is_dir():
            raise LidcDataError(f"{split_dir}: missing the '{sub}/' folder (expected a lidc-crops64 split)")
    return split_dir


def list_names(split_dir: Path) -> list[str]:
    """File stems of the split's scans, ordered by patient, nodule and slice."""
    split_dir = check_split(split_dir)
    names = [p.stem for p in (split_dir / "scans").glob("*.tif") if NAME.match(p.stem)]
    if not names:
        raise LidcDataError(f"{split_dir / 'scans'}: no pid_*_nod_*_slice_*.tif files")
    return sorted(names, key=_sort_key)


def read_item(split_dir: Path, name: str) -> LidcItem:
    """Read one crop with its rater masks and consensus; shapes are checked against each other."""
    patient, nodule, slice_index = parse_name(name)
    try:
        scan, raters, gt = read_crop(Path(split_dir), name)
    except LidcFileError as exc:
        raise LidcDataError(str(exc)) from exc
    return LidcItem(name=name, scan=scan, raters=raters, gt=gt, patient=patient, nodule=nodule,
                    slice_index=slice_index)


def load_split(split_dir: Path, limit: int | None = None) -> list[LidcItem]:
    """All items of a split (or the first `limit` in name order)."""
    names = list_names(split_dir)
    if limit is not None:
        if limit < 1:
            raise LidcDataError(f"limit must be at least 1, got {limit}")
        names = names[:limit]
    return [read_item(split_dir, name) for name in names]


def nodule_stacks(items: list[LidcItem], min_slices: int = 2) -> list[NoduleStack]:
    """Group items into runs of consecutive slice numbers per nodule (a gap in K starts a new stack).

    Stacks shorter than `min_slices` are left out.  Items of one stack must share the rater count.
    """
    by_nodule: dict[str, list[LidcItem]] = {}
    for item in items:
        by_nodule.setdefault(item.nodule_id, []).append(item)
    stacks: list[NoduleStack] = []
    for nodule_id in sorted(by_nodule):
        run: list[LidcItem] = []
        for item in sorted(by_nodule[nodule_id], key=lambda it: it.slice_index):
            if run and item.slice_index != run[-1].slice_index + 1:
                stacks.append(_stack(run))
                run = []
            run.append(item)
        if run:
            stacks.append(_stack(run))
    return [s for s in stacks if len(s.slice_indices) >= min_slices]


def _stack(run: list[LidcItem]) -> NoduleStack:
    counts = {it.raters.shape[0] for it in run}
    if len(counts) != 1:
        raise LidcDataError(f"{run[0].nodule_id}: rater count differs between slices ({sorted(counts)})")
    return NoduleStack(
        nodule_id=run[0].nodule_id,
        slice_indices=tuple(it.slice_index for it in run),
        names=tuple(it.name for it in run),
        scans=np.stack([it.scan for it in run]),
        raters=np.stack([it.raters for it in run]),
        gt=np.stack([it.gt for it in run]),
    )
