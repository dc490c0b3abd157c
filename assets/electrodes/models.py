"""The scikit-learn-shaped regressors of the pipeline: forest, gradient boosting, median baseline (no Dagster import).

Every model is fitted and scored the same way (`train_estimator`): out-of-fold
predictions on the stored folds of the training rows, then a refit on all
training rows scored on the test rows. Every prediction is clipped to the range
of the training targets (`ClippedRegressor`), so no model reports a voltage
outside what it was trained on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin, clone

from assets.electrodes.evaluation import evaluation_frame, out_of_fold_predictions, split_arrays

MODEL_NAMES = ("forest", "boosting", "network", "median")


class ClippedRegressor(RegressorMixin, BaseEstimator):
    """A regressor whose predictions are clipped to [min, max] of the targets it was fitted on."""

    def __init__(self, estimator):
        self.estimator = estimator

    def fit(self, features, target):
        target = np.asarray(target, float)
        self.estimator_ = clone(self.estimator).fit(features, target)
        self.target_min_, self.target_max_ = float(np.min(target)), float(np.max(target))
        return self

    def predict(self, features):
        if len(features) == 0:
            return np.array([])
        return np.clip(self.estimator_.predict(features), self.target_min_, self.target_max_)


def make_forest(n_estimators: int = 200, min_samples_leaf: int = 1, max_features: float = 0.33, seed: int = 0,
                n_jobs: int = 1):
    """Median imputation (featurizer failures leave NaN) then a random forest, clipped to the training range."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline

    forest = RandomForestRegressor(
        n_estimators=n_estimators, min_samples_leaf=min_samples_leaf, max_features=max_features or 1.0,
        random_state=seed, n_jobs=n_jobs,
    )
    return ClippedRegressor(make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), forest))


def make_boosting(n_estimators: int = 400, learning_rate: float = 0.05, max_depth: int = 5, subsample: float = 0.8,
                  colsample_bytree: float = 0.3, min_child_weight: float = 1.0, seed: int = 0, n_jobs: int = 1,
                  device: str = "cpu"):
    """XGBoost gradient-boosted trees (NaN handled natively), clipped to the training range."""
    from xgboost import XGBRegressor

    booster = XGBRegressor(
        n_estimators=n_estimators, learning_rate=learning_rate, max_depth=max_depth, subsample=subsample,
        colsample_bytree=colsample_bytree, min_child_weight=min_child_weight, random_state=seed, n_jobs=n_jobs,
        device=device, tree_method="hist", objective="reg:absoluteerror",
    )
    return ClippedRegressor(booster)


def make_median():
    """The baseline every model must beat: the median of the training targets."""
    from sklearn.dummy import DummyRegressor

    return ClippedRegressor(DummyRegressor(strategy="median"))


def train_estimator(make, features_table: pd.DataFrame, split: pd.DataFrame, columns: list[str]):
    """(model fitted on all training rows, evaluation frame: out-of-fold cv rows + test rows).

    `make()` returns a fresh unfitted estimator; each fold fits its own.
    """
    arrays = split_arrays(features_table, split, columns)

    def fit_predict(x_fit, y_fit, x_predict):
        return make().fit(x_fit, y_fit).predict(x_predict)

    out_of_fold = out_of_fold_predictions(fit_predict, arrays["x_train"], arrays["y_train"], arrays["folds"])
    model = make().fit(arrays["x_train"], arrays["y_train"])
    test_predicted = model.predict(arrays["x_test"]) if len(arrays["y_test"]) else np.array([])
    return model, evaluation_frame(arrays, out_of_fold, test_predicted)


def importances(model, columns: list[str]) -> pd.Series:
    """Impurity (forest) or gain (boosting) importances of a fitted ClippedRegressor, largest first."""
    estimator = model.estimator_
    inner = estimator[-1] if hasattr(estimator, "steps") else estimator
    values = getattr(inner, "feature_importances_", np.zeros(len(columns)))
    return pd.Series(values, index=columns, name="importance").sort_values(ascending=False)
