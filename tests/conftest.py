"""Shared fixtures: every test gets its own data root and Dagster instance."""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# The fast loop (`./dev.sh test-fast` = `pytest -m "not slow"`) runs the unit tests of the science and the readers.
# A test is `slow` when it, or a fixture it uses, materializes assets through Dagster (a whole pipeline on tiny
# configs: tens of seconds each), or when it is listed here with the reason (servers, subprocess runs of the
# benchmarks or the CLI, or a unit test that trains or fits for long; a key is a file or a file::test-name prefix).
# docs/testing.md has the measured times.
SLOW_PATHS = {
    "tests/platform/test_demo_cli.py": "runs `./dev.sh demo`: every pipeline, 3-4 min",
    "tests/platform/test_ui_browser.py": "dagster dev + headless Chromium",
    "tests/platform/test_ui_graphql.py": "dagster dev, queried over /graphql",
    "tests/platform/test_postgres_instance.py": "a throwaway PostgreSQL server and a job on it",
    "tests/platform/test_dask_cluster.py": "a real dask scheduler with two workers",
    "tests/platform/test_gpu_benchmark.py": "benchmarks.gpu --quick in a subprocess",
    "tests/platform/test_mutation_benchmark.py": "mutmut runs on toy projects",
    "tests/platform/test_definitions.py": "loads every pipeline's definitions (all heavy imports)",
    "tests/reliability/test_killed_and_concurrent_runs.py": "SIGKILLed and concurrent runs of a job",
    "tests/reliability/test_request_burst.py": "a burst of 1,000 request files through the sensor",
    "tests/eis/test_real_benchmark.py": "benchmarks.eis_real in subprocesses (CV and fits on tiny files)",
    "tests/electrodes/test_benchmark.py": "benchmarks.electrodes_real on tiny files (trains every model)",
    "tests/cycling/test_real_benchmark.py": "benchmarks.cycling_real on tiny folders (trains, ships and scores)",
    "tests/cycling/test_cycling_job.py": "runs cycling_job in process (intake, summary, predictions)",
    # Unit tests that train or cross-validate for 9-36 s each (wall time at load 10-13, 2026-12-07, docs/testing.md).
    "tests/electrodes/test_network.py::test_torch_backend_trains_saves_and_reloads": "trains the Keras network",
    "tests/electrodes/test_network.py::test_network_learns_a_linear_law": "trains the Keras network",
    "tests/electrodes/test_models.py::test_the_network_stays_bounded": "trains the Keras network",
    "tests/cycling/test_batch_cv.py::test_each_figure_of_the_fit": "refits every model of a batch CV",
    "tests/cycling/test_batch_cv.py::test_a_batch_fingerprint": "refits every model of a batch CV",
    "tests/cycling/test_encoder.py::test_pretraining_lowers_the_loss": "pretrains the encoder",
    "tests/cycling/test_assets.py::test_selection_and_intervals_from_shuffled": "selects a model over CV folds",
    "tests/cycling/test_assets.py::test_the_selected_model_has_skill": "selects a model over CV folds",
    "tests/cycling/test_assets.py::test_baselines_have_skill": "CV of every baseline",
    "tests/cycling/test_lifemodel.py::test_a_choice_at_the_edge_of_the_grid": "CV over a regularisation grid",
    "tests/cycling/test_lifemodel.py::test_hyperparameters_never_see_a_test_set": "CV over a regularisation grid",
    "tests/cycling/test_lifemodel.py::test_cells_of_unknown_life_are_predicted": "CV over a regularisation grid",
    "tests/cycling/test_life_predictions.py::test_without_a_trained_model": "loads and runs the shipped model",
    "tests/pdf/test_calibration.py::test_shuffled_training_labels": "trains the compact CNN twice",
    "tests/pdf/test_assets.py::test_the_examples_assertion": "trains a classifier twice",
    "tests/pdf/test_classifiers.py::test_cnn_stops_when_its_wall_clock_budget": "trains the CNN to its budget",
    "tests/eis/test_uncertainty.py::test_random_restarts_only_lower_costs": "batched multi-start fits",
    "tests/eis/test_uncertainty.py::test_95_percent_intervals": "fits 180 noisy spectra",
    "tests/eis/test_evidence.py::test_the_true_circuit_fits_noise_free": "fits nine circuits to 27 spectra",
    "tests/eis/test_evidence.py::test_each_circuits_evidence_is_its_one_start_fit": "fits nine circuits per spectrum",
    "tests/eis/test_evidence.py::test_evidence_fits_use_one_naive_start": "fits nine circuits per spectrum",
    "tests/eis/test_fitting.py::test_gradient_optimizers_reduce_the_residual": "Adam and LBFGS to their caps",
    "tests/electrodes/test_network.py::test_three_hidden_leaky_relu_layers": "trains the Keras network",
    "tests/reliability/test_reader_fuzz.py::test_cif_folder_keeps_every_valid_cif": "fuzzes a CIF folder",
    "tests/reliability/test_reader_fuzz.py::test_an_accepted_request_simulates": "simulates fuzzed requests",
}


