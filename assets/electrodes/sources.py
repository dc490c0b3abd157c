"""Electrode records from every source, parsed and merged (no Dagster import).

Sources, in priority order when a battery id appears twice:
1. Battery Explorer CSV exports dropped in data/raw/electrodes/*.csv
2. the Materials Project insertion-electrode API (mp-api), cached in
   data/cache/electrodes/mp_insertion_electrodes_<ion>.json so a run repeats offline
   (never under data/raw/, which only the user writes)
3. the embedded curated literature table (data/curated_electrodes.csv), read from the
   package, labelled source=embedded, and used only when the user has no records
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from assets.electrodes.formulas import (
    FormulaError,
    battery_from_end_members,
    parse_battery_formula,
    theoretical_capacity_mAh_per_g,
    working_ion_from_battery_id,
)
from resources.datapaths import Rejection, atomic_write_bytes, data_root, raw_dir

PIPELINE = "electrodes"
EMBEDDED_CSV = Path(__file__).parent / "data" / "curated_electrodes.csv"
CANDIDATES_NAME = "candidates.csv"

# Battery Explorer export header -> our column (units in the name).
EXPORT_COLUMNS = {
    "Battid": "battery_id",
    "Reduced Cell Formula": "formula",
    "Type": "type",
    "Spacegroup": "spacegroup",
    "Average Voltage": "average_voltage_V",
    "Capacity Grav": "capacity_grav_mAh_g",
    "Capacity Vol": "capacity_vol_mAh_cm3",
    "Specific E Wh/kg": "energy_grav_Wh_kg",
    "E Density Wh/l": "energy_vol_Wh_l",
    "Stability Charge": "stability_charge_eV_atom",
    "Stability Discharge": "stability_discharge_eV_atom",
}
REQUIRED_EXPORT_COLUMNS = ["Battid", "Reduced Cell Formula"]
NUMERIC_COLUMNS = list(EXPORT_COLUMNS.values())[4:]
# mp-api InsertionElectrodeDoc field -> our column.
MP_FIELDS = {
    "battery_id": "battery_id",
    "battery_formula": "formula",
    "formula_charge": "formula_charge",
    "formula_discharge": "formula_discharge",
    "working_ion": "working_ion",
    "average_voltage": "average_voltage_V",
    "capacity_grav": "capacity_grav_mAh_g",
    "capacity_vol": "capacity_vol_mAh_cm3",
    "energy_grav": "energy_grav_Wh_kg",
    "energy_vol": "energy_vol_Wh_l",
    "stability_charge": "stability_charge_eV_atom",
    "stability_discharge": "stability_discharge_eV_atom",
}
RECORD_COLUMNS = [
    "battery_id", "working_ion", "formula", "formula_charge", "formula_discharge",
    "ion_per_host_charge", "ion_per_host_discharge", "theoretical_capacity_mAh_g",
    "type", "spacegroup", *NUMERIC_COLUMNS, "source", "reference",
]


def target_column(name: str) -> str:
    """Our column for a target given by its export header ('Average Voltage') or our own name."""
    if name in NUMERIC_COLUMNS:
        return name
    if EXPORT_COLUMNS.get(name) in NUMERIC_COLUMNS:
        return EXPORT_COLUMNS[name]
    allowed = [header for header, column in EXPORT_COLUMNS.items() if column in NUMERIC_COLUMNS]
    raise ValueError(f"target {name!r} is not a numeric electrode column; expected one of {allowed}")


def _number(value, column: str) -> float:
    """A float, NaN for an empty cell; ValueError naming the column for anything else."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{column} is {value!r}, expected a number") from None


