"""A drop folder of cycler files through the intake: every file read, sidecar or rejected by name; raw untouched."""

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from assets.cycling import cycle_summary, unified
from benchmarks import cycler_files
from tests.cycling import cycler_fixtures as fx


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def drop_folder(folder: Path) -> None:
    data = fx.write_fixture(folder, "arbin_mits.csv")
    fx.write_arbin_sidecar(folder, data)
    fx.write_fixture(folder, "channel_53.053")  # a Maccor raw file: its extension is its channel
    fx.write_fixture(folder, "biologic_fr.mpt")
    (folder / "orphan_Metadata.csv").write_text(fx.ARBIN_METADATA_CSV)
    (folder / "cut.res").write_bytes(b"\x00\x01\x00\x00Standard Jet DB\x00" + bytes(300))  # truncated Access file
    (folder / "cut.mpr").write_bytes(b"BIO-LOGIC MODULAR FILE\x1a" + bytes(40))
    (folder / "cut.ndax").write_bytes(b"PK\x03\x04" + bytes(60))
    (folder / "scope.bin").write_bytes(bytes(range(256)) * 4)
    (folder / "notes.txt").write_text("cell 7 swelled after the formation cycles\n")


def test_every_file_ends_read_sidecar_or_rejected_by_name_and_raw_files_stay_as_they_were(tmp_path):
    drop_folder(tmp_path)
    before = digests(tmp_path)
    paths = unified.raw_files(tmp_path)
    assert len(paths) == len(before)  # nothing skipped: unknown extensions are listed too
    frames, rejections, notes = unified.read_files(paths, root=tmp_path)
    table, invalid = unified.unify(frames, min_cycles=1)
    files = unified.files_table(paths, tmp_path, table, rejections + invalid, notes).set_index("file")
    assert digests(tmp_path) == before
    assert files["status"].to_dict() == {
        "arbin_mits.csv": "read", "arbin_mits_Metadata.csv": "sidecar", "biologic_fr.mpt": "read",
        "channel_53.053": "read", "cut.mpr": "rejected", "cut.ndax": "rejected", "cut.res": "rejected",
        "notes.txt": "rejected", "orphan_Metadata.csv": "rejected", "scope.bin": "rejected"}
    assert files.loc["arbin_mits_Metadata.csv", "reason"] == "sidecar of arbin_mits.csv"
    assert files.loc["channel_53.053", ["instrument", "cycles"]].tolist() == ["Maccor", 2]
    reasons = {Path(r.source).name: r.reason for r in rejections}
    assert all(Path(r.source).is_absolute() for r in rejections)  # full paths: the quarantine hashes content
    assert reasons["cut.res"].startswith("Arbin mdb-export could not read")
    assert reasons["cut.mpr"].startswith("BioLogic galvani could not read")
    assert reasons["cut.ndax"].startswith("Neware fastnda could not read")
    assert reasons["scope.bin"].startswith("unrecognised format")
    assert reasons["notes.txt"].startswith("unrecognised format")
    assert "without its data file (orphan.csv or orphan.res)" in reasons["orphan_Metadata.csv"]
    assert sorted(table["cell_key"].unique()) == ["arbin_mits", "biologic_fr", "channel_53"]


def test_a_file_whose_every_cycle_is_rejected_is_listed_with_the_cycles_reasons(tmp_path):
    # A voltage cell left empty in each cycle of a Neware export: both cycles are rejected, so is the file.
    lines = fx.NEWARE_CSV.splitlines(keepends=True)
    for i in (2, 8):
        fields = lines[i].split(",")
        fields[7] = ""
        lines[i] = ",".join(fields)
    (tmp_path / "gappy.csv").write_text("".join(lines))
    paths = unified.raw_files(tmp_path)
    frames, rejections, notes = unified.read_files(paths, root=tmp_path)
    table, invalid = unified.unify(frames, min_cycles=1)
    row = unified.files_table(paths, tmp_path, table, rejections + invalid, notes).iloc[0]
    assert (row["status"], row["cycles"]) == ("rejected", 0)
    assert row["reason"] == "gappy/cycle 1: NaN in voltage; gappy/cycle 2: NaN in voltage"


