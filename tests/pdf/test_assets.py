"""The whole pdf group on a tiny configuration: values, exports, quarantine and checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from dagster import DagsterInstance, materialize

from assets.pdf import compact
from assets.pdf import defs as pdf_defs

TINY = {
    "ops": {
        "pdf_structures": {"config": {"space_groups": [194, 225, 227], "structures_per_group": 5, "max_atoms": 4,
                                      "variants_per_structure": 1, "max_rejected_share": 0.5}},
        "pdf_profiles": {"config": {"copies_per_structure": 2}},
        "space_group_cnn": {"config": {"epochs": 2, "batch_size": 8}},
        "space_group_compact_cnn": {"config": {"epochs": 2, "batch_size": 8, "ensemble_members": 2}},
        "space_group_evaluation": {"config": {"qmax_inv_A": [20.0], "qdamp_inv_A": [], "uiso_A2": [],
                                              "r_max_A": [20.0], "noise_std": [0.05]}},
    }
}
def materialization_metadata(result, asset_key: str) -> dict:
    """The metadata values of one asset's materialization (numbers as numbers)."""
    event = next(e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == asset_key)
    return {key: value.value for key, value in event.materialization.metadata.items()}


ASSETS = [pdf_defs.pdf_structures, pdf_defs.pdf_profiles, pdf_defs.pdf_split, pdf_defs.space_group_cnn,
          pdf_defs.space_group_compact_cnn, pdf_defs.space_group_baseline, pdf_defs.space_group_evaluation,
          pdf_defs.space_group_predictions]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One materialization of the group, with a good and a broken CIF dropped in."""
    from pymatgen.core import Lattice, Structure
    from pymatgen.io.cif import CifWriter

    from resources.cluster import DaskResource
    from resources.compute import ComputeResource
    from resources.storage import MaterialsStorage

    root = tmp_path_factory.mktemp("data")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("MATERIALS_DATA", str(root))
    (root / "raw" / "pdf" / "structures").mkdir(parents=True)
    cif_folder = root / "raw" / "pdf" / "structures"
    rock_salt = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    CifWriter(rock_salt).write_file(cif_folder / "NaCl.cif")
    (cif_folder / "broken.cif").write_text("data_broken\n_cell_length_a oops\n")
    resources = {"compute": ComputeResource(device="cpu", seed=0, num_threads=2),
                 "dask": DaskResource(synchronous=True), "io_manager": MaterialsStorage(root=str(root))}
    result = materialize(ASSETS, resources=resources, instance=DagsterInstance.ephemeral(), run_config=TINY,
                         raise_on_error=False)
    yield root, result
    monkeypatch.undo()


def test_group_materializes_and_exports_predictions_of_the_shipped_model(tiny_run):
    root, result = tiny_run
    assert result.success
    predictions = pd.read_csv(root / "exports" / "space_group_predictions.csv")
    shipped = compact.load_model_bundle()
    assert set(predictions["file"]) == {"NaCl.gr", "Si.gr", "Mg.gr"}  # the embedded examples
    assert (predictions["source"] == "synthetic").all()
    assert (predictions["model_id"] == shipped["model_id"]).all()
    assert [member["seed"] for member in shipped["card"]["members"]] == [0, 1, 2]
    assert (predictions["model"] == "space_group_compact_cnn (shipped, mean of 3 seeds 0, 1, 2)").all()
    assert set(predictions["rank"]) == set(range(1, 7))  # top 6 of the shipped model's 8 classes
    assert (predictions["r_max_used_A"] == 30.0).all()  # the examples run to 35 A
    assert set(predictions["space_group"]) <= set(shipped["classes"])
    assert dict(zip(predictions["space_group"], predictions["space_group_symbol"]))[225] == "Fm-3m"
    assert set(predictions["composition"]) == {"NaCl", "Si", "Mg"}
    assert (predictions.groupby("file")["probability"].sum() <= 1.0 + 1e-6).all()


@pytest.mark.parametrize("choice", ["compact", "cnn"])
def test_predictions_use_a_model_trained_in_the_data_root_when_asked(tiny_run, choice, tmp_path, monkeypatch):
    root, result = tiny_run
    from resources.compute import ComputeResource
    from resources.storage import MaterialsStorage

    monkeypatch.setenv("MATERIALS_DATA", str(tmp_path))  # exports elsewhere: the run's own export stays as it was

    trained = result.output_for_node(pdf_defs.RUN_MODELS[choice])
    again = materialize([pdf_defs.space_group_predictions], instance=DagsterInstance.ephemeral(),
                        resources={"compute": ComputeResource(device="cpu"), "io_manager": MaterialsStorage(root=str(root))},
                        run_config={"ops": {"space_group_predictions": {"config": {"model": choice}}}})
    table = again.output_for_node("space_group_predictions")
    assert (table["model_id"] == trained["model_id"]).all()
    assert set(table["rank"]) == {1, 2, 3}  # this run's models know 3 classes
    if choice == "compact":  # the tiny run's compact model is an ensemble of 2 seeds, and says so
        assert (table["model"] == "space_group_compact_cnn (this data root, mean of 2 seeds 0, 1)").all()


def test_predictions_name_a_model_folder_that_is_not_there(tiny_run, tmp_path):
    root, _ = tiny_run
    from resources.compute import ComputeResource
    from resources.storage import MaterialsStorage

    with pytest.raises(FileNotFoundError, match="no compact model in"):
        materialize([pdf_defs.space_group_predictions], instance=DagsterInstance.ephemeral(),
                    resources={"compute": ComputeResource(device="cpu"), "io_manager": MaterialsStorage(root=str(root))},
                    run_config={"ops": {"space_group_predictions": {"config": {"model": str(tmp_path / "none")}}}})


def test_no_asset_writes_under_data_raw(tiny_run):
    root, _ = tiny_run
    written = sorted(p.relative_to(root).as_posix() for p in (root / "raw").rglob("*") if p.is_file())
    assert written == ["raw/pdf/structures/NaCl.cif", "raw/pdf/structures/broken.cif"]  # the test's own drops
    assert sorted(p.name for p in (root / "examples" / "pdf").glob("*.gr")) == ["Mg.gr", "NaCl.gr", "Si.gr"]


def test_profiles_are_normalised_on_the_published_grid(tiny_run):
    _, result = tiny_run
    profiles = result.output_for_node("pdf_profiles")
    n_structures = len(result.output_for_node("pdf_structures"))
    assert n_structures >= 29  # 15 generated parents, up to 15 variants, 1 CIF
    assert profiles["profiles"].shape == (2 * n_structures, 209)  # 2 jittered copies each
    assert profiles["r_A"][0] == 1.5 and profiles["r_A"][-1] == 30.0
    assert profiles["profiles"].min() == 0.0 and profiles["profiles"].max() == pytest.approx(1.0)


def test_split_is_stratified_and_shared(tiny_run):
    _, result = tiny_run
    split = result.output_for_node("pdf_split")
    assert set(split["subset"]) == {"train", "validation", "test"}
    assert len(split) == len(result.output_for_node("pdf_structures"))  # one row per structure
    assert (split.groupby("parent_id")["subset"].nunique() == 1).all()  # a variant goes where its parent goes
    assert split.loc[split["subset"] == "test", "space_group"].nunique() == 3
    baseline = result.output_for_node("space_group_baseline")
    cnn = result.output_for_node("space_group_cnn")
    assert baseline["metrics"]["n_test"] == cnn["metrics"]["n_test"] == 2 * (split["subset"] == "test").sum()


def test_broken_cif_is_quarantined_and_the_rest_goes_on(tiny_run):
    root, result = tiny_run
    quarantine = pd.read_csv(root / "quarantine" / "pdf.csv")
    assert quarantine["source"].tolist() == ["raw/pdf/structures/broken.cif"]  # user files only, once
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["cif_rejected_share"] is True  # 1 of 2 user CIFs rejected: at the bound 0.5
    assert checks["measured_rejected_share"] is True  # no user .gr files: nothing to reject
    frame = result.output_for_node("pdf_structures")
    assert frame.loc[frame["structure_id"] == "cif-NaCl", "space_group"].tolist() == [225]
    metadata = materialization_metadata(result, "pdf_structures")
    assert metadata["n_user_records"] == 2 and metadata["n_rejected"] == 1  # the generated crystals do not count


def test_evaluation_sweeps_every_requested_condition(tiny_run):
    root, result = tiny_run
    sweep = result.output_for_node("space_group_evaluation")
    assert set(zip(sweep["parameter"], sweep["value"])) == {("qmax_inv_A", 20.0), ("r_max_A", 20.0),
                                                            ("noise_std", 0.05)}
    assert set(sweep["model"]) == {"cnn", "compact", "baseline"}
    assert sweep["top1_accuracy"].between(0, 1).all()
    assert (root / "exports" / "space_group_robustness.csv").exists()


def test_science_checks_report_what_the_models_did(tiny_run):
    """The checks that carry the science say what the export and the metrics say: the examples in the shipped
    model's top 2 (it must pass: that model is the one users get), each CNN against the baseline (the tiny
    run's models, 3 classes and 2 epochs, are not asserted to beat it)."""
    root, result = tiny_run
    from assets.pdf.measured import examples_top_k_hits

    predictions = pd.read_csv(root / "exports" / "space_group_predictions.csv")
    hits = examples_top_k_hits(predictions, 2)
    assert sorted(hits) == ["Mg.gr", "NaCl.gr", "Si.gr"]
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    examples = evaluations["examples_in_top2"]
    assert examples.passed and all(hits.values()), hits
    assert examples.metadata["n_in_top2"].value == sum(hits.values())
    cnn = result.output_for_node("space_group_cnn")["metrics"]["top1_accuracy"]
    baseline = result.output_for_node("space_group_baseline")["metrics"]["top1_accuracy"]
    assert evaluations["cnn_beats_baseline"].passed == (cnn > baseline)
    compact_top1 = result.output_for_node("space_group_compact_cnn")["metrics"]["top1_accuracy"]
    assert evaluations["compact_beats_baseline"].passed == (compact_top1 > baseline)
    metadata = materialization_metadata(result, "space_group_evaluation")
    assert metadata["cnn_top1_accuracy"] == pytest.approx(cnn, rel=1e-3)
    assert metadata["baseline_top2_accuracy"] == pytest.approx(
        result.output_for_node("space_group_baseline")["metrics"]["top2_accuracy"], rel=1e-3)


