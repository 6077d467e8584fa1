"""compare_sets: the model's hypotheses against expert masks, with known answers."""
import numpy as np
import pytest

from ambiview.uncertainty.compare import compare_sets


def _squares(sides, size=20):
    out = np.zeros((len(sides), size, size), bool)
    for i, side in enumerate(sides):
        out[i, 2:2 + side, 2:2 + side] = True
    return out


def test_identical_sets_are_at_distance_zero():
    masks = _squares([4, 6, 8])
    c = compare_sets(masks, masks)
    assert c.ged == pytest.approx(0.0) and c.hm_iou == pytest.approx(1.0)
    assert c.best_iou == (1.0, 1.0, 1.0) and c.best_match == (0, 1, 2)
    assert c.model_diversity == pytest.approx(c.expert_diversity) and c.empty_experts == ()


def test_known_values_and_empty_experts():
    samples = _squares([4, 4])                               # two identical 4x4 squares
    experts = np.concatenate([_squares([8]), np.zeros((1, 20, 20), bool)])  # an 8x8 square and an empty mask
    c = compare_sets(samples, experts)
    # d(s, y): 1 - 16/64 = 0.75 to the square, 1 to the empty mask; d(s, s') = 0; d(y, y') = 1 off the diagonal
    assert c.ged == pytest.approx(2 * (0.75 + 1.0) / 2 - 0.0 - 0.5)
    assert c.best_iou == (0.25, 0.0) and c.empty_experts == (1,)
    assert c.model_diversity == 0.0 and c.expert_diversity == 1.0
    assert c.hm_iou == pytest.approx((0.25 + 0.0) / 2)
    assert (c.n_samples, c.n_experts) == (2, 2)


def test_shapes_must_match():
    with pytest.raises(ValueError, match="experts"):
        compare_sets(_squares([4]), np.zeros((1, 10, 10), bool))
