"""Cycler data (Severson pickles, beep-style unified CSVs) to one unified table.

One row per (cell, cycle, time step):
    cell_key, cycle_number, time (min), cycle_life, charge_policy, current (A or
    C-rate, as the source has it), voltage (V), charge_capacity, discharge_capacity
    (Ah), temperature (degC), discharge_dQdV, batch_number, discharge_policy, source.
A signal a source lacks is NaN; `signals_present` says which are there.

Severson pickles hold dQdV on the Qdlin voltage grid, not per time step, so it
is not a time-step signal there. Pickles run code when loaded: read only files
you trust (data/raw/cycling is the user's own drop folder).
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from resources.datapaths import Rejection

KEYS = ["cell_key", "cycle_number"]
SIGNALS = ["current", "voltage", "charge_capacity", "discharge_capacity", "temperature", "discharge_dQdV"]
CELL_COLUMNS = ["cycle_life", "charge_policy", "batch_number", "discharge_policy"]
COLUMNS = KEYS + ["time"] + CELL_COLUMNS[:2] + SIGNALS + CELL_COLUMNS[2:] + ["source"]
SEVERSON_TRACES = {"t": "time", "I": "current", "V": "voltage", "Qc": "charge_capacity",
                   "Qd": "discharge_capacity", "T": "temperature"}
POLICY_STEPS = [f"charge_policy_Q{i}" for i in range(1, 5)]


def _scalar(value) -> float:
    """cycle_life as stored by Severson ([[1852.]]), a float, or missing -> NaN."""
    array = np.ravel(np.asarray(value, dtype=float)) if value is not None else np.array([])
    return float(array[0]) if array.size else float("nan")


def _severson_cycle_frame(cycle: Mapping) -> pd.DataFrame:
    """The time-step signals of one Severson cycle (ValueError when they do not line up)."""
    columns = {SEVERSON_TRACES[k]: np.ravel(np.asarray(v, dtype=float))
               for k, v in cycle.items() if k in SEVERSON_TRACES}
    if "time" not in columns or len(columns) < 2:
        raise ValueError("expected arrays 't' and at least one of V, I, Qc, Qd, T")
    lengths = {name: values.size for name, values in columns.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"trace lengths differ: {lengths}")
    return pd.DataFrame(columns)


def _severson_cell_frame(cell: str, record, source: str) -> pd.DataFrame:
    if not isinstance(record, Mapping) or not isinstance(record.get("cycles"), Mapping):
        raise ValueError("expected a dict with 'cycles' (dict keyed by cycle number)")
    frames = []
    for key, cycle in record["cycles"].items():
        if not isinstance(cycle, Mapping):
            raise ValueError(f"cycle {key}: expected a dict of arrays")
        try:
            frames.append(_severson_cycle_frame(cycle).assign(cycle_number=int(float(key))))
        except (ValueError, TypeError, OverflowError) as error:
            raise ValueError(f"cycle {key}: {error}") from error
    if not frames:
        raise ValueError("no cycles")
    return pd.concat(frames, ignore_index=True).assign(
        cell_key=cell,
        cycle_life=_scalar(record.get("cycle_life")),
        charge_policy=str(record.get("charge_policy", "")),
        source=source,
    )


def severson_frame(batch, source: str) -> tuple[pd.DataFrame, list[Rejection]]:
    """A Severson batch dict (cell -> record) in the unified schema; bad cells are rejected."""
    if not isinstance(batch, Mapping) or not batch:
        return _empty(), [Rejection(source, None, "expected a non-empty dict keyed by cell (Severson format)")]
    frames, rejections = [], []
    for cell, record in batch.items():
        try:
            frames.append(_severson_cell_frame(str(cell), record, source))
        except (ValueError, TypeError, OverflowError) as error:
            rejections.append(Rejection(source, str(cell), str(error)))
    return _conform(frames), rejections


def read_pickle(path: Path) -> tuple[pd.DataFrame, list[Rejection]]:
    try:
        with open(path, "rb") as handle:
            batch = pickle.load(handle)
    except Exception as error:  # any unreadable pickle is a rejected file, not a failed run
        return _empty(), [Rejection(path.name, None, f"not a readable pickle: {type(error).__name__}: {error}")]
    return severson_frame(batch, path.name)


def read_csv(path: Path) -> tuple[pd.DataFrame, list[Rejection], str]:
    """A unified CSV; returns (frame, rejections, how time was obtained)."""
    try:
        raw = pd.read_csv(path, float_precision="round_trip")
    except Exception as error:  # malformed CSV: reject the file, go on with the rest
        return _empty(), [Rejection(path.name, None, f"not a readable CSV: {error}")], ""
    missing = [c for c in KEYS if c not in raw.columns]
    if missing or not any(s in raw.columns for s in SIGNALS):
        reason = f"expected columns {KEYS} and at least one of {SIGNALS}; missing {missing or SIGNALS}"
        return _empty(), [Rejection(path.name, None, reason)], ""
    cycle_number = pd.to_numeric(raw["cycle_number"], errors="coerce")
    bad_rows = ~np.isfinite(cycle_number) | raw["cell_key"].isna()
    rejections = [Rejection(path.name, int(i) + 2, "cell_key empty or cycle_number not a finite number")
                  for i in np.flatnonzero(bad_rows)]  # +2: header line, 1-based lines
    frame = raw.loc[~bad_rows].assign(cycle_number=cycle_number[~bad_rows].astype(int), source=path.name)
    frame["cell_key"] = frame["cell_key"].astype(str)
    time_origin = "column 'time'"
    if "time" not in frame.columns:
        frame["time"] = frame.groupby(KEYS).cumcount().astype(float)
        time_origin = "row order within the cycle"
    if "charge_policy" not in frame.columns and all(c in frame.columns for c in POLICY_STEPS):
        frame["charge_policy"] = frame[POLICY_STEPS].astype(str).agg("-".join, axis=1)
    return _conform([frame]), rejections, time_origin


def raw_files(folder: Path) -> list[Path]:
    """The pickles and CSVs in a drop folder, in name order."""
    return sorted(p for p in Path(folder).glob("*") if p.suffix.lower() in (".pkl", ".pickle", ".csv"))


def read_files(paths: list[Path]) -> tuple[list[pd.DataFrame], list[Rejection], dict[str, str]]:
    """Each file in the unified schema; also rejections and, per CSV, where its time came from."""
    frames, rejections, time_origins = [], [], {}
    for path in paths:
        if path.suffix.lower() == ".csv":
            frame, rejected, time_origins[path.name] = read_csv(path)
        else:
            frame, rejected = read_pickle(path)
        frames.append(frame)
        rejections += rejected
    return frames, rejections, time_origins


def _empty() -> pd.DataFrame:
    return _conform([])


def _conform(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate and coerce to the unified columns and types."""
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    for column in COLUMNS:
        if column not in frame.columns:
            frame[column] = np.nan
    frame = frame[COLUMNS].copy()
    numeric = ["time", "cycle_life", "batch_number"] + SIGNALS
    frame[numeric] = frame[numeric].apply(pd.to_numeric, errors="coerce").astype(float)
    for column in ["cell_key", "charge_policy", "discharge_policy", "source"]:
        frame[column] = frame[column].fillna("").astype(str)
    frame["cycle_number"] = frame["cycle_number"].astype(int)
    return frame


