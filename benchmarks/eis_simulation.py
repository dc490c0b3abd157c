"""Spectra per second: our vectorised circuit evaluation versus impedance.py per spectrum.

Headline (last line): the same work on both sides, Z of given circuits at given
frequencies. `simulator_*` also counts what impedance.py does not do (drawing
parameters and grids, adding noise).

Both evaluate the nine classes on the same parameters and the same per-spectrum
frequency grids (24..83 points); impedance.py's `CustomCircuit.predict` is called once
per spectrum (its Ws has exponent 0.5, so Rs_Ws spectra use W1_p = 0.5 on both sides).
The reference runs on a subset (it is slow) and is scaled to a rate.

    python -m benchmarks.eis_simulation [--per-class 2000] [--reference-per-class 40]
"""

import argparse
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


def _our_rate(batches, repeats: int) -> float:
    """Circuit evaluation alone on the stored batches, in spectra per second."""
    started = time.perf_counter()
    for _ in range(repeats):
        for batch in batches:
            batch.circuit.impedance({k: v[:, None] for k, v in batch.parameters.items()}, batch.omega)
    elapsed = time.perf_counter() - started
    return repeats * sum(len(b.n_points) for b in batches) / elapsed


def _reference_rate(batches, per_class: int) -> tuple[float, float]:
    """(spectra per second, largest relative difference to ours) for impedance.py."""
    from impedance.models.circuits import CustomCircuit

    from assets.eis.circuits import IMPEDANCE_PY_CIRCUITS

    count, elapsed, worst = 0, 0.0, 0.0
    for batch in batches:
        string, order = IMPEDANCE_PY_CIRCUITS[batch.circuit.name]
        circuit = CustomCircuit(string, initial_guess=[1.0] * len(order))
        for i in range(min(per_class, len(batch.n_points))):
            omega = batch.omega[i, : batch.n_points[i]]
            started = time.perf_counter()
            circuit.initial_guess = [float(batch.parameters[name][i]) for name in order]
            reference = circuit.predict(omega / (2 * np.pi), use_initial=True)
            elapsed += time.perf_counter() - started
            count += 1
            ours = batch.circuit.impedance({k: v[i] for k, v in batch.parameters.items()}, omega)
            worst = max(worst, float(np.max(np.abs(ours - reference) / np.abs(reference))))
    return count / elapsed, worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=2000)
    parser.add_argument("--reference-per-class", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from assets.eis.circuits import CIRCUITS
    from assets.eis.simulate import SimulationSettings, simulate_class

    rng = np.random.default_rng(0)
    settings = SimulationSettings(spectra_per_class=args.per_class, noise_relative_std=0.0)
    batches = [simulate_class(CIRCUITS[name], args.per_class, settings, rng) for name in sorted(CIRCUITS)]
    for batch in batches:
        if "W1_p" in batch.parameters:
            batch.parameters["W1_p"][:] = 0.5
    ours = _our_rate(batches, args.repeats)
    simulator = _simulator_rate(settings, args.repeats)
    reference, worst = _reference_rate(batches, args.reference_per_class)
    print(f"spectra_ours: {args.per_class * len(batches)}")
    print(f"spectra_reference: {min(args.reference_per_class, args.per_class) * len(batches)}")
    print(f"max_relative_difference: {worst:.3g}")
    print(f"simulator_spectra_per_s: {simulator:.1f}")
    print(f"simulator_speedup_vs_impedance_py: {simulator / reference:.1f}")
    print(f"impedance_py_spectra_per_s: {reference:.1f}")
    print(f"evaluation_spectra_per_s: {ours:.1f}")
    print(f"evaluation_speedup_vs_impedance_py: {ours / reference:.1f}")


if __name__ == "__main__":
    main()
