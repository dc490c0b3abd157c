"""Cycle-life regression: encoder embeddings of the first N cycles versus Severson's features.

Severson et al., Nature Energy 4, 383 (2019), from dQ_100-10(V) = Qdlin_100(V) - Qdlin_10(V):
    variance model   log10 var(dQ)
    discharge model  log10 |min dQ|, log10 var(dQ), log10 |skewness dQ|, log10 |kurtosis dQ|,
                     discharge capacity at cycle 2, max discharge capacity - cycle 2
(skewness and kurtosis as MATLAB computes them: biased, kurtosis 3 for a normal law).
Every model is the same small regression (standardise, ridge; alpha chosen on
the validation cells) of log10(cycle life), so only the features differ.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from assets.cycling.synthetic import voltage_grid
from resources.datapaths import Rejection

VARIANCE_FEATURES = ["log_var_dq"]
DISCHARGE_FEATURES = ["log_abs_min_dq", "log_var_dq", "log_abs_skew_dq", "log_abs_kurtosis_dq",
                      "qd_cycle2_ah", "qd_max_minus_cycle2_ah"]
ALPHAS = np.logspace(-3, 3, 13)


def discharge_curve(cycle: pd.DataFrame) -> np.ndarray:
    """Discharge capacity (Ah) on the Qdlin grid (3.6 -> 2.0 V, 1000 points) from one cycle's time steps.

    Discharge steps are those with negative current (or, without current, positive
    discharge capacity); capacity is interpolated against sorted voltage and held
    constant beyond the measured voltage range. NaN curve when nothing is there.
    """
    current = cycle["current"].to_numpy()
    discharging = current < 0 if np.isfinite(current).any() else cycle["discharge_capacity"].to_numpy() > 0
    voltage = cycle["voltage"].to_numpy()[discharging]
    capacity = cycle["discharge_capacity"].to_numpy()[discharging]
    finite = np.isfinite(voltage) & np.isfinite(capacity)
    if finite.sum() < 2:
        return np.full(voltage_grid().size, np.nan)
    order = np.argsort(voltage[finite])
    return np.interp(voltage_grid(), voltage[finite][order], capacity[finite][order])


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
    """One row per cell (index cell_key): the discharge-model features; NaN where a cycle is missing."""
    rows = {}
    for cell, frame in unified.groupby("cell_key", sort=True):
        cycles = dict(tuple(frame.groupby("cycle_number")))
        row = dict.fromkeys(DISCHARGE_FEATURES, np.nan)
        if early_cycle in cycles and late_cycle in cycles:
            delta_q = discharge_curve(cycles[late_cycle]) - discharge_curve(cycles[early_cycle])
            if np.isfinite(delta_q).all():
                row.update(dq_features(delta_q))
        capacity = frame.loc[frame["cycle_number"].between(2, late_cycle)].groupby("cycle_number")[
            "discharge_capacity"].max()
        if 2 in capacity.index:
            row["qd_cycle2_ah"] = capacity[2]
            row["qd_max_minus_cycle2_ah"] = capacity.max() - capacity[2]
        rows[cell] = row
    return pd.DataFrame.from_dict(rows, orient="index")[DISCHARGE_FEATURES].rename_axis("cell_key")


def embedding_features(embeddings: pd.DataFrame, last_cycle: int) -> pd.DataFrame:
    """Per cell, over the documents lying within the first last_cycle cycles: the mean embedding and
    the change from the first to the last document (Severson's signal is a change over early cycles)."""
    columns = [c for c in embeddings.columns if c.startswith("emb_")]
    early = embeddings.loc[embeddings["last_cycle"] <= last_cycle].sort_values(["cell_key", "first_cycle"])
    by_cell = early.groupby("cell_key")[columns]
    return pd.concat([by_cell.mean(), (by_cell.last() - by_cell.first()).add_prefix("change_")], axis=1)


def fit_life_regressor(x_train: np.ndarray, life_train: np.ndarray, x_validation: np.ndarray,
                       life_validation: np.ndarray):
    """Standardise + ridge on log10(life), alpha with the lowest validation RMSE (log10); returns (model, alpha)."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def fitted(alpha):
        return make_pipeline(StandardScaler(), Ridge(alpha=alpha)).fit(x_train, np.log10(life_train))

    if len(x_validation) == 0:
        return fitted(1.0), 1.0
    errors = [np.sqrt(np.mean((fitted(a).predict(x_validation) - np.log10(life_validation)) ** 2)) for a in ALPHAS]
    best = float(ALPHAS[int(np.argmin(errors))])
    return fitted(best), best


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


def scored_cells(targets: pd.DataFrame, feature_sets: dict[str, pd.DataFrame],
                 source: str) -> tuple[pd.DataFrame, list[Rejection]]:
    """Cells (cell_key, split, cycle_life) that every model can be fitted and scored on, and rejections
    naming what each left-out cell lacks (so all models are compared on the same cells)."""
    rejections, keep = [], []
    for row in targets.itertuples(index=False):
        lacking = [] if np.isfinite(row.cycle_life) else ["cycle_life"]
        lacking += [name for name, features in feature_sets.items()
                    if row.cell_key not in features.index or not np.isfinite(features.loc[row.cell_key]).all()]
        if lacking:
            rejections.append(Rejection(source, row.cell_key, f"left out of cycle-life scoring: no {', '.join(lacking)}"))
        else:
            keep.append(row.cell_key)
    return targets.loc[targets["cell_key"].isin(keep)].reset_index(drop=True), rejections


def fit_and_score(cells: pd.DataFrame, feature_sets: dict[str, pd.DataFrame]) -> dict:
    """Fit one regressor per feature set on the train cells; predictions and per-split metrics."""
    masks = {split: (cells["split"] == split).to_numpy() for split in ("train", "validation", "test")}
    life = cells["cycle_life"].to_numpy(dtype=float)
    models, alphas, predictions, metrics = {}, {}, [], []
    for name, features in feature_sets.items():
        x = features.loc[cells["cell_key"]].to_numpy(dtype=float)
        models[name], alphas[name] = fit_life_regressor(x[masks["train"]], life[masks["train"]],
                                                        x[masks["validation"]], life[masks["validation"]])
        predicted = predict_life(models[name], x) if len(x) else np.zeros(0)
        predictions.append(cells.assign(model=name, predicted_cycle_life=predicted))
        metrics += [{"model": name, "split": split, **life_metrics(life[mask], predicted[mask])}
                    for split, mask in masks.items()]
    return {"models": models, "alphas": alphas, "predictions": pd.concat(predictions, ignore_index=True),
            "metrics": pd.DataFrame(metrics)}


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
