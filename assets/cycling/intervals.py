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


def batch_variance_log10(residuals_log10: np.ndarray, batches: np.ndarray | None) -> float:
    """Between-batch variance tau^2 of log10 residuals (method of moments, one-way random effects).

    A new batch shifts every cell of it by one unknown offset that cell-level folds never show: tau^2 =
    mean over batches of (batch mean residual)^2 minus the sampling variance of those means (within-batch
    variance / batch size), floored at 0. 0 without labels or with fewer than two batches (nothing to estimate
    from: the interval then covers cell-to-cell scatter only, and the model card says so)."""
    if batches is None:
        return 0.0
    residuals = np.asarray(residuals_log10, float)
    labels = np.asarray(batches)
    groups = [residuals[labels == b] for b in np.unique(labels)]
    if len(groups) < 2:
        return 0.0
    means_squared = np.mean([g.mean() ** 2 for g in groups])
    sampling = np.mean([g.var(ddof=1) / len(g) if len(g) > 1 else 0.0 for g in groups])
    return float(max(means_squared - sampling, 0.0))


def batch_aware_half_widths(residuals_log10: np.ndarray, batches: np.ndarray | None,
                            levels_percent=LEVELS_PERCENT) -> tuple[dict[int, float], float]:
    """Half widths (log10) that hold for a cell of a new batch, and tau (log10).

    Within-batch scatter: the split-conformal quantile of |residual - its batch's mean residual| (the
    out-of-fold residuals of the training cells); between batches: tau from batch_variance_log10. The two
    add in quadrature, the batch offset scaled by the normal quantile of the level:
    h = sqrt(q_level^2 + (z_level * tau)^2). With tau = 0 this is plain split conformal on the residuals."""
    from scipy.stats import norm

    from resources.conformal import conformal_quantile

    residuals = np.asarray(residuals_log10, float)
    tau = float(np.sqrt(batch_variance_log10(residuals, batches)))
    centred = residuals
    if tau > 0:
        labels = np.asarray(batches)
        centred = residuals - pd.Series(residuals).groupby(labels).transform("mean").to_numpy()
    half_widths = {}
    for level in levels_percent:
        within = conformal_quantile(np.abs(centred), level / 100)
        half_widths[level] = float(np.hypot(within, norm.ppf(0.5 + level / 200) * tau))
    return half_widths, tau
