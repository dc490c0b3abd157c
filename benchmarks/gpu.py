"""Every torch path of the platform in one run, each beside the best CPU path on the same machine.

    python -m benchmarks.gpu                 # full sizes: one H100/H200-class GPU beside its CPU cores, < 5 minutes
    python -m benchmarks.gpu --quick         # small sizes, the same code (the test suite runs it on the CPU)
    python -m benchmarks.gpu --json PATH     # where the figures go (default: a temporary file, path printed)
    python -m benchmarks.gpu --device cpu    # the CPU only, on a CUDA machine
    python -m benchmarks.gpu --rehearse      # the CUDA-only branches with the CPU as the device, tiny sizes

Without CUDA, a run without --quick uses CPU sizes (a few minutes on 2 cores).

Sections (each prints `<section>_<figure>: value` lines and one `<section>_agreement:` line):

- eis: batched Levenberg-Marquardt fits (`assets.eis.fitting.fit_circuit`, one batch per circuit class, as
  `fit_spectra` runs them) of spectra simulated with `assets.eis.simulate`; spectra/s and reproduced share on the
  device and with torch on the CPU (all threads). Agreement: each fit's weighted cost from torch against the same
  cost from the numpy circuit formulas; on CUDA also the reproduced shares of both sides.
- diffraction: `radial_profiles_torch` (dense, the GPU path) against the numpy `radial_profiles` (sparse, one core)
  on the default request's four phases with its augmentation (pixel-size jitter, lattice scaling, dropped spots);
  patterns/s in its default precision on the device (float32 on CUDA, float64 on the CPU) and in the other one;
  agreement: max |torch - numpy| / max |numpy| and max |float32 - float64| / max |float64|.
- pdf: `compute_pdfs` on the torch backend (its default kernel there, batched when the calculator has one) against
  the best CPU kernel (numba when installed, else numpy) on one core; PDFs/s; agreement: max |torch - CPU| / max |G|,
  and the torch output against the pure numpy reference kernel on a few crystals.
- pdf_cnn, diffraction_cnn: Keras training (`assets.pdf.classifiers.build_cnn`, `assets.diffraction.cnn.
  build_phase_cnn`) on the torch backend, in a subprocess (KERAS_BACKEND must be set before keras loads); samples/s
  per batch size on both sides, the device side under the trainers' policy (mixed_bfloat16 on CUDA, figure
  device_mixed_precision); on CUDA also at scale in float32 and mixed_bfloat16. Agreement: the CPU-trained
  weights predict the same probabilities on the device; training losses finite.
- encoder: masked-token pretraining of the cycling `MultiscaleEncoder` (`assets.cycling.encoder.pretrain`);
  non-padding tokens/s per batch size (bfloat16 autocast on CUDA, figure device_mixed_precision); agreement:
  logits of the same weights on the device and the CPU.

Fair comparisons: every ratio has equal work on both sides (the same inputs, the same sizes, the same batch
sizes) and a warm-up on both sides; the numpy/numba paths run on one core (threadpoolctl), and their
all-cores figure is the one-core figure times the core count (an upper bound: perfect scaling over processes);
"best CPU" is the larger of that and torch on the CPU with all threads (that extra CPU path is skipped, and
says so, when its warm-up projects it past a limit). Larger device-only runs ("scale") show where the GPU
saturates; they carry no ratio, run after every section and are skipped (and say so) when they would end past the
run's budget. When the device is the CPU itself (no CUDA), the device side is torch on the CPU and only paths
with a different CPU implementation (diffraction, pdf) get a ratio.

A section that fails prints `<section>_error: ...` and the others still run. Exit status: 0 all ran and agree,
1 a section could not run, 2 an agreement check failed. The last line is the headline: the geometric mean of the
device-over-best-CPU speedups.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field

import numpy as np

SECTIONS = ("eis", "diffraction", "pdf", "pdf_cnn", "diffraction_cnn", "encoder")
KERAS_SECTIONS = ("pdf_cnn", "diffraction_cnn")
# As ComputeResource.keras_device: plain "cpu" (a "cpu:0" scope makes the torch backend copy weights off their
# Parameters; with keras 3.15 a Dropout layer then fails to build).
KERAS_DEVICES = {"cpu": "cpu", "cuda": "gpu:0"}

# Agreement bounds
EIS_COST_RTOL = {"float64": 1e-6, "float32": 1e-3}  # torch weighted cost vs the numpy formulas, relative
EIS_REPRODUCES_SHARE_TOLERANCE = 0.02  # device vs CPU reproduced share (CUDA only)
DIFFRACTION_RELATIVE_TOLERANCE = 1e-5  # of the largest numpy profile value (issue 16: float32 within 1e-5)
PDF_RELATIVE_TOLERANCE = 1e-5  # of the largest |G|
CNN_PROBABILITY_TOLERANCE = 1e-2  # same weights, device vs CPU (cuDNN may use TF32)
ENCODER_LOGIT_TOLERANCE = 1e-3  # same weights, device vs CPU, float32


@dataclass(frozen=True)
class Sizes:
    """Work per section. compare_*: both sides of a ratio; scale_*: the device alone (CUDA only)."""

    eis_per_class: int
    eis_circuits: int  # circuit classes fitted (0: all nine, sorted by name)
    eis_scale_totals: tuple[int, ...]
    diffraction_per_phase: int
    diffraction_device_batch: int
    diffraction_scale_per_phase: int
    diffraction_scale_batches: tuple[int, ...]
    pdf_crystals: int
    pdf_generated: bool  # add pyxtal-generated crystals to the reference ones
    pdf_device_batch: int
    pdf_scale_crystals: int
    cnn_samples: int
    cnn_batches: tuple[int, ...]
    cnn_scale_samples: int
    encoder_shape: dict = field(default_factory=dict)
    encoder_batches: tuple[int, ...] = (8,)
    encoder_steps: int = 4
    encoder_scale_batch: int = 0
    keras_timeout_s: int = 120
    scale_budget_s: float = 0.0  # device-only runs stop when they would end after this many seconds of the run
    extra_cpu_limit_s: float = 0.0  # a CPU path that only competes for "best CPU" is skipped when projected longer


QUICK = Sizes(
    eis_per_class=8, eis_circuits=1, eis_scale_totals=(),
    diffraction_per_phase=48, diffraction_device_batch=256, diffraction_scale_per_phase=0,
    diffraction_scale_batches=(),
    pdf_crystals=16, pdf_generated=False, pdf_device_batch=16, pdf_scale_crystals=0,
    cnn_samples=128, cnn_batches=(32, 64), cnn_scale_samples=0,
    encoder_shape=dict(window_tokens=32, max_windows=4, hidden_size=32), encoder_batches=(8,), encoder_steps=3,
    keras_timeout_s=600,  # a guard against a hung subprocess, not a budget (a busy 2-core machine is slow)
)
CPU_FULL = Sizes(  # a run without --quick on a machine without CUDA: CPU sizes, a few minutes on 2 cores
    eis_per_class=50, eis_circuits=0, eis_scale_totals=(),
    diffraction_per_phase=1024, diffraction_device_batch=512, diffraction_scale_per_phase=0,
    diffraction_scale_batches=(),
    pdf_crystals=256, pdf_generated=True, pdf_device_batch=128, pdf_scale_crystals=0,
    cnn_samples=2048, cnn_batches=(64, 256), cnn_scale_samples=0,
    encoder_shape=dict(max_windows=16), encoder_batches=(8, 32), encoder_steps=6,
    keras_timeout_s=900,
)
REHEARSAL = Sizes(  # --rehearse: QUICK plus tiny scale runs, so every CUDA-only branch runs on the CPU
    eis_per_class=3, eis_circuits=2, eis_scale_totals=(8,),
    diffraction_per_phase=16, diffraction_device_batch=16, diffraction_scale_per_phase=16,
    diffraction_scale_batches=(16, 32),
    pdf_crystals=8, pdf_generated=False, pdf_device_batch=8, pdf_scale_crystals=8,
    cnn_samples=64, cnn_batches=(16, 32), cnn_scale_samples=64,
    encoder_shape=dict(window_tokens=16, max_windows=2, hidden_size=16), encoder_batches=(2, 4), encoder_steps=2,
    encoder_scale_batch=8, keras_timeout_s=600, scale_budget_s=3600.0,
)
GPU_FULL = Sizes(  # one H100/H200 next to 16 CPU cores: equal work sized by the CPU side, scale by the GPU
    eis_per_class=500, eis_circuits=0, eis_scale_totals=(100_000, 1_000_000),
    diffraction_per_phase=8192, diffraction_device_batch=8192, diffraction_scale_per_phase=65_536,
    diffraction_scale_batches=(8192, 32_768),
    pdf_crystals=2048, pdf_generated=True, pdf_device_batch=1024, pdf_scale_crystals=10_240,
    cnn_samples=4096, cnn_batches=(256, 1024), cnn_scale_samples=65_536,
    encoder_shape=dict(hidden_size=128, local_layers=2, global_layers=2, attention_heads=4, intermediate_size=256,
                       max_windows=32),
    encoder_batches=(8, 64), encoder_steps=8, encoder_scale_batch=256,
    keras_timeout_s=420, scale_budget_s=270.0, extra_cpu_limit_s=40.0,
)


# ---- reporting ----------------------------------------------------------------------------------------------


def _format(value) -> str:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    value = float(value)
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e7):
        return f"{value:.3e}"
    return f"{value:.4g}" if abs(value) < 100 else f"{value:.1f}"


class Report:
    """Prints `name: value` lines as figures arrive and keeps them for the JSON file."""

    def __init__(self):
        self.sections: dict[str, dict] = {}
        self.errors: dict[str, str] = {}
        self.disagreements: list[str] = []
        self.speedups: dict[str, float] = {}
        self.started = time.perf_counter()

    def figure(self, section: str, name: str, value, note: str = "") -> None:
        value = value.item() if isinstance(value, np.generic) else value
        self.sections.setdefault(section, {})[name] = value
        print(f"{section}_{name}{f' ({note})' if note else ''}: {_format(value)}", flush=True)

    def one_core_and_device(self, section: str, unit: str, cpu_name: str, cpu_rate: float, cpu_note: str,
                            device_rate: float, device_note: str, n_cores: int) -> float:
        """Print the one-core CPU rate, its ideal all-core multiple and the device rate; return the all-core bound."""
        self.figure(section, f"{cpu_name}_one_core_{unit}_per_s", cpu_rate, cpu_note)
        self.figure(section, f"{cpu_name}_all_cores_ideal_{unit}_per_s", cpu_rate * n_cores,
                    f"one core x {n_cores}, an upper bound")
        self.figure(section, f"device_{unit}_per_s", device_rate, device_note)
        return cpu_rate * n_cores

    def speedup(self, section: str, device_rate: float, cpu_rate: float, note: str) -> None:
        ratio = device_rate / cpu_rate
        self.speedups[section] = ratio
        self.figure(section, "speedup_device_over_best_cpu", ratio, note)

    def agreement(self, section: str, checks: list[tuple[str, float, float]]) -> None:
        """checks: (figure name, value, upper bound); every value must be finite and at most its bound."""
        failed = []
        for name, value, bound in checks:
            self.figure(section, name, value, f"bound {_format(bound)}")
            if not (np.isfinite(value) and value <= bound):
                failed.append(f"{name} {_format(value)} > {_format(bound)}")
        verdict = "ok" if not failed else "FAILED: " + "; ".join(failed)
        self.sections.setdefault(section, {})["agreement"] = verdict
        print(f"{section}_agreement: {verdict}", flush=True)
        if failed:
            self.disagreements.append(section)

    def error(self, section: str, message: str) -> None:
        self.errors[section] = message
        self.sections.setdefault(section, {})["error"] = message
        print(f"{section}_error: {message}", flush=True)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started


@dataclass
class Context:
    device: str  # torch device of the device side: "cuda", or "cpu" without CUDA
    two_sides: bool  # a separate CPU side, device-only scale runs and mixed precision (CUDA, or --rehearse)
    quick: bool
    sizes: Sizes
    n_cores: int
    report: Report
    deferred: list = field(default_factory=list)  # (section, function): device-only scale runs, after every section

    def defer(self, section: str, function) -> None:
        self.deferred.append((section, function))

    def extra_cpu_allowed(self, section: str, label: str, projected_s: float) -> bool:
        """An extra CPU path (one that only competes for "best CPU") runs unless projected past the size's limit."""
        if self.sizes.extra_cpu_limit_s and projected_s > self.sizes.extra_cpu_limit_s:
            self.report.figure(section, f"{label}_skipped_projected_s", projected_s,
                               f"from its warm-up, limit {self.sizes.extra_cpu_limit_s:.0f} s")
            return False
        return True

    def sides(self) -> list[tuple[str, str]]:
        """(role, torch device): the device side first, then the CPU side when it is a separate one."""
        return [("device", self.device)] + ([("cpu", "cpu")] if self.two_sides else [])

    def scale_allowed(self, section: str, label: str, projected_s: float) -> bool:
        """Device-only runs stay inside the run's budget: skip (and say so) when one would end past it."""
        ends = self.report.elapsed() + projected_s
        if self.sizes.scale_budget_s and ends > self.sizes.scale_budget_s:
            self.report.figure(section, f"scale_{label}_skipped_projected_s", projected_s,
                               f"would end at {ends:.0f} s, budget {self.sizes.scale_budget_s:.0f} s")
            return False
        return True


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def timed(function, device: str = "cpu"):
    """(wall seconds, result) of one call; the device is synchronised before the clock stops."""
    synchronize(device)
    started = time.perf_counter()
    result = function()
    synchronize(device)
    return time.perf_counter() - started, result


