"""The contour convention: pixel-edge polygons, keyholed holes, even-odd fill -- exact both ways."""
from __future__ import annotations

import numpy as np
import pytest
from skimage.draw import polygon as skimage_polygon

from ambiview.export.contours import fill_polygons, mask_to_polygons


def skimage_union(polygons, shape) -> np.ndarray:
    """An independent rasteriser: scikit-image fills each polygon alone; take the union (plastimatch's default)."""
    out = np.zeros(shape, bool)
    for p in polygons:
        rr, cc = skimage_polygon(p[:, 0], p[:, 1], shape)
        out[rr, cc] = True
    return out


def shoelace(p: np.ndarray) -> float:
    y, x = p[:, 0], p[:, 1]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def test_a_block_gives_its_four_pixel_corners():
    mask = np.zeros((6, 7), bool)
    mask[1:3, 2:5] = True  # rows 1-2, columns 2-4
    (poly,) = mask_to_polygons(mask)
    assert sorted(map(tuple, poly.tolist())) == [(0.5, 1.5), (0.5, 4.5), (2.5, 1.5), (2.5, 4.5)]
    assert shoelace(poly) == pytest.approx(6.0)  # area = pixel count, not (pixel count - perimeter / 2)


def test_a_single_pixel_and_the_image_border():
    mask = np.zeros((3, 3), bool)
    mask[0, 0] = True
    (poly,) = mask_to_polygons(mask)
    assert sorted(map(tuple, poly.tolist())) == [(-0.5, -0.5), (-0.5, 0.5), (0.5, -0.5), (0.5, 0.5)]


def test_a_ring_is_one_keyholed_polygon_that_any_reader_fills_alike():
    mask = np.zeros((9, 9), bool)
    mask[1:8, 1:8] = True
    mask[3:6, 3:6] = False
    polygons = mask_to_polygons(mask)
    assert len(polygons) == 1
    assert shoelace(polygons[0]) == pytest.approx(mask.sum())  # outer minus hole
    np.testing.assert_array_equal(fill_polygons(polygons, mask.shape), mask)  # even-odd
    np.testing.assert_array_equal(skimage_union(polygons, mask.shape), mask)  # per-polygon fill, union


def test_diagonal_neighbours_are_separate_components_and_an_island_stays_an_island():
    mask = np.zeros((5, 5), bool)
    mask[1, 1] = mask[2, 2] = True
    assert len(mask_to_polygons(mask)) == 2
    island = np.zeros((11, 11), bool)
    island[1:10, 1:10] = True
    island[3:8, 3:8] = False
    island[5, 5] = True
    polygons = mask_to_polygons(island)
    assert len(polygons) == 2
    np.testing.assert_array_equal(fill_polygons(polygons, island.shape), island)
    np.testing.assert_array_equal(skimage_union(polygons, island.shape), island)


def test_random_masks_round_trip_exactly():
    rng = np.random.default_rng(7)
    for _ in range(150):
        shape = tuple(rng.integers(1, 16, size=2))
        mask = rng.random(shape) < rng.uniform(0.1, 0.9)
        polygons = mask_to_polygons(mask)
        np.testing.assert_array_equal(fill_polygons(polygons, shape), mask)
        np.testing.assert_array_equal(skimage_union(polygons, shape), mask)
        assert sum(shoelace(p) for p in polygons) == pytest.approx(mask.sum())
        for p in polygons:  # every vertex is a pixel corner
            assert np.all((p + 0.5) == np.round(p + 0.5))


def test_fill_matches_an_independent_rasteriser_on_arbitrary_polygons():
    """Contours from other tools do not follow pixel edges; pixel centres inside get filled."""
    rng = np.random.default_rng(3)
    for _ in range(50):
        pts = rng.uniform(-2, 22, size=(int(rng.integers(3, 9)), 2)) + 0.123  # keep off pixel centres
        ours = fill_polygons([pts], (20, 20))
        rr, cc = skimage_polygon(pts[:, 0], pts[:, 1], (20, 20))
        theirs = np.zeros((20, 20), bool)
        theirs[rr, cc] = True
        # skimage fills a self-intersecting polygon by even-odd as well; allow the odd pixel on an edge
        assert np.sum(ours ^ theirs) <= 2


def test_nested_contours_from_other_tools_are_holes():
    outer = np.array([[0.5, 0.5], [0.5, 9.5], [9.5, 9.5], [9.5, 0.5]])
    inner = np.array([[3.5, 3.5], [6.5, 3.5], [6.5, 6.5], [3.5, 6.5]])
    filled = fill_polygons([outer, inner], (11, 11))
    expected = np.zeros((11, 11), bool)
    expected[1:10, 1:10] = True
    expected[4:7, 4:7] = False
    np.testing.assert_array_equal(filled, expected)


def test_empty_and_invalid_input():
    assert mask_to_polygons(np.zeros((4, 4), bool)) == []
    with pytest.raises(ValueError, match="2D"):
        mask_to_polygons(np.zeros((2, 4, 4), bool))
    assert not fill_polygons([np.array([[0.0, 0.0], [1.0, 1.0]])], (3, 3)).any()  # fewer than 3 points
