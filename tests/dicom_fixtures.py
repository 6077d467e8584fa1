"""Write small synthetic DICOM objects for tests: CT series with any geometry and transfer syntax, and the clutter a
real folder holds (RTSTRUCT, SR, DICOMDIR, truncated, empty, non-DICOM and pixel-less files).

Everything here knows the answer it wrote: `write_series` returns the paths and UIDs in slice order (ascending
position along the slice normal), the per-slice positions and the HU voxels, so a test can compare a loader's output
with the truth.  Typical use::

    hu = np.arange(4 * 6 * 5, dtype=np.int16).reshape(4, 6, 5) - 500
    written = write_series(tmp_path, hu, spacing=(2.5, 0.7, 0.8), order="shuffle")
    volume, _ = load_path(tmp_path)
    assert np.array_equal(volume.voxels, written.hu)
"""
from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    UID,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGLosslessSV1,
    generate_uid,
)

RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
BASIC_TEXT_SR_STORAGE = "1.2.840.10008.5.1.4.1.1.88.11"
GRAYSCALE_PRESENTATION_STATE_STORAGE = "1.2.840.10008.5.1.4.1.1.11.1"
MEDIA_STORAGE_DIRECTORY_STORAGE = "1.2.840.10008.1.3.10"

UNCOMPRESSED = (ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian)


@dataclass
class WrittenSeries:
    """What write_series wrote, in slice order (ascending position along the normal), missing slices excluded."""

    folder: Path
    paths: list[Path]
    sop_instance_uids: list[str]
    series_uid: str
    study_uid: str
    frame_of_reference_uid: str
    positions: np.ndarray  # (n, 3) ImagePositionPatient of each written slice
    hu: np.ndarray  # (n, rows, cols) the HU values the files encode
    row_cosine: tuple[float, float, float]
    col_cosine: tuple[float, float, float]
    pixel_spacing: tuple[float, float]  # (dy, dx)
    slice_spacing: float
    transfer_syntax: str
    missing: list[int] = field(default_factory=list)  # indices into the input voxels that were not written
    write_order: list[int] = field(default_factory=list)  # input slice index of the k-th file written

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.row_cosine, self.col_cosine)


def has_dcmtk() -> bool:
    """True when dcmtk's dcmcjpeg is installed (needed for JPEG lossless, which pydicom cannot encode)."""
    return shutil.which("dcmcjpeg") is not None


