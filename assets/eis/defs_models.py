"""Dagster wiring of the eis models: the circuit classifier (calibrated, with 90 % circuit sets) and the
per-circuit parameter regressors (science in models.py and calibration.py)."""

import uuid
from dataclasses import asdict
from typing import Literal

import dagster as dg
import numpy as np
import pandas as pd

from assets.eis.wiring import PIPELINE, xgboost_threads
from resources.compute import ComputeResource
from resources.plots import confusion_matrix_markdown, round_sig, table_markdown

# ---- 5. classifier -------------------------------------------------------------------------


FeatureSet = Literal["tsfresh", "shape", "evidence", "tsfresh+shape", "shape+evidence"]


class BoostConfig(dg.Config):
    n_estimators: int = 60
    max_depth: int = 4
    learning_rate: float = 0.15
    subsample: float = 1.0  # share of training rows per tree
    colsample_bytree: float = 1.0  # share of features per tree (0.3 suits many label-fitted spectra)
    # tsfresh: the selected tsfresh features; shape: the scale-invariant features (features.shape_features);
    # evidence: every circuit's fit quality (evidence.py; needs eis_features' circuit_evidence); "+": both.
    # The others are scored beside the chosen one.
    feature_set: FeatureSet = "shape+evidence"
    compare_feature_sets: bool = True  # also score the other feature sets beside the chosen one and the baseline

    def settings(self):
        from assets.eis.models import BoostSettings

        return BoostSettings(self.n_estimators, self.max_depth, self.learning_rate, self.subsample, self.colsample_bytree)


def feature_columns(bundle: dict, feature_set: str) -> list[str]:
    from assets.eis.evidence import PREFIX

    table_columns = list(bundle["features"].columns[1:])
    tsfresh = bundle.get("tsfresh_columns", [c for c in table_columns if not c.startswith(("shape__", PREFIX))])
    shape = [c for c in table_columns if c.startswith("shape__")]
    evidence = [c for c in table_columns if c.startswith(PREFIX)]
    return {"tsfresh": tsfresh, "shape": shape, "evidence": evidence, "tsfresh+shape": tsfresh + shape, "shape+evidence": shape + evidence}[feature_set]


def available_feature_sets(bundle: dict) -> tuple[str, ...]:
    """The feature sets this bundle can give (evidence only when eis_features fitted the circuits)."""
    return ("tsfresh", "shape", "tsfresh+shape") + (("evidence", "shape+evidence") if bundle.get("circuit_evidence") else ())


def _train_test(table: pd.DataFrame, split: pd.DataFrame, columns: list[str]):
    """(X_train, X_test, labels_train, labels_test, test rows) of table rows, aligned on spectrum_id."""
    merged = split.merge(table, on="spectrum_id", how="inner")
    is_train = merged["split"] == "train"
    values = merged[columns].to_numpy(dtype=float)
    return values[is_train], values[~is_train], merged["circuit"][is_train].tolist(), merged["circuit"][~is_train].tolist(), merged.loc[~is_train, ["spectrum_id"]]


def _fit_and_score(x_train, x_test, y_train, y_test, classes, config: BoostConfig, compute: ComputeResource) -> dict:
    """Test metrics of one model trained on (x_train, y_train)."""
    from assets.eis.models import classification_metrics, fit_classifier

    model = fit_classifier(x_train, y_train, classes, config.settings(), compute.xgboost_device(), xgboost_threads(compute), compute.seed)
    return classification_metrics(y_test, [classes[i] for i in model.predict(x_test)] if len(x_test) else [], classes)


HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1")


class ClassifierConfig(BoostConfig):
    calibration_folds: int = 5  # out-of-fold predictions of the training spectra: temperature and set threshold
    set_level: float = 0.9  # coverage the circuit sets promise


