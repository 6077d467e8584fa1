"""How fast the 3D view shows 20 hypotheses of a 64 x 64 x 32 ROI: surface extraction and rendering, as ratios to
baselines timed in the same run.

- **extraction**, per hypothesis: plain vtkMarchingCubes in voxel space without smoothing (the baseline),
  vtkFlyingEdges3D alone, and ours (`volume_surfaces.iso_surface`: flying edges, every vertex mapped to LPS through
  `Geometry.voxel_to_patient`, windowed-sinc smoothing, normals).
- **render**, one frame of the whole scene (`VolumeScene`, offscreen, 480 x 480) with 20 surfaces as the app
  shows them: the current one opaque with the disagreement shell and the axial CT plane (the default), then with
  the other 19 faint, then with three CT planes; the baseline is the frame with one opaque surface and nothing else.
- **to screen**: from the 20 hypotheses arriving to the frame that shows them all (extract everything, render), at
  once, and streamed one by one with a frame for each (the window draws less often: provisional results at most
  every 120 ms, frames at most every 400 ms while surfaces are coming).
- **2D views, streamed**: the 2D overlays' lookups (`ResultViews`) rebuilt for 1, 2, ..., 20 hypotheses, as when
  a 3D result streams in one at a time: with every slice's contours made at once (as before 3D results), and with
  the shown slice's only (now; other slices when first shown).
- **app** (`--app`): a real `MainWindow` and an instant fake 3D engine (no model time): from the prompt to the
  frame showing all 20 surfaces, for the first run of a session (VTK loads, the OpenGL context is made) and later
  prompts (`--prompts N`, each on a new ROI; their median too).  With `--checkpoint PATH` the real UP-SAM engine of
  that checkpoint runs in the app's inference worker instead, on the shared chest CT (a synthetic lung with a nodule
  without the shared data), ROI depth from the checkpoint (`--roi-depth` overrides): the true time from the prompt
  to all 20 surfaces on screen, model included.  The engine is loaded before the first prompt (the app loads it on
  its first run).  `--app-only` skips the other measurements.

Needs a display for OpenGL (run under `xvfb-run -a` on a headless machine).

    xvfb-run -a .venv/bin/python benchmarks/bench_volume_view.py [--repeats 15] [--app] [--json]
    xvfb-run -a .venv/bin/python benchmarks/bench_volume_view.py --app-only --prompts 8 \
        --checkpoint models/upsam.safetensors
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

N_HYPOTHESES, DEPTH, SIZE = 20, 32, 64
SPACING = (1.25, 0.7, 0.7)  # (dz, dy, dx) mm: a thin-slice chest CT


def synthetic_probs(seed: int = 0) -> np.ndarray:
    """20 soft, lobulated 3D blobs of differing size and outline, (20, 32, 64, 64) float32."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.mgrid[:DEPTH, :SIZE, :SIZE].astype(np.float64)
    dz, dy, dx = (zz - DEPTH / 2) * SPACING[0], (yy - SIZE / 2) * SPACING[1], (xx - SIZE / 2) * SPACING[2]
    radius = np.sqrt(dz ** 2 + dy ** 2 + dx ** 2)
    azimuth, polar = np.arctan2(dy, dx), np.arccos(np.clip(dz / np.maximum(radius, 1e-9), -1, 1))
    probs = np.empty((N_HYPOTHESES, DEPTH, SIZE, SIZE), np.float32)
    for k in range(N_HYPOTHESES):
        outline = 9.0 + rng.normal(0, 1.0) + sum(rng.normal(0, 0.8) * np.cos(m * azimuth + rng.uniform(0, 6.3))
                                                  * np.sin(polar) for m in range(2, 5))
        probs[k] = 1.0 / (1.0 + np.exp(-(outline - radius) / 0.6))
    return probs


def roi_geometry():
    from ambiview.imaging.geometry import Geometry

    return Geometry.regular((DEPTH, SIZE, SIZE), SPACING, origin=(-60.0, -20.0, -150.0))


def _ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median_ms": 1000 * statistics.median(ordered), "min_ms": 1000 * ordered[0]}


