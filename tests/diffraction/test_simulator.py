"""The vectorised simulator against diffsims and against closed forms."""

import numpy as np
import pytest

from assets.diffraction import simulator
from assets.diffraction.phases import PhaseError, load_phase, sample_orientations

GEOMETRY = simulator.Geometry(beam_energy_keV=200.0, max_excitation_error_inv_A=0.02, relrod_length_inv_A=0.02)


@pytest.fixture(scope="module")
def phases():
    return {name: load_phase(name) for name in ["CsPbI3_cubic", "PbI2", "Pb", "CsI"]}


@pytest.mark.parametrize("name", ["CsPbI3_cubic", "PbI2", "Pb", "CsI"])
def test_spots_agree_with_diffsims_calculate_diffraction2d(phases, name):
    from diffsims.generators.simulation_generator import SimulationGenerator
    from orix.quaternion import Rotation

    phase = phases[name]
    quaternions = sample_orientations(phase, 2, np.random.default_rng(3))
    ours = simulator.spot_lists(simulator.phase_reflections(phase, 1.2), quaternions, GEOMETRY)
    generator = SimulationGenerator(accelerating_voltage=200.0)
    for (xy, intensity, _), quaternion in zip(ours, quaternions):
        reference = generator.calculate_diffraction2d(
            phase, Rotation(quaternion), reciprocal_radius=1.2, with_direct_beam=False,
            max_excitation_error=0.02, shape_factor_width=0.02,
        )
        theirs = reference.coordinates
        keep = theirs.intensity > theirs.intensity.max() * 1e-9  # diffsims keeps systematic absences (|F|^2 ~ 0)
        ours_sorted = np.array(sorted(zip(*np.round(xy.T, 8), intensity)))
        theirs_sorted = np.array(sorted(zip(*np.round(theirs.data[keep, :2].T, 8), theirs.intensity[keep])))
        assert ours_sorted.shape == theirs_sorted.shape and len(ours_sorted) > 0
        np.testing.assert_allclose(ours_sorted[:, :2], theirs_sorted[:, :2], atol=1e-8)
        np.testing.assert_allclose(ours_sorted[:, 2], theirs_sorted[:, 2], rtol=1e-8)


def test_fcc_lead_has_only_unmixed_reflections_and_first_ring_at_sqrt3_over_a(phases):
    reflections = simulator.phase_reflections(phases["Pb"], 0.8)
    parity = np.mod(reflections.hkl, 2)
    assert np.all((parity.sum(axis=1) == 0) | (parity.sum(axis=1) == 3))
    np.testing.assert_allclose(np.sqrt(reflections.g_squared.min()), np.sqrt(3) / 4.9505, rtol=1e-6)


def test_profile_of_one_spot_sums_its_intensity_at_its_radius():
    reflections = simulator.Reflections(np.array([[1, 0, 0]]), np.array([[0.5, 0.0, 0.0]]), np.array([4.0]))
    identity = np.array([[1.0, 0.0, 0.0, 0.0]])
    profile = simulator.radial_profiles(reflections, identity, GEOMETRY, 0.01, 100, sigma_px=0.0)[0]
    # g = 0.5 1/A lies in the zero-order Laue zone; its excitation error is the sphere height there.
    k = 1 / GEOMETRY.wavelength_A
    error = k - np.sqrt(k**2 - 0.25)
    expected = 4.0 * simulator.relrod_factor(error, 0.02)
    np.testing.assert_allclose(profile.sum(), expected)
    assert set(np.flatnonzero(profile)) <= {49, 50}
    np.testing.assert_allclose(np.dot(profile, np.arange(100)) / profile.sum(), 50.0)


