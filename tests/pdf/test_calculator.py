"""Physical facts of the PDF calculator: peak positions, coordination numbers, rho0, cell invariance."""

from __future__ import annotations

import numpy as np
import pytest

from assets.pdf.calculator import (
    MODEL_GRID_A,
    ArrayBackend,
    PdfSettings,
    compute_pdfs,
    model_input,
    normalise_profiles,
    number_density,
    radial_distribution,
)
from assets.pdf.structures import FCC_BASIS, Crystal, cubic_crystal, diamond, rock_salt

R_A = np.arange(0.5, 12.0, 0.005)
# No ripples, no damping, narrow peaks (sigma 0.03 A): shells separate, integrals are exact.
SHARP = PdfSettings(r_max_A=12.0, qmax_inv_A=0.0, qdamp_inv_A=0.0, uiso_A2=0.0005)


def nickel(a_A: float = 3.524) -> Crystal:
    return cubic_crystal("Ni", a_A, FCC_BASIS, [28] * 4, 225)


def iron(a_A: float = 2.8665) -> Crystal:
    return cubic_crystal("Fe", a_A, [[0, 0, 0], [0.5, 0.5, 0.5]], [26, 26], 229)


def first_shell(crystal: Crystal, expected_r_A: float, settings: PdfSettings = SHARP) -> tuple[float, float]:
    """(position of the G(r) maximum near expected_r, RDF integral over +-5 sigma around it)."""
    pdf = compute_pdfs([crystal], settings, R_A)[0]
    rdf = radial_distribution(R_A, pdf, number_density(crystal))
    near = np.abs(R_A - expected_r_A) < 0.3
    window = np.abs(R_A - expected_r_A) < 5 * np.sqrt(2 * settings.uiso_A2)
    return float(R_A[near][np.argmax(pdf[near])]), float(np.trapezoid(rdf[window], R_A[window]))


@pytest.mark.parametrize(
    ("crystal", "shell_r_A", "coordination"),
    [
        (nickel(), 3.524 / np.sqrt(2), 12),
        (iron(), 2.8665 * np.sqrt(3) / 2, 8),
        (diamond(5.431, 14, "Si"), 5.431 * np.sqrt(3) / 4, 4),
    ],
    ids=["fcc-Ni", "bcc-Fe", "diamond-Si"],
)
def test_first_shell_position_and_coordination_number(crystal, shell_r_A, coordination):
    peak_r, integral = first_shell(crystal, shell_r_A)
    assert peak_r == pytest.approx(shell_r_A, abs=0.01)
    assert integral == pytest.approx(coordination, rel=1e-3)


def test_first_peak_of_nickel_survives_the_library_settings():
    """Qmax 25, Qdamp 0.04 (the paper's library) leave the first peak at a / sqrt(2)."""
    peak_r, integral = first_shell(nickel(), 3.524 / np.sqrt(2), PdfSettings(r_max_A=12.0))
    assert peak_r == pytest.approx(2.49, abs=0.01)
    assert integral == pytest.approx(12, rel=0.02)


def test_baseline_slope_below_the_first_shell_is_minus_four_pi_rho0():
    for crystal in (nickel(), iron(), rock_salt(5.64, 11, 17)):
        pdf = compute_pdfs([crystal], SHARP, R_A)[0]
        below = (R_A > 0.6) & (R_A < 1.5)
        slope = np.polyfit(R_A[below], pdf[below], 1)[0]
        rho0 = len(crystal.atomic_numbers) / np.linalg.det(crystal.lattice_A)
        assert number_density(crystal) == pytest.approx(rho0)
        assert slope == pytest.approx(-4 * np.pi * rho0, rel=1e-6)


def test_a_supercell_and_a_primitive_cell_give_the_same_pdf():
    conventional = nickel()
    shifts = np.array(list(np.ndindex(2, 2, 2)))
    supercell = Crystal("Ni-2x2x2", "test", 225, conventional.lattice_A * 2,
                        ((conventional.frac_coords[None] + shifts[:, None]) / 2).reshape(-1, 3),
                        np.full(32, 28), np.ones(32))
    primitive_lattice = 3.524 / 2 * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]])
    primitive = Crystal("Ni-primitive", "test", 225, primitive_lattice, np.zeros((1, 3)), np.array([28]), np.ones(1))
    pdfs = compute_pdfs([conventional, supercell, primitive], PdfSettings(), MODEL_GRID_A)
    scale = np.abs(pdfs[0]).max()
    np.testing.assert_allclose(pdfs[1], pdfs[0], atol=1e-9 * scale)
    np.testing.assert_allclose(pdfs[2], pdfs[0], atol=1e-9 * scale)


def test_partial_occupancy_matches_the_ordered_average():
    """Two half-occupied co-located species weigh like their average scatterer."""
    ordered = rock_salt(5.64, 11, 17)
    mixed = Crystal("mixed", "test", 225, ordered.lattice_A, np.vstack([ordered.frac_coords[:4]] * 2),
                    np.array([11] * 4 + [17] * 4), np.full(8, 0.5))
    pure = cubic_crystal("avg", 5.64, FCC_BASIS, [14] * 4, 225)  # Z 14 = (11 + 17) / 2
    pdfs = compute_pdfs([mixed, pure], PdfSettings(), MODEL_GRID_A)
    np.testing.assert_allclose(pdfs[0], pdfs[1], atol=1e-9 * np.abs(pdfs[1]).max())


