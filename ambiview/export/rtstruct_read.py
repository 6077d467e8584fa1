"""DICOM RT Structure Set reader: ROIs and contours, rasterised onto a series through its Geometry.

Files from other tools are read defensively: a contour between slices or off the series, an ROI in another frame of
reference, an empty ROI, an open contour or a malformed item each produce one clear message, and the rest still loads.
Closed contours of one ROI on one slice are filled together with the even-odd rule (`contours.fill_polygons`), which
reads our keyholed contours exactly and treats nested contours from other tools as holes.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.uid import RTStructureSetStorage

from ..imaging.geometry import Geometry
from ..imaging.volume import Volume
from .contours import fill_polygons
from .items import ExportError
from .measure import mask_volume_ml


@dataclass
class Contour:
    points: np.ndarray  # (k, 3) LPS mm
    geometric_type: str
    image_uids: tuple[str, ...] = ()


@dataclass
class RoiData:
    """One ROI as stored in the file."""

    number: int
    name: str
    color: tuple[int, int, int] | None
    interpreted_type: str = ""
    generation_algorithm: str = ""
    description: str = ""
    frame_of_reference_uid: str = ""
    contours: list[Contour] = field(default_factory=list)


@dataclass
class StructureSet:
    path: Path
    label: str
    study_uid: str
    frame_of_reference_uids: list[str]
    referenced_series_uids: list[str]
    rois: list[RoiData]
    messages: list[str] = field(default_factory=list)


@dataclass
class RasterRoi:
    """An ROI drawn onto a series: mask is None when nothing could be drawn (see messages)."""

    number: int
    name: str
    color: tuple[int, int, int] | None
    interpreted_type: str
    mask: np.ndarray | None
    slices: list[int]
    volume_ml: float
    messages: list[str] = field(default_factory=list)


def is_rtstruct(path: Path | str) -> bool:
    """True when the file is a readable DICOM RT Structure Set."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID", "Modality"])
    except (InvalidDicomError, OSError, ValueError, EOFError):
        return False
    return ds.get("SOPClassUID", "") == RTStructureSetStorage or ds.get("Modality", "") == "RTSTRUCT"


def rtstructs_among(non_image_files) -> list[Path]:
    """RTSTRUCT paths among a scan's non-image files, given as (path, kind) pairs."""
    return [Path(path) for path, kind in non_image_files if str(kind).upper() == "RTSTRUCT"]


