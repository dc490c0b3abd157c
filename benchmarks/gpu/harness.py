"""The shared harness of benchmarks.gpu: sizes, agreement bounds, the report, the run context, timing."""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import time
from dataclasses import dataclass, field

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


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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
