"""Prompt tools: mouse -> session (voxel coordinates), undo/redo/clear, and session -> drawn markers."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication
from ui_support import PHANTOM_SPACING, PHANTOM_Z, no_leaked_windows, phantom_volume  # noqa: F401

from ambiview.recent import RecentFolders
from ambiview.session import PromptKind
from ambiview.ui.main_window import MainWindow
from ambiview.ui.tools import Tool

pytestmark = pytest.mark.usefixtures("no_leaked_windows")


@pytest.fixture
def window(qtbot, tmp_path):
    win = MainWindow(recent=RecentFolders(tmp_path / "recent.json"), show_dialogs=False)
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    win.activateWindow()
    qtbot.waitActive(win)  # window shortcuts (P, N, B, Ctrl+Z...) need the active window
    win.session.set_volume(phantom_volume())
    win.session.set_slice(PHANTOM_Z)
    QApplication.processEvents()
    return win


def _drag(qtbot, view, a: QPoint, b: QPoint) -> None:
    vp = view.viewport()
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=a)
    qtbot.mouseMove(vp, a + (b - a) / 3)
    qtbot.mouseMove(vp, b)
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=b)


def test_tool_shortcuts_switch_the_tool(window, qtbot):
    for key, tool in ((Qt.Key.Key_P, Tool.POSITIVE), (Qt.Key.Key_N, Tool.NEGATIVE), (Qt.Key.Key_B, Tool.BOX),
                      (Qt.Key.Key_V, Tool.NAVIGATE), (Qt.Key.Key_B, Tool.BOX), (Qt.Key.Key_Escape, Tool.NAVIGATE)):
        qtbot.keyClick(window.views.axial, key)
        assert window.tools.tool is tool
        assert window.tool_actions[tool].isChecked()


def test_box_drawn_with_the_mouse_lands_in_the_session_in_voxels(window, qtbot):
    axial, session = window.views.axial, window.session
    window.tools.set_tool(Tool.BOX)
    a, b = axial.voxel_to_widget((PHANTOM_Z, 5, 8)), axial.voxel_to_widget((PHANTOM_Z, 25, 30))
    _drag(qtbot, axial, a.toPoint(), b.toPoint())
    assert len(session.prompts) == 1
    box = session.prompts[0]
    assert box.kind is PromptKind.BOX and box.z == PHANTOM_Z
    _, y0, x0, y1, x1 = box.voxel
    # the mouse lands on whole screen pixels: allow the size of one pixel in voxels
    tol = max(axial.view_box.viewPixelSize()) / min(PHANTOM_SPACING[1:]) + 1e-6
    assert (y0, x0, y1, x1) == pytest.approx((5, 8, 25, 30), abs=tol)
    # patient coordinates came from the geometry
    expected = session.volume.geometry.voxel_to_patient((PHANTOM_Z, y0, x0))
    assert np.allclose(box.patient[0], expected)
    # drawn as a rectangle on this slice only
    assert len(window.views.prompts.boxes) == 1
    session.set_slice(PHANTOM_Z + 1)
    assert window.views.prompts.boxes == []
    session.set_slice(PHANTOM_Z)
    assert len(window.views.prompts.boxes) == 1


def test_box_drag_in_navigate_mode_moves_the_cursor_instead(window, qtbot):
    axial, session = window.views.axial, window.session
    _drag(qtbot, axial, axial.voxel_to_widget((PHANTOM_Z, 5, 8)).toPoint(),
          axial.voxel_to_widget((PHANTOM_Z, 20, 30)).toPoint())
    assert session.prompts == ()
    assert session.cursor == (PHANTOM_Z, 20, 30)


def test_points_undo_redo_clear_with_shortcuts(window, qtbot):
    axial, session = window.views.axial, window.session
    qtbot.keyClick(axial, Qt.Key.Key_P)
    click = axial.viewport(), Qt.MouseButton.LeftButton
    qtbot.mouseClick(*click, pos=axial.voxel_to_widget((PHANTOM_Z, 10, 12)).toPoint())
    qtbot.keyClick(axial, Qt.Key.Key_N)
    qtbot.mouseClick(*click, pos=axial.voxel_to_widget((PHANTOM_Z, 30, 40)).toPoint())
    kinds = [p.kind for p in session.prompts]
    assert kinds == [PromptKind.POSITIVE, PromptKind.NEGATIVE]
    assert [round(c) for c in session.prompts[0].voxel] == [PHANTOM_Z, 10, 12]
    assert [round(c) for c in session.prompts[1].voxel] == [PHANTOM_Z, 30, 40]
    assert session.cursor[0] == PHANTOM_Z  # placing points does not move the crosshair
    assert len(window.views.prompts.points.data) == 2

    qtbot.keyClick(axial, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert [p.kind for p in session.prompts] == [PromptKind.POSITIVE]
    assert len(window.views.prompts.points.data) == 1
    qtbot.keyClick(axial, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert [p.kind for p in session.prompts] == [PromptKind.POSITIVE, PromptKind.NEGATIVE]
    assert window.edit_actions["clear"].isEnabled()
    window.edit_actions["clear"].trigger()
    assert session.prompts == () and len(window.views.prompts.points.data) == 0
    assert window.edit_actions["undo"].isEnabled() and not window.edit_actions["redo"].isEnabled()


def test_session_prompts_are_drawn_on_their_slice_only(window):
    session, overlay = window.session, window.views.prompts
    session.add_point(PHANTOM_Z, 10, 12, positive=True)
    session.add_point(PHANTOM_Z + 2, 11, 13, positive=False)
    session.add_box(PHANTOM_Z, 2, 3, 8, 9)
    assert len(overlay.points.data) == 1 and len(overlay.boxes) == 1
    x, y = overlay.points.data[0]["x"], overlay.points.data[0]["y"]
    assert (x, y) == pytest.approx(((12 + 0.5) * PHANTOM_SPACING[2], (10 + 0.5) * PHANTOM_SPACING[1]))
    rect = overlay.boxes[0].rect()
    assert (rect.left(), rect.top()) == pytest.approx(((3 + 0.5) * PHANTOM_SPACING[2], (2 + 0.5) * PHANTOM_SPACING[1]))
    session.set_slice(PHANTOM_Z + 2)
    assert len(overlay.points.data) == 1 and overlay.boxes == []
    session.undo()
    session.undo()
    assert len(overlay.points.data) == 0


def test_points_outside_the_image_and_tiny_boxes_are_ignored(window, qtbot):
    axial, session = window.views.axial, window.session
    window.tools.set_tool(Tool.POSITIVE)
    outside = axial.voxel_to_widget((PHANTOM_Z, -4, 10)).toPoint()  # the view is taller than the image
    assert axial.rect().contains(outside)
    qtbot.mouseClick(axial.viewport(), Qt.MouseButton.LeftButton, pos=outside)
    assert session.prompts == ()
    window.tools.set_tool(Tool.BOX)
    a = axial.voxel_to_widget((PHANTOM_Z, 10, 10)).toPoint()
    _drag(qtbot, axial, a, a + QPoint(3, 0))
    assert session.prompts == ()
