"""Evaluation metrics on hand-computed toys (and one sanity check on real multi-rater masks)."""
from __future__ import annotations

import math
import warnings
from fractions import Fraction

import numpy as np
import pytest

from ambiview.uncertainty import metrics
from ambiview.uncertainty.metrics import (collective_insight, dice_matrix, diversity, ged, hm_iou, iou_matrix, ncc,
                                          rater_sampler_ged, rater_spread, soft_dice)


def row(*values) -> np.ndarray:
    """One 1×len mask (a 1D-like image)."""
    return np.asarray(values, dtype=bool).reshape(1, len(values))


def stack(*rows) -> np.ndarray:
    return np.stack(rows)


LEFT = row(1, 1, 0, 0)
RIGHT = row(0, 0, 1, 1)
EMPTY = row(0, 0, 0, 0)


# --- IoU / Dice -----------------------------------------------------------------------------------------------------

def test_iou_matrix_known_values_and_empty_conventions():
    a = stack(LEFT, EMPTY, row(1, 1, 1, 0))
    b = stack(LEFT, RIGHT, EMPTY)
    expected = np.array([
        [1.0, 0.0, 0.0],      # LEFT vs LEFT, RIGHT, ∅
        [0.0, 0.0, 1.0],      # ∅ vs ..., IoU(∅, ∅) = 1
        [2 / 3, 1 / 4, 0.0],  # {0,1,2} vs {0,1}: 2/3; vs {2,3}: 1/4
    ])
    np.testing.assert_allclose(iou_matrix(a, b), expected)
    assert iou_matrix(a, b).shape == (3, 3)


def test_dice_matrix_known_values():
    a = stack(row(1, 1, 1, 0), EMPTY)
    b = stack(LEFT, EMPTY)
    np.testing.assert_allclose(dice_matrix(a, b), [[0.8, 0.0], [0.0, 1.0]])


def test_iou_of_probabilities_thresholds_strictly_above_half():
    probs = np.array([[[0.9, 0.5, 0.2]]])
    assert iou_matrix(probs, row(1, 0, 0)[None])[0, 0] == 1.0


def test_iou_matrix_works_on_volumes():
    a = np.zeros((2, 3, 4, 5), bool)
    a[0, 0] = True     # 20 voxels
    a[1, :2] = True    # 40 voxels, containing a[0]
    np.testing.assert_allclose(iou_matrix(a, a), [[1.0, 0.5], [0.5, 1.0]])


def test_iou_matrix_rejects_mismatched_shapes_with_a_clear_message():
    with pytest.raises(ValueError, match="image shape"):
        iou_matrix(np.zeros((1, 4, 4), bool), np.zeros((1, 4, 5), bool))
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        iou_matrix(np.zeros((4, 4), bool), np.zeros((1, 4, 4), bool))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        iou_matrix(np.full((1, 2, 2), 1.5), np.zeros((1, 2, 2), bool))


# --- GED ------------------------------------------------------------------------------------------------------------

def test_ged_of_identical_singletons_is_zero():
    assert ged(stack(LEFT), stack(LEFT)) == 0.0


def test_ged_of_disjoint_halves_is_two():
    # d(s, y) = 1, self-pairs 0: 2·1 − 0 − 0
    assert ged(stack(LEFT), stack(RIGHT)) == pytest.approx(2.0)


def test_ged_of_matching_two_mode_sets_is_zero():
    # E[d(s,y)] = (0+1+1+0)/4 = 1/2; E[d(s,s')] = E[d(y,y')] = 1/2 (self-pairs included) → 1 − 1/2 − 1/2 = 0
    assert ged(stack(LEFT, RIGHT), stack(RIGHT, LEFT)) == pytest.approx(0.0)


def test_ged_single_sample_against_two_modes():
    # S = {L}; Y = {L, R}: E[d(s,y)] = 1/2, E[d(s,s')] = 0, E[d(y,y')] = 1/2 → 2·1/2 − 0 − 1/2 = 1/2
    assert ged(stack(LEFT), stack(LEFT, RIGHT)) == pytest.approx(0.5)


