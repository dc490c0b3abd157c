"""The published Qdlin-matrix layout (Attia et al. 2021, revisit-severson-et-al): hand-written fixtures.

Real files: `<split>/cellN.csv`, no header, 1000 rows (voltage linspace(3.6, 2.0, 1000)) x 99 columns
(cycles 2..100), numbers written with up to 5 significant digits and no padding ("-0.00046003",
"1.0138"); `cycle_lives/<split>_cycle_lives.csv`, one integer per line, "\n" line ends.
"""

import numpy as np
import pandas as pd
import pytest

from assets.cycling import lifemodel, unified

GRID = np.linspace(3.6, 2.0, 1000)


def qdlin_text(n_cycles=99, fade_ah=0.0002, rows=1000, bad=None):
    """A Qdlin matrix written the way the published files are: %.5g-style numbers, ',' and '\\n'."""
    lines = []
    for i in range(rows):
        v = GRID[i] if i < 1000 else 2.0
        base = -0.00046 if i == 0 else 1.06 / (1 + np.exp((v - 3.25) / 0.03))
        values = [base - fade_ah * c * (1 if v < 3.3 else 0) for c in range(n_cycles)]
        cells = [f"{x:.5g}" for x in values]
        if bad and bad[0] == i:
            cells[bad[1]] = bad[2]
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


def write_layout(root, splits={"train": 2, "test1": 1}, lives={"train": "2160\n1434\n", "test1": "148\n"}):
    for split, n in splits.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        for k in range(1, n + 1):
            (root / split / f"cell{k}.csv").write_text(qdlin_text(n_cycles=5, fade_ah=0.0001 * k))
    (root / "cycle_lives").mkdir(exist_ok=True)
    for split, text in lives.items():
        (root / "cycle_lives" / f"{split}_cycle_lives.csv").write_text(text)


def test_one_cell_file_maps_rows_to_the_voltage_grid_and_columns_to_cycles_2_on(tmp_path):
    path = tmp_path / "cell7.csv"
    path.write_text(qdlin_text())
    frame, rejections = unified.read_qdlin_cell(path, "test1", 1852.0)
    assert rejections == []
    assert len(frame) == 99 * 1000
    assert frame["cell_key"].unique().tolist() == ["test1/cell7"]
    assert frame["dataset"].unique().tolist() == ["test1"]
    assert sorted(frame["cycle_number"].unique()) == list(range(2, 101))
    first = frame.loc[frame["cycle_number"] == 2]
    np.testing.assert_allclose(first["voltage"], GRID)
    assert first["discharge_capacity"].iloc[0] == pytest.approx(-0.00046)  # the file's first value, sign kept
    last = frame.loc[frame["cycle_number"] == 100, "discharge_capacity"].to_numpy()
    assert last[-1] == pytest.approx(1.06 - 0.0002 * 98, abs=1e-4)
    assert (frame["cycle_life"] == 1852.0).all() and frame["current"].isna().all()


def test_qdlin_rows_give_severson_features_exactly(tmp_path):
    path = tmp_path / "cell1.csv"
    path.write_text(qdlin_text())
    frame, _ = unified.read_qdlin_cell(path, "train", 500.0)
    table, rejections = unified.unify([frame], min_cycles=99)
    assert rejections == []
    matrix = pd.read_csv(path, header=None).to_numpy()
    delta_q = matrix[:, 98] - matrix[:, 8]  # columns hold cycles 2..100: cycle 100 - cycle 10
    features = lifemodel.severson_features(table)
    assert features.loc["train/cell1", "log_var_dq"] == pytest.approx(np.log10(np.var(delta_q)), rel=1e-9)
    assert features.loc["train/cell1", "qd_cycle2_ah"] == pytest.approx(matrix[:, 0].max())


def test_layout_folders_and_cycle_lives_line_n_for_cell_n(tmp_path):
    write_layout(tmp_path)
    paths = unified.raw_files(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == ["test1/cell1.csv", "train/cell1.csv",
                                                                     "train/cell2.csv"]
    frames, rejections, origins = unified.read_files(paths, root=tmp_path)
    assert rejections == []
    table, _ = unified.unify(frames, min_cycles=5)
    lives = table.groupby("cell_key")["cycle_life"].first().to_dict()
    assert lives == {"test1/cell1": 148.0, "train/cell1": 2160.0, "train/cell2": 1434.0}
    assert set(table["source"]) == {"test1/cell1.csv", "train/cell1.csv", "train/cell2.csv"}
    assert origins["train/cell2.csv"] == "index on the Qdlin voltage grid"


def test_voltage_stride_keeps_every_nth_grid_point(tmp_path):
    path = tmp_path / "cell1.csv"
    path.write_text(qdlin_text(n_cycles=3))
    frame, _ = unified.read_qdlin_cell(path, "train", 900.0, voltage_stride=10)
    assert len(frame) == 3 * 100
    np.testing.assert_allclose(frame.loc[frame["cycle_number"] == 2, "voltage"], GRID[::10])


def test_bad_files_lives_and_cycles_are_rejected_with_reasons(tmp_path):
    write_layout(tmp_path, lives={"train": "2160\nabc\n"})  # no test1 lives file; train line 2 bad
    (tmp_path / "train" / "cell3.csv").write_text(qdlin_text(n_cycles=5, rows=999))
    (tmp_path / "train" / "cell4.csv").write_text(qdlin_text(n_cycles=5, bad=(10, 2, "x1.2")))
    (tmp_path / "train" / "cell5.csv").write_text(qdlin_text(n_cycles=5, bad=(10, 3, "NaN")))
    frames, rejections, _ = unified.read_files(unified.raw_files(tmp_path), root=tmp_path)
    table, invalid = unified.unify(frames, min_cycles=4)
    reasons = {(str(pd.io.common.stringify_path(r.source)).split("/")[-1], r.row): r.reason
               for r in rejections + invalid}
    assert not any(name == "test1_cycle_lives.csv" for name, _ in reasons)  # no lives file: a set to predict
    assert reasons[("train_cycle_lives.csv", 2)] == "cycle life 'abc' is not a positive number"
    assert "expected 1000 rows" in reasons[("cell3.csv", None)] and "found 999 rows" in reasons[("cell3.csv", None)]
    assert "not a numeric Qdlin matrix" in reasons[("cell4.csv", None)]
    assert reasons[("cell5.csv", "train/cell5/cycle 5")] == "NaN in discharge_capacity"  # column 3 = cycle 5
    lives = table.groupby("cell_key")["cycle_life"].first()
    assert lives["train/cell1"] == 2160.0 and np.isnan(lives["train/cell2"]) and np.isnan(lives["test1/cell1"])
    assert table.loc[table["cell_key"] == "train/cell5", "cycle_number"].nunique() == 4
