"""Items the user keeps: a hypothesis, a mode's representative, a consensus level or STAPLE, as named masks.

A kept item owns its mask in the ROI's model grid plus the ROI, so it can be pasted onto the volume grid for export
and stays small in the autosave.  What export writes is exactly the kept items.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..imaging.roi import Roi

KINDS = ("hypothesis", "mode", "consensus", "staple", "expert")

# distinct, colour-blind-friendly colours for kept ROIs (Okabe-Ito without black)
KEEP_COLOURS = [(230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178), (213, 94, 0),
                (204, 121, 167)]


@dataclass
class KeptItem:
    name: str
    kind: str                      # one of KINDS
    mask: np.ndarray               # bool, (H, W) or (D, H, W) in the ROI grid
    roi: Roi
    volume_shape: tuple[int, int, int]
    model: str = ""
    model_title: str = ""
    digest: str = ""
    description: str = ""          # e.g. "hypothesis 3 of 16, seed 0" or "consensus >= 50% of 16 hypotheses"
    color: tuple[int, int, int] = (230, 159, 0)
    series_uid: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown kept-item kind {self.kind!r}")
        self.mask = np.asarray(self.mask, bool)

    @property
    def is_empty(self) -> bool:
        return not self.mask.any()

    def volume_mask(self) -> np.ndarray:
        """(z, y, x) bool on the volume grid."""
        return self.roi.paste(self.mask.astype(np.float32), self.volume_shape) >= 0.5

    def meta(self) -> dict:
        return {"name": self.name, "kind": self.kind, "roi": self.roi.to_dict(), "volume_shape": list(self.volume_shape),
                "model": self.model, "model_title": self.model_title, "digest": self.digest,
                "description": self.description, "color": list(self.color), "series_uid": self.series_uid,
                "extra": self.extra}

    @classmethod
    def from_meta(cls, meta: dict, mask: np.ndarray) -> "KeptItem":
        return cls(name=meta["name"], kind=meta["kind"], mask=mask, roi=Roi.from_dict(meta["roi"]),
                   volume_shape=tuple(meta["volume_shape"]), model=meta.get("model", ""),
                   model_title=meta.get("model_title", ""), digest=meta.get("digest", ""),
                   description=meta.get("description", ""), color=tuple(meta.get("color", (230, 159, 0))),
                   series_uid=meta.get("series_uid", ""), extra=meta.get("extra", {}))


@dataclass
class ExpertMask:
    """A reference segmentation to compare the model with: `mask` (z, y, x) bool on the volume grid."""

    name: str
    mask: np.ndarray
    color: tuple[int, int, int] = (255, 255, 255)
    source: str = ""     # e.g. "LIDC rater 2" or the RTSTRUCT file name
