"""Per-pixel maps on a 3-pixel toy with values computed by hand."""
from __future__ import annotations

import numpy as np
import pytest

from ambiview.uncertainty.maps import (MEASURES, binary_entropy_of_mean, coverage_count, coverage_fraction,
                                       mean_probability, pairwise_disagreement, variance_map)

# Four hypotheses over three pixels: pixel 0 covered by all, pixel 1 by two, pixel 2 by one.
MASKS = np.array([[1, 1, 0], [1, 0, 0], [1, 1, 1], [1, 0, 0]], dtype=bool).reshape(4, 1, 3)
# Probabilities: pixel 0 always .5, pixel 1 alternates 0/1, pixel 2 is .8 .6 .2 .2
PROBS = np.array([[0.5, 0.0, 0.8], [0.5, 1.0, 0.6], [0.5, 0.0, 0.2], [0.5, 1.0, 0.2]]).reshape(4, 1, 3)


def test_coverage_on_masks_and_probabilities():
    np.testing.assert_array_equal(coverage_count(MASKS), [[4, 2, 1]])
    np.testing.assert_allclose(coverage_fraction(MASKS), [[1.0, 0.5, 0.25]])
    # 0.5 is not above the threshold 0.5; 0.8 and 0.6 are
    np.testing.assert_array_equal(coverage_count(PROBS), [[0, 2, 2]])
    np.testing.assert_array_equal(coverage_count(PROBS, threshold=0.1), [[4, 2, 4]])


def test_entropy_of_mean_in_bits():
    # means 1, .5, .25 → H = 0, 1, −(.25 log2 .25 + .75 log2 .75) = 0.8112781...
    h = binary_entropy_of_mean(MASKS)
    np.testing.assert_allclose(h, [[0.0, 1.0, 0.8112781244591328]], atol=1e-12)
    # probabilities: means .5, .5, .45
    h = binary_entropy_of_mean(PROBS)
    expected = -(0.45 * np.log2(0.45) + 0.55 * np.log2(0.55))
    np.testing.assert_allclose(h, [[1.0, 1.0, expected]], atol=1e-12)
    np.testing.assert_allclose(mean_probability(PROBS), [[0.5, 0.5, 0.45]])


def test_variance_map():
    # masks: q(1 − q) for q = 1, .5, .25
    np.testing.assert_allclose(variance_map(MASKS), [[0.0, 0.25, 0.1875]], atol=1e-12)
    # probabilities: constant .5 → 0; 0/1 alternating → .25; (.8,.6,.2,.2): mean .45, E[p²] = .27 → .0675
    np.testing.assert_allclose(variance_map(PROBS), [[0.0, 0.25, 0.0675]], atol=1e-12)


def test_pairwise_disagreement_without_replacement():
    # 2k(N − k)/(N(N − 1)), N = 4: k = 4 → 0; k = 2 → 2·2·2/12 = 2/3; k = 1 → 2·1·3/12 = 1/2
    np.testing.assert_allclose(pairwise_disagreement(MASKS), [[0.0, 2 / 3, 0.5]])
    # two hypotheses that disagree always disagree: 1, not 2·q·(1 − q) = 1/2
    two = np.array([[[1, 0]], [[0, 0]]], dtype=bool)
    np.testing.assert_allclose(pairwise_disagreement(two), [[1.0, 0.0]])
    assert not pairwise_disagreement(MASKS[:1]).any()


def test_maps_work_on_volumes_and_keep_the_image_shape():
    volume = np.zeros((3, 2, 4, 5), dtype=bool)
    volume[0, 1] = True
    for label, function in MEASURES.values():
        assert function(volume).shape == (2, 4, 5), label
    np.testing.assert_allclose(coverage_fraction(volume)[1], 1 / 3)


def test_measures_table_for_the_ui():
    assert {"disagreement", "entropy", "variance", "coverage"} <= set(MEASURES)
    for key, (label, function) in MEASURES.items():
        assert isinstance(label, str) and "(" in label, key  # label names its unit or range
        result = function(MASKS)
        assert result.shape == (1, 3) and np.all((result >= 0) & (result <= 1))


def test_bad_input_is_refused_clearly():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        coverage_fraction(PROBS * 2)
    with pytest.raises(ValueError, match="NaN"):
        variance_map(np.full((2, 2, 2), np.nan))
    with pytest.raises(ValueError, match="N = 0"):
        binary_entropy_of_mean(np.zeros((0, 4, 4)))
    with pytest.raises(ValueError, match="threshold"):
        coverage_count(MASKS, threshold=1.0)
