"""A fake 3D engine and a small DICOM chest phantom for the tests of 3D results (2D views, 3D view, keep, export).

`SphereEngine` implements the Engine interface with dims = 3: on the ROI it is given, hypothesis k is a soft
ellipsoid around the box (or the positive point) whose radius grows with k, shifted by a voxel towards +x for odd k,
so hypotheses differ in size and position.  No torch model runs; hypotheses stream one at a time.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from dicom_fixtures import write_series

from ambiview.imaging.loader import load_path
from ambiview.models.base import Engine, EngineInfo

SHAPE = (30, 96, 96)            # (z, y, x)
SPACING = (2.0, 0.7, 0.8)       # thick slices and non-square pixels: a transpose cannot go unnoticed
NODULE = (14, 40, 52)           # (z, y, x) centre of the phantom's nodule, off the volume's centre
NODULE_RADIUS_MM = 6.0
ROI_DEPTH = 16
BOX = (NODULE[0], NODULE[1] - 9, NODULE[2] - 9, NODULE[1] + 9, NODULE[2] + 9)  # z, y0, x0, y1, x1


def prompt_disc(prompts) -> tuple[float, float, float]:
    """(cy, cx, radius) in crop pixels that the fake engines centre their masks on: the box's centre and half its
    longer side, else the last point with radius 6."""
    if prompts.box is not None:
        y0, x0, y1, x1 = prompts.box
        return (y0 + y1) / 2, (x0 + x1) / 2, max(y1 - y0, x1 - x0) / 2
    cy, cx, _ = prompts.points[-1]
    return cy, cx, 6.0


class SphereEngine(Engine):
    name, title, digest = "sphere3d", "Fake 3D spheres", "5fe3e3d00000"
    dims, crop_size, roi_depth = 3, 64, ROI_DEPTH
    accepts = frozenset({"box", "point"})
    default_samples = 8

    def prepare(self, image):
        assert image.ndim == 3, "a 3D engine is handed the whole ROI stack"
        return image.shape

    def sample(self, state, prompts, n, seed, on_sample=None, cancel=None):
        depth, size, _ = state
        cy, cx, radius = prompt_disc(prompts)
        cz = (depth - 1) // 2  # the prompt's slice (Roi.around centres the stack on it)
        zz, yy, xx = np.mgrid[:depth, :size, :size].astype(np.float32)
        out = np.zeros((n, depth, size, size), np.float32)
        for k in range(n):
            if cancel and cancel():
                return out[:k]
            r = radius * (0.55 + 0.08 * k)
            shift = 1.0 if k % 2 else 0.0
            # slices are thicker than pixels: a third of the in-plane radius in slices keeps the ellipsoid round-ish
            d = np.sqrt(((zz - cz) * 3.0) ** 2 + (yy - cy) ** 2 + (xx - cx - shift) ** 2)
            out[k] = 1.0 / (1.0 + np.exp((d - r) / 0.7))
            if on_sample:
                on_sample(k + 1, out[k:k + 1])
        return out


def engine_info(engine: Engine) -> EngineInfo:
    return EngineInfo(engine.name, engine.title, Path(f"/models/{engine.name}.safetensors"), engine.digest, 3)


def chest_hu() -> np.ndarray:
    """Lung (-850 HU) with a soft-tissue nodule at NODULE, a vessel along y, and a slice ramp (int16)."""
    zz, yy, xx = np.mgrid[:SHAPE[0], :SHAPE[1], :SHAPE[2]]
    mm = np.sqrt(((zz - NODULE[0]) * SPACING[0]) ** 2 + ((yy - NODULE[1]) * SPACING[1]) ** 2
                 + ((xx - NODULE[2]) * SPACING[2]) ** 2)
    hu = np.full(SHAPE, -850, np.int16)
    hu[mm <= NODULE_RADIUS_MM] = 30
    hu[:, :, 70:73] = 40
    return hu + np.arange(SHAPE[0], dtype=np.int16)[:, None, None]


def write_chest(folder: Path):
    """The phantom as a DICOM series in `folder`, loaded: (volume, folder)."""
    write_series(folder, chest_hu(), spacing=SPACING, origin=(-30.0, -40.0, -120.0), description="Chest 3D")
    volume, _ = load_path(folder)
    return volume


def install(window, engine: Engine, monkeypatch) -> None:
    """Offer `engine` in the window's model panel and hand it to the inference worker (no checkpoint loading)."""
    from ambiview.ui import model_panel

    monkeypatch.setattr(model_panel, "installed_engines", lambda: [engine_info(engine)])
    window.hypotheses.model_panel.refresh_engines()
    window.hypotheses.controller.client.worker._engines[(engine.name, None)] = engine


WAIT_MS = 20000  # generous bound for a busy 2-core machine; not a timing assertion


def sphere_window(qtbot, tmp_path: Path, volume, monkeypatch, size: tuple[int, int]):
    """A shown main window on `volume`, at the box's slice, whose model picker offers SphereEngine."""
    from ambiview.recent import RecentFolders
    from ambiview.ui.main_window import MainWindow

    win = MainWindow(recent=RecentFolders(tmp_path / "recent.json"), show_dialogs=False)
    qtbot.addWidget(win)
    install(win, SphereEngine(), monkeypatch)
    win.resize(*size)
    win.show()
    qtbot.waitExposed(win)
    win.session.set_volume(volume)
    win.session.set_slice(BOX[0])
    return win


def run_spheres(win, qtbot, n: int, done=lambda win: True):
    """Box-prompt SphereEngine for n hypotheses and wait until the result is in the session and done(win)."""
    ui = win.hypotheses
    assert ui.model_panel.select_engine(SphereEngine.name)
    ui.model_panel.samples.setValue(n)
    ui.controller.set_auto_run(False)
    win.session.add_box(*BOX)
    assert ui.controller.run()
    qtbot.waitUntil(lambda: win.session.result is not None and done(win), timeout=WAIT_MS)
    return win.session.result
