"""Reading one DICOM file: its header (what it is, where its slice lies, where its pixels are) and its pixels.

The header is read with pydicom's deferred reading: every value larger than `_DEFER_BYTES` (in practice the pixel
data) is skipped with a seek, so a header costs one small read per file while the pixel element's offset and length
are still known.  That lets the scan detect truncated and pixel-less files without reading pixels, and lets the
loader read uncompressed pixels with one `read` at a known offset instead of parsing the file a second time.
Compressed transfer syntaxes go through pydicom's decoders (pylibjpeg, pyjpegls, or pydicom's own RLE decoder).
"""
from __future__ import annotations

import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom import uid as dicom_uid
from pydicom.dataelem import RawDataElement
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import pixel_array as _pixel_array

from . import dicom_fields as tags
from .dicom_fields import Fields, meta_text

_DEFER_BYTES = 4096

# Kinds of object that are not image slices, by SOP Class UID (PS3.4 Annex B), and the key they are counted under.
_NON_IMAGE_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.481.3": "RTSTRUCT",  # RT Structure Set
    "1.2.840.10008.5.1.4.1.1.66.4": "SEG",  # Segmentation
    "1.2.840.10008.5.1.4.1.1.66.7": "SEG",  # Label Map Segmentation
    "1.2.840.10008.1.3.10": "DICOMDIR",  # Media Storage Directory
}
_NON_IMAGE_PREFIXES = (
    ("1.2.840.10008.5.1.4.1.1.88.", "SR"),  # structured reports (all flavours)
    ("1.2.840.10008.5.1.4.1.1.11.", "PR"),  # presentation states
    ("1.2.840.10008.5.1.4.1.1.7", "other"),  # secondary capture (screenshots, dose reports)
    ("1.2.840.10008.5.1.4.1.1.481.", "other"),  # RT dose, plan, image, treatment records
    ("1.2.840.10008.5.1.4.1.1.66.", "other"),  # raw data, registrations, fiducials
    ("1.2.840.10008.5.1.4.1.1.104.", "other"),  # encapsulated PDF/CDA
    ("1.2.840.10008.5.1.4.1.1.9.", "other"),  # waveforms
)
_NON_IMAGE_MODALITIES = {"RTSTRUCT": "RTSTRUCT", "SEG": "SEG", "SR": "SR", "PR": "PR", "KO": "other",
                         "RTPLAN": "other", "RTDOSE": "other", "RTRECORD": "other", "REG": "other", "DOC": "other"}
_IMAGE_STORAGE_ROOT = "1.2.840.10008.5.1.4.1.1."  # storage SOP classes; the non-image ones are matched above
NON_IMAGE_KINDS = ("RTSTRUCT", "SEG", "SR", "DICOMDIR", "PR", "other")

# Uncompressed transfer syntaxes whose pixel bytes can be read straight from the file at a known offset.
_NATIVE_SYNTAXES = {dicom_uid.ImplicitVRLittleEndian, dicom_uid.ExplicitVRLittleEndian, dicom_uid.ExplicitVRBigEndian}

# Fields shown in the info panel: (label, DICOM keyword).  Display only -- never logged.
DISPLAY_FIELDS = (
    ("Patient name", "PatientName"),
    ("Patient ID", "PatientID"),
    ("Birth date", "PatientBirthDate"),
    ("Sex", "PatientSex"),
    ("Age", "PatientAge"),
    ("Study date", "StudyDate"),
    ("Study description", "StudyDescription"),
    ("Institution", "InstitutionName"),
    ("Series description", "SeriesDescription"),
    ("Series number", "SeriesNumber"),
    ("Modality", "Modality"),
    ("Manufacturer", "Manufacturer"),
    ("Model", "ManufacturerModelName"),
    ("Body part", "BodyPartExamined"),
    ("kVp", "KVP"),
    ("Tube current (mA)", "XRayTubeCurrent"),
    ("Slice thickness (mm)", "SliceThickness"),
    ("Convolution kernel", "ConvolutionKernel"),
    ("Patient position", "PatientPosition"),
)


@dataclass(frozen=True)
class SliceHeader:
    """What the scan learns from one image file's header, enough to sort, group and decode it."""

    path: Path
    sop_instance_uid: str
    sop_class_uid: str
    series_uid: str
    study_uid: str
    frame_of_reference_uid: str
    modality: str
    series_description: str
    study_date: str  # ISO (YYYY-MM-DD) when the DICOM date parses, else as stored
    instance_number: int | None  # informative only: never used to sort
    acquisition_number: str
    temporal_position: str
    echo_number: str
    position: tuple[float, float, float]  # ImagePositionPatient (LPS mm)
    row_cosine: tuple[float, float, float]
    col_cosine: tuple[float, float, float]
    pixel_spacing: tuple[float, float]  # (dy, dx)
    rows: int
    cols: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int  # 0 unsigned, 1 two's complement
    slope: float
    intercept: float
    transfer_syntax: str
    pixel_offset: int | None  # file offset of uncompressed pixel bytes; None when they must be decoded by pydicom
    pixel_length: int

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.row_cosine, self.col_cosine)


