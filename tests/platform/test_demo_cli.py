"""`./dev.sh demo` as a user runs it: every pipeline succeeds, a summary ends the output, data/raw/ stays untouched."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from orchestration.jobs import PIPELINES

REPO = Path(__file__).resolve().parents[2]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file below `folder` with its sha256 (empty folders count too, as "dir")."""
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        for path in sorted(folder.rglob("*"))
    }


def test_demo_ends_with_a_summary_and_writes_nothing_under_raw(tmp_path):
    home, data = tmp_path / "home", tmp_path / "data"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(home), "MATERIALS_DATA": str(data)}
    # The input folders exist after the first start (loading the code location), before any run.
    subprocess.run([str(REPO / "dev.sh"), "python", "-c", "import orchestration.definitions"], env=env, check=True)
    before = snapshot(data / "raw")
    assert before and all(kind == "dir" for kind in before.values())

    result = subprocess.run([str(REPO / "dev.sh"), "demo"], env=env, capture_output=True, text=True, timeout=1500)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert snapshot(data / "raw") == before
    summary = output[output.rindex("== materials_demo: SUCCESS"):].splitlines()
    for pipeline in PIPELINES:
        assert pipeline in summary, f"no {pipeline} section in the summary:\n" + "\n".join(summary)
    assert any("exports:" in line for line in summary)
    assert " - DEBUG - " not in output  # ./dev.sh job runs print INFO and above
    assert "cuInit" not in output
