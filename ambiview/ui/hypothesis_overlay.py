"""Hypothesis contours on a slice view: every hypothesis as a thin line in its own colour, the current one bold.

An overlay layer in the sense of `SliceView.add_overlay`; one per view, all following one `HypothesisDisplay`.
Contours come from `ResultViews` (skimage.measure.find_contours on the ROI grid, mapped through the ROI to volume
voxels) and reach the scene through the plane's own voxel -> scene mapping.  A 2-D result appears in the coronal
and sagittal views as a band one slice thick; a 3-D result wherever its ROI is cut.
"""
from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QColor

from .curves import outline_curve
from .hypothesis_display import DisplayOptions, HypothesisDisplay
from .palette import hypothesis_rgb
from .scene_paths import polylines_to_scene

THIN_WIDTH, CURRENT_WIDTH, HALO_WIDTH = 1.0, 2.5, 4.5   # screen pixels
THIN_ALPHA = 170
Z_THIN, Z_CURRENT = 20, 30


def hypothesis_color(i: int) -> QColor:
    """Hypothesis i's colour (palette.hypothesis_rgb, the one the 3D view uses too)."""
    return QColor(*hypothesis_rgb(i))


class HypothesisOverlay(QObject):
    """Draws the hypotheses' outlines on the shown slice of one view."""

    def __init__(self, display: HypothesisDisplay) -> None:
        super().__init__(display)  # owned by the display (Qt), never collected by Python on another thread
        self.display = display
        self.view = None
        self.index = -1
        self.thin: list[pg.PlotCurveItem] = []
        self.halo = outline_curve(Z_CURRENT - 1, cached=False)  # a dark outline under the current contour keeps it legible on any tissue
        self.halo.setPen(pg.mkPen(QColor(0, 0, 0, 200), width=HALO_WIDTH))
        self.current = outline_curve(Z_CURRENT, cached=False)
        display.views_changed.connect(self._on_views)
        display.hypothesis_changed.connect(self._on_hypothesis)
        display.options_changed.connect(self._on_options)

    # --- OverlayLayer -----------------------------------------------------------------------------------------------
    def attach(self, view) -> None:
        self.view = view
        for item in (self.halo, self.current):
            view.view_box.addItem(item, ignoreBounds=True)
        self._on_views(self.display.views)

    def set_slice(self, index: int) -> None:
        self.index = index
        self.redraw()

    def detach(self) -> None:
        if self.view is not None:
            for item in (*self.thin, self.halo, self.current):
                self.view.view_box.removeItem(item)
            self.thin = []
            self.view = None

    # --- drawing ----------------------------------------------------------------------------------------------------
    def _ready(self) -> bool:
        return self.view is not None and self.view.plane is not None and self.index >= 0

    def _on_views(self, views) -> None:
        if self.view is None:
            return
        n = views.n if views is not None else 0
        while len(self.thin) > n:
            self.view.view_box.removeItem(self.thin.pop())
        while len(self.thin) < n:
            item = outline_curve(Z_THIN)  # cached: the other hypotheses' outlines stay put while the slider moves
            color = hypothesis_color(len(self.thin))
            color.setAlpha(THIN_ALPHA)
            item.setPen(pg.mkPen(color, width=THIN_WIDTH))
            self.view.view_box.addItem(item, ignoreBounds=True)
            self.thin.append(item)
        self.redraw()

    def _on_hypothesis(self, index: int) -> None:
        self._draw_current()

    def _on_options(self, options: DisplayOptions) -> None:
        for item in self.thin:
            item.setVisible(options.contours)

    def redraw(self) -> None:
        """Every hypothesis of the shown slice, then the current one."""
        if self.view is None:
            return
        views = self.display.views
        for i, item in enumerate(self.thin):
            if views is not None and self._ready():
                item.setData(*polylines_to_scene(self.view.plane, views.hypothesis_contours(i, self.view.axis,
                                                                                             self.index)))
            else:
                item.setData([], [])
            item.setVisible(self.display.options.contours)
        self._draw_current()

    def _draw_current(self) -> None:
        if self.view is None:
            return
        views, i = self.display.views, self.display.hypothesis
        if views is None or not self._ready() or not 0 <= i < views.n:
            x = y = []
        else:
            x, y = polylines_to_scene(self.view.plane, views.hypothesis_contours(i, self.view.axis, self.index))
        self.current.setPen(pg.mkPen(hypothesis_color(i), width=CURRENT_WIDTH, cap=Qt.PenCapStyle.RoundCap))
        self.halo.setData(x, y)
        self.current.setData(x, y)

    def scene_paths(self) -> dict[str, tuple]:
        """What is drawn, as scene (x, y) arrays: 'current' and 'thin' (a list, one per hypothesis); for tests."""
        return {"current": self.current.getData(), "thin": [item.getData() for item in self.thin]}
