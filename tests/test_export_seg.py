"""DICOM SEG export (highdicom): BINARY and FRACTIONAL, checked with dciodvfy and read back with highdicom."""
from __future__ import annotations

import shutil
import subprocess

import highdicom as hd
import numpy as np
import pytest
from dicom_fixtures import phantom, write_series

from ambiview.export.items import ExportError, ExportItem
from ambiview.export.seg import write_seg
from ambiview.imaging.loader import load_path
from ambiview.imaging.volume import Volume

needs_dciodvfy = pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (dicom3tools) needed")


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    """A series with non-square pixels, stored against the normal, with one slice missing."""
    folder = tmp_path_factory.mktemp("seg") / "ct"
    write_series(folder, phantom((7, 22, 18)), spacing=(-2.0, 0.6, 0.9), order="descending", missing=(4,))
    volume, _ = load_path(folder)
    return volume


def dciodvfy_errors(path) -> list[str]:
    out = subprocess.run(["dciodvfy", str(path)], check=False, capture_output=True, text=True, timeout=60)
    return [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Error")]


def read_back(path, volume: Volume) -> tuple[hd.seg.Segmentation, np.ndarray]:
    seg = hd.seg.segread(path)
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=volume.identity.sop_instance_uids,
                                               assert_missing_frames_are_empty=True, rescale_fractional=True)
    return seg, pixels


def masks(shape):
    a = np.zeros(shape, bool)
    a[1:3, 4:12, 5:9] = True
    a[1, 4, 5] = False  # asymmetric corner
    b = np.zeros(shape, bool)
    b[4, 15:18, 2:6] = True
    return a, b


@needs_dciodvfy
def test_binary_seg_has_only_frames_with_content_and_reads_back(series, tmp_path):
    a, b = masks(series.shape)
    items = [ExportItem("Lesion", a, (255, 0, 0), "GTV", "Probabilistic SAM", "hypothesis 2 of 16", "ab" * 32),
             ExportItem("Liver", b, (0, 128, 255), "ORGAN", "", "drawn by hand", generation="MANUAL")]
    path = write_seg(items, series, tmp_path / "seg.dcm")
    assert dciodvfy_errors(path) == []
    seg, pixels = read_back(path, series)
    assert seg.SegmentationType == "BINARY"
    assert seg.NumberOfFrames == 2 + 1  # slices 1, 2 for the lesion, slice 4 for the liver; empty frames omitted
    np.testing.assert_array_equal(pixels[..., 0].astype(bool), a)
    np.testing.assert_array_equal(pixels[..., 1].astype(bool), b)
    assert seg.SegmentSequence[0].SegmentLabel == "Lesion"
    assert seg.SegmentSequence[0].SegmentAlgorithmType == "SEMIAUTOMATIC"
    assert seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0].AlgorithmVersion == "ab" * 32
    assert seg.SegmentSequence[1].SegmentAlgorithmType == "MANUAL"
    assert seg.StudyInstanceUID == series.identity.study_uid and seg.PatientID == "FIX-0001"
    assert seg.FrameOfReferenceUID == series.identity.frame_of_reference_uid
    referenced = {ref.ReferencedSOPInstanceUID
                  for ref in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert referenced <= set(series.identity.sop_instance_uids)
    for frame in seg.PerFrameFunctionalGroupsSequence:  # each frame points at its source slice
        source = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        assert source in series.identity.sop_instance_uids


@needs_dciodvfy
def test_fractional_seg_keeps_probabilities_to_8_bits(series, tmp_path):
    z, y, x = np.mgrid[:series.shape[0], :series.shape[1], :series.shape[2]]
    prob = np.clip(1.0 - np.hypot(y - 10.0, x - 8.0) / 6.0, 0, 1).astype(np.float32) * (z == 2)
    path = write_seg([ExportItem("Mean probability", prob, (255, 255, 0), "GTV", "Probabilistic SAM",
                                 "mean of 16 hypotheses", "ab" * 32)], series, tmp_path / "prob.dcm",
                     fractional=True)
    assert dciodvfy_errors(path) == []
    seg, pixels = read_back(path, series)
    assert seg.SegmentationType == "FRACTIONAL" and seg.SegmentationFractionalType == "PROBABILITY"
    assert seg.NumberOfFrames == 1
    assert np.max(np.abs(pixels[..., 0] - prob)) <= 0.5 / 255 + 1e-6


def test_seg_refuses_an_empty_mask_and_a_volume_without_source(series, tmp_path):
    with pytest.raises(ExportError, match="'Nothing': the mask is empty"):
        write_seg([ExportItem("Nothing", np.zeros(series.shape, bool))], series, tmp_path / "seg.dcm")
    bare = Volume.from_array(np.zeros((3, 4, 5), np.int16))
    with pytest.raises(ExportError, match="not loaded from DICOM"):
        write_seg([ExportItem("X", np.ones((3, 4, 5), bool))], bare, tmp_path / "seg.dcm")
    assert list(tmp_path.iterdir()) == []


@needs_dciodvfy
@pytest.mark.shared_data
def test_binary_seg_on_real_chest_ct(ct_chest_dir, tmp_path):
    volume, _ = load_path(ct_chest_dir)
    mask = np.zeros(volume.shape, bool)
    mask[60:66, 200:230, 300:335] = True
    path = write_seg([ExportItem("Nodule", mask, (255, 0, 0), "GTV", "UP-SAM", "consensus 50%", "cd" * 32)],
                     volume, tmp_path / "chest_seg.dcm")
    assert dciodvfy_errors(path) == []
    seg = hd.seg.segread(path)
    assert seg.NumberOfFrames == 6  # so nothing lies outside the slices compared below
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=volume.identity.sop_instance_uids[60:66])
    np.testing.assert_array_equal(pixels[..., 0].astype(bool), mask[60:66])
