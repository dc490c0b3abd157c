"""benchmarks.gpu section diffraction: radial_profiles_torch against the numpy radial_profiles."""

from __future__ import annotations

import numpy as np

from benchmarks.gpu.harness import (
    DIFFRACTION_RELATIVE_TOLERANCE,
    Context,
    cpu_threads,
    timed,
)


def diffraction_inputs(per_phase: int, seed: int):
    """Per phase: keyword arguments of radial_profiles as the simulation asset calls it (with augmentation)."""
    from assets.diffraction.phases import load_phase, sample_orientations
    from assets.diffraction.requests import SimulationRequest
    from assets.diffraction.simulation import geometry_of
    from assets.diffraction.simulator import phase_reflections

    request = SimulationRequest()
    geometry = geometry_of(request)
    arguments = []
    for index, name in enumerate(request.phases):
        phase = load_phase(name)
        rng = np.random.default_rng([seed, index])
        count = per_phase
        drops = rng.integers(1, request.augmentation.remove_brightest_max + 1, count)
        arguments.append(dict(
            reflections=phase_reflections(phase, request.reciprocal_radius_inv_A),
            quaternions=sample_orientations(phase, count, rng),
            geometry=geometry,
            pixel_size_inv_A=request.calibration_inv_A_per_px * (1 + rng.uniform(-1, 1, count)
                                                                 * request.calibration_jitter),
            n_bins=request.radial_bins,
            sigma_px=request.spot_sigma_px,
            lattice_scale=rng.uniform(*request.scaling_range(name), count),
            drop_counts=np.where(rng.random(count) < request.augmentation.remove_brightest_probability, drops, 0),
        ))
    return arguments


def head(arguments: list[dict], count: int) -> list[dict]:
    """The first `count` patterns of every phase."""
    per_pattern = ("quaternions", "pixel_size_inv_A", "lattice_scale", "drop_counts")
    return [{k: (v[:count] if k in per_pattern else v) for k, v in a.items()} for a in arguments]


def section_diffraction(ctx: Context) -> None:
    from assets.diffraction.simulator import radial_profiles
    from assets.diffraction.simulator_torch import radial_profiles_torch

    report, sizes, section = ctx.report, ctx.sizes, "diffraction"
    arguments = diffraction_inputs(sizes.diffraction_per_phase, seed=0)
    n = sum(len(a["quaternions"]) for a in arguments)
    warm = head(arguments, 8)

    def numpy_run(items):
        return np.concatenate([radial_profiles(**a) for a in items])

    def torch_run(items, device, batch, precision="auto"):
        return np.concatenate([radial_profiles_torch(**a, batch_size=batch, device=device, precision=precision)
                               for a in items])

    report.figure(section, "patterns_each_side", n, f"{len(arguments)} phases, "
                                                    f"{arguments[0]['n_bins']} bins, augmentation on")
    with cpu_threads(1):
        numpy_run(warm)
        numpy_seconds, reference = timed(lambda: numpy_run(arguments))
    with cpu_threads(ctx.n_cores):
        torch_run(warm, ctx.device, sizes.diffraction_device_batch)
        device_seconds, on_device = timed(lambda: torch_run(arguments, ctx.device, sizes.diffraction_device_batch),
                                          ctx.device)
        # The precision "auto" did not pick (float32 on CUDA, float64 on the CPU), for its rate and the agreement.
        precision = "float32" if ctx.device == "cuda" else "float64"
        other = {"float32": "float64", "float64": "float32"}[precision]
        torch_run(warm, ctx.device, sizes.diffraction_device_batch, other)
        other_seconds, on_device_other = timed(
            lambda: torch_run(arguments, ctx.device, sizes.diffraction_device_batch, other), ctx.device)
    numpy_rate, device_rate = n / numpy_seconds, n / device_seconds
    best_cpu = report.one_core_and_device(section, "patterns", "numpy", numpy_rate, "", device_rate,
                                          f"torch on {ctx.device}, {precision}, batch "
                                          f"{sizes.diffraction_device_batch}", ctx.n_cores)
    report.figure(section, "device_precision", precision, "radial_profiles_torch's default on this device")
    report.figure(section, f"device_{other}_patterns_per_s", n / other_seconds)
    if ctx.two_sides:
        with cpu_threads(ctx.n_cores):
            warm_seconds, _ = timed(lambda: torch_run(warm, "cpu", 512))
            if ctx.extra_cpu_allowed(section, "torch_cpu", n / len(warm) * warm_seconds / len(warm[0]["quaternions"])):
                cpu_seconds, _ = timed(lambda: torch_run(arguments, "cpu", 512))
                report.figure(section, "torch_cpu_patterns_per_s", n / cpu_seconds,
                              f"{ctx.n_cores} threads, batch 512")
                best_cpu = max(best_cpu, n / cpu_seconds)
    report.figure(section, "speedup_device_over_numpy_one_core", device_rate / numpy_rate)
    report.speedup(section, device_rate, best_cpu, f"{n} patterns each side")
    difference = float(np.abs(on_device - reference).max() / max(np.abs(reference).max(), 1e-300))
    single, double = (on_device, on_device_other) if precision == "float32" else (on_device_other, on_device)
    report.agreement(section, [
        ("max_abs_difference_over_max_device_vs_numpy", difference, DIFFRACTION_RELATIVE_TOLERANCE),
        ("max_abs_difference_over_max_float32_vs_float64", float(np.abs(single - double).max() / double.max()),
         DIFFRACTION_RELATIVE_TOLERANCE),
    ])

    def scale():
        big = diffraction_inputs(sizes.diffraction_scale_per_phase, seed=1)
        count = sum(len(a["quaternions"]) for a in big)
        for batch in sizes.diffraction_scale_batches:
            if not ctx.scale_allowed(section, f"batch_{batch}", 2 * count / device_rate):
                break
            torch_run(head(big, batch), ctx.device, batch)  # warm-up at this batch size
            seconds, _ = timed(lambda: torch_run(big, ctx.device, batch), ctx.device)
            report.figure(section, f"scale_batch_{batch}_device_patterns_per_s", count / seconds,
                          f"{count} patterns")

    if ctx.two_sides and sizes.diffraction_scale_per_phase:
        ctx.defer(section, scale)
