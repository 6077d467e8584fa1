"""What leaves the application: one `ExportItem` per kept mask or probability map, and the export error."""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..imaging.volume import Volume

GENERATION_TYPES = ("AUTOMATIC", "SEMIAUTOMATIC", "MANUAL")
# Defined terms of RT ROI Interpreted Type (PS3.3 C.8.8.8); other uppercase codes are allowed by the standard.
INTERPRETED_TYPES = ("EXTERNAL", "PTV", "CTV", "GTV", "AVOIDANCE", "ORGAN", "MARKER", "REGISTRATION", "ISOCENTER",
                     "CONTRAST_AGENT", "CAVITY", "BRACHY_CHANNEL", "BRACHY_ACCESSORY", "BRACHY_SRC_APP",
                     "BRACHY_CHNL_SHLD", "SUPPORT", "FIXATION", "DOSE_REGION", "CONTROL", "DOSE_MEASUREMENT")
_CS = re.compile(r"^[A-Z0-9 _]{0,16}$")


class ExportError(Exception):
    """An export or import that cannot be done, with a message that names the file or item and the problem."""


@dataclass
class ExportItem:
    """A kept mask (or probability map) and what to record about where it came from.

    mask: (z, y, x) on the volume grid, bool for a mask or float in [0, 1] for a probability map.
    color: display colour (r, g, b), 0-255.  interpreted_type: RT ROI Interpreted Type ("GTV", "ORGAN", "CONTROL"...).
    algorithm: the model's name.  algorithm_version: e.g. the checkpoint's sha256.  description: free text, e.g.
    "Probabilistic SAM, checkpoint sha256 abcd..., hypothesis 3 of 16".  generation: AUTOMATIC, SEMIAUTOMATIC
    (prompted by a user, the usual case here) or MANUAL.
    """

    name: str
    mask: np.ndarray
    color: tuple[int, int, int] = (255, 0, 0)
    interpreted_type: str = "GTV"
    algorithm: str = ""
    description: str = ""
    algorithm_version: str = ""
    generation: str = "SEMIAUTOMATIC"

    @property
    def is_probability(self) -> bool:
        return np.asarray(self.mask).dtype.kind == "f"

    def binary(self, threshold: float = 0.5) -> np.ndarray:
        """The mask as bool; a probability map is thresholded (p >= threshold)."""
        mask = np.asarray(self.mask)
        return mask >= threshold if self.is_probability else mask.astype(bool)

    def probabilities(self) -> np.ndarray:
        """The map as float32 in [0, 1]; a bool mask becomes 0/1."""
        return np.clip(np.asarray(self.mask, dtype=np.float32), 0.0, 1.0)


def check_items(items: list[ExportItem], volume: Volume) -> None:
    """Refuse, with a message naming the item, anything that cannot be exported faithfully."""
    if not items:
        raise ExportError("nothing to export: no items were given")
    names = [item.name for item in items]
    for item in items:
        label = f"item '{item.name}'"
        if not item.name.strip():
            raise ExportError("an item has an empty name")
        if len(item.name) > 64:
            raise ExportError(f"{label}: name is longer than 64 characters (DICOM LO)")
        if names.count(item.name) > 1:
            raise ExportError(f"{label}: the name is used by more than one item")
        mask = np.asarray(item.mask)
        if mask.shape != tuple(volume.shape):
            raise ExportError(f"{label}: mask shape {mask.shape} does not match the series {tuple(volume.shape)}")
        if mask.dtype.kind == "f" and not np.all(np.isfinite(mask)):
            raise ExportError(f"{label}: the probability map contains NaN or infinite values")
        if not (mask > 0).any():
            raise ExportError(f"{label}: the mask is empty, nothing to export")
        if len(item.color) != 3 or not all(0 <= int(c) <= 255 for c in item.color):
            raise ExportError(f"{label}: colour {tuple(item.color)} is not three values in 0-255")
        if item.generation not in GENERATION_TYPES:
            raise ExportError(f"{label}: generation '{item.generation}' is not one of {', '.join(GENERATION_TYPES)}")
        if not _CS.match(item.interpreted_type):
            raise ExportError(f"{label}: interpreted type '{item.interpreted_type}' is not a DICOM code string "
                              f"(uppercase, at most 16 characters), e.g. GTV, ORGAN, CONTROL")


def check_identity(volume: Volume, what: str) -> None:
    """A DICOM export references the source series: its UIDs must be known."""
    ident = volume.identity
    missing = [name for name, value in (("Study Instance UID", ident.study_uid),
                                        ("Series Instance UID", ident.series_uid),
                                        ("Frame of Reference UID", ident.frame_of_reference_uid),
                                        ("SOP Class UID", ident.sop_class_uid)) if not value]
    if len(ident.sop_instance_uids) != volume.shape[0]:
        missing.append(f"SOP Instance UIDs ({len(ident.sop_instance_uids)} for {volume.shape[0]} slices)")
    if missing:
        raise ExportError(f"cannot write {what}: the series was not loaded from DICOM or lacks "
                          + ", ".join(missing))
