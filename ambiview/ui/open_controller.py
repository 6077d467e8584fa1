"""Opening a folder, a file or the demo: scan -> (choose a series) -> load, with a progress dialog and Cancel.

Runs on the GUI thread and drives the loader thread; answers of jobs it has given up on are dropped.
Exactly one of `opened`, `failed` or `cancelled` ends every accepted request.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QProgressDialog, QWidget

from ..imaging.loader import nothing_loadable_message
from .load_worker import LoaderThread
from .problems_panel import LoadReport
from .series_picker import choose_series, order_series


class OpenController(QObject):
    opened = Signal(object, object)  # Volume, LoadReport
    failed = Signal(str, object)  # message, LoadReport (what the scan found, possibly empty)
    cancelled = Signal()

    def __init__(self, parent: QWidget, choose: Callable = choose_series) -> None:
        super().__init__(parent)
        self._parent = parent
        self.choose_series = choose  # (series, source, parent) -> SeriesInfo | None; tests replace it
        self._loader = LoaderThread(self)
        worker = self._loader.worker
        worker.progress.connect(self._on_progress)
        worker.scanned.connect(self._on_scanned)
        worker.loaded.connect(self._on_loaded)
        worker.failed.connect(self._on_failed)
        worker.cancelled.connect(self._on_cancelled)
        self._job: int | None = None
        self._source: Path | None = None
        self._series_uid: str | None = None
        self._scan = None
        self.progress_dialog: QProgressDialog | None = None

    @property
    def busy(self) -> bool:
        return self._job is not None

    @property
    def scan(self):
        """The ScanResult of the last folder scanned (its non-image files list RTSTRUCTs beside the series)."""
        return self._scan

    def open_path(self, path, series_uid: str | None = None) -> bool:
        """Start opening a folder (scanned recursively) or a file; False when another opening is under way."""
        return self._start(Path(path).expanduser().absolute(), series_uid)

    def open_demo(self) -> bool:
        return self._start(None, None)

    def _start(self, source: Path | None, series_uid: str | None) -> bool:
        if self.busy:
            return False
        self._source, self._series_uid, self._scan = source, series_uid, None
        self._open_dialog("Preparing the demo study…" if source is None else "Scanning files…")
        self._job = self._loader.scan(source)
        return True

    def cancel(self) -> None:
        """Give up on the running request (the worker stops at its next step); emits `cancelled`."""
        if self._job is None:
            return
        self._loader.cancel(self._job)
        self._finish()
        self.cancelled.emit()

    def shutdown(self) -> None:
        self._job = None
        self._close_dialog()
        self._loader.shutdown()

    # --- progress dialog --------------------------------------------------------------------------------------------
    def _open_dialog(self, text: str) -> None:
        dialog = QProgressDialog(text, "Cancel", 0, 0, self._parent)
        dialog.setWindowTitle("Opening")
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.setMinimumDuration(400)
        dialog.setAutoClose(False)
        dialog.setAutoReset(False)
        dialog.canceled.connect(self.cancel)
        self.progress_dialog = dialog

    def _close_dialog(self) -> None:
        if self.progress_dialog is not None:
            self.progress_dialog.canceled.disconnect(self.cancel)
            self.progress_dialog.close()
            self.progress_dialog.deleteLater()
            self.progress_dialog = None

    def _on_progress(self, job: int, stage: str, done: int, total: int) -> None:
        if job != self._job or self.progress_dialog is None:
            return
        self.progress_dialog.setLabelText(stage)
        self.progress_dialog.setMaximum(max(total, 0))
        self.progress_dialog.setValue(min(done, total) if total > 0 else 0)

    # --- worker answers ---------------------------------------------------------------------------------------------
    def _finish(self) -> None:
        self._job = None
        self._close_dialog()

    def _on_scanned(self, job: int, path: Path, scan) -> None:
        if job != self._job:
            return
        self._scan = scan
        candidates = order_series(list(scan.series))
        if not candidates:
            self._fail(nothing_loadable_message(scan))
            return
        if self._series_uid:
            chosen = next((s for s in candidates if s.series_uid == self._series_uid), None)
            if chosen is None:
                self._fail(f"No series with UID {self._series_uid} in {path}.")
                return
        elif len(candidates) == 1:
            chosen = candidates[0]
        else:
            if self.progress_dialog is not None:
                self.progress_dialog.hide()
            chosen = self.choose_series(candidates, str(path), self._parent)
            if job != self._job:  # cancelled or shut down while the picker was open
                return
            if chosen is None:
                self.cancel()
                return
            if self.progress_dialog is not None:
                self.progress_dialog.show()
        self._job = self._loader.load(chosen)

    def _on_loaded(self, job: int, series, volume) -> None:
        if job != self._job:
            return
        report = LoadReport.from_results(self._source, self._scan, series, volume)
        self._finish()
        self.opened.emit(volume, report)

    def _fail(self, message: str) -> None:
        report = LoadReport.from_results(self._source, self._scan)
        self._finish()
        self.failed.emit(message, report)

    def _on_failed(self, job: int, message: str) -> None:
        if job == self._job:
            self._fail(message)

    def _on_cancelled(self, job: int) -> None:
        if job == self._job:  # the worker stopped by itself (it is only cancelled through us, normally)
            self._finish()
            self.cancelled.emit()

