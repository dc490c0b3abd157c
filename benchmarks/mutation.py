"""Mutation testing of the science modules with mutmut (issue 25 item 3); not part of the test suite.

    python -m benchmarks.mutation [--module PATH ...] [--sample K] [--report FILE] [--rescore FILE] [--keep]

For each target module (default: all of TARGETS) the tracked and untracked-but-not-ignored files of the
repository are copied to a fresh temporary folder, and mutmut runs there on that one module with only
the test files that cover it (TARGETS), one worker, at nice 19 (its own autogroup too). The working tree is never written to, so an
interrupted run leaves nothing to restore (the temporary copy is removed unless --keep).
`--sample K` runs only the first K mutants of every function (a quick run); `--random N` runs N mutants drawn
uniformly from the module's (seeded; a module too large to run whole) and gives the killed share with its 95 %
interval; the default runs them all.

Prints, per module: mutants, killed (a failing test, or a timeout: the covering tests ran past
`--timeout-multiplier` times their own duration plus `--timeout-constant` seconds; timeouts are also counted
apart), survived (no covering test failed), then every surviving mutant with its file:line and the mutation as
a diff; a survivor that EQUIVALENT lists is shown with its reason and counted apart. One line `killed_percent_<module>: x`
per module (killed / (mutants - equivalent)), the lowest of them last as `killed_percent_min`.
--report writes the same as JSON. Exits non-zero only when mutmut could not run.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import tokenize
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

FIGURE = "a figure: colours, sizes and labels are judged by looking at it, not by a test"
SAME_STEPS = ("how often the LM loop compacts its batch: masked or compacted, every spectrum takes the same steps "
              "(tests/eis/test_fitting.py::test_masked_and_compacted_batches_take_the_same_steps); only the time changes")

# Module (path from the repository root) -> the test files that cover it.
TARGETS: dict[str, list[str]] = {
    "resources/quarantine.py": ["tests/platform/test_quarantine.py"],
    "resources/conformal.py": ["tests/platform/test_conformal.py", "tests/electrodes/test_intervals.py"],
    "assets/pdf/profiles.py": ["tests/pdf/test_profiles.py"],
    "assets/pdf/measured.py": ["tests/pdf/test_measured.py"],
    "assets/electrodes/intervals.py": ["tests/electrodes/test_intervals.py"],
    # all of test_evidence.py but its 27-spectrum fit (about 40 s a mutant)
    "assets/eis/evidence.py": [f"tests/eis/test_evidence.py::{name}" for name in (
        "test_no_spectra_give_an_empty_table_with_the_columns",
        "test_fitted_resistances_are_scaled_by_the_largest_modulus_and_exponents_kept",
        "test_the_cache_key_changes_with_every_value_the_order_and_the_restarts",
        "test_each_circuits_evidence_is_its_one_start_fit_scaled_and_its_bic_difference",
        "test_evidence_fits_use_one_naive_start_the_restarts_asked_for_and_the_device")],
    "assets/eis/simulate.py": ["tests/eis/test_simulate.py", "tests/eis/test_circuits.py"],
    "assets/cycling/intervals.py": ["tests/cycling/test_intervals_mutants.py"],
    # without the tests that materialise the encoder pipeline (35-45 s a mutant; test_lifemodel.py checks the
    # same selection, interval and unknown-life rules on fit_and_score directly)
    "assets/cycling/lifemodel.py": ["tests/cycling/test_lifemodel.py", "tests/cycling/test_batch_cv.py"] + [
        f"--deselect=tests/cycling/test_batch_cv.py::{name}" for name in (
            "test_the_encoder_model_runs_in_the_batch_cv_and_has_skill",
            "test_the_encoder_model_fitted_to_shuffled_lives_fails_the_same_assertion")],
    "assets/eis/supported.py": ["tests/eis/test_uncertainty.py"],
    "assets/eis/uncertainty.py": ["tests/eis/test_uncertainty.py"],
    # the asset test of test_fitting.py (20 s a mutant) left out; test_fit_selection.py tests the same functions
    "assets/eis/fitting.py": ["tests/eis/test_fitting.py", "tests/eis/test_uncertainty.py", "tests/eis/test_fit_selection.py",
                              "--deselect=tests/eis/test_fitting.py::test_circuit_fits_asset_fits_predicted_and_labelled_spectra"],
}

def _swap(line: str, old: str, new: str) -> tuple[str, str]:
    """(line, line with its first `old` replaced by `new`): a key of EQUIVALENT."""
    assert old in line, (line, old)
    return line, line.replace(old, new, 1)


# Survivors that change no behaviour, keyed by module and (removed line, added line) of the mutation,
# stripped. They are listed with the reason and left out of the denominator.
EQUIVALENT: dict[str, dict[tuple[str, str], str]] = {
    "resources/quarantine.py": {
        ('def check_result(self, check_name: str, bound: float, severity: str = "ERROR") -> dg.AssetCheckResult:',
         'def check_result(self, check_name: str, bound: float, severity: str = "error") -> dg.AssetCheckResult:'):
            "the severity is upper-cased before use",
        ('dg.TableColumn("file", "string"), dg.TableColumn("records", "int"), dg.TableColumn("rejected", "int"),',
         'dg.TableColumn("file", ), dg.TableColumn("records", "int"), dg.TableColumn("rejected", "int"),'):
            "a TableColumn's type defaults to string",
        ('dg.TableColumn("whole_file", "bool"), dg.TableColumn("reasons", "string"),',
         'dg.TableColumn("whole_file", "bool"), dg.TableColumn("reasons", ),'):
            "a TableColumn's type defaults to string",
    },
    "assets/pdf/profiles.py": {
        _swap("d = np.asarray(diameter_A, dtype=float).reshape(-1, 1)", "-1, 1", "-2, 1"):
            "numpy reads any negative size as 'the rest'",
        _swap("std = np.broadcast_to(np.asarray(noise_std, dtype=float).reshape(-1, 1), (len(profiles), 1))",
              "-1, 1", "-2, 1"): "numpy reads any negative size as 'the rest'",
        _swap("return np.where(x <= 1.0, 1.0 - 1.5 * x + 0.5 * x**3, 0.0)", "x <= 1.0", "x < 1.0"):
            "the envelope is continuous: f(D) = 1 - 1.5 + 0.5 = 0 either way",
        _swap("drawn[::copies] = False", "False", "None"): "numpy stores None as False in a bool array",
        _swap("return drawn & (rng.random(n) < share)", "<", "<="):
            "differs only when a uniform draw equals the share exactly (probability 2**-53)",
        **{_swap("scale = 1 + rng.normal(0.0, augmentation.lattice_jitter, n) if augmentation.lattice_jitter > 0 "
                 "else np.ones(n)", old, new):
           "a normal draw of sd 0 is 0, so the scale stays 1 (other numbers are drawn, from the same distributions)"
           for old, new in (("if augmentation.lattice_jitter > 0", "if (augmentation.lattice_jitter > 0) or True"),
                            ("> 0", ">= 0"))},
        _swap("scale = 1 + rng.normal(0.0, augmentation.lattice_jitter, n) if augmentation.lattice_jitter > 0 "
              "else np.ones(n)", "1 + rng", "1 - rng"): "the normal draw is symmetric about 0: the same distribution",
        _swap("noise = rng.normal(0.0, 1.0, profiles.shape) * std", "normal(0.0", "normal(1.0"):
            "a constant shift of a row (its std) is removed by the min-max normalisation that follows",
        _swap("noisy = normalise_profiles(profiles + noise)", "+", "-"):
            "Gaussian noise is symmetric: p - n has the distribution of p + n",
        _swap("rng: np.random.Generator, backend: ArrayBackend | None = None, chunk_size: int = 2000,", "2000", "2001"):
            "the chunk size changes how many crystals one call computes, not the profiles (tested with chunk_size=1)",
        **{_swap("rows = slice(start, start + step)", old, new):
           "the chunks then overlap and rows are computed again with the same conditions: more work, same profiles"
           for old, new in (("start, start + step", "None, start + step"), ("start, start + step", "start, None"),
                            ("start, start + step", "start + step"))},
        _swap('measured = MODEL_GRID_A[None, :] <= conditions["r_cut_A"][:, None]', "<=", "<"):
            "r_cut is drawn from a continuous range: it lands on a grid point with probability 0",
    },
    "assets/pdf/measured.py": {
        _swap("def examples_top_k_hits(table: pd.DataFrame, k: int = 2) -> dict[str, bool]:", "= 2", "= 3"):
            "the default k is never used: the asset passes k = 2",
        _swap('"[DEFAULT]", "version = embedded example of the pdf pipeline (synthetic)", f"source = {source}",',
              '"[DEFAULT]"', '"XX[DEFAULT]XX"'): "the section line of our own writer is not read back",
        _swap('"[DEFAULT]", "version = embedded example of the pdf pipeline (synthetic)", f"source = {source}",',
              '"version = embedded example of the pdf pipeline (synthetic)"',
              '"XXversion = embedded example of the pdf pipeline (synthetic)XX"'):
            "the version line of our own writer is not read back",
        _swap('"mode = xray", "wavelength = 0.1839", f"composition = {composition}", "qmax = 25.0", "",',
              '"mode = xray"', '"XXmode = xrayXX"'): "the reader also knows X-ray data by the word xray anywhere",
        _swap('"mode = xray", "wavelength = 0.1839", f"composition = {composition}", "qmax = 25.0", "",',
              '"qmax = 25.0", "",', '"qmax = 25.0", "XXXX",'): "a text line before the marker is header either way",
        _swap('"#### start data", "#S 1", "#L r($\\\\AA$)  G($\\\\AA^{-2}$)",', '"#### start data"',
              '"XX#### start dataXX"'):
            "without the marker the reader finds the same first data row (the first long run of numbers)",
        _swap('lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()', '"utf-8"', '"UTF-8"'):
            "the same codec",
        _swap('f"{start + 1} on, got {line.strip()[:60]!r}")', "60", "61"):
            "the offending line is quoted to 61 characters instead of 60",
        _swap("order = np.argsort(-probabilities, axis=1)[:, :k]", "axis=1", ""):
            "argsort's default axis is the last, which is 1 for the (files, classes) array",
        _swap("pdfs = compute_pdfs(crystals, PdfSettings(r_max_A=35.0), r)", "35.0", "36.0"):
            "G is computed on the r given (to 35 A); r_max_A of the settings does not change it",
        _swap("noisy = pdf + rng.normal(0.0, noise_fraction * np.abs(pdf).max(), pdf.shape)", "pdf + rng", "pdf - rng"):
            "Gaussian noise is symmetric: the same distribution",
        **{_swap('EXAMPLE_COMPOSITIONS.get(crystal.structure_id, ""))', '""))', new):
           "every reference crystal has its composition: the default is never used"
           for new in ("None))", "))", '"XXXX"))')},
        **{("return cls([], [], np.zeros((0, len(MODEL_GRID_A)), np.float32), [], [], [])", new):
           "r_max_used_A defaults to an empty list"
           for new in ("return cls([], [], np.zeros((0, len(MODEL_GRID_A)), np.float32), [], [])",
                       "return cls([], [], np.zeros((0, len(MODEL_GRID_A)), np.float32), [], [], )")},
        _swap("inside = grid_A <= r_max_used + COVERAGE_TOLERANCE_A", "<=", "<"):
            "differs only for a grid point exactly 0.05 A past a file's end (the step of the model grid is 0.137 A)",
    },
    "assets/eis/simulate.py": {
        **{_swap("return z + scale * (rng.standard_normal(z.shape) + 1j * rng.standard_normal(z.shape))", old, new):
           "Gaussian noise is symmetric: the same distribution" for old, new in (("z + scale", "z - scale"),
                                                                                ("+ 1j", "- 1j"))},
        _swap("params[name] = 10 ** np.clip(np.log10(drawn) + rng.normal(0.0, settings.jitter_decades, n), low, high)",
              "+ rng", "- rng"): "the normal jitter is symmetric: the same distribution",
        _swap("params[name] = np.clip(drawn + rng.normal(0.0, settings.exponent_jitter, n), values.min(), values.max())",
              "+ rng", "- rng"): "the normal jitter is symmetric: the same distribution",
        _swap("return challenge_frame(freq_rows, z_rows, circuits if labelled else None, params if labelled else None)",
              "params if labelled", "params if (labelled) or True"):
            "challenge_frame writes no parameters when it is given no circuits",
        _swap("kinds = [kind_of[name] for name in group[0]]", "group[0]", "group[1]"):
            "interchangeable blocks have the same kinds",
        _swap("ordered[block[position]] = np.take_along_axis(stacked, order[rank : rank + 1], axis=0)[0]",
              "rank + 1", "rank + 2"): "only the first of the rows taken is used ([0])",
        **{_swap("return SimulatedClass(circuit, omega, add_noise(clean, noise, rng) if settings.noise_relative_std > 0 "
                 "else clean, n_points, params)", old, new):
           "noise of sd 0 (and no absolute floor) adds exactly 0"
           for old, new in (("if settings.noise_relative_std > 0", "if (settings.noise_relative_std > 0) or True"),
                            ("> 0", ">= 0"))},
    },
    "assets/eis/supported.py": {
        **{_swap('frame = pd.DataFrame({"label": labels, "differs": np.array(labels, dtype=object) != '
                 'np.array(supported, dtype=object)})', old, new):
           "labels and circuits are strings: numpy compares string arrays elementwise as it does object arrays"
           for old, new in (("labels, dtype=object", "labels, dtype=None"), ("labels, dtype=object", "labels, "),
                            ("supported, dtype=object", "supported, dtype=None"), ("supported, dtype=object", "supported, "))},
        _swap('for (i, without), fit in zip(tasks, reduced[keys].to_dict("records")):', '"records"', '"RECORDS"'):
            "pandas reads to_dict's orient ignoring case",
    },
    "assets/eis/uncertainty.py": {
        _swap("floor = eigenvalues[:, -1:].clamp_min(1e-300) * EIGENVALUE_FLOOR", "1e-300", "1.0"):
            "the column-normalised J^T J has a unit diagonal, so its largest eigenvalue is at least 1 (all-zero "
            "Jacobians aside, which no fit produces)",
        **{_swap("n_obs = 2 * torch.as_tensor(np.asarray(n_points), dtype=torch.float64, device=jacobian.device)",
                 old, new): "point counts are integers: int64, then float after clamp_min, exact far beyond any spectrum"
           for old, new in (("dtype=torch.float64", "dtype=None"), ("dtype=torch.float64, ", ""))},
    },
    "assets/eis/fitting.py": {
        _swap("start = np.array([[(initial[i] or {}).get(p, np.nan) for p in circuit.parameters] for i in members], float)",
              "np.nan", "None"): "np.array(..., float) stores None as NaN",
        **{_swap('check_every = 1 if u.device.type == "cpu" else CUDA_CHECK_EVERY', old, new): SAME_STEPS
           for old, new in (("==", "!="), ('"cpu"', '"XXcpuXX"'), ('"cpu"', '"CPU"'))},
        _swap("if iteration % check_every == 0:", "== 0", "== 1"): SAME_STEPS,
        _swap("if iteration % check_every == 0:", "%", "/"): SAME_STEPS,
        _swap("if iteration % check_every == 0:", "== 0", "!= 0"): SAME_STEPS,
        _swap("if keep.numel() < rows.numel():", "<", "<="): SAME_STEPS,
        **{_swap('check_every = 1 if u.device.type == "cpu" else CUDA_CHECK_EVERY', old, new): SAME_STEPS
           for old, new in (('u.device.type == "cpu"', '(u.device.type == "cpu") and False'),
                            ('u.device.type == "cpu"', '(u.device.type == "cpu") or True'), ("= 1 if", "= 2 if"))},
        **{_swap("u_batch, lam, active = _lm_iteration(sub, u_batch, lam, active, batch, settings, max_step_tries, "
                 "check_every == 1)", "check_every == 1)", new):
           "stopping the step tries once every spectrum has accepted a step only saves work: a spectrum that has "
           "accepted tries no further step and keeps its damping" for new in ("None)", "check_every != 1)",
                                                                              "check_every == 2)")},
        **{_swap('with torch.no_grad() if settings.optimizer == "lm" else torch.enable_grad():', old, new):
           "the LM loop computes the same numbers with autograd recording (nothing it uses requires grad)"
           for old, new in (('settings.optimizer == "lm"', '(settings.optimizer == "lm") and False'),
                            ('"lm"', '"XXlmXX"'), ('"lm"', '"LM"'))},
        **{_swap(line, old, new): "the tensor is 2-D (spectra, residuals): dimension +1 is dimension -1"
           for line, old, new in (("cost = (residual_vector**2).sum(-1) * n_points", "sum(-1)", "sum(+1)"),
                                  ("cost = (residual**2).sum(-1)", "sum(-1)", "sum(+1)"),
                                  ("trial_cost = (weighted_residual(model, trial, spectra) ** 2).sum(-1)", "sum(-1)",
                                   "sum(+1)"),
                                  ("return torch.cat([difference.real, difference.imag], dim=-1)", "dim=-1", "dim=+1"),
                                  ("return torch.cat([difference.real, difference.imag], dim=-1), "
                                   "torch.cat([dz_dv.real, dz_dv.imag], dim=1)", "dim=-1", "dim=+1"))},
        _swap("return np.where(floor > value, floor, value)", ">", ">="): "where the two are equal either is the value",
        **{_swap("return data_starts(circuit, np.asarray(omega, float)[None], np.asarray(z, complex)[None], exponent, "
                 "reverse)[0]", old, new): "every caller of data_start uses reverse's default (False)"
           for old, new in (("exponent, reverse)", "exponent, None)"), ("exponent, reverse)", "exponent, )"))},
        _swap("start = np.array([[(initial[i] or {}).get(p, np.nan) for p in circuit.parameters] for i in members], float)",
              "get(p, np.nan)", "get(p, )"): "np.array(..., float) stores None as NaN",
        _swap("for rank in range(1, max(map(len, candidates), default=1)):", "range(1, ", "range("):
            "rank 0 refits the classifier's circuit from the naive start: the naive fit, which the kept fit already "
            "matches or beats, so it never replaces it",
        _swap('view[column] = view[column].astype(float).map(lambda v: float(f"{v:.4g}") if np.isfinite(v) else v)',
              "if np.isfinite(v)", "if (np.isfinite(v)) or True"): 'float(f"{v:.4g}") keeps inf and nan as they are',
        _swap("ranked = np.argsort(-probabilities.to_numpy(dtype=float), axis=1)", ", axis=1", ", "):
            "argsort's default axis is the last, which is 1 for the (spectra, classes) array",
        **{_swap(line, old, new): "the frame's columns are then read by name: an extra index column is never used"
           for line, old, new in (("chosen = chosen.reset_index(drop=True)", "True", "False"),
                                  ("chosen = chosen.reset_index(drop=True)", "True", "None"),
                                  ('table = spectra[["spectrum_id", "source", "row", "origin"]].reset_index(drop=True).assign(',
                                   "True", "None"),
                                  ('table = spectra[["spectrum_id", "source", "row", "origin"]].reset_index(drop=True).assign(',
                                   "True", "False"))},
        _swap('weight = valid / np.abs(z) if weighting == "modulus" else valid.astype(float)', "astype(float)", "astype(None)"):
            "numpy's astype(None) is float64",
        _swap("for rank in range(1, max(map(len, candidates), default=1)):", "default=1", "default=2"):
            "the default serves an empty table only, where the extra round fits no spectra "
            "(tests/eis/test_fit_selection.py::test_no_spectra_give_an_empty_fit_table)",
        _swap("best = _fit_once(circuit, omegas, impedances, np.where(usable, initial, data_starts(circuit, omega, z, "
              "*variants[0])), settings, device, limits)", "*variants[0]", ""):
            "the first naive variant (0.8, not reversed) is data_starts' default",
        **{_swap("circuit: Circuit, omega: np.ndarray, z: np.ndarray, exponent: float = 0.8, reverse: bool = False, "
                 "rng: np.random.Generator | None = None", old, new): "a default no caller uses"
           for old, new in (("0.8", "1.8"), ("= False", "= True"), ("bool = False", "bool = None"))},
        _swap("starts = np.concatenate([data_starts(circuit, omega[rows], z[rows], float(rng.uniform(0.55, 1.0)), False, "
              "rng) for _ in range(settings.random_starts)])", "False, rng", "None, rng"):
            "data_starts tests `if reverse`: None is False",
    },
    "assets/cycling/lifemodel.py": {
        **{_swap(line, old, new): "a default no caller uses: fit_and_score passes n_folds and seed"
           for line, old, new in (
               ("def out_of_fold_log10_life(x_train: np.ndarray, life_train: np.ndarray, method: str, n_folds: int = 5,",
                "= 5", "= 6"),
               ("seed: int = 0, groups=None) -> np.ndarray:", "= 0", "= 1"))},
        **{_swap('names += sorted(set(cells["split"]) - {TRAIN, "validation", "test"})', old, new):
           "a set named twice is scored once, in its first place: the masks are a dict keyed by set name"
           for old, new in (('"validation"', '"XXvalidationXX"'), ('"validation"', '"VALIDATION"'),
                            ('"test"}', '"XXtestXX"}'), ('"test"}', '"TEST"}'))},
        _swap('cv_metrics = pd.DataFrame.from_dict(cv, orient="index").rename_axis("model")', '"index"', '"INDEX"'):
            "pandas reads from_dict's orient ignoring case",
        **{_swap(line, "(n, 1)", "(n, 2)"): "the splitters read only the number of rows of X"
           for line in ("return list(splitter.split(np.zeros((n, 1))))",
                        "return list(splitter.split(np.zeros((n, 1)), groups=groups))")},
        _swap("splitter = LeaveOneGroupOut() if len(np.unique(groups)) <= n_folds else GroupKFold(n_splits=n_folds)",
              "<=", "<"): "with as many groups as folds GroupKFold also holds out one group per fold: the same folds",
    },
    "resources/conformal.py": {
        ('return float(inside.mean()) if len(inside) else float("nan")',
         'return float(inside.mean()) if len(inside) else float("NAN")'): 'float("NAN") is nan',
    },
}

# Lines whose mutants that only change letter case are equivalent, with the reason.
CASE_ONLY: dict[str, dict[str, str]] = {
    "assets/pdf/measured.py": {
        **{line: "the tool patterns are searched with re.IGNORECASE" for line in (
            'for tool, pattern in (("xPDFsuite", r"xPDFsuite"), ("PDFgetX3", r"pdfgetx-?3|diffpy\\.pdfgetx"), '
            '("PDFgetX2", r"PDFgetX2"),',
            '("PDFgetN", r"PDFgetN|prep=\\w+"), ("PDFgui", r"PDFgui")):')},
        **{line: "the embedded examples' header is read only by this reader, which matches keys and the marker "
                 "ignoring case and skips comment lines" for line in (
            '"[DEFAULT]", "version = embedded example of the pdf pipeline (synthetic)", f"source = {source}",',
            '"mode = xray", "wavelength = 0.1839", f"composition = {composition}", "qmax = 25.0", "",',
            '"#### start data", "#S 1", "#L r($\\\\AA$)  G($\\\\AA^{-2}$)",')},
    },
}

# Functions left unmutated, with the reason (marked with mutmut's pragmas in the temporary copy only).
SKIP: dict[str, dict[str, str]] = {
    "assets/electrodes/intervals.py": {"interval_parity_markdown": FIGURE},
    "assets/pdf/profiles.py": {"class_mean_figure": FIGURE},
    "assets/eis/fitting.py": {"fit_nyquist_markdown": FIGURE},
}

# Modules of which only these functions are mutated (the new code of a large module); "Class.method" for methods.
ONLY: dict[str, list[str]] = {
    # model selection, intervals and the batch-level CV
    "assets/cycling/lifemodel.py": ["cv_folds", "out_of_fold_log10_life", "select_model", "_score_masks",
                                    "_set_metrics", "training_batches", "fit_and_score", "selected_predictions"],
}

# Packages copied into mutmut's own tree, so every import of the project resolves to the (mutated) copy.
PACKAGES = ["assets", "resources", "orchestration", "benchmarks"]

TIMED_OUT = {36, 24, -24, 152, 255}  # mutmut's codes for a mutant stopped at its time limit (SIGXCPU)
KILLED = {1, 3} | TIMED_OUT  # a failing test, pytest's internal error, a timeout

# Native thread pools in one thread: mutmut forks a child per mutant from a process that has run the tests
# once, and a child forked while OpenMP/MKL worker threads exist can wait forever on a lock one of them held
# (seen: an evidence mutant asleep on a futex until its timeout, which would count it killed).
# The tests' ComputeResource asks torch for 2 threads, so the copy also gets a pytest plugin that holds torch
# at one (seen: a cycling mutant asleep in torch's layer_norm).
SINGLE_THREADED = {name: "1" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                          "NUMEXPR_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")}
STATUS = {0: "survived", 33: "no tests", 5: "no tests", 34: "skipped", None: "not checked"}


def source_files(root: Path) -> list[str]:
    """Tracked files plus untracked ones git does not ignore; every file outside .git when not a repository."""
    try:
        out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=root, check=True,
                             capture_output=True).stdout.decode()
        return [name for name in out.split("\0") if name and (root / name).is_file()]
    except (subprocess.CalledProcessError, FileNotFoundError):
        skip = {".git", ".venv", "__pycache__", "mutants", ".pytest_cache", ".hypothesis"}
        return [str(p.relative_to(root)) for p in root.rglob("*")
                if p.is_file() and not skip.intersection(p.relative_to(root).parts)]


def copy_tree(root: Path, target: Path) -> None:
    for name in source_files(root):
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, destination)


def functions(tree: ast.Module) -> dict[str, ast.AST]:
    """Top-level functions and methods of top-level classes by name ("f", "Class.method")."""
    found = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found[node.name] = node
        elif isinstance(node, ast.ClassDef):
            found.update({f"{node.name}.{item.name}": item for item in node.body
                          if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))})
    return found


def skip_functions(path: Path, names, keep_only: bool = False) -> None:
    """Wrap each named function ("f" or "Class.method") in `# pragma: no mutate start/end` in the copy at
    `path`; with keep_only, every function except the named ones."""
    lines = path.read_text().splitlines()
    found = functions(ast.parse("\n".join(lines)))
    missing = set(names) - set(found)
    if missing:
        raise RuntimeError(f"{path}: no function {', '.join(sorted(missing))}")
    chosen = [node for name, node in found.items() if (name in names) != keep_only]
    spans = []
    for node in chosen:
        start = min([node.lineno] + [d.lineno for d in node.decorator_list])
        spans.append((start, node.end_lineno, " " * node.col_offset))
    for start, end, indent in sorted(spans, reverse=True):
        lines[end:end] = [f"{indent}# pragma: no mutate end", f"{indent}pass"]
        lines[start - 1:start - 1] = [f"{indent}# pragma: no mutate start"]
    path.write_text("\n".join(lines) + "\n")


def only_a_dtype(removed: str, added: str) -> bool:
    """True when the mutation only drops the dtype (float, str, bool, complex) of an asarray/array/to_numpy
    call, or makes it None."""
    def tokens(text):
        try:
            return [t.string for t in tokenize.generate_tokens(io.StringIO(text).readline) if t.string.strip()]
        except (tokenize.TokenError, IndentationError, SyntaxError):
            return None
    before, after = tokens(removed), tokens(added)
    if not before or after is None:
        return False
    changes = [op for op in difflib.SequenceMatcher(None, before, after, autojunk=False).get_opcodes() if op[0] != "equal"]
    if len(changes) != 1:
        return False
    _, i1, i2, j1, j2 = changes[0]
    removed = before[i1:i2]
    removed = removed[1:] if removed[:1] == [","] else removed
    removed = removed[2:] if removed[:2] == ["dtype", "="] else removed
    if removed not in (["float"], ["str"], ["bool"], ["complex"], ["np", ".", "int64"]) or after[j1:j2] not in (["None"], []):
        return False
    depth = 0
    for k in range(i1 - 1, 0, -1):  # the call whose parenthesis holds the dtype
        depth += {")": 1, "]": 1, "(": -1, "[": -1}.get(before[k], 0)
        if depth < 0:
            return before[k] == "(" and (before[k - 1] in ("asarray", "array", "to_numpy")
                                         or before[k - 1] == "astype" and removed == ["float"])  # np.dtype(None) is float64
    return False


DTYPE_ONLY = ("only the dtype argument: every caller passes arrays of that type (float, str, bool, complex) "
              "already, so the values and the comparisons are the same (Python ints become int64 on 64-bit machines)")


THREAD_PLUGIN = "_mutation_one_thread"
THREAD_PLUGIN_SOURCE = '''"""pytest plugin written by benchmarks.mutation: torch stays at one intra-op thread."""
try:
    import torch
except ImportError:
    pass
else:
    torch.set_num_threads(1)
    torch.set_num_threads = lambda n: None
'''


def mutmut_config(module: str, tests: list[str], packages: list[str], timeout_multiplier: float = 5.0,
                  timeout_constant: float = 10.0) -> str:
    """mutmut's configuration. A mutant's time limit is (its tests' own duration + timeout_constant) x
    timeout_multiplier seconds; the constant covers what the per-test durations leave out (module fixtures,
    collection, a loaded machine), so a mutant that changes nothing does not time out."""
    lines = ["[mutmut]", "source_paths ="] + [f"    {p}" for p in packages]
    lines += [f"only_mutate = {module}", "pytest_add_cli_args_test_selection ="] + [f"    {t}" for t in tests]
    lines += ["pytest_add_cli_args =", "    -p", "    no:cacheprovider", "    -p", f"    {THREAD_PLUGIN}", "    -q", "use_git_change_detection = false",
              f"timeout_multiplier = {timeout_multiplier}", f"timeout_constant = {timeout_constant}"]
    return "\n".join(lines) + "\n"


def _lower_priority(pid: int, nice: int) -> None:
    """`nice` for the child's own session (its autogroup), so other work on the machine goes first."""
    try:
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))
    except OSError:
        pass


