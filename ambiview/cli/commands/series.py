"""`ambiview-cli series PATH [--json]`: list the image series found in a DICOM file or folder (headers only).

Per series: SeriesInstanceUID, modality, description, slice count, matrix, spacing (z, y, x mm), orientation and
warnings; then skipped non-image objects, unusable files and folder warnings.  Patient identity is never printed.
Exits with code 2 and one clear line when nothing loadable is found (including a path that does not exist).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from typing import TYPE_CHECKING

from .. import CliError

if TYPE_CHECKING:  # pydicom is imported only when a series is scanned: `train`/`eval` run without it
    from ...imaging.scan import ScanResult, SeriesInfo


def register(subparsers) -> None:
    parser = subparsers.add_parser("series", help="list the image series in a DICOM file or folder",
                                   description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("path", type=Path, help="a DICOM file or a folder (searched recursively)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ...imaging.loader import nothing_loadable_message
    from ...imaging.scan import LoadError, scan_path

    progress = _tty_progress if sys.stderr.isatty() else None
    try:
        scan = scan_path(args.path, progress=progress)
    except LoadError as exc:
        raise CliError(str(exc)) from None
    finally:
        if progress:
            print("\r" + " " * 40 + "\r", end="", file=sys.stderr)
    print(json.dumps(scan_to_dict(scan), indent=2) if args.json else format_scan(scan))
    if not scan.series:
        raise CliError(nothing_loadable_message(scan))
    return 0


def scan_to_dict(scan: ScanResult) -> dict:
    """The JSON document: series, skipped counts, problems and folder warnings."""
    return {
        "root": str(scan.root),
        "series": [_series_to_dict(s) for s in scan.series],
        "skipped": dict(scan.skipped),
        "problems": [{"path": str(p.path), "message": p.message} for p in scan.problems],
        "warnings": list(scan.warnings),
    }


def _series_to_dict(s: SeriesInfo) -> dict:
    return {
        "series_uid": s.series_uid,
        "modality": s.modality,
        "description": s.description,
        "study_date": s.study_date,
        "n_slices": s.n_slices,
        "matrix": [s.rows, s.cols],
        "spacing_zyx_mm": [round(v, 6) for v in s.spacing],
        "orientation": s.orientation,
        "part": list(s.part) if s.part else None,
        "folder": os.path.commonpath([str(f.parent) for f in s.files]) if s.files else "",
        "warnings": list(s.warnings),
    }


def format_scan(scan: ScanResult) -> str:
    """A readable report: one table row per series, its warnings beneath, then skipped files and problems."""
    n = len(scan.series)
    lines = [f"{scan.root}: {n} image series" + (f", {len(scan.problems)} unusable files" if scan.problems else "")]
    if scan.series:
        header = ("#", "Modality", "Slices", "Matrix", "Spacing z/y/x mm", "Orientation", "Description",
                  "SeriesInstanceUID")
        rows = [(str(i), s.modality, str(s.n_slices), f"{s.rows}x{s.cols}",
                 "/".join(f"{v:.3f}" for v in s.spacing), s.orientation,
                 (s.description or "-") + (f" (part {s.part[0]}/{s.part[1]})" if s.part else ""), s.series_uid)
                for i, s in enumerate(scan.series, start=1)]
        widths = [max(len(r[c]) for r in rows + [header]) for c in range(len(header))]
        lines.append("")
        lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
        for s, row in zip(scan.series, rows):
            lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
            lines.extend(f"    ! {w}" for w in s.warnings)
    if scan.skipped:
        lines += ["", "Skipped (not image slices): " + ", ".join(f"{c} {k}" for k, c in scan.skipped.items())]
    if scan.problems:
        lines += ["", "Unusable files:"]
        lines += [f"  {_relative(p.path, scan.root)}: {p.message}" for p in scan.problems]
    if scan.warnings:
        lines += ["", "Warnings:"] + [f"  {w}" for w in scan.warnings]
    return "\n".join(lines)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root)) if root.is_dir() else path.name
    except ValueError:
        return str(path)


def _tty_progress(done: int, total: int) -> None:
    print(f"\rscanning {done}/{total} files", end="", file=sys.stderr, flush=True)
