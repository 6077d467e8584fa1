"""NIfTI export: the world coordinate of every voxel in the file equals ours (LPS in SimpleITK, RAS in the header)."""
from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import SimpleITK as sitk

from ambiview.export.items import ExportError
from ambiview.export.nifti import write_nifti
from ambiview.imaging.geometry import Geometry

SQ = np.sqrt(0.5)
GEOMETRIES = {
    "axial, non-square pixels": Geometry.regular((5, 7, 9), (2.5, 0.7, 0.9), (10.0, -20.0, 30.0)),
    "oblique": Geometry.regular((4, 6, 8), (1.5, 0.8, 0.6), (-5.0, 2.0, 7.0), (SQ, SQ, 0.0),
                                (-0.6 * SQ, 0.6 * SQ, -0.8)),
    "coronal": Geometry.regular((3, 5, 6), (2.0, 1.0, 0.5), (0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.0, 0.0, -1.0)),
}


def asymmetric(shape) -> np.ndarray:
    rng = np.random.default_rng(5)
    return rng.random(shape) < 0.3


def sform_ras(path) -> np.ndarray:
    """srow_x/y/z of the NIfTI-1 header (bytes 280-327): the voxel (i, j, k) -> RAS mm affine, read by hand."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as fh:
        header = fh.read(348)
    assert struct.unpack("<i", header[:4])[0] == 348
    sform_code = struct.unpack("<h", header[254:256])[0]
    assert sform_code > 0
    return np.array(struct.unpack("<12f", header[280:328])).reshape(3, 4)


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_voxel_world_coordinates_match_ours(name, tmp_path):
    geometry = GEOMETRIES[name]
    mask = asymmetric(geometry.shape)
    path, notes = write_nifti(mask, geometry, tmp_path / "mask.nii.gz")
    assert notes == []
    image = sitk.ReadImage(str(path))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), mask.astype(np.uint8))
    nz, ny, nx = geometry.shape
    voxels = np.array([[0, 0, 0], [nz - 1, 2, 5], [1, ny - 1, nx - 1], [nz - 1, ny - 1, 0]])
    ours = geometry.voxel_to_patient(voxels)
    theirs = np.array([image.TransformIndexToPhysicalPoint([int(x), int(y), int(z)]) for z, y, x in voxels])
    np.testing.assert_allclose(theirs, ours, atol=1e-4)
    srow = sform_ras(path)
    ras = np.array([srow[:, :3] @ [x, y, z] + srow[:, 3] for z, y, x in voxels])
    np.testing.assert_allclose(ras * [-1, -1, 1], ours, atol=1e-3)  # RAS in the file = LPS with x, y negated


def test_probability_map_stays_float(tmp_path):
    geometry = GEOMETRIES["axial, non-square pixels"]
    prob = np.linspace(0, 1, np.prod(geometry.shape), dtype=np.float32).reshape(geometry.shape)
    path, _ = write_nifti(prob, geometry, tmp_path / "prob.nii")
    back = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, prob)


def test_a_missing_slice_is_written_on_an_even_grid(tmp_path):
    positions = [0.0, 2.0, 4.0, 8.0, 10.0]  # slice at 6 mm missing
    geometry = Geometry(np.array([[0.0, 0.0, p] for p in positions]), (1, 0, 0), (0, 1, 0), (0.7, 0.9), (5, 4, 3))
    mask = np.zeros(geometry.shape, bool)
    mask[:, 1, 2] = True
    mask[3, 0, 0] = True  # the slice at 8 mm
    path, notes = write_nifti(mask, geometry, tmp_path / "gap.nii.gz")
    assert len(notes) == 1 and "unevenly spaced" in notes[0]
    image = sitk.ReadImage(str(path))
    assert image.GetSize() == (3, 4, 6) and image.GetSpacing()[2] == pytest.approx(2.0)
    back = sitk.GetArrayFromImage(image)
    for z, p in enumerate(positions):  # every source slice sits at its true position in the file
        k = image.TransformPhysicalPointToIndex((0.0, 0.0, p))[2]
        np.testing.assert_array_equal(back[k], mask[z].astype(np.uint8))


def test_refusals(tmp_path):
    tilted = Geometry(np.array([[0.0, 0.3 * z, z] for z in range(4)]), (1, 0, 0), (0, 1, 0), (1.0, 1.0), (4, 3, 3))
    with pytest.raises(ExportError, match="tilted"):
        write_nifti(np.ones((4, 3, 3), bool), tilted, tmp_path / "t.nii.gz")
    regular = GEOMETRIES["coronal"]
    with pytest.raises(ExportError, match="must end in .nii"):
        write_nifti(np.ones(regular.shape, bool), regular, tmp_path / "mask.nrrd")
    with pytest.raises(ExportError, match="does not match"):
        write_nifti(np.ones((1, 2, 3), bool), regular, tmp_path / "mask.nii")
    assert list(tmp_path.iterdir()) == []
