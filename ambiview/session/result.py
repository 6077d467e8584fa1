"""A segmentation result: the hypotheses an engine drew for one prompt, with everything needed to place them.

Stored as a compressed .npz (no pickles): `probs` (n, H, W) or (n, D, H, W) float16 in the ROI's model grid, the ROI
(volume pixel placement), the ROI's patient-space geometry, the series it belongs to, the engine and checkpoint digest,
the seed and the prompts.  `ambiview-cli segment` writes it; `export`, `summary` and the app read it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..imaging.geometry import Geometry
from ..imaging.roi import Roi
from ..atomic_io import write_atomically

FORMAT_VERSION = 1


class ResultFileError(Exception):
    """A result file that cannot be read, with the file named in the message."""


@dataclass
class SegmentationResult:
    probs: np.ndarray                  # (n, H, W) or (n, D, H, W) float32 probabilities in [0, 1]
    roi: Roi
    roi_geometry: Geometry             # patient-space geometry of the model grid (pixel centres)
    volume_shape: tuple[int, int, int]
    series_uid: str = ""
    study_uid: str = ""
    frame_of_reference_uid: str = ""
    model: str = ""
    model_title: str = ""
    digest: str = ""
    seed: int = 0
    prompts: list[dict] = field(default_factory=list)
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    @property
    def n(self) -> int:
        return int(self.probs.shape[0])

    @property
    def is_3d(self) -> bool:
        return self.probs.ndim == 4

    @property
    def probs_3d(self) -> np.ndarray:
        """(n, D, H, W) whatever the dimensionality."""
        return self.probs if self.is_3d else self.probs[:, None]

    def masks(self, threshold: float = 0.5) -> np.ndarray:
        return self.probs >= threshold

    def to_volume(self, values: np.ndarray, order: int = 1) -> np.ndarray:
        """ROI-grid values (H, W) / (D, H, W) -> the (z, y, x) volume grid, zero outside the ROI."""
        return self.roi.paste(values, self.volume_shape, order=order)

    def mask_to_volume(self, mask: np.ndarray) -> np.ndarray:
        """A ROI-grid mask -> a volume-grid bool mask (resampled as a 0/1 field, kept at >= 0.5)."""
        return self.to_volume(np.asarray(mask, np.float32)) >= 0.5

    # --- files ------------------------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write atomically (a temporary file beside the target, then rename)."""
        meta = {
            "format_version": FORMAT_VERSION, "roi": self.roi.to_dict(), "volume_shape": list(self.volume_shape),
            "series_uid": self.series_uid, "study_uid": self.study_uid,
            "frame_of_reference_uid": self.frame_of_reference_uid, "model": self.model,
            "model_title": self.model_title, "digest": self.digest, "seed": int(self.seed), "prompts": self.prompts,
            "created": self.created,
            "roi_geometry": {"row_cosine": self.roi_geometry.row_cosine.tolist(),
                             "col_cosine": self.roi_geometry.col_cosine.tolist(),
                             "pixel_spacing": list(self.roi_geometry.pixel_spacing)},
        }
        return write_atomically(path, lambda fh: np.savez_compressed(
            fh, probs=self.probs.astype(np.float16), roi_slice_origins=self.roi_geometry.slice_origins,
            meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)))

    @classmethod
    def load(cls, path: str | Path) -> "SegmentationResult":
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(bytes(data["meta"]).decode())
                probs = data["probs"].astype(np.float32)
                origins = data["roi_slice_origins"]
        except FileNotFoundError as exc:
            raise ResultFileError(f"{path}: no such file") from exc
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
            raise ResultFileError(f"{path}: not an AmbiView result file ({exc})") from exc
        if meta.get("format_version") != FORMAT_VERSION:
            raise ResultFileError(f"{path}: result format {meta.get('format_version')} is not supported")
        g = meta["roi_geometry"]
        shape = probs.shape[1:] if probs.ndim == 4 else (1,) + probs.shape[1:]
        geometry = Geometry(origins, g["row_cosine"], g["col_cosine"], tuple(g["pixel_spacing"]), shape)
        return cls(probs=probs, roi=Roi.from_dict(meta["roi"]), roi_geometry=geometry,
                   volume_shape=tuple(meta["volume_shape"]), series_uid=meta["series_uid"],
                   study_uid=meta["study_uid"], frame_of_reference_uid=meta["frame_of_reference_uid"],
                   model=meta["model"], model_title=meta["model_title"], digest=meta["digest"], seed=meta["seed"],
                   prompts=meta["prompts"], created=meta["created"])
