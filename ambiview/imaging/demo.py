"""The built-in demo study: the synthetic chest CT of `phantom`, written by our own code as a DICOM CT series.

It is generated on first use into the user's cache, `cache_dir()/demo/<DEMO_VERSION>/`:

    series/CT0001.dcm ... CT0080.dcm   one CT Image Storage instance per slice (Explicit VR Little Endian)
    nodules.json                       the demo nodules, so that the app can offer "go to nodule"

The folder is written under a temporary name beside its final place and renamed when complete, so a half-written
demo is never picked up.  Two processes starting at once both generate; the first rename wins and the other discards
its copy.  All UIDs are name-based UUIDs derived from DEMO_VERSION, so the demo is the same study on every machine
and every run.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian

from .. import __version__ as _ambiview_version
from ..paths import cache_dir
from .phantom import DEMO_NODULES, NOISE_HU, make_demo_volume
from .phantom_anatomy import SHAPE, SPACING, to_patient
from .phantom_nodules import DemoNodule

__all__ = ["DEMO_NODULES", "DEMO_VERSION", "DemoNodule", "DemoStudyError", "demo_nodules_path", "demo_series_dir",
           "make_demo_volume", "read_demo_nodules", "write_demo_study"]

DEMO_VERSION = "1"  # bump whenever the phantom or the DICOM writing changes: a new folder is generated
DEMO_SEED = 0
SERIES_FOLDER = "series"
NODULES_FILE = "nodules.json"
_PARTIAL_SUFFIX = ".partial"
_STALE_AFTER_S = 3600.0  # a partial folder this old was left by a crashed run

# stored = HU + 1024 in 12 unsigned bits, as many scanners do; HU = stored * slope + intercept
_INTERCEPT, _BITS_STORED = -1024, 12
_STUDY_DATE, _STUDY_TIME = "20250101", "090000"

Progress = Callable[[int, int], None]


class DemoStudyError(RuntimeError):
    """The demo study cannot be written or read; the message names the folder or file and the problem."""


def _uid(*parts: str) -> str:
    """A name-based UID: the same name gives the same UID on every machine.

    pydicom's generate_uid(prefix=None, entropy_srcs=...) ignores the entropy and returns a random UUID, so the
    UID is built here the same way from a name-based (version 5) UUID, "2.25.<128-bit integer>" (DICOM PS3.5 B.2).
    """
    name = ":".join(["urn:ambiview:demo", DEMO_VERSION, *parts])
    return UID(f"2.25.{uuid.uuid5(uuid.NAMESPACE_URL, name).int}")


STUDY_UID = _uid("study")
SERIES_UID = _uid("series")
FRAME_OF_REFERENCE_UID = _uid("frame of reference")


def instance_uid(k: int) -> str:
    """SOP Instance UID of slice k (k = 0 is the lowest slice)."""
    return _uid("instance", str(k))


# --- the cache ------------------------------------------------------------------------------------------------------
def demo_folder() -> Path:
    """The cache folder of this demo version (it may not exist yet)."""
    return cache_dir() / "demo" / DEMO_VERSION


def demo_nodules_path() -> Path:
    """nodules.json beside the demo series (generated with it)."""
    return demo_folder() / NODULES_FILE


def demo_series_dir(progress: Progress | None = None) -> Path:
    """The folder of the demo series, generated first if missing; progress(done, total) reports generation."""
    final = demo_folder()
    if is_complete(final):
        return final / SERIES_FOLDER
    parent = final.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(parent)
        if final.exists():  # damaged (files deleted by hand): move it out of the way, then regenerate
            _discard(final)
        partial = Path(tempfile.mkdtemp(prefix=f".{DEMO_VERSION}-", suffix=_PARTIAL_SUFFIX, dir=parent))
    except OSError as exc:
        raise DemoStudyError(f"cannot create the demo study in {parent}: {exc.strerror or exc}") from exc
    try:
        write_demo_study(partial, progress)
        publish(partial, final)
    except OSError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise DemoStudyError(f"cannot write the demo study into {partial}: {exc.strerror or exc}") from exc
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return final / SERIES_FOLDER


def publish(partial: Path, final: Path) -> None:
    """Rename a complete partial folder to its final name; if another process got there first, keep theirs."""
    try:
        os.rename(partial, final)
    except OSError:
        if not is_complete(final):
            raise
        shutil.rmtree(partial, ignore_errors=True)


def is_complete(folder: Path) -> bool:
    """True when `folder` holds a finished demo study: its nodules.json and as many slices as it announces."""
    try:
        info = json.loads((folder / NODULES_FILE).read_text(encoding="utf-8"))
        expected = int(info["slices"])
        present = sum(1 for p in (folder / SERIES_FOLDER).iterdir() if p.suffix == ".dcm")
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return info.get("version") == DEMO_VERSION and present == expected


def remove_stale_partials(parent: Path, older_than_s: float = _STALE_AFTER_S) -> None:
    """Delete partial folders left by crashed runs (recent ones may belong to a run in progress)."""
    now = time.time()
    for path in parent.glob(f".*{_PARTIAL_SUFFIX}"):
        try:
            if path.is_dir() and now - path.stat().st_mtime > older_than_s:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            continue


def _discard(folder: Path) -> None:
    """Rename a damaged study aside (atomically, so no reader sees it half deleted), then delete it."""
    trash = folder.with_name(f".{folder.name}-discarded-{os.getpid()}{_PARTIAL_SUFFIX}")
    try:
        os.rename(folder, trash)
    except FileNotFoundError:  # another process discarded it first
        return
    shutil.rmtree(trash, ignore_errors=True)


# --- writing --------------------------------------------------------------------------------------------------------
def write_demo_study(folder: Path, progress: Progress | None = None, seed: int = DEMO_SEED) -> None:
    """Write the demo series and nodules.json into `folder` (which must exist and should be empty)."""
    report = progress or (lambda done, total: None)
    nz = SHAPE[0]
    volume_steps = nz + 3  # what make_demo_volume reports
    total = volume_steps + nz
    voxels, geometry = make_demo_volume(seed, progress=lambda done, _total: report(done, total))
    series = folder / SERIES_FOLDER
    series.mkdir()
    origin = geometry["origin"]
    for k in range(nz):
        instance = nz - k  # instance 1 is the top slice, as a scanner moving head first numbers them
        ds = _slice_dataset(voxels[k], k, instance, origin)
        ds.save_as(series / f"CT{instance:04d}.dcm", enforce_file_format=True)
        report(volume_steps + k + 1, total)
    _write_json(folder / NODULES_FILE, _nodules_document(seed))


def _slice_dataset(hu: np.ndarray, k: int, instance: int, origin) -> Dataset:
    ds = Dataset()
    sop_uid = instance_uid(k)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    # SOP common
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.InstanceCreationDate, ds.InstanceCreationTime = _STUDY_DATE, _STUDY_TIME
    # patient: clearly synthetic
    ds.PatientName = "AmbiView^Demo"
    ds.PatientID = "AMBIVIEW-DEMO"
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.PatientComments = "Synthetic phantom generated by AmbiView; not a real patient."
    # general study
    ds.StudyInstanceUID = STUDY_UID
    ds.StudyDate, ds.StudyTime = _STUDY_DATE, _STUDY_TIME
    ds.ReferringPhysicianName = ""
    ds.StudyID = "DEMO"
    ds.AccessionNumber = ""
    ds.StudyDescription = "AmbiView demo: synthetic chest CT"
    # general series
    ds.Modality = "CT"
    ds.SeriesInstanceUID = SERIES_UID
    ds.SeriesNumber = 1
    ds.SeriesDate, ds.SeriesTime = _STUDY_DATE, _STUDY_TIME
    ds.SeriesDescription = f"Synthetic chest CT {SPACING[0]:g} mm"
    ds.BodyPartExamined = "CHEST"
    ds.PatientPosition = "HFS"
    # frame of reference
    ds.FrameOfReferenceUID = FRAME_OF_REFERENCE_UID
    ds.PositionReferenceIndicator = ""
    # general equipment
    ds.Manufacturer = "AmbiView"
    ds.ManufacturerModelName = "Demo chest phantom"
    ds.SoftwareVersions = [f"ambiview {_ambiview_version}", f"demo {DEMO_VERSION}"]
    # general image and acquisition
    ds.InstanceNumber = instance
    ds.AcquisitionNumber = 1
    ds.ContentDate, ds.ContentTime = _STUDY_DATE, _STUDY_TIME
    ds.AcquisitionDate, ds.AcquisitionTime = _STUDY_DATE, _STUDY_TIME
    ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
    ds.DerivationDescription = "Computed phantom (AmbiView demo); no patient was scanned"
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.ImageComments = f"Synthetic phantom, seed {DEMO_SEED}, noise {NOISE_HU:g} HU"
    # image plane
    x, y, z = to_patient((k, 0, 0))
    ds.ImagePositionPatient = [_ds(x), _ds(y), _ds(z)]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [_ds(SPACING[1]), _ds(SPACING[2])]
    ds.SliceThickness = _ds(SPACING[0])
    ds.SliceLocation = _ds(z)
    # image pixel
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = hu.shape
    ds.BitsAllocated = 16
    ds.BitsStored = _BITS_STORED
    ds.HighBit = _BITS_STORED - 1
    ds.PixelRepresentation = 0
    stored = np.clip(hu.astype(np.int32) - _INTERCEPT, 0, 2 ** _BITS_STORED - 1).astype("<u2")
    ds.PixelData = stored.tobytes()
    # CT image
    ds.RescaleIntercept = _INTERCEPT
    ds.RescaleSlope = 1
    ds.RescaleType = "HU"
    ds.KVP = 120
    ds.ScanOptions = "HELICAL"
    ds.ReconstructionDiameter = _ds(SPACING[2] * hu.shape[1])
    ds.ConvolutionKernel = "SYNTHETIC"
    ds.GantryDetectorTilt = 0
    # VOI LUT: lung first, then mediastinum
    ds.WindowCenter = [-600, 40]
    ds.WindowWidth = [1500, 400]
    ds.WindowCenterWidthExplanation = ["LUNG", "MEDIASTINUM"]
    return ds


def _ds(value: float) -> str:
    """A decimal string short enough for DS (16 characters)."""
    text = f"{float(value):.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


# --- the nodule list ------------------------------------------------------------------------------------------------
def _nodules_document(seed: int) -> dict:
    nodules = []
    for n in DEMO_NODULES:
        nearest = int(round(n.center_zyx[0]))
        nodules.append({
            "name": n.name, "kind": n.kind, "center_zyx": list(n.center_zyx),
            "center_lps_mm": [round(v, 3) for v in to_patient(n.center_zyx)],
            "radius_mm": n.radius_mm, "description": n.description,
            "slice_sop_instance_uid": instance_uid(nearest),
        })
    return {
        "format": "ambiview-demo-nodules", "version": DEMO_VERSION, "seed": seed, "slices": SHAPE[0],
        "study_instance_uid": STUDY_UID, "series_instance_uid": SERIES_UID,
        "frame_of_reference_uid": FRAME_OF_REFERENCE_UID,
        "coordinates": "center_zyx: voxel (slice, row, column), slices sorted by position along the slice normal "
                       "(slice 0 is the lowest); center_lps_mm: DICOM patient coordinates",
        "nodules": nodules,
    }


def _write_json(path: Path, document: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_demo_nodules(path: Path | None = None) -> tuple[DemoNodule, ...]:
    """The nodules listed in a demo nodules.json (default: the cached demo's, generating it if needed)."""
    if path is None:
        demo_series_dir()
        path = demo_nodules_path()
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        return tuple(DemoNodule(str(n["name"]), str(n["kind"]), tuple(float(v) for v in n["center_zyx"]),
                                float(n["radius_mm"]), str(n["description"])) for n in document["nodules"])
    except OSError as exc:
        raise DemoStudyError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise DemoStudyError(f"{path} is not a demo nodule list: {exc!r}") from exc
