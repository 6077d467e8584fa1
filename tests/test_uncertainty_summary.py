"""The summary of a toy result: every number known by hand, and the whole thing JSON-ready."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ambiview.uncertainty.summary import summarize


def _toy_2d() -> np.ndarray:
    """Four hypotheses on 8×8: three 2×2 squares at one place (probabilities .9), one 2×2 square elsewhere."""
    probs = np.full((4, 8, 8), 0.1)
    probs[:3, 1:3, 1:3] = 0.9
    probs[3, 5:7, 5:7] = 0.8
    return probs


def test_summarize_a_2d_toy():
    # spacing (dy, dx) = (0.5, 2.0) mm: one pixel is 1 mm²
    s = summarize(_toy_2d(), (0.5, 2.0))
    assert s["n_hypotheses"] == 4 and s["ndim"] == 2 and s["size_unit"] == "mm²"
    assert s["sizes"] == {"per_hypothesis": [4.0] * 4, "mean": 4.0, "sd": 0.0, "min": 4.0, "max": 4.0}
    # a 2×2 square: farthest face centres are (y 0, x −1 mm) and (y 0.5, x 3 mm) → √(0.25 + 16)
    square = math.sqrt(0.5**2 + 4.0**2)
    assert s["diameters_mm"]["per_hypothesis"] == pytest.approx([square] * 4)
    assert s["diameters_3d_mm"] is None
    # consensus: 10% → k ≥ 1 (both squares, 8 mm²), 50% → k ≥ 2 (first square), 90% → k ≥ 4 (nothing)
    assert [(c["level"], c["required_count"], c["size"]) for c in s["consensus"]] == [
        (0.1, 1, 8.0), (0.5, 2, 4.0), (0.9, 4, 0.0)]
    assert s["consensus"][1]["longest_diameter_mm"] == pytest.approx(square)
    assert s["consensus"][2]["longest_diameter_mm"] == 0.0
    assert s["staple"]["size"] == 4.0 and len(s["staple"]["sensitivity"]) == 4
    assert s["modes"] == [{"members": [0, 1, 2], "representative": 0, "share": 0.75},
                          {"members": [3], "representative": 3, "share": 0.25}]
    assert s["modes_text"] == "2 interpretations: 75% / 25%"
    assert s["diversity"] == pytest.approx(0.5)  # 3 identical pairs (0), 3 disjoint pairs (1)
    json.loads(json.dumps(s, allow_nan=False))


def test_summarize_without_staple_keeps_everything_else():
    full = summarize(_toy_2d(), (0.5, 2.0))
    quick = summarize(_toy_2d(), (0.5, 2.0), with_staple=False)
    assert quick["staple"] is None
    assert {k: v for k, v in quick.items() if k != "staple"} == {k: v for k, v in full.items() if k != "staple"}


def test_size_spread_uses_the_sample_standard_deviation():
    masks = np.zeros((3, 6, 6), bool)
    masks[0, :1] = True                              # 6 px
    masks[1, :2] = True                              # 12 px
    masks[2, :3] = True                              # 18 px
    sizes = summarize(masks, (1.0, 1.0))["sizes"]
    assert (sizes["mean"], sizes["min"], sizes["max"]) == (12.0, 6.0, 18.0)
    assert sizes["sd"] == pytest.approx(6.0)


def test_summarize_a_3d_toy():
    masks = np.zeros((2, 4, 5, 5), bool)
    masks[:, 1:3, 1:4, 1:4] = True                   # 2 × 3 × 3 = 18 voxels each
    masks[1, 3, 2, 2] = True                         # one voxel more
    s = summarize(masks, (2.0, 1.0, 0.5))            # a voxel is 1 mm³
    assert s["size_unit"] == "mm³"
    assert s["sizes"]["per_hypothesis"] == [18.0, 19.0]
    assert [c["size"] for c in s["consensus"]] == [19.0, 19.0, 18.0]   # k ≥ 1, 1, 2 of 2
    # axial (RECIST) diameter of a 3 × 3 slice at (dy, dx) = (1, 0.5) mm: top face of the left column
    # (y −0.5, x 0 mm) to bottom face of the right column (y 2.5, x 1 mm) → √(9 + 1)
    assert s["diameters_mm"]["per_hypothesis"] == pytest.approx([math.sqrt(10.0)] * 2)
    # the extra voxel on top of the second hypothesis lengthens its 3D diameter only
    d3 = s["diameters_3d_mm"]["per_hypothesis"]
    assert d3[1] > d3[0] > s["diameters_mm"]["per_hypothesis"][0]
    json.loads(json.dumps(s, allow_nan=False))


def test_summarize_all_empty_hypotheses_gives_none_for_undefined_values():
    s = summarize(np.zeros((4, 6, 6)), (1.0, 1.0))
    assert s["sizes"]["max"] == 0.0 and s["diversity"] == 0.0
    assert s["staple"]["sensitivity"] == [None] * 4 and s["staple"]["note"] == "identical inputs"
    assert s["modes_text"] == "1 interpretation: 100%"
    json.loads(json.dumps(s, allow_nan=False))


def test_summarize_refuses_a_spacing_that_does_not_fit():
    with pytest.raises(ValueError, match="needs 2 spacings"):
        summarize(_toy_2d(), (1.0, 1.0, 1.0))
