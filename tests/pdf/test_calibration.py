"""Calibrated space-group probabilities and 90 % sets: closed forms, known distributions, train/serve parity."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from dagster import DagsterInstance, materialize

from assets.pdf import calibration, classifiers, compact, measured, profiles, structures
from assets.pdf import defs as pdf_defs
from assets.pdf.calculator import MODEL_GRID_A, PdfSettings
from resources.conformal import (
    expected_calibration_error,
    fit_temperature,
    reliability_bins,
    set_threshold,
    tempered_softmax,
    top_mass_sets,
)


def sampled_labels(probabilities: np.ndarray, rng) -> np.ndarray:
    """One class per row, drawn from that row's probabilities (the known distribution)."""
    cumulative = np.cumsum(probabilities, axis=1)
    return np.minimum((rng.random((len(probabilities), 1)) > cumulative).sum(axis=1), probabilities.shape[1] - 1)


def over_confident_problem(n: int, seed: int = 0, sharpening: float = 3.0):
    """(true logits, labels drawn from softmax(true logits), a model's logits = sharpening x the true ones)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 1.5, (n, 6))
    labels = sampled_labels(tempered_softmax(logits), rng)
    return logits, labels, sharpening * logits


def test_ece_of_a_constant_confidence_is_its_gap_to_the_accuracy():
    """Every row at confidence 0.8, right half the time: ECE = |0.5 - 0.8| = 0.3; right 4 times in 5: 0."""
    probabilities = np.tile([0.8, 0.2], (10, 1))
    half_right = np.array([0, 1] * 5)
    assert expected_calibration_error(probabilities, half_right) == pytest.approx(0.3)
    assert expected_calibration_error(probabilities, np.array([0, 0, 0, 0, 1] * 2)) == pytest.approx(0.0)
    bins = reliability_bins(probabilities, half_right, n_bins=10)
    assert bins["count"].tolist() == [0] * 7 + [10, 0, 0]  # 0.8 falls in (0.7, 0.8]
    assert bins["accuracy"][7] == pytest.approx(0.5) and bins["confidence"][7] == pytest.approx(0.8)


def test_temperature_scaling_recovers_the_known_temperature_lowers_ece_and_keeps_the_ranking():
    """A model whose logits are 3x the true ones is over-confident; fitted on one half, T comes out near 3,
    the ECE on the other half drops to near 0, and no row's order of classes changes."""
    _, labels, model_logits = over_confident_problem(8000)
    fit, held = slice(0, 4000), slice(4000, None)
    temperature = fit_temperature(model_logits[fit], labels[fit])
    assert temperature == pytest.approx(3.0, rel=0.1)
    raw, calibrated = tempered_softmax(model_logits[held]), tempered_softmax(model_logits[held], temperature)
    raw_ece, calibrated_ece = expected_calibration_error(raw, labels[held]), expected_calibration_error(calibrated,
                                                                                                         labels[held])
    assert raw_ece > 0.1 and calibrated_ece < 0.03 and calibrated_ece < raw_ece / 4
    np.testing.assert_array_equal(np.argsort(-raw, axis=1, kind="stable"),
                                  np.argsort(-calibrated, axis=1, kind="stable"))
    np.testing.assert_allclose(calibrated.sum(axis=1), 1.0)


def test_calibrate_records_a_lower_validation_nll():
    _, labels, model_logits = over_confident_problem(2000, seed=1)
    fitted = calibration.calibrate(model_logits, labels)
    assert fitted["n_rows"] == 2000 and fitted["nll_calibrated"] < fitted["nll_raw"]
    assert fitted["nll_raw"] == pytest.approx(calibration.mean_nll(tempered_softmax(model_logits), labels))


def test_top_mass_set_is_the_smallest_prefix_reaching_the_level():
    probabilities = np.array([[0.5, 0.3, 0.15, 0.05],  # 0.8 < 0.9 after two: three classes
                              [0.05, 0.95, 0.0, 0.0],  # the first alone
                              [0.6, 0.1, 0.3, 0.0],  # 0.6 + 0.3 reaches 0.9 exactly: two
                              [0.25, 0.25, 0.25, 0.25]])  # uniform: all four
    assert top_mass_sets(probabilities, 0.9).astype(int).tolist() == [[1, 1, 1, 0], [0, 1, 0, 0], [1, 0, 1, 0],
                                                                        [1, 1, 1, 1]]
    assert calibration.set_members(probabilities, [2, 14, 62, 225]) == [[2, 14, 62], [14], [2, 62],
                                                                          [2, 14, 62, 225]]


