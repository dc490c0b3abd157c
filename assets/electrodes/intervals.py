"""Prediction intervals for electrode voltages by normalised split-conformal calibration (no Dagster import).

Calibration uses only the training rows' out-of-fold predictions (k-fold CV), never
in-sample fits: each row's nonconformity score is |true - predicted| / scale, with
scale = spread + floor, where spread (V) is the standard deviation of the member
models' predictions for that row (forest, boosting, network, composition model) and
floor (V) is the median spread over the calibration rows. The interval of a new row
is predicted +/- q * scale, q being the conformal quantile of the scores
(the ceil((n + 1) * level)-th smallest of n), so rows the models disagree on get
wider intervals. Each working ion with at least `min_rows` calibration rows gets its
own quantiles; the others share the pooled ones.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from resources.conformal import conformal_quantile, interval_coverage

LEVELS = (0.8, 0.95)
MIN_ROWS_PER_ION = 100
POOLED = "pooled"


def spread_floor_V(spread: np.ndarray) -> float:
    """The floor added to every row's spread (V): the median calibration spread, at least 1 mV."""
    return max(float(np.median(spread)), 1e-3) if len(spread) else 1e-3


def calibrate(true: np.ndarray, predicted: np.ndarray, spread: np.ndarray, ions: np.ndarray,
              levels=LEVELS, min_rows: int = MIN_ROWS_PER_ION) -> dict:
    """Quantiles of the normalised out-of-fold scores per working ion (those with >= min_rows rows) and pooled.

    All arrays are over the training rows, `predicted` out of fold; `spread` (V) as in the module docstring.
    """
    true, predicted, spread = (np.asarray(a, float) for a in (true, predicted, spread))
    ions = np.asarray(ions, str)
    floor = spread_floor_V(spread)
    scores = np.abs(true - predicted) / (spread + floor)
    groups = {POOLED: np.ones(len(scores), bool)}
    groups.update({str(ion): ions == ion for ion in np.unique(ions) if (ions == ion).sum() >= min_rows})
    return {
        "floor_V": floor,
        "levels": list(levels),
        "rows": {name: int(mask.sum()) for name, mask in groups.items()},
        "quantiles": {name: {level: conformal_quantile(scores[mask], level) for level in levels}
                      for name, mask in groups.items()},
    }


def interval_columns(level: float) -> tuple[str, str]:
    """('lower_80_V', 'upper_80_V') for level 0.8."""
    percent = round(100 * level)
    return f"lower_{percent}_V", f"upper_{percent}_V"


def intervals(predicted: np.ndarray, spread: np.ndarray, ions: np.ndarray, calibration: dict) -> pd.DataFrame:
    """lower/upper bound (V) per level for each row; an ion without its own quantiles uses the pooled ones."""
    predicted, spread = np.asarray(predicted, float), np.asarray(spread, float)
    quantiles = calibration["quantiles"]
    scale = spread + calibration["floor_V"]
    columns = {}
    for level in calibration["levels"]:
        q = np.array([quantiles.get(ion, quantiles[POOLED])[level] for ion in np.asarray(ions, str)], float)
        lower, upper = interval_columns(level)
        columns[lower], columns[upper] = predicted - q * scale, predicted + q * scale
    return pd.DataFrame(columns)


def coverage(true: np.ndarray, bounds: pd.DataFrame, level: float) -> float:
    """Share of rows whose true value lies inside the interval of `level`."""
    lower, upper = interval_columns(level)
    return interval_coverage(true, bounds[lower].to_numpy(), bounds[upper].to_numpy())


def member_spread(predictions: pd.DataFrame) -> np.ndarray:
    """Standard deviation (V) across the columns (one per member model) of each row; 0 with one member."""
    return predictions.std(axis=1, ddof=0).to_numpy(float)


def interval_parity_markdown(true: np.ndarray, predicted: np.ndarray, bounds: pd.DataFrame, label: str,
                             title: str) -> str:
    """Parity plot (predicted vs true, V) with each row's 80 % and 95 % interval as vertical bars."""
    from resources.plots import figure_markdown, new_figure

    fig, axes = new_figure(size=(5.0, 5.0))
    ax = axes[0][0]
    for level, color, width in ((0.95, "0.75", 1.0), (0.8, "tab:blue", 1.6)):
        lower, upper = interval_columns(level)
        if lower in bounds:
            ax.vlines(true, bounds[lower], bounds[upper], color=color, linewidth=width, alpha=0.5,
                      label=f"{round(100 * level)} % interval ({100 * coverage(true, bounds, level):.0f} % cover)")
    ax.scatter(true, predicted, s=6, color="black", zorder=3)
    finite = np.concatenate([np.asarray(true, float), np.asarray(predicted, float)])
    low, high = float(np.nanmin(finite)), float(np.nanmax(finite))
    ax.plot([low, high], [low, high], color="red", linewidth=1)
    ax.set_xlabel(f"true {label}")
    ax.set_ylabel(f"predicted {label}")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left")
    return figure_markdown(fig, f"{title} parity with intervals")
