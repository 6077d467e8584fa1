"""The one long-lived inference thread (DESIGN: Threads).

A `InferenceWorker` QObject lives in a QThread started once: torch keeps per-thread caches, and a fresh thread per
request costs seconds on a GPU.  The GUI builds an immutable request (volume, prompts snapshot, engine name, n, seed,
id) and posts it; a newer request supersedes the older one, which stops at its next sample boundary.  Every signal
carries the request id, and `InferenceClient` drops answers whose id is stale.  The GUI thread never waits on it.

Warming up (`InferenceClient.warm_up`): while the user is still placing the first prompt, the worker loads the engine
and runs one throw-away `prepare` (and a two-hypothesis `sample`) on a zero ROI of the engine's shape, so that the
first real request does not pay for the checkpoint, torch's first passes and its kernel selection.  A warm-up is
superseded by any request (or cancel) posted after it: it stops at its next step, and never reports anything but
`warmed`; a failure there is left for the real request to report.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot

from ..imaging.volume import Volume
from ..models.mirror_views import set_views
from ..session.segment import PreparedCache, SegmentRequest, segment
from .gui_gc import collect_on_gui_thread

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InferenceJob:
    volume: Volume
    request: SegmentRequest
    engine_name: str
    device: str | None = None


@dataclass(frozen=True)
class WarmUpJob:
    engine_name: str
    device: str | None
    request_id: int  # the newest request id when it was posted: any later request (or cancel) supersedes it


def warm_up_image(engine) -> np.ndarray:
    """A zero ROI of the shape the engine is handed: (roi_depth, crop, crop) for a 3D engine, (crop, crop) else."""
    size = int(engine.crop_size)
    if engine.dims == 3:
        return np.zeros((int(getattr(engine, "roi_depth", 1)), size, size), np.float32)
    return np.zeros((size, size), np.float32)


class InferenceWorker(QObject):
    """Runs in the inference thread; never touches widgets."""

    started = Signal(int, str)                 # request id, engine title
    prepared = Signal(int, bool)               # request id, embedding came from the cache
    progress = Signal(int, int, int, object)   # request id, done, total, probabilities of the new batch (k, ...)
    finished = Signal(int, object)             # request id, SegmentationResult (possibly partial when superseded)
    failed = Signal(int, str)                  # request id, message for the user
    engine_loaded = Signal(str, str)           # engine name, device message (e.g. "CPU", "CUDA (fell back to CPU)")
    warmed = Signal(str)                       # engine name: a warm-up ran to its end

    def __init__(self) -> None:
        super().__init__()
        self._latest = 0
        self._lock = threading.Lock()
        self._engines: dict[tuple[str, str | None], Any] = {}
        self._cache = PreparedCache(capacity=16)
        self._warm: set[tuple[str, str | None]] = set()  # engines whose first passes are done

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
            set_views(engine, job.request.views)
            self.started.emit(rid, engine.title)
            n = job.request.n

            def on_sample(done: int, batch) -> None:
                if not self._stale(rid):
                    self.progress.emit(rid, done, n, batch)

            result = segment(job.volume, job.request.prompts, engine, n, job.request.seed, cache=self._cache,
                             on_sample=on_sample, cancel=lambda: self._stale(rid),
                             on_prepared=lambda cached: self.prepared.emit(rid, cached))
            self._warm.add((job.engine_name, job.device))
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

    @Slot(object)
    def warm_up(self, job: WarmUpJob) -> None:
        """Load the engine and run its first passes on a zero ROI; the result is thrown away."""
        key = (job.engine_name, job.device)

        def stale() -> bool:
            return self._stale(job.request_id)

        if key in self._warm or stale():
            return
        try:
            engine = self._engine(job.engine_name, job.device)
            if stale():
                return
            state = engine.prepare(warm_up_image(engine))
            if stale():
                return
            from ..models.base import ModelPrompts

            size = float(engine.crop_size)
            prompts = ModelPrompts(box=(size / 4, size / 4, 3 * size / 4 - 1, 3 * size / 4 - 1))
            engine.sample(state, prompts, 2, 0, cancel=stale)  # the first hypothesis alone, then a batch
        except Exception:  # noqa: BLE001 -- the real request reports what is wrong
            log.debug("warm-up of %s failed", job.engine_name, exc_info=True)
            return
        if not stale():
            self._warm.add(key)
            self.warmed.emit(job.engine_name)


class InferenceClient(QObject):
    """GUI-side handle: owns the thread, numbers requests, forwards only current answers."""

    submit_job = Signal(object)
    warm_up_job = Signal(object)
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
        self.warm_up_job.connect(self.worker.warm_up)
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

    def submit(self, volume: Volume, prompts, engine_name: str, n: int, seed: int, device: str | None = None,
               views: int = 1) -> int:
        """Post a request; any older one is superseded.  Returns the new request id."""
        self._next_id += 1
        rid = self._next_id
        self.current_id = rid
        self.worker.supersede(rid)
        self._set_busy(True)
        self.submit_job.emit(InferenceJob(volume, SegmentRequest(tuple(prompts), n, seed, rid, views), engine_name,
                                            device))
        return rid

    def warm_up(self, engine_name: str, device: str | None = None) -> None:
        """Have the worker load `engine_name` and run its first passes now, in the background (nothing is reported
        but the worker's `warmed`); the next request, or a cancel, supersedes it."""
        self.warm_up_job.emit(WarmUpJob(engine_name, device, self._next_id))

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