def prototype_library(n_per_class: int, rng):
    """Rock salts (225), diamonds (227) and hcp metals (194) of random elements and cell sizes."""
    from assets.pdf.structures import diamond, hexagonal_close_packed, rock_salt

    z = lambda: int(rng.choice([3, 8, 11, 12, 13, 14, 16, 17, 19, 20, 22, 26, 28, 29, 30, 38]))  # noqa: E731
    crystals = []
    for i in range(n_per_class):
        crystals.append(rock_salt(rng.uniform(4.0, 6.5), z(), z(), f"rs{i}"))
        crystals.append(diamond(rng.uniform(3.6, 6.0), z(), f"dia{i}"))
        a = rng.uniform(2.5, 3.8)
        crystals.append(hexagonal_close_packed(a, a * rng.uniform(1.55, 1.70), z(), f"hcp{i}"))
    return crystals


def examples_assertion(probabilities_of, train_x, train_y, test_x, test_y, examples, classes) -> list[str]:
    """What the end-to-end assertion demands of a model, as a list of failures (empty: it passes):
    NaCl / Si / Mg in its top 2, and held-out top-1 accuracy >= 0.6 (chance 1/3; 0.72 measured)."""
    from assets.pdf import classifiers, measured

    failures = []
    table = measured.top_k_table(examples.names, probabilities_of(examples.inputs), classes, 3, "m", None, "synthetic")
    missed = [name for name, hit in measured.examples_top_k_hits(table, 2).items() if not hit]
    if missed:
        failures.append(f"not in the top 2: {missed}")
    accuracy = classifiers.top_k_accuracy(probabilities_of(test_x), test_y, 1)
    if accuracy < 0.6:
        failures.append(f"held-out top-1 {accuracy:.2f} < 0.6")
    return failures