def read_rtstruct(path: Path | str) -> StructureSet:
    """Parse an RT Structure Set; raises ExportError naming the file when it is not a usable one."""
    path = Path(path)
    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, EOFError, ValueError) as exc:
        raise ExportError(f"{path}: not a readable DICOM file ({exc})") from exc
    except OSError as exc:
        raise ExportError(f"{path}: cannot read the file ({exc.strerror or exc})") from exc
    if ds.get("SOPClassUID", "") != RTStructureSetStorage and ds.get("Modality", "") != "RTSTRUCT":
        raise ExportError(f"{path}: a {ds.get('Modality', 'non-image') or 'DICOM'} object, not an RT Structure Set")
    if "StructureSetROISequence" not in ds:
        raise ExportError(f"{path}: RT Structure Set without a Structure Set ROI Sequence")
    messages: list[str] = []
    rois: dict[int, RoiData] = {}
    for item in ds.StructureSetROISequence:
        try:
            number = int(item.ROINumber)
        except (AttributeError, TypeError, ValueError):
            messages.append(f"{path.name}: an ROI without a valid ROI Number was skipped")
            continue
        rois[number] = RoiData(number, str(item.get("ROIName", "") or f"ROI {number}"), None,
                               generation_algorithm=str(item.get("ROIGenerationAlgorithm", "")),
                               description=str(item.get("ROIDescription", "") or item.get("ROIGenerationDescription",
                                                                                           "")),
                               frame_of_reference_uid=str(item.get("ReferencedFrameOfReferenceUID", "")))
    for item in ds.get("RTROIObservationsSequence", []):
        roi = rois.get(_int(item.get("ReferencedROINumber")))
        if roi is not None:
            roi.interpreted_type = str(item.get("RTROIInterpretedType", "") or "")
    for item in ds.get("ROIContourSequence", []):
        roi = rois.get(_int(item.get("ReferencedROINumber")))
        if roi is None:
            messages.append(f"{path.name}: contours for ROI number {item.get('ReferencedROINumber')}, which the "
                            "Structure Set ROI Sequence does not define, were skipped")
            continue
        color = item.get("ROIDisplayColor")
        if color is not None and len(color) == 3:
            roi.color = tuple(int(max(0, min(255, float(c)))) for c in color)
        bad = 0
        for contour in item.get("ContourSequence", []):
            parsed = _contour(contour)
            if parsed is None:
                bad += 1
            else:
                roi.contours.append(parsed)
        if bad:
            messages.append(f"{path.name}: ROI '{roi.name}': {bad} malformed contour(s) (missing or incomplete "
                            "Contour Data) skipped")
    frames, series = [], []
    for frame in ds.get("ReferencedFrameOfReferenceSequence", []):
        frames.append(str(frame.get("FrameOfReferenceUID", "")))
        for study in frame.get("RTReferencedStudySequence", []):
            series += [str(s.get("SeriesInstanceUID", "")) for s in study.get("RTReferencedSeriesSequence", [])]
    return StructureSet(path, str(ds.get("StructureSetLabel", "")), str(ds.get("StudyInstanceUID", "")),
                        [f for f in frames if f], [s for s in series if s], list(rois.values()), messages)


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _contour(item) -> Contour | None:
    data = item.get("ContourData")
    if data is None:
        return None
    values = np.asarray([float(v) for v in data], dtype=np.float64)
    if values.size == 0 or values.size % 3 or not np.all(np.isfinite(values)):
        return None
    uids = tuple(str(ref.get("ReferencedSOPInstanceUID", "")) for ref in item.get("ContourImageSequence", []))
    return Contour(values.reshape(-1, 3), str(item.get("ContourGeometricType", "CLOSED_PLANAR")).upper(), uids)


def load_rtstruct(path: Path | str, volume: Volume) -> tuple[list[RasterRoi], list[str]]:
    """Read an RTSTRUCT and rasterise every ROI onto `volume`: (ROIs, file-level messages)."""
    structure_set = read_rtstruct(path)
    messages = list(structure_set.messages) + reference_messages(structure_set, volume)
    return [rasterise_roi(roi, volume, structure_set.path.name) for roi in structure_set.rois], messages


def reference_messages(structure_set: StructureSet, volume: Volume) -> list[str]:
    """Say when the file was drawn on another series or in another frame of reference."""
    ident, name = volume.identity, structure_set.path.name
    out = []
    if ident.frame_of_reference_uid and structure_set.frame_of_reference_uids and \
            ident.frame_of_reference_uid not in structure_set.frame_of_reference_uids:
        out.append(f"{name}: refers to frame of reference {', '.join(structure_set.frame_of_reference_uids)}, "
                   f"not the series' {ident.frame_of_reference_uid}")
    elif ident.series_uid and structure_set.referenced_series_uids and \
            ident.series_uid not in structure_set.referenced_series_uids:
        out.append(f"{name}: drawn on series {', '.join(structure_set.referenced_series_uids)}, not on the open "
                   "series; contours are placed by their patient coordinates (same frame of reference)")
    return out


