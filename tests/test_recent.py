"""The recent-folders list: order, limit, persistence, bad files, atomic writes."""
from __future__ import annotations

import json
import os

from ambiview.paths import data_dir
from ambiview.recent import FILE_NAME, RecentFolders


def test_most_recent_first_without_duplicates(tmp_path):
    recent = RecentFolders(tmp_path / "recent.json")
    a, b = tmp_path / "a", tmp_path / "b"
    recent.add(a)
    recent.add(b)
    assert recent.add(a) == [a, b]
    assert recent.load() == [a, b]


def test_persisted_across_instances_and_relative_paths_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "store" / "recent.json"
    RecentFolders(store).add("series1")
    assert RecentFolders(store).load() == [tmp_path / "series1"]
    data = json.loads(store.read_text())
    assert data == {"version": 1, "recent": [str(tmp_path / "series1")]}


def test_limit_drops_the_oldest(tmp_path):
    recent = RecentFolders(tmp_path / "recent.json", limit=3)
    for name in "abcde":
        recent.add(tmp_path / name)
    assert recent.load() == [tmp_path / n for n in "edc"]


def test_remove_and_clear(tmp_path):
    recent = RecentFolders(tmp_path / "recent.json")
    for name in "abc":
        recent.add(tmp_path / name)
    assert recent.remove(tmp_path / "b") == [tmp_path / "c", tmp_path / "a"]
    assert recent.clear() == [] and recent.load() == []


def test_missing_or_corrupt_file_reads_as_empty_and_is_replaced(tmp_path):
    path = tmp_path / "recent.json"
    recent = RecentFolders(path)
    assert recent.load() == []
    path.write_text("{not json")
    assert recent.load() == []
    path.write_text(json.dumps({"recent": ["/x", 3, None, "", "/x", "/y"]}))
    assert recent.load() == [type(tmp_path)("/x"), type(tmp_path)("/y")]  # junk entries and repeats skipped
    path.write_text(json.dumps(["/x"]))
    assert recent.load() == []
    recent.add(tmp_path / "ok")
    assert recent.load() == [tmp_path / "ok"]


def test_writes_leave_no_temporary_files(tmp_path):
    recent = RecentFolders(tmp_path / "recent.json")
    for name in "abc":
        recent.add(tmp_path / name)
    assert sorted(os.listdir(tmp_path)) == ["recent.json"]


def test_default_location_is_the_data_dir():
    recent = RecentFolders()
    assert recent.path == data_dir() / FILE_NAME
