"""Cycle-life regression: encoder embeddings of the first N cycles versus Severson's features.

Severson et al., Nature Energy 4, 383 (2019), from dQ_100-10(V) = Qdlin_100(V) - Qdlin_10(V):
    variance model   log10 var(dQ)                                        (one feature: least squares)
    discharge model  log10 |min dQ|, log10 var(dQ), log10 |skewness dQ|, log10 |kurtosis dQ|,
                     discharge capacity at cycle 2, max discharge capacity - cycle 2
    full model       log10 |min dQ|, log10 var(dQ), slope and intercept of a line through the discharge
                     capacity of cycles 2..100, discharge capacity at cycle 2, and where the data has them:
                     mean charge time of cycles 2..6, temperature integral over cycles 2..100
                     (the paper's internal-resistance features need summary data the unified table lacks)
(skewness and kurtosis as MATLAB computes them: biased, kurtosis 3 for a normal law).
Discharge and full models are elastic nets (standardised features) with strength and L1 ratio chosen by
cross-validation inside the training cells, as the paper; all models regress log10(cycle life). No
hyperparameter is ever chosen on a held-out set. A choice at the edge of its grid is reported as a
warning (at the top edge the model is close to a constant).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from assets.cycling.synthetic import voltage_grid
from resources.datapaths import Rejection

VARIANCE_FEATURES = ["log_var_dq"]
DISCHARGE_FEATURES = ["log_abs_min_dq", "log_var_dq", "log_abs_skew_dq", "log_abs_kurtosis_dq",
                      "qd_cycle2_ah", "qd_max_minus_cycle2_ah"]
FULL_FEATURES = ["log_abs_min_dq", "log_var_dq", "fade_slope_ah_per_cycle", "fade_intercept_ah", "qd_cycle2_ah",
                 "charge_time_cycles_2_6_min", "temperature_integral_2_100"]
OPTIONAL_FULL_FEATURES = ["charge_time_cycles_2_6_min", "temperature_integral_2_100"]  # used where every cell has them
RIDGE_ALPHAS = np.logspace(-3, 4, 15)
L1_RATIOS = [0.1, 0.5, 0.7, 0.9, 0.95, 0.99, 1.0]


def discharge_rows(cycle: pd.DataFrame) -> np.ndarray:
    """True for the time steps of one cycle that belong to its discharge: negative current (or, without
    current: every step of a cycle whose voltage only falls, as in the Qdlin layout; else those with positive
    discharge capacity)."""
    current = cycle["current"].to_numpy()
    voltage = cycle["voltage"].to_numpy()
    if np.isfinite(current).any():
        return current < 0
    if len(voltage) > 1 and np.all(np.diff(voltage) <= 0):
        return np.ones(len(voltage), dtype=bool)  # a Qdlin curve: the whole cycle is the discharge
    return cycle["discharge_capacity"].to_numpy() > 0


def discharge_curve(cycle: pd.DataFrame) -> np.ndarray:
    """Discharge capacity (Ah) on the Qdlin grid (3.6 -> 2.0 V, 1000 points) from one cycle's time steps.

    Capacity of the discharge_rows is interpolated against sorted voltage and held constant beyond the
    measured voltage range. NaN curve when nothing is there.
    """
    discharging = discharge_rows(cycle)
    voltage = cycle["voltage"].to_numpy()[discharging]
    capacity = cycle["discharge_capacity"].to_numpy()[discharging]
    finite = np.isfinite(voltage) & np.isfinite(capacity)
    if finite.sum() < 2:
        return np.full(voltage_grid().size, np.nan)
    order = np.argsort(voltage[finite])
    return np.interp(voltage_grid(), voltage[finite][order], capacity[finite][order])


def discharge_window_v(unified: pd.DataFrame, cycles: tuple[int, ...]) -> pd.DataFrame:
    """Per cell (index cell_key): the lowest and highest voltage (V) of the discharge steps of `cycles`
    (the cycles the features read): the window the cell's Q(V) curves actually span."""
    rows = {}
    for cell, frame in unified.loc[unified["cycle_number"].isin(cycles)].groupby("cell_key", sort=True):
        voltage = np.concatenate([cycle["voltage"].to_numpy()[discharge_rows(cycle)]
                                  for _, cycle in frame.groupby("cycle_number")])
        voltage = voltage[np.isfinite(voltage)]
        rows[cell] = {"discharge_v_min": voltage.min() if voltage.size else np.nan,
                      "discharge_v_max": voltage.max() if voltage.size else np.nan}
    return pd.DataFrame.from_dict(rows, orient="index", columns=["discharge_v_min", "discharge_v_max"]
                                  ).rename_axis("cell_key")


