"""Axial, coronal and sagittal slice views side by side, linked through the session cursor."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QSplitter, QWidget

from ..session import Session
from .plane import AXIAL, CORONAL, SAGITTAL
from .prompt_overlay import PromptOverlay
from .slice_view import SliceView
from .tools import ToolState


class OrthoViews(QWidget):
    """The large axial view on the left, coronal above sagittal on the right."""

    hovered = Signal(object)  # forwarded from whichever view the mouse is over

    def __init__(self, session: Session, tools: ToolState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.axial = SliceView(session, AXIAL, tools)
        self.coronal = SliceView(session, CORONAL, tools)
        self.sagittal = SliceView(session, SAGITTAL, tools)
        self.views = {AXIAL: self.axial, CORONAL: self.coronal, SAGITTAL: self.sagittal}
        self.prompts = PromptOverlay(session)
        self.axial.add_overlay(self.prompts)
        for view in self.views.values():
            view.hovered.connect(self.hovered)

        side = QSplitter(Qt.Orientation.Vertical)
        side.addWidget(self.coronal)
        side.addWidget(self.sagittal)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.axial)
        self.splitter.addWidget(side)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.splitter)

    def reset_views(self) -> None:
        for view in self.views.values():
            view.reset_view()
