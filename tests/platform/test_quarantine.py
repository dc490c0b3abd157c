"""Rejections count user records only, group by kind, and the quarantine file holds each (file, row) once."""

from __future__ import annotations

import csv
import logging

import pytest

from resources.datapaths import Rejection, write_quarantine
from resources.quarantine import reason_kind, report_rejections, tally_rejections


@pytest.fixture()
def data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MATERIALS_DATA", str(tmp_path))
    return tmp_path


def _lines(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_reason_kind_blanks_numbers_and_quoted_values():
    assert reason_kind("freq has 36 values but Z has 41") == reason_kind("freq has 12 values but Z has 7")
    assert reason_kind("unknown circuit 'R-C9'") == "unknown circuit '…'"
    assert reason_kind("value -1.5e-03 below 0") == "value N below N"


def test_share_counts_user_rows_and_whole_files_by_expected_records(data_root):
    user = str(data_root / "raw" / "eis" / "mine.csv")
    broken = str(data_root / "raw" / "eis" / "broken.csv")
    rejections = [Rejection(user, row, f"freq has {row} values but Z has 3") for row in (1, 2, 3, 4)]
    rejections.append(Rejection(broken, None, "unreadable CSV"))
    files = tally_rejections(rejections, {user: 1, broken: 0}, expected_by_source={broken: 10})
    by_file = {f.source: f for f in files}
    assert (by_file["raw/eis/mine.csv"].n_records, by_file["raw/eis/mine.csv"].n_rejected) == (5, 4)
    assert by_file["raw/eis/mine.csv"].kinds == {"freq has N values but Z has N": 4}
    assert (by_file["raw/eis/broken.csv"].n_records, by_file["raw/eis/broken.csv"].n_rejected) == (10, 10)
    assert by_file["raw/eis/broken.csv"].whole_file


def test_report_logs_one_warning_per_file_and_check_fails_on_user_share(data_root, caplog):
    source = data_root / "raw" / "eis" / "mine.csv"
    source.parent.mkdir(parents=True)
    source.write_text("a,b\n1,2\n")
    rejections = [Rejection(str(source), row, "bad Z") for row in (2, 3, 4, 5)]
    log = logging.getLogger("test_quarantine")
    with caplog.at_level(logging.WARNING, logger="test_quarantine"):
        summary = report_rejections(log, "eis", rejections, {str(source): 1})
    assert summary.share == pytest.approx(0.8)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "raw/eis/mine.csv: 4 of 5 records rejected" in warnings[0] and "4x bad Z" in warnings[0]
    assert not summary.check_result("rejected_share_within_bound", 0.05).passed
    warn_only = summary.check_result("rejected_share_within_bound", 0.05, severity="WARN")
    assert not warn_only.passed and warn_only.severity.value == "WARN"
    assert summary.metadata()["n_user_records"] == 5


def test_quarantine_is_idempotent_and_a_fixed_file_drops_out(data_root):
    source = data_root / "raw" / "eis" / "mine.csv"
    other = data_root / "raw" / "eis" / "other.csv"
    source.parent.mkdir(parents=True)
    source.write_text("bad\n")
    other.write_text("also bad\n")
    rejections = [Rejection(str(source), 1, "bad row"), Rejection(str(source), 2, "bad row")]
    path = write_quarantine("eis", rejections + [Rejection(str(other), None, "unreadable")])
    first = _lines(path)
    write_quarantine("eis", rejections, checked_sources=[str(source)])
    second = _lines(path)
    assert len(first) == len(second) == 3
    assert [line["time_utc"] for line in first] == [line["time_utc"] for line in second]
    assert {line["source"] for line in second} == {"raw/eis/mine.csv", "raw/eis/other.csv"}

    source.write_text("fixed\n")  # the user fixes the file: a new hash, nothing rejected
    write_quarantine("eis", [], checked_sources=[str(source)])
    assert [line["source"] for line in _lines(path)] == ["raw/eis/other.csv"]


def test_a_report_over_a_fixed_file_takes_it_out_of_the_quarantine(data_root):
    source = data_root / "raw" / "eis" / "mine.csv"
    source.parent.mkdir(parents=True)
    source.write_text("bad\n")
    log = logging.getLogger("test_quarantine")
    summary = report_rejections(log, "eis", [Rejection(str(source), 1, "bad row")], {str(source): 0})
    assert [line["source"] for line in _lines(data_root / summary.quarantine_path)] == ["raw/eis/mine.csv"]

    source.write_text("fixed\n")  # every record accepted now: the intake reports the file with no rejections
    report_rejections(log, "eis", [], {str(source): 1})
    assert _lines(data_root / summary.quarantine_path) == []


def test_input_folders_exist_after_the_first_start_and_stay_empty(data_root):
    from resources.datapaths import INPUT_FOLDERS, ensure_input_folders

    ensure_input_folders()
    for relative in INPUT_FOLDERS:
        assert (data_root / relative).is_dir()
    assert not [p for p in (data_root / "raw").rglob("*") if p.is_file()]


# Mutation run (issue 25 item 3): the counts, the warning line and the check's figures as a user reads them.

def test_reason_kind_groups_by_the_first_line_only():
    assert reason_kind("unreadable CSV\nTraceback (most recent call last): line 12") == "unreadable CSV"


def test_a_whole_file_rejection_counts_its_expected_records_never_twice(data_root):
    mine, lost = str(data_root / "raw" / "eis" / "mine.csv"), str(data_root / "raw" / "eis" / "lost.csv")
    rows_then_file = [Rejection(mine, 1, "bad Z"), Rejection(mine, 2, "bad Z"), Rejection(mine, None, "unreadable")]
    tally = tally_rejections(rows_then_file, {mine: 0}, expected_by_source={"raw/eis/mine.csv": 10})[0]
    assert (tally.n_records, tally.n_rejected, tally.whole_file) == (10, 10, True)  # keyed by the relative path too
    more_rows_than_expected = [Rejection(mine, row, "bad Z") for row in (1, 2, 3)] + [Rejection(mine, None, "cut")]
    tally = tally_rejections(more_rows_than_expected, {mine: 0}, expected_by_source={mine: 2})[0]
    assert (tally.n_records, tally.n_rejected) == (3, 3)
    # a file that was never counted (not among the accepted sources, its size unknown) is one rejected record
    tally = tally_rejections([Rejection(lost, None, "unreadable")], {})[0]
    assert (tally.source, tally.n_records, tally.n_rejected, tally.whole_file) == ("raw/eis/lost.csv", 1, 1, True)


def test_the_warning_names_the_three_commonest_kinds_and_a_whole_file(data_root, caplog):
    mine, broken = data_root / "raw" / "eis" / "mine.csv", data_root / "raw" / "eis" / "broken.csv"
    reasons = ["bad Z at 1 Hz"] * 3 + ["freq has 3 values"] * 2 + ["unit 'kOhm'", "NaN in row 9"]
    rejections = [Rejection(str(mine), row, reason) for row, reason in enumerate(reasons, 1)]
    rejections.append(Rejection(str(broken), None, "unreadable CSV"))
    log = logging.getLogger("test_quarantine")
    with caplog.at_level(logging.WARNING, logger="test_quarantine"):
        summary = report_rejections(log, "eis", rejections, {str(mine): 3, str(broken): 0},
                                    expected_by_source={str(broken): 6})
    lines = sorted(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert lines == [
        "eis: raw/eis/broken.csv: 6 of 6 records rejected (whole file): 1x unreadable CSV; "
        "rows and reasons in quarantine/eis.csv",
        "eis: raw/eis/mine.csv: 7 of 10 records rejected: 3x bad Z at N Hz; 2x freq has N values; 1x unit '…'; "
        "rows and reasons in quarantine/eis.csv",
    ]
    assert (summary.pipeline, summary.quarantine_path) == ("eis", "quarantine/eis.csv")
    assert (data_root / "quarantine" / "eis.csv").is_file()
    assert (summary.n_records, summary.n_rejected) == (16, 13)


def test_metadata_and_check_carry_the_counts_a_user_reads(data_root):
    clean, mine = str(data_root / "raw" / "eis" / "clean.csv"), str(data_root / "raw" / "eis" / "mine.csv")
    log = logging.getLogger("test_quarantine")
    summary = report_rejections(log, "eis", [Rejection(mine, 2, "bad Z")], {clean: 1, mine: 1})
    metadata = summary.metadata()
    assert {k: metadata[k] for k in ("n_user_records", "n_rejected", "rejected_share", "n_user_files")} == {
        "n_user_records": 3, "n_rejected": 1, "rejected_share": 0.3333, "n_user_files": 2}
    assert metadata["quarantine_file"].path == "quarantine/eis.csv"
    table = metadata["rejections_by_file"]  # the table named in the README: one row per file with rejections
    assert [record.data for record in table.records] == [
        {"file": "raw/eis/mine.csv", "records": 2, "rejected": 1, "whole_file": False, "reasons": "1x bad Z"}]
    python_type = {"string": str, "int": int, "bool": bool}
    columns = {column.name: column.type for column in table.schema.columns}
    assert columns.keys() == table.records[0].data.keys()
    assert all(isinstance(value, python_type[columns[name]]) for name, value in table.records[0].data.items())

    at_bound = summary.check_result("rejected_share_within_bound", 1 / 3)  # "within" the bound includes it
    assert at_bound.passed and at_bound.check_name == "rejected_share_within_bound"
    assert at_bound.severity.value == "ERROR"  # blocking unless the config says WARN
    assert {k: at_bound.metadata[k].value for k in ("rejected_share", "bound", "n_rejected", "n_user_records",
                                                     "files_with_rejections")} == {
        "rejected_share": 0.3333, "bound": 1 / 3, "n_rejected": 1, "n_user_records": 3,
        "files_with_rejections": "raw/eis/mine.csv"}
    clean_run = report_rejections(log, "eis", [], {clean: 1})
    empty = clean_run.metadata()["rejections_by_file"]  # no file rejected: an empty table, its columns still named
    assert empty.records == [] and [column.name for column in empty.schema.columns] == list(columns)
    nothing = clean_run.check_result("rejected_share_within_bound", 0.0)
    assert nothing.passed and nothing.metadata["files_with_rejections"].value == "none"
    two = report_rejections(log, "eis", [Rejection(clean, 1, "x"), Rejection(mine, 1, "y")], {clean: 0, mine: 0})
    assert two.check_result("c", 0.5).metadata["files_with_rejections"].value == "raw/eis/clean.csv, raw/eis/mine.csv"
