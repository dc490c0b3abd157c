"""Splits, cross-validation and regression metrics shared by the forest and the network."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

# fit_predict(X_train, y_train, X_predict) -> predictions for X_predict
FitPredict = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def make_split(battery_ids: list[str], test_fraction: float, n_folds: int, rng: np.random.Generator) -> pd.DataFrame:
    """battery_id, subset (train | test) and fold (0..n_folds-1 for train rows, -1 for test)."""
    count = len(battery_ids)
    if count < n_folds + 2:
        raise ValueError(f"{count} records with a target: need at least {n_folds + 2} for {n_folds}-fold CV and a test set")
    order = rng.permutation(count)
    # test_fraction 0: every row is in the CV (how published figures on the whole set are made)
    n_test = 0 if test_fraction <= 0 else min(max(1, round(test_fraction * count)), count - n_folds)
    subset = np.full(count, "train", dtype=object)
    subset[order[:n_test]] = "test"
    fold = np.full(count, -1)
    fold[order[n_test:]] = np.arange(count - n_test) % n_folds
    return pd.DataFrame({"battery_id": battery_ids, "subset": subset, "fold": fold})


def regression_metrics(true: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and R2 (coefficient of determination; 1 is perfect, 0 is the mean)."""
    true, predicted = np.asarray(true, float), np.asarray(predicted, float)
    residual = predicted - true
    total = float(np.sum((true - true.mean()) ** 2))
    return {
        "mae": float(np.mean(np.abs(residual))),
        "rmse": float(np.sqrt(np.mean(residual**2))),
        "r2": float(1.0 - np.sum(residual**2) / total) if total > 0 else float("nan"),
    }


def out_of_fold_predictions(
    fit_predict: FitPredict, features: np.ndarray, target: np.ndarray, folds: np.ndarray, max_folds: int = 0
) -> np.ndarray:
    """Each training row predicted by the model fitted on the other folds.

    max_folds > 0 holds out only the first max_folds folds (the others stay NaN): a cheaper estimate.
    """
    predictions = np.full(len(target), np.nan)
    held_out_folds = np.unique(folds)
    for fold in held_out_folds[:max_folds] if max_folds > 0 else held_out_folds:
        held_out = folds == fold
        predictions[held_out] = fit_predict(features[~held_out], target[~held_out], features[held_out])
    return predictions


def split_arrays(features_table: pd.DataFrame, split: pd.DataFrame, columns: list[str]) -> dict[str, np.ndarray]:
    """Train/test features, targets, folds and ids, aligned on battery_id."""
    from assets.electrodes.features import feature_matrix

    table = features_table.merge(split, on="battery_id", how="inner", validate="one_to_one")
    train, test = table[table["subset"] == "train"], table[table["subset"] == "test"]
    return {
        "x_train": feature_matrix(train, columns),
        "y_train": train["target"].to_numpy(float),
        "folds": train["fold"].to_numpy(int),
        "ids_train": train["battery_id"].to_numpy(str),
        "x_test": feature_matrix(test, columns),
        "y_test": test["target"].to_numpy(float),
        "ids_test": test["battery_id"].to_numpy(str),
    }


def evaluation_frame(arrays: dict, out_of_fold: np.ndarray, test_predicted: np.ndarray) -> pd.DataFrame:
    """One row per record: id, subset, true and predicted value (out of fold for training rows).

    Training rows without an out-of-fold prediction (folds not held out) are left out.
    """
    frame = pd.concat(
        [
            pd.DataFrame({"battery_id": arrays["ids_train"], "subset": "cv", "true": arrays["y_train"], "predicted": out_of_fold}),
            pd.DataFrame({"battery_id": arrays["ids_test"], "subset": "test", "true": arrays["y_test"], "predicted": test_predicted}),
        ],
        ignore_index=True,
    )
    return frame.dropna(subset=["predicted"]).reset_index(drop=True)


def metrics_by_subset(evaluation: pd.DataFrame) -> dict[str, float]:
    """{'cv_mae': ..., 'cv_rmse': ..., 'cv_r2': ..., 'test_mae': ...}, plus 'cv_mae_<ion>' per working ion."""
    metrics = {}
    for subset, rows in evaluation.groupby("subset"):
        for name, value in regression_metrics(rows["true"], rows["predicted"]).items():
            metrics[f"{subset}_{name}"] = value
    cv = evaluation[evaluation["subset"] == "cv"]
    ions = cv["battery_id"].astype(str).str.extract(r"_([A-Z][a-z]?)$")[0]
    if ions.nunique() > 1:
        for ion, rows in cv.groupby(ions):
            metrics[f"cv_mae_{ion}"] = regression_metrics(rows["true"], rows["predicted"])["mae"]
    return metrics


def comparison_table(evaluations: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per model: n rows scored and the metrics of metrics_by_subset, best cv MAE first."""
    rows = []
    for name, evaluation in evaluations.items():
        counts = evaluation["subset"].value_counts()
        rows.append({"model": name, "cv_rows": int(counts.get("cv", 0)), "test_rows": int(counts.get("test", 0)),
                     **metrics_by_subset(evaluation)})
    return pd.DataFrame(rows).sort_values("cv_mae", kind="stable").reset_index(drop=True)


def parity_plots_markdown(evaluation: pd.DataFrame, label: str) -> str:
    """Parity plots of the cross-validated (out-of-fold) and the test predictions."""
    from resources.plots import parity_markdown

    return "\n\n".join(
        f"**{subset}**\n\n" + parity_markdown(rows["true"].to_numpy(), rows["predicted"].to_numpy(), label)
        for subset, rows in evaluation.groupby("subset")
    )


def importance_markdown(importances: pd.Series, top: int = 15) -> str:
    """Horizontal bar chart of the largest feature importances."""
    from resources.plots import figure_markdown, new_figure

    largest = importances.sort_values().tail(top)
    fig, axes = new_figure(size=(7.0, 0.3 * len(largest) + 1.0))
    ax = axes[0][0]
    ax.barh(range(len(largest)), largest.to_numpy())
    ax.set_yticks(range(len(largest)), largest.index, fontsize=7)
    ax.set_xlabel("impurity importance")
    return figure_markdown(fig, "feature importance")