def test_90_set_covers_the_true_class_as_often_as_its_probability_mass_says():
    """Labels drawn from known probabilities: the sets of those probabilities hold the true class as often as
    their mean mass (>= 0.9) predicts, within 4 binomial standard errors; the 3x over-confident model's sets
    fall short of 0.9, and calibrated on other rows they reach it again."""
    true_logits, labels, model_logits = over_confident_problem(20000, seed=2)
    n = len(labels)
    truth = tempered_softmax(true_logits)
    sets = top_mass_sets(truth, 0.9)
    coverage = sets[np.arange(n), labels].mean()
    expected = (truth * sets).sum(axis=1).mean()
    tolerance = 4 * np.sqrt(expected * (1 - expected) / n)
    assert expected >= 0.9 and abs(coverage - expected) < tolerance
    over_confident = calibration.set_scores(tempered_softmax(model_logits), labels)["set90_coverage"]
    assert over_confident < 0.9 - tolerance
    temperature = fit_temperature(model_logits[: n // 2], labels[: n // 2])
    scores = calibration.set_scores(tempered_softmax(model_logits[n // 2:], temperature), labels[n // 2:])
    assert scores["set90_coverage"] >= 0.9 - 4 * np.sqrt(0.09 / (n // 2))
    assert scores["set90_mean_size"] < truth.shape[1]  # not the trivial all-classes set


def test_conformal_sets_cover_90_percent_with_fewer_groups_than_top_mass_sets():
    """Labels drawn from known probabilities: the threshold from one half gives sets that hold the true class for
    90 % of the other half (within 4 binomial standard errors), with a smaller mean size than the top-mass sets of
    the same probabilities (which over-cover); the most probable class is always in, so no set is empty."""
    true_logits, labels, _ = over_confident_problem(20000, seed=3)
    truth, half = tempered_softmax(true_logits), 10000
    threshold = set_threshold(truth[:half], labels[:half], 0.9)
    conformal = calibration.set_scores(truth[half:], labels[half:], threshold)
    top_mass = calibration.set_scores(truth[half:], labels[half:])
    assert abs(conformal["set90_coverage"] - 0.9) < 4 * np.sqrt(0.09 / half)
    assert top_mass["set90_coverage"] > conformal["set90_coverage"]
    assert conformal["set90_mean_size"] < top_mass["set90_mean_size"]
    assert calibration.set_mask(truth[half:], threshold).sum(axis=1).min() >= 1
    assert calibration.set_mask(np.array([[0.5, 0.3, 0.2]]), 0.05).tolist() == [[True, False, False]]  # 1 - p > t


def test_shuffled_training_labels_drop_generated_top1_to_chance():
    """The pipeline's own training (train_compact_cnn) on generated rock salts, diamonds and hcp metals: with
    the true labels it is far above chance (1/3) on the held-out structures; with the training labels shuffled
    it is at chance within 4 binomial standard errors, so nothing but the labels carries what it learns."""
    from tests.pdf.test_assets import prototype_library

    rng = np.random.default_rng(0)
    augmentation = profiles.Augmentation(copies_per_structure=2, qmax_range_inv_A=(18.0, 28.0),
                                         qdamp_range_inv_A=(0.01, 0.08), noise_std_range=(0.0, 0.03))
    library = profiles.profile_set(prototype_library(60, rng), PdfSettings(), augmentation, rng)
    classes = classifiers.class_labels(library["space_group"])
    labels = np.searchsorted(classes, library["space_group"])
    test = np.arange(len(labels)) >= int(0.7 * len(labels))  # the last structures (both copies of each)
    x = library["profiles"]
    settings = compact.CompactSettings(epochs=12, batch_size=32, patience=12)
    top1 = {}
    for name, fit_labels in (("true", labels[~test]), ("shuffled", rng.permutation(labels[~test]))):
        model, _ = compact.train_compact_cnn(x[~test], fit_labels, x[~test][:32], fit_labels[:32], 3, settings,
                                             log=lambda message: None)
        top1[name] = classifiers.top_k_accuracy(compact.compact_probabilities(model, x[test]), labels[test], 1)
    chance, n_test = 1 / 3, int(test.sum())
    assert top1["true"] > 0.8, top1
    assert abs(top1["shuffled"] - chance) < 4 * np.sqrt(chance * (1 - chance) / n_test), top1


TINY = {
    "ops": {
        "pdf_structures": {"config": {"space_groups": [194, 225, 227], "structures_per_group": 6, "max_atoms": 4,
                                      "variants_per_structure": 1}},
        "pdf_profiles": {"config": {"copies_per_structure": 2, "r_cut_share": 0.5}},
        "pdf_split": {"config": {"test_fraction": 0.3, "validation_fraction": 0.3}},
        "space_group_compact_cnn": {"config": {"epochs": 8, "batch_size": 8, "ensemble_members": 2}},
    }
}


def xpdfsuite_text(r_A: np.ndarray, g: np.ndarray, composition: str) -> str:
    """A .gr file as xPDFsuite writes it (header shape of the shared MgTi2O4 file: `# xPDFsuite Configuration #`,
    `[PDF]` key = value lines, `[Misc]`, a blank line, `#### start data`, `#S 1`, `#L r($\\AA$)  G($\\AA^{-2}$)`,
    then `r G` rows; values with more digits than its %g: the model grid's step, 28.5 / 208 A, has no short
    decimal form, and the round trip must be exact to float tolerance)."""
    header = ("# xPDFsuite Configuration #\n[PDF]\nwavelength = 0.1\ndataformat = Qnm\n"
              f"inputfile = {composition}_dark_corrected\nbackgroundfile = Kapton_dark_corrected_img.chi\n"
              f"mode = xray\nbgscale = 1.0\ncomposition = {composition}\noutputtype = gr\nqmaxinst = 25.0\n"
              f"qmin = 0.1\nqmax = 25.0\nrmax = 30.0\nrmin = 1.5\nrstep = {r_A[1] - r_A[0]:.10g}\nrpoly = 0.9\n"
              "[Misc]\ninputdir = /Volumes/WIN/BNL/dark_sub\nsavedir = /Volumes/WIN/BNL/dark_sub\n\n"
              "#### start data\n#S 1\n#L r($\\AA$)  G($\\AA^{-2}$)\n")
    return header + "".join(f"{r:.10g} {value:.9g}\n" for r, value in zip(r_A, g))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny run of structures -> profiles -> split -> compact CNN (calibrated on its validation subset)."""
    from resources.cluster import DaskResource
    from resources.compute import ComputeResource
    from resources.storage import MaterialsStorage

    root = tmp_path_factory.mktemp("data")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("MATERIALS_DATA", str(root))
    resources = {"compute": ComputeResource(device="cpu", seed=0, num_threads=2),
                 "dask": DaskResource(synchronous=True), "io_manager": MaterialsStorage(root=str(root))}
    result = materialize([pdf_defs.pdf_structures, pdf_defs.pdf_profiles, pdf_defs.pdf_split,
                          pdf_defs.space_group_compact_cnn], resources=resources,
                         instance=DagsterInstance.ephemeral(), run_config=TINY)
    yield root, result, resources
    monkeypatch.undo()


def test_compact_model_is_calibrated_on_validation_and_reports_ece_with_a_reliability_plot(trained):
    root, result, _ = trained
    bundle = result.output_for_node("space_group_compact_cnn")
    event = next(e for e in result.get_asset_materialization_events()
                 if e.asset_key.path[-1] == "space_group_compact_cnn")
    metadata = {key: value.value for key, value in event.materialization.metadata.items()}
    profiles_set, split = result.output_for_node("pdf_profiles"), result.output_for_node("pdf_split")
    classes = bundle["classes"]
    validation_x, validation_y = pdf_defs.dataset(profiles_set, split, classes, ("validation",))
    expected_t = fit_temperature(compact.compact_logits(bundle["model"], validation_x), validation_y)
    assert bundle["temperature"] == pytest.approx(expected_t, rel=1e-6)  # fitted on the validation rows only
    test_x, test_y = pdf_defs.dataset(profiles_set, split, classes, ("test",))
    recomputed = tempered_softmax(compact.compact_logits(bundle["model"], test_x), expected_t)
    assert metadata["ece"] == pytest.approx(expected_calibration_error(recomputed, test_y), abs=1e-3)
    assert metadata["temperature"] == pytest.approx(expected_t, rel=1e-3)
    assert metadata["reliability"].startswith("![reliability on the test set](data:image/png;base64,")
    validation_p = tempered_softmax(compact.compact_logits(bundle["model"], validation_x), expected_t)
    assert bundle["set90_threshold"] == pytest.approx(set_threshold(validation_p, validation_y, 0.9), abs=1e-9)
    card = json.loads((root / "exports" / "pdf_space_group_model" / "card.json").read_text())
    assert card["calibration"]["temperature"] == pytest.approx(expected_t)
    loaded = compact.load_model_bundle(root / "exports" / "pdf_space_group_model")
    assert loaded["temperature"] == pytest.approx(expected_t)
    assert loaded["set90_threshold"] == pytest.approx(bundle["set90_threshold"])
    assert {"ece", "set90_coverage", "set90_mean_size", "top1_accuracy"} <= set(card["test_scores"])


def test_the_served_ensemble_is_calibrated_as_one_model_and_its_card_gives_each_seeds_scores(trained):
    """ensemble_members 2: seeds 0 and 1 on the same split; the card's spread is the members' own calibrated test
    scores (each member's temperature fitted on the validation rows), and the served logits are their mean."""
    root, result, _ = trained
    bundle = result.output_for_node("space_group_compact_cnn")
    profiles_set, split = result.output_for_node("pdf_profiles"), result.output_for_node("pdf_split")
    classes, folder = bundle["classes"], root / "exports" / "pdf_space_group_model"
    validation_x, validation_y = pdf_defs.dataset(profiles_set, split, classes, ("validation",))
    test_x, test_y = pdf_defs.dataset(profiles_set, split, classes, ("test",))
    card = bundle["card"]
    assert [member["seed"] for member in card["members"]] == [0, 1]
    member_logits = []
    for k, record in enumerate(card["members"]):
        member = compact.load_model_bundle(folder, member=k)
        member_logits.append(compact.compact_logits(member["model"], test_x))
        temperature = fit_temperature(compact.compact_logits(member["model"], validation_x), validation_y)
        assert record["calibration"]["temperature"] == pytest.approx(temperature, rel=1e-6)
        calibrated = tempered_softmax(member_logits[-1], temperature)
        assert record["test_scores"]["ece"] == pytest.approx(expected_calibration_error(calibrated, test_y), abs=1e-9)
    np.testing.assert_allclose(compact.compact_logits(bundle["model"], test_x), np.mean(member_logits, axis=0),
                               atol=1e-5)
    spread = card["member_spread"]["top1_accuracy"]
    values = [record["test_scores"]["top1_accuracy"] for record in card["members"]]
    assert spread["values"] == values and spread["mean"] == pytest.approx(np.mean(values))
    assert spread["sd"] == pytest.approx(np.std(values, ddof=1))


def test_generated_test_profiles_written_as_gr_files_get_the_probabilities_the_evaluation_computed(trained):
    """Train/serve parity: each test profile of the run, written as an xPDFsuite .gr file and dropped into
    raw/pdf/measured/, comes out of space_group_predictions (model: compact) with the calibrated probabilities
    the classifier asset computed for it on the test set, and with the 90 % set those probabilities give."""
    root, result, resources = trained
    bundle = result.output_for_node("space_group_compact_cnn")
    profiles_set = result.output_for_node("pdf_profiles")
    rows, expected = bundle["test_rows"], bundle["test_probabilities"]
    assert len(rows) == len(expected) > 0
    raw = compact.compact_probabilities(bundle["model"], profiles_set["profiles"][rows])
    assert np.abs(raw - expected).max() > 1e-3  # the temperature matters: serving without it would fail the check
    folder = root / "raw" / "pdf" / "measured"
    folder.mkdir(parents=True)
    names = [f"test_{i:03d}.gr" for i in range(len(rows))]
    for name, row in zip(names, rows):
        (folder / name).write_text(xpdfsuite_text(MODEL_GRID_A, profiles_set["profiles"][row], "MgTi2O4"))
    served = materialize([pdf_defs.space_group_predictions], instance=DagsterInstance.ephemeral(),
                         resources={k: resources[k] for k in ("compute", "io_manager")},
                         run_config={"ops": {"space_group_predictions": {"config": {"model": "compact"}}}})
    table = served.output_for_node("space_group_predictions")
    classes = bundle["classes"]
    assert len(table) == len(names) * len(classes) and (table["model_id"] == bundle["model_id"]).all()
    wide = table.pivot(index="file", columns="space_group", values="probability").loc[names, classes]
    np.testing.assert_allclose(wide.to_numpy(), expected, atol=1e-6)
    sizes = table.groupby("file")["set90_size"].first().loc[names].to_numpy()
    assert bundle["set90_threshold"] is not None
    assert sizes.tolist() == calibration.set_mask(expected, bundle["set90_threshold"]).sum(axis=1).tolist()
    # each seed's network's first group, as the ensemble's members rank the same profiles
    firsts = np.stack([compact.compact_logits(network, profiles_set["profiles"][rows]).argmax(1)
                       for network in bundle["model"].members], axis=1)
    expected_firsts = [", ".join(structures.space_group_label(classes[column]) for column in row) for row in firsts]
    assert table[table["rank"] == 1].set_index("file").loc[names, "members_first"].tolist() == expected_firsts
    ambiguous = table[(table["rank"] == 1) & (table["set90_size"] > 1)]
    assert ambiguous["set90_note"].str.startswith("cannot tell").all()
    exported = pd.read_csv(root / "exports" / "space_group_predictions.csv")
    assert {"in_set90", "set90_size", "set90", "set90_note"} <= set(exported.columns)


def test_top_k_table_names_the_90_set_and_says_when_groups_cannot_be_told_apart():
    probabilities = np.array([[0.55, 0.40, 0.05], [0.02, 0.03, 0.95]])
    table = measured.top_k_table(["layered.gr", "cubic.gr"], probabilities, [14, 62, 225], 2, "id-1")
    layered = table[table["file"] == "layered.gr"]
    assert layered["in_set90"].tolist() == [True, True] and (layered["set90_size"] == 2).all()
    assert layered["set90"].iloc[0] == "14 P2_1/c 0.55, 62 Pnma 0.40"
    assert layered["set90_note"].iloc[0] == "cannot tell 2 groups apart at 90%"
    cubic = table[table["file"] == "cubic.gr"]
    assert cubic["in_set90"].tolist() == [True, False] and (cubic["set90_size"] == 1).all()
    assert cubic["set90_note"].iloc[0] == "one group holds 90% of the probability"


def test_calibration_benchmark_fits_a_saved_model_on_fresh_parents_and_records_it_in_the_card(trained, tmp_path,
                                                                                               capsys):
    """--model FOLDER --parents 2 --write: the tiny run's exported model, calibrated on parents 6..7 of each group
    (the run drew 0..5) and scored on 8..9; the card then carries that temperature, and the model loads with it."""
    import shutil

    from benchmarks import pdf_calibration

    root, _, _ = trained
    folder = tmp_path / "model"
    shutil.copytree(root / "exports" / "pdf_space_group_model", folder)
    weights = (folder / compact.WEIGHTS_NAME).read_bytes()
    assert pdf_calibration.main(["--model", str(folder), "--parents", "2", "--write"]) == 0
    out = capsys.readouterr().out.splitlines()
    lines = dict(line.split(": ", 1) for line in out)
    assert out[-1].startswith("generated_test_ece: ")
    card = json.loads((folder / compact.CARD_NAME).read_text())
    record = card["calibration"]
    assert record["fitted_on"].startswith("regenerated profiles of parents 6..7 of each group")
    assert record["scored_on"] == "regenerated parents 8..9 of each group"
    assert float(lines["temperature"]) == pytest.approx(record["temperature"], abs=1e-4)
    assert float(lines["set90_threshold"]) == pytest.approx(record["set90_threshold"], abs=1e-4)
    assert int(lines["calibration_rows"]) == record["n_rows"] > 0
    assert compact.load_model_bundle(folder)["temperature"] == pytest.approx(record["temperature"])
    assert (folder / compact.WEIGHTS_NAME).read_bytes() == weights  # the weights are not touched
    unchanged = {k: v for k, v in card.items() if k != "calibration"}
    trained_card = json.loads((root / "exports" / "pdf_space_group_model" / compact.CARD_NAME).read_text())
    assert unchanged == {k: v for k, v in trained_card.items() if k != "calibration"}
    assert pdf_calibration.main(["--model", str(tmp_path / "none")]) == 2


def test_seeds_benchmark_reports_the_spread_over_training_seeds(trained, tmp_path, capsys):
    """Every flag on the tiny run's model: 2 seeds of 1 epoch on 5 fresh parents per group, scored on the next 5
    and on two measured-style files; the mean and range lines agree with the per-seed lines."""
    from benchmarks import pdf_seeds
    from tests.pdf.test_assets import write_measured_folder

    root, _, _ = trained
    model = root / "exports" / "pdf_space_group_model"
    data = write_measured_folder(tmp_path / "measured")
    assert pdf_seeds.main(["--model", str(model), "--parents", "5", "--seeds", "2", "--epochs", "1",
                           "--data", str(data)]) == 0
    out = capsys.readouterr().out.splitlines()
    lines = dict(line.split(": ", 1) for line in out)
    assert lines["measured_files_scored"] == "2"  # NaCl 225 and Si 227 are classes of the tiny run
    per_seed = [dict(part.split(" ") for part in lines[f"seed{s}_generated"].split(", ")) for s in (0, 1)]
    top1 = [float(scores["top1"]) for scores in per_seed]
    assert float(lines["generated_top1_mean"]) == pytest.approx(np.mean(top1), abs=1e-3)
    assert lines["generated_top1_range"] == f"{min(top1):.3f}-{max(top1):.3f}"
    eces = [float(scores["ece"]) for scores in per_seed]
    assert out[-1] == f"generated_ece_spread_over_seeds: {max(eces) - min(eces):.3f}"
    assert 0 <= float(lines["measured_ensemble_top1"]) <= 1
    assert pdf_seeds.main(["--model", str(tmp_path / "none")]) == 2


def test_seeds_benchmark_trains_on_prototype_types_and_scores_the_held_out_ones(trained, capsys):
    """--prototypes scores the held-out types' crystals in both arms; --train-prototypes adds the other types'
    crystals (two copies each) to training and to nothing else."""
    from assets.pdf import prototypes, variants
    from benchmarks import pdf_seeds

    root, _, _ = trained
    model = str(root / "exports" / "pdf_space_group_model")
    common = ["--model", model, "--parents", "5", "--seeds", "1", "--epochs", "1", "--prototypes", "12"]
    assert pdf_seeds.main(common) == 0
    baseline = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert pdf_seeds.main([*common, "--train-prototypes"]) == 0
    trained_on = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    crystals = prototypes.prototype_crystals([194, 225, 227], 12, 4, seed=0)  # the tiny run's generator settings
    held = pdf_seeds.held_out_types(crystals, seed=0)
    n_held = sum(variants.parent_id(c.structure_id) in held for c in crystals)
    assert baseline["prototype_test_profiles"] == trained_on["prototype_test_profiles"] == str(2 * n_held)
    assert "prototype_training_profiles" not in baseline
    assert trained_on["prototype_training_profiles"] == str(2 * (len(crystals) - n_held))
    assert int(trained_on["training_profiles"]) == int(baseline["training_profiles"]) + 2 * (len(crystals) - n_held)
    assert trained_on["validation_profiles"] == baseline["validation_profiles"]
    assert 0 <= float(trained_on["prototypes_top1_mean"]) <= float(trained_on["prototypes_top6_mean"]) <= 1
    assert pdf_seeds.main(["--model", model, "--train-prototypes"]) == 2
