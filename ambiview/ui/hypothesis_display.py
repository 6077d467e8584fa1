"""What the hypothesis overlays show right now: the result's lookups, the current hypothesis, and the display options.

One `HypothesisDisplay` is shared by the overlays of all three views and the hypothesis panel.  It shows the
session's result, or, while a model is still drawing, a provisional result of the hypotheses streamed so far
(`show_provisional`); the session's `result_changed` ends the provisional one.  The lookups (`ResultViews`) are
built once per result; the overlays only ask them.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from PySide6.QtCore import QObject, Signal

from ..session import Session
from ..session.result import SegmentationResult
from ..session.views_model import ResultViews
from .bridge import follow


@dataclass(frozen=True)
class DisplayOptions:
    """Toggles and levels of the hypothesis overlays (levels are shares in (0, 1])."""

    contours: bool = True          # every hypothesis as a thin line (the current one is always drawn)
    heatmap: bool = True
    measure: str = "disagreement"  # a key of uncertainty.maps.MEASURES
    opacity: float = 0.6
    consensus: bool = False
    level: float = 0.5
    band: bool = False
    band_inner: float = 0.9
    band_outer: float = 0.1
    staple: bool = False


class HypothesisDisplay(QObject):
    views_changed = Signal(object)      # ResultViews or None
    hypothesis_changed = Signal(int)
    options_changed = Signal(object)    # the DisplayOptions now in force
    hypotheses_arriving = Signal(object, object)  # a model's new batch (k, ...) and its ROI Geometry, not shown yet

    def __init__(self, session: Session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.views: ResultViews | None = None
        self.provisional = False
        self.hypothesis = 0
        self.options = DisplayOptions()
        follow(self, session, "result_changed", self._on_result)
        follow(self, session, "hypothesis_changed", self._on_session_hypothesis)
        self._on_result(session.result)

    # --- the result shown -------------------------------------------------------------------------------------------
    def _on_result(self, result: SegmentationResult | None) -> None:
        self.provisional = False
        self._set_views(ResultViews(result) if result is not None else None, self.session.hypothesis)

    def show_provisional(self, result: SegmentationResult, first: bool = False) -> None:
        """Show hypotheses still being drawn (not yet in the session).  The first batch of a request shows its first
        hypothesis; later batches keep the one the user moved to."""
        index = 0 if first or not self.provisional else min(self.hypothesis, result.n - 1)
        self.provisional = True
        self._set_views(ResultViews(result), index)

    def announce(self, probs, geometry) -> None:
        """Hypotheses just drawn, before any view shows them (views that prepare something slow start on them)."""
        self.hypotheses_arriving.emit(probs, geometry)

    def end_provisional(self) -> None:
        """Drop a provisional result (the request failed or was cancelled): back to the session's result."""
        if self.provisional:
            self._on_result(self.session.result)

    def _set_views(self, views: ResultViews | None, index: int) -> None:
        self.views = views
        self.hypothesis = index if views is not None and 0 <= index < views.n else 0
        self.views_changed.emit(views)
        self.hypothesis_changed.emit(self.hypothesis)

    @property
    def n(self) -> int:
        return self.views.n if self.views is not None else 0

    # --- the current hypothesis -------------------------------------------------------------------------------------
    def set_hypothesis(self, index: int) -> None:
        """Show hypothesis `index` (wraps around); the session's result keeps the choice in the session."""
        if self.views is None:
            return
        index = int(index) % self.views.n
        if not self.provisional:
            self.session.set_hypothesis(index)  # comes back through _on_session_hypothesis
        elif index != self.hypothesis:
            self.hypothesis = index
            self.hypothesis_changed.emit(index)

    def step(self, delta: int) -> None:
        self.set_hypothesis(self.hypothesis + int(delta))

    def _on_session_hypothesis(self, index: int) -> None:
        if not self.provisional and self.views is not None and index != self.hypothesis:
            self.hypothesis = int(index)
            self.hypothesis_changed.emit(self.hypothesis)

    # --- options ----------------------------------------------------------------------------------------------------
    def set_options(self, **changes) -> None:
        """Change display options by name (see DisplayOptions); band levels are kept with outer <= inner."""
        new = replace(self.options, **changes)
        if new.band_outer > new.band_inner:
            if "band_outer" in changes:
                new = replace(new, band_inner=new.band_outer)
            else:
                new = replace(new, band_outer=new.band_inner)
        if new != self.options:
            self.options = new
            self.options_changed.emit(new)
