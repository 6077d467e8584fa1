"""Puts reviewing and keeping into the main window: one call, `ReviewTools(window)`.

It makes the Interpretations (modes), Spread (statistics), Kept, Compare and Nodules docks, the kept-item and expert
outlines on the three views, the LIDC study controller, the autosave keeper and the File > Export action.  The window
asks it whether a path is an LIDC study (`open_study`), and the application asks it, at start-up, to offer back work
that was not closed cleanly (`keeper.offer_unfinished`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QRectF, Qt
from PySide6.QtGui import QAction, QKeySequence

from ..session.references import rtstructs_beside
from .bridge import follow
from .compare_panel import ComparePanel
from .export_dialog import ExportDialog
from .kept_panel import KeptPanel
from .lidc_panel import LidcStudyController, NodulePicker
from .mask_overlay import ExpertOutlines, KeptOutlines
from .modes_panel import ModesPanel
from .session_restore import AutosaveKeeper
from .stats_panel import StatsPanel

_STATUS_MS = 8000
_LEFT_WIDTH = 350  # initial width of the left docks (pixels)
_NODULES_HEIGHT = 170


class ReviewTools(QObject):
    def __init__(self, window, ask=None) -> None:
        super().__init__(window)
        self.window = window
        session = window.session
        self.modes_panel = ModesPanel(session)
        self.stats_panel = StatsPanel(session)
        self.kept_panel = KeptPanel(session)
        self.compare_panel = ComparePanel(session)
        self.nodule_picker = NodulePicker()
        left = Qt.DockWidgetArea.LeftDockWidgetArea
        self.nodules_dock = window.add_dock("Nodules", self.nodule_picker, left)
        self.kept_dock = window.add_dock("Kept", self.kept_panel, left)
        self.compare_dock = window.add_dock("Compare", self.compare_panel, left)
        self.modes_dock = window.add_dock("Interpretations", self.modes_panel, left)
        self.stats_dock = window.add_dock("Spread", self.stats_panel, left)
        self.nodules_dock.hide()
        self._tabified = False  # tabified when first shown: hidden tabified docks still claim height in Qt's layout

        self.kept_outlines = KeptOutlines(session, window.views.views)
        self.expert_outlines = ExpertOutlines(session, window.views.views)
        self.lidc = LidcStudyController(session, self.nodule_picker, self)
        self.lidc.opened.connect(self._lidc_opened)
        self.lidc.failed.connect(self._lidc_failed)
        if ask is None and not window.show_dialogs:
            ask = _leave_alone  # screenshots and tests without an answer: neither restore nor discard
        # a window that does not remember recent folders (a screenshot run) does not autosave either
        self.keeper = AutosaveKeeper(session, window, ask=ask, open_path=window.open_path,
                                     enabled=window.remember_recent)
        self.keeper.message.connect(lambda text: window.statusBar().showMessage(text, _STATUS_MS))

        self.export_action = QAction("&Export Kept Items…", window)
        self.export_action.setShortcut(QKeySequence("Ctrl+E"))
        self.export_action.triggered.connect(lambda checked=False: self.open_export_dialog())
        self.kept_panel.export_requested.connect(self.open_export_dialog)
        display = getattr(getattr(window, "hypotheses", None), "display", None)
        if display is not None:  # "Keep consensus at N%" follows the agreement slider of the hypothesis panel
            display.options_changed.connect(lambda options: self.kept_panel.set_level(options.level))
        self._add_to_menus()
        window.volume_opened.connect(self._on_volume_opened)
        follow(self, session, "volume_changed", self._on_volume_changed)
        follow(self, session, "kept_changed", lambda kept: self.export_action.setEnabled(bool(kept)))
        self._on_volume_changed(session.volume)
        self.export_dialog: ExportDialog | None = None

    def _add_to_menus(self) -> None:
        window = self.window
        menus = {a.text(): a.menu() for a in window.menuBar().actions() if a.menu() is not None}
        if "&File" in menus:
            menus["&File"].insertAction(window.close_action, self.export_action)
        window.addAction(self.export_action)  # the shortcut works from any widget
        view_menu = menus.get("&View")
        if view_menu is not None:
            view_menu.addSeparator()
            view_menu.addActions([d.toggleViewAction() for d in (self.nodules_dock, self.kept_dock, self.compare_dock,
                                                                 self.modes_dock, self.stats_dock)])

    # --- opening ------------------------------------------------------------------------------------------------------
    def handles(self, path) -> bool:
        """True when `path` is an LIDC crop study, which `open_study` opens instead of the DICOM loader."""
        return self.lidc.handles(path)

    def open_study(self, path, series_uid: str | None = None) -> bool:
        """Open the LIDC study at `path` (nodule `series_uid`, default the first) and remember it as recent."""
        opened = self.lidc.open_study(path, series_uid)
        window = self.window
        if opened and window.remember_recent:
            window.recent.add(Path(path).expanduser().absolute())
            window._refresh_recent()
        return opened

    def _lidc_opened(self, case) -> None:
        if not self.nodules_dock.isVisible():
            self.nodules_dock.show()
            self.window.resizeDocks([self.nodules_dock], [_NODULES_HEIGHT], Qt.Orientation.Vertical)
        self.compare_panel.set_rtstructs([])
        window = self.window
        window.statusBar().showMessage(f"Opened {case.run.label}: {len(case.rater_names)} raters (hidden; reveal them "
                                       "in the Compare panel). Values are standardised, not HU; spacing is nominal.")
        window.volume_opened.emit(case.volume)

    def _lidc_failed(self, message: str) -> None:
        self.window.statusBar().showMessage(message.splitlines()[0], _STATUS_MS)
        self.window.open_failed.emit(message)

    def _on_volume_opened(self, volume) -> None:
        if self.lidc.case is not None and volume is self.lidc.case.volume:
            return
        scan = getattr(self.window.controller, "scan", None)
        self.compare_panel.set_rtstructs(rtstructs_beside(scan) if scan is not None else [])

    def _on_volume_changed(self, volume) -> None:
        self.export_action.setEnabled(bool(self.window.session.kept))
        first = volume is not None and not self._tabified
        if first:  # tabify before showing: four docks stacked for a moment would stretch the window
            self._tabified = True
            self.window.tabifyDockWidget(self.kept_dock, self.compare_dock)
            self.window.tabifyDockWidget(self.modes_dock, self.stats_dock)
        for dock in (self.kept_dock, self.compare_dock, self.modes_dock, self.stats_dock):
            dock.setVisible(volume is not None)
        if first:
            self.kept_dock.raise_()
            self.modes_dock.raise_()
            self.window.resizeDocks([self.kept_dock], [_LEFT_WIDTH], Qt.Orientation.Horizontal)
        if volume is None or self.lidc.case is None:  # a DICOM series (or nothing): no nodule list
            self.nodules_dock.hide()

    def show_compare(self) -> None:
        """Compare mode at a glance: the experts revealed, the axial view on them, Compare and Spread in front."""
        self.window.session.reveal_experts(True)
        self.compare_dock.raise_()
        self.stats_dock.raise_()
        height = self.window.height()
        self.window.resizeDocks([self.compare_dock, self.stats_dock], [int(0.36 * height), int(0.5 * height)],
                                Qt.Orientation.Vertical)  # room for the plots; the metrics need only a few lines
        self.focus_on_experts()

    def focus_on_experts(self, margin: float = 2.2) -> bool:
        """Zoom the axial view onto the experts' outlines on the shown slice (`margin` times their extent)."""
        session, view = self.window.session, self.window.views.axial
        z = session.cursor[0]
        planes = [e.mask[z] for e in session.experts if e.mask.shape == session.volume.shape and e.mask[z].any()] \
            if session.volume is not None else []
        if not planes or view.plane is None:
            return False
        rows, cols = np.nonzero(np.any(planes, axis=0))
        left, top = view.plane.voxel_to_scene((z, rows.min() - 0.5, cols.min() - 0.5))
        right, bottom = view.plane.voxel_to_scene((z, rows.max() + 0.5, cols.max() + 0.5))
        side = max(abs(right - left), abs(bottom - top)) * margin
        cx, cy = (left + right) / 2, (top + bottom) / 2
        view.view_box.setRange(QRectF(cx - side / 2, cy - side / 2, side, side), padding=0.0)
        return True

    # --- export -------------------------------------------------------------------------------------------------------
    def open_export_dialog(self) -> ExportDialog:
        dialog = ExportDialog(self.window.session, self.window)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.done_writing.connect(lambda outcome: self.window.statusBar().showMessage(
            f"Exported {len(outcome.written)} file(s) to {outcome.written[0][1].parent}", _STATUS_MS)
            if outcome.written else None)
        self.export_dialog = dialog
        dialog.show()
        return dialog


def _leave_alone(saved, question) -> None:
    return None
