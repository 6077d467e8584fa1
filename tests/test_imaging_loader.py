"""Loading: voxels in HU against the truth the fixtures wrote and against SimpleITK on the real series; geometry,
identity, transfer syntaxes, rescale, gaps, undecodable slices, progress and cancel."""
from __future__ import annotations

import logging

import numpy as np
import pydicom
import pytest
from dicom_fixtures import (
    corrupt_compressed_pixels,
    has_dcmtk,
    phantom,
    write_not_dicom,
    write_rtstruct,
    write_series,
    write_sr,
    write_truncated,
)
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)

from ambiview.imaging.loader import LoadCancelled, LoadError, load_path, load_series
from ambiview.imaging.scan import SeriesInfo, scan_path

SMALL = (5, 12, 10)


def _assert_geometry_matches(volume, written):
    g = volume.geometry
    assert np.allclose(g.slice_origins, written.positions, atol=1e-5)
    assert np.allclose(g.row_cosine, written.row_cosine, atol=1e-7)
    assert np.allclose(g.col_cosine, written.col_cosine, atol=1e-7)
    assert g.pixel_spacing == pytest.approx(written.pixel_spacing)
    assert g.spacing[0] == pytest.approx(written.slice_spacing)


def test_shuffled_series_loads_in_position_order_with_identity(tmp_path):
    hu = phantom(SMALL)
    written = write_series(tmp_path, hu, order="shuffle", seed=5, description="Shuffled", patient_name="Doe^Jane")
    volume, scan = load_path(tmp_path)
    assert volume.voxels.dtype == np.int16
    assert np.array_equal(volume.voxels, hu)  # ascending dz: input order is position order
    _assert_geometry_matches(volume, written)
    ident = volume.identity
    assert ident.series_uid == written.series_uid and ident.study_uid == written.study_uid
    assert ident.frame_of_reference_uid == written.frame_of_reference_uid
    assert ident.sop_instance_uids == written.sop_instance_uids
    assert ident.files == written.paths
    assert ident.sop_class_uid == "1.2.840.10008.5.1.4.1.1.2" and ident.modality == "CT"
    assert ident.description == "Shuffled" and ident.source == tmp_path
    assert "PixelData" not in ident.header and ident.header.SOPInstanceUID == written.sop_instance_uids[0]
    assert ident.display["Patient name"] == "Doe^Jane"
    assert ident.display["Study date"] == "2024-01-31"
    assert ident.display["Convolution kernel"] == "STANDARD" and ident.display["kVp"] == "120"
    assert volume.warnings == [] and scan.series[0].files == written.paths


def test_reversed_storage_order(tmp_path):
    hu = phantom(SMALL)
    # positions decrease with the input index: the stored stack runs against the slice normal
    written = write_series(tmp_path, hu, spacing=(-2.0, 0.8, 0.8), order="descending")
    volume, _ = load_path(tmp_path)
    assert np.array_equal(volume.voxels, hu[::-1])
    assert np.array_equal(volume.voxels, written.hu)
    _assert_geometry_matches(volume, written)
    assert np.all(np.diff(volume.geometry.slice_positions) > 0)


def test_voxel_to_patient_lands_on_the_written_pixel_positions(tmp_path):
    angle = np.radians(25)
    row = (np.cos(angle), 0.0, -np.sin(angle))
    col = (0.0, 1.0, 0.0)
    written = write_series(tmp_path, phantom(SMALL), spacing=(1.5, 0.6, 0.9), origin=(12.0, -30.0, 7.0),
                           row_cosine=row, col_cosine=col)
    volume, _ = load_path(tmp_path)
    z, y, x = 3, 7, 4
    expected = written.positions[z] + x * 0.9 * np.asarray(row) + y * 0.6 * np.asarray(col)
    assert np.allclose(volume.geometry.voxel_to_patient([z, y, x]), expected, atol=1e-5)
    assert volume.geometry.orientation_label == "OBLIQUE"
    assert any("oblique" in w for w in volume.warnings)


