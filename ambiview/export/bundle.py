"""One export format written for a list of items: the part the `export` command and the app's export dialog share.

Formats: "rtstruct" (one RT Structure Set, one ROI per item), "seg" (one DICOM SEG, one BINARY segment per item),
"seg_fractional" (one DICOM SEG, one FRACTIONAL probability segment per item), "nifti" (one mask) and
"nifti_probability" (one probability map).  A NIfTI file holds a single item, so callers write one file per item.
"""
from __future__ import annotations

from pathlib import Path

from ..imaging.volume import Volume
from .atomic import source_folders
from .items import ExportError, ExportItem

FORMAT_TITLES = {
    "rtstruct": "DICOM RTSTRUCT",
    "seg": "DICOM SEG (binary)",
    "seg_fractional": "DICOM SEG (fractional, mean probability)",
    "nifti": "NIfTI mask",
    "nifti_probability": "NIfTI probability map",
}
DICOM_FORMATS = ("rtstruct", "seg", "seg_fractional")
SINGLE_ITEM_FORMATS = ("nifti", "nifti_probability")
DEFAULT_NAMES = {"rtstruct": "{}_rtstruct.dcm", "seg": "{}_seg.dcm", "seg_fractional": "{}_seg_fractional.dcm",
                 "nifti": "{}.nii.gz", "nifti_probability": "{}_probability.nii.gz"}


def default_path(folder: Path, kind: str, stem: str) -> Path:
    """The default file name of format `kind` for a file stem, inside `folder`."""
    return Path(folder) / DEFAULT_NAMES[kind].format(stem)


def describe_origin(model_title: str = "", model: str = "", digest: str = "") -> str:
    """"Probabilistic SAM, checkpoint sha256 abcd…": what drew a mask, for the files' descriptions."""
    name = model_title or model or "unknown model"
    return name + (f", checkpoint sha256 {digest}" if digest else "")


def write_format(kind: str, items: list[ExportItem], volume: Volume, path: Path) -> tuple[Path, list[str]]:
    """Write `items` on `volume` as format `kind` to `path` atomically; (path written, notes).

    Raises ExportError naming the item or file when it cannot be done (empty mask, source folder, full disk...).
    """
    from .nifti import write_nifti
    from .rtstruct_write import write_rtstruct
    from .seg import write_seg

    if kind not in FORMAT_TITLES:
        raise ExportError(f"unknown export format {kind!r} (known: {', '.join(FORMAT_TITLES)})")
    if kind == "rtstruct":
        return write_rtstruct(items, volume, path), []
    if kind == "seg":
        return write_seg(items, volume, path), []
    if kind == "seg_fractional":
        return write_seg(items, volume, path, fractional=True), []
    if len(items) != 1:
        raise ExportError(f"a NIfTI file holds one item, {len(items)} were given")
    item = items[0]
    array = item.binary() if kind == "nifti" else item.probabilities()
    if not array.any():
        raise ExportError(f"item '{item.name}': the mask is empty, nothing to export")
    return write_nifti(array, volume.geometry, path, source_folders(volume))
