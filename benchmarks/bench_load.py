"""Load the real CT series three ways in one process and compare: AmbiView's loader, SimpleITK's
ImageSeriesReader, and a plain pydicom loop (read every file, sort by position, stack the rescaled pixels).

Each repeat runs the three methods in a rotating order (interleaved), so a busy machine slows all of them alike;
the table shows median and minimum seconds and the ratios of the medians.  Files are read from the page cache
after the warm-up round (warm-cache timings).  Every method's voxels are checked against ours before timing.

    .venv/bin/python benchmarks/bench_load.py [--path FOLDER] [--repeats 9] [--json]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.errors import InvalidDicomError

from ambiview.imaging.loader import load_path
from ambiview.paths import shared_data_dir


def load_ours(folder: Path) -> np.ndarray:
    volume, _ = load_path(folder)
    return volume.voxels


def load_simpleitk(folder: Path) -> np.ndarray:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return sitk.GetArrayFromImage(reader.Execute())


def load_pydicom_loop(folder: Path) -> np.ndarray:
    """What one writes first: read every file in full, sort along the normal, stack slope * pixels + intercept."""
    slices = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        try:
            slices.append(pydicom.dcmread(path))
        except InvalidDicomError:
            continue
    row, col = np.asarray(slices[0].ImageOrientationPatient[:3], float), np.asarray(
        slices[0].ImageOrientationPatient[3:], float)
    normal = np.cross(row, col)
    slices.sort(key=lambda ds: float(np.dot(np.asarray(ds.ImagePositionPatient, float), normal)))
    return np.stack([ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for ds in slices])


METHODS = {"ours": load_ours, "simpleitk": load_simpleitk, "pydicom_loop": load_pydicom_loop}


def run(folder: Path, repeats: int) -> dict:
    reference = load_ours(folder)
    for name, method in METHODS.items():  # warm-up round, and the check that all three agree
        other = method(folder)
        if other.shape != reference.shape or not np.array_equal(other.astype(np.float64), reference):
            raise SystemExit(f"{name} gives different voxels from ours on {folder}; timings would be meaningless")
    times: dict[str, list[float]] = {name: [] for name in METHODS}
    names = list(METHODS)
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = time.perf_counter()
            METHODS[name](folder)
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(t) for name, t in times.items()}
    return {
        "folder": str(folder),
        "shape": list(reference.shape),
        "repeats": repeats,
        "median_s": medians,
        "min_s": {name: min(t) for name, t in times.items()},
        "ratio_ours_to_simpleitk": medians["ours"] / medians["simpleitk"],
        "ratio_ours_to_pydicom_loop": medians["ours"] / medians["pydicom_loop"],
        "python": platform.python_version(),
        "pydicom": pydicom.__version__,
        "simpleitk": sitk.Version.VersionString(),
        "machine": f"{platform.machine()}, {platform.system()}",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--path", type=Path, default=shared_data_dir() / "ct-chest", help="a DICOM series folder")
    parser.add_argument("--repeats", type=int, default=9, help="timed rounds (each runs all three methods)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if not args.path.is_dir():
        print(f"bench_load: {args.path}: no such folder (set AMBIVIEW_SHARED_DATA or pass --path)", file=sys.stderr)
        return 2
    result = run(args.path, max(args.repeats, 1))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['folder']}: {' x '.join(map(str, result['shape']))} voxels, {result['repeats']} interleaved rounds")
    print(f"{'method':<14}{'median s':>10}{'min s':>10}")
    for name in METHODS:
        print(f"{name:<14}{result['median_s'][name]:>10.3f}{result['min_s'][name]:>10.3f}")
    print(f"ours / SimpleITK    = {result['ratio_ours_to_simpleitk']:.2f}")
    print(f"ours / pydicom loop = {result['ratio_ours_to_pydicom_loop']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
