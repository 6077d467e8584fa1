"""Puts the 3D view into the main window: one call, `VolumeUi(window)`, after `HypothesisUi`.

A "3D view" dock, tabbed with the Model and Series information docks on the right, appears (in front) when the
result shown is 3D, and goes away again for a 2D result or none.  The VTK widget itself (`VolumeView`) is made only
once a 3D model is chosen with a series open (`RunController.warming_up`, while the user places the first prompt:
loading VTK and making the widget take most of a second), or when a 3D model runs; the dock stays hidden until a 3D
result arrives.  A session that only uses 2D models never starts VTK.  A 2D result is one slice: a
surface of it would be a flat disc that tells nothing the axial view does not, so the 3D view leaves it alone.
View > 3D View toggles the dock; File > Save 3D Screenshot… saves the picture.  The window calls `shutdown()` when
it closes (and the application before it quits), which finalizes the VTK render window.
"""
from __future__ import annotations

import importlib
import sys

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QGuiApplication
from PySide6.QtWidgets import QApplication, QLabel, QWidget
from shiboken6 import isValid

_STATUS_MS = 8000
WARM_UP_DELAY_MS = 250  # after a series opens (or a 3D model is chosen): its slices paint first, then VTK loads
WARM_UP_STEP_MS = 30    # between its steps, so that the events that came in meanwhile are handled
WARM_UP_STEPS = ("vtkmodules.vtkRenderingCore", "vtkmodules.qt.QVTKRenderWindowInteractor",  # modules, in order
                 "ambiview.ui.volume_scene", "ambiview.ui.volume_view")
NO_RESULT_TEXT = "The 3D view shows 3D results: run a 3D model (UP-SAM) on a prompt."


def display_problem() -> str:
    """Why VTK cannot draw in this session ('' when it can): it renders through the window system's OpenGL, which
    Qt's offscreen and minimal platforms (screenshots without a display) do not have; VTK aborts the process there."""
    platform = QGuiApplication.platformName()
    if platform in ("offscreen", "minimal"):
        return f"The 3D view needs a display with OpenGL (Qt platform '{platform}' has none)."
    return ""


class VolumeUi:
    def __init__(self, window) -> None:
        self.window = window
        self.display = window.hypotheses.display
        self.view = None  # VolumeView, made when a 3D model is chosen with a series open, or first runs
        self.closed = False
        placeholder = QLabel(NO_RESULT_TEXT)
        placeholder.setWordWrap(True)
        placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.dock = window.add_dock("3D view", placeholder, Qt.DockWidgetArea.RightDockWidgetArea)
        window.tabifyDockWidget(window.hypotheses.model_dock, self.dock)
        self.dock.hide()
        self._shown_roi = None  # the ROI last brought to the front, so a growing streamed result does not re-raise
        self.screenshot_action = QAction("Save 3D Screenshot…", window)
        self.screenshot_action.setEnabled(False)
        self.screenshot_action.triggered.connect(lambda checked=False: self.save_screenshot())
        self._add_to_menus()
        self.display.views_changed.connect(self._on_views)
        controller = window.hypotheses.controller
        controller.busy_changed.connect(self._on_busy)
        self._warm_timer = QTimer(window)
        self._warm_timer.setSingleShot(True)
        self._warm_timer.setInterval(WARM_UP_DELAY_MS)
        self._warm_timer.timeout.connect(self._warm_view)
        controller.warming_up.connect(self._on_warming_up)
        if controller.settings.dims == 3 and window.session.volume is not None:  # (warmed before this was made)
            self._on_warming_up(controller.settings)
        self._app = QApplication.instance()
        if self._app is not None:  # quitting without closing the window first still finalizes VTK
            self._app.aboutToQuit.connect(self.shutdown)

    def _add_to_menus(self) -> None:
        window = self.window
        menus = {a.text(): a.menu() for a in window.menuBar().actions() if a.menu() is not None}
        toggle = self.dock.toggleViewAction()
        toggle.setText("3D View")
        if "&File" in menus:
            menus["&File"].insertAction(window.close_action, self.screenshot_action)
        if "&View" in menus:
            menus["&View"].addAction(toggle)

    @staticmethod
    def _is_3d(views) -> bool:
        return views is not None and views.depth > 1

    def _on_views(self, views) -> None:
        if not self._is_3d(views):
            self.dock.hide()
            self._shown_roi = None
            self.screenshot_action.setEnabled(False)
            return
        if self.view is None:
            self._make_view()
        self.screenshot_action.setEnabled(self.view is not None)
        if views.roi != self._shown_roi:  # a new lesion: bring the 3D view to the front
            self._shown_roi = views.roi
            self.dock.show()
            self.dock.raise_()

    def _on_busy(self, busy: bool) -> None:
        """A 3D model started: make the VTK widget now, while the model draws, rather than when its first hypothesis
        arrives (loading VTK and making the OpenGL context take most of a second)."""
        engine = self.window.hypotheses.model_panel.current_engine()
        if busy and self.view is None and engine is not None and engine.dims == 3:
            QTimer.singleShot(0, self._make_view)

    def _on_warming_up(self, settings) -> None:
        """A 3D model was chosen with a series open: make the VTK widget (hidden) before its first result."""
        if self.view is None and not self.closed and settings.dims == 3:
            self._warm_timer.start(WARM_UP_DELAY_MS)

    def _warm_view(self) -> None:
        """One step of making the VTK widget ahead (`WARM_UP_STEPS`, then the widget), one per turn of the event
        loop: several short pauses of the GUI while the user places the prompt rather than one long one."""
        settings = self.window.hypotheses.controller.settings
        if self.view is not None or self.closed or settings.dims != 3 or self.window.session.volume is None:
            return  # (a 2D model was chosen, or the series closed, since)
        if not display_problem():
            for module in WARM_UP_STEPS:
                if module not in sys.modules:
                    importlib.import_module(module)
                    self._warm_timer.start(WARM_UP_STEP_MS)
                    return
            from . import gl_preload

            if not gl_preload.is_done():  # (the widget does it first thing; a step of its own here)
                gl_preload.preload_triton()
                self._warm_timer.start(WARM_UP_STEP_MS)
                return
        self._make_view()

    def _make_view(self) -> None:
        if self.view is not None or self.closed or not isValid(self.dock):  # (a timer may fire after closing)
            return
        problem = display_problem()
        if problem:
            self.dock.widget().setText(problem)
            return
        from .volume_view import VolumeView  # VTK loads here, when it is first needed

        self.view = VolumeView(self.window.session, self.display)
        self.view.message.connect(lambda text: self.window.statusBar().showMessage(text, _STATUS_MS))
        old = self.dock.widget()
        self.dock.setWidget(self.view)
        if isinstance(old, QWidget):
            old.deleteLater()

    def save_screenshot(self):
        """File > Save 3D Screenshot…: the 3D view in front (it draws only while shown), then the file dialog."""
        if self.view is None:
            return None
        self.dock.show()
        self.dock.raise_()
        QApplication.processEvents()
        return self.view.choose_screenshot_file()

    def shutdown(self) -> None:
        self.closed = True
        if isValid(self._warm_timer):
            self._warm_timer.stop()
        if self._app is not None:
            self._app.aboutToQuit.disconnect(self.shutdown)
            self._app = None
        if self.view is not None and isValid(self.view):
            self.view.shutdown()
