"""The eis group materialized end to end on tiny configurations: what the user sees and the science."""

import logging

import numpy as np
import pandas as pd
import pytest
from dagster import AssetCheckSeverity, DagsterInstance, materialize

from assets.eis import defs as eis
from assets.eis.calibration import ensemble_probabilities
from assets.eis.circuits import CIRCUITS
from assets.eis.evidence import PREFIX as EVIDENCE_PREFIX
from assets.eis.evidence import circuit_evidence
from assets.eis.exports import all_columns, column_name
from assets.eis.simulate import SimulationSettings, as_challenge_frame, simulate_all

TINY = {
    "eis_simulated_spectra": {"config": {"spectra_per_class": 16, "unlabelled_examples": 3}},
    "eis_interpolated": {"config": {"grid_points": 20}},
    "eis_features": {"config": {"fc_preset": "minimal", "max_features": 12}},
    "eis_circuit_classifier": {"config": {"n_estimators": 30, "compare_feature_sets": False}},
    "eis_parameter_regressors": {"config": {"n_estimators": 30, "min_share_beating_dummy": 0.5}},
}
ALL_ASSETS = [
    eis.eis_simulated_spectra,
    eis.eis_spectra,
    eis.eis_interpolated,
    eis.eis_split,
    eis.eis_label_fitted_spectra,
    eis.eis_features,
    eis.eis_circuit_classifier,
    eis.eis_parameter_regressors,
    eis.eis_predictions,
]
GOOD = ("[1.0, 10.0, 100.0]", "[5.0 -1.0j , 4.0 -2.0j , 1.0 -0.5j ]", "RCPE-RCPE",
        "R1: 1.0, CPE1_t: 0.9, CPE1_C: 1e-3, R2: 4.0, CPE2_t: 0.8, CPE2_C: 1e-2")
BAD = [
    ("[1.0, 2.0]", "[1+1j]", "RCPE-RCPE", GOOD[3]),  # lengths differ
    ("[1.0, 2.0, 3.0]", "[1+1j, 2+2j, 3+3j]", "RC-X", GOOD[3]),  # unknown circuit
    ("[0.0, 2.0, 3.0]", "[1+1j, 2+2j, 3+3j]", "RCPE-RCPE", GOOD[3]),  # non-positive frequency
    (GOOD[0], GOOD[1], "RCPE-RCPE", "R1: 1.0"),  # parameters missing
]


def _write_raw_csv(data_root, rows, name="lab.csv"):
    folder = data_root / "raw" / "eis"
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["freq", "Z", "Circuit", "Parameters"]).to_csv(folder / name)
    return folder / name


def _check(result, name):
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == name]
    return evaluation


def _files_under(folder):
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# ---- the science the demo must show (issue 17); margins from measured runs, see the README ----

# Measured on seed 0 only (2026-12-01; the shared machine allowed no sweep over seeds): the tiny demo
# (16 spectra per class, 36 test spectra, chance 0.111) reached accuracy 0.389 against 0.167 for the raw-grid
# baseline, regressors beat the dummy on 0.42 of parameters (tsfresh+shape features); the cheap shape-feature
# model below reached 0.333, and with shuffled labels it falls to about chance.
MIN_ACCURACY_OVER_CHANCE = 0.15  # >= 0.261: 10 of 36 test spectra; shuffled labels give ~4 of 36
MIN_SHARE_BEATING_DUMMY = 0.3  # "most" needs more than 12 training spectra per class
BASELINE_TOLERANCE = 0.15  # within this of the raw-grid baseline
MIN_SHUFFLED_SET_SHARE = 0.6  # of the circuits: a set that cannot tell circuits apart (informative sets hold ~1-2 of 9)
MIN_TRAIN_OVER_TEST_ACCURACY = 0.3  # a model fits its own training rows (1.0 on seed 0) far better than unseen ones (0.417)


def assert_classifier_learned(accuracy: float, baseline_accuracy: float, n_classes: int):
    chance = 1 / n_classes
    assert accuracy >= chance + MIN_ACCURACY_OVER_CHANCE, f"accuracy {accuracy:.3f} is not clearly above chance {chance:.3f}"
    assert accuracy >= baseline_accuracy - BASELINE_TOLERANCE, f"accuracy {accuracy:.3f} far below the raw-grid baseline {baseline_accuracy:.3f}"


