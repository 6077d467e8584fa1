"""Outline items shared by the overlays: antialiased pyqtgraph curves, optionally with their rasterisation cached.

Qt's software rasteriser strokes every antialiased path again on each repaint (about 0.3 ms per outline here);
outlines that stay put while the user steps through hypotheses (the other hypotheses, consensus lines, kept and
expert masks) keep their rendered pixels instead (DeviceCoordinateCache: redone when their data, pen or the zoom
changes).  `benchmarks/bench_views.py` measures the repaint.
"""
from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtWidgets import QGraphicsItem


def outline_curve(z: float, pen=None, cached: bool = True) -> pg.PlotCurveItem:
    item = pg.PlotCurveItem(connect="finite", antialias=True, pen=pen)
    item.setZValue(z)
    if cached:
        item.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
    return item
