"""Augmentations, peak matching and experimental-map validation: closed forms and named errors."""

import numpy as np
import pytest

from assets.diffraction import augment, evaluation
from assets.diffraction.experimental import MapError, load_map, profiles_on_axis, region_weights


def test_poisson_noise_has_the_requested_snr_at_the_maximum():
    rng = np.random.default_rng(0)
    flat = np.ones((4000, 3))
    noisy = augment.poisson_noise(flat, np.full(4000, 10.0), rng)
    np.testing.assert_allclose(noisy.mean(), 1.0, rtol=0.01)
    np.testing.assert_allclose(noisy.mean() / noisy.std(), 10.0, rtol=0.05)


def test_background_is_a_decaying_exponential():
    q = np.array([0.0, 1.0, 2.0])
    background = augment.exponential_background(q, np.array([2.0]), np.array([np.log(2)]))
    np.testing.assert_allclose(background[0], [2.0, 1.0, 0.5])


def test_peak_match_is_symmetric_in_what_it_penalises():
    found = np.array([0.3, 0.5])
    exact = evaluation.peak_match(found, found.copy(), 0.01)
    assert exact["precision"] == exact["recall"] == exact["f1"] == 1.0 and exact["mean_abs_dq_inv_A"] == 0.0
    many = evaluation.peak_match(found, np.linspace(0.1, 1.5, 30), 0.03)
    assert many["precision"] == 1.0 and many["recall"] < 0.2  # a reflection-rich phase does not win for free
    assert many["mean_abs_dq_inv_A"] > 0


def test_peaks_of_gaussians_are_found_where_they_are():
    q = np.linspace(0.1, 1.5, 147)
    profile = np.exp(-0.5 * ((q - 0.4) / 0.01) ** 2) + 0.5 * np.exp(-0.5 * ((q - 0.9) / 0.01) ** 2)
    np.testing.assert_allclose(evaluation.peak_positions(profile, q, 0.05), [0.4, 0.9], atol=q[1] - q[0])


def test_region_weights_mix_half_and_half_on_a_boundary():
    truth, second, share = region_weights(30, 30, 3, boundary_px=2.0, rng=np.random.default_rng(1))
    assert set(np.unique(truth)) == {0, 1, 2} and np.all(truth != second)
    assert share.max() <= 0.5 and share.min() == 0.0


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"q": np.arange(147.0), "y": np.zeros((2, 2, 147))}, r"missing key\(s\) \['x'\]"),
        ({"x": np.arange(100.0), "y": np.zeros((2, 2, 100))}, r"'x' has shape \(100,\); expected \(147,\)"),
        ({"x": np.arange(147.0), "y": np.zeros((4, 147))}, r"expected \(rows, cols, 147\)"),
    ],
)
def test_bad_experimental_files_name_the_file_and_the_expectation(tmp_path, arrays, message):
    path = tmp_path / "scan.npz"
    np.savez(path, **arrays)
    with pytest.raises(MapError, match=rf"scan\.npz: .*{message}"):
        load_map(path, 147)


def test_resampling_onto_another_q_axis_keeps_a_peak_in_place():
    source = np.linspace(0.1, 1.6, 147)
    target = np.linspace(0.12, 1.5, 147)
    pattern = np.exp(-0.5 * ((source - 0.7) / 0.02) ** 2).reshape(1, 1, -1)
    resampled = profiles_on_axis(pattern, source, target)
    assert resampled.shape == (1, 147)
    assert abs(target[resampled[0].argmax()] - 0.7) <= target[1] - target[0]
