"""Split-conformal intervals shared by the pipelines (no Dagster import).

Given n nonconformity scores of rows the model did not see (out-of-fold residuals of training rows), the
ceil((n + 1) * level)-th smallest score bounds the score of an exchangeable new row with probability at least
`level` (Vovk et al., Algorithmic Learning in a Random World, 2005; Lei et al., JASA 113, 1094, 2018).

For classifiers, split-conformal prediction sets with the score 1 - p(true class) (Sadinle, Lei & Wasserman,
JASA 114, 223, 2019: the smallest mean set size among sets with the guarantee), where a class the caller rules out
(`admissible` False) scores inf; below them temperature scaling, calibration error and top-mass sets.
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


def class_scores(probabilities: np.ndarray, admissible: np.ndarray | None = None) -> np.ndarray:
    """(N, K) nonconformity of every class: 1 - p, inf where the class is ruled out."""
    scores = 1.0 - np.asarray(probabilities, float)
    return scores if admissible is None else np.where(np.asarray(admissible, bool), scores, math.inf)


def set_threshold(probabilities: np.ndarray, true_index: np.ndarray, level: float, admissible: np.ndarray | None = None) -> float:
    """Split-conformal bound on the true class's score, from out-of-fold rows: the sets of prediction_sets
    then hold a new row's true class with probability >= level (inf: too few rows, or more than 1 - level
    of true classes ruled out: every class is in every set)."""
    scores = class_scores(probabilities, admissible)
    return conformal_quantile(scores[np.arange(len(scores)), np.asarray(true_index)], level)


def prediction_sets(probabilities: np.ndarray, threshold: float, admissible: np.ndarray | None = None) -> np.ndarray:
    """(N, K) True for the classes in each row's set: score <= threshold (every class when threshold is inf)."""
    return class_scores(probabilities, admissible) <= threshold


def set_coverage(sets: np.ndarray, true_index: np.ndarray) -> float:
    """Share of rows whose set holds the true class (NaN for no row)."""
    sets = np.asarray(sets, bool)
    return float(sets[np.arange(len(sets)), np.asarray(true_index)].mean()) if len(sets) else float("nan")


def interval_coverage(true: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Share of rows whose true value lies inside [lower, upper] (NaN for no row)."""
    true = np.asarray(true, float)
    inside = (np.asarray(lower, float) <= true) & (true <= np.asarray(upper, float))
    return float(inside.mean()) if len(inside) else float("nan")


# Classification: probabilities that mean what they say, and the sets of classes a model cannot tell apart.


def tempered_softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """softmax(logits / T) row by row (T > 1 softens, T < 1 sharpens; the ranking never changes).

    Log-probabilities work as logits: softmax(log p / T) equals softmax(z / T) for p = softmax(z).
    """
    scaled = np.asarray(logits, float) / float(temperature)
    scaled = scaled - scaled.max(axis=1, keepdims=True)  # overflow-free; softmax is shift-invariant
    weights = np.exp(scaled)
    return weights / weights.sum(axis=1, keepdims=True)


def fit_temperature(logits: np.ndarray, true_index: np.ndarray, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """Temperature scaling (Guo et al., ICML 2017): the T that minimises the negative log-likelihood of the true
    classes of held-out rows (a validation set the model was not fitted on).

    The NLL is convex in 1/T, so a bounded search on log T finds the one minimum.
    """
    from scipy.optimize import minimize_scalar

    z = np.asarray(logits, float)
    rows, true_index = np.arange(len(z)), np.asarray(true_index, int)
    if not len(z):
        raise ValueError("fit_temperature needs at least one held-out row")

    def nll(log_t: float) -> float:
        scaled = z / np.exp(log_t)
        top = scaled.max(axis=1)
        return float(np.mean(top + np.log(np.exp(scaled - top[:, None]).sum(axis=1)) - scaled[rows, true_index]))

    found = minimize_scalar(nll, bounds=(np.log(bounds[0]), np.log(bounds[1])), method="bounded",
                            options={"xatol": 1e-4})
    return float(np.exp(found.x))


def reliability_bins(probabilities: np.ndarray, true_index: np.ndarray, n_bins: int = 15) -> dict[str, np.ndarray]:
    """Top-label reliability over n_bins equal-width confidence bins (0, 1/n], ..., ((n-1)/n, 1]:
    per bin its mean confidence, its accuracy (NaN when empty) and its row count."""
    p = np.asarray(probabilities, float)
    confidence = p.max(axis=1)
    correct = p.argmax(axis=1) == np.asarray(true_index, int)
    bins = np.clip(np.ceil(confidence * n_bins).astype(int) - 1, 0, n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(bins, confidence, n_bins) / count
        accuracy = np.bincount(bins, correct.astype(float), n_bins) / count
    return {"confidence": mean_confidence, "accuracy": accuracy, "count": count}


def expected_calibration_error(probabilities: np.ndarray, true_index: np.ndarray, n_bins: int = 15) -> float:
    """ECE: sum over confidence bins of (share of rows) x |accuracy - mean confidence| (Guo et al., 2017)."""
    bins = reliability_bins(probabilities, true_index, n_bins)
    used = bins["count"] > 0
    if not used.any():
        return float("nan")
    gap = np.abs(bins["accuracy"][used] - bins["confidence"][used])
    return float(np.sum(bins["count"][used] * gap) / bins["count"].sum())


def top_mass_sets(probabilities: np.ndarray, level: float = 0.9) -> np.ndarray:
    """(n, n_classes) booleans: the smallest set of classes whose probabilities add up to at least `level`,
    taken from the most probable down (the first class is always in). With calibrated probabilities a set
    holds the true class with probability >= level on average."""
    p = np.asarray(probabilities, float)
    order = np.argsort(-p, axis=1, kind="stable")
    mass_before = np.cumsum(np.take_along_axis(p, order, axis=1), axis=1) - np.take_along_axis(p, order, axis=1)
    keep_sorted = mass_before < level - 1e-12  # a class is in while the mass before it is still short of level
    keep = np.zeros_like(keep_sorted)
    np.put_along_axis(keep, order, keep_sorted, axis=1)
    return keep
