"""`ambiview-cli rois SERIES [--rtstruct FILE]... [--json]`: the ROIs of RT Structure Sets, drawn onto a series.

Without --rtstruct, every RTSTRUCT found beside the series (in the scanned folder) is read.  For each ROI: number,
name, colour, interpreted type, the slices it covers (indices in the sorted series) and its volume in mL, measured
on the series' grid after rasterising with the even-odd rule.  Problems in a file (contours off the series, another
frame of reference, empty ROIs, open contours) are listed and the rest still loads.
"""
from __future__ import annotations

import json
from pathlib import Path

from .. import CliError


def register(subparsers) -> None:
    parser = subparsers.add_parser("rois", help="list the ROIs of RTSTRUCT files on a series (name, slices, mL)",
                                   description=__doc__.split("\n\n")[1])
    parser.add_argument("series", type=Path, help="DICOM folder (or file) of the image series")
    parser.add_argument("--rtstruct", type=Path, action="append", default=[], metavar="FILE",
                        help="RT Structure Set file (repeatable); default: those found beside the series")
    parser.add_argument("--series-uid", default=None, help="which series to use when the folder holds several")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ...export.items import ExportError
    from ...export.rtstruct_read import load_rtstruct, rtstructs_among
    from ...imaging.loader import LoadError, load_path

    try:
        volume, scan = load_path(args.series, series_uid=args.series_uid)
    except LoadError as exc:
        raise CliError(str(exc)) from exc
    files = list(args.rtstruct) or rtstructs_among(scan.non_image_files)
    if not files:
        raise CliError(f"no RTSTRUCT given (--rtstruct FILE) and none found beside the series in {args.series}")
    reports = []
    for path in files:
        try:
            rois, messages = load_rtstruct(path, volume)
        except ExportError as exc:
            if len(files) == 1:
                raise CliError(str(exc)) from exc
            reports.append({"path": str(path), "error": str(exc), "messages": [], "rois": []})
            continue
        reports.append({"path": str(path), "messages": messages, "rois": [_roi_report(r) for r in rois]})
    if args.json:
        print(json.dumps({"series_uid": volume.identity.series_uid, "shape": list(volume.shape),
                          "files": reports}, indent=2))
    else:
        _print_table(reports)
    return 1 if all("error" in r for r in reports) else 0


def _roi_report(roi) -> dict:
    return {"number": roi.number, "name": roi.name, "color": list(roi.color) if roi.color else None,
            "interpreted_type": roi.interpreted_type, "slices": roi.slices, "slice_count": len(roi.slices),
            "volume_ml": round(roi.volume_ml, 4), "messages": roi.messages}


def _print_table(reports: list[dict]) -> None:
    for report in reports:
        print(report["path"])
        if "error" in report:
            print(f"  error: {report['error']}")
            continue
        for message in report["messages"]:
            print(f"  note: {message}")
        print(f"  {'#':>4}  {'name':<24} {'type':<10} {'slices':>6}  {'range':<11} {'mL':>10}")
        for roi in report["rois"]:
            span = f"{roi['slices'][0]}-{roi['slices'][-1]}" if roi["slices"] else "-"
            print(f"  {roi['number']:>4}  {roi['name'][:24]:<24} {roi['interpreted_type'][:10]:<10} "
                  f"{roi['slice_count']:>6}  {span:<11} {roi['volume_ml']:>10.3f}")
            for message in roi["messages"]:
                print(f"        note: {message}")
