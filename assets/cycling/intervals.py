"""Prediction intervals for cycle life: split conformal on cross-validated residuals of log10(life).

Calibration uses only the training cells: each training cell's residual comes from a model fitted without
it (K-fold, hyperparameters chosen inside the fold), so the residuals are out-of-sample. Errors of a
life regression scale with life, so the residuals are taken in log10 space and the interval is
multiplicative in cycles: [p / 10**h, p * 10**h] around the point prediction p, which it always contains.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

LEVELS_PERCENT = (80, 95)


def conformal_half_width(residuals_log10: np.ndarray, level: float) -> float:
    """Half-width (log10 cycles) of a conformal interval at `level` (0..1): the ceil((n+1) level)-th
    smallest |residual| of n out-of-fold residuals; inf when n is too small for the level."""
    scores = np.sort(np.abs(np.asarray(residuals_log10, dtype=float)))
    rank = int(np.ceil((len(scores) + 1) * level))
    return float(scores[rank - 1]) if rank <= len(scores) else float("inf")


def interval_columns(predicted_log10: np.ndarray, half_widths: dict[int, float]) -> pd.DataFrame:
    """lower<L>_cycles and upper<L>_cycles for each level L (percent) around the predicted log10 life."""
    predicted_log10 = np.asarray(predicted_log10, dtype=float)
    columns = {}
    for level, half in half_widths.items():
        columns[f"lower{level}_cycles"] = 10 ** (predicted_log10 - half)
        columns[f"upper{level}_cycles"] = 10 ** (predicted_log10 + half)
    return pd.DataFrame(columns)


def coverage(life_cycles: np.ndarray, lower_cycles: np.ndarray, upper_cycles: np.ndarray) -> float:
    """Share of cells whose true life lies inside [lower, upper] (NaN for no cell)."""
    inside = (np.asarray(lower_cycles) <= life_cycles) & (life_cycles <= np.asarray(upper_cycles))
    return float(inside.mean()) if len(inside) else float("nan")
