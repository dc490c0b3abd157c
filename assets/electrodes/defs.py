"""Dagster wiring of the `electrodes` pipeline, one partition per working ion (plus `all`):

records -> features -> split -> forest + boosting + network + composition model + median baseline
        -> predictions with conformal intervals

Thin on purpose: each asset reads its Config, calls the science in this package
and returns the value with metadata. Heavy libraries load inside asset bodies.
Every asset is partitioned by ION_PARTITIONS, so a Li run and an all-ion run keep
their own artefacts (storage/<asset>/<partition>) and exports
(exports/electrode_predictions_<partition>.csv).
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
    StaticPartitionsDefinition,
    TableColumn,
    TableRecord,
    TableSchema,
    asset,
)

from resources.cluster import DaskResource
from resources.compute import ComputeResource
from resources.datapaths import raw_dir, relative_to_root, write_export_csv
from resources.plots import round_sig, table_markdown

PIPELINE = "electrodes"
REJECTED_SHARE_CHECK = "rejected_share_within_bound"
# Working ions of the Materials Project insertion electrodes we expect, plus `all` (every ion in one model).
WORKING_IONS = ["Li", "Na", "K", "Mg", "Ca", "Zn", "Al"]
ALL_IONS = "all"
ION_PARTITIONS = StaticPartitionsDefinition([ALL_IONS, *WORKING_IONS])
DEMO_PARTITION = "Li"  # what materials_demo trains (orchestration/jobs.py tags its runs with it)


def partition_of(context: AssetExecutionContext) -> str:
    """The run's partition key (a run of these assets needs one: materials_demo tags its runs with DEMO_PARTITION)."""
    return context.partition_key


def working_ion_of(context: AssetExecutionContext) -> str | None:
    """The partition's working ion; None for `all`."""
    key = partition_of(context)
    return None if key == ALL_IONS else key


class RecordsConfig(Config):
    use_api: bool = True  # query the Materials Project when MP_API_KEY is set (cached in <data>/cache/electrodes)
    refresh_api_cache: bool = False
    use_embedded: Literal["auto", "always", "never"] = "auto"  # auto: only when no other source has records
    max_rejected_share: float = 0.2  # the blocking check fails above this share of the user's rows rejected
    check_severity: Literal["ERROR", "WARN"] = "ERROR"  # WARN: the check reports but does not stop the run


class FeaturesConfig(Config):
    target: str = "Average Voltage"  # any numeric export column, e.g. "Capacity Grav"
    rows_per_chunk: int = 500  # more rows than this fan out through Dask
    # discharged, charged, delta, ion, redox, structure (features.FEATURE_GROUPS); fewer to measure what each gives
    feature_groups: list[str] = ["discharged", "charged", "delta", "ion", "redox", "structure", "host"]


class SplitConfig(Config):
    test_fraction: float = 0.2  # 0: every row in the k-fold CV (how whole-set figures are published)
    n_folds: int = 5


class ForestConfig(Config):
    n_estimators: int = 200
    min_samples_leaf: int = 1
    max_features: float = 0.33  # share of features tried per split


class BoostingConfig(Config):
    n_estimators: int = 400
    learning_rate: float = 0.05
    max_depth: int = 5
    subsample: float = 0.8
    colsample_bytree: float = 0.3
    min_child_weight: float = 1.0


class NetworkConfig(Config):
    units_choices: list[int] = [64, 128]  # neurons per hidden layer, sampled for each of the three layers
    n_candidates: int = 1  # randomized-search draws (chosen by validation loss on the training rows)
    epochs: int = 60
    batch_size: int = 32
    learning_rate: float = 3e-3
    negative_slope: float = 0.01  # LeakyReLU slope for x < 0
    patience: int = 10  # early stopping on the validation share's loss
    validation_fraction: float = 0.15
    min_rows_per_epoch: int = 256  # small tables are repeated within an epoch (Keras' per-epoch cost)


class CompositionConfig(Config):
    d_model: int = 64  # width of the element tokens
    n_layers: int = 2  # self-attention layers over the elements of a formula
    n_heads: int = 4
    dropout: float = 0.1
    epochs: int = 40
    batch_size: int = 128
    learning_rate: float = 3e-3  # peak of the one-cycle schedule
    weight_decay: float = 1e-4


