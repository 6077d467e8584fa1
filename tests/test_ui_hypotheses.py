"""Running models from the window and the hypothesis overlays: panel <-> session, streaming, superseding, errors,
contours/heatmap/consensus placed in scene millimetres.  Fake engines keep it fast; one test runs a real model."""
from __future__ import annotations

import gc
import threading
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtWidgets import QApplication
from ui_support import no_leaked_windows  # noqa: F401
from volume_support import prompt_disc

from ambiview.imaging.volume import Volume
from ambiview.models.base import Engine, EngineInfo
from ambiview.models.mirror_views import MAX_VIEWS
from ambiview.recent import RecentFolders
from ambiview.session.partial import partial_result
from ambiview.session.segment import roi_for
from ambiview.ui import model_panel
from ambiview.ui.heatmap_overlay import colorize
from ambiview.ui.main_window import MainWindow
from ambiview.ui.plane import AXIAL, CORONAL
from ambiview.ui.tools import Tool

pytestmark = pytest.mark.usefixtures("no_leaked_windows")
SHAPE, SPACING, Z = (6, 120, 140), (2.5, 0.7, 0.8), 3
WAIT_MS = 10000  # generous bound for a busy 2-core machine; not a timing assertion


class DiskEngine(Engine):
    """Draws disks centred on the box (or the positive point) of growing radius; optionally one hypothesis at a time
    behind a gate the test opens, stopping at once when cancelled."""

    dims, crop_size = 2, 64

    def __init__(self, name: str, accepts=("box", "point"), gated: bool = False, views: bool = False):
        self.name, self.title, self.digest = name, f"Fake {name}", "f00d" + name[:4]
        if views:
            self.views = 1  # takes mirrored views (`set_views`), as Probabilistic SAM; the disks ignore them
        self.accepts = frozenset(accepts)
        self.gate = threading.Semaphore(0) if gated else None
        self.threads: set[int] = set()

    def prepare(self, image):
        return image

    def sample(self, state, prompts, n, seed, on_sample=None, cancel=None):
        self.threads.add(threading.get_ident())
        cy, cx, radius = prompt_disc(prompts)
        yy, xx = np.mgrid[:64, :64]
        out = np.zeros((n, 64, 64), np.float32)
        for k in range(n):
            while self.gate is not None and not self.gate.acquire(timeout=0.01):
                if cancel and cancel():
                    return out[:k]
            if cancel and cancel():
                return out[:k]
            out[k] = np.hypot(yy - cy, xx - cx) <= radius * (0.6 + 0.1 * k) + 0.1 * seed
            if on_sample:
                on_sample(k + 1, out[k:k + 1])
        return out


def _volume() -> Volume:
    vox = np.full(SHAPE, -850, np.int16)
    yy, xx = np.mgrid[:SHAPE[1], :SHAPE[2]]
    vox[Z, np.hypot(yy - 60, xx - 70) < 12] = 30
    return Volume.from_array(vox, spacing=SPACING, series_uid="1.2.826.0.1.3680043.8.498.1", description="disk")


@pytest.fixture
def engines(monkeypatch):
    fakes = {"gated": DiskEngine("gated", gated=True, views=True), "quick": DiskEngine("quick"),
             "boxonly": DiskEngine("boxonly", accepts=("box",))}
    infos = [EngineInfo(e.name, e.title, Path(f"/models/{e.name}.safetensors"), e.digest, 2,
                        "temperature 2 · box + 3 px" if e.name == "quick" else "", mirror_views=hasattr(e, "views"))
             for e in fakes.values()]
    infos.append(EngineInfo("builtin", "A built-in", None, "", 2))
    monkeypatch.setattr(model_panel, "installed_engines", lambda: infos)
    return fakes


@pytest.fixture
def window(qtbot, tmp_path, engines):
    win = MainWindow(recent=RecentFolders(tmp_path / "recent.json"), show_dialogs=False)
    qtbot.addWidget(win)
    for name, engine in engines.items():
        win.hypotheses.controller.client.worker._engines[(name, None)] = engine
    win.resize(1300, 850)
    win.show()
    win.activateWindow()
    qtbot.waitActive(win)
    win.session.set_volume(_volume())
    win.session.set_slice(Z)
    QApplication.processEvents()
    yield win
    for engine in engines.values():
        for _ in range(64):
            if engine.gate is not None:
                engine.gate.release()


