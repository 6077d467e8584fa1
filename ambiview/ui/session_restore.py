"""Autosave while working, and the offer to restore after a crash or on reopening a series.

`AutosaveKeeper` watches the session: every change to prompts, result, hypothesis or window is saved about a second
later (debounced), a kept item at once, through `session.autosave` (atomic files in the user data folder).  Opening a
series marks it running; a clean close of the window marks it closed.  When a series opens for which a save exists,
the keeper offers it back (a question; tests pass `ask`), and at start-up it offers the newest save whose app did not
close cleanly, reopening its series first.  The offer comes after the opening has finished (a zero-delay timer), so
the restored result is the last thing the views hear about.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QTimer, Signal
from PySide6.QtWidgets import QMessageBox, QWidget

from ..session import Session, autosave
from .bridge import follow

SAVE_DELAY_MS = 1000
# (saved session, question text) -> restore it?  None: no answer (no dialogs shown): neither restore nor discard.
Ask = Callable[[autosave.SavedSession, str], "bool | None"]


class _Snapshot:
    """What `autosave.save` reads from a session, captured at the moment of a change (the session may move on to
    another series before the debounced save runs)."""

    def __init__(self, session: Session) -> None:
        self.volume = session.volume
        self.kept = list(session.kept)
        self.result = session.result
        self.prompts = tuple(session.prompts)
        self._view = session.view_state()

    def view_state(self) -> dict:
        return self._view

    @property
    def has_work(self) -> bool:
        return bool(self.kept or self.prompts or self.result is not None)


def describe(saved: autosave.SavedSession) -> str:
    """'chest CT (saved 2024-05-01T10:12:00+00:00): 2 kept items, 3 prompts, 16 hypotheses'."""
    parts = [f"{len(saved.kept)} kept item{'s' if len(saved.kept) != 1 else ''}",
             f"{len(saved.prompts)} prompt{'s' if len(saved.prompts) != 1 else ''}"]
    if saved.result is not None:
        parts.append(f"{saved.result.n} hypotheses")
    return f"{saved.description or 'a series'} (saved {saved.saved}): " + ", ".join(parts)


class AutosaveKeeper(QObject):
    restored = Signal(object)   # SavedSession, after Session.restore
    message = Signal(str)       # a line for the status bar

    def __init__(self, session: Session, parent: QWidget | None = None, ask: Ask | None = None,
                 open_path: Callable[[str, str], bool] | None = None, delay_ms: int = SAVE_DELAY_MS,
                 enabled: bool = True) -> None:
        super().__init__(parent)
        self.session = session
        self.enabled = enabled  # False (screenshots): no saves, no markers, no offers: leave no trace
        self.ask = ask if ask is not None else self._ask_dialog
        self.open_path = open_path      # (source, series_uid) -> started; used to reopen a crashed session's series
        self._parent = parent
        self._series: str | None = None
        self._offer_pending = False
        self._restore_on_open: dict[str, autosave.SavedSession] = {}
        self._snapshot: _Snapshot | None = None
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(delay_ms)
        self.timer.timeout.connect(self.flush)
        follow(self, session, "volume_changed", self._on_volume)
        for event in ("prompts_changed", "result_changed", "hypothesis_changed", "window_changed"):
            follow(self, session, event, lambda **_: self._changed(immediately=False))
        follow(self, session, "kept_changed", lambda kept: self._changed(immediately=True))
        if parent is not None:
            parent.installEventFilter(self)
        if session.volume is not None:
            self._on_volume(session.volume)

    # --- saving -----------------------------------------------------------------------------------------------------
    def _changed(self, immediately: bool) -> None:
        if self._series is None or self._offer_pending:
            return
        self._snapshot = _Snapshot(self.session)
        if immediately:
            self.flush()
        else:
            self.timer.start()

    def flush(self) -> None:
        """Write the pending change now (no-op when nothing is pending)."""
        self.timer.stop()
        snapshot, self._snapshot = self._snapshot, None
        if snapshot is None or snapshot.volume is None:
            return
        uid = snapshot.volume.identity.series_uid
        if not snapshot.has_work and not (autosave.folder_for(uid) / "session.json").exists():
            return  # nothing worth a file yet
        try:
            autosave.save(snapshot)
        except OSError as exc:
            self.message.emit(f"Autosave failed: {exc}")

    # --- opening and closing ------------------------------------------------------------------------------------------
    def _on_volume(self, volume) -> None:
        if not self.enabled:
            return
        self.flush()  # the previous series' last change
        if self._series is not None:
            autosave.mark_closed(self._series)
        uid = volume.identity.series_uid if volume is not None else ""
        self._series = uid or None
        if self._series is None:
            return
        crashed = (autosave.folder_for(uid) / "running").exists()  # before our own marker goes down
        autosave.mark_running(uid)
        self._offer_pending = True
        QTimer.singleShot(0, lambda: self._offer(uid, crashed))

    def _offer(self, uid: str, crashed: bool) -> None:
        if self._series != uid:  # another series was opened in the meantime
            return
        try:
            try:
                saved = autosave.find(uid)
            except ValueError as exc:
                self.message.emit(str(exc))
                return
            if saved is None or not (saved.kept or saved.prompts or saved.result is not None):
                return
            shape = tuple(self.session.volume.shape) if self.session.volume is not None else ()
            grids = {tuple(k.volume_shape) for k in saved.kept} | \
                ({tuple(saved.result.volume_shape)} if saved.result is not None else set())
            if grids - {shape}:
                self.message.emit(f"Saved work on this series was made on a grid of {min(grids - {shape})}, "
                                  f"the series now has {shape}; it was not restored")
                return
            wanted = self._restore_on_open.pop(uid, None) is not None
            if not wanted:
                how = "was not closed cleanly" if crashed else "was saved"
                wanted = self.ask(saved, f"Earlier work on this series {how}:\n{describe(saved)}\n\nRestore it?")
            if wanted is None:
                return
            if wanted:
                self.session.restore(saved)
                self.message.emit(f"Restored {describe(saved)}")
                self.restored.emit(saved)
            else:
                autosave.discard(uid)
                autosave.mark_running(uid)
        finally:
            if self._series == uid:
                self._offer_pending = False

    def offer_unfinished(self) -> bool:
        """At start-up: offer the newest session whose app did not close cleanly; reopen its series if accepted."""
        found = autosave.unfinished() if self.enabled else []
        if not found:
            return False
        saved = found[0]
        answer = self.ask(saved, f"AmbiView did not close cleanly while you worked on\n{describe(saved)}\n\n"
                                 "Reopen the series and restore the work?")
        if answer is None:
            return False
        if not answer:
            autosave.mark_closed(saved.series_uid)  # asked once; the save stays and is offered when reopened
            return False
        source = Path(saved.source) if saved.source else None
        if source is None or not source.exists() or self.open_path is None:
            self.message.emit(f"Cannot reopen {saved.source or 'the series'}: the folder no longer exists; the saved "
                              "work stays and is offered when the series is opened again")
            return False
        self._restore_on_open[saved.series_uid] = saved
        return bool(self.open_path(str(source), saved.series_uid))

    def close(self) -> None:
        """A clean end: save what is pending and mark the series closed."""
        self.flush()
        if self._series is not None:
            autosave.mark_closed(self._series)
            self._series = None

    def eventFilter(self, watched, event) -> bool:
        if watched is self._parent and event.type() == QEvent.Type.Close:
            self.close()
        return False

    def _ask_dialog(self, saved: autosave.SavedSession, question: str) -> bool:
        answer = QMessageBox.question(self._parent, "Restore earlier work", question,
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.Yes)
        return answer == QMessageBox.StandardButton.Yes
