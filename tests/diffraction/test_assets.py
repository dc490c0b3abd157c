"""The asset graph on tiny configs: embedded default end to end, request partitions, quarantine."""

import logging

import numpy as np
import pandas as pd
from dagster import DagsterInstance, materialize

from assets.diffraction import defs as diffraction
from assets.diffraction.requests import partition_key

TINY = {
    "diffraction_default_patterns": {"config": {"orientations_per_phase": 60}},
    "phase_cnn": {"config": {"epochs": 4, "batch_size": 32}},
    "experimental_maps": {"config": {"synthetic_rows": 6, "synthetic_cols": 5}},
    "prediction_evaluation": {"config": {"reference_orientations": 40}},
}
DEFAULT_PATH = [
    diffraction.diffraction_default_patterns,
    diffraction.phase_cnn,
    diffraction.experimental_maps,
    diffraction.phase_predictions,
    diffraction.prediction_evaluation,
]


def test_embedded_default_runs_end_to_end_and_exports_probability_maps(data_root, test_resources):
    result = materialize(DEFAULT_PATH, resources=test_resources, instance=DagsterInstance.ephemeral(), run_config={"ops": TINY})
    assert result.success
    cnn = result.output_for_node("phase_cnn")
    metadata = result.asset_materializations_for_node("phase_cnn")[0].metadata
    assert 0.0 <= metadata["test_accuracy"].value <= 1.0 and "data:image/png" in metadata["confusion_matrix"].value
    split = cnn["split"]
    assert set(split["split"]) == {"train", "test"} and len(split) == 4 * 60

    with np.load(data_root / "exports" / "synthetic_map_probability_pred.npz") as archive:
        assert archive["pred"].shape == (6, 5, 4)
        np.testing.assert_allclose(archive["pred"].sum(axis=-1), 1.0, rtol=1e-4)
        assert archive["phases"].tolist() == cnn["phases"] and str(archive["cnn_id"]) == cnn["cnn_id"]

    report = pd.read_csv(data_root / "exports" / "diffraction_prediction_evaluation.csv")
    assert set(report["phase"]) <= set(cnn["phases"]) and report["pixels"].sum() == 30
    assert set(report["source"]) == {"synthetic"}
    # Chance is 0.25 (four phases); this tiny training (60 orientations, 4 epochs) measured 0.43 (0.33 with 24 and 2).
    assert report["map_accuracy"].iloc[0] >= 0.34
    checks = result.get_asset_check_evaluations()
    assert [c.passed for c in checks] == [True]

    # The map sensor's run: same CNN, same map -> nothing is predicted again.
    again = materialize(DEFAULT_PATH, selection=[diffraction.experimental_maps, diffraction.phase_predictions],
                        resources=test_resources, instance=DagsterInstance.ephemeral(),
                        run_config={"ops": {"experimental_maps": TINY["experimental_maps"]}})
    metadata = again.asset_materializations_for_node("phase_predictions")[0].metadata
    assert (metadata["maps_predicted"].value, metadata["maps_unchanged"].value) == (0, 1)


def test_bad_experimental_files_are_quarantined_and_the_blocking_check_fails(data_root, test_resources):
    folder = data_root / "raw" / "diffraction" / "experimental"
    folder.mkdir(parents=True)
    np.savez(folder / "good.npz", x=np.linspace(0.1, 1.6, 147), y=np.random.default_rng(0).random((3, 4, 147)))
    np.savez(folder / "wrong_keys.npz", q=np.zeros(147))
    config = {"experimental_maps": {"config": {"max_rejected_share": 0.2}}}
    instance = DagsterInstance.ephemeral()
    result = materialize(
        [diffraction.experimental_maps], resources=test_resources,
        instance=instance, run_config={"ops": config}, raise_on_error=False,
    )
    maps = result.output_for_node("experimental_maps")
    assert list(maps) == ["good"] and maps["good"]["y"].shape == (3, 4, 147)  # user maps: no synthetic one
    quarantine = pd.read_csv(data_root / "quarantine" / "diffraction.csv")
    assert quarantine["source"].tolist() == ["raw/diffraction/experimental/wrong_keys.npz"]
    assert "missing key(s) ['x', 'y']" in quarantine["reason"][0]
    [check] = result.get_asset_check_evaluations()
    assert not check.passed and check.metadata["rejected_share"].value == 0.5
    warnings = [entry.user_message for entry in instance.all_logs(result.run_id) if entry.level == logging.WARNING]
    assert any("raw/diffraction/experimental/wrong_keys.npz: 1 of 1 records rejected" in line for line in warnings)


def test_request_partition_is_simulated_and_trains_the_cnn(data_root, test_resources):
    requests = data_root / "requests"
    requests.mkdir()
    path = requests / "two_phases.yaml"
    path.write_text("phases: [Pb, CsI]\norientations_per_phase: 16\nseeds: [3, 4]\n")
    key = partition_key(path)
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(diffraction.simulation_requests.name, [key])
    simulated = materialize([diffraction.diffraction_patterns], partition_key=key, resources=test_resources, instance=instance)
    tree = simulated.output_for_node("diffraction_patterns")
    assert tree["metadata/phases"] == ["Pb", "CsI"] and tree["1d/x_px"].shape == (2 * 16 * 2, 147)
    assert (data_root / "storage" / "diffraction_patterns" / f"{key}.h5").is_file()

    config = {
        "diffraction_default_patterns": {"config": {"orientations_per_phase": 2}},
        "phase_cnn": {"config": {"request_partitions": [key], "epochs": 1}},
    }
    trained = materialize(
        [diffraction.diffraction_default_patterns, diffraction.phase_cnn],
        resources=test_resources, instance=instance, run_config={"ops": config},
    )
    cnn = trained.output_for_node("phase_cnn")
    assert cnn["phases"] == ["Pb", "CsI"] and cnn["training"]["source"] == [key]
    assert len(cnn["split"]) == 64