def write_series(
    folder,
    hu: np.ndarray,
    *,
    spacing: Sequence[float] = (2.5, 0.8, 0.8),
    origin: Sequence[float] = (-100.0, -120.0, 40.0),
    row_cosine: Sequence[float] = (1.0, 0.0, 0.0),
    col_cosine: Sequence[float] = (0.0, 1.0, 0.0),
    order: str = "ascending",
    seed: int = 0,
    missing: Sequence[int] = (),
    tilt_degrees: float = 0.0,
    transfer_syntax: str = ExplicitVRLittleEndian,
    series_uid: str | None = None,
    study_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    modality: str = "CT",
    sop_class_uid: str = CTImageStorage,
    slope: float = 1.0,
    intercept: float = -1024.0,
    signed: bool = False,
    bits_stored: int = 16,
    file_names: str | Callable[[int, int], str] = "IM_{series}_{k:04d}.dcm",
    instance_numbers: str | Sequence[int] = "write-order",
    series_number: int = 1,
    description: str = "Synthetic CT",
    patient_name: str = "Fixture^Patient",
    patient_id: str = "FIX-0001",
    study_date: str = "20240131",
    slice_thickness: float | None = None,
    extra: dict | None = None,
) -> WrittenSeries:
    """Write `hu` (z, y, x) as one single-frame DICOM file per slice into `folder`; return what was written.

    Geometry: slice z has ImagePositionPatient origin + z*dz*normal (+ z*dz*tan(tilt)*col_cosine for a gantry tilt
    about the row direction), with normal = row_cosine x col_cosine; pixel (y, x) lies at + y*dy*col + x*dx*row.
    spacing is (dz, dy, dx); dz may be negative to run the stack against the normal.

    order: "ascending", "descending" or "shuffle" -- the order in which slices are written, which also fixes file
    names (`file_names`, formatted with k = write index and series = series_number, or called as f(k, z)) and,
    with instance_numbers="write-order", the InstanceNumbers; so "shuffle" gives misleading names and numbers.
    instance_numbers may instead be a list, one per input slice.  missing: input slice indices not written.
    transfer_syntax: any uncompressed syntax, RLE Lossless, JPEG-LS Lossless, JPEG 2000 Lossless (pydicom encoders;
    openjpeg needs slices of at least 32 x 32 pixels), or JPEG Lossless SV1 (dcmtk's dcmcjpeg; see has_dcmtk).  Stored values are round((hu - intercept) / slope) and
    must fit `bits_stored` bits (signed or not); otherwise ValueError.  extra: keyword -> value set on every slice.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    hu = np.asarray(hu)
    if hu.ndim != 3:
        raise ValueError(f"voxels must be (z, y, x), got shape {hu.shape}")
    nz = hu.shape[0]
    dz, dy, dx = (float(s) for s in spacing)
    row = _unit(row_cosine)
    col = _unit(col_cosine)
    normal = np.cross(row, col)
    shear = np.tan(np.radians(tilt_degrees)) * abs(dz)
    positions = np.array([np.asarray(origin, float) + z * dz * normal + z * shear * col for z in range(nz)])
    stored = _stored_values(hu, slope, intercept, signed, bits_stored)

    series_uid = series_uid or generate_uid()
    study_uid = study_uid or generate_uid()
    frame_uid = frame_of_reference_uid or generate_uid()
    present = [z for z in range(nz) if z not in set(missing)]
    write_order = _write_order(present, order, seed)
    numbers = list(instance_numbers) if not isinstance(instance_numbers, str) else None
    if instance_numbers not in ("write-order",) and numbers is None:
        raise ValueError(f"instance_numbers: 'write-order' or one number per slice, got {instance_numbers!r}")

    sop_uids: dict[int, str] = {}
    paths: dict[int, Path] = {}
    for k, z in enumerate(write_order):
        name = file_names(k, z) if callable(file_names) else file_names.format(k=k, z=z, series=series_number)
        ds = _ct_slice(
            stored[z], position=positions[z], row=row, col=col, pixel_spacing=(dy, dx), series_uid=series_uid,
            study_uid=study_uid, frame_uid=frame_uid, modality=modality, sop_class_uid=sop_class_uid, slope=slope,
            intercept=intercept, signed=signed, bits_stored=bits_stored,
            instance_number=numbers[z] if numbers is not None else k + 1, series_number=series_number,
            description=description, patient_name=patient_name, patient_id=patient_id, study_date=study_date,
            slice_thickness=slice_thickness if slice_thickness is not None else abs(dz), tilt=tilt_degrees)
        for keyword, value in (extra or {}).items():
            setattr(ds, keyword, value)
        path = folder / name
        _save(ds, path, transfer_syntax)
        sop_uids[z] = str(ds.SOPInstanceUID)
        paths[z] = path

    # slice order = ascending position along the normal (dz < 0 reverses the input order)
    by_position = sorted(present, key=lambda z: float(positions[z] @ normal))
    return WrittenSeries(
        folder=folder, paths=[paths[z] for z in by_position], sop_instance_uids=[sop_uids[z] for z in by_position],
        series_uid=series_uid, study_uid=study_uid, frame_of_reference_uid=frame_uid,
        positions=positions[by_position], hu=_hu_of(stored, slope, intercept)[by_position],
        row_cosine=tuple(row), col_cosine=tuple(col), pixel_spacing=(dy, dx), slice_spacing=abs(dz),
        transfer_syntax=str(transfer_syntax), missing=sorted(set(missing)), write_order=write_order)


def phantom(shape=(6, 20, 16), seed: int = 0) -> np.ndarray:
    """An asymmetric HU phantom (int16): air -1000 around a soft-tissue block, a bright L in one corner of each slice,
    and a slice-dependent ramp, so flips, transposes and slice swaps all change the values."""
    nz, ny, nx = shape
    rng = np.random.default_rng(seed)
    vol = np.full(shape, -1000, dtype=np.int16)
    vol[:, ny // 5: 4 * ny // 5, nx // 5: 4 * nx // 5] = 40
    vol[:, 1:ny // 2, 1] = 900
    vol[:, ny // 2 - 1, 1:nx // 3] = 900
    vol += (np.arange(nz, dtype=np.int16) * 10)[:, None, None]
    vol += rng.integers(-5, 6, size=shape, dtype=np.int16)
    return vol


# --- other objects a folder may hold ----------------------------------------------------------------------------------
def write_rtstruct(folder, series: WrittenSeries, name: str = "RS_structures.dcm", roi_name: str = "Lesion") -> Path:
    """A minimal RT Structure Set with one closed planar contour on the middle slice of `series`."""
    ds = _base(RT_STRUCTURE_SET_STORAGE, "RTSTRUCT", series.study_uid, generate_uid())
    ds.StructureSetLabel = "Fixture"
    ds.StructureSetDate = "20240131"
    ds.StructureSetTime = "120000"
    ds.OperatorsName = ""
    ds.FrameOfReferenceUID = series.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ref_frame = Dataset()
    ref_frame.FrameOfReferenceUID = series.frame_of_reference_uid
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([ref_frame])
    roi = Dataset()
    roi.ROINumber = 1
    roi.ReferencedFrameOfReferenceUID = series.frame_of_reference_uid
    roi.ROIName = roi_name
    roi.ROIGenerationAlgorithm = "MANUAL"
    ds.StructureSetROISequence = DicomSequence([roi])
    mid = len(series.paths) // 2
    p0 = series.positions[mid]
    row, col = np.asarray(series.row_cosine), np.asarray(series.col_cosine)
    dy, dx = series.pixel_spacing
    corners = [p0 + a * dx * 4 * row + b * dy * 4 * col for a, b in ((1, 1), (2, 1), (2, 2), (1, 2))]
    contour = Dataset()
    contour.ContourGeometricType = "CLOSED_PLANAR"
    contour.NumberOfContourPoints = len(corners)
    contour.ContourData = [f"{v:.3f}" for c in corners for v in c]
    image_ref = Dataset()
    image_ref.ReferencedSOPClassUID = CTImageStorage
    image_ref.ReferencedSOPInstanceUID = series.sop_instance_uids[mid]
    contour.ContourImageSequence = DicomSequence([image_ref])
    roi_contour = Dataset()
    roi_contour.ReferencedROINumber = 1
    roi_contour.ROIDisplayColor = [255, 0, 0]
    roi_contour.ContourSequence = DicomSequence([contour])
    ds.ROIContourSequence = DicomSequence([roi_contour])
    observation = Dataset()
    observation.ObservationNumber = 1
    observation.ReferencedROINumber = 1
    observation.RTROIInterpretedType = "ORGAN"
    observation.ROIInterpreter = ""
    ds.RTROIObservationsSequence = DicomSequence([observation])
    path = Path(folder) / name
    _save(ds, path, ExplicitVRLittleEndian)
    return path


def write_sr(folder, name: str = "SR_report.dcm", study_uid: str | None = None, text: str = "No findings.") -> Path:
    """A minimal Basic Text SR document."""
    ds = _base(BASIC_TEXT_SR_STORAGE, "SR", study_uid or generate_uid(), generate_uid())
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    ds.ContentDate = "20240131"
    ds.ContentTime = "120000"
    ds.ReferencedPerformedProcedureStepSequence = DicomSequence([])
    ds.PerformedProcedureCodeSequence = DicomSequence([])
    concept = Dataset()
    concept.CodeValue, concept.CodingSchemeDesignator, concept.CodeMeaning = "121070", "DCM", "Findings"
    ds.ConceptNameCodeSequence = DicomSequence([concept])
    item = Dataset()
    item.RelationshipType = "CONTAINS"
    item.ValueType = "TEXT"
    item.ConceptNameCodeSequence = DicomSequence([concept])
    item.TextValue = text
    ds.ContentSequence = DicomSequence([item])
    path = Path(folder) / name
    _save(ds, path, ExplicitVRLittleEndian)
    return path


def write_presentation_state(folder, name: str = "PR_state.dcm", study_uid: str | None = None) -> Path:
    """A minimal Grayscale Softcopy Presentation State header (enough to be recognised and skipped)."""
    ds = _base(GRAYSCALE_PRESENTATION_STATE_STORAGE, "PR", study_uid or generate_uid(), generate_uid())
    ds.ContentLabel = "FIXTURE"
    ds.PresentationCreationDate = "20240131"
    path = Path(folder) / name
    _save(ds, path, ExplicitVRLittleEndian)
    return path


def write_dicomdir_like(folder, name: str = "DICOMDIR") -> Path:
    """A file with the Media Storage Directory SOP class in its meta header (what a DICOMDIR is to a scanner)."""
    ds = Dataset()
    ds.FileSetID = "FIXTURE"
    ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.FileSetConsistencyFlag = 0
    ds.DirectoryRecordSequence = DicomSequence([])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MEDIA_STORAGE_DIRECTORY_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    path = Path(folder) / name
    ds.save_as(path, enforce_file_format=True)
    return path


def write_not_dicom(path, text: str = "These are not the slices you are looking for.\n") -> Path:
    path = Path(path)
    path.write_text(text)
    return path


def write_empty(path) -> Path:
    path = Path(path)
    path.write_bytes(b"")
    return path


def write_truncated(source, path, keep: float = 0.5) -> Path:
    """Copy `source` cut short: `keep` is a fraction of its size (float) or a byte count (int)."""
    data = Path(source).read_bytes()
    n = int(len(data) * keep) if isinstance(keep, float) else int(keep)
    path = Path(path)
    path.write_bytes(data[:n])
    return path


def write_pixelless(source, path) -> Path:
    """Copy of the image `source` with its pixel data removed (an image header that cannot be displayed)."""
    ds = pydicom.dcmread(source)
    del ds.PixelData
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(path, enforce_file_format=True)
    return Path(path)


def corrupt_compressed_pixels(path) -> Path:
    """Replace the encapsulated pixel stream of a compressed file by bytes no decoder accepts (header intact)."""
    ds = pydicom.dcmread(path)
    if not ds.file_meta.TransferSyntaxUID.is_encapsulated:
        raise ValueError(f"{path}: not a compressed file")
    garbage = bytes(range(256)) * 4
    if ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.5":  # RLE: a header claiming 9 segments is invalid
        garbage = (9).to_bytes(4, "little") + bytes(60) + garbage
    ds.PixelData = encapsulate([garbage])
    ds.save_as(path, enforce_file_format=True)
    return Path(path)


# --- internals --------------------------------------------------------------------------------------------------------
def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def _stored_values(hu: np.ndarray, slope: float, intercept: float, signed: bool, bits_stored: int) -> np.ndarray:
    stored = np.round((hu.astype(np.float64) - intercept) / slope)
    lo, hi = (-(2 ** (bits_stored - 1)), 2 ** (bits_stored - 1) - 1) if signed else (0, 2 ** bits_stored - 1)
    if stored.size and (stored.min() < lo or stored.max() > hi):
        raise ValueError(f"HU {hu.min()}..{hu.max()} with slope {slope}, intercept {intercept} give stored values "
                         f"{stored.min():.0f}..{stored.max():.0f}, outside {bits_stored}-bit "
                         f"{'signed' if signed else 'unsigned'} range")
    return stored.astype(np.int16 if signed else np.uint16)


def _hu_of(stored: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    hu = stored.astype(np.float64) * slope + intercept
    if float(slope).is_integer() and float(intercept).is_integer() and hu.min() >= -32768 and hu.max() <= 32767:
        return hu.astype(np.int16)
    return hu.astype(np.float32)


def _write_order(present: list[int], order: str, seed: int) -> list[int]:
    if order == "ascending":
        return list(present)
    if order == "descending":
        return list(reversed(present))
    if order == "shuffle":
        rng = np.random.default_rng(seed)
        out = list(present)
        while len(out) > 2 and out == sorted(out):
            out = [present[i] for i in rng.permutation(len(present))]
        return out
    raise ValueError(f"order must be 'ascending', 'descending' or 'shuffle', got {order!r}")


def _base(sop_class_uid: str, modality: str, study_uid: str, series_uid: str) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = generate_uid()
    ds.StudyDate = "20240131"
    ds.StudyTime = "120000"
    ds.AccessionNumber = ""
    ds.Modality = modality
    ds.Manufacturer = "AmbiView test fixtures"
    ds.ReferringPhysicianName = ""
    ds.PatientName = "Fixture^Patient"
    ds.PatientID = "FIX-0001"
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = 99
    ds.InstanceNumber = 1
    return ds


def _ct_slice(stored: np.ndarray, *, position, row, col, pixel_spacing, series_uid, study_uid, frame_uid, modality,
              sop_class_uid, slope, intercept, signed, bits_stored, instance_number, series_number, description,
              patient_name, patient_id, study_date, slice_thickness, tilt) -> Dataset:
    ds = _base(sop_class_uid, modality, study_uid, series_uid)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = ds.AcquisitionDate = study_date
    ds.SeriesTime = ds.ContentTime = "120000"
    ds.SeriesDescription = description
    ds.StudyDescription = "Fixture study"
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.SeriesNumber = series_number
    ds.InstanceNumber = instance_number
    ds.AcquisitionNumber = 1
    ds.FrameOfReferenceUID = frame_uid
    ds.PositionReferenceIndicator = ""
    ds.PatientPosition = "HFS"
    ds.BodyPartExamined = "CHEST"
    ds.KVP = "120"
    ds.SliceThickness = f"{slice_thickness:.6g}"
    ds.GantryDetectorTilt = f"{tilt:.6g}"
    ds.ConvolutionKernel = "STANDARD"
    ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
    ds.ImageOrientationPatient = [f"{v:.8f}" for v in (*row, *col)]
    ds.SliceLocation = f"{float(position @ np.cross(row, col)):.6f}"
    ds.PixelSpacing = [f"{pixel_spacing[0]:.6g}", f"{pixel_spacing[1]:.6g}"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    ds.RescaleIntercept = f"{intercept:.6g}"
    ds.RescaleSlope = f"{slope:.6g}"
    ds.RescaleType = "HU"
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    ds.PixelData = np.ascontiguousarray(stored, dtype="<i2" if signed else "<u2").tobytes()
    ds["PixelData"].VR = "OW"
    return ds


def _save(ds: Dataset, path: Path, transfer_syntax: str) -> None:
    transfer_syntax = UID(str(transfer_syntax))
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    if transfer_syntax == JPEGLosslessSV1:
        _save_with_dcmtk(ds, path)
        return
    if "PixelData" in ds and transfer_syntax.is_encapsulated:
        ds.compress(transfer_syntax, generate_instance_uid=False)
    elif "PixelData" in ds and transfer_syntax == ExplicitVRBigEndian:
        dtype = "<i2" if ds.PixelRepresentation == 1 else "<u2"
        ds.PixelData = np.frombuffer(ds.PixelData, dtype).astype(dtype.replace("<", ">")).tobytes()
    meta.TransferSyntaxUID = transfer_syntax
    ds.save_as(path, enforce_file_format=True)


def _save_with_dcmtk(ds: Dataset, path: Path) -> None:
    if not has_dcmtk():
        raise RuntimeError("JPEG Lossless needs dcmtk's dcmcjpeg (apt-get install dcmtk)")
    plain = path.with_name(path.name + ".plain")
    ds.save_as(plain, enforce_file_format=True)
    try:
        # +e1: lossless, first-order prediction (process 14, selection value 1); +un: keep the SOP Instance UID
        subprocess.run(["dcmcjpeg", "+e1", "+un", str(plain), str(path)], check=True, capture_output=True)
    finally:
        plain.unlink(missing_ok=True)


