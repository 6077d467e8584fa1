"""The export dialog: ticked kept items in the chosen formats, written off the GUI thread; refusals say why."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_fixtures import phantom, write_series
from PySide6.QtCore import Qt
from review_support import fake_result
from ui_support import no_leaked_windows, phantom_volume  # noqa: F401

from ambiview.export.rtstruct_read import load_rtstruct
from ambiview.imaging.loader import load_path
from ambiview.paths import data_dir
from ambiview.session import Session
from ambiview.session.analysis import keep_consensus, keep_hypothesis
from ambiview.ui.export_dialog import ExportDialog

pytestmark = pytest.mark.usefixtures("no_leaked_windows")
WRITE_TIMEOUT_MS = 20000  # a generous bound for a busy machine; not a timing assertion


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export-dialog") / "ct"
    write_series(folder, phantom((6, 30, 34)), spacing=(2.5, 0.6, 0.9), description="Chest")
    volume, _ = load_path(folder)
    return folder, volume


def _session(volume) -> Session:
    session = Session()
    session.set_volume(volume)
    session.set_result(fake_result(volume))
    keep_hypothesis(session, 0)
    keep_consensus(session, 0.75)
    return session


def _dialog(qtbot, session) -> ExportDialog:
    dialog = ExportDialog(session)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def test_exports_ticked_items_in_every_format(qtbot, series, tmp_path):
    folder, volume = series
    session = _session(volume)
    dialog = _dialog(qtbot, session)
    assert data_dir() in Path(dialog.folder_edit.text()).parents  # the default folder
    assert dialog.format_boxes["rtstruct"].isChecked() and not dialog.format_boxes["nifti"].isChecked()
    for kind in ("seg", "seg_fractional", "nifti"):
        dialog.format_boxes[kind].setChecked(True)
    dialog.items_list.item(1).setCheckState(Qt.CheckState.Unchecked)  # only the first kept item
    out = tmp_path / "out"
    dialog.folder_edit.setText(str(out))
    with qtbot.waitSignal(dialog.done_writing, timeout=WRITE_TIMEOUT_MS):
        assert dialog.start_export()
    names = sorted(p.name for p in dialog.written_paths())
    assert names == ["Chest_rtstruct.dcm", "Chest_seg.dcm", "Chest_seg_fractional.dcm", "Hypothesis_1.nii.gz"]
    assert all(p.parent == out for p in dialog.written_paths())
    assert str(out / "Chest_rtstruct.dcm") in dialog.report.toPlainText()
    rois, _ = load_rtstruct(out / "Chest_rtstruct.dcm", volume)
    assert [r.name for r in rois] == ["Hypothesis 1"]
    np.testing.assert_array_equal(rois[0].mask, session.kept[0].volume_mask())
    assert len(pydicom.dcmread(out / "Chest_seg.dcm").SegmentSequence) == 1
    assert len(list(folder.iterdir())) == 6  # the six slices, nothing added to the source folder


def test_refuses_the_source_folder_and_empty_choices(qtbot, series):
    folder, volume = series
    dialog = _dialog(qtbot, _session(volume))
    before = sorted(folder.iterdir())
    dialog.folder_edit.setText(str(folder / "exports"))
    with qtbot.waitSignal(dialog.export_failed) as blocker:
        assert not dialog.start_export()
    assert "source folder" in blocker.args[0] and "source folder" in dialog.status.text()
    assert sorted(folder.iterdir()) == before
    dialog.folder_edit.setText(str(folder.parent / "elsewhere"))
    for r in range(dialog.items_list.count()):
        dialog.items_list.item(r).setCheckState(Qt.CheckState.Unchecked)
    assert not dialog.start_export() and "tick at least one" in dialog.status.text()
    dialog.items_list.item(0).setCheckState(Qt.CheckState.Checked)
    dialog.format_boxes["rtstruct"].setChecked(False)
    assert not dialog.start_export() and "at least one format" in dialog.status.text()


def test_a_volume_without_dicom_offers_nifti_and_nothing_kept_cannot_export(qtbot, tmp_path):
    session = Session()
    session.set_volume(phantom_volume())
    session.set_result(fake_result(session.volume))
    empty_dialog = _dialog(qtbot, session)
    assert not empty_dialog.export_button.isEnabled() and "Nothing is kept" in empty_dialog.status.text()
    keep_hypothesis(session, 3)
    dialog = _dialog(qtbot, session)
    assert not dialog.format_boxes["rtstruct"].isEnabled() and dialog.format_boxes["nifti"].isChecked()
    assert "not loaded from DICOM" in dialog.format_boxes["seg"].toolTip()
    dialog.folder_edit.setText(str(tmp_path / "n"))
    with qtbot.waitSignal(dialog.done_writing, timeout=WRITE_TIMEOUT_MS):
        assert dialog.start_export()
    assert [p.name for p in dialog.written_paths()] == ["Hypothesis_4.nii.gz"]
