"""Augmentation over instrument conditions: the drawn ranges, and what each condition does to G(r)."""

from __future__ import annotations

import numpy as np
import pytest

from assets.pdf import profiles
from assets.pdf.calculator import MODEL_GRID_A, PdfSettings, compute_pdfs
from assets.pdf.measured import reference_crystals

WIDE = profiles.Augmentation(
    copies_per_structure=5, qmax_range_inv_A=(18.0, 28.0), qdamp_range_inv_A=(0.01, 0.08),
    uiso_range_A2=(0.002, 0.012), lattice_jitter=0.02, noise_std_range=(0.0, 0.03), neutron_share=0.25,
    nanoparticle_share=0.15, diameter_range_A=(20.0, 100.0), r_cut_share=0.1, r_cut_range_A=(15.0, 30.0),
)


def test_drawn_conditions_stay_in_their_ranges_and_cover_them():
    settings = PdfSettings()
    conditions = profiles.draw_conditions(2000, settings, WIDE, np.random.default_rng(0))
    drawn = np.ones(10_000, dtype=bool)
    drawn[::5] = False  # copy 0 of every structure: the library's parameters
    qmax = conditions["qmax_inv_A"][drawn]
    assert qmax.min() == 18.0 and qmax.max() == 28.0
    assert np.allclose(qmax / 0.5, np.round(qmax / 0.5))  # 0.5 1/A steps
    for key, (low, high) in (("qdamp_inv_A", (0.01, 0.08)), ("uiso_A2", (0.002, 0.012)), ("noise_std", (0.0, 0.03))):
        values = conditions[key][drawn]
        assert low <= values.min() < low + 0.02 * (high - low) and high - 0.02 * (high - low) < values.max() <= high
    assert np.mean(conditions["weighting"][drawn] == "neutron") == pytest.approx(0.25, abs=0.02)
    diameters = conditions["diameter_A"][drawn]
    assert np.mean(np.isfinite(diameters)) == pytest.approx(0.15, abs=0.02)
    assert 20.0 <= diameters[np.isfinite(diameters)].min() and diameters[np.isfinite(diameters)].max() <= 100.0
    cuts = conditions["r_cut_A"][drawn]
    assert np.mean(np.isfinite(cuts)) == pytest.approx(0.1, abs=0.02)
    assert 15.0 <= cuts[np.isfinite(cuts)].min() and cuts[np.isfinite(cuts)].max() <= 30.0
    assert np.std(conditions["lattice_scale"][drawn]) == pytest.approx(0.02, rel=0.1)
    clean = {key: values[~drawn] for key, values in conditions.items()}
    assert (clean["qmax_inv_A"] == 25.0).all() and (clean["qdamp_inv_A"] == 0.04).all()
    assert (clean["weighting"] == "atomic_number").all() and np.isinf(clean["diameter_A"]).all()
    assert (clean["noise_std"] == 0).all() and (clean["lattice_scale"] == 1).all()


def test_no_ranges_means_the_settings_for_every_copy():
    conditions = profiles.draw_conditions(3, PdfSettings(), profiles.Augmentation(copies_per_structure=2),
                                          np.random.default_rng(0))
    assert (conditions["qmax_inv_A"] == 25.0).all() and (conditions["uiso_A2"] == 0.005).all()
    assert np.isinf(conditions["r_cut_A"]).all() and (conditions["weighting"] == "atomic_number").all()


def test_spherical_envelope_closed_form():
    r = np.array([0.0, 10.0, 20.0, 30.0])
    envelope = profiles.spherical_envelope(r, [20.0, np.inf])
    np.testing.assert_allclose(envelope[0], [1.0, 1 - 0.75 + 0.0625, 0.0, 0.0])
    np.testing.assert_allclose(envelope[1], 1.0)


def test_each_condition_changes_g_as_it_should():
    """Neutron weights change NaCl's peak ratios (b_Na 3.63 fm, b_Cl 9.58 fm against Z 11, 17); a particle
    envelope kills G beyond D; an r cut zeroes it beyond r_cut; the clean copy equals compute_pdfs."""
    nacl = reference_crystals()[0]
    settings = PdfSettings()
    n = 4
    conditions = {"qmax_inv_A": np.full(n, 25.0), "qdamp_inv_A": np.full(n, 0.04), "uiso_A2": np.full(n, 0.005),
                  "lattice_scale": np.ones(n), "weighting": np.array(["atomic_number", "neutron", "atomic_number",
                                                                        "atomic_number"]),
                  "diameter_A": np.array([np.inf, np.inf, 25.0, np.inf]),
                  "r_cut_A": np.array([np.inf, np.inf, np.inf, 18.0])}
    pdfs = profiles.conditioned_pdfs([nacl] * n, settings, conditions)
    clean = compute_pdfs([nacl], settings, MODEL_GRID_A)[0]
    np.testing.assert_allclose(pdfs[0], clean)
    assert not np.allclose(pdfs[1] / np.abs(pdfs[1]).max(), clean / np.abs(clean).max(), atol=0.05)
    assert np.all(pdfs[2][MODEL_GRID_A > 25.0] == 0) and np.abs(pdfs[2][MODEL_GRID_A < 5]).max() > 0
    assert np.all(pdfs[3][MODEL_GRID_A > 18.0] == 0)
    np.testing.assert_allclose(pdfs[3][MODEL_GRID_A <= 18.0], clean[MODEL_GRID_A <= 18.0])