def test_ged_empty_masks_count_as_identical():
    assert ged(stack(EMPTY, EMPTY), stack(EMPTY)) == 0.0
    # ∅ against a non-empty mask is as far as possible
    assert ged(stack(EMPTY), stack(LEFT)) == pytest.approx(2.0)


def test_rater_sampler_ged_by_hand():
    # Y = {L, R, L}: distinct-pair distances 1, 0, 1, 1, 0, 1 (ordered) → δ = 4/6 = 2/3; n = 2: 2/3 · (1/2 + 1/3)
    assert rater_spread(stack(LEFT, RIGHT, LEFT)) == pytest.approx(2 / 3)
    assert rater_sampler_ged(stack(LEFT, RIGHT, LEFT), 2) == pytest.approx(2 / 3 * (1 / 2 + 1 / 3))
    assert rater_sampler_ged(stack(LEFT, LEFT), 16) == 0.0  # raters who agree leave nothing to miss
    assert math.isnan(rater_sampler_ged(stack(LEFT), 16))  # one rater: δ unknown
    with pytest.raises(ValueError, match="at least 1"):
        rater_sampler_ged(stack(LEFT, RIGHT), 0)


def test_rater_sampler_ged_is_the_mean_ged_of_samples_drawn_like_the_raters():
    # Two equally likely modes (δ = 1/2), M = 2 raters, n = 2 samples: enumerate every draw of samples and raters.
    modes = (LEFT, RIGHT)
    draws = [(a, b) for a in modes for b in modes]
    mean = np.mean([ged(stack(*s), stack(*y)) for s in draws for y in draws])
    # the formula, with δ known (1/2) rather than estimated from one pair of raters
    assert mean == pytest.approx(0.5 * (1 / 2 + 1 / 2))
    assert np.mean([rater_sampler_ged(stack(*y), 2) for y in draws]) == pytest.approx(mean)


# --- HM-IoU ---------------------------------------------------------------------------------------------------------

def test_hm_iou_tiles_three_samples_against_two_annotations():
    # lcm(3, 2) = 6: samples s1 = s2 = L, s3 = R tiled twice → 4 L-like, 2 R-like; annotations L, R tiled 3 times.
    # Best matching: 3 L↔L (IoU 1), 2 R↔R (1), 1 leftover L-sample ↔ R (0) → 5/6.
    assert hm_iou(stack(LEFT, LEFT, RIGHT), stack(LEFT, RIGHT)) == pytest.approx(5 / 6)


def test_hm_iou_sixteen_samples_against_four_raters():
    # Raters: L, L, R, R (tiled ×4 → 8 L, 8 R). Samples: 12 L and 4 R → 8 L↔L, 4 R↔R, 4 L↔R (IoU 0) → 12/16.
    annots = stack(LEFT, LEFT, RIGHT, RIGHT)
    samples = np.stack([LEFT] * 12 + [RIGHT] * 4)
    assert hm_iou(samples, annots) == pytest.approx(0.75)
    # samples in the raters' proportions match perfectly
    assert hm_iou(np.stack([LEFT] * 8 + [RIGHT] * 8), annots) == pytest.approx(1.0)


def test_hm_iou_with_partial_overlaps():
    # One sample {0,1,2} against L={0,1} (IoU 2/3) and R={2,3} (IoU 1/4): lcm 2, both copies matched → mean 11/24
    assert hm_iou(stack(row(1, 1, 1, 0)), stack(LEFT, RIGHT)) == pytest.approx((2 / 3 + 1 / 4) / 2)


def test_hm_iou_transportation_fallback_equals_hungarian(monkeypatch):
    rng = np.random.default_rng(3)
    samples = rng.random((7, 6, 6)) > 0.5
    annots = rng.random((4, 6, 6)) > 0.5
    hungarian = hm_iou(samples, annots)  # lcm 28
    monkeypatch.setattr(metrics, "HUNGARIAN_MAX_SIZE", 1)
    assert hm_iou(samples, annots) == pytest.approx(hungarian, abs=1e-9)