def test_gantry_tilt_keeps_per_slice_origins(tmp_path):
    written = write_series(tmp_path, phantom(SMALL), spacing=(2.0, 0.8, 0.8), tilt_degrees=12.0)
    volume, _ = load_path(tmp_path)
    _assert_geometry_matches(volume, written)
    assert volume.geometry.tilt_degrees == pytest.approx(12.0, abs=1e-3)
    assert any("gantry tilt of 12.0 degrees" in w for w in volume.warnings)


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian,
                                    DeflatedExplicitVRLittleEndian, RLELossless, JPEGLSLossless, JPEG2000Lossless,
                                    JPEGLosslessSV1], ids=lambda s: s.keyword)
@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
def test_transfer_syntaxes_decode_exactly(tmp_path, syntax, signed):
    if syntax == JPEGLosslessSV1 and not has_dcmtk():
        pytest.skip("dcmtk's dcmcjpeg is needed to write JPEG Lossless")
    hu = phantom((3, 40, 36))  # JPEG 2000 (openjpeg) needs at least 32 x 32 pixels
    written = write_series(tmp_path, hu, transfer_syntax=syntax, order="shuffle", signed=signed,
                           intercept=0.0 if signed else -1024.0, bits_stored=12)
    volume, scan = load_path(tmp_path)
    assert pydicom.dcmread(written.paths[0], stop_before_pixels=True).file_meta.TransferSyntaxUID == syntax
    assert volume.voxels.dtype == np.int16
    assert np.array_equal(volume.voxels, hu)
    assert volume.warnings == [] and scan.problems == []


@pytest.mark.parametrize("slope, intercept, dtype", [(1.0, -1024.0, np.int16), (2.0, -2048.0, np.int16),
                                                      (0.5, -1024.0, np.float32), (1.0, -1024.5, np.float32)])
def test_rescale_slope_and_intercept(tmp_path, slope, intercept, dtype):
    stored = np.arange(np.prod(SMALL), dtype=np.int64).reshape(SMALL) * 7 % 3000
    hu = stored * slope + intercept
    write_series(tmp_path, hu, slope=slope, intercept=intercept, bits_stored=12)
    volume, _ = load_path(tmp_path)
    assert volume.voxels.dtype == dtype
    assert np.array_equal(volume.voxels, hu.astype(dtype))


def test_rescale_is_applied_per_slice(tmp_path):
    hu = phantom(SMALL)
    written = write_series(tmp_path, hu, intercept=-1024.0)
    ds = pydicom.dcmread(written.paths[1])
    ds.RescaleIntercept = "-1000"  # same stored values, another intercept: this slice reads 24 HU higher
    ds.save_as(written.paths[1])
    volume, _ = load_path(tmp_path)
    expected = hu.copy()
    expected[1] += 24
    assert np.array_equal(volume.voxels, expected)


def test_int16_kept_when_values_fit_although_the_header_range_does_not(tmp_path):
    hu = phantom(SMALL)
    # 16 unsigned bits with intercept -1024 could reach 64511 HU; the actual values fit int16
    write_series(tmp_path, hu, bits_stored=16, intercept=-1024.0)
    volume, _ = load_path(tmp_path)
    assert volume.voxels.dtype == np.int16 and np.array_equal(volume.voxels, hu)
    big = np.full(SMALL, 40000.0)
    big[0, 0, 0] = 0.0
    write_series(tmp_path / "big", big, bits_stored=16, intercept=0.0)
    volume, _ = load_path(tmp_path / "big")
    assert volume.voxels.dtype == np.float32 and volume.voxels.max() == 40000.0


def test_unused_high_bits_are_ignored_like_pydicom(tmp_path):
    hu = phantom(SMALL)
    written = write_series(tmp_path, hu, bits_stored=12, intercept=-1024.0)
    for path in written.paths:  # garbage in the 4 bits above BitsStored (e.g. retired overlay planes)
        ds = pydicom.dcmread(path)
        ds.PixelData = (np.frombuffer(ds.PixelData, "<u2") | 0xA000).astype("<u2").tobytes()
        ds.save_as(path)
    volume, _ = load_path(tmp_path)
    assert np.array_equal(volume.voxels, hu)
    assert np.array_equal(pydicom.dcmread(written.paths[0]).pixel_array.astype(np.int32) - 1024, hu[0])


