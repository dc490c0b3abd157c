"""Fault-injection harness shared by the reliability tests and `python -m benchmarks.reliability`.

It is also a tiny Dagster code location (`defs` below): the real `diffraction_patterns`
asset with the real storage IO manager, an in-process executor and synchronous Dask,
so a `dagster asset materialize -m tests.reliability.harness` subprocess is one
process group that a SIGKILL takes down at once, and loading it does not depend on
the other pipelines' half-finished code.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from dagster import Definitions, in_process_executor

from assets.diffraction.defs import diffraction_patterns, simulation_requests
from resources.cluster import DaskResource
from resources.compute import ComputeResource
from resources.storage import MANIFEST_SUFFIX, MaterialsStorage, tree_digest

REPO_ROOT = Path(__file__).resolve().parents[2]
DAGSTER = str(Path(sys.executable).with_name("dagster"))
PATTERNS_FOLDER = Path("storage") / "diffraction_patterns"

defs = Definitions(
    assets=[diffraction_patterns],
    resources={
        "compute": ComputeResource(device="cpu", seed=0, num_threads=1),
        "dask": DaskResource(synchronous=True),
        "io_manager": MaterialsStorage(),
    },
    executor=in_process_executor,
)


def write_request(data_root: Path, name: str, orientations_per_phase: int, seeds: list[int]) -> Path:
    """A request file in <data_root>/requests (all four default phases)."""
    folder = data_root / "requests"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(f"orientations_per_phase: {orientations_per_phase}\nseeds: {seeds}\n")
    return path


def prepare_request(base: Path, name: str, orientations_per_phase: int, seeds: list[int]) -> tuple[Path, Path, str]:
    """(data root, DAGSTER_HOME, partition key) under base/name, the request written and its partition registered."""
    from assets.diffraction.requests import partition_key

    root, home = base / name / "data", base / name / "home"
    key = partition_key(write_request(root, "burst", orientations_per_phase, seeds))
    register_partition(home, key)
    return root, home, key


def register_partition(dagster_home: Path, key: str) -> None:
    """Add the request's partition to the persistent instance in dagster_home (the sensor's job)."""
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    dagster_home.mkdir(parents=True, exist_ok=True)
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(dagster_home))) as instance:
        instance.add_dynamic_partitions(simulation_requests.name, [key])


def start_materialization(data_root: Path, dagster_home: Path, key: str, log_path: Path) -> subprocess.Popen:
    """`dagster asset materialize` of one diffraction_patterns partition, in its own process group."""
    env = {
        **os.environ,
        "MATERIALS_DATA": str(data_root),
        "DAGSTER_HOME": str(dagster_home),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(REPO_ROOT),
    }
    command = [DAGSTER, "asset", "materialize", "-m", "tests.reliability.harness",
               "--select", "diffraction_patterns", "--partition", key]
    with open(log_path, "ab") as log:
        return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)


def kill_run(process: subprocess.Popen) -> None:
    """SIGKILL the run's whole process group (no cleanup handlers run, as on a power cut)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def wait_for(predicate, timeout_s: float, interval_s: float = 0.002) -> bool:
    """Poll predicate until it is true (True) or timeout_s passes (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return False


def simulation_started(log_path: Path) -> bool:
    """The asset logged its 'simulating ...' line: the run is inside the simulation."""
    return log_path.exists() and b"simulating" in log_path.read_bytes()


def staging_started(data_root: Path, key: str) -> bool:
    """The IO manager has created its staging folder for this partition: the write has begun."""
    folder = data_root / PATTERNS_FOLDER
    return folder.is_dir() and any(folder.glob(f".{key}.staging-*"))


def manifest_path(data_root: Path, key: str) -> Path:
    return data_root / PATTERNS_FOLDER / f"{key}{MANIFEST_SUFFIX}"


def storage_audit(data_root: Path) -> dict:
    """Every manifest under storage checked against its file, plus what else lies there.

    Returns {"artefacts": {manifest: sha256}, "inconsistent": [...], "orphans": [...], "staging": [...]}:
    inconsistent = a manifest whose file is missing or whose bytes/sha256 differ (a partial artefact);
    orphans = visible files no manifest names (invisible to the IO manager, but litter);
    staging = hidden staging folders left by a killed writer (never read).
    """
    storage = data_root / "storage"
    audit = {"artefacts": {}, "inconsistent": [], "orphans": [], "staging": []}
    if not storage.is_dir():
        return audit
    named = set()
    for manifest in sorted(storage.rglob(f"*{MANIFEST_SUFFIX}")):
        entry = json.loads(manifest.read_text())
        target = manifest.parent / entry["file"]
        named.add(target)
        if not target.exists() or tree_digest(target) != (entry["bytes"], entry["sha256"]):
            audit["inconsistent"].append(str(manifest))
        else:
            audit["artefacts"][str(manifest.relative_to(storage))] = entry["sha256"]
    for path in sorted(storage.rglob("*")):
        relative = path.relative_to(storage)
        if any(".staging-" in part for part in relative.parts):
            if ".staging-" in path.name:
                audit["staging"].append(str(relative))
            continue
        if path.name.startswith(".") and path.name.endswith(".lock"):  # the IO manager's writer lock
            continue
        if path.is_file() and not path.name.endswith(MANIFEST_SUFFIX) and path not in named:
            if not any(parent in named for parent in path.parents):  # files inside a bundle folder
                audit["orphans"].append(str(relative))
    return audit


def stored_patterns(data_root: Path, key: str):
    """The partition's stored HDF5 tree (None: no file)."""
    from resources.storage import _read_hdf5

    path = data_root / PATTERNS_FOLDER / f"{key}.h5"
    return _read_hdf5(path) if path.exists() else None


def artefact_sha256(data_root: Path, key: str) -> str | None:
    """sha256 recorded in the partition's manifest (None: no artefact)."""
    path = manifest_path(data_root, key)
    return json.loads(path.read_text())["sha256"] if path.exists() else None
