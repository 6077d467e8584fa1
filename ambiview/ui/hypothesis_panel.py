"""The Hypotheses panel: step or play through the hypotheses, choose what the overlays show.

- a slider through the hypotheses with "3 / 16", previous/next ([ and ], or Ctrl+Left/Ctrl+Right: the slice views
  keep Up/Down/PageUp/PageDown/Home/End) and a play button that cycles them about four times a second;
- toggles for all contours, the heatmap (measure picker, opacity) and the consensus at an agreement level;
- the confidence band (inner and outer level) and STAPLE with each hypothesis's sensitivity and specificity.
Reads and writes the shared `HypothesisDisplay`; computes nothing itself.
"""
from __future__ import annotations

import math

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..session.views_model import measure_label
from ..uncertainty.maps import MEASURES
from .hypothesis_display import DisplayOptions, HypothesisDisplay

PLAY_INTERVAL_MS = 250  # about four hypotheses a second
MEASURE_ORDER = ("disagreement", "coverage", "entropy", "variance", "mean")


def _slider(low: int, high: int, value: int) -> QSlider:
    slider = QSlider(Qt.Orientation.Horizontal)
    slider.setRange(low, high)
    slider.setValue(value)
    return slider


def _percent_box(value: float, tip: str) -> QSpinBox:
    box = QSpinBox()
    box.setRange(1, 100)
    box.setSuffix(" %")
    box.setValue(round(value * 100))
    box.setKeyboardTracking(False)
    box.setToolTip(tip)
    return box


