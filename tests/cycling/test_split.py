"""Splits are by cell, reproducible from the seed, or read from a JSON file."""

import json

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


def test_json_split_and_unlisted_cells(tmp_path):
    path = tmp_path / "split.json"
    path.write_text(json.dumps({"train": ["c00", "c01"], "test": ["c02", "gone"]}))
    frame, rejections = split.split_from_json(CELLS[:4], path)
    assert frame.values.tolist() == [["c00", "train"], ["c01", "train"], ["c02", "test"]]
    assert [(r.source, r.row, r.reason) for r in rejections] == [("split.json", "c03", "cell not listed in the split file")]
    path.write_text(json.dumps({"training": ["c00"]}))
    with pytest.raises(ValueError, match="unknown split names"):
        split.split_from_json(CELLS, path)
