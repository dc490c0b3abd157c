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


def interval_columns(predicted_log10: np.ndarray, half_widths: dict[int, float]) -> pd.DataFrame:
    """lower<L>_cycles and upper<L>_cycles for each level L (percent) around the predicted log10 life."""
    predicted_log10 = np.asarray(predicted_log10, dtype=float)
    columns = {}
    for level, half in half_widths.items():
        columns[f"lower{level}_cycles"] = 10 ** (predicted_log10 - half)
        columns[f"upper{level}_cycles"] = 10 ** (predicted_log10 + half)
    return pd.DataFrame(columns)
