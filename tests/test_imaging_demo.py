"""The built-in demo study: a valid, deterministic DICOM CT series with realistic HU, generated once and cached
atomically.  The series is written once per module (into the private cache of the test run) and read back with
pydicom directly."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time

import numpy as np
import pydicom
import pytest
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian

from ambiview.imaging import demo
from ambiview.imaging.demo import (
    DEMO_NODULES,
    DEMO_VERSION,
    DemoStudyError,
    demo_series_dir,
    make_demo_volume,
    read_demo_nodules,
)
from ambiview.imaging.geometry import Geometry
from ambiview.imaging.phantom_anatomy import SHAPE, SPACING, landmarks, to_voxel
from ambiview.imaging.phantom_nodules import juxta_vessel_path
from ambiview.imaging.phantom_tubes import Colonization, Segment, TubeCanvas, colonize
from ambiview.imaging.volume import Volume


# --- the series, written once ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def generated():
    calls: list[tuple[int, int]] = []
    folder = demo_series_dir(progress=lambda done, total: calls.append((done, total)))
    return folder, calls


@pytest.fixture(scope="module")
def series(generated):
    """(datasets sorted by position along the normal, HU volume (z, y, x), Geometry from the headers)."""
    folder, _ = generated
    datasets = [pydicom.dcmread(p) for p in sorted(folder.glob("*.dcm"))]
    iop = np.array(datasets[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    datasets.sort(key=lambda ds: float(np.dot(np.array(ds.ImagePositionPatient, dtype=float), normal)))
    hu = np.stack([ds.pixel_array.astype(np.int32) * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
                   for ds in datasets]).astype(np.int16)
    geometry = Geometry(np.array([ds.ImagePositionPatient for ds in datasets], dtype=float), iop[:3], iop[3:],
                        tuple(float(v) for v in datasets[0].PixelSpacing), hu.shape)
    return datasets, hu, geometry


def _patch(hu, zyx, half):
    z, y, x = (int(round(c)) for c in zyx)
    return hu[z, y - half:y + half + 1, x - half:x + half + 1].astype(np.float64)


def _ring(hu, zyx, distance_mm, n=8):
    """HU at n points on a circle of `distance_mm` around zyx in its slice."""
    z, y, x = zyx
    out = []
    for a in np.linspace(0, 2 * np.pi, n, endpoint=False):
        yy, xx = y + distance_mm * np.sin(a) / SPACING[1], x + distance_mm * np.cos(a) / SPACING[2]
        out.append(float(hu[int(round(z)), int(round(yy)), int(round(xx))]))
    return np.array(out)


# --- DICOM validity -------------------------------------------------------------------------------------------------
def test_every_slice_is_a_ct_image_with_proper_meta_and_synthetic_patient(generated, series):
    folder, _ = generated
    datasets, _, _ = series
    assert len(datasets) == SHAPE[0] == len(list(folder.iterdir()))
    for path in folder.iterdir():
        with open(path, "rb") as f:
            assert f.read(132)[128:] == b"DICM", path
    sop_uids = set()
    for ds in datasets:
        meta = ds.file_meta
        assert meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert meta.MediaStorageSOPClassUID == CTImageStorage == ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
        assert meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert str(ds.PatientName) == "AmbiView^Demo" and ds.PatientID == "AMBIVIEW-DEMO"
        assert ds.Modality == "CT" and ds.ImageType[2] == "AXIAL" and ds.KVP
        assert (ds.Rows, ds.Columns) == SHAPE[1:] and ds.BitsAllocated == 16 and ds.SamplesPerPixel == 1
        assert ds.PhotometricInterpretation == "MONOCHROME2"
        assert float(ds.RescaleIntercept) == -1024 and float(ds.RescaleSlope) == 1
        for uid in (ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID):
            assert UID(uid).is_valid
        sop_uids.add(ds.SOPInstanceUID)
    assert len(sop_uids) == len(datasets)
    for attr in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
        assert len({getattr(ds, attr) for ds in datasets}) == 1
    # numbered from the top like a head-first scan: the loader must sort by position, not by instance number
    assert [int(ds.InstanceNumber) for ds in datasets] == list(range(SHAPE[0], 0, -1))


def test_geometry_steps_equal_the_spacing_along_the_normal(series):
    datasets, hu, geometry = series
    assert hu.shape == SHAPE
    assert all([float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0] for ds in datasets)
    assert geometry.orientation_label == "AXIAL" and geometry.tilt_degrees == pytest.approx(0.0, abs=1e-9)
    gaps = geometry.slice_gaps
    assert np.allclose(gaps, float(datasets[0].SliceThickness), atol=1e-4)
    assert geometry.spacing == pytest.approx(SPACING)
    assert all(float(ds.SliceLocation) == pytest.approx(float(ds.ImagePositionPatient[2])) for ds in datasets)


def test_uids_derive_from_the_demo_version(monkeypatch, series):
    datasets, _, _ = series
    study = demo._uid("study")
    assert demo._uid("study") == study == demo.STUDY_UID == datasets[0].StudyInstanceUID
    assert [ds.SOPInstanceUID for ds in datasets] == [demo.instance_uid(k) for k in range(len(datasets))]
    assert UID(study).is_valid and len(study) <= 64
    monkeypatch.setattr(demo, "DEMO_VERSION", DEMO_VERSION + "-other")
    assert demo._uid("study") != study


@pytest.mark.skipif(shutil.which("dciodvfy") is None and os.environ.get("CI") != "true",
                    reason="dciodvfy (dicom3tools) is not installed")
def test_dciodvfy_reports_no_errors(series):
    datasets, _, _ = series
    for ds in (datasets[0], datasets[len(datasets) // 2], datasets[-1]):
        run = subprocess.run(["dciodvfy", str(ds.filename)], capture_output=True, text=True, timeout=60,
                             check=False)
        report = run.stdout + run.stderr
        assert "CTImage" in report, report
        assert not [line for line in report.splitlines() if line.startswith("Error")], report


# --- the voxels -----------------------------------------------------------------------------------------------------
def test_same_seed_gives_the_same_voxels_and_the_geometry_fits_volume(series):
    _, hu, geometry = series
    voxels, params = make_demo_volume(0)
    assert voxels.dtype == np.int16 and voxels.shape == SHAPE
    assert np.array_equal(voxels, hu)  # deterministic, and the DICOM encoding is lossless
    volume = Volume.from_array(voxels, **params)
    assert np.allclose(volume.geometry.slice_origins, geometry.slice_origins)
    assert volume.geometry.pixel_spacing == pytest.approx(geometry.pixel_spacing)


def test_tissues_have_realistic_hounsfield_units(series):
    _, hu, _ = series
    marks = landmarks()
    expected = {  # landmark: (patch half size, low, high) for the patch mean
        "air_outside": (4, -1015, -985),
        "subcutaneous_fat": (2, -140, -60),
        "lateral_muscle": (2, 20, 75),
        "heart": (4, 20, 70),
        "descending_aorta": (3, 20, 70),
        "liver": (5, 35, 85),
        "vertebral_body": (3, 150, 500),
    }
    for name, (half, low, high) in expected.items():
        mean = _patch(hu, marks[name], half).mean()
        assert low <= mean <= high, (name, mean)
    for name in ("right_lung", "left_lung"):  # parenchyma: the median ignores a vessel crossing the patch
        median = np.median(_patch(hu, marks[name], 12))
        assert -900 <= median <= -790, (name, median)
    middle = hu[SHAPE[0] // 2]
    assert middle.max() > 700  # ribs and vertebra
    assert hu.min() >= -1024


def test_noise_is_ct_like_and_spatially_correlated(series):
    _, hu, _ = series
    patch = _patch(hu, landmarks()["liver"], 10)
    residual = patch - patch.mean()
    std = residual.std()
    assert 8.0 <= std <= 20.0
    neighbour = (residual[:, :-1] * residual[:, 1:]).mean() / residual.var()
    assert neighbour > 0.2  # smoothed, not white


def test_nodules_have_their_kind_of_attenuation_and_sit_in_the_lung(series):
    _, hu, _ = series
    kinds = {n.kind for n in DEMO_NODULES}
    assert {"solid", "part-solid", "juxta-vascular"} <= kinds
    for n in DEMO_NODULES:
        assert 0.3 * SHAPE[0] <= n.center_zyx[0] <= 0.7 * SHAPE[0], n.name  # in the middle slices
        assert 4.0 <= n.radius_mm <= 12.5, n.name  # 8-25 mm across
        centre = _patch(hu, n.center_zyx, 1).mean()
        outside = _ring(hu, n.center_zyx, n.radius_mm + 7.0)
        if n.kind == "ground-glass":
            assert -760 <= centre <= -450, (n.name, centre)
        else:
            assert -30 <= centre <= 90, (n.name, centre)  # solid tissue, or the solid core
        if n.kind == "subpleural":
            assert (outside < -700).sum() >= 3 and (outside > -200).sum() >= 1, outside  # lung and chest wall
        else:
            assert np.median(outside) < -700, (n.name, outside)
    halo = next(n for n in DEMO_NODULES if n.kind == "part-solid")
    assert -720 <= np.median(_ring(hu, halo.center_zyx, 0.6 * halo.radius_mm)) <= -400  # ground-glass halo


def test_the_juxta_vascular_nodule_touches_its_vessel(series):
    _, hu, _ = series
    nodule = next(n for n in DEMO_NODULES if n.kind == "juxta-vascular")
    a, b = juxta_vessel_path()
    beyond = b + (b - a) / np.linalg.norm(b - a) * 4.0
    assert _patch(hu, to_voxel(beyond), 1).mean() > -350  # the vessel goes on past the nodule
    centre = np.asarray(nodule.center_zyx)
    closest = np.asarray(to_voxel((a + b) / 2))
    for t in np.linspace(0.0, 1.0, 12):  # no lung between the nodule and the vessel
        z, y, x = (int(round(c)) for c in centre + t * (closest - centre))
        assert hu[z, y, x] > -400, (t, hu[z, y, x])


# --- the nodule list ------------------------------------------------------------------------------------------------
def test_nodules_json_matches_the_series(generated, series):
    datasets, _, geometry = series
    folder, _ = generated
    assert read_demo_nodules(folder.parent / demo.NODULES_FILE) == DEMO_NODULES
    document = json.loads((folder.parent / demo.NODULES_FILE).read_text(encoding="utf-8"))
    assert document["series_instance_uid"] == datasets[0].SeriesInstanceUID
    for entry, nodule in zip(document["nodules"], DEMO_NODULES, strict=True):
        assert np.allclose(geometry.voxel_to_patient(nodule.center_zyx), entry["center_lps_mm"], atol=1e-3)
        assert entry["slice_sop_instance_uid"] == datasets[int(round(nodule.center_zyx[0]))].SOPInstanceUID


def test_a_malformed_nodule_list_is_reported_with_its_path(tmp_path):
    bad = tmp_path / "nodules.json"
    bad.write_text('{"nodules": [{"name": "x"}]}', encoding="utf-8")
    with pytest.raises(DemoStudyError, match="nodules.json"):
        read_demo_nodules(bad)
    with pytest.raises(DemoStudyError, match="cannot read"):
        read_demo_nodules(tmp_path / "missing.json")


# --- the cache ------------------------------------------------------------------------------------------------------
def test_progress_reports_every_step_up_to_the_total(generated):
    _, calls = generated
    assert calls, "no progress reported"
    totals = {total for _, total in calls}
    assert len(totals) == 1
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[-1] == calls[-1][1]


def test_second_call_reuses_the_cached_series(generated):
    folder, _ = generated
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    calls = []
    assert demo_series_dir(progress=lambda d, t: calls.append(d)) == folder
    assert calls == []
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before
    assert folder.parent.parent.name == "demo" and folder.parent.name == DEMO_VERSION


def _fake_study(folder, slices=2):
    (folder / demo.SERIES_FOLDER).mkdir(parents=True)
    for k in range(slices):
        (folder / demo.SERIES_FOLDER / f"CT{k:04d}.dcm").write_bytes(b"x")
    (folder / demo.NODULES_FILE).write_text(json.dumps({"version": DEMO_VERSION, "slices": slices}))


def test_completeness_and_publishing_keep_the_first_finished_copy(tmp_path):
    final, partial = tmp_path / DEMO_VERSION, tmp_path / f".{DEMO_VERSION}-abc.partial"
    _fake_study(partial)
    assert demo.is_complete(partial) and not demo.is_complete(final)
    demo.publish(partial, final)  # nobody else: the rename publishes it
    assert demo.is_complete(final) and not partial.exists()
    _fake_study(partial, slices=3)
    demo.publish(partial, final)  # another process finished first: its copy stays, ours goes
    assert demo.is_complete(final) and not partial.exists()
    assert len(list((final / demo.SERIES_FOLDER).iterdir())) == 2
    (final / demo.SERIES_FOLDER / "CT0000.dcm").unlink()
    assert not demo.is_complete(final)  # a file deleted by hand: no longer complete


def test_stale_partial_folders_are_removed_recent_ones_kept(tmp_path):
    old, recent = tmp_path / ".1-old.partial", tmp_path / ".1-new.partial"
    old.mkdir()
    recent.mkdir()
    an_hour_ago = time.time() - 2 * 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    demo.remove_stale_partials(tmp_path)
    assert not old.exists() and recent.exists()


def test_damaged_cache_is_regenerated_and_a_failed_write_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("AMBIVIEW_CACHE_DIR", str(tmp_path))
    writes = []

    def fast_writer(folder, progress=None, seed=0):
        writes.append(folder)
        _fake_study(folder)

    monkeypatch.setattr(demo, "write_demo_study", fast_writer)
    final = tmp_path / "demo" / DEMO_VERSION
    _fake_study(final)
    (final / demo.SERIES_FOLDER / "CT0001.dcm").unlink()  # damaged
    assert demo_series_dir() == final / demo.SERIES_FOLDER
    assert len(writes) == 1 and demo.is_complete(final)
    assert [p.name for p in final.parent.iterdir()] == [DEMO_VERSION]  # no partial or discarded folder left

    shutil.rmtree(final)

    def failing_writer(folder, progress=None, seed=0):
        (folder / "half-written").write_bytes(b"x")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(demo, "write_demo_study", failing_writer)
    with pytest.raises(DemoStudyError, match="No space left on device"):
        demo_series_dir()
    assert list(final.parent.iterdir()) == []


def test_concurrent_first_use_publishes_one_study(tmp_path, monkeypatch):
    monkeypatch.setenv("AMBIVIEW_CACHE_DIR", str(tmp_path))
    both_generating = threading.Barrier(2, timeout=20)

    def writer(folder, progress=None, seed=0):
        both_generating.wait()  # neither has published when the other checks the cache
        _fake_study(folder)

    monkeypatch.setattr(demo, "write_demo_study", writer)
    results = []
    threads = [threading.Thread(target=lambda: results.append(demo_series_dir())) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    final = tmp_path / "demo" / DEMO_VERSION
    assert results == [final / demo.SERIES_FOLDER] * 2
    assert demo.is_complete(final)
    assert [p.name for p in final.parent.iterdir()] == [DEMO_VERSION]  # the loser's copy is gone


def test_unwritable_cache_gives_a_clear_error(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setattr(demo, "demo_folder", lambda: blocker / "demo" / DEMO_VERSION)
    with pytest.raises(DemoStudyError, match="not-a-folder"):
        demo_series_dir()


# --- the building blocks --------------------------------------------------------------------------------------------
def test_tube_canvas_covers_the_volume_of_a_capsule():
    canvas = TubeCanvas((40, 80, 80), (1.0, 0.5, 0.5), (0.0, 0.0, 0.0))
    r, length = 3.0, 20.0
    canvas.add(Segment((10.0, 20.0, 10.0), (10.0 + length, 20.0, 10.0), r, r))
    covered = canvas.fraction.sum() * 1.0 * 0.5 * 0.5
    expected = np.pi * r * r * length + 4.0 / 3.0 * np.pi * r ** 3
    assert covered == pytest.approx(expected, rel=0.06)
    assert canvas.fraction.max() == pytest.approx(1.0)


def test_colonised_trees_taper_from_root_to_leaves():
    rng = np.random.default_rng(1)
    points = rng.uniform(-40, 40, size=(3000, 3))
    points = points[np.linalg.norm(points, axis=1) < 40]

    def inside_ball(p):
        return np.linalg.norm(p, axis=1) < 42

    params = Colonization(step=3.0, kill=5.0, leaf_radius=0.5, exponent=2.0)
    tree = colonize([((0.0, 0.0, -45.0), (0.0, 0.0, 1.0), 6.0)], points, inside_ball, params, rng)
    assert len(tree.positions) > 100
    child = np.flatnonzero(tree.parents >= 0)
    assert np.all(tree.radii[tree.parents[child]] >= tree.radii[child] - 1e-12)  # never thicker than the parent
    assert tree.radii[0] > 4 * params.leaf_radius
    trunk = 3  # root + 6 mm / 3 mm steps, laid straight from outside the ball
    assert not inside_ball(tree.positions[:1]).any()
    assert inside_ball(tree.positions[trunk:]).all()  # every grown node is in the allowed region
    leaves = np.setdiff1d(np.arange(len(tree.parents)), tree.parents)
    assert np.allclose(tree.radii[leaves], params.leaf_radius)
