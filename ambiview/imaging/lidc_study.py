"""A study of LIDC-IDRI nodule crops (the lidc-crops64 layout) opened as small volumes, without torch.

A folder laid out like a split of lidc-crops64 (`scans/`, `masks/annots/`, `masks/GT/`), or the lidc-crops64 root
holding such splits (`train/`, `validate/`), opens as a *study*: a list of nodules.  Consecutive slice numbers K of one
`pid_PPPP_nod_N` are consecutive axial slices, so each run of consecutive K becomes one small (D, 64, 64) volume; a
gap in K starts a new run.  The radiologists' masks of a run become the reference ("expert") masks.

What the files do not hold, and what we put in its place (the UI says so):

- values are standardised per crop ((HU - crop mean) / crop SD), not HU: `STANDARDISED_WINDOW` shows them;
- the pixel spacing is not stored: a nominal `NOMINAL_SPACING` (0.7 mm in-plane, the middle of the source's
  0.5-0.9 mm) is used, so millimetre figures are approximate;
- the slice distance is not stored either: a nominal 1.25 mm.

Data: LIDC-IDRI (Armato et al., Med. Phys. 38(2), 2011; TCIA doi:10.7937/K9/TCIA.2015.LO9QL9SX), CC BY 3.0; crops
as published with rCampSemp/learn-vae-noisy-label.  `ambiview.models.lidc` reads the same files for training (with
torch around); this reader is the imaging-side one the viewer uses.
"""
from __future__ import annotations

import csv
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .geometry import Geometry
from .lidc_files import NAME, SPLIT_PARTS, LidcFileError, read_crop
from .volume import SeriesIdentity, Volume

NOMINAL_SPACING = (1.25, 0.7, 0.7)  # (dz, dy, dx) mm; not stored in the files
STANDARDISED_WINDOW = ("Standardised crop", (0.0, 6.0))  # centre 0, width 6 standard deviations
ATTRIBUTION = ("LIDC-IDRI (Armato et al., Med. Phys. 2011; TCIA doi:10.7937/K9/TCIA.2015.LO9QL9SX), CC BY 3.0; "
               "crops from rCampSemp/learn-vae-noisy-label")
RATING_NAMES = ("subtlety", "internalStructure", "calcification", "sphericity", "margin", "lobulation",
                "spiculation", "texture", "malignancy")
_UID_NAMESPACE = uuid.UUID("5d1c4a8e-2f57-4a3e-9c31-6a0b7e4f2d10")  # AmbiView's own namespace for derived UIDs


class LidcStudyError(Exception):
    """A folder or file of the study that cannot be used; the message names it and the problem."""


@dataclass(frozen=True)
class NoduleRun:
    """Consecutive slices of one nodule in one split: one small volume."""

    split_dir: Path
    patient: str
    nodule: int
    slices: tuple[int, ...]

    @property
    def split(self) -> str:
        return self.split_dir.name

    @property
    def nodule_id(self) -> str:
        return f"pid_{self.patient}_nod_{self.nodule}"

    @property
    def names(self) -> list[str]:
        return [f"{self.nodule_id}_slice_{k}" for k in self.slices]

    @property
    def key(self) -> str:
        """Stable text key: split, nodule and slice range."""
        return f"{self.split}/{self.nodule_id}_slices_{self.slices[0]}-{self.slices[-1]}"

    @property
    def series_uid(self) -> str:
        """A DICOM-style UID derived from the key (2.25.<UUID>), the same every time, so autosave finds it again."""
        return f"2.25.{uuid.uuid5(_UID_NAMESPACE, self.key).int}"

    @property
    def label(self) -> str:
        first, last = self.slices[0], self.slices[-1]
        where = f"slice {first}" if first == last else f"slices {first}-{last}"
        return f"Patient {self.patient}, nodule {self.nodule} ({where}, {self.split})"