# --- soft Dice ------------------------------------------------------------------------------------------------------

def test_soft_dice_exact_value_on_a_row_toy():
    samples = stack(row(1, 1, 0, 0), row(1, 0, 0, 0))        # mean 1, .5, 0, 0
    annots = stack(row(1, 1, 1, 0), row(1, 1, 0, 0))         # mean 1, 1, .5, 0
    # τ = .1, .3: {0,1} vs {0,1,2} → 4/5; τ = .5, .7, .9: {0} vs {0,1} → 2/3 (mean > τ is strict)
    assert soft_dice(samples, annots) == pytest.approx((0.8 + 0.8 + 3 * 2 / 3) / 5)


def test_soft_dice_uses_probabilities_and_custom_thresholds():
    probs = np.array([[[0.6, 0.2]], [[0.8, 0.2]]])          # mean .7, .2
    annots = stack(row(1, 0))
    assert soft_dice(probs, annots, thresholds=(0.5,)) == 1.0
    assert soft_dice(probs, annots, thresholds=(0.1,)) == pytest.approx(2 / 3)  # {0,1} vs {0}
    assert soft_dice(probs, annots, thresholds=(0.75,)) == 0.0                  # ∅ vs {0}


def test_soft_dice_of_empty_sets_is_one():
    assert soft_dice(stack(EMPTY), stack(EMPTY, EMPTY)) == 1.0


# --- NCC ------------------------------------------------------------------------------------------------------------

def _reference_ncc(samples: np.ndarray, annots: np.ndarray, eps: float = 1e-8) -> float:
    """PHiSeg's recipe, written the slow way: loops over samples and annotations."""
    s = samples.astype(np.float64)
    mean = s.mean(axis=0)

    def ce(pred, target):
        return -(target * np.log(pred + eps) + (1 - target) * np.log(1 - pred + eps))

    e_ss = np.mean([ce(p, mean) for p in s], axis=0).ravel()
    values = []
    for y in annots.astype(np.float64):
        e_sy = np.mean([ce(p, y) for p in s], axis=0).ravel()
        values.append(np.corrcoef(e_ss, e_sy)[0, 1])
    return float(np.mean(values))


def test_ncc_is_one_when_the_annotation_is_one_of_two_samples():
    s1, s2 = row(1, 1, 0, 0), row(1, 0, 1, 0)
    # E_ss and E_sy both equal C/2 where the samples disagree (pixels 1, 2) and ~0 elsewhere
    assert ncc(stack(s1, s2), stack(s1)) == pytest.approx(1.0, abs=1e-9)


def test_ncc_is_zero_for_an_uncorrelated_annotation():
    s1, s2 = row(1, 1, 0, 0), row(1, 0, 1, 0)
    y = row(0, 1, 0, 0)
    # E_ss ∝ (0, .5, .5, 0); E_sy ∝ (1, .5, .5, 0): centred (−.25, .25, .25, −.25)·(.5, 0, 0, −.5) = 0
    assert ncc(stack(s1, s2), stack(y)) == pytest.approx(0.0, abs=1e-9)


def test_ncc_averages_over_annotations_and_matches_phiseg_recipe():
    rng = np.random.default_rng(0)
    samples = rng.random((5, 6, 7))
    annots = rng.random((3, 6, 7)) > 0.5
    assert ncc(samples, annots) == pytest.approx(_reference_ncc(samples, annots), abs=1e-10)
    s1, s2 = row(1, 1, 0, 0), row(1, 0, 1, 0)
    assert ncc(stack(s1, s2), stack(s1, row(0, 1, 0, 0))) == pytest.approx(0.5, abs=1e-9)


def test_ncc_is_nan_without_warnings_when_all_samples_are_equal():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(ncc(stack(LEFT, LEFT, LEFT), stack(LEFT, RIGHT)))
        assert math.isnan(ncc(stack(EMPTY), stack(LEFT)))


# --- Collective Insight ---------------------------------------------------------------------------------------------

