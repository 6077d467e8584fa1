"""Window/level presets (centre, width in HU) and the mapping of HU to display levels."""
from __future__ import annotations

PRESETS: dict[str, tuple[float, float]] = {
    "Lung": (-600.0, 1500.0),
    "Mediastinum": (40.0, 400.0),
    "Soft tissue": (50.0, 350.0),
    "Bone": (400.0, 1800.0),
}
DEFAULT_PRESET = "Lung"


def levels(center: float, width: float) -> tuple[float, float]:
    """(low, high) HU shown black and white for a window centre and width."""
    width = max(float(width), 1.0)
    return center - width / 2.0, center + width / 2.0


def from_levels(low: float, high: float) -> tuple[float, float]:
    """Inverse of levels: (centre, width)."""
    return (low + high) / 2.0, max(high - low, 1.0)
