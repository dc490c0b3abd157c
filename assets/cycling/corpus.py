"""The unified table written as text: one document per cell and window of cycles.

A time step is its chosen columns at fixed precision joined by "," and time
steps are joined by "<|sep|>":
    3.312,-4.40,0.523,31.2<|sep|>3.305,-4.40,0.541,31.4<|sep|>...
Fixed precision keeps every number the same width, so digit positions mean the
same thing across documents.
"""

from __future__ import annotations

import hashlib

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
    return shuffled(documents, seed)[["cell_key", "split", "document", "first_cycle", "last_cycle", "n_steps", "text"]]


def shuffled(documents: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The documents in an order drawn per document from (seed, cell, document): any two documents keep their
    relative order whichever other cells are present, so uploading a cell never reorders the training documents
    (and so never changes the tokenizer or the encoder's pretraining)."""
    keys = [int.from_bytes(hashlib.blake2b(f"{seed}/{cell}/{document}".encode(), digest_size=8).digest(), "big")
            for cell, document in zip(documents["cell_key"], documents["document"])]
    return documents.iloc[np.argsort(np.array(keys, dtype=np.uint64), kind="stable")].reset_index(drop=True)


# ---- the change representation: Q(V) of later cycles minus a reference cycle, in mAh -----------------------

def qv_curves(unified: pd.DataFrame, cycles: list[int], voltage_points: int) -> dict[str, dict[int, np.ndarray]]:
    """Per cell, per wanted cycle present: the discharge capacity Q(V) (Ah) at `voltage_points` voltages
    evenly spaced over the Qdlin grid (3.6 -> 2.0 V), from time steps or from Qdlin rows alike."""
    from assets.cycling.lifemodel import discharge_curve

    index = np.linspace(0, 999, voltage_points).round().astype(int)
    wanted = unified.loc[unified["cycle_number"].isin(cycles)]
    curves: dict[str, dict[int, np.ndarray]] = {}
    for (cell, cycle), frame in wanted.groupby(["cell_key", "cycle_number"], sort=True):
        curves.setdefault(cell, {})[int(cycle)] = discharge_curve(frame)[index]
    return curves


def build_difference_corpus(unified: pd.DataFrame, split: pd.DataFrame, reference_cycle: int,
                            document_cycles: list[int], voltage_points: int, decimals: int,
                            cycles_per_document: int, seed: int) -> pd.DataFrame:
    """Documents of Q_n(V) - Q_reference(V) in mAh at fixed `decimals`, one step (values over voltage) per
    cycle n of `document_cycles`, `cycles_per_document` cycles per document (0: all in one document, so
    one document spans early and late cycles). Same columns as `build_corpus`.

    Severson's signal, Q100(V) - Q10(V), spans a few to ~40 mAh: at 1 mAh on absolute capacity it is
    almost all rounding; as a difference at 0.1 mAh every digit carries it.
    """
    curves = qv_curves(unified.loc[unified["cell_key"].isin(split["cell_key"])],
                       sorted({reference_cycle, *document_cycles}), voltage_points)
    step_format = VALUE_SEPARATOR.join([f"%.{decimals}f"] * voltage_points)
    per_document = cycles_per_document if cycles_per_document > 0 else len(document_cycles)
    rows = []
    for cell, by_cycle in curves.items():
        if reference_cycle not in by_cycle or not np.isfinite(by_cycle[reference_cycle]).all():
            continue
        present = [c for c in document_cycles if c in by_cycle and np.isfinite(by_cycle[c]).all()]
        for document, start in enumerate(range(0, len(present), per_document)):
            chunk = present[start:start + per_document]
            steps = [step_format % tuple((1000.0 * (by_cycle[c] - by_cycle[reference_cycle])).tolist())
                     for c in chunk]
            text = TIME_SEPARATOR.join(steps).replace("-0." + "0" * decimals, "0." + "0" * decimals)
            rows.append((cell, document, chunk[0], chunk[-1], len(chunk), text))
    documents = pd.DataFrame(rows, columns=["cell_key", "document", "first_cycle", "last_cycle", "n_steps", "text"])
    documents = documents.merge(split, on="cell_key")
    return shuffled(documents, seed)[["cell_key", "split", "document", "first_cycle", "last_cycle", "n_steps", "text"]]


def pretraining_documents(documents: pd.DataFrame, monitor_share: float, seed: int,
                          held_out_curves: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks over `documents`: (pretrain on, monitor the loss on). A `monitor_share` of the training
    cells (at least one when there are two or more) is held out by cell for the validation loss. With
    `held_out_curves` the documents of every other cell (held-out sets, unknown lives) are pretrained on too:
    their curves only, since masked-token pretraining never reads a life; else they are never read."""
    train = (documents["split"] == "train").to_numpy()
    cells = np.array(sorted(documents.loc[train, "cell_key"].unique()))
    n_monitor = int(round(monitor_share * len(cells))) if len(cells) > 1 else 0
    n_monitor = max(n_monitor, 1) if len(cells) > 1 and monitor_share > 0 else n_monitor
    monitor_cells = np.random.default_rng(seed).permutation(cells)[:n_monitor]
    monitor = train & documents["cell_key"].isin(monitor_cells).to_numpy()
    return (~monitor if held_out_curves else train & ~monitor), monitor