def test_the_examples_assertion_passes_a_trained_model_and_fails_a_shuffled_label_one(tmp_path):
    """The pipeline's own CPU model (train_compact_cnn, a few seconds) on an augmented prototype library:
    trained on the true labels it meets the assertion; trained on shuffled labels it fails it."""
    from assets.pdf import classifiers, measured, profiles
    from assets.pdf.calculator import PdfSettings

    rng = np.random.default_rng(0)
    augmentation = profiles.Augmentation(copies_per_structure=2, qmax_range_inv_A=(18.0, 28.0),
                                         qdamp_range_inv_A=(0.01, 0.08), uiso_range_A2=(0.002, 0.012),
                                         noise_std_range=(0.0, 0.03))
    library = profiles.profile_set(prototype_library(40, rng), PdfSettings(), augmentation, rng)
    classes = classifiers.class_labels(library["space_group"])
    labels = np.searchsorted(classes, library["space_group"])
    test = np.arange(len(labels)) >= int(0.75 * len(labels))  # the last quarter of the structures
    measured.write_embedded_examples(tmp_path, np.random.default_rng(1))
    examples = measured.read_measured_folder(tmp_path)
    x = library["profiles"]
    settings = compact.CompactSettings(epochs=15, batch_size=32, patience=15)
    outcomes = {}
    for name, fit_labels in (("true", labels[~test]), ("shuffled", rng.permutation(labels[~test]))):
        model, _ = compact.train_compact_cnn(x[~test], fit_labels, x[~test][:16], fit_labels[:16], 3, settings,
                                             log=lambda message: None)
        outcomes[name] = examples_assertion(lambda rows: compact.compact_probabilities(model, rows),
                                            x[~test], fit_labels, x[test], labels[test], examples, classes)
    assert outcomes["true"] == []
    assert outcomes["shuffled"], outcomes  # at least one failure


