"""benchmarks.eis_real's command-line paths on tiny labelled files in the challenge CSV style, run as a user
runs them, so a broken flag fails the suite: K-fold CV with --skip-fitting; --holdout and the fitting
comparison with --skip-cv."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from assets.eis.circuits import CIRCUITS
from assets.eis.simulate import DEFAULT_RANGES, sample_parameters

REPO = Path(__file__).resolve().parents[2]
CLASSES = ("L-R-RCPE", "RC-G-G", "RCPE-RCPE")
TINY = ["--label-fitted-per-class", "2", "--max-features", "5", "--n-estimators", "5"]


def _write_challenge_csv(path: Path, per_class: int, seed: int) -> Path:
    """Written as the challenge files are: an unnamed index column, numpy-printed lists of freq (rad/s)
    and Z, the circuit, and its parameters as 'name: value' with three significant digits."""
    rng = np.random.default_rng(seed)
    lines = [",freq,Z,Circuit,Parameters"]
    for name in CLASSES:
        circuit = CIRCUITS[name]
        drawn = sample_parameters(circuit, per_class, DEFAULT_RANGES, rng)
        for k in range(per_class):
            parameters = {p: float(f"{drawn[p][k]:.2e}") for p in circuit.parameters}
            omega = np.logspace(-2, 5.3, int(rng.integers(30, 50)))
            z = circuit.impedance({p: np.array([v]) for p, v in parameters.items()}, omega)
            freq_text, z_text = (np.array2string(values, separator=", ", max_line_width=10**9) for values in (omega, z))
            parameters_text = ", ".join(f"{p}: {v:.2e}" for p, v in parameters.items())
            lines.append(f'{len(lines) - 1},"{freq_text}","{z_text}",{name},"{parameters_text}"')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def _run(tmp_path: Path, *arguments: str) -> dict[str, str]:
    """The benchmark's printed `key: value` lines (its temporary data root lands under tmp_path)."""
    command = [sys.executable, "-m", "benchmarks.eis_real", *TINY, *arguments]
    done = subprocess.run(command, cwd=REPO, env={**os.environ, "TMPDIR": str(tmp_path)}, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)


def test_cross_validation_with_skip_fitting(tmp_path):
    data = _write_challenge_csv(tmp_path / "dev.csv", per_class=3, seed=0)
    cache = tmp_path / "kept_cache"
    printed = _run(tmp_path, "--data", str(data), "--folds", "2", "--skip-fitting", "--evidence-random-starts", "1", "--cache", str(cache))
    assert any((cache / "eis" / "evidence").iterdir())  # the evidence fits outlive the run's temporary data root
    assert printed["data_files"] == "1" and printed["spectra_read"] == "9" and printed["quarantined_rows"] == "0"
    assert printed["spectra_on_grid"] == "9"
    assert 0 <= float(printed["best_cv_accuracy"]) <= 1 and f"cv_accuracy_{printed['best_model']}" in printed
    assert "cv_accuracy_raw_grid_xgboost" in printed
    assert printed["cv_spectra_pooled"] == "9"  # the set figures pool every fold's test spectra, each once
    for key in ("cv_ece_uncalibrated", "cv_ece", "cv_set90_coverage"):
        assert 0 <= float(printed[key]) <= 1, key
    assert 0 <= float(printed["cv_set90_mean_size"]) <= len(CLASSES)
    assert not [key for key in printed if key.startswith(("fit_", "holdout_"))]


def test_holdout_and_fitting_with_skip_cv(tmp_path):
    data = _write_challenge_csv(tmp_path / "dev.csv", per_class=3, seed=0)
    held = _write_challenge_csv(tmp_path / "held" / "holdout.csv", per_class=1, seed=1)
    printed = _run(tmp_path, "--data", str(data), "--skip-cv", "--holdout", str(held), "--fit-spectra", "1", "--reference-spectra", "2")
    assert not [key for key in printed if key.startswith(("cv_accuracy_", "best_"))]
    assert printed["holdout_spectra_scored"] == "3" and printed["holdout_quarantined_rows"] == "0"
    assert 0 <= float(printed["holdout_accuracy"]) <= 1 and 0 <= float(printed["holdout_macro_f1"]) <= 1
    assert 0 <= float(printed["holdout_ece"]) <= 1 and 0 <= float(printed["holdout_set90_coverage"]) <= 1
    assert 0 <= float(printed["holdout_set90_mean_size"]) <= len(CLASSES)
    assert printed["fit_ours_spectra"] == "3"  # --fit-spectra 1: the first spectrum of each class
    for key in ("reproduces_share", "determined_share", "supported_differs_share", "se_ratio_median_vs_impedance_py",
                "seconds_per_spectrum_ours", "seconds_per_spectrum_impedance_py"):
        assert key in printed, key
    assert 0 <= float(printed["reproduces_share"]) <= 1 and 0 <= float(printed["determined_share"]) <= float(printed["reproduces_share"])
