"""The main window's opening flows: background load, series choice, problems shown, recent folders, drops."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QTimer, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QApplication, QPushButton
from ui_support import no_leaked_windows, phantom_volume, write_series  # noqa: F401

from ambiview.imaging.scan import scan_path
from ambiview.imaging.windowing import PRESETS, levels
from ambiview.recent import RecentFolders
from ambiview.ui.main_window import MainWindow
from ambiview.ui.series_picker import SeriesPickerDialog

pytestmark = pytest.mark.usefixtures("no_leaked_windows")
LOAD_TIMEOUT_MS = 20000  # a generous bound for a busy 2-core machine; not a timing assertion


@pytest.fixture
def window(qtbot, tmp_path):
    win = MainWindow(recent=RecentFolders(tmp_path / "recent.json"), show_dialogs=False)
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    qtbot.waitExposed(win)
    return win


def _open(qtbot, win, path) -> None:
    with qtbot.waitSignal(win.volume_opened, timeout=LOAD_TIMEOUT_MS):
        assert win.open_path(path)


def test_open_folder_loads_in_the_background_and_fills_the_window(window, qtbot, tmp_path):
    folder = tmp_path / "study"
    write_series(folder / "nested" / "deeper", n_slices=6, rows=24, cols=20, description="tiny chest")
    assert window.stack.currentWidget() is window.welcome
    _open(qtbot, window, folder)
    volume = window.session.volume
    assert volume.shape == (6, 24, 20)
    # sorted by position (InstanceNumber runs the other way in these files): slice k holds k * 10 - 1000 HU
    assert [int(volume.voxels[k, 10, 10]) for k in range(6)] == [k * 10 - 1000 for k in range(6)]
    assert window.stack.currentWidget() is window.views
    assert "tiny chest" in window.windowTitle()
    assert ("Modality", "CT") in window.info_panel.rows()
    assert any(value == "tiny chest" for _, value in window.info_panel.rows())
    assert window.recent.load() == [folder]
    assert window.welcome.recent_paths() == [folder]
    assert not window.problems_dock.isVisible()
    assert np.array_equal(window.views.axial.image_item.image, volume.voxels[3])  # the middle slice


def test_open_a_single_file_shows_that_slice(window, qtbot, tmp_path):
    files = write_series(tmp_path / "study", n_slices=4)
    _open(qtbot, window, files[2])
    volume = window.session.volume
    assert volume.shape == (1, 24, 20) and int(volume.voxels[0, 10, 10]) == 2 * 10 - 1000
    assert np.array_equal(window.views.axial.image_item.image, volume.voxels[0])
    assert window.views.coronal.image_item.image.shape == (1, 20)
    window.views.axial.step(1)  # nowhere to go: stays on the one slice
    assert window.session.cursor[0] == 0
    assert window.recent.load() == [files[2]]


def test_open_demo_uses_the_demo_generator_off_the_gui_thread(window, qtbot, tmp_path, monkeypatch):
    import threading

    import ambiview.imaging.demo as demo

    folder = tmp_path / "demo-series"
    write_series(folder, n_slices=4, description="demo stand-in")
    calls = []

    def fake_demo_series_dir(progress=None):  # the real one generates an 80-slice phantom (seconds)
        calls.append(threading.current_thread() is threading.main_thread())
        progress(1, 1)
        return folder

    monkeypatch.setattr(demo, "demo_series_dir", fake_demo_series_dir)
    with qtbot.waitSignal(window.volume_opened, timeout=LOAD_TIMEOUT_MS):
        assert window.open_demo()
    assert calls == [False]  # called once, on the loader thread
    assert window.session.volume.identity.description == "demo stand-in"
    assert window.recent.load() == []  # the demo is not a recent folder


def test_folder_with_a_broken_file_still_opens_and_shows_the_problem(window, qtbot, tmp_path):
    folder = tmp_path / "study"
    files = write_series(folder, n_slices=5)
    broken = folder / "broken.dcm"
    broken.write_bytes(files[0].read_bytes()[:-150])  # a copy of a slice cut short inside its pixel data
    (folder / "notes.txt").write_text("not an image")
    _open(qtbot, window, folder)
    assert window.session.volume.shape[0] == 5
    entries = window.problems_panel.entries()
    assert any(e.startswith("broken.dcm: ") for e in entries), entries
    assert any(e.startswith("notes.txt: ") for e in entries), entries
    assert window.problems_dock.isVisible()
    assert "could not be used" in window.statusBar().currentMessage()


def test_several_series_are_offered_ct_first(window, qtbot, tmp_path):
    folder = tmp_path / "study"
    write_series(folder / "mr", n_slices=8, modality="MR", description="the MR")
    write_series(folder / "ct", n_slices=4, modality="CT", description="the CT")
    offered = []

    def choose(series, source, parent):
        offered.extend(s.modality for s in series)
        return series[0]

    window.controller.choose_series = choose
    _open(qtbot, window, folder)
    assert offered == ["CT", "MR"]
    assert window.session.volume.identity.description == "the CT"
    assert "1 other series" in " ".join(window.problems_panel.entries())


def test_the_real_picker_dialog_opens_the_series_the_user_picks(window, qtbot, tmp_path):
    write_series(tmp_path / "mr", n_slices=8, modality="MR", description="the MR")
    write_series(tmp_path / "ct", n_slices=4, modality="CT", description="the CT")
    seen = []

    def pick_the_second_row() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, SeriesPickerDialog):
            QTimer.singleShot(10, pick_the_second_row)  # not open yet
            return
        seen.append(dialog.selected_series().modality)
        dialog.table.selectRow(1)
        dialog.accept()

    QTimer.singleShot(0, pick_the_second_row)
    _open(qtbot, window, tmp_path)
    assert seen == ["CT"]  # preselected
    assert window.session.volume.identity.description == "the MR"


def test_series_picker_lists_ct_first_and_preselects_it(qtbot, tmp_path):
    write_series(tmp_path / "mr", n_slices=8, modality="MR", description="the MR")
    write_series(tmp_path / "ct", n_slices=4, rows=24, cols=20, modality="CT", description="the CT",
                 spacing=(2.5, 0.8, 0.7), study_date="20240102")
    series = list(reversed(scan_path(tmp_path).series))  # MR first on purpose
    dialog = SeriesPickerDialog(series, str(tmp_path))
    qtbot.addWidget(dialog)
    cells = [[dialog.table.item(r, c).text() for c in range(dialog.table.columnCount())]
             for r in range(dialog.table.rowCount())]
    assert cells[0] == ["CT", "the CT", "4", "24 × 20", "2.50 × 0.800 × 0.700", "2024-01-02"]
    assert cells[1][:3] == ["MR", "the MR", "8"]
    assert dialog.selected_series().modality == "CT"
    dialog.table.selectRow(1)
    assert dialog.selected_series().description == "the MR"


def test_nothing_loadable_is_reported_and_the_window_stays(window, qtbot, tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "readme.txt").write_text("no images here")
    with qtbot.waitSignal(window.open_failed, timeout=LOAD_TIMEOUT_MS) as blocker:
        assert window.open_path(folder)
    assert "no loadable image series" in blocker.args[0]
    assert "no loadable image series" in window.statusBar().currentMessage()
    assert window.session.volume is None and window.stack.currentWidget() is window.welcome
    assert any(e.startswith("readme.txt: ") for e in window.problems_panel.entries())
    assert window.recent.load() == []


def test_cancel_drops_the_running_open(window, qtbot, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    write_series(first, n_slices=3, description="first")
    write_series(second, n_slices=4, description="second")
    with qtbot.waitSignal(window.controller.cancelled, timeout=LOAD_TIMEOUT_MS):
        assert window.open_path(first)
        window.controller.progress_dialog.findChild(QPushButton).click()  # the dialog's Cancel button
    assert not window.controller.busy and window.controller.progress_dialog is None
    assert window.statusBar().currentMessage() == "Opening cancelled."
    # jobs run in order on one thread, so anything the first job still sends arrives before the second's answer
    _open(qtbot, window, second)
    assert window.session.volume.identity.description == "second"
    assert window.recent.load() == [second]


def test_recent_folder_click_opens_it(qtbot, tmp_path):
    folder = tmp_path / "study"
    write_series(folder, n_slices=3)
    recent = RecentFolders(tmp_path / "recent.json")
    recent.add(tmp_path / "gone")
    recent.add(folder)
    win = MainWindow(recent=recent, show_dialogs=False)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    listing = win.welcome.recent_list
    texts = [listing.item(i).text() for i in range(listing.count())]
    assert texts == [str(folder), f"{tmp_path / 'gone'}   (not found)"]
    assert not listing.item(1).flags() & Qt.ItemFlag.ItemIsEnabled
    rect = listing.visualItemRect(listing.item(0))
    with qtbot.waitSignal(win.volume_opened, timeout=LOAD_TIMEOUT_MS):
        qtbot.mouseClick(listing.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert win.session.volume.shape[0] == 3


def test_dropping_a_folder_opens_it(window, qtbot, tmp_path):
    folder = tmp_path / "dropped"
    write_series(folder, n_slices=3)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(folder))])
    event = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.volume_opened, timeout=LOAD_TIMEOUT_MS):
        window.dropEvent(event)
    assert event.isAccepted()
    assert window.recent.load() == [folder]


def test_status_bar_reads_hu_patient_position_and_voxel_under_the_mouse(window, qtbot):
    window.session.set_volume(phantom_volume())
    window.session.set_slice(3)
    axial = window.views.axial
    qtbot.mouseMove(axial.viewport(), axial.voxel_to_widget((3, 5, 4)).toPoint())
    text = window.readout.text()
    x, y, z = window.session.volume.geometry.voxel_to_patient((3, 5, 4))
    assert text.startswith("HU 400") and f"LPS ({x:.1f}, {y:.1f}, {z:.1f}) mm" in text
    assert "voxel (z 3, y 5, x 4)" in text
    axial.hovered.emit(None)  # the mouse left: the readout falls back to the crosshair
    assert f"voxel (z 3, y {window.session.cursor[1]}, x {window.session.cursor[2]})" in window.readout.text()


def test_preset_box_and_session_window_follow_each_other(window, qtbot):
    window.session.set_volume(phantom_volume())
    box = window.preset_box
    assert box.currentText() == "Lung"
    box.textActivated.emit("Bone")  # what choosing an entry does
    assert window.session.window == PRESETS["Bone"]
    assert tuple(window.views.axial.image_item.levels) == pytest.approx(levels(*PRESETS["Bone"]))
    window.session.set_window(10.0, 123.0)  # e.g. a right-drag
    assert box.currentText() == "Custom"
    window.session.apply_preset("Mediastinum")
    assert box.currentText() == "Mediastinum"


def test_close_series_returns_to_the_welcome_page(window):
    window.session.set_volume(phantom_volume())
    assert window.close_action.isEnabled()
    window.close_action.trigger()
    assert window.session.volume is None and window.stack.currentWidget() is window.welcome
    assert window.windowTitle() == "AmbiView" and not window.close_action.isEnabled()


@pytest.mark.shared_data
def test_real_chest_ct_opens_with_its_two_non_dicom_files_listed(window, qtbot, ct_chest_dir):
    _open(qtbot, window, ct_chest_dir)
    volume = window.session.volume
    assert volume.shape == (134, 512, 512)
    assert volume.spacing == pytest.approx((3.0, 1.07421875, 1.07421875))
    names = {e.split(":")[0] for e in window.problems_panel.entries()}
    assert {"LICENSE", "Citations"} <= names
    assert window.windowTitle().startswith("PANCREAS DI")
