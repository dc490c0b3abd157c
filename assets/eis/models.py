"""Split, circuit classifier and per-circuit parameter regressors (XGBoost).

The classifier is class-balanced (sample weights inversely proportional to class
frequency). Each regressor maps features to all of one circuit's parameters at once;
targets pass through a quantile transform (uniform marginals) so parameters spanning
decades and exponents in 0.4..1 weigh alike. Errors are reported per parameter in the
scale the simulator samples in: log10 for log-scaled parameters, linear otherwise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from assets.eis.circuits import CIRCUITS


@dataclass(frozen=True)
class BoostSettings:
    n_estimators: int = 60
    max_depth: int = 4
    learning_rate: float = 0.15
    subsample: float = 1.0  # share of rows per tree
    colsample_bytree: float = 1.0  # share of features per tree


def boost_arguments(settings: BoostSettings, device: str, n_jobs: int, seed: int) -> dict:
    return {
        "n_estimators": settings.n_estimators,
        "max_depth": settings.max_depth,
        "learning_rate": settings.learning_rate,
        "subsample": settings.subsample,
        "colsample_bytree": settings.colsample_bytree,
        "tree_method": "hist",
        "device": device,
        "n_jobs": n_jobs,
        "random_state": seed,
    }


def stratified_split(
    spectrum_ids: list[str], labels: list[str], test_fraction: float, seed: int,
    origins: list[str] | None = None, cv_folds: int = 0, cv_fold: int = 0,
) -> pd.DataFrame:
    """spectrum_id, circuit, origin, split ('train' | 'test'), stratified by circuit.

    When some spectra are the user's (origin "user") and others synthetic, only user spectra are
    split; every synthetic spectrum is training data. cv_folds > 1: the test split is fold `cv_fold`
    of a stratified K-fold (shuffled with `seed`) instead of a `test_fraction` draw.
    """
    from sklearn.model_selection import StratifiedKFold, train_test_split

    ids = np.asarray(spectrum_ids, dtype=object)
    labels = np.asarray(labels, dtype=object)
    origins = np.asarray(origins if origins is not None else ["user"] * len(ids), dtype=object)
    pool = np.flatnonzero(origins == "user") if (origins == "user").any() else np.arange(len(ids))
    counts = pd.Series(labels[pool]).value_counts()
    can_stratify = len(counts) > 1 and counts.min() >= max(2, cv_folds)
    if cv_folds <= 1 and test_fraction <= 0:  # train on everything (a holdout file is scored elsewhere)
        return pd.DataFrame({"spectrum_id": ids, "circuit": labels, "origin": origins, "split": "train"})
    if cv_folds > 1:
        from sklearn.model_selection import KFold

        splitter = StratifiedKFold(cv_folds, shuffle=True, random_state=seed) if can_stratify else KFold(cv_folds, shuffle=True, random_state=seed)
        test_index = pool[list(splitter.split(pool, labels[pool]))[cv_fold][1]]
    else:
        _, test_index = train_test_split(pool, test_size=test_fraction, stratify=labels[pool] if can_stratify else None, random_state=seed)
    split = np.array(["train"] * len(ids), dtype=object)
    split[test_index] = "test"
    return pd.DataFrame({"spectrum_id": ids, "circuit": labels, "origin": origins, "split": split})


def fit_classifier(features: np.ndarray, labels: list[str], classes: list[str], settings: BoostSettings, device: str, n_jobs: int, seed: int):
    from sklearn.utils.class_weight import compute_sample_weight
    from xgboost import XGBClassifier

    model = XGBClassifier(**boost_arguments(settings, device, n_jobs, seed))
    targets = np.array([classes.index(label) for label in labels])
    model.fit(features, targets, sample_weight=compute_sample_weight("balanced", targets))
    return model


def classification_metrics(true: list[str], predicted: list[str], classes: list[str]) -> dict:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score

    if len(true) == 0:  # no test split (trained on everything)
        nan = float("nan")
        return {"accuracy": nan, "balanced_accuracy": nan, "macro_f1": nan, "per_class_f1": dict.fromkeys(classes, nan),
                "confusion": np.zeros((len(classes), len(classes)), dtype=int).tolist()}

    return {
        "accuracy": float(accuracy_score(true, predicted)),
        "balanced_accuracy": float(balanced_accuracy_score(true, predicted)),
        "macro_f1": float(f1_score(true, predicted, labels=classes, average="macro", zero_division=0)),
        "per_class_f1": dict(zip(classes, f1_score(true, predicted, labels=classes, average=None, zero_division=0).tolist())),
        "confusion": confusion_matrix(true, predicted, labels=classes).tolist(),
    }


def side_by_side(metrics_by_model: dict[str, dict], classes: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(headline metrics, per-class F1) with one column per model."""
    headline = pd.DataFrame({"metric": ["accuracy", "balanced_accuracy", "macro_f1"]})
    per_class = pd.DataFrame({"circuit": classes})
    for model, metrics in metrics_by_model.items():
        headline[model] = [metrics[name] for name in headline["metric"]]
        per_class[f"f1_{model}"] = [metrics["per_class_f1"][c] for c in classes]
    return headline, per_class