@dataclass(frozen=True)
class FileEntry:
    """The scan's verdict on one file: an image slice (header set), a non-image object (kind), or a problem."""

    path: Path
    kind: str  # "IMAGE", one of NON_IMAGE_KINDS, or "PROBLEM"
    header: SliceHeader | None = None
    problem: str = ""
    series_uid: str = ""  # known for problems whose header could be read (to attach them to their series)


class PixelDecodeError(Exception):
    """The pixel data of one file could not be decoded (message says why)."""


# --- header ---------------------------------------------------------------------------------------------------------
def read_entry(path: Path) -> FileEntry:
    """Classify one file from its header alone; never raises for bad input, returns a PROBLEM entry instead."""
    path = Path(path)
    try:
        info = path.stat()
    except OSError as exc:
        return FileEntry(path, "PROBLEM", problem=f"cannot read: {exc.strerror or exc}")
    if not stat.S_ISREG(info.st_mode):
        return FileEntry(path, "PROBLEM", problem="not a regular file")  # a FIFO would block the read forever
    size = info.st_size
    if size == 0:
        return FileEntry(path, "PROBLEM", problem="empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            # pydicom warns about every odd value in a damaged header; what matters becomes the entry's problem
            warnings.simplefilter("ignore")
            ds = _read_dataset(path)
    except _NotDicom as exc:
        return FileEntry(path, "PROBLEM", problem=str(exc))
    except (EOFError, OSError) as exc:
        return FileEntry(path, "PROBLEM", problem=f"truncated or unreadable DICOM header: {_short(exc)}")
    except Exception as exc:  # noqa: BLE001 -- pydicom raises many types for corrupt input; each is a FileProblem
        return FileEntry(path, "PROBLEM", problem=f"corrupt DICOM header: {_short(exc)}")
    try:
        return _classify(path, ds, size)
    except Exception as exc:  # noqa: BLE001 -- an unparseable value deep in the header
        return FileEntry(path, "PROBLEM", problem=f"corrupt DICOM header: {_short(exc)}",
                         series_uid=Fields(ds).text(tags.SERIES_UID))


class _NotDicom(Exception):
    pass


def _read_dataset(path: Path) -> pydicom.Dataset:
    try:
        return pydicom.dcmread(path, defer_size=_DEFER_BYTES)
    except InvalidDicomError:
        # Files without the 128-byte preamble and 'DICM' (old ACR-NEMA style) still start with a group 0002 or 0008
        # tag; only those are parsed by force, so that a random file is never mistaken for DICOM.
        with open(path, "rb") as fh:
            head = fh.read(4)
        if head[:2] in (b"\x02\x00", b"\x08\x00") and len(head) == 4:
            ds = pydicom.dcmread(path, defer_size=_DEFER_BYTES, force=True)
            if "SOPClassUID" in ds or "SOPInstanceUID" in ds:
                return ds
        raise _NotDicom("not a DICOM file (no 'DICM' marker)") from None


def _classify(path: Path, ds: pydicom.Dataset, size: int) -> FileEntry:
    f = Fields(ds)
    series_uid = f.text(tags.SERIES_UID)

    def problem(message: str) -> FileEntry:
        return FileEntry(path, "PROBLEM", problem=message, series_uid=series_uid)

    transfer_syntax = meta_text(ds, tags.TRANSFER_SYNTAX_UID) or str(dicom_uid.ImplicitVRLittleEndian)
    # offsets in a deflated file count inflated bytes, so the file size says nothing there
    truncated = "" if transfer_syntax == dicom_uid.DeflatedExplicitVRLittleEndian else _truncation(ds, size)
    if truncated:
        return problem(truncated)
    media_class = meta_text(ds, tags.MEDIA_STORAGE_SOP_CLASS_UID)
    sop_class = f.text(tags.SOP_CLASS_UID) or media_class
    modality = f.text(tags.MODALITY).upper()
    if not sop_class and not modality:
        return problem("no SOPClassUID or Modality: truncated, or not a DICOM object this program can use")
    kind = _non_image_kind(sop_class, modality)
    if kind is None and media_class == "1.2.840.10008.1.3.10":
        kind = "DICOMDIR"
    if kind is not None:
        return FileEntry(path, kind, series_uid=series_uid)

    pixel = ds.get_item(tags.PIXEL_DATA, keep_deferred=True)
    if pixel is None:
        if f.has(tags.ROWS) or sop_class.startswith(_IMAGE_STORAGE_ROOT):
            return problem("no pixel data (an image header without PixelData; the file may be cut short)")
        return FileEntry(path, "other", series_uid=series_uid)

    frames = f.uint(tags.NUMBER_OF_FRAMES, 1)
    if frames > 1:
        return problem(f"multi-frame image ({frames} frames): not supported, only single-frame slices are loaded")
    samples = f.uint(tags.SAMPLES_PER_PIXEL, 1)
    if samples != 1:
        return problem(f"colour image ({samples} samples per pixel): not a grey-scale slice")
    missing = [tags.TAG_NAMES[t] for t in (tags.IMAGE_POSITION, tags.IMAGE_ORIENTATION, tags.PIXEL_SPACING,
                                           tags.ROWS, tags.COLUMNS) if not f.has(t)]
    if missing:
        return problem(f"no {', '.join(missing)}: the slice cannot be placed in 3D")

    position = f.numbers(tags.IMAGE_POSITION, 3)
    orientation = f.numbers(tags.IMAGE_ORIENTATION, 6)
    spacing = f.numbers(tags.PIXEL_SPACING, 2)
    row, col = np.asarray(orientation[:3]), np.asarray(orientation[3:])
    if abs(np.linalg.norm(row) - 1) > 0.01 or abs(np.linalg.norm(col) - 1) > 0.01 or abs(row @ col) > 0.01:
        return problem(f"invalid ImageOrientationPatient {list(orientation)}: not two orthogonal unit vectors")
    if min(spacing) <= 0:
        return problem(f"invalid PixelSpacing {list(spacing)}")

    rows, cols = f.uint(tags.ROWS, 0), f.uint(tags.COLUMNS, 0)
    bits_allocated = f.uint(tags.BITS_ALLOCATED, 16)
    bits_stored = f.uint(tags.BITS_STORED, bits_allocated)
    representation = f.uint(tags.PIXEL_REPRESENTATION, 0)
    if rows <= 0 or cols <= 0 or not 0 < bits_stored <= bits_allocated:
        return problem(f"invalid image description: {rows}x{cols} pixels, {bits_stored} of {bits_allocated} bits")

    offset = None
    if (transfer_syntax in _NATIVE_SYNTAXES and bits_allocated in (8, 16, 32)
            and not (bits_allocated == 8 and transfer_syntax == dicom_uid.ExplicitVRBigEndian)):
        expected = rows * cols * bits_allocated // 8
        if pixel.length < expected:
            return problem(f"pixel data too short: {pixel.length} bytes for {rows}x{cols} pixels of "
                           f"{bits_allocated} bits ({expected} bytes expected)")
        offset = pixel.value_tell if isinstance(pixel, RawDataElement) else None

    slope = f.number(tags.RESCALE_SLOPE, 1.0)
    header = SliceHeader(
        path=path,
        sop_instance_uid=f.text(tags.SOP_INSTANCE_UID),
        sop_class_uid=sop_class,
        series_uid=series_uid,
        study_uid=f.text(tags.STUDY_UID),
        frame_of_reference_uid=f.text(tags.FRAME_OF_REFERENCE_UID),
        modality=modality,
        series_description=f.string(tags.SERIES_DESCRIPTION),
        study_date=iso_date(f.text(tags.STUDY_DATE) or f.text(tags.SERIES_DATE)),
        instance_number=f.integer(tags.INSTANCE_NUMBER, None),
        acquisition_number=f.first(tags.ACQUISITION_NUMBER),
        temporal_position=f.first(tags.TEMPORAL_POSITION),
        echo_number=f.first(tags.ECHO_NUMBERS),
        position=position,
        row_cosine=tuple(orientation[:3]),
        col_cosine=tuple(orientation[3:]),
        pixel_spacing=(spacing[0], spacing[1]),
        rows=rows, cols=cols,
        bits_allocated=bits_allocated, bits_stored=bits_stored, pixel_representation=representation,
        slope=slope if slope != 0 else 1.0,  # a zero slope is a writer's error; it would erase the image
        intercept=f.number(tags.RESCALE_INTERCEPT, 0.0),
        transfer_syntax=transfer_syntax,
        pixel_offset=offset,
        pixel_length=int(pixel.length),
    )
    return FileEntry(path, "IMAGE", header=header, series_uid=series_uid)


def _non_image_kind(sop_class: str, modality: str) -> str | None:
    if sop_class in _NON_IMAGE_CLASSES:
        return _NON_IMAGE_CLASSES[sop_class]
    for prefix, kind in _NON_IMAGE_PREFIXES:
        if sop_class.startswith(prefix):
            return kind
    return _NON_IMAGE_MODALITIES.get(modality)


def _truncation(ds: pydicom.Dataset, size: int) -> str:
    """A message when the file ends inside the header's last element, else ''."""
    if not len(ds):
        return "truncated: no data elements after the file meta information"
    # Only the last element read can be cut off; a freshly read dataset keeps the file's order.
    elem = ds.get_item(next(reversed(ds.keys())), keep_deferred=True)  # keep_deferred: never read the pixels here
    if not isinstance(elem, RawDataElement) or elem.length == 0xFFFFFFFF:
        return ""  # a parsed sequence: pydicom raises itself when one is cut short
    end = elem.value_tell + elem.length
    name = "pixel data" if elem.tag == tags.PIXEL_DATA else f"element {elem.tag}"
    if end > size:
        return f"truncated: {name} needs {end} bytes, the file has {size}"
    if 0 < size - end < 8:
        # pydicom stops quietly when fewer bytes than an element header remain
        return f"truncated: the file ends {size - end} bytes into the element after {name}"
    return ""


# --- pixels ---------------------------------------------------------------------------------------------------------
def read_stored_pixels(header: SliceHeader) -> np.ndarray:
    """The slice's stored values (rows, cols), before rescale; raises PixelDecodeError with the reason."""
    try:
        if header.pixel_offset is not None:
            return _read_native(header)
        if header.transfer_syntax == dicom_uid.DeflatedExplicitVRLittleEndian:
            arr = pydicom.dcmread(header.path).pixel_array  # pixel_array(path) cannot parse a deflated stream
        else:
            arr = _pixel_array(str(header.path))  # reads only the tags decoding needs
    except PixelDecodeError:
        raise
    except Exception as exc:  # decoders raise anything from ValueError to RuntimeError on corrupt streams
        raise PixelDecodeError(f"{_syntax_name(header.transfer_syntax)}: {_short(exc)}") from exc
    if arr.shape != (header.rows, header.cols):
        raise PixelDecodeError(f"decoded {arr.shape}, expected ({header.rows}, {header.cols})")
    return arr


def _read_native(header: SliceHeader) -> np.ndarray:
    little = header.transfer_syntax != dicom_uid.ExplicitVRBigEndian
    kind = "i" if header.pixel_representation == 1 else "u"
    dtype = np.dtype(f"{'<' if little else '>'}{kind}{header.bits_allocated // 8}")
    count = header.rows * header.cols
    with open(header.path, "rb") as fh:
        fh.seek(header.pixel_offset)
        buf = fh.read(count * dtype.itemsize)
    if len(buf) < count * dtype.itemsize:
        raise PixelDecodeError(f"truncated: {len(buf)} of {count * dtype.itemsize} pixel bytes")
    arr = np.frombuffer(buf, dtype).reshape(header.rows, header.cols)
    if not dtype.isnative:
        arr = arr.astype(dtype.newbyteorder("="))
    unused = header.bits_allocated - header.bits_stored
    if 0 < unused < header.bits_allocated:
        # Bits above BitsStored carry no pixel value (PS3.5 8.1.1): shift them out, which also sign-extends signed
        # values -- the correction pydicom applies.  Skipped when every value already lies in range (the usual case,
        # where shifting would change nothing).
        if header.pixel_representation == 1:
            lo, hi = -(1 << (header.bits_stored - 1)), (1 << (header.bits_stored - 1)) - 1
        else:
            lo, hi = 0, (1 << header.bits_stored) - 1
        if arr.size and (arr.min() < lo or arr.max() > hi):
            arr = arr.copy()
            np.left_shift(arr, unused, out=arr)
            np.right_shift(arr, unused, out=arr)
    return arr


def read_header_dataset(path: Path) -> pydicom.Dataset:
    """The full header of one file without its pixel data (kept on the Volume for exports)."""
    return pydicom.dcmread(path, stop_before_pixels=True)


def display_fields(ds: pydicom.Dataset) -> dict[str, str]:
    """Human-readable patient/study/series fields for the info panel (only those present)."""
    out: dict[str, str] = {}
    for label, keyword in DISPLAY_FIELDS:
        try:
            value = ds.get(keyword)
        except Exception:  # noqa: BLE001, S112 -- an unparseable value is simply not shown
            continue
        if value in (None, ""):
            continue
        if isinstance(value, MultiValue):
            text = "\\".join(str(v) for v in value)
        else:
            text = str(value)
        if keyword.endswith("Date"):
            text = iso_date(text)
        if text.strip():
            out[label] = text.strip()
    return out


# --- small helpers ----------------------------------------------------------------------------------------------------
def iso_date(value: str) -> str:
    """DICOM DA 'YYYYMMDD' as 'YYYY-MM-DD'; anything else unchanged."""
    value = (value or "").strip()
    if len(value) >= 8 and value[:8].isdigit() and 1 <= int(value[4:6]) <= 12 and 1 <= int(value[6:8]) <= 31:
        return f"{value[:4]}-{value[4:6]}-{value[6:8]}"
    return value


def _syntax_name(ts: str) -> str:
    return dicom_uid.UID(ts).name or ts


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
