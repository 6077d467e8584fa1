"""The 3D view: the `VolumeScene` of the shown result in a Qt widget, linked with the 2D views.

It follows the shared `HypothesisDisplay` (the result shown, provisional or final, and the hypothesis the slider
shows) and the session (cursor, window/level, series).  A click on a surface -- a press and release without a drag
in between; a drag turns the camera -- moves the session cursor there, so the 2D views go to that point.

Surfaces are extracted in background threads (`VolumeScene.prefetch`), from the moment a model's batch of
hypotheses arrives (`HypothesisDisplay.hypotheses_arriving`), while the GUI thread lays out the 2D views; a timer
(every `POLL_MS`) puts those that are done into the scene -- and, when the GUI thread is free, extracts some of
those not started yet itself (`EXTRACT_BUDGET_S` per turn of the event loop) -- so hypotheses streaming in appear
one after the other and the window stays responsive; the picture is redrawn at most every `RENDER_EVERY_S` while
that goes on.  Nothing is extracted or rendered while the view is hidden.

`shutdown()` (the window calls it when it closes) stops the timers and finalizes the VTK render window; PySide6 can
abort at exit when a VTK widget is left unfinalized, and a finalized one must never paint again.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)
from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor
from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera

from ..export.atomic import atomic_write, safe_filename, source_folders
from ..export.items import ExportError
from ..paths import data_dir
from ..session import Session
from .bridge import follow
from .gl_preload import preload_triton
from .hypothesis_display import HypothesisDisplay
from .volume_scene import VIEWS, VolumeScene
from .volume_ui import NO_RESULT_TEXT

POLL_MS = 5               # how often surfaces made in the background are looked for while some are pending
EXTRACT_BUDGET_S = 0.04   # surface extraction taken back from the background threads per turn of the event loop
RENDER_EVERY_S = 0.4      # redraws while surfaces are still coming (a frame costs 40-130 ms here)
CLICK_SLOP = 4            # pixels a press may move and still count as a click (not a turn of the camera)
PLANE_CHOICES = (("axial", "CT: axial plane"), ("three", "CT: three planes"), ("off", "CT: off"))


class _VtkWidget(QVTKRenderWindowInteractor):
    """The VTK widget, silent once finalized (a paint then would render into a destroyed window), telling clicks from
    drags.  (Observers on the interactor miss the release: the camera style grabs the events on the press.)"""

    clicked = Signal(int, int)  # VTK display position (pixels, origin at the bottom left) of a left click
    camera_moved = Signal()     # a press or a wheel turn: the user takes the camera over
    finalized = False
    _press: tuple[int, int] | None = None

    def mousePressEvent(self, ev) -> None:
        self.camera_moved.emit()
        super().mousePressEvent(ev)
        self._press = self._Iren.GetEventPosition() if ev.button() == Qt.MouseButton.LeftButton else None

    def mouseReleaseEvent(self, ev) -> None:
        super().mouseReleaseEvent(ev)
        press, self._press = self._press, None
        x, y = self._Iren.GetEventPosition()
        if (press is not None and ev.button() == Qt.MouseButton.LeftButton
                and abs(x - press[0]) <= CLICK_SLOP and abs(y - press[1]) <= CLICK_SLOP):
            self.clicked.emit(x, y)

    def wheelEvent(self, ev) -> None:
        self.camera_moved.emit()
        super().wheelEvent(ev)

    def paintEvent(self, ev) -> None:
        if not self.finalized:
            super().paintEvent(ev)

    def resizeEvent(self, ev) -> None:
        if not self.finalized:
            super().resizeEvent(ev)

    def finalize(self) -> None:
        if not self.finalized:
            self.finalized = True
            self.Finalize()


class VolumeView(QWidget):
    message = Signal(str)  # a line for the status bar (screenshot written or refused)

    def __init__(self, session: Session, display: HypothesisDisplay, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session, self.display = session, display
        self.closed = False
        preload_triton()  # before the widget makes its OpenGL context (see gl_preload.py)
        self.vtk_widget = _VtkWidget(self)
        self.scene = VolumeScene(self.vtk_widget.GetRenderWindow())
        self.interactor = self.vtk_widget.GetRenderWindow().GetInteractor()
        self.interactor.SetInteractorStyle(vtkInteractorStyleTrackballCamera())
        self.interactor.RemoveObservers("CharEvent")  # no VTK key commands: 'w' turned every surface to wireframe
        self.vtk_widget.clicked.connect(self.click_at)
        self.vtk_widget.camera_moved.connect(lambda: setattr(self.scene, "camera_touched", True))
        self.vtk_widget.Initialize()
        self._dirty = True
        self._last_render = 0.0
        self._render_timer = QTimer(self)
        self._render_timer.setSingleShot(True)
        self._render_timer.timeout.connect(self.render_now)
        self._work_timer = QTimer(self)
        self._work_timer.setInterval(POLL_MS)
        self._work_timer.timeout.connect(self._work)
        self._build_controls()
        self.placeholder = QLabel(NO_RESULT_TEXT)
        self.placeholder.setWordWrap(True)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.placeholder)
        self.stack.addWidget(self.vtk_widget)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(self.controls)
        layout.addWidget(self.stack, 1)
        self.vtk_widget.setToolTip("Drag to turn, wheel to zoom, click a surface to move the 2D views there")

        display.views_changed.connect(self._on_views)
        display.hypotheses_arriving.connect(self._on_arriving)
        display.hypothesis_changed.connect(self._on_hypothesis)
        follow(self, session, "cursor_changed", self._on_cursor)
        follow(self, session, "window_changed", self._on_window)
        self.scene.set_window(*session.window)
        self._on_views(display.views)

    def _build_controls(self) -> None:
        self.others_box = QCheckBox("Others faint")
        self.others_box.setToolTip("Show the other hypotheses as faint surfaces around the current one")
        self.others_box.toggled.connect(lambda on: self._option(self.scene.set_others, "faint" if on else "hidden"))
        self.shell_box = QCheckBox("Shell")
        self.shell_box.setChecked(self.scene.shell_on)
        self.shell_box.setToolTip("Disagreement shell: where some but not all hypotheses cover (translucent)")
        self.shell_box.toggled.connect(lambda on: self._option(self.scene.set_shell, on))
        self.planes_box = QComboBox()
        for key, text in PLANE_CHOICES:
            self.planes_box.addItem(text, key)
        self.planes_box.setToolTip("CT planes through the crosshair of the 2D views")
        self.planes_box.currentIndexChanged.connect(
            lambda _: self._option(self.scene.set_planes, self.planes_box.currentData()))
        self.view_box = QComboBox()
        for key in VIEWS:
            self.view_box.addItem(f"From {key}", key)
        self.view_box.setToolTip("Look at the lesion from this side of the patient (resets the camera)")
        self.view_box.activated.connect(lambda _: self._option(self.scene.set_view, self.view_box.currentData()))
        self.screenshot_button = QPushButton("Save 3D screenshot…")
        self.screenshot_button.clicked.connect(self.choose_screenshot_file)
        first, second = QHBoxLayout(), QHBoxLayout()
        for widget in (self.others_box, self.shell_box, self.planes_box):
            first.addWidget(widget)
        first.addStretch(1)
        second.addWidget(self.view_box)
        second.addStretch(1)
        second.addWidget(self.screenshot_button)
        self.controls = QVBoxLayout()
        self.controls.setSpacing(2)
        self.controls.addLayout(first)
        self.controls.addLayout(second)

    # --- display and session -> scene -------------------------------------------------------------------------------
    @property
    def has_result(self) -> bool:
        return self.scene.n > 0

    def _on_views(self, views) -> None:
        if self.closed:
            return
        volume = self.session.volume
        if views is None or views.depth < 2 or volume is None:
            self.scene.clear()
            self._work_timer.stop()
            self.stack.setCurrentWidget(self.placeholder)
            self._enable(False)
            return
        result = views.result
        ct = views.roi.crop(volume.voxels)
        self.scene.show(views.probs, result.roi_geometry, count=views.count, ct=ct,
                        title=result.model_title or result.model)
        self.scene.set_current(self.display.hypothesis)
        self._on_cursor(self.session.cursor, render=False)
        self.stack.setCurrentWidget(self.vtk_widget)
        self._enable(True)
        self._schedule_work()

    def _on_arriving(self, probs, geometry) -> None:
        """A model's new hypotheses (n, D, H, W), not shown yet: their surfaces are started at once."""
        if not self.closed and self.isVisible() and np.ndim(probs) == 4 and probs.shape[1] > 1:
            self.scene.prefetch(probs, geometry)

    def _enable(self, on: bool) -> None:
        for widget in (self.others_box, self.shell_box, self.planes_box, self.view_box, self.screenshot_button):
            widget.setEnabled(on)

    def _on_hypothesis(self, index: int) -> None:
        if not self.closed and self.has_result:
            self.scene.set_current(index)
            self.request_render()

    def _on_cursor(self, cursor, render: bool = True) -> None:
        volume = self.session.volume
        if self.closed or volume is None or not self.has_result:
            return
        self.scene.set_cursor(volume.geometry.voxel_to_patient(np.asarray(cursor, float)))
        if render:
            self.request_render()

    def _on_window(self, center: float, width: float) -> None:
        if not self.closed:
            self.scene.set_window(center, width)
            if self.has_result:
                self.request_render()

    def _option(self, setter, value) -> None:
        setter(value)
        if self.scene.pending:
            self._schedule_work()
        self.request_render()

    # --- extraction and rendering -----------------------------------------------------------------------------------
    def _schedule_work(self) -> None:
        if self.scene.pending and self.isVisible():
            self.scene.prefetch_pending()
            self._work_timer.start()
            self._work()  # what is made already (surfaces of a streamed result shown before) goes in at once
        else:
            self.request_render()

    def _work(self) -> None:
        if self.closed or not self.isVisible():
            self._work_timer.stop()
            return
        left, made = self.scene.collect(budget_s=EXTRACT_BUDGET_S)
        if not left:
            self._work_timer.stop()
            self.render_now()
        elif made and time.perf_counter() - self._last_render >= RENDER_EVERY_S:
            self.render_now()

    def request_render(self) -> None:
        """Redraw on the next turn of the event loop (several changes at once make one redraw)."""
        self._dirty = True
        if not self.closed and self.isVisible():
            self._render_timer.start(0)

    def render_now(self) -> None:
        if self.closed or not self.isVisible():
            self._dirty = True
            return
        self.scene.render()
        self._dirty = False
        self._last_render = time.perf_counter()

    def finish(self) -> None:
        """Extract everything pending and draw it now (screenshots, tests)."""
        if not self.closed:
            self.scene.finish()
            self._work_timer.stop()
            self.render_now()

    def showEvent(self, ev) -> None:
        super().showEvent(ev)
        if self.scene.pending:
            self._schedule_work()
        elif self._dirty:
            self.request_render()

    # --- picking ----------------------------------------------------------------------------------------------------
    def click_at(self, x: float, y: float) -> bool:
        """Move the 2D views to the surface point under display position (x, y) (VTK pixels, origin bottom left);
        False where no surface is."""
        volume = self.session.volume
        if self.closed or volume is None:
            return False
        lps = self.scene.pick(x, y)
        if lps is None:
            return False
        zyx = volume.geometry.patient_to_voxel(lps)
        self.session.set_cursor(*(round(float(v)) for v in zyx))
        return True

    # --- pictures ---------------------------------------------------------------------------------------------------
    def render_image(self) -> QImage | None:
        """The 3D picture as a QImage (the window screenshot paints it over this widget, which Qt cannot grab)."""
        if self.closed or not self.has_result or not self.vtk_widget.isVisible():
            return None
        if self.scene.pending:
            self.finish()
        pixels = self.scene.image()
        h, w, _ = pixels.shape
        return QImage(pixels.tobytes(), w, h, 3 * w, QImage.Format.Format_RGB888).copy()

    def image_widget(self) -> QWidget:
        """The widget `render_image` covers."""
        return self.vtk_widget

    def default_screenshot_path(self) -> Path:
        """screenshots/<series>-3d.png in the user data folder (never beside the source series)."""
        volume = self.session.volume
        stem = safe_filename(volume.identity.description or "series", "series") if volume is not None else "series"
        return data_dir() / "screenshots" / f"{stem}-3d.png"

    def choose_screenshot_file(self) -> Path | None:
        default = self.default_screenshot_path()
        default.parent.mkdir(parents=True, exist_ok=True)  # the dialog opens where it exists
        name, _ = QFileDialog.getSaveFileName(self, "Save 3D screenshot", str(default), "PNG images (*.png)")
        return self.save_screenshot(name) if name else None

    def save_screenshot(self, path) -> Path | None:
        """Write the 3D picture as PNG at `path` atomically, never into the source DICOM folder; the outcome goes
        to `message`.  Returns the path written, None when refused or failed."""
        if not self.has_result:
            self.message.emit("There is no 3D result to save.")
            return None
        path = Path(path).expanduser()
        if path.suffix.lower() != ".png":
            path = path.with_name(path.name + ".png")
        self.finish()
        try:
            written = atomic_write(path, self.scene.write_png, source_folders(self.session.volume))
        except (ExportError, OSError) as exc:
            self.message.emit(f"3D screenshot not saved: {exc}")
            return None
        self.message.emit(f"Saved the 3D view to {written}")
        return written

    # --- closing ----------------------------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop drawing for good and release the render window (before the application quits)."""
        if self.closed:
            return
        self.closed = True
        self._work_timer.stop()
        self._render_timer.stop()
        self.vtk_widget.finalize()

    def closeEvent(self, ev) -> None:
        self.shutdown()
        super().closeEvent(ev)

