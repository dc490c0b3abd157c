"""The eis group materialized end to end on a tiny configuration."""

import pandas as pd
from dagster import AssetKey, DagsterInstance, materialize

from assets.eis import defs as eis
from assets.eis.circuits import CIRCUITS

TINY = {
    "eis_simulated_spectra": {"config": {"spectra_per_class": 12, "unlabelled_examples": 3}},
    "eis_interpolated": {"config": {"grid_points": 20}},
    "eis_features": {"config": {"fc_preset": "minimal", "max_features": 12}},
    "eis_circuit_classifier": {"config": {"n_estimators": 15}},
    "eis_parameter_regressors": {"config": {"n_estimators": 15, "min_share_beating_dummy": 0.0}},
}
ALL_ASSETS = [
    eis.eis_simulated_spectra,
    eis.eis_spectra,
    eis.eis_interpolated,
    eis.eis_split,
    eis.eis_features,
    eis.eis_circuit_classifier,
    eis.eis_parameter_regressors,
    eis.eis_predictions,
]


def _write_raw_csv(data_root, rows):
    folder = data_root / "raw" / "eis"
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["freq", "Z", "Circuit", "Parameters"]).to_csv(folder / "lab.csv")
    return folder / "lab.csv"


def _check(result, name):
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == name]
    return evaluation


def test_whole_group_runs_and_writes_predictions_with_model_ids(data_root, test_resources):
    raw = _write_raw_csv(data_root, [("[1.0, 2.0]", "[1+1j]", "RCPE-RCPE", "R1: 1")])
    result = materialize(ALL_ASSETS, resources=test_resources, instance=DagsterInstance.ephemeral(), run_config={"ops": TINY})
    assert result.success
    assert _check(result, "rejected_share_within_bound").passed  # 1 of 109 rows
    quarantine = pd.read_csv(data_root / "quarantine" / "eis.csv")
    assert quarantine["source"].tolist() == [str(raw)] and quarantine["row"].tolist() == [0]
    assert "freq has 2 values but Z has 1" in quarantine["reason"].iloc[0]

    predictions = pd.read_csv(data_root / "exports" / "eis_predictions.csv")
    classifier = result.output_for_node("eis_circuit_classifier")
    regressors = result.output_for_node("eis_parameter_regressors")
    assert len(predictions) == 3
    assert set(predictions["classifier_model_id"]) == {classifier["model_id"]}
    assert set(predictions["regressor_model_id"]) == {regressors["model_id"]}
    probabilities = predictions[[f"p_{c}" for c in classifier["classes"]]]
    assert ((probabilities.sum(axis=1) - 1).abs() < 1e-5).all()
    for circuit, text in zip(predictions["predicted_circuit"], predictions["parameters"]):
        assert [item.split(":")[0] for item in text.split(", ")] == list(CIRCUITS[circuit].parameters)

    split = result.output_for_node("eis_split")
    assert set(split.groupby("circuit")["split"].nunique()) == {2}  # every class in train and test
    selected = result.output_for_node("eis_features")
    assert 0 < selected["features"].shape[1] - 1 <= 12 and set(selected["kind_to_fc_parameters"]) <= {"z_real", "z_imag"}
    metadata = result.asset_materializations_for_node("eis_circuit_classifier")[0].metadata
    assert {"accuracy", "baseline_accuracy", "confusion_matrices", "per_class_f1"} <= set(metadata)
    mae = regressors["mae"]
    assert set(mae["circuit"]) == set(CIRCUITS) and (mae["mae_dummy"] > 0).all()


def test_rejected_share_above_the_bound_fails_the_blocking_check(data_root, test_resources):
    _write_raw_csv(data_root, [("[1.0, 2.0]", "[1+1j, 2+2j]", "RC-X", "R1: 1")] * 2)
    result = materialize(
        [eis.eis_simulated_spectra, eis.eis_spectra],
        resources=test_resources,
        instance=DagsterInstance.ephemeral(),
        run_config={"ops": {"eis_simulated_spectra": {"config": {"spectra_per_class": 2}}, "eis_spectra": {"config": {"max_rejected_share": 0.05}}}},
        raise_on_error=False,
    )
    evaluation = _check(result, "rejected_share_within_bound")
    assert not evaluation.passed and evaluation.blocking
    assert evaluation.metadata["n_rejected"].value == 2
    assert result.asset_materializations_for_node("eis_spectra")[0].asset_key == AssetKey("eis_spectra")


def test_paper_scale_run_config_is_valid_for_eis_job():
    import yaml
    from dagster import validate_run_config

    from orchestration.definitions import defs

    with open("configs/eis_paper.yaml") as handle:
        run_config = yaml.safe_load(handle)
    assert validate_run_config(defs.resolve_job_def("eis_job"), run_config)