def _ui(win):
    return win.hypotheses


def _choose(win, name: str, n: int = 16) -> None:
    panel = _ui(win).model_panel
    assert panel.select_engine(name)
    panel.samples.setValue(n)


def _drag(qtbot, view, a: QPoint, b: QPoint) -> None:
    vp = view.viewport()
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=a)
    qtbot.mouseMove(vp, a + (b - a) / 3)
    qtbot.mouseMove(vp, b)
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=b)


def _draw_box(qtbot, win, y0, x0, y1, x1) -> None:
    axial = win.views.axial
    win.tools.set_tool(Tool.BOX)
    _drag(qtbot, axial, axial.voxel_to_widget((Z, y0, x0)).toPoint(), axial.voxel_to_widget((Z, y1, x1)).toPoint())


def _known_result(win, n: int = 4):
    """n hypotheses on the box (Z, 40..80, 50..90): an L in every one, hypothesis 1 with a longer foot."""
    win.hypotheses.controller.set_auto_run(False)
    win.session.add_box(Z, 40, 50, 80, 90)
    p = np.zeros((n, 64, 64), np.float32)
    p[:, 10:30, 5:10] = 1.0
    p[:, 25:30, 5:20] = 1.0
    p[1, 25:30, 20:40] = 1.0
    result = partial_result(win.session.volume, win.session.prompts, p, "quick", "Fake quick", "f00d", 0)
    win.session.set_result(result)
    return result


def _scene_bbox(xy) -> tuple[float, float, float, float]:
    x, y = (np.asarray(v, float) for v in xy)
    return np.nanmin(x), np.nanmin(y), np.nanmax(x), np.nanmax(y)


# --- model panel and running ----------------------------------------------------------------------------------------
def test_model_panel_lists_the_installed_engines_with_their_digest(window):
    panel = _ui(window).model_panel
    texts = [panel.model_box.itemText(i) for i in range(panel.model_box.count())]
    assert texts == ["Fake gated  [f00dgate]", "Fake quick  [f00dquic]", "Fake boxonly  [f00dboxo]",
                     "A built-in  [built-in]"]
    assert panel.samples.value() == 16 and panel.seed.value() == 0
    assert panel.select_engine("quick") and not panel.select_engine("missing")
    assert panel.digest_label.text() == "sha256 f00dquic"
    assert panel.sampling_label.text() == "temperature\u00a02 · box\u00a0+\u00a03\u00a0px"
    assert panel.select_engine("builtin") and panel.sampling_label.text() == "—"
    assert panel.select_engine("quick")
    panel.device_box.setCurrentText("CPU")
    panel.seed.setValue(5)
    settings = _ui(window).controller.settings
    assert (settings.engine, settings.n, settings.seed, settings.device) == ("quick", 16, 5, "cpu")
    # mirrored views: offered only where the engine has them, and 1 for the others whatever the box shows
    assert not panel.views.isEnabled() and settings.views == 1
    assert panel.select_engine("gated") and panel.views.isEnabled()
    panel.views.setValue(3)
    assert _ui(window).controller.settings.views == 3
    assert panel.select_engine("quick") and not panel.views.isEnabled()
    assert _ui(window).controller.settings.views == 1
    assert panel.views.maximum() == MAX_VIEWS


