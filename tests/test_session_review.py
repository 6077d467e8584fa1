"""The non-Qt helpers behind the review panels: statistics, modes and keeping; placement on the volume grid; experts
and compare; the export plan."""
from __future__ import annotations

import numpy as np
import pydicom
import pytest
from dicom_fixtures import phantom, write_rtstruct, write_series

from ambiview.export.items import ExportError
from ambiview.export.rtstruct_read import load_rtstruct
from ambiview.imaging.loader import load_path
from ambiview.imaging.roi import Roi
from ambiview.imaging.volume import Volume
from ambiview.session import Session
from ambiview.session.analysis import (
    hypothesis_stats,
    keep_consensus,
    keep_hypothesis,
    keep_mode,
    keep_staple,
    mode_index_of,
    modes_of,
    modes_text,
    roi_spacing,
)
from ambiview.session.export_plan import ExportRequest, check_request, run_export
from ambiview.session.kept import ExpertMask
from ambiview.session.placement import local_mask, outline_polylines, roi_region, volume_local_mask
from ambiview.session.references import (
    ReferenceFileError,
    compare_with_experts,
    experts_from_rtstruct,
    rtstructs_beside,
)
from ambiview.session.result import SegmentationResult
from ambiview.uncertainty.stats import longest_diameter_mm

ROI = Roi(2, 3, top=3.5, left=5.5, extent=16.0, size=16)  # native spacing: model (r, c) = volume (4 + r, 6 + c)