class PredictionsConfig(Config):
    candidates_file: str = ""  # default: <data>/raw/electrodes/candidates.csv, else the embedded example
    rows_per_chunk: int = 500


@asset(
    group_name=PIPELINE,
    partitions_def=ION_PARTITIONS,
    check_specs=[AssetCheckSpec(REJECTED_SHARE_CHECK, asset="electrode_records", blocking=True)],
)
def electrode_records(context: AssetExecutionContext, config: RecordsConfig):
    """Battery Explorer exports + Materials Project API + the embedded literature table (only when the user has none)."""
    from assets.electrodes.sources import collect_records
    from resources.quarantine import report_rejections

    started = time.perf_counter()
    ion = working_ion_of(context)
    collected = collect_records(ion, config.use_api, config.refresh_api_cache, config.use_embedded, context.log.info)
    user = {source: count for source, count in collected.rows_per_source.items() if source != "embedded"}
    summary = report_rejections(context.log, PIPELINE, collected.rejections, user, collected.rows_by_source)
    records = collected.records
    yield Output(
        records,
        metadata={
            **summary.metadata(),
            "records": len(records),
            "rows_read": collected.rows_read,
            "rows_per_source": MetadataValue.json({relative_to_root(k): v for k, v in collected.rows_per_source.items()}),
            "training_data": collected.data_kind,
            "duplicate_battery_ids": MetadataValue.json(collected.duplicate_ids),
            "other_working_ion_rows": collected.other_ion_rows,
            "working_ion": partition_of(context),
            "materials_project": collected.api_status,
            "preview": MetadataValue.md(table_markdown(records[["battery_id", "formula", "formula_discharge", "average_voltage_V", "source"]], rows=20)),
            "seconds": round_sig(time.perf_counter() - started, 3),
        },
    )
    check = summary.check_result(REJECTED_SHARE_CHECK, config.max_rejected_share, config.check_severity)
    if len(records) == 0:  # nothing to train on is a failure whatever the share
        check = AssetCheckResult(check_name=REJECTED_SHARE_CHECK, passed=False, metadata={
            **check.metadata, "records": 0, "reason": f"no records for working ion {partition_of(context)}"})
    yield check


@asset(group_name=PIPELINE, partitions_def=ION_PARTITIONS)
def electrode_features(context: AssetExecutionContext, config: FeaturesConfig, dask: DaskResource, electrode_records):
    """Features of the charged and discharged compositions, the working ion and the space group, with the target."""
    from assets.electrodes.features import FEATURE_GROUPS, META_COLUMNS, build_feature_table, failure_counts, feature_columns
    from assets.electrodes.sources import target_column

    unknown = sorted(set(config.feature_groups) - set(FEATURE_GROUPS))
    if unknown:
        raise ValueError(f"feature_groups {unknown} unknown; expected some of {list(FEATURE_GROUPS)}")
    started = time.perf_counter()
    table, dropped = build_feature_table(electrode_records, target_column(config.target), dask.map, config.rows_per_chunk)
    table = table[[*META_COLUMNS, *feature_columns(table, tuple(config.feature_groups))]]
    failed = table[table["featurizer_failures"] != ""]
    columns = feature_columns(table)
    return Output(
        table,
        metadata={
            "rows": len(table),
            "features": len(columns),
            "features_per_group": MetadataValue.json({g: sum(c.startswith(g + ":") for c in columns) for g in config.feature_groups}),
            "target": config.target,
            "rows_with_target": int(table["target"].notna().sum()),
            "rows_with_spacegroup": int((table["spacegroup_number"] > 0).sum()),
            "dropped_columns": MetadataValue.json(dropped),
            "featurizer_failures": MetadataValue.json(failure_counts(table["featurizer_failures"])),
            "failed_rows": MetadataValue.md(table_markdown(failed[["battery_id", "formula_discharge", "featurizer_failures"]], rows=20)),
            "dask": dask.describe(),
            "seconds": round_sig(time.perf_counter() - started, 3),
        },
    )