def write_measured_folder(folder, with_labels: bool = True):
    """Two files in the styles of the shared measured set: a PDFgetN file of NaCl ending at 20 A (neutron)
    and an xPDFsuite file of Si to 40 A; plus a labels CSV whose extra columns must be ignored."""
    from assets.pdf.calculator import PdfSettings, compute_pdfs
    from assets.pdf.measured import reference_crystals

    nacl, si, _ = reference_crystals()
    folder.mkdir(parents=True, exist_ok=True)
    r = np.round(np.arange(1, 2001) * 0.01, 2)
    g = compute_pdfs([nacl], PdfSettings(r_max_A=20.0, weighting="neutron"), r)[0]
    (folder / "nacl_neutron.gr").write_text(
        "# Npoints\n#         2000\n##### start data\n#O0 rg_int sig_rg_int low_int sig_low_int rmax rhofit\n"
        "#S 1 - PDF from PDFgetN\n#P0    3.87291    0.30411    0.59852    0.00944    1.50  0.0783\n#L r G(r) dr dG(r)\n"
        + "".join(f"{x:7.3f}{y:11.3f}{0.0:6.1f}{0.0171:11.4f}\n" for x, y in zip(r, g)))
    r = np.round(np.arange(0, 4001) * 0.01, 2)
    g = compute_pdfs([si], PdfSettings(r_max_A=40.0), r)[0]
    (folder / "si_xray.gr").write_text(
        "# xPDFsuite Configuration #\n[PDF]\nwavelength = 0.1\nmode = xray\ncomposition = Si\nqmax = 25.0\n\n"
        "#### start data\n#S 1\n#L r($\\AA$)  G($\\AA^{-2}$)\n" + "".join(f"{x:g} {y:g}\n" for x, y in zip(r, g)))
    if with_labels:
        (folder / "measured_labels.csv").write_text(
            "file,material,space_group,radiation\nnacl_neutron.gr,NaCl,225,neutron\nsi_xray.gr,Si,227,xray\n")
    return folder


