"""Consensus by exact counting, confidence bands, and STAPLE through SimpleITK."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ambiview.uncertainty import consensus as consensus_module
from ambiview.uncertainty.consensus import (confidence_band, consensus_from_count, consensus_mask, required_count,
                                            staple)
from ambiview.uncertainty.maps import coverage_count

MASKS = np.array([[1, 1, 0], [1, 0, 0], [1, 1, 1], [1, 0, 0]], dtype=bool).reshape(4, 1, 3)  # k = 4, 2, 1


def test_required_count_is_exact_integer_counting():
    assert required_count(4, 0.5) == 2
    assert 0.55 * 100 > 55
    assert required_count(100, 0.55) == 55       # 0.55·100 = 55.00000000000001 must not become 56
    assert required_count(3, 2 / 3) == 2
    assert required_count(4, 0.9) == 4
    assert required_count(4, 1.0) == 4
    assert required_count(4, 0.01) == 1
    for bad in (0.0, -0.1, 1.01):
        with pytest.raises(ValueError, match="level"):
            required_count(4, bad)


def test_consensus_at_half_of_four_is_at_least_two():
    np.testing.assert_array_equal(consensus_mask(MASKS, 0.5), [[True, True, False]])
    np.testing.assert_array_equal(consensus_mask(MASKS, 0.51), [[True, False, False]])
    np.testing.assert_array_equal(consensus_mask(MASKS, 0.25), [[True, True, True]])


def test_consensus_from_precomputed_count_matches():
    rng = np.random.default_rng(0)
    probs = rng.random((16, 20, 20))
    count = coverage_count(probs)
    for level in (0.1, 0.25, 0.5, 0.75, 1.0):
        np.testing.assert_array_equal(consensus_from_count(count, 16, level), consensus_mask(probs, level))
    # monotone: a stricter level never adds pixels
    assert not (consensus_mask(probs, 0.9) & ~consensus_mask(probs, 0.5)).any()


def test_confidence_band():
    inner, outer = confidence_band(MASKS)            # inner: k ≥ ceil(3.6) = 4; outer: k ≥ ceil(0.4) = 1
    np.testing.assert_array_equal(inner, [[True, False, False]])
    np.testing.assert_array_equal(outer, [[True, True, True]])
    with pytest.raises(ValueError, match="outer"):
        confidence_band(MASKS, inner=0.3, outer=0.6)


def _square_masks():
    truth = np.zeros((32, 32), bool)
    truth[10:20, 10:20] = True                       # 100 px; 924 background px
    misses_half = truth.copy()
    misses_half[10:15] = False                       # finds 50 of 100
    overshoots = truth.copy()
    overshoots[20:25, 10:20] = True                  # 50 false positives
    return truth, np.stack([truth, truth, truth, misses_half, overshoots])


def test_staple_agrees_with_majority_and_estimates_each_rater():
    truth, masks = _square_masks()
    result = staple(masks)
    assert result.note is None
    np.testing.assert_array_equal(result.mask, truth)
    np.testing.assert_array_equal(result.mask, consensus_mask(masks, 0.5))
    np.testing.assert_allclose(result.sensitivity, [1, 1, 1, 0.5, 1], atol=1e-6)
    np.testing.assert_allclose(result.specificity, [1, 1, 1, 1, 1 - 50 / 924], atol=1e-6)
    assert result.probability.shape == truth.shape
    assert result.probability.min() >= 0 and result.probability.max() <= 1


def test_staple_on_unanimous_inputs():
    truth, _ = _square_masks()
    result = staple(np.stack([truth] * 3))
    np.testing.assert_array_equal(result.mask, truth)
    np.testing.assert_array_equal(result.probability, truth.astype(float))
    np.testing.assert_array_equal(result.sensitivity, [1, 1, 1])
    np.testing.assert_array_equal(result.specificity, [1, 1, 1])


def test_staple_on_empty_inputs_reports_undefined_sensitivity():
    result = staple(np.zeros((3, 8, 8), bool))
    assert not result.mask.any()
    assert np.isnan(result.sensitivity).all()
    np.testing.assert_array_equal(result.specificity, [1, 1, 1])
    assert result.note == "identical inputs"


def test_staple_on_volumes():
    volume = np.zeros((3, 4, 6, 6), bool)
    volume[:, 1:3, 2:5, 2:5] = True
    volume[2, 0, 0, 0] = True                        # one stray voxel from one rater
    result = staple(volume)
    np.testing.assert_array_equal(result.mask, volume[0])
    assert result.sensitivity.shape == (3,)


def test_staple_falls_back_when_itk_returns_nan(monkeypatch):
    class NanStaple:
        """Stands in for an ITK filter whose EM divided 0 by 0."""

        def __getattr__(self, name):
            return lambda *args: None

        def Execute(self, images):
            sitk = consensus_module.sitk
            return sitk.GetImageFromArray(np.full(sitk.GetArrayFromImage(images[0]).shape, math.nan))

    monkeypatch.setattr(consensus_module.sitk, "STAPLEImageFilter", NanStaple)
    result = staple(MASKS)
    np.testing.assert_allclose(result.probability, [[1.0, 0.5, 0.25]])
    np.testing.assert_array_equal(result.mask, [[True, False, False]])
    assert np.isnan(result.sensitivity).all() and "did not converge" in result.note
