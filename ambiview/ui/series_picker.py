"""The dialog that lets the user choose one series when a folder holds several (CT first, preselected)."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

COLUMNS = ("Modality", "Description", "Slices", "Matrix", "Spacing (mm)", "Date")


def order_series(series: list) -> list:
    """CT series first, otherwise in the scanner's order (the sort is stable)."""
    return sorted(series, key=lambda s: (str(getattr(s, "modality", "")).upper() != "CT"))


def _date(value) -> str:
    text = str(value or "")
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) == 8 and text.isdigit() else text


def _spacing(value) -> str:
    try:
        dz, dy, dx = (float(v) for v in value)
    except (TypeError, ValueError):
        return "—"
    return f"{dz:.2f} × {dy:.3f} × {dx:.3f}"


def row_texts(info) -> list[str]:
    """The table cells of one SeriesInfo."""
    return [str(info.modality or "?"), str(info.description or "(no description)"), str(info.n_slices),
            f"{info.rows} × {info.cols}", _spacing(info.spacing), _date(info.study_date)]


class SeriesPickerDialog(QDialog):
    """Lists the series; `selected_series()` is the chosen one after `exec()` returns Accepted."""

    def __init__(self, series: list, source: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Choose a series")
        self.series = order_series(series)
        intro = QLabel(f"{len(self.series)} image series were found{f' in {source}' if source else ''}. "
                       "Choose the one to open:")
        intro.setWordWrap(True)
        self.table = QTableWidget(len(self.series), len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        for row, info in enumerate(self.series):
            warnings = list(getattr(info, "warnings", []) or [])
            for col, text in enumerate(row_texts(info)):
                item = QTableWidgetItem(text)
                if warnings:
                    item.setToolTip("\n".join(warnings))
                self.table.setItem(row, col, item)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.doubleClicked.connect(self.accept)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        self.resize(760, 120 + 30 * min(len(self.series), 10))
        if self.series:
            self.table.selectRow(0)
        self.table.setFocus(Qt.FocusReason.OtherFocusReason)

    def selected_series(self):
        rows = self.table.selectionModel().selectedRows()
        return self.series[rows[0].row()] if rows else None


def choose_series(series: list, source: str, parent: QWidget | None):
    """Ask the user (modal); returns the chosen SeriesInfo or None when cancelled."""
    dialog = SeriesPickerDialog(series, source, parent)
    try:
        return dialog.selected_series() if dialog.exec() == QDialog.DialogCode.Accepted else None
    finally:
        dialog.deleteLater()