def bench_extraction(probs: np.ndarray, geometry, repeats: int) -> dict:
    """Per-hypothesis extraction times, the three methods interleaved hypothesis by hypothesis."""
    from vtkmodules.vtkFiltersCore import vtkFlyingEdges3D, vtkMarchingCubes

    from ambiview.ui.volume_surfaces import _image, iso_surface

    def plain(cls):
        def run(values):
            f = cls()
            f.SetInputData(_image(values))
            f.SetValue(0, 0.5)
            f.Update()
            return f.GetOutput()
        return run

    methods = {"marching cubes, unsmoothed (baseline)": plain(vtkMarchingCubes),
               "flying edges, unsmoothed": plain(vtkFlyingEdges3D),
               "ours: flying edges + LPS + windowed sinc + normals": lambda v: iso_surface(v, geometry)}
    samples = {name: [] for name in methods}
    triangles = []
    for _ in range(repeats):
        for values in probs:
            for name, method in methods.items():
                start = time.perf_counter()
                out = method(values)
                samples[name].append(time.perf_counter() - start)
        triangles.append(out.GetNumberOfPolys())
    rows = {name: _ms(s) for name, s in samples.items()}
    base = rows["marching cubes, unsmoothed (baseline)"]["median_ms"]
    for row in rows.values():
        row["ratio"] = row["median_ms"] / base
    return {"per_hypothesis": rows, "triangles_per_surface": int(np.median(triangles))}


def bench_render(probs: np.ndarray, geometry, repeats: int) -> dict:
    from ambiview.ui.volume_scene import VolumeScene

    ct = np.full(probs.shape[1:], -850.0, np.float32) + np.random.default_rng(1).normal(0, 30, probs.shape[1:])
    scene = VolumeScene(size=(480, 480))
    scene.show(probs, geometry, ct=ct.astype(np.float32), title="benchmark")
    scene.finish()
    settings = {
        "one opaque surface, nothing else (baseline)": {"others": "hidden", "shell": False, "planes": "off"},
        "default: current + shell + axial plane": {"others": "hidden", "shell": True, "planes": "axial"},
        "current + 19 faint + shell + axial plane": {"others": "faint", "shell": True, "planes": "axial"},
        "current + shell + three planes": {"others": "hidden", "shell": True, "planes": "three"},
        "current + 19 faint + shell + axial, depth peeling": {"others": "faint", "shell": True, "planes": "axial",
                                                             "peeling": True},
    }
    samples = {name: [] for name in settings}
    for name, s in settings.items():
        scene.set_others(s["others"])
        scene.set_shell(s["shell"])
        scene.set_planes(s["planes"])
        scene.renderer.SetUseDepthPeeling(s.get("peeling", False))  # off in the app (see volume_scene.py)
        scene.window.SetAlphaBitPlanes(s.get("peeling", False))
        for r in range(repeats + 2):
            scene.set_current(r % N_HYPOTHESES)  # the slider moves between frames, as in use
            start = time.perf_counter()
            scene.render()
            if r >= 2:  # the first frames after a change of settings compile shaders and upload textures
                samples[name].append(time.perf_counter() - start)
    rows = {name: _ms(s) for name, s in samples.items()}
    base = rows["one opaque surface, nothing else (baseline)"]["median_ms"]
    for row in rows.values():
        row["ratio"] = row["median_ms"] / base
    return rows


def bench_to_screen(probs: np.ndarray, geometry, repeats: int) -> dict:
    """All 20 at once, and one by one; a fresh scene each round (no cached surfaces), shaders already compiled."""
    from ambiview.ui.volume_scene import VolumeScene

    warm = VolumeScene(size=(480, 480))
    warm.show(probs[:2], geometry)
    warm.finish()
    warm.render()
    at_once, streamed = [], []
    for _ in range(repeats):
        scene = VolumeScene(size=(480, 480))
        start = time.perf_counter()
        scene.show(probs, geometry)
        scene.finish()
        scene.render()
        at_once.append(time.perf_counter() - start)
        scene = VolumeScene(size=(480, 480))
        start = time.perf_counter()
        for k in range(1, N_HYPOTHESES + 1):
            scene.show(probs[:k], geometry)
            scene.finish()
            scene.render()
        streamed.append(time.perf_counter() - start)
    return {"20 at once: show + extract + render": _ms(at_once),
            "streamed, a frame each: 20 x (show + extract + render)": _ms(streamed)}


