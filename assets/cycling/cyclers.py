"""Battery-cycler files as labs have them (Arbin, Maccor, BioLogic, Neware, PEC, Novonix, Battery Data Format)
to the unified per-time-step rows of `assets.cycling.unified`.

Formats are recognised by content, never by extension alone (a Maccor raw file is named after its channel:
`.000`-`.999`). Binary formats go through the tools made for them:
    Arbin `.res`       an MS Access database: mdbtools' `mdb-export` (Debian package `mdbtools`)
    BioLogic `.mpr`    galvani (GPL-3.0-or-later; the maintained EC-Lab binary reader)
    Neware `.nda/.ndax` fastnda (BSD-3-Clause)
    `.xlsx` exports    openpyxl through pandas (Arbin MITS, Neware BTS workbooks); `.xls` is rejected
Text exports (Arbin csv, Maccor txt/csv, BioLogic `.mpt`, Neware csv, PEC csv, Novonix csv, Battery Data
Format csv) are read by pandas: their header row is found by its column names, and each column name is split
into a quantity and a unit (`Test Time / h`, `Charge_Capacity(Ah)`, `Cap. [Ah]`, `I/mA`, `Total Time (Hours in
hh:mm:ss.xxx)`), so header spellings, units (mAh/Ah, ms/s/min/h, hh:mm:ss) and decimal commas of one format's
many exporters are handled by one table instead of one fitted reader per file.

Conventions of the rows returned (reader boundary):
    current            A, negative while discharging. Files that record an unsigned current with a mode column
                       (Maccor `Md` = C/D/R) get the sign from the mode; files whose discharge capacity grows
                       while their current is positive (the opposite convention) are flipped.
    charge_capacity,   Ah since the start of the cycle (0 at each cycle start), whether the instrument counts
    discharge_capacity per step (Maccor, Neware), per cycle (Arbin) or over the whole test; from a single
                       capacity column they are split by the sign of the current, from EC-Lab's (Q-Qo) by the
                       sign of its change.
    charge_energy,     Wh since the start of the cycle, the same way.
    discharge_energy
    cycle_number       from 1 (files that count from 0 are shifted by one); a test that was resumed and counts
                       again from its first cycle continues after the highest cycle before the pause.
    test_time_s        s since the test started; where the clock restarts (paused and resumed test), the later
                       part continues from the last time before the restart.
    time               minutes since the cycle's first row.
    step_index, step_type   as the instrument names them.
BioLogic impedance rows (frequency > 0) are not cycling rows and are left out.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
import shutil
import subprocess
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

SNIFF_BYTES = 1 << 16
HEADER_SCAN_LINES = 400


class CyclerFileError(ValueError):
    """A file that cannot be read as a cycler file; the message says what was expected."""


# ---- recognising a format by content ------------------------------------------------------------------------

@dataclass(frozen=True)
class Format:
    key: str          # reader key
    instrument: str   # for people: the instrument (or convention) that wrote the file


FORMATS = {f.key: f for f in [
    Format("arbin_res", "Arbin"), Format("arbin_csv", "Arbin"), Format("maccor", "Maccor"),
    Format("biologic_mpr", "BioLogic"), Format("biologic_mpt", "BioLogic"), Format("neware_nda", "Neware"),
    Format("neware_csv", "Neware"), Format("pec", "PEC"), Format("novonix", "Novonix"),
    Format("bdf", "Battery Data Format"), Format("generic", "unnamed exporter (columns recognised by name)"),
    Format("xlsx", "spreadsheet export (.xlsx)"), Format("xls", "Excel 97-2003 workbook (.xls)"),
]}
SIDECAR = re.compile(r"(?P<stem>.+)_metadata\.csv", re.IGNORECASE)


def sniff(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(SNIFF_BYTES)


def text_encoding(head: bytes) -> str | None:
    """The encoding of a text file from its first bytes (UTF-16 with its byte-order mark, UTF-8, else Latin-1:
    EC-Lab and Maccor exports are often Windows-1252), or None for a binary file (NUL bytes in the first 4 kB)."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    if b"\x00" in head[:4096]:
        return None
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start < len(head) - 4:  # not just a multi-byte character cut by the sniff window
            return "latin-1"
    return "utf-8-sig"