def _probs() -> np.ndarray:
    """Hypotheses 1-3 nearly agree (6x6 squares shifted by a pixel); hypothesis 4 is a 1-pixel bar elsewhere."""
    probs = np.zeros((4, 16, 16), np.float32)
    for k in range(3):
        probs[k, 2:8, 2 + k // 2:8 + k // 2] = 0.9
    probs[3, 12, 2:12] = 0.8  # a bar 10 pixels long
    return probs


def _session(volume: Volume) -> Session:
    session = Session()
    session.set_volume(volume)
    ident = volume.identity
    session.set_result(SegmentationResult(_probs(), ROI, ROI.geometry(volume.geometry), volume.shape,
                                          series_uid=ident.series_uid, study_uid=ident.study_uid,
                                          frame_of_reference_uid=ident.frame_of_reference_uid, model="probsam",
                                          model_title="Probabilistic SAM", digest="ab" * 6, seed=3))
    return session


@pytest.fixture
def session():
    vox = np.zeros((6, 30, 32), np.int16)
    return _session(Volume.from_array(vox, spacing=(2.0, 0.5, 0.8), series_uid="1.2.3.4", description="phantom"))


def test_stats_use_the_roi_spacing(session):
    result = session.result
    assert roi_spacing(result) == (0.5, 0.8)
    stats = hypothesis_stats(result)
    np.testing.assert_allclose(stats.sizes, [36 * 0.4, 36 * 0.4, 36 * 0.4, 10 * 0.4])
    assert stats.diameters[3] == pytest.approx(10 * 0.8)  # edge to edge along the bar
    assert stats.diameters[0] == pytest.approx(longest_diameter_mm(result.masks()[0], (0.5, 0.8)))
    assert stats.size_unit == "mm²" and stats.n == 4
    # consensus at 50%: pixels of at least 2 of 4 = the 6x6 square of hypotheses 1 and 2 (which coincide)
    np.testing.assert_allclose(stats.iou_with_consensus, [1.0, 1.0, 30 / 42, 0.0])
    assert hypothesis_stats(result) is stats  # computed once per result


def test_modes_and_keeping(session):
    modes = modes_of(session.result)
    assert [m.members for m in modes] == [[0, 1, 2], [3]] and modes_text(session.result) == \
        "2 interpretations: 75% / 25%"
    assert mode_index_of(modes, 3) == 1
    session.set_hypothesis(3)
    kept_mode = keep_mode(session)
    np.testing.assert_array_equal(kept_mode.mask, session.result.masks()[3])
    assert kept_mode.name == "Interpretation 2 (25%)" and "representative hypothesis 4" in kept_mode.description
    first = keep_hypothesis(session, 0)
    again = keep_hypothesis(session, 0)
    assert (first.name, again.name) == ("Hypothesis 1", "Hypothesis 1 (2)")
    assert first.description == "hypothesis 1 of 4, seed 3" and first.digest == "ab" * 6
    consensus = keep_consensus(session, 0.5)
    assert consensus.name == "Consensus 50%" and consensus.mask.sum() == 36
    fused = keep_staple(session)
    assert fused.kind == "staple" and fused.mask[2:8, 2:8].all()
    with pytest.raises(ValueError, match="does not exist"):
        keep_hypothesis(session, 9)
    session.set_result(None)
    with pytest.raises(ValueError, match="no hypotheses"):
        keep_consensus(session, 0.5)


@pytest.mark.parametrize("roi", [ROI, Roi(1, 3, top=-6.3, left=20.2, extent=24.0, size=16)])
def test_local_placement_matches_the_full_paste(roi):
    shape = (5, 30, 32)
    mask = np.zeros((roi.depth, 16, 16), bool)
    mask[:, 3:12, 4:15] = True
    local = local_mask(roi, mask, shape)
    full = roi.paste(mask.astype(np.float32), shape) >= 0.5
    np.testing.assert_array_equal(local.to_volume(shape), full)
    region = roi_region(roi, shape)
    assert full.any() and full.sum() == full[region].sum()  # nothing of the paste lies outside the region


def test_outlines_run_between_pixel_centres():
    mask = np.zeros((3, 10, 10), bool)
    mask[1, 2:5, 3:7] = True
    local = volume_local_mask(mask)
    assert local.offset == (1, 2, 3) and local.mask.shape == (1, 3, 4)
    (line,) = outline_polylines(local, 0, 1)
    assert np.all(line[:, 0] == 1)
    assert line[:, 1].min() == pytest.approx(1.5) and line[:, 1].max() == pytest.approx(4.5)
    assert line[:, 2].min() == pytest.approx(2.5) and line[:, 2].max() == pytest.approx(6.5)
    (coronal,) = outline_polylines(local, 1, 3)  # row y = 3 cuts the block: z 1, x 3..6
    assert np.all(coronal[:, 1] == 3) and coronal[:, 0].min() == pytest.approx(0.5)
    assert outline_polylines(local, 0, 0) == [] and outline_polylines(local, 1, 9) == []


def test_compare_on_the_roi_region(session):
    result = session.result
    shape = result.volume_shape
    experts = [ExpertMask(f"e{k}", local_mask(result.roi, m, shape).to_volume(shape)) for k, m in
               enumerate(result.masks())]
    same = compare_with_experts(result, experts)
    assert same.ged == pytest.approx(0.0) and same.hm_iou == pytest.approx(1.0)
    # what an expert drew on another slice is outside the region the model saw, and does not count
    experts[0].mask[4, 0:10, 0:10] = True
    assert compare_with_experts(result, experts).ged == pytest.approx(0.0)
    assert compare_with_experts(result, []) is None and compare_with_experts(None, experts) is None
    with pytest.raises(ValueError, match="shape"):
        compare_with_experts(result, [ExpertMask("x", np.zeros((2, 2, 2), bool))])


@pytest.fixture(scope="module")
def dicom_case(tmp_path_factory):
    root = tmp_path_factory.mktemp("review")
    written = write_series(root / "ct", phantom((6, 30, 34)), spacing=(2.5, 0.6, 0.9))  # not 32 columns: see the report
    rs = write_rtstruct(root / "ct", written)
    volume, scan = load_path(root / "ct")
    return root, volume, scan, rs


def test_rtstruct_beside_the_series_becomes_experts(dicom_case, tmp_path):
    _, volume, scan, rs = dicom_case
    assert rtstructs_beside(scan) == [rs]
    experts, _ = experts_from_rtstruct(rs, volume)
    assert [(e.name, e.color, e.source) for e in experts] == [("Lesion", (255, 0, 0), rs.name)]
    assert experts[0].mask.shape == volume.shape and experts[0].mask[3].any() and not experts[0].mask[0].any()
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"nothing")
    with pytest.raises(ReferenceFileError, match="bad.dcm"):
        experts_from_rtstruct(bad, volume)


