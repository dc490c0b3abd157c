"""The EIS simulator (assets/eis/simulate.py): its distributions, grids, noise and tables, against closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from assets.eis.circuits import CIRCUITS, block_time_constant
from assets.eis.formats import CHALLENGE, parse_challenge_frame
from assets.eis.simulate import (
    DEFAULT_RANGES, LabelFittedSettings, SimulationSettings, add_noise, as_challenge_frame, frequency_grids,
    pad_edge, sample_like, sample_parameters, simulate_all, simulate_class, simulate_like_labels,
)


def test_log_uniform_kinds_are_uniform_in_log10_and_exponents_uniform():
    circuit = CIRCUITS["L-R-RCPE"]  # L1 (inductance), R1, R2 (resistance), CPE1_t (exponent), CPE1_C (cpe_q)
    drawn = sample_parameters(circuit, 20_000, DEFAULT_RANGES, np.random.default_rng(0))
    for name, kind in zip(circuit.parameters, circuit.kinds):
        low, high = DEFAULT_RANGES[kind]
        values = np.log10(drawn[name]) if kind != "cpe_exponent" else drawn[name]
        low, high = (np.log10(low), np.log10(high)) if kind != "cpe_exponent" else (low, high)
        assert low <= values.min() and values.max() <= high, name
        # uniform on [low, high]: quartiles at a quarter and three quarters of the way
        np.testing.assert_allclose(np.quantile(values, [0.25, 0.5, 0.75]),
                                   low + (high - low) * np.array([0.25, 0.5, 0.75]), atol=0.02 * (high - low))


def test_frequency_grids_are_log_spaced_between_drawn_ends_and_padded_with_the_last_point():
    settings = SimulationSettings(points_min=3, points_max=6, freq_min_range=(0.1, 10.0), freq_max_range=(1e4, 1e6))
    omega, n_points = frequency_grids(400, settings, np.random.default_rng(1))
    assert omega.shape == (400, 6) and set(n_points) == {3, 4, 5, 6}  # both ends of the point range
    for row, n in zip(omega, n_points):
        np.testing.assert_allclose(row[:n], np.logspace(np.log10(row[0]), np.log10(row[n - 1]), n))
        assert (row[n:] == row[n - 1]).all()
    lows, highs = np.log10(omega[:, 0]), np.log10(omega[np.arange(400), n_points - 1])
    assert -1 <= lows.min() < -0.9 and 0.9 < lows.max() <= 1  # log-uniform over the whole range
    assert 4 <= highs.min() < 4.1 and 5.9 < highs.max() <= 6


def test_noise_on_re_and_im_is_relative_to_the_modulus_plus_a_floor():
    z = np.full(40_000, 30.0 - 40.0j)  # |Z| = 50 Ohm
    settings = SimulationSettings(noise_relative_std=0.02, noise_absolute_ohm=0.5)  # sd 1.5 Ohm on each part
    noise = add_noise(z, settings, np.random.default_rng(2)) - z
    assert np.std(noise.real) == pytest.approx(1.5, rel=0.02) and np.std(noise.imag) == pytest.approx(1.5, rel=0.02)
    assert abs(np.mean(noise.real)) < 0.03 and abs(np.mean(noise.imag)) < 0.03
    assert abs(np.corrcoef(noise.real, noise.imag)[0, 1]) < 0.03


def test_a_simulated_class_is_its_circuit_at_its_parameters_on_its_grid():
    circuit = CIRCUITS["RCPE-RCPE"]
    clean = simulate_class(circuit, 12, SimulationSettings(noise_relative_std=0.0), np.random.default_rng(3))
    assert clean.circuit is circuit and clean.impedance.shape == clean.omega.shape == (12, 83)
    for i, n in enumerate(clean.n_points):
        params = {name: values[i] for name, values in clean.parameters.items()}
        np.testing.assert_allclose(clean.impedance[i, :n], circuit.impedance(params, clean.omega[i, :n]), rtol=1e-12)
    kinds = dict(zip(circuit.parameters, circuit.kinds))
    for group in circuit.block_groups:  # block 1 is the fastest arc
        taus = np.stack([block_time_constant([clean.parameters[p] for p in block], [kinds[p] for p in group[0]])
                         for block in group])
        assert (np.diff(taus, axis=0) >= 0).all()
    noisy = simulate_class(circuit, 12, SimulationSettings(noise_relative_std=0.01), np.random.default_rng(3))
    relative = (noisy.impedance - clean.impedance) / np.abs(clean.impedance)
    assert np.std(relative.real) == pytest.approx(0.01, rel=0.1)
    batches = simulate_all(SimulationSettings(spectra_per_class=2), np.random.default_rng(4))
    assert [b.circuit.name for b in batches] == sorted(CIRCUITS) and all(len(b.n_points) == 2 for b in batches)


def test_the_challenge_table_reads_back_as_the_simulated_spectra_and_labels():
    batches = [simulate_class(CIRCUITS[name], 3, SimulationSettings(), np.random.default_rng(5))
               for name in ("Rs_Ws", "RC-G-G")]
    frame = as_challenge_frame(batches)
    spectra, rejections = parse_challenge_frame(frame, "sim", CHALLENGE, labelled=True)
    assert not rejections and len(spectra) == 6
    for spectrum, (batch, i) in zip(spectra, [(b, i) for b in batches for i in range(3)]):
        n = batch.n_points[i]
        np.testing.assert_allclose(spectrum.omega_rad_s, batch.omega[i, :n], rtol=1e-6)
        np.testing.assert_allclose(spectrum.impedance_ohm, batch.impedance[i, :n], rtol=1e-6)
        assert spectrum.circuit == batch.circuit.name
        for name, value in spectrum.parameters.items():  # W1_p is the exponent again after reading
            assert value == pytest.approx(batch.parameters[name][i], rel=1e-6), name
    unlabelled = as_challenge_frame(batches, labelled=False)
    assert "Circuit" not in unlabelled and "Parameters" not in unlabelled and len(unlabelled) == 6


def test_parameters_like_the_observed_ones_are_jittered_by_the_set_amounts_and_clipped():
    circuit = CIRCUITS["L-R-RCPE"]  # L1, R1, R2, CPE1_t, CPE1_C
    observed = np.array([[1e-7, 2.0, 100.0, 0.6, 1e-6], [1e-6, 20.0, 1000.0, 0.9, 1e-4]])
    settings = LabelFittedSettings(jitter_decades=0.2, exponent_jitter=0.02)
    drawn = sample_like(circuit, observed, 20_000, settings, np.random.default_rng(6))
    # R2 from 100 or 1000 Ohm, each jittered by N(0, 0.2) decades and clipped to [2 - 0.2, 3 + 0.2]
    log_r2 = np.log10(drawn["R2"])
    from_low = log_r2 < 2.5
    assert from_low.mean() == pytest.approx(0.5, abs=0.02)  # the two observed rows drawn alike
    clipped_normal = np.clip(np.random.default_rng(0).normal(0.0, 0.2, 1_000_000), -0.2, None)  # clipped below only
    assert np.std(log_r2[from_low] - 2.0) == pytest.approx(np.std(clipped_normal), rel=0.05)
    assert log_r2.min() >= 1.8 - 1e-12 and log_r2.max() <= 3.2 + 1e-12
    assert log_r2.min() < 1.85 and log_r2.max() > 3.15  # the widened range is used at both ends
    # the exponent: jitter of 0.02 about 0.6 or 0.9, clipped to [0.6, 0.9]: half of the draws sit on a bound
    exponent = drawn["CPE1_t"]
    assert exponent.min() == 0.6 and exponent.max() == 0.9
    assert np.mean((exponent == 0.6) | (exponent == 0.9)) == pytest.approx(0.5, abs=0.02)
    spread = exponent[(exponent > 0.6) & (exponent < 0.75)] - 0.6
    assert np.mean(spread) == pytest.approx(0.02 * np.sqrt(2 / np.pi), rel=0.05)  # a half-normal of sd 0.02


def test_pad_edge_repeats_each_last_value():
    padded, lengths = pad_edge([np.array([1.0, 2.0, 3.0]), np.array([4.0]), np.array([5.0, 6.0])])
    np.testing.assert_array_equal(padded, [[1, 2, 3], [4, 4, 4], [5, 6, 6]])
    np.testing.assert_array_equal(lengths, [3, 1, 2])


def test_label_fitted_spectra_are_clean_unless_noise_is_asked_for_and_use_every_grid():
    circuit = CIRCUITS["RC-G-G"]  # R1, C1, R_g1, t_g1, R_g2, t_g2
    observed = np.array([[1.0, 1e-5, 10.0, 1e-3, 100.0, 1e-2]])
    grids = [np.logspace(0, 4, 20), np.logspace(-1, 5, 31), np.logspace(1, 6, 12)]
    clean = simulate_like_labels(circuit, observed, grids, LabelFittedSettings(spectra_per_class=300),
                                 np.random.default_rng(7))
    assert set(clean.n_points) == {20, 31, 12} and clean.circuit is circuit
    for i in range(5):
        n = clean.n_points[i]
        params = {name: values[i] for name, values in clean.parameters.items()}
        np.testing.assert_allclose(clean.impedance[i, :n], circuit.impedance(params, clean.omega[i, :n]), rtol=1e-12)
    noisy = simulate_like_labels(circuit, observed, grids, LabelFittedSettings(spectra_per_class=300,
                                                                               noise_relative_std=0.01),
                                 np.random.default_rng(7))
    relative = (noisy.impedance - clean.impedance) / np.abs(clean.impedance)
    assert np.std(relative.real) == pytest.approx(0.01, rel=0.1)
