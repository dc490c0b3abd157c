"""Sources: exports with bad rows (quarantine), deduplication, the embedded table, the mocked mp-api client."""

import csv
import json

import pandas as pd
import pytest

import mp_api.client
from assets.electrodes import sources
from assets.electrodes.sources import EMBEDDED_CSV, EXPORT_COLUMNS, collect_records, read_export_csv, target_column
from resources.datapaths import write_quarantine

HEADER = list(EXPORT_COLUMNS)


def write_export(path, rows):
    """A Battery Explorer export: the real header, rows given as (battid, formula, voltage)."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_ALL)
        writer.writerow(HEADER)
        for battid, formula, voltage in rows:
            writer.writerow([battid, formula, "Intercalation", "-P 2ybc", voltage, "120.5", "", "", "", "0.01", "0.02"])
    return path


@pytest.fixture
def export_dir(data_root):
    folder = data_root / "raw" / "electrodes"
    folder.mkdir(parents=True)
    return folder


def messages():
    logged = []
    return logged, logged.append


def test_embedded_table_has_thirty_cited_electrodes():
    table = pd.read_csv(EMBEDDED_CSV)
    assert list(table.columns) == [*HEADER, "Source"]
    assert len(table) >= 30
    assert table["Source"].str.len().min() > 10
    records, rejections, rows = read_export_csv(EMBEDDED_CSV)
    assert rejections == [] and len(records) == rows == len(table)
    voltages = {r["formula_discharge"].replace(" ", ""): r["average_voltage_V"] for r in records}
    assert voltages["Li1Fe1P1O4"] == pytest.approx(3.45)
    assert voltages["Li7Ti5O12"] == pytest.approx(1.55)


def test_bad_rows_go_to_quarantine_with_file_row_and_reason(export_dir):
    path = write_export(
        export_dir / "battery_explorer.csv",
        [
            ("mp-1045535_Zn", "Zn0 –0.5VO2", "0.72"),
            ("mp-2001_Li", "Li1 –2NbVO4", "1.6"),
            ("mp-2002_Li", "Li0–1Qq2O3", "3.0"),
            ("mp-2003_Li", "Li0–1CoO2", "about four"),
            ("broken-id", "Li0–1FePO4", "3.4"),
        ],
    )
    records, rejections, rows = read_export_csv(path)
    assert rows == 5 and len(records) == 2
    assert [r.row for r in rejections] == [4, 5, 6]  # file lines: the header is line 1
    assert "Qq" in rejections[0].reason
    assert "average_voltage_V is 'about four', expected a number" in rejections[1].reason
    assert "broken-id" in rejections[2].reason
    quarantine = pd.read_csv(write_quarantine("electrodes", rejections))
    assert len(quarantine) == 3 and set(quarantine["source"]) == {"raw/electrodes/battery_explorer.csv"}  # relative to the root
    assert path.read_text(encoding="utf-8").count("\n") == 6  # raw input untouched


def test_a_file_that_is_no_export_is_rejected_whole(export_dir):
    (export_dir / "notes.csv").write_text("name,value\na,1\n")
    collected = collect_records("Li", use_api=False, refresh_api_cache=False, use_embedded="auto", log=print)
    assert len(collected.rejections) == 1
    assert collected.rejections[0].row is None and "missing column" in collected.rejections[0].reason
    assert collected.rows_per_source["embedded"] >= 30  # the rest goes on


def test_exports_replace_the_embedded_default_and_win_duplicates(export_dir):
    write_export(export_dir / "a.csv", [("mp-1_Li", "Li0–1CoO2", "4.1"), ("mp-2_Li", "Li0–1FePO4", "3.5")])
    write_export(export_dir / "b.csv", [("mp-1_Li", "Li0–1CoO2", "9.9"), ("mp-3_Na", "Na0–1FePO4", "2.9")])
    collected = collect_records("Li", use_api=False, refresh_api_cache=False, use_embedded="auto", log=print)
    assert list(collected.records["battery_id"]) == ["mp-1_Li", "mp-2_Li"]
    assert collected.records.loc[0, "average_voltage_V"] == pytest.approx(4.1)  # first file wins
    assert collected.duplicate_ids == ["mp-1_Li"] and collected.other_ion_rows == 1
    assert "embedded" not in collected.rows_per_source
    everything = collect_records("", use_api=False, refresh_api_cache=False, use_embedded="always", log=print)
    assert {"Li", "Na", "Mg"} <= set(everything.records["working_ion"])


def test_target_accepts_export_headers_and_our_names():
    assert target_column("Average Voltage") == "average_voltage_V"
    assert target_column("Capacity Grav") == "capacity_grav_mAh_g"
    assert target_column("energy_grav_Wh_kg") == "energy_grav_Wh_kg"
    with pytest.raises(ValueError, match="Spacegroup"):
        target_column("Spacegroup")


class FakeDocument:
    """What mp-api returns with `fields=`: a pydantic document; model_dump gives its fields."""

    def __init__(self, **fields):
        self.fields = fields

    def model_dump(self):
        return self.fields


class FakeElectrodes:
    calls: list = []
    documents = [
        FakeDocument(battery_id="mp-22526_Li", battery_formula="Li0-1CoO2", formula_charge="CoO2",
                     formula_discharge="LiCoO2", working_ion="Li", average_voltage=3.9, capacity_grav=274.0,
                     capacity_vol=1400.0, energy_grav=1070.0, energy_vol=5400.0, stability_charge=0.0,
                     stability_discharge=0.0),
        FakeDocument(battery_id="mp-19017_Li", battery_formula="Li0-1FePO4", formula_charge="FePO4",
                     formula_discharge="Li2Fe2P2O8", working_ion="Li", average_voltage=3.45, capacity_grav=170.0,
                     capacity_vol=None, energy_grav=None, energy_vol=None, stability_charge=0.01,
                     stability_discharge=0.0),
    ]

    def search(self, **query):
        self.calls.append(query)
        return self.documents


class FakeMPRester:
    """Stands in for mp_api.client.MPRester at its boundary (constructor, context manager, search)."""

    keys: list = []

    def __init__(self, api_key=None, **_):
        self.keys.append(api_key)
        self.materials = type("Materials", (), {"insertion_electrodes": FakeElectrodes()})()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class UnreachableMPRester(FakeMPRester):
    def __enter__(self):
        raise ConnectionError("Name or service not known")


def test_api_path_queries_once_then_repeats_offline_from_the_cache(data_root, monkeypatch):
    FakeElectrodes.calls.clear()
    FakeMPRester.keys.clear()
    monkeypatch.setattr(mp_api.client, "MPRester", FakeMPRester)
    monkeypatch.setenv("MP_API_KEY", "test-key")
    collected = collect_records("Li", use_api=True, refresh_api_cache=False, use_embedded="auto", log=print)
    assert FakeMPRester.keys == ["test-key"]
    assert FakeElectrodes.calls[0]["working_ion"] == "Li"
    assert {"battery_id", "formula_charge", "formula_discharge", "average_voltage"} <= set(FakeElectrodes.calls[0]["fields"])
    assert list(collected.records["source"]) == ["materials_project_api"] * 2  # no embedded rows: the API had some
    lifepo4 = collected.records.set_index("battery_id").loc["mp-19017_Li"]
    assert lifepo4["ion_per_host_discharge"] == pytest.approx(1.0) and lifepo4["capacity_grav_mAh_g"] == 170.0
    cache = data_root / "cache" / "electrodes" / "mp_insertion_electrodes_Li.json"
    assert len(json.loads(cache.read_text())["documents"]) == 2
    assert not (data_root / "raw").exists()  # the cache is no user input: nothing is written under raw/

    monkeypatch.delenv("MP_API_KEY")
    monkeypatch.setattr(mp_api.client, "MPRester", UnreachableMPRester)
    again = collect_records("Li", use_api=True, refresh_api_cache=False, use_embedded="auto", log=print)
    assert len(FakeElectrodes.calls) == 1 and "cache" in again.api_status
    pd.testing.assert_frame_equal(again.records, collected.records)


def test_missing_key_or_network_falls_back_to_local_sources_with_a_message(data_root, monkeypatch):
    monkeypatch.delenv("MP_API_KEY", raising=False)
    logged, log = messages()
    collected = collect_records("Li", use_api=True, refresh_api_cache=False, use_embedded="auto", log=log)
    assert "MP_API_KEY is not set" in logged[0]
    assert len(collected.records) >= 30 and set(collected.records["source"]) == {"embedded"}

    monkeypatch.setenv("MP_API_KEY", "test-key")
    monkeypatch.setattr(mp_api.client, "MPRester", UnreachableMPRester)
    logged.clear()
    collected = collect_records("Li", use_api=True, refresh_api_cache=True, use_embedded="auto", log=log)
    assert "unreachable" in logged[0] and "ConnectionError" in logged[0]
    assert set(collected.records["source"]) == {"embedded"}
    assert not sources.mp_cache_path("Li").exists()
