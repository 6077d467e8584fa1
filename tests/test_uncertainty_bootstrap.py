"""Bootstrap confidence intervals: degenerate cases exactly, a generic case against its definition."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ambiview.uncertainty.bootstrap import bootstrap_ci


def test_constant_values_give_a_zero_width_interval():
    assert bootstrap_ci([0.3] * 20) == (pytest.approx(0.3), pytest.approx(0.3), pytest.approx(0.3))


def test_nan_values_are_left_out():
    assert bootstrap_ci([0.5, math.nan, 0.5]) == (0.5, 0.5, 0.5)
    mean, lo, hi = bootstrap_ci([1.0, 2.0, 3.0, math.nan, math.inf])
    assert mean == 2.0 and 1.0 <= lo < 2.0 < hi <= 3.0


def test_no_finite_value_gives_nans():
    assert all(math.isnan(v) for v in bootstrap_ci([]))
    assert all(math.isnan(v) for v in bootstrap_ci([math.nan, math.nan]))


def test_single_value():
    assert bootstrap_ci([0.7]) == (0.7, 0.7, 0.7)


def test_two_values_interval_spans_the_possible_resample_means():
    # resample means of {0, 1} with n = 2 are 0, 1/2, 1 with probabilities 1/4, 1/2, 1/4:
    # the 2.5% and 97.5% quantiles of 2000 draws are 0 and 1
    mean, lo, hi = bootstrap_ci([0.0, 1.0], n_boot=2000)
    assert (mean, lo, hi) == (0.5, 0.0, 1.0)


def test_matches_the_definition_and_is_deterministic():
    values = np.random.default_rng(1).normal(size=50)
    result = bootstrap_ci(values, n_boot=500, alpha=0.1, seed=7)
    rng = np.random.default_rng(7)
    means = values[rng.integers(0, 50, size=(500, 50))].mean(axis=1)
    expected = (values.mean(), *np.quantile(means, [0.05, 0.95]))
    np.testing.assert_allclose(result, expected)
    assert bootstrap_ci(values, n_boot=500, alpha=0.1, seed=7) == result
    assert bootstrap_ci(values, n_boot=500, alpha=0.1, seed=8) != result
    # a larger sample of the same spread gives a narrower interval
    wide = bootstrap_ci(values[:10])
    narrow = bootstrap_ci(values)
    assert narrow[2] - narrow[1] < wide[2] - wide[1]


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="alpha"):
        bootstrap_ci([1.0, 2.0], alpha=1.5)
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_ci([1.0, 2.0], n_boot=0)