def test_demo_runs_on_simulated_data_alone_writes_nothing_under_raw_and_learns(data_root, test_resources):
    result = materialize(ALL_ASSETS, resources=test_resources, instance=DagsterInstance.ephemeral(), run_config={"ops": TINY})
    assert result.success
    assert _files_under(data_root / "raw") == []  # the examples live in examples/eis/, never in the user's folders
    assert (data_root / "examples" / "eis" / "unlabelled_examples.csv").exists()
    check = _check(result, "rejected_share_within_bound")
    assert check.passed and check.metadata["n_user_records"].value == 0  # no user data: nothing to bound

    predictions = pd.read_csv(data_root / "exports" / "eis_predictions.csv")
    classifier = result.output_for_node("eis_circuit_classifier")
    regressors = result.output_for_node("eis_parameter_regressors")
    assert len(predictions) == 3 and set(predictions["source"]) == {"synthetic"} and set(predictions["origin"]) == {"synthetic"}
    assert predictions["spectrum_id"].tolist() == [f"synthetic#{row}" for row in predictions["row"]]
    assert set(predictions["classifier_model_id"]) == {classifier["model_id"]}
    assert "parameters" not in predictions.columns and set(predictions.columns) & set(all_columns())
    probabilities = predictions[[f"p_{c}" for c in classifier["classes"]]]
    assert ((probabilities.sum(axis=1) - 1).abs() < 1e-3).all()
    for _, row in predictions.iterrows():
        circuit = CIRCUITS[row["predicted_circuit"]]
        expected = {column_name(p, k) for p, k in zip(circuit.parameters, circuit.kinds)}
        assert {c for c in all_columns() if c in predictions.columns and pd.notna(row[c])} == expected

    _assert_sets_exported(data_root, result, predictions)

    split = result.output_for_node("eis_split")
    assert set(split.groupby("circuit")["split"].nunique()) == {2}
    metadata = result.asset_materializations_for_node("eis_circuit_classifier")[0].metadata
    accuracy, baseline = metadata["accuracy"].value, metadata["baseline_accuracy"].value
    assert accuracy == round(accuracy, 4 - int(np.floor(np.log10(abs(accuracy)))) - 1)  # 4 significant digits
    assert_classifier_learned(accuracy, baseline, len(classifier["classes"]))
    share = result.asset_materializations_for_node("eis_parameter_regressors")[0].metadata["share_parameters_beating_dummy"].value
    assert share >= MIN_SHARE_BEATING_DUMMY, f"regressors beat the dummy on only {share:.0%} of parameters"
    mae = regressors["mae"]
    assert set(mae["circuit"]) == set(CIRCUITS) and (mae["mae_dummy"] > 0).all()

    # Scored on exactly the split's test rows, trained on its (larger) training split and never on the test
    # rows: the boosted models reproduce the labels of rows they were trained on almost perfectly, not the others.
    features = result.output_for_node("eis_features")["features"].set_index("spectrum_id")
    train_rows, test_rows = split[split["split"] == "train"], split[split["split"] == "test"]

    def model_accuracy(rows):
        x = features.loc[rows["spectrum_id"], classifier["feature_columns"]].to_numpy(float)
        predicted = ensemble_probabilities(classifier["models"], x).argmax(axis=1)
        return float(np.mean(np.array(classifier["classes"])[predicted] == rows["circuit"].to_numpy()))

    chosen = classifier["metrics"][classifier["chosen"]]
    assert metadata["n_test"].value == np.sum(chosen["confusion"]) == len(test_rows) < len(train_rows)
    assert model_accuracy(test_rows) == pytest.approx(chosen["accuracy"])
    assert model_accuracy(train_rows) >= model_accuracy(test_rows) + MIN_TRAIN_OVER_TEST_ACCURACY

    # Each spectrum's circuit-fit evidence is its own: its nine fit residuals equal those of fitting that spectrum
    # alone (a parameter the data barely determines may land 1e-3 apart in a batch; another spectrum's row is ~0.1+ off).
    spectra = result.output_for_node("eis_spectra").set_index("spectrum_id")
    residuals = [c for c in features.columns if c.startswith(f"{EVIDENCE_PREFIX}log10_residual_")]
    for spectrum_id in features.index[[3, 70, 140]]:
        measured = spectra.loc[spectrum_id]
        own = circuit_evidence([np.asarray(measured["omega_rad_s"])], [np.asarray(measured["z_real"]) + 1j * np.asarray(measured["z_imag"])],
                               random_starts=eis.FeaturesConfig().evidence_random_starts)
        np.testing.assert_allclose(features.loc[spectrum_id, residuals].to_numpy(float), own.loc[0, residuals].to_numpy(float), atol=1e-3, err_msg=spectrum_id)


