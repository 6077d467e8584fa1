"""DICOM Segmentation (highdicom): BINARY for kept masks, FRACTIONAL (probability) for probability maps.

Frames are in the order of the source images (sorted slices); highdicom keeps only frames with content and references
each source image from its frame.  Patient and study modules come from the source images.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from .. import __version__
from ..imaging.volume import Volume
from .atomic import atomic_write, source_folders
from .items import ExportError, ExportItem, check_identity, check_items
from .rtstruct_write import algorithm_identification

_LESION_TYPES = {"GTV", "CTV", "PTV"}
_ORGAN_TYPES = {"ORGAN", "AVOIDANCE", "EXTERNAL"}


def write_seg(items: list[ExportItem], volume: Volume, path: Path | str, fractional: bool = False,
              protected=None) -> Path:
    """Write a DICOM SEG of `items` atomically to `path`; returns the path written.

    fractional=False: each item's mask (probabilities thresholded at 0.5) as a BINARY segment.
    fractional=True: each item's probabilities as a FRACTIONAL segment of type PROBABILITY (8 bits).
    """
    seg = build_seg(items, volume, fractional)
    guard = source_folders(volume) if protected is None else protected
    return atomic_write(Path(path), lambda tmp: seg.save_as(tmp, enforce_file_format=True), guard)


def build_seg(items: list[ExportItem], volume: Volume, fractional: bool = False) -> hd.seg.Segmentation:
    """The Segmentation dataset (not yet written)."""
    check_identity(volume, "a DICOM SEG")
    check_items(items, volume)
    sources = _source_images(volume)
    if fractional:
        pixels = np.stack([item.probabilities() for item in items], axis=-1)
    else:
        pixels = np.stack([item.binary() for item in items], axis=-1).astype(np.uint8)
    descriptions = [_segment_description(number, item) for number, item in enumerate(items, start=1)]
    kind = hd.seg.SegmentationTypeValues.FRACTIONAL if fractional else hd.seg.SegmentationTypeValues.BINARY
    try:
        with warnings.catch_warnings():
            # highdicom warns about single-component patient names of the source (common after de-identification)
            warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person name")
            return hd.seg.Segmentation(
                source_images=sources, pixel_array=pixels, segmentation_type=kind,
                segment_descriptions=descriptions, series_instance_uid=generate_uid(), series_number=902,
                sop_instance_uid=generate_uid(), instance_number=1, manufacturer="AmbiView",
                manufacturer_model_name="AmbiView", software_versions=__version__, device_serial_number="none",
                fractional_type=hd.seg.SegmentationFractionalTypeValues.PROBABILITY if fractional else None,
                max_fractional_value=255,
                series_description="AmbiView probabilities" if fractional else "AmbiView segments",
                omit_empty_frames=True)
    except (ValueError, TypeError, AttributeError) as exc:
        raise ExportError(f"cannot build the DICOM SEG for series {volume.identity.series_uid}: {exc}") from exc


def _source_images(volume: Volume) -> list[pydicom.Dataset]:
    """Headers of the source slices in sorted order (pixel data is not needed to reference them)."""
    files = volume.identity.files
    if len(files) != volume.shape[0]:
        raise ExportError(f"cannot write a DICOM SEG: the source files of series {volume.identity.series_uid} are "
                          f"not known ({len(files)} files for {volume.shape[0]} slices)")
    sources = []
    for path, uid in zip(files, volume.identity.sop_instance_uids):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError, EOFError, ValueError) as exc:
            raise ExportError(f"cannot write a DICOM SEG: source image {path} is unreadable ({exc})") from exc
        if ds.get("SOPInstanceUID") != uid:
            raise ExportError(f"cannot write a DICOM SEG: {path} is no longer the image the series was loaded from")
        sources.append(ds)
    return sources


def _segment_description(number: int, item: ExportItem) -> hd.seg.SegmentDescription:
    kind = item.interpreted_type.upper()
    if kind in _ORGAN_TYPES:
        category, prop = codes.SCT.AnatomicalStructure, codes.SCT.Organ
    elif kind in _LESION_TYPES or not kind:
        category, prop = codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.Lesion
    else:
        category, prop = codes.SCT.PhysicalObject, codes.SCT.PhysicalObject
    manual = item.generation == "MANUAL" or not item.algorithm
    return hd.seg.SegmentDescription(
        segment_number=number, segment_label=item.name, segmented_property_category=category,
        segmented_property_type=prop,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL if manual
        else hd.seg.SegmentAlgorithmTypeValues(item.generation),
        algorithm_identification=None if manual else algorithm_identification(item),
        tracking_uid=generate_uid(), tracking_id=item.name,
        display_color=hd.color.CIELabColor.from_rgb(*(int(c) for c in item.color)))
