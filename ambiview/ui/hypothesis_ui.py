"""Puts running the models and the hypothesis overlays into the main window: one call, `HypothesisUi(window)`.

It makes the shared `HypothesisDisplay`, the `RunController` (with the one inference thread), the heatmap, contour
and consensus overlays of the three views, the Model and Hypotheses docks, and a Hypotheses menu (Run, Cancel,
previous/next hypothesis, the two docks).  The window calls `shutdown()` when it closes.
"""
from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu

from .bridge import follow
from .consensus_overlay import ConsensusOverlay
from .heatmap_overlay import HeatmapOverlay
from .hypothesis_display import HypothesisDisplay
from .hypothesis_overlay import HypothesisOverlay
from .hypothesis_panel import HypothesisPanel
from .model_panel import ModelPanel
from .plane import AXIAL
from .run_controller import RunController

_STATUS_MS = 8000
_PANEL_WIDTH = 330  # initial width of the right-hand docks (pixels)


class HypothesisUi:
    def __init__(self, window) -> None:
        self.window = window
        session = window.session
        self.display = HypothesisDisplay(session, window)
        self.controller = RunController(session, self.display, parent=window)
        self.overlays: dict[int, tuple] = {}
        for axis, view in window.views.views.items():
            layers = (HeatmapOverlay(self.display, legend=axis == AXIAL), HypothesisOverlay(self.display),
                      ConsensusOverlay(self.display))
            for layer in layers:
                view.add_overlay(layer)
            self.overlays[axis] = layers
        self.model_panel = ModelPanel(self.controller)
        self.hypothesis_panel = HypothesisPanel(self.display)
        right = Qt.DockWidgetArea.RightDockWidgetArea
        self.model_dock = window.add_dock("Model", self.model_panel, right)
        self.hypothesis_dock = window.add_dock("Hypotheses", self.hypothesis_panel, right)
        window.tabifyDockWidget(window.info_dock, self.model_dock)  # series facts behind a tab: room for the panels
        window.resizeDocks([self.hypothesis_dock], [_PANEL_WIDTH], Qt.Orientation.Horizontal)
        self._build_menu()
        self.controller.error.connect(lambda text: window.statusBar().showMessage(text, _STATUS_MS))
        follow(window, session, "volume_changed", self._on_volume_changed)
        self._on_volume_changed(session.volume)

    def _build_menu(self) -> None:
        window = self.window
        self.run_action = QAction("&Run Model", window)
        self.run_action.setShortcut(QKeySequence("Ctrl+R"))
        self.run_action.triggered.connect(lambda checked=False: self.controller.run())
        self.cancel_action = QAction("&Cancel Model Run", window)
        self.cancel_action.setShortcut(QKeySequence("Ctrl+."))
        self.cancel_action.triggered.connect(lambda checked=False: self.controller.cancel())
        self.cancel_action.setEnabled(False)
        self.controller.busy_changed.connect(self.cancel_action.setEnabled)
        step_actions = self.hypothesis_panel.actions_for_window()
        window.addActions([self.run_action, self.cancel_action, *step_actions])  # shortcuts work from any widget
        bar = window.menuBar()
        self.menu = QMenu("&Hypotheses", window)
        existing = bar.actions()
        if existing:
            bar.insertMenu(existing[-1], self.menu)  # before Help, which stays last
        else:
            bar.addMenu(self.menu)
        self.menu.addActions([self.run_action, self.cancel_action])
        self.menu.addSeparator()
        self.menu.addActions(step_actions)
        self.menu.addSeparator()
        self.menu.addActions([self.model_dock.toggleViewAction(), self.hypothesis_dock.toggleViewAction()])

    def _on_volume_changed(self, volume) -> None:
        self.run_action.setEnabled(volume is not None)
        for dock in (self.model_dock, self.hypothesis_dock):
            dock.setVisible(volume is not None)
        if volume is not None:
            self.model_dock.raise_()  # the Model tab in front of the series information

    # --- for the window and the screenshot path ---------------------------------------------------------------------
    def focus_on_result(self, margin: float = 1.4) -> bool:
        """Move the crosshair to the centre of the result's ROI (so the coronal and sagittal views cut it) and zoom
        every view onto it (a square `margin` times the ROI's side); False without a result."""
        views = self.display.views
        if views is None or self.window.views.axial.plane is None:
            return False
        roi = views.roi
        centre = (roi.z0 + (views.depth - 1) / 2, roi.top + roi.extent / 2, roi.left + roi.extent / 2)
        self.window.session.set_cursor(*(round(c) for c in centre))
        for view in self.window.views.views.values():
            cx, cy = view.plane.voxel_to_scene(centre)
            x0, _ = view.plane.voxel_to_scene((0, roi.top, roi.left))
            x1, _ = view.plane.voxel_to_scene((0, roi.top + roi.extent, roi.left + roi.extent))
            side = abs(x1 - x0) * margin
            view.view_box.setRange(QRectF(cx - side / 2, cy - side / 2, side, side), padding=0.0)
        return True

    def shutdown(self) -> None:
        self.hypothesis_panel.set_playing(False)
        self.controller.shutdown()
