"""benchmarks.gpu section eis: batched Levenberg-Marquardt fits on the device and the CPU."""

from __future__ import annotations

import dataclasses

import numpy as np

from benchmarks.gpu.harness import (
    EIS_COST_RTOL,
    EIS_REPRODUCES_SHARE_TOLERANCE,
    Context,
    cpu_threads,
    timed,
)


def eis_classes(per_class: int, seed: int, circuits: int = 0):
    """[(circuit, omegas list, impedances list)] for the first `circuits` classes by name (0: all), no padding."""
    from assets.eis.circuits import CIRCUITS
    from assets.eis.simulate import SimulationSettings, simulate_class

    rng = np.random.default_rng(seed)
    classes = []
    for name in sorted(CIRCUITS)[:circuits or None]:
        batch = simulate_class(CIRCUITS[name], per_class, SimulationSettings(), rng)
        classes.append((batch.circuit, [batch.omega[i, :n] for i, n in enumerate(batch.n_points)],
                        [batch.impedance[i, :n] for i, n in enumerate(batch.n_points)]))
    return classes


def fit_classes(classes, device: str, settings=None):
    """fit_circuit per class from the naive start (what fit_spectra does without initial values)."""
    from assets.eis.fitting import FitSettings, fit_circuit

    settings = settings or FitSettings()
    return [fit_circuit(circuit, omegas, impedances, np.full((len(omegas), len(circuit.parameters)), np.nan),
                        settings, device) for circuit, omegas, impedances in classes]


def numpy_cost_difference(classes, results, limit: int = 2000) -> float:
    """Largest relative difference between torch's weighted cost and the numpy formulas' (modulus weighting)."""
    from assets.eis.fitting import circuit_impedance

    worst = 0.0
    per_class = max(1, limit // max(1, len(classes)))
    for (circuit, omegas, impedances), result in zip(classes, results):
        for values, omega, z, cost in list(zip(result.parameters, omegas, impedances, result.weighted_cost))[:per_class]:
            reference = float(np.sum(np.abs((circuit_impedance(circuit, values, omega) - z) / z) ** 2))
            if not (np.isfinite(reference) and np.isfinite(cost)):
                if np.isfinite(reference) != np.isfinite(cost):
                    return float("inf")
                continue
            worst = max(worst, abs(cost - reference) / max(reference, 1e-300))
    return worst


def reproduces_share(results) -> float:
    return float(np.concatenate([r.reproduces for r in results]).mean())


def section_eis(ctx: Context) -> None:
    from assets.eis.fitting import FitSettings

    report, sizes, section = ctx.report, ctx.sizes, "eis"
    classes = eis_classes(sizes.eis_per_class, seed=0, circuits=sizes.eis_circuits)
    n = sum(len(omegas) for _, omegas, _ in classes)
    warm = eis_classes(2, seed=1, circuits=1)  # first calls: vmap/jvp set-up, allocator, CUDA context
    warm_settings = dataclasses.replace(FitSettings(), max_iterations=5)
    report.figure(section, "spectra_each_side", n, f"{len(classes)} circuit classes, naive start, LM, "
                                                   f"{FitSettings().dtype}")
    rates, results = {}, {}
    for role, torch_device in ctx.sides():
        with cpu_threads(ctx.n_cores):
            fit_classes(warm, torch_device, warm_settings)
            seconds, results[role] = timed(lambda: fit_classes(classes, torch_device), torch_device)
        rates[role] = n / seconds
    device_rate = rates["device"]
    report.figure(section, "device_spectra_per_s", device_rate, f"torch on {ctx.device}")
    report.figure(section, "device_reproduces_share", reproduces_share(results["device"]))
    if ctx.two_sides:
        report.figure(section, "cpu_spectra_per_s", rates["cpu"], f"torch on the CPU, {ctx.n_cores} threads")
        report.figure(section, "cpu_reproduces_share", reproduces_share(results["cpu"]))
        report.speedup(section, device_rate, rates["cpu"], f"{n} spectra each side")
    checks = [("cost_max_relative_difference_torch_vs_numpy",
               numpy_cost_difference(classes, results["device"]), EIS_COST_RTOL[FitSettings().dtype])]
    if ctx.two_sides:
        checks.append(("reproduces_share_difference_device_vs_cpu",
                       abs(reproduces_share(results["device"]) - reproduces_share(results["cpu"])),
                       EIS_REPRODUCES_SHARE_TOLERANCE))
    report.agreement(section, checks)

    def scale():
        rate = device_rate
        for total in sizes.eis_scale_totals:
            if not ctx.scale_allowed(section, str(total), total / rate + total * 2e-5):  # + simulation time
                break
            big = eis_classes(total // len(classes), seed=2, circuits=sizes.eis_circuits)
            count = sum(len(omegas) for _, omegas, _ in big)
            seconds, fitted = timed(lambda: fit_classes(big, ctx.device), ctx.device)
            rate = count / seconds
            report.figure(section, f"scale_{total}_device_spectra_per_s", rate, f"{count} spectra")
            report.figure(section, f"scale_{total}_device_reproduces_share", reproduces_share(fitted))

    if ctx.two_sides and sizes.eis_scale_totals:
        ctx.defer(section, scale)
