"""Text drawn over a slice view: plane and slice number, slice position, window/level, orientation letters."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QWidget

_TEXT_STYLE = "QLabel { color: #e8e8e8; background: rgba(0, 0, 0, 110); padding: 1px 4px; font-size: 11px; }"
_LETTER_STYLE = ("QLabel { color: #ffcc55; background: transparent; font-weight: bold; font-size: 13px; "
                 "padding: 2px; }")
_MARGIN = 4


class ViewLabels:
    """QLabels laid over a view's corners and edges; they ignore the mouse so the view gets every click."""

    def __init__(self, host: QWidget) -> None:
        self._host = host
        self.title = self._label(_TEXT_STYLE)        # top left: plane, slice i/n
        self.position = self._label(_TEXT_STYLE)     # top right: slice position in mm
        self.window = self._label(_TEXT_STYLE)       # bottom left: W/L
        self.edges = {side: self._label(_LETTER_STYLE) for side in ("left", "right", "top", "bottom")}

    def _label(self, style: str) -> QLabel:
        label = QLabel(self._host)
        label.setStyleSheet(style)
        label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        label.hide()
        return label

    def set_texts(self, title: str = "", position: str = "", window: str = "",
                  edges: dict[str, str] | None = None) -> None:
        """Empty texts hide their label."""
        texts = [(self.title, title), (self.position, position), (self.window, window)]
        texts += [(label, (edges or {}).get(side, "")) for side, label in self.edges.items()]
        for label, text in texts:
            label.setText(text)
            label.adjustSize()
            label.setVisible(bool(text))
        self.relayout()

    def set_window_text(self, text: str) -> None:
        self.window.setText(text)
        self.window.adjustSize()
        self.window.setVisible(bool(text))
        self.relayout()

    def relayout(self) -> None:
        w, h = self._host.width(), self._host.height()
        self.title.move(_MARGIN, _MARGIN)
        self.position.move(w - self.position.width() - _MARGIN, _MARGIN)
        self.window.move(_MARGIN, h - self.window.height() - _MARGIN)
        left, right, top, bottom = (self.edges[s] for s in ("left", "right", "top", "bottom"))
        left.move(_MARGIN, (h - left.height()) // 2)
        right.move(w - right.width() - _MARGIN, (h - right.height()) // 2)
        top.move((w - top.width()) // 2, _MARGIN)
        bottom.move((w - bottom.width()) // 2, h - bottom.height() - _MARGIN)
        for label in [self.title, self.position, self.window, *self.edges.values()]:
            label.raise_()
