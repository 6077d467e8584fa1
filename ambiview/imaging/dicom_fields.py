"""Fast typed access to the top-level values of a header read by pydicom.

pydicom converts a raw element on first access through several layers (about 30 us per value); a scan needs ~25
values from each of hundreds of files, so the plain ASCII value representations (UI, CS, DS, IS, DA) and the binary
US values are decoded here straight from the raw bytes, and everything else falls back to pydicom.  Values are
accessed by tag, never by keyword, for the same reason.
"""
from __future__ import annotations

import math
import struct
from typing import Any

import pydicom
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.multival import MultiValue

# Tags read by the scan (group << 16 | element).
SOP_CLASS_UID = 0x00080016
SOP_INSTANCE_UID = 0x00080018
STUDY_DATE = 0x00080020
SERIES_DATE = 0x00080021
MODALITY = 0x00080060
SERIES_DESCRIPTION = 0x0008103E
ECHO_NUMBERS = 0x00180086
STUDY_UID = 0x0020000D
SERIES_UID = 0x0020000E
ACQUISITION_NUMBER = 0x00200012
INSTANCE_NUMBER = 0x00200013
IMAGE_POSITION = 0x00200032
IMAGE_ORIENTATION = 0x00200037
FRAME_OF_REFERENCE_UID = 0x00200052
TEMPORAL_POSITION = 0x00200100
SAMPLES_PER_PIXEL = 0x00280002
NUMBER_OF_FRAMES = 0x00280008
ROWS = 0x00280010
COLUMNS = 0x00280011
PIXEL_SPACING = 0x00280030
BITS_ALLOCATED = 0x00280100
BITS_STORED = 0x00280101
PIXEL_REPRESENTATION = 0x00280103
RESCALE_INTERCEPT = 0x00281052
RESCALE_SLOPE = 0x00281053
PIXEL_DATA = 0x7FE00010
MEDIA_STORAGE_SOP_CLASS_UID = 0x00020002
TRANSFER_SYNTAX_UID = 0x00020010

TAG_NAMES = {IMAGE_POSITION: "ImagePositionPatient", IMAGE_ORIENTATION: "ImageOrientationPatient",
             PIXEL_SPACING: "PixelSpacing", ROWS: "Rows", COLUMNS: "Columns", RESCALE_SLOPE: "RescaleSlope",
             RESCALE_INTERCEPT: "RescaleIntercept"}


_BINARY_VRS = {"US", "UL", "SS", "SL", "FL", "FD", "AT", "OB", "OW"}


class Fields:
    """Typed reads of one dataset's top-level values; a missing or empty value gives the default."""

    def __init__(self, ds: pydicom.Dataset) -> None:
        self.ds = ds

    def has(self, tag: int) -> bool:
        """True when the attribute is present with a value.  Binary values are judged by their length: a US value
        of 32 is the bytes b" \\x00", which stripping text padding would wrongly turn into nothing."""
        elem = self.ds.get_item(tag, keep_deferred=True)
        if isinstance(elem, RawDataElement) and isinstance(elem.value, bytes):
            vr = elem.VR or dictionary_VR(tag)
            if vr in _BINARY_VRS:
                return len(elem.value) > 0
        return self.text(tag) != ""

    def text(self, tag: int) -> str:
        """The value as text, multiple values joined by backslashes, padding stripped (ASCII value types)."""
        elem = self.ds.get_item(tag, keep_deferred=True)
        if elem is None:
            return ""
        if isinstance(elem, RawDataElement):
            raw = elem.value
            if raw is None or isinstance(raw, bytes) and len(raw) > 1024:
                return ""  # deferred: far too long to be one of the short values read here
            if isinstance(raw, bytes):
                return raw.decode("latin-1").strip(" \x00")
            elem = self.ds[tag]
        value = elem.value
        if value is None:
            return ""
        if isinstance(value, MultiValue):
            return "\\".join(str(v) for v in value)
        return str(value).strip()

    def first(self, tag: int) -> str:
        """The first of possibly several values."""
        return self.text(tag).split("\\", 1)[0].strip()

    def string(self, tag: int) -> str:
        """A text value decoded with the dataset's character set (descriptions, names)."""
        elem = self.ds.get_item(tag, keep_deferred=True)
        if isinstance(elem, RawDataElement) and isinstance(elem.value, bytes):
            raw = elem.value
            # plain ASCII reads the same in every character set; ESC would start an ISO 2022 code switch
            if raw.isascii() and b"\x1b" not in raw:
                return raw.decode("ascii").strip(" \x00")
        elem = self.ds.get(tag)
        if elem is None or elem.value is None:
            return ""
        value = elem.value
        if isinstance(value, MultiValue):
            value = "\\".join(str(v) for v in value)
        return str(value).strip()

    def uint(self, tag: int, default: int) -> int:
        """An unsigned binary value (US/UL) or an integer string (IS)."""
        elem = self.ds.get_item(tag, keep_deferred=True)
        if elem is None:
            return default
        if isinstance(elem, RawDataElement) and isinstance(elem.value, bytes) and elem.VR in (None, "US", "UL"):
            raw = elem.value
            if len(raw) == 0:
                return default
            if tag == NUMBER_OF_FRAMES:  # IS in every dictionary, even when implicit (vr None)
                return self.integer(tag, default)
            order = "<" if elem.is_little_endian else ">"
            if len(raw) == 2:
                return struct.unpack(order + "H", raw)[0]
            if len(raw) == 4:
                return struct.unpack(order + "I", raw)[0]
        return self.integer(tag, default)

    def integer(self, tag: int, default: int | None) -> int | None:
        """An integer string (IS); default when missing or invalid."""
        text = self.first(tag)
        if not text:
            elem = self.ds.get(tag)
            if elem is not None and isinstance(elem.value, int):
                return elem.value
            return default
        try:
            return int(float(text))
        except ValueError:
            return default

    def number(self, tag: int, default: float) -> float:
        """A decimal string (DS); raises ValueError naming the attribute when it is not a number."""
        text = self.first(tag)
        if not text:
            return default
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"invalid {TAG_NAMES.get(tag, hex(tag))} {text!r}") from None
        if not math.isfinite(value):
            raise ValueError(f"invalid {TAG_NAMES.get(tag, hex(tag))} {text!r}")
        return value

    def numbers(self, tag: int, n: int) -> tuple[float, ...]:
        """Exactly n finite decimal strings; raises ValueError naming the attribute otherwise."""
        text = self.text(tag)
        name = TAG_NAMES.get(tag, hex(tag))
        try:
            values = tuple(float(v) for v in text.split("\\"))
        except ValueError:
            raise ValueError(f"invalid {name} {text!r}") from None
        if len(values) != n or not all(math.isfinite(v) for v in values):
            raise ValueError(f"invalid {name} {text!r}: {n} numbers expected")
        return values


def meta_text(ds: pydicom.Dataset, tag: int) -> str:
    """A UID of the file meta information ('' without one)."""
    meta: Any = getattr(ds, "file_meta", None)
    return Fields(meta).text(tag) if meta is not None else ""