def _assert_sets_exported(data_root, result, predictions):
    """The 90 % circuit sets in the exports: most probable first, each member with its fit (values and standard
    errors in unit-named columns, BIC), the size, the supported circuit; the set-size distribution and the
    reliability plot in the metadata."""
    from assets.eis.predict import SET_SEPARATOR

    members = pd.read_csv(data_root / "exports" / "eis_prediction_sets.csv")
    assert predictions["supported_circuit"].map(lambda name: isinstance(name, str) and name != "").all()  # a class or a reduction of one
    for row in predictions.to_dict("records"):
        circuits = [c for c in str(row["set90_circuits"]).split(SET_SEPARATOR) if c and c != "nan"]
        assert len(circuits) == row["set90_size"]
        probabilities = [row[f"p_{c}"] for c in circuits]
        assert probabilities == sorted(probabilities, reverse=True)
        fitted = members[members["spectrum_id"] == row["spectrum_id"]]
        assert fitted["circuit"].tolist() == circuits and fitted["rank"].tolist() == list(range(1, len(circuits) + 1))
        assert fitted["probability"].tolist() == probabilities and np.isfinite(fitted["bic"]).all()
        for member in fitted.to_dict("records"):
            circuit = CIRCUITS[member["circuit"]]
            for parameter, kind in zip(circuit.parameters, circuit.kinds):
                column = column_name(parameter, kind)
                assert np.isfinite(member[column]) and member[f"{column}_se"] >= 0, (member["circuit"], column)
    metadata = result.asset_materializations_for_node("eis_predictions")[0].metadata
    assert sum(metadata["set90_size_counts"].value.values()) == len(predictions) and "set90_sizes" in metadata
    classifier_metadata = result.asset_materializations_for_node("eis_circuit_classifier")[0].metadata
    assert {"reliability", "set90_sizes", "temperature", "test_ece", "out_of_fold_ece", "test_set90_coverage"} <= set(classifier_metadata)


def test_shuffled_labels_through_the_pipeline_fail_the_science_assertion(data_root, test_resources):
    """A user's file whose labels (circuit with its parameters) are shuffled across its spectra, run through the
    pipeline's own assets: every model the classifier asset scores falls to about chance and fails the
    assertion that the demo passes."""
    frame = as_challenge_frame(simulate_all(SimulationSettings(spectra_per_class=16), np.random.default_rng(0)))
    labels = frame[["Circuit", "Parameters"]].to_numpy()
    frame[["Circuit", "Parameters"]] = labels[np.random.default_rng(1).permutation(len(frame))]
    (data_root / "raw" / "eis").mkdir(parents=True)
    frame.to_csv(data_root / "raw" / "eis" / "shuffled.csv", index=False)
    ops = {
        "eis_interpolated": TINY["eis_interpolated"],
        "eis_features": TINY["eis_features"],
        "eis_simulated_spectra": {"config": {"spectra_per_class": 1, "unlabelled_examples": 0}},
        "eis_spectra": {"config": {"include_simulated": "never"}},
        "eis_label_fitted_spectra": {"config": {"spectra_per_class": 0}},
        "eis_circuit_classifier": {"config": {"n_estimators": 30}},  # every feature set scored beside the chosen one
    }
    result = materialize(ALL_ASSETS[:7], resources=test_resources, instance=DagsterInstance.ephemeral(), run_config={"ops": ops})
    split = result.output_for_node("eis_split")
    assert len(split) == len(frame) and (split["origin"] == "user").all() and (split["split"] == "test").sum() == 36
    classifier = result.output_for_node("eis_circuit_classifier")
    assert len(classifier["metrics"]) == 6  # five feature sets and the raw-grid baseline
    for name, metrics in classifier["metrics"].items():
        with pytest.raises(AssertionError, match="not clearly above chance"):
            assert_classifier_learned(metrics["accuracy"], metrics["accuracy"], len(classifier["classes"]))
    # The 90 % sets keep their promise on labels that carry no information by growing to hold (almost) every
    # circuit: a guarantee that tells the user nothing, as it should.
    chosen = classifier["metrics"][classifier["chosen"]]
    assert chosen["set90_coverage"] >= 0.8  # 36 test spectra: 0.9 less about two standard errors
    assert chosen["set90_mean_size"] >= MIN_SHUFFLED_SET_SHARE * len(classifier["classes"])


