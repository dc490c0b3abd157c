"""Our vectorised PDF calculator against diffpy.pdffit2 (1.5.1): agreement and speed, on one CPU core.

    python -m benchmarks.pdf_calculator [--full]

Both sides run on one core (BLAS, OpenMP, numba and torch threads pinned to 1 before they load),
compute the same PDFs of the same crystals, and are timed best-of-N after a warm-up call each
(the warm-up also compiles the numba kernel). Exits 2 when the Pearson agreement of any profile
with pdffit2 falls below 0.999 (and 1 when pdffit2 is missing).

Same structures (NaCl, Si, Mg and pyxtal-generated crystals), same parameters (X-ray
weights, Qmax 25 1/A, Qdamp 0.04 1/A, Uiso 0.005 A^2), same grid (the model grid
1.5..30 A, 209 points). Prints Pearson correlations of the normalised profiles and PDFs
per second of both; the last line is the speed ratio ours / pdffit2. Our crystals carry
their symmetry orbits (from spglib, as pdf_structures stores them), which the calculator
uses; the ratio without them (every site pair, as pdffit2 does) is printed too.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_variable] = "1"  # one CPU core for both sides, set before numpy / numba / torch load

import numpy as np  # noqa: E402

from assets.pdf.calculator import MODEL_GRID_A, ArrayBackend, PdfSettings, compute_pdfs, normalise_profiles  # noqa: E402
from assets.pdf.measured import reference_crystals  # noqa: E402
from assets.pdf.structures import Crystal, generate_crystal  # noqa: E402

MIN_PEARSON = 0.999

SETTINGS = PdfSettings()
GENERATED_GROUPS = [2, 14, 62, 139, 194, 225]


def benchmark_crystals(full: bool) -> list[Crystal]:
    generated = [generate_crystal(group, ["Na", "Mg", "O", "Si", "Cl", "Fe"], 24, 2, seed=11, index=index)
                 for group in GENERATED_GROUPS for index in range(3 if full else 1)]
    return reference_crystals() + [crystal for crystal in generated if crystal is not None]


def pdffit2_profile(engine, crystal: Crystal) -> np.ndarray:
    """G(r) from pdffit2 on the model grid for one crystal."""
    from diffpy.structure import Atom, Lattice, Structure
    from pymatgen.core import Element

    lattice = Lattice(base=crystal.lattice_A)
    atoms = [Atom(Element.from_Z(int(z)).symbol, xyz, occupancy=occupancy, Uisoequiv=SETTINGS.uiso_A2)
             for z, xyz, occupancy in zip(crystal.atomic_numbers, crystal.frac_coords, crystal.occupancies)]
    engine.reset()
    engine.add_structure(Structure(atoms, lattice=lattice))
    # pdffit2's last alloc argument is the number of points on rmin..rmax
    engine.alloc("X", SETTINGS.qmax_inv_A, SETTINGS.qdamp_inv_A, float(MODEL_GRID_A[0]), float(MODEL_GRID_A[-1]),
                 len(MODEL_GRID_A))
    engine.calc()
    return np.interp(MODEL_GRID_A, np.array(engine.getR()), np.array(engine.getpdf_fit()))


def interleaved(functions: dict, repeats: int) -> dict:
    """{name: (best wall seconds, last result)}, the functions run in turn each round (fair on a busy machine)."""
    best = {name: (np.inf, None) for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            started = time.perf_counter()
            result = function()
            best[name] = (min(best[name][0], time.perf_counter() - started), result)
    return best


def timed(function, repeats: int) -> tuple[float, object]:
    """(best wall seconds of repeats, last result)."""
    best, result = np.inf, None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - started)
    return best, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true", help="more generated structures and repeats")
    args = parser.parse_args()
    try:
        import diffpy.pdffit2 as pdffit2
    except ImportError as error:
        print(f"cannot run: diffpy.pdffit2 is not installed ({error}); pip install diffpy.pdffit2==1.5.1")
        return 1
    pdffit2.redirect_stdout(open(os.devnull, "w"))  # pdffit2 narrates every call
    engine = pdffit2.PdfFit()
    crystals = benchmark_crystals(args.full)
    repeats = 15 if args.full else 7

    n = len(crystals)
    compute_pdfs(crystals, SETTINGS, MODEL_GRID_A, kernel="numba")  # warm-up: compiles (or loads) the kernel
    compute_pdfs(crystals, SETTINGS, MODEL_GRID_A, kernel="numpy")
    np.array([pdffit2_profile(engine, c) for c in crystals[:2]])
    runs = interleaved({
        "ours": lambda: compute_pdfs(crystals, SETTINGS, MODEL_GRID_A, kernel="numba"),
        "numpy": lambda: compute_pdfs(crystals, SETTINGS, MODEL_GRID_A, kernel="numpy"),
        "pdffit2": lambda: np.array([pdffit2_profile(engine, c) for c in crystals]),
    }, repeats)
    (ours_seconds, ours), (numpy_seconds, reference), (theirs_seconds, theirs) = runs.values()
    correlations = [np.corrcoef(a, b)[0, 1] for a, b in zip(normalise_profiles(ours), normalise_profiles(theirs))]
    for crystal, correlation in zip(crystals, correlations):
        print(f"pearson_{crystal.structure_id}: {correlation:.5f}")
    print(f"n_structures_each_side: {n}")
    print(f"mean_sites: {np.mean([len(c.atomic_numbers) for c in crystals]):.1f}")
    print(f"pearson_min: {min(correlations):.5f}")
    print(f"numba_vs_numpy_max_abs_difference: {np.abs(ours - reference).max():.2e}")
    try:
        import torch

        torch.set_num_threads(1)
        cpu = ArrayBackend("torch", "cpu")
        compute_pdfs(crystals[:2], SETTINGS, MODEL_GRID_A, backend=cpu, kernel="batched")  # warm-up
        batched_seconds, _ = timed(lambda: compute_pdfs(crystals, SETTINGS, MODEL_GRID_A, backend=cpu,
                                                        kernel="batched"), repeats)
        print(f"torch_batched_cpu_pdfs_per_second: {n / batched_seconds:.1f}")
        if torch.cuda.is_available():
            gpu = ArrayBackend("torch", "cuda")
            many = crystals * 64  # many crystals per kernel: what the batched path is for
            compute_pdfs(many, SETTINGS, MODEL_GRID_A, backend=gpu, batch_size=1024)  # warm-up
            gpu_seconds, _ = timed(lambda: compute_pdfs(many, SETTINGS, MODEL_GRID_A, backend=gpu, batch_size=1024),
                                   repeats)
            print(f"torch_batched_cuda_pdfs_per_second ({len(many)} crystals): {len(many) / gpu_seconds:.1f}")
    except ImportError:
        pass
    no_orbits = [dataclasses.replace(crystal, orbits=None) for crystal in crystals]
    all_pairs_seconds, _ = timed(lambda: compute_pdfs(no_orbits, SETTINGS, MODEL_GRID_A, kernel="numba"), repeats)
    print(f"pdffit2_pdfs_per_second: {n / theirs_seconds:.1f}")
    print(f"numpy_reference_pdfs_per_second: {n / numpy_seconds:.1f}")
    print(f"speed_ratio_numpy_over_pdffit2: {theirs_seconds / numpy_seconds:.1f}")
    print(f"ours_without_orbits_pdfs_per_second: {n / all_pairs_seconds:.1f}")
    print(f"speed_ratio_without_orbits_over_pdffit2: {theirs_seconds / all_pairs_seconds:.1f}")
    print(f"ours_pdfs_per_second: {n / ours_seconds:.1f}")
    if min(correlations) < MIN_PEARSON:
        print(f"FAILED: pearson_min {min(correlations):.5f} < {MIN_PEARSON} against pdffit2")
        return 2
    print(f"speed_ratio_ours_over_pdffit2 (numba kernel, one core, {n} PDFs each side): "
          f"{theirs_seconds / ours_seconds:.1f}")
    return 0


if __name__ == "__main__":
    from benchmarks import results

    raise SystemExit(results.run(main, "pdf_calculator"))
