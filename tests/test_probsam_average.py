"""The weight average of Probabilistic SAM checkpoints (`ambiview-cli average`): the mean, its checks, its metadata."""
from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest
import torch
from safetensors import safe_open

from ambiview.cli import main as cli_main
from ambiview.models.base import ModelError
from ambiview.models.probsam import CHECKPOINT_FORMAT, ProbSamConfig, save_checkpoint
from ambiview.models.probsam_average import average_checkpoints


def write(path, seed, config=None, drop=None, sha="ab" * 32, shape=(3, 4)):
    gen = torch.Generator().manual_seed(seed)
    tensors = {"delta.mask_decoder.w": torch.randn(shape, generator=gen).half(),
               "net.prior.mu.weight": torch.randn(2, 5, generator=gen)}
    tensors.pop(drop, None)
    meta = {"format": CHECKPOINT_FORMAT, "engine": "probsam", "title": "Probabilistic SAM", "dims": "2",
            "backbone": "tiny-random", "backbone_sha256": sha, "config": (config or ProbSamConfig()).to_json(),
            "seed": str(seed), "val_ged": "0.2", "history": "[]"}
    save_checkpoint(path, tensors, meta)
    return tensors


def test_average_is_the_tensor_wise_mean_in_each_tensors_dtype(tmp_path):
    warm = replace(ProbSamConfig(), temperature=1.3, draws="sobol")
    a = write(tmp_path / "a.safetensors", 1, config=warm)
    b = write(tmp_path / "b.safetensors", 2)
    c = write(tmp_path / "c.safetensors", 3)
    out = tmp_path / "soup" / "abc.safetensors"
    digest = average_checkpoints([tmp_path / "a.safetensors", tmp_path / "b.safetensors", tmp_path / "c.safetensors"],
                                 out, command="by hand")
    assert len(digest) == 12
    with safe_open(str(out), "pt") as handle:
        meta = handle.metadata()
        for key in a:
            got = handle.get_tensor(key)
            expected = ((a[key].float() + b[key].float() + c[key].float()) / 3).to(a[key].dtype)
            assert got.dtype == a[key].dtype and torch.equal(got, expected)
    # the first checkpoint's sampling settings; the inputs named with their digests; no one run's training record
    assert ProbSamConfig.from_json(meta["config"]).temperature == 1.3
    assert [name.split(" ")[0] for name in json.loads(meta["averaged_from"])] == [
        "a.safetensors", "b.safetensors", "c.safetensors"]
    assert meta["command"] == "by hand" and "val_ged" not in meta and "seed" not in meta


def test_the_average_of_one_checkpoint_with_itself_is_that_checkpoint(tmp_path):
    a = write(tmp_path / "a.safetensors", 5)
    out = tmp_path / "aa.safetensors"
    average_checkpoints([tmp_path / "a.safetensors", tmp_path / "a.safetensors"], out)
    with safe_open(str(out), "pt") as handle:
        assert all(torch.equal(handle.get_tensor(key), a[key]) for key in a)


@pytest.mark.parametrize("kind, message", [
    ("architecture", "latent_dim=4, but a.safetensors has latent_dim=6"),
    ("backbone", "trained on another backbone"),
    ("tensors", "holds other tensors than a.safetensors"),
    ("shape", "tensor delta.mask_decoder.w is (3, 5)"),
])
def test_checkpoints_that_cannot_be_averaged_are_refused_by_name(tmp_path, kind, message):
    write(tmp_path / "a.safetensors", 1)
    other = tmp_path / "b.safetensors"
    if kind == "architecture":
        write(other, 2, config=replace(ProbSamConfig(), latent_dim=4))
    elif kind == "backbone":
        write(other, 2, sha="cd" * 32)
    elif kind == "tensors":
        write(other, 2, drop="net.prior.mu.weight")
    else:
        write(other, 2, shape=(3, 5))
    out = tmp_path / "out.safetensors"
    with pytest.raises(ModelError, match=re.escape(message)) as caught:
        average_checkpoints([tmp_path / "a.safetensors", other], out)
    assert str(other) in str(caught.value) and not out.exists()


def test_average_command_reports_bad_input_without_a_traceback(tmp_path, capsys):
    write(tmp_path / "a.safetensors", 1)
    write(tmp_path / "b.safetensors", 2)
    a, b, out = (str(tmp_path / n) for n in ("a.safetensors", "b.safetensors", "ab.safetensors"))
    (tmp_path / "notes.safetensors").write_text("not a checkpoint")
    cases = [([a], "at least two checkpoints"),
             ([a, b, "--out", a], "is one of the checkpoints being averaged"),
             ([a, str(tmp_path / "notes.safetensors")], "notes.safetensors: not a readable safetensors"),
             ([a, str(tmp_path / "gone.safetensors")], "gone.safetensors: checkpoint not found")]
    for extra, message in cases:
        argv = ["average", *extra] if "--out" in extra else ["average", "--out", out, *extra]
        assert cli_main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    with pytest.raises(SystemExit):  # argparse: --out is required
        cli_main(["average", a, b])
    capsys.readouterr()
    assert cli_main(["average", "--out", str(tmp_path / "ab.txt"), a, b]) == 2
    assert "must end in .safetensors" in capsys.readouterr().err
    assert cli_main(["average", "--out", out, a, b]) == 0
    assert "the mean of 2 checkpoints" in capsys.readouterr().out
