"""Unexpected exceptions: a short message box for the user and a traceback in a log file, never a dead window.

The log (`data_dir()/ambiview.log`) holds the exception type and the stack (file, line, function, source line) but
not the exception's message or any variable: messages can carry file paths or header values that name a patient.
"""
from __future__ import annotations

import sys
import traceback
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Callable

from ..paths import data_dir

LOG_NAME = "ambiview.log"
_MAX_LOG_BYTES = 1_000_000


def log_path() -> Path:
    return data_dir() / LOG_NAME


def format_exception_safely(exc_type: type[BaseException], tb: TracebackType | None) -> str:
    """The exception's type and stack, without its message (see the module note)."""
    lines = [f"{exc_type.__module__}.{exc_type.__qualname__}"]
    for frame in traceback.extract_tb(tb):
        lines.append(f'  File "{frame.filename}", line {frame.lineno}, in {frame.name}')
        if frame.line:
            lines.append(f"    {frame.line.strip()}")
    return "\n".join(lines)


def log_exception(exc_type: type[BaseException], exc: BaseException | None, tb: TracebackType | None) -> Path | None:
    """Append a dated entry to the log (rotating it once past ~1 MB); returns the log path, None if unwritable."""
    path = log_path()
    try:
        if path.exists() and path.stat().st_size > _MAX_LOG_BYTES:
            path.replace(path.with_suffix(".log.1"))
        with path.open("a", encoding="utf-8") as handle:
            handle.write(f"--- {datetime.now().isoformat(timespec='seconds')} unexpected error\n")
            handle.write(format_exception_safely(exc_type, tb) + "\n")
    except OSError:
        return None
    return path


def _show_message_box(text: str) -> None:
    from PySide6.QtWidgets import QApplication, QMessageBox

    if QApplication.instance() is not None:
        QMessageBox.critical(QApplication.activeWindow(), "AmbiView: unexpected error", text)


def install_excepthook(show: Callable[[str], None] = _show_message_box) -> Callable:
    """Replace sys.excepthook: log the traceback, tell the user in one short message, keep running."""
    busy = False

    def hook(exc_type, exc, tb) -> None:
        nonlocal busy
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)
            return
        where = log_exception(exc_type, exc, tb)
        if busy:  # an error while showing the previous one: the log has it, do not stack message boxes
            return
        busy = True
        try:
            detail = f"Details were written to {where}." if where else "The log file could not be written."
            show(f"Something went wrong ({exc_type.__name__}). AmbiView keeps running; "
                 f"the last action may not have completed.\n\n{detail}")
        finally:
            busy = False

    sys.excepthook = hook
    return hook