@dg.asset(group_name=PIPELINE)
def eis_circuit_classifier(
    context: dg.AssetExecutionContext,
    config: ClassifierConfig,
    compute: ComputeResource,
    eis_features: dict,
    eis_split: pd.DataFrame,
    eis_interpolated: dict,
    eis_label_fitted_spectra: dict,
) -> dict:
    """XGBoost circuit classifier on the chosen feature set; the other feature sets and a raw-grid
    baseline (Re, Im at the grid points) scored beside it on the same split, each trained on the
    training split plus the label-fitted spectra. Test metrics are on the test split only (user
    spectra when there are any), with per-source accuracy. The chosen feature set's classifier is the mean of the
    `calibration_folds` models whose out-of-fold predictions of the training split calibrate its probabilities
    and set its 90 % circuit sets (calibration.py); its test metrics are that ensemble's."""
    from assets.eis import calibration as calibrating
    from assets.eis.features import raw_grid_table
    from assets.eis.models import classification_metrics, fit_classifier, per_source_accuracy, side_by_side

    feature_table, label_fitted = eis_features["features"], eis_features["label_fitted"]
    classes = sorted(eis_split["circuit"].unique())
    raw = raw_grid_table(eis_interpolated["spectra"]["spectrum_id"].tolist(), eis_interpolated["z"])
    extra = eis_label_fitted_spectra["spectra"]
    raw_extra = raw_grid_table(extra["spectrum_id"].tolist(), eis_label_fitted_spectra["z"])
    if config.feature_set not in available_feature_sets(eis_features):
        raise dg.Failure(f"feature_set {config.feature_set!r} needs eis_features' circuit_evidence: true")
    names = available_feature_sets(eis_features) if config.compare_feature_sets else (config.feature_set,)
    candidates = {f"{name}_xgboost": (feature_table, label_fitted, feature_columns(eis_features, name)) for name in names}
    candidates["raw_grid_xgboost"] = (raw, raw_extra, list(raw.columns[1:]))
    chosen = f"{config.feature_set}_xgboost"
    results = {}
    for name, (table, extra_table, columns) in candidates.items():
        x_train, x_test, y_train, y_test, test_rows = _train_test(table, eis_split, columns)
        if name == chosen:  # scored below as it serves: the ensemble of its calibration folds' models
            results[name], truth_test, test_ids = {}, y_test, test_rows["spectrum_id"].tolist()
            continue
        x_train = np.vstack([x_train, extra_table[columns].to_numpy(dtype=float)])
        y_train = y_train + extra["circuit"].tolist()
        results[name] = _fit_and_score(x_train, x_test, y_train, y_test, classes, config, compute)
    columns = feature_columns(eis_features, config.feature_set)
    training = eis_split[eis_split["split"] == "train"]

    def fit(x, y):
        return fit_classifier(x, [classes[i] for i in y], classes, config.settings(), compute.xgboost_device(), xgboost_threads(compute), compute.seed)

    calibration, out_of_fold, models = calibrating.calibrate_on_training(fit, feature_table, training, label_fitted, columns, classes,
                                                                         config.calibration_folds, compute.seed, config.set_level)
    test_predictions = calibrating.held_out_table(models, calibration, feature_table, test_ids, truth_test, columns, classes)
    test_scores = calibrating.table_scores(test_predictions, classes)
    predicted_test = [classes[i] for i in test_predictions[[f"p_{c}" for c in classes]].to_numpy().argmax(axis=1)]
    results[chosen] = {**classification_metrics(truth_test, predicted_test, classes),
                       **{key: value for key, value in test_scores.items() if not key.startswith("reliability")}}
    metrics, baseline = results[chosen], results["raw_grid_xgboost"]
    model_id = str(uuid.uuid4())
    summary, per_class = side_by_side(results, classes)
    sources = eis_interpolated["spectra"].set_index("spectrum_id").loc[test_ids, "source"].tolist()
    by_source = per_source_accuracy(sources, truth_test, predicted_test)
    context.log.info(
        f"eis classifier ({chosen}): test accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f} on {len(test_ids)} spectra; "
        f"raw-grid baseline {baseline['accuracy']:.3f}"
    )
    context.add_output_metadata(
        {
            "model_id": model_id,
            "feature_set": config.feature_set,
            "n_test": len(test_ids),
            "n_label_fitted_training": len(extra),
            **{name: round_sig(metrics[name]) for name in HEADLINE},
            "baseline_accuracy": round_sig(baseline["accuracy"]),
            "baseline_macro_f1": round_sig(baseline["macro_f1"]),
            **{f"{model_name.replace('+', '_')}_accuracy": round_sig(m["accuracy"]) for model_name, m in results.items() if model_name not in (chosen, "raw_grid_xgboost")},
            "metrics_side_by_side": dg.MetadataValue.md(table_markdown(summary.round(4))),
            "per_source_accuracy": dg.MetadataValue.md(table_markdown(by_source.round(4))),
            "per_class_f1": dg.MetadataValue.md(table_markdown(per_class.round(4))),
            "confusion_matrix": dg.MetadataValue.md(confusion_matrix_markdown({f"{chosen} (test split)": np.array(metrics["confusion"])}, classes)),
            "confusion_matrix_baseline": dg.MetadataValue.md(confusion_matrix_markdown({"raw grid baseline": np.array(baseline["confusion"])}, classes)),
            **_calibration_metadata(calibration, out_of_fold, test_scores),
        }
    )
    return {
        "models": models,  # {"fold<k>": XGBClassifier}: the served probabilities are their mean
        "model_id": model_id,
        "classes": classes,
        "feature_columns": columns,
        "calibration": asdict(calibration),  # plain numbers: the storage keeps it as JSON
        "settings": config.model_dump(),
        "metrics": results,
        "chosen": chosen,
        "per_source": by_source,
        "test_predictions": test_predictions,  # the test split's probabilities and sets: a CV pools them over folds
    }