def reject_bad_cycles(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[Rejection]]:
    """Drop cycles with NaN time or signals, or time going backwards; one rejection per cycle.

    A signal that is NaN over a whole cycle is absent from that source, not bad.
    """
    present = signals_present(frame)
    group_ids = [frame["source"], frame["cell_key"], frame["cycle_number"]]
    missing = frame[present].isna().groupby(group_ids)
    problems = pd.DataFrame({
        "time has NaN": frame["time"].isna().groupby(group_ids).any(),
        "time is not monotonic (expected non-decreasing within a cycle)":
            (frame.groupby(group_ids)["time"].diff() < 0).groupby(group_ids).any(),
    })
    partly_missing = missing.any() & ~missing.all()
    for signal in present:
        problems[f"NaN in {signal}"] = partly_missing[signal]
    bad = problems.loc[problems.any(axis=1)]
    rejections = [
        Rejection(source, f"{cell}/cycle {cycle}", "; ".join(bad.columns[flags.to_numpy()]))
        for (source, cell, cycle), flags in bad.iterrows()
    ]
    keep = ~pd.MultiIndex.from_arrays(group_ids).isin(bad.index)
    return frame.loc[keep].reset_index(drop=True), rejections


def reject_short_and_duplicate_cells(frame: pd.DataFrame, min_cycles: int) -> tuple[pd.DataFrame, list[Rejection]]:
    """Cells with fewer than min_cycles cycles, and a cell key a second source repeats, are rejected."""
    cells = frame.groupby(["cell_key", "source"], sort=False)["cycle_number"].nunique().reset_index()
    rejections, drop = [], []
    first_source: dict[str, str] = {}
    for cell, source, n_cycles in cells.itertuples(index=False):
        if cell in first_source:
            rejections.append(Rejection(source, cell, f"cell key already read from {first_source[cell]}"))
        elif n_cycles < min_cycles:
            rejections.append(Rejection(source, cell, f"{n_cycles} valid cycles, expected at least {min_cycles}"))
        else:
            first_source[cell] = source
            continue
        drop.append((cell, source))
    keep = ~pd.MultiIndex.from_frame(frame[["cell_key", "source"]]).isin(drop)
    return frame.loc[keep].reset_index(drop=True), rejections


