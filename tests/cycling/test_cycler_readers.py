"""Cycler-file readers on hand-written files in each instrument's style (tests/cycling/cycler_fixtures.py)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from assets.cycling import cycle_summary, cyclers
from tests.cycling import cycler_fixtures as fx

SHARED_RAW = Path(__file__).resolve().parents[3] / "shared" / "data" / "cycling" / "raw"
CURRENT_A = [0.1, 0.1, 0.1, -0.1, -0.1, -0.1]  # each fixture cycle: 1 h charge then 1 h discharge, 0.1 A
VOLTAGE_V = [3.3, 3.4, 3.5, 3.35, 3.2, 2.9]


@pytest.mark.parametrize("name", list(fx.FIXTURES))
def test_each_format_is_detected_by_content_and_read_to_the_unified_conventions(tmp_path, name):
    path = fx.write_fixture(tmp_path, name)
    assert cyclers.detect_format(path) == fx.FIXTURES[name][2]
    frame = cyclers.read_cycler_file(path).frame
    assert frame["cycle_number"].tolist() == [1] * 6 + [2] * 6  # from 1, whether the file counts from 0 or 1
    np.testing.assert_allclose(frame["current"], CURRENT_A * 2, atol=1e-4)  # A, negative while discharging
    np.testing.assert_allclose(frame["voltage"], VOLTAGE_V * 2, atol=2e-3)
    for _, cycle in frame.groupby("cycle_number"):
        # mAh, mA.h and Ah, counted per step, per cycle or over the test: 0.1 Ah from 0 in each cycle.
        assert cycle["charge_capacity"].iloc[0] == pytest.approx(0.0, abs=1e-12)
        assert cycle["charge_capacity"].max() == pytest.approx(fx.CAPACITY_AH, rel=1e-6)
        np.testing.assert_allclose(cycle["discharge_capacity"], [0, 0, 0, 0, 0.05, 0.1], atol=1e-7)
        # minutes since the cycle start, whatever the file's unit (s, min, h, hh:mm:ss): the charge ends at 60
        # and the discharge lasts 60 min.
        assert cycle["time"].iloc[0] == 0.0
        assert cycle["time"].iloc[2] == pytest.approx(60.0, abs=1e-3)
        assert cycle["time"].iloc[5] - cycle["time"].iloc[3] == pytest.approx(60.0, abs=1e-3)
    summary = cycle_summary.summarise(frame.assign(cycle_life=np.nan))
    assert summary["capacity_check"].tolist() == ["consistent", "consistent"]


def test_a_paused_and_resumed_test_is_joined(tmp_path):
    frame = cyclers.read_cycler_file(fx.write_fixture(tmp_path, "arbin_paused.csv")).frame
    seconds = frame["test_time_s"].to_numpy()
    assert np.all(np.diff(seconds) >= 0)  # the second part's clock restarted at 0
    assert seconds[6] == pytest.approx(seconds[5])  # continues where the first part stopped
    assert frame.groupby("cycle_number").size().to_dict() == {1: 6, 2: 6}  # its Cycle_Index restarted at 0 too


def test_unitless_maccor_test_time_is_calibrated_against_its_clock(tmp_path):
    """The same Maccor file with TestTime written in s instead of min reads the same."""
    minutes = cyclers.read_cycler_file(fx.write_fixture(tmp_path, "channel_53.053")).frame
    lines = fx.MACCOR_TAB.splitlines(keepends=True)
    data_start = next(i for i, line in enumerate(lines) if line.startswith("1\t"))
    for i in range(data_start, len(lines)):
        fields = lines[i].split("\t")
        fields[4] = f"{float(fields[4]) * 60:.4f}"
        lines[i] = "\t".join(fields)
    (tmp_path / "seconds.054").write_bytes("".join(lines).encode("cp1252"))
    seconds = cyclers.read_cycler_file(tmp_path / "seconds.054").frame
    np.testing.assert_allclose(seconds["time"], minutes["time"], atol=1e-6)
    assert seconds["test_time_s"].iloc[-1] == pytest.approx(240.05 * 60, rel=1e-6)


def test_a_capacity_column_shifted_by_one_row_fails_the_capacity_check(tmp_path):
    (tmp_path / "shifted.csv").write_text(fx.shift_column(fx.ARBIN_MITS_CSV, "Discharge_Capacity(Ah)"))
    frame = cyclers.read_cycler_file(tmp_path / "shifted.csv").frame.assign(cycle_life=np.nan)
    summary = cycle_summary.summarise(frame)
    assert "inconsistent" in set(summary["capacity_check"])
    assert cycle_summary.consistent_share(summary) < 0.95
    # The instrument's figure is reported as it is, beside the integral of the current: never corrected.
    first = summary.iloc[0]
    assert first["discharge_integral_ah"] == pytest.approx(0.1)
    assert first["discharge_capacity_ah"] == pytest.approx(0.05)


def test_counters_restarting_per_step_per_cycle_or_never_give_the_same_cycle_capacity():
    cycle = np.array([1, 1, 1, 1, 2, 2, 2, 2])
    step = np.array([1, 1, 2, 2, 3, 3, 4, 4])
    boundary = np.r_[True, (np.diff(cycle) != 0) | (np.diff(step) != 0)]
    per_step = np.array([0.0, 0.5, 0.2, 0.4, 0.0, 0.3, 0.1, 0.2])
    per_cycle = np.array([0.0, 0.5, 0.7, 0.9, 0.0, 0.3, 0.4, 0.5])
    whole_test = np.array([0.0, 0.5, 0.7, 0.9, 0.9, 1.2, 1.3, 1.4])
    expected = [0.0, 0.5, 0.7, 0.9, 0.0, 0.3, 0.4, 0.5]
    for counter in (per_step, per_cycle, whole_test):
        growth = cyclers.capacity_increments(counter, boundary)
        np.testing.assert_allclose(cyclers.per_cycle_sum(growth, cycle), expected, atol=1e-12)


def test_cycle_numbers_start_at_one_and_continue_after_a_restart():
    assert cyclers.cycle_numbers(np.array([0, 0, 1, 1, 2])).tolist() == [1, 1, 2, 2, 3]
    assert cyclers.cycle_numbers(np.array([1, 2, 3, 1, 2])).tolist() == [1, 2, 3, 4, 5]
    restarts = np.array([False, False, False, True, False])
    assert cyclers.cycle_numbers(np.array([5, 5, 6, 5, 6]), restarts).tolist() == [5, 5, 6, 7, 8]


@pytest.mark.parametrize("name, quantity, unit", [
    ("Test Time / h", "Test Time", "h"), ("Charge_Capacity(Ah)", "Charge_Capacity", "Ah"),
    ("Cap. [Ah]", "Cap.", "Ah"), ("I/mA", "I", "mA"), ("(Q-Qo)/mA.h", "(Q-Qo)", "mA.h"),
    ("Temperature (C)_1", "Temperature_1", "C"), ("Spec. Cap.(mAh/g)", "Spec. Cap.", "mAh/g"),
    ("Total Time (Hours in hh:mm:ss.xxx)", "Total Time", "Hours in hh:mm:ss.xxx"), ("TestTime", "TestTime", ""),
])
def test_column_names_split_into_quantity_and_unit(name, quantity, unit):
    assert cyclers.split_unit(name) == (quantity, unit)


def test_an_unknown_unit_is_an_error_naming_the_column(tmp_path):
    (tmp_path / "odd.csv").write_text(fx.NEWARE_CSV.replace("Current(A)", "Current(kA)"))
    with pytest.raises(cyclers.CyclerFileError, match=r"'Current\(kA\)': unit 'kA' not understood"):
        cyclers.read_cycler_file(tmp_path / "odd.csv")


def test_a_res_file_without_mdbtools_says_how_to_install_it(tmp_path, monkeypatch):
    path = tmp_path / "cell.res"
    path.write_bytes(b"\x00\x01\x00\x00Standard Jet DB\x00" + bytes(200))
    monkeypatch.setattr(cyclers.shutil, "which", lambda name: None)
    with pytest.raises(cyclers.CyclerFileError, match="apt-get install mdbtools"):
        cyclers.read_cycler_file(path)


@pytest.mark.skipif(not SHARED_RAW.is_dir(), reason="shared/data/cycling/raw (public cycler files) not present")
def test_the_public_instrument_files_are_read_and_their_capacities_agree_with_the_current():
    """Arbin .res (mdbtools), BioLogic .mpr (galvani), Neware .ndax (fastnda) and the four text exports."""
    if cyclers.shutil.which("mdb-export") is None:
        pytest.skip("mdbtools not installed (./dev.sh and .ci/run install it where they can)")
    expected = {"arbin_res": 18, "biologic_mpr": 1, "maccor": 2, "neware_nda": 1, "neware_csv": 4, "bdf": 109,
                "pec": 1}
    for path in sorted(SHARED_RAW.iterdir()):
        rows = cyclers.read_cycler_file(path)
        frame = rows.frame.assign(cycle_life=np.nan)
        assert frame["cycle_number"].nunique() == expected[rows.notes["format"]], path.name
        assert (frame.groupby("cycle_number")["time"].min() == 0).all()
        summary = cycle_summary.summarise(frame)
        assert cycle_summary.consistent_share(summary) >= 0.95, path.name
        assert pd.Series(frame["test_time_s"]).is_monotonic_increasing, path.name


@pytest.mark.parametrize("name, first_degc", [("full_bdf.csv", 25.0), ("novonix.csv", 25.1), ("pec_Test25205.csv", None)])
def test_the_cell_temperature_is_taken_not_the_ambient_or_circuit_one(tmp_path, name, first_degc):
    frame = cyclers.read_cycler_file(fx.write_fixture(tmp_path, name)).frame
    if first_degc is None:  # PEC's columns name no temperature
        assert frame["temperature"].isna().all()
    else:
        assert frame["temperature"].iloc[0] == first_degc


def test_a_utf16_export_reads_like_its_utf8_twin(tmp_path):
    (tmp_path / "neware_utf16.csv").write_bytes(fx.NEWARE_CSV.replace("\n", "\r\n").encode("utf-16"))
    utf16 = cyclers.read_cycler_file(tmp_path / "neware_utf16.csv").frame
    utf8 = cyclers.read_cycler_file(fx.write_fixture(tmp_path, "neware_bts.csv")).frame
    pd.testing.assert_frame_equal(utf16.drop(columns=["cell_key", "source"]), utf8.drop(columns=["cell_key", "source"]))


def test_temperature_between_an_auxiliary_sensor_s_readings_carries_the_last_one_and_says_so(tmp_path):
    lines = fx.NOVONIX_CSV.splitlines(keepends=True)
    data = [i for i, line in enumerate(lines) if line.startswith("2023-")]
    for i in data[1:3]:  # the sensor missed the 2nd and 3rd rows
        fields = lines[i].split(",")
        fields[8] = ""
        lines[i] = ",".join(fields)
    (tmp_path / "gaps.csv").write_text("".join(lines), encoding="cp1252")
    rows = cyclers.read_cycler_file(tmp_path / "gaps.csv")
    assert rows.frame["temperature"].iloc[:4].tolist() == [25.1, 25.1, 25.1, 25.3]
    assert rows.notes["temperature"] == "2 of 12 rows carry the nearest reading"


def test_an_arbin_xlsx_export_split_over_two_channel_sheets_reads_like_the_csv(tmp_path):
    """The hand-written Arbin rows typed into a workbook as MITS Pro lays it out: an info sheet, then the
    channel's rows over two sheets (long tests are split), then a statistics sheet."""
    import openpyxl  # a declared dependency: its absence is a failure, not a skip
    rows = [line.split(",") for line in fx.ARBIN_MITS_CSV.splitlines()]
    header, data = rows[0], [[float(v) if v.replace(".", "").replace("-", "").replace("e", "").isdigit() else v
                              for v in row] for row in rows[1:]]
    book = openpyxl.Workbook()
    info = book.active
    info.title = "Global_Info"
    info.append(["TEST REPORT"])
    info.append(["Channel", "Start DateTime", "Schedule File Name", "Creator"])
    info.append([6, "05/12/2017 23:13:34", "20170512-4_4C-80PER_4_4C.sdu", "hfa"])
    for title, part in [("Channel_1-006_1", data[:7]), ("Channel_1-006_2", data[7:])]:
        sheet = book.create_sheet(title)
        sheet.append(header)
        for row in part:
            sheet.append(row)
    book.create_sheet("Statistics_1-006").append(["Channel", "Cycle_Index", "Test_Time(s)", "Charge_Capacity(Ah)"])
    book.save(tmp_path / "arbin_mits.xlsx")
    assert cyclers.detect_format(tmp_path / "arbin_mits.xlsx") == "xlsx"
    workbook = cyclers.read_cycler_file(tmp_path / "arbin_mits.xlsx").frame
    text = cyclers.read_cycler_file(fx.write_fixture(tmp_path, "arbin_mits.csv")).frame
    columns = ["cycle_number", "time", "current", "voltage", "charge_capacity", "discharge_capacity", "charge_energy"]
    pd.testing.assert_frame_equal(workbook[columns], text[columns])


