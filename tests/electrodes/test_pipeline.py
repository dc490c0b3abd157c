"""The electrodes group end to end through Dagster, per working-ion partition, on the embedded default and on an export."""

import numpy as np
import pandas as pd
import pytest
from dagster import DagsterInstance, materialize

from assets.electrodes.defs import ASSETS, electrode_features, electrode_forest, electrode_records, electrode_split
from assets.electrodes.evaluation import make_split
from assets.electrodes.features import feature_columns
from assets.electrodes.models import make_forest, make_median, train_estimator
from tests.electrodes.test_sources import write_export

TINY = {
    "electrode_split": {"config": {"n_folds": 3}},
    "electrode_forest": {"config": {"n_estimators": 40}},
    "electrode_boosting": {"config": {"n_estimators": 60, "max_depth": 3}},
    "electrode_network": {"config": {"epochs": 6, "units_choices": [8], "patience": 3, "min_rows_per_epoch": 64}},
    "electrode_composition": {"config": {"epochs": 4, "d_model": 16, "n_heads": 2, "n_layers": 1}},
}
# Models must beat the median baseline's cv MAE by this factor on the embedded Li table (30 rows, 3 folds).
# Measured 2026-12-01 over the pipeline's splits for seeds 0-4: forest / median 0.75-0.88 (seed 0: 0.79),
# boosting / median 0.78-0.95; the same forest on shuffled voltages / median 0.985-1.49.
BEATS_MEDIAN_BY = 0.92


def run(assets, resources, ops=None, partition="Li", **kwargs):
    return materialize(
        assets, resources=resources, instance=DagsterInstance.ephemeral(), run_config={"ops": ops or {}},
        partition_key=partition, **kwargs,
    )


def beats_the_median(model_cv_mae: float, median_cv_mae: float) -> bool:
    return model_cv_mae < BEATS_MEDIAN_BY * median_cv_mae