@asset(group_name=PIPELINE, partitions_def=ION_PARTITIONS)
def electrode_split(context: AssetExecutionContext, config: SplitConfig, compute: ComputeResource, electrode_features):
    """Stored train/test split and cross-validation folds (records with a target only), reused by every model."""
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
    """Rounded metrics (same folds, same names for every model), parity plots, timing."""
    from assets.electrodes.evaluation import metrics_by_subset, parity_plots_markdown

    counts = evaluation["subset"].value_counts()
    return {
        "model_id": model_id,
        **{name: MetadataValue.float(round_sig(value)) for name, value in metrics_by_subset(evaluation).items()},
        "cv_rows": int(counts.get("cv", 0)),
        "test_rows": int(counts.get("test", 0)),
        "parity": MetadataValue.md(parity_plots_markdown(evaluation, target)),
        "seconds": round_sig(seconds, 3),
    }


def _bundle(model, model_id: str, columns, target: str, config, evaluation, **extra) -> dict:
    from assets.electrodes.evaluation import metrics_by_subset

    settings = {"target": target, "feature_columns": columns, **config.model_dump(), "metrics": metrics_by_subset(evaluation)}
    return {"model": model, "model_id": model_id, "settings": settings, "evaluation": evaluation, **extra}


def _sklearn_model(context, name: str, make, config, electrode_features, electrode_split, columns=None, **extra):
    """Fit and score one scikit-learn-shaped model with the shared folds (on `columns`, default every feature
    column); the bundle (with `extra` settings) and its metadata."""
    from assets.electrodes.evaluation import importance_markdown
    from assets.electrodes.features import feature_columns
    from assets.electrodes.models import importances, train_estimator

    started = time.perf_counter()
    columns = columns or feature_columns(electrode_features)
    target = electrode_features["target_name"].iloc[0]
    model, evaluation = train_estimator(make, electrode_features, electrode_split, columns)
    model_id = str(uuid.uuid4())
    metadata = _model_metadata(evaluation, target, model_id, time.perf_counter() - started)
    ranked = importances(model, columns)
    if name in ("forest", "boosting"):
        metadata["feature_importance"] = MetadataValue.md(importance_markdown(ranked))
    context.log.info(f"{name}: cv MAE {metadata['cv_mae'].value} over {metadata['cv_rows']} rows")
    bundle = _bundle(model, model_id, columns, target, config, evaluation,
                     importances=ranked.rename_axis("feature").reset_index())
    bundle["settings"].update(extra)
    return Output(bundle, metadata=metadata)


@asset(group_name=PIPELINE, partitions_def=ION_PARTITIONS)
def electrode_forest(
    context: AssetExecutionContext, config: ForestConfig, compute: ComputeResource, electrode_features, electrode_split
):
    """Random forest: out-of-fold (k-fold CV) and test MAE/RMSE/R2, importance and parity plots."""
    from assets.electrodes.models import make_forest

    def make():
        return make_forest(config.n_estimators, config.min_samples_leaf, config.max_features, compute.seed, compute.n_jobs())

    return _sklearn_model(context, "forest", make, config, electrode_features, electrode_split)


@asset(group_name=PIPELINE, partitions_def=ION_PARTITIONS, pool="gpu")
def electrode_boosting(
    context: AssetExecutionContext, config: BoostingConfig, compute: ComputeResource, electrode_features, electrode_split
):
    """XGBoost gradient-boosted trees on the same folds as the forest."""
    from assets.electrodes.models import make_boosting

    def make():
        return make_boosting(**config.model_dump(), seed=compute.seed, n_jobs=compute.n_jobs(), device=compute.xgboost_device())

    return _sklearn_model(context, "boosting", make, config, electrode_features, electrode_split)


@asset(group_name=PIPELINE, partitions_def=ION_PARTITIONS)
def electrode_composition(
    context: AssetExecutionContext, config: CompositionConfig, compute: ComputeResource, electrode_features,
    electrode_split,
):
    """Attention over the elements of each formula (weighted by fraction) plus host information, in torch; same folds."""
    from assets.electrodes.composition_model import CompositionAttentionRegressor, host_columns, slot_columns, with_compositions
    from assets.electrodes.models import ClippedRegressor

    def make():
        return ClippedRegressor(CompositionAttentionRegressor(
            **config.model_dump(), seed=compute.seed, num_threads=max(1, compute.n_jobs())))

    table = with_compositions(electrode_features)
    columns = slot_columns() + host_columns(electrode_features)
    return _sklearn_model(context, "composition", make, config, table, electrode_split, columns,
                          encodes_compositions=True)