def _text(head: bytes) -> str | None:
    """The sniffed bytes as text, or None for a binary file."""
    encoding = text_encoding(head)
    if encoding is None:
        return None
    return (head[:len(head) // 2 * 2] if encoding == "utf-16" else head).decode(encoding, errors="replace")


def is_text_file(path: Path) -> bool:
    return _text(sniff(path)) is not None


def detect_format(path: Path) -> str | None:
    """The reader key of `path` judged by its content (FORMATS), or None when no reader knows it."""
    path = Path(path)
    head = sniff(path)
    if head[4:19] in (b"Standard Jet DB", b"Standard ACE DB"):
        return "arbin_res"
    if head.startswith(b"BIO-LOGIC MODULAR FILE"):
        return "biologic_mpr"
    if head.startswith(b"NEWARE"):
        return "neware_nda"
    if head.startswith(b"\xd0\xcf\x11\xe0"):  # OLE2 compound file: Excel 97-2003 by name (Thumbs.db is one too)
        return "xls" if path.suffix.lower() == ".xls" else None
    if head.startswith(b"PK\x03\x04"):
        return _zip_format(path, head)
    text = _text(head)
    if text is None:
        return None
    return _detect_text_format(path, text)


def _zip_format(path: Path, head: bytes) -> str | None:
    """Neware .ndax or an .xlsx workbook, by the zip's members (by the name where the zip is damaged)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        suffix = path.suffix.lower()
        return "neware_nda" if suffix == ".ndax" or b"data.ndc" in head else "xlsx" if suffix == ".xlsx" else None
    if any(name.endswith(".ndc") for name in names):
        return "neware_nda"
    return "xlsx" if "xl/workbook.xml" in names else None


def _detect_text_format(path: Path, text: str) -> str | None:
    start = text.lstrip()[:200].lower()
    if start.startswith(("ec-lab ascii file", "bt-lab ascii file")):
        return "biologic_mpt"
    header = find_header(text)
    if header is None:
        return None
    names = {_base(split_unit(name)[0]) for name in header.names}
    if "[summary]" in start or "novonix" in text[:4000].lower() or {"runtime", "potential"} <= names:
        return "novonix"
    if "testregime" in "".join(text[:4000].lower().split()) or any("hoursinhh" in _base(n) for n in header.names):
        return "pec"
    if (start.startswith(("name:", "today's date", "filename:")) or {"cyclec", "md", "cyc#", "rec#"} & names
            or "maccor" in start):
        return "maccor"
    if {"datapoint", "cycleindex"} <= names and "steptype" in names:
        return "neware_csv"
    if "cycleindex" in names and ("datapoint" in names or "testtime" in names):
        return "arbin_csv"
    if sum(" / " in n for n in header.names) >= 3:
        return "bdf"
    mapping = header.mapping
    has_capacity = bool({"charge_capacity", "discharge_capacity", "capacity", "net_charge"} & set(mapping))
    return "generic" if {"test_time", "current", "voltage"} <= set(mapping) and has_capacity else None


def sidecar_target(path: Path) -> Path | None:
    """The data file an Arbin `<stem>_Metadata.csv` belongs to (`<stem>.<ext>` beside it), else None."""
    path = Path(path)
    match = SIDECAR.fullmatch(path.name)
    if not match:
        return None
    stem = match.group("stem").lower()
    return next((candidate for candidate in sorted(path.parent.iterdir())
                 if candidate != path and candidate.is_file() and candidate.stem.lower() == stem), None)


# ---- column names to quantities and units ---------------------------------------------------------------------

# (quantity, base-name pattern) in order of preference; a base name is the column name without its unit,
# lower case, without spaces, '_', '.', '-', '<>', '|' and '()' (so "DChg. Cap.(Ah)" -> "dchgcap").
QUANTITIES = [
    ("test_time", r"testtime|totaltime|cumulativetime|runtime|totaltimes|elapsedtime"),
    ("test_time_fallback", r"time"),
    ("datetime", r"datetime|date|realtime|dpttime|dateandtime|systemtime|absolutetime|timestamp|unixtime"),
    ("cycle", r"cycleindex|cyclenumber|cyclecount|cyclec|cycleid|cycle|cyc#|cyc"),
    ("half_cycle", r"halfcycle"),
    ("step", r"stepindex|stepnumber|stepid|stepcount|step|steps|ns"),
    ("step_type", r"steptype|status|instructionname|md|state|stepname"),
    ("current", r"current|i|curr|amps|amp|amperes"),
    ("voltage", r"voltage|potential|ewe|ecell|volt|volts|u"),
    ("charge_capacity", r"chargecapacity|chgcap|chgcapacity|qcharge|capacitycharge|chargecap"),
    ("discharge_capacity", r"dischargecapacity|dchgcap|dchgcapacity|qdischarge|capacitydischarge|dischargecap"),
    ("capacity", r"capacity|cap|amphr|ahr"),
    ("net_charge", r"qqo|qq0|netcapacity|netcharge"),
    ("charge_energy", r"chargeenergy|chgenergy|energycharge"),
    ("discharge_energy", r"dischargeenergy|dchgenergy|energydischarge"),
    ("energy", r"energy|ener|watthr|whr"),
    ("temperature", r"temperature\w*|temp\d*|t\d*|auxtemperature\w*|celltemperature"),
    ("frequency", r"freq|frequency"),
    ("cell", r"cell|testid"),  # several cells (channels, tests) in one file: PEC's Cell, Arbin .res's Test_ID
]
_QUANTITY_PATTERNS = [(q, re.compile(p)) for q, p in QUANTITIES]
_UNIT_IN_BRACKETS = re.compile(r"^(?P<name>.*?)\s*[\(\[](?P<unit>[^\)\]]*)[\)\]]\s*(?P<suffix>_\d+)?$")
_BASE_DROP = re.compile(r"[\s_.\-<>|()]+")

TIME_UNITS = {"s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0, "ms": 1e-3, "min": 60.0,
              "mins": 60.0, "minute": 60.0, "minutes": 60.0, "h": 3600.0, "hr": 3600.0, "hrs": 3600.0,
              "hour": 3600.0, "hours": 3600.0, "d": 86400.0, "day": 86400.0, "days": 86400.0}
UNITS = {
    "current": {"a": 1.0, "ma": 1e-3, "ua": 1e-6, "µa": 1e-6, "na": 1e-9},
    "voltage": {"v": 1.0, "mv": 1e-3},
    "capacity": {"ah": 1.0, "a.h": 1.0, "mah": 1e-3, "ma.h": 1e-3, "uah": 1e-6, "µah": 1e-6, "µa.h": 1e-6,
                 "c": 1 / 3600, "as": 1 / 3600, "mas": 1e-3 / 3600},
    "energy": {"wh": 1.0, "w.h": 1.0, "mwh": 1e-3, "mw.h": 1e-3, "kwh": 1e3, "j": 1 / 3600},
    "temperature": {"°c": 0.0, "c": 0.0, "degc": 0.0, "deg c": 0.0, "oc": 0.0, "℃": 0.0, "k": -273.15},
}
UNIT_KIND = {"current": "current", "voltage": "voltage", "charge_capacity": "capacity",
             "discharge_capacity": "capacity", "capacity": "capacity", "net_charge": "capacity",
             "charge_energy": "energy", "discharge_energy": "energy", "energy": "energy",
             "temperature": "temperature"}


def split_unit(name: str) -> tuple[str, str]:
    """('Test Time', 'h') from 'Test Time / h', 'Charge_Capacity(Ah)', 'Cap. [Ah]', 'I/mA', 'Temperature (C)_1'."""
    name = name.strip().strip('"')
    match = _UNIT_IN_BRACKETS.match(name)
    if match and name.rstrip().endswith((")", "]")) or (match and match.group("suffix")):
        return match.group("name") + (match.group("suffix") or ""), match.group("unit").strip()
    if "/" in name:
        quantity, unit = name.rsplit("/", 1)
        return quantity.strip(), unit.strip()
    return name, ""


def _base(name: str) -> str:
    return _BASE_DROP.sub("", name.lower())


def map_columns(names: list[str]) -> dict[str, tuple[str, str]]:
    """{quantity: (column name, unit)} for the columns of a header; the first column matching wins."""
    mapping: dict[str, tuple[str, str]] = {}
    used = set()
    parsed = [(name, *split_unit(name)) for name in names]  # (name, quantity part, unit)
    bases = {name: _base(re.sub(r"_\d+$", "", stem)) for name, stem, _ in parsed}
    for quantity, pattern in _QUANTITY_PATTERNS:
        for name, _, unit in parsed:
            if name not in used and pattern.fullmatch(bases[name]):
                mapping[quantity] = (name, unit)
                used.add(name)
                break
    if "test_time" not in mapping:
        # Maccor's 'Test (Sec)': a column named just "test" is the test time only with a time unit (PEC's
        # "Test" is the test's number).
        timed = [(name, unit) for name, _, unit in parsed
                 if name not in used and bases[name] == "test" and unit.lower() in TIME_UNITS]
        if timed:
            mapping["test_time"] = timed[0]
        elif "test_time_fallback" in mapping:
            mapping["test_time"] = mapping["test_time_fallback"]
    mapping.pop("test_time_fallback", None)
    return mapping


@dataclass
class Header:
    line: int                    # 0-based line number of the column names
    separator: str
    decimal: str
    names: list[str]
    mapping: dict[str, tuple[str, str]]


def find_header(text: str) -> Header | None:
    """The first line (of the first HEADER_SCAN_LINES) whose columns name a voltage or current and two more
    quantities; its separator (tab, comma or semicolon) and the data's decimal mark."""
    lines = text.splitlines()
    for number, line in enumerate(lines[:HEADER_SCAN_LINES]):
        separator = max(["\t", ",", ";"], key=line.count)
        if line.count(separator) < 2:
            continue
        names = [n.strip() for n in next(csv.reader([line], delimiter=separator))]
        mapping = map_columns([n for n in names if n])
        if ("voltage" in mapping or "current" in mapping) and len(mapping) >= 3:
            data = next((ln for ln in lines[number + 1:number + 20] if ln.strip()), "")
            decimal = "," if separator != "," and re.search(r"\d,\d", data) else "."
            return Header(number, separator, decimal, names, mapping)
    return None


# ---- values --------------------------------------------------------------------------------------------------

def _unit_factor(quantity: str, column: str, unit: str) -> tuple[float, float]:
    """(scale, offset) taking a column to A, V, Ah, Wh or degC; CyclerFileError for a unit no table knows."""
    kind = UNIT_KIND[quantity]
    unit_key = unit.strip().lower().replace(" ", "") if kind != "temperature" else unit.strip().lower()
    if unit_key in ("", "1"):
        return (1.0, 0.0)
    table = UNITS[kind]
    if unit_key not in table:
        raise CyclerFileError(f"column {column!r}: unit {unit!r} not understood for {kind} "
                              f"(expected one of {sorted(table)})")
    return (1.0, table[unit_key]) if kind == "temperature" else (table[unit_key], 0.0)


_DURATION = re.compile(r"^\s*(?:(?P<days>\d+)\s*(?:d|day|days)?[\s\-]+)?(?P<h>\d+):(?P<m>\d+):(?P<s>\d+(?:[.,]\d*)?)\s*$")


def duration_seconds(values: pd.Series) -> pd.Series:
    """Seconds from 'hh:mm:ss(.fff)' strings (hours may pass 24; an optional 'N d' or 'N-' day prefix)."""
    fast = pd.to_timedelta(values, errors="coerce")  # compiled parser: '144:01:18', '00:00:01.000'
    if fast.notna().all():
        return fast.dt.total_seconds()
    parts = values.astype(str).str.extract(_DURATION)
    seconds = pd.to_numeric(parts["s"].str.replace(",", ".", regex=False), errors="coerce")
    return (pd.to_numeric(parts["days"], errors="coerce").fillna(0) * 86400
            + pd.to_numeric(parts["h"], errors="coerce") * 3600 + pd.to_numeric(parts["m"], errors="coerce") * 60
            + seconds)


def datetime_seconds(values: pd.Series) -> pd.Series:
    """Seconds since the epoch from date-time text, unix seconds or Excel/Access day serials (Arbin)."""
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().mean() > 0.9:
        if numeric.median() > 1e8:
            return numeric.astype(float)
        return (numeric - 25569.0) * 86400.0  # days since 1899-12-30
    with warnings.catch_warnings():  # "could not infer format": then it parses value by value, as wanted
        warnings.simplefilter("ignore", UserWarning)
        parsed = pd.to_datetime(values, errors="coerce")  # one format inferred from the first value: vectorised
        if parsed.isna().mean() > 0.1:
            parsed = pd.to_datetime(values, errors="coerce", format="mixed")  # per value, slow: only when needed
    return (parsed - pd.Timestamp("1970-01-01")).dt.total_seconds()


def _number(values: pd.Series, decimal: str = ".") -> np.ndarray:
    if values.dtype.kind in "fiu":
        return values.to_numpy(dtype=float)
    text = values.astype(str).str.strip()
    if decimal == ",":
        text = text.str.replace(",", ".", regex=False)
    return pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)


def _stripped_text(values: pd.Series) -> np.ndarray:
    """Text values stripped, each distinct value once (step names repeat on every row)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    return np.array([str(u).strip() for u in uniques], dtype=object)[codes] if len(codes) else np.array([], object)


def test_time_seconds(raw: pd.DataFrame, mapping: dict, decimal: str = ".") -> tuple[np.ndarray, str]:
    """Test time (s) and how it was obtained: the column with its unit, 'hh:mm:ss' text, a unit-less column
    calibrated against the date-time column, or the date-time column itself."""
    clock = None
    if "datetime" in mapping:
        # Only a unit-less time column needs the clock, and then only its first rows (parsing dates is slow).
        dates = raw[mapping["datetime"][0]]
        needed = "test_time" not in mapping or not mapping["test_time"][1]
        clock = datetime_seconds(dates if "test_time" not in mapping else dates.iloc[:CALIBRATION_ROWS]) \
            if needed else None
    if "test_time" not in mapping:
        if clock is None or clock.isna().all():
            raise CyclerFileError("no test-time column (e.g. 'Test_Time(s)', 'Test Time / h', 'time/s') "
                                  "and no date-time column to derive it from")
        return (clock - clock.dropna().iloc[0]).to_numpy(float), f"date-time column {mapping['datetime'][0]!r}"
    column, unit = mapping["test_time"]
    values = raw[column]
    if values.dtype == object and values.astype(str).str.contains(":", regex=False).any():
        return duration_seconds(values).to_numpy(float), f"{column!r} read as hh:mm:ss"
    numbers = _number(values, decimal)
    unit_key = unit.strip().lower()
    if unit_key in TIME_UNITS:
        return numbers * TIME_UNITS[unit_key], f"{column!r} in {unit}"
    if unit_key.startswith("hours in"):
        return numbers * 3600.0, f"{column!r} in hours"
    if unit_key:
        raise CyclerFileError(f"column {column!r}: time unit {unit!r} not understood "
                              f"(expected one of {sorted(TIME_UNITS)} or hh:mm:ss text)")
    factor = _calibrated_time_factor(numbers[:CALIBRATION_ROWS], clock)
    return numbers * factor, f"{column!r} without a unit, read as {_factor_name(factor)}"


CALIBRATION_ROWS = 50  # rows of a unit-less time column compared with the clock


def _calibrated_time_factor(numbers: np.ndarray, clock: pd.Series | None) -> float:
    """Seconds per unit of a unit-less time column: the one of ms, s, min, h closest to what the date-time
    column says elapsed over the first rows (Maccor exports write TestTime in s or min depending on the
    exporter); s without a clock."""
    if clock is None:
        return 1.0
    finite = np.isfinite(numbers) & np.isfinite(clock.to_numpy(float))
    if finite.sum() < 2:
        return 1.0
    t, c = numbers[finite], clock.to_numpy(float)[finite]
    restart = np.flatnonzero(np.diff(t) < 0)  # compare up to a paused test's restart, not across it
    if restart.size:
        t, c = t[:restart[0] + 1], c[:restart[0] + 1]
    span = t[-1] - t[0]
    if span <= 0:
        return 1.0
    ratio = (c[-1] - c[0]) / span
    candidates = np.array([1e-3, 1.0, 60.0, 3600.0])
    return float(candidates[np.argmin(np.abs(np.log(np.maximum(ratio, 1e-12)) - np.log(candidates)))])


def _factor_name(factor: float) -> str:
    return {1e-3: "ms", 1.0: "s", 60.0: "min", 3600.0: "h"}[factor] + " (calibrated against the date-time column)"


# ---- reading each format to one raw table with SI units ------------------------------------------------------

RAW_COLUMNS = ["test_time_s", "cycle", "half_cycle", "step", "step_type", "current_a", "voltage_v",
               "charge_capacity_ah", "discharge_capacity_ah", "capacity_ah", "net_charge_ah", "charge_energy_wh",
               "discharge_energy_wh", "energy_wh", "temperature_c", "frequency_hz", "cell"]


@dataclass
class RawTable:
    frame: pd.DataFrame   # RAW_COLUMNS (absent quantities all NaN)
    time_origin: str


def _from_columns(raw: pd.DataFrame, mapping: dict, decimal: str = ".") -> RawTable:
    """A parsed table with named columns (text export, database table, binary reader's frame) to RAW_COLUMNS."""
    if "voltage" not in mapping:
        raise CyclerFileError(f"no voltage column (e.g. 'Voltage(V)', 'Ewe/V'); columns: {list(raw.columns)[:20]}")
    seconds, origin = test_time_seconds(raw, mapping, decimal)
    n = len(raw)
    out = {"test_time_s": seconds}  # arrays, made a frame once (adding columns one by one re-blocks it each time)
    for quantity in ["cycle", "half_cycle", "step", "frequency"]:
        key = "frequency_hz" if quantity == "frequency" else quantity
        out[key] = _number(raw[mapping[quantity][0]], decimal) if quantity in mapping else np.full(n, np.nan)
    for quantity in ["step_type", "cell"]:
        out[quantity] = _stripped_text(raw[mapping[quantity][0]]) if quantity in mapping else np.full(n, "", object)
    for quantity, column in [("current", "current_a"), ("voltage", "voltage_v"),
                             ("charge_capacity", "charge_capacity_ah"), ("discharge_capacity", "discharge_capacity_ah"),
                             ("capacity", "capacity_ah"), ("net_charge", "net_charge_ah"),
                             ("charge_energy", "charge_energy_wh"), ("discharge_energy", "discharge_energy_wh"),
                             ("energy", "energy_wh"), ("temperature", "temperature_c")]:
        if quantity in mapping:
            name, unit = mapping[quantity]
            scale, offset = _unit_factor(quantity, name, unit)
            out[column] = _number(raw[name], decimal) * scale + offset
        else:
            out[column] = np.full(n, np.nan)
    return RawTable(pd.DataFrame({column: out[column] for column in RAW_COLUMNS}), origin)


BIG_FILE_BYTES = 64 << 20  # text files above this are read in chunks, with progress lines
CHUNK_ROWS = 500_000


def read_text_export(path: Path, log=None) -> RawTable:
    """A text export (any of the text formats): header found by its column names, then pandas' C parser
    (in chunks with progress lines for files above BIG_FILE_BYTES when `log` is given)."""
    text = _text(sniff(path))
    header = find_header(text or "")
    if header is None:
        raise CyclerFileError("no header row naming voltage or current and two more quantities in the first "
                              f"{HEADER_SCAN_LINES} lines")
    wanted = [name for name, _ in header.mapping.values()]
    positions = [header.names.index(name) for name in wanted]
    options = dict(sep=header.separator, skiprows=header.line + 1, header=None, usecols=positions,
                   encoding=text_encoding(sniff(path)), skip_blank_lines=True,
                   on_bad_lines="error", index_col=False, decimal=header.decimal, engine="c")
    try:
        size = Path(path).stat().st_size
        raw = (_read_in_chunks(path, size, options, log) if log and size > BIG_FILE_BYTES
               else pd.read_csv(path, low_memory=False, **options))
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError) as error:
        raise CyclerFileError(f"not a readable table below the header on line {header.line + 1}: "
                              f"{str(error).splitlines()[0]}") from error
    raw.columns = [header.names[i] for i in sorted(positions)]
    if raw.empty:
        raise CyclerFileError(f"no data rows below the header on line {header.line + 1}")
    return _from_columns(raw, header.mapping, header.decimal)


def _read_in_chunks(path: Path, size: int, options: dict, log) -> pd.DataFrame:
    from resources.progress import Progress

    progress = Progress(f"reading {Path(path).name}", size >> 20, log, unit="MB", every_s=5.0)
    chunks = []
    with open(path, "rb") as handle:
        for chunk in pd.read_csv(handle, chunksize=CHUNK_ROWS, **options):
            chunks.append(chunk)
            progress.update(handle.tell() >> 20)
    return pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame()


MDB_INSTALL = ("Arbin .res files are MS Access databases read with mdbtools' mdb-export, which is not installed: "
               "apt-get install mdbtools (Debian/Ubuntu), brew install mdbtools (macOS)")


def read_arbin_res(path: Path) -> RawTable:
    """Arbin `.res`: the Channel_Normal_Table exported by mdb-export (Test_Time s, Current A, capacities Ah)."""
    if shutil.which("mdb-export") is None:
        raise CyclerFileError(MDB_INSTALL)
    result = subprocess.run(["mdb-export", str(path), "Channel_Normal_Table"], capture_output=True, check=False)
    if result.returncode != 0 or not result.stdout.strip():
        message = result.stderr.decode(errors="replace").strip().splitlines()[:1]
        raise CyclerFileError(f"mdb-export could not read the Channel_Normal_Table (truncated or not an Arbin "
                              f".res?): {message[0] if message else 'no rows'}")
    raw = pd.read_csv(io.BytesIO(result.stdout))
    return _from_columns(raw, map_columns(list(raw.columns)))


def read_biologic_mpr(path: Path) -> RawTable:
    """BioLogic EC-Lab `.mpr` through galvani (columns as EC-Lab names them: time/s, Ewe/V, I/mA, (Q-Qo)/mA.h)."""
    from galvani import BioLogic

    try:
        raw = pd.DataFrame(BioLogic.MPRfile(str(path)).data)
    except Exception as error:  # galvani raises struct/Value/NotImplemented errors on damaged files
        raise CyclerFileError(f"galvani could not read this EC-Lab .mpr (truncated or an unsupported module "
                              f"version?): {type(error).__name__}: {error}") from error
    return _from_columns(raw, map_columns(list(raw.columns)))


FASTNDA_COLUMNS = {"total_time_s": "Test Time / s", "cycle_count": "Cycle / 1", "step_count": "Step / 1",
                   "step_type": "Step Type", "current_mA": "Current / mA", "voltage_V": "Voltage / V",
                   "capacity_mAh": "Capacity / mAh", "charge_capacity_mAh": "Charge Capacity / mAh",
                   "discharge_capacity_mAh": "Discharge Capacity / mAh", "energy_mWh": "Energy / mWh",
                   "charge_energy_mWh": "Charge Energy / mWh", "discharge_energy_mWh": "Discharge Energy / mWh"}


def read_neware_nda(path: Path) -> RawTable:
    """Neware `.nda`/`.ndax` through fastnda; its snake_case_unit columns renamed to 'Quantity / unit'."""
    import fastnda

    try:
        with contextlib.redirect_stdout(io.StringIO()):  # fastnda prints notices; our stdout is for figures
            raw = fastnda.read(str(path)).to_pandas()
    except Exception as error:  # fastnda raises zip, struct and value errors on damaged files
        raise CyclerFileError(f"fastnda could not read this Neware file (truncated?): "
                              f"{type(error).__name__}: {error}") from error
    renamed = raw.rename(columns=FASTNDA_COLUMNS)
    temperatures = [c for c in raw.columns if re.fullmatch(r"aux\d*_temperature_degC", c) and raw[c].abs().max() > 0]
    if temperatures:
        renamed["Temperature / °C"] = raw[temperatures[0]]
    columns = [c for c in renamed.columns if c in FASTNDA_COLUMNS.values() or c == "Temperature / °C"]
    return _from_columns(renamed[columns], map_columns(columns))


def read_xlsx(path: Path) -> RawTable:
    """An .xlsx export (Arbin MITS, Neware BTS): the sheets whose header row names time, current and voltage, in
    workbook order, joined by column name (Arbin splits long tests over Channel_..._1, _2, ... sheets)."""
    try:
        sheets = pd.read_excel(path, sheet_name=None, header=None, dtype=object, engine="openpyxl")
    except Exception as error:  # openpyxl raises zip, XML and key errors on damaged workbooks
        raise CyclerFileError(f"openpyxl could not read this workbook (truncated?): {type(error).__name__}: "
                              f"{error}") from error
    parts = [part for part in map(_sheet_table, sheets.values()) if part is not None]
    if not parts:
        raise CyclerFileError(f"no sheet (of {list(sheets)[:10]}) has a header row naming time, current and voltage")
    raw = pd.concat(parts, ignore_index=True)
    return _from_columns(raw, map_columns(list(raw.columns)))


def _sheet_table(sheet: pd.DataFrame) -> pd.DataFrame | None:
    """The rows below a sheet's header row, named by it; None for a sheet without one (info, statistics)."""
    for row in range(min(len(sheet), HEADER_SCAN_LINES)):
        names = [str(v).strip() if pd.notna(v) else "" for v in sheet.iloc[row].tolist()]
        mapping = map_columns([n for n in names if n])
        if {"voltage", "current"} <= set(mapping) and ({"test_time", "datetime"} & set(mapping)):
            table = sheet.iloc[row + 1:].set_axis(names, axis=1)
            return table.loc[:, [n for n in dict.fromkeys(names) if n]].reset_index(drop=True)
    return None


def read_xls(path: Path) -> RawTable:
    raise CyclerFileError("an Excel 97-2003 workbook (.xls), which no installed reader opens: save it as .xlsx "
                          "or csv from the cycler's software or Excel")


READERS = {"arbin_res": read_arbin_res, "biologic_mpr": read_biologic_mpr, "neware_nda": read_neware_nda,
           "xlsx": read_xlsx, "xls": read_xls}


def read_raw(path: Path, key: str, log=None) -> RawTable:
    if key in READERS:
        return READERS[key](Path(path))
    return read_text_export(Path(path), log)


# ---- from the instrument's conventions to the unified ones -----------------------------------------------------

STEP_KINDS = [("discharge", re.compile(r"(?i)^d$|dchg|dis|cc_?d\b|discharge")),
              ("charge", re.compile(r"(?i)^c$|chg|charge|cccv|^cc_?c")),
              ("rest", re.compile(r"(?i)^r$|rest|idle|ocv|pause|open"))]


def step_kinds(step_type: pd.Series) -> np.ndarray:
    """'charge', 'discharge', 'rest' or '' per row from the instrument's step names (Md C/D/R, 'CC DChg', ...)."""
    codes, names = pd.factorize(step_type.fillna("").astype(str), sort=False)
    kinds = np.array([next((kind for kind, pattern in STEP_KINDS if pattern.search(n)), "") for n in names] or [""])
    return kinds[codes] if len(codes) else np.array([], dtype=str)


def orient_current(current: np.ndarray, kinds: np.ndarray, discharge_steps: np.ndarray) -> tuple[np.ndarray, str]:
    """Current with discharge negative, and what was done: an unsigned current takes its sign from the step
    kinds; a signed one whose discharge rows are mostly positive is flipped."""
    discharging = (kinds == "discharge") if (kinds == "discharge").any() else discharge_steps
    finite = np.isfinite(current)
    if not discharging.any() or not finite.any():
        return current, "as recorded"
    if (current[finite] >= 0).all():
        return np.where(discharging, -np.abs(current), np.abs(current)), "sign from the step type"
    if np.nanmedian(current[discharging]) > 0:
        return -current, "flipped (the file records discharge as positive)"
    return current, "as recorded"


def join_restarts(values: np.ndarray) -> np.ndarray:
    """A series that should not decrease (test time) with its restarts joined: after a drop, the rest continues
    from the last value before it."""
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        return values
    steps = np.diff(values)
    restart = np.r_[False, steps < 0]
    offset = np.cumsum(np.where(restart, np.r_[0.0, -steps], 0.0))
    return values + offset


def cycles_from_current(current: np.ndarray, deadband: float = 1e-3) -> np.ndarray:
    """Cycle numbers (from 1) for a file without a cycle column: a cycle is the file's first half (charge or
    discharge, whichever comes first) and the other half after it; a new one starts where the first half's sign
    of current returns. Currents within `deadband` of the largest are rests and keep the cycle."""
    current = np.nan_to_num(np.asarray(current, dtype=float))
    limit = deadband * (np.abs(current).max() if current.size else 0.0)
    sign = np.where(np.abs(current) > limit, np.sign(current), 0.0)
    flowing = np.flatnonzero(sign)
    if flowing.size == 0:
        return np.ones(current.size, dtype=int)
    first = sign[flowing[0]]
    last_flow = pd.Series(np.where(sign != 0, sign, np.nan)).ffill().to_numpy()  # the sign of the latest flow
    starts = (sign == first) & (np.r_[np.nan, last_flow[:-1]] == -first)
    return 1 + np.cumsum(starts)


def time_restarts(seconds: np.ndarray) -> np.ndarray:
    """Rows where the test time falls back (a paused test resumed with its clock restarted)."""
    return np.r_[False, np.diff(np.asarray(seconds, dtype=float)) < 0] if len(seconds) else np.array([], bool)


def cycle_numbers(cycle: np.ndarray, restarts: np.ndarray | None = None) -> np.ndarray:
    """Cycle numbers from 1: a file counting from 0 is shifted by one; a resumed test that counts again
    (its cycle number falls, or its clock restarts (`restarts`) at the file's first cycle number) continues
    after the highest cycle before the restart."""
    cycle = pd.Series(cycle).ffill().fillna(0).to_numpy(dtype=float)
    if cycle.size == 0:
        return cycle.astype(int)
    drops = np.r_[False, np.diff(cycle) < 0]
    if restarts is not None:
        drops |= restarts & (cycle <= cycle[0])
    segment = np.cumsum(drops)
    running_max = np.maximum.accumulate(cycle)
    offsets = np.zeros(segment.max() + 1)
    for s in range(1, segment.max() + 1):  # one pass per restart (few), not per row
        first = np.argmax(segment == s)
        offsets[s] = offsets[s - 1] + running_max[first - 1] - cycle[first] + 1
    cycle = cycle + offsets[segment]
    return (cycle - cycle.min() + 1 if cycle.min() <= 0 else cycle).astype(int)


def capacity_increments(values: np.ndarray, boundary: np.ndarray) -> np.ndarray:
    """Per-row growth (Ah or Wh) of an instrument counter that may restart at each step, cycle or never.

    A fall at a step or cycle boundary, or to less than half the previous value, is a restart: the row's
    growth is then its own value; otherwise the difference to the previous row.
    """
    q = pd.Series(values).ffill().fillna(0.0).abs().to_numpy(dtype=float)
    previous = np.r_[0.0, q[:-1]]
    restart = (q < previous) & (boundary | (q < 0.5 * previous))
    increments = np.where(restart, q, q - previous)
    if increments.size:
        increments[0] = q[0]
    return increments


def _run_starts(cycle: np.ndarray) -> np.ndarray:
    """Index of the first row of each row's run of one cycle number."""
    change = np.r_[True, cycle[1:] != cycle[:-1]] if cycle.size else np.array([], bool)
    return np.maximum.accumulate(np.where(change, np.arange(cycle.size), 0))


def per_cycle_sum(increments: np.ndarray, cycle: np.ndarray) -> np.ndarray:
    """Cumulative sum that restarts where the cycle number changes (a cycle's rows are contiguous)."""
    total = np.cumsum(increments)
    starts = _run_starts(cycle)
    return total - total[starts] + increments[starts]


@dataclass
class CellRows:
    frame: pd.DataFrame    # unified.COLUMNS + unified.OPTIONAL_COLUMNS, in that order and type
    notes: dict[str, str]  # how time, sign and capacities were obtained


def normalise(table: RawTable, cell_key: str, source: str) -> CellRows:
    """RAW_COLUMNS in SI units to unified rows (module docstring for the conventions)."""
    raw = table.frame
    if (raw["frequency_hz"] > 0).any():
        raw = raw.loc[~(raw["frequency_hz"] > 0)].reset_index(drop=True)  # impedance rows, not cycling
    if raw.empty:
        raise CyclerFileError("no cycling rows")
    if raw["cycle"].notna().any():
        cycle_source = raw["cycle"].to_numpy()
    elif raw["half_cycle"].notna().any():
        cycle_source = (raw["half_cycle"] // 2).to_numpy()
    else:
        cycle_source = cycles_from_current(raw["current_a"].to_numpy(float))
    cycle = cycle_numbers(cycle_source, time_restarts(raw["test_time_s"].to_numpy()))
    step = pd.Series(raw["step"]).ffill().fillna(0).to_numpy()
    boundary = np.r_[True, (np.diff(cycle) != 0) | (np.diff(step) != 0)]
    test_time = join_restarts(raw["test_time_s"].to_numpy(float))
    kinds = step_kinds(raw["step_type"])
    discharge_growth = capacity_increments(raw["discharge_capacity_ah"].to_numpy(), boundary)
    has_split = raw["discharge_capacity_ah"].notna().any()
    current, sign_note = orient_current(raw["current_a"].to_numpy(float), kinds,
                                        (discharge_growth > 0) if has_split else np.zeros(len(raw), bool))
    charge_inc, discharge_inc, capacity_note = _split_capacity(raw, current, boundary)
    charge_energy, discharge_energy = _split_energy(raw, current, boundary)
    start = test_time[_run_starts(cycle)]
    n = len(raw)
    temperature, temperature_note = _filled_temperature(raw["temperature_c"])
    frame = pd.DataFrame({
        "cell_key": cell_key,
        "cycle_number": cycle,
        "time": (test_time - start) / 60.0,
        "cycle_life": np.full(n, np.nan),
        "charge_policy": "",
        "current": current,
        "voltage": raw["voltage_v"].to_numpy(float),
        "charge_capacity": per_cycle_sum(charge_inc, cycle),
        "discharge_capacity": per_cycle_sum(discharge_inc, cycle),
        "temperature": temperature,
        "discharge_dQdV": np.full(n, np.nan),
        "batch_number": np.full(n, np.nan),
        "discharge_policy": "",
        "source": source,
        "dataset": "",
        "step_index": step.astype(float),
        "step_type": raw["step_type"].to_numpy(),
        "test_time_s": test_time,
        "charge_energy": per_cycle_sum(charge_energy, cycle) if charge_energy is not None else np.full(n, np.nan),
        "discharge_energy": (per_cycle_sum(discharge_energy, cycle) if discharge_energy is not None
                             else np.full(n, np.nan)),
    })
    notes = {"time": table.time_origin, "current sign": sign_note, "capacity": capacity_note}
    if temperature_note:
        notes["temperature"] = temperature_note
    return CellRows(frame, notes)


def _filled_temperature(values: pd.Series) -> tuple[np.ndarray, str]:
    """Temperature (degC) with the rows between a sensor's readings carrying the last reading (auxiliary channels
    log less often than voltage and current), and a note saying how many rows were filled; all-NaN stays NaN."""
    missing = int(values.isna().sum())
    if missing == 0 or missing == len(values):
        return values.to_numpy(float), ""
    return values.ffill().bfill().to_numpy(float), f"{missing} of {len(values)} rows carry the nearest reading"


def _split_capacity(raw: pd.DataFrame, current: np.ndarray, boundary: np.ndarray):
    """(charge, discharge) growth per row, and from which column(s)."""
    if raw["charge_capacity_ah"].notna().any() or raw["discharge_capacity_ah"].notna().any():
        return (capacity_increments(raw["charge_capacity_ah"].to_numpy(), boundary),
                capacity_increments(raw["discharge_capacity_ah"].to_numpy(), boundary),
                "charge and discharge capacity columns")
    if raw["net_charge_ah"].notna().any():
        change = np.diff(pd.Series(raw["net_charge_ah"]).ffill().fillna(0).to_numpy(), prepend=np.nan)
        change[0] = 0.0
        return np.clip(change, 0, None), np.clip(-change, 0, None), "net charge (Q-Qo), split by its change"
    if raw["capacity_ah"].notna().any():
        growth = capacity_increments(raw["capacity_ah"].to_numpy(), boundary)
        return (np.where(current > 0, growth, 0.0), np.where(current < 0, growth, 0.0),
                "one capacity column, split by the sign of the current")
    raise CyclerFileError("no capacity column (e.g. 'Discharge_Capacity(Ah)', 'Cap. [Ah]', '(Q-Qo)/mA.h')")


def _split_energy(raw: pd.DataFrame, current: np.ndarray, boundary: np.ndarray):
    if raw["charge_energy_wh"].notna().any() or raw["discharge_energy_wh"].notna().any():
        return (capacity_increments(raw["charge_energy_wh"].to_numpy(), boundary),
                capacity_increments(raw["discharge_energy_wh"].to_numpy(), boundary))
    if raw["energy_wh"].notna().any():
        growth = capacity_increments(raw["energy_wh"].to_numpy(), boundary)
        return np.where(current > 0, growth, 0.0), np.where(current < 0, growth, 0.0)
    return None, None


def read_cycler_file(path: Path, key: str | None = None, source: str | None = None, log=None) -> CellRows:
    """One cycler file to unified rows of one cell (named after the file); CyclerFileError says why not.
    `log` (a callable taking a line) gets progress lines while a large text file is read."""
    path = Path(path)
    key = key or detect_format(path)
    if key is None or key not in FORMATS:
        raise CyclerFileError("unrecognised format: not a cycler file any reader here knows "
                              "(Arbin .res/csv/xlsx, Maccor, BioLogic .mpr/.mpt, Neware .nda/.ndax/csv/xlsx, PEC, "
                              "Novonix, Battery Data Format csv, or a table naming time, current, voltage, capacity)")
    table = read_raw(path, key, log)
    cells = pd.unique(table.frame["cell"])
    if len(cells) == 1:
        rows = normalise(table, path.stem, source or path.name)
    else:  # one cell per channel or test, each with its own cycles and clock, named <file>/<cell>
        parts = [normalise(RawTable(table.frame.loc[table.frame["cell"] == cell].reset_index(drop=True),
                                    table.time_origin), f"{path.stem}/{cell}", source or path.name) for cell in cells]
        rows = CellRows(pd.concat([part.frame for part in parts], ignore_index=True), parts[0].notes)
        rows.notes["cells"] = f"{len(cells)} cells in the file, by its cell column"
    rows.notes["format"] = key
    return rows
