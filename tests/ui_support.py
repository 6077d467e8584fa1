"""Helpers for the pytest-qt tests of ambiview.ui: phantoms, small DICOM folders, a leaked-window check."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
import pytest

from ambiview.imaging.volume import Volume

# pyqtgraph drops mouse moves that come faster than 100 a second; synthetic test moves come back to back
pg.setConfigOptions(mouseRateLimit=-1)

PHANTOM_SHAPE = (12, 40, 50)  # (z, y, x): three different sizes, so a transpose cannot go unnoticed
PHANTOM_SPACING = (3.0, 0.7, 0.9)  # thick slices and non-square pixels
PHANTOM_Z = 3
BACKGROUND, FOREGROUND = -1000, 400


def phantom_voxels() -> np.ndarray:
    """An L in the top-left corner of slice PHANTOM_Z (and only there), plus a ramp so every slice differs."""
    vox = np.full(PHANTOM_SHAPE, BACKGROUND, dtype=np.int16)
    vox += np.arange(PHANTOM_SHAPE[0], dtype=np.int16)[:, None, None]  # slice z holds -1000 + z
    vox[PHANTOM_Z, 2:14, 3:6] = FOREGROUND  # the L's long bar, down the left side
    vox[PHANTOM_Z, 11:14, 3:12] = FOREGROUND  # its foot, to the right
    return vox


def phantom_volume() -> Volume:
    return Volume.from_array(phantom_voxels(), spacing=PHANTOM_SPACING, origin=(-20.0, -15.0, 100.0),
                             description="L phantom", modality="CT")


@pytest.fixture
def no_leaked_windows(qapp):
    """Fail a test that leaves a visible top-level widget behind (and close it, so the next test starts clean).

    pytest-qt closes widgets registered with qtbot.addWidget before fixtures are torn down, so those count as closed.
    """
    before = {id(w) for w in qapp.topLevelWidgets() if w.isVisible()}
    yield
    qapp.processEvents()
    leaked = [w for w in qapp.topLevelWidgets() if w.isVisible() and id(w) not in before]
    for widget in leaked:
        widget.close()
    assert not leaked, f"test left windows open: {[type(w).__name__ for w in leaked]}"


def write_series(folder: Path, n_slices: int = 6, rows: int = 24, cols: int = 20, modality: str = "CT",
                 description: str = "test series", series_uid: str | None = None, spacing=(2.5, 0.8, 0.8),
                 study_date: str = "20240102") -> list[Path]:
    """A tiny axial series of uncompressed slices (HU = slice index * 10 - 1000, plus a marker at the top left)."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    study_uid, frame_uid = generate_uid(), generate_uid()
    sop_class = CTImageStorage if modality == "CT" else MRImageStorage
    paths = []
    for k in range(n_slices):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = sop_class
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.SeriesDescription, ds.StudyDate = modality, description, study_date
        ds.PatientName, ds.PatientID = "Test^Phantom", "PHANTOM01"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
        ds.InstanceNumber = n_slices - k  # deliberately against the position order
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-8.0, -9.0, 50.0 + k * spacing[0]]
        ds.PixelSpacing = [spacing[1], spacing[2]]
        ds.SliceThickness = spacing[0]
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = 0, 1
        pixels = np.full((rows, cols), k * 10 - 1000, dtype=np.int16)
        pixels[1:4, 1:3] = 300
        ds.PixelData = pixels.tobytes()
        path = folder / f"slice_{k:03d}.dcm"
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
        paths.append(path)
    return paths