def dq_features(delta_q: np.ndarray) -> dict[str, float]:
    """Severson's summary statistics of dQ_100-10(V) (Ah), log10 of absolute values."""
    with np.errstate(divide="ignore"):
        return {
            "log_abs_min_dq": np.log10(np.abs(delta_q.min())),
            "log_var_dq": np.log10(np.var(delta_q)),
            "log_abs_skew_dq": np.log10(np.abs(stats.skew(delta_q))),
            "log_abs_kurtosis_dq": np.log10(np.abs(stats.kurtosis(delta_q, fisher=False))),
        }


def severson_features(unified: pd.DataFrame, early_cycle: int = 10, late_cycle: int = 100) -> pd.DataFrame:
    """One row per cell (index cell_key): the discharge- and full-model features; NaN where data is missing."""
    rows = {}
    for cell, frame in unified.groupby("cell_key", sort=True):
        cycles = dict(tuple(frame.groupby("cycle_number")))
        row = dict.fromkeys(DISCHARGE_FEATURES + FULL_FEATURES, np.nan)
        if early_cycle in cycles and late_cycle in cycles:
            delta_q = discharge_curve(cycles[late_cycle]) - discharge_curve(cycles[early_cycle])
            if np.isfinite(delta_q).all():
                row.update(dq_features(delta_q))
        window = frame.loc[frame["cycle_number"].between(2, late_cycle)]
        capacity = window.groupby("cycle_number")["discharge_capacity"].max().dropna()
        glitches = capacity_glitches(capacity)
        row["n_capacity_glitch_cycles"] = int(glitches.sum())
        capacity = capacity.loc[~glitches]
        if 2 in capacity.index:
            row["qd_cycle2_ah"] = capacity[2]
            row["qd_max_minus_cycle2_ah"] = capacity.max() - capacity[2]
        if len(capacity) >= 2:
            row["fade_slope_ah_per_cycle"], row["fade_intercept_ah"] = np.polyfit(
                capacity.index.to_numpy(float), capacity.to_numpy(float), 1)
        charging = window.loc[window["cycle_number"].between(2, 6) & (window["current"] > 0)]
        if len(charging):
            row["charge_time_cycles_2_6_min"] = float(
                charging.groupby("cycle_number")["time"].agg(lambda t: t.max() - t.min()).mean())
        temperature = window.groupby("cycle_number")["temperature"].mean().dropna()
        if len(temperature) >= 2:
            row["temperature_integral_2_100"] = float(np.trapezoid(temperature.to_numpy(),
                                                                   temperature.index.to_numpy(float)))
        rows[cell] = row
    columns = list(dict.fromkeys(DISCHARGE_FEATURES + FULL_FEATURES)) + ["n_capacity_glitch_cycles"]
    return pd.DataFrame.from_dict(rows, orient="index")[columns].rename_axis("cell_key")


def capacity_glitches(capacity: pd.Series, window: int = 5, tolerance: float = 0.05) -> pd.Series:
    """True for a cycle whose discharge capacity (Ah) departs from the median of the `window` cycles around it
    by more than `tolerance` of that median: a logging glitch, not fade (six cycles of the published Severson
    Qdlin files read 30-48 Ah for 1.1 Ah cells). Such cycles are left out of the capacity features (max - cycle 2,
    fade line) and counted in `n_capacity_glitch_cycles`; the raw data are not changed."""
    median = capacity.rolling(window, center=True, min_periods=1).median()
    return (capacity - median).abs() > tolerance * median.abs()


