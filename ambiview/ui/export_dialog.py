"""Export the kept items: which items (ticked), which formats, which folder; written off the GUI thread.

The folder defaults to a new export folder under the user data folder (`default_export_dir`); the source folder of
the series (or a folder inside it) is refused with a message, as are an empty choice and empty masks.  The work is
`session.export_plan.run_export` on a snapshot of the request, run on a worker thread; the dialog lists the files
written, or the error with what was already written.
"""
from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..export.bundle import DICOM_FORMATS
from ..export.items import ExportError
from ..session import Session
from ..session.export_plan import (
    ExportOutcome,
    ExportRequest,
    check_folder,
    check_request,
    default_folder,
    dicom_problem,
    run_export,
)
from .crash_log import log_exception

FORMAT_LABELS = {
    "rtstruct": "DICOM RTSTRUCT (contours, one ROI per item)",
    "seg": "DICOM SEG, binary (one segment per item)",
    "seg_fractional": "DICOM SEG, fractional: mean probability of the current hypotheses",
    "nifti": "NIfTI (one .nii.gz mask per item)",
}


class _ExportRunner(QObject):
    """Runs one export on a plain worker thread; answers by queued signals."""

    progress = Signal(int, int, str)
    finished = Signal(object)   # ExportOutcome
    failed = Signal(str)

    def start(self, request: ExportRequest) -> threading.Thread:
        thread = threading.Thread(target=self._run, args=(request,), name="ambiview-export", daemon=True)
        thread.start()
        return thread

    def _run(self, request: ExportRequest) -> None:
        try:
            outcome = run_export(request, progress=lambda done, total, what: self.progress.emit(done, total, what))
        except ExportError as exc:
            self.failed.emit(str(exc))
        except Exception as exc:  # noqa: BLE001 -- a bug, not bad input: keep the app up, leave a trace in the log
            log_exception(type(exc), exc, exc.__traceback__)
            self.failed.emit(f"Unexpected error while exporting ({type(exc).__name__}); see the log for details.")
        else:
            self.finished.emit(outcome)