def bench_views_streamed(probs: np.ndarray, geometry) -> dict:
    """The 2D views' lookups (`ResultViews`) rebuilt for 1, 2, ..., 20 hypotheses, as a result streamed one at a time
    is shown: every slice's contours at once (how they were built before 3D results) against the shown slice only
    (now, for 3D results: other slices when first shown)."""
    from ambiview.imaging.geometry import Geometry
    from ambiview.imaging.roi import Roi
    from ambiview.session.result import SegmentationResult
    from ambiview.session.views_model import AXIAL, ResultViews

    volume_shape = (DEPTH + 8, 128, 128)
    roi = Roi(4, 4 + DEPTH, 31.5, 31.5, float(SIZE), SIZE)
    roi_geometry = roi.geometry(Geometry.regular(volume_shape, SPACING))
    shown = roi.z0 + DEPTH // 2
    rows = {}
    for label, slices in (("every slice's contours (baseline)", range(roi.z0, roi.z1)), ("the shown slice's", [shown])):
        start = time.perf_counter()
        for k in range(1, N_HYPOTHESES + 1):
            views = ResultViews(SegmentationResult(probs[:k], roi, roi_geometry, volume_shape))
            for z in slices:
                views.all_hypothesis_contours(AXIAL, z)
                views.count_contours(1, AXIAL, z)
        rows[label] = {"median_ms": 1000 * (time.perf_counter() - start)}
    base = rows["every slice's contours (baseline)"]["median_ms"]
    for row in rows.values():
        row["ratio"] = row["median_ms"] / base
    return rows


def _real_case(roi_depth: int | None):
    """(volume, two box prompts (z, y0, x0, y1, x1), where it comes from) for the real engine: the shared chest CT
    (boxes on a lung slice) when it is there, else a synthetic lung with a round nodule."""
    from ambiview.imaging.volume import Volume
    from ambiview.paths import shared_data_dir

    folder = shared_data_dir() / "ct-chest"
    if folder.is_dir():
        from ambiview.imaging.loader import load_path

        volume, _ = load_path(folder)
        z = volume.shape[0] - 20  # the top slices show both lungs
        return volume, ((z, 200, 120, 240, 160), (z, 210, 130, 250, 170)), "ct-chest (real CT)"
    zz, yy, xx = np.mgrid[:60, :256, :256]
    nodule = ((zz - 30) * SPACING[0]) ** 2 + ((yy - 115) * SPACING[1]) ** 2 + ((xx - 115) * SPACING[2]) ** 2 < 36
    voxels = np.where(nodule, 20, -850).astype(np.int16)
    volume = Volume.from_array(voxels, spacing=SPACING, series_uid="1.2.3.4.5")
    return volume, ((30, 100, 100, 130, 130), (30, 110, 120, 140, 150)), "synthetic lung with a nodule"


