"""Kept items -> files: the app's export, checked up front and then run (off the GUI thread) as one plan (no Qt).

What leaves is exactly the kept items the user ticked, in the formats chosen: one RTSTRUCT and/or one binary SEG
holding all of them, one NIfTI per item, and, for the fractional SEG, the mean probability of the current result's
hypotheses.  The folder defaults to `default_export_dir(volume)` and is never (inside) the source folder.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..export.atomic import default_export_dir, safe_filename, source_folders
from ..export.bundle import DICOM_FORMATS, FORMAT_TITLES, default_path, describe_origin, write_format
from ..export.items import ExportError, ExportItem, check_identity
from ..imaging.volume import Volume
from .kept import KeptItem
from .placement import kept_local_mask
from .result import SegmentationResult

APP_FORMATS = ("rtstruct", "seg", "seg_fractional", "nifti")  # what the dialog offers
Progress = Callable[[int, int, str], None]  # (done, total, what is being written)


@dataclass(frozen=True)
class ExportRequest:
    """An immutable snapshot of what to write (the worker gets this, never the live session)."""

    volume: Volume
    items: tuple[KeptItem, ...]
    formats: tuple[str, ...]
    folder: Path
    result: SegmentationResult | None = None  # for the fractional SEG (mean probability)


@dataclass
class ExportOutcome:
    written: list[tuple[str, Path]] = field(default_factory=list)  # (format, path)
    notes: list[str] = field(default_factory=list)


def default_folder(volume: Volume | None) -> Path:
    return default_export_dir(volume)


def dicom_problem(volume: Volume | None) -> str | None:
    """Why DICOM formats cannot be written for this volume (not loaded from DICOM), or None when they can."""
    if volume is None:
        return "no series is open"
    try:
        check_identity(volume, "DICOM RTSTRUCT or SEG")
    except ExportError as exc:
        return str(exc)
    return None


def check_folder(folder, volume: Volume | None) -> Path:
    """The export folder, refused (ExportError) when it is the source folder or inside it, or an existing file."""
    if not str(folder).strip():
        raise ExportError("choose a folder to export into")
    target = Path(folder).expanduser()
    if target.exists() and not target.is_dir():
        raise ExportError(f"{target} is a file, not a folder; choose a folder")
    resolved = target.resolve()
    for source in source_folders(volume):
        if resolved == source or source in resolved.parents:
            raise ExportError(f"refusing to export into {target}: it is (inside) the source folder {source}; "
                              "choose another folder")
    return target


def check_request(request: ExportRequest) -> None:
    """Refuse, with a message a user can act on, what cannot be exported (before anything is written)."""
    if not request.items:
        raise ExportError("tick at least one kept item to export")
    if not request.formats:
        raise ExportError("choose at least one format")
    unknown = [f for f in request.formats if f not in FORMAT_TITLES]
    if unknown:
        raise ExportError(f"unknown format(s): {', '.join(unknown)}")
    check_folder(request.folder, request.volume)
    if any(f in DICOM_FORMATS for f in request.formats):
        problem = dicom_problem(request.volume)
        if problem:
            raise ExportError(problem + "; choose NIfTI instead")
    if "seg_fractional" in request.formats and request.result is None:
        raise ExportError("the fractional SEG holds the mean probability of the current hypotheses, and there are "
                          "none; run a model first or leave it out")
    for item in request.items:
        if tuple(item.volume_shape) != tuple(request.volume.shape):
            raise ExportError(f"kept item '{item.name}' belongs to a {tuple(item.volume_shape)} volume, the open "
                              f"series is {tuple(request.volume.shape)}")
        if kept_local_mask(item).is_empty:
            raise ExportError(f"kept item '{item.name}' is empty on the series grid, nothing to export")


def export_item(item: KeptItem, volume: Volume) -> ExportItem:
    """A kept item as an ExportItem on the volume grid, with where it came from."""
    expert = item.kind == "expert"
    origin = "" if expert else describe_origin(item.model_title, item.model, item.digest) + ", "
    return ExportItem(item.name[:64], kept_local_mask(item).to_volume(volume.shape), tuple(item.color),
                      algorithm="" if expert else (item.model_title or item.model or "AmbiView"),
                      description=origin + (item.description or item.kind),
                      algorithm_version="" if expert else item.digest,
                      generation="MANUAL" if expert else "SEMIAUTOMATIC")


def mean_probability_item(result: SegmentationResult, volume: Volume) -> ExportItem:
    """The mean probability of all hypotheses of `result` as a probability map on the volume grid."""
    from ..uncertainty.maps import mean_probability

    name = f"{result.model or 'AmbiView'} mean probability"[:64]
    values = result.to_volume(mean_probability(result.probs).astype("float32")).clip(0.0, 1.0)
    return ExportItem(name, values, (255, 64, 64), algorithm=result.model_title or result.model or "AmbiView",
                      description=f"{describe_origin(result.model_title, result.model, result.digest)}, mean "
                                  f"probability of {result.n} hypotheses, seed {result.seed}",
                      algorithm_version=result.digest,
                      generation="SEMIAUTOMATIC" if result.prompts else "AUTOMATIC")


def _stems(names: list[str]) -> list[str]:
    """Distinct file stems for item names."""
    out: list[str] = []
    for name in names:
        stem = safe_filename(name, "item")
        candidate, i = stem, 2
        while candidate in out:
            candidate, i = f"{stem}_{i}", i + 1
        out.append(candidate)
    return out


def run_export(request: ExportRequest, progress: Progress | None = None) -> ExportOutcome:
    """Check, then write every chosen format; raises ExportError naming the problem and what was already written."""
    check_request(request)
    volume, folder = request.volume, Path(request.folder).expanduser()
    items = [export_item(k, volume) for k in request.items]
    series_stem = safe_filename(volume.identity.description or "series", "series")
    jobs: list[tuple[str, list[ExportItem], Path]] = []
    for kind in request.formats:
        if kind == "nifti":
            jobs += [(kind, [item], default_path(folder, kind, stem))
                     for item, stem in zip(items, _stems([i.name for i in items]))]
        elif kind == "seg_fractional":
            jobs.append((kind, [mean_probability_item(request.result, volume)],
                         default_path(folder, kind, series_stem)))
        else:
            jobs.append((kind, items, default_path(folder, kind, series_stem)))
    outcome = ExportOutcome()
    for done, (kind, job_items, path) in enumerate(jobs):
        if progress is not None:
            progress(done, len(jobs), f"{FORMAT_TITLES[kind]}: {path.name}")
        try:
            written, notes = write_format(kind, job_items, volume, path)
        except ExportError as exc:
            already = ("; already written: " + ", ".join(str(p) for _, p in outcome.written)) if outcome.written \
                else "; nothing was written"
            raise ExportError(str(exc) + already) from exc
        outcome.written.append((kind, written))
        outcome.notes += notes
    if progress is not None:
        progress(len(jobs), len(jobs), "done")
    return outcome
