"""The unified table written as text: one document per cell and window of cycles.

A time step is its chosen columns at fixed precision joined by "," and time
steps are joined by "<|sep|>":
    3.312,-4.40,0.523,31.2<|sep|>3.305,-4.40,0.541,31.4<|sep|>...
Fixed precision keeps every number the same width, so digit positions mean the
same thing across documents.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

VALUE_SEPARATOR = ","
TIME_SEPARATOR = "<|sep|>"
DEFAULT_PRECISION = {
    "current": 2, "voltage": 3, "charge_capacity": 3, "discharge_capacity": 3,
    "temperature": 1, "discharge_dQdV": 2, "time": 2,
}


def format_steps(frame: pd.DataFrame, columns: list[str], precision: dict[str, int]) -> pd.Series:
    """One string per row: the columns at their precision (default DEFAULT_PRECISION) joined by ','."""
    step_format = VALUE_SEPARATOR.join(f"%.{precision.get(c, DEFAULT_PRECISION.get(c, 3))}f" for c in columns)
    values = frame[columns].to_numpy(dtype=float)
    if not len(values):
        return pd.Series([], index=frame.index, dtype=object)
    # One C-level %-format over all rows: several times faster than formatting column by column.
    text = "\n".join([step_format] * len(values)) % tuple(values.ravel().tolist())
    return pd.Series(text.split("\n"), index=frame.index)


def subsample_steps(frame: pd.DataFrame, stride: int) -> pd.DataFrame:
    """Every stride-th time step of each cycle (the first one included)."""
    if stride <= 1:
        return frame
    step = frame.groupby(["cell_key", "cycle_number"]).cumcount()
    return frame.loc[step % stride == 0]


def document_index(frame: pd.DataFrame, cycles_per_document: int) -> pd.Series:
    """0, 1, ... per cell: consecutive groups of cycles_per_document available cycles."""
    cycle_rank = frame.groupby("cell_key")["cycle_number"].rank(method="dense").astype(int) - 1
    return cycle_rank // cycles_per_document


def build_corpus(unified: pd.DataFrame, split: pd.DataFrame, columns: list[str], precision: dict[str, int],
                 cycles_per_document: int, step_stride: int, last_cycle: int, seed: int) -> pd.DataFrame:
    """Documents (cell_key, split, document, first_cycle, last_cycle, n_steps, text) in shuffled order.

    Only cells in the split and cycles <= last_cycle (0: all) are written.
    """
    frame = unified.loc[unified["cell_key"].isin(split["cell_key"])]
    if last_cycle > 0:
        frame = frame.loc[frame["cycle_number"] <= last_cycle]
    frame = subsample_steps(frame, step_stride)
    frame = frame.assign(step=format_steps(frame, columns, precision),
                         document=document_index(frame, cycles_per_document))
    documents = (
        frame.groupby(["cell_key", "document"], sort=True)
        .agg(first_cycle=("cycle_number", "min"), last_cycle=("cycle_number", "max"),
             n_steps=("step", "size"), text=("step", TIME_SEPARATOR.join))
        .reset_index()
        .merge(split, on="cell_key")
    )
    order = np.random.default_rng(seed).permutation(len(documents))
    return documents.iloc[order].reset_index(drop=True)[
        ["cell_key", "split", "document", "first_cycle", "last_cycle", "n_steps", "text"]
    ]
