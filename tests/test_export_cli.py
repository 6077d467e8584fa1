"""`ambiview-cli export` and `ambiview-cli rois`, headless, on a written series and a hand-made result file."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_fixtures import WrittenSeries, phantom, write_rtstruct, write_series

from ambiview.cli import main
from ambiview.export.rtstruct_read import load_rtstruct
from ambiview.imaging.loader import load_path
from ambiview.imaging.roi import Roi
from ambiview.paths import data_dir
from ambiview.session.result import SegmentationResult

DIGEST = "ab" * 32


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """A series with non-square pixels and a result of 4 hypotheses on slice 3: nested squares of growing size."""
    root = tmp_path_factory.mktemp("cli")
    folder = root / "ct"
    write_series(folder, phantom((6, 24, 20)), spacing=(2.5, 0.6, 0.9), order="descending")
    volume, _ = load_path(folder)
    roi = Roi(3, 4, top=1.5, left=0.5, extent=16.0, size=16)  # model pixel (r, c) = volume pixel (2 + r, 1 + c)
    probs = np.zeros((4, 16, 16), np.float32)
    for k in range(4):
        probs[k, 4:7 + 2 * k, 3:6 + k] = 0.9  # hypothesis k+1 covers rows 4..6+2k, columns 3..5+k
    result = SegmentationResult(probs, roi, roi.geometry(volume.geometry), volume.shape,
                                series_uid=volume.identity.series_uid, study_uid=volume.identity.study_uid,
                                frame_of_reference_uid=volume.identity.frame_of_reference_uid, model="probsam",
                                model_title="Probabilistic SAM", digest=DIGEST, seed=1,
                                prompts=[{"kind": "box", "voxel": [3, 5, 3, 12, 9]}])
    path = result.save(root / "result.npz")
    return folder, volume, path


def expected_hypothesis(volume, k: int) -> np.ndarray:
    mask = np.zeros(volume.shape, bool)
    mask[3, 2 + 4:2 + 7 + 2 * (k - 1), 1 + 3:1 + 6 + (k - 1)] = True
    return mask


def test_export_writes_every_format(case, tmp_path, capsys):
    folder, volume, result = case
    out = tmp_path / "out"
    code = main(["export", str(result), "--series", str(folder), "--hypothesis", "2", "--json",
                 "--rtstruct", str(out / "rs.dcm"), "--seg", str(out / "seg.dcm"),
                 "--seg-fractional", str(out / "prob.dcm"), "--nifti", str(out / "mask.nii.gz"),
                 "--nifti-probability", str(out / "prob.nii.gz"), "--name", "Nodule", "--color", "10,20,30"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert sorted(w["kind"] for w in report["written"]) == ["nifti", "nifti_probability", "rtstruct", "seg",
                                                             "seg_fractional"]
    assert sorted(p.name for p in out.iterdir()) == ["mask.nii.gz", "prob.dcm", "prob.nii.gz", "rs.dcm", "seg.dcm"]
    (roi,), messages = load_rtstruct(out / "rs.dcm", volume)
    assert messages == [] and roi.name == "Nodule" and roi.color == (10, 20, 30)
    np.testing.assert_array_equal(roi.mask, expected_hypothesis(volume, 2))
    ds = pydicom.dcmread(out / "rs.dcm")
    structure = ds.StructureSetROISequence[0]
    assert structure.ROIGenerationAlgorithm == "SEMIAUTOMATIC"
    assert structure.ROIDescription == f"Probabilistic SAM, checkpoint sha256 {DIGEST}, hypothesis 2 of 4"
    assert structure.ROIDerivationAlgorithmIdentificationSequence[0].AlgorithmVersion == DIGEST
    assert pydicom.dcmread(out / "prob.dcm").SegmentationType == "FRACTIONAL"


def test_rois_lists_name_slices_and_volume(case, tmp_path, capsys):
    folder, volume, result = case
    assert main(["export", str(result), "--series", str(folder), "--consensus", "0.5",
                 "--rtstruct", str(tmp_path / "rs.dcm")]) == 0
    capsys.readouterr()
    assert main(["rois", str(folder), "--rtstruct", str(tmp_path / "rs.dcm"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (roi,) = report["files"][0]["rois"]
    # consensus of >= 2 of 4 nested squares = hypothesis 3's square (rows 4..10, columns 3..7 in the model grid)
    dz, dy, dx = volume.spacing
    assert (roi["number"], roi["name"], roi["slices"]) == (1, "probsam consensus 50%", [3])
    assert roi["volume_ml"] == pytest.approx(expected_hypothesis(volume, 3).sum() * dz * dy * dx / 1000, abs=1e-4)
    assert roi["interpreted_type"] == "GTV"


def test_rois_finds_structure_sets_beside_the_series(case, tmp_path, capsys):
    folder, volume, _ = case
    copy = shutil.copytree(folder, tmp_path / "ct")
    write_rtstruct(copy, _written(load_path(copy)[0]), roi_name="Fixture ROI")
    assert main(["rois", str(copy)]) == 0
    text = capsys.readouterr().out
    assert "RS_structures.dcm" in text and "Fixture ROI" in text and "ORGAN" in text
    assert main(["rois", str(copy), "--json"]) == 0
    (roi,) = json.loads(capsys.readouterr().out)["files"][0]["rois"]
    # a square with corners at pixel centres (4, 4)-(8, 8): the centres of rows and columns 4..7 are inside
    dz, dy, dx = volume.spacing
    assert roi["slices"] == [3] and roi["volume_ml"] == pytest.approx(16 * dz * dy * dx / 1000, abs=1e-4)


def _written(volume):
    """A dicom_fixtures.WrittenSeries describing a loaded volume (what the fixture's write_rtstruct reads)."""
    g = volume.geometry
    return WrittenSeries(folder=volume.identity.source, paths=volume.identity.files,
                         sop_instance_uids=volume.identity.sop_instance_uids, series_uid=volume.identity.series_uid,
                         study_uid=volume.identity.study_uid,
                         frame_of_reference_uid=volume.identity.frame_of_reference_uid, positions=g.slice_origins,
                         hu=volume.voxels, row_cosine=tuple(g.row_cosine), col_cosine=tuple(g.col_cosine),
                         pixel_spacing=g.pixel_spacing, slice_spacing=g.slice_spacing, transfer_syntax="")


def test_export_without_outputs_goes_to_the_data_folder(case, capsys):
    folder, _volume, result = case
    assert main(["export", str(result), "--series", str(folder), "--consensus", "1.0", "--json"]) == 0
    (written,) = json.loads(capsys.readouterr().out)["written"]
    path = Path(written["path"])
    assert path.is_file() and data_dir() in path.parents and path.name.endswith("_rtstruct.dcm")


def test_export_errors_are_one_clear_line(case, tmp_path, capsys):
    folder, _volume, result = case
    assert main(["export", str(result), "--series", str(folder), "--hypothesis", "9"]) == 2
    assert "holds hypotheses 1 to 4" in capsys.readouterr().err
    assert main(["export", str(result), "--series", str(folder), "--consensus", "1.5"]) == 2
    assert "(0, 1]" in capsys.readouterr().err
    assert main(["export", str(result), "--series", str(folder), "--hypothesis", "1",
                 "--rtstruct", str(folder / "rs.dcm")]) == 2
    assert "source DICOM folder" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "none.npz"), "--series", str(folder), "--hypothesis", "1"]) == 2
    assert "none.npz: no such file" in capsys.readouterr().err
    assert not (folder / "rs.dcm").exists()


def test_export_refuses_an_empty_choice(case, tmp_path, capsys):
    folder, _volume, _ = case
    original = SegmentationResult.load(case[2])
    original.probs[:] = 0.0
    empty = original.save(tmp_path / "empty.npz")
    assert main(["export", str(empty), "--series", str(folder), "--hypothesis", "1",
                 "--rtstruct", str(tmp_path / "rs.dcm")]) == 2
    assert "the mask is empty" in capsys.readouterr().err
    assert not (tmp_path / "rs.dcm").exists()