def test_the_first_streamed_hypothesis_shows_at_once_and_the_gui_keeps_running(window, engines, qtbot):
    ui, session, engine = _ui(window), window.session, engines["gated"]
    _choose(window, "gated", n=3)
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(5)
    session.add_box(Z, 48, 58, 72, 82)  # auto-run, debounced
    qtbot.waitUntil(lambda: ui.controller.busy, timeout=WAIT_MS)
    assert ui.model_panel.cancel_button.isEnabled()
    before = len(ticks)
    qtbot.waitUntil(lambda: len(ticks) > before + 3, timeout=WAIT_MS)  # the event loop ticks while the model waits
    engine.gate.release()
    qtbot.waitUntil(lambda: ui.display.n == 1, timeout=WAIT_MS)
    assert ui.display.provisional and session.result is None          # shown before the session has a result
    assert not gc.isenabled()                 # no automatic collection, so none on the inference thread
    assert ui.model_panel.status.text() == "1/3 hypotheses"
    assert ui.hypothesis_panel.index_label.text() == "1 / 1"
    assert len(ui.overlays[AXIAL][1].scene_paths()["current"][0]) > 0   # its contour is on screen
    before = len(ticks)
    qtbot.waitUntil(lambda: len(ticks) > before + 3, timeout=WAIT_MS)
    engine.gate.release()
    engine.gate.release()
    qtbot.waitUntil(lambda: session.result is not None, timeout=WAIT_MS)
    timer.stop()
    assert session.result.n == 3 and not ui.display.provisional and ui.display.n == 3
    assert ui.model_panel.status.text() == "3 hypotheses from Fake gated (seed 0)"
    assert ui.model_panel.progress.value() == 3 and not ui.model_panel.cancel_button.isEnabled()
    assert threading.get_ident() not in engine.threads                  # the model never ran on the GUI thread
    assert not gc.isenabled()   # collection stays on a GUI-thread timer (ui/gui_gc.py), never automatic


def test_a_newer_mouse_drawn_box_supersedes_the_older_request(window, engines, qtbot):
    ui, session, engine = _ui(window), window.session, engines["gated"]
    _choose(window, "gated", n=2)
    submitted, results = [], []
    original = ui.controller.client.submit
    ui.controller.client.submit = lambda *a, **k: submitted.append(a[1]) or original(*a, **k)
    session.subscribe("result_changed", lambda result: results.append(result))
    _draw_box(qtbot, window, 30, 30, 60, 60)
    qtbot.waitUntil(lambda: len(submitted) == 1, timeout=WAIT_MS)
    engine.gate.release()                                               # the first box gets one hypothesis
    qtbot.waitUntil(lambda: ui.display.n == 1, timeout=WAIT_MS)
    _draw_box(qtbot, window, 50, 60, 75, 85)                             # then the user draws a better box
    qtbot.waitUntil(lambda: len(submitted) == 2, timeout=WAIT_MS)
    for _ in range(4):
        engine.gate.release()
    qtbot.waitUntil(lambda: session.result is not None, timeout=WAIT_MS)
    qtbot.wait(200)
    final = [r for r in results if r is not None]
    assert len(final) == 1 and final[0].n == 2                           # the stale answer never arrived
    assert final[0].roi == roi_for(session.prompts, session.volume, 64, 1)
    assert final[0].prompts[-1] == session.prompts[-1].to_dict()                # the newer box decided the ROI


def test_auto_run_waits_for_quick_successive_prompts_and_skips_what_is_answered(window, engines, qtbot):
    ui, session = _ui(window), window.session
    _choose(window, "quick", n=4)
    submitted = []
    original = ui.controller.client.submit
    ui.controller.client.submit = lambda *a, **k: submitted.append(a[1]) or original(*a, **k)
    session.add_box(Z, 48, 58, 72, 82)
    session.add_point(Z, 60, 70, positive=True)                          # within the debounce: one request
    qtbot.waitUntil(lambda: session.result is not None, timeout=WAIT_MS)
    assert len(submitted) == 1 and len(submitted[0]) == 2
    session.emit("prompts_changed", prompts=session.prompts)             # e.g. a restored session: already answered
    qtbot.wait(400)
    assert len(submitted) == 1
    ui.model_panel.seed.setValue(3)                                      # a new seed is answered again
    qtbot.waitUntil(lambda: session.result.seed == 3, timeout=WAIT_MS)
    session.clear_prompts()                                              # no prompt, no hypotheses
    assert session.result is None


def test_a_model_that_needs_a_box_says_so_in_the_panel_and_the_status_bar(window, qtbot):
    ui = _ui(window)
    _choose(window, "boxonly")
    window.session.add_point(Z, 60, 70, positive=True)
    qtbot.waitUntil(lambda: "needs a box" in ui.model_panel.status.text(), timeout=WAIT_MS)
    assert "color" in ui.model_panel.status.styleSheet()                  # shown as an error
    assert "needs a box" in window.statusBar().currentMessage()
    assert window.session.result is None and not ui.controller.busy


