"""ResultViews: contours, sections, maps and consensus outlines placed in volume voxels, with known answers."""
import numpy as np
import pytest

from ambiview.imaging.geometry import Geometry
from ambiview.imaging.roi import Roi
from ambiview.imaging.volume import Volume
from ambiview.session import Session
from ambiview.session.partial import partial_result
from ambiview.session.result import SegmentationResult
from ambiview.session.views_model import (
    AXIAL,
    CORONAL,
    MEASURE_RANGES,
    SAGITTAL,
    ResultViews,
    contour_lines,
    measure_range,
)
from ambiview.uncertainty.consensus import consensus_from_count, staple
from ambiview.uncertainty.maps import MEASURES, binary_entropy_of_mean, variance_map

SHAPE = (10, 120, 140)


def _result(probs, roi) -> SegmentationResult:
    geometry = Geometry.regular(SHAPE, (2.5, 0.7, 0.8))
    return SegmentationResult(probs=np.asarray(probs, np.float32), roi=roi, roi_geometry=roi.geometry(geometry),
                              volume_shape=SHAPE)


def _l_shapes() -> np.ndarray:
    """Four 64x64 masks: an L (rows 10-29, columns 5-9 plus a foot), hypothesis 1 with a longer foot, 2 empty-ish."""
    p = np.zeros((4, 64, 64), np.float32)
    p[:, 10:30, 5:10] = 1.0          # the L's bar down the left
    p[:, 25:30, 5:20] = 1.0          # its foot to the right
    p[1, 25:30, 20:40] = 1.0         # hypothesis 1: the foot runs on
    p[3, 40:44, 50:54] = 1.0         # hypothesis 3: a second island
    return p


def _bbox(lines) -> tuple[np.ndarray, np.ndarray]:
    points = np.concatenate(lines)
    return points.min(axis=0), points.max(axis=0)


NATIVE = Roi(4, 5, 9.5, 19.5, 64.0, 64)    # native spacing: model pixel (r, c) = volume (10 + r, 20 + c)


def test_hypothesis_contour_lies_on_the_pixel_edges_of_its_mask_in_volume_voxels():
    views = ResultViews(_result(_l_shapes(), NATIVE))
    lines = views.hypothesis_contours(0, AXIAL, 4)
    assert len(lines) == 1 and lines[0].shape[1] == 3
    low, high = _bbox(lines)
    # rows 10..29 -> volume rows 20..39, edges 19.5..39.5; columns 5..19 -> volume 25..39, edges 24.5..39.5
    assert np.allclose(low, [4, 19.5, 24.5]) and np.allclose(high, [4, 39.5, 39.5])
    # an L, not its bounding box: no contour point in the empty top-right corner (rows 20-33, columns 30-39)
    pts = lines[0]
    assert not np.any((pts[:, 1] < 33) & (pts[:, 2] > 30.5))
    assert len(views.hypothesis_contours(3, AXIAL, 4)) == 2            # an L and an island
    assert views.hypothesis_contours(0, AXIAL, 5) == []                  # another slice: nothing
    with pytest.raises(IndexError):
        views.hypothesis_contours(4, AXIAL, 4)


def test_a_2d_result_is_a_band_one_slice_thick_in_the_coronal_and_sagittal_views():
    views = ResultViews(_result(_l_shapes(), NATIVE))
    # coronal at volume row 37 (model row 27: the foot), sagittal at volume column 27 (model column 7: the bar)
    low, high = _bbox(views.hypothesis_contours(0, CORONAL, 37))
    assert np.allclose(low, [3.5, 37, 24.5]) and np.allclose(high, [4.5, 37, 39.5])
    low, high = _bbox(views.hypothesis_contours(1, CORONAL, 37))
    assert np.isclose(high[2], 59.5)                                    # hypothesis 1's longer foot
    low, high = _bbox(views.hypothesis_contours(0, SAGITTAL, 27))
    assert np.allclose(low, [3.5, 19.5, 27]) and np.allclose(high, [4.5, 39.5, 27])
    assert views.hypothesis_contours(0, CORONAL, 9) == []               # row 9 is above the ROI
    assert views.hypothesis_contours(0, CORONAL, 84) == []              # row 84 = model row 64: outside


def test_a_coarse_roi_maps_model_pixels_through_its_scale():
    roi = Roi(2, 3, -0.5, 9.5, 128.0, 64)  # 2 volume pixels per model pixel
    p = np.zeros((2, 64, 64), np.float32)
    p[:, 10:20, 30:40] = 1.0
    views = ResultViews(_result(p, roi))
    low, high = _bbox(views.hypothesis_contours(0, AXIAL, 2))
    # model edge r=10 at volume -0.5 + 10 * 2 = 19.5; r=20 at 39.5; columns 9.5 + 60 = 69.5 .. 89.5
    assert np.allclose(low, [2, 19.5, 69.5]) and np.allclose(high, [2, 39.5, 89.5])
    section = views.heat_section("coverage", CORONAL, 25)   # volume row 25 -> model row 12
    assert section is not None and np.allclose(section.origin, [2, 25, 10.5]) and np.allclose(section.col_step,
                                                                                               [0, 0, 2])


