"""Compare mode: an LIDC study opens with its raters hidden; revealing draws them and shows GED / HM-IoU; RTSTRUCTs
beside a DICOM series are listed and load as experts."""
from __future__ import annotations

import numpy as np
import pytest
from dicom_fixtures import phantom, write_rtstruct, write_series
from lidc_tiny import square, write_item
from review_support import fake_result
from ui_support import no_leaked_windows  # noqa: F401

from ambiview.imaging.lidc_study import open_study
from ambiview.imaging.roi import Roi
from ambiview.recent import RecentFolders
from ambiview.session.references import compare_with_experts
from ambiview.ui.main_window import MainWindow

pytestmark = pytest.mark.usefixtures("no_leaked_windows")
LOAD_TIMEOUT_MS = 20000  # a generous bound for a busy machine; not a timing assertion
WHOLE_CROP = Roi(1, 2, top=-0.5, left=-0.5, extent=64.0, size=64)  # slice 1 of a 64 x 64 crop, at native spacing


@pytest.fixture
def window(qtbot, tmp_path):
    win = MainWindow(recent=RecentFolders(tmp_path / "recent.json"), show_dialogs=False)
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    qtbot.waitExposed(win)
    return win


def _lidc_study(root):
    """pid 9001 nodule 0, slices 0-2 with 3 raters (squares of sides 10, 12, 14); pid 9002 nodule 0, one slice."""
    split = root / "validate"
    for k in range(3):
        raters = [square(20, 20, 10 + 2 * i) for i in range(3)]
        write_item(split, f"pid_9001_nod_0_slice_{k}", raters, np.mean(raters, axis=0) >= 0.5, seed=k)
    write_item(split, "pid_9002_nod_0_slice_4", [square(5, 5, 6), square(5, 5, 8)], square(5, 5, 6))
    return split


def test_lidc_study_raters_hidden_then_revealed_with_metrics(window, qtbot, tmp_path):
    split = _lidc_study(tmp_path)
    assert window.open_path(split)
    session, review = window.session, window.review
    assert session.volume.shape == (3, 64, 64) and session.window == (0.0, 6.0)
    assert [e.name for e in session.experts] == ["Rater 1", "Rater 2", "Rater 3"] and not session.experts_revealed
    assert review.nodules_dock.isVisible() and review.nodule_picker.list.count() == 2
    assert window.recent.load() == [split]
    panel = review.compare_panel
    assert "hidden" in panel.heading.text() and panel.reveal_button.text() == "Reveal experts"
    # another nodule from the picker: its own raters, hidden; then back to the first
    picker = review.nodule_picker
    picker.list.itemClicked.emit(picker.list.item(1))
    assert session.volume.shape == (1, 64, 64) and len(session.experts) == 2
    assert session.volume.identity.series_uid == open_study(split).runs[1].series_uid
    picker.list.itemClicked.emit(picker.list.item(0))
    assert session.volume.shape == (3, 64, 64) and len(session.experts) == 3 and not session.experts_revealed

    axial = review.expert_outlines.layers[0]
    session.set_slice(1)
    assert axial.drawn() == []  # the model's spread first

    # the model "draws" the raters' own masks plus one wider square: known distances
    raters = [square(20, 20, 10 + 2 * i) for i in range(3)]
    probs = np.stack(raters + [square(18, 18, 20)]).astype(np.float32)
    session.set_result(fake_result(session.volume, probs, roi=WHOLE_CROP))
    assert panel.metrics.text() == ""  # nothing given away before the reveal
    panel.reveal_button.click()
    assert session.experts_revealed and panel.reveal_button.text() == "Hide experts"
    drawn = axial.drawn()
    assert [colour for colour, _ in drawn] == [tuple(e.color) for e in session.experts]
    assert all(points > 10 for _, points in drawn)
    expected = compare_with_experts(session.result, session.experts)
    assert expected.hm_iou < 1.0 and expected.best_iou == (1.0, 1.0, 1.0)
    assert f"GED {expected.ged:.3f}" in panel.metrics.text() and f"HM-IoU {expected.hm_iou:.3f}" in \
        panel.metrics.text()
    assert panel.experts_list.count() == 3 and "best IoU 1.00 (hypothesis 2)" in panel.experts_list.item(1).text()

    panel.reveal_button.click()  # hide again
    assert not session.experts_revealed and axial.drawn() == [] and panel.metrics.text() == ""


def test_rtstruct_beside_a_dicom_series_is_listed_and_loads_as_experts(window, qtbot, tmp_path):
    folder = tmp_path / "ct"
    written = write_series(folder, phantom((6, 30, 34)), spacing=(2.5, 0.6, 0.9))
    rs = write_rtstruct(folder, written, roi_name="Reference GTV")
    with qtbot.waitSignal(window.volume_opened, timeout=LOAD_TIMEOUT_MS):
        assert window.open_path(folder)
    review = window.review
    panel = review.compare_panel
    assert not review.nodules_dock.isVisible()
    assert [panel.rtstruct_list.item(i).text() for i in range(panel.rtstruct_list.count())] == [rs.name]
    panel.load_selected_button.click()
    session = window.session
    assert [(e.name, e.source) for e in session.experts] == [("Reference GTV", rs.name)]
    assert session.experts_revealed and "1 ROI(s) loaded" in panel.messages.text()
    session.set_slice(3)
    assert review.expert_outlines.layers[0].drawn()[0][1] > 0
    assert not panel.load_rtstruct(rs)  # the same ROI is not added twice
    bad = tmp_path / "broken.dcm"
    bad.write_bytes(b"not dicom at all")
    assert not panel.load_rtstruct(bad)
    assert "broken.dcm" in panel.messages.text() and len(session.experts) == 1


@pytest.mark.shared_data
def test_real_lidc_validate_opens_with_its_raters(window, lidc_dir):
    assert window.open_path(lidc_dir / "validate")
    session = window.session
    assert window.review.nodule_picker.list.count() == 14
    assert session.volume.shape[1:] == (64, 64) and 2 <= len(session.experts) <= 4
    info = dict(window.info_panel.rows())
    assert "nominal" in info["Pixel spacing"] and "not HU" in info["Values"]


def test_compare_screenshot_option_needs_a_screenshot(capsys):
    from ambiview.ui.app import _check_args, build_parser

    parser = build_parser()
    args = parser.parse_args(["--demo", "--compare"])
    with pytest.raises(SystemExit):
        _check_args(parser, args)
    assert "--compare needs --screenshot" in capsys.readouterr().err
    ok = parser.parse_args(["--demo", "--compare", "--screenshot", "x.png"])
    _check_args(parser, ok)
    assert ok.compare
