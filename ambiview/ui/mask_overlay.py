"""Outlines of kept items and of expert (reference) masks on the slice views.

`MaskOutlineLayer` is an overlay layer in the sense of `SliceView.add_overlay`: it draws a list of `LocalMask`s, each
in its colour, solid (kept items) or dashed (experts), on the shown slice of its view.  `KeptOutlines` and
`ExpertOutlines` keep one layer per view in step with the session: kept items always, experts only while revealed
(compare mode's hide-and-reveal).  Outlines come from `session.placement` and reach the scene through the plane's
own voxel -> scene mapping (`scene_paths.polylines_to_scene`).
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QColor

from ..session import Session
from ..session.placement import LocalMask, kept_local_mask, outline_polylines, volume_local_mask
from .bridge import follow
from .curves import outline_curve
from .scene_paths import polylines_to_scene

KEPT_WIDTH, EXPERT_WIDTH = 2.0, 1.6  # screen pixels
Z_KEPT, Z_EXPERT = 35, 40  # above the hypotheses (20-30), below the prompts (60)


# Experts are told apart from each other by dash pattern (their colour is usually white, apart from the hypotheses'
# colours), and from the hypotheses and kept items, which are solid, by being dashed at all.
EXPERT_DASHES = (Qt.PenStyle.DashLine, Qt.PenStyle.DotLine, Qt.PenStyle.DashDotLine, Qt.PenStyle.DashDotDotLine)
HALO = QColor(0, 0, 0, 190)


def expert_dash(i: int) -> Qt.PenStyle:
    return EXPERT_DASHES[i % len(EXPERT_DASHES)]


class MaskOutlineLayer(QObject):
    """Draws outlines of LocalMasks on one view; `set_masks([(local_mask, (r, g, b), pen_style), ...])` replaces them.

    With `halo`, each outline gets a dark line beneath it, so a white dashed contour stays visible on bright tissue.
    """

    def __init__(self, width: float, z: float, halo: bool = False) -> None:
        super().__init__()
        self.width, self.z, self.halo = width, z, halo
        self.view = None
        self.index = -1
        self.entries: list[tuple[LocalMask, tuple[int, int, int], Qt.PenStyle]] = []
        self.curves: list[pg.PlotCurveItem] = []
        self.halos: list[pg.PlotCurveItem] = []

    # --- OverlayLayer -----------------------------------------------------------------------------------------------
    def attach(self, view) -> None:
        self.view = view
        self._sync_curves()

    def set_slice(self, index: int) -> None:
        self.index = index
        self.redraw()

    def detach(self) -> None:
        if self.view is not None:
            for curve in (*self.curves, *self.halos):
                self.view.view_box.removeItem(curve)
            self.curves, self.halos = [], []
            self.view = None

    # --- drawing ----------------------------------------------------------------------------------------------------
    def set_masks(self, entries) -> None:
        self.entries = list(entries)
        self._sync_curves()

    def _new_curve(self, z: float) -> pg.PlotCurveItem:
        curve = outline_curve(z)
        self.view.view_box.addItem(curve, ignoreBounds=True)
        return curve

    def _sync_curves(self) -> None:
        if self.view is None:
            return
        while len(self.curves) > len(self.entries):
            self.view.view_box.removeItem(self.curves.pop())
            if self.halos:
                self.view.view_box.removeItem(self.halos.pop())
        while len(self.curves) < len(self.entries):
            self.curves.append(self._new_curve(self.z))
            if self.halo:
                halo = self._new_curve(self.z - 0.5)
                halo.setPen(pg.mkPen(HALO, width=self.width + 1.8))
                self.halos.append(halo)
        self.redraw()

    def redraw(self) -> None:
        if self.view is None:
            return
        ready = self.view.plane is not None and self.index >= 0
        for i, (curve, (local, colour, style)) in enumerate(zip(self.curves, self.entries)):
            curve.setPen(pg.mkPen(QColor(*colour), width=self.width, style=style))
            if ready:
                xy = polylines_to_scene(self.view.plane, outline_polylines(local, self.view.axis, self.index))
            else:
                xy = ([], [])
            curve.setData(*xy)
            if self.halos:
                self.halos[i].setData(*xy)

    def drawn(self) -> list[tuple[tuple[int, int, int], int]]:
        """(colour, number of points drawn) per mask on the shown slice; for tests."""
        out = []
        for curve, (_, colour, _) in zip(self.curves, self.entries):
            x, _ = curve.getData()
            out.append((colour, 0 if x is None else int(np.isfinite(x).sum())))  # NaN separators are not points
        return out


class _Outlines(QObject):
    """One MaskOutlineLayer per slice view, fed from the session."""

    width, z, halo = KEPT_WIDTH, Z_KEPT, False

    def __init__(self, session: Session, views) -> None:
        super().__init__()
        self.session = session
        self.layers = {}
        for axis, view in views.items():
            layer = MaskOutlineLayer(self.width, self.z, self.halo)
            view.add_overlay(layer)
            self.layers[axis] = layer

    def _show(self, entries) -> None:
        for layer in self.layers.values():
            layer.set_masks(entries)


class KeptOutlines(_Outlines):
    """Every kept item's outline in its colour, on all views."""

    def __init__(self, session: Session, views) -> None:
        super().__init__(session, views)
        self._local: dict[int, tuple[object, LocalMask]] = {}  # id(item) -> (item.mask it was made from, local)
        follow(self, session, "kept_changed", lambda kept: self.refresh())
        self.refresh()

    def _local_of(self, item) -> LocalMask:
        held = self._local.get(id(item))
        if held is None or held[0] is not item.mask:
            held = (item.mask, kept_local_mask(item))
            self._local[id(item)] = held
        return held[1]

    def refresh(self) -> None:
        kept = list(self.session.kept)
        entries = [(self._local_of(item), tuple(item.color), Qt.PenStyle.SolidLine) for item in kept]
        alive = {id(item) for item in kept}
        self._local = {k: v for k, v in self._local.items() if k in alive}
        self._show(entries)


class ExpertOutlines(_Outlines):
    """The experts' outlines, dashed (a pattern each) over a dark halo, on all views while they are revealed."""

    width, z, halo = EXPERT_WIDTH, Z_EXPERT, True

    def __init__(self, session: Session, views) -> None:
        super().__init__(session, views)
        self._local: list[tuple[object, LocalMask]] = []
        follow(self, session, "experts_changed", lambda experts, revealed: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        experts = list(self.session.experts)
        if len(self._local) != len(experts) or any(held is not e.mask for (held, _), e in zip(self._local, experts)):
            self._local = [(e.mask, volume_local_mask(e.mask)) for e in experts]
        if not self.session.experts_revealed:
            self._show([])
            return
        self._show([(local, tuple(e.color), expert_dash(i))
                    for i, ((_, local), e) in enumerate(zip(self._local, experts))])