def test_lattice_expansion_moves_rings_inwards(phases):
    reflections = simulator.phase_reflections(phases["Pb"], 1.0)
    quaternions = sample_orientations(phases["Pb"], 64, np.random.default_rng(0))
    bins = np.arange(120)
    base = simulator.radial_profiles(reflections, quaternions, GEOMETRY, 0.01, 120, 0.0).sum(axis=0)
    scaled = simulator.radial_profiles(reflections, quaternions, GEOMETRY, 0.01, 120, 0.0, lattice_scale=np.full(64, 1.1)).sum(axis=0)
    first_ring = lambda profile: bins[np.flatnonzero(profile > 0.05 * profile.max())[0]]
    assert first_ring(scaled) < first_ring(base)


def test_drop_brightest_removes_exactly_the_strongest_spots():
    rows = np.array([0, 0, 0, 1, 1])
    intensity = np.array([5.0, 1.0, 3.0, 2.0, 7.0])
    keep = simulator.drop_brightest_spots(rows, intensity, np.array([2, 0]))
    np.testing.assert_array_equal(keep, [False, True, False, True, True])


def test_unreadable_cif_names_the_file(tmp_path, monkeypatch, data_root):
    folder = data_root / "raw" / "diffraction" / "cif"
    folder.mkdir(parents=True)
    (folder / "broken.cif").write_text("data_broken\n_cell_length_a not-a-number\n")
    with pytest.raises(PhaseError, match="broken.cif"):
        load_phase("broken")
    with pytest.raises(PhaseError, match="no missing.cif"):
        load_phase("missing")


@pytest.mark.parametrize("name", ["CsPbI3_cubic", "PbI2", "Pb", "CsI"])
def test_torch_path_matches_the_numpy_path_and_float32_the_float64_one(phases, name):
    """Dense torch evaluation (the GPU path, here on the CPU) against the sparse numpy one, augmentation included;
    float32 (the CUDA default) within 1e-5 of the float64 profiles' maximum (issue 16)."""
    pytest.importorskip("torch")
    from assets.diffraction.simulator_torch import radial_profiles_torch

    rng = np.random.default_rng(5)
    count = 300
    arguments = dict(
        reflections=simulator.phase_reflections(phases[name], 1.6),
        quaternions=sample_orientations(phases[name], count, rng),
        geometry=GEOMETRY,
        pixel_size_inv_A=0.01 * (1 + rng.uniform(-0.02, 0.02, count)),
        n_bins=160,
        sigma_px=1.5,
        lattice_scale=rng.uniform(0.98, 1.02, count),
        drop_counts=rng.integers(0, 3, count),
        batch_size=128,
    )
    reference = simulator.radial_profiles(**arguments)
    on_torch = radial_profiles_torch(**arguments, device="cpu")
    single = radial_profiles_torch(**arguments, device="cpu", precision="float32")
    assert reference.sum() > 0
    np.testing.assert_allclose(on_torch, reference, rtol=1e-9, atol=1e-9 * reference.max())
    assert np.abs(single - on_torch).max() <= 1e-5 * on_torch.max()
    assert np.abs(single - on_torch).max() > 0  # float32 did run


def test_torch_blur_kernel_is_scipys():
    from scipy.ndimage import gaussian_filter1d

    from assets.diffraction.simulator_torch import gaussian_kernel

    impulse = np.zeros(41)
    impulse[20] = 1.0
    for sigma in (0.7, 1.5, 3.2):
        kernel = gaussian_kernel(sigma)
        np.testing.assert_allclose(gaussian_filter1d(impulse, sigma, mode="constant")[20 - len(kernel) // 2:][:len(kernel)],
                                   kernel, rtol=1e-12)


def test_blur_matrix_is_scipys_constant_mode_filter():
    from scipy.ndimage import gaussian_filter1d

    from assets.diffraction.simulator_torch import blur_matrix

    profile = np.random.default_rng(0).random((3, 50))
    for sigma in (0.7, 1.5, 3.2):
        np.testing.assert_allclose(profile @ blur_matrix(50, sigma), gaussian_filter1d(profile, sigma, mode="constant"),
                                   rtol=1e-12, atol=1e-15)
    assert blur_matrix(50, 1e-4) is None
