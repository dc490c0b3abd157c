"""`python -m benchmarks.gpu --quick` on the CPU: every section runs, agrees with its reference and lands in the JSON.

The same code runs on a CUDA machine with full sizes; here torch's device is the CPU, so this checks the
harness and the agreement of every torch path with its numpy/CPU counterpart, not speed (DESIGN.md, Testing 6).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SECTIONS = ("eis", "diffraction", "pdf", "pdf_cnn", "diffraction_cnn", "encoder")
# Figures every section reports on the CPU (device "cpu"), beside its agreement verdict.
EXPECTED = {
    "eis": ["spectra_each_side", "device_spectra_per_s", "device_reproduces_share",
            "cost_max_relative_difference_torch_vs_numpy"],
    "diffraction": ["patterns_each_side", "numpy_one_core_patterns_per_s", "device_patterns_per_s",
                    "device_float32_patterns_per_s", "speedup_device_over_best_cpu",
                    "max_abs_difference_over_max_device_vs_numpy", "max_abs_difference_over_max_float32_vs_float64"],
    "pdf": ["crystals_each_side", "cpu_one_core_pdfs_per_s", "device_pdfs_per_s", "speedup_device_over_best_cpu",
            "max_abs_difference_over_max_device_vs_cpu"],
    "pdf_cnn": ["keras_backend", "device_train_samples_per_s_batch_32", "device_train_samples_per_s_batch_64",
                "probability_max_abs_difference_device_vs_cpu"],
    "diffraction_cnn": ["keras_backend", "device_train_samples_per_s_batch_32", "device_train_samples_per_s_batch_64",
                        "probability_max_abs_difference_device_vs_cpu"],
    "encoder": ["parameters", "device_tokens_per_s_batch_8", "logit_max_abs_difference_device_vs_cpu"],
}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("gpu_benchmark") / "figures.json"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("KERAS_BACKEND", None)  # the benchmark sets it for its Keras subprocess itself
    result = subprocess.run([sys.executable, "-m", "benchmarks.gpu", "--quick", "--json", str(path)], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=1200)
    return result, path


def test_quick_run_exits_zero_with_every_agreement_line(quick_run):
    result, _ = quick_run
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    lines = result.stdout.splitlines()
    assert "device: cpu" in lines
    for section in SECTIONS:
        assert f"{section}_agreement: ok" in lines, f"no agreement line for {section}:\n{result.stdout}"
        assert not any(line.startswith(f"{section}_error:") for line in lines)
    assert lines[-1].startswith("torch_cpu_over_best_cpu_speedup_geomean (2 paths: diffraction, pdf;")
    assert float(lines[-1].rsplit(": ", 1)[1]) > 0


def test_quick_run_json_holds_every_sections_figures_and_the_machine(quick_run):
    result, path = quick_run
    assert f"json: {path}" in result.stdout.splitlines()
    document = json.loads(path.read_text())
    assert document["machine"]["device"] == "cpu"
    assert document["machine"]["cpu_count"] >= 1 and document["machine"]["torch"]
    assert document["errors"] == {} and document["disagreements"] == []
    for section in SECTIONS:
        figures = document["sections"][section]
        assert figures["agreement"] == "ok"
        for name in EXPECTED[section]:
            assert name in figures, f"{section}: no {name} in {sorted(figures)}"
        numbers = [value for value in figures.values() if isinstance(value, (int, float)) and not isinstance(value, bool)]
        assert numbers and all(value == value for value in numbers)  # no NaN
    assert document["sections"]["pdf_cnn"]["keras_backend"] == "torch"
    assert document["sections"]["diffraction"]["device_precision"] == "float64"  # float32 is the CUDA default
    for section in ("pdf_cnn", "diffraction_cnn", "encoder"):  # mixed precision only on CUDA
        assert document["sections"][section]["device_mixed_precision"] is False
    assert set(document["speedups_device_over_best_cpu"]) == {"diffraction", "pdf"}
    assert document["speedup_geomean"] > 0
