"""Both readers on tiny fixtures, validation and quarantine."""

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from assets.cycling import unified
from assets.cycling.synthetic import synthetic_batch
from resources.datapaths import write_quarantine


def tiny_cycle(n=5, start=0.0):
    t = start + np.arange(n, dtype=float)
    return {"t": t, "V": 3.3 - 0.1 * t / n, "I": -np.ones(n), "Qc": np.zeros(n), "Qd": 0.1 * t, "T": 30 + 0 * t,
            "Qdlin": np.zeros(1000), "Tdlin": np.zeros(1000), "dQdV": np.zeros(1000)}


def severson_cell(n_cycles=3, life=np.array([[812.0]])):
    return {"cycle_life": life, "charge_policy": "5.4C(40%)-3.6C", "summary": {},
            "cycles": {str(c): tiny_cycle() for c in range(1, n_cycles + 1)}}


def unify_pickle(tmp_path, batch, min_cycles=2):
    path = tmp_path / "batch.pkl"
    path.write_bytes(pickle.dumps(batch))
    frame, rejected = unified.read_pickle(path)
    table, invalid = unified.unify([frame], min_cycles)
    return table, rejected + invalid


def test_pickle_reader_maps_severson_traces(tmp_path):
    batch = synthetic_batch(2, detail_stride=50, points_per_cycle=30, seed=1)
    table, rejections = unify_pickle(tmp_path, batch)
    assert rejections == []
    assert len(table) == sum(c["t"].size for record in batch.values() for c in record["cycles"].values())
    cycle = table.loc[(table["cell_key"] == "s1c1") & (table["cycle_number"] == 50)]
    np.testing.assert_allclose(cycle["voltage"], batch["s1c1"]["cycles"]["50"]["V"])
    np.testing.assert_allclose(cycle["discharge_capacity"], batch["s1c1"]["cycles"]["50"]["Qd"])
    assert cycle["cycle_life"].iloc[0] == batch["s1c1"]["cycle_life"]
    assert unified.signals_present(table) == ["current", "voltage", "charge_capacity", "discharge_capacity",
                                              "temperature"]


def test_severson_cycle_life_stored_as_nested_array(tmp_path):
    table, _ = unify_pickle(tmp_path, {"b1c0": severson_cell(life=np.array([[812.0]]))})
    assert table["cycle_life"].unique().tolist() == [812.0]
    assert table["charge_policy"].iloc[0] == "5.4C(40%)-3.6C"


def test_csv_reader_with_q1_q4_policy_and_no_time(tmp_path):
    rows = pd.DataFrame({
        "cell_key": ["c1"] * 4 + ["c2"] * 2, "cycle_number": [1, 1, 2, 2, 1, 2],
        "voltage": [3.3, 3.2, 3.3, 3.2, 3.1, 3.0],
        **{f"charge_policy_Q{i}": [4.8 + i] * 6 for i in range(1, 5)},
    })
    rows.to_csv(tmp_path / "cells.csv", index=False)
    frame, rejections, time_origin = unified.read_csv(tmp_path / "cells.csv")
    assert rejections == [] and time_origin == "row order within the cycle"
    assert frame["charge_policy"].iloc[0] == "5.8-6.8-7.8-8.8"
    assert frame.loc[frame["cell_key"] == "c1", "time"].tolist() == [0.0, 1.0, 0.0, 1.0]
    table, _ = unified.unify([frame], min_cycles=2)
    assert unified.signals_present(table) == ["voltage"]
    assert table["current"].isna().all()


def test_bad_inputs_are_rejected_with_file_row_and_reason(tmp_path, data_root):
    (tmp_path / "junk.pkl").write_bytes(b"\x00\x01")
    (tmp_path / "list.pkl").write_bytes(pickle.dumps([1, 2]))
    pd.DataFrame({"cycle_number": [1], "voltage": [3.3]}).to_csv(tmp_path / "nokey.csv", index=False)
    pd.DataFrame({"cell_key": ["x", "x"], "cycle_number": [1, "one"], "voltage": [3.3, 3.2]}).to_csv(
        tmp_path / "badrow.csv", index=False)
    frames, rejections, _ = unified.read_files(unified.raw_files(tmp_path))
    reasons = {(Path(r.source).name, r.row): r.reason for r in rejections}  # full paths, for content hashes
    assert "not a readable pickle" in reasons[("junk.pkl", None)]
    assert "expected a non-empty dict keyed by cell" in reasons[("list.pkl", None)]
    assert "missing ['cell_key']" in reasons[("nokey.csv", None)]
    assert reasons[("badrow.csv", 3)] == "cell_key empty or cycle_number not a finite number"
    path = write_quarantine("cycling", rejections)
    assert path.parent.parent == data_root
    assert len(pd.read_csv(path)) == len(rejections) == 4


def test_bad_cycles_short_cells_and_duplicates(tmp_path):
    nan_time, backwards, bad_cell = severson_cell(4), severson_cell(4), severson_cell(4)
    nan_time["cycles"]["2"]["t"][1] = np.nan
    backwards["cycles"]["3"]["t"] = backwards["cycles"]["3"]["t"][::-1].copy()
    bad_cell["cycles"]["1"]["V"] = np.zeros(2)  # length differs from t
    batch = {"good": severson_cell(4), "nan": nan_time, "back": backwards, "short": severson_cell(1),
             "broken": bad_cell}
    table, rejections = unify_pickle(tmp_path, batch, min_cycles=2)
    reasons = {r.row: r.reason for r in rejections}
    assert reasons["nan/cycle 2"] == "time has NaN"
    assert reasons["back/cycle 3"].startswith("time is not monotonic")
    assert reasons["short"] == "1 valid cycles, expected at least 2"
    assert "trace lengths differ" in reasons["broken"]
    assert sorted(table["cell_key"].unique()) == ["back", "good", "nan"]
    assert table.groupby("cell_key")["cycle_number"].nunique().to_dict() == {"back": 3, "good": 4, "nan": 3}
    assert unified.rejected_cell_share(table, rejections) == pytest.approx(2 / 5)
    first, _ = unified.severson_frame({"good": severson_cell(3)}, "a.pkl")
    second, _ = unified.severson_frame({"good": severson_cell(3)}, "b.pkl")
    _, duplicates = unified.unify([first, second], min_cycles=2)
    assert duplicates[0].source == "b.pkl" and duplicates[0].reason == "cell key already read from a.pkl"


def test_nan_signal_rejects_the_cycle_but_an_absent_signal_does_not(tmp_path):
    cell = severson_cell(3)
    cell["cycles"]["1"]["T"][2] = np.nan
    no_temperature = severson_cell(3)
    for cycle in no_temperature["cycles"].values():
        del cycle["T"]
    table, rejections = unify_pickle(tmp_path, {"a": cell, "b": no_temperature})
    assert [(r.row, r.reason) for r in rejections] == [("a/cycle 1", "NaN in temperature")]
    assert table.loc[table["cell_key"] == "b", "temperature"].isna().all()


def test_smoothing_and_time_cutoff():
    frame, _ = unified.severson_frame({"c": severson_cell(2)}, "s.pkl")
    frame["charge_capacity"] = np.tile([0.0, 1.0, 0.0, 1.0, 0.0], 2)
    smoothed = unified.smooth_charge_capacity(frame, 3)
    assert smoothed["charge_capacity"].iloc[:5].tolist() == pytest.approx([0.5, 1 / 3, 2 / 3, 1 / 3, 0.5])
    cut = unified.cut_time(frame, 2.0)
    assert cut.groupby("cycle_number")["time"].max().tolist() == [2.0, 2.0]