def full_model_features(severson: pd.DataFrame) -> pd.DataFrame:
    """The full model's columns, without the optional ones some cell lacks (the data then does not allow them)."""
    keep = [c for c in FULL_FEATURES if c not in OPTIONAL_FULL_FEATURES or severson[c].notna().all()]
    return severson[keep]


def embedding_features(embeddings: pd.DataFrame, last_cycle: int) -> pd.DataFrame:
    """Per cell, over the documents lying within the first last_cycle cycles: the mean embedding and
    the change from the first to the last document (Severson's signal is a change over early cycles)."""
    columns = [c for c in embeddings.columns if c.startswith("emb_")]
    early = embeddings.loc[embeddings["last_cycle"] <= last_cycle].sort_values(["cell_key", "first_cycle"])
    by_cell = early.groupby("cell_key")[columns]
    return pd.concat([by_cell.mean(), (by_cell.last() - by_cell.first()).add_prefix("change_")], axis=1)


def change_columns(embedding: pd.DataFrame) -> pd.DataFrame:
    """The change of the embedding from a cell's first to its last document (the `change_` columns of
    embedding_features): with one document per cycle, the encoder's analogue of Severson's Q100(V) - Q10(V)."""
    return embedding[[c for c in embedding.columns if c.startswith("change_")]]


def life_feature_sets(severson: pd.DataFrame, embedding: pd.DataFrame,
                      encoder_method: str = "ridge") -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """The models cycle_life_model compares: ({name: features per cell}, {name: method}). Baselines: constant,
    Severson's variance (least squares), discharge and full (elastic net); encoder-based:
    encoder_<m> (embedding_features), encoder_variance_<m> (+ log10 var dQ) and encoder_change_variance_<m>
    (the embedding's change from a cell's first to last document + log10 var dQ: the one meant to hold up
    on an unseen batch)."""
    variance = severson[VARIANCE_FEATURES]
    feature_sets = {
        "constant": variance,  # ignores its features: the training mean
        "variance": variance,
        "discharge": severson[DISCHARGE_FEATURES],
        "full": full_model_features(severson),
        f"encoder_{encoder_method}": embedding,
        f"encoder_variance_{encoder_method}": embedding.join(variance),
        f"encoder_change_variance_{encoder_method}": change_columns(embedding).join(variance),
    }
    methods = {"constant": "constant", "variance": "least_squares", "discharge": "elastic_net",
               "full": "elastic_net", **{name: encoder_method for name in feature_sets if name.startswith("encoder")}}
    return feature_sets, methods


