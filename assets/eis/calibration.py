"""Calibrated circuit probabilities and 90 % circuit sets, from out-of-fold predictions of training spectra.

The classifier's training spectra are split into `folds` stratified folds; a model trained on the other
folds (plus the label-fitted spectra, which never join the calibration rows) predicts each fold, so every
training spectrum gets probabilities from a model that did not see it. On those out-of-fold probabilities:

- one temperature (resources/conformal.fit_temperature on log p) calibrates the probabilities; it keeps
  every spectrum's ranking, so the predicted circuit does not change;
- a split-conformal threshold (resources/conformal.set_threshold, score 1 - calibrated p of the true
  circuit) gives sets that hold a new spectrum's true circuit with probability >= `level`.

The fits are evidence: a circuit whose fit (assets/eis/evidence.py, on the spectrum's measured points)
leaves a relative residual above `max_residual` cannot reproduce the spectrum and is ruled out of its set.
The bound is 0.03 (a fit that reproduces its spectrum), raised where the training spectra need it: to the
residual that rules out no more than RULE_OUT_SHARE of their own true circuits (with one-start evidence
fits many true circuits stay above 0.03, and a fixed bound would rule them out). The same rule is applied to
the calibration rows, so a true circuit ruled out counts against the threshold and the guarantee stands.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from resources.conformal import (
    expected_calibration_error,
    fit_temperature,
    prediction_sets,
    reliability_bins,
    set_coverage,
    set_threshold,
    tempered_softmax,
)

SET_LEVEL = 0.9
MAX_RESIDUAL = 0.03  # relative residual of a fit that reproduces its spectrum (FitSettings.converged_residual)
RESIDUAL_COLUMN = "evidence__log10_residual_{}"  # evidence.py's column of one circuit's log10 relative residual
RULE_OUT_SHARE = 0.01  # at most this share of the training spectra's true circuits may be ruled out by their own fit


@dataclass(frozen=True)
class Calibration:
    """What prediction needs: the temperature and the set threshold (score bound), with their level and rule."""

    temperature: float
    threshold: float
    level: float = SET_LEVEL
    max_residual: float = MAX_RESIDUAL


def out_of_fold_probabilities(fit, x: np.ndarray, y: np.ndarray, x_extra: np.ndarray, y_extra: np.ndarray, n_classes: int,
                              folds: int, seed: int) -> np.ndarray:
    """(N, n_classes) probabilities of each row of x from a model fitted without its fold.

    fit(x, y) returns a model with predict_proba; y and y_extra are class indices; the extra rows (label-fitted
    spectra) join every fold's training rows and are never predicted."""
    from sklearn.model_selection import KFold, StratifiedKFold

    counts = np.bincount(y, minlength=n_classes)
    stratify = counts[counts > 0].min() >= folds
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed) if stratify else KFold(folds, shuffle=True, random_state=seed)
    probabilities = np.zeros((len(x), n_classes))
    for train, held in splitter.split(x, y):
        model = fit(np.vstack([x[train], x_extra]), np.concatenate([y[train], y_extra]))
        probabilities[held] = model.predict_proba(x[held])
    return probabilities


def admissible(features: pd.DataFrame, classes: list[str], max_residual: float = MAX_RESIDUAL) -> np.ndarray:
    """(N, K) True where the circuit's evidence fit reproduces the spectrum (every circuit without evidence)."""
    columns = [RESIDUAL_COLUMN.format(name) for name in classes]
    if not set(columns) <= set(features.columns):
        return np.ones((len(features), len(classes)), bool)
    # A NaN residual (a failed fit) is no evidence against the circuit: it stays in.
    residual = features[columns].to_numpy(float)
    return ~(residual > np.log10(max_residual))


def residual_bound(features: pd.DataFrame, true_circuits: list[str]) -> float:
    """The relative residual above which a circuit is ruled out: MAX_RESIDUAL, or the (1 - RULE_OUT_SHARE)
    quantile of the training spectra's true-circuit residuals where that is higher (inf without evidence)."""
    columns = [RESIDUAL_COLUMN.format(name) for name in true_circuits]
    if not len(features) or not set(columns) <= set(features.columns):
        return math.inf
    true_log10 = features.to_numpy()[np.arange(len(features)), [features.columns.get_loc(c) for c in columns]].astype(float)
    if np.isnan(true_log10).all():
        return MAX_RESIDUAL
    return float(max(MAX_RESIDUAL, 10 ** np.nanquantile(true_log10, 1 - RULE_OUT_SHARE)))


def calibrate(probabilities: np.ndarray, true_index: np.ndarray, allowed: np.ndarray, level: float = SET_LEVEL,
              max_residual: float = MAX_RESIDUAL) -> Calibration:
    """Temperature and set threshold from out-of-fold probabilities of training rows."""
    temperature = fit_temperature(_log(probabilities), true_index)
    scaled = tempered_softmax(_log(probabilities), temperature)
    return Calibration(temperature, set_threshold(scaled, true_index, level, allowed), level, max_residual)