def test_an_xls_workbook_is_rejected_with_what_to_do(tmp_path):
    (tmp_path / "old.xls").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504))
    with pytest.raises(cyclers.CyclerFileError, match="save it as .xlsx or csv"):
        cyclers.read_cycler_file(tmp_path / "old.xls")


def test_a_file_holding_two_cells_gives_two_cells_with_their_own_cycles(tmp_path):
    """A PEC export of a test on two cells: the rows of cell 2 are the same schedule, interleaved by time."""
    lines = fx.PEC_CSV.splitlines(keepends=True)
    data = [line for line in lines if line.startswith("25205,")]
    second = [line.replace("25205,1,ACT4,014,1,", "25205,2,ACT4,014,2,", 1) for line in data]
    interleaved = [row for pair in zip(data, second) for row in pair]
    (tmp_path / "two_cells.csv").write_text("".join(lines[:len(lines) - len(data)] + interleaved))
    rows = cyclers.read_cycler_file(tmp_path / "two_cells.csv")
    frame = rows.frame
    assert sorted(frame["cell_key"].unique()) == ["two_cells/1", "two_cells/2"]
    for _, cell in frame.groupby("cell_key"):
        assert cell["cycle_number"].tolist() == [1] * 6 + [2] * 6
        assert cell.groupby("cycle_number")["discharge_capacity"].max().tolist() == pytest.approx([0.1, 0.1])


