"""Consensus, confidence band and STAPLE outlines on a slice view.

- consensus at the agreement level: a white line;
- the confidence band: the strict level (default >= 90 % of hypotheses) as a solid orange line inside, the lenient
  one (default >= 10 %) dashed outside; the ring between them is where the model is unsure;
- STAPLE's estimate of the true mask: a magenta dash-dot line.
An overlay layer in the sense of `SliceView.add_overlay`; the outlines come from `ResultViews` (counts precomputed).
"""
from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QColor

from .curves import outline_curve
from .hypothesis_display import HypothesisDisplay
from .scene_paths import polylines_to_scene

CONSENSUS_COLOR = QColor(255, 255, 255)
BAND_COLOR = QColor(255, 150, 20)
STAPLE_COLOR = QColor(255, 70, 255)
Z_LINES = 25


def _curve(pen) -> pg.PlotCurveItem:
    return outline_curve(Z_LINES, pen)


class ConsensusOverlay(QObject):
    """Draws the consensus, band and STAPLE outlines of the shown slice of one view."""

    def __init__(self, display: HypothesisDisplay) -> None:
        super().__init__(display)  # owned by the display (Qt), never collected by Python on another thread
        self.display = display
        self.view = None
        self.index = -1
        self.consensus = _curve(pg.mkPen(CONSENSUS_COLOR, width=2.0))
        self.inner = _curve(pg.mkPen(BAND_COLOR, width=1.8))
        self.outer = _curve(pg.mkPen(BAND_COLOR, width=1.8, style=Qt.PenStyle.DashLine))
        self.staple = _curve(pg.mkPen(STAPLE_COLOR, width=2.0, style=Qt.PenStyle.DashDotLine))
        self.items = {"consensus": self.consensus, "inner": self.inner, "outer": self.outer, "staple": self.staple}
        self._drawn: tuple | None = None  # what the lines show now, to skip redraws other options cause
        self._drawn_for: tuple | None = None
        display.views_changed.connect(self._on_change)
        display.options_changed.connect(self._on_change)

    # --- OverlayLayer -----------------------------------------------------------------------------------------------
    def attach(self, view) -> None:
        self.view = view
        for item in self.items.values():
            view.view_box.addItem(item, ignoreBounds=True)
        self.redraw()

    def set_slice(self, index: int) -> None:
        self.index = index
        self.redraw()

    def detach(self) -> None:
        if self.view is not None:
            for item in self.items.values():
                self.view.view_box.removeItem(item)
            self.view = None

    # --- drawing ----------------------------------------------------------------------------------------------------
    def _on_change(self, *_) -> None:
        self.redraw()

    def _wanted(self) -> tuple:
        """What the lines depend on; result and plane by identity (a plane's geometry holds arrays)."""
        views, o = self.display.views, self.display.options
        levels = (views.required(o.level) if o.consensus else 0,
                  (views.required(o.band_inner), views.required(o.band_outer)) if o.band else None) if views else None
        return id(views), id(self.view.plane), self.index, levels, o.staple

    def redraw(self) -> None:
        if self.view is None:
            return
        wanted = self._wanted()
        if wanted == self._drawn:
            return
        # the objects behind the ids are kept, so that a new result or plane can never reuse an old id
        self._drawn, self._drawn_for = wanted, (self.display.views, self.view.plane)
        views, options = self.display.views, self.display.options
        ready = views is not None and self.view.plane is not None and self.index >= 0
        lines = {name: [] for name in self.items}
        if ready:
            axis, index = self.view.axis, self.index
            if options.consensus:
                lines["consensus"] = views.consensus_contours(options.level, axis, index)
            if options.band:
                lines["inner"], lines["outer"] = views.band_contours(options.band_inner, options.band_outer, axis,
                                                                     index)
            if options.staple:
                lines["staple"] = views.staple_contours(axis, index)
        for name, item in self.items.items():
            xy = polylines_to_scene(self.view.plane, lines[name]) if lines[name] else ([], [])
            item.setData(*xy)
            item.setVisible(bool(lines[name]))

    def visible_names(self) -> list[str]:
        """Names of the outlines drawn now ('consensus', 'inner', 'outer', 'staple'); for tests."""
        return [name for name, item in self.items.items() if item.isVisible()]
