"""Per-cycle summary of the unified time series, the capacity check, and which cells can be predicted.

The capacity check is Coulomb counting: per cycle, the instrument's discharge (and charge) capacity must equal
the integral of the current over that cycle's discharging (charging) rows, within 1 % or 0.1 mAh, whichever is
larger (coin cells move a few mAh per cycle, so 1 % of them is below the instruments' own resolution). The
integral is the trapezoid rule between consecutive rows of one sign of current; the first row of a run of
one sign adds nothing (instruments log a row when a step starts). A cycle that disagrees is counted and
flagged (`capacity_check` = "inconsistent"), never corrected.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

REL_TOL = 0.01
ABS_TOL_AH = 1e-4
KEYS = ["source", "cell_key", "cycle_number"]
SUMMARY_COLUMNS = KEYS + [
    "charge_capacity_ah", "discharge_capacity_ah", "coulombic_efficiency", "charge_energy_wh", "discharge_energy_wh",
    "mean_discharge_voltage_v", "duration_min", "charge_integral_ah", "discharge_integral_ah", "capacity_check",
    "cycle_life", "n_cycles", "predictable", "reason",
]


def _seconds(frame: pd.DataFrame) -> np.ndarray:
    """Time (s) along each file: the test time where a cycler reader kept it, else the cycle's time (min) in s
    (pickles, unified CSVs: a table may hold both kinds of source)."""
    cycle_seconds = frame["time"].to_numpy(float) * 60.0
    if "test_time_s" not in frame.columns:
        return cycle_seconds
    return np.where(frame["test_time_s"].notna(), frame["test_time_s"].to_numpy(float), cycle_seconds)


def row_charge_ah(frame: pd.DataFrame) -> np.ndarray:
    """Charge (Ah, signed like the current) that flowed between each row and the one before it (same cell)."""
    current = frame["current"].to_numpy(float)
    seconds = _seconds(frame)
    same_cell = np.r_[False, (frame["cell_key"].to_numpy()[1:] == frame["cell_key"].to_numpy()[:-1])
                      & (frame["source"].to_numpy()[1:] == frame["source"].to_numpy()[:-1])]
    previous = np.r_[np.nan, current[:-1]]
    same_sign = same_cell & (np.sign(previous) == np.sign(current))
    dt = np.r_[0.0, np.diff(seconds)]
    # Within a cycle's rows `time` restarts at each cycle; a negative step there is a new cycle, not a return.
    dt = np.where(dt < 0, 0.0, dt)
    return np.where(same_sign, 0.5 * (previous + current) * dt / 3600.0, 0.0)


def cycle_summary(unified: pd.DataFrame, rel_tol: float = REL_TOL, abs_tol_ah: float = ABS_TOL_AH) -> pd.DataFrame:
    """One row per (source, cell, cycle): capacities (Ah), efficiency, energies (Wh), mean discharge voltage
    (V), duration (min), the current integrals (Ah) and the capacity check."""
    frame = unified.reset_index(drop=True)
    charge = row_charge_ah(frame)
    # Energy is the trapezoid of V*I: each row's charge at the mean voltage of its interval.
    voltage = frame["voltage"].to_numpy(float)
    voltage = np.r_[voltage[:1], 0.5 * (voltage[1:] + voltage[:-1])]
    work = pd.DataFrame({
        **{k: frame[k] for k in KEYS},
        "qc": frame["charge_capacity"], "qd": frame["discharge_capacity"],
        "ec": frame["charge_energy"] if "charge_energy" in frame.columns else np.nan,
        "ed": frame["discharge_energy"] if "discharge_energy" in frame.columns else np.nan,
        "ic": np.clip(charge, 0, None), "id": np.clip(-charge, 0, None),
        "wd": np.clip(-charge, 0, None) * voltage, "wc": np.clip(charge, 0, None) * voltage,
        "time": frame["time"], "has_current": frame["current"].notna(), "cycle_life": frame["cycle_life"],
    })
    grouped = work.groupby(KEYS, sort=False)
    out = grouped.agg(charge_capacity_ah=("qc", "max"), discharge_capacity_ah=("qd", "max"),
                      instrument_ec=("ec", "max"), instrument_ed=("ed", "max"),
                      charge_integral_ah=("ic", "sum"), discharge_integral_ah=("id", "sum"),
                      wc=("wc", "sum"), wd=("wd", "sum"), t0=("time", "min"), t1=("time", "max"),
                      has_current=("has_current", "any"), cycle_life=("cycle_life", "first")).reset_index()
    with np.errstate(divide="ignore", invalid="ignore"):
        out["coulombic_efficiency"] = np.where(out["charge_capacity_ah"] > 0,
                                               out["discharge_capacity_ah"] / out["charge_capacity_ah"], np.nan)
        out["mean_discharge_voltage_v"] = np.where(out["discharge_integral_ah"] > 0,
                                                   out["wd"] / out["discharge_integral_ah"], np.nan)
    out["charge_energy_wh"] = out["instrument_ec"].fillna(out["wc"])
    out["discharge_energy_wh"] = out["instrument_ed"].fillna(out["wd"])
    out["duration_min"] = out["t1"] - out["t0"]
    out["capacity_check"] = capacity_check(out, rel_tol, abs_tol_ah)
    return out


def capacity_check(summary: pd.DataFrame, rel_tol: float = REL_TOL, abs_tol_ah: float = ABS_TOL_AH) -> np.ndarray:
    """'consistent' | 'inconsistent' | 'not checked' (no current, or nothing flowed) per cycle."""
    verdicts = []
    checked = np.zeros(len(summary), dtype=bool)
    agree = np.ones(len(summary), dtype=bool)
    for instrument, integral in [("charge_capacity_ah", "charge_integral_ah"),
                                 ("discharge_capacity_ah", "discharge_integral_ah")]:
        q = summary[instrument].to_numpy(float)
        i = summary[integral].to_numpy(float)
        present = np.isfinite(q) & summary["has_current"].to_numpy() & ((np.nan_to_num(q) > 0) | (i > 0))
        tolerance = np.maximum(rel_tol * np.fmax(np.abs(q), np.abs(i)), abs_tol_ah)
        checked |= present
        agree &= ~present | (np.abs(np.nan_to_num(q) - i) <= tolerance)
    for was_checked, ok in zip(checked, agree):
        verdicts.append("not checked" if not was_checked else "consistent" if ok else "inconsistent")
    return np.array(verdicts, dtype=object)


def consistent_share(summary: pd.DataFrame) -> float:
    """Consistent cycles over checked cycles (1.0 when nothing could be checked)."""
    checked = summary["capacity_check"] != "not checked"
    return float((summary.loc[checked, "capacity_check"] == "consistent").mean()) if checked.any() else 1.0


def predictability(summary: pd.DataFrame, early_cycle: int = 10, late_cycle: int = 100) -> pd.DataFrame:
    """Per (source, cell): n_cycles, predictable (the Severson features need a discharge in the early and
    the late cycle; a cell whose last cycle comes before the late one is too short) and, when not, the reason."""
    rows = []
    for (source, cell), cycles in summary.groupby(["source", "cell_key"], sort=False):
        discharged = set(cycles.loc[cycles["discharge_capacity_ah"] > 0, "cycle_number"])
        n_cycles = int(cycles["cycle_number"].nunique())
        last = int(cycles["cycle_number"].max())
        if last < late_cycle:  # by the last cycle, not the count: Qdlin files and pickles hold chosen cycles only
            reason = (f"too short to predict: {n_cycles} cycles (last {last}), the life model reads cycles "
                      f"{early_cycle} and {late_cycle}")
        elif not {early_cycle, late_cycle} <= discharged:
            missing = sorted({early_cycle, late_cycle} - discharged)
            reason = f"no discharge in cycle {', '.join(map(str, missing))}: the life model reads its Qd(V)"
        else:
            reason = ""
        rows.append({"source": source, "cell_key": cell, "n_cycles": n_cycles, "predictable": not reason,
                     "reason": reason})
    return pd.DataFrame(rows, columns=["source", "cell_key", "n_cycles", "predictable", "reason"])


def summarise(unified: pd.DataFrame, early_cycle: int = 10, late_cycle: int = 100, rel_tol: float = REL_TOL,
              abs_tol_ah: float = ABS_TOL_AH) -> pd.DataFrame:
    """cycle_summary with each cell's n_cycles, predictable and reason on every one of its cycles."""
    summary = cycle_summary(unified, rel_tol, abs_tol_ah)
    cells = predictability(summary, early_cycle, late_cycle)
    return summary.merge(cells, on=["source", "cell_key"], how="left")[SUMMARY_COLUMNS]
