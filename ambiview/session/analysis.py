"""What the hypothesis side panels show about the current result, and the ways of keeping a mask (no Qt).

The panels only display: the interpretations (modes), the spread of sizes and diameters, the diversity and each
hypothesis's IoU with the consensus are computed here, through `ambiview.uncertainty`, once per result (a small
cache keyed by the result object), on the result's own ROI grid with its real pixel spacing.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..uncertainty.consensus import consensus_mask, staple
from ..uncertainty.metrics import diversity
from ..uncertainty.modes import Mode, cluster_modes, describe_modes, share_percentages
from ..uncertainty.stats import iou_with, longest_axial_diameter_mm, longest_diameter_mm, mask_size
from .result import SegmentationResult

DEFAULT_LEVEL = 0.5
_CACHE_SIZE = 6


class _ResultCache:
    """Values computed from a result, remembered while the result object is one of the last few seen."""

    def __init__(self, size: int = _CACHE_SIZE) -> None:
        self.size = size
        self._items: list[tuple[Any, tuple, Any]] = []  # (result, key, value); the result is held, so ids stay valid

    def get(self, result: Any, key: tuple, compute: Callable[[], Any]) -> Any:
        for held, held_key, value in self._items:
            if held is result and held_key == key:
                return value
        value = compute()
        self._items.append((result, key, value))
        del self._items[:-self.size]
        return value


_cache = _ResultCache()


def roi_spacing(result: SegmentationResult) -> tuple[float, ...]:
    """Pixel spacing of the result's grid in mm: (dy, dx) for 2D, (dz, dy, dx) for 3D."""
    geometry = result.roi_geometry
    return tuple(geometry.spacing) if result.is_3d else tuple(geometry.pixel_spacing)


def masks_of(result: SegmentationResult) -> np.ndarray:
    """The hypotheses as bool masks (p >= 0.5, the rule the export uses)."""
    return _cache.get(result, ("masks",), result.masks)


@dataclass(frozen=True)
class HypothesisStats:
    """Per-hypothesis size (mm² in 2D, mm³ in 3D) and longest in-plane diameter (mm), the diversity, and each
    hypothesis's IoU with the consensus at `level`."""

    sizes: np.ndarray
    diameters: np.ndarray
    size_unit: str
    size_label: str              # "area" or "volume"
    diversity: float
    level: float
    iou_with_consensus: np.ndarray
    consensus_size: float

    @property
    def n(self) -> int:
        return int(self.sizes.size)


def hypothesis_stats(result: SegmentationResult, level: float = DEFAULT_LEVEL) -> HypothesisStats:
    return _cache.get(result, ("stats", float(level)), lambda: _stats(result, float(level)))


def _stats(result: SegmentationResult, level: float) -> HypothesisStats:
    masks = masks_of(result)
    spacing = roi_spacing(result)
    diameter = longest_axial_diameter_mm if result.is_3d else longest_diameter_mm
    consensus = consensus_mask(masks, level)
    return HypothesisStats(
        sizes=np.array([mask_size(m, spacing) for m in masks]),
        diameters=np.array([diameter(m, spacing) for m in masks]),
        size_unit="mm³" if result.is_3d else "mm²", size_label="volume" if result.is_3d else "area",
        diversity=diversity(masks), level=level, iou_with_consensus=iou_with(masks, consensus),
        consensus_size=mask_size(consensus, spacing))


def modes_of(result: SegmentationResult) -> list[Mode]:
    """The result's interpretations, largest share first (see uncertainty.modes)."""
    return _cache.get(result, ("modes",), lambda: cluster_modes(masks_of(result)))


def modes_text(result: SegmentationResult) -> str:
    """E.g. "3 interpretations: 62% / 25% / 13%"."""
    return describe_modes(modes_of(result))


def mode_index_of(modes: list[Mode], hypothesis: int) -> int | None:
    """Index of the mode that holds `hypothesis`, None if none does."""
    return next((i for i, m in enumerate(modes) if hypothesis in m.members), None)


def mode_percentages(modes: list[Mode]) -> list[int]:
    """Whole percentages of the modes' shares that add up to 100, as in `modes_text`."""
    return share_percentages(modes)


# --- keeping ------------------------------------------------------------------------------------------------------------
def _need_result(session) -> SegmentationResult:
    if session.result is None:
        raise ValueError("there are no hypotheses yet: place a prompt and run a model first")
    return session.result


def _unique(session, name: str) -> str:
    names = {k.name for k in session.kept}
    if name not in names:
        return name
    i = 2
    while f"{name} ({i})" in names:
        i += 1
    return f"{name} ({i})"


def keep_hypothesis(session, index: int | None = None):
    """Keep hypothesis `index` (default: the one shown) as a named item."""
    result = _need_result(session)
    k = session.hypothesis if index is None else int(index)
    if not 0 <= k < result.n:
        raise ValueError(f"hypothesis {k + 1} does not exist (the result holds 1 to {result.n})")
    return session.keep("hypothesis", masks_of(result)[k], _unique(session, f"Hypothesis {k + 1}"),
                        f"hypothesis {k + 1} of {result.n}, seed {result.seed}")


def keep_consensus(session, level: float):
    """Keep the pixels covered by at least a share `level` of the hypotheses."""
    result = _need_result(session)
    if not 0.0 < float(level) <= 1.0:
        raise ValueError(f"the agreement level must lie in (0, 1], got {level}")
    mask = consensus_mask(masks_of(result), float(level))
    return session.keep("consensus", mask, _unique(session, f"Consensus {level:.0%}"),
                        f"consensus of at least {level:.0%} of {result.n} hypotheses, seed {result.seed}")


def keep_staple(session):
    """Keep STAPLE's estimate (Warfield et al. 2004) of the hidden true mask from the hypotheses."""
    result = _need_result(session)
    fused = _cache.get(result, ("staple",), lambda: staple(masks_of(result)))
    note = f" ({fused.note})" if fused.note else ""
    return session.keep("staple", fused.mask, _unique(session, "STAPLE"),
                        f"STAPLE of {result.n} hypotheses, seed {result.seed}{note}")


def keep_mode(session, mode: int | None = None):
    """Keep the representative (medoid) of interpretation `mode` (default: the one holding the shown hypothesis)."""
    result = _need_result(session)
    modes = modes_of(result)
    i = mode_index_of(modes, session.hypothesis) if mode is None else int(mode)
    if i is None or not 0 <= i < len(modes):
        raise ValueError(f"interpretation {0 if i is None else i + 1} does not exist ({len(modes)} found)")
    chosen = modes[i]
    share = mode_percentages(modes)[i]
    return session.keep("mode", masks_of(result)[chosen.representative],
                        _unique(session, f"Interpretation {i + 1} ({share}%)"),
                        f"interpretation {i + 1} of {len(modes)} ({len(chosen.members)} of {result.n} hypotheses), "
                        f"representative hypothesis {chosen.representative + 1}, seed {result.seed}")
