"""Nothing partial, nothing lost: atomic writes, the source folder protected, clear errors on full or locked disks."""
from __future__ import annotations

import errno
import os
import tempfile

import numpy as np
import pydicom
import pytest
from dicom_fixtures import phantom, write_series

from ambiview.export import atomic
from ambiview.export.atomic import atomic_write, default_export_dir
from ambiview.export.items import ExportError, ExportItem
from ambiview.export.nifti import write_nifti
from ambiview.export.rtstruct_write import write_rtstruct
from ambiview.imaging.geometry import Geometry
from ambiview.imaging.loader import load_path
from ambiview.paths import data_dir


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    folder = tmp_path_factory.mktemp("atomic") / "ct"
    write_series(folder, phantom((4, 12, 10)), spacing=(2.0, 0.5, 0.5))
    volume, _ = load_path(folder)
    return folder, volume


def item(volume, name="Lesion") -> ExportItem:
    mask = np.zeros(volume.shape, bool)
    mask[1:3, 3:8, 2:6] = True
    return ExportItem(name, mask, (255, 0, 0), "GTV", "Probabilistic SAM", "hypothesis 1 of 4", "ab" * 32)


def test_write_replaces_the_target_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "out" / "file.bin"
    atomic_write(target, lambda tmp: tmp.write_bytes(b"first"))
    atomic_write(target, lambda tmp: tmp.write_bytes(b"second"))
    assert target.read_bytes() == b"second"
    assert os.listdir(target.parent) == ["file.bin"]


def test_the_source_folder_and_its_subfolders_are_refused(series):
    folder, volume = series
    before = sorted(os.listdir(folder))
    for target in (folder / "rs.dcm", folder / "exports" / "rs.dcm"):
        with pytest.raises(ExportError, match="source DICOM folder"):
            write_rtstruct([item(volume)], volume, target)
    assert sorted(os.listdir(folder)) == before


def test_a_full_disk_leaves_nothing_behind_and_keeps_the_old_file(series, tmp_path, monkeypatch):
    _folder, volume = series
    target = tmp_path / "rs.dcm"
    target.write_bytes(b"previous export")

    def full_disk(self, filename, *args, **kwargs):
        with open(filename, "wb") as fh:
            fh.write(b"DICM partial")  # some bytes reach the disk before it fills up
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pydicom.Dataset, "save_as", full_disk)
    with pytest.raises(ExportError) as info:
        write_rtstruct([item(volume)], volume, target)
    message = str(info.value)
    assert str(target) in message and "disk is full" in message and "nothing was written" in message
    assert os.listdir(tmp_path) == ["rs.dcm"] and target.read_bytes() == b"previous export"


def test_a_failing_fsync_leaves_nothing_behind(tmp_path, monkeypatch):
    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", no_space)
    with pytest.raises(ExportError, match="disk is full"):
        atomic_write(tmp_path / "a.nii.gz", lambda tmp: tmp.write_bytes(b"x" * 1000))
    assert os.listdir(tmp_path) == []


def test_an_unwritable_folder_is_reported(tmp_path, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    geometry = Geometry.regular((2, 3, 4))
    with pytest.raises(ExportError, match="permission denied.*nothing was written"):
        write_nifti(np.ones((2, 3, 4), bool), geometry, tmp_path / "mask.nii.gz")
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write into read-only folders")
def test_a_read_only_folder_is_reported(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(ExportError, match="permission denied"):
            atomic_write(locked / "x.dcm", lambda tmp: tmp.write_bytes(b"x"))
        assert os.listdir(locked) == []
    finally:
        locked.chmod(0o700)


def test_empty_masks_and_bad_items_are_refused_with_their_name(series, tmp_path):
    _folder, volume = series
    empty = ExportItem("Nothing here", np.zeros(volume.shape, bool))
    with pytest.raises(ExportError, match="'Nothing here': the mask is empty"):
        write_rtstruct([item(volume), empty], volume, tmp_path / "rs.dcm")
    with pytest.raises(ExportError, match="does not match the series"):
        write_rtstruct([ExportItem("Small", np.ones((1, 2, 3), bool))], volume, tmp_path / "rs.dcm")
    with pytest.raises(ExportError, match="longer than 64"):
        write_rtstruct([item(volume, "x" * 65)], volume, tmp_path / "rs.dcm")
    with pytest.raises(ExportError, match="more than one item"):
        write_rtstruct([item(volume), item(volume)], volume, tmp_path / "rs.dcm")
    with pytest.raises(ExportError, match="is a folder"):
        write_rtstruct([item(volume)], volume, tmp_path)
    assert os.listdir(tmp_path) == []


def test_default_export_folder_is_under_the_user_data_folder(series):
    folder, volume = series
    target = default_export_dir(volume)
    assert data_dir() in target.parents and folder not in target.parents
    path = write_rtstruct([item(volume)], volume, target / "rs.dcm")
    assert path.is_file() and pydicom.dcmread(path).Modality == "RTSTRUCT"