def smooth_charge_capacity(frame: pd.DataFrame, window: int) -> pd.DataFrame:
    """Centred rolling mean of charge_capacity within each cycle (window in time steps; <2: off)."""
    if window < 2:
        return frame
    smoothed = frame.groupby(["source", "cell_key", "cycle_number"])["charge_capacity"].transform(
        lambda s: s.rolling(window, center=True, min_periods=1).mean()
    )
    return frame.assign(charge_capacity=smoothed)


def cut_time(frame: pd.DataFrame, cutoff_min: float | None) -> pd.DataFrame:
    """Keep time steps within cutoff_min of their cycle's first time step (None: keep all)."""
    if cutoff_min is None:
        return frame
    start = frame.groupby(["source", "cell_key", "cycle_number"])["time"].transform("min")
    return frame.loc[frame["time"] - start <= cutoff_min].reset_index(drop=True)


def unify(frames: list[pd.DataFrame], min_cycles: int, smoothing_window: int = 0,
          time_cutoff_min: float | None = None) -> tuple[pd.DataFrame, list[Rejection]]:
    """Validated, sorted unified table from per-source frames."""
    frame = _conform(frames)
    frame, cycle_rejections = reject_bad_cycles(frame)
    frame = cut_time(smooth_charge_capacity(frame, smoothing_window), time_cutoff_min)
    frame, cell_rejections = reject_short_and_duplicate_cells(frame, min_cycles)
    frame = frame.sort_values(["cell_key", "cycle_number", "time"], kind="stable").reset_index(drop=True)
    return frame, cycle_rejections + cell_rejections


def signals_present(frame: pd.DataFrame) -> list[str]:
    return [s for s in SIGNALS if frame[s].notna().any()]


def rejected_cell_share(frame: pd.DataFrame, rejections: list[Rejection]) -> float:
    """Rejected whole files and cells over (those + accepted cells); single rejected cycles or CSV
    lines are not counted (their cell goes on)."""
    whole = [r for r in rejections if r.row is None or (isinstance(r.row, str) and "/cycle " not in r.row)]
    accepted = frame[["source", "cell_key"]].drop_duplicates().shape[0]
    return len(whole) / (accepted + len(whole)) if whole else 0.0
