"""Rendering a widget into a PNG file, written atomically (temporary file beside it, then rename)."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

from PySide6.QtCore import QPoint, QRect
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import QApplication, QWidget


def save_widget_png(widget: QWidget, path) -> Path:
    """Render `widget` as it is now and save it as PNG at `path`; raises OSError naming the file on failure."""
    QApplication.processEvents()
    image = widget.grab().toImage()
    if image.isNull() or image.width() == 0:
        raise OSError(f"could not render the window for {path}")
    _paint_native_views(widget, image)
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


def _paint_native_views(widget: QWidget, image: QImage) -> None:
    """Paint what OpenGL widgets show (the 3D view), which `grab` leaves black, over their place in `image`.
    Such a widget offers `render_image()` (a QImage or None) and `image_widget()` (the widget it covers)."""
    painter = None
    for child in widget.findChildren(QWidget):
        render = getattr(child, "render_image", None)
        if not callable(render) or not child.isVisible():
            continue
        picture = render()
        if picture is None:
            continue
        target = child.image_widget()
        painter = painter or QPainter(image)
        painter.drawImage(QRect(target.mapTo(widget, QPoint(0, 0)), target.size()), picture)
    if painter is not None:
        painter.end()
