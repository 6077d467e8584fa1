"""Kept items and autosave: what was kept survives a crash, restores onto the same series, never the DICOM folder."""
import numpy as np
import pytest

from ambiview.imaging.roi import Roi
from ambiview.imaging.volume import Volume
from ambiview.paths import data_dir
from ambiview.session import Session
from ambiview.session import autosave
from ambiview.session.result import SegmentationResult


def _session(tmp_path, uid="1.2.826.0.1.99"):
    vox = np.zeros((4, 80, 80), np.int16)
    s = Session()
    s.set_volume(Volume.from_array(vox, spacing=(2.0, 0.8, 0.8), series_uid=uid, source=tmp_path / "dicom"))
    roi = Roi.for_box(2, 30, 30, 40, 40)
    probs = np.zeros((4, 64, 64), np.float32)
    for k in range(4):
        probs[k, 20:30 + k, 20:30] = 1.0
    s.add_box(2, 30, 30, 40, 40)
    s.set_result(SegmentationResult(probs, roi, roi.geometry(s.volume.geometry), (4, 80, 80), series_uid=uid,
                                    model="fake", digest="abc"))
    return s


def test_keep_names_colours_and_refuses_empty(tmp_path):
    s = _session(tmp_path)
    events = []
    s.subscribe("kept_changed", lambda kept: events.append(len(kept)))
    a = s.keep("hypothesis", s.result.probs[1] > 0.5, description="hypothesis 2 of 4")
    b = s.keep("consensus", s.result.probs.mean(0) >= 0.5)
    assert (a.name, b.name) == ("hypothesis 1", "consensus 1") and a.color != b.color
    assert a.volume_mask().sum() == 11 * 10 and a.volume_mask()[2].sum() == 110
    with pytest.raises(ValueError, match="empty"):
        s.keep("hypothesis", np.zeros((64, 64), bool))
    s.rename_kept(a, "GTV model")
    s.remove_kept(b)
    assert [k.name for k in s.kept] == ["GTV model"] and events == [1, 2, 2, 1]


def test_autosave_round_trip_and_crash_marker(tmp_path):
    s = _session(tmp_path)
    s.keep("hypothesis", s.result.probs[3] > 0.5, name="keep me")
    s.set_hypothesis(2)
    s.set_window(40, 400)
    autosave.mark_running(s.volume.identity.series_uid)
    folder = autosave.save(s)
    assert data_dir() in folder.parents and not (tmp_path / "dicom").exists()
    crashed = autosave.unfinished()
    assert [c.series_uid for c in crashed] == [s.volume.identity.series_uid]

    fresh = Session()
    fresh.set_volume(s.volume)
    fresh.restore(crashed[0])
    assert [k.name for k in fresh.kept] == ["keep me"]
    np.testing.assert_array_equal(fresh.kept[0].mask, s.kept[0].mask)
    assert fresh.hypothesis == 2 and fresh.window == (40.0, 400.0) and len(fresh.prompts) == 1
    assert fresh.result.n == 4
    autosave.mark_closed(s.volume.identity.series_uid)
    assert autosave.unfinished() == []


def test_restore_refuses_another_series_and_damaged_saves(tmp_path):
    s = _session(tmp_path)
    s.keep("hypothesis", s.result.probs[0] > 0.5)
    folder = autosave.save(s)
    other = _session(tmp_path, uid="1.2.3.4.5")
    with pytest.raises(ValueError, match="another series"):
        other.restore(autosave.load(folder))
    (folder / "kept.npz").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="session.json"):
        autosave.load(folder)