def build_record(raw: dict, source: str) -> dict:
    """One parsed record from a row in our column names; FormulaError/ValueError say what is wrong."""
    if not isinstance(raw, dict):
        raise ValueError(f"expected a record with named fields, got {type(raw).__name__}")
    battery_id = str(raw.get("battery_id") or "").strip()
    if not battery_id:
        raise FormulaError("battery id is empty")
    working_ion = working_ion_from_battery_id(battery_id)
    if raw.get("formula_charge") and raw.get("formula_discharge"):
        battery = battery_from_end_members(raw["formula_charge"], raw["formula_discharge"], working_ion)
    else:
        battery = parse_battery_formula(raw.get("formula") or "", working_ion)
    record = {
        "battery_id": battery_id,
        "working_ion": working_ion,
        "formula": str(raw.get("formula") or battery.discharged),
        "formula_charge": battery.charged,
        "formula_discharge": battery.discharged,
        "ion_per_host_charge": battery.ion_per_host_charged,
        "ion_per_host_discharge": battery.ion_per_host_discharged,
        "theoretical_capacity_mAh_g": theoretical_capacity_mAh_per_g(battery),
        "type": str(raw.get("type") or ""),
        "spacegroup": str(raw.get("spacegroup") or ""),
        "source": source,
        "reference": str(raw.get("reference") or ""),
    }
    record.update({column: _number(raw.get(column), column) for column in NUMERIC_COLUMNS})
    return record


def records_from_rows(rows: list[dict], source: str, first_row: int = 1) -> tuple[list[dict], list[Rejection]]:
    """Parse every row; a bad one becomes a Rejection naming its row and the problem."""
    records, rejections = [], []
    for number, raw in enumerate(rows, start=first_row):
        try:
            records.append(build_record(raw, source))
        except ValueError as error:  # FormulaError is a ValueError
            rejections.append(Rejection(source, number, str(error)))
    return records, rejections


def read_export_csv(path: Path) -> tuple[list[dict], list[Rejection], int]:
    """(records, rejections, rows read) of one Battery Explorer export; row numbers are file lines."""
    source = str(path)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (OSError, ValueError, pd.errors.ParserError) as error:
        return [], [Rejection(source, None, f"cannot read as CSV: {error}")], 1
    table.columns = [str(name).strip() for name in table.columns]
    missing = [name for name in REQUIRED_EXPORT_COLUMNS if name not in table.columns]
    if missing:
        reason = f"missing column(s) {missing}; expected a Battery Explorer export with {list(EXPORT_COLUMNS)}"
        return [], [Rejection(source, None, reason)], max(len(table), 1)
    rows = table.rename(columns={**EXPORT_COLUMNS, "Source": "reference"}).to_dict("records")
    records, rejections = records_from_rows(rows, source, first_row=2)  # line 1 is the header
    return records, rejections, len(rows)


def cache_dir() -> Path:
    """Where downloaded sources are cached: <root>/cache/electrodes (not raw/: that is the user's)."""
    return data_root() / "cache" / PIPELINE


def mp_cache_path(working_ion: str | None) -> Path:
    return cache_dir() / f"mp_insertion_electrodes_{working_ion or 'all'}.json"


def _document_dict(document) -> dict:
    """An mp-api document (pydantic model or dict) as plain JSON values in our column names."""
    data = document.model_dump() if hasattr(document, "model_dump") else dict(document)
    row = {}
    for mp_field, column in MP_FIELDS.items():
        value = data.get(mp_field)
        row[column] = value if value is None or isinstance(value, (int, float)) else str(value)
    return row


def fetch_materials_project(working_ion: str | None, refresh: bool, log: Callable[[str], None]) -> tuple[list[dict], str]:
    """(rows, where they came from). Cache first unless refresh; never raises for a missing key or network."""
    cache = mp_cache_path(working_ion)
    if cache.exists() and not refresh:
        return _cached_rows(cache, log), f"cache {cache}"
    api_key = os.environ.get("MP_API_KEY")
    if not api_key:
        log("MP_API_KEY is not set: the Materials Project is not queried; using local sources only")
        return _cached_rows(cache, log), "not queried (MP_API_KEY not set)"
    try:
        from mp_api.client import MPRester

        with MPRester(api_key) as rester:
            documents = rester.materials.insertion_electrodes.search(working_ion=working_ion, fields=list(MP_FIELDS))
        rows = [_document_dict(document) for document in documents]
    except Exception as error:  # any network/auth/server failure: the local sources still run
        log(f"Materials Project unreachable ({type(error).__name__}: {error}); using local sources only")
        return _cached_rows(cache, log), f"unreachable ({type(error).__name__})"
    fetched = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    payload = {"working_ion": working_ion, "fetched_utc": fetched, "documents": rows}
    atomic_write_bytes(cache, json.dumps(payload, indent=1).encode())
    return rows, f"Materials Project API ({len(rows)} documents, cached in {cache})"


