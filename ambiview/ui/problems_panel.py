"""What went wrong or looks odd in an opened folder, in words a user can act on.

`LoadReport` gathers the scan's unreadable files, its warnings, the skipped non-image objects and the loaded
volume's warnings (missing slices, gantry tilt...); `ProblemsPanel` lists them.  Paths are shown relative to the
opened folder, with the full path as tooltip.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtWidgets import QListWidget, QListWidgetItem, QStyle, QVBoxLayout, QWidget


@dataclass
class LoadReport:
    source: Path | None = None
    problems: list = field(default_factory=list)  # FileProblem(path, message)
    warnings: list[str] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    other_series: int = 0

    @classmethod
    def from_results(cls, source: Path | None, scan=None, series=None, volume=None) -> "LoadReport":
        warnings: list[str] = []
        for group in (getattr(scan, "warnings", None), getattr(series, "warnings", None),
                      getattr(volume, "warnings", None)):
            for text in group or []:
                if text not in warnings:
                    warnings.append(str(text))
        n_series = len(getattr(scan, "series", []) or [])
        return cls(source, list(getattr(scan, "problems", []) or []), warnings,
                   {k: int(v) for k, v in (getattr(scan, "skipped", {}) or {}).items() if v},
                   max(n_series - 1, 0))

    @property
    def count(self) -> int:
        return len(self.problems) + len(self.warnings)

    def summary(self) -> str:
        """One line for the status bar; empty when there is nothing to say."""
        parts = []
        if self.problems:
            parts.append(f"{len(self.problems)} file{'s' if len(self.problems) != 1 else ''} could not be used")
        if self.warnings:
            parts.append(f"{len(self.warnings)} warning{'s' if len(self.warnings) != 1 else ''}")
        skipped = sum(self.skipped.values())
        if skipped:
            parts.append(f"{skipped} non-image file{'s' if skipped != 1 else ''} skipped")
        return " · ".join(parts)

    def display_path(self, path) -> str:
        path = Path(path)
        if self.source is not None:
            try:
                return str(path.relative_to(self.source if self.source.is_dir() else self.source.parent))
            except ValueError:
                pass
        return str(path)


class ProblemsPanel(QWidget):
    """A list of the report's entries: unusable files first, then warnings (the scan's own warnings already say
    what was skipped), then a note on other series in the folder."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.list = QListWidget()
        self.list.setWordWrap(True)
        self.list.setAlternatingRowColors(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.list)
        self.report = LoadReport()

    def entries(self) -> list[str]:
        return [self.list.item(i).text() for i in range(self.list.count())]

    def set_report(self, report: LoadReport) -> None:
        self.report = report
        self.list.clear()
        style = self.style()
        warning, info = (style.standardIcon(icon) for icon in (
            QStyle.StandardPixmap.SP_MessageBoxWarning, QStyle.StandardPixmap.SP_MessageBoxInformation))
        for problem in report.problems:
            item = QListWidgetItem(warning, f"{report.display_path(problem.path)}: {problem.message}")
            item.setToolTip(str(problem.path))
            self.list.addItem(item)
        for text in report.warnings:
            self.list.addItem(QListWidgetItem(warning, text))
        if report.other_series:
            self.list.addItem(QListWidgetItem(info, f"{report.other_series} other series in this folder "
                                                    "(File ▸ Open to choose another)"))