@dataclass
class LidcStudy:
    root: Path
    runs: list[NoduleRun]
    ratings: dict[tuple[str, int], dict[str, float]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def find(self, ref: str) -> NoduleRun | None:
        """The run with this series UID or key, or the first run of a nodule id such as "pid_0133_nod_1"."""
        return next((r for r in self.runs if ref in (r.series_uid, r.key)), None) or \
            next((r for r in self.runs if r.nodule_id == ref), None)


@dataclass
class LidcCase:
    """One opened run: the volume (standardised values), the raters' masks (R, D, H, W) and the 50% consensus."""

    run: NoduleRun
    volume: Volume
    raters: np.ndarray
    consensus: np.ndarray
    rater_names: list[str]
    notes: list[str] = field(default_factory=list)


# --- discovery --------------------------------------------------------------------------------------------------------
def is_split(path: Path) -> bool:
    path = Path(path)
    return all((path / part).is_dir() for part in SPLIT_PARTS)


def split_dirs(path: Path) -> list[Path]:
    """The lidc-crops64 splits at `path`: the folder itself when it is a split, else its sub-folders that are."""
    path = Path(path)
    if not path.is_dir():
        return []
    if is_split(path):
        return [path]
    return sorted(p for p in path.iterdir() if p.is_dir() and is_split(p))


def is_lidc_study(path) -> bool:
    """True for a lidc-crops64 split or root (checked by folder layout only)."""
    return bool(split_dirs(Path(path).expanduser()))


def open_study(path) -> LidcStudy:
    """List the nodule runs of a split or of every split under a lidc-crops64 root (reads file names only)."""
    root = Path(path).expanduser()
    splits = split_dirs(root)
    if not splits:
        if not root.exists():
            raise LidcStudyError(f"{root}: no such folder")
        raise LidcStudyError(f"{root}: not a lidc-crops64 folder (expected {', '.join(p + '/' for p in SPLIT_PARTS)} "
                             "or splits holding them)")
    runs: list[NoduleRun] = []
    problems: list[str] = []
    for split in splits:
        runs += _runs_of(split, problems)
    if not runs:
        raise LidcStudyError(f"{root}: no usable pid_*_nod_*_slice_*.tif crops"
                             + (f" ({'; '.join(problems)})" if problems else ""))
    meta = next((p for p in (root / "meta" / "metadata.csv", root.parent / "meta" / "metadata.csv") if p.is_file()),
                None)
    ratings = _read_ratings(meta, problems) if meta is not None else {}
    return LidcStudy(root, runs, ratings, problems)


def _runs_of(split: Path, problems: list[str]) -> list[NoduleRun]:
    by_nodule: dict[tuple[str, int], list[int]] = {}
    odd, incomplete = [], []
    for scan in sorted((split / "scans").glob("*.tif")):
        match = NAME.match(scan.stem)
        if match is None:
            odd.append(scan.name)
            continue
        if not all((split / "masks" / sub / scan.name).is_file() for sub in ("annots", "GT")):
            incomplete.append(scan.name)
            continue
        by_nodule.setdefault((match["pid"], int(match["nod"])), []).append(int(match["slice"]))
    if odd:
        problems.append(f"{split / 'scans'}: {len(odd)} file(s) not named pid_PPPP_nod_N_slice_K.tif skipped "
                        f"(e.g. {odd[0]})")
    if incomplete:
        problems.append(f"{split}: {len(incomplete)} crop(s) without both masks/annots/ and masks/GT/ files skipped "
                        f"(e.g. {incomplete[0]})")
    runs = []
    for (patient, nodule), ks in sorted(by_nodule.items()):
        ks.sort()
        start = 0
        for i in range(1, len(ks) + 1):
            if i == len(ks) or ks[i] != ks[i - 1] + 1:
                runs.append(NoduleRun(split, patient, nodule, tuple(ks[start:i])))
                start = i
    return runs


def _read_ratings(path: Path, problems: list[str]) -> dict[tuple[str, int], dict[str, float]]:
    """Mean LIDC ratings per (patient, nodule) from meta/metadata.csv; a damaged file is a problem, not an error."""
    out: dict[tuple[str, int], dict[str, float]] = {}
    try:
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                key = (str(row["patient_id"]).zfill(4), int(row["nodule_no"]))
                out[key] = {name: float(row[name]) for name in RATING_NAMES if row.get(name) not in (None, "")}
    except (OSError, KeyError, ValueError, csv.Error) as exc:
        problems.append(f"{path}: ratings not read ({exc})")
        return {}
    return out


# --- loading ----------------------------------------------------------------------------------------------------------
def _read_slice(split: Path, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        return read_crop(split, name)
    except LidcFileError as exc:
        raise LidcStudyError(str(exc)) from exc


def load_case(run: NoduleRun, ratings: dict[str, float] | None = None) -> LidcCase:
    """Read a run's crops into a Volume with nominal spacing, plus its raters' masks and consensus."""
    scans, raters, gts = [], [], []
    for name in run.names:
        scan, rater, gt = _read_slice(run.split_dir, name)
        if scans and scan.shape != scans[0].shape:
            raise LidcStudyError(f"{run.split_dir / 'scans' / (name + '.tif')}: crop size {scan.shape} differs from "
                                 f"the nodule's other slices {scans[0].shape}")
        scans.append(scan)
        raters.append(rater)
        gts.append(gt)
    notes = []
    counts = sorted({r.shape[0] for r in raters})
    n_raters = counts[-1]
    if len(counts) > 1:  # keep every rater; a slice that has fewer gets empty masks for the missing ones
        notes.append(f"{run.nodule_id}: the number of raters differs between slices ({', '.join(map(str, counts))}); "
                     "missing raters count as empty on those slices")
        raters = [np.concatenate([r, np.zeros((n_raters - r.shape[0],) + r.shape[1:], bool)]) for r in raters]
    voxels = np.stack(scans)
    rater_stack = np.ascontiguousarray(np.stack(raters, axis=1))  # (R, D, H, W)
    volume = Volume(voxels, Geometry.regular(voxels.shape, NOMINAL_SPACING), _identity(run, n_raters, ratings))
    volume.warnings.append("LIDC crop: values are standardised units ((HU - crop mean) / crop SD), not HU")
    volume.warnings.append(f"pixel spacing {NOMINAL_SPACING[1]} mm and slice distance {NOMINAL_SPACING[0]} mm are "
                           "nominal (not stored in the files): sizes in mm are approximate")
    names = [f"Rater {i + 1}" for i in range(n_raters)]
    return LidcCase(run, volume, rater_stack, np.stack(gts), names, notes)


def _identity(run: NoduleRun, n_raters: int, ratings: dict[str, float] | None) -> SeriesIdentity:
    dz, dy, dx = NOMINAL_SPACING
    display = {
        "Study": "LIDC-IDRI nodule crops (lidc-crops64)",
        "Patient": f"LIDC-IDRI-{run.patient}",
        "Nodule": f"{run.nodule} ({run.split} split)",
        "Slices": f"{len(run.slices)} (crop slices {run.slices[0]}-{run.slices[-1]})",
        "Raters": str(n_raters),
        "Values": "standardised crop units ((HU - crop mean) / crop SD), not HU",
        "Window": f"{STANDARDISED_WINDOW[0]}: centre {STANDARDISED_WINDOW[1][0]:g}, width {STANDARDISED_WINDOW[1][1]:g}",
        "Pixel spacing": f"{dy} × {dx} mm (nominal: not stored in the files)",
        "Slice distance": f"{dz} mm (nominal: not stored in the files)",
    }
    if ratings:
        display["Mean ratings"] = ", ".join(f"{k} {v:.1f}" for k, v in ratings.items())
    display["Source"] = ATTRIBUTION
    files = [run.split_dir / "scans" / f"{name}.tif" for name in run.names]
    return SeriesIdentity(series_uid=run.series_uid, modality="CT", description=f"LIDC {run.nodule_id}",
                          display=display, source=run.split_dir, files=files)
