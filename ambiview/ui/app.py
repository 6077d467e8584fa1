"""`ambiview [PATH] [--demo] [--screenshot OUT.png]`: the desktop application's entry point."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .. import __version__
from ..imaging.windowing import PRESETS
from ..models.mirror_views import MAX_VIEWS  # torch-free

SCREENSHOT_SIZE = (1600, 1000)


def _preset_name(text: str) -> str:
    for name in PRESETS:
        if name.lower() == text.strip().lower():
            return name
    raise argparse.ArgumentTypeError(f"unknown preset {text!r}; choose from {', '.join(PRESETS)}")


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 1600x1000, not {text!r}") from None
    if not (200 <= w <= 8000 and 200 <= h <= 8000):
        raise argparse.ArgumentTypeError(f"size {text} is out of range (200..8000 pixels a side)")
    return w, h


def _box(text: str) -> tuple[float, float, float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 5:
        raise argparse.ArgumentTypeError(f"a box is Z,Y0,X0,Y1,X1 in voxel indices, not {text!r}")
    _, y0, x0, y1, x1 = values
    if y1 <= y0 or x1 <= x0:
        raise argparse.ArgumentTypeError(f"box {text}: Y1 must exceed Y0 and X1 must exceed X0")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ambiview", description="AmbiView: view a CT series, place prompts, "
                                     "see the spread of plausible segmentations.")
    parser.add_argument("path", nargs="?", type=Path, help="DICOM folder (searched recursively) or file to open")
    parser.add_argument("--demo", action="store_true", help="open the built-in synthetic demo study")
    parser.add_argument("--series", metavar="UID", help="open this SeriesInstanceUID without asking")
    parser.add_argument("--screenshot", metavar="OUT.png", type=Path,
                        help="load, save a PNG of the main window and exit (no display needed)")
    parser.add_argument("--size", type=_size, default=SCREENSHOT_SIZE, metavar="WxH",
                        help="window size for --screenshot (default 1600x1000)")
    parser.add_argument("--preset", type=_preset_name, metavar="NAME",
                        help=f"window/level preset: {', '.join(PRESETS)}")
    parser.add_argument("--slice", type=int, metavar="Z",
                        help="axial slice to show: index in the sorted series from 0, negative counts from the end")
    parser.add_argument("--box", type=_box, metavar="Z,Y0,X0,Y1,X1",
                        help="with --screenshot: draw this box prompt (voxel indices) and run the model on it first")
    parser.add_argument("--model", metavar="NAME",
                        help="with --box: the model to run (`ambiview-cli models` lists them; default: the first)")
    parser.add_argument("--views", type=int, choices=range(1, MAX_VIEWS + 1), metavar="V",
                        help=f"with --box: Probabilistic SAM on V (1-{MAX_VIEWS}) mirrored views of the crop")
    parser.add_argument("--compare", action="store_true",
                        help="with --screenshot: reveal the expert contours (compare mode) before taking the picture")
    parser.add_argument("--version", action="version", version=f"AmbiView {__version__}")
    return parser


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.demo and args.path is not None:
        parser.error("give either PATH or --demo, not both")
    if args.screenshot is not None and args.path is None and not args.demo:
        parser.error("--screenshot needs PATH or --demo")
    if args.series and args.path is None:
        parser.error("--series needs PATH")
    if args.box is not None and args.screenshot is None:
        parser.error("--box needs --screenshot")
    if args.model is not None and args.box is None:
        parser.error("--model needs --box")
    if args.views is not None and args.box is None:
        parser.error("--views needs --box")
    if args.compare and args.screenshot is None:
        parser.error("--compare needs --screenshot")
    if args.path is not None and not args.path.exists():
        parser.error(f"{args.path} does not exist")


# Qt messages that say nothing to a user: the offscreen platform (screenshots without a display) cannot pass
# window size hints on, which is harmless.
_BENIGN_QT_MESSAGES = ("This plugin does not support propagateSizeHints()",)


def _install_qt_message_filter() -> None:
    from PySide6.QtCore import qInstallMessageHandler

    def handler(mode, context, message: str) -> None:
        if message not in _BENIGN_QT_MESSAGES:
            print(message, file=sys.stderr)

    qInstallMessageHandler(handler)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_args(parser, args)
    headless = not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if args.screenshot is not None and headless:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    _install_qt_message_filter()
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "ambiview"])
    app.setApplicationName("AmbiView")
    app.setApplicationVersion(__version__)
    if args.screenshot is not None:
        from .screenshot_run import run_screenshot

        return run_screenshot(app, args)

    from .crash_log import install_excepthook
    from .main_window import MainWindow

    install_excepthook()
    window = MainWindow()
    app.aboutToQuit.connect(window.controller.shutdown)
    window.show()
    if args.demo:
        window.open_demo()
    elif args.path is not None:
        window.open_path(args.path, args.series)
    else:  # nothing asked for: offer back work the last run did not close cleanly
        QTimer.singleShot(0, window.review.keeper.offer_unfinished)
    return int(app.exec())


if __name__ == "__main__":
    sys.exit(main())