def test_cancel_keeps_the_hypotheses_drawn_so_far(window, engines, qtbot):
    ui, session, engine = _ui(window), window.session, engines["gated"]
    _choose(window, "gated", n=5)
    ui.model_panel.views.setValue(2)
    ui.controller.set_auto_run(False)
    session.add_box(Z, 48, 58, 72, 82)
    ui.model_panel.run_button.click()
    engine.gate.release()
    engine.gate.release()
    qtbot.waitUntil(lambda: ui.display.n == 2, timeout=WAIT_MS)
    ui.model_panel.cancel_button.click()
    assert session.result is not None and session.result.n == 2
    assert engine.views == 2 and session.result.model_title == "Fake gated · 2 mirrored views"  # as a full result
    assert ui.model_panel.status.text() == "Cancelled: kept the 2 of 5 hypotheses drawn so far"
    assert not ui.model_panel.cancel_button.isEnabled()


# --- hypothesis panel -----------------------------------------------------------------------------------------------
def test_hypothesis_slider_keys_and_play_follow_the_session_both_ways(window, qtbot):
    _known_result(window)
    panel, session = _ui(window).hypothesis_panel, window.session
    assert panel.slider.maximum() == 3 and panel.index_label.text() == "1 / 4"
    panel.slider.setValue(2)                                             # widget -> session
    assert session.hypothesis == 2
    session.set_hypothesis(3)                                            # session -> widget
    assert panel.slider.value() == 3 and panel.index_label.text() == "4 / 4"
    qtbot.keyClick(window.views.axial, Qt.Key.Key_BracketRight)          # ] : next, wrapping around
    assert session.hypothesis == 0
    qtbot.keyClick(window.views.axial, Qt.Key.Key_BracketLeft)
    assert session.hypothesis == 3
    qtbot.keyClick(window.views.axial, Qt.Key.Key_Right, Qt.KeyboardModifier.ControlModifier)
    assert session.hypothesis == 0
    qtbot.keyClick(window.views.axial, Qt.Key.Key_Up)                    # Up still scrolls slices
    assert session.cursor[0] == Z + 1 and session.hypothesis == 0
    seen = set()
    session.subscribe("hypothesis_changed", lambda index: seen.add(index))
    panel.play_button.click()
    assert panel.playing and panel.play_button.text() == "Pause"
    qtbot.waitUntil(lambda: len(seen) >= 2, timeout=WAIT_MS)
    panel.play_button.click()
    assert not panel.playing


# --- overlays -------------------------------------------------------------------------------------------------------
def test_contours_are_drawn_where_the_masks_are_in_every_view(window, qtbot):
    result = _known_result(window)
    ui, roi = _ui(window), result.roi
    axial_layer = ui.overlays[AXIAL][1]
    plane = window.views.axial.plane
    # the L of hypothesis 0 spans model rows 10..29, columns 5..19 -> volume edges via the ROI
    y0, y1 = roi.top + 10 * roi.scale, roi.top + 30 * roi.scale          # model pixel r spans [r, r + 1] * scale
    x0, x1 = roi.left + 5 * roi.scale, roi.left + 20 * roi.scale
    left, top = plane.voxel_to_scene((Z, y0, x0))
    right, bottom = plane.voxel_to_scene((Z, y1, x1))
    assert _scene_bbox(axial_layer.scene_paths()["current"]) == pytest.approx((left, top, right, bottom))
    paths = axial_layer.scene_paths()["thin"]
    assert len(paths) == 4
    window.session.set_hypothesis(1)                                     # the current one is now the longer foot
    assert _scene_bbox(axial_layer.scene_paths()["current"])[2] > right + 10
    ui.hypothesis_panel.contours_box.click()                             # thin contours off, current stays
    assert not any(item.isVisible() for item in axial_layer.thin) and axial_layer.current.isVisible()
    # the coronal view through the foot (model row 27) shows a band one slice thick
    row = roi.top + 27.5 * roi.scale
    window.session.set_cursor(Z, round(row), 60)
    coronal = window.views.coronal
    box = _scene_bbox(ui.overlays[CORONAL][1].scene_paths()["current"])
    z_low = coronal.plane.voxel_to_scene((Z - 0.5, 0, 0))[1]
    z_high = coronal.plane.voxel_to_scene((Z + 0.5, 0, 0))[1]
    assert (min(box[1], box[3]), max(box[1], box[3])) == pytest.approx(tuple(sorted((z_low, z_high))))
    window.session.set_slice(Z + 1)                                      # a 2-D result: nothing on other slices
    assert len(axial_layer.scene_paths()["current"][0]) == 0