def bench_app(probs: np.ndarray, checkpoint: str | None = None, roi_depth: int | None = None,
              later_prompts: int = 1, think_ms: float = 0.0) -> dict:
    """Prompt -> all 20 surfaces on screen in a MainWindow: with an instant fake 3D engine (model time excluded), or
    with the real UP-SAM engine of `checkpoint` running in the app's inference worker (model time included).  The
    first prompt of the session, then `later_prompts` more, each box moved a little so that every prompt selects a
    new ROI (nothing comes from the prepared-state cache); their median is reported as "a later prompt".  The first
    prompt comes `think_ms` after the series opened with the engine chosen (the user placing it), the event loop
    running meanwhile, so that what the app does ahead of the first prompt (warming up) is not counted in it."""
    from PySide6.QtWidgets import QApplication

    from ambiview.imaging.volume import Volume
    from ambiview.models.base import Engine, EngineInfo
    from ambiview.ui import model_panel
    from ambiview.ui.main_window import MainWindow

    class Instant(Engine):
        name, title, digest, dims, crop_size, roi_depth = "instant3d", "Instant 3D", "0" * 12, 3, SIZE, DEPTH
        accepts = frozenset({"box", "point"})

        def prepare(self, image):
            return None

        def sample(self, state, prompts, n, seed, on_sample=None, cancel=None):
            for k in range(n):
                if on_sample:
                    on_sample(k + 1, probs[k:k + 1])
            return probs[:n]

    app = QApplication.instance() or QApplication(sys.argv[:1])
    info = {}
    if checkpoint is None:
        engine = Instant()
        volume = Volume.from_array(np.full((60, 256, 256), -850, np.int16), spacing=SPACING, series_uid="1.2.3.4.5")
        boxes = ((30, 100, 100, 130, 130), (30, 110, 120, 140, 150))
    else:
        from ambiview.models.upsam import UpSamEngine

        start = time.perf_counter()
        engine = UpSamEngine.from_checkpoint(checkpoint, "cpu")  # loaded ahead: the app loads it on first use
        info["engine_load_ms"] = 1000 * (time.perf_counter() - start)
        if roi_depth:
            engine.roi_depth = int(roi_depth)
        volume, boxes, info["volume"] = _real_case(roi_depth)
    info["roi_depth"] = int(engine.roi_depth)
    model_panel.installed_engines = lambda: [EngineInfo(engine.name, engine.title, None, engine.digest, 3)]
    window = MainWindow(show_dialogs=False, remember_recent=False)
    window.hypotheses.controller.client.worker._engines[(engine.name, None)] = engine
    window.resize(1600, 1000)
    window.show()
    window.session.set_volume(volume)
    window.session.set_slice(boxes[0][0])
    ui = window.hypotheses
    ui.model_panel.select_engine(engine.name)
    ui.model_panel.samples.setValue(N_HYPOTHESES)
    ui.controller.set_auto_run(False)
    info["think_ms"] = float(think_ms)
    opened, warmed = time.perf_counter(), []
    worker = ui.controller.client.worker
    if hasattr(worker, "warmed"):  # (the app warms a 3D engine up ahead of the first prompt)
        worker.warmed.connect(lambda name: warmed.append(time.perf_counter()))
    until, last, stall = opened + think_ms / 1000, opened, 0.0
    while time.perf_counter() < until:
        app.processEvents()
        now = time.perf_counter()
        stall, last = max(stall, now - last), now
        time.sleep(0.005)
    info["longest_gui_pause_ms"] = 1000 * stall
    info["warmed_up_ms"] = 1000 * (warmed[0] - opened) if warmed else None
    info["view_made_before_prompt"] = window.volume_ui.view is not None
    firsts = []
    ui.controller.client.progress.connect(lambda done, total, batch: firsts.append(time.perf_counter()))
    rounds = [("first prompt of the session", boxes[0])]
    for k in range(max(1, later_prompts)):
        z, y0, x0, y1, x1 = boxes[1]
        shift = 3 * (k % 2) * (1 if k % 4 < 2 else -1) + (k // 2) % 3
        rounds.append((f"later prompt {k + 1}", (z, y0 + (k % 3), x0 + shift, y1 + (k % 3), x1 + shift)))
    times = {}
    for label, box in rounds:
        window.session.clear_prompts()
        window.session.add_box(*box)
        firsts.clear()
        start, in_session = time.perf_counter(), None
        ui.controller.run()
        while True:
            app.processEvents()
            view, result = window.volume_ui.view, window.session.result
            answered = result is not None and result.prompts[-1]["voxel"][2] == box[2]
            if answered and in_session is None:
                in_session = time.perf_counter()
            if (answered and view is not None and view.scene.n == N_HYPOTHESES and not view.scene.pending
                    and not view._render_timer.isActive() and not view._dirty):
                break
            time.sleep(0.001)
        done = time.perf_counter()
        if label in times:
            raise RuntimeError(f"{label} twice")
        times[label] = {"first_batch_ms": 1000 * (firsts[0] - start) if firsts else float("nan"),
                        "result_in_session_ms": 1000 * (in_session - start), "on_screen_ms": 1000 * (done - start),
                        "load_average": os.getloadavg()[0]}
    window.close()
    later = [row for label, row in times.items() if label.startswith("later")]
    if len(later) > 1:
        times[f"a later prompt, median of {len(later)}"] = {
            key: statistics.median(row[key] for row in later) for key in later[0]}
    return {"info": info, "times": times}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="rounds per measurement (default 15)")
    parser.add_argument("--app", action="store_true", help="also time the main window from prompt to screen")
    parser.add_argument("--checkpoint", default=None,
                        help="with --app: run the real UP-SAM engine of this checkpoint in the app's inference worker "
                             "(model time included) instead of the instant fake engine")
    parser.add_argument("--roi-depth", type=int, default=None,
                        help="with --checkpoint: slices of the 3D ROI (default: the checkpoint's roi_depth)")
    parser.add_argument("--prompts", type=int, default=1,
                        help="with --app: prompts after the first one, each on a new ROI (default 1)")
    parser.add_argument("--think-ms", type=float, default=2000.0,
                        help="with --app: milliseconds between opening the series (engine chosen) and the first "
                             "prompt, the user placing it (default 2000)")
    parser.add_argument("--app-only", action="store_true", help="time the app only (implies --app)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        print("bench_volume_view: VTK needs a display for OpenGL; run under xvfb-run -a", file=sys.stderr)
        return 2
    probs, geometry = synthetic_probs(), roi_geometry()
    report = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                          "load_average": os.getloadavg()[0]},
              "roi": {"hypotheses": N_HYPOTHESES, "shape": [DEPTH, SIZE, SIZE], "spacing_mm": list(SPACING)}}
    if not args.app_only:
        report.update({"extraction": bench_extraction(probs, geometry, max(1, args.repeats // 5)),
                       "render": bench_render(probs, geometry, args.repeats),
                       "to_screen": bench_to_screen(probs, geometry, max(1, args.repeats // 5)),
                       "views_streamed": bench_views_streamed(probs, geometry)})
    if args.app or args.app_only or args.checkpoint:
        report["app"] = bench_app(probs, args.checkpoint, args.roi_depth, args.prompts, args.think_ms)
    report["machine"]["load_average_after"] = os.getloadavg()[0]
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{N_HYPOTHESES} hypotheses, ROI {DEPTH} x {SIZE} x {SIZE}, spacing {SPACING} mm; "
          f"load average {report['machine']['load_average']:.1f} -> {report['machine']['load_average_after']:.1f}")
    if "extraction" in report:
        print(f"\nextraction per hypothesis ({report['extraction']['triangles_per_surface']} triangles a surface)")
        for name, row in report["extraction"]["per_hypothesis"].items():
            print(f"  {name:<52} {row['median_ms']:8.2f} ms  (min {row['min_ms']:.2f})  x{row['ratio']:.2f}")
        print("\nrender, one frame at 480 x 480")
        for name, row in report["render"].items():
            print(f"  {name:<52} {row['median_ms']:8.1f} ms  (min {row['min_ms']:.1f})  x{row['ratio']:.2f}")
        print("\nfrom 20 hypotheses to the frame showing them")
        for name, row in report["to_screen"].items():
            print(f"  {name:<52} {row['median_ms']:8.1f} ms  (min {row['min_ms']:.1f})")
        print("\n2D views' lookups rebuilt for 1..20 streamed hypotheses, in total")
        for name, row in report["views_streamed"].items():
            print(f"  {name:<52} {row['median_ms']:8.1f} ms  x{row['ratio']:.2f}")
    if "app" in report:
        info = report["app"]["info"]
        if args.checkpoint:
            print(f"\napp with the real UP-SAM engine ({args.checkpoint}, loaded ahead in "
                  f"{info['engine_load_ms']:.0f} ms), ROI {info['roi_depth']} x {SIZE} x {SIZE} on {info['volume']}:")
        else:
            print(f"\napp with an instant fake engine (model time excluded), "
                  f"ROI {info['roi_depth']} x {SIZE} x {SIZE}:")
        warm = info["warmed_up_ms"]
        print(f"  first prompt {info['think_ms']:.0f} ms after the series opened with the engine chosen; worker "
              + (f"warmed up {warm:.0f} ms after it" if warm is not None else "not warmed up")
              + f"; 3D view made before the prompt: {'yes' if info['view_made_before_prompt'] else 'no'}")
        if info["think_ms"]:
            print(f"  longest pause of the GUI thread before the prompt: {info['longest_gui_pause_ms']:.0f} ms")
        print("  prompt -> first batch from the worker -> final result in the session -> 20 surfaces on screen")
        for name, row in report["app"]["times"].items():
            print(f"  {name:<44} {row['first_batch_ms']:7.1f} ms -> {row['result_in_session_ms']:7.1f} ms -> "
                  f"{row['on_screen_ms']:7.1f} ms   (load {row['load_average']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
