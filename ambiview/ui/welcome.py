"""The empty window's page: Open Folder, Open Demo, the recent folders (click to open), a drop hint."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

_PATH_ROLE = Qt.ItemDataRole.UserRole
_MAX_ROWS_SHOWN = 10


class WelcomePage(QWidget):
    open_folder_clicked = Signal()
    open_file_clicked = Signal()
    demo_clicked = Signal()
    recent_clicked = Signal(object)  # Path

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        title = QLabel("<h1>AmbiView</h1><p>See the ambiguity of a lesion segmentation.</p>")
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.open_folder_button = QPushButton("Open Folder…")
        self.open_file_button = QPushButton("Open File…")
        self.demo_button = QPushButton("Open Demo Study")
        self.open_folder_button.setDefault(True)
        self.open_folder_button.clicked.connect(self.open_folder_clicked)
        self.open_file_button.clicked.connect(self.open_file_clicked)
        self.demo_button.clicked.connect(self.demo_clicked)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for button in (self.open_folder_button, self.open_file_button, self.demo_button):
            button.setMinimumWidth(150)
            buttons.addWidget(button)
        buttons.addStretch(1)
        hint = QLabel("…or drop a DICOM folder or file anywhere on this window.")
        hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        hint.setStyleSheet("color: gray;")
        self.recent_title = QLabel("<b>Recent</b>")
        self.recent_list = QListWidget()
        self.recent_list.setMaximumWidth(720)
        self.recent_list.itemActivated.connect(self._activated)
        self.recent_list.itemClicked.connect(self._activated)

        column = QVBoxLayout()
        column.addStretch(1)
        column.addWidget(title)
        column.addLayout(buttons)
        column.addWidget(hint)
        column.addSpacing(24)
        column.addWidget(self.recent_title, 0, Qt.AlignmentFlag.AlignHCenter)
        column.addWidget(self.recent_list, 0, Qt.AlignmentFlag.AlignHCenter)
        column.addStretch(1)
        outer = QHBoxLayout(self)
        outer.addStretch(1)
        outer.addLayout(column, 4)
        outer.addStretch(1)
        self.set_recent([])

    def set_recent(self, paths: list[Path]) -> None:
        """Show `paths`; ones that no longer exist are greyed out and cannot be clicked."""
        self.recent_list.clear()
        for path in paths:
            exists = Path(path).exists()
            item = QListWidgetItem(str(path) if exists else f"{path}   (not found)")
            item.setData(_PATH_ROLE, str(path))
            item.setToolTip(str(path))
            if not exists:
                item.setFlags(Qt.ItemFlag.NoItemFlags)
            self.recent_list.addItem(item)
        self.recent_title.setVisible(bool(paths))
        self.recent_list.setVisible(bool(paths))
        self.recent_list.setMinimumWidth(520)
        rows = max(min(len(paths), _MAX_ROWS_SHOWN), 1)
        self.recent_list.setFixedHeight(rows * self.recent_list.sizeHintForRow(0) + 2 * self.recent_list.frameWidth()
                                        + 4 if paths else 0)

    def recent_paths(self) -> list[Path]:
        return [Path(self.recent_list.item(i).data(_PATH_ROLE)) for i in range(self.recent_list.count())]

    def _activated(self, item: QListWidgetItem) -> None:
        if item.flags() & Qt.ItemFlag.ItemIsEnabled:
            self.recent_clicked.emit(Path(item.data(_PATH_ROLE)))
