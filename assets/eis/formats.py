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
CHALLENGE_COLUMNS = ["freq", "Z", "Circuit", "Parameters"]
MIN_POINTS = 2
# Instrument by file suffix; the other readers (autolab, parstat, chinstruments,
# powersuite) share .txt/.csv, so files for them go in a folder named after the instrument.
INSTRUMENT_BY_SUFFIX = {".dta": "gamry", ".mpt": "biologic", ".z": "zplot", ".par": "versastudio"}
INSTRUMENT_FOLDERS = ("gamry", "autolab", "parstat", "zplot", "versastudio", "powersuite", "biologic", "chinstruments")
SPECTRA_COLUMNS = ["spectrum_id", "source", "row", "circuit", "parameters", "omega_rad_s", "z_real", "z_imag"]


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


def parse_complex_list(text: str, column: str = "Z") -> np.ndarray:
    return _parse_list(text, column, complex, "complex number")


def parse_parameters(text: str, circuit: str) -> dict[str, float]:
    """'R1: 1.3, R2: 0.4' -> {R1: 1.3, R2: 0.4}; names must be exactly the circuit's."""
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


def parse_challenge_row(row: pd.Series, source: str, index: int, unit: FreqUnit, labelled: bool) -> Spectrum:
    omega, z = validated_spectrum(parse_real_list(row["freq"]), parse_complex_list(row["Z"]), unit)
    if not labelled:
        return Spectrum(source, index, omega, z)
    circuit = str(row["Circuit"]).strip()
    if circuit not in CIRCUITS:
        raise RowError(f"Circuit: unknown class {circuit!r}; expected one of {', '.join(sorted(CIRCUITS))}")
    return Spectrum(source, index, omega, z, circuit, parse_parameters(str(row["Parameters"]), circuit))


def parse_challenge_frame(
    frame: pd.DataFrame, source: str, unit: FreqUnit, labelled: bool
) -> tuple[list[Spectrum], list[Rejection]]:
    """Parse every row of a challenge-format table (all strings); bad rows are rejected."""
    needed = CHALLENGE_COLUMNS if labelled else CHALLENGE_COLUMNS[:2]
    missing = [column for column in needed if column not in frame.columns]
    if missing:
        return [], [Rejection(source, None, f"missing columns {missing}; expected header ,{','.join(needed)}")]
    spectra, rejections = [], []
    for index, (_, row) in enumerate(frame.iterrows()):
        try:
            spectra.append(parse_challenge_row(row, source, index, unit, labelled))
        except RowError as error:
            rejections.append(Rejection(source, index, str(error)))
    return spectra, rejections


def read_challenge_csv(path: Path, unit: FreqUnit, labelled: bool) -> tuple[list[Spectrum], list[Rejection]]:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as error:
        return [], [Rejection(str(path), None, f"unreadable CSV ({error}); expected the challenge format")]
    return parse_challenge_frame(frame, str(path), unit, labelled)


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


def read_unlabelled_folder(folder: Path, unit: FreqUnit) -> tuple[list[Spectrum], list[Rejection]]:
    """Every unlabelled CSV (challenge format without labels) and instrument file in folder."""
    spectra, rejections = [], []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        instrument = instrument_for(path, folder)
        if instrument:
            found, refused = read_instrument_file(path, instrument)
        elif path.suffix.lower() == ".csv":
            found, refused = read_challenge_csv(path, unit, labelled=False)
        else:
            found, refused = [], [Rejection(str(path), None, "unknown file type; expected .csv or an instrument file")]
        spectra += found
        rejections += refused
    return spectra, rejections


def spectra_table(spectra: list[Spectrum]) -> pd.DataFrame:
    """One row per spectrum; arrays as list columns (Parquet keeps them exactly)."""
    return pd.DataFrame(
        {
            "spectrum_id": [f"{s.source}#{'' if s.row is None else s.row}" for s in spectra],
            "source": [s.source for s in spectra],
            "row": pd.array([s.row for s in spectra], dtype="Int64"),
            "circuit": [s.circuit for s in spectra],
            "parameters": [json.dumps(s.parameters) if s.parameters else None for s in spectra],
            "omega_rad_s": [s.omega_rad_s.tolist() for s in spectra],
            "z_real": [s.impedance_ohm.real.tolist() for s in spectra],
            "z_imag": [s.impedance_ohm.imag.tolist() for s in spectra],
        },
        columns=SPECTRA_COLUMNS,
    )


def read_labelled_folder(folder: Path, unlabelled: Path, unit: FreqUnit) -> tuple[list[Spectrum], list[Rejection]]:
    """Every challenge-format CSV under folder except those under `unlabelled`."""
    spectra, rejections = [], []
    for path in sorted(folder.rglob("*.csv")):
        if unlabelled in path.parents:
            continue
        found, refused = read_challenge_csv(path, unit, labelled=True)
        spectra += found
        rejections += refused
    return spectra, rejections