def test_export_plan_writes_the_kept_items(dicom_case, tmp_path):
    _, volume, _, _ = dicom_case
    session = _session(volume)
    a = keep_hypothesis(session, 0)
    b = keep_consensus(session, 0.75)
    out = tmp_path / "out"
    steps = []
    request = ExportRequest(volume, (a, b), ("rtstruct", "seg", "seg_fractional", "nifti"), out, session.result)
    outcome = run_export(request, progress=lambda done, total, what: steps.append((done, total)))
    names = sorted(p.name for _, p in outcome.written)
    assert names == ["Consensus_75.nii.gz", "Hypothesis_1.nii.gz", "Synthetic_CT_rtstruct.dcm", "Synthetic_CT_seg.dcm",
                     "Synthetic_CT_seg_fractional.dcm"]
    assert steps[-1] == (5, 5)
    rois, _ = load_rtstruct(out / "Synthetic_CT_rtstruct.dcm", volume)
    assert [r.name for r in rois] == ["Hypothesis 1", "Consensus 75%"]
    np.testing.assert_array_equal(rois[0].mask, a.volume_mask())
    np.testing.assert_array_equal(rois[1].mask, b.volume_mask())
    seg = pydicom.dcmread(out / "Synthetic_CT_seg.dcm")
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["Hypothesis 1", "Consensus 75%"]
    ds = pydicom.dcmread(out / "Synthetic_CT_rtstruct.dcm")
    assert "Probabilistic SAM, checkpoint sha256 abababababab, hypothesis 1 of 4" in \
        ds.StructureSetROISequence[0].ROIDescription
    assert pydicom.dcmread(out / "Synthetic_CT_seg_fractional.dcm").SegmentationType == "FRACTIONAL"


def test_export_plan_refuses_with_clear_messages(dicom_case, tmp_path, session):
    root, volume, _, _ = dicom_case
    dsession = _session(volume)
    item = keep_hypothesis(dsession, 0)
    request = ExportRequest(volume, (item,), ("rtstruct",), root / "ct" / "exports", dsession.result)
    with pytest.raises(ExportError, match="source folder"):
        check_request(request)
    with pytest.raises(ExportError, match="tick at least one"):
        check_request(ExportRequest(volume, (), ("rtstruct",), tmp_path))
    with pytest.raises(ExportError, match="at least one format"):
        check_request(ExportRequest(volume, (item,), (), tmp_path))
    # a volume that did not come from DICOM: RTSTRUCT refused with the reason, NIfTI written
    plain = keep_hypothesis(session, 1)
    with pytest.raises(ExportError, match="not loaded from DICOM.*NIfTI instead"):
        check_request(ExportRequest(session.volume, (plain,), ("rtstruct",), tmp_path))
    outcome = run_export(ExportRequest(session.volume, (plain,), ("nifti",), tmp_path / "n"))
    assert [p.name for _, p in outcome.written] == ["Hypothesis_2.nii.gz"]
    # a kept item whose mask lands outside the volume is empty on the series grid
    outside = keep_hypothesis(session, 0)
    outside.roi = Roi(2, 3, top=200.0, left=200.0, extent=16.0, size=16)
    with pytest.raises(ExportError, match="empty on the series grid"):
        check_request(ExportRequest(session.volume, (outside,), ("nifti",), tmp_path))
    assert not (root / "ct" / "exports").exists()
