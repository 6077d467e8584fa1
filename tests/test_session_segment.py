"""Prompts -> ROI -> engine -> result, with a transparent fake engine so the plumbing is checked exactly."""
import numpy as np
import pytest

from ambiview.imaging.volume import Volume
from ambiview.models.base import Engine, ModelPrompts
from ambiview.session import Session
from ambiview.session.segment import PreparedCache, PromptError, model_prompts, roi_for, segment


class BoxEngine(Engine):
    """Hypothesis k = the prompt box grown by k pixels; records what it was given."""

    name, title, digest = "fake", "Fake", "d1g3st"
    accepts = frozenset({"box"})

    def __init__(self):
        self.prepared = 0
        self.seen = None

    def prepare(self, image):
        self.prepared += 1
        return image

    def sample(self, state, prompts, n, seed, on_sample=None, cancel=None):
        self.seen = (state, prompts)
        y0, x0, y1, x1 = (int(round(v)) for v in prompts.box)
        out = np.zeros((n, 64, 64), np.float32)
        for k in range(n):
            out[k, max(y0 - k, 0):y1 + k + 1, max(x0 - k, 0):x1 + k + 1] = 1
            if on_sample:
                on_sample(k + 1, out[k:k + 1])
        return out


@pytest.fixture
def session():
    vox = np.full((6, 120, 100), -800, np.int16)
    vox[3, 50:60, 40:52] = 30                       # a "nodule"
    s = Session()
    s.set_volume(Volume.from_array(vox, spacing=(2.5, 0.7, 0.7), series_uid="1.2.3"))
    return s


def test_box_prompt_runs_on_the_crop_and_lands_back_on_the_volume(session):
    session.add_box(3, 50, 40, 59, 51)
    engine, streamed = BoxEngine(), []
    result = segment(session.volume, session.prompts, engine, n=3, seed=0,
                     on_sample=lambda done, batch: streamed.append(done))
    assert streamed == [1, 2, 3] and result.n == 3 and result.series_uid == "1.2.3"
    crop, prompts = engine.seen
    assert abs(crop.mean()) < 1e-4 and abs(crop.std() - 1) < 1e-3      # standardised like the training crops
    mask0 = result.mask_to_volume(result.probs[0] > 0.5)
    assert mask0[3, 50:60, 40:52].all() and mask0.sum() == 10 * 12   # hypothesis 0 is exactly the box
    assert not mask0[2].any()


def test_prepared_state_is_cached_per_roi(session):
    engine, cache = BoxEngine(), PreparedCache()
    session.add_box(3, 50, 40, 59, 51)
    segment(session.volume, session.prompts, engine, 2, 0, cache=cache)
    segment(session.volume, session.prompts, engine, 2, 1, cache=cache)
    assert engine.prepared == 1
    session.add_box(3, 10, 10, 20, 20)
    segment(session.volume, session.prompts, engine, 2, 0, cache=cache)
    assert engine.prepared == 2


def test_prompts_the_engine_cannot_take_are_refused_with_a_reason(session):
    with pytest.raises(PromptError, match="place a point or a box"):
        roi_for((), session.volume)
    session.add_point(3, 55, 45, positive=True)
    roi = roi_for(session.prompts, session.volume)
    assert roi.scale == 1.0
    with pytest.raises(PromptError, match="needs a box"):
        model_prompts(session.prompts, roi, frozenset({"box"}))
    mp = model_prompts(session.prompts, roi, frozenset({"box", "point"}))
    assert isinstance(mp, ModelPrompts) and mp.points[0][2] is True
    session.clear_prompts()
    session.add_point(3, 55, 45, positive=False)
    with pytest.raises(PromptError, match="negative point alone"):
        roi_for(session.prompts, session.volume)


def test_only_prompts_on_the_latest_slice_count(session):
    session.add_box(1, 0, 0, 10, 10)
    session.add_box(3, 50, 40, 59, 51)
    roi = roi_for(session.prompts, session.volume)
    assert roi.z0 == 3
