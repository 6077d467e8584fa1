"""Opening an LIDC crop study (lidc-crops64 layout) and picking a nodule, with the raters as hidden experts.

`LidcStudyController.open_study(path)` lists the study's nodules (file names only) in the `NodulePicker` dock and
opens one: its crops become a small volume in the session, the standardised-crop window is applied (the values are
not HU), and the radiologists' masks become the session's experts, hidden until the user reveals them (compare
mode).  Reading is `imaging.lidc_study` (a few 64 × 64 TIFFs per nodule, milliseconds), so it runs on the GUI thread.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QSize, Qt, Signal
from PySide6.QtWidgets import QLabel, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from ..imaging.lidc_study import (
    NOMINAL_SPACING,
    STANDARDISED_WINDOW,
    LidcStudy,
    LidcStudyError,
    is_lidc_study,
    load_case,
    open_study,
)
from ..session import Session
from ..session.references import experts_from_raters
from .bridge import follow


class NodulePicker(QWidget):
    """The nodules of an opened study; choosing one emits `chosen(run)`."""

    chosen = Signal(object)  # NoduleRun

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel()
        self.title.setWordWrap(True)
        self.list = QListWidget()
        self.list.itemActivated.connect(self._activated)
        self.list.itemClicked.connect(self._activated)
        dz, dy, _ = NOMINAL_SPACING
        self.note = QLabel(f"Values are standardised, not HU (window “{STANDARDISED_WINDOW[0]}”). Pixels {dy} mm, "
                           f"slices {dz} mm: nominal. Raters hidden until revealed (Compare).")
        self.note.setToolTip("The crops were standardised on their own ((HU - crop mean) / crop SD), and the files do "
                             "not hold the pixel spacing or slice distance, so millimetres are approximate.")
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #b0b0b0")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.title)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.note)
        self.runs = []

    def sizeHint(self) -> QSize:
        return QSize(300, 170)  # modest, so the dock column fits a small screen

    def set_study(self, study: LidcStudy) -> None:
        self.runs = list(study.runs)
        self.title.setText(f"<b>{len(self.runs)} nodule stacks</b> in {study.root.name}")
        self.list.clear()
        for run in self.runs:
            item = QListWidgetItem(f"{run.label} · {len(run.slices)} slice{'s' if len(run.slices) > 1 else ''}")
            item.setData(Qt.ItemDataRole.UserRole, run.series_uid)
            item.setToolTip(run.key)
            self.list.addItem(item)

    def select(self, series_uid: str) -> None:
        for row in range(self.list.count()):
            if self.list.item(row).data(Qt.ItemDataRole.UserRole) == series_uid:
                self.list.blockSignals(True)
                self.list.setCurrentRow(row)
                self.list.blockSignals(False)

    def _activated(self, item: QListWidgetItem) -> None:
        uid = item.data(Qt.ItemDataRole.UserRole)
        run = next((r for r in self.runs if r.series_uid == uid), None)
        if run is not None:
            self.chosen.emit(run)


class LidcStudyController(QObject):
    """Opens studies and nodules into the session; `opened(case)` after each nodule, `failed(message)` on errors."""

    opened = Signal(object)   # LidcCase
    failed = Signal(str)

    def __init__(self, session: Session, picker: NodulePicker, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.picker = picker
        self.study: LidcStudy | None = None
        self.case = None
        picker.chosen.connect(self.open_run)
        follow(self, session, "volume_changed", self._on_volume)

    @staticmethod
    def handles(path) -> bool:
        return is_lidc_study(path)

    def open_study(self, path, series_uid: str | None = None) -> bool:
        """List the study at `path` and open the nodule `series_uid` (default: the first); False on failure."""
        try:
            study = open_study(Path(path))
        except LidcStudyError as exc:
            self.failed.emit(str(exc))
            return False
        run = study.find(series_uid) if series_uid else study.runs[0]
        if run is None:
            self.failed.emit(f"{path}: no nodule stack {series_uid} (give its series UID or a nodule id such as "
                             f"{study.runs[0].nodule_id})")
            return False
        self.study = study
        self.picker.set_study(study)
        return self.open_run(run)

    def open_run(self, run) -> bool:
        if self.case is not None and self.case.run == run and self.session.volume is self.case.volume:
            return True
        ratings = self.study.ratings.get((run.patient, run.nodule)) if self.study is not None else None
        try:
            case = load_case(run, ratings)
        except LidcStudyError as exc:
            self.failed.emit(str(exc))
            return False
        self.case = case
        self.session.set_volume(case.volume)
        self.session.set_window(*STANDARDISED_WINDOW[1])
        self.session.set_experts(experts_from_raters(case), revealed=False)
        self.picker.select(run.series_uid)
        self.opened.emit(case)
        return True

    def _on_volume(self, volume) -> None:
        if self.case is not None and volume is not self.case.volume:
            self.case = None  # another series (or nodule being opened): the raters no longer apply
