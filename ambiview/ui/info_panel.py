"""Patient, study and series information of the open volume (on screen only, never logged)."""
from __future__ import annotations

from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from ..imaging.volume import Volume
from ..session import Session
from .bridge import follow


def volume_rows(volume: Volume) -> list[tuple[str, str]]:
    """(field, value) rows: the series' display fields, then the grid as loaded."""
    rows = [(str(k), str(v)) for k, v in volume.identity.display.items()]
    nz, ny, nx = volume.shape
    dz, dy, dx = volume.spacing
    g = volume.geometry
    rows += [("Matrix", f"{ny} × {nx}, {nz} slices"),
             ("Voxel size", f"{dy:.3f} × {dx:.3f} mm, slices {dz:.2f} mm apart"),
             ("Orientation", g.orientation_label + (f", tilt {g.tilt_degrees:.1f}°" if g.tilt_degrees > 0.05 else ""))]
    return rows


class InfoPanel(QWidget):
    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(("Field", "Value"))
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setWordWrap(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.table)
        follow(self, session, "volume_changed", self._on_volume_changed)
        self._on_volume_changed(session.volume)

    def rows(self) -> list[tuple[str, str]]:
        return [(self.table.item(r, 0).text(), self.table.item(r, 1).text()) for r in range(self.table.rowCount())]

    def _on_volume_changed(self, volume: Volume | None) -> None:
        rows = volume_rows(volume) if volume is not None else []
        self.table.setRowCount(len(rows))
        for r, (name, value) in enumerate(rows):
            self.table.setItem(r, 0, QTableWidgetItem(name))
            item = QTableWidgetItem(value)
            item.setToolTip(value)
            self.table.setItem(r, 1, item)