def _calibration_metadata(calibration, out_of_fold: dict, test_scores: dict) -> dict:
    """Temperature, set threshold, ECE and 90 % set figures out of fold and on the test split, the reliability
    plot and the set-size distribution."""
    from assets.eis.report import reliability_markdown, set_size_markdown

    figures = {"temperature": round_sig(calibration.temperature), "set90_score_threshold": round_sig(calibration.threshold)}
    for label, scores in (("out_of_fold", out_of_fold), ("test", test_scores)):
        figures.update({f"{label}_{key}": round_sig(scores[key]) for key in ("ece_uncalibrated", "ece", "set90_coverage", "set90_mean_size", "set90_empty_share")})
    curves = {"out of fold, raw": out_of_fold["reliability_uncalibrated"], "out of fold, calibrated": out_of_fold["reliability"]}
    if test_scores["set90_size_counts"]:
        curves["test split, calibrated"] = test_scores["reliability"]
    counts = test_scores["set90_size_counts"] or out_of_fold["set90_size_counts"]
    return {
        **figures,
        "set90_size_counts_out_of_fold": dg.MetadataValue.json(out_of_fold["set90_size_counts"]),
        "reliability": dg.MetadataValue.md(reliability_markdown(curves, "reliability of the top probability")),
        "set90_sizes": dg.MetadataValue.md(set_size_markdown(counts, "90 % circuit sets: " + ("test split" if test_scores["set90_size_counts"] else "out of fold"))),
    }


# ---- 6. parameter regressors --------------------------------------------------------------


class RegressorsConfig(BoostConfig):
    feature_set: FeatureSet = "tsfresh"  # parameters: the selected tsfresh features (they carry the scale)
    min_share_beating_dummy: float = 0.5  # check: share of parameters with MAE below the dummy's


@dg.asset(
    group_name=PIPELINE,
    check_specs=[dg.AssetCheckSpec("regressors_beat_dummy", asset="eis_parameter_regressors")],
)
def eis_parameter_regressors(
    context: dg.AssetExecutionContext, config: RegressorsConfig, compute: ComputeResource, eis_features: dict, eis_split: pd.DataFrame, eis_spectra: pd.DataFrame
):
    """Per circuit class: XGBoost on quantile-transformed parameters, against a median dummy."""
    from assets.eis import models

    feature_table = eis_features["features"]
    columns = feature_columns(eis_features, config.feature_set)
    labelled = eis_split.merge(eis_spectra[["spectrum_id", "parameters"]], on="spectrum_id").merge(feature_table, on="spectrum_id")
    regressors, tables = {}, []
    for circuit, rows in labelled.groupby("circuit"):
        train, test = rows[rows["split"] == "train"], rows[rows["split"] == "test"]
        if len(train) < 2:
            context.log.warning(f"{circuit}: {len(train)} train spectra, no regressor")
            continue
        targets = models.parameter_matrix(train["parameters"], circuit)
        regressor = models.fit_parameter_regressor(
            train[columns].to_numpy(float), targets, circuit, config.settings(), compute.xgboost_device(), xgboost_threads(compute), compute.seed
        )
        regressors[circuit] = regressor
        if test.empty:
            continue
        truth = models.parameter_matrix(test["parameters"], circuit)
        predicted = models.predict_parameters(regressor, test[columns].to_numpy(float))
        dummy = np.repeat(np.median(targets, axis=0, keepdims=True), len(test), axis=0)
        tables.append(models.mae_table(circuit, truth, predicted, dummy))
    mae = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=["circuit", "parameter", "beats_dummy"])
    beat_share = float(mae["beats_dummy"].mean()) if len(mae) else 0.0
    model_id = str(uuid.uuid4())
    context.log.info(f"eis regressors: beat the median dummy on {beat_share:.0%} of {len(mae)} parameters")
    yield dg.Output(
        {"model_id": model_id, "regressors": regressors, "mae": mae, "settings": config.model_dump(), "feature_columns": columns},
        metadata={
            "model_id": model_id,
            "n_circuits": len(regressors),
            "share_parameters_beating_dummy": round_sig(beat_share),
            "median_mae_model": round_sig(float(mae["mae_model"].median())) if len(mae) else float("nan"),
            "median_mae_dummy": round_sig(float(mae["mae_dummy"].median())) if len(mae) else float("nan"),
            "mae_table": dg.MetadataValue.md(table_markdown(mae.round(4))),
        },
    )
    yield dg.AssetCheckResult(
        check_name="regressors_beat_dummy",
        passed=beat_share > config.min_share_beating_dummy or mae.empty,
        metadata={"share_beating_dummy": round_sig(beat_share), "required_above": config.min_share_beating_dummy},
    )