def test_measured_benchmark_scores_files_through_the_pipeline(tmp_path, capsys):
    from benchmarks import pdf_measured

    folder = write_measured_folder(tmp_path / "measured")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert pdf_measured.main(["--data", str(folder)]) == 0
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert lines["measured_files"] == "2" and lines["measured_files_read"] == "2"
    assert lines["model_id"] == compact.load_model_bundle()["model_id"]
    assert "true 225" in lines["nacl_neutron.gr"] and "r 1.5-20 A" in lines["nacl_neutron.gr"]
    shares = [float(lines[f"measured_top{k}_share"]) for k in (1, 2, 6)]
    assert shares == sorted(shares) and shares[2] == 1.0  # 8 classes: both in the top 6
    # each file's 90 % set is printed, and the two summary lines agree with the per-file lines
    names = ("nacl_neutron.gr", "si_xray.gr")
    holds = ["holds the true group" in lines[name] for name in names]
    assert all(("misses the true group" in lines[name]) != hit for name, hit in zip(names, holds))
    assert float(lines["measured_set90_coverage"]) == pytest.approx(sum(holds) / 2)
    sizes = [len(lines[name].split("90 % set [")[1].split("]")[0].split(",")) for name in names]
    assert float(lines["measured_set90_mean_size"]) == pytest.approx(sum(sizes) / 2, abs=0.005)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # the user's files untouched


def test_measured_benchmark_takes_a_labels_file_and_a_model_folder(tiny_run, tmp_path, capsys):
    from benchmarks import pdf_measured

    root, result = tiny_run
    folder = write_measured_folder(tmp_path / "measured", with_labels=False)
    labels = tmp_path / "labels.csv"
    labels.write_text("file,space_group\nnacl_neutron.gr,225\nsi_xray.gr,227\nmissing.gr,194\n")
    model = root / "exports" / "pdf_space_group_model"
    assert pdf_measured.main(["--data", str(folder), "--labels", str(labels), "--model", str(model)]) == 0
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert lines["model_id"] == result.output_for_node("space_group_compact_cnn")["model_id"]
    assert lines["measured_files"] == "3" and lines["measured_files_read"] == "2"
    assert "NOT READ" in lines["missing.gr"]  # counts as a miss
    assert float(lines["measured_top6_share"]) <= 0.667  # 2 of 3 at most: the missing file cannot be a hit
    # the run's model is an ensemble of 2 seeds: each scored alone, mean ± sd (values) per figure
    assert lines["members_scored"] == "2"
    mean, rest = lines["members_measured_top1_share"].split(" ± ")
    values = [float(v) for v in rest.split("(")[1].rstrip(")").split(", ")]
    assert len(values) == 2 and float(mean) == pytest.approx(sum(values) / 2, abs=1e-3)
    assert all(min(abs(v - k / 3) for k in (0, 1, 2)) < 1e-3 for v in values)  # of 3 files, the missing one a miss
    with pytest.raises(FileNotFoundError, match="measured_labels.csv"):
        pdf_measured.main(["--data", str(folder)])


def test_models_benchmark_runs_on_a_run_and_on_random_rows(tiny_run, capsys):
    from benchmarks import pdf_models

    root, result = tiny_run
    assert pdf_models.main(["--data-root", str(root), "--samples", "32", "--batch-size", "16",
                            "--shipped-parents", "1"]) == 0
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert {"compact_cnn_test_top1_accuracy", "published_cnn_test_top1_accuracy", "baseline_test_top2_accuracy",
            "compact_cnn_test_ece", "compact_over_published_train_speed"} <= set(lines)
    assert "published_cnn_test_ece" not in lines  # only the compact model is calibrated
    members = result.output_for_node("space_group_compact_cnn")["card"]["members"]
    top1 = [member["test_scores"]["top1_accuracy"] for member in members]
    assert lines["compact_cnn_members_test_top1_accuracy"].startswith(f"{np.mean(top1):.3f} ± ")
    compact_metrics = result.output_for_node("space_group_compact_cnn")["metrics"]
    assert float(lines["compact_cnn_test_ece"]) == pytest.approx(compact_metrics["ece"], abs=5e-4)
    # the shipped model on one fresh parent per group (and its variant), two copies each: up to 8 x 2 x 2 rows
    assert 0 < int(lines["shipped_generated_test_profiles"]) <= 32
    assert 0 <= float(lines["shipped_generated_test_ece"]) <= 1
    assert float(lines["shipped_generated_test_top1"]) <= float(lines["shipped_generated_test_top2"])
    assert pdf_models.main(["--samples", "32", "--batch-size", "16", "--shipped-parents", "0"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert not any(line.startswith("shipped_") for line in out)
    assert out[-1].startswith("compact_over_published_train_speed: ") and float(out[-1].split(": ")[1]) > 0
    assert pdf_models.main(["--data-root", str(root / "nothing")]) == 2
