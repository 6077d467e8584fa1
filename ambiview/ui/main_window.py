"""The main window: welcome page or the three views, toolbar, menus, info and problems docks, status bar.

It wires widgets to the session and to the open controller; it reads no DICOM and computes nothing itself.
Room is left for later docks (model picker, hypothesis panel, 3D view): add them with `add_dock`.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QToolBar,
    QWidget,
)

from .. import __version__
from ..imaging.windowing import PRESETS
from ..recent import RecentFolders
from ..session import Session
from .bridge import follow
from .hypothesis_ui import HypothesisUi
from .info_panel import InfoPanel
from .open_controller import OpenController
from .ortho_views import OrthoViews
from .problems_panel import LoadReport, ProblemsPanel
from .review_tools import ReviewTools
from .readout import CursorReadout
from .toolbar import WindowPresetBox, prompt_edit_actions, tool_actions
from .tools import ToolState
from .volume_ui import VolumeUi
from .welcome import WelcomePage

APP_TITLE = "AmbiView"
_STATUS_MS = 8000
_INFO_WIDTH, _PROBLEMS_HEIGHT = 320, 110  # initial dock sizes (pixels)


class MainWindow(QMainWindow):
    volume_opened = Signal(object)  # Volume, after the session has it
    open_failed = Signal(str)

    def __init__(self, session: Session | None = None, recent: RecentFolders | None = None,
                 show_dialogs: bool = True, remember_recent: bool = True, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session if session is not None else Session()
        self.recent = recent if recent is not None else RecentFolders()
        self.show_dialogs = show_dialogs  # False: no modal message boxes (screenshots, tests)
        self.remember_recent = remember_recent  # False: opening does not touch the recent list (screenshots)
        self.tools = ToolState(self)
        self.controller = OpenController(self)
        self.controller.opened.connect(self._on_opened)
        self.controller.failed.connect(self._on_failed)
        self.controller.cancelled.connect(lambda: self.statusBar().showMessage("Opening cancelled.", _STATUS_MS))
        self._source: Path | None = None

        self.welcome = WelcomePage()
        self.views = OrthoViews(self.session, self.tools)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.welcome)
        self.stack.addWidget(self.views)
        self.setCentralWidget(self.stack)
        self.info_panel = InfoPanel(self.session)
        self.info_dock = self.add_dock("Series information", self.info_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self._info_wanted = True  # shown with a series unless the user closed it
        self.info_dock.visibilityChanged.connect(self._info_visibility_changed)
        self.problems_panel = ProblemsPanel()
        self.problems_dock = self.add_dock("Problems", self.problems_panel, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.problems_dock.hide()
        self.resizeDocks([self.info_dock], [_INFO_WIDTH], Qt.Orientation.Horizontal)
        self.readout = CursorReadout(self.session)
        self.statusBar().addPermanentWidget(self.readout)
        self.views.hovered.connect(self.readout.show_hover)

        self._build_actions()
        self._build_menus_and_toolbar()
        self.hypotheses = HypothesisUi(self)  # model panel, hypothesis panel and overlays
        self.review = ReviewTools(self)  # modes, spread, kept, compare, nodules, autosave, export
        self.volume_ui = VolumeUi(self)  # the 3D view dock, for 3D results
        self.welcome.open_folder_clicked.connect(self.choose_folder)
        self.welcome.open_file_clicked.connect(self.choose_file)
        self.welcome.demo_clicked.connect(self.open_demo)
        self.welcome.recent_clicked.connect(self.open_path)
        follow(self, self.session, "volume_changed", self._on_volume_changed)
        self.setAcceptDrops(True)
        self._refresh_recent()
        self._on_volume_changed(self.session.volume)
        self.resize(1400, 900)

    def add_dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title.replace(" ", "_"))
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    # --- actions, menus ---------------------------------------------------------------------------------------------
    def _action(self, text: str, slot, shortcut: str | None = None) -> QAction:
        action = QAction(text, self)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(lambda checked=False: slot())
        return action

    def _build_actions(self) -> None:
        self.open_folder_action = self._action("Open &Folder…", self.choose_folder, "Ctrl+O")
        self.open_file_action = self._action("Open F&ile…", self.choose_file, "Ctrl+Shift+O")
        self.demo_action = self._action("Open &Demo Study", self.open_demo)
        self.close_action = self._action("&Close Series", self.close_series, "Ctrl+W")
        self.quit_action = self._action("&Quit", self.close, "Ctrl+Q")
        self.reset_view_action = self._action("&Reset Zoom", self.views.reset_views, "Ctrl+0")
        self.tool_actions = tool_actions(self, self.tools)
        self.edit_actions = prompt_edit_actions(self, self.session)
        self.preset_actions = [self._action(name, lambda n=name: self.session.apply_preset(n)) for name in PRESETS]

    def _build_menus_and_toolbar(self) -> None:
        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        file_menu.addActions([self.open_folder_action, self.open_file_action, self.demo_action])
        self.recent_menu = file_menu.addMenu("Open &Recent")
        file_menu.addSeparator()
        file_menu.addActions([self.close_action, self.quit_action])
        edit_menu = menu.addMenu("&Edit")
        edit_menu.addActions(list(self.edit_actions.values()))
        view_menu = menu.addMenu("&View")
        view_menu.addActions(self.preset_actions)
        view_menu.addSeparator()
        view_menu.addAction(self.reset_view_action)
        view_menu.addActions([self.info_dock.toggleViewAction(), self.problems_dock.toggleViewAction()])
        tools_menu = menu.addMenu("&Tools")
        tools_menu.addActions(list(self.tool_actions.values()))
        help_menu = menu.addMenu("&Help")
        help_menu.addAction(self._action("&About AmbiView", self._about))

        toolbar = QToolBar("Main")
        toolbar.setObjectName("main_toolbar")
        toolbar.setMovable(False)
        toolbar.addAction(self.open_folder_action)
        toolbar.addSeparator()
        toolbar.addActions(list(self.tool_actions.values()))
        toolbar.addSeparator()
        toolbar.addActions(list(self.edit_actions.values()))
        toolbar.addSeparator()
        toolbar.addWidget(QLabel(" Window: "))
        self.preset_box = WindowPresetBox(self.session)
        toolbar.addWidget(self.preset_box)
        toolbar.addAction(self.reset_view_action)
        self.addToolBar(toolbar)
        self.toolbar = toolbar

    def _refresh_recent(self) -> None:
        paths = self.recent.load()
        self.welcome.set_recent(paths)
        self.recent_menu.clear()
        for path in paths:
            action = self.recent_menu.addAction(str(path))
            action.setEnabled(path.exists())
            action.triggered.connect(lambda checked=False, p=path: self.open_path(p))
        self.recent_menu.setEnabled(bool(paths))

    # --- opening ----------------------------------------------------------------------------------------------------
    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a DICOM folder", str(self._start_dir()))
        if folder:
            self.open_path(folder)

    def choose_file(self) -> None:
        name, _ = QFileDialog.getOpenFileName(self, "Open a DICOM file", str(self._start_dir()),
                                              "DICOM files (*.dcm *.DCM *.ima *.IMA);;All files (*)")
        if name:
            self.open_path(name)

    def _start_dir(self) -> Path:
        recent = self.recent.load()
        return recent[0].parent if recent else Path.home()

    def open_path(self, path, series_uid: str | None = None) -> bool:
        """Open a folder (scanned recursively) or a file in the background; False if another opening runs."""
        path = Path(path).expanduser()
        if not path.exists():
            self._on_failed(f"{path} does not exist.", LoadReport())
            return False
        if self.review.handles(path):  # an LIDC crop study (TIFF crops, not DICOM): the review tools open it
            return self.review.open_study(path, series_uid)
        if not self.controller.open_path(path, series_uid):
            self.statusBar().showMessage("Still opening the previous folder…", _STATUS_MS)
            return False
        self._source = path.absolute()
        self.statusBar().showMessage(f"Opening {path}…")
        return True

    def open_demo(self) -> bool:
        if not self.controller.open_demo():
            self.statusBar().showMessage("Still opening the previous folder…", _STATUS_MS)
            return False
        self._source = None
        self.statusBar().showMessage("Opening the demo study…")
        return True

    def close_series(self) -> None:
        self.session.set_volume(None)
        self.problems_panel.set_report(LoadReport())
        self.problems_dock.hide()

    def _on_opened(self, volume, report: LoadReport) -> None:
        self.session.set_volume(volume)
        if self._source is not None and self.remember_recent:
            self.recent.add(self._source)
            self._refresh_recent()
        self._show_report(report)
        summary = report.summary()
        self.statusBar().showMessage(f"Opened {volume.shape[0]} slices" + (f" — {summary}" if summary else "")
                                     + (" (see the Problems panel)" if report.count else ""))
        self.views.axial.setFocus()
        self.volume_opened.emit(volume)

    def _on_failed(self, message: str, report: LoadReport) -> None:
        self._show_report(report)
        first_line = message.splitlines()[0] if message else "Could not open."
        self.statusBar().showMessage(first_line)
        if self.show_dialogs:
            QMessageBox.warning(self, "Could not open", message)
        self.open_failed.emit(message)

    def _show_report(self, report: LoadReport) -> None:
        self.problems_panel.set_report(report)
        show = bool(report.count or report.skipped)
        if show and not self.problems_dock.isVisible():
            self.problems_dock.show()
            self.resizeDocks([self.problems_dock], [_PROBLEMS_HEIGHT], Qt.Orientation.Vertical)
        elif not show:
            self.problems_dock.hide()

    def _on_volume_changed(self, volume) -> None:
        self.stack.setCurrentWidget(self.views if volume is not None else self.welcome)
        self.info_dock.setVisible(volume is not None and self._info_wanted)
        for action in [self.close_action, self.reset_view_action, *self.tool_actions.values(),
                       *self.preset_actions]:
            action.setEnabled(volume is not None)
        self.preset_box.setEnabled(volume is not None)
        if volume is None:
            self.setWindowTitle(APP_TITLE)
        else:
            description = volume.identity.description or volume.identity.modality or "Series"
            self.setWindowTitle(f"{description} — {APP_TITLE}")

    def _info_visibility_changed(self, visible: bool) -> None:
        if self.session.volume is not None:  # with no series the window hides the dock itself
            self._info_wanted = visible

    def _about(self) -> None:
        QMessageBox.about(self, "About AmbiView",
                          f"<b>AmbiView {__version__}</b><p>Many plausible lesion segmentations, their "
                          "disagreement, and DICOM export.</p><p>Not for clinical use.</p>")

    # --- drag and drop, closing -------------------------------------------------------------------------------------
    @staticmethod
    def _dropped_path(mime) -> Path | None:
        urls = [u for u in mime.urls() if u.isLocalFile()] if mime.hasUrls() else []
        return Path(urls[0].toLocalFile()) if urls else None

    def dragEnterEvent(self, event) -> None:
        if self._dropped_path(event.mimeData()) is not None:
            event.acceptProposedAction()
        else:
            event.ignore()

    dragMoveEvent = dragEnterEvent

    def dropEvent(self, event) -> None:
        path = self._dropped_path(event.mimeData())
        if path is None:
            event.ignore()
            return
        event.acceptProposedAction()
        self.open_path(path)

    def closeEvent(self, event) -> None:
        self.controller.shutdown()
        self.hypotheses.shutdown()
        self.volume_ui.shutdown()
        super().closeEvent(event)
