"""`ambiview-cli summary`: the numbers the views show, from a result file."""
import json

import numpy as np

from ambiview.cli import main
from ambiview.imaging.geometry import Geometry
from ambiview.imaging.roi import Roi
from ambiview.session.result import SegmentationResult


def _result(tmp_path):
    geo = Geometry.regular((3, 100, 100), spacing=(2.0, 0.5, 0.8))
    roi = Roi.for_box(1, 40, 40, 50, 50)
    probs = np.zeros((4, 64, 64), np.float32)
    probs[:, 10:20, 10:20] = 0.9       # all four agree on a 10x10 square ...
    probs[3, 10:20, 20:30] = 0.9       # ... one of them extends it to 10x20
    return SegmentationResult(probs, roi, roi.geometry(geo), (3, 100, 100), model="fake", digest="abc").save(
        tmp_path / "r.npz")


def test_summary_json_reports_consensus_modes_and_sizes_in_mm2(tmp_path, capsys):
    path = _result(tmp_path)
    assert main(["summary", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    pixel = 0.5 * 0.8
    assert out["size_unit"] == "mm²" and out["n_hypotheses"] == 4
    by_level = {c["level"]: c["size"] for c in out["consensus"]}
    assert by_level[0.1] == 200 * pixel and by_level[0.5] == 100 * pixel and by_level[0.9] == 100 * pixel
    assert [round(m["share"], 2) for m in out["modes"]] == [0.75, 0.25]
    assert out["sizes"]["max"] == 200 * pixel and out["staple"] is not None
    assert abs(out["diversity"] - 0.25) < 1e-9      # 3 of 6 pairs differ by 1 - IoU = 0.5


def test_summary_text_and_a_clear_error_for_a_bad_file(tmp_path, capsys):
    assert main(["summary", str(_result(tmp_path))]) == 0
    assert "interpretations" in capsys.readouterr().out
    bad = tmp_path / "bad.npz"
    bad.write_text("nope")
    assert main(["summary", str(bad)]) == 2
    assert "bad.npz" in capsys.readouterr().err
