"""Python's cyclic garbage collection on the GUI thread only.

The collector runs in whichever thread happens to allocate when a threshold is crossed.  If that is the inference or
the loading thread, it can free Qt objects that only Python owned (pyqtgraph's context menus are parentless top-level
widgets) from the wrong thread, and the GUI thread later crashes on the half-destroyed widget (seen as a segmentation
fault in QApplication.topLevelWidgets()).  pyqtgraph's GarbageCollector disables automatic collection and collects on
a timer of the GUI thread instead; one is installed for the whole process as soon as a window or a worker thread exists.
"""
from __future__ import annotations

from pyqtgraph.util.garbage_collector import GarbageCollector

_collector: GarbageCollector | None = None


def collect_on_gui_thread(interval_s: float = 0.5) -> GarbageCollector:
    """Install (once) the timer-driven collector; call from the GUI thread after the QApplication exists."""
    global _collector
    if _collector is None:
        _collector = GarbageCollector(interval=interval_s)
    return _collector
