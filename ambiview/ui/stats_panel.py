"""How the hypotheses of the current result spread: size against longest diameter (one dot per hypothesis, the
current one ringed), each hypothesis's IoU with the 50% consensus (bars), and the diversity (mean pairwise 1 − IoU).

Numbers come from `session.analysis.hypothesis_stats` (uncertainty.stats / metrics) on the result's own grid; this
widget only plots them.  Clicking a dot or a bar shows that hypothesis.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from ..session import Session
from ..session.analysis import DEFAULT_LEVEL, hypothesis_stats
from .bridge import follow
from .hypothesis_overlay import hypothesis_color

_CURRENT_PEN = pg.mkPen(QColor(255, 255, 255), width=2)
_BAR_BRUSH = QColor(120, 160, 220)
_CURRENT_BAR_BRUSH = QColor(255, 210, 0)
_TITLE_SIZE = "9pt"


def _spread(values: np.ndarray) -> str:
    """'312 ± 45 (250–420)': mean ± sample SD and range."""
    sd = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return f"{values.mean():.1f} ± {sd:.1f} ({values.min():.1f}–{values.max():.1f})"


class StatsPanel(QWidget):
    def __init__(self, session: Session, level: float = DEFAULT_LEVEL, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.level = level
        self.stats = None
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setMinimumHeight(200)
        self.spread_plot = self.graphics.addPlot(row=0, col=0)
        self.spread_plot.showGrid(x=True, y=True, alpha=0.25)
        self.points = pg.ScatterPlotItem(size=9, pen=pg.mkPen(None), hoverable=True)
        self.points.sigClicked.connect(self._point_clicked)
        self.current_point = pg.ScatterPlotItem(size=18, pen=_CURRENT_PEN, brush=pg.mkBrush(None))
        self.consensus_line = pg.InfiniteLine(angle=90, movable=False,
                                              pen=pg.mkPen(QColor(200, 200, 200), style=Qt.PenStyle.DashLine))
        for item in (self.consensus_line, self.points, self.current_point):
            self.spread_plot.addItem(item)
        self.iou_plot = self.graphics.addPlot(row=1, col=0)
        self.iou_plot.setYRange(0.0, 1.0)
        self.iou_plot.setLabel("bottom", "hypothesis")
        self.iou_plot.setLabel("left", "IoU")
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.8)
        self.bar_tops = pg.ScatterPlotItem(size=10, pen=pg.mkPen(None), brush=pg.mkBrush(0, 0, 0, 0))
        self.bar_tops.sigClicked.connect(self._point_clicked)
        self.iou_plot.addItem(self.bars)
        self.iou_plot.addItem(self.bar_tops)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.summary)
        layout.addWidget(self.graphics, 1)
        follow(self, session, "result_changed", lambda result: self.refresh())
        follow(self, session, "hypothesis_changed", lambda index: self._show_current())
        self.refresh()

    def sizeHint(self) -> QSize:
        return QSize(300, 300)  # pyqtgraph's own hint (600 × 500) would push the dock column off a small screen

    # --- session -> view --------------------------------------------------------------------------------------------
    def refresh(self) -> None:
        result = self.session.result
        self.stats = hypothesis_stats(result, self.level) if result is not None else None
        stats = self.stats
        if stats is None:
            self.points.setData([])
            self.bars.setOpts(x=[], height=[])
            self.bar_tops.setData([])
            self.consensus_line.hide()
            self.spread_plot.setTitle("Spread of the hypotheses", size=_TITLE_SIZE)
            self.iou_plot.setTitle("IoU with the consensus", size=_TITLE_SIZE)
            self._show_current()
            return
        diameter = "longest axial diameter" if result.is_3d else "longest diameter"
        self.spread_plot.setTitle(f"{stats.size_label.capitalize()} and {diameter}", size=_TITLE_SIZE)
        self.spread_plot.setLabel("bottom", f"{stats.size_label} ({stats.size_unit})")
        self.spread_plot.setLabel("left", f"{diameter} (mm)")
        spots = [{"pos": (float(s), float(d)), "data": i, "brush": pg.mkBrush(hypothesis_color(i))}
                 for i, (s, d) in enumerate(zip(stats.sizes, stats.diameters))]
        self.points.setData(spots)
        self.consensus_line.setPos(stats.consensus_size)
        self.consensus_line.setVisible(stats.consensus_size > 0)
        self.iou_plot.setTitle(f"IoU with the {stats.level:.0%} consensus", size=_TITLE_SIZE)
        numbers = np.arange(1, stats.n + 1)
        self.bar_tops.setData([{"pos": (float(k), float(v)), "data": k - 1}
                               for k, v in zip(numbers, stats.iou_with_consensus)])
        self.iou_plot.setXRange(0.4, stats.n + 0.6, padding=0)
        self._show_current()

    def _show_current(self) -> None:
        stats, index = self.stats, self.session.hypothesis
        if stats is None or not 0 <= index < stats.n:
            self.current_point.setData([])
            self.summary.setText("No hypotheses yet.")
            return
        self.current_point.setData([float(stats.sizes[index])], [float(stats.diameters[index])])
        brushes = [_CURRENT_BAR_BRUSH if i == index else _BAR_BRUSH for i in range(stats.n)]
        self.bars.setOpts(x=np.arange(1, stats.n + 1), height=stats.iou_with_consensus, width=0.8, brushes=brushes)
        unit = stats.size_unit
        self.summary.setText(
            f"<b>{stats.n} hypotheses</b> · {stats.size_label} {_spread(stats.sizes)} {unit} · longest diameter "
            f"{_spread(stats.diameters)} mm · <b>diversity {stats.diversity:.2f}</b> (mean pairwise 1 − IoU)<br>"
            f"Shown: hypothesis {index + 1}: {stats.sizes[index]:.1f} {unit}, {stats.diameters[index]:.1f} mm, "
            f"IoU {stats.iou_with_consensus[index]:.2f} with the {stats.level:.0%} consensus "
            f"(its {stats.size_label}: dashed line)")

    # --- view -> session --------------------------------------------------------------------------------------------
    def _point_clicked(self, item, points, ev=None) -> None:
        if len(points):
            self.session.set_hypothesis(int(points[0].data()))

    def plotted(self) -> dict:
        """What is drawn, for tests: sizes, diameters, IoU bars, and the ringed point."""
        x, y = self.points.getData()
        cx, cy = self.current_point.getData()
        return {"sizes": np.asarray(x), "diameters": np.asarray(y),
                "iou": np.asarray(self.bars.opts.get("height", [])), "current": (list(cx), list(cy))}
