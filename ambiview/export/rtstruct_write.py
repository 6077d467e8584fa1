"""DICOM RT Structure Set writer: kept masks -> ROIs with pixel-edge contours in patient coordinates.

Written here rather than with rt-utils (1.2.7 swaps row/column spacing on non-square pixels and draws contours through
pixel centres) or highdicom (SEG, but no RTSTRUCT).  Contours follow the convention of `contours.py`; every vertex
goes through `Geometry.voxel_to_patient`, so non-square pixels, uneven slices, either slice order and oblique planes
come out right.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian, RTStructureSetStorage, generate_uid
from pydicom.valuerep import format_number_as_ds

from .. import __version__
from ..imaging.volume import Volume
from .atomic import atomic_write, source_folders
from .contours import mask_to_polygons
from .items import ExportError, ExportItem, check_identity, check_items

# Attributes carried over from the source series (Patient, General Study and Patient Study modules).
PATIENT_STUDY_KEYWORDS = (
    "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex", "OtherPatientIDsSequence",
    "PatientIdentityRemoved", "DeidentificationMethod", "DeidentificationMethodCodeSequence",
    "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber",
    "StudyDescription", "PatientAge", "PatientSize", "PatientWeight",
)
TYPE2_KEYWORDS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                  "ReferringPhysicianName", "StudyID", "AccessionNumber")
# Detached Study Management SOP Class, the (retired but required) class of RT Referenced Study Sequence items
STUDY_COMPONENT_CLASS = "1.2.840.10008.3.1.2.3.1"


def write_rtstruct(items: list[ExportItem], volume: Volume, path: Path | str, protected=None) -> Path:
    """Write an RT Structure Set for `items` on `volume` atomically to `path`; returns the path written.

    protected: folders never written into (default: the folders of the source series).
    """
    ds = build_rtstruct(items, volume)
    guard = source_folders(volume) if protected is None else protected
    return atomic_write(Path(path), lambda tmp: ds.save_as(tmp, enforce_file_format=True), guard)


def build_rtstruct(items: list[ExportItem], volume: Volume, label: str = "AmbiView",
                   series_description: str = "AmbiView structures") -> Dataset:
    """The RT Structure Set dataset (not yet written)."""
    check_identity(volume, "an RTSTRUCT")
    check_items(items, volume)
    ident = volume.identity
    now = datetime.now()
    ds = Dataset()
    _carry_over(ds, ident.header, ident.study_uid)
    ds.SpecificCharacterSet = _character_set(ident.header, items)
    ds.SOPClassUID = RTStructureSetStorage
    ds.SOPInstanceUID = generate_uid()
    ds.InstanceCreationDate, ds.InstanceCreationTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    # RT Series and General Equipment
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 901
    ds.SeriesDescription = series_description
    ds.SeriesDate, ds.SeriesTime = ds.InstanceCreationDate, ds.InstanceCreationTime
    ds.OperatorsName = ""
    ds.Manufacturer = "AmbiView"
    ds.ManufacturerModelName = "AmbiView"
    ds.SoftwareVersions = __version__
    ds.InstanceNumber = 1
    # Frame of Reference (required by recent editions of the RT Structure Set IOD)
    ds.FrameOfReferenceUID = ident.frame_of_reference_uid
    header = ident.header
    ds.PositionReferenceIndicator = header.get("PositionReferenceIndicator", "") if header is not None else ""
    # Structure Set
    ds.StructureSetLabel = label[:16]
    ds.StructureSetName = label[:64]
    ds.StructureSetDate, ds.StructureSetTime = ds.InstanceCreationDate, ds.InstanceCreationTime
    ds.ReferencedFrameOfReferenceSequence = Sequence([_referenced_frame(volume)])
    ds.StructureSetROISequence = Sequence()
    ds.ROIContourSequence = Sequence()
    ds.RTROIObservationsSequence = Sequence()
    for number, item in enumerate(items, start=1):
        ds.StructureSetROISequence.append(_structure_set_roi(number, item, ident.frame_of_reference_uid))
        ds.ROIContourSequence.append(_roi_contour(number, item, volume))
        ds.RTROIObservationsSequence.append(_observation(number, item))
    ds.ApprovalStatus = "UNAPPROVED"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def _carry_over(ds: Dataset, header: Dataset | None, study_uid: str) -> None:
    if header is not None:
        for keyword in PATIENT_STUDY_KEYWORDS:
            if keyword in header:
                ds[keyword] = header[keyword]
    for keyword in TYPE2_KEYWORDS:
        if keyword not in ds:
            setattr(ds, keyword, "")
    ds.StudyInstanceUID = study_uid


def _character_set(header: Dataset | None, items: list[ExportItem]) -> str:
    """Keep the source's character set when our text is plain ASCII; otherwise UTF-8."""
    text = "".join(item.name + item.description + item.algorithm for item in items)
    source = str(header.get("SpecificCharacterSet", "")) if header is not None else ""
    if text.isascii() and source in ("", "ISO_IR 6", "ISO_IR 100", "ISO_IR 192"):
        return source or "ISO_IR 100"
    return "ISO_IR 192"