class ExportDialog(QDialog):
    done_writing = Signal(object)   # ExportOutcome
    export_failed = Signal(str)

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export kept items")
        self.session = session
        self.outcome: ExportOutcome | None = None
        self._thread: threading.Thread | None = None
        volume = session.volume

        self.items_list = QListWidget()
        for item in session.kept:
            row = QListWidgetItem(f"{item.name}  ({item.kind})")
            pixmap = QPixmap(12, 12)
            pixmap.fill(QColor(*item.color))
            row.setIcon(QIcon(pixmap))
            row.setToolTip(item.description)
            row.setFlags(row.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            row.setCheckState(Qt.CheckState.Checked)
            self.items_list.addItem(row)
        items_box = QGroupBox("What: kept items")
        QVBoxLayout(items_box).addWidget(self.items_list)

        formats_box = QGroupBox("Format")
        formats_layout = QVBoxLayout(formats_box)
        self.format_boxes: dict[str, QCheckBox] = {}
        problem = dicom_problem(volume)
        for kind, label in FORMAT_LABELS.items():
            box = QCheckBox(label)
            box.setChecked(kind == "rtstruct" and problem is None or kind == "nifti" and problem is not None)
            if kind in DICOM_FORMATS and problem is not None:
                box.setEnabled(False)
                box.setToolTip(problem)
            if kind == "seg_fractional" and session.result is None:
                box.setEnabled(False)
                box.setToolTip("There are no hypotheses to average")
            formats_layout.addWidget(box)
            self.format_boxes[kind] = box
        if problem is not None:
            note = QLabel("DICOM formats need a series loaded from DICOM; this one can be written as NIfTI.")
            note.setWordWrap(True)
            formats_layout.addWidget(note)

        self.folder_edit = QLineEdit(str(default_folder(volume)))
        browse = QPushButton("Choose…")
        browse.clicked.connect(self.choose_folder)
        folder_box = QGroupBox("Where")
        folder_row = QHBoxLayout(folder_box)
        folder_row.addWidget(self.folder_edit, 1)
        folder_row.addWidget(browse)

        self.status = QLabel()
        self.status.setWordWrap(True)
        self.report = QPlainTextEdit()
        self.report.setReadOnly(True)
        self.report.setMaximumHeight(110)
        self.report.hide()
        self.buttons = QDialogButtonBox()
        self.export_button = self.buttons.addButton("Export", QDialogButtonBox.ButtonRole.AcceptRole)
        self.close_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.export_button.clicked.connect(self.start_export)
        self.close_button.clicked.connect(self.reject)
        self.export_button.setDefault(True)

        layout = QVBoxLayout(self)
        layout.addWidget(items_box, 1)
        layout.addWidget(formats_box)
        layout.addWidget(folder_box)
        layout.addWidget(self.status)
        layout.addWidget(self.report)
        layout.addWidget(self.buttons)
        self.resize(560, 520)
        self.runner = _ExportRunner()
        self.runner.progress.connect(self._on_progress)
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(self._on_failed)
        if not session.kept:
            self.status.setText("Nothing is kept yet: keep a hypothesis, a consensus, STAPLE or an interpretation "
                                "first.")
            self.export_button.setEnabled(False)

    # --- the request --------------------------------------------------------------------------------------------------
    def chosen_items(self):
        kept = list(self.session.kept)
        return [kept[r] for r in range(self.items_list.count())
                if r < len(kept) and self.items_list.item(r).checkState() == Qt.CheckState.Checked]

    def chosen_formats(self) -> tuple[str, ...]:
        return tuple(k for k, box in self.format_boxes.items() if box.isChecked() and box.isEnabled())

    def request(self) -> ExportRequest:
        return ExportRequest(self.session.volume, tuple(self.chosen_items()), self.chosen_formats(),
                             Path(self.folder_edit.text().strip()).expanduser(), self.session.result)

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export into", self.folder_edit.text())
        if folder:
            self.folder_edit.setText(folder)
            try:
                check_folder(folder, self.session.volume)
            except ExportError as exc:
                self.status.setText(str(exc))

    # --- running ------------------------------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start_export(self) -> bool:
        """Check the request and start writing; False (with the reason shown) when it is refused."""
        if self.busy:
            return False
        if self.session.volume is None:
            self._refuse("No series is open.")
            return False
        request = self.request()
        try:
            check_request(request)
        except ExportError as exc:
            self._refuse(str(exc))
            return False
        self.report.hide()
        self.status.setText("Writing…")
        self.export_button.setEnabled(False)
        self._thread = self.runner.start(request)
        return True

    def _refuse(self, message: str) -> None:
        self.status.setText(f"<span style='color:#e05050'>{message}</span>")
        self.export_failed.emit(message)

    def _on_progress(self, done: int, total: int, what: str) -> None:
        if done < total:
            self.status.setText(f"Writing {done + 1} of {total}: {what}")

    def _on_finished(self, outcome: ExportOutcome) -> None:
        self.outcome = outcome
        self.export_button.setEnabled(True)
        folder = outcome.written[0][1].parent if outcome.written else ""
        self.status.setText(f"Wrote {len(outcome.written)} file(s) into {folder}")
        lines = [str(path) for _, path in outcome.written] + [f"note: {n}" for n in outcome.notes]
        self.report.setPlainText("\n".join(lines))
        self.report.show()
        self.done_writing.emit(outcome)

    def _on_failed(self, message: str) -> None:
        self.export_button.setEnabled(True)
        self._refuse(message)

    def written_paths(self) -> list[Path]:
        return [path for _, path in self.outcome.written] if self.outcome is not None else []

    def reject(self) -> None:
        if self.busy:  # the files being written would be left without anyone to report them to
            self.status.setText("Still writing; close when it has finished.")
            return
        super().reject()