def per_source_accuracy(sources: list[str], true: list[str], predicted: list[str]) -> pd.DataFrame:
    """source, n, accuracy of the test spectra of each source (file, or "synthetic")."""
    frame = pd.DataFrame({"source": sources, "correct": np.asarray(true) == np.asarray(predicted)})
    grouped = frame.groupby("source")["correct"]
    return pd.DataFrame({"n": grouped.size(), "accuracy": grouped.mean()}).reset_index()


def parameter_matrix(parameter_json: pd.Series, circuit: str) -> np.ndarray:
    """(N, n_parameters) in the circuit's parameter order."""
    names = CIRCUITS[circuit].parameters
    return np.array([[json.loads(text)[name] for name in names] for text in parameter_json], dtype=float)


def error_scale(values: np.ndarray, circuit: str) -> np.ndarray:
    """Parameters in the scale errors are measured in: log10 where log-scaled."""
    log_scaled = np.array(CIRCUITS[circuit].log_scaled)
    return np.where(log_scaled, np.log10(values), values)


def fit_parameter_regressor(
    features: np.ndarray, targets: np.ndarray, circuit: str, settings: BoostSettings, device: str, n_jobs: int, seed: int
) -> dict:
    """{"model": XGBRegressor, "target_transform": QuantileTransformer, "parameters": names}."""
    from sklearn.preprocessing import QuantileTransformer
    from xgboost import XGBRegressor

    target_transform = QuantileTransformer(n_quantiles=min(100, len(targets)), random_state=seed)
    model = XGBRegressor(**boost_arguments(settings, device, n_jobs, seed))
    model.fit(features, target_transform.fit_transform(targets))
    return {"model": model, "target_transform": target_transform, "parameters": list(CIRCUITS[circuit].parameters)}


def predict_parameters(regressor: dict, features: np.ndarray) -> np.ndarray:
    """(N, n_parameters) in physical units from a regressor entry (fit_parameter_regressor)."""
    transformed = np.asarray(regressor["model"].predict(features)).reshape(len(features), -1)
    return regressor["target_transform"].inverse_transform(transformed)


def mae_table(circuit: str, true: np.ndarray, predicted: np.ndarray, dummy: np.ndarray) -> pd.DataFrame:
    """Per-parameter MAE of the model and of the median dummy, in the error scale."""
    scaled_true = error_scale(true, circuit)
    model_mae = np.mean(np.abs(error_scale(predicted, circuit) - scaled_true), axis=0)
    dummy_mae = np.mean(np.abs(error_scale(dummy, circuit) - scaled_true), axis=0)
    circuit_def = CIRCUITS[circuit]
    return pd.DataFrame(
        {
            "circuit": circuit,
            "parameter": circuit_def.parameters,
            "scale": ["log10" if log else "linear" for log in circuit_def.log_scaled],
            "mae_model": model_mae,
            "mae_dummy": dummy_mae,
            "beats_dummy": model_mae < dummy_mae,
        }
    )