def test_heatmap_colours_only_where_the_hypotheses_disagree(window, qtbot):
    result = _known_result(window)
    ui = _ui(window)
    layer, legend = ui.overlays[AXIAL][0], ui.overlays[AXIAL][0].legend
    ui.display.set_options(measure="coverage")
    image = layer.image.image
    assert image.shape == (64, 64, 4) and layer.image.isVisible() and legend.isVisible()
    count = ui.display.views.count[0]
    assert np.all(image[(count == 0) | (count == 4), 3] == 0)           # transparent where all or none agree
    assert np.all(image[(count > 0) & (count < 4), 3] > 0)
    # placed on the ROI: the corner of model pixel (0, 0) is the ROI's outer corner
    plane = window.views.axial.plane
    corner = layer.image.mapToParent(layer.image.boundingRect().topLeft())
    expected = plane.voxel_to_scene((Z, result.roi.top, result.roi.left))
    assert (corner.x(), corner.y()) == pytest.approx(expected)
    ui.hypothesis_panel.opacity.setValue(30)
    assert layer.image.opacity() == pytest.approx(0.3)
    ui.hypothesis_panel.measure_box.setCurrentIndex(ui.hypothesis_panel.measure_box.findData("variance"))
    assert legend.tick_texts() == ["0", "0.125", "0.25"] and legend.title.startswith("Variance")
    ui.hypothesis_panel.heatmap_box.click()
    assert not layer.image.isVisible() and not legend.isVisible()


def test_overlays_follow_a_new_series_and_a_closed_one(window):
    _known_result(window)
    ui = _ui(window)
    window.session.set_volume(_volume())               # a new plane object in every view, no result
    assert ui.display.views is None and not ui.overlays[AXIAL][0].image.isVisible()
    assert len(ui.overlays[AXIAL][1].scene_paths()["current"][0]) == 0 and ui.overlays[AXIAL][2].visible_names() == []
    _known_result(window)
    window.session.set_volume(None)
    assert ui.display.views is None and not ui.hypothesis_panel.slider.isEnabled()


def test_colorize_is_transparent_for_nan_and_spans_the_range():
    rgba = colorize(np.array([[np.nan, 0.0, 0.5, 1.0]]), 0.0, 1.0)
    assert rgba[0, 0, 3] == 0 and 0 < rgba[0, 1, 3] < rgba[0, 3, 3] == 255
    assert not np.array_equal(rgba[0, 1, :3], rgba[0, 3, :3])


def test_consensus_band_and_staple_outlines(window, qtbot):
    _known_result(window)
    ui = _ui(window)
    panel, layer = ui.hypothesis_panel, ui.overlays[AXIAL][2]
    assert layer.visible_names() == []
    panel.consensus_box.click()
    assert layer.visible_names() == ["consensus"] and panel.level_label.text() == "≥ 50 % (2 of 4)"
    half = _scene_bbox(layer.consensus.getData())
    panel.level.setValue(100)
    assert panel.level_label.text() == "≥ 100 % (4 of 4)"
    full = _scene_bbox(layer.consensus.getData())
    current = _scene_bbox(ui.overlays[AXIAL][1].scene_paths()["current"])  # hypothesis 0 is the plain L
    assert full == pytest.approx(current) and half == pytest.approx(current)  # only 1 of 4 has the long foot
    panel.level.setValue(25)
    assert _scene_bbox(layer.consensus.getData())[2] > full[2] + 10       # now the long foot counts
    panel.band_box.click()
    assert layer.visible_names() == ["consensus", "inner", "outer"]
    assert _scene_bbox(layer.outer.getData())[2] > _scene_bbox(layer.inner.getData())[2]
    panel.outer_box.setValue(95)                                         # outer above inner: inner follows
    assert ui.display.options.band_inner == pytest.approx(0.95)
    panel.staple_button.click()
    assert "staple" in layer.visible_names() and panel.staple_table.isVisible()
    assert panel.staple_table.rowCount() == 4
    assert panel.staple_table.item(0, 1).text() == f"{ui.display.views.staple().sensitivity[0]:.3f}"