def _cached_rows(cache: Path, log: Callable[[str], None]) -> list[dict]:
    """The cached API rows; none (with a message) when the cache is missing or unreadable."""
    if not cache.exists():
        return []
    try:
        return list(json.loads(cache.read_text())["documents"])
    except (ValueError, KeyError, TypeError) as error:
        log(f"{cache} is not a readable API cache ({error}); ignoring it")
        return []


@dataclass
class CollectedRecords:
    """All sources merged: the records and what happened on the way."""

    records: pd.DataFrame
    rejections: list[Rejection] = field(default_factory=list)
    rows_read: int = 0
    rows_per_source: dict[str, int] = field(default_factory=dict)
    rows_by_source: dict[str, int] = field(default_factory=dict)  # rows read (accepted + rejected) per source
    duplicate_ids: list[str] = field(default_factory=list)
    other_ion_rows: int = 0
    api_status: str = ""

    @property
    def rejected_share(self) -> float:
        return len(self.rejections) / self.rows_read if self.rows_read else 0.0

    @property
    def data_kind(self) -> str:
        """'embedded' when only the embedded table supplied records, 'user' otherwise ('none' when empty)."""
        sources = set(self.records["source"]) if len(self.records) else set()
        return "none" if not sources else "embedded" if sources <= {"embedded"} else "user"


def export_files() -> list[Path]:
    """The user's CSV exports in data/raw/electrodes (candidates.csv is not one)."""
    folder = raw_dir(PIPELINE)
    return sorted(p for p in folder.glob("*.csv") if p.name != CANDIDATES_NAME) if folder.exists() else []


def collect_records(
    working_ion: str | None,
    use_api: bool,
    refresh_api_cache: bool,
    use_embedded: str,
    log: Callable[[str], None],
) -> CollectedRecords:
    """Exports, then the API, then (per `use_embedded`: auto | always | never) the curated table.

    `auto` adds the curated table only when no other source has a record for the working ion.
    """
    collected = CollectedRecords(records=pd.DataFrame(columns=RECORD_COLUMNS))
    batches: list[list[dict]] = []
    for path in export_files():
        records, rejections, rows = read_export_csv(path)
        _add_batch(collected, batches, str(path), records, rejections, rows)
    if use_api:
        rows, collected.api_status = fetch_materials_project(working_ion, refresh_api_cache, log)
        records, rejections = records_from_rows(rows, "materials_project_api")
        _add_batch(collected, batches, "materials_project_api", records, rejections, len(rows))
    has_own_records = any(_matches_ion(r, working_ion) for batch in batches for r in batch)
    if use_embedded == "always" or (use_embedded == "auto" and not has_own_records):
        records, rejections, rows = read_export_csv(EMBEDDED_CSV)
        _add_batch(collected, batches, "embedded", [{**r, "source": "embedded"} for r in records], rejections, rows)
    merged = pd.DataFrame([r for batch in batches for r in batch], columns=RECORD_COLUMNS)
    duplicated = merged["battery_id"].duplicated(keep="first")
    collected.duplicate_ids = sorted(set(merged.loc[duplicated, "battery_id"]))
    merged = merged.loc[~duplicated]
    keep = merged["working_ion"].eq(working_ion) if working_ion else merged["working_ion"].notna()
    collected.other_ion_rows = int((~keep).sum())
    collected.records = merged.loc[keep].reset_index(drop=True)
    return collected


def _matches_ion(record, working_ion: str | None) -> bool:
    return not working_ion or record["working_ion"] == working_ion


def _add_batch(collected, batches, name, records, rejections, rows) -> None:
    batches.append(records)
    collected.rejections.extend(rejections)
    collected.rows_read += rows
    collected.rows_per_source[name] = len(records)
    collected.rows_by_source[name] = rows