def _materializes(function) -> bool:
    """Whether a test or fixture (not one of this file's, whose docstrings name materialize) calls materialize."""
    try:
        return inspect.getsourcefile(function) != __file__ and "materialize" in inspect.getsource(function)
    except (OSError, TypeError):
        return False


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: materializes assets, starts servers or subprocess runs; left out "
                                       "of the fast loop (`./dev.sh test-fast`, i.e. -m 'not slow')")


def pytest_collection_modifyitems(config, items):
    root = Path(str(config.rootpath))
    for item in items:
        node = Path(str(item.path)).relative_to(root).as_posix() + "::" + item.name
        reason = next((why for prefix, why in SLOW_PATHS.items() if node.startswith(prefix)), None)
        fixtures = getattr(item, "_fixtureinfo", None)
        definitions = [d.func for defs in (fixtures.name2fixturedefs.values() if fixtures else []) for d in defs]
        uses_dagster = "test_resources" in getattr(item, "fixturenames", ())  # the resources materialize() takes
        if reason is None and (uses_dagster or _materializes(getattr(item, "function", None))
                               or any(map(_materializes, definitions))):
            reason = "materializes assets through Dagster"
        if reason:
            item.add_marker(pytest.mark.slow(reason=reason))


@pytest.fixture(autouse=True, scope="session")
def benchmark_results_elsewhere(tmp_path_factory):
    """Benchmarks a test runs (in process or as a subprocess) write their results JSON to a temporary folder.

    benchmarks.results reads MATERIALS_BENCHMARK_RESULTS; without it a test's tiny run would replace the
    committed benchmarks/results/<name>.json the docs are rendered from.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MATERIALS_BENCHMARK_RESULTS", str(tmp_path_factory.mktemp("benchmark_results")))
        yield


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    """An empty MATERIALS_DATA root for one test."""
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("MATERIALS_DATA", str(root))
    return root


@pytest.fixture
def test_resources(data_root):
    """Resources for materialize(): CPU, synchronous Dask, storage under the test's data root."""
    from resources.cluster import DaskResource
    from resources.compute import ComputeResource
    from resources.storage import MaterialsStorage

    return {
        "compute": ComputeResource(device="cpu", seed=0, num_threads=2),
        "dask": DaskResource(synchronous=True),
        "io_manager": MaterialsStorage(root=str(data_root)),
    }


@pytest.fixture(autouse=True)
def isolated_defs_state_storage():
    """Each test starts with no "current" Dagster defs-state storage.

    A DagsterInstance that is entered and never exited (DagsterInstance.get(), sensor
    contexts) leaves its storage as the process-wide current one; after that instance is
    garbage-collected, the next materialize() in the same process fails to load definitions.
    """
    from dagster._core.storage.defs_state.base import set_defs_state_storage

    with set_defs_state_storage(None):
        yield