def test_a_3d_result_is_cut_in_every_view():
    roi = Roi(3, 7, 9.5, 19.5, 64.0, 64)
    p = np.zeros((2, 4, 64, 64), np.float32)
    p[:, 1:3, 20:30, 20:30] = 1.0                                         # slices 4 and 5
    views = ResultViews(_result(p, roi))
    assert views.hypothesis_contours(0, AXIAL, 3) == [] and len(views.hypothesis_contours(0, AXIAL, 5)) == 1
    low, high = _bbox(views.hypothesis_contours(0, CORONAL, 35))
    assert np.allclose(low, [3.5, 35, 39.5]) and np.allclose(high, [5.5, 35, 49.5])


def test_consensus_outlines_follow_the_coverage_count():
    p = _l_shapes()
    views = ResultViews(_result(p, NATIVE))
    assert np.array_equal(views.count[0], (p > 0.5).sum(0))
    assert views.required(0.5) == 2 and views.required(1.0) == 4 and views.required(0.1) == 1
    # all four agree on the L (hypothesis 2 is the L alone); at 100 % the outline is the L's
    low, high = _bbox(views.consensus_contours(1.0, AXIAL, 4))
    assert np.allclose(low, [4, 19.5, 24.5]) and np.allclose(high, [4, 39.5, 39.5])
    mask = consensus_from_count(views.count[0], 4, 0.1)
    assert mask[27, 30] and mask[41, 51] and not mask[5, 5]              # the foot of 1 and the island of 3
    assert len(views.consensus_contours(0.1, AXIAL, 4)) == 2
    inner, outer = views.band_contours(0.9, 0.1, AXIAL, 4)
    assert _bbox(inner)[1][2] < _bbox(outer)[1][2]                         # the band: outer reaches further
    with pytest.raises(ValueError):
        views.band_contours(0.1, 0.9, AXIAL, 4)


def test_maps_are_the_uncertainty_measures_shown_only_where_they_say_something():
    rng = np.random.default_rng(1)
    p = np.clip(_l_shapes() * 0.8 + rng.uniform(0, 0.2, (4, 64, 64)), 0, 1).astype(np.float32)
    views = ResultViews(_result(p, NATIVE))
    assert set(views.maps) == set(MEASURES) and set(MEASURE_RANGES) == set(MEASURES)
    assert measure_range("variance") == (0.0, 0.25)
    coverage = views.maps["coverage"][0]
    count = views.count[0]
    assert np.all(np.isnan(coverage[(count == 0) | (count == 4)]))
    inside = (count > 0) & (count < 4)
    assert np.allclose(coverage[inside], count[inside] / 4)
    entropy = views.maps["entropy"][0]
    shown = ~np.isnan(entropy)
    assert np.allclose(entropy[shown], binary_entropy_of_mean(p)[shown])
    assert np.allclose(np.nan_to_num(views.maps["variance"][0]), np.where(
        variance_map(p) <= 0.005 * 0.25, 0, variance_map(p)))
    section = views.heat_section("disagreement", AXIAL, 4)
    assert section.values.shape == (64, 64) and np.allclose(section.corner(), [4, 9.5, 19.5])
    assert views.heat_section("disagreement", AXIAL, 6) is None
    with pytest.raises(KeyError):
        views.heat_section("nonsense", AXIAL, 4)


def test_staple_is_computed_once_and_outlined():
    p = _l_shapes()
    views = ResultViews(_result(p, NATIVE))
    first = views.staple()
    assert views.staple() is first
    reference = staple(p)
    assert np.allclose(first.sensitivity, reference.sensitivity, equal_nan=True)
    low, _ = _bbox(views.staple_contours(AXIAL, 4))
    assert np.allclose(low, [4, 19.5, 24.5])              # the L everyone drew is in STAPLE's estimate


def test_queries_answer_from_what_was_computed_before():
    views = ResultViews(_result(_l_shapes(), NATIVE))
    assert views.hypothesis_contours(1, AXIAL, 4) is views.hypothesis_contours(1, AXIAL, 4)
    assert views.consensus_contours(0.5, AXIAL, 4) is views.count_contours(2, AXIAL, 4)
    assert views.hypothesis_contours(1, CORONAL, 37) is views.hypothesis_contours(1, CORONAL, 37)


def test_contour_lines_close_at_the_array_edge():
    values = np.zeros((5, 5))
    values[:, :2] = 1.0                                   # touches three edges
    (line,) = contour_lines(values, 0.5)
    assert np.allclose(line[0], line[-1]) and line[:, 0].min() == -0.5 and line[:, 1].max() == 1.5


def test_a_partial_result_sits_where_the_full_one_will():
    from ambiview.session.segment import roi_for

    session = Session()
    session.set_volume(Volume.from_array(np.zeros(SHAPE, np.int16), spacing=(2.5, 0.7, 0.8), series_uid="1.2.3"))
    session.add_box(4, 30, 40, 60, 90)
    probs = np.zeros((2, 64, 64), np.float32)
    partial = partial_result(session.volume, session.prompts, probs, "m", "Model", "abc", 7)
    assert partial.roi == roi_for(session.prompts, session.volume, 64, 1)
    assert partial.n == 2 and partial.seed == 7 and partial.series_uid == "1.2.3" and partial.prompts[0]["kind"]
    with pytest.raises(ValueError):
        partial_result(session.volume, session.prompts, np.zeros((0, 64, 64)), "m")