def _image_ref(volume: Volume, z: int) -> Dataset:
    ref = Dataset()
    ref.ReferencedSOPClassUID = volume.identity.sop_class_uid
    ref.ReferencedSOPInstanceUID = volume.identity.sop_instance_uids[z]
    return ref


def _referenced_frame(volume: Volume) -> Dataset:
    """Frame of reference -> study -> series -> every image of the series."""
    ident = volume.identity
    series = Dataset()
    series.SeriesInstanceUID = ident.series_uid
    series.ContourImageSequence = Sequence([_image_ref(volume, z) for z in range(volume.shape[0])])
    study = Dataset()
    study.ReferencedSOPClassUID = STUDY_COMPONENT_CLASS
    study.ReferencedSOPInstanceUID = ident.study_uid
    study.RTReferencedSeriesSequence = Sequence([series])
    frame = Dataset()
    frame.FrameOfReferenceUID = ident.frame_of_reference_uid
    frame.RTReferencedStudySequence = Sequence([study])
    return frame


def algorithm_identification(item: ExportItem) -> hd.AlgorithmIdentificationSequence:
    """Algorithm Identification (model name, checkpoint digest as version), shared with the SEG writer."""
    return hd.AlgorithmIdentificationSequence(
        name=(item.algorithm or "unknown")[:64], family=codes.cid7162.ArtificialIntelligence,
        version=(item.algorithm_version or "unknown")[:64])


def _structure_set_roi(number: int, item: ExportItem, frame_uid: str) -> Dataset:
    roi = Dataset()
    roi.ROINumber = number
    roi.ReferencedFrameOfReferenceUID = frame_uid
    roi.ROIName = item.name
    roi.ROIGenerationAlgorithm = item.generation
    summary = item.description or item.algorithm
    roi.ROIGenerationDescription = summary if len(summary) <= 64 else summary[:61] + "..."
    if item.description:
        roi.ROIDescription = item.description  # ST: the full text when the LO above had to be shortened
    if item.algorithm:
        roi.ROIDerivationAlgorithmIdentificationSequence = algorithm_identification(item)
    return roi


def _roi_contour(number: int, item: ExportItem, volume: Volume) -> Dataset:
    geometry = volume.geometry
    mask = item.binary()
    contours = Sequence()
    for z in np.nonzero(mask.any(axis=(1, 2)))[0]:
        for poly in mask_to_polygons(mask[z]):
            zyx = np.column_stack([np.full(len(poly), float(z)), poly])
            xyz = geometry.voxel_to_patient(zyx)
            contour = Dataset()
            contour.ContourImageSequence = Sequence([_image_ref(volume, int(z))])
            contour.ContourGeometricType = "CLOSED_PLANAR"
            contour.NumberOfContourPoints = len(poly)
            contour.ContourNumber = len(contours) + 1
            contour.ContourData = [format_number_as_ds(float(v)) for v in xyz.ravel()]
            contours.append(contour)
    if not contours:
        raise ExportError(f"item '{item.name}': the mask is empty, nothing to export")
    roi = Dataset()
    roi.ROIDisplayColor = [int(c) for c in item.color]
    roi.ContourSequence = contours
    roi.ReferencedROINumber = number
    return roi


def _observation(number: int, item: ExportItem) -> Dataset:
    obs = Dataset()
    obs.ObservationNumber = number
    obs.ReferencedROINumber = number
    obs.RTROIInterpretedType = item.interpreted_type
    obs.ROIInterpreter = ""
    return obs