def run_mutmut(work: Path, patterns: list[str], env: dict, nice: int = 19) -> int:
    command = [sys.executable, "-m", "mutmut", "run", "--max-children", "1", *patterns]
    process = subprocess.Popen(command, cwd=work, env=env, start_new_session=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               preexec_fn=(lambda: os.nice(nice)) if nice else None)
    if nice:
        _lower_priority(process.pid, nice)
    try:
        output, _ = process.communicate()
    except BaseException:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        raise
    text = output.decode(errors="replace")
    if process.returncode != 0:
        print(text[-4000:], file=sys.stderr)
    return process.returncode


# Runs inside the temporary copy (mutmut reads its configuration from the working directory at import).
_DIFFS = textwrap.dedent("""
    import json, sys
    from mutmut.__main__ import get_diff_for_mutant
    names, path = json.loads(sys.argv[1]), sys.argv[2]
    print(json.dumps({name: get_diff_for_mutant(name, path=path) for name in names}))
""")


# Runs inside the temporary copy: mutmut's own generation step, then the names of the module's mutants.
_NAMES = textwrap.dedent("""
    import json, sys
    from os import makedirs
    from pathlib import Path
    from mutmut.__main__ import create_mutants, store_lines_covered_by_tests
    from mutmut.utils.file_utils import copy_also_copy_files, copy_src_dir, setup_source_paths
    makedirs("mutants", exist_ok=True)
    copy_src_dir(); copy_also_copy_files(); setup_source_paths(); store_lines_covered_by_tests(); create_mutants(1)
    print(json.dumps(sorted(json.loads(Path("mutants", sys.argv[1] + ".meta").read_text())["exit_code_by_key"])))
""")


