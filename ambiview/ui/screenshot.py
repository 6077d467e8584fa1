"""Rendering a widget into a PNG file, written atomically (temporary file beside it, then rename)."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

from PySide6.QtWidgets import QApplication, QWidget


def save_widget_png(widget: QWidget, path) -> Path:
    """Render `widget` as it is now and save it as PNG at `path`; raises OSError naming the file on failure."""
    QApplication.processEvents()
    image = widget.grab().toImage()
    if image.isNull() or image.width() == 0:
        raise OSError(f"could not render the window for {path}")
    path = Path(path).expanduser().absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.png")
    try:
        if not image.save(str(tmp), "PNG"):
            raise OSError(f"could not write PNG {path}")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