@asset(group_name=PIPELINE, partitions_def=ION_PARTITIONS)
def electrode_baseline(context: AssetExecutionContext, electrode_features, electrode_split):
    """The median of the training targets, scored on the same folds: what every model must beat."""
    from dagster import Config as _Config

    from assets.electrodes.models import make_median

    return _sklearn_model(context, "median", make_median, _Config(), electrode_features, electrode_split)


@asset(group_name=PIPELINE, partitions_def=ION_PARTITIONS, pool="gpu")
def electrode_network(
    context: AssetExecutionContext, config: NetworkConfig, compute: ComputeResource, electrode_features, electrode_split
):
    """Three-hidden-layer LeakyReLU network on quantile-scaled inputs; k-fold CV on the same folds as the forest."""
    import keras

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
            electrode_features, electrode_split, columns, candidates, settings, context.log.info
        )
    model_id = str(uuid.uuid4())
    metadata = _model_metadata(evaluation, target, model_id, time.perf_counter() - started)
    metadata.update(
        {
            "units": MetadataValue.json(search.loc[0, "units"]),
            "search": MetadataValue.md(table_markdown(search, rows=20)),
            "epochs_trained": len(network.history),
            "training_log": MetadataValue.md(table_markdown(network.history.tail(10), rows=20)),
            "input_scaling": "median impute + quantile transform (normal), clipped to the training range",
            "keras_backend": keras.backend.backend(),
            "device": compute.keras_device(),
        }
    )
    context.log.info(f"network: cv MAE {metadata['cv_mae'].value} over {metadata['cv_rows']} rows")
    bundle = _bundle(
        network.model, model_id, columns, target, config, evaluation, preprocess=network.preprocess,
        history=network.history, search=search,
    )
    bundle["settings"].update(target_mean=network.target_mean, target_std=network.target_std,
                              target_min=network.target_min, target_max=network.target_max,
                              units=list(search.loc[0, "units"]))
    return Output(bundle, metadata=metadata)


def _comparison_metadata(bundles: dict) -> dict:
    """The models side by side (same folds, same metrics) as a Dagster table, plus headline numbers."""
    from assets.electrodes.evaluation import comparison_table

    from assets.electrodes.predict import ensemble_evaluations

    evaluations = {name: bundle["evaluation"] for name, bundle in bundles.items()}
    table = comparison_table({**evaluations, **ensemble_evaluations(bundles)})
    columns = [c for c in ["model", "cv_rows", "cv_mae", "cv_rmse", "cv_r2", "test_rows", "test_mae", "test_r2"] if c in table]
    records = [
        TableRecord({c: (round_sig(row[c]) if isinstance(row[c], float) else row[c]) for c in columns})
        for row in table[columns].to_dict("records")
    ]
    kinds = {"model": "string", "cv_rows": "int", "test_rows": "int"}
    schema = TableSchema(columns=[TableColumn(c, kinds.get(c, "float")) for c in columns])
    return {"model_comparison": MetadataValue.table(records, schema=schema)}


def _interval_metadata(bundles: dict, chosen: str, calibration: dict) -> dict:
    """Calibration quantiles, coverage of the test rows (when the split has any) and parity plots with intervals."""
    from assets.electrodes.intervals import coverage, interval_parity_markdown, intervals
    from assets.electrodes.predict import evaluations_with_spread

    frame = evaluations_with_spread(bundles, chosen)
    target = next(iter(bundles.values()))["settings"]["target"]
    metadata = {"interval_calibration": MetadataValue.json(
        {**calibration, "quantiles": {ion: {str(level): round_sig(q) for level, q in by_level.items()}
                                      for ion, by_level in calibration["quantiles"].items()}})}
    plots = []
    for subset, rows in frame.groupby("subset"):
        bounds = intervals(rows["predicted"], rows["spread"], rows["working_ion"], calibration)
        title = "test rows" if subset == "test" else "cv rows (the calibration rows themselves)"
        plots.append(interval_parity_markdown(rows["true"].to_numpy(), rows["predicted"].to_numpy(), bounds, target, title))
        if subset == "test":
            metadata.update({f"test_coverage{round(100 * level)}": MetadataValue.float(
                round_sig(coverage(rows["true"], bounds, level))) for level in calibration["levels"]})
    metadata["parity_with_intervals"] = MetadataValue.md("\n\n".join(plots))
    return metadata


