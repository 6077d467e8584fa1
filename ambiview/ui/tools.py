"""The active mouse tool (navigate, pan, positive/negative point, box), shared by all slice views and the toolbar."""
from __future__ import annotations

from enum import Enum

from PySide6.QtCore import QObject, Signal


class Tool(str, Enum):
    NAVIGATE = "navigate"
    PAN = "pan"
    POSITIVE = "positive"
    NEGATIVE = "negative"
    BOX = "box"

    @property
    def is_prompt(self) -> bool:
        return self in (Tool.POSITIVE, Tool.NEGATIVE, Tool.BOX)


# label, shortcut(s), tip -- the first shortcut is the one shown in menus
TOOL_INFO: dict[Tool, tuple[str, tuple[str, ...], str]] = {
    Tool.NAVIGATE: ("Navigate", ("V", "Esc"), "Click or drag to move the crosshair"),
    Tool.PAN: ("Pan", ("H",), "Drag to pan (middle-drag pans with any tool)"),
    Tool.POSITIVE: ("Positive point", ("P",), "Click on the axial view to mark the lesion"),
    Tool.NEGATIVE: ("Negative point", ("N",), "Click on the axial view to mark background"),
    Tool.BOX: ("Box", ("B",), "Drag a box around the lesion on the axial view"),
}


class ToolState(QObject):
    """Holds the current tool; `changed(Tool)` fires when it changes."""

    changed = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._tool = Tool.NAVIGATE

    @property
    def tool(self) -> Tool:
        return self._tool

    def set_tool(self, tool: Tool) -> None:
        tool = Tool(tool)
        if tool is not self._tool:
            self._tool = tool
            self.changed.emit(tool)
