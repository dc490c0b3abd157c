"""The electrodes group end to end through Dagster, on the embedded default and on a dropped-in export."""

import numpy as np
import pandas as pd
import pytest
from dagster import DagsterInstance, materialize

from assets.electrodes.defs import (
    electrode_features,
    electrode_forest,
    electrode_network,
    electrode_predictions,
    electrode_records,
    electrode_split,
)
from tests.electrodes.test_sources import write_export

TINY = {
    "electrode_split": {"config": {"n_folds": 3}},
    "electrode_forest": {"config": {"n_estimators": 20}},
    "electrode_network": {"config": {"n_candidates": 1, "search_folds": 1, "epochs": 4, "units_choices": [8]}},
}
ALL_ASSETS = [electrode_records, electrode_features, electrode_split, electrode_forest, electrode_network, electrode_predictions]


def run(assets, resources, ops=None, **kwargs):
    return materialize(
        assets, resources=resources, instance=DagsterInstance.ephemeral(), run_config={"ops": ops or {}}, **kwargs
    )


def test_whole_group_on_the_embedded_default(test_resources, data_root, monkeypatch):
    monkeypatch.delenv("MP_API_KEY", raising=False)
    raw = data_root / "raw" / "electrodes"
    raw.mkdir(parents=True)
    (raw / "candidates.csv").write_text("id,formula\nolivine,LiMn0.5Fe0.5PO4\nbad,Li0–1Zz3O4\nrange,Li0 –1NiO2\n")
    result = run(ALL_ASSETS, test_resources, TINY)
    assert result.success

    check = result.get_asset_check_evaluations()[0]
    assert check.passed and check.check_name == "rejected_share_within_bound"
    records = result.output_for_node("electrode_records")
    assert len(records) >= 30 and set(records["source"]) == {"embedded"} and set(records["working_ion"]) == {"Li"}

    split = result.output_for_node("electrode_split")
    forest = result.output_for_node("electrode_forest")
    network = result.output_for_node("electrode_network")
    for bundle in (forest, network):
        test_rows = bundle["evaluation"].query("subset == 'test'")
        assert set(test_rows["battery_id"]) == set(split.loc[split["subset"] == "test", "battery_id"])
    assert set(forest["evaluation"].query("subset == 'cv'")["battery_id"]) == set(split.query("subset == 'train'")["battery_id"])

    forest_meta = result.asset_materializations_for_node("electrode_forest")[0].metadata
    assert {"cv_mae", "cv_rmse", "cv_r2", "test_mae", "test_rmse", "test_r2"} <= set(forest_meta)
    assert "data:image/png;base64" in forest_meta["parity"].value
    assert "data:image/png;base64" in forest_meta["feature_importance"].value
    assert 0 < forest_meta["cv_mae"].value < records["average_voltage_V"].std() * 2
    network_meta = result.asset_materializations_for_node("electrode_network")[0].metadata
    assert "data:image/png;base64" in network_meta["parity"].value and network_meta["epochs_trained"].value >= 1

    predictions = result.output_for_node("electrode_predictions")
    exported = pd.read_csv(data_root / "exports" / "electrode_predictions.csv", keep_default_na=False)
    assert list(exported["id"]) == ["olivine", "bad", "range"]
    bad = predictions.set_index("id").loc["bad"]
    assert "Li0–1Zz3O4" in bad["error"] and "Zz" in bad["error"] and np.isnan(bad["forest_prediction"])
    good = predictions[predictions["error"] == ""]
    assert np.isfinite(good[["forest_prediction", "network_prediction"]].to_numpy()).all()
    assert set(predictions["forest_model_id"]) == {forest["model_id"]}
    assert set(predictions["network_model_id"]) == {network["model_id"]}
    quarantine = pd.read_csv(data_root / "quarantine" / "electrodes.csv")
    assert quarantine["reason"].str.contains("Zz").any()


def export_rows():
    """Export-shaped rows (real formula shapes) of well-known Li electrodes, voltages as in the curated table."""
    formulas = [
        ("Li0 –1CoO2", 3.9), ("Li0 –1NiO2", 3.8), ("Li0 –1Mn2O4", 4.05), ("Li1 –2Mn2O4", 2.95),
        ("Li0 –1FePO4", 3.45), ("Li0 –1MnPO4", 4.1), ("Li0 –1CoPO4", 4.8), ("Li4 –7Ti5O12", 1.55),
        ("Li0 –1TiS2", 2.1), ("Li0 –1V2O5", 3.3), ("Li1 –2NbVO4", 1.6), ("Li0 –1C6", 0.1),
        ("Li1 –3V2(PO4)3", 3.8), ("Li1 –3Ti2(PO4)3", 2.5),
    ]
    return [(f"mp-{1000 + i}_Li", formula, str(voltage)) for i, (formula, voltage) in enumerate(formulas)]


def test_models_retrain_on_a_dropped_in_export(test_resources, data_root, monkeypatch):
    monkeypatch.delenv("MP_API_KEY", raising=False)
    raw = data_root / "raw" / "electrodes"
    raw.mkdir(parents=True)
    export = write_export(raw / "battery_explorer_export.csv", [*export_rows(), ("mp-9_Zn", "Zn0 –0.5VO2", "0.7")])
    assets = [electrode_records, electrode_features, electrode_split, electrode_forest]
    ops = {key: TINY[key] for key in ("electrode_split", "electrode_forest")}
    result = run(assets, test_resources, {**ops, "electrode_records": {"config": {"use_api": False}}})
    assert result.success
    records = result.output_for_node("electrode_records")
    assert set(records["source"]) == {str(export)} and len(records) == 14
    meta = result.asset_materializations_for_node("electrode_records")[0].metadata
    assert meta["other_working_ion_rows"].value == 1
    forest = result.output_for_node("electrode_forest")
    assert set(forest["evaluation"]["battery_id"]) == set(records["battery_id"])


def test_blocking_check_stops_the_run_when_too_many_rows_are_rejected(test_resources, data_root):
    raw = data_root / "raw" / "electrodes"
    raw.mkdir(parents=True)
    rows = [(f"mp-{i}_Li", "Li0–1Qq2", "3.0") for i in range(8)] + export_rows()[:4]
    write_export(raw / "mostly_bad.csv", rows)
    result = run(
        [electrode_records, electrode_features], test_resources,
        {"electrode_records": {"config": {"use_api": False, "max_rejected_share": 0.5}}}, raise_on_error=False,
    )
    check = result.get_asset_check_evaluations()[0]
    assert not check.passed and check.metadata["rejected_share"].value == pytest.approx(8 / 12)
    assert not result.asset_materializations_for_node("electrode_features")
    assert len(pd.read_csv(data_root / "quarantine" / "electrodes.csv")) == 8