def test_a_large_text_file_is_read_in_chunks_with_progress_lines(tmp_path, monkeypatch):
    path = fx.write_fixture(tmp_path, "neware_bts.csv")
    whole = cyclers.read_cycler_file(path).frame
    monkeypatch.setattr(cyclers, "BIG_FILE_BYTES", 0)
    monkeypatch.setattr(cyclers, "CHUNK_ROWS", 5)
    lines = []
    chunked = cyclers.read_cycler_file(path, log=lines.append).frame
    pd.testing.assert_frame_equal(chunked, whole)
    assert lines and lines[-1].startswith("reading neware_bts.csv: ") and "left" in lines[-1]


def test_without_a_cycle_column_cycles_follow_the_current(tmp_path):
    """The Battery Data Format file without its Cycle Count column (and with a rest between the halves)."""
    lines = fx.BDF_FULL_CSV.splitlines()
    header = lines[0].split(",")
    keep = [i for i, name in enumerate(header) if name != "Cycle Count / 1"]
    rows = [",".join(line.split(",")[i] for i in keep) for line in lines]
    rest = rows[3].split(",")
    rest[2] = "0"  # a rest row between charge and discharge: no current, same cycle
    (tmp_path / "no_cycles.csv").write_text("\n".join(rows[:4] + [",".join(rest)] + rows[4:]) + "\n")
    frame = cyclers.read_cycler_file(tmp_path / "no_cycles.csv").frame
    assert frame["cycle_number"].tolist() == [1] * 7 + [2] * 6
    assert frame.groupby("cycle_number")["discharge_capacity"].max().tolist() == pytest.approx([0.1, 0.1])
    np.testing.assert_array_equal(cyclers.cycles_from_current(np.array([-1, -1, 0, 1, 1, -1, 0, -1, 1])),
                                  [1, 1, 1, 1, 1, 2, 2, 2, 2])  # a half cell that starts by discharging
