"""What the hypothesis views show, computed once per result and then looked up: the logic behind the overlays.

`ResultViews(result)` computes, when it is made, the coverage count, every per-pixel measure of
`uncertainty.maps.MEASURES` and the contour of each hypothesis and of each consensus level (count >= k for
k = 1..N) on the axial slice of a 2-D result (on each slice of a 3-D result when that slice is first shown).  Moving
the hypothesis slider, the agreement slider or the measure picker then only looks things up (a few microseconds), so
the views keep up within one frame.  Coronal and sagittal cross-sections are computed when first asked for and
remembered (a few recent slices).

Everything is answered in volume voxel coordinates (z, y, x), the coordinates the slice views map to the screen.
Contours are polylines of shape (k, 3); a `Section` is a 2-D cut through ROI-grid values with the voxel position of
its pixels.  The ROI grid is the model's (see imaging/roi.py): model pixel (d, r, c) sits at volume voxel
(z0 + d, top + (r + 0.5)·scale, left + (c + 0.5)·scale).  A 2-D result is one slice thick, so a coronal or sagittal
view shows it as a band of one slice.  No Qt here.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from skimage.measure import find_contours

from ..uncertainty._arrays import DEFAULT_THRESHOLD
from ..uncertainty.consensus import StapleResult, required_count, staple
from ..uncertainty.maps import MEASURES, coverage_count, disagreement_from_count
from .result import SegmentationResult

AXIAL, CORONAL, SAGITTAL = 0, 1, 2

#: The fixed colour range of each measure: a colour means the same value on every result.
MEASURE_RANGES: dict[str, tuple[float, float]] = {
    "disagreement": (0.0, 1.0), "entropy": (0.0, 1.0), "variance": (0.0, 0.25), "coverage": (0.0, 1.0),
    "mean": (0.0, 1.0),
}
#: Below this share of its range a measure counts as zero and is not drawn (probabilities are never exactly 0).
HIDDEN_SHARE = 0.005
_SECTION_CACHE = 96  # remembered coronal/sagittal queries (a few slices' worth of everything)

Polyline = np.ndarray  # (k, 3) volume voxel coordinates (z, y, x)


@dataclass(frozen=True)
class Section:
    """A 2-D cut through ROI-grid values: `values[i, j]` sits at volume voxel origin + i·row_step + j·col_step."""

    values: np.ndarray
    origin: np.ndarray
    row_step: np.ndarray
    col_step: np.ndarray

    def to_volume(self, ij: np.ndarray) -> np.ndarray:
        """(k, 2) fractional (row, column) positions in `values` -> (k, 3) volume voxel coordinates."""
        ij = np.asarray(ij, np.float64).reshape(-1, 2)
        return self.origin + ij[:, :1] * self.row_step + ij[:, 1:] * self.col_step

    def corner(self) -> np.ndarray:
        """The outer corner of values[0, 0] (its pixel spans half a step either side of its centre)."""
        return self.origin - 0.5 * self.row_step - 0.5 * self.col_step


def contour_lines(values: np.ndarray, level: float) -> list[np.ndarray]:
    """Closed iso-lines of a 2-D array at `level`, as (k, 2) (row, column) arrays; outside the array counts as 0."""
    padded = np.pad(np.asarray(values, np.float64), 1)
    return [c - 1.0 for c in find_contours(padded, level)]


class ResultViews:
    """Per-result lookups for the hypothesis, heatmap and consensus overlays (built once; answers are shared)."""

    def __init__(self, result: SegmentationResult, threshold: float = DEFAULT_THRESHOLD) -> None:
        self.result = result
        self.roi = result.roi
        self.threshold = float(threshold)
        self.probs = result.probs_3d  # (n, D, S, S)
        self.n = result.n
        self.depth = self.probs.shape[1]
        self.count = coverage_count(self.probs, threshold)
        self.maps = {key: self._shown(key, self._measure(key, fn)) for key, (_, fn) in MEASURES.items()}
        self._staple: StapleResult | None = None
        self._sections: OrderedDict[tuple, object] = OrderedDict()
        # axial contours of every hypothesis and every consensus count, per ROI slice: computed now for a 2-D result;
        # for a 3-D one slice by slice when first shown (a result streamed in is rebuilt with every new hypothesis,
        # and all slices of all hypotheses at once cost ~0.3 s for 20 hypotheses of 32 slices), and a consensus
        # count's only when it is asked for (the consensus overlay is off by default)
        self._axial_slices: dict[int, tuple[list[list[Polyline]], dict[int, list[Polyline]]]] = {}
        if self.depth == 1:
            self._axial(0)

    # --- measures ---------------------------------------------------------------------------------------------------
    def _measure(self, key: str, fn) -> np.ndarray:
        if key == "coverage":
            return self.count / float(self.n)
        if key == "disagreement":
            return disagreement_from_count(self.count, self.n)
        return np.asarray(fn(self.probs), np.float64)

    def _shown(self, key: str, values: np.ndarray) -> np.ndarray:
        """The map with NaN where nothing is drawn: coverage only strictly between none and all, others above ~0."""
        values = np.array(values, np.float64)
        if key == "coverage":
            values[(self.count == 0) | (self.count == self.n)] = np.nan
        else:
            values[values <= HIDDEN_SHARE * measure_range(key)[1]] = np.nan
        return values

    # --- sections ---------------------------------------------------------------------------------------------------
    def section(self, values: np.ndarray, axis: int, index: int) -> Section | None:
        """The cut of ROI-grid `values` (D, S, S) on volume slice `index` of `axis`; None where the ROI is not.

        For AXIAL, `values` may also be the (S, S) image of that slice already.  Model pixels are placed by the
        ROI's own `model_to_volume`."""
        roi = self.roi
        (y0, y1), (x0, x1) = roi.model_to_volume([0.0, 1.0], [0.0, 1.0])
        dy, dx = y1 - y0, x1 - x0  # volume pixels per model pixel
        if axis == AXIAL:
            d = int(index) - roi.z0
            if not 0 <= d < self.depth:
                return None
            image = values if values.ndim == 2 else values[d]
            return Section(image, np.array([index, y0, x0]), np.array([0.0, dy, 0.0]), np.array([0.0, 0.0, dx]))
        (r,), (c,) = roi.volume_to_model([index], [index])
        k = int(np.floor((r if axis == CORONAL else c) + 0.5))  # the model row (column) holding that volume row
        if not 0 <= k < roi.size:
            return None
        if axis == CORONAL:
            return Section(values[:, k, :], np.array([roi.z0, index, x0]), np.array([1.0, 0.0, 0.0]),
                           np.array([0.0, 0.0, dx]))
        return Section(values[:, :, k], np.array([roi.z0, y0, index]), np.array([1.0, 0.0, 0.0]),
                       np.array([0.0, dy, 0.0]))

    def _lines(self, values: np.ndarray, level: float, axis: int, index: int) -> list[Polyline]:
        """Contours of ROI-grid `values` on slice `index` of `axis`, mapped to volume voxels."""
        cut = self.section(values, axis, index)
        if cut is None:
            return []
        return [cut.to_volume(line) for line in contour_lines(cut.values, level)]

    def _remember(self, key: tuple, compute):
        if key in self._sections:
            self._sections.move_to_end(key)
            return self._sections[key]
        value = compute()
        self._sections[key] = value
        if len(self._sections) > _SECTION_CACHE:
            self._sections.popitem(last=False)
        return value

    def _axial(self, d: int) -> tuple[list[list[Polyline]], dict[int, list[Polyline]]]:
        """(contours of each hypothesis, contours of each consensus count k = 1..N) on ROI slice d, remembered."""
        if d not in self._axial_slices:
            z = self.roi.z0 + d
            counts = ({k: self._lines(self.count[d] >= k, 0.5, AXIAL, z) for k in range(1, self.n + 1)}
                      if self.depth == 1 else {})  # a 3-D result's: in count_contours, when asked for
            self._axial_slices[d] = ([self._lines(self.probs[i, d], 0.5, AXIAL, z) for i in range(self.n)], counts)
        return self._axial_slices[d]

    # --- queries ----------------------------------------------------------------------------------------------------
    def hypothesis_contours(self, i: int, axis: int, index: int) -> list[Polyline]:
        """Outline (probability 0.5) of hypothesis i on slice `index` of `axis`."""
        if not 0 <= i < self.n:
            raise IndexError(f"hypothesis {i} out of range (0..{self.n - 1})")
        if axis == AXIAL:
            d = int(index) - self.roi.z0
            return self._axial(d)[0][i] if 0 <= d < self.depth else []
        return self._remember(("hyp", i, axis, int(index)),
                              lambda: self._lines(self.probs[i], 0.5, axis, int(index)))

    def all_hypothesis_contours(self, axis: int, index: int) -> list[list[Polyline]]:
        return [self.hypothesis_contours(i, axis, index) for i in range(self.n)]

    def count_contours(self, k: int, axis: int, index: int) -> list[Polyline]:
        """Outline of the pixels covered by at least k hypotheses (k = 1..N): the mask's pixel edges, so that a
        consensus of identical hypotheses lies exactly on them."""
        k = min(max(int(k), 1), self.n)
        if axis == AXIAL:
            d = int(index) - self.roi.z0
            if not 0 <= d < self.depth:
                return []
            counts = self._axial(d)[1]
            if k not in counts:
                counts[k] = self._lines(self.count[d] >= k, 0.5, AXIAL, int(index))
            return counts[k]
        return self._remember(("count", k, axis, int(index)),
                              lambda: self._lines(self.count >= k, 0.5, axis, int(index)))

    def required(self, level: float) -> int:
        """Hypotheses needed for agreement share `level` in (0, 1] (uncertainty.consensus.required_count)."""
        return required_count(self.n, level)

    def consensus_contours(self, level: float, axis: int, index: int) -> list[Polyline]:
        """Outline of the consensus at agreement share `level` (uncertainty.consensus.consensus_from_count)."""
        return self.count_contours(self.required(level), axis, index)

    def band_contours(self, inner: float, outer: float, axis: int, index: int) -> tuple[list[Polyline], list[Polyline]]:
        """(inner, outer) outlines of the confidence band (consensus at the strict and at the lenient level)."""
        if outer > inner:
            raise ValueError(f"outer level ({outer:g}) must not exceed inner level ({inner:g})")
        return self.consensus_contours(inner, axis, index), self.consensus_contours(outer, axis, index)

    def heat_section(self, measure: str, axis: int, index: int) -> Section | None:
        """The map of `measure` on a slice, NaN where nothing is drawn; None where the ROI is not."""
        if measure not in self.maps:
            raise KeyError(f"unknown measure {measure!r} (choose from {', '.join(self.maps)})")
        return self.section(self.maps[measure], axis, index)

    def staple(self) -> StapleResult:
        """STAPLE over the hypotheses, computed on first use (it iterates, ~0.1 s for 16 × 256²)."""
        if self._staple is None:
            self._staple = staple(self.result.probs, threshold=self.threshold)
        return self._staple

    def staple_contours(self, axis: int, index: int) -> list[Polyline]:
        """Outline of STAPLE's estimate of the true mask (its probability above 0.5)."""
        probability = self.staple().probability
        probability = probability.reshape((self.depth,) + probability.shape[-2:])
        return self._remember(("staple", axis, int(index)), lambda: self._lines(probability, 0.5, axis, int(index)))


def measure_range(key: str) -> tuple[float, float]:
    """The colour range of a measure (0..1 unless MEASURE_RANGES says otherwise)."""
    return MEASURE_RANGES.get(key, (0.0, 1.0))


def measure_label(key: str) -> str:
    """The label with unit and range shown in the picker and on the colour bar."""
    return MEASURES[key][0]
