"""A real Dask cluster (scheduler + two single-threaded workers on 127.0.0.1) runs a diffraction
simulation partition and returns exactly the arrays of the synchronous local run."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from dagster import DagsterInstance, materialize

from assets.diffraction.defs import diffraction_patterns, simulation_requests
from assets.diffraction.requests import partition_key
from resources.cluster import DaskResource

REPO_ROOT = Path(__file__).resolve().parents[2]
DASK = Path(sys.executable).with_name("dask")
WORKERS = 2
START_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(command: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    with open(log, "wb") as handle:
        return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    """SIGTERM the process group (Dask shuts down cleanly), SIGKILL if it lingers."""
    for sig, wait_s in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        if process.poll() is not None:
            return
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=wait_s)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            continue


@pytest.fixture
def dask_cluster(tmp_path):
    """scheduler address of a `dask scheduler` with WORKERS `dask worker` processes."""
    from distributed import Client

    address = f"tcp://127.0.0.1:{free_port()}"
    port = address.rsplit(":", 1)[1]
    processes = [start([str(DASK), "scheduler", "--host", "127.0.0.1", "--port", port, "--dashboard-address", ":0"],
                       tmp_path / "scheduler.log")]
    try:
        processes += [
            start([str(DASK), "worker", address, "--nworkers", "1", "--nthreads", "1", "--host", "127.0.0.1",
                   "--dashboard-address", ":0", "--name", f"worker{i}"], tmp_path / f"worker{i}.log")
            for i in range(WORKERS)
        ]
        with Client(address, timeout=START_TIMEOUT_S) as client:
            client.wait_for_workers(WORKERS, timeout=START_TIMEOUT_S)
        yield address
    finally:
        for process in reversed(processes):
            stop(process)


def simulate_partition(storage_root: Path, dask: DaskResource, key: str):
    """materialize() of one diffraction_patterns partition with this Dask resource."""
    from resources.compute import ComputeResource
    from resources.storage import MaterialsStorage

    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(simulation_requests.name, [key])
    result = materialize(
        [diffraction_patterns], partition_key=key, instance=instance,
        resources={"dask": dask, "compute": ComputeResource(device="cpu"),
                   "io_manager": MaterialsStorage(root=str(storage_root))},
        run_config={"ops": {"diffraction_patterns": {"config": {"chunk_size": 15}}}},
    )
    assert result.success
    return result


def test_cluster_run_of_a_partition_equals_the_local_run(data_root, dask_cluster):
    requests = data_root / "requests"
    requests.mkdir()
    path = requests / "cluster.yaml"
    path.write_text("phases: [Pb, CsI, PbI2]\norientations_per_phase: 40\nseeds: [5, 6]\n")
    key = partition_key(path)
    cluster = simulate_partition(data_root / "cluster", DaskResource(scheduler_address=dask_cluster), key)
    local = simulate_partition(data_root / "local", DaskResource(synchronous=True), key)

    cluster_tree, local_tree = (r.output_for_node("diffraction_patterns") for r in (cluster, local))
    metadata = cluster.asset_materializations_for_node("diffraction_patterns")[0].metadata
    assert metadata["dask"].value == dask_cluster and metadata["chunks"].value == 3 * 2 * 3  # 40 / 15 -> 3 chunks
    arrays = sorted(k for k in local_tree if k.startswith("1d/"))
    assert arrays == sorted(k for k in cluster_tree if k.startswith("1d/"))
    for name in arrays:
        np.testing.assert_array_equal(cluster_tree[name], local_tree[name], err_msg=name)
    assert cluster_tree["1d/x_px"].shape == (3 * 40 * 2, 147)
    assert cluster_tree["metadata/phases"] == local_tree["metadata/phases"] == ["Pb", "CsI", "PbI2"]
