"""3D results in the 2D views: a fake 3D engine's hypotheses stream into the window and show slice by slice (contours,
heatmap, consensus, slider) within the ROI only; a kept 3D mask is exported over all its slices."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from PySide6.QtCore import Qt
from ui_support import no_leaked_windows  # noqa: F401
from volume_support import BOX, NODULE, ROI_DEPTH, WAIT_MS, run_spheres, sphere_window, write_chest

from ambiview.export.rtstruct_read import load_rtstruct, read_rtstruct
from ambiview.ui.plane import AXIAL, CORONAL

pytestmark = pytest.mark.usefixtures("no_leaked_windows")
N = 6


@pytest.fixture(scope="module")
def chest(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chest3d") / "ct"
    return write_chest(folder), folder


@pytest.fixture
def window(qtbot, tmp_path, chest, monkeypatch):
    return sphere_window(qtbot, tmp_path, chest[0], monkeypatch, (1300, 850))


def _run(win, qtbot, n: int = N):
    return run_spheres(win, qtbot, n)


def _bbox(xy):
    x, y = (np.asarray(v, float) for v in xy)
    return np.nanmin(x), np.nanmin(y), np.nanmax(x), np.nanmax(y)


def _current(win, axis=AXIAL):
    return win.hypotheses.overlays[axis][1].scene_paths()["current"]


def test_3d_hypotheses_show_slice_by_slice_in_the_2d_views_and_nowhere_else(window, qtbot):
    result = _run(window, qtbot)
    ui, session = window.hypotheses, window.session
    roi = result.roi
    assert result.is_3d and result.probs.shape == (N, ROI_DEPTH, 64, 64)
    assert roi.z0 <= NODULE[0] < roi.z1 and roi.depth == ROI_DEPTH and roi.scale == 1.0
    plane = window.views.axial.plane
    # on the prompt slice hypothesis 0 is a disk of radius 0.55 * 9.5 model (= volume) pixels
    radius = 0.55 * (BOX[3] - BOX[1] + 1) / 2
    left, top, right, bottom = _bbox(_current(window))
    assert right - left == pytest.approx(2 * radius * plane.spacing[2], abs=1.5 * plane.spacing[2])
    assert bottom - top == pytest.approx(2 * radius * plane.spacing[1], abs=1.5 * plane.spacing[1])
    heat, contours, consensus = ui.overlays[AXIAL]
    assert heat.image.isVisible()
    ui.hypothesis_panel.consensus_box.click()
    ui.hypothesis_panel.staple_button.click()                       # STAPLE over the 3D hypotheses, cut per slice
    assert consensus.visible_names() == ["consensus", "staple"]
    small = right - left
    session.set_hypothesis(N - 1)                                   # the slider: the largest hypothesis
    assert _bbox(_current(window))[2] - _bbox(_current(window))[0] > small + 4 * plane.spacing[2]
    # two slices up the small hypothesis has ended, the large one goes on (ellipsoids a third as deep as wide)
    session.set_slice(BOX[0] + 2)
    thin = contours.scene_paths()["thin"]
    assert len(thin[0][0]) == 0 and len(thin[N - 1][0]) > 0 and len(_current(window)[0]) > 0
    # outside the ROI's slices nothing at all: no contour, no heatmap, no consensus
    for z in (roi.z0 - 1, roi.z1):
        session.set_slice(z)
        assert len(_current(window)[0]) == 0 and all(len(x) == 0 for x, _ in contours.scene_paths()["thin"])
        assert not heat.image.isVisible() and consensus.visible_names() == []
    session.set_slice(BOX[0])
    # the coronal view through the nodule shows the hypothesis over several slices, not a band of one
    session.set_cursor(BOX[0], NODULE[1], NODULE[2])
    coronal = window.views.coronal.plane
    _, z_top, _, z_bottom = _bbox(_current(window, CORONAL))
    slice_mm = abs(coronal.voxel_to_scene((1, 0, 0))[1] - coronal.voxel_to_scene((0, 0, 0))[1])
    assert abs(z_bottom - z_top) > 3.5 * slice_mm


def test_a_kept_3d_mask_is_exported_on_every_slice_it_covers(window, qtbot, chest, tmp_path):
    _run(window, qtbot)
    window.session.set_hypothesis(N - 1)
    review = window.review
    panel = review.kept_panel
    for button in (panel.keep_hypothesis_button, panel.keep_consensus_button, panel.keep_staple_button,
                   panel.keep_mode_button):
        button.click()
    assert [k.kind for k in window.session.kept] == ["hypothesis", "consensus", "staple", "mode"], panel.message.text()
    assert all(k.mask.shape == (ROI_DEPTH, 64, 64) for k in window.session.kept)
    item = window.session.kept[0]
    volume_mask = item.volume_mask()
    covered = sorted(int(z) for z in np.flatnonzero(volume_mask.any(axis=(1, 2))))
    assert len(covered) >= 5                                          # a 3D mask, several slices deep
    for z in (covered[0], covered[-1]):                                # kept outlines on its end slices too
        window.session.set_slice(z)
        assert review.kept_outlines.layers[AXIAL].drawn()[0][1] > 0
    dialog = review.open_export_dialog()  # deletes itself when closed
    for row in range(1, dialog.items_list.count()):                   # the kept hypothesis alone
        dialog.items_list.item(row).setCheckState(Qt.CheckState.Unchecked)
    dialog.format_boxes["nifti"].setChecked(True)
    out = tmp_path / "export"
    dialog.folder_edit.setText(str(out))
    with qtbot.waitSignal(dialog.done_writing, timeout=WAIT_MS):
        assert dialog.start_export()
    rtstruct = next(p for p in dialog.written_paths() if p.name.endswith("_rtstruct.dcm"))
    volume, folder = chest
    structure = read_rtstruct(rtstruct)
    geometry = volume.geometry
    slices = sorted({round(float(geometry.patient_to_voxel(c.points[0])[0]))
                     for c in structure.rois[0].contours})
    assert slices == covered                                          # a contour on every slice of the mask
    rois, _ = load_rtstruct(rtstruct, volume)
    np.testing.assert_array_equal(rois[0].mask, volume_mask)
    nifti = next(p for p in dialog.written_paths() if p.name.endswith(".nii.gz"))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(nifti))) > 0, volume_mask)
    assert not any(p.parent == folder for p in dialog.written_paths())
    dialog.close()
