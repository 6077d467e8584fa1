"""Compare mode: the model's hypotheses against expert contours (LIDC raters, RTSTRUCT ROIs), hide-and-reveal.

Teaching order: the model's spread first; "Reveal experts" then draws the experts' outlines (dashed, see
`mask_overlay.ExpertOutlines`) and shows how far apart the two sets are: GED and HM-IoU between experts and
hypotheses, the diversity of each set, and how well each expert is matched.  The numbers come from
`session.references.compare_with_experts` (uncertainty.compare) on the region the model saw.  RTSTRUCT files found
beside the series are listed and can be loaded as experts, as can any other RTSTRUCT file.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..session import Session
from ..session.references import ReferenceFileError, compare_with_experts, experts_from_rtstruct
from .bridge import follow
from .mask_overlay import expert_dash


def swatch(colour, style: Qt.PenStyle) -> QIcon:
    """A short line in the expert's colour and dash pattern on a dark ground, as drawn on the views."""
    pixmap = QPixmap(30, 14)
    pixmap.fill(QColor(20, 20, 20))
    painter = QPainter(pixmap)
    painter.setPen(QPen(QColor(*colour), 2, style))
    painter.drawLine(2, 7, 28, 7)
    painter.end()
    return QIcon(pixmap)


class ComparePanel(QWidget):
    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.heading = QLabel()
        self.heading.setWordWrap(True)
        self.reveal_button = QPushButton("Reveal experts")
        self.reveal_button.setCheckable(True)
        self.reveal_button.setToolTip("Show the experts' contours (dashed) and how the model compares with them")
        self.reveal_button.toggled.connect(self._reveal_toggled)
        self.experts_list = QListWidget()
        self.experts_list.setMaximumHeight(120)
        self.experts_list.setMinimumHeight(40)
        self.metrics = QLabel()
        self.metrics.setWordWrap(True)
        self.metrics.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.rtstruct_list = QListWidget()
        self.rtstruct_list.setMaximumHeight(80)
        self.rtstruct_list.setMinimumHeight(30)
        self.rtstruct_list.setToolTip("RT Structure Sets found beside the series; double-click to load as experts")
        self.rtstruct_list.itemDoubleClicked.connect(lambda item: self.load_rtstruct(item.data(Qt.ItemDataRole.UserRole)))
        self.load_selected_button = QPushButton("Load")
        self.load_selected_button.setToolTip("Load the selected RT Structure Set's ROIs as experts")
        self.load_selected_button.clicked.connect(self._load_selected)
        self.load_file_button = QPushButton("Other file…")
        self.load_file_button.setToolTip("Load the ROIs of any RT Structure Set file as experts")
        self.load_file_button.clicked.connect(self.choose_rtstruct)
        self.messages = QLabel()
        self.messages.setWordWrap(True)
        box = self.rtstruct_box = QGroupBox("RTSTRUCT references")
        box_layout = QVBoxLayout(box)
        box_layout.addWidget(self.rtstruct_list)
        row = QHBoxLayout()
        row.addWidget(self.load_selected_button)
        row.addWidget(self.load_file_button)
        box_layout.addLayout(row)
        box_layout.addWidget(self.messages)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.heading)
        layout.addWidget(self.reveal_button)
        layout.addWidget(self.experts_list)
        layout.addWidget(self.metrics)
        layout.addWidget(box)
        layout.addStretch(1)
        self._rtstructs: list[Path] = []
        follow(self, session, "experts_changed", lambda experts, revealed: self.refresh())
        follow(self, session, "result_changed", lambda result: self.refresh())
        follow(self, session, "volume_changed", lambda volume: self._volume_changed())
        self.refresh()
        self._volume_changed()

    def sizeHint(self) -> QSize:
        return QSize(300, 240)  # modest, so the dock column fits a small screen

    # --- RTSTRUCTs beside the series --------------------------------------------------------------------------------
    def set_rtstructs(self, paths) -> None:
        """The RTSTRUCT files found beside the opened series (from its scan)."""
        self._rtstructs = [Path(p) for p in paths]
        self.rtstruct_list.clear()
        for path in self._rtstructs:
            item = QListWidgetItem(path.name)
            item.setToolTip(str(path))
            item.setData(Qt.ItemDataRole.UserRole, str(path))
            self.rtstruct_list.addItem(item)
        if not self._rtstructs:
            self.rtstruct_list.addItem(QListWidgetItem("(none found beside the series)"))
            self.rtstruct_list.item(0).setFlags(Qt.ItemFlag.NoItemFlags)
        else:
            self.rtstruct_list.setCurrentRow(0)
        self.load_selected_button.setEnabled(bool(self._rtstructs) and self.session.volume is not None)

    def _volume_changed(self) -> None:
        volume = self.session.volume
        self.messages.clear()
        self.set_rtstructs([])
        self.load_file_button.setEnabled(volume is not None)
        # RTSTRUCTs refer to DICOM images; a study of TIFF crops (LIDC) has its raters instead
        self.rtstruct_box.setVisible(volume is None or bool(volume.identity.sop_instance_uids))

    def _load_selected(self) -> None:
        item = self.rtstruct_list.currentItem()
        if item is not None and item.data(Qt.ItemDataRole.UserRole):
            self.load_rtstruct(item.data(Qt.ItemDataRole.UserRole))

    def choose_rtstruct(self) -> None:
        start = str(self.session.volume.identity.source or Path.home()) if self.session.volume is not None else ""
        name, _ = QFileDialog.getOpenFileName(self, "Load an RT Structure Set", start,
                                              "DICOM files (*.dcm *.DCM);;All files (*)")
        if name:
            self.load_rtstruct(name)

    def load_rtstruct(self, path) -> bool:
        """Add the ROIs of an RTSTRUCT as experts (shown at once); messages name anything that could not be drawn."""
        volume = self.session.volume
        if volume is None:
            return False
        try:
            experts, messages = experts_from_rtstruct(path, volume, first_colour=len(self.session.experts))
        except ReferenceFileError as exc:
            self.messages.setText(str(exc))
            return False
        known = {(e.source, e.name) for e in self.session.experts}
        new = [e for e in experts if (e.source, e.name) not in known]
        loaded = f"{Path(path).name}: {len(new)} ROI(s) loaded as experts" if new else \
            f"{Path(path).name}: nothing new to load"
        self.messages.setText("\n".join([loaded] + messages[:6] + (["…"] if len(messages) > 6 else [])))
        if new:
            self.session.set_experts(list(self.session.experts) + new, revealed=True)
        return bool(new)

    # --- hide and reveal --------------------------------------------------------------------------------------------
    def _reveal_toggled(self, checked: bool) -> None:
        self.session.reveal_experts(checked)

    def refresh(self) -> None:
        experts, revealed = self.session.experts, self.session.experts_revealed
        self.reveal_button.blockSignals(True)
        self.reveal_button.setChecked(revealed)
        self.reveal_button.setText("Hide experts" if revealed else "Reveal experts")
        self.reveal_button.blockSignals(False)
        self.reveal_button.setEnabled(bool(experts))
        self.experts_list.clear()
        if not experts:
            self.heading.setText("No expert contours for this series. Open an LIDC study (its raters) or load an "
                                 "RTSTRUCT to compare the model with.")
            self.metrics.clear()
            return
        if not revealed:
            self.heading.setText(f"{len(experts)} expert contour(s) hidden. Look at the model's spread first, then "
                                 "reveal the experts.")
            self.experts_list.addItem(QListWidgetItem(f"{len(experts)} hidden"))
            self.metrics.setText("")
            return
        self.heading.setText(f"{len(experts)} expert contour(s), dashed over a dark edge:")
        comparison = None
        if self.session.result is not None:
            try:
                comparison = compare_with_experts(self.session.result, experts)
            except ValueError as exc:
                self.metrics.setText(str(exc))
                return
        for j, expert in enumerate(experts):
            text = expert.name
            if comparison is not None:
                if j in comparison.empty_experts:
                    text += ": drew nothing here"
                else:
                    text += (f": best IoU {comparison.best_iou[j]:.2f} "
                             f"(hypothesis {comparison.best_match[j] + 1})")
            item = QListWidgetItem(swatch(expert.color, expert_dash(j)), text)
            item.setToolTip(expert.source)
            self.experts_list.addItem(item)
        if comparison is None:
            self.metrics.setText("Run a model to compare its hypotheses with the experts.")
            return
        self.metrics.setText(
            f"<b>GED {comparison.ged:.3f}</b> (0 = same spread as the experts) · "
            f"<b>HM-IoU {comparison.hm_iou:.3f}</b> (1 = every expert matched)<br>"
            f"Diversity (mean pairwise 1 − IoU): model {comparison.model_diversity:.2f} over "
            f"{comparison.n_samples} hypotheses, experts {comparison.expert_diversity:.2f} over "
            f"{comparison.n_experts}" + (f"; {len(comparison.empty_experts)} expert(s) drew nothing in the region"
                                          if comparison.empty_experts else "")
            + "<br><i>Computed on the region the model saw (its ROI).</i>")
