"""Mirrored views of a crop (ambiview.models.mirror_views): prompts flip with the pixels, and bad settings say so."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from ambiview.models.base import ModelError, ModelPrompts
from ambiview.models.mirror_views import FLIPS, MAX_VIEWS, checked_views, flip, flip_prompts, set_views
from ambiview.session.segment import views_note


def box_of(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return ys.min(), xs.min(), ys.max(), xs.max()


@pytest.mark.parametrize("view", range(MAX_VIEWS))
def test_a_box_and_points_flip_with_the_pixels_they_name(view):
    mask = np.zeros((12, 9), bool)
    mask[2:5, 1:7] = True  # rows 2-4, columns 1-6: asymmetric both ways
    prompts = ModelPrompts(box=(2, 1, 4, 6), points=[(3, 6, True), (10, 0, False)])
    flipped = flip_prompts(prompts, mask.shape, view)
    assert flipped.box == box_of(flip(mask, view))
    for (y, x, positive), (fy, fx, fpositive) in zip(prompts.points, flipped.points):
        marker = np.zeros(mask.shape, bool)
        marker[y, x] = True
        assert flip(marker, view)[int(fy), int(fx)] and fpositive == positive
    # flipping twice is the identity, for pixels and prompts
    assert np.array_equal(flip(flip(mask, view), view), mask)
    assert flip_prompts(flipped, mask.shape, view) == prompts


def test_the_views_are_the_four_distinct_flips_starting_with_the_crop_itself():
    image = np.arange(12.0).reshape(3, 4)
    assert FLIPS[0] == (False, False) and np.array_equal(flip(image, 0), image)
    looks = {flip(image, view).tobytes() for view in range(MAX_VIEWS)}
    assert len(looks) == MAX_VIEWS


@pytest.mark.parametrize("bad", [0, 5, -1, 2.0, True, "2", None])
def test_views_outside_one_to_four_are_refused_with_the_setting_named(bad):
    with pytest.raises(ModelError, match="views must be a whole number from 1 to 4"):
        checked_views(bad, "probsam-x")
    assert checked_views(np.int64(3)) == 3


def test_only_engines_with_views_take_more_than_one():
    class Plain:
        title = "SSB"

    class WithViews:
        title = "Probabilistic SAM"
        views = 1

    plain, probsam = Plain(), WithViews()
    set_views(plain, 1)  # what every engine does
    with pytest.raises(ModelError, match="SSB draws its hypotheses on the crop as it is"):
        set_views(plain, 2)
    set_views(probsam, 4)
    assert probsam.views == 4 and views_note(probsam.views) == " · 4 mirrored views" and views_note(1) == ""


def test_the_gui_takes_max_views_from_here_without_importing_torch():
    # one MAX_VIEWS for the engine, the model panel and the command line; the GUI starts without torch
    code = ("import sys; import ambiview.models.mirror_views, ambiview.ui.app, ambiview.ui.model_panel; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    from ambiview.ui.app import build_parser

    views = next(action for action in build_parser()._actions if "--views" in action.option_strings)
    assert list(views.choices) == list(range(1, MAX_VIEWS + 1))
