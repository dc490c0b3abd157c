"""benchmarks.mutation on a toy project: it counts killed and surviving mutants and never edits the source tree."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("mutmut")

TOY = '''
def clamp(x, low, high):
    """x limited to [low, high]."""
    if x < low:
        return low
    return min(x, high)
'''

TOY_TESTS = '''
from toy.arith import clamp


def test_clamp():
    assert clamp(-1, 0, 5) == 0 and clamp(7, 0, 5) == 5 and clamp(3, 0, 5) == 3
'''


def toy_project(tmp_path: Path, name: str, source: str, tests: str) -> Path:
    """A project with the package toy (module `name`) and tests/test_<name>.py."""
    root = tmp_path / "project"
    (root / "toy").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "toy" / "__init__.py").write_text("")
    (root / "toy" / f"{name}.py").write_text(source)
    (root / "tests" / f"test_{name}.py").write_text(tests)
    return root


def test_the_mutation_run_scores_a_toy_module_in_a_copy(tmp_path, capsys):
    from benchmarks import mutation

    root = toy_project(tmp_path, "arith", TOY, TOY_TESTS)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    report = tmp_path / "report.json"
    status = mutation.main(["--root", str(root), "--target", "toy/arith.py=tests/test_arith.py", "--nice", "0",
                            "--report", str(report)])
    out = capsys.readouterr().out
    assert status == 0, out
    result = json.loads(report.read_text())[0]
    # `x < low` -> `x <= low` returns low for x == low either way: the one mutant the test cannot see
    assert result["mutants"] >= 5 and result["killed"] == result["mutants"] - result["survived"]
    assert [s["line"] for s in result["survivors"]] == [4] and "x <= low" in result["survivors"][0]["added"]
    assert out.strip().splitlines()[-1] == f"killed_percent_min: {result['killed_percent']}"
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before  # the source tree is untouched
    assert not list(Path(sys.prefix).glob("mutants"))


LOOP = '''
def countdown(n):
    """The number of steps from n down to 0."""
    steps = 0
    while n > 0:
        n -= 1
        steps += 1
    return steps
'''

LOOP_TESTS = '''
import os

import torch

from toy.loop import countdown


def test_countdown_in_one_native_thread():
    torch.set_num_threads(2)  # what the tests' ComputeResource asks for
    assert countdown(3) == 3 and os.environ.get("OMP_NUM_THREADS") == "1" and torch.get_num_threads() == 1
'''


def test_a_mutant_that_never_ends_times_out_and_counts_as_killed(tmp_path):
    from benchmarks import mutation

    root = toy_project(tmp_path, "loop", LOOP, LOOP_TESTS)
    report = tmp_path / "report.json"
    status = mutation.main(["--root", str(root), "--target", "toy/loop.py=tests/test_loop.py", "--nice", "0",
                            "--timeout-constant", "1", "--timeout-multiplier", "2", "--report", str(report)])
    assert status == 0
    result = json.loads(report.read_text())[0]
    # `n -= 1` -> `n += 1` never leaves the loop; the tests see one native thread (else the clean run fails and
    # mutmut stops), and every other mutant fails them
    assert result["timed_out"] >= 1 and len(result["timed_out_mutants"]) == result["timed_out"]
    assert result["survived"] == 0 and result["killed"] == result["mutants"] > result["timed_out"]


def test_a_random_sample_of_mutants_reports_its_interval_and_resumes(tmp_path):
    from benchmarks import mutation

    root = toy_project(tmp_path, "arith", TOY, TOY_TESTS)
    target = ["--root", str(root), "--target", "toy/arith.py=tests/test_arith.py", "--nice", "0"]
    assert mutation.main([*target, "--report", str(tmp_path / "all.json")]) == 0
    everything = json.loads((tmp_path / "all.json").read_text())[0]
    assert mutation.main([*target, "--random", "3", "--seed", "1", "--report", str(tmp_path / "sample.json")]) == 0
    sample = json.loads((tmp_path / "sample.json").read_text())[0]
    assert sample["mutants"] == 3 and sample["population"] == everything["mutants"] > 3
    low, high = sample["killed_percent_interval95"]
    assert low <= sample["killed_percent"] <= high and 0 < high - low < 100
    assert mutation.main([*target, "--resume", str(tmp_path / "sample.json"), "--report", str(tmp_path / "again.json")]) == 0
    again = json.loads((tmp_path / "again.json").read_text())[0]
    assert {k: again[k] for k in ("mutants", "population", "killed", "survived")} == {
        k: sample[k] for k in ("mutants", "population", "killed", "survived")}


def test_the_sample_interval_is_wilsons():
    """90 of 100 sampled mutants killed: Wilson's 95 % interval is [82.6, 94.5] (a textbook value)."""
    from benchmarks import mutation

    alive = [{"mutant": f"m{i}", "removed": "x = 1", "added": "x = 2"} for i in range(10)]
    sampled = mutation.score("toy.py", [], 100, 90, alive, population=1000)
    assert sampled["killed_percent"] == 90.0 and sampled["killed_percent_interval95"] == [82.6, 94.5]
    assert mutation.score("toy.py", [], 100, 90, alive)["killed_percent_interval95"] is None  # the whole module
