"""The disagreement heatmap over a slice view, and its colour bar.

The measure (a key of uncertainty.maps.MEASURES) comes precomputed from `ResultViews`, NaN where nothing is to be
drawn (coverage where all or none of the hypotheses agree; other measures where they are ~0).  Here it is only
coloured: the plasma colour map over the measure's fixed range, faint at the low end and opaque at the high end so
that low disagreement does not veil the anatomy, and transparent where NaN.  The image stays on the ROI's model grid
(no resampling) and is placed in the scene through the plane's own mapping.  The colour bar (`HeatmapLegend`) sits in
the top-right corner of the view it is given to and names the measure and its range.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QLinearGradient, QPainter
from PySide6.QtWidgets import QWidget

from ..session.views_model import measure_label, measure_range
from .hypothesis_display import DisplayOptions, HypothesisDisplay
from .scene_paths import section_transform

COLOR_MAP = "plasma"
ALPHA_LOW, ALPHA_HIGH = 0.45, 1.0  # alpha at the bottom and the top of the range (times the opacity slider)
Z_HEATMAP = 10
_LEGEND_SIZE = (180, 46)  # pixels (at least; wider for a long title)
_MARGIN = 4
_TOP = 26  # pixels: below the labels of the view's top edge
_COLORED_KEPT = 24  # coloured slices remembered per view (5 measures x a few slices)


def heat_lut(n: int = 256) -> np.ndarray:
    """(n, 4) uint8 RGBA colours from the bottom to the top of the range, alpha rising with the value."""
    lut = pg.colormap.get(COLOR_MAP).getLookupTable(nPts=n, alpha=True).astype(np.uint8)
    lut[:, 3] = np.round(255 * np.linspace(ALPHA_LOW, ALPHA_HIGH, n)).astype(np.uint8)
    return lut


_LUT = heat_lut()
_GRADIENT_STOPS = [(float(t), QColor(*(int(v) for v in _LUT[round(t * (len(_LUT) - 1))])))
                   for t in np.linspace(0.0, 1.0, 9)]  # the colour bar's gradient, sampled from the same table


def colorize(values: np.ndarray, low: float, high: float, lut: np.ndarray = _LUT) -> np.ndarray:
    """(H, W) values -> (H, W, 4) uint8 RGBA over [low, high]; NaN becomes fully transparent."""
    values = np.asarray(values, np.float32)
    hidden = np.isnan(values)
    index = (values - np.float32(low)) * np.float32((len(lut) - 1) / max(high - low, 1e-12)) + np.float32(0.5)
    index[hidden] = 0.0
    np.clip(index, 0, len(lut) - 1, out=index)
    rgba = lut[index.astype(np.intp)]
    rgba[hidden, 3] = 0
    return rgba


def _short_label(key: str) -> str:
    """'Pairwise disagreement (share of pairs, 0–1)' -> 'Pairwise disagreement (share of pairs)': the range is on the
    bar's ticks."""
    label = measure_label(key)
    head, sep, tail = label.rpartition("(")
    if not sep:
        return label
    unit = ", ".join(part.strip() for part in tail.rstrip(")").split(",")[:-1])
    return f"{head.strip()} ({unit})" if unit else head.strip()


def _same(a: tuple | None, b: tuple | None) -> bool:
    """Equal drawing keys: result and plane compared by identity (a plane's geometry holds arrays)."""
    if a is None or b is None:
        return a is b
    return a[0] is b[0] and a[1] is b[1] and a[2:] == b[2:]


