"""Cells to one training set and any number of named held-out sets (never by cycle: a cell stays whole).

The literature's protocol (Severson et al. 2019; Attia et al. 2021): one training set, several test
sets scored separately (`test1` = the primary test set, `test2` = the secondary one, ...). Every
hyperparameter is chosen by cross-validation inside the training cells; held-out sets are only scored.
Three ways to get the sets:
    ratios   shuffle with the seed and cut (train / validation / test); `validation` is then just one
             more held-out set (nothing is tuned on it)
    file     JSON {"train": [cells], "<any set name>": [cells], ...}; "train" is required
    folders  the folder a Qdlin-layout cell came from (data/raw/cycling/train/, test1/, test2/, ...)
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from resources.datapaths import Rejection

TRAIN = "train"
UNLABELLED = "unlabelled"  # ratios: cells of unknown life (predicted, never cut into the sets)
SEVERSON_KEY = re.compile(r"^b(\d+)c\d+$")  # Severson pickles: b<batch>c<cell>
SPLITS = ("train", "validation", "test")  # the names ratios produce
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def split_by_ratio(cells: list[str], ratios: tuple[float, float, float], seed: int) -> pd.DataFrame:
    """Shuffle cells with the seed and cut them at the rounded cumulative ratios (normalised)."""
    fractions = np.asarray(ratios, dtype=float) / np.sum(ratios)
    order = np.random.default_rng(seed).permutation(sorted(cells))
    ends = np.round(np.cumsum(fractions) * len(order)).astype(int)
    labels = np.array(SPLITS)[np.searchsorted(ends, np.arange(len(order)), side="right")]
    return pd.DataFrame({"cell_key": order, "split": labels}).sort_values("cell_key", ignore_index=True)


def check_names(names, where: str) -> None:
    """ValueError unless there is a `train` set and every name is a plain word (train, test1, test-2, ...)."""
    names = list(names)
    bad = [n for n in names if not isinstance(n, str) or not NAME.fullmatch(n)]
    if bad:
        raise ValueError(f"{where}: set names must be letters, digits, '_', '-' or '.', got {bad}")
    if TRAIN not in names:
        raise ValueError(f"{where}: no '{TRAIN}' set among {sorted(names)}; one training set is required "
                         "(held-out sets may have any name: test, test1, test2, validation, ...)")


def split_from_json(cells: list[str], path: Path) -> tuple[pd.DataFrame, list[Rejection]]:
    """Cells as listed in a JSON file {"train": [...], "test1": [...], "test2": [...], ...}.

    Cells of the table that the file does not list are rejected (not silently trained on); a cell listed
    in two sets is a ValueError.
    """
    listed = json.loads(Path(path).read_text())
    if not isinstance(listed, dict):
        raise ValueError(f"{path}: expected a JSON object {{set name: [cell keys]}}")
    check_names(listed, str(path))
    assignment: dict[str, str] = {}
    for name, members in listed.items():
        for cell in members:
            if str(cell) in assignment:
                raise ValueError(f"{path}: cell {cell!r} is listed in both {assignment[str(cell)]!r} and {name!r}")
            assignment[str(cell)] = name
    rows = [(cell, assignment[cell]) for cell in sorted(cells) if cell in assignment]
    rejections = [Rejection(Path(path).name, cell, "cell not listed in the split file")
                  for cell in sorted(cells) if cell not in assignment]
    return pd.DataFrame(rows, columns=["cell_key", "split"]), rejections


def split_from_datasets(datasets: pd.Series) -> pd.DataFrame:
    """One set per source folder: `datasets` maps cell_key -> folder name (train, test1, ...)."""
    check_names(set(datasets), "split by folder")
    return (pd.DataFrame({"cell_key": datasets.index.astype(str), "split": datasets.to_numpy()})
            .sort_values("cell_key", ignore_index=True))


def held_out_sets(split: pd.DataFrame) -> list[str]:
    """The scored sets: every name but train; validation and test first, then the rest by name."""
    names = set(split["split"]) - {TRAIN}
    return [n for n in ("validation", "test") if n in names] + sorted(names - {"validation", "test"})


def choose_mode(mode: str, split_file: str, datasets: pd.Series) -> str:
    """auto: a split file when given; else folders when every cell came from a folder and one is 'train';
    else ratios."""
    if mode != "auto":
        return mode
    if split_file:
        return "file"
    if len(datasets) and (datasets != "").all() and TRAIN in set(datasets):
        return "folders"
    return "ratios"


def cell_batches(unified: pd.DataFrame, batches_file: str | Path = "") -> tuple[pd.Series, str]:
    """The batch of each cell (cell_key -> label, "" when unknown) and where the labels came from, for the
    batch-level CV: a JSON file {batch: [cells]} when given, else the `batch_number` column, else Severson
    pickle keys (b<batch>c<cell>); "none" when no cell has a batch (the Qdlin layout names none)."""
    cells = pd.Index(sorted(unified["cell_key"].unique()), name="cell_key")
    if batches_file:
        listed = json.loads(Path(batches_file).read_text())
        if not isinstance(listed, dict):
            raise ValueError(f"{batches_file}: expected a JSON object {{batch: [cell keys]}}")
        labels = {str(cell): str(batch) for batch, members in listed.items() for cell in members}
        return pd.Series([labels.get(c, "") for c in cells], index=cells, dtype=str), str(batches_file)
    numbers = unified.groupby("cell_key")["batch_number"].first().reindex(cells)
    if numbers.notna().any():
        return numbers.map(lambda v: "" if pd.isna(v) else f"{v:g}").astype(str), "batch_number"
    keys = pd.Series([m.group(1) if (m := SEVERSON_KEY.match(c)) else "" for c in cells], index=cells, dtype=str)
    return keys, "cell keys b<batch>c<cell>" if (keys != "").any() else "none"
