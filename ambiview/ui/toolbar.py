"""Actions of the main toolbar: mouse tools, prompt undo/redo/clear, and the window/level preset box."""
from __future__ import annotations

from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QComboBox, QWidget

from ..imaging.windowing import PRESETS
from ..session import Session
from .bridge import follow
from .tools import TOOL_INFO, Tool, ToolState

CUSTOM_WINDOW = "Custom"


def tool_actions(parent: QWidget, tools: ToolState) -> dict[Tool, QAction]:
    """One checkable action per tool, exclusive, two-way bound to `tools`."""
    group = QActionGroup(parent)
    group.setExclusive(True)
    actions: dict[Tool, QAction] = {}
    for tool, (label, keys, tip) in TOOL_INFO.items():
        action = QAction(label, parent)
        action.setCheckable(True)
        action.setShortcuts([QKeySequence(k) for k in keys])
        action.setToolTip(f"{label} ({' or '.join(keys)}): {tip}")
        action.setStatusTip(tip)
        action.triggered.connect(lambda checked=False, t=tool: tools.set_tool(t))
        group.addAction(action)
        actions[tool] = action
    actions[tools.tool].setChecked(True)
    tools.changed.connect(lambda tool: actions[tool].setChecked(True))
    return actions


def prompt_edit_actions(parent: QWidget, session: Session) -> dict[str, QAction]:
    """Undo (Ctrl+Z), Redo (Ctrl+Shift+Z, Ctrl+Y) and Clear prompts, enabled as the history allows."""
    undo = QAction("Undo prompt", parent)
    undo.setShortcut(QKeySequence("Ctrl+Z"))
    undo.triggered.connect(session.undo)
    redo = QAction("Redo prompt", parent)
    redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
    redo.triggered.connect(session.redo)
    clear = QAction("Clear prompts", parent)
    clear.setShortcut(QKeySequence("Ctrl+Shift+Delete"))
    clear.triggered.connect(session.clear_prompts)

    def refresh(prompts=()) -> None:
        undo.setEnabled(session.history.can_undo)
        redo.setEnabled(session.history.can_redo)
        clear.setEnabled(bool(session.prompts))

    follow(parent, session, "prompts_changed", refresh)
    refresh()
    return {"undo": undo, "redo": redo, "clear": clear}


class WindowPresetBox(QComboBox):
    """The presets of imaging.windowing plus 'Custom' (shown after a mouse W/L change)."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.addItems(list(PRESETS) + [CUSTOM_WINDOW])
        self.setToolTip("Window/level preset (right-drag on an image to adjust)")
        self.textActivated.connect(self._chosen)
        follow(self, session, "window_changed", lambda center, width: self._show(center, width))
        self._show(*session.window)

    def _chosen(self, name: str) -> None:
        if name in PRESETS:
            self.session.apply_preset(name)

    def _show(self, center: float, width: float) -> None:
        name = next((n for n, cw in PRESETS.items() if cw == (center, width)), CUSTOM_WINDOW)
        self.setCurrentText(name)
