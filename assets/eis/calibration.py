"""Calibrated circuit probabilities and 90 % circuit sets, from out-of-fold predictions of training spectra.

The classifier's training spectra are split into `folds` stratified folds; a model trained on the other
folds (plus the label-fitted spectra, which never join the calibration rows) predicts each fold, so every
training spectrum gets probabilities from a model that did not see it. Those fold models are the classifier
that serves: a new spectrum gets the mean of their probabilities (a cross-fit ensemble), so the models whose
out-of-fold errors set the calibration are the ones it is applied to (one model refitted on every row was more
confident than its out-of-fold predictions, and stayed over-confident after calibration). On those out-of-fold
probabilities:

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
                              folds: int, seed: int) -> tuple[np.ndarray, list]:
    """(N, n_classes) probabilities of each row of x from a model fitted without its fold, and the fold models.

    fit(x, y) returns a model with predict_proba; y and y_extra are class indices; the extra rows (label-fitted
    spectra) join every fold's training rows and are never predicted."""
    from sklearn.model_selection import KFold, StratifiedKFold

    counts = np.bincount(y, minlength=n_classes)
    stratify = counts[counts > 0].min() >= folds
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed) if stratify else KFold(folds, shuffle=True, random_state=seed)
    probabilities, models = np.zeros((len(x), n_classes)), []
    for train, held in splitter.split(x, y):
        models.append(fit(np.vstack([x[train], x_extra]), np.concatenate([y[train], y_extra])))
        probabilities[held] = models[-1].predict_proba(x[held])
    return probabilities, models


def ensemble_probabilities(models: dict, x: np.ndarray) -> np.ndarray:
    """(N, K) mean of the fold models' probabilities ({"fold<k>": model}, averaged in fold order so a stored
    and reloaded classifier gives the same floats)."""
    ordered = sorted(models, key=lambda name: int(name.removeprefix("fold")))
    return np.mean([models[name].predict_proba(x) for name in ordered], axis=0)


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
                          classes: list[str], folds: int, seed: int, level: float = SET_LEVEL) -> tuple[Calibration, dict, dict]:
    """Calibration from out-of-fold predictions of the `training` rows (spectrum_id, circuit); `extra` rows
    (label-fitted spectra: their features and circuit) join every fold's training. Returns it with the
    out-of-fold scores (scores()) and reliability bins before and after, and the fold models {"fold<k>": model}
    (ensemble_probabilities serves them; with fewer than 2 rows, one model on every row)."""
    rows = features.set_index("spectrum_id").loc[training["spectrum_id"]]
    y = np.array([classes.index(c) for c in training["circuit"]], dtype=int)
    y_extra = np.array([classes.index(c) for c in extra["circuit"]], dtype=int)
    x, x_extra = rows[columns].to_numpy(float), extra[columns].to_numpy(float)
    folds = min(folds, len(y))
    if folds < 2:  # nothing to calibrate on: probabilities as they are, every circuit in every set
        models = [fit(np.vstack([x, x_extra]), np.concatenate([y, y_extra]))]
        calibration, y = Calibration(1.0, math.inf, level), y[:0]
        raw, allowed = np.zeros((0, len(classes))), np.zeros((0, len(classes)), bool)
    else:
        raw, models = out_of_fold_probabilities(fit, x, y, x_extra, y_extra, len(classes), folds, seed)
        bound = residual_bound(rows, training["circuit"].tolist())
        allowed = admissible(rows, classes, bound)
        calibration = calibrate(raw, y, allowed, level, bound)
    scaled = calibrated(raw, calibration)
    out_of_fold = {**scores(raw, scaled, circuit_sets(scaled, allowed, calibration), y), "accuracy": float(np.mean(raw.argmax(axis=1) == y)) if len(y) else float("nan"),
                   "reliability_uncalibrated": reliability_bins(raw, y), "reliability": reliability_bins(scaled, y)}
    return calibration, out_of_fold, {f"fold{k}": model for k, model in enumerate(models)}


def held_out_table(models: dict, calibration: Calibration, features: pd.DataFrame, ids: list[str], truth: list[str], columns: list[str],
                   classes: list[str]) -> pd.DataFrame:
    """Per spectrum of `ids` (true circuits `truth`): spectrum_id, circuit, `raw_<class>` and calibrated `p_<class>`
    probabilities of the fold models' ensemble, and `set_<class>` (True for the members of its 90 % set). Tables of several test
    folds concatenate into one pooled table for table_scores."""
    rows = features.set_index("spectrum_id").loc[ids]
    raw = ensemble_probabilities(models, rows[columns].to_numpy(float)) if len(rows) else np.zeros((0, len(classes)))
    scaled = calibrated(raw, calibration)
    sets = circuit_sets(scaled, admissible(rows, classes, calibration.max_residual), calibration)
    table = pd.DataFrame({"spectrum_id": list(ids), "circuit": list(truth)})
    for prefix, values in (("raw_", raw), ("p_", scaled), ("set_", sets)):
        table = table.join(pd.DataFrame(values, columns=[prefix + c for c in classes]))
    return table


def table_scores(table: pd.DataFrame, classes: list[str]) -> dict:
    """scores() and the calibrated reliability bins of a held_out_table (one fold's or several pooled)."""
    y = np.array([classes.index(c) for c in table["circuit"]], dtype=int)
    raw, scaled, sets = (table[[prefix + c for c in classes]].to_numpy(kind) for prefix, kind in (("raw_", float), ("p_", float), ("set_", bool)))
    return {**scores(raw, scaled, sets, y), "reliability": reliability_bins(scaled, y)}


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
