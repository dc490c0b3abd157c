"""Dagster wiring of the `electrodes` pipeline: records -> features -> split -> forest + network -> predictions.

Thin on purpose: each asset reads its Config, calls the science in this package
and returns the value with metadata. Heavy libraries load inside asset bodies.
"""

import time
import uuid
from typing import Literal

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    Definitions,
    MetadataValue,
    Output,
    asset,
)

from resources.cluster import DaskResource
from resources.compute import ComputeResource
from resources.datapaths import raw_dir, write_export_csv, write_quarantine
from resources.plots import table_markdown

PIPELINE = "electrodes"
REJECTED_SHARE_CHECK = "rejected_share_within_bound"


class RecordsConfig(Config):
    working_ion: str = "Li"  # "" keeps every working ion
    use_api: bool = True  # query the Materials Project when MP_API_KEY is set (cached in raw/electrodes)
    refresh_api_cache: bool = False
    use_embedded: Literal["auto", "always", "never"] = "auto"  # auto: only when no other source has records
    max_rejected_share: float = 0.2  # the blocking check fails above this share of rejected rows


class FeaturesConfig(Config):
    target: str = "Average Voltage"  # any numeric export column, e.g. "Capacity Grav"
    rows_per_chunk: int = 500  # more rows than this fan out through Dask


class SplitConfig(Config):
    test_fraction: float = 0.2
    n_folds: int = 5


class ForestConfig(Config):
    n_estimators: int = 100
    min_samples_leaf: int = 1


class NetworkConfig(Config):
    units_choices: list[int] = [16, 32, 64]  # neurons per hidden layer, sampled for each of the three layers
    n_candidates: int = 2  # randomized-search draws
    search_folds: int = 2  # stored folds held out per candidate; 0: all (full k-fold CV)
    epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 3e-3
    negative_slope: float = 0.01  # LeakyReLU slope for x < 0
    patience: int = 5  # early stopping on the validation share's loss
    validation_fraction: float = 0.2
    min_rows_per_epoch: int = 256  # small tables are repeated within an epoch (Keras' per-epoch cost)


class PredictionsConfig(Config):
    candidates_file: str = ""  # default: <data>/raw/electrodes/candidates.csv, else the embedded example
    rows_per_chunk: int = 500


@asset(
    group_name=PIPELINE,
    check_specs=[AssetCheckSpec(REJECTED_SHARE_CHECK, asset="electrode_records", blocking=True)],
)
def electrode_records(context: AssetExecutionContext, config: RecordsConfig):
    """Battery Explorer exports + Materials Project API + curated literature table, deduplicated by battery id."""
    from assets.electrodes.sources import collect_records

    started = time.perf_counter()
    collected = collect_records(
        config.working_ion or None, config.use_api, config.refresh_api_cache, config.use_embedded, context.log.info
    )
    if collected.rejections:
        path = write_quarantine(PIPELINE, collected.rejections)
        context.log.warning(f"{len(collected.rejections)} electrode rows rejected; reasons in {path}")
    records = collected.records
    yield Output(
        records,
        metadata={
            "records": len(records),
            "rows_read": collected.rows_read,
            "rejected": len(collected.rejections),
            "rejected_share": collected.rejected_share,
            "rows_per_source": collected.rows_per_source,
            "duplicate_battery_ids": MetadataValue.json(collected.duplicate_ids),
            "other_working_ion_rows": collected.other_ion_rows,
            "working_ion": config.working_ion or "all",
            "materials_project": collected.api_status,
            "preview": MetadataValue.md(table_markdown(records[["battery_id", "formula", "formula_discharge", "average_voltage_V", "source"]], rows=20)),
            "seconds": time.perf_counter() - started,
        },
    )
    yield AssetCheckResult(
        check_name=REJECTED_SHARE_CHECK,
        passed=collected.rejected_share <= config.max_rejected_share and len(records) > 0,
        metadata={
            "rejected_share": collected.rejected_share,
            "max_rejected_share": config.max_rejected_share,
            "records": len(records),
            "first_rejections": MetadataValue.json([r.reason for r in collected.rejections[:10]]),
        },
    )


