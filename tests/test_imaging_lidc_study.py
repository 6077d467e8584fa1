"""The LIDC crop study reader: runs of consecutive slices, raters, nominal spacing, clear errors; no torch."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import tifffile
from lidc_tiny import square, write_item

from ambiview.imaging.lidc_study import (
    NOMINAL_SPACING,
    STANDARDISED_WINDOW,
    LidcStudyError,
    is_lidc_study,
    load_case,
    open_study,
)


def _study(root):
    """pid 9001 nodule 0: slices 2, 3, 4 (3 raters, then 2 on slice 4) and 7; pid 9002 nodule 1: slice 0."""
    split = root / "validate"
    for k, r in ((2, 3), (3, 3), (4, 2), (7, 3)):
        raters = [square(20 + k, 20 + i, 8 + i) for i in range(r)]
        write_item(split, f"pid_9001_nod_0_slice_{k}", raters, np.mean(raters, axis=0) >= 0.5, seed=k)
    write_item(split, "pid_9002_nod_1_slice_0", [square(10, 10, 5), np.zeros((64, 64), bool)], square(10, 10, 5))
    return split


def test_runs_split_at_gaps_and_read_raters(tmp_path):
    split = _study(tmp_path)
    study = open_study(split)
    assert [(r.patient, r.nodule, r.slices) for r in study.runs] == [("9001", 0, (2, 3, 4)), ("9001", 0, (7,)),
                                                                    ("9002", 1, (0,))]
    assert study.problems == []
    case = load_case(study.runs[0])
    assert case.volume.shape == (3, 64, 64) and case.raters.shape == (3, 3, 64, 64)
    assert case.volume.spacing == pytest.approx(NOMINAL_SPACING)
    # rater i on slice k is the square at (20 + k, 20 + i) of side 8 + i; the third rater is missing on slice 4
    assert case.raters[1, 0].sum() == 9 * 9 and case.raters[1, 0, 22, 21] and not case.raters[1, 0, 21, 21]
    assert not case.raters[2, 2].any() and case.raters[2, 1].sum() == 10 * 10
    assert "number of raters differs" in case.notes[0]
    stored = tifffile.imread(split / "scans" / "pid_9001_nod_0_slice_3.tif")[0]
    np.testing.assert_allclose(case.volume.voxels[1], stored.astype(np.float32))
    assert case.rater_names == ["Rater 1", "Rater 2", "Rater 3"]


def test_identity_says_nominal_and_not_hu_and_uids_are_stable(tmp_path):
    study = open_study(_study(tmp_path))
    case = load_case(study.runs[2])
    display = case.volume.identity.display
    assert "nominal" in display["Pixel spacing"] and "not HU" in display["Values"]
    assert STANDARDISED_WINDOW[1] == (0.0, 6.0)
    uids = [r.series_uid for r in study.runs]
    assert len(set(uids)) == 3 and all(u.startswith("2.25.") and len(u) <= 64 for u in uids)
    assert [r.series_uid for r in open_study(tmp_path / "validate").runs] == uids  # the same every time
    assert study.find(uids[1]) == study.runs[1]
    assert case.volume.identity.source == tmp_path / "validate"  # exports are never written there


def test_root_with_splits_and_problems_are_reported(tmp_path):
    _study(tmp_path)
    train = tmp_path / "train"
    write_item(train, "pid_9100_nod_0_slice_1", [square(5, 5, 6)] * 2, square(5, 5, 6))
    tifffile.imwrite(train / "scans" / "notes.tif", np.zeros((1, 64, 64)))
    tifffile.imwrite(train / "scans" / "pid_9100_nod_0_slice_5.tif", np.zeros((1, 64, 64)))  # no masks
    assert is_lidc_study(tmp_path) and is_lidc_study(train) and not is_lidc_study(train / "scans")
    study = open_study(tmp_path)
    assert {r.split for r in study.runs} == {"train", "validate"} and len(study.runs) == 4
    assert any("notes.tif" in p for p in study.problems)
    assert any("without both" in p and "pid_9100_nod_0_slice_5.tif" in p for p in study.problems)


def test_bad_input_gets_a_message_naming_the_file(tmp_path):
    with pytest.raises(LidcStudyError, match="no such folder"):
        open_study(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(LidcStudyError, match="not a lidc-crops64 folder"):
        open_study(tmp_path / "plain")
    split = _study(tmp_path / "s")
    (split / "masks" / "GT" / "pid_9002_nod_1_slice_0.tif").write_bytes(b"not a tiff")
    run = open_study(split).runs[2]
    with pytest.raises(LidcStudyError, match=r"pid_9002_nod_1_slice_0\.tif: cannot read TIFF"):
        load_case(run)
    tifffile.imwrite(split / "masks" / "annots" / "pid_9001_nod_0_slice_7.tif", np.zeros((1, 32, 32, 2), bool))
    with pytest.raises(LidcStudyError, match=r"slice_7\.tif: expected rater masks of shape \(1, 64, 64, R\)"):
        load_case(open_study(split).runs[1])


def test_reader_does_not_import_torch():
    code = ("import sys; from ambiview.imaging import lidc_study; "
            "lidc_study.open_study; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.shared_data
def test_real_validate_split(lidc_dir):
    study = open_study(lidc_dir / "validate")
    assert len(study.runs) == 14 and sum(len(r.slices) for r in study.runs) == 114
    run = next(r for r in study.runs if r.nodule_id == "pid_0133_nod_0")
    assert run.slices == (2, 3, 4, 5, 6, 7, 8)
    case = load_case(run, study.ratings.get((run.patient, run.nodule)))
    annots = tifffile.imread(lidc_dir / "validate" / "masks" / "annots" / "pid_0133_nod_0_slice_4.tif")[0]
    assert case.raters.shape == (annots.shape[-1], 7, 64, 64)
    np.testing.assert_array_equal(case.raters[:, 2], np.moveaxis(annots, -1, 0) > 0)
    assert "malignancy" in case.volume.identity.display["Mean ratings"]
    assert len(open_study(lidc_dir).runs) > len(study.runs)  # the root lists train and validate