@asset(group_name=PIPELINE, partitions_def=ION_PARTITIONS)
def electrode_predictions(
    context: AssetExecutionContext, config: PredictionsConfig, dask: DaskResource, electrode_records,
    electrode_forest, electrode_boosting, electrode_network, electrode_composition, electrode_baseline,
):
    """Every model's (and ensemble's) prediction for candidates.csv; `prediction` from the best by cv MAE, with its
    80 % and 95 % conformal interval calibrated on the out-of-fold training rows; per partition."""
    from pathlib import Path

    from assets.electrodes.features import electrode_inputs, featurize_electrodes
    from assets.electrodes.predict import (
        EMBEDDED_CANDIDATES, best_model, calibrate_intervals, cv_maes, predict_candidates, read_candidates,
    )
    from resources.datapaths import write_quarantine

    ion = working_ion_of(context)
    user_file = Path(config.candidates_file) if config.candidates_file else raw_dir(PIPELINE) / "candidates.csv"
    path = user_file if user_file.exists() else EMBEDDED_CANDIDATES
    candidates, rejections = read_candidates(path, ion or "")
    if path != EMBEDDED_CANDIDATES:
        write_quarantine(f"{PIPELINE}_candidates", rejections, checked_sources=[str(path)])
    valid = candidates[candidates["error"] == ""]
    features, failures = featurize_electrodes(electrode_inputs(valid), dask.map, config.rows_per_chunk)
    bundles = {"forest": electrode_forest, "boosting": electrode_boosting, "network": electrode_network,
               "composition": electrode_composition, "median": electrode_baseline}
    chosen = best_model(bundles)
    calibration = calibrate_intervals(bundles, chosen)
    predictions = predict_candidates(candidates, features, failures, bundles, calibration)
    data_kind = "embedded" if set(electrode_records["source"]) <= {"embedded"} else "user"
    predictions.insert(0, "partition", partition_of(context))
    predictions["training_data"] = data_kind
    predictions["candidates_source"] = "embedded" if path == EMBEDDED_CANDIDATES else relative_to_root(path)
    export = write_export_csv(predictions, f"electrode_predictions_{partition_of(context)}.csv")
    maes = cv_maes(bundles)
    return Output(
        predictions,
        metadata={
            "best_model": chosen,
            "best_cv_mae_V": MetadataValue.float(round_sig(maes[chosen])),
            "median_cv_mae_V": MetadataValue.float(round_sig(maes["median"])),
            **{f"cv_mae_V_{name}": MetadataValue.float(round_sig(mae)) for name, mae in maes.items()},
            **_comparison_metadata(bundles),
            **_interval_metadata(bundles, chosen, calibration),
            "training_data": data_kind,
            "candidates_file": relative_to_root(path) if path != EMBEDDED_CANDIDATES else "embedded example",
            "candidates": len(candidates),
            "predicted": len(valid),
            "errors": len(candidates) - len(valid),
            "export": MetadataValue.path(relative_to_root(export)),
            **{f"{name}_model_id": bundle["model_id"] for name, bundle in bundles.items()},
            "predictions": MetadataValue.md(table_markdown(
                predictions[["id", "formula", "working_ion", "prediction", "lower_80_V", "upper_80_V", "lower_95_V",
                             "upper_95_V", "model", "forest_prediction", "boosting_prediction", "network_prediction",
                             "composition_prediction", "error"]], rows=20)),
        },
    )


ASSETS = [
    electrode_records, electrode_features, electrode_split, electrode_forest, electrode_boosting, electrode_network,
    electrode_composition, electrode_baseline, electrode_predictions,
]
defs = Definitions(assets=ASSETS)