def cv_folds(n: int, n_folds: int, seed: int, groups=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(fit, held) index pairs over n cells. Without groups: shuffled K-fold. With groups (one label per cell,
    e.g. its batch; at least two distinct): by group, so that a group is never on both sides of a fold:
    leave one group out when there are at most n_folds groups, else GroupKFold into n_folds."""
    from sklearn.model_selection import GroupKFold, KFold, LeaveOneGroupOut

    if groups is None:
        splitter = KFold(n_splits=max(2, min(n_folds, n)), shuffle=True, random_state=seed)
        return list(splitter.split(np.zeros((n, 1))))
    groups = np.asarray(groups)
    if len(groups) != n or len(np.unique(groups)) < 2:
        raise ValueError(f"group CV needs one group per cell ({len(groups)} for {n}) and two groups or more "
                         f"(got {sorted(set(groups.tolist()))[:5]})")
    splitter = LeaveOneGroupOut() if len(np.unique(groups)) <= n_folds else GroupKFold(n_splits=n_folds)
    return list(splitter.split(np.zeros((n, 1)), groups=groups))


def fit_life_regressor(x_train: np.ndarray, life_train: np.ndarray, method: str = "ridge", n_folds: int = 5,
                       seed: int = 0):
    """Regressor of log10(life) fitted on the training cells only; returns (model, choice).

    method: "least_squares" (no hyperparameter), "ridge" (standardise + ridge, alpha by K-fold CV over
    RIDGE_ALPHAS), "elastic_net" (standardise + ElasticNetCV over L1_RATIOS and its own alpha path),
    "constant" (the training mean of log10 life). `choice` holds the chosen hyperparameters, the CV RMSE
    of log10 life and `warning` (non-empty when a choice lies at the edge of its grid).
    """
    from sklearn.dummy import DummyRegressor
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import ElasticNetCV, LinearRegression, Ridge
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = np.log10(life_train)
    choice = {"method": method, "warning": ""}
    if method == "constant":
        return DummyRegressor(strategy="mean").fit(x_train, y), choice
    if method == "least_squares":
        return make_pipeline(StandardScaler(), LinearRegression()).fit(x_train, y), choice
    folds = cv_folds(len(y), n_folds, seed)
    if method == "ridge":
        search = GridSearchCV(make_pipeline(StandardScaler(), Ridge()), {"ridge__alpha": RIDGE_ALPHAS},
                              cv=folds, scoring="neg_root_mean_squared_error").fit(x_train, y)
        alpha = float(search.best_params_["ridge__alpha"])
        choice.update(alpha=alpha, cv_rmse_log10=float(-search.best_score_))
        if alpha in (RIDGE_ALPHAS[0], RIDGE_ALPHAS[-1]):
            edge = "largest (the model is close to a constant)" if alpha == RIDGE_ALPHAS[-1] else "smallest"
            choice["warning"] = f"ridge alpha {alpha:g} is the {edge} of its grid {RIDGE_ALPHAS[0]:g}..{RIDGE_ALPHAS[-1]:g}"
        return search.best_estimator_, choice
    if method == "elastic_net":
        with warnings.catch_warnings():  # weakly penalised fits on a CV path often stop short: not an error
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = make_pipeline(StandardScaler(), ElasticNetCV(l1_ratio=L1_RATIOS, alphas=60, cv=folds,
                                                                 max_iter=20000, random_state=seed)).fit(x_train, y)
        net = model[-1]
        alphas = np.ravel(net.alphas_[L1_RATIOS.index(net.l1_ratio_)] if np.ndim(net.alphas_) > 1 else net.alphas_)
        mse = np.asarray(net.mse_path_)
        mse = mse[L1_RATIOS.index(net.l1_ratio_)] if mse.ndim == 3 else mse
        choice.update(alpha=float(net.alpha_), l1_ratio=float(net.l1_ratio_),
                      cv_rmse_log10=float(np.sqrt(mse.mean(axis=-1).min())),
                      n_nonzero=int(np.sum(net.coef_ != 0)))
        if np.isclose(net.alpha_, alphas.max()) or not np.any(net.coef_):
            choice["warning"] = (f"elastic-net alpha {net.alpha_:.3g} is the largest of its path: every "
                                 "coefficient is zero, the model is a constant")
        elif np.isclose(net.alpha_, alphas.min()):
            choice["warning"] = f"elastic-net alpha {net.alpha_:.3g} is the smallest of its path (barely penalised)"
        return model, choice
    raise ValueError(f"unknown method {method!r}; expected constant, least_squares, ridge or elastic_net")


def predict_life(model, x: np.ndarray) -> np.ndarray:
    """Cycle life (cycles) from a fitted log10-life regressor."""
    return 10 ** model.predict(x)


def life_metrics(true_cycles: np.ndarray, predicted_cycles: np.ndarray) -> dict[str, float]:
    """MAE and RMSE (cycles), MAPE (%), R2 (on cycles; NaN below two cells)."""
    error = predicted_cycles - true_cycles
    n = len(true_cycles)
    r2 = 1 - np.sum(error**2) / np.sum((true_cycles - true_cycles.mean()) ** 2) if n > 1 else np.nan
    return {
        "n_cells": n,
        "mae_cycles": float(np.mean(np.abs(error))) if n else np.nan,
        "mape_percent": float(100 * np.mean(np.abs(error) / true_cycles)) if n else np.nan,
        "rmse_cycles": float(np.sqrt(np.mean(error**2))) if n else np.nan,
        "r2": float(r2),
    }


def modelled_cells(targets: pd.DataFrame, feature_sets: dict[str, pd.DataFrame],
                   source: str) -> tuple[pd.DataFrame, list[Rejection]]:
    """Cells (cell_key, split, cycle_life) that every model has features for, and rejections naming what
    each left-out cell lacks (so all models are compared on the same cells). A cell whose cycle_life is
    NaN is kept: it is predicted, never fitted nor scored."""
    rejections, keep = [], []
    for row in targets.itertuples(index=False):
        lacking = [name for name, features in feature_sets.items()
                   if row.cell_key not in features.index or not np.isfinite(features.loc[row.cell_key]).all()]
        if lacking:
            rejections.append(Rejection(source, row.cell_key, f"left out of cycle-life modelling: no {', '.join(lacking)}"))
        else:
            keep.append(row.cell_key)
    return targets.loc[targets["cell_key"].isin(keep)].reset_index(drop=True), rejections


def out_of_fold_log10_life(x_train: np.ndarray, life_train: np.ndarray, method: str, n_folds: int = 5,
                           seed: int = 0, groups=None) -> np.ndarray:
    """log10 life of each training cell predicted by a regressor fitted without its fold (hyperparameters
    by shuffled K-fold CV inside the other folds): out-of-sample predictions for model selection and interval
    calibration. Folds are shuffled K-fold, or by `groups` (batch-level CV: a whole batch held out at once)."""
    predicted = np.full(len(life_train), np.nan)
    for fit, held in cv_folds(len(life_train), n_folds, seed, groups):
        model, _ = fit_life_regressor(x_train[fit], life_train[fit], method, n_folds, seed)
        predicted[held] = model.predict(x_train[held])
    return predicted


def selection_score(cv_metrics: pd.DataFrame) -> pd.Series:
    """Per model: the K-fold CV MAPE inside the training cells, or, where a batch-level CV ran, the mean of the
    two: the first estimates the error on a new cell of a batch the model has seen, the second on a cell of a new
    batch, and a lab's next cells may be either."""
    if "batchcv_mape_percent" not in cv_metrics.columns:
        return cv_metrics["mape_percent"]
    return cv_metrics[["mape_percent", "batchcv_mape_percent"]].mean(axis=1)


def select_model(cv_metrics: pd.DataFrame, selectable=None) -> str:
    """The model (index of `cv_metrics`, among `selectable` when given) with the lowest selection_score;
    the first listed on a tie."""
    candidates = cv_metrics if selectable is None else cv_metrics.loc[cv_metrics.index.isin(list(selectable))]
    if not len(candidates):
        raise ValueError(f"none of the selectable models {list(selectable)} was fitted ({list(cv_metrics.index)})")
    return str(selection_score(candidates).idxmin())


def batch_cv_intervals(x_train: np.ndarray, life_train: np.ndarray, method: str, n_folds: int, seed: int,
                       groups: np.ndarray) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Batch-level CV of a model and of its intervals: each batch predicted (log10 life) by a model fitted on
    the other batches, with half widths calibrated on those batches alone (K-fold residuals inside them,
    batch_aware_half_widths), as a new batch would be. Returns (predicted log10, {level: half width per cell})."""
    from assets.cycling.intervals import LEVELS_PERCENT, batch_aware_half_widths

    predicted = np.full(len(life_train), np.nan)
    half_widths = {level: np.full(len(life_train), np.nan) for level in LEVELS_PERCENT}
    for fit, held in cv_folds(len(life_train), n_folds, seed, groups):
        model, _ = fit_life_regressor(x_train[fit], life_train[fit], method, n_folds, seed)
        predicted[held] = model.predict(x_train[held])
        residuals = np.log10(life_train[fit]) - out_of_fold_log10_life(x_train[fit], life_train[fit], method,
                                                                          n_folds, seed)
        widths, _ = batch_aware_half_widths(residuals, groups[fit])
        for level, h in widths.items():
            half_widths[level][held] = h
    return predicted, half_widths


def _score_masks(cells: pd.DataFrame, labelled: np.ndarray, exclude_cells) -> dict[str, np.ndarray]:
    """{set name: labelled cells of the set}: train, validation, test, the other sets by name, and
    `<set>_excl` (without exclude_cells) for a set that holds an excluded cell. Sets with no labelled
    cell are not scored."""
    from assets.cycling.split import TRAIN

    names = [n for n in (TRAIN, "validation", "test") if n in set(cells["split"])]
    names += sorted(set(cells["split"]) - {TRAIN, "validation", "test"})
    excluded = cells["cell_key"].isin(list(exclude_cells)).to_numpy()
    masks = {}
    for name in names:
        mask = (cells["split"] == name).to_numpy() & labelled
        if mask.any() or name == TRAIN:
            masks[name] = mask
        if name != TRAIN and (mask & excluded).any():
            masks[f"{name}_excl"] = mask & ~excluded
    return masks


def _set_metrics(life: np.ndarray, table: pd.DataFrame, mask: np.ndarray) -> dict[str, float]:
    """life_metrics plus the coverage of each interval level, over the cells of `mask`."""
    from assets.cycling.intervals import LEVELS_PERCENT
    from resources.conformal import interval_coverage

    return {**life_metrics(life[mask], table["predicted_cycle_life"].to_numpy()[mask]),
            **{f"coverage{level}": interval_coverage(life[mask], table[f"lower{level}_cycles"].to_numpy()[mask],
                                                     table[f"upper{level}_cycles"].to_numpy()[mask])
               for level in LEVELS_PERCENT}}


def training_batches(cells: pd.DataFrame, batches: pd.Series | None, train: np.ndarray) -> np.ndarray | None:
    """The batch of each labelled training cell (`batches`: cell_key -> label, "" unknown), or None when a
    batch-level CV is not possible: some training cell has no batch, or all are in one batch."""
    if batches is None:
        return None
    labels = cells.loc[train, "cell_key"].map(batches).fillna("").astype(str).to_numpy()
    return labels if (labels != "").all() and len(set(labels)) >= 2 else None


def fit_and_score(cells: pd.DataFrame, feature_sets: dict[str, pd.DataFrame], methods: dict[str, str],
                  exclude_cells: list[str] = (), n_folds: int = 5, seed: int = 0,
                  batches: pd.Series | None = None, selectable=None) -> dict:
    """Fit one regressor per feature set on the labelled `train` cells (hyperparameters by CV inside
    them), with intervals from its K-fold out-of-fold residuals on those cells widened by the between-batch
    variance when the training cells come from two batches or more (intervals.batch_aware_half_widths); select
    one model by that CV (among `selectable` when given); predict every cell (those with NaN cycle_life included: life_unknown) and score every set's
    labelled cells. Metrics rows: `train` (in-sample), `train_cv` (out-of-fold), `train_batchcv` (out-of-fold
    of a batch-level CV: each training batch predicted by a model fitted on the others; only when `batches`
    names a batch for every training cell and there are two or more; with the coverage of intervals calibrated
    on the other batches alone), each held-out set, and `<set>_excl`
    for a set holding a cell of `exclude_cells`."""
    from assets.cycling.intervals import batch_aware_half_widths, interval_columns
    from assets.cycling.split import TRAIN
    from resources.conformal import interval_coverage

    life = cells["cycle_life"].to_numpy(dtype=float)
    labelled = np.isfinite(life)
    train = (cells["split"] == TRAIN).to_numpy() & labelled
    masks = _score_masks(cells, labelled, exclude_cells)
    groups = training_batches(cells, batches, train)
    models, choices, half_widths, taus, predictions, metrics, cv = {}, {}, {}, {}, [], [], {}
    for name, features in feature_sets.items():
        x = features.loc[cells["cell_key"]].to_numpy(dtype=float)
        models[name], choices[name] = fit_life_regressor(x[train], life[train], methods[name], n_folds, seed)
        out_of_fold = out_of_fold_log10_life(x[train], life[train], methods[name], n_folds, seed)
        residuals = np.log10(life[train]) - out_of_fold
        half_widths[name], taus[name] = batch_aware_half_widths(residuals, groups)
        predicted = models[name].predict(x)
        table = pd.concat([cells.assign(model=name, life_unknown=~labelled, predicted_cycle_life=10**predicted),
                           interval_columns(predicted, half_widths[name])], axis=1)
        predictions.append(table)
        cv[name] = {**life_metrics(life[train], 10**out_of_fold), "rmse_log10": float(np.sqrt(np.mean(residuals**2)))}
        rows = [{"model": name, "split": split, **_set_metrics(life, table, mask)} for split, mask in masks.items()]
        rows.insert(1, {"model": name, "split": f"{TRAIN}_cv", **cv[name]})  # after train
        if groups is not None:
            by_batch, widths = batch_cv_intervals(x[train], life[train], methods[name], n_folds, seed, groups)
            cv[name]["batchcv_mape_percent"] = life_metrics(life[train], 10**by_batch)["mape_percent"]
            coverage = {f"coverage{level}": interval_coverage(np.log10(life[train]), by_batch - h, by_batch + h)
                        for level, h in widths.items()}
            rows.insert(2, {"model": name, "split": f"{TRAIN}_batchcv", **life_metrics(life[train], 10**by_batch),
                            **coverage, "n_batches": len(set(groups))})
        metrics += rows
    cv_metrics = pd.DataFrame.from_dict(cv, orient="index").rename_axis("model")
    return {"models": models, "choices": choices, "predictions": pd.concat(predictions, ignore_index=True),
            "metrics": pd.DataFrame(metrics), "cv_metrics": cv_metrics,
            "selected_model": select_model(cv_metrics, selectable), "half_widths_log10": half_widths,
            "batch_tau_log10": taus, "training_batches": groups,
            "n_training_batches": 0 if groups is None else len(set(groups)),
            "warnings": {n: c["warning"] for n, c in choices.items() if c["warning"]}}


def selected_predictions(predictions: pd.DataFrame, selected_model: str) -> pd.DataFrame:
    """One row per cell: the selected model's prediction and intervals, named in `selected_model`."""
    rows = predictions.loc[predictions["model"] == selected_model].drop(columns="model")
    return rows.assign(selected_model=selected_model).reset_index(drop=True)


def cycle_targets(unified: pd.DataFrame) -> pd.DataFrame:
    """Per (cell_key, cycle_number): cycle_life and capacity_ah (the cycle's largest discharge capacity)."""
    return (unified.groupby(["cell_key", "cycle_number"])
            .agg(cycle_life=("cycle_life", "first"), capacity_ah=("discharge_capacity", "max"))
            .reset_index())


def embedding_table(corpus: pd.DataFrame, vectors: np.ndarray, unified: pd.DataFrame, model_id: str) -> pd.DataFrame:
    """One row per document (cell and window of cycles) with its targets at the window's last cycle."""
    documents = corpus[["cell_key", "split", "document", "first_cycle", "last_cycle"]].reset_index(drop=True)
    table = pd.concat([documents, pd.DataFrame(vectors, columns=[f"emb_{i}" for i in range(vectors.shape[1])])],
                      axis=1)
    targets = cycle_targets(unified).rename(columns={"cycle_number": "last_cycle"})
    table = table.merge(targets, on=["cell_key", "last_cycle"], how="left").assign(model_id=model_id)
    return table.sort_values(["cell_key", "document"], ignore_index=True)
