"""A SIGKILLed simulation run leaves nothing half-written; two concurrent runs leave one consistent artefact.

Each run is a real `dagster asset materialize` subprocess (tests/reliability/harness.py)
of one diffraction_patterns partition, against a persistent instance in a temp DAGSTER_HOME.
"""

from pathlib import Path

import numpy as np
import pytest

from resources.storage import Hdf5Tree
from tests.reliability.harness import (
    artefact_sha256,
    kill_run,
    prepare_request,
    staging_started,
    start_materialization,
    storage_audit,
    stored_patterns,
    wait_for,
)

ORIENTATIONS_PER_PHASE = 200  # 1,600 patterns over two seeds: long enough to kill inside the run, short enough for CI
RUN_TIMEOUT_S = 240


def _prepared_root(base: Path, name: str) -> tuple[Path, Path, str]:
    return prepare_request(base, name, ORIENTATIONS_PER_PHASE, [0, 1])


def _finish(process, timeout_s: float = RUN_TIMEOUT_S) -> int:
    return process.wait(timeout=timeout_s)


def _stop_unfinished(processes) -> None:
    for process in processes:
        if process.poll() is None:
            kill_run(process)


def _differing_datasets(first: Hdf5Tree, second: Hdf5Tree) -> list[str]:
    return sorted(k for k in set(first) | set(second) if not np.array_equal(first.get(k), second.get(k)))


def _assert_same_simulation(first: Hdf5Tree, second: Hdf5Tree) -> None:
    arrays = [k for k in first if k.startswith("1d/")]
    assert arrays and sorted(arrays) == sorted(k for k in second if k.startswith("1d/"))
    for name in arrays:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)


@pytest.fixture(scope="module")
def killed_and_reference(tmp_path_factory):
    """An uninterrupted run and, beside it, a run SIGKILLed as soon as its artefact write began."""
    base = tmp_path_factory.mktemp("killed")
    reference_root, reference_home, key = _prepared_root(base, "reference")
    killed_root, killed_home, _ = _prepared_root(base, "killed")
    reference = start_materialization(reference_root, reference_home, key, base / "reference.log")
    victim = start_materialization(killed_root, killed_home, key, base / "killed.log")
    try:
        caught_writing = wait_for(lambda: staging_started(killed_root, key), RUN_TIMEOUT_S)
        kill_run(victim)
        assert _finish(reference) == 0, (base / "reference.log").read_text()[-3000:]
    finally:
        _stop_unfinished([victim, reference])
    after_kill = storage_audit(killed_root)
    rerun = start_materialization(killed_root, killed_home, key, base / "rerun.log")
    assert _finish(rerun) == 0, (base / "rerun.log").read_text()[-3000:]
    return {"key": key, "caught_writing": caught_writing, "after_kill": after_kill,
            "reference_root": reference_root, "killed_root": killed_root}


def test_sigkill_during_the_write_leaves_no_partial_artefact(killed_and_reference):
    after_kill = killed_and_reference["after_kill"]
    assert killed_and_reference["caught_writing"], "the run never reached its write"
    # Every manifest matches its file byte for byte: the IO manager sees nothing or a whole artefact.
    assert after_kill["inconsistent"] == [] and len(after_kill["artefacts"]) <= 1
    # Besides that, a killed writer may leave only hidden staging folders and a renamed file whose
    # manifest it never wrote, neither of which the IO manager reads.
    assert all(Path(p).name.startswith(".") for p in after_kill["staging"])
    assert len(after_kill["orphans"]) <= 1


def test_rerun_after_the_kill_reproduces_the_uninterrupted_arrays(killed_and_reference):
    key = killed_and_reference["key"]
    audit = storage_audit(killed_and_reference["killed_root"])
    assert audit["inconsistent"] == [] and audit["orphans"] == [] and len(audit["artefacts"]) == 1
    _assert_same_simulation(stored_patterns(killed_and_reference["reference_root"], key),
                            stored_patterns(killed_and_reference["killed_root"], key))


def test_rerun_after_the_kill_is_byte_identical_to_the_uninterrupted_run(killed_and_reference):
    """Same request and seeds -> same sha256 in the manifest (the issue's criterion)."""
    key, killed, reference = (killed_and_reference[k] for k in ("key", "killed_root", "reference_root"))
    differing = _differing_datasets(stored_patterns(killed, key), stored_patterns(reference, key))
    assert artefact_sha256(killed, key) == artefact_sha256(reference, key), f"datasets that differ: {differing}"


def test_two_concurrent_runs_of_one_partition_leave_one_consistent_artefact(tmp_path, killed_and_reference):
    root, home, key = _prepared_root(tmp_path, "concurrent")
    runs = [start_materialization(root, home, key, tmp_path / f"run{i}.log") for i in range(2)]
    try:
        codes = [_finish(run) for run in runs]
    finally:
        _stop_unfinished(runs)
    assert codes == [0, 0], [(tmp_path / f"run{i}.log").read_text()[-2000:] for i in range(2)]
    audit = storage_audit(root)
    assert audit["inconsistent"] == [] and audit["orphans"] == []
    assert list(audit["artefacts"]) == [f"diffraction_patterns/{key}.manifest.json"]
    _assert_same_simulation(stored_patterns(root, key), stored_patterns(killed_and_reference["reference_root"], key))
