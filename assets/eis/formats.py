"""Reading, validating and writing impedance spectra.

The challenge format (QuantumScape / BatteryDEV): a CSV with header
`,freq,Z,Circuit,Parameters` where `freq` is a string "[1.0e-01, 1.48e-01, ...]", `Z` a
string of complex numbers "[1.89-0.0143j, 1.88-0.02j , ...]" and `Parameters`
"R1: 1.33e+00, R2: 4.1e-01, ..."; unlabelled files have only `freq` and `Z`. Whether
`freq` is in Hz or rad/s is a per-source setting (`FreqUnit`): in the published files the
stored parameters reproduce Z only with j*freq, i.e. freq is angular frequency, so
"rad_s" is the default for this format. Instrument files (read with
impedance.preprocessing.readFile) are in Hz.

Every accepted spectrum becomes a record with angular frequency ascending (rad/s);
every refused row a `Rejection` naming file, row (0-based data row) and expectation.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from assets.eis.circuits import CIRCUITS
from resources.datapaths import Rejection

FreqUnit = Literal["hz", "rad_s"]
WARBURG_EXPONENT_SCALE = 6.5  # challenge files store W1_p = Warburg exponent x 6.5


@dataclass(frozen=True)
class SourceConventions:
    """How one source stores what the numbers mean; the defaults are the challenge files'.

    freq_unit: unit of `freq` in challenge-format CSVs ("rad_s": the stored parameters reproduce Z
    only with j*freq). table_freq_unit: unit of a generic table's frequency column when its header
    names none (potentiostat exports are in Hz). warburg_exponent_scale: the stored Rs_Ws `W1_p` is
    the Warburg exponent times this (6.5 in the challenge data: stored 1.6-3.2 = exponents 0.25-0.5);
    records always hold the exponent itself.
    """

    freq_unit: FreqUnit = "rad_s"
    table_freq_unit: FreqUnit = "hz"
    warburg_exponent_scale: float = WARBURG_EXPONENT_SCALE


CHALLENGE = SourceConventions()


def conventions_of(value: "SourceConventions | str") -> SourceConventions:
    """A SourceConventions from itself or a bare freq unit (the challenge's other defaults)."""
    return value if isinstance(value, SourceConventions) else SourceConventions(freq_unit=value)


CHALLENGE_COLUMNS = ["freq", "Z", "Circuit", "Parameters"]
MIN_POINTS = 2
# Instrument by file suffix; the other readers (autolab, parstat, chinstruments,
# powersuite) share .txt/.csv, so files for them go in a folder named after the instrument.
INSTRUMENT_BY_SUFFIX = {".dta": "gamry", ".mpt": "biologic", ".z": "zplot", ".par": "versastudio"}
INSTRUMENT_FOLDERS = ("gamry", "autolab", "parstat", "zplot", "versastudio", "powersuite", "biologic", "chinstruments")
SPECTRA_COLUMNS = ["spectrum_id", "source", "row", "origin", "circuit", "parameters", "omega_rad_s", "z_real", "z_imag"]
SYNTHETIC_SOURCE = "synthetic"  # the source of every simulated spectrum in tables and exports


class RowError(ValueError):
    """A row that does not meet the format; the message says what was expected."""


@dataclass
class Spectrum:
    source: str
    row: int | None
    omega_rad_s: np.ndarray  # ascending
    impedance_ohm: np.ndarray  # complex, same order
    circuit: str | None = None
    parameters: dict[str, float] | None = None


def to_rad_s(freq: np.ndarray, unit: FreqUnit) -> np.ndarray:
    return freq * (2 * math.pi) if unit == "hz" else freq


# ---- writing ---------------------------------------------------------------------------


def format_real_list(values: np.ndarray) -> str:
    """'[a, b, ...]' with shortest round-trip reprs (parsing gives the same floats)."""
    return "[" + ", ".join(map(repr, np.asarray(values, dtype=float).tolist())) + "]"


def format_complex_list(values: np.ndarray) -> str:
    """'[1.89-0.0143j, ...]' as in the challenge files, exact on parsing."""
    return "[" + ", ".join(f"{z.real!r}{z.imag:+}j" for z in np.asarray(values).tolist()) + "]"


def format_parameters(values: dict[str, float]) -> str:
    return ", ".join(f"{name}: {float(value)!r}" for name, value in values.items())


def challenge_frame(freq_rows: list, z_rows: list, circuits: list | None = None, params: list | None = None) -> pd.DataFrame:
    """A DataFrame whose CSV (index=False) is the challenge format, unnamed index first."""
    frame = pd.DataFrame({"": range(len(freq_rows)), "freq": [format_real_list(f) for f in freq_rows]})
    frame["Z"] = [format_complex_list(z) for z in z_rows]
    if circuits is not None:
        frame["Circuit"] = circuits
        frame["Parameters"] = [format_parameters(p) for p in params]
    return frame


# ---- parsing ---------------------------------------------------------------------------


def _tokens(text: str, column: str) -> list[str]:
    inner = text.strip()
    if not (inner.startswith("[") and inner.endswith("]")):
        raise RowError(f"{column}: expected a bracketed list '[...]', got {text[:40]!r}")
    return [token for token in re.split(r"[,\s]+", inner[1:-1]) if token]


def _parse_list(text: str, column: str, convert, what: str) -> np.ndarray:
    try:
        return np.array([convert(token) for token in _tokens(text, column)])
    except ValueError as error:
        raise RowError(f"{column}: unparseable {what} ({error})") from None


def parse_real_list(text: str, column: str = "freq") -> np.ndarray:
    return _parse_list(text, column, float, "number")


_SIGN_PAIR = re.compile(r"(?<![eE])([+-])\s*([+-])")


def _normalise_complex(token: str) -> str:
    """'7.65e+00  -9.17j' / '1.2+-0.3j' / '(1+2j)' -> a string complex() reads."""
    token = re.sub(r"\s+", "", token).strip("()").replace("\u2212", "-")
    return _SIGN_PAIR.sub(lambda m: "-" if m.group(1) != m.group(2) else "+", token)


def complex_tokens(text: str, column: str = "Z") -> list[str]:
    """The complex numbers of a bracketed list as written by Python lists or numpy (padded, no commas).

    numpy pads real parts, so an element may read '7.4008021 -0.04249638j' (a space before the sign
    of the imaginary part) and, without commas, elements are separated by spaces only: a piece
    without 'j' followed by a signed piece with 'j' is one number.
    """
    inner = text.strip()
    if not (inner.startswith("[") and inner.endswith("]")):
        raise RowError(f"{column}: expected a bracketed list '[...]', got {text[:40]!r}")
    inner = inner[1:-1]
    if "," in inner:
        return [_normalise_complex(part) for part in inner.split(",") if part.strip()]
    pieces, tokens = inner.split(), []
    i = 0
    while i < len(pieces):
        token = pieces[i]
        i += 1
        while "j" not in token and i < len(pieces) and (pieces[i][0] in "+-" or token[-1] in "+-"):
            token += pieces[i]
            i += 1
        tokens.append(_normalise_complex(token))
    return tokens


def parse_complex_list(text: str, column: str = "Z") -> np.ndarray:
    try:
        return np.array([complex(token) for token in complex_tokens(text, column)])
    except ValueError as error:
        raise RowError(f"{column}: unparseable complex number ({error})") from None


def parse_parameters(text: str, circuit: str, warburg_exponent_scale: float = 1.0) -> dict[str, float]:
    """'R1: 1.3, R2: 0.4' -> {R1: 1.3, R2: 0.4}; names must be exactly the circuit's.

    A stored Warburg `W1_p` is divided by `warburg_exponent_scale` (the source's convention), so
    the record holds the exponent itself.
    """
    values = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, number = item.partition(":")
        try:
            if not sep:
                raise ValueError
            values[name.strip()] = float(number)
        except ValueError:
            raise RowError(f"Parameters: expected 'name: number' items, got {item!r}") from None
    expected = CIRCUITS[circuit].parameters
    if set(values) != set(expected) or len(values) != len(expected):
        raise RowError(f"Parameters: {circuit} expects {', '.join(expected)}; got {', '.join(values) or 'none'}")
    bad = [name for name, value in values.items() if not (math.isfinite(value) and value > 0)]
    if bad:
        raise RowError(f"Parameters: expected finite positive values, got {', '.join(bad)}")
    if "W1_p" in values and warburg_exponent_scale != 1.0:
        values["W1_p"] = values["W1_p"] / warburg_exponent_scale
    return {name: values[name] for name in expected}


def validated_spectrum(freq: np.ndarray, z: np.ndarray, unit: FreqUnit) -> tuple[np.ndarray, np.ndarray]:
    """(omega ascending in rad/s, Z) or RowError saying what is wrong."""
    if len(freq) != len(z):
        raise RowError(f"freq has {len(freq)} values but Z has {len(z)}; expected equal lengths")
    if len(freq) < MIN_POINTS:
        raise RowError(f"expected at least {MIN_POINTS} points, got {len(freq)}")
    if not np.all(np.isfinite(freq)) or not np.all(np.isfinite(z)):
        raise RowError("NaN or inf in freq or Z; expected finite numbers")
    if np.any(freq <= 0):
        raise RowError("non-positive frequency; expected freq > 0")
    steps = np.diff(freq)
    if not (np.all(steps > 0) or np.all(steps < 0)):
        raise RowError("frequencies not strictly monotonic; expected strictly increasing or decreasing")
    order = np.argsort(freq)
    return to_rad_s(freq[order], unit), z[order]


def parse_challenge_row(row: pd.Series, source: str, index: int, unit, labelled: bool) -> Spectrum:
    conventions = conventions_of(unit)
    omega, z = validated_spectrum(parse_real_list(row["freq"]), parse_complex_list(row["Z"]), conventions.freq_unit)
    if not labelled:
        return Spectrum(source, index, omega, z)
    circuit = str(row["Circuit"]).strip()
    if circuit not in CIRCUITS:
        raise RowError(f"Circuit: unknown class {circuit!r}; expected one of {', '.join(sorted(CIRCUITS))}")
    parameters = parse_parameters(str(row["Parameters"]), circuit, conventions.warburg_exponent_scale)
    return Spectrum(source, index, omega, z, circuit, parameters)


def parse_challenge_frame(frame: pd.DataFrame, source: str, unit, labelled: bool) -> tuple[list[Spectrum], list[Rejection]]:
    """Parse every row of a challenge-format table (all strings); bad rows are rejected.

    `unit` is a SourceConventions or a bare freq unit (then the challenge's other conventions)."""
    needed = CHALLENGE_COLUMNS if labelled else CHALLENGE_COLUMNS[:2]
    missing = [column for column in needed if column not in frame.columns]
    if missing:
        return [], [Rejection(source, None, f"missing columns {missing}; expected header ,{','.join(needed)} (saw {list(frame.columns)[:8]})")]
    spectra, rejections = [], []
    for index, (_, row) in enumerate(frame.iterrows()):
        try:
            spectra.append(parse_challenge_row(row, source, index, unit, labelled))
        except RowError as error:
            rejections.append(Rejection(source, index, str(error)))
    return spectra, rejections


def read_challenge_csv(path: Path, unit, labelled: bool) -> tuple[list[Spectrum], list[Rejection]]:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as error:
        return [], [Rejection(str(path), None, f"unreadable CSV ({error}); expected the challenge format")]
    return parse_challenge_frame(frame, str(path), unit, labelled)


# ---- generic impedance tables (potentiostat text exports) --------------------------------

_UNIT_PATTERN = re.compile(r"^(?P<name>.*?)\s*(?:[\(\[{]\s*(?P<u1>[^\)\]}]*?)\s*[\)\]}]|/\s*(?P<u2>(?:rad\s*/\s*s|[A-Za-z\u00b5\u03a9\u00b0]+)))\s*$")
FREQ_UNITS = {"hz": 2 * math.pi, "khz": 2e3 * math.pi, "mhz_milli": 2e-3 * math.pi, "mhz_mega": 2e6 * math.pi, "rad/s": 1.0, "rads": 1.0, "rad/sec": 1.0, "1/s": 1.0, "s-1": 1.0}
OHM_UNITS = {"ohm": 1.0, "ohms": 1.0, "\u03c9": 1.0, "kohm": 1e3, "kohms": 1e3, "k\u03c9": 1e3, "mohm_milli": 1e-3, "m\u03c9_milli": 1e-3, "mohm_mega": 1e6, "m\u03c9_mega": 1e6}
PHASE_UNITS = {"deg": 1.0, "degree": 1.0, "degrees": 1.0, "\u00b0": 1.0, "rad": 180 / math.pi}
_ROLES = {
    "frequency": {"freq", "frequency", "f", "freq.", "frequencies", "omega", "w", "angularfrequency", "\u03c9"},
    "real": {"z'", "zreal", "zre", "re(z)", "rez", "real", "realz", "real(z)", "z_real", "zr", "z1"},
    "imag": {"z''", "zimag", "zim", "zimg", "im(z)", "imz", "imag", "imaginary", "imagz", "imag(z)", "z_imag", "zi", "z2"},
    "modulus": {"|z|", "zmod", "mod(z)", "modz", "modulus", "z_mod", "abs(z)", "absz", "impedance", "magnitude", "|impedance|"},
    "phase": {"phase", "phase(z)", "zphz", "phz", "phi", "theta", "phaseangle", "\u03c6", "z_phase", "zphase", "phase(deg)"},
    "spectrum_id": {"spectrum_id", "spectrumid", "spectrum", "sample_id"},
}


@dataclass(frozen=True)
class TableColumn:
    header: str
    role: str
    factor: float = 1.0  # to rad/s, Ohm or degrees
    negated: bool = False  # "-Z''", "-Im(Z)": the column holds -Im Z
    unit_given: bool = False


def _unit_factor(unit: str, role: str) -> tuple[float, bool]:
    """(factor to rad/s, Ohm or degrees, unit given) of a header unit; ValueError for an unknown one."""
    if not unit:
        return 1.0, False
    raw = unit.strip().replace(" ", "")
    low = raw.lower()
    if role == "frequency":
        if low == "mhz":
            low = "mhz_mega" if raw.startswith("M") else "mhz_milli"
        if low in FREQ_UNITS:
            return FREQ_UNITS[low], True
    elif role in ("real", "imag", "modulus"):
        if low in ("mohm", "mohms", "m\u03c9"):
            low = (low.rstrip("s") if low.endswith("s") else low) + ("_mega" if raw.startswith("M") else "_milli")
        if low in OHM_UNITS:
            return OHM_UNITS[low], True
    elif role == "phase":
        if low in PHASE_UNITS:
            return PHASE_UNITS[low], True
    else:
        return 1.0, False
    raise ValueError(f"unknown unit {unit!r} for the {role} column")


def classify_header(header: str) -> TableColumn | None:
    """The role of one column header (frequency, real, imag, modulus, phase, spectrum_id) or None."""
    text = header.strip().strip('"').replace("\u2032\u2032", "''").replace("\u2033", "''").replace("\u2032", "'").replace('"', "''")
    text = text.replace("\u2212", "-").replace("\u2013", "-")
    match = _UNIT_PATTERN.match(text)
    name, unit = (match["name"], match["u1"] or match["u2"] or "") if match else (text, "")
    if match and (match["u1"] or "").strip().lower() == "z":
        name, unit = text, ""  # 'Re(Z)' itself: the parentheses are part of the name
    negated = name.strip().startswith("-")
    key = name.strip().lstrip("-").strip().lower().replace(" ", "").replace("_", "")
    key_underscore = name.strip().lstrip("-").strip().lower().replace(" ", "")
    for role, names in _ROLES.items():
        if key in {n.replace("_", "") for n in names} or key_underscore in names:
            if role == "frequency" and key in ("omega", "w", "angularfrequency", "\u03c9") and not unit:
                unit = "rad/s"
            factor, given = _unit_factor(unit, role)
            return TableColumn(header, role, factor, negated and role in ("imag", "phase"), given)
    return None


def detect_columns(headers: list[str]) -> dict[str, TableColumn]:
    """Role -> column for a generic impedance table; RowError naming the columns seen when the header
    is missing a role or has two columns for one."""
    found: dict[str, list[TableColumn]] = {}
    for header in headers:
        try:
            column = classify_header(str(header))
        except ValueError as error:
            raise RowError(f"{error}; columns seen: {list(map(str, headers))}") from None
        if column is not None:
            found.setdefault(column.role, []).append(column)
    doubled = {role: [c.header for c in columns] for role, columns in found.items() if len(columns) > 1}
    if doubled:
        role, names = next(iter(doubled.items()))
        raise RowError(f"ambiguous header: {len(names)} {role} columns {names}; columns seen: {list(map(str, headers))}")
    roles = {role: columns[0] for role, columns in found.items()}
    if "frequency" not in roles or not ({"real", "imag"} <= set(roles) or {"modulus", "phase"} <= set(roles)):
        raise RowError(
            "expected a frequency column and real + imaginary (or |Z| + phase) columns, e.g. "
            f"'Frequency (Hz), Z' (Ohm), -Z'' (Ohm)'; columns seen: {list(map(str, headers))}"
        )
    return roles


def _header_line(lines: list[str]) -> tuple[int, str] | None:
    """(index, delimiter) of the first line that reads as an impedance-table header."""
    for index, line in enumerate(lines[:60]):
        for delimiter in ("\t", ",", ";"):
            cells = [c.strip() for c in line.split(delimiter)]
            if len(cells) >= 3 and any(_safe_role(c) == "frequency" for c in cells):
                return index, delimiter
    return None


def _safe_role(header: str) -> str | None:
    try:
        column = classify_header(header)
    except ValueError:
        return "unknown-unit"
    return column.role if column else None


def read_impedance_table(path: Path, conventions: SourceConventions = CHALLENGE) -> tuple[list[Spectrum], list[Rejection]]:
    """A CSV/TSV text export of an impedance table: frequency, Re and Im (or -Im, or |Z| and phase in
    degrees) under common header spellings and units; one spectrum per file, or one per value of a
    `spectrum_id` column. Rows are 0-based data rows after the header; a spectrum's row is its first."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig", errors="replace")
    except OSError as error:
        return [], [Rejection(source, None, f"unreadable file ({error})")]
    lines = text.splitlines()
    found = _header_line(lines)
    if found is None:
        seen = lines[0][:120] if lines else ""
        return [], [Rejection(source, None, f"no impedance-table header found; expected a frequency column and Z columns such as 'Frequency (Hz), Z' (Ohm), -Z'' (Ohm)'; first line seen: {seen!r}")]
    start, delimiter = found
    headers = [c.strip() for c in lines[start].split(delimiter)]
    try:
        roles = detect_columns(headers)
    except RowError as error:
        return [], [Rejection(source, None, str(error))]
    index_of = {role: headers.index(column.header) for role, column in roles.items()}
    groups: dict[str, list[tuple[int, list[str]]]] = {}
    for row_number, line in enumerate(lines[start + 1 :]):
        if not line.strip():
            continue
        cells = [c.strip() for c in line.split(delimiter)]
        key = cells[index_of["spectrum_id"]] if "spectrum_id" in index_of and index_of["spectrum_id"] < len(cells) else ""
        groups.setdefault(key, []).append((row_number, cells))
    spectra, rejections = [], []
    for key, rows in groups.items():
        first_row = rows[0][0]
        try:
            spectra.append(_table_spectrum(rows, roles, index_of, conventions, source, first_row if "spectrum_id" in roles else None))
        except RowError as error:
            rejections.append(Rejection(source, first_row if "spectrum_id" in roles else None, (f"spectrum_id {key}: " if key else "") + str(error)))
    if not groups:
        rejections.append(Rejection(source, None, "no data rows below the header"))
    return spectra, rejections


def _table_spectrum(rows, roles, index_of, conventions: SourceConventions, source: str, row: int | None) -> Spectrum:
    values = {}
    for role in ("frequency", "real", "imag", "modulus", "phase"):
        if role not in index_of:
            continue
        column = []
        for row_number, cells in rows:
            try:
                column.append(float(cells[index_of[role]].replace("\u2212", "-")))
            except (IndexError, ValueError):
                cell = cells[index_of[role]] if index_of[role] < len(cells) else "(missing)"
                raise RowError(f"row {row_number}: column {roles[role].header!r} is {cell[:20]!r}; expected a number") from None
        values[role] = np.array(column) * roles[role].factor
    freq_column = roles["frequency"]
    freq = values["frequency"] if freq_column.unit_given else to_rad_s(values["frequency"], conventions.table_freq_unit)
    if {"real", "imag"} <= set(values):
        imag = -values["imag"] if roles["imag"].negated else values["imag"]
        z = values["real"] + 1j * imag
    else:
        phase = -values["phase"] if roles["phase"].negated else values["phase"]
        z = values["modulus"] * np.exp(1j * np.deg2rad(phase))
    omega, z = validated_spectrum(freq, z, "rad_s")
    return Spectrum(source, row, omega, z)


def instrument_for(path: Path, root: Path | None = None) -> str | None:
    """The impedance.py reader for a file: the nearest enclosing folder named after an instrument
    (any depth below root, so autolab/day1/cell.txt is Autolab; only the parent without root), else its suffix."""
    folders = path.parent.relative_to(root).parts if root is not None else (path.parent.name,)
    for name in reversed(folders):
        if name.lower() in INSTRUMENT_FOLDERS:
            return name.lower()
    return INSTRUMENT_BY_SUFFIX.get(path.suffix.lower())


def read_instrument_file(path: Path, instrument: str) -> tuple[list[Spectrum], list[Rejection]]:
    """One spectrum (Hz in the file) through impedance.preprocessing.readFile."""
    from impedance.preprocessing import readFile

    try:
        freq_hz, z = readFile(str(path), instrument=instrument)
        omega, z = validated_spectrum(np.asarray(freq_hz, dtype=float), np.asarray(z, dtype=complex), "hz")
    except RowError as error:
        return [], [Rejection(str(path), None, str(error))]
    except Exception as error:  # the readers raise anything from IndexError to UnboundLocalError
        reason = f"unreadable as {instrument} file ({type(error).__name__}: {error})"
        return [], [Rejection(str(path), None, reason)]
    return [Spectrum(str(path), None, omega, z)], []


TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".dat")


def is_challenge_csv(path: Path) -> bool:
    """True when the first line is a challenge-format header (has `freq` and `Z` columns)."""
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as handle:
            first = handle.readline()
    except OSError:
        return True  # let the challenge reader name the error
    cells = {cell.strip().strip('"') for cell in first.split(",")}
    return {"freq", "Z"} <= cells


def is_impedance_table(path: Path) -> bool:
    """True when a generic impedance-table header (with a frequency column) is found in the file's first lines."""
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as handle:
            lines = [handle.readline() for _ in range(60)]
    except OSError:
        return False
    return _header_line([line.rstrip("\n") for line in lines]) is not None


def read_unlabelled_file(path: Path, folder: Path, conventions) -> tuple[list[Spectrum], list[Rejection]]:
    """One file for prediction: an instrument file (impedance.py), a challenge CSV without labels, or a generic table."""
    conventions = conventions_of(conventions)
    instrument = instrument_for(path, folder)
    if instrument:
        return read_instrument_file(path, instrument)
    if path.suffix.lower() == ".csv" and is_challenge_csv(path):
        return read_challenge_csv(path, conventions, labelled=False)
    if path.suffix.lower() in TABLE_SUFFIXES:
        return read_impedance_table(path, conventions)
    return [], [Rejection(str(path), None, "unknown file type; expected .csv/.tsv/.txt impedance tables or an instrument file")]


def unlabelled_files(folder: Path, labelled_root: Path | None = None) -> list[Path]:
    """Files to predict: everything under `folder`, plus generic tables and instrument files
    dropped anywhere under `labelled_root` outside `folder` (a potentiostat export carries no label)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")) if folder.exists() else []
    if labelled_root is not None and labelled_root.exists():
        for path in sorted(labelled_root.rglob("*")):
            if not path.is_file() or path.name.startswith(".") or folder in path.parents:
                continue
            if instrument_for(path, labelled_root) or (path.suffix.lower() in TABLE_SUFFIXES and not (path.suffix.lower() == ".csv" and is_challenge_csv(path)) and is_impedance_table(path)):
                files.append(path)
    return files


def read_unlabelled_folder(folder: Path, unit, labelled_root: Path | None = None) -> tuple[list[Spectrum], list[Rejection]]:
    """Every unlabelled file (see unlabelled_files): challenge CSVs without labels, generic tables, instrument files."""
    spectra, rejections = [], []
    for path in unlabelled_files(folder, labelled_root):
        found, refused = read_unlabelled_file(path, folder if folder in path.parents else labelled_root, unit)
        spectra += found
        rejections += refused
    return spectra, rejections


def spectra_table(spectra: list[Spectrum], origin: str = "user") -> pd.DataFrame:
    """One row per spectrum; arrays as list columns (Parquet keeps them exactly).

    `source` is the file relative to the data root (or "synthetic"); spectrum_id is "<source>#<row>",
    the id exports and plots show. origin: "user" or "synthetic"."""
    from resources.datapaths import relative_to_root

    sources = [s.source if s.source == SYNTHETIC_SOURCE else relative_to_root(s.source) for s in spectra]
    return pd.DataFrame(
        {
            "spectrum_id": [f"{source}#{'' if s.row is None else s.row}" for source, s in zip(sources, spectra)],
            "source": sources,
            "row": pd.array([s.row for s in spectra], dtype="Int64"),
            "origin": [origin] * len(spectra),
            "circuit": [s.circuit for s in spectra],
            "parameters": [json.dumps(s.parameters) if s.parameters else None for s in spectra],
            "omega_rad_s": [s.omega_rad_s.tolist() for s in spectra],
            "z_real": [s.impedance_ohm.real.tolist() for s in spectra],
            "z_imag": [s.impedance_ohm.imag.tolist() for s in spectra],
        },
        columns=SPECTRA_COLUMNS,
    )


def labelled_files(folder: Path, unlabelled: Path) -> list[Path]:
    """CSV files under folder (not under `unlabelled`) that are not generic tables or instrument files."""
    if not folder.exists():
        return []
    unlabelled_elsewhere = set(unlabelled_files(unlabelled, folder)) - set(unlabelled_files(unlabelled))
    return [p for p in sorted(folder.rglob("*.csv")) if unlabelled not in p.parents and p not in unlabelled_elsewhere and not p.name.startswith(".")]


def read_labelled_folder(folder: Path, unlabelled: Path, unit) -> tuple[list[Spectrum], list[Rejection]]:
    """Every challenge-format CSV under folder except those under `unlabelled` (and generic tables)."""
    spectra, rejections = [], []
    for path in labelled_files(folder, unlabelled):
        found, refused = read_challenge_csv(path, unit, labelled=True)
        spectra += found
        rejections += refused
    return spectra, rejections


def count_data_rows(path: Path) -> int:
    """Data rows of a CSV (records a whole-file rejection stands for); 1 when unreadable."""
    try:
        return max(len(pd.read_csv(path, dtype=str, keep_default_na=False, usecols=[0])), 1)
    except Exception:  # noqa: BLE001 - any unreadable file counts as one record
        return 1
