"""Train / validation / test split by cell (never by cycle: windows of one cell stay together)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from resources.datapaths import Rejection

SPLITS = ("train", "validation", "test")


def split_by_ratio(cells: list[str], ratios: tuple[float, float, float], seed: int) -> pd.DataFrame:
    """Shuffle cells with the seed and cut them at the rounded cumulative ratios (normalised)."""
    fractions = np.asarray(ratios, dtype=float) / np.sum(ratios)
    order = np.random.default_rng(seed).permutation(sorted(cells))
    ends = np.round(np.cumsum(fractions) * len(order)).astype(int)
    labels = np.array(SPLITS)[np.searchsorted(ends, np.arange(len(order)), side="right")]
    return pd.DataFrame({"cell_key": order, "split": labels}).sort_values("cell_key", ignore_index=True)


def split_from_json(cells: list[str], path: Path) -> tuple[pd.DataFrame, list[Rejection]]:
    """Cells as listed in a JSON file {"train": [...], "validation": [...], "test": [...]}.

    Cells of the table that the file does not list are rejected (not silently trained on).
    """
    listed = json.loads(Path(path).read_text())
    unknown = set(listed) - set(SPLITS)
    if unknown:
        raise ValueError(f"{path}: unknown split names {sorted(unknown)}, expected {list(SPLITS)}")
    assignment = {str(cell): split for split in SPLITS for cell in listed.get(split, [])}
    rows = [(cell, assignment[cell]) for cell in sorted(cells) if cell in assignment]
    rejections = [Rejection(Path(path).name, cell, "cell not listed in the split file")
                  for cell in sorted(cells) if cell not in assignment]
    return pd.DataFrame(rows, columns=["cell_key", "split"]), rejections
