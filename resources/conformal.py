"""Split-conformal intervals shared by the pipelines (no Dagster import).

Given n nonconformity scores of rows the model did not see (out-of-fold residuals of training rows), the
ceil((n + 1) * level)-th smallest score bounds the score of an exchangeable new row with probability at least
`level` (Vovk et al., Algorithmic Learning in a Random World, 2005; Lei et al., JASA 113, 1094, 2018).
"""

from __future__ import annotations

import math

import numpy as np


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """The ceil((n + 1) * level)-th smallest score: marginal coverage >= level for an exchangeable new row.

    inf when n is too small for that level (an interval of unbounded width is the honest answer).
    """
    scores = np.sort(np.asarray(scores, float))
    rank = math.ceil((len(scores) + 1) * level)
    return float(scores[rank - 1]) if rank <= len(scores) else math.inf


def interval_coverage(true: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Share of rows whose true value lies inside [lower, upper] (NaN for no row)."""
    true = np.asarray(true, float)
    inside = (np.asarray(lower, float) <= true) & (true <= np.asarray(upper, float))
    return float(inside.mean()) if len(inside) else float("nan")
