"""Spectra per second: our vectorised circuit evaluation versus impedance.py per spectrum.

Headline (last line): the same work on both sides, Z of given circuits at given
frequencies. `simulator_*` also counts what impedance.py does not do (drawing
parameters and grids, adding noise).

Both evaluate the nine classes on the same parameters and the same per-spectrum
frequency grids (24..83 points); impedance.py's `CustomCircuit.predict` is called once
per spectrum (its Ws has exponent 0.5, so Rs_Ws spectra use W1_p = 0.5 on both sides).
Like with like: both sides evaluate the same spectra (`--reference-per-class` defaults
to `--per-class`), each after an untimed warm-up pass, best of `--repeats` passes.
Every reference spectrum is compared with ours; a relative difference above 1e-9
exits 2.

    python -m benchmarks.eis_simulation [--per-class 2000] [--reference-per-class N] [--repeats 3]
"""

import argparse
import sys
import time

import numpy as np


def _simulator_rate(settings, repeats: int) -> float:
    """Whole simulator (parameters, grids, Z, noise) in spectra per second."""
    from assets.eis.simulate import simulate_all

    rng = np.random.default_rng(1)
    started = time.perf_counter()
    for _ in range(repeats):
        simulate_all(settings, rng)
    return repeats * settings.spectra_per_class * 9 / (time.perf_counter() - started)


def _our_rate(batches, repeats: int) -> tuple[float, int]:
    """(spectra per second, spectra per pass) for circuit evaluation alone on the stored batches:
    one untimed warm-up pass, then the best of `repeats` timed passes."""

    def one_pass():
        for batch in batches:
            batch.circuit.impedance({k: v[:, None] for k, v in batch.parameters.items()}, batch.omega)

    one_pass()  # warm-up, not counted
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        one_pass()
        best = min(best, time.perf_counter() - started)
    spectra = sum(len(b.n_points) for b in batches)
    return spectra / best, spectra


def _reference_rate(batches, per_class: int, repeats: int) -> tuple[float, int, float]:
    """(spectra per second, spectra per pass, largest relative difference to ours) for impedance.py:
    one untimed warm-up pass (which also checks every spectrum against ours), then the best of
    `repeats` timed passes over the same spectra."""
    from impedance.models.circuits import CustomCircuit

    from assets.eis.circuits import IMPEDANCE_PY_CIRCUITS

    work = []  # (circuit, ordered parameter names, batch, index)
    for batch in batches:
        string, order = IMPEDANCE_PY_CIRCUITS[batch.circuit.name]
        circuit = CustomCircuit(string, initial_guess=[1.0] * len(order))
        work += [(circuit, order, batch, i) for i in range(min(per_class, len(batch.n_points)))]

    def predict(circuit, order, batch, i):
        omega = batch.omega[i, : batch.n_points[i]]
        circuit.initial_guess = [float(batch.parameters[name][i]) for name in order]
        return omega, circuit.predict(omega / (2 * np.pi), use_initial=True)

    worst = 0.0
    for circuit, order, batch, i in work:  # warm-up pass, not timed: agreement with ours
        omega, reference = predict(circuit, order, batch, i)
        ours = batch.circuit.impedance({k: v[i] for k, v in batch.parameters.items()}, omega)
        worst = max(worst, float(np.max(np.abs(ours - reference) / np.abs(reference))))
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for item in work:
            predict(*item)
        best = min(best, time.perf_counter() - started)
    return len(work) / best, len(work), worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=2000)
    parser.add_argument("--reference-per-class", type=int, default=None,
                        help="impedance.py spectra per class (default: --per-class, the same spectra as ours)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    reference_per_class = args.per_class if args.reference_per_class is None else args.reference_per_class

    from assets.eis.circuits import CIRCUITS
    from assets.eis.simulate import SimulationSettings, simulate_all, simulate_class

    rng = np.random.default_rng(0)
    settings = SimulationSettings(spectra_per_class=args.per_class, noise_relative_std=0.0)
    batches = [simulate_class(CIRCUITS[name], args.per_class, settings, rng) for name in sorted(CIRCUITS)]
    for batch in batches:
        if "W1_p" in batch.parameters:
            batch.parameters["W1_p"][:] = 0.5
    ours, spectra_ours = _our_rate(batches, args.repeats)
    simulate_all(settings, np.random.default_rng(1))  # simulator warm-up, not counted
    simulator = _simulator_rate(settings, args.repeats)
    reference, spectra_reference, worst = _reference_rate(batches, reference_per_class, args.repeats)
    print(f"spectra_ours: {spectra_ours} per pass, best of {args.repeats} after 1 warm-up pass")
    print(f"spectra_reference: {spectra_reference} per pass, best of {args.repeats} after 1 warm-up pass")
    print(f"max_relative_difference: {worst:.3g}")
    print(f"simulator_spectra_per_s: {simulator:.1f}")
    print(f"simulator_speedup_vs_impedance_py: {simulator / reference:.1f}")
    print(f"impedance_py_spectra_per_s: {reference:.1f}")
    print(f"evaluation_spectra_per_s: {ours:.1f}")
    print(f"evaluation_speedup_vs_impedance_py: {ours / reference:.1f}")
    if not worst <= 1e-9:
        print(f"ours differs from impedance.py by {worst:.3g} (relative) > 1e-9", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    from benchmarks import results

    raise SystemExit(results.run(main, "eis_simulation"))