def test_the_summary_marks_cells_too_short_to_predict_and_the_capacity_check():
    frame = pd.DataFrame({
        "source": "a.csv", "cell_key": "a", "cycle_number": np.repeat([1, 2], 3), "time": [0.0, 30, 60] * 2,
        "current": [-1.0] * 6, "voltage": [3.3, 3.0, 2.5] * 2, "charge_capacity": 0.0,
        "discharge_capacity": [0.0, 0.5, 1.0, 0.0, 0.5, 0.9], "temperature": np.nan, "cycle_life": np.nan,
    })
    summary = cycle_summary.summarise(frame)
    # 1 A for 60 min is 1 Ah: cycle 1 agrees, cycle 2's 0.9 Ah does not (10 % off).
    assert summary["capacity_check"].tolist() == ["consistent", "inconsistent"]
    assert summary["mean_discharge_voltage_v"].iloc[0] == pytest.approx((3.3 + 3.0) / 4 + (3.0 + 2.5) / 4)
    assert summary["n_cycles"].tolist() == [2, 2] and not summary["predictable"].any()
    assert summary["reason"].iloc[0].startswith("too short to predict: 2 cycles (last 2)")
    # Cycles 10 and 100 alone (as a Qdlin file or a pickle keeps them) are enough; a cycle 100 without a
    # discharge is not.
    chosen = pd.concat([frame.loc[frame["cycle_number"] == 1].assign(cycle_number=n) for n in (10, 100)])
    assert cycle_summary.predictability(cycle_summary.cycle_summary(chosen))["predictable"].tolist() == [True]
    dead = chosen.assign(discharge_capacity=np.where(chosen["cycle_number"] == 100, 0.0, chosen["discharge_capacity"]))
    reason = cycle_summary.predictability(cycle_summary.cycle_summary(dead))["reason"].iloc[0]
    assert reason.startswith("no discharge in cycle 100")


def test_benchmark_reports_every_file_of_a_tiny_folder(tmp_path, capsys):
    drop_folder(tmp_path)
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "old_run.csv").write_text(fx.NEWARE_CSV)  # below the top level: not listed
    assert cycler_files.main(["--data", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    figures = dict(line.split(": ", 1) for line in out.splitlines() if not line.startswith("file: "))
    lines = [line for line in out.splitlines() if line.startswith("file: ")]
    assert "file: channel_53.053 instrument=Maccor cycles=2 status=read" in lines
    assert "file: arbin_mits_Metadata.csv instrument=metadata sidecar cycles=0 status=sidecar " \
           "(sidecar of arbin_mits.csv)" in lines
    assert any(line.startswith("file: cut.res instrument=Arbin cycles=0 status=rejected (Arbin mdb-export")
               for line in lines)
    assert (figures["files_total"], figures["files_read"], figures["files_sidecar"], figures["files_rejected"],
            figures["files_ignored"]) == ("11", "3", "1", "6", "1")
    assert figures["cycles_read"] == "6" and float(figures["capacity_consistent_share"]) == 1.0
    assert list(figures)[-1] == "mb_per_second" and float(figures["mb_per_second"]) > 0


def test_the_embedded_synthetic_cells_are_summarised_and_predictable():
    from assets.cycling.synthetic import synthetic_batch

    frame, _ = unified.severson_frame(synthetic_batch(3, detail_stride=10, points_per_cycle=40, seed=2), "synthetic")
    summary = cycle_summary.summarise(frame)
    cells = summary.drop_duplicates("cell_key")
    assert cells["predictable"].all() and (cells["n_cycles"] == 11).all()  # cycles 2, 10, 20, ..., 100
    # Their discharge is what their current carried (4C from full to 2.0 V).
    np.testing.assert_allclose(summary["discharge_capacity_ah"], summary["discharge_integral_ah"], rtol=1e-3)
