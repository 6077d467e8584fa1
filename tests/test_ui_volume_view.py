"""The 3D view: surfaces in patient space, what the rendered picture shows, the slider, the cursor both ways, the
screenshot, and closing mid-way.  Renders with VTK under Xvfb (Mesa) and checks the pixels drawn."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
import time

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QImage
from ui_support import no_leaked_windows  # noqa: F401
from volume_support import (
    BOX,
    NODULE,
    ROI_DEPTH,
    SPACING,
    WAIT_MS,
    SphereEngine,
    engine_info,
    run_spheres,
    sphere_window,
    write_chest,
)
from vtkmodules.util.numpy_support import vtk_to_numpy

from ambiview.imaging.geometry import Geometry
from ambiview.session.partial import partial_result
from ambiview.ui.palette import hypothesis_rgb
from ambiview.ui.screenshot import save_widget_png
from ambiview.ui.volume_scene import FAINT_OPACITY, VolumeScene

pytestmark = pytest.mark.usefixtures("no_leaked_windows")
N = 5


# --- the scene alone (VTK, no Qt) -------------------------------------------------------------------------------------
def _oblique_geometry() -> Geometry:
    """A rotated, anisotropic ROI grid (D, H, W) = (10, 24, 20), so a transpose or a skipped mapping shows."""
    a = np.radians(30.0)
    return Geometry.regular((10, 24, 20), spacing=(2.5, 0.6, 0.9), origin=(12.0, -40.0, 7.0),
                            row_cosine=(np.cos(a), np.sin(a), 0.0), col_cosine=(-np.sin(a), np.cos(a), 0.0))


def _blocks(n: int) -> np.ndarray:
    """n nested boxes, each a voxel larger all round than the one before, of different extent along each axis and
    off the grid's centre."""
    probs = np.zeros((n, 10, 24, 20), np.float32)
    for k in range(n):
        probs[k, 4 - k:6 + k, 6 - k:14 + k, 6 - k:10 + k] = 1.0
    return probs


def _points(actor) -> np.ndarray:
    return vtk_to_numpy(actor.GetMapper().GetInput().GetPoints().GetData())


def test_one_smoothed_surface_per_hypothesis_placed_through_the_geometry():
    geometry, probs = _oblique_geometry(), _blocks(3)
    scene = VolumeScene(size=(200, 200))
    scene.show(probs, geometry)
    assert scene.pending == 4 and scene.surface_actors() == []      # 3 hypotheses and the shell, none made yet
    assert scene.extract(max_items=1) == 3 and len(scene.surface_actors()) == 1
    scene.finish()
    actors = scene.surface_actors()
    assert len(actors) == 3 and scene.shell_actor is not None and scene.cache.extracted == 4
    for k, actor in enumerate(actors):
        # in ROI-grid voxels the surface must wrap the block: half a voxel beyond its outer voxel centres
        zyx = geometry.patient_to_voxel(_points(actor))
        low, high = zyx.min(axis=0), zyx.max(axis=0)
        np.testing.assert_allclose(low, [3.5 - k, 5.5 - k, 5.5 - k], atol=0.35)
        np.testing.assert_allclose(high, [5.5 + k, 13.5 + k, 9.5 + k], atol=0.35)
        assert actor.GetProperty().GetColor() == pytest.approx([c / 255 for c in hypothesis_rgb(k)])
    # the same hypotheses again (a streamed result re-sent) are not extracted again
    scene.show(probs, geometry)
    assert scene.pending == 1 and len(scene.surface_actors()) == 3    # only the shell is redone


def _collect_all(scene: VolumeScene, budget_s: float | None = None) -> None:
    """Put every surface the background threads make into the scene (waits for them; no timing asserted)."""
    for _ in range(20000):
        left, _ = scene.collect(budget_s=budget_s)
        if not left:
            return
        time.sleep(0.001)
    raise AssertionError("background surfaces never came")