@contextlib.contextmanager
def cpu_threads(count: int):
    """numpy/BLAS/OpenMP pools and torch's intra-op pool limited to `count` threads inside the block."""
    import torch
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        with threadpool_limits(count):
            yield
    finally:
        torch.set_num_threads(previous)


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


# ---- EIS ----------------------------------------------------------------------------------------------------


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


# ---- diffraction --------------------------------------------------------------------------------------------


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


# ---- PDF ----------------------------------------------------------------------------------------------------


def pdf_base_crystals(generated: bool):
    from assets.pdf.measured import reference_crystals
    from assets.pdf.structures import FCC_BASIS, cubic_crystal, diamond, hexagonal_close_packed, rock_salt

    crystals = list(reference_crystals()) + [
        cubic_crystal("Ni", 3.524, FCC_BASIS, [28] * 4, 225),
        cubic_crystal("Fe", 2.8665, [[0, 0, 0], [0.5, 0.5, 0.5]], [26, 26], 229),
        rock_salt(4.212, 12, 8), diamond(3.567, 6), hexagonal_close_packed(2.951, 4.686, 22),
    ]
    if generated:
        from assets.pdf.structures import generate_crystal

        made = [generate_crystal(group, ["Na", "Mg", "O", "Si", "Cl", "Fe"], 24, 2, seed=11, index=0)
                for group in (2, 14, 62, 139, 194, 225)]
        crystals += [crystal for crystal in made if crystal is not None]
    return crystals