def test_missing_slice_leaves_a_gap_in_the_geometry(tmp_path):
    hu = phantom((6, 8, 8))
    written = write_series(tmp_path, hu, spacing=(2.0, 1.0, 1.0), missing=[2])
    volume, _ = load_path(tmp_path)
    assert np.array_equal(volume.voxels, np.delete(hu, 2, axis=0))
    _assert_geometry_matches(volume, written)
    assert not volume.geometry.is_evenly_spaced
    assert any("gap of 4.00 mm" in w and "about 1 missing slice" in w for w in volume.warnings)


def test_undecodable_slice_is_left_out_and_named(tmp_path):
    hu = phantom((5, 8, 8))
    written = write_series(tmp_path, hu, spacing=(2.0, 1.0, 1.0), transfer_syntax=RLELossless)
    corrupt_compressed_pixels(written.paths[2])
    scan = scan_path(tmp_path)
    assert scan.series[0].n_slices == 5  # the header is fine: only decoding can tell
    volume = load_series(scan.series[0])
    assert np.array_equal(volume.voxels, np.delete(hu, 2, axis=0))
    assert volume.identity.sop_instance_uids == [u for i, u in enumerate(written.sop_instance_uids) if i != 2]
    name = written.paths[2].name
    assert any(f"slice 2 ({name}" in w and "could not be decoded and is left out" in w for w in volume.warnings)
    assert any("gap of 4.00 mm" in w for w in volume.warnings)


def test_no_decodable_slice_is_a_load_error_naming_the_file(tmp_path):
    written = write_series(tmp_path, phantom((2, 8, 8)), transfer_syntax=RLELossless)
    for path in written.paths:
        corrupt_compressed_pixels(path)
    with pytest.raises(LoadError, match=r"IM_1_000\d\.dcm: none of the 2 slices .* could be decoded"):
        load_path(tmp_path)


def test_folder_with_clutter_still_loads_the_series(tmp_path):
    hu = phantom((6, 8, 8))
    written = write_series(tmp_path, hu, spacing=(2.0, 1.0, 1.0))
    write_rtstruct(tmp_path, written)
    write_sr(tmp_path)
    write_not_dicom(tmp_path / "notes.txt")
    write_truncated(written.paths[4], tmp_path / "cut.dcm", keep=written.paths[4].stat().st_size - 30)
    written.paths[4].unlink()
    volume, scan = load_path(tmp_path)
    assert np.array_equal(volume.voxels, np.delete(hu, 4, axis=0))
    assert scan.skipped == {"RTSTRUCT": 1, "SR": 1}
    assert {p.path.name for p in scan.problems} == {"notes.txt", "cut.dcm"}
    assert any("cut.dcm: truncated" in w for w in volume.warnings)


def test_series_choice_and_nothing_loadable(tmp_path):
    ct = write_series(tmp_path, phantom((3, 8, 8)), series_number=1)
    other = write_series(tmp_path, phantom((4, 8, 8)) + 50, series_number=2)
    volume, _ = load_path(tmp_path)
    assert volume.identity.series_uid == other.series_uid  # the larger CT
    volume, _ = load_path(tmp_path, series_uid=ct.series_uid)
    assert volume.shape == (3, 8, 8)
    with pytest.raises(LoadError, match="no image series with SeriesInstanceUID 1.2.3"):
        load_path(tmp_path, series_uid="1.2.3")
    junk = tmp_path / "junk"
    junk.mkdir()
    write_not_dicom(junk / "a.txt")
    with pytest.raises(LoadError, match=r"no loadable image series in .*junk: 1 unusable file \(a.txt: not a DICOM"):
        load_path(junk)
    with pytest.raises(LoadError, match="no such file or folder"):
        load_path(tmp_path / "absent")


