"""Scanning: grouping, sorting, warnings, skipped objects and file problems, and `ambiview-cli series`."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_fixtures import (
    phantom,
    write_dicomdir_like,
    write_empty,
    write_not_dicom,
    write_pixelless,
    write_presentation_state,
    write_rtstruct,
    write_series,
    write_sr,
    write_truncated,
)
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ImplicitVRLittleEndian

from ambiview.cli import main as cli_main
from ambiview.imaging.scan import LoadCancelled, LoadError, scan_path

SMALL = (5, 12, 10)


def test_slices_sorted_by_position_not_by_name_or_instance_number(tmp_path):
    hu = phantom(SMALL)
    # shuffled write order: file names and InstanceNumbers both follow the shuffle, not the anatomy
    written = write_series(tmp_path, hu, order="shuffle", seed=3)
    assert written.write_order != sorted(written.write_order)
    scan = scan_path(tmp_path)
    assert len(scan.series) == 1
    series = scan.series[0]
    assert series.files == written.paths
    assert [h.sop_instance_uid for h in series.slices] == written.sop_instance_uids
    assert series.n_slices == 5 and (series.rows, series.cols) == (12, 10)
    assert series.spacing == pytest.approx((2.5, 0.8, 0.8))
    assert series.orientation == "AXIAL"
    assert series.warnings == [] and scan.problems == [] and scan.skipped == {}


def test_descending_positions_sorted_ascending_along_normal(tmp_path):
    written = write_series(tmp_path, phantom(SMALL), spacing=(-3.0, 0.8, 0.8), order="ascending")
    series = scan_path(tmp_path).series[0]
    positions = series.geometry.slice_positions
    assert np.all(np.diff(positions) > 0)
    assert series.files == written.paths
    # file written first (input slice 0) has the highest position, so it comes last
    assert series.files[-1].name == "IM_1_0000.dcm"


def test_missing_slice_is_reported_with_place_and_size(tmp_path):
    write_series(tmp_path, phantom((7, 8, 8)), spacing=(3.0, 1.0, 1.0), origin=(0, 0, 100.0), missing=[4])
    series = scan_path(tmp_path).series[0]
    assert series.n_slices == 6
    assert series.spacing[0] == pytest.approx(3.0)
    assert not series.geometry.is_evenly_spaced
    (warning,) = [w for w in series.warnings if "uneven slice spacing" in w]
    assert "gap of 6.00 mm" in warning and "between slices 3 and 4" in warning
    assert "109.00 and 115.00 mm" in warning and "about 1 missing slice" in warning


def test_two_series_in_one_folder_ct_first_then_by_size(tmp_path):
    small_ct = write_series(tmp_path, phantom((3, 8, 8)), series_number=1, description="small CT")
    big_ct = write_series(tmp_path, phantom((6, 8, 8)), series_number=2, description="big CT")
    mr = write_series(tmp_path, phantom((9, 8, 8)), series_number=3, description="MR", modality="MR",
                      sop_class_uid="1.2.840.10008.5.1.4.1.1.4")
    scan = scan_path(tmp_path)
    assert [s.series_uid for s in scan.series] == [big_ct.series_uid, small_ct.series_uid, mr.series_uid]
    assert [s.n_slices for s in scan.series] == [6, 3, 9]
    assert "3 image series found" in scan.warnings
    assert scan.default_series().series_uid == big_ct.series_uid
    assert scan.find(mr.series_uid).modality == "MR"


def test_oblique_orientation_is_labelled_and_warned(tmp_path):
    angle = np.radians(20)
    row = (np.cos(angle), np.sin(angle), 0.0)
    col = (0.0, 0.0, -1.0)  # a coronal plane rotated 20 degrees about the vertical axis
    write_series(tmp_path, phantom(SMALL), row_cosine=row, col_cosine=col)
    series = scan_path(tmp_path).series[0]
    assert series.orientation == "OBLIQUE"
    (warning,) = [w for w in series.warnings if "oblique" in w]
    assert "20.0 degrees off the nearest coronal plane" in warning
    assert not any("tilt" in w for w in series.warnings)


def test_gantry_tilt_is_measured_from_positions(tmp_path):
    written = write_series(tmp_path, phantom(SMALL), spacing=(2.0, 0.8, 0.8), tilt_degrees=15.0)
    series = scan_path(tmp_path).series[0]
    assert series.orientation == "AXIAL"
    assert series.geometry.tilt_degrees == pytest.approx(15.0, abs=1e-3)
    assert any("gantry tilt of 15.0 degrees" in w for w in series.warnings)
    assert np.allclose(series.geometry.slice_origins, written.positions, atol=1e-5)


@pytest.mark.parametrize("what", ["orientation", "matrix"])
def test_one_uid_with_two_stacks_is_split_and_warned(tmp_path, what):
    axial = write_series(tmp_path / "a", phantom((4, 8, 8)), series_number=5)
    if what == "orientation":
        write_series(tmp_path / "b", phantom((2, 8, 8)), series_uid=axial.series_uid, series_number=5,
                     row_cosine=(1, 0, 0), col_cosine=(0, 0, -1), file_names="LOC_{k}.dcm")
    else:
        write_series(tmp_path / "b", phantom((2, 16, 16)), series_uid=axial.series_uid, series_number=5,
                     file_names="BIG_{k}.dcm")
    scan = scan_path(tmp_path)
    assert [s.n_slices for s in scan.series] == [4, 2]
    assert all(s.series_uid == axial.series_uid for s in scan.series)
    assert [s.part for s in scan.series] == [(1, 2), (2, 2)]
    for s in scan.series:
        assert any("mixes 2 orientations/matrix sizes" in w for w in s.warnings)
    if what == "orientation":
        assert [s.orientation for s in scan.series] == ["AXIAL", "CORONAL"]
    assert "2 image series found (from 1 SeriesInstanceUID)" in scan.warnings
    assert "(part 2 of 2)" in scan.series[1].label()


def test_copied_file_is_ignored_with_warning(tmp_path):
    written = write_series(tmp_path, phantom(SMALL))
    (tmp_path / "copy.dcm").write_bytes(written.paths[2].read_bytes())
    series = scan_path(tmp_path).series[0]
    assert series.n_slices == 5
    assert any("1 file is a copy of another slice" in w and "copy.dcm" in w for w in series.warnings)


def test_repeated_positions_split_by_acquisition_number(tmp_path):
    first = write_series(tmp_path, phantom(SMALL), extra={"AcquisitionNumber": 1})
    write_series(tmp_path, phantom(SMALL) + 100, series_uid=first.series_uid, study_uid=first.study_uid,
                 extra={"AcquisitionNumber": 2}, file_names="PHASE2_{k}.dcm")
    scan = scan_path(tmp_path)
    assert [s.n_slices for s in scan.series] == [5, 5]
    assert all(any("split by AcquisitionNumber" in w for w in s.warnings) for s in scan.series)
    assert {s.slices[0].acquisition_number for s in scan.series} == {"1", "2"}


def test_repeated_positions_without_a_separating_key_keep_one_per_position(tmp_path):
    first = write_series(tmp_path, phantom(SMALL))
    write_series(tmp_path, phantom(SMALL), series_uid=first.series_uid, file_names="ZZ_{k}.dcm")
    (series,) = scan_path(tmp_path).series
    assert series.n_slices == 5
    assert all(p.name.startswith("IM_") for p in series.files)
    assert any("5 slices share their position" in w and "ZZ_" in w for w in series.warnings)


def test_non_image_objects_are_skipped_and_counted(tmp_path):
    written = write_series(tmp_path, phantom(SMALL))
    rt = write_rtstruct(tmp_path, written)
    sr = write_sr(tmp_path, study_uid=written.study_uid)
    pr = write_presentation_state(tmp_path)
    dicomdir = write_dicomdir_like(tmp_path)
    scan = scan_path(tmp_path)
    assert scan.series[0].n_slices == 5
    assert scan.skipped == {"RTSTRUCT": 1, "SR": 1, "DICOMDIR": 1, "PR": 1}
    assert sorted(scan.non_image_files) == sorted([(rt, "RTSTRUCT"), (sr, "SR"), (pr, "PR"), (dicomdir, "DICOMDIR")])
    assert "skipped 4 non-image objects: 1 RTSTRUCT, 1 SR, 1 DICOMDIR, 1 PR" in scan.warnings
    assert scan.problems == []


def test_bad_files_become_named_problems_and_the_rest_still_scans(tmp_path):
    written = write_series(tmp_path / "ct", phantom((6, 8, 8)), spacing=(2.0, 1.0, 1.0))
    victim = written.paths[3]
    truncated = write_truncated(victim, tmp_path / "ct" / "cut_pixels.dcm", keep=victim.stat().st_size - 40)
    header_cut = write_truncated(victim, tmp_path / "cut_header.dcm", keep=200)
    victim.unlink()  # the series now lacks slice 3; its truncated copy stands in for it
    empty = write_empty(tmp_path / "empty.dcm")
    text = write_not_dicom(tmp_path / "notes.txt")
    pixelless = write_pixelless(written.paths[0], tmp_path / "no_pixels.dcm")
    scan = scan_path(tmp_path)
    problems = {p.path: p.message for p in scan.problems}
    assert set(problems) == {truncated, header_cut, empty, text, pixelless}
    assert problems[truncated].startswith("truncated: pixel data needs")
    assert "truncated" in problems[header_cut] or "corrupt" in problems[header_cut]
    assert problems[empty] == "empty file (0 bytes)"
    assert problems[text] == "not a DICOM file (no 'DICM' marker)"
    assert problems[pixelless].startswith("no pixel data")
    assert str(scan.problems[0]).startswith(str(scan.problems[0].path))
    (series,) = scan.series
    assert series.n_slices == 5
    # the unusable member is named on its series, and the hole it leaves is described
    assert any("could not be used" in w and "cut_pixels.dcm" in w for w in series.warnings)
    assert any("gap of 4.00 mm" in w for w in series.warnings)
    assert "5 files could not be used (see problems)" in scan.warnings


def test_file_without_preamble_is_still_read(tmp_path):
    written = write_series(tmp_path / "src", phantom(SMALL), transfer_syntax=ImplicitVRLittleEndian)
    ds = pydicom.dcmread(written.paths[0])
    ds.preamble = None  # old ACR-NEMA style: no 128-byte preamble, no 'DICM', no file meta
    ds.file_meta = FileMetaDataset()
    pydicom.dcmwrite(tmp_path / "raw.dcm", ds, implicit_vr=True, little_endian=True)
    assert (tmp_path / "raw.dcm").read_bytes()[:2] == b"\x08\x00"
    scan = scan_path(tmp_path / "raw.dcm")
    assert scan.problems == [] and scan.series[0].slices[0].sop_instance_uid == written.sop_instance_uids[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_special_files_are_not_opened(tmp_path):
    write_series(tmp_path, phantom(SMALL))
    os.mkfifo(tmp_path / "pipe.dcm")  # opening it for reading would block forever
    scan = scan_path(tmp_path)
    assert [(p.path.name, p.message) for p in scan.problems] == [("pipe.dcm", "not a regular file")]
    assert scan.series[0].n_slices == 5


def test_single_file_path_scans_just_that_file(tmp_path):
    written = write_series(tmp_path, phantom(SMALL))
    scan = scan_path(written.paths[2])
    assert scan.series[0].n_slices == 1
    assert scan.series[0].files == [written.paths[2]]
    assert "only one slice" in scan.series[0].warnings


def test_missing_path_raises_and_empty_folder_has_nothing(tmp_path):
    with pytest.raises(LoadError, match="no such file or folder"):
        scan_path(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    scan = scan_path(tmp_path / "empty")
    assert scan.series == [] and any("no files" in w for w in scan.warnings)


def test_progress_reports_every_file_and_cancel_stops(tmp_path):
    write_series(tmp_path, phantom(SMALL))
    write_not_dicom(tmp_path / "readme.txt")
    calls = []
    scan_path(tmp_path, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 6) for i in range(7)]
    seen = []
    with pytest.raises(LoadCancelled):
        scan_path(tmp_path, progress=lambda d, t: seen.append(d), cancel=lambda: len(seen) >= 3)
    assert max(seen) < 6


def test_label_is_one_readable_line(tmp_path):
    write_series(tmp_path, phantom(SMALL), description="Chest 3mm", missing=[2])
    label = scan_path(tmp_path).series[0].label()
    assert "\n" not in label
    for part in ("CT", "Chest 3mm", "4 x 12x10", "AXIAL", "2024-01-31", "[1 warning]"):
        assert part in label


@pytest.mark.shared_data
def test_real_series_scan(ct_chest_dir):
    scan = scan_path(ct_chest_dir)
    (series,) = scan.series
    assert series.modality == "CT" and series.n_slices == 134
    assert (series.rows, series.cols) == (512, 512)
    assert series.spacing == pytest.approx((3.0, 1.07421875, 1.07421875))
    assert series.orientation == "AXIAL" and series.warnings == []
    assert {p.path.name for p in scan.problems} == {"LICENSE", "Citations"}
    positions = series.geometry.slice_positions
    assert np.allclose(np.diff(positions), 3.0)


# --- ambiview-cli series ----------------------------------------------------------------------------------------------
def _cli_folder(tmp_path):
    written = write_series(tmp_path, phantom(SMALL), missing=[2], patient_name="Secret^Name",
                           description="Test chest")
    write_rtstruct(tmp_path, written)
    write_not_dicom(tmp_path / "notes.txt")
    return written


def test_cli_series_json(tmp_path, capsys):
    written = _cli_folder(tmp_path)
    assert cli_main(["series", str(tmp_path), "--json"]) == 0
    out = capsys.readouterr().out
    doc = json.loads(out)
    (series,) = doc["series"]
    assert series["series_uid"] == written.series_uid
    assert series["modality"] == "CT" and series["description"] == "Test chest"
    assert series["n_slices"] == 4 and series["matrix"] == [12, 10]
    assert series["spacing_zyx_mm"] == pytest.approx([2.5, 0.8, 0.8])
    assert series["orientation"] == "AXIAL"
    assert any("gap of 5.00 mm" in w for w in series["warnings"])
    assert doc["skipped"] == {"RTSTRUCT": 1}
    assert doc["problems"] == [{"path": str(tmp_path / "notes.txt"), "message": "not a DICOM file (no 'DICM' marker)"}]
    assert "Secret" not in out


def test_cli_series_table(tmp_path, capsys):
    written = _cli_folder(tmp_path)
    assert cli_main(["series", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Test chest" in out and written.series_uid in out and "2.500/0.800/0.800" in out
    assert "gap of 5.00 mm" in out and "1 RTSTRUCT" in out and "notes.txt: not a DICOM file" in out
    assert "Secret" not in out


def test_cli_series_nothing_loadable(tmp_path, capsys):
    assert cli_main(["series", str(tmp_path / "missing")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    write_not_dicom(tmp_path / "a.txt")
    write_empty(tmp_path / "b.dcm")
    assert cli_main(["series", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no loadable image series" in err and "a.txt: not a DICOM file" in err and "b.dcm: empty file" in err


def test_cli_series_subprocess(tmp_path):
    written = _cli_folder(tmp_path)
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-m", "ambiview.cli", "series", str(tmp_path), "--json"],
                          check=False, capture_output=True, text=True, env=env, cwd=root, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["series"][0]["series_uid"] == written.series_uid


def test_a_matrix_of_32_columns_is_read(tmp_path):
    """US 32 is stored as the bytes b" \\x00": it must not be taken for an empty (space-padded) value."""
    from ambiview.imaging.scan import scan_path
    from dicom_fixtures import write_series

    voxels = np.zeros((3, 32, 32), np.int16)
    write_series(tmp_path, voxels)
    scan = scan_path(tmp_path)
    assert not scan.problems and scan.series[0].cols == 32 and scan.series[0].rows == 32
