"""The distinct interpretations of the current result: "3 interpretations: 62% / 25% / 13%", one row each.

Each row shows the interpretation's representative (its medoid hypothesis) as a thumbnail, its share and size;
clicking a row shows that representative as the current hypothesis, and "Keep interpretation" keeps it.  The modes
come from `session.analysis` (uncertainty.modes); this widget only shows them.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import QLabel, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

from ..imaging.windowing import levels
from ..session import Session
from ..session.analysis import hypothesis_stats, keep_mode, mode_index_of, mode_percentages, modes_of, modes_text
from .bridge import follow
from .hypothesis_overlay import hypothesis_color

THUMB = 56  # thumbnail side in pixels


def thumbnail(image: np.ndarray, mask: np.ndarray, window: tuple[float, float], colour) -> QPixmap:
    """A small picture of a ROI: the windowed image in grey with the mask tinted in `colour` (r, g, b)."""
    low, high = levels(*window)
    grey = np.clip((np.asarray(image, np.float32) - low) / max(high - low, 1e-6), 0.0, 1.0)
    rgb = np.repeat(grey[..., None] * 255.0, 3, axis=-1)
    tint = np.asarray(colour, np.float32)
    rgb[mask] = 0.45 * rgb[mask] + 0.55 * tint
    rgb = np.ascontiguousarray(rgb.astype(np.uint8))
    h, w = mask.shape
    qimage = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
    return QPixmap.fromImage(qimage).scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio,
                                            Qt.TransformationMode.FastTransformation)


class ModesPanel(QWidget):
    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setStyleSheet("font-weight: bold")
        self.list = QListWidget()
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.setToolTip("Click an interpretation to show its representative hypothesis")
        self.list.itemClicked.connect(self._clicked)
        self.keep_button = QPushButton("Keep interpretation")
        self.keep_button.setToolTip("Keep the representative of the selected interpretation")
        self.keep_button.clicked.connect(self.keep_selected)
        self.message = QLabel()
        self.message.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.summary)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.keep_button)
        layout.addWidget(self.message)
        self._modes = []
        follow(self, session, "result_changed", lambda result: self.refresh())
        follow(self, session, "hypothesis_changed", lambda index: self._select_current())
        self.refresh()

    def sizeHint(self) -> QSize:
        return QSize(300, 220)  # modest, so the dock column fits a small screen

    # --- session -> view --------------------------------------------------------------------------------------------
    def refresh(self) -> None:
        result = self.session.result
        self.list.clear()
        self.message.clear()
        if result is None:
            self._modes = []
            self.summary.setText("No hypotheses yet: place a prompt and run a model.")
            self.keep_button.setEnabled(False)
            return
        self._modes = modes_of(result)
        self.summary.setText(modes_text(result))
        stats = hypothesis_stats(result)
        shares = mode_percentages(self._modes)
        images = self._roi_images(result)
        masks = result.masks()
        for i, (mode, share) in enumerate(zip(self._modes, shares)):
            rep = mode.representative
            text = (f"Interpretation {i + 1}: {share}% ({len(mode.members)} of {result.n})\n"
                    f"shown by hypothesis {rep + 1} · {_size(stats.sizes[rep])} {stats.size_unit}, "
                    f"{stats.diameters[rep]:.1f} mm")
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, i)
            item.setToolTip("Hypotheses " + ", ".join(str(m + 1) for m in mode.members))
            if images is not None:
                d = _fullest(masks[rep])
                mask, image = (masks[rep], images) if d is None else (masks[rep][d], images[d])
                colour = hypothesis_color(rep).getRgb()[:3]
                item.setIcon(QIcon(thumbnail(image, mask, self.session.window, colour)))
            self.list.addItem(item)
        self.keep_button.setEnabled(True)
        self._select_current()

    def _roi_images(self, result):
        """The image under the ROI, in the result's grid (for thumbnails); None when no volume is open."""
        volume = self.session.volume
        if volume is None or tuple(volume.shape) != tuple(result.volume_shape):
            return None
        crop = result.roi.crop(volume.voxels)
        return crop if result.is_3d else crop[0]

    def _select_current(self) -> None:
        row = mode_index_of(self._modes, self.session.hypothesis) if self._modes else None
        self.list.blockSignals(True)
        self.list.setCurrentRow(-1 if row is None else row)
        self.list.blockSignals(False)

    # --- view -> session --------------------------------------------------------------------------------------------
    def _clicked(self, item: QListWidgetItem) -> None:
        self.show_mode(int(item.data(Qt.ItemDataRole.UserRole)))

    def show_mode(self, i: int) -> None:
        """Show the representative of interpretation i as the current hypothesis."""
        if 0 <= i < len(self._modes):
            self.session.set_hypothesis(self._modes[i].representative)

    def keep_selected(self) -> None:
        row = self.list.currentRow()
        try:
            item = keep_mode(self.session, row if row >= 0 else None)
        except ValueError as exc:
            self.message.setText(str(exc))
        else:
            self.message.setText(f"Kept '{item.name}'.")

    def rows(self) -> list[str]:
        return [self.list.item(r).text() for r in range(self.list.count())]


def _fullest(mask: np.ndarray) -> int | None:
    """For a 3D mask the slice holding most of it (the thumbnail shows that one); None for a 2D mask."""
    return None if mask.ndim == 2 else int(np.argmax(mask.reshape(mask.shape[0], -1).sum(axis=1)))


def _size(value: float) -> str:
    """A size with the precision it deserves on screen: 6.3, 84.0, 312."""
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"
