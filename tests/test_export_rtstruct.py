"""RTSTRUCT export and import: geometry on hard series, independent checks with dciodvfy and plastimatch."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_fixtures import phantom, write_series
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from ambiview.export.items import ExportError, ExportItem
from ambiview.export.rtstruct_read import load_rtstruct, read_rtstruct
from ambiview.export.rtstruct_write import write_rtstruct
from ambiview.imaging.loader import load_path

# --- helpers --------------------------------------------------------------------------------------------------------
SQ = np.sqrt(0.5)
SERIES_CASES = {  # hu shape, write_series keywords
    "non-square pixels, stacked against the normal, stored in reverse":
        ((8, 24, 20), {"spacing": (-2.5, 0.6, 0.9), "order": "descending"}),
    "a missing slice": ((7, 24, 20), {"spacing": (2.0, 0.7, 0.5), "missing": (3,), "order": "shuffle"}),
    "oblique": ((7, 24, 20), {"spacing": (1.5, 0.8, 0.8), "row_cosine": (SQ, SQ, 0.0),
                              "col_cosine": (-0.6 * SQ, 0.6 * SQ, -0.8)}),
}


def blob_with_hole(shape) -> np.ndarray:
    """An asymmetric test mask: a block with a hole, a 1-voxel notch, and a second component on one slice."""
    m = np.zeros(shape, bool)
    m[1:-1, 4:15, 3:12] = True
    m[2:-2, 7:10, 6:9] = False          # a hole through the middle slices
    m[1:-1, 4, 3] = False                # a notch in one corner (catches flips)
    m[2, 16:19, 13:16] = True            # a separate component on slice 2 only
    return m


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float(np.sum(a & b)) / float(a.sum() + b.sum())


def dciodvfy_errors(path: Path) -> list[str]:
    out = subprocess.run(["dciodvfy", str(path)], check=False, capture_output=True, text=True, timeout=60)
    return [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Error")]


def plastimatch_mask(rtstruct: Path, series_dir: Path, roi_name: str, volume, near: np.ndarray, tmp: Path,
                     xor: bool = False):
    """Rasterise our RTSTRUCT with plastimatch and sample its image at our voxel centres near the mask `near`.

    Returns that mask on our grid and the count of all voxels plastimatch set (to catch anything drawn elsewhere).
    """
    import SimpleITK as sitk

    out = tmp / ("plastimatch-xor" if xor else "plastimatch")
    cmd = ["plastimatch", "convert", "--input", str(rtstruct), "--referenced-ct", str(series_dir),
           "--output-prefix", str(out), "--prefix-format", "nrrd"] + (["--xor-contours"] if xor else [])
    run = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    image = sitk.ReadImage(str(out / f"{roi_name}.nrrd"))
    theirs = sitk.GetArrayFromImage(image) > 0  # (k, j, i)
    matrix = np.asarray(image.GetDirection()).reshape(3, 3) * np.asarray(image.GetSpacing())[None, :]
    to_index = np.linalg.inv(matrix)
    mask = np.zeros(volume.shape, bool)
    spans = [np.nonzero(near.any(axis=tuple(a for a in range(3) if a != axis)))[0] for axis in range(3)]
    lo = np.maximum([s[0] - 3 for s in spans], 0)
    hi = np.minimum([s[-1] + 4 for s in spans], volume.shape)
    zyx = np.argwhere(np.ones(hi - lo, bool)) + lo
    ijk = np.rint((volume.geometry.voxel_to_patient(zyx) - np.asarray(image.GetOrigin())) @ to_index.T).astype(int)
    size = np.asarray(image.GetSize())
    ok = np.all((ijk >= 0) & (ijk < size), axis=1)
    mask[tuple(zyx[ok].T)] = theirs[ijk[ok, 2], ijk[ok, 1], ijk[ok, 0]]
    return mask, int(theirs.sum())


needs_tools = pytest.mark.skipif(not (shutil.which("plastimatch") and shutil.which("dciodvfy")),
                                 reason="plastimatch and dciodvfy (Debian packages plastimatch, dicom3tools) needed")


def make_item(mask, name="Lesion") -> ExportItem:
    return ExportItem(name, mask, (250, 20, 30), "GTV", "Probabilistic SAM",
                      "Probabilistic SAM, checkpoint sha256 " + "ab" * 32 + ", hypothesis 3 of 16", "ab" * 32)


@pytest.fixture(scope="module", params=list(SERIES_CASES), ids=list(SERIES_CASES))
def hard_series(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp("series") / "ct"
    shape, options = SERIES_CASES[request.param]
    write_series(folder, phantom(shape), **options)
    volume, _ = load_path(folder)
    return folder, volume


# --- the writer on hard geometry, checked independently ------------------------------------------------------------
@needs_tools
def test_rtstruct_on_hard_series_matches_plastimatch_and_our_reader(hard_series, tmp_path):
    folder, volume = hard_series
    mask = blob_with_hole(volume.shape)
    path = write_rtstruct([make_item(mask)], volume, tmp_path / "rs.dcm")
    assert dciodvfy_errors(path) == []
    theirs, total = plastimatch_mask(path, folder, "Lesion", volume, mask, tmp_path)
    assert dice(theirs, mask) >= 0.98
    assert total <= mask.sum() * 1.02  # nothing drawn off our slices either
    xor, _ = plastimatch_mask(path, folder, "Lesion", volume, mask, tmp_path, xor=True)
    assert dice(xor, mask) >= 0.98  # keyholed holes read the same with union (default) and with XOR
    rois, messages = load_rtstruct(path, volume)
    assert messages == [] and rois[0].messages == []
    np.testing.assert_array_equal(rois[0].mask, mask)  # write -> read is exact


def test_contour_vertices_are_pixel_corners_in_patient_space(hard_series, tmp_path):
    _folder, volume = hard_series
    mask = np.zeros(volume.shape, bool)
    mask[3, 5:8, 2:6] = True  # rows 5-7, columns 2-5
    ds = pydicom.dcmread(write_rtstruct([make_item(mask)], volume, tmp_path / "rs.dcm"))
    (contour,) = ds.ROIContourSequence[0].ContourSequence
    points = np.asarray(contour.ContourData, float).reshape(-1, 3)
    corners = volume.geometry.voxel_to_patient([[3, 4.5, 1.5], [3, 4.5, 5.5], [3, 7.5, 5.5], [3, 7.5, 1.5]])
    assert len(points) == 4
    for corner in corners:  # each expected corner is one of the vertices (to DS precision)
        assert np.min(np.linalg.norm(points - corner, axis=1)) < 1e-4
    assert contour.ContourImageSequence[0].ReferencedSOPInstanceUID == volume.identity.sop_instance_uids[3]


def test_rtstruct_records_origin_references_and_patient(hard_series, tmp_path):
    _folder, volume = hard_series
    mask = blob_with_hole(volume.shape)
    other = np.zeros(volume.shape, bool)
    other[-2, 10:13, 10:14] = True
    items = [make_item(mask), ExportItem("Check", other, (0, 255, 0), "CONTROL", "UP-SAM", "short", "cd" * 32,
                                         "AUTOMATIC")]
    ds = pydicom.dcmread(write_rtstruct(items, volume, tmp_path / "rs.dcm"))
    ident = volume.identity
    assert ds.Modality == "RTSTRUCT" and ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.481.3"
    assert ds.PatientName == "Fixture^Patient" and ds.PatientID == "FIX-0001" and ds.StudyDate == "20240131"
    assert ds.StudyInstanceUID == ident.study_uid and ds.FrameOfReferenceUID == ident.frame_of_reference_uid
    assert ds.SeriesInstanceUID != ident.series_uid and ds.SOPInstanceUID not in ident.sop_instance_uids
    frame = ds.ReferencedFrameOfReferenceSequence[0]
    series = frame.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert frame.FrameOfReferenceUID == ident.frame_of_reference_uid
    assert series.SeriesInstanceUID == ident.series_uid
    assert [r.ReferencedSOPInstanceUID for r in series.ContourImageSequence] == ident.sop_instance_uids
    roi1, roi2 = ds.StructureSetROISequence
    assert (roi1.ROIName, roi1.ROIGenerationAlgorithm, roi2.ROIGenerationAlgorithm) == ("Lesion", "SEMIAUTOMATIC",
                                                                                        "AUTOMATIC")
    assert len(roi1.ROIGenerationDescription) <= 64 and roi1.ROIDescription.endswith("hypothesis 3 of 16")
    algorithm = roi1.ROIDerivationAlgorithmIdentificationSequence[0]
    assert (algorithm.AlgorithmName, algorithm.AlgorithmVersion) == ("Probabilistic SAM", "ab" * 32)
    assert list(ds.ROIContourSequence[0].ROIDisplayColor) == [250, 20, 30]
    assert [o.RTROIInterpretedType for o in ds.RTROIObservationsSequence] == ["GTV", "CONTROL"]
    # every contour references the slice its points lie on
    positions = volume.geometry.slice_positions
    for contour in ds.ROIContourSequence[1].ContourSequence:
        points = np.asarray(contour.ContourData, float).reshape(-1, 3)
        z = int(np.argmin(np.abs(positions - (points @ volume.geometry.normal).mean())))
        assert z == volume.shape[0] - 2
        assert contour.ContourImageSequence[0].ReferencedSOPInstanceUID == ident.sop_instance_uids[z]


# --- the real series -------------------------------------------------------------------------------------------------
@needs_tools
@pytest.mark.shared_data
def test_rtstruct_on_real_chest_ct(ct_chest_dir, tmp_path):
    volume, _ = load_path(ct_chest_dir)
    z, y, x = np.ogrid[:volume.shape[0], :volume.shape[1], :volume.shape[2]]
    dz, dy, dx = volume.spacing
    r2 = ((z - 100) * dz) ** 2 + ((y - 200) * dy) ** 2 + ((x - 310) * dx) ** 2
    mask = (r2 < 18.0 ** 2) & ~(r2 < 5.0 ** 2)  # a 36 mm ball with a 10 mm cavity
    path = write_rtstruct([make_item(mask, "Nodule")], volume, tmp_path / "chest_rs.dcm")
    assert dciodvfy_errors(path) == []
    theirs, total = plastimatch_mask(path, ct_chest_dir, "Nodule", volume, mask, tmp_path)
    assert dice(theirs, mask) >= 0.98 and total <= mask.sum() * 1.02
    (roi,), _ = load_rtstruct(path, volume)
    np.testing.assert_array_equal(roi.mask, mask)
    expected_ml = mask.sum() * dz * dy * dx / 1000.0
    assert roi.volume_ml == pytest.approx(expected_ml, rel=1e-9)
    assert 19.0 < roi.volume_ml < 26.0  # 4/3 pi (18^3 - 5^3) mm^3 = 23.9 mL, voxelised


# --- files from other tools ------------------------------------------------------------------------------------------
def _foreign_file(volume, tmp_path) -> Path:
    """Our RTSTRUCT edited the way other tools' files differ: nested (not keyholed) holes, a contour between slices,
    an open contour, an empty ROI, an ROI in another frame of reference, references to unknown images."""
    mask = np.zeros(volume.shape, bool)
    mask[2, 4:12, 4:12] = True
    ds = pydicom.dcmread(write_rtstruct([make_item(mask, "Good"), make_item(mask, "Elsewhere")], volume,
                                        tmp_path / "base.dcm"))
    good = ds.ROIContourSequence[0].ContourSequence
    g = volume.geometry

    def contour(yx, z, kind="CLOSED_PLANAR"):
        item = Dataset()
        item.ContourGeometricType = kind
        pts = g.voxel_to_patient(np.column_stack([np.full(len(yx), float(z)), np.asarray(yx, float)]))
        item.NumberOfContourPoints = len(pts)
        item.ContourData = [round(float(v), 4) for v in pts.ravel()]
        return item

    square = [(5.5, 5.5), (5.5, 9.5), (9.5, 9.5), (9.5, 5.5)]     # a hole as a separate nested contour
    good.append(contour(square, 2))
    good.append(contour([(1, 1), (1, 3), (3, 3)], 2.5))              # between slices 2 and 3
    good.append(contour([(1, 1), (1, 3), (3, 3)], 4, "OPEN_PLANAR"))
    unknown = Dataset()
    unknown.ReferencedSOPClassUID, unknown.ReferencedSOPInstanceUID = volume.identity.sop_class_uid, generate_uid()
    good[-1].ContourImageSequence = [unknown]
    ds.StructureSetROISequence[1].ReferencedFrameOfReferenceUID = generate_uid()
    empty = Dataset()
    empty.ROINumber, empty.ROIName, empty.ROIGenerationAlgorithm = 7, "Empty", "MANUAL"
    empty.ReferencedFrameOfReferenceUID = volume.identity.frame_of_reference_uid
    ds.StructureSetROISequence.append(empty)
    path = tmp_path / "foreign.dcm"
    ds.save_as(path)
    return path


def test_reader_survives_files_from_other_tools(hard_series, tmp_path):
    _folder, volume = hard_series
    rois, messages = load_rtstruct(_foreign_file(volume, tmp_path), volume)
    by_name = {r.name: r for r in rois}
    assert set(by_name) == {"Good", "Elsewhere", "Empty"}
    good = by_name["Good"]
    expected = np.zeros(volume.shape, bool)
    expected[2, 4:12, 4:12] = True
    expected[2, 6:10, 6:10] = False  # the nested contour is a hole (even-odd)
    np.testing.assert_array_equal(good.mask, expected)
    assert good.slices == [2]
    text = " | ".join(good.messages)
    assert "1 contour(s) lie on no slice" in text
    assert "open_planar" in text
    assert by_name["Elsewhere"].mask is None and "frame of reference" in by_name["Elsewhere"].messages[0]
    assert by_name["Empty"].mask is None and "has no contours" in by_name["Empty"].messages[0]
    assert messages == []


def test_reader_says_when_the_file_is_on_another_series(hard_series, tmp_path):
    _folder, volume = hard_series
    mask = np.zeros(volume.shape, bool)
    mask[1, 2:5, 2:5] = True
    ds = pydicom.dcmread(write_rtstruct([make_item(mask)], volume, tmp_path / "rs.dcm"))
    study = ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0]
    study.RTReferencedSeriesSequence[0].SeriesInstanceUID = generate_uid()
    ds.save_as(tmp_path / "other.dcm")
    (roi,), messages = load_rtstruct(tmp_path / "other.dcm", volume)
    assert len(messages) == 1 and "not on the open series" in messages[0]
    np.testing.assert_array_equal(roi.mask, mask)  # same frame of reference: still placed by coordinates
    ds.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID = generate_uid()
    ds.save_as(tmp_path / "other_frame.dcm")
    _, messages = load_rtstruct(tmp_path / "other_frame.dcm", volume)
    assert "frame of reference" in messages[0]


def test_reader_rejects_what_is_not_an_rtstruct(hard_series, tmp_path):
    folder, _volume = hard_series
    with pytest.raises(ExportError, match="not an RT Structure Set"):
        read_rtstruct(min(folder.iterdir()))
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not dicom at all")
    with pytest.raises(ExportError, match="junk.dcm: not a readable DICOM file"):
        read_rtstruct(junk)