def test_surfaces_made_in_the_background_are_those_made_in_place_and_made_once():
    geometry, probs = _oblique_geometry(), _blocks(3)
    scene = VolumeScene(size=(200, 200))
    scene.prefetch(probs[:2], geometry)                               # a model's batch arrives, before it is shown
    scene.show(probs, geometry)
    assert scene.pending == 4 and scene.surface_actors() == []
    scene.prefetch_pending()                                          # the third hypothesis and the shell
    _collect_all(scene)
    assert scene.cache.extracted == 4 and len(scene.surface_actors()) == 3 and scene.shell_actor is not None
    in_place = VolumeScene(size=(200, 200))
    in_place.show(probs, geometry)
    in_place.finish()
    for ours, theirs in zip(scene.surface_actors() + [scene.shell_actor],
                            in_place.surface_actors() + [in_place.shell_actor]):
        np.testing.assert_array_equal(_points(ours), _points(theirs))
    assert [a.GetProperty().GetColor() for a in scene.surface_actors()] == [
        pytest.approx([c / 255 for c in hypothesis_rgb(k)]) for k in range(3)]
    # with a budget, the caller makes what the background threads have not started
    busy = VolumeScene(size=(200, 200))
    busy.show(probs, geometry)
    busy.prefetch_pending()
    _collect_all(busy, budget_s=1.0)
    assert busy.pending == 0 and busy.cache.extracted == 4
    for ours, theirs in zip(busy.surface_actors(), in_place.surface_actors()):
        np.testing.assert_array_equal(_points(ours), _points(theirs))
    # collect() starts what nobody is making; finish() waits for what is being made
    later = VolumeScene(size=(200, 200))
    later.show(probs, geometry)
    later.collect()
    later.finish()
    assert later.pending == 0 and later.cache.extracted == 4


def test_a_surface_starved_in_the_background_is_made_by_the_caller(monkeypatch):
    from ambiview.ui import volume_scene

    monkeypatch.setattr(volume_scene, "STARVED_AFTER_S", 0.0)  # every running background surface counts as starved
    geometry, probs = _oblique_geometry(), _blocks(3)
    scene = VolumeScene(size=(200, 200))
    scene.show(probs, geometry)
    scene.prefetch_pending()
    _collect_all(scene, budget_s=0.0)
    assert scene.pending == 0 and scene.cache.extracted == 4 and len(scene.surface_actors()) == 3


def test_a_new_roi_stops_waiting_for_the_old_rois_background_surfaces():
    geometry, probs = _oblique_geometry(), _blocks(3)
    scene = VolumeScene(size=(200, 200))
    scene.prefetch(probs, geometry)
    other = Geometry.regular((10, 24, 20), spacing=(2.5, 0.6, 0.9), origin=(50.0, 0.0, 0.0))
    scene.show(probs[:1], other)
    assert not any(scene.cache.prefetching(h.key) for h in scene.hypotheses)  # another ROI: other keys
    assert not scene.cache._futures                                   # the old ROI's are forgotten
    scene.finish()
    assert len(scene.surface_actors()) == 1


def _chromaticity(rgb) -> np.ndarray:
    rgb = np.asarray(rgb, float)
    return rgb / max(rgb.sum(), 1e-9)


def _nearest_hypothesis(pixel, n: int) -> int:
    return int(np.argmin([np.linalg.norm(_chromaticity(pixel) - _chromaticity(hypothesis_rgb(i))) for i in range(n)]))


def test_the_picture_shows_the_current_surface_in_its_contour_colour_where_the_lesion_is():
    geometry, probs = _oblique_geometry(), _blocks(4)
    scene = VolumeScene(size=(240, 200))
    scene.set_shell(False)
    scene.set_planes("off")
    scene.show(probs, geometry, ct=np.full(geometry.shape, -800.0, np.float32))
    scene.finish()
    assert scene.cube.GetXPlusFaceText() == "L" and scene.cube.GetYMinusFaceText() == "A"  # LPS: +x left, -y front
    scene.annotation.VisibilityOff()                                   # only the lesion on the picture, no labels
    scene.cube_renderer.DrawOff()
    centre = geometry.voxel_to_patient([4.5, 9.5, 7.5])               # inside every block
    x, y = scene.display_position(centre)
    row, col = round(200 - 1 - y), round(x)                 # the picture's rows run top down
    image = scene.image()
    assert image.shape == (200, 240, 3)
    background = image[:, -1].astype(int)                             # the right edge: only the background there
    lesion = np.abs(image.astype(int) - background[:, None, :]).sum(axis=2) > 30
    assert lesion[row - 2:row + 3, col - 2:col + 3].all()            # the surface where the lesion projects
    rows, cols = np.nonzero(lesion)
    assert abs(rows.mean() - row) < 25 and abs(cols.mean() - col) < 25  # and drawn around it, not elsewhere
    for current in (0, 2):                                             # the slider picks the opaque surface
        scene.set_current(current)
        pixel = scene.image()[row, col]
        assert _nearest_hypothesis(pixel, 4) == current
    assert [a.GetVisibility() for a in scene.surface_actors()] == [False, False, True, False]
    scene.set_others("faint")
    assert [a.GetVisibility() for a in scene.surface_actors()] == [True] * 4
    assert [a.GetProperty().GetOpacity() for a in scene.surface_actors()] == [FAINT_OPACITY] * 2 + [1.0, FAINT_OPACITY]
    scene.set_others("hidden")
    before = scene.image()[row, col].astype(int)
    scene.set_shell(True)
    scene.finish()
    assert scene.shell_actor.GetVisibility() and np.abs(scene.image()[row, col].astype(int) - before).sum() > 10


