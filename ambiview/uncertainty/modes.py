"""Group hypotheses into modes ("interpretations") by how much they overlap.

Hierarchical clustering with average linkage (scipy) on the distance d = 1 − IoU, cut where the average distance
between two groups exceeds ``max_distance``. The default 0.3 joins hypotheses whose mean IoU is at least 0.7 — a
usual bar for "the same outline, redrawn" — and keeps apart readings that differ by more than about a third of their
union (a lobe included or not, a neighbouring vessel taken in or not). It is our choice, not a published constant.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform

from ._arrays import as_masks, check_fraction
from .metrics import iou_matrix


@dataclass(frozen=True)
class Mode:
    """One interpretation: the indices of its hypotheses, its medoid, and its share of all hypotheses."""

    members: list[int]
    representative: int
    share: float


def _medoid(members: list[int], distance: np.ndarray) -> int:
    """The member with the smallest mean distance to the members (lowest index on ties)."""
    sub = distance[np.ix_(members, members)]
    return members[int(np.argmin(sub.mean(axis=1)))]


def distance_matrix(masks) -> np.ndarray:
    """Symmetric (N, N) matrix of 1 − IoU with an exact zero diagonal."""
    stack = as_masks(masks, "masks")
    iou = iou_matrix(stack, stack)
    distance = np.clip(1.0 - (iou + iou.T) / 2.0, 0.0, 1.0)
    np.fill_diagonal(distance, 0.0)
    return distance


def cluster_modes(masks, max_distance: float = 0.3, min_share: float = 0.0) -> list[Mode]:
    """Modes of a stack of hypotheses, largest share first (ties: the mode holding the lower index first).

    max_distance: average-linkage cut on 1 − IoU (see the module docstring). min_share: groups holding a smaller
    share are dissolved and each of their hypotheses joins the kept mode it is closest to on average, so the shares
    still add up to 1 (the largest group is always kept). Deterministic: the same masks always give the same modes.
    """
    stack = as_masks(masks, "masks")
    max_distance = check_fraction(max_distance, "max_distance", low_open=False)
    min_share = check_fraction(min_share, "min_share", low_open=False)
    n = stack.shape[0]
    distance = distance_matrix(stack)
    if n == 1:
        labels = np.array([1])
    else:
        tree = linkage(squareform(distance, checks=False), method="average")
        labels = fcluster(tree, t=max_distance, criterion="distance")
    groups = [sorted(np.flatnonzero(labels == label).tolist()) for label in np.unique(labels)]
    groups.sort(key=lambda g: (-len(g), g[0]))
    groups = _absorb_small(groups, distance, min_share, n)
    modes = [Mode(g, _medoid(g, distance), len(g) / n) for g in groups]
    modes.sort(key=lambda m: (-len(m.members), m.members[0]))
    return modes


def _absorb_small(groups: list[list[int]], distance: np.ndarray, min_share: float, n: int) -> list[list[int]]:
    """Move the hypotheses of groups below min_share into the nearest kept group (groups arrive largest first)."""
    kept_indices = [i for i, g in enumerate(groups) if len(g) >= min_share * n - 1e-9] or [0]
    anchors = [groups[i] for i in kept_indices]  # nearness is judged against the groups as clustered
    kept = [list(g) for g in anchors]
    for i, group in enumerate(groups):
        if i in kept_indices:
            continue
        for index in group:
            nearest = int(np.argmin([distance[index, anchor].mean() for anchor in anchors]))
            kept[nearest].append(index)
    return [sorted(g) for g in kept]


def _percentages(shares: list[float]) -> list[int]:
    """Whole percentages that add up to 100 (largest remainder; ties to the earlier mode)."""
    raw = [100.0 * s for s in shares]
    whole = [int(np.floor(r + 1e-9)) for r in raw]
    missing = 100 - sum(whole)
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - whole[i]), i))
    for i in order[:max(0, missing)]:
        whole[i] += 1
    return whole


def share_percentages(modes: list[Mode]) -> list[int]:
    """The modes' shares as whole percentages that add up to 100 (the numbers ``describe_modes`` prints)."""
    return _percentages([m.share for m in modes])


def describe_modes(modes: list[Mode]) -> str:
    """One line for the hypothesis panel, e.g. "3 interpretations: 63% / 25% / 12%"."""
    if not modes:
        return "no hypotheses"
    word = "interpretation" if len(modes) == 1 else "interpretations"
    parts = " / ".join(f"{p}%" for p in _percentages([m.share for m in modes]))
    return f"{len(modes)} {word}: {parts}"
