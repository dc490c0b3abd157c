"""Random-forest regression of an electrode property from composition features (see models.py)."""

from __future__ import annotations

import pandas as pd

from assets.electrodes.models import importances, make_forest, train_estimator


def train_forest(
    features_table: pd.DataFrame, split: pd.DataFrame, columns: list[str], n_estimators: int,
    min_samples_leaf: int, seed: int, n_jobs: int, max_features: float = 0.33,
) -> tuple[object, pd.DataFrame, pd.Series]:
    """(model fitted on all training rows, evaluation frame (cv out-of-fold + test), importances)."""
    model, evaluation = train_estimator(
        lambda: make_forest(n_estimators, min_samples_leaf, max_features, seed, n_jobs), features_table, split, columns
    )
    return model, evaluation, importances(model, columns)
