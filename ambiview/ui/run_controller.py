"""Running the chosen model on the session's prompts: requests, auto-run, streamed hypotheses, status for the panel.

Requests go to the one long-lived `InferenceClient` (ui/inference_worker.py); a newer request supersedes the older
one there, and stale answers never arrive here.

Computed ahead: the expensive, prompt-independent step (the image embedding of the ROI crop) is computed as soon as
a ROI is known -- with auto-run on, that is the moment the first prompt is placed -- and the worker caches it per ROI
(series, ROI, model, checkpoint digest and a fingerprint of the crop; session.segment.PreparedCache).  Every later
prompt that selects the same ROI (points added inside a box, a refined box whose ROI is unchanged), another seed or
another number of hypotheses reuses it and only samples.  Moving to another slice needs nothing: there is no ROI
there until a prompt is placed.

Hypotheses stream in batches; the first batch is shown at once as a provisional result (`HypothesisDisplay`), so the
first hypothesis is on screen while the others are drawn, and the final result goes to the session at the end.  Later
batches are shown at most every PROVISIONAL_EVERY_MS: every provisional result is laid out afresh (contours in three
views, and surfaces in the 3D view), so showing each of 20 quickly streamed 3-D hypotheses on its own cost seconds.

Warmed up ahead: when a 3D engine is chosen while a series is open (or a series opens while one is chosen), the
worker loads it and runs its first passes on a zero ROI (`InferenceClient.warm_up`) and `warming_up` tells the 3D
view to get ready, so that the first prompt of a session costs about what a later one does.  2D engines are not
warmed: a session that never uses 3D stays light.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from ..session import Session
from ..session.partial import partial_geometry, partial_result
from ..session.segment import active_prompts, views_note
from .bridge import follow
from .hypothesis_display import HypothesisDisplay
from .inference_worker import InferenceClient

AUTO_RUN_DELAY_MS = 150  # prompts placed in quick succession (a box, then a point) make one request
PROVISIONAL_EVERY_MS = 120  # batches arriving faster are shown together


@dataclass(frozen=True)
class RunSettings:
    """What the model panel chose: engine name (registry), its title and digest, N, seed, device (None = auto)."""

    engine: str = ""
    title: str = ""
    digest: str = ""
    n: int = 16
    seed: int = 0
    device: str | None = None
    dims: int = 2
    views: int = 1  # mirrored views (Probabilistic SAM; 1 for the other engines)


@dataclass
class _Request:
    settings: RunSettings
    volume: object
    prompts: tuple
    batches: list


class RunController(QObject):
    status = Signal(str)            # a line for the panel: "Embedding…", "7/16 hypotheses", a result summary
    error = Signal(str)             # a failure the user should read (the panel and the status bar show it)
    progress = Signal(int, int)     # done, total
    busy_changed = Signal(bool)
    result_ready = Signal(object)   # the final SegmentationResult, after the session has it
    warming_up = Signal(object)     # RunSettings of a 3D engine chosen with a series open: get ready for its results

    def __init__(self, session: Session, display: HypothesisDisplay, client: InferenceClient | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.display = session, display
        self.client = client if client is not None else InferenceClient(self)
        self.settings = RunSettings()
        self.auto_run = True
        self._request: _Request | None = None
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(AUTO_RUN_DELAY_MS)
        self._debounce.timeout.connect(self._auto_run_now)
        self._provisional = QTimer(self)
        self._provisional.setSingleShot(True)
        self._provisional.setInterval(PROVISIONAL_EVERY_MS)
        self._provisional.timeout.connect(self._show_provisional)
        self.client.started.connect(self._on_started)
        self.client.prepared.connect(self._on_prepared)
        self.client.progress.connect(self._on_progress)
        self.client.finished.connect(self._on_finished)
        self.client.failed.connect(self._on_failed)
        self.client.busy_changed.connect(self.busy_changed)
        follow(self, session, "prompts_changed", self._on_prompts)
        follow(self, session, "volume_changed", self._on_volume)

    @property
    def busy(self) -> bool:
        return self.client.busy

    # --- requests ---------------------------------------------------------------------------------------------------
    def set_settings(self, settings: RunSettings) -> None:
        """New choices from the panel; with auto-run on, prompts already placed are answered again with them."""
        old, self.settings = self.settings, settings
        if (settings.engine, settings.device, settings.dims) != (old.engine, old.device, old.dims):
            self._warm_up()
        if settings != old and self.auto_run and self.session.volume is not None and self.session.prompts:
            self._debounce.start()

    def _on_volume(self, volume) -> None:
        self.cancel(quiet=True)
        self._warm_up()

    def _warm_up(self) -> None:
        """A 3D engine with a series open: its first passes now, while the user places the prompt."""
        s = self.settings
        if s.engine and s.dims == 3 and self.session.volume is not None:
            self.client.warm_up(s.engine, s.device)
            self.warming_up.emit(s)

    def run(self) -> bool:
        """Submit the session's prompts with the current settings now; False (with a message) when nothing to run."""
        self._debounce.stop()
        volume, prompts, settings = self.session.volume, self.session.prompts, self.settings
        if volume is None:
            self.error.emit("Open a series first.")
            return False
        if not settings.engine:
            self.error.emit("No model is installed: see the Model panel.")
            return False
        if not prompts:
            self.error.emit("Place a point or draw a box on the lesion first.")
            return False
        self._request = _Request(settings, volume, tuple(prompts), [])
        self.client.submit(volume, prompts, settings.engine, settings.n, settings.seed, settings.device, settings.views)
        self.status.emit(f"Starting {settings.title or settings.engine}…")  # loads the engine the first time
        self.progress.emit(0, settings.n)
        return True

    def cancel(self, quiet: bool = False) -> None:
        """Stop the running request.  Hypotheses already drawn are kept as the result (they are valid draws of the
        same seed); `quiet` (a series closed) drops them."""
        self._debounce.stop()
        if self._provisional.isActive():  # the hypotheses drawn so far, all of them, are what is kept
            self._provisional.stop()
            self._show_provisional()
        request, self._request = self._request, None
        if not self.client.busy and request is None:
            return
        self.client.cancel()
        kept = self.display.provisional and request is not None and request.batches and not quiet
        if kept:
            self.session.set_result(self.display.views.result)
            self.status.emit(f"Cancelled: kept the {self.session.result.n} of {request.settings.n} hypotheses "
                             "drawn so far")
        else:
            self.display.end_provisional()
            if not quiet:
                self.status.emit("Cancelled")

    def shutdown(self) -> None:
        self._debounce.stop()
        self.client.shutdown()

    # --- auto-run ---------------------------------------------------------------------------------------------------
    def set_auto_run(self, on: bool) -> None:
        self.auto_run = bool(on)
        if not on:
            self._debounce.stop()

    def _on_prompts(self, prompts) -> None:
        if not self.auto_run or self.session.volume is None:
            return
        if not prompts:  # all prompts undone or cleared: their hypotheses go with them
            self.cancel(quiet=True)
            if self.session.result is not None:
                self.session.set_result(None)
                self.status.emit("")
            return
        self._debounce.start()

    def _auto_run_now(self) -> None:
        if self.session.prompts and not self._up_to_date():
            self.run()

    def _up_to_date(self) -> bool:
        """Whether the session's result already answers these prompts with these settings (e.g. a restored
        session), so that auto-run need not draw them again."""
        result, s = self.session.result, self.settings
        if result is None or self.client.busy:
            return False
        wanted = [p.to_dict() for p in active_prompts(self.session.prompts)]
        return (result.prompts == wanted and result.model == s.engine and result.n == s.n and result.seed == s.seed)

    # --- answers from the worker ------------------------------------------------------------------------------------
    def _on_started(self, title: str) -> None:
        self.status.emit(f"Embedding… ({title})")

    def _on_prepared(self, cached: bool) -> None:
        total = self._request.settings.n if self._request else 0
        self.status.emit(f"0/{total} hypotheses" + (" (embedding reused)" if cached else ""))

    def _on_progress(self, done: int, total: int, batch) -> None:
        request = self._request
        if request is None:
            return
        first = not request.batches
        batch = np.asarray(batch, np.float32)
        request.batches.append(batch)
        if batch.ndim == 4:  # 3D hypotheses: the 3D view starts their surfaces now, in the background
            try:
                geometry = partial_geometry(request.volume, request.prompts, batch)
            except ValueError:
                geometry = None
            if geometry is not None:
                self.display.announce(batch, geometry)
        self.status.emit(f"{done}/{total} hypotheses")
        self.progress.emit(done, total)
        if first:
            self._show_provisional(first=True)
        elif not self._provisional.isActive():
            self._provisional.start()

    def _show_provisional(self, first: bool = False) -> None:
        """Show every hypothesis streamed so far for the current request."""
        request = self._request
        if request is None or not request.batches:
            return
        s = request.settings
        try:
            partial = partial_result(request.volume, request.prompts, np.concatenate(request.batches), s.engine,
                                     s.title + views_note(s.views), s.digest, s.seed)
        except ValueError as exc:  # a batch that does not fit the ROI: show the final result only
            drawn = sum(len(batch) for batch in request.batches)
            self.status.emit(f"{drawn} hypotheses drawn (not shown until done: {exc})")
        else:
            self.display.show_provisional(partial, first=first)

    def _on_finished(self, result) -> None:
        self._provisional.stop()
        self._request = None
        self.session.set_result(result)
        self.progress.emit(result.n, result.n)
        self.status.emit(f"{result.n} hypotheses from {result.model_title or result.model} (seed {result.seed})")
        self.result_ready.emit(result)

    def _on_failed(self, message: str) -> None:
        self._provisional.stop()
        self._request = None
        self.display.end_provisional()
        text = message[:1].upper() + message[1:] if message else "The model failed."
        self.status.emit(text)
        self.error.emit(text)
