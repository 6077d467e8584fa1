"""Segmentation Schrödinger Bridge: bridge formulas, sampler contract, training smoke run, shipped checkpoint."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ambiview.models.base import ModelError, ModelPrompts
from ambiview.models.lidc import read_item
from ambiview.models.registry import list_engines, load_engine
from ambiview.models.ssb import SsbConfig, SsbEngine, SsbModel, load_model
from ambiview.models.ssb_schedule import BridgeSchedule
from ambiview.models.ssb_unet import SsbUNetConfig
from ambiview.models.train_ssb import rater_posterior
from ambiview.paths import models_dir
from ambiview.uncertainty.metrics import diversity

# A validation crop whose four raters disagree (areas 114 to 177 pixels, mean pairwise 1 - IoU 0.31).
VALIDATION_CROP = "pid_0059_nod_0_slice_2"


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks on a shared 2-core machine: one thread avoids OpenMP spin-waiting (restored afterwards)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def closed_form(schedule: BridgeSchedule, t: float) -> tuple[float, float]:
    """sigma² and sigma_bar² by numerical integration of beta (independent of the schedule's closed form)."""
    grid = np.linspace(0.0, 1.0, 200_001)
    beta = schedule.beta(grid)
    cumulative = np.concatenate([[0.0], np.cumsum((beta[1:] + beta[:-1]) / 2 * np.diff(grid))])
    s2 = float(np.interp(t, grid, cumulative))
    return s2, float(cumulative[-1] - s2)


@pytest.mark.parametrize("t", [0.0, 0.3, 0.5, 0.77, 1.0])
def test_bridge_marginal_matches_the_closed_form(t):
    schedule = BridgeSchedule(beta_end=0.02, beta_mid=2.5)
    s2, sb2 = closed_form(schedule, t)
    assert schedule.sigma2(t) == pytest.approx(s2, abs=1e-8)
    assert schedule.sigma2_bar(t) == pytest.approx(sb2, abs=1e-8)
    x0, x1 = np.array([-1.0, 1.0, 1.0]), np.array([0.3, -0.7, 0.9])
    c0, c1, var = schedule.marginal(t)
    mean = c0 * x0 + c1 * x1
    np.testing.assert_allclose(mean, (sb2 * x0 + s2 * x1) / (s2 + sb2), atol=1e-8)
    assert var == pytest.approx(s2 * sb2 / (s2 + sb2), abs=1e-8)
    if t == 0.0:
        np.testing.assert_allclose(mean, x0)
        assert var == 0.0
    if t == 1.0:
        np.testing.assert_allclose(mean, x1, atol=1e-12)
        assert var == pytest.approx(0.0, abs=1e-12)
    if t == 0.5:  # symmetric schedule: halfway in mean, largest variance total / 4
        assert c0 == pytest.approx(0.5) and var == pytest.approx(schedule.total / 4)


def test_posterior_step_reproduces_the_marginal_in_distribution():
    schedule = BridgeSchedule(beta_end=0.01, beta_mid=3.0)
    rng = np.random.default_rng(0)
    x0, x1 = np.array([1.0, -1.0]), np.array([-0.4, 0.8])
    t_late, t_early = 0.8, 0.35
    c0, c1, var = schedule.marginal(t_late)
    x_late = c0 * x0 + c1 * x1 + np.sqrt(var) * rng.standard_normal((400_000, 2))
    p0, pt, pvar = schedule.posterior(t_early, t_late)
    x_early = p0 * x0 + pt * x_late + np.sqrt(pvar) * rng.standard_normal(x_late.shape)
    m0, m1, mvar = schedule.marginal(t_early)
    np.testing.assert_allclose(x_early.mean(axis=0), m0 * x0 + m1 * x1, atol=3e-3)
    np.testing.assert_allclose(x_early.var(axis=0), mvar, rtol=1e-2)
    with pytest.raises(ValueError):
        schedule.posterior(0.5, 0.5)


@pytest.mark.parametrize("eta", [1.0, 0.5, 0.0])
def test_sampler_step_keeps_the_marginal_for_every_eta(eta):
    schedule = BridgeSchedule(beta_end=0.01, beta_mid=3.0)
    rng = np.random.default_rng(1)
    x0, x1 = np.array([1.0, -1.0]), np.array([-0.4, 0.8])
    t_late, t_early = 0.8, 0.35
    c0, c1, var = schedule.marginal(t_late)
    x_late = c0 * x0 + c1 * x1 + np.sqrt(var) * rng.standard_normal((400_000, 2))
    a, b, carry, std = schedule.step(t_early, t_late, eta)
    x_early = a * x0 + b * x1 + carry * (x_late - c0 * x0 - c1 * x1) + std * rng.standard_normal(x_late.shape)
    m0, m1, mvar = schedule.marginal(t_early)
    np.testing.assert_allclose(x_early.mean(axis=0), m0 * x0 + m1 * x1, atol=3e-3)
    np.testing.assert_allclose(x_early.var(axis=0), mvar, rtol=1e-2)
    if eta == 1.0:  # exactly I²SB's posterior q(x_s | x0, x_t)
        p0, pt, pvar = schedule.posterior(t_early, t_late)
        np.testing.assert_allclose(a * x0 + b * x1 + carry * (x_late[:5] - c0 * x0 - c1 * x1), p0 * x0 + pt * x_late[:5])
        assert std ** 2 == pytest.approx(pvar)
    assert schedule.step(0.9, 1.0, eta)[2:] == (0.0, pytest.approx(np.sqrt(schedule.marginal(0.9)[2])))


def test_sampling_times_respect_the_step_count():
    schedule = BridgeSchedule(n_train=1000)
    times = schedule.sampling_times(50)
    assert len(times) == 51 and times[0] == 1.0 and times[-1] == 0.0 and np.all(np.diff(times) < 0)
    assert len(schedule.sampling_times(1000)) == 1001
    for bad in (0, 1001):
        with pytest.raises(ValueError):
            schedule.sampling_times(bad)


def test_rater_posterior_is_uniform_at_the_image_end_and_sharp_near_the_mask():
    schedule = BridgeSchedule()
    raters = torch.zeros(1, 3, 8, 8)
    raters[0, 0, 2:6, 2:6] = 1
    raters[0, 1, 3:5, 3:5] = 1
    x0_all, x1 = 2 * raters - 1, torch.rand(1, 1, 8, 8) - 0.5
    valid = torch.tensor([[True, True, False]])
    for t, expect in ((1.0, [0.5, 0.5, 0.0]), (0.01, [1.0, 0.0, 0.0])):
        c0, c1, var = (torch.tensor(float(v)).reshape(1, 1, 1, 1) for v in schedule.marginal(t))
        x_t = c0 * x0_all[:, :1] + c1 * x1
        w = rater_posterior(x_t, x0_all, x1, c0, c1, var, valid)
        np.testing.assert_allclose(w.numpy()[0], expect, atol=1e-6)


def tiny_engine(seed: int = 0) -> SsbEngine:
    torch.manual_seed(seed)
    config = SsbConfig(unet=SsbUNetConfig(widths=(8, 16), latent_dim=4), schedule=BridgeSchedule(n_train=20))
    model = SsbModel(config)
    for p in model.parameters():  # random weights everywhere, also in the zero-initialised branches
        torch.nn.init.normal_(p, std=0.2)
    engine = SsbEngine(model, device=torch.device("cpu"))
    engine.precision = "float32"  # exact arithmetic for the batch-independence check below
    return engine


def test_sampler_contract_steps_progress_cancel_and_guidance():
    engine = tiny_engine()
    state = engine.prepare(np.random.default_rng(1).standard_normal((16, 16)))
    calls = []
    engine.model.net.register_forward_hook(lambda module, args, out: calls.append(out.shape[0]))
    progress = []
    probs = engine.sample(state, ModelPrompts(), 3, seed=5, steps=7, on_progress=lambda d, t: progress.append((d, t)))
    assert probs.shape == (3, 16, 16) and probs.dtype == np.float32 and 0 <= probs.min() and probs.max() <= 1
    assert progress == [(i, 7) for i in range(1, 8)] and calls == [3] * 7   # one batched pass per step
    calls.clear()
    guided = engine.sample(state, ModelPrompts(), 3, seed=5, steps=7, guidance=2.0)
    assert calls == [6] * 7 and np.abs(guided - probs).max() > 1e-3          # cond + uncond, and it matters
    np.testing.assert_array_equal(engine.sample(state, ModelPrompts(), 3, seed=5, steps=7), probs)
    # hypothesis i depends on (seed, i) only: the first two of three equal the two of two
    np.testing.assert_allclose(engine.sample(state, ModelPrompts(), 2, seed=5, steps=7), probs[:2], atol=1e-5)
    calls.clear()
    assert engine.sample(state, ModelPrompts(), 3, seed=5, steps=20).shape == (3, 16, 16)  # the full schedule
    assert len(calls) == 20
    stops = iter([False, False, True])
    assert engine.sample(state, ModelPrompts(), 3, seed=5, steps=7, cancel=lambda: next(stops)).shape == (0, 16, 16)
    with pytest.raises(ModelError, match="steps"):
        engine.sample(state, ModelPrompts(), 3, seed=5, steps=21)
    with pytest.raises(ModelError, match="2D crop"):
        engine.prepare(np.zeros((15, 16)))
    with pytest.raises(ModelError, match="NaN"):
        engine.prepare(np.full((16, 16), np.nan))


def test_train_smoke_run_writes_a_loadable_checkpoint(lidc_dir, tmp_path):
    from ambiview.cli import main

    out = tmp_path / "ssb-smoke.safetensors"
    options = ["val_items=1", "val_samples=2", "val_steps=2", "widths=8,16", "latent_dim=4", "n_train=50",
               "batch_size=2", "guidance_grid=0,1", "threads=1"]
    code = main(["train", "ssb", "--data", str(lidc_dir), "--out", str(out), "--limit", "3", "--epochs", "1",
                 *[arg for option in options for arg in ("--option", option)]])
    assert code == 0 and out.is_file()
    model, meta = load_model(out)
    assert meta["engine"] == "ssb" and meta["seed"] == "0" and "train ssb" in meta["command"]
    assert model.config.unet.widths == (8, 16) and model.schedule.n_train == 50
    engine = load_engine(str(out), device="cpu")
    item = read_item(lidc_dir / "validate", VALIDATION_CROP)
    assert engine.sample(engine.prepare(item.scan), ModelPrompts(), 2, seed=0, steps=3).shape == (2, 64, 64)
    assert main(["train", "ssb", "--data", str(lidc_dir), "--out", str(out), "--option", "nonsense=1"]) == 2


def test_a_stopped_training_keeps_its_best_validated_epoch(lidc_dir, tmp_path, monkeypatch):
    """SIGTERM or Ctrl+C (KeyboardInterrupt) during epoch 2 writes the epoch-1 weights and says so."""
    from ambiview.cli import main
    from ambiview.models import train_ssb

    calls = {"n": 0}
    real_loss = train_ssb.bridge_loss

    def interrupted_in_epoch_two(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 2:  # 3 crops, batch 2: two steps an epoch
            raise KeyboardInterrupt
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(train_ssb, "bridge_loss", interrupted_in_epoch_two)
    out = tmp_path / "stopped.safetensors"
    options = ["val_items=1", "val_samples=2", "val_steps=2", "val_every=1", "widths=8,16", "latent_dim=4",
               "n_train=50", "batch_size=2", "guidance_grid=0", "threads=1"]
    assert main(["train", "ssb", "--data", str(lidc_dir), "--out", str(out), "--limit", "3", "--epochs", "5",
                 *[arg for option in options for arg in ("--option", option)]]) == 0
    _, meta = load_model(out)
    assert meta["stopped_early"] == "after epoch 1" and meta["best_epoch"] == "1"


def test_a_foreign_file_is_refused_with_its_name(tmp_path):
    bad = tmp_path / "not-a-model.safetensors"
    bad.write_bytes(b"garbage")
    with pytest.raises(ModelError, match="not-a-model"):
        load_model(bad)


@pytest.fixture(scope="module")
def shipped() -> SsbEngine:
    path = models_dir() / "ssb.safetensors"
    assert path.is_file(), f"the shipped checkpoint {path} is missing"
    return load_engine("ssb", device="cpu")


def test_shipped_checkpoint_is_registered_and_small(shipped):
    info = {e.name: e for e in list_engines()}["ssb"]
    assert info.dims == 2 and info.digest == shipped.digest and shipped.accepts == {"box", "point"}
    assert shipped.checkpoint.stat().st_size < 20e6 and shipped.steps == 50


def test_shipped_checkpoint_draws_diverse_reproducible_hypotheses(shipped, lidc_dir):
    item = read_item(lidc_dir / "validate", VALIDATION_CROP)
    state = shipped.prepare(item.scan)
    probs = shipped.sample(state, ModelPrompts(box=(20, 20, 44, 44)), 8, seed=3, steps=25)
    masks = probs > 0.5
    assert masks.shape == (8, 64, 64) and masks.any(axis=(1, 2)).sum() >= 6     # it finds the nodule
    union = item.raters.any(axis=0)
    assert (masks & union).sum() > 0.5 * masks.sum()                             # ... where the raters drew it
    assert diversity(masks) > 0.02                                               # and the hypotheses differ
    same = shipped.sample(state, ModelPrompts(points=[(32.0, 32.0, True)]), 8, seed=3, steps=25)
    np.testing.assert_array_equal(same, probs)                                   # prompts ignored, seed respected