def random_mutants(work: Path, module: str, env: dict, count: int, seed: int) -> tuple[list[str], int]:
    """`count` mutant names drawn uniformly without replacement (seeded), and how many the module has."""
    out = subprocess.run([sys.executable, "-c", _NAMES, module], cwd=work, env=env, capture_output=True, text=True,
                         check=True).stdout
    names = json.loads(out.strip().splitlines()[-1])
    chosen = np.random.default_rng(seed).choice(len(names), size=min(count, len(names)), replace=False)
    return [names[i] for i in sorted(chosen)], len(names)


def mutant_results(work: Path, module: str, env: dict) -> tuple[dict, dict]:
    """Exit code by mutant name, and the diff of every surviving mutant."""
    meta = json.loads((work / "mutants" / (module + ".meta")).read_text())
    codes = meta["exit_code_by_key"]
    alive = [name for name, code in codes.items() if code is not None and code not in KILLED]
    diffs = {}
    if alive:
        out = subprocess.run([sys.executable, "-c", _DIFFS, json.dumps(alive), module], cwd=work, env=env,
                             capture_output=True, text=True, check=True).stdout
        diffs = json.loads(out)
    return codes, diffs


def changed_lines(diff: str) -> tuple[str, str]:
    removed = [line[1:].strip() for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    added = [line[1:].strip() for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
    return " ".join(removed), " ".join(added)


def line_number(source_lines: list[str], diff: str, mutant: str = "") -> int | None:
    """The line of the module that the mutation changes: its first removed line, looked for inside the
    mutated function (named in the mutant: x_f__mutmut_3, xǁClassǁmethod__mutmut_3) first."""
    removed = [line[1:].strip() for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    first = removed[0] if removed else ""
    if not first:
        return None
    span = (1, len(source_lines))
    name = mutant.rsplit(".", 1)[-1].split("__mutmut_")[0]
    name = name[2:] if name.startswith("x_") else name.lstrip("x").replace("ǁ", ".").strip(".")
    try:
        node = functions(ast.parse("\n".join(source_lines))).get(name)
        if node is not None:
            span = (node.lineno, node.end_lineno)
    except SyntaxError:
        pass
    for lines in (range(span[0], span[1] + 1), range(1, len(source_lines) + 1)):
        for number in lines:
            if source_lines[number - 1].strip() == first:
                return number
        for number in lines:
            if first in source_lines[number - 1]:
                return number
    return None


def evaluate(root: Path, module: str, tests: list[str], sample: int | None, keep: bool, nice: int = 19,
             earlier: dict | None = None, timeout_multiplier: float = 5.0, timeout_constant: float = 10.0,
             random: int | None = None, seed: int = 0) -> dict:
    """Mutants of `module` against `tests`; with `earlier` (this module's result in an earlier report, same
    source), only the mutants alive then are run again, and the ones killed then count as killed; with
    `random`, that many mutants drawn uniformly (a module too large to run whole)."""
    if earlier and not earlier["survivors"] + earlier["equivalent_mutants"]:  # nothing alive to run again
        return score(module, tests, earlier["mutants"], earlier["killed"], [], earlier.get("timed_out_mutants", []),
                     earlier.get("population"))
    work = Path(tempfile.mkdtemp(prefix="mutation-"))
    try:
        copy_tree(root, work)
        packages = [p for p in PACKAGES if (work / p).is_dir()] or [module.split("/")[0]]
        plugins = work / ".mutation_plugins"  # a folder of its own on the path: the project resolves to mutants/
        plugins.mkdir()
        (plugins / f"{THREAD_PLUGIN}.py").write_text(THREAD_PLUGIN_SOURCE)
        (work / "setup.cfg").write_text(mutmut_config(module, tests, packages, timeout_multiplier,
                                                           timeout_constant))
        if SKIP.get(module):
            skip_functions(work / module, SKIP[module])
        if ONLY.get(module):
            skip_functions(work / module, ONLY[module], keep_only=True)
        env = dict(os.environ, **SINGLE_THREADED, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND=os.environ.get("KERAS_BACKEND", "tensorflow"),
                   MATERIALS_DATA=str(work / "data"), DAGSTER_HOME=str(work / ".dagster_home"),
                   PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                   PYTHONPATH=os.pathsep.join(filter(None, [str(plugins), os.environ.get("PYTHONPATH")])))
        (work / ".dagster_home").mkdir()
        patterns = [f"*__mutmut_{i}" for i in range(1, sample + 1)] if sample else []
        population = None
        if random and not earlier:
            patterns, population = random_mutants(work, module, env, random, seed)
        if earlier:
            skipped = [f".x_{name}__mutmut_" for name in SKIP.get(module, {})]
            patterns = [entry["mutant"] for entry in earlier["survivors"] + earlier["equivalent_mutants"]
                        if not any(part in entry["mutant"] for part in skipped)]
        status = run_mutmut(work, patterns, env, nice) if patterns or not earlier else 0
        meta = work / "mutants" / (module + ".meta")
        if status != 0 or not meta.is_file():
            raise RuntimeError(f"mutmut stopped on {module} (exit {status})")
        codes, diffs = mutant_results(work, module, env)
    finally:
        if keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    source_lines = (root / module).read_text().splitlines()
    checked = {name: code for name, code in codes.items() if code is not None}
    alive = []
    for name in sorted(diffs, key=lambda n: (n.rsplit("_", 1)[0], int(n.rsplit("_", 1)[1]))):
        removed, added = changed_lines(diffs[name])
        alive.append({"mutant": name, "status": STATUS.get(checked[name], "suspicious"),
                      "line": line_number(source_lines, diffs[name], name), "removed": removed, "added": added,
                      "diff": diffs[name]})
    killed = sum(code in KILLED for code in checked.values())
    timed_out = sorted(name for name, code in checked.items() if code in TIMED_OUT)
    if earlier:
        # mutants alive then that no longer exist (a function now in SKIP) leave the count; any other change
        # of the count means the source changed
        gone = [e for e in earlier["survivors"] + earlier["equivalent_mutants"] if e["mutant"] not in codes]
        total = earlier.get("population", earlier["mutants"])
        if len(codes) != total - len(gone):
            raise RuntimeError(f"{module} has {len(codes)} mutants now, {total - len(gone)} in the "
                               "earlier report: its source changed, run it in full")
        return score(module, tests, earlier["mutants"] - len(gone), earlier["killed"] + killed, alive,
                     earlier.get("timed_out_mutants", []) + timed_out, total - len(gone))
    return score(module, tests, len(checked), killed, alive, timed_out, population or len(checked))


def score(module: str, tests: list[str], n_mutants: int, killed: int, alive: list[dict],
          timed_out: list[str] = (), population: int | None = None) -> dict:
    """Split the live mutants into survivors and equivalent ones (EQUIVALENT, CASE_ONLY, dtype-only)."""
    survivors, equivalent = [], []
    for entry in alive:
        entry = {key: value for key, value in entry.items() if key != "reason"}
        reason = equivalence(module, entry["removed"], entry["added"])
        if reason:
            equivalent.append(dict(entry, reason=reason))
        else:
            survivors.append(entry)
    counted = n_mutants - len(equivalent)
    population = population or n_mutants
    if population > n_mutants and counted:  # a random sample: Wilson's 95 % interval of the killed share
        share, z = killed / counted, 1.96
        centre = (share + z * z / (2 * counted)) / (1 + z * z / counted)
        half = z * np.sqrt(share * (1 - share) / counted + z * z / (4 * counted**2)) / (1 + z * z / counted)
        interval = [round(float(100 * (centre - half)), 1), round(float(100 * (centre + half)), 1)]
    else:
        interval = None
    return {"module": module, "tests": tests, "mutants": n_mutants, "killed": killed,
            "timed_out": len(timed_out), "timed_out_mutants": list(timed_out),
            "equivalent": len(equivalent), "survived": len(survivors),
            "killed_percent": round(100 * killed / counted, 1) if counted else float("nan"),
            "population": population, "killed_percent_interval95": interval,
            "survivors": survivors, "equivalent_mutants": equivalent}


def equivalence(module: str, removed: str, added: str) -> str | None:
    reason = EQUIVALENT.get(module, {}).get((removed, added))
    if reason is None and removed in CASE_ONLY.get(module, {}) and added.lower() == removed.lower():
        reason = CASE_ONLY[module][removed]
    if reason is None and only_a_dtype(removed, added):
        reason = DTYPE_ONLY
    return reason


def _interrupted(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    if threading.current_thread() is not threading.main_thread():
        return _main(argv)
    # SIGTERM, and SIGINT even where a shell started us with it ignored: stop mutmut, remove the copy
    previous = {number: signal.signal(number, _interrupted) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        return _main(argv)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--module", action="append", help="a module of TARGETS (repeatable; default all)")
    parser.add_argument("--target", action="append", default=[], metavar="MODULE=TEST[,TEST]",
                        help="a module and its test files not in TARGETS (repeatable)")
    parser.add_argument("--root", type=Path, default=ROOT, help="the source tree (default: this repository)")
    parser.add_argument("--sample", type=int, help="only the first K mutants of each function")
    parser.add_argument("--random", type=int, metavar="N",
                        help="only N mutants drawn uniformly from the module's (seeded by --seed); the killed share "
                             "is then reported with its 95 %% interval")
    parser.add_argument("--seed", type=int, default=0, help="of --random (default 0)")
    parser.add_argument("--report", type=Path, help="write the results as JSON here")
    parser.add_argument("--timeout-multiplier", type=float, default=5.0,
                        help="a mutant times out (counts as killed) past this many times its tests' own time "
                             "plus the constant (default 5)")
    parser.add_argument("--timeout-constant", type=float, default=10.0,
                        help="seconds added to the tests' own time before the multiplier (default 10)")
    parser.add_argument("--nice", type=int, default=19, help="priority of the mutmut run (default 19; 0 leaves it)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy (to inspect mutants/)")
    parser.add_argument("--resume", type=Path, metavar="REPORT",
                        help="run only the mutants alive in an earlier --report (its modules' sources unchanged since)")
    parser.add_argument("--rescore", type=Path, metavar="REPORT",
                        help="no run: classify the live mutants of an earlier --report again (after editing EQUIVALENT)")
    args = parser.parse_args(argv)

    targets = {}
    for spec in args.target:
        module, _, tests = spec.partition("=")
        targets[module] = tests.split(",")
    for module in args.module or ([] if targets else list(TARGETS)):
        if module not in TARGETS:
            parser.error(f"unknown module {module}; known: {', '.join(TARGETS)}")
        targets[module] = TARGETS[module]

    results = []
    earlier = {r["module"]: r for r in json.loads(args.rescore.read_text())} if args.rescore else {}
    resumed = {r["module"]: r for r in json.loads(args.resume.read_text())} if args.resume else {}
    for module, tests in (earlier.items() if args.rescore and not args.module else targets.items()):
        if args.rescore:
            old = earlier[module]
            result = score(module, old["tests"], old["mutants"], old["killed"],
                           old["survivors"] + old["equivalent_mutants"], old.get("timed_out_mutants", []),
                           old.get("population"))
        else:
            try:
                result = evaluate(args.root.resolve(), module, tests, args.sample, args.keep, args.nice,
                                  resumed.get(module), args.timeout_multiplier, args.timeout_constant, args.random,
                                  args.seed)
            except (RuntimeError, subprocess.CalledProcessError) as error:
                print(f"{module}: mutmut could not run: {error}", file=sys.stderr)
                return 1
        results.append(result)
        print(f"== {module} (tests: {' '.join(result['tests'])})")
        print(f"mutants: {result['mutants']}  killed: {result['killed']} (timed out: {result['timed_out']})"
              f"  survived: {result['survived']}"
              f"  equivalent: {result['equivalent']}")
        if result["population"] > result["mutants"]:
            print(f"a uniform sample of {result['mutants']} of {result['population']} mutants; killed percent "
                  f"95 % interval: {result['killed_percent_interval95']}")
        for entry in result["survivors"]:
            print(f"  {module}:{entry['line']} {entry['status']}: {entry['removed']}  ->  {entry['added']}")
        for entry in result["equivalent_mutants"]:
            print(f"  {module}:{entry['line']} equivalent ({entry['reason']}): {entry['removed']}  ->  {entry['added']}")
        sys.stdout.flush()
        if args.report:  # after every module: an interrupted run keeps the modules it finished
            args.report.parent.mkdir(parents=True, exist_ok=True)
            args.report.write_text(json.dumps(results, indent=1))
    for result in results:
        print(f"killed_percent_{result['module']}: {result['killed_percent']}")
    print(f"killed_percent_min: {min(r['killed_percent'] for r in results)}")
    return 0


if __name__ == "__main__":
    from benchmarks import results

    raise SystemExit(results.run(main, "mutation"))
