"""Batched torch circuit fitting versus impedance.py's CustomCircuit.fit, one spectrum at a time.

    python -m benchmarks.ecm_fitting                 # CPU, 60 spectra per class, 10 per class for impedance.py
    python -m benchmarks.ecm_fitting --device cuda   # our side on the GPU
    python -m benchmarks.ecm_fitting --full          # 1000 per class, 20 per class for impedance.py

Both sides fit the same simulated noisy spectra (all nine classes, 0.5 % noise) with the
same circuits, modulus weighting and the same starts: "regressor-like" (the true values
times a log-normal factor, sigma 0.3 in ln, exponents exact; what a decent parameter
regressor gives) and "naive" (the centre of each kind's simulated range). impedance.py
(curve_fit with its defaults ftol=1e-13, maxfev=1e5) runs on the first spectra of each
class, taking from 0.1 s to minutes per spectrum; a fit is stopped after 30 s and counts
as not reproducing with 30 s (so its rate is overestimated and the ratio underestimated); its rate is one over the mean of the
per-class mean seconds per spectrum (classes weigh equally, as in our batch), ours is all
spectra over the total time. A fit reproduces its spectrum when its
relative residual ||Z_fit - Z|| / ||Z|| is at most 0.03 (noise alone gives about 0.007).
Prints `name: value` lines, the headline ratio (regressor-like start, CPU) last.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import time
import warnings

import numpy as np

from assets.eis.circuits import CIRCUITS, Circuit, warburg_short
from assets.eis.fitting import FitSettings, fit_circuit, naive_start, relative_residual
from assets.eis.simulate import SimulationSettings, simulate_class

# impedance.py circuit strings; ours names the parameters in impedance.py's order.
REFERENCE_CIRCUITS: dict[str, tuple[str, list[str]]] = {
    "L-R-RCPE": ("L0-R0-p(R1,CPE1)", ["L1", "R1", "R2", "CPE1_C", "CPE1_t"]),
    "L-R-RCPE-RCPE": (
        "L0-R0-p(R1,CPE1)-p(R2,CPE2)",
        ["L1", "R1", "R2", "CPE1_C", "CPE1_t", "R3", "CPE2_C", "CPE2_t"],
    ),
    "L-R-RCPE-RCPE-RCPE": (
        "L0-R0-p(R1,CPE1)-p(R2,CPE2)-p(R3,CPE3)",
        ["L1", "R1", "R2", "CPE1_C", "CPE1_t", "R3", "CPE2_C", "CPE2_t", "R4", "CPE3_C", "CPE3_t"],
    ),
    "RC-G-G": ("p(R1,C1)-G1-G2", ["R1", "C1", "R_g1", "t_g1", "R_g2", "t_g2"]),
    "RC-RC-RCPE-RCPE": (
        "p(R1,C1)-p(R2,C2)-p(R3,CPE3)-p(R4,CPE4)",
        ["R1", "C1", "R2", "C2", "R3", "CPE3_C", "CPE3_t", "R4", "CPE4_C", "CPE4_t"],
    ),
    "RCPE-RCPE": ("p(R1,CPE1)-p(R2,CPE2)", ["R1", "CPE1_C", "CPE1_t", "R2", "CPE2_C", "CPE2_t"]),
    "RCPE-RCPE-RCPE": (
        "p(R1,CPE1)-p(R2,CPE2)-p(R3,CPE3)",
        ["R1", "CPE1_C", "CPE1_t", "R2", "CPE2_C", "CPE2_t", "R3", "CPE3_C", "CPE3_t"],
    ),
    "RCPE-RCPE-RCPE-RCPE": (
        "p(R1,CPE1)-p(R2,CPE2)-p(R3,CPE3)-p(R4,CPE4)",
        ["R1", "CPE1_C", "CPE1_t", "R2", "CPE2_C", "CPE2_t", "R3", "CPE3_C", "CPE3_t", "R4", "CPE4_C", "CPE4_t"],
    ),
    "Rs_Ws": ("R0-Wfree1", ["R1", "W1_R", "W1_T", "W1_p"]),
}
CONVERGED_RESIDUAL = 0.03
START_SPREAD_LN = 0.3
REFERENCE_CAP_S = 3.0  # an impedance.py fit still running then is stopped and counts as not reproducing (--full: 30 s)


class FitTimeout(Exception):
    pass


def _raise_timeout(signum, frame):
    raise FitTimeout


def register_free_exponent_warburg() -> None:
    """impedance.py's Ws fixes p = 0.5; `Wfree` frees it, evaluated by our formula (Hz -> rad/s).

    The name avoids "p" and "s", which impedance.py's circuit parser strips from names.
    """
    from impedance.models.circuits import elements

    @elements.element(num_params=3, units=["Ohm", "sec", ""], overwrite=True)
    def Wfree(p, f):
        return warburg_short(p[0], p[1], p[2], 2 * np.pi * np.asarray(f))


def regressor_like_start(circuit: Circuit, truth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    factor = np.exp(rng.normal(0.0, START_SPREAD_LN, truth.shape))
    return np.where(np.array(circuit.log_scaled), truth * factor, truth)


def simulated_problems(per_class: int, seed: int):
    """{circuit: (circuit, omegas, impedances, starts by name)} for every class."""
    rng = np.random.default_rng(seed)
    problems = {}
    for name, circuit in CIRCUITS.items():
        batch = simulate_class(circuit, per_class, SimulationSettings(), rng)
        omegas = [batch.omega[i, :n] for i, n in enumerate(batch.n_points)]
        impedances = [batch.impedance[i, :n] for i, n in enumerate(batch.n_points)]
        truth = np.stack([batch.parameters[p] for p in circuit.parameters], axis=1)
        starts = {"regressor_like": regressor_like_start(circuit, truth, rng), "naive": naive_start(circuit, per_class)}
        problems[name] = (circuit, omegas, impedances, starts)
    return problems


def fit_ours(problems, start: str, device: str) -> tuple[float, float, int]:
    """(spectra per second, reproduced share, spectra) over all classes, one batch per class (warm: one
    untimed fit of the first class first, as the reference side's imports and first call are untimed)."""
    first = next(iter(problems.values()))
    fit_circuit(first[0], first[1][:2], first[2][:2], first[3][start][:2], FitSettings(converged_residual=CONVERGED_RESIDUAL), device)
    settings = FitSettings(converged_residual=CONVERGED_RESIDUAL)
    seconds, converged, count = 0.0, 0, 0
    for circuit, omegas, impedances, starts in problems.values():
        began = time.perf_counter()
        result = fit_circuit(circuit, omegas, impedances, starts[start], settings, device)
        seconds += time.perf_counter() - began
        converged += int(result.reproduces.sum())
        count += len(omegas)
    return count / seconds, converged / count, count


def fit_reference_one(circuit: Circuit, omega, z, start: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """impedance.py's fitted values and their standard errors (`conf_`) in our parameter order, or None
    when its fit raises."""
    from impedance.models.circuits import CustomCircuit

    text, order = REFERENCE_CIRCUITS[circuit.name]
    position = {name: k for k, name in enumerate(circuit.parameters)}
    guess = [float(start[position[name]]) for name in order]
    model = CustomCircuit(text, initial_guess=guess)
    signal.signal(signal.SIGALRM, _raise_timeout)
    signal.setitimer(signal.ITIMER_REAL, REFERENCE_CAP_S)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(omega / (2 * math.pi), z, weight_by_modulus=True)
    except (RuntimeError, ValueError, np.linalg.LinAlgError, FitTimeout):
        return None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    fitted, errors = np.empty(len(order)), np.empty(len(order))
    for name, value, error in zip(order, model.parameters_, model.conf_):
        fitted[position[name]], errors[position[name]] = value, error
    return fitted, errors


SAME_SOLUTION = 0.01  # both fits' values within 1 % of each other: the same minimum


def standard_error_ratios(values, errors, reference_values, reference_errors) -> list[float]:
    """Our standard error over impedance.py's `conf_`, per parameter where both fits reached the same
    value and both errors are finite and positive (same order of parameters)."""
    values, reference_values = np.asarray(values, float), np.asarray(reference_values, float)
    same = np.abs(values - reference_values) <= SAME_SOLUTION * np.abs(reference_values)
    usable = same & np.isfinite(errors) & np.isfinite(reference_errors) & (np.asarray(errors) > 0) & (np.asarray(reference_errors) > 0)
    return (np.asarray(errors)[usable] / np.asarray(reference_errors)[usable]).tolist()


def fit_reference(problems, start: str, per_class: int) -> tuple[float, float, int]:
    first = next(iter(problems.values()))
    fit_reference_one(first[0], first[1][0], first[2][0], first[3][start][0])  # warm-up, untimed
    class_seconds, converged, count = [], 0, 0
    for circuit, omegas, impedances, starts in problems.values():
        n = min(per_class, len(omegas))
        began = time.perf_counter()
        for i in range(n):
            fitted = fit_reference_one(circuit, omegas[i], impedances[i], starts[start][i])
            if fitted is not None:
                residual = relative_residual(circuit, fitted[0][None, :], [omegas[i]], [impedances[i]])[0]
                converged += int(residual <= CONVERGED_RESIDUAL)
        class_seconds.append((time.perf_counter() - began) / n)
        count += n
        print(f"impedance.py {start} {circuit.name}: {class_seconds[-1]:.2f} s per spectrum", file=sys.stderr, flush=True)
    return 1 / float(np.mean(class_seconds)), converged / count, count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="1000 spectra per class, 5 per class for impedance.py")
    parser.add_argument("--per-class", type=int, default=None, help="our spectra per class (default 60; 1000 with --full)")
    parser.add_argument("--reference-per-class", type=int, default=None, help="impedance.py spectra per class (default 1)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: one core each side, as impedance.py)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    per_class = args.per_class or (1000 if args.full else 60)
    reference_per_class = args.reference_per_class or (20 if args.full else 10)
    global REFERENCE_CAP_S
    REFERENCE_CAP_S = 30.0 if args.full else REFERENCE_CAP_S
    register_free_exponent_warburg()
    problems = simulated_problems(per_class, args.seed)
    import torch

    torch.set_num_threads(args.threads)
    print(f"device: {args.device}")
    print(f"torch_threads: {torch.get_num_threads()}")
    ratios = {}
    for start in ("naive", "regressor_like"):
        ours_rate, ours_share, ours_count = fit_ours(problems, start, args.device)
        reference_rate, reference_share, reference_count = fit_reference(problems, start, reference_per_class)
        ratios[start] = ours_rate / reference_rate
        print(f"{start}_ours_spectra: {ours_count}")
        print(f"{start}_ours_spectra_per_s: {ours_rate:.1f}")
        print(f"{start}_ours_reproduces_share: {ours_share:.3f} ({round(ours_share * ours_count)}/{ours_count})")
        print(f"{start}_impedance_py_spectra: {reference_count}")
        print(f"{start}_impedance_py_spectra_per_s: {reference_rate:.2f}")
        print(f"{start}_impedance_py_reproduces_share: {reference_share:.3f} ({round(reference_share * reference_count)}/{reference_count})")
        print(f"{start}_speedup: {ratios[start]:.1f}")
    print(f"speedup_ours_over_impedance_py: {ratios['regressor_like']:.1f}")
    return 0


if __name__ == "__main__":
    from benchmarks import results

    raise SystemExit(results.run(main, "ecm_fitting"))
