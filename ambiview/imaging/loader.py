"""Loading a scanned series into a Volume: pixels in HU, the exact geometry, and the series' identity.

Uncompressed slices are read with one `read` each at the offset the scan found, in a plain loop (a thread pool only
added overhead there); compressed ones (RLE, JPEG lossless, JPEG-LS, JPEG 2000) go through pydicom's decoders in a
small thread pool.  The rescale (slope, intercept) of each slice is applied; the voxels stay
int16 when that is exact, else float32.

A slice whose pixels cannot be decoded is left out and named in a warning on the Volume together with the gap it
leaves (the per-slice positions keep the geometry exact around the gap); only when no slice decodes does loading fail
with a LoadError.  This mirrors the scan, where a truncated file becomes a FileProblem and the rest of its series
still loads: the clinician sees what there is and is told, loudly, what is missing.
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from .dicom_read import (
    PixelDecodeError,
    SliceHeader,
    display_fields,
    read_entry,
    read_header_dataset,
    read_stored_pixels,
)
from .errors import LoadCancelled, LoadError
from .scan import Cancel, Progress, ScanResult, SeriesInfo, geometry_of, geometry_warnings, group_series, scan_path
from .volume import SeriesIdentity, Volume

log = logging.getLogger(__name__)

__all__ = ["LoadCancelled", "LoadError", "load_path", "load_series", "nothing_loadable_message"]

_INT16 = np.iinfo(np.int16)


class _NeedsFloat(Exception):
    """A slice's HU values left the int16 range the headers promised; reload as float32."""


def load_path(path, series_uid: str | None = None, progress: Progress | None = None,
              cancel: Cancel | None = None) -> tuple[Volume, ScanResult]:
    """Scan `path` and load the series `series_uid` (default: the first CT, else the largest series).

    progress(done, total) covers both phases: the scan counts one step per file, the load one per slice.
    """
    scan_total = [0]

    def scan_progress(done: int, total: int) -> None:
        scan_total[0] = total
        if progress:
            progress(done, 2 * total)

    def load_progress(done: int, total: int) -> None:
        if progress:
            progress(scan_total[0] + done, scan_total[0] + total)

    scan = scan_path(path, progress=scan_progress, cancel=cancel)
    if series_uid:
        series = scan.find(series_uid)
        if series is None:
            found = ", ".join(sorted({s.series_uid for s in scan.series})) or "none"
            raise LoadError(f"{scan.root}: no image series with SeriesInstanceUID {series_uid} (found: {found})")
    else:
        series = scan.default_series()
        if series is None:
            raise LoadError(nothing_loadable_message(scan))
    return load_series(series, progress=load_progress, cancel=cancel), scan


def load_series(series: SeriesInfo, progress: Progress | None = None, cancel: Cancel | None = None) -> Volume:
    """Decode the slices of `series` into a Volume (HU, int16 when exact, else float32)."""
    slices, notes = _slices_of(series)
    try:
        voxels, failures = _decode_all(slices, _exact_int16(slices), progress, cancel)
    except _NeedsFloat:
        voxels, failures = _decode_all(slices, False, progress, cancel)
    kept = [h for i, h in enumerate(slices) if i not in failures]
    if not kept:
        first = slices[min(failures)]
        raise LoadError(f"{first.path}: none of the {len(slices)} slices of series {series.series_uid} could be "
                        f"decoded ({failures[min(failures)]})")
    if failures:
        voxels = voxels[[i for i in range(len(slices)) if i not in failures]]
    if voxels.dtype == np.float32 and _integral_slopes(kept):
        lo, hi = float(voxels.min()), float(voxels.max())
        if _INT16.min <= lo and hi <= _INT16.max:
            voxels = voxels.astype(np.int16)

    geometry = geometry_of(kept)
    warnings = list(series.warnings) + notes
    if failures:
        before = geometry_warnings(geometry_of(slices))  # replaced by those of the stack without the failures
        warnings = [w for w in warnings if w not in before]
        for i in sorted(failures):
            h = slices[i]
            warnings.append(f"slice {i} ({h.path.name}, at {float(np.dot(h.position, h.normal)):.2f} mm) could not "
                            f"be decoded and is left out: {failures[i]}")
        warnings += geometry_warnings(geometry)
    for w in warnings:
        log.info("series %s: %s", series.series_uid, w)
    return Volume(voxels=voxels, geometry=geometry, identity=_identity(kept, series, warnings), warnings=warnings)


def nothing_loadable_message(scan: ScanResult) -> str:
    """One clear line saying why a scan found nothing to load."""
    details = []
    if scan.problems:
        listed = "; ".join(f"{p.path.name}: {p.message}" for p in scan.problems[:3])
        more = f"; and {len(scan.problems) - 3} more" if len(scan.problems) > 3 else ""
        details.append(f"{len(scan.problems)} unusable file{'s' if len(scan.problems) > 1 else ''} ({listed}{more})")
    if scan.skipped:
        details.append("skipped " + ", ".join(f"{n} {kind}" for kind, n in scan.skipped.items()))
    if not scan.problems and not scan.skipped:
        details.append("no files" if scan.root.is_dir() else "nothing readable")
    return f"no loadable image series in {scan.root}: " + "; ".join(details)


