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
import dataclasses
import json
import os
import sys
import tempfile
import time
import traceback
from dataclasses import asdict

import numpy as np

from benchmarks.gpu.diffraction import section_diffraction
from benchmarks.gpu.eis import section_eis
from benchmarks.gpu.encoder import section_encoder
from benchmarks.gpu.harness import (
    CPU_FULL,
    GPU_FULL,
    KERAS_SECTIONS,
    QUICK,
    REHEARSAL,
    SECTIONS,
    Context,
    Report,
    _format,
    machine_info,
    usable_cores,
)
from benchmarks.gpu.keras_paths import keras_worker, section_keras
from benchmarks.gpu.pdf import section_pdf


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.splitlines()[0])
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