def test_series_info_from_file_list_alone(tmp_path):
    hu = phantom(SMALL)
    written = write_series(tmp_path, hu, order="shuffle")
    bare = SeriesInfo(series_uid=written.series_uid, modality="CT", description="", study_date="", rows=12, cols=10,
                      n_slices=5, spacing=(0, 0, 0), orientation="", files=list(reversed(written.paths)))
    volume = load_series(bare)
    assert np.array_equal(volume.voxels, hu)
    assert volume.identity.files == written.paths


def test_progress_and_cancel(tmp_path):
    write_series(tmp_path, phantom(SMALL))
    calls = []
    load_path(tmp_path, progress=lambda done, total: calls.append((done, total)))
    fractions = [d / t for d, t in calls]
    assert fractions == sorted(fractions) and calls[-1] == (10, 10)  # 5 files scanned + 5 slices loaded
    series = scan_path(tmp_path).series[0]
    steps = []
    with pytest.raises(LoadCancelled):
        load_series(series, progress=lambda d, t: steps.append(d), cancel=lambda: len(steps) >= 3)
    assert max(steps) < 5


def test_logs_carry_no_patient_identity(tmp_path, caplog):
    write_series(tmp_path, phantom((4, 8, 8)), patient_name="Secret^Person", patient_id="ID-SECRET", missing=[1])
    with caplog.at_level(logging.DEBUG, logger="ambiview"):
        volume, _ = load_path(tmp_path)
    assert volume.warnings and caplog.records
    assert "Secret" not in caplog.text and "ID-SECRET" not in caplog.text


# --- the real series --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real(ct_chest_dir):
    volume, scan = load_path(ct_chest_dir)
    return volume, scan


@pytest.mark.shared_data
def test_real_series_values_and_geometry(real):
    volume, _ = real
    assert volume.shape == (134, 512, 512) and volume.voxels.dtype == np.int16
    assert volume.spacing == pytest.approx((3.0, 1.07421875, 1.07421875))
    assert volume.geometry.orientation_label == "AXIAL" and volume.geometry.is_evenly_spaced
    assert volume.warnings == []
    mid = volume.shape[0] // 2
    air = volume.voxels[mid, 40:60, 236:276]  # room air in front of the chest
    assert abs(float(air.mean()) + 1000) < 15
    assert float(np.median(volume.voxels[mid, 250:270, 246:266])) > -200  # inside the body: not air
    ident = volume.identity
    assert len(ident.sop_instance_uids) == 134 and len(set(ident.sop_instance_uids)) == 134
    assert ident.modality == "CT" and ident.display["Manufacturer"] == "Philips"
    assert "PixelData" not in ident.header


@pytest.mark.shared_data
def test_real_series_matches_simpleitk(real, ct_chest_dir):
    sitk = pytest.importorskip("SimpleITK")
    volume, _ = real
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(ct_chest_dir)))
    image = reader.Execute()
    theirs = sitk.GetArrayFromImage(image)  # (z, y, x) in GDCM's own slice order
    assert theirs.shape == volume.shape
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    g = volume.geometry
    assert np.allclose(direction[:, 0], g.row_cosine) and np.allclose(direction[:, 1], g.col_cosine)
    assert image.GetSpacing() == pytest.approx((g.pixel_spacing[1], g.pixel_spacing[0], g.slice_spacing))
    # map each of SimpleITK's slices to ours through patient coordinates, whatever order GDCM chose
    origin, dz = np.asarray(image.GetOrigin()), image.GetSpacing()[2]
    centres = origin[None, :] + np.arange(theirs.shape[0])[:, None] * dz * direction[:, 2][None, :]
    ours_z = g.patient_to_voxel(centres)[:, 0]
    assert np.allclose(ours_z, np.round(ours_z), atol=1e-4)
    order = np.round(ours_z).astype(int)
    assert sorted(order) == list(range(volume.shape[0]))
    assert np.array_equal(volume.voxels[order], theirs.astype(volume.voxels.dtype))
    assert np.allclose(g.voxel_to_patient([order[0], 0, 0]), origin, atol=1e-4)