# --- the slices to decode ---------------------------------------------------------------------------------------------
def _slices_of(series: SeriesInfo) -> tuple[list[SliceHeader], list[str]]:
    """The sorted slice headers: the scan's, or read afresh when the SeriesInfo was built from file paths alone."""
    if series.slices and [h.path for h in series.slices] == list(series.files):
        return list(series.slices), []
    if not series.files:
        raise LoadError(f"series {series.series_uid or '(no UID)'} has no files")
    entries = [read_entry(Path(f)) for f in series.files]
    bad = [e for e in entries if e.kind != "IMAGE"]
    headers = [e.header for e in entries if e.kind == "IMAGE"]
    if not headers:
        e = bad[0]
        raise LoadError(f"{e.path}: {e.problem or 'not an image slice (' + e.kind + ')'}"
                        + (f" (and {len(bad) - 1} more unusable files)" if len(bad) > 1 else ""))
    groups = group_series(headers)
    if len(groups) != 1:
        raise LoadError(f"the {len(headers)} files given for series {series.series_uid} form {len(groups)} different "
                        f"stacks (several series, orientations or matrix sizes); scan the folder instead")
    notes = [f"{e.path.name}: {e.problem or e.kind}; left out" for e in bad]
    return groups[0].slices, notes + groups[0].warnings


def _exact_int16(slices: list[SliceHeader]) -> bool:
    """True when every slice's rescale maps its stored value range to integers inside int16."""
    if not _integral_slopes(slices):
        return False
    for h in slices:
        if h.pixel_representation == 1:
            lo, hi = -(2 ** (h.bits_stored - 1)), 2 ** (h.bits_stored - 1) - 1
        else:
            lo, hi = 0, 2 ** h.bits_stored - 1
        ends = (lo * h.slope + h.intercept, hi * h.slope + h.intercept)
        if min(ends) < _INT16.min or max(ends) > _INT16.max:
            return False
    return True


def _integral_slopes(slices: list[SliceHeader]) -> bool:
    return all(float(h.slope).is_integer() and float(h.intercept).is_integer() for h in slices)


# --- decoding ---------------------------------------------------------------------------------------------------------
def _decode_all(slices: list[SliceHeader], as_int16: bool, progress: Progress | None,
                cancel: Cancel | None) -> tuple[np.ndarray, dict[int, str]]:
    """Decode every slice into one preallocated array; returns it and {index: error} for slices that failed."""
    first = slices[0]
    voxels = np.empty((len(slices), first.rows, first.cols), dtype=np.int16 if as_int16 else np.float32)
    failures: dict[int, str] = {}
    total = len(slices)

    def decode(i: int) -> None:
        h = slices[i]
        raw = read_stored_pixels(h)
        if as_int16:
            lo, hi = (int(raw.min()), int(raw.max())) if raw.size else (0, 0)
            ends = (lo * int(h.slope) + int(h.intercept), hi * int(h.slope) + int(h.intercept))
            if min(ends) < _INT16.min or max(ends) > _INT16.max:
                raise _NeedsFloat()
            if h.slope == 1:
                # one pass, computed in int32 and written straight into the int16 volume (exact: range checked)
                np.add(raw, np.int32(h.intercept), out=voxels[i], casting="unsafe")
            else:
                voxels[i] = raw.astype(np.int32) * int(h.slope) + int(h.intercept)
        else:
            voxels[i] = raw * np.float64(h.slope) + np.float64(h.intercept)

    def step(done: int, i: int, error: PixelDecodeError | None) -> None:
        if error is not None:
            failures[i] = str(error)
        if progress:
            progress(done, total)
        if cancel and cancel():
            raise LoadCancelled("loading cancelled")

    if progress:
        progress(0, total)
    if cancel and cancel():
        raise LoadCancelled("loading cancelled")
    workers = min(4, os.cpu_count() or 1, total)
    if all(h.pixel_offset is not None for h in slices) or workers < 2:
        # uncompressed: one read per slice, faster in a plain loop than through a pool
        for i in range(total):
            step(i + 1, i, _attempt(decode, i))
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dicom-decode") as pool:
            futures = {pool.submit(decode, i): i for i in range(total)}
            try:
                for done, future in enumerate(as_completed(futures), start=1):
                    step(done, futures[future], _attempt(future.result))
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    return voxels, failures


def _attempt(func, *args) -> PixelDecodeError | None:
    """Run func(*args); return its PixelDecodeError instead of raising it (other exceptions propagate)."""
    try:
        func(*args)
    except PixelDecodeError as exc:
        return exc
    return None


# --- identity ---------------------------------------------------------------------------------------------------------
def _identity(kept: list[SliceHeader], series: SeriesInfo, warnings: list[str]) -> SeriesIdentity:
    first = kept[0]
    try:
        header = read_header_dataset(first.path)
        display = display_fields(header)
    except Exception as exc:  # noqa: BLE001 -- parsed once by the scan; if it changed on disk since, go on without
        header, display = None, {}
        warnings.append(f"{first.path.name}: header could not be read again ({exc}); patient details unavailable")
    files = [h.path for h in kept]
    return SeriesIdentity(
        series_uid=first.series_uid,
        study_uid=first.study_uid,
        frame_of_reference_uid=first.frame_of_reference_uid,
        sop_instance_uids=[h.sop_instance_uid for h in kept],
        sop_class_uid=first.sop_class_uid,
        modality=first.modality,
        description=first.series_description,
        display=display,
        header=header,
        source=Path(os.path.commonpath([str(f.parent) for f in files])),
        files=files,
    )