def pdf_workload(base, count: int, seed: int) -> dict:
    """`count` crystals cycled from `base`, each with its own lattice scale and Uiso (the augmentation path)."""
    rng = np.random.default_rng(seed)
    return dict(crystals=[base[i % len(base)] for i in range(count)],
                lattice_scale=rng.uniform(0.98, 1.02, count), uiso_A2=rng.uniform(0.003, 0.008, count))


def pdf_call(work: dict, backend=None, kernel: str | None = None, batch_size: int = 128, limit: int | None = None):
    import inspect

    from assets.pdf.calculator import MODEL_GRID_A, PdfSettings, compute_pdfs

    keywords = dict(backend=backend, batch_size=batch_size)
    if kernel and "kernel" in inspect.signature(compute_pdfs).parameters:
        keywords["kernel"] = kernel
    part = slice(0, limit)
    return compute_pdfs(work["crystals"][part], PdfSettings(), MODEL_GRID_A, uiso_A2=work["uiso_A2"][part],
                        lattice_scale=work["lattice_scale"][part], **keywords)


def pdf_kernels() -> tuple[str, str]:
    """(CPU kernel name, torch kernel name) that compute_pdfs picks by default."""
    import inspect

    from assets.pdf import calculator

    if "kernel" not in inspect.signature(calculator.compute_pdfs).parameters:
        return "numpy", "per_crystal"
    cpu = "numba" if getattr(calculator, "numba_available", lambda: False)() else "numpy"
    return cpu, ("batched" if hasattr(calculator, "batched_histograms") else "per_crystal")