# ---- a user's own file (issue 11) -------------------------------------------------------------


def _warnings(instance, run_id):
    return [entry.user_message for entry in instance.all_logs(run_id) if entry.level == logging.WARNING]


@pytest.mark.parametrize("severity", ["ERROR", "WARN"])
def test_one_good_and_four_bad_user_rows_fail_the_check_on_user_rows_only(data_root, test_resources, severity):
    raw = _write_raw_csv(data_root, [GOOD] + BAD)
    instance = DagsterInstance.ephemeral()
    ops = {
        "eis_simulated_spectra": {"config": {"spectra_per_class": 5, "unlabelled_examples": 0}},
        "eis_spectra": {"config": {"include_simulated": "always", "check_severity": severity}},
    }
    for attempt in range(2):
        result = materialize([eis.eis_simulated_spectra, eis.eis_spectra], resources=test_resources, instance=instance,
                             run_config={"ops": ops}, raise_on_error=False)
        check = _check(result, "rejected_share_within_bound")
        assert not check.passed and check.severity == AssetCheckSeverity(severity)
        assert check.metadata["n_rejected"].value == 4 and check.metadata["n_user_records"].value == 5  # not 4 / 50
        assert check.metadata["rejected_share"].value == 0.8
        table = result.output_for_node("eis_spectra")
        assert (table["origin"] == "synthetic").sum() == 45 and table.loc[table["origin"] == "user", "source"].tolist() == ["raw/eis/lab.csv"]
        (line,) = [w for w in _warnings(instance, result.run_id) if "raw/eis/lab.csv" in w]
        assert "4 of 5 records rejected" in line
        quarantine = pd.read_csv(data_root / "quarantine" / "eis.csv")
        assert quarantine["source"].tolist() == ["raw/eis/lab.csv"] * 4 and quarantine["row"].tolist() == [1, 2, 3, 4]
    assert raw.exists()

    _write_raw_csv(data_root, [GOOD] * 2)  # the user fixes the file: it leaves the quarantine on the next run
    result = materialize([eis.eis_simulated_spectra, eis.eis_spectra], resources=test_resources, instance=instance, run_config={"ops": ops})
    assert _check(result, "rejected_share_within_bound").passed
    assert pd.read_csv(data_root / "quarantine" / "eis.csv")["source"].tolist() == []


def test_with_user_labelled_spectra_the_test_split_holds_only_theirs(data_root, test_resources):
    batches = simulate_all(SimulationSettings(spectra_per_class=4), np.random.default_rng(3))
    as_challenge_frame(batches).rename(columns={"": "index"}).to_csv(data_root / "lab.csv", index=False)
    (data_root / "raw" / "eis").mkdir(parents=True)
    (data_root / "lab.csv").rename(data_root / "raw" / "eis" / "lab.csv")
    ops = {"eis_simulated_spectra": {"config": {"spectra_per_class": 6, "unlabelled_examples": 0}},
           "eis_label_fitted_spectra": {"config": {"spectra_per_class": 20}}}
    for option, simulated in (("auto", 0), ("always", 54), ("never", 0)):
        ops["eis_spectra"] = {"config": {"include_simulated": option}}
        result = materialize([eis.eis_simulated_spectra, eis.eis_spectra, eis.eis_interpolated, eis.eis_split, eis.eis_label_fitted_spectra],
                             resources=test_resources, instance=DagsterInstance.ephemeral(), run_config={"ops": ops})
        split = result.output_for_node("eis_split")
        assert (split["origin"] == "synthetic").sum() == simulated, option
        assert set(split.loc[split["split"] == "test", "origin"]) == {"user"}, option
        assert (split.loc[split["origin"] == "synthetic", "split"] == "train").all()
        # The label-fitted spectra: 20 per class of the user's training spectra, never in the split.
        label_fitted = result.output_for_node("eis_label_fitted_spectra")
        user_train = split[(split["origin"] == "user") & (split["split"] == "train")]
        assert label_fitted["spectra"]["circuit"].value_counts().to_dict() == {c: 20 for c in user_train["circuit"].unique()}
        assert not set(label_fitted["spectra"]["spectrum_id"]) & set(split["spectrum_id"])
        assert label_fitted["z"].shape == (len(label_fitted["spectra"]), 40) and np.isfinite(label_fitted["z"]).all()
        # The simulator saw the user's training spectra and nothing of the test split: each label-fitted
        # spectrum lies on the frequency grid of one of them (every spectrum's grid is its own), and 20 draws
        # from the 3 training grids of a class cover them all.
        metadata = result.asset_materializations_for_node("eis_label_fitted_spectra")[0].metadata
        assert metadata["n_training_user_spectra_fitted"].value == len(user_train), option
        grids = result.output_for_node("eis_spectra").set_index("spectrum_id")["omega_rad_s"]
        id_of_grid = {tuple(grids[i]): i for i in split.loc[split["origin"] == "user", "spectrum_id"]}
        assert len(id_of_grid) == (split["origin"] == "user").sum()
        seen = {id_of_grid.get(tuple(omega)) for omega in label_fitted["omega_rad_s"]}
        assert seen == set(user_train["spectrum_id"]), option