@asset(group_name=PIPELINE)
def electrode_features(context: AssetExecutionContext, config: FeaturesConfig, dask: DaskResource, electrode_records):
    """matminer composition features of each discharged composition, with the chosen target."""
    from assets.electrodes.features import build_feature_table, failure_counts, feature_columns
    from assets.electrodes.sources import target_column

    started = time.perf_counter()
    table, dropped = build_feature_table(
        electrode_records, target_column(config.target), dask.map, config.rows_per_chunk
    )
    failed = table[table["featurizer_failures"] != ""]
    return Output(
        table,
        metadata={
            "rows": len(table),
            "features": len(feature_columns(table)),
            "target": config.target,
            "rows_with_target": int(table["target"].notna().sum()),
            "dropped_columns": MetadataValue.json(dropped),
            "featurizer_failures": MetadataValue.json(failure_counts(table["featurizer_failures"])),
            "failed_rows": MetadataValue.md(table_markdown(failed[["battery_id", "formula_discharge", "featurizer_failures"]], rows=20)),
            "dask": dask.describe(),
            "seconds": time.perf_counter() - started,
        },
    )


@asset(group_name=PIPELINE)
def electrode_split(context: AssetExecutionContext, config: SplitConfig, compute: ComputeResource, electrode_features):
    """Stored train/test split and cross-validation folds (records with a target only), reused by both models."""
    from assets.electrodes.evaluation import make_split

    labelled = electrode_features[electrode_features["target"].notna()]
    unlabelled = electrode_features.loc[electrode_features["target"].isna(), "battery_id"].tolist()
    split = make_split(labelled["battery_id"].tolist(), config.test_fraction, config.n_folds, compute.rng(offset=1))
    return Output(
        split,
        metadata={
            "train": int((split["subset"] == "train").sum()),
            "test": int((split["subset"] == "test").sum()),
            "folds": config.n_folds,
            "records_without_target": MetadataValue.json(unlabelled),
        },
    )


def _model_metadata(evaluation, target: str, model_id: str, seconds: float) -> dict:
    from assets.electrodes.evaluation import metrics_by_subset, parity_plots_markdown

    metrics = metrics_by_subset(evaluation)
    return {
        "model_id": model_id,
        **{name: MetadataValue.float(value) for name, value in metrics.items()},
        "parity": MetadataValue.md(parity_plots_markdown(evaluation, target)),
        "seconds": seconds,
    }


@asset(group_name=PIPELINE)
def electrode_forest(
    context: AssetExecutionContext, config: ForestConfig, compute: ComputeResource, electrode_features, electrode_split
):
    """Random forest: out-of-fold (k-fold CV) and test MAE/RMSE/R2, importance and parity plots."""
    from assets.electrodes.evaluation import importance_markdown, metrics_by_subset
    from assets.electrodes.features import feature_columns
    from assets.electrodes.forest import train_forest

    started = time.perf_counter()
    columns = feature_columns(electrode_features)
    target = electrode_features["target_name"].iloc[0]
    model, evaluation, importances = train_forest(
        electrode_features, electrode_split, columns, config.n_estimators, config.min_samples_leaf,
        compute.seed, compute.n_jobs(),
    )
    model_id = str(uuid.uuid4())
    settings = {"target": target, "feature_columns": columns, **config.model_dump(), "metrics": metrics_by_subset(evaluation)}
    metadata = _model_metadata(evaluation, target, model_id, time.perf_counter() - started)
    metadata["feature_importance"] = MetadataValue.md(importance_markdown(importances))
    bundle = {
        "model": model,
        "model_id": model_id,
        "settings": settings,
        "importances": importances.rename_axis("feature").reset_index(),
        "evaluation": evaluation,
    }
    return Output(bundle, metadata=metadata)