def section_pdf(ctx: Context) -> None:
    from assets.pdf.calculator import ArrayBackend

    report, sizes, section = ctx.report, ctx.sizes, "pdf"
    base = pdf_base_crystals(sizes.pdf_generated)
    work = pdf_workload(base, sizes.pdf_crystals, seed=0)
    warm = pdf_workload(base, 4, seed=1)
    n = len(work["crystals"])
    cpu_kernel, torch_kernel = pdf_kernels()
    device = ArrayBackend("torch", ctx.device)
    report.figure(section, "crystals_each_side", n, f"{len(base)} distinct structures, per-crystal lattice scale "
                                                    f"and Uiso, mean {np.mean([len(c.atomic_numbers) for c in base]):.1f} sites")
    report.figure(section, "cpu_kernel", cpu_kernel)
    report.figure(section, "torch_kernel", torch_kernel)
    with cpu_threads(1):
        pdf_call(warm)  # warm-up: compiles (or loads) the numba kernel
        cpu_seconds, reference = timed(lambda: pdf_call(work))
    with cpu_threads(ctx.n_cores):
        pdf_call(warm, device, batch_size=sizes.pdf_device_batch)
        device_seconds, on_device = timed(lambda: pdf_call(work, device, batch_size=sizes.pdf_device_batch),
                                          ctx.device)
    cpu_rate, device_rate = n / cpu_seconds, n / device_seconds
    best_cpu = report.one_core_and_device(section, "pdfs", "cpu", cpu_rate, f"{cpu_kernel} kernel", device_rate,
                                          f"torch {torch_kernel} on {ctx.device}, batch {sizes.pdf_device_batch}",
                                          ctx.n_cores)
    if ctx.two_sides:
        cpu_torch = ArrayBackend("torch", "cpu")
        with cpu_threads(ctx.n_cores):
            warm_seconds, _ = timed(lambda: pdf_call(warm, cpu_torch, batch_size=128))
            if ctx.extra_cpu_allowed(section, "torch_cpu", n * warm_seconds / len(warm["crystals"])):
                torch_cpu_seconds, _ = timed(lambda: pdf_call(work, cpu_torch, batch_size=128))
                report.figure(section, "torch_cpu_pdfs_per_s", n / torch_cpu_seconds,
                              f"torch {torch_kernel}, {ctx.n_cores} threads, batch 128")
                best_cpu = max(best_cpu, n / torch_cpu_seconds)
    report.figure(section, "speedup_device_over_cpu_one_core", device_rate / cpu_rate)
    report.speedup(section, device_rate, best_cpu, f"{n} PDFs each side")

    def scale_run():
        if ctx.scale_allowed(section, str(sizes.pdf_scale_crystals), sizes.pdf_scale_crystals / device_rate):
            big = pdf_workload(base, sizes.pdf_scale_crystals, seed=2)
            seconds, _ = timed(lambda: pdf_call(big, device, batch_size=sizes.pdf_device_batch), ctx.device)
            report.figure(section, f"scale_{sizes.pdf_scale_crystals}_device_pdfs_per_s",
                          sizes.pdf_scale_crystals / seconds, f"batch {sizes.pdf_device_batch}")

    if ctx.two_sides and sizes.pdf_scale_crystals:
        ctx.defer(section, scale_run)
    scale = max(np.abs(reference).max(), 1e-300)
    few = min(8, n)
    with cpu_threads(1):
        numpy_reference = pdf_call(work, kernel="numpy", limit=few)
    report.agreement(section, [
        ("max_abs_difference_over_max_device_vs_cpu", float(np.abs(on_device - reference).max() / scale),
         PDF_RELATIVE_TOLERANCE),
        (f"max_abs_difference_over_max_device_vs_numpy_kernel_first_{few}",
         float(np.abs(on_device[:few] - numpy_reference).max() / scale), PDF_RELATIVE_TOLERANCE),
    ])


