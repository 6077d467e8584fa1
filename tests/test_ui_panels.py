"""The review panels both ways: session -> view (modes, spread, kept list, outlines) and user -> session (click a
mode, a dot; keep, rename, remove)."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from review_support import fake_result
from ui_support import no_leaked_windows, phantom_volume  # noqa: F401

from ambiview.session import Session
from ambiview.session.analysis import hypothesis_stats
from ambiview.ui.kept_panel import COL_NAME, COL_REMOVE, KeptPanel
from ambiview.ui.main_window import MainWindow
from ambiview.ui.modes_panel import ModesPanel
from ambiview.ui.stats_panel import StatsPanel

pytestmark = pytest.mark.usefixtures("no_leaked_windows")


@pytest.fixture
def session():
    s = Session()
    s.set_volume(phantom_volume())
    s.set_result(fake_result(s.volume))
    return s


def _click_row(qtbot, widget, row: int) -> None:
    rect = widget.visualItemRect(widget.item(row))
    qtbot.mouseClick(widget.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def test_modes_panel_lists_interpretations_and_a_click_shows_the_representative(qtbot, session):
    panel = ModesPanel(session)
    qtbot.addWidget(panel)
    panel.show()
    assert panel.summary.text() == "2 interpretations: 75% / 25%"
    rows = panel.rows()
    assert len(rows) == 2 and rows[0].startswith("Interpretation 1: 75% (3 of 4)")
    assert rows[1].endswith("shown by hypothesis 4 · 6.3 mm², 9.0 mm")  # the bar: 10 pixels of 0.7 x 0.9 mm
    _click_row(qtbot, panel.list, 1)
    assert session.hypothesis == 3
    session.set_hypothesis(2)  # session -> view: the row of the mode holding hypothesis 3
    assert panel.list.currentRow() == 0
    panel.list.setCurrentRow(1)
    panel.keep_button.click()
    assert [k.name for k in session.kept] == ["Interpretation 2 (25%)"]
    session.set_result(None)
    assert panel.rows() == [] and not panel.keep_button.isEnabled()


def test_stats_panel_plots_sizes_and_follows_the_hypothesis(qtbot, session):
    panel = StatsPanel(session)
    qtbot.addWidget(panel)
    panel.resize(420, 520)
    panel.show()
    qtbot.waitExposed(panel)
    stats = hypothesis_stats(session.result)
    plotted = panel.plotted()
    np.testing.assert_allclose(plotted["sizes"], [36 * 0.63, 36 * 0.63, 36 * 0.63, 10 * 0.63])
    np.testing.assert_allclose(plotted["diameters"], stats.diameters)
    np.testing.assert_allclose(plotted["iou"], [1.0, 1.0, 30 / 42, 0.0])
    assert plotted["current"] == ([pytest.approx(36 * 0.63)], [pytest.approx(stats.diameters[0])])
    assert "diversity" in panel.summary.text() and "4 hypotheses" in panel.summary.text()
    session.set_hypothesis(3)
    assert panel.plotted()["current"][0] == [pytest.approx(6.3)]
    # a click on hypothesis 1's dot shows it
    qtbot.wait(50)  # the plot ranges itself on the next paint
    view_box = panel.spread_plot.getViewBox()
    scene = view_box.mapViewToScene(QPointF(float(stats.sizes[0]), float(stats.diameters[0])))
    widget_pos = panel.graphics.mapFromScene(scene)
    qtbot.mouseClick(panel.graphics.viewport(), Qt.MouseButton.LeftButton, pos=widget_pos)
    assert session.hypothesis in (0, 1, 2)  # hypotheses 1-3 are squares of the same size: their dots coincide


def test_kept_panel_keeps_renames_and_removes(qtbot, session):
    panel = KeptPanel(session)
    qtbot.addWidget(panel)
    panel.show()
    session.set_hypothesis(1)
    panel.keep_hypothesis_button.click()
    panel.level_box.setValue(75)
    panel.keep_consensus_button.click()
    panel.keep_staple_button.click()
    session.set_hypothesis(3)
    panel.keep_mode_button.click()
    assert [(k.name, k.kind) for k in session.kept] == [("Hypothesis 2", "hypothesis"), ("Consensus 75%", "consensus"),
                                                        ("STAPLE", "staple"), ("Interpretation 2 (25%)", "mode")]
    assert panel.names() == [k.name for k in session.kept]
    assert session.kept[1].mask.sum() == 30  # pixels covered by 3 of the 4 hypotheses
    panel.table.item(0, COL_NAME).setText("GTV model")  # what an edit commits
    assert session.kept[0].name == "GTV model"
    panel.table.item(1, COL_NAME).setText("GTV model")  # taken: refused, the old name comes back
    assert session.kept[1].name == "Consensus 75%" and panel.names()[1] == "Consensus 75%"
    assert "already taken" in panel.message.text()
    panel.table.cellWidget(2, COL_REMOVE).click()
    assert [k.name for k in session.kept] == ["GTV model", "Consensus 75%", "Interpretation 2 (25%)"]
    assert panel.export_button.isEnabled()
    session.set_result(None)
    assert not panel.keep_hypothesis_button.isEnabled()
    # an empty consensus is refused with the reason
    empty = np.zeros((4, 16, 16), np.float32)
    empty[0, 1, 1] = empty[1, 9, 9] = 1.0
    session.set_result(fake_result(session.volume, empty))
    panel.level_box.setValue(100)
    panel.keep_consensus_button.click()
    assert "empty" in panel.message.text() and len(session.kept) == 3


def test_kept_items_are_drawn_on_the_views_in_their_colour(qtbot, tmp_path):
    from ambiview.recent import RecentFolders

    window = MainWindow(recent=RecentFolders(tmp_path / "recent.json"), show_dialogs=False)
    qtbot.addWidget(window)
    window.show()
    session = window.session
    session.set_volume(phantom_volume())
    session.set_result(fake_result(session.volume))
    review = window.review
    review.kept_panel.keep_hypothesis_button.click()
    item = session.kept[0]
    axial = review.kept_outlines.layers[0]
    session.set_slice(3)
    ((colour, points),) = axial.drawn()
    assert colour == tuple(item.color) and points > 10
    session.set_slice(4)  # nothing kept on slice 4
    assert axial.drawn()[0][1] == 0
    session.set_cursor(3, 5, 8)  # the coronal view at row 5 cuts the kept square (rows 4..9 of the volume)
    assert review.kept_outlines.layers[1].drawn()[0][1] > 0
    session.remove_kept(item)
    assert axial.drawn() == []
    assert review.modes_panel.summary.text() == "2 interpretations: 75% / 25%"
    assert review.modes_dock.isVisible()
