"""Splits are by cell: reproducible ratios, a JSON file with any named test sets, or source folders."""

import json

import pandas as pd
import pytest

from assets.cycling import split

CELLS = [f"c{i:02d}" for i in range(40)]


def test_ratios_cut_cells_reproducibly():
    first = split.split_by_ratio(CELLS, (0.6, 0.2, 0.2), seed=3)
    assert first["split"].value_counts().to_dict() == {"train": 24, "validation": 8, "test": 8}
    assert first.equals(split.split_by_ratio(CELLS, (3, 1, 1), seed=3))  # ratios are normalised
    assert not first.equals(split.split_by_ratio(CELLS, (0.6, 0.2, 0.2), seed=4))
    assert sorted(first["cell_key"]) == CELLS


def test_tiny_sets_still_get_every_split():
    assert split.split_by_ratio(CELLS[:5], (0.6, 0.2, 0.2), seed=0)["split"].value_counts().to_dict() == {
        "train": 3, "validation": 1, "test": 1}


def test_json_split_with_the_papers_test_sets_and_unlisted_cells(tmp_path):
    path = tmp_path / "split.json"
    path.write_text(json.dumps({"train": ["c00", "c01"], "test1": ["c02", "gone"], "test2": ["c03"]}))
    frame, rejections = split.split_from_json(CELLS[:5], path)
    assert frame.values.tolist() == [["c00", "train"], ["c01", "train"], ["c02", "test1"], ["c03", "test2"]]
    assert [(r.source, r.row, r.reason) for r in rejections] == [("split.json", "c04", "cell not listed in the split file")]
    assert split.held_out_sets(frame) == ["test1", "test2"]


def test_json_split_needs_a_training_set_and_disjoint_sets(tmp_path):
    path = tmp_path / "split.json"
    path.write_text(json.dumps({"training": ["c00"], "test": ["c01"]}))
    with pytest.raises(ValueError, match="no 'train' set"):
        split.split_from_json(CELLS, path)
    path.write_text(json.dumps({"train": ["c00"], "test": ["c00"]}))
    with pytest.raises(ValueError, match="listed in both"):
        split.split_from_json(CELLS, path)


def test_folders_become_sets_and_auto_mode_prefers_file_then_folders():
    datasets = pd.Series({"train/cell1": "train", "test1/cell1": "test1", "test2/cell1": "test2"})
    frame = split.split_from_datasets(datasets)
    assert dict(frame.values.tolist()) == dict(datasets.items())
    assert split.held_out_sets(frame) == ["test1", "test2"]
    assert split.choose_mode("auto", "", datasets) == "folders"
    assert split.choose_mode("auto", "s.json", datasets) == "file"
    assert split.choose_mode("auto", "", pd.Series({"a": "", "b": ""})) == "ratios"
    assert split.choose_mode("auto", "", pd.Series({"a": "test1"})) == "ratios"  # no train folder
