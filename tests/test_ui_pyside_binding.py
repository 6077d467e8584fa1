"""PySide6 6.12.0 loses a reference to None/True on every void call and signal emission, and on Python 3.11 the
interpreter aborts after a few thousand ("Fatal Python error: none_dealloc").  pyproject pins PySide6 below 6.12; this
test fails if an installed binding brings the bug back."""
from __future__ import annotations

import subprocess
import sys
import textwrap

_STRESS = textwrap.dedent("""
    import gc
    from PySide6.QtCore import QObject, QPoint
    point, obj = QPoint(), QObject()
    for _ in range(60000):
        point.setX(1)
        obj.objectNameChanged.emit("x")
    gc.collect()
    print("ok")
""")


def test_many_pyside_calls_do_not_kill_the_interpreter():
    result = subprocess.run([sys.executable, "-c", _STRESS], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"
