"""User-facing export columns: one column per circuit parameter, named with its unit.

A parameter whose kind has a plain unit gets it as a suffix (`R1_ohm`, `C1_F`, `L1_H`, `t_g1_s`,
`W1_T_s`); CPE coefficients (`CPE1_C`, F s^(t-1)) and exponents (`CPE1_t`, `W1_p`) keep their
name. `W1_p` is the Warburg exponent itself (0..1), not the challenge files' exponent x 6.5.
Values are rounded to 4 significant digits, the precision fits and regressors support.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from assets.eis.circuits import CIRCUITS, CIRCUIT_NAMES

UNIT_SUFFIX = {
    "resistance": "ohm",
    "capacitance": "F",
    "inductance": "H",
    "gerischer_time": "s",
    "warburg_time": "s",
}
# For the README: every kind's unit (the suffix, or the unit of a column without one).
UNIT_OF_KIND = {
    **{kind: suffix.replace("ohm", "Ohm") for kind, suffix in UNIT_SUFFIX.items()},
    "cpe_q": "F s^(t-1) (CPE coefficient Q; Z = 1 / (Q (j w)^t))",
    "cpe_exponent": "1 (CPE exponent t)",
    "warburg_exponent": "1 (Warburg exponent p)",
}
SIGNIFICANT_DIGITS = 4


def column_name(parameter: str, kind: str) -> str:
    suffix = UNIT_SUFFIX.get(kind)
    return f"{parameter}_{suffix}" if suffix else parameter


def all_columns() -> list[str]:
    """Every parameter column of every circuit, in class then parameter order, without repeats."""
    seen: dict[str, None] = {}
    for name in CIRCUIT_NAMES:
        circuit = CIRCUITS[name]
        for parameter, kind in zip(circuit.parameters, circuit.kinds):
            seen.setdefault(column_name(parameter, kind), None)
    return list(seen)


def round_significant(value: float, digits: int = SIGNIFICANT_DIGITS) -> float:
    if value is None or not np.isfinite(value) or value == 0:
        return value
    return float(f"{float(value):.{digits}g}")


def parameter_columns(circuits: list[str], parameters: list[dict | None], prefix: str = "", suffix: str = "") -> pd.DataFrame:
    """One row per spectrum, one column per parameter (of the union over the circuits present), named
    prefix + column_name + suffix; empty where a parameter is not in that row's values (not in its
    circuit, or not in its supported circuit)."""
    rows = []
    for circuit, values in zip(circuits, parameters):
        row = {}
        if values and circuit in CIRCUITS:
            definition = CIRCUITS[circuit]
            for parameter, kind in zip(definition.parameters, definition.kinds):
                if parameter in values:
                    row[prefix + column_name(parameter, kind) + suffix] = round_significant(values[parameter])
        rows.append(row)
    present = {column for row in rows for column in row}
    ordered = [prefix + column + suffix for column in all_columns() if prefix + column + suffix in present]
    return pd.DataFrame(rows, columns=ordered, dtype=float)


def determined_columns(circuits: list[str], parameters: list[dict], undetermined: list[set[str]], prefix: str = "") -> pd.DataFrame:
    """`<prefix><parameter>_determined`: True / False for each parameter in a row's values, empty elsewhere."""
    names = list(dict.fromkeys(p for name in CIRCUIT_NAMES for p in CIRCUITS[name].parameters))
    rows = [
        {f"{prefix}{p}_determined": p not in missing for p in (values or {})} if circuit in CIRCUITS else {}
        for circuit, values, missing in zip(circuits, parameters, undetermined)
    ]
    present = {column for row in rows for column in row}
    return pd.DataFrame(rows, columns=[f"{prefix}{p}_determined" for p in names if f"{prefix}{p}_determined" in present], dtype=object)


def unit_table() -> pd.DataFrame:
    """column, circuits using it, unit: for the README and metadata."""
    records: dict[str, dict] = {}
    for name in CIRCUIT_NAMES:
        circuit = CIRCUITS[name]
        for parameter, kind in zip(circuit.parameters, circuit.kinds):
            entry = records.setdefault(column_name(parameter, kind), {"unit": UNIT_OF_KIND[kind], "circuits": []})
            entry["circuits"].append(name)
    return pd.DataFrame(
        [{"column": column, "unit": entry["unit"], "circuits": ", ".join(entry["circuits"])} for column, entry in records.items()]
    )