class HeatmapLegend(QWidget):
    """A colour bar with its measure's name and labelled range, laid over a corner of `host`."""

    def __init__(self, host: QWidget) -> None:
        super().__init__(host)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.resize(*_LEGEND_SIZE)
        self.title, self.low, self.high, self.measure = "", 0.0, 1.0, ""
        host.installEventFilter(self)
        self.hide()

    def set_measure(self, key: str) -> None:
        self.measure = key
        self.title = _short_label(key)
        self.low, self.high = measure_range(key)
        self.setToolTip(measure_label(key))
        self.resize(max(_LEGEND_SIZE[0], QFontMetrics(self._font()).horizontalAdvance(self.title) + 16),
                    _LEGEND_SIZE[1])
        self.update()

    def _font(self) -> QFont:
        font = QFont(self.font())
        font.setPixelSize(11)
        return font

    def tick_texts(self) -> list[str]:
        """The labels under the bar: bottom, middle and top of the range."""
        values = (self.low, (self.low + self.high) / 2, self.high)
        return [f"{v:g}" for v in values]

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Resize:
            self.relayout()
        return False

    def relayout(self) -> None:
        """Top right, under the view's slice-position label (the bottom holds W/L and an orientation letter)."""
        host = self.parentWidget()
        self.move(host.width() - self.width() - _MARGIN, _TOP)
        self.raise_()

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(0, 0, 0, 150))
        painter.setFont(self._font())
        painter.setPen(QColor(232, 232, 232))
        w, pad = self.width(), 6
        painter.drawText(QRectF(pad, 1, w - 2 * pad, 15), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                         self.title)
        bar = QRectF(pad, 17, w - 2 * pad, 11)
        gradient = QLinearGradient(bar.left(), 0, bar.right(), 0)
        for t, color in _GRADIENT_STOPS:
            gradient.setColorAt(t, color)
        painter.fillRect(bar, gradient)
        painter.setPen(QColor(150, 150, 150))
        painter.drawRect(bar)
        painter.setPen(QColor(232, 232, 232))
        low, mid, high = self.tick_texts()
        text = QRectF(pad, 29, w - 2 * pad, 15)
        painter.drawText(text, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, low)
        painter.drawText(text, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter, mid)
        painter.drawText(text, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, high)
        painter.end()


class HeatmapOverlay(QObject):
    """The measure chosen in the display options, coloured over the shown slice of one view (legend optional)."""

    def __init__(self, display: HypothesisDisplay, legend: bool = False) -> None:
        super().__init__(display)  # owned by the display (Qt), never collected by Python on another thread
        self.display = display
        self.with_legend = legend
        self.legend: HeatmapLegend | None = None
        self.view = None
        self.index = -1
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setZValue(Z_HEATMAP)
        self._drawn: tuple | None = None  # (views, plane, measure, slice) of the image shown, to skip redundant work
        self._colored: dict[tuple, np.ndarray] = {}  # (measure, slice) -> RGBA of the current result
        display.views_changed.connect(self._on_views)
        display.options_changed.connect(self._on_options)

    # --- OverlayLayer -----------------------------------------------------------------------------------------------
    def attach(self, view) -> None:
        self.view = view
        view.view_box.addItem(self.image, ignoreBounds=True)
        if self.with_legend:
            self.legend = HeatmapLegend(view)
        self.redraw()

    def set_slice(self, index: int) -> None:
        self.index = index
        self.redraw()

    def detach(self) -> None:
        if self.view is not None:
            self.view.view_box.removeItem(self.image)
            if self.legend is not None:
                self.view.removeEventFilter(self.legend)
                self.legend.deleteLater()
                self.legend = None
            self.view = None

    # --- drawing ----------------------------------------------------------------------------------------------------
    def _on_views(self, views) -> None:
        self._colored.clear()
        self.redraw()

    def _on_options(self, options: DisplayOptions) -> None:
        self.image.setOpacity(options.opacity)
        self.redraw()

    def redraw(self) -> None:
        """Show the chosen measure on the shown slice; nothing is recoloured unless result, measure or slice changed."""
        if self.view is None:
            return
        views, options = self.display.views, self.display.options
        shown = views is not None and options.heatmap and self.view.plane is not None and self.index >= 0
        wanted = (views, self.view.plane, options.measure, self.index) if shown else None
        if not _same(wanted, self._drawn):
            self._drawn = wanted
            section = views.heat_section(options.measure, self.view.axis, self.index) if shown else None
            if section is None:
                self.image.hide()
            else:
                self.image.setImage(self._rgba(options.measure, section), autoLevels=False)
                self.image.setTransform(section_transform(self.view.plane, section.corner(), section.row_step,
                                                          section.col_step))
                self.image.setOpacity(options.opacity)
                self.image.show()
        self._update_legend(views is not None and options.heatmap, options)

    def _rgba(self, measure: str, section) -> np.ndarray:
        key = (measure, self.index)
        if key not in self._colored:
            if len(self._colored) >= _COLORED_KEPT:
                self._colored.pop(next(iter(self._colored)))
            self._colored[key] = colorize(section.values, *measure_range(measure))
        return self._colored[key]

    def _update_legend(self, shown: bool, options: DisplayOptions) -> None:
        if self.legend is None:
            return
        if shown and self.legend.measure != options.measure:
            self.legend.set_measure(options.measure)
            self.legend.relayout()
        self.legend.setVisible(shown)
