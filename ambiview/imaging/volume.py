"""The Volume: voxels in HU with their geometry and the identity of the series they came from."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .geometry import Geometry


@dataclass
class SeriesIdentity:
    """UIDs and descriptive fields of the source series.

    `display` holds patient, study and series information for the info panel; it is shown on screen only and must
    never be written to a log.  `header` is the first slice's dataset without pixel data, kept so that exports can
    carry the patient and study modules over.
    """

    series_uid: str = ""
    study_uid: str = ""
    frame_of_reference_uid: str = ""
    sop_instance_uids: list[str] = field(default_factory=list)  # in sorted slice order
    sop_class_uid: str = ""
    modality: str = ""
    description: str = ""
    display: dict[str, str] = field(default_factory=dict)
    header: Any = None  # pydicom.Dataset or None
    source: Path | None = None
    files: list[Path] = field(default_factory=list)  # in sorted slice order


@dataclass
class Volume:
    """voxels: (z, y, x) Hounsfield units (int16 when exact, else float32); geometry: the voxel <-> patient map."""

    voxels: np.ndarray
    geometry: Geometry
    identity: SeriesIdentity = field(default_factory=SeriesIdentity)
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if tuple(self.voxels.shape) != tuple(self.geometry.shape):
            raise ValueError(f"voxels {self.voxels.shape} do not match geometry {self.geometry.shape}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.voxels.shape)

    @property
    def spacing(self) -> tuple[float, float, float]:
        return self.geometry.spacing

    def hu_at(self, zyx) -> float | None:
        """HU at the nearest voxel, None outside the volume."""
        idx = tuple(int(round(float(c))) for c in zyx)
        if all(0 <= i < n for i, n in zip(idx, self.shape)):
            return float(self.voxels[idx])
        return None

    @classmethod
    def from_array(cls, voxels: np.ndarray, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), **identity) -> "Volume":
        """A volume on a regular axial grid, for demos and tests."""
        geometry = Geometry.regular(voxels.shape, spacing, origin)
        return cls(voxels, geometry, SeriesIdentity(**identity))
