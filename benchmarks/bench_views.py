"""How long the hypothesis views take to follow the sliders: per-update milliseconds on a 256 x 256 ROI, 16 hypotheses.

Two layers are timed:

- **lookup**: `ResultViews` answering the query alone (no Qt): the current hypothesis's contour, the heatmap section
  of a measure, the consensus outline at an agreement level.  Its one-off construction (count, five maps, every
  contour) is timed too: it runs once per result.
- **window**: the same change made through the `HypothesisDisplay` of a real `MainWindow` (offscreen): first the
  signal handlers alone (every overlay of the three views and every panel that follows the session), then the
  handlers plus a synchronous repaint of the axial view (`viewport().repaint()`); the repaint alone, with nothing
  changed, is given for comparison.

    .venv/bin/python benchmarks/bench_views.py [--repeats 200] [--roi-size 256] [--json]
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

ROI_SIZE, N_HYPOTHESES, VOLUME_SHAPE, Z = 256, 16, (9, 512, 512), 4
MEASURES_CYCLE = ("disagreement", "coverage", "entropy", "variance", "mean")


def synthetic_result(size: int = ROI_SIZE):
    """16 soft, lobulated blobs of differing size and outline on a native-spacing size x size ROI (256 by default;
    the models' own ROIs are 64 x 64)."""
    from ambiview.imaging.geometry import Geometry
    from ambiview.imaging.roi import Roi
    from ambiview.session.result import SegmentationResult

    rng = np.random.default_rng(0)
    half, unit = size / 2, size / 256  # shapes scale with the ROI
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    angle = np.arctan2(yy - half, xx - half)
    radius = np.hypot(yy - half, xx - half)
    probs = np.empty((N_HYPOTHESES, size, size), np.float32)
    for k in range(N_HYPOTHESES):
        outline = unit * (60 + rng.normal(0, 8) + sum(rng.normal(0, 4) * np.cos(m * angle + rng.uniform(0, 6.3))
                                                       for m in range(2, 6)))
        probs[k] = 1.0 / (1.0 + np.exp(-(outline - radius) / 1.5))
    roi = Roi(Z, Z + 1, 127.5, 127.5, float(size), size)
    geometry = Geometry.regular(VOLUME_SHAPE, (2.5, 0.7, 0.7))
    return SegmentationResult(probs=probs, roi=roi, roi_geometry=roi.geometry(geometry), volume_shape=VOLUME_SHAPE)


def _ms(samples: list[float], cpu: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median_ms": 1000 * statistics.median(ordered), "p95_ms": 1000 * ordered[int(0.95 * (len(ordered) - 1))],
            "max_ms": 1000 * ordered[-1], "cpu_median_ms": 1000 * statistics.median(cpu)}


def _time(action, repeats: int) -> dict[str, float]:
    """Wall-clock times, and the CPU time of this (the GUI) thread: Qt paints synchronously on it, so the CPU time
    is the work of an update whatever else keeps the machine's cores busy (wall time includes waiting for a core)."""
    samples, cpu = [], []
    for i in range(repeats):
        start, start_cpu = time.perf_counter(), time.thread_time()
        action(i)
        samples.append(time.perf_counter() - start)
        cpu.append(time.thread_time() - start_cpu)
    return _ms(samples, cpu)


def bench_lookup(result, repeats: int) -> dict[str, dict[str, float]]:
    from ambiview.session.views_model import AXIAL, ResultViews

    holder = {}
    build = _time(lambda i: holder.update(views=ResultViews(result)), max(3, repeats // 50))
    views = holder["views"]
    return {
        "build (once per result)": build,
        "hypothesis": _time(lambda i: views.hypothesis_contours(i % views.n, AXIAL, Z), repeats),
        "measure": _time(lambda i: views.heat_section(MEASURES_CYCLE[i % 5], AXIAL, Z), repeats),
        "agreement level": _time(lambda i: views.consensus_contours(0.1 + 0.05 * (i % 19), AXIAL, Z), repeats),
    }


def bench_window(result, repeats: int) -> dict[str, dict[str, float]]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from ambiview.imaging.volume import Volume
    from ambiview.ui.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    window = MainWindow(show_dialogs=False, remember_recent=False)
    window.resize(1600, 1000)
    window.show()
    voxels = np.random.default_rng(1).normal(-700, 200, VOLUME_SHAPE).astype(np.int16)
    window.session.set_volume(Volume.from_array(voxels, spacing=(2.5, 0.7, 0.7)))
    window.session.set_slice(Z)
    window.session.set_result(result)
    display = window.hypotheses.display
    display.set_options(consensus=True)
    window.hypotheses.focus_on_result(margin=1.2)
    viewport = window.views.axial.viewport()
    app.processEvents()

    def then_paint(change):
        def step(i):
            change(i)
            viewport.repaint()
        return step

    changes = {
        "hypothesis": lambda i: display.set_hypothesis(i % display.n),
        "measure": lambda i: display.set_options(measure=MEASURES_CYCLE[i % 5]),
        "agreement level": lambda i: display.set_options(level=0.1 + 0.05 * (i % 19)),
    }
    try:
        out = {"repaint alone": _time(then_paint(lambda i: None), repeats)}
        for name, change in changes.items():
            out[f"{name}: handlers"] = _time(change, repeats)
            out[f"{name}: + repaint"] = _time(then_paint(change), repeats)
    finally:
        window.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200, help="updates timed per row (default 200)")
    parser.add_argument("--roi-size", type=int, default=ROI_SIZE, help=f"ROI side in pixels (default {ROI_SIZE})")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if not 16 <= args.roi_size <= 512:
        parser.error("--roi-size must lie in 16..512")
    result = synthetic_result(args.roi_size)
    report = {"lookup": bench_lookup(result, args.repeats), "window": bench_window(result, args.repeats),
              "setup": {"roi": f"{args.roi_size}x{args.roi_size}", "hypotheses": N_HYPOTHESES, "repeats": args.repeats,
                        "python": platform.python_version(), "cpus": os.cpu_count(),
                        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{args.roi_size}x{args.roi_size} ROI, {N_HYPOTHESES} hypotheses, {args.repeats} updates per row")
    print(f"load average {report['setup']['load_average']}")
    print(f"{'layer':8} {'update':28} {'median ms':>10} {'p95 ms':>8} {'max ms':>8} {'thread CPU ms':>14}")
    for layer in ("lookup", "window"):
        for name, row in report[layer].items():
            print(f"{layer:8} {name:28} {row['median_ms']:10.3f} {row['p95_ms']:8.3f} {row['max_ms']:8.3f} "
                  f"{row['cpu_median_ms']:14.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
