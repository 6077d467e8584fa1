"""The Probabilistic U-Net baseline: network, smoke training through the CLI, the shipped checkpoint."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ambiview.cli import main
from ambiview.models.base import ModelError, ModelPrompts
from ambiview.models.lidc import load_split
from ambiview.models.probunet import ProbUNet, ProbUNetConfig, ProbUNetEngine, load_checkpoint
from ambiview.models.registry import load_engine
from ambiview.paths import models_dir
from ambiview.uncertainty.metrics import diversity

from lidc_tiny import write_split

TINY = ProbUNetConfig(filters=(8, 16, 16), convs_per_block=1)


def test_default_architecture_follows_the_port():
    model = ProbUNet()
    assert model.config.filters == (32, 64, 128, 192) and model.config.latent_dim == 6
    assert len([m for m in model.fcomb.modules() if isinstance(m, torch.nn.Conv2d)]) == 4
    assert len(model.unet.encoder.blocks[0]) == 6                     # 3 x (conv, ReLU)
    assert model.posterior.encoder.blocks[0][0].in_channels == 2        # image + mask


def test_loss_terms():
    torch.manual_seed(0)
    model = ProbUNet(TINY)
    image = torch.randn(2, 1, 32, 32)
    mask = (torch.rand(2, 1, 32, 32) > 0.5).float()
    terms = model.loss(image, mask)
    assert torch.isfinite(terms.total) and terms.kl.item() >= 0.0
    # Summed BCE: of the order of (pixels x batch) x log 2 for an untrained model.
    assert 0.2 * 2 * 32 * 32 < terms.reconstruction.item() < 5 * 2 * 32 * 32
    terms.total.backward()
    assert model.prior.head.weight.grad is not None and model.fcomb.layers[0].weight.grad is not None


def test_engine_ignores_prompts_and_is_seeded():
    torch.manual_seed(0)
    engine = ProbUNetEngine(ProbUNet(TINY))
    state = engine.prepare(np.random.default_rng(0).normal(size=(64, 64)).astype(np.float32))
    a = engine.sample(state, ModelPrompts(), 6, seed=3)
    b = engine.sample(state, ModelPrompts(box=(1, 2, 30, 40)), 6, seed=3)
    assert a.shape == (6, 64, 64) and np.array_equal(a, b)
    assert np.allclose(engine.sample(state, ModelPrompts(), 3, seed=3), a[:3], atol=1e-6)  # hypothesis i: (seed, i)
    with pytest.raises(ModelError, match="divisible by 8"):
        engine.prepare(np.zeros((60, 64), np.float32))


def test_smoke_training_writes_a_loadable_checkpoint(tmp_path, capsys):
    root = tmp_path / "crops"
    write_split(root / "train", count=4, seed=1)
    write_split(root / "validate", count=3, seed=2)
    out = tmp_path / "pu.safetensors"
    code = main(["train", "probunet", "--data", str(root), "--out", str(out), "--epochs", "1", "--limit", "3",
                 "--option", "threads=1", "--option", "val_samples=2"])
    assert code == 0, capsys.readouterr().err
    assert "best epoch 1" in capsys.readouterr().out
    _, meta = load_checkpoint(out)
    assert meta["engine"] == "probunet" and "LIDC-IDRI" in meta["data"]
    record = json.loads(meta["training"])
    assert record["final"] and not record["stopped_early"] and record["train_items"] == 3 and "ambiview-cli train probunet" in record["command"]
    engine = load_engine(str(out), "cpu")
    assert isinstance(engine, ProbUNetEngine) and len(engine.digest) == 12
    probs = engine.sample(engine.prepare(np.zeros((64, 64), np.float32)), ModelPrompts(), 4, seed=0)
    assert probs.shape == (4, 64, 64) and np.all((probs >= 0) & (probs <= 1))


def test_training_refuses_bad_requests(tmp_path, capsys):
    root = tmp_path / "crops"
    write_split(root / "train", count=2)
    out = str(tmp_path / "x.safetensors")
    assert main(["train", "probunet", "--data", str(root), "--out", out]) == 2
    assert "validate" in capsys.readouterr().err                       # the missing split is named
    assert main(["train", "probunet", "--data", str(root), "--out", out, "--backbone", "litemedsam"]) == 2
    assert "no pretrained backbone" in capsys.readouterr().err
    assert main(["train", "probunet", "--data", str(root), "--out", out, "--option", "colour=red"]) == 2
    assert "unknown probunet option" in capsys.readouterr().err


def test_foreign_file_is_refused_by_name(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="bad.safetensors"):
        load_checkpoint(bad)


def test_shipped_checkpoint_draws_varied_reproducible_hypotheses(lidc_dir):
    path = models_dir() / "probunet.safetensors"
    assert path.is_file(), f"{path} is missing (train it: see models/probunet.md)"
    assert path.stat().st_size < 20 * 2**20
    _, meta = load_checkpoint(path)
    assert json.loads(meta["training"])["final"]
    engine = load_engine("probunet", "cpu")
    items = load_split(lidc_dir / "validate", limit=3)
    spreads = []
    for item in items:
        state = engine.prepare(item.scan)
        first = engine.sample(state, ModelPrompts(), 16, seed=0)
        assert np.array_equal(first, engine.sample(state, ModelPrompts(), 16, seed=0))
        assert not np.array_equal(first, engine.sample(state, ModelPrompts(), 16, seed=1))
        spreads.append(diversity(first > 0.5))
    assert max(spreads) > 0.0                                          # the prior's samples differ as masks
