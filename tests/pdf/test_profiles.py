"""Augmentation over instrument conditions: the drawn ranges, and what each condition does to G(r)."""

from __future__ import annotations

import numpy as np
import pytest

from assets.pdf import profiles
from assets.pdf.calculator import MODEL_GRID_A, PdfSettings, compute_pdfs, normalise_profiles
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


# Mutation run (issue 25 item 3): the noise model, the draws' edge cases and profile_set's bookkeeping.

def affine_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    slope, intercept = np.polyfit(x, y, 1)
    return float(slope), float(intercept)


def test_noise_has_the_drawn_std_per_row_and_leaves_unmeasured_r_and_clean_rows_alone():
    """Noise of sd s on a [0, 1] profile, min-max normalised again: the result is a (p + noise) + b, so the
    residual of an affine fit on the measured part has sd a s, and where nothing was measured it is exactly a p + b."""
    r = np.linspace(0.0, 60.0, 4000)
    profile = (np.sin(r) * np.exp(-0.02 * r) + 1) / 2
    rows = np.tile(profile, (3, 1))
    measured = np.ones((3, len(r)), dtype=bool)
    measured[2, 3000:] = False
    noisy = profiles.add_noise(rows, np.array([0.0, 0.05, 0.02]), np.random.default_rng(0), measured)
    np.testing.assert_array_equal(noisy[0], profile)  # std 0: untouched
    for row, std in ((1, 0.05), (2, 0.02)):
        inside = measured[row]
        slope, intercept = affine_fit(profile[inside], noisy[row][inside])
        residual = noisy[row][inside] - (slope * profile[inside] + intercept)
        assert np.std(residual) / slope == pytest.approx(std, rel=0.08)
        assert noisy[row].min() == 0.0 and noisy[row].max() == pytest.approx(1.0)
    slope, intercept = affine_fit(profile[:3000], noisy[2][:3000])
    np.testing.assert_allclose(noisy[2][3000:], slope * profile[3000:] + intercept, atol=2e-3)
    assert profiles.add_noise(rows, 0.0, np.random.default_rng(0)) is rows  # no noise anywhere: the input itself


def test_conditions_at_the_edges_of_their_ranges():
    settings = PdfSettings()
    # copy 0 is clean only when asked and only when a structure has more than one copy
    drawn_all = profiles.draw_conditions(200, settings, profiles.Augmentation(
        copies_per_structure=3, qdamp_range_inv_A=(0.05, 0.06), clean_first_copy=False), np.random.default_rng(0))
    assert (drawn_all["qdamp_inv_A"] >= 0.05).all()
    single = profiles.draw_conditions(200, settings, profiles.Augmentation(
        copies_per_structure=1, qdamp_range_inv_A=(0.05, 0.06)), np.random.default_rng(0))
    assert (single["qdamp_inv_A"] >= 0.05).all()
    pairs = profiles.draw_conditions(200, settings, profiles.Augmentation(
        copies_per_structure=2, qdamp_range_inv_A=(0.05, 0.06)), np.random.default_rng(0))
    assert (pairs["qdamp_inv_A"][::2] == 0.04).all() and (pairs["qdamp_inv_A"][1::2] >= 0.05).all()
    # Qmax on 0.5 1/A steps never leaves a range whose ends are off the steps
    odd = profiles.draw_conditions(500, settings, profiles.Augmentation(qmax_range_inv_A=(18.2, 27.8)),
                                   np.random.default_rng(1))["qmax_inv_A"]
    assert odd.min() == 18.2 and odd.max() == 27.8
    # the lattice scale is centred on 1; particle diameters and r cuts are drawn per copy
    wide = profiles.draw_conditions(2000, settings, WIDE, np.random.default_rng(2))
    assert np.mean(wide["lattice_scale"]) == pytest.approx(1.0, abs=0.002)
    for key in ("diameter_A", "r_cut_A"):
        values = wide[key][np.isfinite(wide[key])]
        assert len(np.unique(values)) == len(values) > 50


def test_each_row_is_computed_at_its_own_qmax_and_kept_up_to_and_at_r_cut():
    nacl = reference_crystals()[0]
    settings = PdfSettings()
    r_cut = float(MODEL_GRID_A[100])
    conditions = {"qmax_inv_A": np.array([18.0, 25.0]), "qdamp_inv_A": np.full(2, 0.04), "uiso_A2": np.full(2, 0.005),
                  "lattice_scale": np.ones(2), "weighting": np.array(["atomic_number"] * 2),
                  "diameter_A": np.full(2, np.inf), "r_cut_A": np.array([np.inf, r_cut])}
    pdfs = profiles.conditioned_pdfs([nacl] * 2, settings, conditions)
    at_18 = compute_pdfs([nacl], PdfSettings(qmax_inv_A=18.0), MODEL_GRID_A)[0]
    clean = compute_pdfs([nacl], settings, MODEL_GRID_A)[0]
    np.testing.assert_allclose(pdfs[0], at_18)
    assert not np.allclose(at_18, clean, atol=0.05 * np.abs(clean).max())  # Qmax 18 and 25 differ visibly
    np.testing.assert_allclose(pdfs[1][:101], clean[:101])  # r_cut itself is measured
    assert np.all(pdfs[1][101:] == 0)


class CountingBackend:
    """The numpy backend, counting the arrays it is asked to make."""

    def __init__(self):
        from assets.pdf.calculator import ArrayBackend

        self.inner, self.calls = ArrayBackend("numpy"), 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def asarray(self, values):
        self.calls += 1
        return self.inner.asarray(values)


def test_profile_set_is_the_normalised_conditioned_pdfs_chunk_by_chunk_on_the_callers_backend():
    crystals = reference_crystals()
    augmentation = profiles.Augmentation(copies_per_structure=2, qdamp_range_inv_A=(0.02, 0.06),
                                         uiso_range_A2=(0.003, 0.01))
    done, backend = [], CountingBackend()
    result = profiles.profile_set(crystals, PdfSettings(), augmentation, np.random.default_rng(5), backend=backend,
                                  chunk_size=1, progress=done.append)
    assert done == [1, 2, 3] and all(type(n) is int for n in done)  # whole crystals, after each chunk
    assert backend.calls > 0
    conditions = {key[len("condition_"):]: value for key, value in result.items() if key.startswith("condition_")}
    copies = [crystal for crystal in crystals for _ in range(2)]
    expected = normalise_profiles(profiles.conditioned_pdfs(copies, PdfSettings(), conditions))
    np.testing.assert_allclose(result["profiles"], expected, atol=1e-6)
    assert result["profiles"].dtype == np.float32  # the stored set's size: half that of float64
    np.testing.assert_array_equal(result["r_A"], MODEL_GRID_A)
    assert result["space_group"].tolist() == [225, 225, 227, 227, 194, 194]

    noisy = profiles.Augmentation(copies_per_structure=2, noise_std_range=(0.03, 0.05))
    with_noise = profiles.profile_set(crystals, PdfSettings(), noisy, np.random.default_rng(5))
    clean = normalise_profiles(compute_pdfs(crystals, PdfSettings(), MODEL_GRID_A))
    np.testing.assert_allclose(with_noise["profiles"][::2], clean, atol=1e-6)  # the clean copies
    assert np.abs(with_noise["profiles"][1::2] - clean).max(axis=1).min() > 0.03  # the noisy ones