def rasterise_roi(roi: RoiData, volume: Volume, source: str = "") -> RasterRoi:
    """Fill the ROI's closed planar contours on the slices they lie on (even-odd rule per slice)."""
    geometry = volume.geometry
    label = f"{source + ': ' if source else ''}ROI '{roi.name}' ({roi.number})"
    result = RasterRoi(roi.number, roi.name, roi.color, roi.interpreted_type, None, [], 0.0)
    frame = volume.identity.frame_of_reference_uid
    if roi.frame_of_reference_uid and frame and roi.frame_of_reference_uid != frame:
        result.messages.append(f"{label}: defined in frame of reference {roi.frame_of_reference_uid}, the series "
                               f"is in {frame}; not drawn")
        return result
    if not roi.contours:
        result.messages.append(f"{label}: has no contours")
        return result
    problems: Counter = Counter()
    off_slice: list[float] = []
    per_slice: dict[int, list[np.ndarray]] = {}
    uid_to_z = {uid: z for z, uid in enumerate(volume.identity.sop_instance_uids)}
    for contour in roi.contours:
        if contour.geometric_type != "CLOSED_PLANAR":
            problems[f"{contour.geometric_type.lower()} contour(s) ignored (only closed contours enclose a region)"] += 1
            continue
        if len(contour.points) < 3:
            problems["closed contour(s) with fewer than 3 points ignored"] += 1
            continue
        z, reason = _slice_of(contour.points, geometry)
        if z is None:
            if reason == "off":
                off_slice.append(float(np.mean(contour.points @ geometry.normal)))
            else:
                problems["contour(s) not parallel to the slices ignored"] += 1
            continue
        if contour.image_uids:
            known = [uid_to_z[u] for u in contour.image_uids if u in uid_to_z]
            if not known:
                problems["contour(s) reference images not in this series (placed by coordinates)"] += 1
            elif z not in known:
                problems["contour(s) reference another slice than their coordinates lie on (placed by "
                         "coordinates)"] += 1
        # snap to 1/100 pixel: contours through pixel centres, rounded in the file, then fill the same way on every
        # edge (a centre on a top or left edge is inside, on a bottom or right edge outside)
        yx = np.round(geometry.patient_to_voxel(contour.points)[:, 1:], 2)
        ny, nx = geometry.shape[1:]
        if yx[:, 0].min() < -0.5 or yx[:, 1].min() < -0.5 or yx[:, 0].max() > ny - 0.5 or yx[:, 1].max() > nx - 0.5:
            problems["contour(s) reach outside the image (clipped)"] += 1
        per_slice.setdefault(z, []).append(yx)
    if off_slice:
        where = ", ".join(f"{s:.1f}" for s in sorted(off_slice)[:5]) + (" ..." if len(off_slice) > 5 else "")
        result.messages.append(f"{label}: {len(off_slice)} contour(s) lie on no slice of the series "
                               f"(at {where} mm along the slice normal); skipped")
    result.messages += [f"{label}: {count} {text}" for text, count in problems.items()]
    if not per_slice:
        if not off_slice and not problems:
            result.messages.append(f"{label}: has no contours")
        return result
    mask = np.zeros(geometry.shape, dtype=bool)
    for z, polygons in per_slice.items():
        mask[z] = fill_polygons(polygons, geometry.shape[1:])
    result.mask = mask
    result.slices = sorted(int(z) for z in np.nonzero(mask.any(axis=(1, 2)))[0])
    result.volume_ml = mask_volume_ml(mask, geometry)
    if not result.slices:
        result.messages.append(f"{label}: its contours enclose no pixel centre of the series")
    return result


def _slice_of(points: np.ndarray, geometry: Geometry) -> tuple[int | None, str]:
    """Index of the slice a planar contour lies on, or (None, "off" | "tilted")."""
    s = points @ geometry.normal
    positions = geometry.slice_positions
    gaps = np.abs(geometry.slice_gaps)
    tol = max(1e-3, min(0.5, 0.25 * float(gaps.min()))) if gaps.size else 0.5
    if float(s.max() - s.min()) > 2 * tol:
        return None, "tilted"
    centre = float(s.mean())
    k = int(np.argmin(np.abs(positions - centre)))
    if abs(positions[k] - centre) > tol:
        return None, "off"
    return k, ""