def kernel_test_crystals() -> list[Crystal]:
    """Cubic, hexagonal and generated low-symmetry crystals, with and without symmetry orbits."""
    from dataclasses import replace

    from assets.pdf.structures import generate_crystal, hexagonal_close_packed

    generated = [generate_crystal(group, ["Na", "Mg", "O", "Cl"], 24, 2, seed=5, index=0) for group in (2, 14, 62)]
    crystals = [nickel(), rock_salt(5.64, 11, 17), diamond(5.431, 14), hexagonal_close_packed(3.209, 5.211, 12)]
    crystals += [c for c in generated if c is not None]
    return crystals + [replace(crystals[-1], orbits=None)]


@pytest.mark.parametrize("kernel", ["numba", "batched"])
def test_fast_kernels_match_the_numpy_reference(kernel):
    """numba (compiled loop) and batched torch on the CPU against numpy: 1e-9 of the largest |G|,
    with per-crystal Uiso, Qdamp and lattice scale (the augmentation path)."""
    pytest.importorskip("numba" if kernel == "numba" else "torch")
    crystals = kernel_test_crystals()
    n = len(crystals)
    varied = dict(uiso_A2=np.linspace(0.003, 0.008, n), qdamp_inv_A=np.linspace(0.01, 0.08, n),
                  lattice_scale=np.linspace(0.98, 1.02, n))
    for settings in (PdfSettings(), PdfSettings(qmax_inv_A=0.0, r_max_A=20.0, weighting="neutron")):
        reference = compute_pdfs(crystals, settings, MODEL_GRID_A, kernel="numpy", **varied)
        backend = ArrayBackend("torch", "cpu") if kernel == "batched" else None
        fast = compute_pdfs(crystals, settings, MODEL_GRID_A, backend=backend, kernel=kernel, batch_size=4, **varied)
        np.testing.assert_allclose(fast, reference, atol=1e-9 * np.abs(reference).max())


def test_batched_kernel_splits_groups_without_changing_the_result(monkeypatch):
    """A small entry budget forces one group per crystal: same histograms as one big group."""
    pytest.importorskip("torch")
    from assets.pdf import calculator

    crystals = kernel_test_crystals()[:5]
    backend = ArrayBackend("torch", "cpu")
    together = compute_pdfs(crystals, PdfSettings(), MODEL_GRID_A, backend=backend, kernel="batched")
    monkeypatch.setattr(calculator, "BATCH_ENTRIES", 1)
    apart = compute_pdfs(crystals, PdfSettings(), MODEL_GRID_A, backend=backend, kernel="batched")
    np.testing.assert_allclose(apart, together, atol=1e-12 * np.abs(together).max())


def test_torch_backend_per_crystal_kernel_matches_numpy():
    pytest.importorskip("torch")
    crystals = [nickel(), rock_salt(5.64, 11, 17), diamond(5.431, 14)]
    settings = PdfSettings()
    uiso = np.array([0.004, 0.005, 0.006])
    reference = compute_pdfs(crystals, settings, MODEL_GRID_A, uiso_A2=uiso, kernel="numpy")
    on_torch = compute_pdfs(crystals, settings, MODEL_GRID_A, uiso_A2=uiso, backend=ArrayBackend("torch", "cpu"),
                            kernel="numpy")
    np.testing.assert_allclose(on_torch, reference, atol=1e-9 * np.abs(reference).max())


def test_unknown_kernel_is_refused():
    with pytest.raises(ValueError, match="kernel must be"):
        compute_pdfs([nickel()], kernel="fortran")


def test_lattice_scale_moves_peaks_proportionally():
    scaled = compute_pdfs([nickel()], SHARP, R_A, lattice_scale=[1.05])[0]
    near = np.abs(R_A - 2.49 * 1.05) < 0.3
    assert R_A[near][np.argmax(scaled[near])] == pytest.approx(3.524 * 1.05 / np.sqrt(2), abs=0.01)


def test_normalisation_and_model_input():
    profiles = normalise_profiles(np.array([[1.0, 3.0, 2.0], [5.0, 5.0, 5.0]]))
    np.testing.assert_allclose(profiles, [[0.0, 1.0, 0.5], [0.0, 0.0, 0.0]])
    r = np.linspace(0.5, 20.0, 400)
    row = model_input(r, np.sin(r))
    assert row.min() == 0.0 and row.max() == pytest.approx(1.0)
    beyond = MODEL_GRID_A > 20.0
    assert np.allclose(row[beyond], row[beyond][0])  # zero G beyond the measured range, one level


def test_symmetry_orbits_give_the_pdf_of_all_site_pairs():
    """One representative per orbit (the fast path) against every pair i <= j (no symmetry used)."""
    from dataclasses import replace

    from assets.pdf.calculator import site_pairs
    from assets.pdf.structures import generate_crystal

    crystals = [rock_salt(5.64, 11, 17), diamond(5.431, 14)] + [
        generate_crystal(group, ["Na", "Mg", "O", "Cl"], 24, 2, seed=5, index=0) for group in (14, 62, 139, 194)
    ]
    for crystal in crystals:
        assert crystal.orbits is not None and len(np.unique(crystal.orbits)) < len(crystal.orbits)
        for variant in (crystal, replace(crystal, orbits=None)):
            assert site_pairs(variant)[2].sum() == len(variant.atomic_numbers) ** 2  # every ordered pair once
    with_orbits = compute_pdfs(crystals, PdfSettings(), MODEL_GRID_A)
    all_pairs = compute_pdfs([replace(c, orbits=None) for c in crystals], PdfSettings(), MODEL_GRID_A)
    np.testing.assert_allclose(with_orbits, all_pairs, atol=1e-9 * np.abs(all_pairs).max())