# --- a real model ---------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_real_model_runs_end_to_end_through_the_window(qtbot, tmp_path):
    """The shipped Probabilistic SAM checkpoint, or another shipped checkpoint while it is not there yet."""
    from ambiview.models.registry import list_engines

    shipped = [info.name for info in list_engines() if info.checkpoint is not None]
    if not shipped:
        pytest.skip("no model checkpoint in the models folder")
    name = next((n for n in shipped if n.startswith("probsam")), shipped[0])
    win = MainWindow(recent=RecentFolders(tmp_path / "recent.json"), show_dialogs=False)
    qtbot.addWidget(win)
    win.show()
    win.session.set_volume(_volume())
    ui = win.hypotheses
    assert ui.model_panel.select_engine(name)
    ui.model_panel.samples.setValue(4)
    views = 2 if name.startswith("probsam") else 1                       # Probabilistic SAM: two mirrored views
    assert ui.model_panel.views.isEnabled() == (views == 2)
    ui.model_panel.views.setValue(views)
    win.session.add_box(Z, 44, 54, 76, 86)                               # around the disk (radius 12 px)
    qtbot.waitUntil(lambda: win.session.result is not None or "ailed" in ui.model_panel.status.text(),
                    timeout=120000)
    result = win.session.result
    assert result is not None, ui.model_panel.status.text()
    assert result.n == 4 and result.model == name
    assert result.model_title.endswith(" · 2 mirrored views") == (views == 2)
    disk = np.zeros(SHAPE, bool)
    yy, xx = np.mgrid[:SHAPE[1], :SHAPE[2]]
    disk[Z] = np.hypot(yy - 60, xx - 70) < 12
    best = result.mask_to_volume(result.probs[0] > 0.5)
    assert (best & disk).sum() / (best | disk).sum() > 0.5               # it found the disk
    assert len(ui.overlays[AXIAL][1].scene_paths()["current"][0]) > 0


# --- the screenshot path ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    ([".", "--box", "1,2,3,4,5"], "--box needs --screenshot"),
    ([".", "--screenshot", "x.png", "--box", "1,2,3"], "a box is Z,Y0,X0,Y1,X1"),
    ([".", "--screenshot", "x.png", "--box", "1,20,3,10,5"], "Y1 must exceed Y0"),
    ([".", "--screenshot", "x.png", "--model", "probsam"], "--model needs --box"),
    ([".", "--screenshot", "x.png", "--views", "4"], "--views needs --box"),
    ([".", "--screenshot", "x.png", "--box", "1,2,3,4,5", "--views", "5"], "invalid choice"),
])
def test_bad_box_arguments_exit_2_with_a_message(argv, message, capsys):
    from ambiview.ui import app

    with pytest.raises(SystemExit) as exc:
        app.main(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_screenshot_with_a_box_runs_the_model_first(tmp_path, monkeypatch, capsys, engines):
    from ui_support import write_series

    from ambiview.models import registry
    from ambiview.ui import app

    monkeypatch.setattr(registry, "load_engine", lambda name, device=None: engines[name])
    folder = tmp_path / "study"
    write_series(folder, n_slices=3, rows=64, cols=64)
    out = tmp_path / "boxed.png"
    assert app.main([str(folder), "--screenshot", str(out), "--box", "1,20,20,40,40", "--model", "quick",
                     "--size", "1400x900"]) == 0
    assert out.exists() and "wrote" in capsys.readouterr().out
    code = app.main([str(folder), "--screenshot", str(out), "--box", "1,20,20,40,40", "--model", "nonesuch"])
    assert code == 1 and "model 'nonesuch' is not installed (installed: gated, quick" in capsys.readouterr().err
    code = app.main([str(folder), "--screenshot", str(out), "--box", "7,20,20,40,40"])
    assert code == 1 and "lies outside the series" in capsys.readouterr().err
