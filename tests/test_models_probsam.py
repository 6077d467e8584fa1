"""Probabilistic SAM: prompt geometry, loss parts, embedding cache, registry, training smoke run, shipped checkpoint."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from safetensors import safe_open

from ambiview.cli import main as cli_main
from ambiview.models.base import EngineInfo, ModelError, ModelPrompts, box_support, select_device
from ambiview.models.embedding_cache import EmbeddingCache, fingerprint
from ambiview.models.lidc import read_item
from ambiview.models.mirror_views import flip, flip_prompts
from ambiview.models.probsam import (
    DRAWS,
    ProbSamConfig,
    ProbSamEngine,
    box_of_mask,
    box_to_model,
    free_bits_kl,
    jittered_boxes,
    kl_diag_gaussians,
    point_to_model,
    sampling_note,
    save_with_temperature,
    standard_normal_draws,
    training_loss,
)
from ambiview.models.registry import list_engines, load_engine
from ambiview.models.sam_backbone import load_backbone
from ambiview.paths import PROJECT_ROOT

SHIPPED = PROJECT_ROOT / "models" / "probsam-litemedsam.safetensors"


# --- geometry and loss pieces ------------------------------------------------------------------------------------


def test_box_maps_onto_the_upsampled_pixels_it_covers():
    # crop pixels 10..20 cover input pixels 40..83 at 4x (nearest-neighbour upscaling of the mask)
    assert box_to_model((10, 12, 20, 30), 4.0, 4.0) == (48.0, 40.0, 123.0, 83.0)
    assert box_to_model((0, 0, 63, 63), 4.0, 4.0) == (0.0, 0.0, 255.0, 255.0)
    assert point_to_model(0, 0, 4.0, 4.0) == (1.5, 1.5)  # centre of crop pixel 0 = centre of input pixels 0..3
    assert point_to_model(10, 20, 16.0, 16.0) == (327.5, 167.5)  # (x, y) for SAM


def test_box_of_mask_and_the_central_fallback():
    mask = np.zeros((64, 64), bool)
    assert box_of_mask(mask) == (16, 16, 48, 48)
    mask[5:9, 30:41] = True
    mask[12, 2] = True
    assert box_of_mask(mask) == (5, 2, 12, 40)


def test_kl_of_diagonal_gaussians():
    mu = torch.tensor([[0.5, -1.0]])
    ls = torch.tensor([[0.2, -0.3]])
    assert float(kl_diag_gaussians(mu, ls, mu, ls)) == pytest.approx(0.0, abs=1e-7)
    # KL(N(1, 1) || N(0, 1)) = 0.5 per dimension; KL(N(0, e^2) || N(0, 1)) = (e^2 - 1)/2 - 1
    got = kl_diag_gaussians(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]), torch.zeros(1, 2), torch.zeros(1, 2))
    assert float(got) == pytest.approx(0.5 + (np.e ** 2 - 1) / 2 - 1, rel=1e-6)


def test_training_loss_is_bce_plus_soft_dice_plus_beta_kl():
    logits = torch.zeros(1, 1, 2, 2)  # p = 0.5 everywhere
    target = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    total, recon = training_loss(logits, target, torch.tensor([0.1]), beta=10.0)
    dice = 1 - (2 * 0.5 + 1) / (2.0 + 1.0 + 1)
    assert float(recon) == pytest.approx(np.log(2) + dice, rel=1e-6)
    assert float(total) == pytest.approx(float(recon) + 1.0, rel=1e-6)


def test_free_bits_floor_each_dimension_and_stop_its_gradient():
    kl = torch.tensor([[0.05, 0.8, 0.0]], requires_grad=True)
    assert float(free_bits_kl(kl.detach(), 0.0)) == pytest.approx(0.85)
    total = free_bits_kl(kl, 0.25)
    assert float(total.detach()) == pytest.approx(0.25 + 0.8 + 0.25)
    total.sum().backward()
    assert kl.grad.tolist() == [[0.0, 1.0, 0.0]]  # below the floor a dimension is free


def test_z_into_the_dense_embedding_starts_as_the_papers_model_and_then_moves_every_position():
    from ambiview.models.probsam import ProbSam

    torch.manual_seed(0)
    paper = ProbSam(load_backbone("tiny-random"))
    torch.manual_seed(0)
    ours = ProbSam(load_backbone("tiny-random"), z_inject="tokens+dense")
    ours.load_state_dict(paper.state_dict(), strict=False)  # same shared weights; z_dense stays zero
    emb = torch.randn(1, paper.backbone.embed_dim, 16, 16)
    sparse, dense = paper.embed_prompts([ModelPrompts(box=(10, 10, 40, 40))], (64, 64))
    z = torch.randn(2, paper.latent_dim)
    with torch.no_grad():
        args = (emb.expand(2, -1, -1, -1), sparse.expand(2, -1, -1), dense, z, (64, 64))
        assert torch.equal(paper.decode(*args), ours.decode(*args))
        torch.nn.init.normal_(ours.z_dense.weight)
        assert not torch.allclose(paper.decode(*args), ours.decode(*args))
    with pytest.raises(ModelError, match="z_inject"):
        ProbSam(load_backbone("tiny-random"), z_inject="everywhere")


def test_training_prompt_sources():
    from ambiview.models.lidc import LidcItem
    from ambiview.models.probsam import ProbSamConfig
    from ambiview.models.train_probsam import training_prompt

    gt = np.zeros((64, 64), bool)
    gt[20:30, 22:35] = True
    rater = np.zeros((64, 64), bool)
    rater[18:33, 20:31] = True
    empty = np.zeros((64, 64), bool)
    item = LidcItem("pid_0001_nod_0_slice_0", np.zeros((64, 64), np.float32), np.stack([rater, empty]), gt, "0001", 0, 0)
    rng = np.random.default_rng(0)
    paper = ProbSamConfig(box_source="rater", point_prob=0.0)
    assert training_prompt(item, rater, rng, paper).box == (18, 20, 32, 30)
    assert training_prompt(item, empty, rng, paper).box == (16, 16, 48, 48)  # the authors' central box
    ours = ProbSamConfig(box_source="consensus", point_prob=0.0)
    assert training_prompt(item, rater, rng, ours).box == (20, 22, 29, 34)
    assert training_prompt(item, empty, rng, ours).box == (20, 22, 29, 34)  # same prompt for every rater
    points_only = ProbSamConfig(box_source="rater", point_prob=1.0)
    for _ in range(20):
        prompt = training_prompt(item, rater, rng, points_only)
        assert prompt.box is None and 1 <= len(prompt.points) <= 3
        assert all(rater[int(y), int(x)] and positive for y, x, positive in prompt.points)


# --- small infrastructure ----------------------------------------------------------------------------------------


def test_embedding_cache_round_trip_and_keys(tmp_path):
    cache = EmbeddingCache(tmp_path)
    image = np.arange(16, dtype=np.float32).reshape(4, 4)
    key = cache.key(image, "a" * 64)
    assert cache.get(key) is None
    stored = cache.put(key, np.full((2, 3, 3), 0.1234567, np.float32))
    assert stored.dtype == np.float16
    assert np.array_equal(cache.get(key), stored)
    assert not list(tmp_path.rglob(".tmp-*"))  # written atomically, nothing left over
    changed = image.copy()
    changed[0, 0] += 1
    assert cache.key(changed, "a" * 64) != key  # other data
    assert cache.key(image, "b" * 64) != key  # other backbone weights
    assert fingerprint(image) != fingerprint(image.astype(np.float64))
    cache.path(key).write_bytes(b"damaged")
    assert cache.get(key) is None  # a damaged file is a miss, not a crash
    assert cache.clear() == 1


def test_the_decoder_under_bfloat16_stays_close_to_float32():
    from ambiview.models.base import default_precision
    from ambiview.models.probsam import ProbSam

    torch.manual_seed(0)
    engine = ProbSamEngine(model=ProbSam(load_backbone("tiny-random"), z_inject="tokens+dense"),
                           device=torch.device("cpu"))
    assert engine.precision == default_precision(torch.device("cpu")) and engine.precision in ("float32", "bfloat16")
    assert default_precision(torch.device("cuda")) == "float32"
    state = engine.prepare(np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32))
    prompts = ModelPrompts(box=(20, 20, 40, 40))
    engine.precision = "float32"
    exact = engine.sample(state, prompts, 3, seed=1)
    engine.precision = "bfloat16"
    rounded = engine.sample(state, prompts, 3, seed=1)
    assert rounded.dtype == np.float32 and not np.array_equal(rounded, exact)  # it did run in bfloat16
    assert np.max(np.abs(rounded - exact)) < 0.05


def test_select_device(monkeypatch):
    assert select_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert select_device(None) == torch.device("cpu")
    assert select_device("auto") == torch.device("cpu")
    with pytest.raises(ModelError, match="CUDA is not available"):
        select_device("cuda")
    with pytest.raises(ModelError, match="unknown device|unsupported device"):
        select_device("tpu7")


def test_backbone_specs_are_checked(tmp_path):
    with pytest.raises(ModelError, match="unknown backbone"):
        load_backbone("resnet50")
    with pytest.raises(ModelError, match="needs its checkpoint file"):
        load_backbone("sam_vit_b")
    with pytest.raises(ModelError, match="not found"):
        load_backbone(f"sam_vit_b:{tmp_path / 'missing.pth'}")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"garbage")
    with pytest.raises(ModelError, match="cannot read as a PyTorch weights file"):
        load_backbone(f"sam_vit_b:{bad}")


# --- training smoke run on a tiny random backbone ------------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke_checkpoint(lidc_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "smoke.safetensors"
    code = cli_main(["train", "probsam", "--data", str(lidc_dir), "--out", str(out), "--epochs", "1", "--limit", "3",
                     "--backbone", "tiny-random", "--seed", "3"])
    assert code == 0
    return out


def test_smoke_training_writes_a_loadable_delta_checkpoint(smoke_checkpoint):
    with safe_open(str(smoke_checkpoint), framework="pt") as handle:
        meta = handle.metadata()
        keys = list(handle.keys())
    assert meta["engine"] == "probsam" and meta["backbone"] == "tiny-random"
    assert meta["seed"] == "3" and meta["epochs"] == "1" and "--limit 3" in meta["command"]
    assert len(meta["backbone_sha256"]) == 64 and float(meta["val_ged"]) >= 0
    assert any(k.startswith("delta.mask_decoder.") for k in keys)
    assert any(k.startswith("net.prior.") for k in keys) and any(k.startswith("net.z_proj.") for k in keys)
    assert not any("image_encoder" in k for k in keys)  # the frozen encoder is never stored
    engine = load_engine(str(smoke_checkpoint), device="cpu")
    assert engine.name == "smoke" and engine.checkpoint == smoke_checkpoint and len(engine.digest) == 12
    state = engine.prepare(np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32))
    probs = engine.sample(state, ModelPrompts(box=(20, 20, 40, 40)), n=3, seed=0)
    assert probs.shape == (3, 64, 64) and probs.dtype == np.float32


def test_sampling_temperature_scales_the_prior_spread_and_travels_with_the_checkpoint(smoke_checkpoint, tmp_path):
    engine = load_engine(str(smoke_checkpoint), device="cpu")
    assert engine.temperature == 1.0  # the paper's sampling
    state = engine.prepare(np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32))
    box = ModelPrompts(box=(20, 20, 40, 40))
    mu, _ = engine.prior(state, box)
    at_one = engine.latents(state, box, 4, seed=0)
    engine.temperature = 2.0
    assert torch.allclose(engine.latents(state, box, 4, seed=0) - mu, 2.0 * (at_one - mu))
    warmer = tmp_path / "warmer.safetensors"
    save_with_temperature(smoke_checkpoint, warmer, 1.5, "chosen by hand")
    reloaded = load_engine(str(warmer), device="cpu")
    assert reloaded.temperature == 1.5 and reloaded.metadata["temperature_chosen"] == "chosen by hand"
    with safe_open(str(smoke_checkpoint), "pt") as a, safe_open(str(warmer), "pt") as b:
        assert all(torch.equal(a.get_tensor(key), b.get_tensor(key)) for key in a.keys())
    with pytest.raises(ModelError, match="temperature must be > 0"):
        save_with_temperature(smoke_checkpoint, tmp_path / "cold.safetensors", 0.0, "")


def test_sobol_draws_cover_each_dimension_evenly_and_keep_hypothesis_i_fixed():
    for draws in DRAWS:
        eps = standard_normal_draws(16, 6, seed=7, draws=draws)
        assert eps.shape == (16, 6) and torch.isfinite(eps).all()
        assert torch.equal(standard_normal_draws(5, 6, seed=7, draws=draws), eps[:5])  # hypothesis i ignores n
        assert not torch.equal(standard_normal_draws(16, 6, seed=8, draws=draws), eps)
    # the first 16 points of a scrambled Sobol sequence put exactly one point in each sixteenth of every axis, so
    # through the normal CDF every dimension's eps fall one per 1/16 quantile bin; 16 iid draws almost never do
    strata = lambda eps: torch.floor(torch.special.ndtr(eps.double()) * 16).long()  # noqa: E731
    sobol = strata(standard_normal_draws(16, 6, seed=7, draws="sobol"))
    for dim in range(6):
        assert sorted(sobol[:, dim].tolist()) == list(range(16))
    iid = strata(standard_normal_draws(16, 6, seed=7, draws="iid"))
    assert any(sorted(iid[:, dim].tolist()) != list(range(16)) for dim in range(6))
    with pytest.raises(ModelError, match="unknown draws"):
        standard_normal_draws(4, 6, seed=0, draws="halton")


def test_the_way_of_drawing_travels_with_the_checkpoint(smoke_checkpoint, tmp_path):
    engine = load_engine(str(smoke_checkpoint), device="cpu")
    assert engine.draws == "iid"  # the paper's sampling
    state = engine.prepare(np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32))
    box = ModelPrompts(box=(20, 20, 40, 40))
    mu, log_sigma = engine.prior(state, box)
    sobol = tmp_path / "sobol.safetensors"
    save_with_temperature(smoke_checkpoint, sobol, 1.5, "chosen by hand", draws="sobol")
    reloaded = load_engine(str(sobol), device="cpu")
    assert (reloaded.temperature, reloaded.draws) == (1.5, "sobol")
    expected = mu + 1.5 * torch.exp(log_sigma) * standard_normal_draws(4, mu.shape[1], 3, "sobol")
    assert torch.allclose(reloaded.latents(state, box, 4, seed=3), expected)
    assert sampling_note(reloaded.metadata) == "temperature 1.5 · Sobol draws · box + 5 px"
    with pytest.raises(ModelError, match="unknown draws"):
        save_with_temperature(smoke_checkpoint, tmp_path / "bad.safetensors", 1.0, "", draws="halton")
    with pytest.raises(ModelError, match="unknown draws"):
        ProbSamEngine(model=engine.model, name="bad", draws="halton")


def test_jittered_boxes_move_each_edge_by_its_own_draw_and_ignore_n():
    box = (20.0, 22.0, 30.0, 35.0)
    for draws in DRAWS:
        boxes = jittered_boxes(box, 16, seed=5, sigma=1.5, draws=draws)
        assert len(boxes) == 16 and len(set(boxes)) == 16
        assert jittered_boxes(box, 3, seed=5, sigma=1.5, draws=draws) == boxes[:3]  # hypothesis i ignores n
        assert jittered_boxes(box, 3, seed=6, sigma=1.5, draws=draws) != boxes[:3]
        offsets = np.array(boxes) - np.array(box)
        # the edges move independently, by sigma * a standard normal draw of their own stream (not the latents')
        assert np.allclose(offsets / 1.5, standard_normal_draws(16, 4, 5 + 7919, draws).double().numpy(), atol=1e-6)
        assert not np.allclose(offsets[:, :4] / 1.5, standard_normal_draws(16, 6, 5, draws)[:, :4].numpy())
    assert jittered_boxes(box, 4, seed=5, sigma=0.0) == [box] * 4
    # a thin box whose edges cross under the jitter becomes one row or column at their middle, never inverted
    for y0, x0, y1, x1 in jittered_boxes((30.0, 30.0, 30.5, 30.5), 64, seed=1, sigma=3.0):
        assert y0 <= y1 and x0 <= x1


def test_box_jitter_gives_each_hypothesis_its_own_reading_of_the_box(smoke_checkpoint, tmp_path):
    engine = load_engine(str(smoke_checkpoint), device="cpu")
    assert engine.box_jitter == 0.0  # the paper reads the box as given
    state = engine.prepare(np.random.default_rng(2).standard_normal((64, 64)).astype(np.float32))
    prompts = ModelPrompts(box=(20, 22, 30, 35))
    plain = engine.sample(state, prompts, n=4, seed=3)
    engine.box_jitter = 2.0
    jittered = engine.sample(state, prompts, n=4, seed=3)
    assert not np.allclose(jittered, plain)
    assert np.array_equal(engine.sample(state, prompts, n=1, seed=3), jittered[:1])  # the first, drawn alone
    # each hypothesis is the plain decoding of its own jittered box with its own latent
    z = engine.latents(state, prompts, 4, seed=3)
    engine.box_jitter = 0.0
    for i, box in enumerate(jittered_boxes(prompts.box, 4, 3, 2.0, engine.draws)):
        one = engine.decode_latents(state, ModelPrompts(box=box), z[i:i + 1])[0]
        inside = box_support(prompts.box, (64, 64), engine.box_margin) & box_support(box, (64, 64), engine.box_margin)
        assert np.allclose(one[inside], jittered[i][inside], atol=1e-5)
    # the bound stays on the box as given, not on the jittered one
    engine.box_jitter = 3.0
    assert (engine.sample(state, prompts, n=8, seed=3)[:, ~box_support(prompts.box, (64, 64), 5)] == 0).all()
    # points are read as given; a point prompt is not jittered
    points = ModelPrompts(points=[(25, 28, True)])
    engine.box_jitter = 0.0
    unjittered = engine.sample(state, points, n=2, seed=1)
    engine.box_jitter = 3.0
    assert np.array_equal(engine.sample(state, points, n=2, seed=1), unjittered)
    # on mirrored views hypothesis i reads its own jittered box in its view's frame
    image = state.crop[0, 0].numpy()
    engine.box_jitter, engine.views = 2.0, 2
    two = engine.sample(state, prompts, n=2, seed=3)
    assert np.abs(two[0] - jittered[0]).max() < 1e-5
    view_state = engine.prepare(flip(image, 1))
    box1 = jittered_boxes(prompts.box, 2, 3, 2.0, engine.draws)[1]
    z1 = engine.latents(view_state, flip_prompts(prompts, image.shape, 1), 2, seed=3)[[1]]
    engine.box_jitter, engine.views = 0.0, 1
    one = flip(engine.decode_latents(view_state, flip_prompts(ModelPrompts(box=box1), image.shape, 1), z1), 1)[0]
    inside = box_support(prompts.box, (64, 64), engine.box_margin) & box_support(box1, (64, 64), engine.box_margin)
    assert np.allclose(one[inside], two[1][inside], atol=1e-5)
    # it travels with the checkpoint and the model picker says so
    saved = tmp_path / "jitter.safetensors"
    save_with_temperature(smoke_checkpoint, saved, 1.0, "chosen by hand", box_jitter=1.5)
    reloaded = load_engine(str(saved), device="cpu")
    assert reloaded.box_jitter == 1.5
    assert sampling_note(reloaded.metadata) == "temperature 1 · box + 5 px · box jitter 1.5 px"
    with pytest.raises(ModelError, match="box jitter must be a number >= 0"):
        save_with_temperature(smoke_checkpoint, tmp_path / "bad.safetensors", 1.0, "", box_jitter=-1.0)
    with pytest.raises(ModelError, match="box jitter must be a number >= 0"):
        ProbSamEngine(model=engine.model, name="bad", box_jitter=float("nan"))
    with pytest.raises(ModelError, match="box jitter must be a number >= 0"):
        ProbSamEngine(model=engine.model, name="bad", box_jitter="wide")


def test_box_support_grows_an_inclusive_box_by_the_margin():
    support = box_support((2, 3, 4, 5), (8, 10), 1)
    expected = np.zeros((8, 10), bool)
    expected[1:6, 2:7] = True  # rows 1..5, columns 2..6
    assert np.array_equal(support, expected)
    assert np.array_equal(box_support((2.5, 3, 4, 5), (8, 10), 0)[:, 3], [False] * 3 + [True] * 2 + [False] * 3)
    assert box_support((0, 0, 9, 9), (8, 10), 3).all()  # clipped by the crop


def test_a_box_prompt_bounds_the_hypotheses_and_points_do_not(smoke_checkpoint):
    engine = load_engine(str(smoke_checkpoint), device="cpu")
    assert engine.box_margin == 5.0  # the default, stored in the checkpoint's config
    state = engine.prepare(np.random.default_rng(1).standard_normal((64, 64)).astype(np.float32))
    box = ModelPrompts(box=(20, 22, 30, 35))
    engine.box_margin = -1  # no bound: the untrained decoder puts probability everywhere
    free = engine.sample(state, box, n=3, seed=0)
    outside = ~box_support(box.box, (64, 64), 2)
    assert (free[:, outside] > 0).all()
    engine.box_margin = 2
    bounded = engine.sample(state, box, n=3, seed=0)
    assert (bounded[:, outside] == 0).all()
    assert np.array_equal(bounded[:, ~outside], free[:, ~outside])
    points = ModelPrompts(points=[(25, 28, True)])
    assert (engine.sample(state, points, n=2, seed=0)[:, outside] > 0).all()
    assert sampling_note({"config": ProbSamConfig(box_margin=-1).to_json()}) == "temperature 1 · no box bound"
    assert sampling_note({"config": "not json"}) == ""


def test_decoding_chosen_latents_gives_those_hypotheses_of_a_sample(smoke_checkpoint):
    engine = load_engine(str(smoke_checkpoint), device="cpu")
    engine.draws = "sobol"
    state = engine.prepare(np.random.default_rng(2).standard_normal((64, 64)).astype(np.float32))
    box = ModelPrompts(box=(20, 22, 30, 35))
    full = engine.sample(state, box, n=8, seed=3)
    picks = [1, 5, 7]  # as benchmarks/probsam_flip_views.py shares hypotheses out over views
    z = engine.latents(state, box, 8, seed=3)[picks]
    assert np.allclose(engine.decode_latents(state, box, z), full[picks], atol=1e-6)
    assert not np.allclose(full[1], full[5])


def test_mirrored_views_decode_hypothesis_i_on_view_i_mod_v_and_flip_it_back(smoke_checkpoint):
    engine = load_engine(str(smoke_checkpoint), device="cpu")
    engine.draws = "sobol"
    image = np.random.default_rng(4).standard_normal((64, 64)).astype(np.float32)
    state = engine.prepare(image)
    box = ModelPrompts(box=(20, 22, 30, 35))
    one_view = engine.sample(state, box, n=6, seed=5)
    engine.views = 3
    three = engine.sample(state, box, n=6, seed=5)
    # view 0 is the crop as it is (decoded in other batches, so equal up to rounding)
    assert np.abs(three[[0, 3]] - one_view[[0, 3]]).max() < 1e-5
    for i in (1, 2, 4, 5):
        view = i % 3
        view_state = engine.prepare(flip(image, view))  # its own encoder pass
        view_box = flip_prompts(box, image.shape, view)
        z = engine.latents(view_state, view_box, 6, seed=5)[[i]]
        assert np.allclose(three[i], flip(engine.decode_latents(view_state, view_box, z), view)[0], atol=1e-6)
        assert not np.allclose(three[i], one_view[i], atol=1e-3)
    # the box bound holds on every view, in the crop's own frame
    outside = ~box_support(box.box, image.shape, engine.box_margin)
    assert np.all(three[:, outside] == 0)
    # points flip too
    points = ModelPrompts(points=[(25.0, 30.0, True), (5.0, 60.0, False)])
    assert engine.sample(state, points, n=3, seed=1).shape == (3, 64, 64)


def test_the_first_hypothesis_of_mirrored_views_waits_for_no_other_encoder_pass(smoke_checkpoint):
    engine = load_engine(str(smoke_checkpoint), device="cpu")
    engine.views = 4
    state = engine.prepare(np.random.default_rng(6).standard_normal((64, 64)).astype(np.float32))
    passes = []
    real_embed = engine.embed

    def counting_embed(image):
        passes.append(1)
        return real_embed(image)

    engine.embed = counting_embed
    seen = []
    engine.sample(state, ModelPrompts(box=(10, 10, 40, 40)), n=16, seed=0,
                  on_sample=lambda done, batch: seen.append((done, len(passes))))
    assert seen[0] == (1, 0)  # on screen before any other view is encoded
    assert seen[-1] == (16, 3) and len(passes) == 3  # each further view encoded once
    engine.views = 4
    engine.embed = real_embed
    assert engine.sample(state, ModelPrompts(box=(10, 10, 40, 40)), n=2, seed=0).shape == (2, 64, 64)  # n < views


def test_training_is_deterministic(smoke_checkpoint, lidc_dir, tmp_path):
    again = tmp_path / "again.safetensors"
    assert cli_main(["train", "probsam", "--data", str(lidc_dir), "--out", str(again), "--epochs", "1", "--limit",
                     "3", "--backbone", "tiny-random", "--seed", "3"]) == 0
    with safe_open(str(smoke_checkpoint), "pt") as a, safe_open(str(again), "pt") as b:
        assert sorted(a.keys()) == sorted(b.keys())
        for key in a.keys():
            assert torch.equal(a.get_tensor(key), b.get_tensor(key)), key


def test_training_with_z_in_the_dense_embedding_and_free_bits_round_trips(lidc_dir, tmp_path):
    out = tmp_path / "dense.safetensors"
    assert cli_main(["train", "probsam", "--data", str(lidc_dir), "--out", str(out), "--epochs", "1", "--limit", "2",
                     "--backbone", "tiny-random", "--seed", "1", "--option", "z_inject=tokens+dense",
                     "--option", "free_bits=0.5", "--option", "lr_new=1e-3", "--option", "val_samples=2"]) == 0
    with safe_open(str(out), framework="pt") as handle:
        assert any(k.startswith("net.z_dense.") for k in handle.keys())
    engine = load_engine(str(out), device="cpu")
    assert engine.model.z_inject == "tokens+dense"
    state = engine.prepare(np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32))
    assert engine.sample(state, ModelPrompts(box=(20, 20, 40, 40)), n=2, seed=0).shape == (2, 64, 64)
    assert cli_main(["train", "probsam", "--data", str(lidc_dir), "--out", str(out), "--epochs", "1", "--limit", "2",
                     "--backbone", "tiny-random", "--option", "z_inject=nowhere"]) == 2


def test_prompted_prior_on_the_embedding_depends_on_the_prompt_and_round_trips(lidc_dir, tmp_path):
    out = tmp_path / "prompted.safetensors"
    assert cli_main(["train", "probsam", "--data", str(lidc_dir), "--out", str(out), "--epochs", "1", "--limit", "2",
                     "--backbone", "tiny-random", "--seed", "1", "--option", "latent_input=embedding+prompt",
                     "--option", "val_samples=2"]) == 0
    engine = load_engine(str(out), device="cpu")
    assert engine.model.latent_input == "embedding+prompt"
    state = engine.prepare(np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32))
    small, large = ModelPrompts(box=(28, 28, 34, 34)), ModelPrompts(box=(8, 8, 56, 56))
    assert not torch.allclose(engine.prior(state, small)[0], engine.prior(state, large)[0])
    point = ModelPrompts(points=[(30.0, 30.0, True)])
    assert engine.sample(state, point, n=2, seed=0).shape == (2, 64, 64)
    assert cli_main(["train", "probsam", "--data", str(lidc_dir), "--out", str(out), "--epochs", "1", "--limit", "2",
                     "--backbone", "tiny-random", "--option", "latent_input=pixels"]) == 2


def test_prompt_map_fills_the_box_and_marks_points():
    from ambiview.models.probsam import prompt_map

    box = prompt_map(ModelPrompts(box=(2, 3, 4, 6)), (8, 8))[0, 0]
    assert box.sum() == 3 * 4 and box[2, 3] == 1 and box[4, 6] == 1 and box[1, 3] == 0
    points = prompt_map(ModelPrompts(points=[(0.0, 0.0, True), (5.0, 5.0, False)]), (8, 8))[0, 0]
    assert points.sum() == 4 - 9 and points[0, 0] == 1 and points[6, 6] == -1 and points[7, 7] == 0


def test_weight_average_follows_the_weights_with_a_warm_start():
    from ambiview.models.train_probsam import WeightAverage

    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    average = WeightAverage(model, decay=0.9)
    with torch.no_grad():
        model.weight.fill_(10.0)
    average.update(model, step=1)  # warm start: decay min(0.9, 2/11)
    assert average.state()["weight"].item() == pytest.approx(10.0 * (1 - 2 / 11))
    for step in range(2, 200):
        average.update(model, step)
    assert average.state()["weight"].item() == pytest.approx(10.0, abs=1e-4)
    assert model.weight.item() == 10.0  # the average never writes into the model


def test_training_with_a_weight_average_keeps_the_average(lidc_dir, tmp_path):
    plain, averaged = tmp_path / "plain.safetensors", tmp_path / "averaged.safetensors"
    common = ["train", "probsam", "--data", str(lidc_dir), "--epochs", "1", "--limit", "2", "--backbone",
              "tiny-random", "--seed", "2", "--option", "val_samples=2"]
    assert cli_main(common + ["--out", str(plain)]) == 0
    assert cli_main(common + ["--out", str(averaged), "--option", "ema=0.5"]) == 0
    with safe_open(str(plain), "pt") as a, safe_open(str(averaged), "pt") as b:
        assert sorted(a.keys()) == sorted(b.keys())
        assert any(not torch.equal(a.get_tensor(k), b.get_tensor(k)) for k in a.keys())
    assert cli_main(common + ["--out", str(averaged), "--option", "ema=1"]) == 2


def test_soft_energy_score_rewards_the_raters_spread_over_one_of_them():
    from ambiview.models.train_probsam import soft_energy_score, soft_iou_distance

    two, empty = [1.0, 1, 0, 0], [0.0, 0, 0, 0]
    # 1 - (0 + 1) / (2 + 0 - 0 + 1): smoothed by one pixel, and two empty masks at distance 0 as IoU(0, 0) = 1
    assert torch.allclose(soft_iou_distance(torch.tensor([two, empty]), torch.tensor([two, empty])),
                          torch.tensor([[0.0, 2 / 3], [2 / 3, 0.0]]))
    raters = torch.tensor([two, [1.0, 1, 1, 0]])  # d(rater 0, rater 1) = 1 - 3/4
    # hypotheses drawn like the raters: E d(S, Y) = (0 + 1/4 + 1/4 + 0) / 4, minus half their spread 1/4
    assert soft_energy_score(raters.clone(), raters).item() == pytest.approx(0.0)
    # both hypotheses on rater 0: closer to it, no spread, worse score
    assert soft_energy_score(raters[[0, 0]], raters).item() == pytest.approx(0.125)
    # soft masks: only distinct pairs spread, not a mask's (non-zero) soft distance from itself
    soft = torch.tensor([[0.5, 0.5, 0.5, 0.5], two])
    pair = soft_iou_distance(soft, soft)[0, 1].item()
    assert soft_iou_distance(soft, soft)[0, 0].item() > 0
    assert soft_energy_score(soft, raters).item() == pytest.approx(
        soft_iou_distance(soft, raters).mean().item() - 0.5 * pair)


def test_straight_through_threshold_scores_the_thresholded_mask_and_passes_the_gradient():
    from ambiview.models.train_probsam import soft_energy_score, straight_through_threshold

    probs = torch.tensor([[0.9, 0.6, 0.4, 0.1], [0.7, 0.2, 0.55, 0.0]], requires_grad=True)
    hard = straight_through_threshold(probs)
    assert torch.equal(hard.detach(), torch.tensor([[1.0, 1, 0, 0], [1.0, 0, 1, 0]]))
    raters = torch.tensor([[1.0, 1, 0, 0], [1.0, 1, 1, 0]])
    score = soft_energy_score(hard, raters)
    assert score.item() == pytest.approx(soft_energy_score(hard.detach(), raters).item())
    score.backward()
    # the gradient is the one the thresholded masks get, passed to the probabilities unchanged
    binary = hard.detach().clone().requires_grad_(True)
    soft_energy_score(binary, raters).backward()
    assert torch.allclose(probs.grad, binary.grad) and probs.grad.abs().sum() > 0


def test_energy_hypotheses_are_drawn_as_the_engine_samples_when_asked():
    """energy_as_sampled=1: z at the sampling temperature, each hypothesis its own jittered box, the box bound;
    0: the prior at temperature 1 with the box as given and no bound (the runs before the option)."""
    from ambiview.models.probsam import ProbSam, ProbSamConfig, moved_boxes
    from ambiview.models.train_probsam import energy_hypotheses

    torch.manual_seed(0)
    model = ProbSam(load_backbone("tiny-random"), z_inject="tokens+dense").eval()
    shape, box = (64, 64), (20.0, 22.0, 30.0, 35.0)
    prompt = ModelPrompts(box=box)
    embedding = torch.randn(1, model.backbone.embed_dim, *model.backbone.prompt_encoder.image_embedding_size)
    sparse, dense = model.embed_prompts([prompt], shape)
    mu, log_sigma = torch.randn(1, 6), torch.full((1, 6), -0.5)
    k = 3

    def drawn(config: ProbSamConfig) -> torch.Tensor:
        with torch.no_grad():
            return energy_hypotheses(model, embedding, prompt, sparse, dense, mu, log_sigma,
                                     torch.Generator().manual_seed(7), config, torch.device("cpu"), shape)

    def by_hand(scale: float, jitter: float | None, bound: bool) -> torch.Tensor:
        noise = torch.Generator().manual_seed(7)
        z = mu + scale * torch.exp(log_sigma) * torch.randn(k, 6, generator=noise)
        if jitter is None:
            s, d = sparse.expand(k, -1, -1), dense.expand(k, -1, -1, -1)
        else:
            eps = torch.randn(k, 4, generator=noise).double().numpy()
            s, d = model.embed_prompts([ModelPrompts(box=b) for b in moved_boxes(box, jitter * eps)], shape)
        with torch.no_grad():
            probs = torch.sigmoid(model.decode(embedding.expand(k, -1, -1, -1), s, d, z, shape))
        return probs * torch.from_numpy(box_support(box, shape, 5.0)) if bound else probs

    sampler = dict(energy_samples=k, temperature=1.7, box_jitter=2.0, box_margin=5.0)
    assert torch.allclose(drawn(ProbSamConfig(**sampler, energy_as_sampled=0)), by_hand(1.0, None, False))
    matched = drawn(ProbSamConfig(**sampler, energy_as_sampled=1))
    assert torch.allclose(matched, by_hand(1.7, 2.0, True))
    assert not torch.allclose(matched, by_hand(1.7, None, True))  # the boxes did move
    assert matched[..., ~torch.from_numpy(box_support(box, shape, 5.0))].abs().max() == 0


def test_fine_tuning_from_a_checkpoint_with_the_energy_score(smoke_checkpoint, lidc_dir, tmp_path, capsys):
    common = ["train", "probsam", "--data", str(lidc_dir), "--epochs", "1", "--limit", "2", "--seed", "4",
              "--init", str(smoke_checkpoint), "--option", "val_samples=2"]
    frozen, tuned, energy = (tmp_path / f"{n}.safetensors" for n in ("frozen", "tuned", "energy"))
    # learning rate 0: the written weights are the --init checkpoint's, energy term and all
    assert cli_main(common + ["--out", str(frozen), "--option", "lr=0", "--option", "energy_weight=1"]) == 0
    with safe_open(str(smoke_checkpoint), "pt") as a, safe_open(str(frozen), "pt") as b:
        assert sorted(a.keys()) == sorted(b.keys())
        assert all(torch.equal(a.get_tensor(k), b.get_tensor(k)) for k in a.keys())
        meta = b.metadata()
    assert meta["init"].startswith("smoke.safetensors (") and meta["backbone"] == "tiny-random"
    assert json.loads(meta["config"])["energy_weight"] == 1.0
    assert cli_main(common + ["--out", str(tuned)]) == 0
    assert cli_main(common + ["--out", str(energy), "--option", "energy_weight=1", "--option",
                              "energy_samples=3"]) == 0
    with safe_open(str(tuned), "pt") as a, safe_open(str(energy), "pt") as b:
        assert any(not torch.equal(a.get_tensor(k), b.get_tensor(k)) for k in a.keys())
    capsys.readouterr()
    assert cli_main(common + ["--out", str(energy), "--option", "latent_dim=4"]) == 2
    assert "trained with latent_dim=6" in capsys.readouterr().err
    assert cli_main(common + ["--out", str(energy), "--option", "energy_samples=1"]) == 2
    assert "energy_samples >= 2" in capsys.readouterr().err
    assert cli_main(common + ["--out", str(energy), "--option", "energy_weight=1", "--option",
                              "energy_binary=1"]) == 0
    with safe_open(str(energy), "pt") as a:
        assert json.loads(a.metadata()["config"])["energy_binary"] == 1
    assert cli_main(common + ["--out", str(energy), "--option", "energy_binary=2"]) == 2
    assert "energy_binary must be 0" in capsys.readouterr().err
    assert cli_main(common + ["--out", str(energy), "--option", "energy_as_sampled=2"]) == 2
    assert "energy_as_sampled must be 0" in capsys.readouterr().err
    assert cli_main(["train", "ssb", "--data", str(lidc_dir), "--out", str(energy), "--init",
                     str(smoke_checkpoint)]) == 2
    assert "ssb training always starts from scratch" in capsys.readouterr().err


def test_a_weight_average_of_trained_checkpoints_loads_and_samples(smoke_checkpoint, lidc_dir, tmp_path):
    # a fine-tuned continuation of the smoke checkpoint, averaged with it (ambiview-cli average)
    tuned, soup = tmp_path / "tuned.safetensors", tmp_path / "soup.safetensors"
    assert cli_main(["train", "probsam", "--data", str(lidc_dir), "--epochs", "1", "--limit", "2", "--seed", "5",
                     "--init", str(smoke_checkpoint), "--option", "val_samples=2", "--out", str(tuned)]) == 0
    assert cli_main(["average", "--out", str(soup), str(smoke_checkpoint), str(tuned)]) == 0
    engines = [load_engine(str(p), device="cpu") for p in (smoke_checkpoint, tuned, soup)]
    image = np.random.default_rng(1).standard_normal((64, 64)).astype(np.float32)
    box = ModelPrompts(box=(20, 20, 40, 40))
    mus = [engine.prior(engine.prepare(image), box)[0] for engine in engines]
    assert not torch.allclose(mus[0], mus[1])
    probs = engines[2].sample(engines[2].prepare(image), box, n=2, seed=0)
    assert probs.shape == (2, 64, 64) and np.isfinite(probs).all()
    assert not torch.allclose(mus[2], mus[0]) and not torch.allclose(mus[2], mus[1])  # a third network


def test_mirrored_training_views_flip_crop_raters_and_consensus_together(lidc_dir, tmp_path, monkeypatch):
    """train_views=V: every step reads one of the first V mirrored views of its crop (crop, raters' masks and
    consensus flipped alike, the embedding that of the flipped crop); V=1 reads the crops as they are."""
    from ambiview.models import train_probsam
    from ambiview.models.lidc import check_split, load_split

    originals = load_split(check_split(lidc_dir / "train"), 2)
    for view in range(4):
        for item, mirrored in zip(originals, train_probsam.mirrored_items(originals, view)):
            for name in ("scan", "raters", "gt"):
                assert np.array_equal(getattr(mirrored, name), flip(getattr(item, name), view)), (view, name)
            assert mirrored.name == item.name

    real_step = train_probsam._step

    def trained(views: int) -> list[int]:
        seen: list[int] = []

        def spy(model, optimizer, item, embedding, mask, prompt, *rest):
            index = [o.name for o in originals].index(item.name)
            view = next(v for v in range(4) if np.array_equal(item.scan, flip(originals[index].scan, v)))
            assert np.array_equal(item.gt, flip(originals[index].gt, view))
            assert any(np.array_equal(mask, flip(r, view)) for r in originals[index].raters)
            seen.append(view)
            return real_step(model, optimizer, item, embedding, mask, prompt, *rest)

        monkeypatch.setattr(train_probsam, "_step", spy)
        out = tmp_path / f"views{views}.safetensors"
        assert cli_main(["train", "probsam", "--data", str(lidc_dir), "--out", str(out), "--epochs", "3", "--limit",
                         "2", "--backbone", "tiny-random", "--seed", "2", "--option", f"train_views={views}",
                         "--option", "val_samples=2"]) == 0
        with safe_open(str(out), framework="pt") as handle:
            assert json.loads(handle.metadata()["config"])["train_views"] == views
        return seen

    assert trained(1) == [0] * 6
    drawn = trained(4)
    assert len(drawn) == 6 and len(set(drawn)) > 1


@pytest.mark.parametrize("bad", ["0", "5", "1.5"])
def test_training_views_outside_one_to_four_are_refused(lidc_dir, tmp_path, capsys, bad):
    out = tmp_path / "x.safetensors"
    assert cli_main(["train", "probsam", "--data", str(lidc_dir), "--out", str(out), "--limit", "2", "--backbone",
                     "tiny-random", "--option", f"train_views={bad}"]) == 2
    assert "train_views" in capsys.readouterr().err
    assert not out.exists()


def test_a_stopped_training_keeps_its_best_validated_epoch(lidc_dir, tmp_path, monkeypatch):
    """SIGTERM or Ctrl+C (KeyboardInterrupt) during epoch 2 writes the epoch-1 weights and says so."""
    from ambiview.models import train_probsam

    calls = {"n": 0}
    real_step = train_probsam._step

    def interrupted_in_epoch_two(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 2:  # 2 crops: two steps an epoch
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train_probsam, "_step", interrupted_in_epoch_two)
    out = tmp_path / "stopped.safetensors"
    assert cli_main(["train", "probsam", "--data", str(lidc_dir), "--out", str(out), "--epochs", "4", "--limit", "2",
                     "--backbone", "tiny-random", "--option", "val_every=1", "--option", "val_samples=2"]) == 0
    with safe_open(str(out), framework="pt") as handle:
        meta = handle.metadata()
    assert meta["stopped_early"] == "after epoch 1" and meta["best_epoch"] == "1"


def test_train_command_reports_bad_input(lidc_dir, tmp_path, capsys):
    assert cli_main(["train", "nosuchmodel", "--data", str(lidc_dir), "--out", str(tmp_path / "x.safetensors")]) == 2
    assert "unknown model 'nosuchmodel'" in capsys.readouterr().err
    assert cli_main(["train", "probsam", "--data", str(tmp_path / "nodata"), "--out",
                     str(tmp_path / "x.safetensors")]) == 2
    assert "nodata/train: no such folder" in capsys.readouterr().err
    assert cli_main(["train", "probsam", "--data", str(lidc_dir), "--out", str(tmp_path / "x.safetensors"),
                     "--option", "warp=9"]) == 2
    assert "unknown option 'warp'" in capsys.readouterr().err
    assert cli_main(["train", "probsam", "--data", str(lidc_dir), "--out", str(tmp_path / "x.safetensors"),
                     "--option", "temperature=-1"]) == 2
    assert "temperature must be > 0" in capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists()


def test_registry_lists_checkpoints_of_the_models_folder(smoke_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("AMBIVIEW_MODELS_DIR", str(tmp_path))
    (tmp_path / "smoke-probsam.safetensors").write_bytes(smoke_checkpoint.read_bytes())
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
    infos = list_engines()
    assert [i.name for i in infos if i.checkpoint is not None] == ["smoke-probsam"]
    info = infos[0]
    assert isinstance(info, EngineInfo) and info.dims == 2 and len(info.digest) == 12
    assert load_engine("smoke-probsam", "cpu").digest == info.digest
    with pytest.raises(ModelError, match="unknown model 'nope'"):
        load_engine("nope")


def test_out_of_memory_on_the_gpu_falls_back_to_the_cpu(smoke_checkpoint, monkeypatch, caplog):
    engine = load_engine(str(smoke_checkpoint), device="cpu")
    state = engine.prepare(np.random.default_rng(1).standard_normal((64, 64)).astype(np.float32))
    expected = engine.sample(state, ModelPrompts(box=(10, 10, 50, 50)), n=2, seed=5)
    engine.device = torch.device("cuda")  # pretend the engine runs on a GPU whose memory is exhausted
    real_sample = engine._sample
    calls = {"n": 0}

    def sample_once_out_of_memory(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_sample(*args, **kwargs)

    monkeypatch.setattr(engine, "_sample", sample_once_out_of_memory)
    with caplog.at_level(logging.WARNING):
        got = engine.sample(state, ModelPrompts(box=(10, 10, 50, 50)), n=2, seed=5)
    assert engine.device == torch.device("cpu")
    assert "continuing on the CPU" in caplog.text
    assert np.array_equal(got, expected)


# --- the official SAM ViT-B as backbone (random weights saved to a file) ------------------------------------------


@pytest.mark.slow
def test_official_sam_vit_b_loads_from_a_weights_file(tmp_path):
    from segment_anything import build_sam_vit_b

    from ambiview.models.probsam import ProbSam

    with torch.device("meta"):  # the architecture only; random weights are drawn below (faster than its init)
        shapes = {k: v.shape for k, v in build_sam_vit_b(checkpoint=None).state_dict().items()}
    gen = torch.Generator().manual_seed(0)
    state = {k: torch.randn(shape, generator=gen) * 0.02 for k, shape in shapes.items()}
    path = tmp_path / "sam_vit_b_random.pth"
    torch.save(state, path)
    expected = state["mask_decoder.output_upscaling.0.weight"].clone()
    del state
    backbone = load_backbone(f"sam_vit_b:{path}")
    assert backbone.name == "sam_vit_b" and backbone.input_size == 1024 and backbone.embed_dim == 256
    assert torch.equal(backbone.mask_decoder.output_upscaling[0].weight, expected)
    # the 1024-px input pipeline: min-max [0, 1], 3 channels, no pixel mean/std
    x = backbone.preprocess(torch.linspace(-3, 5, 64 * 64).reshape(64, 64))
    assert x.shape == (1, 3, 1024, 1024) and float(x.min()) == 0.0 and float(x.max()) == pytest.approx(1.0)
    # the decoder side runs on a (synthetic) 64x64 embedding; box coordinates scale by 1024/64
    engine = ProbSamEngine(model=ProbSam(backbone), device=torch.device("cpu"))
    state = engine.state_from_embedding(np.zeros((64, 64), np.float32), torch.zeros(256, 64, 64))
    probs = engine.sample(state, ModelPrompts(box=(20, 20, 40, 40)), n=2, seed=0)
    assert probs.shape == (2, 64, 64) and np.all((probs >= 0) & (probs <= 1))
    with pytest.raises(ModelError, match="do not fit the LiteMedSAM architecture"):
        load_backbone(f"litemedsam:{path}")


# --- the shipped checkpoint -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped():
    assert SHIPPED.is_file(), f"{SHIPPED} is missing: the app ships it (models/probsam-litemedsam.md)"
    return load_engine("probsam-litemedsam", device="cpu")


@pytest.fixture(scope="module")
def nodule(lidc_dir, shipped):
    item = read_item(lidc_dir / "validate", "pid_0490_nod_0_slice_17")
    return item, shipped.prepare(item.scan)


def test_shipped_checkpoint_is_small_and_listed(shipped):
    assert SHIPPED.stat().st_size < 20e6
    names = {info.name: info for info in list_engines()}
    assert names["probsam-litemedsam"].checkpoint == SHIPPED
    assert names["probsam-litemedsam"].digest == shipped.digest
    # what the card says is shipped
    assert names["probsam-litemedsam"].sampling == "temperature 1 · Sobol draws · box + 5 px · box jitter 1.5 px"
    # the panel offers mirrored views for it, and for no other family
    assert names["probsam-litemedsam"].mirror_views and shipped.views == 1
    assert not any(info.mirror_views for info in names.values() if not info.name.startswith("probsam"))
    assert (shipped.temperature, shipped.draws, shipped.box_margin, shipped.box_jitter) == (1.0, "sobol", 5.0, 1.5)
    assert shipped.accepts == frozenset({"box", "point"}) and shipped.dims == 2 and shipped.crop_size == 64
    meta = shipped.metadata
    assert meta["backbone"] == "litemedsam" and meta["backbone_sha256"].startswith("79d8c9dc")
    assert "Armato" in meta["data"] and meta["command"].startswith("ambiview-cli average")
    # the weight average of stage 2 and its continuations (the card: "A weight average that keeps z's meaning")
    members = json.loads(meta["averaged_from"])
    assert len(members) >= 3 and members[0] == "probsam-litemedsam.safetensors (7910569472bd)"
    assert meta["temperature_chosen"].startswith("lowest mean GED on train")


@pytest.fixture(scope="module")
def box_samples(shipped, nodule):
    item, state = nodule
    streamed = []
    probs = shipped.sample(state, ModelPrompts(box=box_of_mask(item.gt)), n=16, seed=0,
                           on_sample=lambda done, batch: streamed.append((done, batch.shape[0])))
    return probs, streamed


def test_shipped_model_draws_seeded_plausible_hypotheses(shipped, nodule, box_samples):
    item, state = nodule
    box = box_of_mask(item.gt)
    probs, streamed = box_samples
    assert probs.shape == (16, 64, 64) and probs.dtype == np.float32
    assert probs.min() >= 0.0 and probs.max() <= 1.0
    assert streamed[0] == (1, 1) and streamed[-1][0] == 16  # the first hypothesis comes alone
    # same seed, same hypotheses (hypothesis i does not depend on how many are drawn); another seed, others
    assert np.array_equal(shipped.sample(state, ModelPrompts(box=box), n=5, seed=0), probs[:5])
    assert not np.array_equal(shipped.sample(state, ModelPrompts(box=box), n=5, seed=1), probs[:5])
    masks = probs > 0.5
    assert len({m.tobytes() for m in masks}) > 1  # not all hypotheses identical
    # masks lie inside/around the box and agree with the raters' consensus
    y0, x0, y1, x1 = box
    around = np.zeros((64, 64), bool)
    around[max(0, y0 - 3):y1 + 4, max(0, x0 - 3):x1 + 4] = True
    assert masks[:, around].sum() >= 0.95 * masks.sum()
    dice = [2 * (m & item.gt).sum() / (m.sum() + item.gt.sum()) for m in masks]
    assert np.mean(dice) > 0.7


def test_shipped_model_takes_points_and_can_be_cancelled(shipped, nodule, box_samples):
    item, state = nodule
    ys, xs = np.nonzero(item.gt)
    centre = (float(np.median(ys)), float(np.median(xs)), True)
    probs = shipped.sample(state, ModelPrompts(points=[centre]), n=4, seed=0)
    assert probs.shape == (4, 64, 64)
    hit = (probs > 0.5).mean(axis=0)
    assert hit[int(centre[0]), int(centre[1])] > 0.5  # the clicked nodule is segmented
    asked = {"n": 0}

    def cancel_after_first():
        asked["n"] += 1
        return asked["n"] > 1

    partial = shipped.sample(state, ModelPrompts(box=box_of_mask(item.gt)), n=16, seed=0, cancel=cancel_after_first)
    assert partial.shape == (1, 64, 64) and np.array_equal(partial[0], box_samples[0][0])
    with pytest.raises(ModelError, match="needs a box or at least one point"):
        shipped.sample(state, ModelPrompts(), n=2, seed=0)
    with pytest.raises(ModelError, match="inverted"):
        shipped.sample(state, ModelPrompts(box=(30, 30, 10, 40)), n=2, seed=0)


def test_segment_with_mirrored_views_on_the_demo_series(shipped, tmp_path, capsys):
    from ambiview.imaging.demo import demo_series_dir
    from ambiview.session.result import SegmentationResult

    runs = {}
    for views in (1, 2):
        out = tmp_path / f"v{views}.npz"
        assert cli_main(["segment", str(demo_series_dir()), "--model", "probsam-litemedsam", "--box",
                         "35,280,149,309,178", "--samples", "4", "--views", str(views), "--device", "cpu",
                         "--out", str(out)]) == 0
        runs[views] = SegmentationResult.load(out)
    assert runs[1].model_title == shipped.title
    assert runs[2].model_title == shipped.title + " · 2 mirrored views"  # the result says how it was drawn
    one, two = runs[1].probs, runs[2].probs
    # view 0: the crop as it is (the same up to the result file's float16, whose step is 2.4e-4 to 4.9e-4 in [0.25, 1),
    # when another batch makes a float32 value fall on the other side of a rounding boundary)
    assert np.abs(two[[0, 2]] - one[[0, 2]]).max() <= 5e-4
    assert np.abs(two[[1, 3]] - one[[1, 3]]).max() > 0.1  # view 1: the crop mirrored left-right
    assert ((two > 0.5).sum(axis=(1, 2)) > 0).all()  # every hypothesis segments something
    capsys.readouterr()
    assert cli_main(["segment", str(demo_series_dir()), "--model", "probsam-litemedsam", "--box", "35,280,149,309,178",
                     "--views", "9", "--out", str(tmp_path / "x.npz")]) == 2
    assert "views must be a whole number from 1 to 4, got 9" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()
