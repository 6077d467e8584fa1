"""The `ambiview` entry point: screenshots (success and failure), argument errors, the exception hook."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PySide6.QtGui import QImage
from ui_support import no_leaked_windows, write_series  # noqa: F401

from ambiview.ui import app, crash_log
from ambiview.ui.screenshot_run import resolve_slice

pytestmark = pytest.mark.usefixtures("no_leaked_windows")


def _grey(path) -> np.ndarray:
    image = QImage(str(path)).convertToFormat(QImage.Format.Format_Grayscale8)
    assert not image.isNull(), f"{path} is not a readable image"
    bits = np.frombuffer(image.constBits(), dtype=np.uint8, count=image.sizeInBytes())
    return bits.reshape(image.height(), image.bytesPerLine())[:, : image.width()]


def test_screenshot_command_writes_a_png_of_the_window(tmp_path):
    folder = tmp_path / "study"
    write_series(folder, n_slices=5, rows=64, cols=48)
    out = tmp_path / "shots" / "window.png"
    env = dict(os.environ)
    env.pop("DISPLAY", None)  # the screenshot must work without a display (offscreen platform)
    env.pop("WAYLAND_DISPLAY", None)
    result = subprocess.run([sys.executable, "-m", "ambiview.ui.app", str(folder), "--screenshot", str(out),
                             "--preset", "bone", "--slice", "-1", "--size", "1000x700"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    grey = _grey(out)
    assert grey.shape == (700, 1000)
    assert grey.std() > 10 and len(np.unique(grey)) > 20  # not blank: widgets, text and the image
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in out.parent.iterdir()) == ["window.png"]  # no temporary file left
    assert not (tmp_path / "recent.json").exists()


def test_screenshot_of_a_folder_without_images_fails_with_a_message(tmp_path, capsys):
    folder = tmp_path / "nothing"
    folder.mkdir()
    (folder / "a.txt").write_text("hello")
    out = tmp_path / "out.png"
    code = app.main([str(folder), "--screenshot", str(out)])
    assert code == 1
    err = capsys.readouterr().err
    assert "no loadable image series" in err and "a.txt" in err
    assert not out.exists()


def test_screenshot_slice_out_of_range_fails(tmp_path, capsys):
    folder = tmp_path / "study"
    write_series(folder, n_slices=3)
    code = app.main([str(folder), "--screenshot", str(tmp_path / "out.png"), "--slice", "7"])
    assert code == 1
    assert "slice 7 is out of range: the series has 3 slices" in capsys.readouterr().err


def test_resolve_slice_counts_negative_indices_from_the_end():
    assert resolve_slice(0, 10) == 0 and resolve_slice(-1, 10) == 9 and resolve_slice(-10, 10) == 0
    with pytest.raises(ValueError):
        resolve_slice(-11, 10)


@pytest.mark.parametrize("argv, message", [
    (["--screenshot", "x.png"], "--screenshot needs PATH or --demo"),
    (["/no/such/folder"], "/no/such/folder does not exist"),
    ([".", "--demo"], "either PATH or --demo"),
    ([".", "--preset", "brain"], "unknown preset 'brain'"),
])
def test_bad_arguments_exit_2_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        app.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_excepthook_logs_the_stack_without_the_message_and_tells_the_user(monkeypatch):
    shown = []
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # restored after the test
    hook = crash_log.install_excepthook(show=shown.append)
    assert sys.excepthook is hook

    patient = "".join(["D", "oe^Jane"])  # built at run time, so that no source line in the stack shows it

    def load_patient_file():
        raise ValueError(f"{patient}: /data/{patient}/1.dcm")

    try:
        load_patient_file()
    except ValueError as exc:
        hook(type(exc), exc, exc.__traceback__)
    log = crash_log.log_path().read_text()
    assert "builtins.ValueError" in log and "in load_patient_file" in log
    assert "Doe" not in log
    assert len(shown) == 1 and "ValueError" in shown[0] and str(crash_log.log_path()) in shown[0]
