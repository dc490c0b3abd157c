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
