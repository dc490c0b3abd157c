"""Reliability figures: reader fuzzing, a burst of request files, SIGKILLed and concurrent runs.

    python -m benchmarks.reliability [--fuzz-examples N] [--burst N] [--kills N]

Runs the scenarios of tests/reliability/ (same harness, same properties) and prints
`name: value` lines; the last three are inputs tried, faults injected and records lost
(must be 0). A property that fails is reported on a line, not raised. Exits non-zero
only when a scenario cannot run at all.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _fuzz_cases(module):
    """(name, test function, parametrize arguments) for every test of module, one per parameter value."""
    for name, test in inspect.getmembers(module, inspect.isfunction):
        if not name.startswith("test_"):
            continue
        marks = [mark for mark in getattr(test, "pytestmark", []) if mark.name == "parametrize"]
        if not marks:
            yield name, test, {}
        for mark in marks:  # single-argument parametrize is all the fuzz module uses
            for value in mark.args[1]:
                yield name, test, {mark.args[0]: value}


def fuzz_readers(examples: int, scratch: Path) -> dict:
    """Every hypothesis test of tests/reliability/test_reader_fuzz.py, counting records via its TALLY."""
    os.environ["RELIABILITY_FUZZ_EXAMPLES"] = str(examples)
    os.environ["RELIABILITY_FUZZ_NO_SHRINK"] = "1"  # a failing input is counted once, not replayed while shrinking
    os.environ["RELIABILITY_FUZZ_RANDOM"] = "1"  # new inputs each run, unlike the replayed CI examples
    from tests.reliability import test_reader_fuzz as fuzz

    failing = []
    for name, test, parameters in _fuzz_cases(fuzz):
        folder = Path(tempfile.mkdtemp(prefix=name[:40], dir=scratch))
        os.environ["MATERIALS_DATA"] = str(folder)
        fixtures = {"tmp_path": folder, "data_root": folder}
        arguments = {k: v for k, v in fixtures.items() if k in inspect.signature(test).parameters}
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # hypothesis prints falsifying examples
                test(**arguments, **parameters)
        except Exception as error:  # a failed property: report it and go on with the other readers
            failing.append(f"{name}{list(parameters.values()) or ''} ({type(error).__name__})")
    tally = fuzz.TALLY
    return {"inputs": tally["inputs"], "faults": tally["faults"], "lost": tally["valid"] - tally["recovered"],
            "valid": tally["valid"], "failing": failing}


def request_burst(files: int, scratch: Path) -> dict:
    """`files` request files at once; sensor ticks until quiet, then ticks after a restart keeping the cursor."""
    from dagster import DagsterInstance

    from tests.reliability.test_request_burst import drop_burst, run_ticks

    root = scratch / "burst"
    os.environ["MATERIALS_DATA"] = str(root)
    expected = drop_burst(root, files)
    started = time.perf_counter()
    run_keys, _, cursor = run_ticks(DagsterInstance.ephemeral(), None, 3)
    seconds = time.perf_counter() - started
    repeated, _, _ = run_ticks(DagsterInstance.ephemeral(), cursor, 3)
    return {"files": files, "run_requests": len(run_keys), "unique": len(set(run_keys) & expected),
            "repeated": len(repeated) + len(run_keys) - len(set(run_keys)), "seconds": seconds}


def _run_to_end(root: Path, home: Path, key: str, log: Path) -> int:
    from tests.reliability.harness import start_materialization

    return start_materialization(root, home, key, log).wait(timeout=600)


def _lost_patterns(reference, tree) -> int:
    """Reference patterns missing or different in tree (all of them when tree is None)."""
    if tree is None or tree["1d/x_px"].shape != reference["1d/x_px"].shape:
        return len(reference["1d/y_px"])
    same = np.all(tree["1d/x_px"] == reference["1d/x_px"], axis=1) & (tree["1d/y_px"] == reference["1d/y_px"])
    return int((~same).sum())


def killed_and_concurrent_runs(kills: int, orientations: int, scratch: Path) -> dict:
    """A reference run; `kills` runs SIGKILLed (alternately mid-simulation and at the write) then re-run;
    one pair of concurrent runs of the same partition."""
    from tests.reliability.harness import (
        artefact_sha256, kill_run, prepare_request, simulation_started, staging_started,
        start_materialization, storage_audit, stored_patterns, wait_for,
    )

    def prepared(name):
        return prepare_request(scratch, name, orientations, [0, 1])

    reference_root, reference_home, key = prepared("reference")
    if _run_to_end(reference_root, reference_home, key, scratch / "reference.log") != 0:
        raise RuntimeError(f"the reference run failed; see {scratch / 'reference.log'}")
    reference, reference_sha = stored_patterns(reference_root, key), artefact_sha256(reference_root, key)
    figures = dict.fromkeys(["kills", "partial_after_kill", "orphans_after_kill", "staging_left", "rerun_identical_sha", "lost"], 0)
    figures["runs"] = 1
    for number in range(kills):
        root, home, _ = prepared(f"kill{number}")
        log = scratch / f"kill{number}.log"
        process = start_materialization(root, home, key, log)
        if number % 2 == 0:  # mid-simulation: a random moment after the asset started simulating
            wait_for(lambda: simulation_started(log), 300, 0.05)
            time.sleep(np.random.default_rng(number).uniform(0.0, 2.0))
        else:  # at the write: as soon as the IO manager's staging folder appears
            wait_for(lambda: staging_started(root, key), 300)
        kill_run(process)
        audit = storage_audit(root)
        figures["kills"] += 1
        figures["partial_after_kill"] += len(audit["inconsistent"])
        figures["orphans_after_kill"] += len(audit["orphans"])
        figures["staging_left"] += len(audit["staging"])
        _run_to_end(root, home, key, scratch / f"rerun{number}.log")
        figures["runs"] += 2
        figures["rerun_identical_sha"] += artefact_sha256(root, key) == reference_sha
        figures["lost"] += _lost_patterns(reference, stored_patterns(root, key))
    root, home, _ = prepared("concurrent")
    pair = [start_materialization(root, home, key, scratch / f"concurrent{i}.log") for i in range(2)]
    codes = [process.wait(timeout=600) for process in pair]
    audit = storage_audit(root)
    figures.update(concurrent_runs=2, concurrent_failed=sum(code != 0 for code in codes),
                   concurrent_artefacts=len(audit["artefacts"]), concurrent_inconsistent=len(audit["inconsistent"]))
    figures["runs"] += 2
    figures["lost"] += _lost_patterns(reference, stored_patterns(root, key))
    figures["patterns_per_run"] = len(reference["1d/y_px"])
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fuzz-examples", type=int, default=30, help="hypothesis examples per reader property")
    parser.add_argument("--burst", type=int, default=1000, help="request files dropped at once")
    parser.add_argument("--kills", type=int, default=2, help="SIGKILLed runs (each re-run afterwards)")
    parser.add_argument("--orientations", type=int, default=200, help="orientations per phase and seed of the request")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix="reliability-") as scratch:
        scratch = Path(scratch)
        try:
            fuzz = fuzz_readers(args.fuzz_examples, scratch)
            burst = request_burst(args.burst, scratch)
            runs = killed_and_concurrent_runs(args.kills, args.orientations, scratch)
        except Exception as error:
            print(f"reliability benchmark could not run: {type(error).__name__}: {error}", file=sys.stderr)
            return 1
    print(f"fuzz_valid_records: {fuzz['valid']}")
    print(f"fuzz_properties_failing: {len(fuzz['failing'])} {'; '.join(fuzz['failing'])}".rstrip())
    print(f"burst_files: {burst['files']}")
    print(f"burst_run_requests: {burst['run_requests']}")
    print(f"burst_distinct_expected_run_requests: {burst['unique']}")
    print(f"burst_repeated_run_requests: {burst['repeated']}")
    print(f"burst_sensor_s: {burst['seconds']:.2f}")
    print(f"patterns_per_run: {runs['patterns_per_run']}")
    print(f"runs_sigkilled: {runs['kills']}")
    print(f"partial_artefacts_after_kill: {runs['partial_after_kill']}")
    print(f"unregistered_files_left_after_kill: {runs['orphans_after_kill']}")
    print(f"staging_folders_left_after_kill: {runs['staging_left']}")
    print(f"reruns_sha256_identical_to_uninterrupted: {runs['rerun_identical_sha']}/{runs['kills']}")
    print(f"concurrent_runs_failed: {runs['concurrent_failed']}/{runs['concurrent_runs']}")
    print(f"concurrent_artefacts: {runs['concurrent_artefacts']} (inconsistent: {runs['concurrent_inconsistent']})")
    lost_requests = burst["files"] - burst["unique"]
    print(f"inputs_tried: {fuzz['inputs'] + burst['files'] + runs['runs']}")
    print(f"faults_injected: {fuzz['faults'] + runs['kills'] + runs['concurrent_runs']}")
    print(f"records_lost: {fuzz['lost'] + lost_requests + runs['lost'] + runs['partial_after_kill']}")
    return 0


if __name__ == "__main__":
    from benchmarks import results

    raise SystemExit(results.run(main, "reliability"))
