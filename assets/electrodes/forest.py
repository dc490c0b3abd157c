"""Random-forest regression of an electrode property from composition features."""

from __future__ import annotations

import numpy as np
import pandas as pd

from assets.electrodes.evaluation import evaluation_frame, out_of_fold_predictions, split_arrays


def make_forest(n_estimators: int, min_samples_leaf: int, seed: int, n_jobs: int):
    """Median imputation (featurizer failures leave NaN) then a random forest."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline

    forest = RandomForestRegressor(
        n_estimators=n_estimators, min_samples_leaf=min_samples_leaf, random_state=seed, n_jobs=n_jobs
    )
    return make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), forest)


def train_forest(
    features_table: pd.DataFrame, split: pd.DataFrame, columns: list[str], n_estimators: int,
    min_samples_leaf: int, seed: int, n_jobs: int,
) -> tuple[object, pd.DataFrame, pd.Series]:
    """(model fitted on all training rows, evaluation frame (cv out-of-fold + test), importances)."""
    arrays = split_arrays(features_table, split, columns)

    def fit_predict(x_fit, y_fit, x_predict):
        return make_forest(n_estimators, min_samples_leaf, seed, n_jobs).fit(x_fit, y_fit).predict(x_predict)

    out_of_fold = out_of_fold_predictions(fit_predict, arrays["x_train"], arrays["y_train"], arrays["folds"])
    model = make_forest(n_estimators, min_samples_leaf, seed, n_jobs).fit(arrays["x_train"], arrays["y_train"])
    test_predicted = model.predict(arrays["x_test"]) if len(arrays["y_test"]) else np.array([])
    importances = pd.Series(model[-1].feature_importances_, index=columns, name="importance")
    return model, evaluation_frame(arrays, out_of_fold, test_predicted), importances.sort_values(ascending=False)
