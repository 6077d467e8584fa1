"""One orthogonal plane of the session's volume: image in mm, crosshair, W/L, mouse tools, overlay layers.

The view reads the session (volume, cursor, window, prompts) and writes user actions back to it; it computes
nothing but screen <-> voxel positions.  Later layers (hypothesis contours, heatmaps) plug in through
`add_overlay(layer)`: a layer adds its graphics items to `view.view_box` in scene millimetres (use
`view.plane.voxel_to_scene`) and is told the shown slice index whenever it changes.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPen, QTransform
from PySide6.QtWidgets import QGraphicsRectItem, QWidget

from ..imaging.volume import Volume
from ..imaging.windowing import levels
from ..session import Session
from .bridge import follow
from .plane import AXIAL, Plane
from .tools import Tool, ToolState
from .view_labels import ViewLabels

_CROSSHAIR_PEN = pg.mkPen(QColor(80, 200, 255, 150), width=1)
_RUBBER_BAND_PEN = QPen(QColor(255, 210, 0), 0, Qt.PenStyle.DashLine)
_WHEEL_STEP = 120  # one notch of a mouse wheel, in eighths of a degree
_PAGE = 10  # slices per PageUp/PageDown


class OverlayLayer(Protocol):
    """Something drawn over a slice view, e.g. prompts or hypothesis contours."""

    def attach(self, view: "SliceView") -> None:
        """Add graphics items to `view.view_box`."""

    def set_slice(self, index: int) -> None:
        """Show what belongs to slice `index` of the view's plane (called on every slice or volume change)."""

    def detach(self) -> None:
        """Remove the graphics items again."""


class _ViewBox(pg.ViewBox):
    """A ViewBox that hands clicks, drags and plain wheel turns to its SliceView; Ctrl+wheel zooms."""

    def __init__(self, owner: "SliceView") -> None:
        super().__init__(enableMenu=False, lockAspect=True, invertY=True)
        self._owner = owner

    def mouseClickEvent(self, ev) -> None:
        self._owner.handle_click(ev)

    def mouseDragEvent(self, ev, axis=None) -> None:
        self._owner.handle_drag(ev)

    def wheelEvent(self, ev, axis=None) -> None:
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            super().wheelEvent(ev, axis)
        else:
            self._owner.handle_wheel(ev)


