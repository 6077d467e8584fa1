"""Sizes and diameters in mm with anisotropic spacing, computed by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ambiview.uncertainty.stats import (iou_with, longest_axial_diameter_mm, longest_diameter_mm, mask_area_mm2,
                                        mask_size, mask_volume_mm3, outline_points_mm)


def test_area_and_volume_with_anisotropic_spacing():
    mask2d = np.zeros((6, 7), bool)
    mask2d[1:4, 2:6] = True                          # 3 × 4 = 12 px
    assert mask_area_mm2(mask2d, (0.5, 0.8)) == pytest.approx(12 * 0.4)
    mask3d = np.zeros((4, 6, 7), bool)
    mask3d[1:3, 1:4, 2:6] = True                     # 2 × 3 × 4 = 24 voxels
    assert mask_volume_mm3(mask3d, (2.5, 0.5, 0.8)) == pytest.approx(24 * 1.0)
    assert mask_size(mask3d, (2.5, 0.5, 0.8)) == pytest.approx(24.0)
    assert mask_size(mask2d, (0.5, 0.8)) == pytest.approx(4.8)
    assert mask_area_mm2(np.zeros((3, 3), bool), (1, 1)) == 0.0


def test_diameter_of_a_ten_by_one_bar_with_anisotropic_spacing():
    bar = np.zeros((5, 14), bool)
    bar[2, 2:12] = True                              # 10 pixels along x, 1 along y
    # edge to edge along x: 10 · 0.5 = 5 mm (the thickness, 2 mm, is shorter than the length)
    assert longest_diameter_mm(bar, (2.0, 0.5)) == pytest.approx(5.0)
    # the same bar standing along y: 10 · 2 = 20 mm
    assert longest_diameter_mm(bar.T.copy(), (2.0, 0.5)) == pytest.approx(20.0)


def test_diameter_of_a_single_pixel_and_a_rectangle():
    pixel = np.zeros((3, 3), bool)
    pixel[1, 1] = True
    assert longest_diameter_mm(pixel, (2.0, 0.5)) == pytest.approx(2.0)
    rect = np.zeros((5, 6), bool)
    rect[1:4, 1:5] = True                            # 3 rows × 4 columns, 1 mm pixels
    # farthest outline points: left face of the top row (y 0, x −0.5) and right face of the bottom row (y 2, x 3.5)
    assert longest_diameter_mm(rect, (1.0, 1.0)) == pytest.approx(math.sqrt(2**2 + 4**2))
    assert longest_diameter_mm(np.zeros((4, 4), bool), (1, 1)) == 0.0


def test_diameter_in_3d_and_the_axial_recist_diameter():
    column = np.zeros((12, 3, 3), bool)
    column[1:11, 1, 1] = True                        # 10 voxels along z
    assert longest_diameter_mm(column, (3.0, 1.0, 1.0)) == pytest.approx(30.0)
    assert longest_axial_diameter_mm(column, (3.0, 1.0, 1.0)) == pytest.approx(1.0)
    slab = np.zeros((3, 4, 12), bool)
    slab[1, 1, 1:9] = True                           # 8 voxels along x in one slice
    slab[2, 1, 1:4] = True
    assert longest_axial_diameter_mm(slab, (3.0, 0.7, 0.5)) == pytest.approx(4.0)
    assert longest_axial_diameter_mm(np.zeros((2, 3, 3), bool), (1, 1, 1)) == 0.0


def test_diameter_of_a_disc_is_close_to_its_true_diameter():
    yy, xx = np.mgrid[:64, :64]
    disc = np.hypot(yy - 31.5, xx - 31.5) <= 20
    assert longest_diameter_mm(disc, (0.7, 0.7)) == pytest.approx(40 * 0.7, rel=0.03)


def test_outline_points_are_face_centres():
    pixel = np.zeros((2, 2), bool)
    pixel[0, 0] = True
    points = sorted(map(tuple, outline_points_mm(pixel, (1.0, 2.0))))
    assert points == [(-0.5, 0.0), (0.0, -1.0), (0.0, 1.0), (0.5, 0.0)]


def test_iou_with_a_reference():
    ref = np.zeros((4, 4), bool)
    ref[:2] = True
    masks = np.stack([ref, ~ref, np.zeros_like(ref), np.ones_like(ref)])
    np.testing.assert_allclose(iou_with(masks, ref), [1.0, 0.0, 0.0, 0.5])
    np.testing.assert_allclose(iou_with(np.zeros((1, 4, 4), bool), np.zeros((4, 4), bool)), [1.0])


def test_bad_spacing_and_shapes_are_refused_clearly():
    mask = np.ones((2, 2), bool)
    with pytest.raises(ValueError, match="needs 2 spacings"):
        mask_area_mm2(mask, (1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="positive"):
        longest_diameter_mm(mask, (0.0, 1.0))
    with pytest.raises(ValueError, match="3-D"):
        mask_volume_mm3(mask, (1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="image shape"):
        iou_with(np.ones((2, 3, 3), bool), mask)


def test_the_longest_axial_diameter_is_the_largest_slice_diameter_on_irregular_masks():
    rng = np.random.default_rng(3)
    for share in (0.03, 0.2, 0.6):
        mask = rng.random((9, 23, 31)) < share
        mask[4] = False  # an empty slice in the middle
        expected = max(longest_diameter_mm(plane, (0.7, 0.9)) for plane in mask if plane.any())
        assert longest_axial_diameter_mm(mask, (2.5, 0.7, 0.9)) == pytest.approx(expected, rel=1e-12)