@asset(group_name=PIPELINE, pool="gpu")
def electrode_network(
    context: AssetExecutionContext, config: NetworkConfig, compute: ComputeResource, electrode_features, electrode_split
):
    """Three-hidden-layer LeakyReLU network; randomized search of the neurons per layer under CV."""
    import keras

    from assets.electrodes.evaluation import metrics_by_subset
    from assets.electrodes.features import feature_columns
    from assets.electrodes.network import TrainingSettings, sample_candidates, train_network

    started = time.perf_counter()
    compute.seed_everything()
    columns = feature_columns(electrode_features)
    target = electrode_features["target_name"].iloc[0]
    fields = TrainingSettings.__dataclass_fields__
    settings = TrainingSettings(**{k: v for k, v in config.model_dump().items() if k in fields}, seed=compute.seed)
    candidates = sample_candidates(config.units_choices, config.n_candidates, compute.rng(offset=2))
    with keras.device(compute.keras_device()):
        network, search, evaluation = train_network(
            electrode_features, electrode_split, columns, candidates, settings, config.search_folds, context.log.info
        )
    model_id = str(uuid.uuid4())
    metadata = _model_metadata(evaluation, target, model_id, time.perf_counter() - started)
    metadata.update(
        {
            "best_units": MetadataValue.json(search.loc[0, "units"]),
            "search": MetadataValue.md(table_markdown(search, rows=20)),
            "epochs_trained": len(network.history),
            "training_log": MetadataValue.md(table_markdown(network.history.tail(10), rows=20)),
            "keras_backend": keras.backend.backend(),
            "device": compute.keras_device(),
        }
    )
    bundle = {
        "model": network.model,
        "preprocess": network.preprocess,
        "model_id": model_id,
        "settings": {
            "target": target,
            "feature_columns": columns,
            "target_mean": network.target_mean,
            "target_std": network.target_std,
            "best_units": list(search.loc[0, "units"]),
            **config.model_dump(),
            "metrics": metrics_by_subset(evaluation),
        },
        "history": network.history,
        "search": search,
        "evaluation": evaluation,
    }
    return Output(bundle, metadata=metadata)


@asset(group_name=PIPELINE)
def electrode_predictions(
    context: AssetExecutionContext, config: PredictionsConfig, dask: DaskResource, electrode_forest, electrode_network
):
    """Both models' predictions for candidates.csv (id, formula), exported to exports/electrode_predictions.csv."""
    from pathlib import Path

    from assets.electrodes.features import featurize_formulas
    from assets.electrodes.predict import EMBEDDED_CANDIDATES, predict_candidates, read_candidates

    user_file = Path(config.candidates_file) if config.candidates_file else raw_dir(PIPELINE) / "candidates.csv"
    path = user_file if user_file.exists() else EMBEDDED_CANDIDATES
    candidates, rejections = read_candidates(path)
    if rejections:
        write_quarantine(PIPELINE, rejections)
    valid = candidates[candidates["error"] == ""]
    features, failures = featurize_formulas(list(valid["formula_discharge"]), dask.map, config.rows_per_chunk)
    predictions = predict_candidates(candidates, features, failures, electrode_forest, electrode_network)
    export = write_export_csv(predictions, "electrode_predictions.csv")
    return Output(
        predictions,
        metadata={
            "candidates_file": str(path),
            "candidates": len(candidates),
            "predicted": len(valid),
            "errors": len(candidates) - len(valid),
            "export": str(export),
            "forest_model_id": electrode_forest["model_id"],
            "network_model_id": electrode_network["model_id"],
            "predictions": MetadataValue.md(table_markdown(predictions.drop(columns=["forest_model_id", "network_model_id"]), rows=20)),
        },
    )


defs = Definitions(
    assets=[
        electrode_records, electrode_features, electrode_split, electrode_forest, electrode_network, electrode_predictions
    ]
)
