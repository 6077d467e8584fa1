"""The session's prompts drawn on a slice view: green + for positive points, red - for negative, boxes as rectangles.

Only the prompts of the shown slice are drawn.  An overlay layer in the sense of `SliceView.add_overlay`.
"""
from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QObject, QRectF
from PySide6.QtGui import QColor, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsRectItem

from ..session import Prompt, PromptKind, Session
from .bridge import follow

POSITIVE_COLOR = QColor(40, 230, 60)
NEGATIVE_COLOR = QColor(255, 60, 60)
BOX_COLOR = QColor(255, 210, 0)
_MARKER_PX = 16


def _minus_symbol() -> QPainterPath:
    """A horizontal bar in pyqtgraph's unit symbol box (-0.5..0.5), the negative counterpart of '+'."""
    path = QPainterPath()
    path.addRect(QRectF(-0.5, -0.14, 1.0, 0.28))
    return path


_MINUS = _minus_symbol()


class PromptOverlay(QObject):
    """Draws the prompts of the shown axial slice; follows the session's prompts_changed event."""

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.view = None
        self.index = -1
        self.points = pg.ScatterPlotItem(pxMode=True, size=_MARKER_PX)
        self.points.setZValue(60)
        self.boxes: list[QGraphicsRectItem] = []
        follow(self, session, "prompts_changed", lambda prompts: self.redraw())

    # --- OverlayLayer -----------------------------------------------------------------------------------------------
    def attach(self, view) -> None:
        self.view = view
        view.view_box.addItem(self.points, ignoreBounds=True)

    def set_slice(self, index: int) -> None:
        self.index = index
        self.redraw()

    def detach(self) -> None:
        if self.view is not None:
            self._clear_boxes()
            self.view.view_box.removeItem(self.points)
            self.view = None

    # --- drawing ----------------------------------------------------------------------------------------------------
    def visible_prompts(self) -> list[Prompt]:
        """Prompts that belong to the shown slice."""
        if self.view is None or self.view.plane is None or self.index < 0:
            return []
        return [p for p in self.session.prompts if p.z == self.index]

    def _clear_boxes(self) -> None:
        for item in self.boxes:
            self.view.view_box.removeItem(item)
        self.boxes = []

    def redraw(self) -> None:
        if self.view is None:
            return
        self._clear_boxes()
        spots = []
        plane = self.view.plane
        for prompt in self.visible_prompts():
            if prompt.kind is PromptKind.BOX:
                z, y0, x0, y1, x1 = prompt.voxel
                left, top = plane.voxel_to_scene((z, y0, x0))
                right, bottom = plane.voxel_to_scene((z, y1, x1))
                item = QGraphicsRectItem(QRectF(left, top, right - left, bottom - top))
                pen = QPen(BOX_COLOR, 2)
                pen.setCosmetic(True)
                item.setPen(pen)
                item.setZValue(60)
                self.view.view_box.addItem(item, ignoreBounds=True)
                self.boxes.append(item)
            else:
                x, y = plane.voxel_to_scene(prompt.voxel)
                positive = prompt.kind is PromptKind.POSITIVE
                color = POSITIVE_COLOR if positive else NEGATIVE_COLOR
                spots.append({"pos": (x, y), "symbol": "+" if positive else _MINUS,
                              "brush": pg.mkBrush(color), "pen": pg.mkPen((0, 0, 0), width=1)})
        self.points.setData(spots)