class HypothesisPanel(QWidget):
    def __init__(self, display: HypothesisDisplay, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.display = display
        self._staple_of = None  # the ResultViews whose STAPLE table is shown
        self.play_timer = QTimer(self)
        self.play_timer.setInterval(PLAY_INTERVAL_MS)
        self.play_timer.timeout.connect(lambda: display.step(1))
        self._build()
        self.step_actions = self._build_actions()  # (QWidget.actions() is taken)
        self._connect()
        self._on_views(display.views)
        self._show_options(display.options)

    # --- widgets ----------------------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.prev_button, self.next_button = QToolButton(), QToolButton()
        self.prev_button.setText("◀")
        self.next_button.setText("▶")
        self.prev_button.setToolTip("Previous hypothesis ([ or Ctrl+Left)")
        self.next_button.setToolTip("Next hypothesis (] or Ctrl+Right)")
        self.slider = _slider(0, 0, 0)
        self.slider.setToolTip("Step through the hypotheses")
        self.index_label = QLabel("– / –")
        self.index_label.setMinimumWidth(52)
        self.index_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.play_button = QToolButton()
        self.play_button.setText("Play")
        self.play_button.setCheckable(True)
        self.play_button.setToolTip("Cycle through the hypotheses, about four a second")

        self.contours_box = QCheckBox("All contours")
        self.contours_box.setToolTip("Every hypothesis as a thin line in its own colour (the current one is bold)")
        self.heatmap_box = QCheckBox("Heatmap")
        self.consensus_box = QCheckBox("Consensus")
        self.consensus_box.setToolTip("White line: pixels on which at least the agreement level of hypotheses agree")
        self.measure_box = QComboBox()
        self.measure_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.measure_box.setMinimumContentsLength(10)
        for key in [k for k in MEASURE_ORDER if k in MEASURES] + [k for k in MEASURES if k not in MEASURE_ORDER]:
            self.measure_box.addItem(measure_label(key), key)
        self.opacity = _slider(0, 100, 60)
        self.opacity.setToolTip("Heatmap opacity")
        self.level = _slider(10, 100, 50)
        self.level.setSingleStep(5)
        self.level.setPageStep(10)
        self.level.setToolTip("Agreement level of the consensus: share of hypotheses that must cover a pixel")
        self.level_label = QLabel()
        self.band_box = QCheckBox("Confidence band")
        self.band_box.setToolTip("Orange: solid line where at least the inner share agrees, dashed line where at "
                                 "least the outer share does; the ring between them is the band of doubt")
        self.inner_box = _percent_box(0.9, "Inner (solid) line: at least this share of hypotheses")
        self.outer_box = _percent_box(0.1, "Outer (dashed) line: at least this share of hypotheses")
        self.staple_button = QPushButton("STAPLE")
        self.staple_button.setCheckable(True)
        self.staple_button.setToolTip("Magenta dash-dot line: STAPLE's estimate of the true mask "
                                      "(Warfield et al. 2004), with each hypothesis's sensitivity and specificity")
        self.staple_table = QTableWidget(0, 3)
        self.staple_table.setHorizontalHeaderLabels(["Hypothesis", "Sensitivity", "Specificity"])
        self.staple_table.verticalHeader().hide()
        self.staple_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.staple_table.setMaximumHeight(150)
        self.staple_table.hide()
        self.staple_note = QLabel()
        self.staple_note.setWordWrap(True)
        self.staple_note.hide()

        stepper = QHBoxLayout()
        for widget in (self.prev_button, self.slider, self.next_button, self.index_label, self.play_button):
            stepper.addWidget(widget, 1 if widget is self.slider else 0)
        group = QGroupBox("Show")
        form = QFormLayout(group)
        form.addRow(self.contours_box, self.heatmap_box)
        form.addRow("Measure:", self.measure_box)
        form.addRow("Opacity:", self.opacity)
        form.addRow(self.consensus_box, self.band_box)
        form.addRow("Agreement:", self.level)
        form.addRow("", self.level_label)
        form.addRow("Inner line ≥", self.inner_box)
        form.addRow("Outer line ≥", self.outer_box)
        form.addRow(self.staple_button)
        form.addRow(self.staple_note)
        form.addRow(self.staple_table)
        layout = QVBoxLayout(self)
        layout.addLayout(stepper)
        layout.addWidget(group)
        layout.addStretch(1)

    def _build_actions(self) -> dict[str, QAction]:
        """Previous/next hypothesis; the window adds them so they work wherever the focus is."""
        previous = QAction("Previous hypothesis", self)
        previous.setShortcuts([QKeySequence("["), QKeySequence("Ctrl+Left")])
        previous.triggered.connect(lambda: self.display.step(-1))
        following = QAction("Next hypothesis", self)
        following.setShortcuts([QKeySequence("]"), QKeySequence("Ctrl+Right")])
        following.triggered.connect(lambda: self.display.step(1))
        return {"previous": previous, "next": following}

    def _connect(self) -> None:
        d = self.display
        d.views_changed.connect(self._on_views)
        d.hypothesis_changed.connect(self._on_hypothesis)
        d.options_changed.connect(self._show_options)
        self.prev_button.clicked.connect(lambda: d.step(-1))
        self.next_button.clicked.connect(lambda: d.step(1))
        self.slider.valueChanged.connect(d.set_hypothesis)
        self.play_button.toggled.connect(self.set_playing)
        self.contours_box.toggled.connect(lambda on: d.set_options(contours=on))
        self.heatmap_box.toggled.connect(lambda on: d.set_options(heatmap=on))
        self.consensus_box.toggled.connect(lambda on: d.set_options(consensus=on))
        self.measure_box.currentIndexChanged.connect(lambda i: d.set_options(measure=self.measure_box.itemData(i)))
        self.opacity.valueChanged.connect(lambda v: d.set_options(opacity=v / 100.0))
        self.level.valueChanged.connect(lambda v: d.set_options(level=v / 100.0))
        self.band_box.toggled.connect(lambda on: d.set_options(band=on))
        self.inner_box.valueChanged.connect(lambda v: d.set_options(band_inner=v / 100.0))
        self.outer_box.valueChanged.connect(lambda v: d.set_options(band_outer=v / 100.0))
        self.staple_button.toggled.connect(lambda on: d.set_options(staple=on))

    # --- display -> widgets -----------------------------------------------------------------------------------------
    def _on_views(self, views) -> None:
        n = views.n if views is not None else 0
        for widget in (self.slider, self.prev_button, self.next_button, self.play_button):
            widget.setEnabled(n > 1)
        if n <= 1:
            self.set_playing(False)
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(n - 1, 0))
        self.slider.blockSignals(False)
        self._on_hypothesis(self.display.hypothesis)
        self._show_level(self.display.options)
        self._show_staple(self.display.options)

    def _on_hypothesis(self, index: int) -> None:
        n = self.display.n
        self.slider.blockSignals(True)
        self.slider.setValue(index)
        self.slider.blockSignals(False)
        self.index_label.setText(f"{index + 1} / {n}" if n else "– / –")

    def _show_options(self, options: DisplayOptions) -> None:
        pairs = [(self.contours_box, options.contours), (self.heatmap_box, options.heatmap),
                 (self.consensus_box, options.consensus), (self.band_box, options.band),
                 (self.staple_button, options.staple)]
        values = [(self.opacity, round(options.opacity * 100)), (self.level, round(options.level * 100)),
                  (self.inner_box, round(options.band_inner * 100)), (self.outer_box, round(options.band_outer * 100))]
        for widget, checked in pairs:
            widget.blockSignals(True)
            widget.setChecked(checked)
            widget.blockSignals(False)
        for widget, value in values:
            widget.blockSignals(True)
            widget.setValue(value)
            widget.blockSignals(False)
        self.measure_box.blockSignals(True)
        self.measure_box.setCurrentIndex(max(self.measure_box.findData(options.measure), 0))
        self.measure_box.blockSignals(False)
        for widget in (self.measure_box, self.opacity):
            widget.setEnabled(options.heatmap)
        self.level.setEnabled(options.consensus)
        self.inner_box.setEnabled(options.band)
        self.outer_box.setEnabled(options.band)
        self._show_level(options)
        self._show_staple(options)

    def _show_level(self, options: DisplayOptions) -> None:
        views = self.display.views
        text = f"≥ {round(options.level * 100)} %"
        if views is not None:
            text += f" ({views.required(options.level)} of {views.n})"
        self.level_label.setText(text)

    def _show_staple(self, options: DisplayOptions) -> None:
        views = self.display.views
        shown = options.staple and views is not None
        self.staple_table.setVisible(shown)
        if not shown:
            self.staple_note.setVisible(False)
            return
        if self._staple_of is views:  # the table already shows this result
            return
        self._staple_of = views
        estimate = views.staple()
        self.staple_table.setRowCount(views.n)
        for i in range(views.n):
            cells = [str(i + 1), _fraction(estimate.sensitivity[i]), _fraction(estimate.specificity[i])]
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                self.staple_table.setItem(i, j, item)
        self.staple_note.setText(f"STAPLE: {estimate.note}" if estimate.note else "")
        self.staple_note.setVisible(bool(estimate.note))

    # --- play -------------------------------------------------------------------------------------------------------
    def set_playing(self, on: bool) -> None:
        on = bool(on) and self.display.n > 1
        if on and not self.play_timer.isActive():
            self.play_timer.start()
        elif not on:
            self.play_timer.stop()
        self.play_button.blockSignals(True)
        self.play_button.setChecked(on)
        self.play_button.setText("Pause" if on else "Play")
        self.play_button.blockSignals(False)

    @property
    def playing(self) -> bool:
        return self.play_timer.isActive()

    def actions_for_window(self) -> list[QAction]:
        return list(self.step_actions.values())


def _fraction(value: float) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.3f}"
