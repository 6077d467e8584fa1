"""Scanning and loading off the GUI thread: one long-lived worker on a QThread, driven by signals.

The worker calls the imaging API (`scan_path`, `load_series`, `demo_series_dir`) with a progress callback that
emits a Qt signal and a cancel callback that compares job numbers.  Every job has a number; every answer carries it,
so the GUI can drop answers of a job it has given up on.  Jobs run one after the other on the same thread, and
cancelling job n stops it at its next progress step without touching a job queued after it.
"""
from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QObject, QThread, Signal, Slot

from ..imaging.errors import LoadCancelled, LoadError
from ..imaging.loader import load_series
from ..imaging.scan import scan_path
from .crash_log import log_exception
from .gui_gc import collect_on_gui_thread

_PROGRESS_INTERVAL_S = 0.05  # at most ~20 progress signals a second


class LoadWorker(QObject):
    """Lives on the loader thread.  Each job ends with exactly one of scanned/loaded, failed or cancelled."""

    progress = Signal(int, str, int, int)  # job, stage text, done, total
    scanned = Signal(int, object, object)  # job, the scanned path, ScanResult
    loaded = Signal(int, object, object)  # job, SeriesInfo, Volume
    failed = Signal(int, str)  # job, message for the user
    cancelled = Signal(int)  # job

    def __init__(self) -> None:
        super().__init__()
        self.cancelled_upto = 0  # jobs numbered <= this stop; written by the GUI thread (an atomic int store)
        self._last_emit = 0.0

    def _callbacks(self, job: int, stage: str):
        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if done >= total or now - self._last_emit >= _PROGRESS_INTERVAL_S:
                self._last_emit = now
                self.progress.emit(job, stage, int(done), int(total))

        def cancel() -> bool:
            return job <= self.cancelled_upto

        return progress, cancel

    def _run(self, job: int, what: str, work) -> None:
        """Run `work()` and turn its outcome into exactly one answer signal."""
        try:
            work()
        except LoadCancelled:
            self.cancelled.emit(job)
        except LoadError as exc:
            self.failed.emit(job, str(exc))
        except Exception as exc:  # a bug, not bad input: keep the app up and leave a trace in the log
            log_exception(type(exc), exc, exc.__traceback__)
            self.failed.emit(job, f"Unexpected error while {what} ({type(exc).__name__}); see the log for details.")

    @Slot(int, object)
    def scan(self, job: int, path: Path | None) -> None:
        """Scan `path` recursively; `None` means the demo study (generated into the cache on first use)."""
        def work() -> None:
            source = path
            if source is None:
                from ..imaging.demo import demo_series_dir  # here: the demo generator is only needed for the demo

                source = demo_series_dir(progress=self._callbacks(job, "Preparing the demo study…")[0])
            progress, cancel = self._callbacks(job, "Scanning files…")
            if cancel():
                raise LoadCancelled()
            result = scan_path(source, progress=progress, cancel=cancel)
            self.scanned.emit(job, Path(source), result)

        self._run(job, "scanning", work)

    @Slot(int, object)
    def load(self, job: int, series) -> None:
        def work() -> None:
            progress, cancel = self._callbacks(job, "Loading slices…")
            if cancel():
                raise LoadCancelled()
            self.loaded.emit(job, series, load_series(series, progress=progress, cancel=cancel))

        self._run(job, "loading", work)


class LoaderThread(QObject):
    """Owns the worker's QThread.  `scan`/`load` queue a job and return its number; `cancel(job)` stops it."""

    _scan_requested = Signal(int, object)
    _load_requested = Signal(int, object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        collect_on_gui_thread()  # the loader thread must never run Python's collector on Qt objects
        self._jobs = 0
        self._thread = QThread()
        self._thread.setObjectName("ambiview-loader")
        self.worker = LoadWorker()
        self.worker.moveToThread(self._thread)
        self._scan_requested.connect(self.worker.scan)
        self._load_requested.connect(self.worker.load)
        self._thread.start()

    def _next_job(self) -> int:
        self._jobs += 1
        return self._jobs

    def scan(self, path: Path | None) -> int:
        job = self._next_job()
        self._scan_requested.emit(job, path)
        return job

    def load(self, series) -> int:
        job = self._next_job()
        self._load_requested.emit(job, series)
        return job

    def cancel(self, job: int | None = None) -> None:
        """Stop job `job` (default: every job queued so far)."""
        self.worker.cancelled_upto = max(self.worker.cancelled_upto, self._jobs if job is None else job)

    def shutdown(self) -> None:
        """Stop the running job and the thread; call before the application quits."""
        if self._thread.isRunning():
            self.cancel()
            self._thread.quit()
            self._thread.wait()