def calibrate_on_training(fit, features: pd.DataFrame, training: pd.DataFrame, extra: pd.DataFrame, columns: list[str],
                          classes: list[str], folds: int, seed: int, level: float = SET_LEVEL) -> tuple[Calibration, dict]:
    """Calibration from out-of-fold predictions of the `training` rows (spectrum_id, circuit); `extra` rows
    (label-fitted spectra: their features and circuit) join every fold's training. Returns it with the
    out-of-fold scores (scores()) and reliability bins before and after."""
    rows = features.set_index("spectrum_id").loc[training["spectrum_id"]]
    y = np.array([classes.index(c) for c in training["circuit"]], dtype=int)
    folds = min(folds, len(y))
    if folds < 2:  # nothing to calibrate on: probabilities as they are, every circuit in every set
        calibration, y = Calibration(1.0, math.inf, level), y[:0]
        raw, allowed = np.zeros((0, len(classes))), np.zeros((0, len(classes)), bool)
    else:
        y_extra = np.array([classes.index(c) for c in extra["circuit"]], dtype=int)
        raw = out_of_fold_probabilities(fit, rows[columns].to_numpy(float), y, extra[columns].to_numpy(float), y_extra, len(classes), folds, seed)
        bound = residual_bound(rows, training["circuit"].tolist())
        allowed = admissible(rows, classes, bound)
        calibration = calibrate(raw, y, allowed, level, bound)
    scaled = calibrated(raw, calibration)
    out_of_fold = {**scores(raw, scaled, circuit_sets(scaled, allowed, calibration), y), "accuracy": float(np.mean(raw.argmax(axis=1) == y)) if len(y) else float("nan"),
                   "reliability_uncalibrated": reliability_bins(raw, y), "reliability": reliability_bins(scaled, y)}
    return calibration, out_of_fold


def held_out_scores(model, calibration: Calibration, features: pd.DataFrame, ids: list[str], truth: list[str], columns: list[str],
                classes: list[str]) -> dict:
    """scores() and the calibrated reliability bins of `model` on the rows `ids` with true circuits `truth`."""
    rows = features.set_index("spectrum_id").loc[ids]
    y = np.array([classes.index(c) for c in truth], dtype=int)
    raw = model.predict_proba(rows[columns].to_numpy(float)) if len(rows) else np.zeros((0, len(classes)))
    scaled = calibrated(raw, calibration)
    allowed = admissible(rows, classes, calibration.max_residual)
    return {**scores(raw, scaled, circuit_sets(scaled, allowed, calibration), y), "reliability": reliability_bins(scaled, y)}


def calibrated(probabilities: np.ndarray, calibration: Calibration) -> np.ndarray:
    return tempered_softmax(_log(probabilities), calibration.temperature)


def circuit_sets(calibrated_probabilities: np.ndarray, allowed: np.ndarray, calibration: Calibration) -> np.ndarray:
    """(N, K) True for the circuits in each spectrum's set."""
    return prediction_sets(calibrated_probabilities, calibration.threshold, allowed)


def set_members(sets: np.ndarray, probabilities: np.ndarray, classes: list[str]) -> list[list[str]]:
    """Per row the circuits of its set, most probable first."""
    order = np.argsort(-probabilities, axis=1, kind="stable")
    return [[classes[k] for k in row_order if row_set[k]] for row_order, row_set in zip(order, sets)]


def scores(raw: np.ndarray, calibrated_probabilities: np.ndarray, sets: np.ndarray, true_index: np.ndarray) -> dict:
    """ECE before and after calibration, set coverage, mean size, share of empty sets and the size counts."""
    sizes = sets.sum(axis=1)
    return {
        "ece_uncalibrated": expected_calibration_error(raw, true_index),
        "ece": expected_calibration_error(calibrated_probabilities, true_index),
        "set90_coverage": set_coverage(sets, true_index),
        "set90_mean_size": float(sizes.mean()) if len(sizes) else float("nan"),
        "set90_empty_share": float((sizes == 0).mean()) if len(sizes) else float("nan"),
        "set90_size_counts": size_counts(sizes),
    }


def size_counts(sizes: np.ndarray) -> dict[str, int]:
    """{set size: spectra}, sizes ascending; keys as text (JSON and Dagster metadata keep no integer keys)."""
    values, counts = np.unique(np.asarray(sizes, int), return_counts=True)
    return {str(v): int(c) for v, c in zip(values, counts)}


def _log(probabilities: np.ndarray) -> np.ndarray:
    # XGBoost's softmax can round a class to exactly 0; its log would be -inf and make it unreachable at any T.
    return np.log(np.clip(np.asarray(probabilities, float), 1e-12, 1.0))
