"""`ambiview ... --screenshot OUT.png`: open, render the main window at a fixed size, save a PNG, exit.

Exit code 0 when the PNG was written; 1 with a one-line message on stderr when opening, rendering or writing
failed (including an unexpected exception, which also goes to the log).
"""
from __future__ import annotations

import argparse
import sys

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from .crash_log import log_exception
from .main_window import MainWindow
from .screenshot import save_widget_png

_SETTLE_MS = 100  # let the layout settle after the last change before grabbing


def resolve_slice(index: int, n_slices: int) -> int:
    """A user's slice index (negative counts from the end) -> 0..n-1; ValueError when out of range."""
    z = index + n_slices if index < 0 else index
    if not 0 <= z < n_slices:
        raise ValueError(f"slice {index} is out of range: the series has {n_slices} slices (0..{n_slices - 1})")
    return z


def run_screenshot(app: QApplication, args: argparse.Namespace) -> int:
    window = MainWindow(show_dialogs=False, remember_recent=False)
    outcome: dict[str, int] = {}

    def finish(code: int, message: str = "") -> None:
        if "code" in outcome:
            return
        outcome["code"] = code
        if message:
            print(f"ambiview: {message}", file=sys.stderr)
        app.exit(code)

    def hook(exc_type, exc, tb) -> None:
        where = log_exception(exc_type, exc, tb)
        finish(1, f"unexpected error ({exc_type.__name__})" + (f"; details in {where}" if where else ""))

    def opened(volume) -> None:
        if args.preset:
            window.session.apply_preset(args.preset)
        if args.slice is not None:
            try:
                window.session.set_slice(resolve_slice(args.slice, volume.shape[0]))
            except ValueError as exc:
                finish(1, str(exc))
                return
        if args.box is not None:
            run_model(volume)
        else:
            QTimer.singleShot(_SETTLE_MS, shoot)

    def run_model(volume) -> None:
        """--box: place the prompt, run the model, zoom onto its ROI, then shoot (a failure ends with its message)."""
        ui = window.hypotheses
        if args.model and not ui.model_panel.select_engine(args.model):
            names = ", ".join(info.name for info in ui.model_panel.engines) or "none installed"
            finish(1, f"model {args.model!r} is not installed (installed: {names})")
            return
        if args.views is not None:
            if not ui.model_panel.views.isEnabled():
                finish(1, f"{ui.model_panel.current_engine().title} has no mirrored views (--views is for "
                          "Probabilistic SAM)")
                return
            ui.model_panel.views.setValue(args.views)
        z, y0, x0, y1, x1 = args.box
        if not (0 <= z < volume.shape[0] and 0 <= y0 < y1 < volume.shape[1] and 0 <= x0 < x1 < volume.shape[2]):
            finish(1, f"box {args.box} lies outside the series (shape {volume.shape})")
            return
        ui.controller.set_auto_run(False)
        ui.controller.error.connect(lambda message: finish(1, message))
        ui.controller.result_ready.connect(lambda result: (ui.focus_on_result(), QTimer.singleShot(_SETTLE_MS, shoot)))
        window.session.add_box(z, y0, x0, y1, x1)
        ui.controller.run()

    def shoot() -> None:
        if args.compare:
            window.review.show_compare()
        try:
            path = save_widget_png(window, args.screenshot)
        except OSError as exc:
            finish(1, str(exc))
        else:
            print(f"wrote {path}")
            finish(0)

    saved_hook, sys.excepthook = sys.excepthook, hook
    try:
        window.volume_opened.connect(opened)
        window.open_failed.connect(lambda message: finish(1, message.replace("\n", " ")))
        window.controller.cancelled.connect(lambda: finish(1, "opening was cancelled"))
        window.resize(*args.size)
        window.show()
        started = window.open_demo() if args.demo else window.open_path(args.path, args.series)
        if not started:
            return 1
        code = app.exec() if "code" not in outcome else outcome["code"]
        return int(outcome.get("code", code))
    finally:
        window.close()
        window.deleteLater()
        sys.excepthook = saved_hook