# ---- Keras CNNs (subprocess: KERAS_BACKEND=torch must be set before keras loads) ----------------------------


def keras_model(name: str):
    """(builder() -> compiled model, n_points, n_classes, sparse labels?) for a Keras section."""
    import keras

    if name == "pdf_cnn":
        from assets.pdf.calculator import MODEL_GRID_A
        from assets.pdf.classifiers import build_cnn
        from assets.pdf.structures import DEFAULT_SPACE_GROUPS

        n_points, n_classes = len(MODEL_GRID_A), len(DEFAULT_SPACE_GROUPS)

        def build():  # as train_cnn compiles it (its first learning rate)
            model = build_cnn(n_points, n_classes)
            model.compile(optimizer=keras.optimizers.Adam(5e-4), loss="categorical_crossentropy",
                          metrics=["accuracy"])
            return model

        return build, n_points, n_classes, False
    if name == "diffraction_cnn":
        from assets.diffraction.cnn import build_phase_cnn
        from assets.diffraction.requests import SimulationRequest

        request = SimulationRequest()
        n_points, n_classes = request.crop_points, len(request.phases)
        return (lambda: build_phase_cnn(n_points, n_classes)), n_points, n_classes, True
    raise ValueError(name)


def keras_figures(name: str, spec: dict) -> dict:
    """Training samples/s per batch size on each side (equal work), device-only scale runs, agreement."""
    import keras
    import torch

    from resources.devices import is_gpu, keras_mixed_precision

    build, n_points, n_classes, sparse = keras_model(name)
    rng = np.random.default_rng(0)
    total = max(spec["samples"], spec["scale_samples"])
    x = rng.random((total, n_points, 1), dtype=np.float32)
    labels = rng.integers(0, n_classes, total)
    y = labels if sparse else np.eye(n_classes, dtype=np.float32)[labels]
    two_sides = spec["two_sides"]
    devices = {"device": KERAS_DEVICES[spec["device"]], "cpu": KERAS_DEVICES["cpu"]}
    torch_devices = {"device": spec["device"], "cpu": "cpu"}
    sides = ["device", "cpu"] if two_sides else ["device"]
    figures: dict = {"n_points": n_points, "n_classes": n_classes, "samples_each_side": spec["samples"],
                     "device_mixed_precision": is_gpu(devices["device"])}  # as the trainers build on the device
    trained = {}

    def train_rate(side: str, batch: int, samples: int, trainers_policy: bool = True) -> tuple[float, float, object]:
        """trainers_policy: build under the trainers' policy for the side (mixed_bfloat16 on a GPU), else the global one."""
        with keras.device(devices[side]):
            with keras_mixed_precision(devices[side]) if trainers_policy else contextlib.nullcontext():
                model = build()
            model.fit(x[:2 * batch], y[:2 * batch], batch_size=batch, epochs=1, verbose=0)  # warm-up
            synchronize(torch_devices[side])
            started = time.perf_counter()
            history = model.fit(x[:samples], y[:samples], batch_size=batch, epochs=1, verbose=0, shuffle=True)
            synchronize(torch_devices[side])
            return samples / (time.perf_counter() - started), float(history.history["loss"][-1]), model

    torch.set_num_threads(spec["n_cores"])
    for batch in spec["batches"]:
        for side in sides:
            rate, loss, model = train_rate(side, batch, spec["samples"])
            figures[f"{side}_train_samples_per_s_batch_{batch}"] = rate
            figures[f"{side}_train_loss_batch_{batch}"] = loss
            trained[side] = model
        if two_sides:
            figures[f"speedup_batch_{batch}"] = (figures[f"device_train_samples_per_s_batch_{batch}"]
                                                 / figures[f"cpu_train_samples_per_s_batch_{batch}"])
    if two_sides and spec["scale_samples"]:
        for policy in ("float32", "mixed_bfloat16"):
            keras.mixed_precision.set_global_policy(policy)
            try:
                for batch in spec["batches"]:
                    rate, loss, _ = train_rate("device", batch, spec["scale_samples"], trainers_policy=False)
                    figures[f"scale_{policy}_batch_{batch}_device_train_samples_per_s"] = rate
                    figures[f"scale_{policy}_batch_{batch}_device_train_loss"] = loss
            finally:
                keras.mixed_precision.set_global_policy("float32")
    # Agreement: the CPU-trained weights give the same probabilities on the device.
    reference_model = trained[sides[-1]]
    probe = x[:256]
    with keras.device(KERAS_DEVICES["cpu"]):
        expected = keras.ops.convert_to_numpy(reference_model.predict(probe, batch_size=128, verbose=0))
    with keras.device(devices["device"]):
        copy = build()
        copy.set_weights(reference_model.get_weights())
        actual = keras.ops.convert_to_numpy(copy.predict(probe, batch_size=128, verbose=0))
    figures["probability_max_abs_difference_device_vs_cpu"] = float(np.abs(actual - expected).max())
    losses = [v for k, v in figures.items() if k.endswith("loss") or "_loss_" in k]
    figures["all_training_losses_finite"] = bool(np.all(np.isfinite(losses)))
    figures["keras_version"] = keras.__version__
    figures["keras_backend"] = keras.backend.backend()
    return figures


