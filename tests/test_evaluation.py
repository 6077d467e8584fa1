"""The evaluation protocol and `ambiview-cli eval`, on tiny folders in the lidc-crops64 layout."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from ambiview.cli import main
from ambiview.evaluation import (
    EvalOptions,
    EvaluationError,
    evaluate,
    markdown_table,
    prompt_box,
    reference_samples,
    resolve_split,
)
from ambiview.models.lidc import read_item
from ambiview.models.probunet import ProbUNet, ProbUNetConfig, ProbUNetEngine

from lidc_tiny import square, write_item, write_split


@pytest.fixture()
def one_rater(tmp_path):
    """Two crops, each with a single rater whose mask equals the consensus."""
    split = tmp_path / "one-rater"
    for i, (y, side) in enumerate([(20, 12), (30, 8)]):
        mask = square(y, 25, side)
        write_item(split, f"pid_0001_nod_0_slice_{i}", [mask], mask, seed=i)
    return split


@pytest.fixture()
def rater_and_empty(tmp_path):
    """One crop: rater 0 marked a 10x10 square, rater 1 left the slice empty; the consensus is the square."""
    split = tmp_path / "rater-and-empty"
    mask = square(20, 30, 10)
    write_item(split, "pid_0002_nod_1_slice_3", [np.zeros_like(mask), mask], mask)
    return split


def _eval(model, data, **kwargs):
    return evaluate(EvalOptions(model=model, data=data, n_boot=200, **kwargs))


def test_consensus_equal_to_single_rater_is_perfect(one_rater):
    report = _eval("ref-consensus", one_rater)
    agg = report.aggregate
    assert agg["ged"]["mean"] == pytest.approx(0.0, abs=1e-12)
    assert agg["hm_iou"]["mean"] == pytest.approx(1.0)
    assert agg["soft_dice"]["mean"] == pytest.approx(1.0)
    assert agg["diversity"]["mean"] == 0.0
    # Identical binary hypotheses: NCC is undefined on every crop, reported, not averaged.
    assert agg["ncc"]["n_nan"] == 2 and agg["ncc"]["n"] == 0 and math.isnan(agg["ncc"]["mean"])
    assert report.protocol["n_items"] == 2 and len(report.items) == 2


def test_reference_rows_known_answers_with_an_empty_rater(rater_and_empty):
    # S = 16 x square, Y = {empty, square}: E d(s,y) = 1/2, E d(s,s') = 0, E d(y,y') = 2/4 -> GED = 1 - 0.5 = 0.5;
    # Hungarian matching pairs half the samples with the square (IoU 1), half with the empty mask (IoU 0).
    consensus = _eval("ref-consensus", rater_and_empty).aggregate
    assert consensus["ged"]["mean"] == pytest.approx(0.5)
    assert consensus["hm_iou"]["mean"] == pytest.approx(0.5)
    raters = _eval("ref-raters", rater_and_empty).aggregate
    assert raters["ged"]["mean"] == pytest.approx(0.0, abs=1e-12)   # n = 16 is a multiple of R = 2
    assert raters["hm_iou"]["mean"] == pytest.approx(1.0)
    assert raters["diversity"]["mean"] == pytest.approx(8 * 8 / (16 * 15 / 2))  # 64 of 120 pairs differ fully


def test_ref_raters_resampling_is_balanced_and_seeded(tmp_path):
    split = write_split(tmp_path / "s", count=3)
    item = read_item(split, "pid_9001_nod_0_slice_1")  # 3 raters
    a = reference_samples("ref-raters", item, 16, np.random.default_rng(1))
    b = reference_samples("ref-raters", item, 16, np.random.default_rng(1))
    assert np.array_equal(a, b)
    counts = [int(sum(np.array_equal(h > 0.5, r) for h in a)) for r in item.raters]
    assert sorted(counts) == [5, 5, 6]


def test_rater_prompt_skips_empty_masks(rater_and_empty):
    item = read_item(rater_and_empty, "pid_0002_nod_1_slice_3")
    for seed in range(10):
        box, source = prompt_box(item, "rater", np.random.default_rng(seed))
        assert source == "rater:1" and box == (20, 30, 29, 39)
    assert prompt_box(item, "gt", np.random.default_rng(0)) == ((20, 30, 29, 39), "gt")


def test_engine_path_is_seeded(tmp_path):
    split = write_split(tmp_path / "s", count=3)
    torch.manual_seed(0)
    engine = ProbUNetEngine(ProbUNet(ProbUNetConfig(filters=(8, 16), convs_per_block=1)))
    first = evaluate(EvalOptions("tiny", split, samples=4, n_boot=50), engine=engine)
    again = evaluate(EvalOptions("tiny", split, samples=4, n_boot=50), engine=engine)
    assert [row["ged"] for row in first.items] == [row["ged"] for row in again.items]
    assert all(0.0 <= row["hm_iou"] <= 1.0 and row["ged"] >= 0.0 for row in first.items)
    assert first.protocol["prompt"] == "gt" and first.protocol["samples"] == 4


def test_every_keeps_every_kth_crop_before_the_limit(tmp_path):
    split = write_split(tmp_path / "s", count=5)
    names = [row["name"] for row in _eval("ref-consensus", split).items]
    assert [row["name"] for row in _eval("ref-consensus", split, every=2).items] == names[::2]
    kept = _eval("ref-consensus", split, every=2, limit=2)
    assert [row["name"] for row in kept.items] == names[:4:2] and kept.protocol["every"] == 2
    with pytest.raises(EvaluationError, match="--every"):
        _eval("ref-consensus", split, every=0)


def test_folder_checks(tmp_path):
    root = tmp_path / "root"
    write_split(root / "validate", count=2)
    with pytest.raises(EvaluationError, match="--split"):
        resolve_split(root)
    assert resolve_split(root, "validate") == root / "validate"
    (tmp_path / "plain").mkdir()
    with pytest.raises(EvaluationError, match="not a lidc-crops64 split"):
        resolve_split(tmp_path / "plain")
    with pytest.raises(EvaluationError, match="masks/annots"):
        resolve_split(_without_annots(tmp_path))


def _without_annots(tmp_path):
    split = tmp_path / "broken"
    (split / "scans").mkdir(parents=True)
    (split / "masks" / "GT").mkdir(parents=True)
    return split


# --------------------------------------------------------------------------------------------------------- the CLI


def test_cli_writes_json_with_protocol_and_items(one_rater, tmp_path, capsys):
    out = tmp_path / "eval.json"
    code = main(["eval", "--model", "ref-consensus", "--data", str(one_rater), "--samples", "8", "--seed", "3",
                 "--json", str(out), "--bootstrap", "100"])
    assert code == 0
    assert "ref-consensus" in capsys.readouterr().out
    report = json.loads(out.read_text())  # strict JSON: NaN written as null
    assert set(report) == {"protocol", "aggregate", "items"}
    protocol = report["protocol"]
    for key in ("model", "digest", "samples", "seed", "prompt", "data", "n_items"):
        assert key in protocol
    assert protocol["samples"] == 8 and protocol["seed"] == 3 and protocol["n_items"] == 2
    assert set(report["aggregate"]) == {"ged", "hm_iou", "soft_dice", "ncc", "ci", "diversity"}
    assert report["aggregate"]["ncc"]["mean"] is None and report["aggregate"]["ncc"]["n_nan"] == 2
    assert report["items"][0]["ged"] == pytest.approx(0.0, abs=1e-12)
    assert {"name", "box", "box_from", "n_raters", "seed"} <= set(report["items"][0])


def test_cli_table_for_several_models_and_the_root_with_split(tmp_path, capsys):
    root = tmp_path / "crops"
    write_split(root / "validate", count=3)
    out = tmp_path / "runs.json"
    code = main(["eval", "--model", "ref-consensus,ref-raters", "--data", str(root), "--split", "validate",
                 "--bootstrap", "50", "--json", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "| `ref-consensus` |" in text and "| `ref-raters` |" in text and "GED ↓" in text
    runs = json.loads(out.read_text())["runs"]
    assert [r["protocol"]["model"] for r in runs] == ["ref-consensus", "ref-raters"]


def test_cli_clear_errors(tmp_path, capsys):
    (tmp_path / "plain").mkdir()
    assert main(["eval", "--model", "ref-consensus", "--data", str(tmp_path / "plain")]) == 2
    err = capsys.readouterr().err
    assert "plain" in err and "not a lidc-crops64 split" in err and "Traceback" not in err
    split = write_split(tmp_path / "s", count=2)
    assert main(["eval", "--model", "no-such-model", "--data", str(split)]) == 2
    assert "unknown model 'no-such-model'" in capsys.readouterr().err
    assert main(["eval", "--model", "ref-raters", "--data", str(split), "--prompt", "nose"]) == 2
    assert "unknown mode 'nose'" in capsys.readouterr().err


def test_markdown_table_marks_nan_counts(one_rater):
    table = markdown_table([_eval("ref-consensus", one_rater)])
    assert "n/a (2 NaN)" in table and table.splitlines()[1].startswith("|---|")
