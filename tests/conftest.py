"""Shared fixtures: every test gets its own data root and Dagster instance."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


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