def keras_worker() -> int:
    """Subprocess entry: spec JSON on stdin, one JSON line of figures per section on stdout (last line)."""
    spec = json.loads(sys.stdin.read())
    results = {}
    for name in spec["sections"]:
        try:
            results[name] = keras_figures(name, spec)
        except Exception as error:  # noqa: BLE001 - reported as <section>_error by the parent
            results[name] = {"error": f"{type(error).__name__}: {error}",
                             "traceback": traceback.format_exc(limit=6)}
    print("KERAS_RESULTS " + json.dumps(results), flush=True)
    return 0


def section_keras(ctx: Context, names: list[str]) -> None:
    report, sizes = ctx.report, ctx.sizes
    spec = dict(sections=names, device=ctx.device, samples=sizes.cnn_samples, batches=list(sizes.cnn_batches),
                scale_samples=sizes.cnn_scale_samples if ctx.two_sides else 0, n_cores=ctx.n_cores,
                two_sides=ctx.two_sides)
    env = {**os.environ, "KERAS_BACKEND": "torch", "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}
    try:
        done = subprocess.run([sys.executable, "-m", "benchmarks.gpu", "--keras-worker"], input=json.dumps(spec),
                              capture_output=True, text=True, env=env, timeout=sizes.keras_timeout_s,
                              cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    except subprocess.TimeoutExpired:
        for name in names:
            report.error(name, f"the Keras subprocess ran past {sizes.keras_timeout_s} s")
        return
    lines = [line for line in done.stdout.splitlines() if line.startswith("KERAS_RESULTS ")]
    if done.returncode != 0 or not lines:
        tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
        for name in names:
            report.error(name, f"the Keras subprocess exited {done.returncode}: {' | '.join(tail)}")
        return
    results = json.loads(lines[-1][len("KERAS_RESULTS "):])
    for name in names:
        figures = results.get(name, {"error": "no result"})
        if "error" in figures:
            report.error(name, figures["error"])
            print(figures.get("traceback", ""), file=sys.stderr)
            continue
        mixed = figures["device_mixed_precision"]
        for key in ("keras_backend", "keras_version", "n_points", "n_classes", "samples_each_side",
                    "device_mixed_precision"):
            report.figure(name, key, figures.pop(key))
        bound_keys = ("probability_max_abs_difference_device_vs_cpu", "all_training_losses_finite")
        for key, value in figures.items():
            if key not in bound_keys:
                report.figure(name, key, value)
        if ctx.two_sides:
            batch = max(sizes.cnn_batches)
            device_rate = figures[f"device_train_samples_per_s_batch_{batch}"]
            report.speedup(name, device_rate, figures[f"cpu_train_samples_per_s_batch_{batch}"],
                           f"batch {batch}, {sizes.cnn_samples} samples each side, device "
                           f"{'mixed_bfloat16' if mixed else 'float32'}, CPU float32")
        report.agreement(name, [
            ("probability_max_abs_difference_device_vs_cpu", figures["probability_max_abs_difference_device_vs_cpu"],
             CNN_PROBABILITY_TOLERANCE),
            ("training_losses_not_finite", 0.0 if figures["all_training_losses_finite"] else 1.0, 0.0),
        ])


# ---- cycling encoder ----------------------------------------------------------------------------------------


def encoder_setup(shape_overrides: dict, documents: int, seed: int):
    from assets.cycling import encoder

    vocab_size = 64
    shape = encoder.EncoderShape(vocab_size=vocab_size, pad_token_id=0, dropout=0.0, **shape_overrides)
    vocab = encoder.Vocabulary(mask_token_id=2, special_ids=[0, 1, 2, 3], digit_ids=list(range(4, 14)))
    rng = np.random.default_rng(seed)
    capacity = shape.window_tokens * shape.max_windows
    token_ids = [rng.integers(4, vocab_size, int(rng.integers(capacity // 2, capacity + 1))).tolist()
                 for _ in range(documents)]
    ids, mask, _ = encoder.to_windows(token_ids, shape.window_tokens, shape.max_windows, shape.pad_token_id)
    return shape, vocab, ids, mask


def encoder_rate(shape, vocab, ids, mask, device: str, batch: int, steps: int) -> float:
    """Non-padding tokens per second of `steps` pretraining steps, after a 2-step warm-up."""
    import torch

    from assets.cycling import encoder

    quiet = dict(on_checkpoint=None, log=lambda _: None)
    torch.manual_seed(0)
    model = encoder.MultiscaleEncoder(shape)
    validation = (ids[:1], mask[:1])
    # cuda_batch_size 0: the named batch on both sides (pretrain's bfloat16 autocast stays on where it would be)
    warm = encoder.TrainingSettings(steps=2, batch_size=batch, eval_every=10**9, cuda_batch_size=0)
    encoder.pretrain(model, (ids, mask), validation, vocab, warm, torch.device(device), **quiet)
    settings = encoder.TrainingSettings(steps=steps, batch_size=batch, eval_every=10**9, cuda_batch_size=0)
    synchronize(device)
    history = encoder.pretrain(model, (ids, mask), validation, vocab, settings, torch.device(device), **quiet)
    synchronize(device)
    if not np.isfinite(history["loss"]).all():
        raise FloatingPointError(f"non-finite pretraining loss on {device} at batch {batch}")
    return float(history["tokens_seen"].iloc[-1] / history["elapsed_s"].iloc[-1])


def section_encoder(ctx: Context) -> None:
    import torch

    from assets.cycling import encoder
    from resources.devices import is_gpu

    report, sizes, section = ctx.report, ctx.sizes, "encoder"
    largest = max(sizes.encoder_batches + ((sizes.encoder_scale_batch,) if ctx.two_sides else ()))
    shape, vocab, ids, mask = encoder_setup(sizes.encoder_shape, max(2 * largest, 16), seed=0)
    torch.manual_seed(0)
    parameters = sum(p.numel() for p in encoder.MultiscaleEncoder(shape).parameters())
    report.figure(section, "parameters", parameters, f"hidden {shape.hidden_size}, windows {shape.max_windows} x "
                                                     f"{shape.window_tokens} tokens")
    report.figure(section, "steps_each_side", sizes.encoder_steps, "same batches, after 2 warm-up steps")
    report.figure(section, "device_mixed_precision", is_gpu(ctx.device), "pretrain's bfloat16 autocast; CPU float32")
    rates = {}
    with cpu_threads(ctx.n_cores):
        for batch in sizes.encoder_batches:
            for role, torch_device in ctx.sides():
                rates[role, batch] = encoder_rate(shape, vocab, ids, mask, torch_device, batch, sizes.encoder_steps)
                where = f"torch on {torch_device}" + (f", {ctx.n_cores} threads" if torch_device == "cpu" else "")
                report.figure(section, f"{role}_tokens_per_s_batch_{batch}", rates[role, batch], where)
    if ctx.two_sides:
        batch = max(sizes.encoder_batches)
        report.speedup(section, rates["device", batch], rates["cpu", batch],
                       f"batch {batch}, {sizes.encoder_steps} steps each side")

        def scale():
            if ctx.scale_allowed(section, f"batch_{sizes.encoder_scale_batch}", 30.0):
                rate = encoder_rate(shape, vocab, ids, mask, ctx.device, sizes.encoder_scale_batch,
                                    sizes.encoder_steps)
                report.figure(section, f"scale_batch_{sizes.encoder_scale_batch}_device_tokens_per_s", rate)

        if sizes.encoder_scale_batch:
            ctx.defer(section, scale)
    # Agreement: the same weights give the same logits on the device and on the CPU.
    torch.manual_seed(0)
    model = encoder.MultiscaleEncoder(shape).eval()
    probe_ids, probe_mask = torch.from_numpy(ids[:4]), torch.from_numpy(mask[:4])
    with torch.no_grad():
        expected = model(probe_ids, probe_mask).numpy()
        actual = model.to(ctx.device)(probe_ids.to(ctx.device), probe_mask.to(ctx.device)).cpu().numpy()
    report.agreement(section, [("logit_max_abs_difference_device_vs_cpu", float(np.abs(actual - expected).max()),
                                ENCODER_LOGIT_TOLERANCE)])


# ---- driver -------------------------------------------------------------------------------------------------


def machine_info(device: str) -> dict:
    import torch

    cpu_model = platform.processor()
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    info = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "device": device,
        "device_name": torch.cuda.get_device_name(0) if device == "cuda" else cpu_model,
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "usable_cores": usable_cores(),
        "torch_threads_default": torch.get_num_threads(),
    }
    if device == "cuda":
        properties = torch.cuda.get_device_properties(0)
        info["device_memory_gib"] = round(properties.total_memory / 2**30, 1)
    return info


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (the test suite runs this on the CPU)")
    parser.add_argument("--json", metavar="PATH", help="write every figure here (default: a temporary file)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    parser.add_argument("--scale-budget", type=float, metavar="SECONDS",
                        help="device-only scale runs start only when projected to end within this many seconds "
                             "of the run's start (full GPU default 270; 0: no limit)")
    parser.add_argument("--rehearse", action="store_true",
                        help="run the CUDA-only branches (separate CPU side, scale runs, mixed precision) with the "
                             "CPU as the device and tiny sizes: checks a GPU session's code path without a GPU")
    parser.add_argument("--keras-worker", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_arguments(argv)
    if args.keras_worker:
        return keras_worker()
    import torch

    wanted = [name.strip() for name in args.sections.split(",") if name.strip()]
    unknown = sorted(set(wanted) - set(SECTIONS))
    if unknown:
        print(f"unknown sections {unknown}; choose from {SECTIONS}", file=sys.stderr)
        return 1
    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda but torch sees no CUDA device", file=sys.stderr)
        return 1
    device = "cuda" if args.device != "cpu" and torch.cuda.is_available() and not args.rehearse else "cpu"
    if args.rehearse:
        sizes, size_name = REHEARSAL, "rehearsal (CUDA branches on the CPU)"
    elif args.quick:
        sizes, size_name = QUICK, "quick"
    else:
        sizes, size_name = (GPU_FULL, "gpu full") if device == "cuda" else (CPU_FULL, "cpu full (no CUDA)")
    if args.scale_budget is not None:
        sizes = dataclasses.replace(sizes, scale_budget_s=args.scale_budget)
    report = Report()
    ctx = Context(device=device, two_sides=device == "cuda" or args.rehearse, quick=args.quick, sizes=sizes,
                  n_cores=usable_cores(), report=report)
    machine = machine_info(device)
    for key in ("device", "device_name", "cpu_model", "usable_cores", "torch"):
        print(f"{key}: {machine[key]}")
    print(f"sizes: {size_name}")
    sections = {"eis": section_eis, "diffraction": section_diffraction, "pdf": section_pdf,
                "encoder": section_encoder}
    timings = {}
    for name in wanted:
        if name in KERAS_SECTIONS:
            continue
        started = time.perf_counter()
        try:
            sections[name](ctx)
        except Exception as error:  # noqa: BLE001 - one broken section must not hide the others
            report.error(name, f"{type(error).__name__}: {error}")
            traceback.print_exc(limit=6, file=sys.stderr)
        timings[name] = time.perf_counter() - started
        print(f"{name}_section_seconds: {timings[name]:.1f}", flush=True)
    keras_names = [name for name in wanted if name in KERAS_SECTIONS]
    if keras_names:
        started = time.perf_counter()
        try:
            section_keras(ctx, keras_names)
        except Exception as error:  # noqa: BLE001
            for name in keras_names:
                report.error(name, f"{type(error).__name__}: {error}")
            traceback.print_exc(limit=6, file=sys.stderr)
        timings["keras"] = time.perf_counter() - started
        print(f"keras_sections_seconds: {timings['keras']:.1f}", flush=True)
    for name, scale_run in ctx.deferred:  # device-only runs last: the ratios come first, the budget cuts these
        started = time.perf_counter()
        try:
            scale_run()
        except Exception as error:  # noqa: BLE001
            report.error(name, f"scale run: {type(error).__name__}: {error}")
            traceback.print_exc(limit=6, file=sys.stderr)
        timings[f"{name}_scale"] = time.perf_counter() - started
        print(f"{name}_scale_seconds: {timings[f'{name}_scale']:.1f}", flush=True)

    speedups = report.speedups
    geomean = float(np.exp(np.mean(np.log(list(speedups.values()))))) if speedups else float("nan")
    total = report.elapsed()
    path = args.json or tempfile.NamedTemporaryFile(prefix="benchmarks-gpu-", suffix=".json", delete=False).name
    document = {
        "benchmark": "benchmarks.gpu",
        "arguments": {"quick": args.quick, "rehearse": args.rehearse, "device": args.device, "sections": wanted},
        "machine": machine,
        "sizes": asdict(sizes),
        "sections": report.sections,
        "speedups_device_over_best_cpu": speedups,
        "speedup_geomean": geomean if speedups else None,
        "errors": report.errors,
        "disagreements": report.disagreements,
        "section_seconds": timings,
        "total_seconds": total,
    }
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as handle:
        json.dump(document, handle, indent=2, default=str)
    print(f"total_seconds: {total:.1f}")
    print(f"json: {path}")
    if report.errors:
        print(f"errors: {', '.join(report.errors)}")
    if report.disagreements:
        print(f"disagreements: {', '.join(report.disagreements)}")
    label = "gpu" if device == "cuda" else ("rehearsal_cpu" if args.rehearse else "torch_cpu")
    paths = ", ".join(speedups) or "none"
    what = "equal work each side" + ("" if ctx.two_sides else "; device cpu, no CUDA: only paths with their own CPU "
                                                              "implementation have a ratio")
    print(f"{label}_over_best_cpu_speedup_geomean ({len(speedups)} paths: {paths}; {what}): {_format(geomean)}")
    if report.errors:
        return 1
    return 2 if report.disagreements else 0


if __name__ == "__main__":
    from benchmarks import results

    raise SystemExit(results.run(main, "gpu"))