def test_training_spectra_sent_for_prediction_get_the_features_and_probabilities_of_training(data_root, test_resources):
    """Train/serve parity: the user's labelled spectra, dropped again without labels into raw/eis/unlabelled/, go
    through eis_predictions and come out with exactly what training computed for them: the classifier's
    calibrated probabilities from its features (shape and circuit evidence) and the regressors' parameters
    from theirs (tsfresh), to the export's rounding."""
    from assets.eis.calibration import Calibration, calibrated
    from assets.eis.exports import round_significant
    from assets.eis.models import predict_parameters

    batches = simulate_all(SimulationSettings(spectra_per_class=5), np.random.default_rng(4))
    (data_root / "raw" / "eis" / "unlabelled").mkdir(parents=True)
    as_challenge_frame(batches).to_csv(data_root / "raw" / "eis" / "lab.csv", index=False)
    as_challenge_frame(batches, labelled=False).to_csv(data_root / "raw" / "eis" / "unlabelled" / "same.csv", index=False)
    ops = {**TINY, "eis_spectra": {"config": {"include_simulated": "never"}},
           "eis_simulated_spectra": {"config": {"spectra_per_class": 1, "unlabelled_examples": 0}},
           "eis_label_fitted_spectra": {"config": {"spectra_per_class": 5}},
           "eis_features": {"config": {**TINY["eis_features"]["config"], "evidence_random_starts": 1}},
           "eis_predictions": {"config": {"fit_set_members": False}}}
    result = materialize(ALL_ASSETS, resources=test_resources, instance=DagsterInstance.ephemeral(), run_config={"ops": ops})
    classifier, regressors = result.output_for_node("eis_circuit_classifier"), result.output_for_node("eis_parameter_regressors")
    spectra = result.output_for_node("eis_spectra").set_index("row")
    features = result.output_for_node("eis_features")["features"].set_index("spectrum_id")
    predictions = result.output_for_node("eis_predictions").set_index("row")
    assert len(predictions) == len(spectra) == 45
    train = result.output_for_node("eis_split").query("split == 'train'")["spectrum_id"]
    rows = [row for row in spectra.index if spectra.loc[row, "spectrum_id"] in set(train)]
    assert len(rows) > 20
    x = features.loc[spectra.loc[rows, "spectrum_id"], classifier["feature_columns"]].to_numpy(float)
    expected = np.round(calibrated(ensemble_probabilities(classifier["models"], x), Calibration(**classifier["calibration"])), 4)
    np.testing.assert_array_equal(predictions.loc[rows, [f"p_{c}" for c in classifier["classes"]]].to_numpy(float), expected)
    for row in rows:
        circuit = predictions.loc[row, "predicted_circuit"]
        regressor = regressors["regressors"][circuit]
        values = predict_parameters(regressor, features.loc[[spectra.loc[row, "spectrum_id"]], regressors["feature_columns"]].to_numpy(float))[0]
        definition = CIRCUITS[circuit]
        for parameter, kind, value in zip(definition.parameters, definition.kinds, values):
            assert predictions.loc[row, column_name(parameter, kind)] == round_significant(value), (row, parameter)


def test_paper_scale_run_config_is_valid_for_eis_job():
    import yaml
    from dagster import validate_run_config

    from orchestration.definitions import defs

    with open("configs/eis_paper.yaml") as handle:
        run_config = yaml.safe_load(handle)
    assert validate_run_config(defs.resolve_job_def("eis_job"), run_config)