class SliceView(pg.GraphicsView):
    """Shows plane `axis` (0 axial, 1 coronal, 2 sagittal) of `session.volume` at the session cursor."""

    hovered = Signal(object)  # (z, y, x) fractional voxel under the mouse, or None outside the volume

    def __init__(self, session: Session, axis: int, tools: ToolState, parent: QWidget | None = None) -> None:
        super().__init__(parent, background="k")
        self.session, self.axis, self.tools = session, int(axis), tools
        self.plane: Plane | None = None
        self.view_box = _ViewBox(self)
        self.setCentralItem(self.view_box)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.view_box.addItem(self.image_item)
        self.v_line = pg.InfiniteLine(angle=90, movable=False, pen=_CROSSHAIR_PEN)
        self.h_line = pg.InfiniteLine(angle=0, movable=False, pen=_CROSSHAIR_PEN)
        for line in (self.v_line, self.h_line):
            line.setZValue(50)
            self.view_box.addItem(line, ignoreBounds=True)
        self.labels = ViewLabels(self)
        self._overlays: list[OverlayLayer] = []
        self._shown_index: int | None = None
        self._wheel_rest = 0
        self._drag_start_window: tuple[float, float] | None = None
        self._rubber_band: QGraphicsRectItem | None = None
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(120, 120)
        self.scene().sigMouseMoved.connect(self._on_mouse_moved)
        tools.changed.connect(self._drop_rubber_band)  # a bound slot: disconnected when this view is deleted

        follow(self, session, "volume_changed", self._on_volume_changed)
        follow(self, session, "cursor_changed", self._on_cursor_changed)
        follow(self, session, "window_changed", self._on_window_changed)
        self._on_volume_changed(session.volume)

    # --- public ----------------------------------------------------------------------------------------------------
    @property
    def index(self) -> int:
        """The slice shown: the session cursor along this view's axis."""
        return int(self.session.cursor[self.axis])

    def add_overlay(self, layer: OverlayLayer) -> None:
        self._overlays.append(layer)
        layer.attach(self)
        if self.plane is not None:
            layer.set_slice(self.index)

    def remove_overlay(self, layer: OverlayLayer) -> None:
        if layer in self._overlays:
            self._overlays.remove(layer)
            layer.detach()

    def reset_view(self) -> None:
        """Fit the whole plane into the view (zoom and pan reset)."""
        if self.plane is not None:
            width, height = self.plane.size_mm
            self.view_box.setRange(QRectF(0.0, 0.0, width, height), padding=0.01)

    def step(self, delta: int) -> None:
        """Move `delta` slices along this view's axis (clamped by the session)."""
        self.go_to(self.index + int(delta))

    def go_to(self, index: int) -> None:
        cursor = list(self.session.cursor)
        cursor[self.axis] = int(index)
        self.session.set_cursor(*cursor)

    def scene_pos_to_voxel(self, scene_pos: QPointF) -> tuple[float, float, float] | None:
        """Fractional voxel (z, y, x) under a scene position on the shown slice; None without a volume."""
        if self.plane is None:
            return None
        p = self.view_box.mapSceneToView(scene_pos)
        return self.plane.scene_to_voxel(p.x(), p.y(), self.index)

    def voxel_to_widget(self, zyx) -> QPointF:
        """Widget (viewport) position of a voxel position in this plane; for tests and tooltips."""
        assert self.plane is not None
        x_mm, y_mm = self.plane.voxel_to_scene(zyx)
        return self.viewportTransform().map(self.view_box.mapViewToScene(QPointF(x_mm, y_mm)))

    def inside(self, zyx) -> bool:
        shape = self.session.volume.shape if self.session.volume is not None else (0, 0, 0)
        return all(-0.5 <= c < n - 0.5 for c, n in zip(zyx, shape))

    # --- session -> view --------------------------------------------------------------------------------------------
    def _on_volume_changed(self, volume: Volume | None) -> None:
        self._shown_index = None
        if volume is None:
            self.plane = None
            self.image_item.clear()
            self.v_line.hide()
            self.h_line.hide()
            self.labels.set_texts()
            for layer in self._overlays:
                layer.set_slice(-1)
            return
        self.plane = Plane(self.axis, volume.geometry)
        spacing = self.plane.spacing
        self.image_item.setTransform(QTransform.fromScale(spacing[self.plane.h_axis], spacing[self.plane.v_axis]))
        self.view_box.invertY(self.plane.row_zero_at_top)
        self.v_line.show()
        self.h_line.show()
        self._on_cursor_changed(self.session.cursor)
        self.reset_view()

    def _on_cursor_changed(self, cursor) -> None:
        if self.plane is None or self.session.volume is None:
            return
        index = int(cursor[self.axis])
        if index != self._shown_index:
            self._shown_index = index
            image = self.plane.slice_of(self.session.volume.voxels, index)
            self.image_item.setImage(image, autoLevels=False, levels=levels(*self.session.window))
            for layer in self._overlays:
                layer.set_slice(index)
        x_mm, y_mm = self.plane.voxel_to_scene(cursor)
        self.v_line.setPos(x_mm)
        self.h_line.setPos(y_mm)
        self._update_labels()

    def _on_window_changed(self, center: float, width: float) -> None:
        if self.plane is not None:  # without a volume there is no image and no label to update
            self.image_item.setLevels(levels(center, width))
            self.labels.set_window_text(_window_text(center, width))

    def _update_labels(self) -> None:
        plane, volume = self.plane, self.session.volume
        if plane is None or volume is None:
            return
        index = self.index
        point = volume.geometry.voxel_to_patient(self.session.cursor)
        direction = np.abs((volume.geometry.normal, volume.geometry.col_cosine, volume.geometry.row_cosine)[self.axis])
        k = int(np.argmax(direction))
        position = f"{'xyz'[k]} {point[k]:.1f} mm"
        self.labels.set_texts(f"{plane.name}  {index + 1}/{plane.n_slices}", position,
                              _window_text(*self.session.window), plane.edge_letters())

    # --- view -> session --------------------------------------------------------------------------------------------
    def _event_voxel(self, ev) -> tuple[float, float, float] | None:
        return self.scene_pos_to_voxel(ev.scenePos())

    def _move_cursor_to(self, zyx) -> None:
        shape = self.session.volume.shape
        self.session.set_cursor(*(min(max(int(round(c)), 0), n - 1) for c, n in zip(zyx, shape)))

    def handle_click(self, ev) -> None:
        if ev.button() != Qt.MouseButton.LeftButton or self.plane is None:
            ev.ignore()
            return
        ev.accept()
        self.setFocus()
        zyx = self._event_voxel(ev)
        tool = self.tools.tool
        if self.axis == AXIAL and tool in (Tool.POSITIVE, Tool.NEGATIVE):
            if self.inside(zyx):
                self.session.add_point(*zyx, positive=tool is Tool.POSITIVE)
        elif tool is Tool.NAVIGATE or (tool.is_prompt and self.axis != AXIAL):
            if self.inside(zyx):
                self._move_cursor_to(zyx)

    def handle_drag(self, ev) -> None:
        if self.plane is None:
            ev.ignore()
            return
        ev.accept()
        button, tool = ev.button(), self.tools.tool
        if button == Qt.MouseButton.RightButton:
            self._drag_window(ev)
        elif button == Qt.MouseButton.MiddleButton or (button == Qt.MouseButton.LeftButton and tool is Tool.PAN):
            last = self.view_box.mapSceneToView(ev.lastScenePos())
            now = self.view_box.mapSceneToView(ev.scenePos())
            self.view_box.translateBy(x=last.x() - now.x(), y=last.y() - now.y())
        elif button == Qt.MouseButton.LeftButton:
            if self.axis == AXIAL and tool is Tool.BOX:
                self._drag_box(ev)
            elif tool is Tool.NAVIGATE or (tool.is_prompt and self.axis != AXIAL):
                zyx = self._event_voxel(ev)
                self._move_cursor_to(zyx)

    def _drag_window(self, ev) -> None:
        """Right-drag: horizontal changes the window width, vertical the level (drag up = brighter)."""
        if ev.isStart() or self._drag_start_window is None:
            self._drag_start_window = self.session.window
        center, width = self._drag_start_window
        delta = ev.screenPos() - ev.buttonDownScreenPos(Qt.MouseButton.RightButton)
        scale = max(width, 20.0) / 250.0  # HU per screen pixel, relative so that narrow windows stay controllable
        self.session.set_window(center + delta.y() * scale, max(width + delta.x() * scale, 1.0))
        if ev.isFinish():
            self._drag_start_window = None

    def _drag_box(self, ev) -> None:
        start = self.view_box.mapSceneToView(ev.buttonDownScenePos(Qt.MouseButton.LeftButton))
        now = self.view_box.mapSceneToView(ev.scenePos())
        rect = QRectF(start, now).normalized()
        if self._rubber_band is None:
            self._rubber_band = QGraphicsRectItem()
            self._rubber_band.setPen(_RUBBER_BAND_PEN)
            self._rubber_band.setZValue(100)
            self.view_box.addItem(self._rubber_band, ignoreBounds=True)
        self._rubber_band.setRect(rect)
        if not ev.isFinish():
            return
        self._drop_rubber_band()
        z = self.index
        _, y0, x0 = self.plane.scene_to_voxel(rect.left(), rect.top(), z)
        _, y1, x1 = self.plane.scene_to_voxel(rect.right(), rect.bottom(), z)
        ny, nx = self.session.volume.shape[1:]
        y0, y1 = (min(max(v, -0.5), ny - 0.5) for v in (y0, y1))
        x0, x1 = (min(max(v, -0.5), nx - 0.5) for v in (x0, x1))
        if y1 - y0 >= 1.0 and x1 - x0 >= 1.0:  # a box smaller than a voxel is a slip, not a prompt
            self.session.add_box(z, y0, x0, y1, x1)

    def _drop_rubber_band(self, *_) -> None:
        if self._rubber_band is not None:
            self.view_box.removeItem(self._rubber_band)
            self._rubber_band = None

    def handle_wheel(self, ev) -> None:
        if self.plane is None:
            ev.ignore()
            return
        ev.accept()
        self._wheel_rest += ev.delta()
        steps = int(self._wheel_rest / _WHEEL_STEP)
        if steps:
            self._wheel_rest -= steps * _WHEEL_STEP
            self.step(steps)

    def keyPressEvent(self, ev) -> None:
        key = ev.key()
        steps = {Qt.Key.Key_Up: 1, Qt.Key.Key_Down: -1, Qt.Key.Key_PageUp: _PAGE, Qt.Key.Key_PageDown: -_PAGE}
        if self.plane is not None and key in steps:
            self.step(steps[key])
        elif self.plane is not None and key in (Qt.Key.Key_Home, Qt.Key.Key_End):
            self.go_to(0 if key == Qt.Key.Key_Home else self.plane.n_slices - 1)
        else:
            super().keyPressEvent(ev)
            return
        ev.accept()

    def _on_mouse_moved(self, scene_pos) -> None:
        zyx = self.scene_pos_to_voxel(scene_pos)
        self.hovered.emit(zyx if zyx is not None and self.inside(zyx) else None)

    def leaveEvent(self, ev) -> None:
        self.hovered.emit(None)
        super().leaveEvent(ev)

    def resizeEvent(self, ev) -> None:
        super().resizeEvent(ev)
        if hasattr(self, "labels"):  # pyqtgraph resizes once inside GraphicsView.__init__
            self.labels.relayout()


def _window_text(center: float, width: float) -> str:
    return f"W {width:.0f}  L {center:.0f}"
