"""The one long-lived inference thread (DESIGN: Threads).

A `InferenceWorker` QObject lives in a QThread started once: torch keeps per-thread caches, and a fresh thread per
request costs seconds on a GPU.  The GUI builds an immutable request (volume, prompts snapshot, engine name, n, seed,
id) and posts it; a newer request supersedes the older one, which stops at its next sample boundary.  Every signal
carries the request id, and `InferenceClient` drops answers whose id is stale.  The GUI thread never waits on it.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from ..imaging.volume import Volume
from ..session.segment import PreparedCache, SegmentRequest, segment
from .gui_gc import collect_on_gui_thread

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InferenceJob:
    volume: Volume
    request: SegmentRequest
    engine_name: str
    device: str | None = None


class InferenceWorker(QObject):
    """Runs in the inference thread; never touches widgets."""

    started = Signal(int, str)                 # request id, engine title
    prepared = Signal(int, bool)               # request id, embedding came from the cache
    progress = Signal(int, int, int, object)   # request id, done, total, probabilities of the new batch (k, ...)
    finished = Signal(int, object)             # request id, SegmentationResult (possibly partial when superseded)
    failed = Signal(int, str)                  # request id, message for the user
    engine_loaded = Signal(str, str)           # engine name, device message (e.g. "CPU", "CUDA (fell back to CPU)")

    def __init__(self) -> None:
        super().__init__()
        self._latest = 0
        self._lock = threading.Lock()
        self._engines: dict[tuple[str, str | None], Any] = {}
        self._cache = PreparedCache(capacity=16)

    def supersede(self, request_id: int) -> None:
        """Called from the GUI thread: any job older than request_id stops at its next sample boundary."""
        with self._lock:
            self._latest = max(self._latest, request_id)

    def _stale(self, request_id: int) -> bool:
        with self._lock:
            return request_id < self._latest

    def _engine(self, name: str, device: str | None):
        key = (name, device)
        if key not in self._engines:
            from ..models.registry import load_engine  # torch and the checkpoint load on first use, in this thread

            self._engines[key] = load_engine(name, device=device)
            engine = self._engines[key]
            self.engine_loaded.emit(name, str(getattr(engine, "device", "cpu")))
        return self._engines[key]

    @Slot(object)
    def run(self, job: InferenceJob) -> None:
        rid = job.request.request_id
        if self._stale(rid):
            return
        try:
            engine = self._engine(job.engine_name, job.device)
            self.started.emit(rid, engine.title)
            n = job.request.n

            def on_sample(done: int, batch) -> None:
                if not self._stale(rid):
                    self.progress.emit(rid, done, n, batch)

            result = segment(job.volume, job.request.prompts, engine, n, job.request.seed, cache=self._cache,
                             on_sample=on_sample, cancel=lambda: self._stale(rid),
                             on_prepared=lambda cached: self.prepared.emit(rid, cached))
            if not self._stale(rid):
                self.finished.emit(rid, result)
        except Exception as exc:  # every failure reaches the user as a message, never as a dead thread
            from ..models.base import ModelError
            from ..session.segment import PromptError

            if isinstance(exc, (ModelError, PromptError)):
                message = str(exc)
            else:
                message = f"the model failed: {exc.__class__.__name__}: {exc}"
                log.exception("inference request %d failed", rid)
            self.failed.emit(rid, message)


class InferenceClient(QObject):
    """GUI-side handle: owns the thread, numbers requests, forwards only current answers."""

    submit_job = Signal(object)
    started = Signal(str)
    prepared = Signal(bool)
    progress = Signal(int, int, object)
    finished = Signal(object)
    failed = Signal(str)
    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        collect_on_gui_thread()  # the worker thread must never run Python's collector on Qt objects
        self._next_id = 0
        self.current_id = 0
        self.busy = False
        self.thread = QThread()
        self.thread.setObjectName("ambiview-inference")
        self.worker = InferenceWorker()
        self.worker.moveToThread(self.thread)
        self.submit_job.connect(self.worker.run)
        self.worker.started.connect(lambda rid, title: self._forward(rid, self.started, title))
        self.worker.prepared.connect(lambda rid, cached: self._forward(rid, self.prepared, cached))
        self.worker.progress.connect(lambda rid, d, t, b: self._forward(rid, self.progress, d, t, b))
        self.worker.finished.connect(self._on_finished)
        self.worker.failed.connect(self._on_failed)
        self.thread.start()

    def _forward(self, rid: int, signal, *args) -> None:
        if rid == self.current_id:
            signal.emit(*args)

    def _set_busy(self, busy: bool) -> None:
        if busy != self.busy:
            self.busy = busy
            self.busy_changed.emit(busy)

    def submit(self, volume: Volume, prompts, engine_name: str, n: int, seed: int, device: str | None = None) -> int:
        """Post a request; any older one is superseded.  Returns the new request id."""
        self._next_id += 1
        rid = self._next_id
        self.current_id = rid
        self.worker.supersede(rid)
        self._set_busy(True)
        self.submit_job.emit(InferenceJob(volume, SegmentRequest(tuple(prompts), n, seed, rid), engine_name, device))
        return rid

    def cancel(self) -> None:
        """Stop the current request at its next sample boundary and forget it."""
        self._next_id += 1
        self.current_id = self._next_id
        self.worker.supersede(self._next_id)
        self._set_busy(False)

    def _on_finished(self, rid: int, result) -> None:
        if rid == self.current_id:
            self._set_busy(False)
            self.finished.emit(result)

    def _on_failed(self, rid: int, message: str) -> None:
        if rid == self.current_id:
            self._set_busy(False)
            self.failed.emit(message)

    def shutdown(self) -> None:
        self.cancel()
        self.thread.quit()
        self.thread.wait(10000)
