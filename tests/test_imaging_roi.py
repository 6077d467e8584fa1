"""The ROI crop/paste pipeline and the result file: exact at native spacing, geometry through the one mapping."""
import numpy as np
import pytest

from ambiview.imaging.geometry import Geometry
from ambiview.imaging.roi import MODEL_CROP, Roi, standardise
from ambiview.session.result import ResultFileError, SegmentationResult


def _volume(shape=(5, 200, 180)):
    rng = np.random.default_rng(0)
    return rng.normal(size=shape).astype(np.float32)


def test_native_box_gives_an_exact_crop_and_paste_round_trips():
    vox = _volume()
    roi = Roi.for_box(2, 90, 80, 101, 95)   # a 12x16 box: fits, native spacing
    assert roi.scale == 1.0 and roi.extent == MODEL_CROP
    crop = roi.crop(vox)[0]
    top, left = int(roi.top + 0.5), int(roi.left + 0.5)
    np.testing.assert_array_equal(crop, vox[2, top:top + 64, left:left + 64])
    pasted = roi.paste(crop, vox.shape)
    np.testing.assert_allclose(pasted[2, top:top + 64, left:left + 64], crop, atol=1e-6)
    assert not pasted[1].any() and not pasted[2, :top].any() and not pasted[2, top + 64:].any()
    assert not pasted[2, :, :left].any() and not pasted[2, :, left + 64:].any()


def test_large_lesion_grows_the_crop_and_the_box_maps_inside():
    roi = Roi.for_box(0, 20, 30, 99, 109)    # 80 px lesion -> extent 160, scale 2.5
    assert roi.extent == 160 and roi.scale == pytest.approx(2.5)
    y0, x0, y1, x1 = roi.box_to_model(20, 30, 99, 109)
    assert 15 < y0 < 17 and 47 < y1 < 49 and 15 < x0 < 17 and 47 < x1 < 49   # box spans half the crop


def test_roi_geometry_matches_the_volume_mapping_with_anisotropic_pixels():
    geo = Geometry.regular((5, 200, 180), spacing=(3.0, 0.6, 0.9), origin=(-50, -80, 10))
    roi = Roi.for_box(3, 10, 10, 150, 150)
    rg = roi.geometry(geo)
    assert rg.pixel_spacing == pytest.approx((0.6 * roi.scale, 0.9 * roi.scale))
    vy, vx = roi.model_to_volume(7, 11)
    np.testing.assert_allclose(rg.voxel_to_patient((0, 7, 11)), geo.voxel_to_patient((3, vy, vx)))


def test_standardise_matches_the_training_crops():
    crop = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
    s = standardise(crop)
    assert abs(s.mean()) < 1e-5 and abs(s.std() - 1) < 1e-5
    assert np.all(standardise(np.ones((64, 64))) == 0)


def test_result_round_trip_and_clear_errors(tmp_path):
    geo = Geometry.regular((4, 100, 100), spacing=(2.0, 0.7, 0.7))
    roi = Roi.for_box(1, 40, 40, 50, 52)
    probs = np.random.default_rng(1).random((3, 64, 64)).astype(np.float32)
    result = SegmentationResult(probs, roi, roi.geometry(geo), (4, 100, 100), series_uid="1.2.3", model="m",
                                digest="abc", seed=7, prompts=[{"kind": "box"}])
    path = result.save(tmp_path / "r.npz")
    back = SegmentationResult.load(path)
    np.testing.assert_allclose(back.probs, probs, atol=1e-3)
    assert back.roi == roi and back.series_uid == "1.2.3" and back.seed == 7
    np.testing.assert_allclose(back.roi_geometry.slice_origins, result.roi_geometry.slice_origins)
    assert back.mask_to_volume(probs[0] > 0.5).shape == (4, 100, 100)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ResultFileError, match="bad.npz"):
        SegmentationResult.load(tmp_path / "bad.npz")
    with pytest.raises(ResultFileError, match="no such file"):
        SegmentationResult.load(tmp_path / "missing.npz")
