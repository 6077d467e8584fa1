"""The lidc-crops64 reader on the real data, and its messages for broken folders."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from ambiview.models.lidc import LidcDataError, load_split, list_names, nodule_stacks, parse_name, read_item


@pytest.fixture(scope="module")
def validate_items(lidc_dir):
    return load_split(lidc_dir / "validate")


def test_names_are_ordered_by_patient_nodule_and_numeric_slice(lidc_dir):
    names = list_names(lidc_dir / "validate")
    assert len(names) == 114
    assert len(list_names(lidc_dir / "train")) == 570
    keys = [parse_name(n) for n in names]
    assert keys == sorted(keys)
    # numeric, not lexical: slice_10 comes after slice_9 of the same nodule
    assert names.index("pid_0490_nod_0_slice_9") < names.index("pid_0490_nod_0_slice_10")


def test_first_train_item_matches_the_files(lidc_dir):
    item = read_item(lidc_dir / "train", "pid_0035_nod_0_slice_0")
    assert item.scan.shape == (64, 64) and item.scan.dtype == np.float32
    assert item.raters.shape == (2, 64, 64) and item.raters.dtype == bool
    assert item.gt.shape == (64, 64) and item.gt.dtype == bool
    assert item.raters.sum(axis=(1, 2)).tolist() == [31, 0]  # the second rater left this slice empty
    assert int(item.gt.sum()) == 31
    assert (item.patient, item.nodule, item.slice_index) == ("0035", 0, 0)
    assert item.nodule_id == "pid_0035_nod_0"
    # each crop is standardised on its own
    assert abs(float(item.scan.mean())) < 1e-4 and abs(float(item.scan.std()) - 1) < 1e-3


def test_validation_split_consensus_is_the_50_percent_vote(validate_items):
    items = validate_items
    assert len(items) == 114
    assert {it.raters.shape[0] for it in items} <= {2, 3, 4}
    for it in items:
        assert np.array_equal(it.gt, it.raters.mean(axis=0) >= 0.5), it.name
        assert 30 < it.gt.sum() < 800, it.name  # the source dropped slices outside this consensus area


def test_limit_takes_the_first_items(lidc_dir):
    items = load_split(lidc_dir / "validate", limit=3)
    assert [it.name for it in items] == list_names(lidc_dir / "validate")[:3]
    with pytest.raises(LidcDataError, match="limit"):
        load_split(lidc_dir / "validate", limit=0)


def test_nodule_stacks_are_runs_of_consecutive_slices(validate_items):
    items = validate_items
    stacks = nodule_stacks(items, min_slices=1)
    assert sum(len(s.slice_indices) for s in stacks) == len(items)  # every item in exactly one stack
    by_name = {it.name: it for it in items}
    for stack in stacks:
        d = len(stack.slice_indices)
        assert list(stack.slice_indices) == list(range(stack.slice_indices[0], stack.slice_indices[0] + d))
        assert stack.scans.shape == (d, 64, 64) and stack.gt.shape == (d, 64, 64)
        assert stack.raters.shape[:1] == (d,) and stack.raters.shape[2:] == (64, 64)
        first = by_name[stack.names[0]]
        assert np.array_equal(stack.scans[0], first.scan) and np.array_equal(stack.raters[0], first.raters)
    longer = nodule_stacks(items, min_slices=3)
    assert longer and all(len(s.slice_indices) >= 3 for s in longer)


def test_gap_in_slice_numbers_starts_a_new_stack(validate_items):
    items = validate_items[:12]
    nodule = items[0].nodule_id
    same = [it for it in items if it.nodule_id == nodule]
    assert len(same) >= 3
    without_middle = [same[0]] + same[2:]  # drop the second slice: a gap
    stacks = nodule_stacks(without_middle, min_slices=1)
    assert [s.slice_indices for s in stacks][:2] == [(same[0].slice_index,),
                                                     tuple(it.slice_index for it in same[2:])]


def test_broken_folders_are_named_in_the_message(lidc_dir, tmp_path):
    with pytest.raises(LidcDataError, match="no such folder"):
        list_names(tmp_path / "nothing")
    (tmp_path / "split" / "scans").mkdir(parents=True)
    with pytest.raises(LidcDataError, match="masks/annots"):
        list_names(tmp_path / "split")
    (tmp_path / "split" / "masks" / "annots").mkdir(parents=True)
    (tmp_path / "split" / "masks" / "GT").mkdir(parents=True)
    with pytest.raises(LidcDataError, match="no pid_"):
        list_names(tmp_path / "split")
    name = "pid_0035_nod_0_slice_0"
    shutil.copy(lidc_dir / "train" / "scans" / f"{name}.tif", tmp_path / "split" / "scans")
    with pytest.raises(LidcDataError, match=rf"annots/{name}\.tif: file missing"):
        load_split(tmp_path / "split")
    (tmp_path / "split" / "masks" / "annots" / f"{name}.tif").write_bytes(b"not a tiff")
    with pytest.raises(LidcDataError, match="cannot read TIFF"):
        load_split(tmp_path / "split")
    with pytest.raises(LidcDataError, match="not a lidc-crops64 name"):
        parse_name("scan_12")
