"""benchmarks.gpu section pdf: compute_pdfs on the torch backend against the best CPU kernel."""

from __future__ import annotations

import numpy as np

from benchmarks.gpu.harness import PDF_RELATIVE_TOLERANCE, Context, cpu_threads, timed


def pdf_base_crystals(generated: bool):
    from assets.pdf.measured import reference_crystals
    from assets.pdf.structures import (
        FCC_BASIS,
        cubic_crystal,
        diamond,
        hexagonal_close_packed,
        rock_salt,
    )

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