def first_peak_A(pdf: np.ndarray, grid: np.ndarray) -> float:
    return float(grid[np.argmax(pdf)])


def test_lattice_scale_uiso_and_qdamp_change_g_the_way_physics_says():
    """Si on a fine grid, one condition away from the settings per row: a 3 % larger lattice moves the
    nearest-neighbour peak (a sqrt(3) / 4 = 2.35 A) out by 3 %; a larger Uiso lowers and widens it
    (Gaussian of variance 2 Uiso, equal area); a larger Qdamp damps G at high r by exp(-(Qdamp r)^2 / 2)."""
    si = reference_crystals()[1]
    grid = np.arange(1.5, 30.0, 0.005)
    base = {"qmax_inv_A": 0.0, "qdamp_inv_A": 0.02, "uiso_A2": 0.004, "lattice_scale": 1.0,
            "weighting": "atomic_number", "diameter_A": np.inf, "r_cut_A": np.inf}
    changed = [{}, {"lattice_scale": 1.03}, {"uiso_A2": 0.012}, {"qdamp_inv_A": 0.06}]
    conditions = {key: np.array([row.get(key, value) for row in changed]) for key, value in base.items()}
    pdfs = profiles.conditioned_pdfs([si] * 4, PdfSettings(qmax_inv_A=0.0), conditions, grid_A=grid)
    clean, larger, hotter, damped = pdfs
    near = grid < 2.8
    assert first_peak_A(clean[near], grid[near]) == pytest.approx(5.431 * np.sqrt(3) / 4, abs=0.01)
    assert first_peak_A(larger[near], grid[near]) == pytest.approx(1.03 * 5.431 * np.sqrt(3) / 4, abs=0.01)
    assert hotter[near].max() < 0.7 * clean[near].max()
    half_width = lambda g: np.ptp(grid[near][g[near] > g[near].max() / 2])  # noqa: E731
    assert half_width(hotter) > 1.4 * half_width(clean)  # sqrt(0.012 / 0.004) = 1.7 wider
    far = (grid > 20) & (grid < 28)
    expected_ratio = np.exp(-((0.06**2 - 0.02**2) * grid[far] ** 2) / 2)
    amplitude = lambda g: np.sqrt(np.mean(g[far] ** 2))  # noqa: E731  (G oscillates about 0 at high r)
    assert amplitude(damped) / amplitude(clean) == pytest.approx(np.sqrt(np.mean(expected_ratio**2)), rel=0.15)


def test_noise_stays_inside_the_measured_range_of_a_cut_profile():
    """A profile cut at r_cut ends in a flat, noise-free run, as a measured file that ends there reads."""
    crystals = reference_crystals()
    cut = profiles.Augmentation(copies_per_structure=2, r_cut_share=1.0, r_cut_range_A=(18.0, 20.0),
                                noise_std_range=(0.03, 0.05), clean_first_copy=True)
    result = profiles.profile_set(crystals, PdfSettings(), cut, np.random.default_rng(3))
    for row, r_cut in zip(result["profiles"][1::2], result["condition_r_cut_A"][1::2]):
        beyond = MODEL_GRID_A > r_cut
        assert np.ptp(row[beyond]) == pytest.approx(0.0, abs=1e-6)
        assert np.std(np.diff(row[MODEL_GRID_A <= r_cut])) > 0


def test_profile_set_records_the_conditions_of_every_profile():
    crystals = reference_crystals()
    result = profiles.profile_set(crystals, PdfSettings(), WIDE, np.random.default_rng(1))
    assert result["profiles"].shape == (15, 209)
    assert result["profiles"].min() == 0.0 and result["profiles"].max() == pytest.approx(1.0)
    assert len(result["condition_qmax_inv_A"]) == 15 and result["condition_qmax_inv_A"][0] == 25.0
    assert list(result["structure_id"][:5]) == ["NaCl"] * 5
