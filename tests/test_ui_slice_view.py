"""Slice views against the session: what is shown, in which orientation and aspect, and what the mouse/keys do."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication
from ui_support import PHANTOM_SHAPE, PHANTOM_SPACING, PHANTOM_Z, no_leaked_windows, phantom_volume  # noqa: F401

from ambiview.imaging.windowing import PRESETS, levels
from ambiview.session import Session
from ambiview.ui.ortho_views import OrthoViews
from ambiview.ui.tools import Tool, ToolState

pytestmark = pytest.mark.usefixtures("no_leaked_windows")


@pytest.fixture
def views(qtbot):
    session = Session()
    widget = OrthoViews(session, ToolState())
    qtbot.addWidget(widget)
    widget.resize(900, 600)
    widget.show()
    qtbot.waitExposed(widget)
    session.set_volume(phantom_volume())
    session.set_slice(PHANTOM_Z)
    QApplication.processEvents()
    return session, widget


def _point(view, zyx) -> QPoint:
    return view.voxel_to_widget(zyx).toPoint()


def _wheel(view, pos: QPoint, degrees_eighths: int, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    global_pos = QPointF(view.viewport().mapToGlobal(pos))
    event = QWheelEvent(QPointF(pos), global_pos, QPoint(0, 0), QPoint(0, degrees_eighths), Qt.MouseButton.NoButton,
                        modifiers, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(view.viewport(), event)


def _rendered(view):
    """The view as drawn on screen, as an (h, w) grey array."""
    image = view.grab().toImage().convertToFormat(view.grab().toImage().Format.Format_Grayscale8)
    bits = np.frombuffer(image.constBits(), dtype=np.uint8, count=image.sizeInBytes())
    return bits.reshape(image.height(), image.bytesPerLine())[:, : image.width()]


def test_each_view_shows_its_slice_of_the_volume(views):
    session, w = views
    vox = session.volume.voxels
    z, y, x = session.cursor
    assert z == PHANTOM_Z
    assert np.array_equal(w.axial.image_item.image, vox[z])
    assert np.array_equal(w.coronal.image_item.image, vox[:, y, :])
    assert np.array_equal(w.sagittal.image_item.image, vox[:, :, x])
    assert w.axial.image_item.image.shape == PHANTOM_SHAPE[1:]


def test_axial_orientation_row0_top_col0_left_and_the_L_is_drawn_there(views):
    session, w = views
    a = w.axial
    top_left, bottom_right = a.voxel_to_widget((PHANTOM_Z, 0, 0)), a.voxel_to_widget((PHANTOM_Z, 39, 49))
    assert top_left.x() < bottom_right.x() and top_left.y() < bottom_right.y()
    grey = _rendered(a)
    scale = a.devicePixelRatioF()

    def at(zyx):
        p = a.voxel_to_widget(zyx)
        return int(grey[int(p.y() * scale), int(p.x() * scale)])

    # the L: long bar at rows 2..13, columns 3..5; foot at rows 11..13, columns 3..11
    # (lung window: 400 HU is white, -1000 HU a dark grey of about 60)
    assert at((PHANTOM_Z, 5, 4)) > 200 and at((PHANTOM_Z, 12, 10)) > 200
    # mirrored or transposed places are dark (-1000 HU)
    assert at((PHANTOM_Z, 5, 45)) < 100 and at((PHANTOM_Z, 34, 4)) < 100 and at((PHANTOM_Z, 4, 12)) < 100


def test_aspect_follows_the_spacing_in_every_plane(views):
    session, w = views
    dz, dy, dx = PHANTOM_SPACING
    z, y, x = session.cursor

    def span(view, a, b):
        pa, pb = view.voxel_to_widget(a), view.voxel_to_widget(b)
        return np.hypot(pb.x() - pa.x(), pb.y() - pa.y())

    # 10 voxels along each in-plane axis, on screen, in proportion to the spacing
    def ratio(view, origin, along_h, along_v):
        return span(view, origin, along_h) / span(view, origin, along_v)

    assert ratio(w.axial, (z, 0, 0), (z, 0, 10), (z, 10, 0)) == pytest.approx(dx / dy, rel=1e-3)
    assert ratio(w.coronal, (0, y, 0), (0, y, 10), (10, y, 0)) == pytest.approx(dx / dz, rel=1e-3)
    assert ratio(w.sagittal, (0, 0, x), (0, 10, x), (10, 0, x)) == pytest.approx(dy / dz, rel=1e-3)


def test_coronal_and_sagittal_have_superior_at_the_top(views):
    _, w = views
    for view, lo, hi in ((w.coronal, (0, 5, 5), (11, 5, 5)), (w.sagittal, (0, 5, 5), (11, 5, 5))):
        assert view.voxel_to_widget(hi).y() < view.voxel_to_widget(lo).y()  # z grows toward S in this phantom
        letters = view.plane.edge_letters()
        assert (letters["top"], letters["bottom"]) == ("S", "I")
    assert w.axial.plane.edge_letters() == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    assert (w.sagittal.plane.edge_letters()["left"], w.sagittal.plane.edge_letters()["right"]) == ("A", "P")


def test_wheel_scrolls_slices_and_ctrl_wheel_zooms(views):
    session, w = views
    centre = w.axial.rect().center()
    _wheel(w.axial, centre, 120)
    assert session.cursor[0] == PHANTOM_Z + 1
    assert np.array_equal(w.axial.image_item.image, session.volume.voxels[PHANTOM_Z + 1])
    _wheel(w.axial, centre, -240)
    assert session.cursor[0] == PHANTOM_Z - 1
    _wheel(w.coronal, w.coronal.rect().center(), 120)  # the coronal view scrolls along y
    assert session.cursor[1] == PHANTOM_SHAPE[1] // 2 + 1
    before = w.axial.view_box.viewRect().width()
    _wheel(w.axial, centre, 240, Qt.KeyboardModifier.ControlModifier)
    assert w.axial.view_box.viewRect().width() < before * 0.99
    assert session.cursor[0] == PHANTOM_Z - 1


def test_keys_scroll_slices(views, qtbot):
    session, w = views
    a = w.axial
    a.setFocus()
    qtbot.keyClick(a, Qt.Key.Key_Up)
    assert session.cursor[0] == PHANTOM_Z + 1
    qtbot.keyClick(a, Qt.Key.Key_Down)
    qtbot.keyClick(a, Qt.Key.Key_Down)
    assert session.cursor[0] == PHANTOM_Z - 1
    qtbot.keyClick(a, Qt.Key.Key_End)
    assert session.cursor[0] == PHANTOM_SHAPE[0] - 1
    assert np.array_equal(a.image_item.image, session.volume.voxels[-1])
    qtbot.keyClick(a, Qt.Key.Key_PageDown)
    assert session.cursor[0] == PHANTOM_SHAPE[0] - 11
    qtbot.keyClick(a, Qt.Key.Key_Home)
    assert session.cursor[0] == 0
    qtbot.keyClick(a, Qt.Key.Key_Down)  # clamped at the first slice
    assert session.cursor[0] == 0


def test_preset_sets_levels_in_every_view(views):
    session, w = views
    session.apply_preset("Mediastinum")
    expected = levels(*PRESETS["Mediastinum"])
    for view in w.views.values():
        assert tuple(view.image_item.levels) == pytest.approx(expected)
    assert "W 400  L 40" in w.axial.labels.window.text()


def test_click_in_one_view_moves_the_cursor_and_the_others_follow(views, qtbot):
    session, w = views
    qtbot.mouseClick(w.axial.viewport(), Qt.MouseButton.LeftButton, pos=_point(w.axial, (PHANTOM_Z, 7, 31)))
    assert session.cursor == (PHANTOM_Z, 7, 31)
    assert np.array_equal(w.coronal.image_item.image, session.volume.voxels[:, 7, :])
    assert np.array_equal(w.sagittal.image_item.image, session.volume.voxels[:, :, 31])
    assert w.coronal.v_line.value() == pytest.approx((31 + 0.5) * PHANTOM_SPACING[2])
    # and back: a click in the sagittal view moves z and y, keeps x
    qtbot.mouseClick(w.sagittal.viewport(), Qt.MouseButton.LeftButton, pos=_point(w.sagittal, (9, 20, 31)))
    assert session.cursor == (9, 20, 31)
    assert np.array_equal(w.axial.image_item.image, session.volume.voxels[9])


def test_session_changes_update_the_views(views):
    session, w = views
    session.set_cursor(8, 30, 12)
    assert np.array_equal(w.axial.image_item.image, session.volume.voxels[8])
    assert np.array_equal(w.coronal.image_item.image, session.volume.voxels[:, 30, :])
    assert w.axial.h_line.value() == pytest.approx(30.5 * PHANTOM_SPACING[1])
    assert w.axial.labels.title.text().startswith("Axial  9/12")
    session.set_volume(None)
    assert w.axial.image_item.image is None and w.axial.plane is None


def test_right_drag_changes_window_and_middle_drag_pans(views, qtbot):
    session, w = views
    vp = w.axial.viewport()
    start = w.axial.rect().center()
    centre0, width0 = session.window
    qtbot.mousePress(vp, Qt.MouseButton.RightButton, pos=start)
    qtbot.mouseMove(vp, start + QPoint(40, 0))
    qtbot.mouseMove(vp, start + QPoint(80, 30))
    qtbot.mouseRelease(vp, Qt.MouseButton.RightButton, pos=start + QPoint(80, 30))
    centre1, width1 = session.window
    assert width1 > width0 and centre1 > centre0  # right = wider, down = higher level (darker)
    assert session.cursor[0] == PHANTOM_Z
    before = w.axial.view_box.viewRect()
    qtbot.mousePress(vp, Qt.MouseButton.MiddleButton, pos=start)
    qtbot.mouseMove(vp, start + QPoint(20, 0))
    qtbot.mouseMove(vp, start + QPoint(60, 0))
    qtbot.mouseRelease(vp, Qt.MouseButton.MiddleButton, pos=start + QPoint(60, 0))
    after = w.axial.view_box.viewRect()
    assert after.left() < before.left() - 1.0 and after.width() == pytest.approx(before.width())
    assert session.cursor[0] == PHANTOM_Z


def test_pan_tool_left_drag_pans_without_moving_the_cursor(views, qtbot):
    session, w = views
    w.axial.tools.set_tool(Tool.PAN)
    vp, start = w.axial.viewport(), w.axial.rect().center()
    cursor, before = session.cursor, w.axial.view_box.viewRect()
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(vp, start + QPoint(0, 20))
    qtbot.mouseMove(vp, start + QPoint(0, 50))
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=start + QPoint(0, 50))
    after = w.axial.view_box.viewRect()
    assert after.top() < before.top() - 1.0 and after.height() == pytest.approx(before.height())
    assert session.cursor == cursor


def test_window_changes_without_a_volume_are_harmless(qtbot):
    session = Session()
    widget = OrthoViews(session, ToolState())
    qtbot.addWidget(widget)
    session.apply_preset("Bone")
    session.set_cursor(3, 4, 5)
    session.set_volume(phantom_volume())
    assert tuple(widget.axial.image_item.levels) == pytest.approx(levels(*PRESETS["Bone"]))
