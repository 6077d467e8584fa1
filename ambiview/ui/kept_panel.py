"""The kept items: what export writes.  A table (colour, editable name, kind, remove) and the ways to keep a mask.

"Keep hypothesis" keeps the one shown, "Keep consensus at N%" the pixels at least N% of the hypotheses cover,
"Keep STAPLE" STAPLE's estimate, "Keep mode" the representative of the interpretation the shown hypothesis belongs
to.  Masks and descriptions are made by `session.analysis`; kept items are drawn on the views by `KeptOutlines`.
"""
from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGridLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..session import Session
from ..session.analysis import keep_consensus, keep_hypothesis, keep_mode, keep_staple
from .bridge import follow

COL_COLOUR, COL_NAME, COL_KIND, COL_REMOVE = range(4)


class KeptPanel(QWidget):
    export_requested = Signal()

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(("", "Name", "Kind", ""))
        self.table.verticalHeader().hide()
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                                   | QAbstractItemView.EditTrigger.EditKeyPressed
                                   | QAbstractItemView.EditTrigger.SelectedClicked)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(COL_COLOUR, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(COL_NAME, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(COL_KIND, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(COL_REMOVE, QHeaderView.ResizeMode.ResizeToContents)
        self.table.itemChanged.connect(self._item_changed)

        self.keep_hypothesis_button = QPushButton("Keep hypothesis")
        self.keep_hypothesis_button.setToolTip("Keep the hypothesis shown now")
        self.keep_consensus_button = QPushButton("Keep consensus at")
        self.level_box = QSpinBox()
        self.level_box.setRange(1, 100)
        self.level_box.setValue(50)
        self.level_box.setSuffix(" %")
        self.level_box.setToolTip("Agreement level: the pixels at least this share of the hypotheses cover")
        self.keep_staple_button = QPushButton("Keep STAPLE")
        self.keep_staple_button.setToolTip("Keep STAPLE's estimate of the true mask from the hypotheses")
        self.keep_mode_button = QPushButton("Keep mode")
        self.keep_mode_button.setToolTip("Keep the representative of the interpretation the shown hypothesis "
                                         "belongs to")
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("Write the kept items as RTSTRUCT, SEG or NIfTI")
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.keep_hypothesis_button.clicked.connect(lambda: self._keep(keep_hypothesis))
        self.keep_consensus_button.clicked.connect(lambda: self._keep(keep_consensus, self.level_box.value() / 100))
        self.keep_staple_button.clicked.connect(lambda: self._keep(keep_staple))
        self.keep_mode_button.clicked.connect(lambda: self._keep(keep_mode))
        self.export_button.clicked.connect(self.export_requested)

        buttons = QGridLayout()
        buttons.addWidget(self.keep_hypothesis_button, 0, 0)
        buttons.addWidget(self.keep_mode_button, 0, 1)
        buttons.addWidget(self.keep_consensus_button, 1, 0)
        buttons.addWidget(self.level_box, 1, 1)
        buttons.addWidget(self.keep_staple_button, 2, 0)
        buttons.addWidget(self.export_button, 2, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.message)
        self._shown: list[int] = []  # id() of the items in the table rows
        self._filling = False
        follow(self, session, "kept_changed", lambda kept: self.refresh())
        follow(self, session, "result_changed", lambda result: self._enable())
        follow(self, session, "volume_changed", lambda volume: self.message.clear())
        self.refresh()

    def sizeHint(self) -> QSize:
        return QSize(300, 240)  # modest, so the dock column fits a small screen

    # --- session -> view --------------------------------------------------------------------------------------------
    def _enable(self) -> None:
        has_result = self.session.result is not None
        for button in (self.keep_hypothesis_button, self.keep_consensus_button, self.keep_staple_button,
                       self.keep_mode_button, self.level_box):
            button.setEnabled(has_result)
        self.export_button.setEnabled(bool(self.session.kept))

    def refresh(self) -> None:
        kept = list(self.session.kept)
        self._filling = True
        try:
            if [id(k) for k in kept] != self._shown:  # items added or removed: rebuild the rows
                self.table.setRowCount(len(kept))
                for row, item in enumerate(kept):
                    self._fill_row(row, item)
                self._shown = [id(k) for k in kept]
            else:  # a rename: update the texts in place (the edited cell's item must survive its own signal)
                for row, item in enumerate(kept):
                    self._update_row(row, item)
        finally:
            self._filling = False
        self._enable()

    def _fill_row(self, row: int, item) -> None:
        swatch = QTableWidgetItem()
        swatch.setFlags(Qt.ItemFlag.ItemIsEnabled)
        self.table.setItem(row, COL_COLOUR, swatch)
        name = QTableWidgetItem()
        name.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEditable)
        self.table.setItem(row, COL_NAME, name)
        kind = QTableWidgetItem()
        kind.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
        self.table.setItem(row, COL_KIND, kind)
        remove = QToolButton()
        remove.setText("✕")
        remove.setToolTip(f"Remove '{item.name}' from the kept items")
        remove.clicked.connect(lambda checked=False, it=item: self.session.remove_kept(it))
        self.table.setCellWidget(row, COL_REMOVE, remove)
        self._update_row(row, item)

    def _update_row(self, row: int, item) -> None:
        self.table.item(row, COL_COLOUR).setBackground(QColor(*item.color))
        self.table.item(row, COL_COLOUR).setText("   ")
        name = self.table.item(row, COL_NAME)
        name.setText(item.name)
        tip = item.description + (f"\n{item.model_title or item.model}" if (item.model_title or item.model) else "")
        name.setToolTip(tip + "\nDouble-click to rename")
        self.table.item(row, COL_KIND).setText(item.kind)

    def set_level(self, level: float) -> None:
        """The agreement level (a share in (0, 1]) that "Keep consensus at" uses."""
        self.level_box.setValue(max(1, min(100, round(float(level) * 100))))

    # --- view -> session --------------------------------------------------------------------------------------------
    def _item_changed(self, cell: QTableWidgetItem) -> None:
        if self._filling or cell.column() != COL_NAME:
            return
        row = cell.row()
        if 0 <= row < len(self.session.kept):
            item = self.session.kept[row]
            text = cell.text().strip()
            if not text:
                self.message.setText("A kept item needs a name; the old one was kept.")
            elif len(text) > 64:
                self.message.setText("Names are at most 64 characters (DICOM); the old one was kept.")
                text = ""
            elif any(k.name == text for k in self.session.kept if k is not item):
                self.message.setText(f"'{text}' is already taken; the old name was kept.")
                text = ""
            self.session.rename_kept(item, text)  # an empty name keeps the old one and refreshes the cell

    def _keep(self, keep, *args) -> None:
        try:
            item = keep(self.session, *args)
        except ValueError as exc:
            self.message.setText(str(exc))
        else:
            self.message.setText(f"Kept '{item.name}'.")

    def names(self) -> list[str]:
        return [self.table.item(r, COL_NAME).text() for r in range(self.table.rowCount())]