def walk(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def test_whole_group_on_the_embedded_default(test_resources, data_root, monkeypatch):
    monkeypatch.delenv("MP_API_KEY", raising=False)
    raw = data_root / "raw" / "electrodes"
    raw.mkdir(parents=True)
    (raw / "candidates.csv").write_text("id,formula\nolivine,LiMn0.5Fe0.5PO4\nbad,Li0–1Zz3O4\nrange,Li0 –1NiO2\nodd,AlNi3\n")
    raw_before = walk(data_root / "raw")
    result = run(ASSETS, test_resources, TINY)
    assert result.success
    assert walk(data_root / "raw") == raw_before  # no asset writes under raw/

    check = result.get_asset_check_evaluations()[0]
    assert check.passed and check.check_name == "rejected_share_within_bound"
    records = result.output_for_node("electrode_records")
    assert len(records) >= 30 and set(records["source"]) == {"embedded"} and set(records["working_ion"]) == {"Li"}

    split = result.output_for_node("electrode_split")
    bundles = {name: result.output_for_node(node) for name, node in (
        ("forest", "electrode_forest"), ("boosting", "electrode_boosting"), ("network", "electrode_network"),
        ("composition", "electrode_composition"), ("median", "electrode_baseline"))}
    for bundle in bundles.values():  # same folds, same rows, for every model
        evaluation = bundle["evaluation"]
        assert set(evaluation.query("subset == 'test'")["battery_id"]) == set(split.query("subset == 'test'")["battery_id"])
        assert set(evaluation.query("subset == 'cv'")["battery_id"]) == set(split.query("subset == 'train'")["battery_id"])

    meta = {name: result.asset_materializations_for_node(node)[0].metadata for name, node in (
        ("forest", "electrode_forest"), ("boosting", "electrode_boosting"), ("network", "electrode_network"),
        ("composition", "electrode_composition"), ("median", "electrode_baseline"),
        ("predictions", "electrode_predictions"))}
    for name in ("forest", "boosting", "network", "composition", "median"):
        assert {"cv_mae", "cv_rmse", "cv_r2", "test_mae", "cv_rows"} <= set(meta[name])
        assert meta[name]["cv_rows"].value == (split["subset"] == "train").sum()
        value = meta[name]["cv_mae"].value
        assert value == float(f"{value:.4g}")  # rounded for people and Dagster's plots
    assert "data:image/png;base64" in meta["forest"]["feature_importance"].value
    assert "data:image/png;base64" in meta["network"]["parity"].value

    # issue 17: the models beat the median baseline by a measured margin
    median = meta["median"]["cv_mae"].value
    assert beats_the_median(meta["predictions"]["best_cv_mae_V"].value, median)
    assert beats_the_median(meta["forest"]["cv_mae"].value, median)
    assert meta["predictions"]["median_cv_mae_V"].value == median
    assert {row.data["model"] for row in meta["predictions"]["model_comparison"].value.records} == {
        "forest", "boosting", "network", "composition", "median", "trees", "ensemble", "chemistry"}

    predictions = result.output_for_node("electrode_predictions")
    exported = pd.read_csv(data_root / "exports" / "electrode_predictions_Li.csv", keep_default_na=False)
    assert list(exported["id"]) == ["olivine", "bad", "range", "odd"]
    assert set(exported["training_data"]) == {"embedded"} and set(exported["partition"]) == {"Li"}
    bad = predictions.set_index("id").loc["bad"]
    assert "Li0–1Zz3O4" in bad["error"] and "Zz" in bad["error"] and np.isnan(bad["prediction"])
    good = predictions[predictions["error"] == ""]
    low, high = records["average_voltage_V"].min(), records["average_voltage_V"].max()
    values = good[["prediction", "forest_prediction", "boosting_prediction", "network_prediction",
                   "composition_prediction"]].to_numpy()
    assert np.isfinite(values).all() and (values >= low).all() and (values <= high).all()  # AlNi3 included
    # issue 24: every prediction carries its 80 % and 95 % interval, nested around it, in the export too
    bounds = ["lower_80_V", "upper_80_V", "lower_95_V", "upper_95_V"]
    assert np.allclose(pd.to_numeric(exported[bounds].stack(), errors="coerce").to_numpy().reshape(-1, 4),
                       predictions[bounds].to_numpy(float), equal_nan=True)
    assert ((good["lower_95_V"] <= good["lower_80_V"]) & (good["lower_80_V"] < good["prediction"])
            & (good["prediction"] < good["upper_80_V"]) & (good["upper_80_V"] <= good["upper_95_V"])).all()
    assert np.allclose((good["lower_80_V"] + good["upper_80_V"]) / 2, good["prediction"])  # centred on `prediction`
    assert np.isnan(bad[["lower_80_V", "upper_95_V"]].to_numpy(float)).all()
    assert "data:image/png;base64" in meta["predictions"]["parity_with_intervals"].value
    assert {"test_coverage80", "test_coverage95"} <= set(meta["predictions"])
    chosen = meta["predictions"]["best_model"].value
    assert (good["prediction"] == good[f"{chosen}_prediction"]).all() and set(good["model"]) == {chosen}
    for name, bundle in bundles.items():
        assert set(predictions[f"{name}_model_id"]) == {bundle["model_id"]}
    quarantine = pd.read_csv(data_root / "quarantine" / "electrodes_candidates.csv")
    assert quarantine["reason"].str.contains("Zz").any()


@pytest.fixture(scope="module")
def embedded_li_features(tmp_path_factory):
    from assets.electrodes.features import build_feature_table
    from assets.electrodes.sources import collect_records
    from resources.cluster import DaskResource

    records = collect_records("Li", use_api=False, refresh_api_cache=False, use_embedded="always", log=print).records
    table, _ = build_feature_table(records, "average_voltage_V", DaskResource(synchronous=True).map, 500)
    return table


def test_a_model_trained_on_shuffled_voltages_fails_the_baseline_assertion(embedded_li_features):
    """The margin is not met by chance: the same forest on permuted targets does not beat the median by it."""
    table = embedded_li_features
    columns = feature_columns(table)
    failed = []
    for seed in range(3):
        split = make_split(list(table["battery_id"]), 0.2, 3, np.random.default_rng(seed))
        shuffled = table.assign(target=np.random.default_rng(100 + seed).permutation(table["target"].to_numpy()))
        forest = train_estimator(lambda: make_forest(60, seed=seed), shuffled, split, columns)[1]
        median = train_estimator(make_median, shuffled, split, columns)[1]
        mae = {name: e.query("subset == 'cv'").eval("abs(true - predicted)").mean() for name, e in
               (("forest", forest), ("median", median))}
        failed.append(not beats_the_median(mae["forest"], mae["median"]))
    assert all(failed)


def export_rows():
    """Export-shaped rows (real formula shapes) of well-known Li electrodes, voltages as in the curated table."""
    formulas = [
        ("Li0 –1CoO2", 3.9), ("Li0 –1NiO2", 3.8), ("Li0 –1Mn2O4", 4.05), ("Li1 –2Mn2O4", 2.95),
        ("Li0 –1FePO4", 3.45), ("Li0 –1MnPO4", 4.1), ("Li0 –1CoPO4", 4.8), ("Li4 –7Ti5O12", 1.55),
        ("Li0 –1TiS2", 2.1), ("Li0 –1V2O5", 3.3), ("Li1 –2NbVO4", 1.6), ("Li0 –1C6", 0.1),
        ("Li1 –3V2(PO4)3", 3.8), ("Li1 –3Ti2(PO4)3", 2.5),
    ]
    return [(f"mp-{1000 + i}_Li", formula, str(voltage)) for i, (formula, voltage) in enumerate(formulas)]


def test_partitions_keep_their_own_artefacts_on_a_dropped_in_export(test_resources, data_root, monkeypatch):
    monkeypatch.delenv("MP_API_KEY", raising=False)
    raw = data_root / "raw" / "electrodes"
    raw.mkdir(parents=True)
    export = write_export(raw / "battery_explorer_export.csv", [*export_rows(), ("mp-9_Zn", "Zn0 –0.5VO2", "0.7")])
    ops = {"electrode_records": {"config": {"use_api": False}}}
    li = run([electrode_records, electrode_features, electrode_split, electrode_forest], test_resources,
             {**ops, "electrode_split": TINY["electrode_split"], "electrode_forest": TINY["electrode_forest"]})
    assert li.success
    records = li.output_for_node("electrode_records")
    assert set(records["source"]) == {str(export)} and len(records) == 14
    meta = li.asset_materializations_for_node("electrode_records")[0].metadata
    assert meta["other_working_ion_rows"].value == 1 and meta["training_data"].value == "user"
    assert meta["n_user_records"].value == 15 and meta["n_rejected"].value == 0
    forest = li.output_for_node("electrode_forest")
    assert set(forest["evaluation"]["battery_id"]) == set(records["battery_id"])

    every = run([electrode_records], test_resources, ops, partition="all")
    assert len(every.output_for_node("electrode_records")) == 15
    storage = test_resources["io_manager"].create_io_manager(None)
    assert len(storage.load_stored("electrode_records", "Li")) == 14  # the all-ion run did not overwrite Li
    assert len(storage.load_stored("electrode_records", "all")) == 15


def test_blocking_check_stops_the_run_when_too_many_user_rows_are_rejected(test_resources, data_root):
    raw = data_root / "raw" / "electrodes"
    raw.mkdir(parents=True)
    rows = [(f"mp-{i}_Li", "Li0–1Qq2", "3.0") for i in range(8)] + export_rows()[:4]
    write_export(raw / "mostly_bad.csv", rows)
    ops = {"electrode_records": {"config": {"use_api": False, "max_rejected_share": 0.5}}}
    result = run([electrode_records, electrode_features], test_resources, ops, raise_on_error=False)
    check = result.get_asset_check_evaluations()[0]
    assert not check.passed and check.metadata["rejected_share"].value == pytest.approx(8 / 12, abs=1e-4)
    assert check.metadata["n_user_records"].value == 12
    assert not result.asset_materializations_for_node("electrode_features")
    assert len(pd.read_csv(data_root / "quarantine" / "electrodes.csv")) == 8
    again = run([electrode_records, electrode_features], test_resources, ops, raise_on_error=False)
    assert not again.get_asset_check_evaluations()[0].passed
    assert len(pd.read_csv(data_root / "quarantine" / "electrodes.csv")) == 8  # a rerun adds no duplicates


def test_the_demo_job_tags_its_runs_with_the_demo_partition(test_resources, data_root, monkeypatch):
    """materials_demo launches the group without asking for a partition: its tags name DEMO_PARTITION (Li)."""
    from dagster import Definitions, define_asset_job, in_process_executor

    from assets.electrodes.defs import DEMO_PARTITION
    from orchestration.definitions import defs as platform
    from orchestration.jobs import DEMO_TAGS

    assert platform.resolve_job_def("materials_demo").tags.get("dagster/partition") == DEMO_PARTITION
    monkeypatch.delenv("MP_API_KEY", raising=False)
    job = define_asset_job("demo_like", selection=["electrode_records", "electrode_features"], tags=DEMO_TAGS,
                           executor_def=in_process_executor)
    defs = Definitions(assets=[electrode_records, electrode_features], jobs=[job], resources=test_resources)
    result = defs.resolve_job_def("demo_like").execute_in_process(instance=DagsterInstance.ephemeral())
    assert result.success
    records = result.output_for_node("electrode_records")
    assert set(records["working_ion"]) == {DEMO_PARTITION} and set(records["source"]) == {"embedded"}
    assert (data_root / "storage" / "electrode_records").exists()