# --- the view in the window -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def chest(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chest3d-view") / "ct"
    return write_chest(folder), folder


@pytest.fixture
def window(qtbot, tmp_path, chest, monkeypatch):
    return sphere_window(qtbot, tmp_path, chest[0], monkeypatch, (1400, 900))


def _run(win, qtbot, n: int = N):
    run_spheres(win, qtbot, n, done=lambda w: w.volume_ui.view is not None and w.volume_ui.view.scene.pending == 0)
    view = win.volume_ui.view
    view.finish()
    return view


def test_a_3d_result_opens_the_3d_view_and_the_slider_drives_it(window, qtbot):
    # a 3D model is chosen with a series open: the 3D view is made ahead, and stays hidden until a 3D result comes
    qtbot.waitUntil(lambda: window.volume_ui.view is not None, timeout=WAIT_MS)
    assert not window.volume_ui.dock.isVisible() and not window.volume_ui.screenshot_action.isEnabled()
    arrived = []
    window.hypotheses.display.hypotheses_arriving.connect(lambda probs, geometry: arrived.append((probs, geometry)))
    view = _run(window, qtbot)
    # every batch was announced as it came, on the final result's grid: its surfaces were started in the background
    result = window.session.result
    np.testing.assert_array_equal(np.concatenate([probs for probs, _ in arrived]), result.probs)
    assert all(np.allclose(g.affine(), result.roi_geometry.affine()) and g.shape == result.roi_geometry.shape
               for _, g in arrived)
    assert window.volume_ui.dock.isVisible() and window.volume_ui.screenshot_action.isEnabled()
    scene = view.scene
    actors = scene.surface_actors()
    assert len(actors) == N
    assert [a.GetProperty().GetColor() for a in actors] == [pytest.approx([c / 255 for c in hypothesis_rgb(i)])
                                                            for i in range(N)]
    window.hypotheses.hypothesis_panel.slider.setValue(3)             # the 2D slider moves the 3D one
    assert scene.current == 3
    assert [a.GetVisibility() for a in actors] == [i == 3 for i in range(N)]
    assert "Hypothesis 4 / 5" in scene.annotation.GetInput()
    view.others_box.setChecked(True)
    assert all(a.GetVisibility() for a in actors) and actors[0].GetProperty().GetOpacity() == FAINT_OPACITY
    image = view.render_image()
    assert image is not None and image.size() == view.vtk_widget.size() * view.vtk_widget.devicePixelRatio()
    x, y = scene.display_position(window.session.volume.geometry.voxel_to_patient(NODULE))
    pixel = image.pixelColor(int(x), image.height() - 1 - int(y)).getRgb()[:3]
    corner = image.pixelColor(image.width() - 2, image.height() // 2).getRgb()[:3]
    assert np.abs(np.subtract(pixel, corner)).sum() > 40            # the lesion, not the background
    # a 2D result afterwards: the 3D view has nothing to show and goes away
    window.hypotheses.controller.set_auto_run(False)
    flat = partial_result(window.session.volume, window.session.prompts, np.ones((2, 64, 64), np.float32) * 0.9)
    window.session.set_result(flat)
    assert not window.volume_ui.dock.isVisible() and scene.n == 0 and not window.volume_ui.screenshot_action.isEnabled()


def test_the_3d_view_and_the_model_are_warmed_up_ahead_for_a_3d_model_only(qtbot, tmp_path, chest, monkeypatch):
    from ambiview.models.base import EngineInfo
    from ambiview.recent import RecentFolders
    from ambiview.ui import model_panel
    from ambiview.ui.main_window import MainWindow
    from ambiview.ui.volume_ui import WARM_UP_DELAY_MS

    sphere, prepared, warmed = SphereEngine(), [], []
    monkeypatch.setattr(sphere, "prepare", lambda image: prepared.append(np.array(image)) or image.shape)
    flat = EngineInfo("flat2d", "Fake 2D", None, "", 2)  # listed first: the default choice; never loaded here
    monkeypatch.setattr(model_panel, "installed_engines", lambda: [flat, engine_info(sphere)])
    window = MainWindow(recent=RecentFolders(tmp_path / "recent.json"), show_dialogs=False)
    qtbot.addWidget(window)
    worker = window.hypotheses.controller.client.worker
    worker._engines[(sphere.name, None)] = sphere
    worker.warmed.connect(warmed.append)
    window.resize(1400, 900)
    window.show()
    qtbot.waitExposed(window)
    panel, volume_ui = window.hypotheses.model_panel, window.volume_ui
    assert panel.current_engine().name == "flat2d"
    assert panel.select_engine(sphere.name)                           # 3D chosen, no series open: nothing yet
    assert panel.select_engine("flat2d")
    window.session.set_volume(chest[0])                               # a series with a 2D model: no VTK, no warm-up
    qtbot.wait(WARM_UP_DELAY_MS + 400)
    assert volume_ui.view is None and not prepared and not warmed
    assert panel.select_engine(sphere.name)                           # the 3D model chosen with the series open
    qtbot.waitUntil(lambda: volume_ui.view is not None and warmed == [sphere.name], timeout=WAIT_MS)
    assert [image.shape for image in prepared] == [(ROI_DEPTH, 64, 64)] and not prepared[0].any()  # a zero ROI
    assert not volume_ui.dock.isVisible() and not volume_ui.screenshot_action.isEnabled()  # made, but not shown
    view = volume_ui.view
    window.session.set_slice(BOX[0])
    run_spheres(window, qtbot, 3, done=lambda w: w.volume_ui.dock.isVisible())
    assert volume_ui.view is view and view.scene.n == 3 and len(prepared) == 2 and prepared[1].any()
    window.close()
    assert view.closed and view.vtk_widget.finalized


def test_the_cursor_links_the_3d_and_2d_views_both_ways(window, qtbot):
    view = _run(window, qtbot)
    scene, session = view.scene, window.session
    session.set_cursor(*NODULE)                                       # 2D -> 3D: planes and marker at the cursor
    lps = session.volume.geometry.voxel_to_patient(NODULE)
    expected = tuple(round(float(v)) for v in scene.geometry.patient_to_voxel(lps))
    assert scene.cursor_index() == expected and scene.cursor_inside()
    assert scene.planes[0].GetDisplayExtent()[4:] == (expected[0], expected[0])
    view.planes_box.setCurrentIndex(view.planes_box.findData("three"))
    assert all(p.GetVisibility() for p in scene.planes)
    assert scene.planes[1].GetDisplayExtent()[2:4] == (expected[1], expected[1])
    session.set_window(40.0, 400.0)                                   # the planes follow the 2D views' window
    assert [(c.GetLevel(), c.GetWindow()) for c in scene._colors] == [(40.0, 400.0)] * 3
    view.planes_box.setCurrentIndex(view.planes_box.findData("off"))  # nothing in front of the surfaces for picking
    session.set_cursor(NODULE[0], 5, 5)
    # 3D -> 2D: a click on the surface moves the cursor to that point of the lesion, a drag turns the camera instead
    widget = view.vtk_widget
    ratio = widget.devicePixelRatio()
    x, y = scene.display_position(lps)
    at = QPoint(int(x / ratio), int((widget.height() * ratio - 1 - y) / ratio))
    camera = scene.renderer.GetActiveCamera()
    before = camera.GetPosition()
    qtbot.mousePress(widget, Qt.MouseButton.LeftButton, pos=at)
    qtbot.mouseMove(widget, at + QPoint(40, 10))
    qtbot.mouseRelease(widget, Qt.MouseButton.LeftButton, pos=at + QPoint(40, 10))
    assert session.cursor == (NODULE[0], 5, 5) and camera.GetPosition() != pytest.approx(before)
    scene.reset_camera()
    view.render_now()
    x, y = scene.display_position(lps)
    at = QPoint(int(x / ratio), int((widget.height() * ratio - 1 - y) / ratio))
    qtbot.mouseClick(widget, Qt.MouseButton.LeftButton, pos=at)
    moved = np.array(session.cursor, float)
    offset_mm = (moved - NODULE) * np.array(SPACING)
    radius_mm = 0.55 * (BOX[3] - BOX[1] + 1) / 2 * SPACING[2]        # hypothesis 0, the current one
    assert np.linalg.norm(offset_mm) == pytest.approx(radius_mm, abs=2.5)  # on its surface, facing the camera
    assert not view.click_at(2, 2)                                    # the background: nothing picked


def test_save_3d_screenshot_writes_a_png_and_never_into_the_dicom_folder(window, qtbot, chest, tmp_path):
    view = _run(window, qtbot)
    messages = []
    view.message.connect(messages.append)
    written = view.save_screenshot(tmp_path / "shots" / "nodule")
    assert written == tmp_path / "shots" / "nodule.png" and "Saved the 3D view" in messages[-1]
    image = QImage(str(written))
    assert not image.isNull() and image.width() == view.vtk_widget.width() * view.vtk_widget.devicePixelRatio()
    assert [p.name for p in written.parent.iterdir()] == ["nodule.png"]   # no temporary file left behind
    _, folder = chest
    before = sorted(folder.iterdir())
    assert view.save_screenshot(folder / "view.png") is None
    assert "source" in messages[-1] and sorted(folder.iterdir()) == before
    # the window screenshot paints the 3D picture where Qt's own grab of an OpenGL widget is black
    shot = QImage(str(save_widget_png(window, tmp_path / "window.png")))
    corner = view.vtk_widget.mapTo(window, QPoint(0, 0))
    picture = view.render_image()
    for fx, fy in ((0.5, 0.5), (0.1, 0.9), (0.9, 0.2)):
        px, py = int(fx * view.vtk_widget.width()), int(fy * view.vtk_widget.height())
        assert shot.pixelColor(corner.x() + px, corner.y() + py) == picture.pixelColor(px, py)


def test_closing_the_window_while_surfaces_are_still_coming_is_clean(window, qtbot):
    ui = window.hypotheses
    assert ui.model_panel.select_engine(SphereEngine.name)
    ui.model_panel.samples.setValue(20)
    ui.controller.set_auto_run(False)
    window.session.add_box(*BOX)
    ui.controller.run()
    qtbot.waitUntil(lambda: window.volume_ui.view is not None and window.volume_ui.view.scene.n > 0,
                    timeout=WAIT_MS)
    view = window.volume_ui.view
    window.close()                                                    # surfaces may still be pending here
    assert view.closed and view.vtk_widget.finalized
    view._on_views(ui.display.views)                                  # late signals after closing do nothing
    view.request_render()
    qtbot.wait(300)
    assert not view._work_timer.isActive() and not view._render_timer.isActive()


def test_a_torch_model_can_load_after_the_3d_view_has_rendered():
    """triton (imported by torch through torchvision.ops) crashed the process when loaded after Mesa's OpenGL had
    started; the 3D view loads it first (ui/gl_preload.py).  In a child process, as the failure is a crash."""
    if importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not installed: nothing can clash")
    code = ("from ambiview.ui.volume_scene import VolumeScene\n"
            "scene = VolumeScene(size=(40, 40))\nscene.render()\n"
            "import triton\nprint('both loaded')\n")
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "both loaded" in done.stdout, done.stderr[-2000:]


def test_closing_the_window_as_a_3d_model_starts_leaves_no_vtk_widget_behind(window, qtbot):
    ui = window.hypotheses
    assert ui.model_panel.select_engine(SphereEngine.name)
    ui.controller.set_auto_run(False)
    window.session.add_box(*BOX)
    ui.controller.run()                                               # asks for the VTK widget on the next turn
    window.close()
    qtbot.wait(300)
    view = window.volume_ui.view
    assert view is None or (view.closed and view.vtk_widget.finalized)


def test_the_screenshot_command_paints_the_3d_view_of_a_3d_result(tmp_path, monkeypatch, chest, capsys):
    from ambiview.models import registry
    from ambiview.ui import app, model_panel, screenshot_run

    engine = SphereEngine()
    monkeypatch.setattr(registry, "load_engine", lambda name, device=None: engine)
    monkeypatch.setattr(model_panel, "installed_engines", lambda: [engine_info(engine)])
    seen = {}
    save = screenshot_run.save_widget_png

    def spy(window, path):
        view = window.volume_ui.view
        seen["picture"] = view is not None and view.render_image() is not None  # finishes pending surfaces first
        seen["surfaces"] = len(view.scene.surface_actors()) if view is not None else 0
        return save(window, path)

    monkeypatch.setattr(screenshot_run, "save_widget_png", spy)
    out = tmp_path / "3d.png"
    box = ",".join(str(v) for v in BOX)
    assert app.main([str(chest[1]), "--screenshot", str(out), "--box", box, "--model", engine.name]) == 0
    assert out.exists() and "wrote" in capsys.readouterr().out
    assert seen == {"picture": True, "surfaces": model_panel.DEFAULT_SAMPLES}
