"""Dice, Jaccard, HD95 and ASD on cases small enough to compute by hand."""
import math

import numpy as np
import pytest

from ambiview.uncertainty.surface import asd, dice, hd95, jaccard, overlap_and_surface, surface, surface_distances


def test_overlap_of_two_bars():
    a = np.zeros((1, 4, 10), bool)
    b = np.zeros_like(a)
    a[0, 1, 0:6] = True    # 6 voxels
    b[0, 1, 3:10] = True   # 7 voxels, 3 shared
    assert dice(a, b) == pytest.approx(2 * 3 / 13)
    assert jaccard(a, b) == pytest.approx(3 / 10)
    assert dice(np.zeros_like(a), np.zeros_like(a)) == 1.0 and jaccard(a, np.zeros_like(a)) == 0.0


def test_surface_of_a_cube_is_its_shell():
    mask = np.zeros((5, 5, 5), bool)
    mask[1:4, 1:4, 1:4] = True
    shell = surface(mask)
    assert shell.sum() == 26 and not shell[2, 2, 2]      # 3^3 cube: everything but the centre
    full = np.ones((3, 3, 3), bool)
    assert surface(full).sum() == 26                      # the array border counts as outside


def test_single_voxels_with_anisotropic_spacing():
    a = np.zeros((4, 1, 4), bool)
    b = np.zeros_like(a)
    a[0, 0, 0] = True
    b[3, 0, 0] = True                                     # 3 slices apart at 2.0 mm
    assert hd95(a, b, spacing=(2.0, 1.0, 1.0)) == pytest.approx(6.0)
    assert asd(a, b, spacing=(2.0, 1.0, 1.0)) == pytest.approx(6.0)
    b[3, 0, 0], b[0, 0, 3] = False, True                  # 3 columns apart at 0.5 mm
    assert hd95(a, b, spacing=(2.0, 1.0, 0.5)) == pytest.approx(1.5)


def test_asymmetric_case_by_hand():
    # a: one voxel at x = 0; b: voxels at x = 3 and x = 5 (each its own surface).
    a = np.zeros((1, 1, 8), bool)
    b = np.zeros_like(a)
    a[0, 0, 0] = True
    b[0, 0, [3, 5]] = True
    d_ab, d_ba = surface_distances(a, b)
    assert sorted(d_ab) == [3.0] and sorted(d_ba) == [3.0, 5.0]
    # HD95 = max(p95([3]), p95([3, 5])) = max(3, 3 + 0.95 * 2) = 4.9 (linear percentile)
    assert hd95(a, b) == pytest.approx(4.9)
    # symmetric ASD = mean(3, mean(3, 5)) = 3.5; directed (pred -> ref) = 3
    assert asd(a, b) == pytest.approx(3.5)
    assert asd(a, b, symmetric=False) == pytest.approx(3.0)
    assert asd(b, a, symmetric=False) == pytest.approx(4.0)


def test_parallel_planes():
    a = np.zeros((4, 5, 5), bool)
    b = np.zeros_like(a)
    a[0] = True
    b[2] = True
    values = overlap_and_surface(a, b, spacing=(2.5, 0.7, 0.7))
    assert values["dice"] == 0.0 and values["jaccard"] == 0.0
    assert values["hd95"] == pytest.approx(5.0) and values["asd"] == pytest.approx(5.0)


def test_identical_and_empty_masks():
    mask = np.zeros((3, 6, 6), bool)
    mask[1, 2:4, 2:5] = True
    assert overlap_and_surface(mask, mask) == {"dice": 1.0, "jaccard": 1.0, "hd95": 0.0, "asd": 0.0}
    empty = np.zeros_like(mask)
    assert math.isnan(hd95(mask, empty)) and math.isnan(asd(empty, mask))
    assert math.isnan(overlap_and_surface(empty, empty)["hd95"]) and dice(empty, empty) == 1.0


def test_two_dimensional_masks_and_bad_input():
    a = np.zeros((6, 6), bool)
    a[1:3, 1:3] = True
    b = np.roll(a, 2, axis=1)
    assert hd95(a, b, spacing=(1.0, 0.5)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="differ in shape"):
        dice(a, np.zeros((5, 6), bool))
    with pytest.raises(ValueError, match="spacing"):
        hd95(a, b, spacing=(1.0,))
    with pytest.raises(ValueError, match="positive"):
        asd(a, b, spacing=(1.0, -1.0))
