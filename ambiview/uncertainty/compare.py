"""The model's hypotheses against a set of expert masks (raters, reference ROIs), for compare mode.

Both sets must be on the same grid; the caller crops them to the region the model saw (its ROI: the prompted slice
of a 2D result, the slab of a 3D one), so that what an expert drew on other slices or elsewhere in the volume is not
held against a model that was never asked about it, and the numbers match those of the evaluation on crops.
GED and HM-IoU are those of ``metrics`` (Kohl et al. 2018; HM-IoU as in PixelSeg / MoSE); diversity is the mean
pairwise 1 − IoU of one set.  An expert with an empty mask (a rater who did not mark this slice) takes part as an
empty set member, as in the LIDC evaluations, and is counted in ``empty_experts`` so the UI can say so.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._arrays import as_masks, same_image_shape
from .metrics import diversity, ged, hm_iou, iou_matrix


@dataclass(frozen=True)
class SetComparison:
    ged: float                 # squared generalised energy distance, d = 1 − IoU; 0 = same distribution
    hm_iou: float              # Hungarian-matched IoU; 1 = every expert matched by an identical hypothesis
    model_diversity: float     # mean pairwise 1 − IoU of the hypotheses
    expert_diversity: float    # mean pairwise 1 − IoU of the experts
    best_iou: tuple[float, ...]    # per expert: IoU with the hypothesis closest to it
    best_match: tuple[int, ...]    # per expert: index of that hypothesis
    empty_experts: tuple[int, ...]  # experts whose mask is empty in the region
    n_samples: int
    n_experts: int


def compare_sets(samples, experts) -> SetComparison:
    """Compare N hypotheses (N, ...) with M expert masks (M, ...) on the same grid (bool, or probabilities > 0.5)."""
    s = as_masks(samples, "samples")
    e = as_masks(experts, "experts")
    same_image_shape(s, e, "samples", "experts")
    iou = iou_matrix(s, e)  # (N, M)
    best = iou.argmax(axis=0)
    empty = tuple(int(i) for i in np.flatnonzero(~e.reshape(e.shape[0], -1).any(axis=1)))
    return SetComparison(
        ged=ged(s, e), hm_iou=hm_iou(s, e), model_diversity=diversity(s), expert_diversity=diversity(e),
        best_iou=tuple(float(iou[best[j], j]) for j in range(e.shape[0])),
        best_match=tuple(int(b) for b in best), empty_experts=empty, n_samples=int(s.shape[0]),
        n_experts=int(e.shape[0]))
