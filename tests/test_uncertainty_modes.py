"""Clustering hypotheses into interpretations on built cases with known answers."""
from __future__ import annotations

import numpy as np
import pytest

from ambiview.uncertainty.modes import Mode, cluster_modes, describe_modes, distance_matrix

SHAPE = (16, 16)
B_INDICES = (3, 7, 11, 14)                           # hypotheses drawn from the second reading


def _two_readings() -> np.ndarray:
    """12 outlines of reading A (an 8×8 square; index 5 exact, the others with one extra pixel each) and 4 of
    reading B (a 4×4 square far away; index 14 exact)."""
    a = np.zeros(SHAPE, bool)
    a[2:10, 2:10] = True
    b = np.zeros(SHAPE, bool)
    b[11:15, 11:15] = True
    masks = []
    for i in range(16):
        base = (b if i in B_INDICES else a).copy()
        if i not in (5, 14):
            base[i % 16, 15 if i not in B_INDICES else 0] = True   # a distinct extra pixel per hypothesis
        masks.append(base)
    return np.stack(masks)


def test_two_modes_with_shares_three_quarters_and_one_quarter():
    modes = cluster_modes(_two_readings())
    assert len(modes) == 2
    first, second = modes
    assert first.members == [i for i in range(16) if i not in B_INDICES]
    assert second.members == list(B_INDICES)
    assert (first.share, second.share) == (0.75, 0.25)
    # the exact outline sits closest to all variants of its reading
    assert (first.representative, second.representative) == (5, 14)
    assert describe_modes(modes) == "2 interpretations: 75% / 25%"


def test_clustering_is_deterministic_and_independent_of_order():
    masks = _two_readings()
    assert cluster_modes(masks) == cluster_modes(masks.copy())
    order = np.random.default_rng(0).permutation(16)
    shuffled = cluster_modes(masks[order])
    assert [m.share for m in shuffled] == [0.75, 0.25]
    assert sorted(order[m] for m in shuffled[1].members) == list(B_INDICES)


def test_small_groups_are_absorbed_by_min_share():
    masks = _two_readings()
    stray = np.zeros(SHAPE, bool)
    stray[0:2, 0:9] = True                           # overlaps A (row 2 is not included) only a little
    stray[2, 2:9] = True                             # ... touching A's top row
    masks = np.concatenate([masks, stray[None]])
    modes = cluster_modes(masks)
    assert [len(m.members) for m in modes] == [12, 4, 1]
    merged = cluster_modes(masks, min_share=0.1)
    assert [len(m.members) for m in merged] == [13, 4]
    assert 16 in merged[0].members                   # joined the reading it overlaps, not the far one
    assert sum(m.share for m in merged) == pytest.approx(1.0)


def test_max_distance_controls_the_cut():
    masks = _two_readings()
    # zero tolerance: only identical masks share a mode, and no two of these are identical
    assert len(cluster_modes(masks, max_distance=0.0)) == 16
    # everything within 1 − IoU ≤ 1 is one mode
    assert len(cluster_modes(masks, max_distance=1.0)) == 1


def test_average_linkage_does_not_chain():
    a, b, c = np.zeros((3, 1, 12), bool)
    a[0, 0:8] = True
    b[0, 1:9] = True                                 # d(a, b) = 1 − 7/9 = 0.22
    c[0, 2:10] = True                                # d(b, c) = 0.22, d(a, c) = 1 − 6/10 = 0.4
    # average linkage: {a, b} to c is (0.4 + 0.22)/2 = 0.31 > 0.3, so c stays apart (single linkage would chain all)
    modes = cluster_modes(np.stack([a, b, c]))
    assert [(m.members, m.representative) for m in modes] == [([0, 1], 0), ([2], 2)]
    assert len(cluster_modes(np.stack([a, b, c]), max_distance=0.32)) == 1


def test_single_hypothesis_and_identical_hypotheses():
    one = np.zeros((1, 4, 4), bool)
    assert cluster_modes(one) == [Mode(members=[0], representative=0, share=1.0)]
    same = np.zeros((3, 4, 4), bool)                 # all empty: IoU(∅, ∅) = 1, distance 0
    assert cluster_modes(same) == [Mode(members=[0, 1, 2], representative=0, share=1.0)]
    assert describe_modes(cluster_modes(same)) == "1 interpretation: 100%"


def test_distance_matrix_is_symmetric_with_zero_diagonal():
    d = distance_matrix(_two_readings())
    assert d.shape == (16, 16)
    np.testing.assert_array_equal(d, d.T)
    assert not np.diag(d).any()
    assert d[5, 14] == 1.0                           # disjoint readings


def test_describe_modes_percentages_add_up_to_100():
    modes = [Mode([0], 0, 10 / 16), Mode([1], 1, 5 / 16), Mode([2], 2, 1 / 16)]   # 62.5 / 31.25 / 6.25
    assert describe_modes(modes) == "3 interpretations: 63% / 31% / 6%"
    thirds = [Mode([i], i, 1 / 3) for i in range(3)]
    assert describe_modes(thirds) == "3 interpretations: 34% / 33% / 33%"
    assert describe_modes([]) == "no hypotheses"


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="max_distance"):
        cluster_modes(_two_readings(), max_distance=1.5)
    with pytest.raises(ValueError, match="min_share"):
        cluster_modes(_two_readings(), min_share=-0.1)