def test_collective_insight_exact_on_a_toy():
    annots = stack(row(1, 1, 0, 0), row(1, 1, 1, 0))
    samples = stack(row(1, 1, 0, 0), row(0, 1, 1, 1))
    # S_c: union S covers the annotations' union {0,1,2} → 1
    # D_max: y1 best 1 (s1); y2 best max(4/5, 4/6) = 4/5 → 9/10
    # V_Y = {1 − 4/5} = {1/5}; V_S = {1 − Dice(s1, s2) = 1 − 2/5} = {3/5}; D_a = 1 − (2/5 + 2/5)/2 = 3/5
    result = collective_insight(samples, annots)
    assert result["combined_sensitivity"] == pytest.approx(1.0)
    assert result["max_dice"] == pytest.approx(0.9)
    assert result["diversity_agreement"] == pytest.approx(0.6)
    assert result["ci"] == pytest.approx(3 * 0.9 * 0.6 / (0.9 + 0.54 + 0.6))


def test_collective_insight_with_missed_pixels():
    annots = stack(row(1, 1, 0, 0), row(1, 1, 1, 0))
    samples = stack(row(1, 0, 0, 0), row(0, 0, 1, 1))
    # S_c = |{0,2}| / |{0,1,2}| = 2/3; D_max = (2/3 + 1/2)/2 = 7/12; V_S = {1}, V_Y = {1/5}: D_a = 1 − 4/5 = 1/5
    s_c, d_max, d_a = Fraction(2, 3), Fraction(7, 12), Fraction(1, 5)
    expected = 3 * s_c * d_max * d_a / (s_c * d_max + d_max * d_a + d_a * s_c)
    assert expected == Fraction(42, 115)
    result = collective_insight(samples, annots)
    assert result["combined_sensitivity"] == pytest.approx(2 / 3)
    assert result["max_dice"] == pytest.approx(7 / 12)
    assert result["diversity_agreement"] == pytest.approx(0.2)
    assert result["ci"] == pytest.approx(42 / 115)


def test_collective_insight_of_a_set_with_itself_is_one_and_zero_part_gives_zero():
    annots = stack(LEFT, RIGHT, row(1, 1, 1, 0))
    assert collective_insight(annots, annots) == pytest.approx(
        {"ci": 1.0, "combined_sensitivity": 1.0, "max_dice": 1.0, "diversity_agreement": 1.0})
    # samples all empty: nothing found → S_c = 0, D_max = 0 → CI = 0
    assert collective_insight(stack(EMPTY, EMPTY), stack(LEFT))["ci"] == 0.0


# --- diversity ------------------------------------------------------------------------------------------------------

def test_diversity_known_values():
    assert diversity(stack(LEFT)) == 0.0
    assert diversity(stack(LEFT, LEFT)) == 0.0
    assert diversity(stack(LEFT, RIGHT)) == 1.0
    # pairs: L–R 1, L–{0,1,2} 1/3, R–{0,1,2} 3/4 → mean 25/36
    assert diversity(stack(LEFT, RIGHT, row(1, 1, 1, 0))) == pytest.approx((1 + 1 / 3 + 3 / 4) / 3)


# --- real raters ----------------------------------------------------------------------------------------------------

def test_raters_against_themselves_on_real_lidc_masks(lidc_dir):
    tifffile = pytest.importorskip("tifffile")
    path = sorted((lidc_dir / "validate" / "masks" / "annots").glob("*.tif"))[0]
    raters = np.moveaxis(tifffile.imread(path)[0], -1, 0).astype(bool)  # (R, 64, 64)
    assert raters.shape[1:] == (64, 64) and raters.shape[0] >= 2
    assert ged(raters, raters) == pytest.approx(0.0, abs=1e-12)
    assert hm_iou(raters, raters) == pytest.approx(1.0)
    assert soft_dice(raters, raters) == 1.0
    assert collective_insight(raters, raters)["ci"] == pytest.approx(1.0)
    # one rater repeated is a worse model of the raters than the raters themselves
    assert ged(np.repeat(raters[:1], 16, axis=0), raters) >= ged(raters, raters)
