"""Parameter standard errors, identifiability and the simplest supported circuit."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from assets.eis.circuits import CIRCUITS, Circuit, rc, rcpe, reduced_circuit
from assets.eis.fitting import FitSettings, circuit_impedance, fit_circuit, fit_spectra, relative_residual
from assets.eis.simulate import SimulationSettings, simulate_class
from assets.eis.supported import differs_share_by_class, removable_elements, supported_circuits
from assets.eis.uncertainty import (
    PINNED_FRACTION,
    RELATIVE_SE_MAX,
    covariance,
    equal_block_parameters,
    pinned_parameters,
    reasons_text,
    standard_errors_and_correlation,
    strongest_correlation,
    undetermined_reasons,
)

OMEGA = np.logspace(-2, 5, 50)  # rad/s
ONE_RC = Circuit("RC", ("R1", "C1"), ("resistance", "capacitance"), lambda p, omega, xp: rc(p["R1"], p["C1"], omega),
                 elements=(("RC", ("R1", "C1")),))


def noisy(circuit: Circuit, values: dict, relative_noise: float, rng, omega=OMEGA) -> np.ndarray:
    clean = circuit_impedance(circuit, np.array([values[p] for p in circuit.parameters]), omega)
    return clean + relative_noise * np.abs(clean) * (rng.standard_normal(len(omega)) + 1j * rng.standard_normal(len(omega)))


def test_standard_errors_of_one_rc_match_the_closed_form():
    """s^2 (J^T J)^-1 with the analytic derivatives dZ/dR = 1/(1 + j w R C)^2, dZ/dC = -j w R^2/(1 + j w R C)^2,
    residuals weighted by 1/|Z_data|, s^2 = cost / (2 n - 2)."""
    rng = np.random.default_rng(0)
    z = noisy(ONE_RC, {"R1": 2.0, "C1": 1e-3}, 0.01, rng)
    result = fit_circuit(ONE_RC, [OMEGA], [z], np.array([[2.0, 1e-3]]), FitSettings())
    r, c = result.parameters[0]
    denominator = (1 + 1j * OMEGA * r * c) ** 2
    weight = 1 / np.abs(z)
    columns = [weight / denominator, weight * (-1j * OMEGA * r**2) / denominator]
    jacobian = np.stack([np.concatenate([d.real, d.imag]) for d in columns], axis=1)
    residual = weight * (rc(r, c, OMEGA) - z)
    variance = np.sum(np.abs(residual) ** 2) / (2 * len(OMEGA) - 2)
    expected = np.sqrt(np.diag(variance * np.linalg.inv(jacobian.T @ jacobian)))
    np.testing.assert_allclose(result.standard_errors[0], expected, rtol=1e-6)
    assert 0 < expected[0] / r < 0.01  # 1 % noise on 50 points pins R to well under 1 %
    assert result.determined[0]


def test_standard_errors_match_impedance_py_conf_on_the_same_fit():
    from impedance.models.circuits import CustomCircuit

    circuit = CIRCUITS["L-R-RCPE"]
    truth = {"L1": 1e-6, "R1": 0.5, "R2": 2.0, "CPE1_t": 0.8, "CPE1_C": 1e2**-0.8 / 2.0}
    z = noisy(circuit, truth, 0.005, np.random.default_rng(1))
    start = np.array([truth[p] for p in circuit.parameters])
    ours = fit_circuit(circuit, [OMEGA], [z], start[None], FitSettings())
    order = ("L1", "R1", "R2", "CPE1_C", "CPE1_t")
    reference = CustomCircuit("L0-R0-p(R1,CPE1)", initial_guess=[truth[p] for p in order])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference.fit(OMEGA / (2 * math.pi), z, weight_by_modulus=True)
    reference_values = dict(zip(order, reference.parameters_))
    reference_errors = dict(zip(order, reference.conf_))
    for k, name in enumerate(circuit.parameters):
        assert ours.parameters[0, k] == pytest.approx(reference_values[name], rel=1e-3)  # the same minimum
        assert 0.95 < ours.standard_errors[0, k] / reference_errors[name] < 1.05, name


def test_95_percent_intervals_of_determined_parameters_cover_the_truth():
    """Simulated spectra (0.5 % noise on Re and Im, relative to |Z|, as the 1/|Z| weighting assumes) with
    known parameters, fitted from the truth: value +- 1.96 se holds the true value 90-98 % of the time."""
    rng = np.random.default_rng(3)
    inside, count = 0, 0
    for name in ("L-R-RCPE", "RCPE-RCPE", "RC-G-G"):
        circuit = CIRCUITS[name]
        batch = simulate_class(circuit, 60, SimulationSettings(noise_relative_std=0.005), rng)
        truth = np.stack([batch.parameters[p] for p in circuit.parameters], axis=1)
        result = fit_circuit(circuit, [batch.omega[i, :n] for i, n in enumerate(batch.n_points)],
                             [batch.impedance[i, :n] for i, n in enumerate(batch.n_points)], truth, FitSettings(random_starts=0))
        determined = np.array([[p not in reasons for p in circuit.parameters] for reasons in result.undetermined]) & result.reproduces[:, None]
        covered = np.abs(result.parameters - truth) <= 1.96 * result.standard_errors
        inside += int(covered[determined].sum())
        count += int(determined.sum())
    assert count > 300
    assert 0.90 <= inside / count <= 0.98, inside / count


def test_a_negligible_inductance_is_undetermined_and_the_supported_circuit_drops_it():
    circuit = CIRCUITS["L-R-RCPE"]
    truth = {"L1": 1e-12, "R1": 0.5, "R2": 2.0, "CPE1_t": 0.8, "CPE1_C": 1e2**-0.8 / 2.0}  # w L <= 1e-7 Ohm
    z = noisy(circuit, truth, 0.002, np.random.default_rng(4))
    fits = fit_spectra([OMEGA], [z], [circuit.name], [None], FitSettings())
    assert fits["reproduces"][0] and not fits["determined"][0]
    assert set(fits["undetermined"][0]) == {"L1"}
    supported = supported_circuits([OMEGA], [z], fits, FitSettings())
    assert supported["supported_circuit"][0] == "R-RCPE"
    values = supported["supported_parameters"][0]
    assert set(values) == {"R1", "R2", "CPE1_t", "CPE1_C"} and not supported["supported_undetermined"][0]
    assert values["R1"] == pytest.approx(0.5, rel=0.02) and values["R2"] == pytest.approx(2.0, rel=0.02)
    assert supported["supported_bic"][0] < fits["bic"][0]


def test_an_arc_above_the_measured_span_is_undetermined_and_dropped():
    """The second arc's corner (1e9 rad/s) lies four decades above the highest measured frequency: it adds
    a constant 1 Ohm the series resistance takes up, so L-R-RCPE-RCPE reduces to L-R-RCPE with R1 = 1.5."""
    circuit = CIRCUITS["L-R-RCPE-RCPE"]
    truth = {"L1": 2e-6, "R1": 0.5, "R2": 2.0, "CPE1_t": 0.8, "CPE1_C": 1e2**-0.8 / 2.0,
             "R3": 1.0, "CPE2_t": 0.9, "CPE2_C": 1e9**-0.9 / 1.0}
    z = noisy(circuit, truth, 0.002, np.random.default_rng(5))
    fits = fit_spectra([OMEGA], [z], [circuit.name], [truth], FitSettings())
    assert fits["reproduces"][0]
    undetermined = set(fits["undetermined"][0])
    assert undetermined and undetermined <= {"R3", "CPE2_t", "CPE2_C", "R2", "CPE1_t", "CPE1_C", "R1"}
    supported = supported_circuits([OMEGA], [z], fits, FitSettings())
    assert supported["supported_circuit"][0] == "L-R-RCPE"
    values = supported["supported_parameters"][0]
    assert values["R1"] == pytest.approx(1.5, rel=0.02)
    assert not supported["supported_undetermined"][0]


def test_a_reduced_circuit_is_its_parent_without_the_removed_elements():
    parent = CIRCUITS["L-R-RCPE-RCPE"]
    reduced = reduced_circuit(parent, frozenset({0, 3}))  # no L, no second RCPE
    assert reduced.name == "R-RCPE" and reduced.parameters == ("R1", "R2", "CPE1_t", "CPE1_C")
    values = {"R1": 0.7, "R2": 2.0, "CPE1_t": 0.8, "CPE1_C": 1e-3}
    expected = 0.7 + rcpe(2.0, 1e-3, 0.8, OMEGA)
    np.testing.assert_allclose(reduced.impedance(values, OMEGA), expected, rtol=1e-12)


def test_a_fit_that_determines_every_parameter_supports_itself():
    circuit = CIRCUITS["RCPE-RCPE"]
    truth = {"R1": 1.0, "CPE1_t": 0.9, "CPE1_C": 1e4**-0.9, "R2": 2.0, "CPE2_t": 0.7, "CPE2_C": 1e1**-0.7 / 2.0}
    z = noisy(circuit, truth, 0.002, np.random.default_rng(6))
    fits = fit_spectra([OMEGA], [z], [circuit.name], [truth], FitSettings())
    assert fits["determined"][0]
    supported = supported_circuits([OMEGA], [z], fits, FitSettings())
    assert supported["supported_circuit"][0] == "RCPE-RCPE"
    assert supported["supported_parameters"][0] == fits["parameters"][0]


def test_a_parameter_is_undetermined_exactly_when_its_95_percent_interval_reaches_zero():
    circuit = CIRCUITS["RCPE-RCPE"]
    by_name = {"R1": 1.0, "CPE1_t": 0.9, "CPE1_C": 1e-4, "R2": 2.0, "CPE2_t": 0.7, "CPE2_C": 1e-2}
    relative = {"R1": 0.50, "CPE1_C": 0.52}  # 1.96 x: 0.98 (the interval excludes 0), 1.02 (it reaches 0)
    values = np.array([[by_name[p] for p in circuit.parameters]])
    errors = values * np.array([[relative.get(p, 0.1) for p in circuit.parameters]])
    fraction = np.full(values.shape, 0.5)  # inside the bounds
    reasons = undetermined_reasons(circuit, values, errors, fraction)[0]
    assert reasons == {"CPE1_C": "se 52% of value"}
    assert set(undetermined_reasons(circuit, values, np.full(values.shape, np.inf), fraction)[0]) == set(circuit.parameters)
    pinned = fraction.copy()
    pinned[0, circuit.parameters.index("R1")] = 1e-6  # R1 at its lower bound
    assert undetermined_reasons(circuit, values, values * 0.01, pinned)[0] == {"R1": "at a bound"}


def test_an_undetermined_element_the_spectrum_needs_stays():
    """The second block's corner (1e-6 rad/s) lies four decades below the lowest frequency: its R cannot be
    seen (undetermined), but its CPE shapes the low-frequency tail, so dropping the block raises BIC and the
    supported circuit is the full one."""
    circuit = CIRCUITS["RCPE-RCPE"]
    truth = {"R1": 1.0, "CPE1_t": 0.9, "CPE1_C": 1e3**-0.9, "R2": 1e4, "CPE2_t": 0.8, "CPE2_C": 1e-6**-0.8 / 1e4}
    z = noisy(circuit, truth, 0.002, np.random.default_rng(7))
    fits = fit_spectra([OMEGA], [z], [circuit.name], [truth], FitSettings())
    assert fits["reproduces"][0] and "R2" in fits["undetermined"][0]
    supported = supported_circuits([OMEGA], [z], fits, FitSettings())
    assert supported["supported_circuit"][0] == "RCPE-RCPE"
    assert "R2" in supported["supported_undetermined"][0]


def test_the_last_element_is_never_removed():
    assert removable_elements("Rs_Ws", frozenset({0}), {"W1_R": "at a bound"}) == []
    assert removable_elements("Rs_Ws", frozenset(), {"W1_R": "at a bound", "R1": "at a bound"}) == [0, 1]


def test_two_equal_interchangeable_blocks_are_undetermined():
    """One block doing the work of two: equal resistances and exponents of two RCPE blocks."""
    circuit = CIRCUITS["RCPE-RCPE-RCPE"]
    by_name = {"R1": 1.0, "CPE1_t": 0.8, "CPE1_C": 1e-3, "R2": 1.0, "CPE2_t": 0.8, "CPE2_C": 2e-3, "R3": 3.0, "CPE3_t": 0.7, "CPE3_C": 1e-1}
    values = np.array([[by_name[p] for p in circuit.parameters]])
    reasons = undetermined_reasons(circuit, values, values * 0.01, np.full(values.shape, 0.5))[0]
    assert reasons == dict.fromkeys(("R1", "R2", "CPE1_t", "CPE1_C", "CPE2_t", "CPE2_C"), "equal blocks")


def test_random_restarts_only_lower_costs_and_reproduce_more_spectra():
    circuit = CIRCUITS["RCPE-RCPE-RCPE-RCPE"]
    batch = simulate_class(circuit, 30, SimulationSettings(noise_relative_std=0.0), np.random.default_rng(8))
    omegas = [batch.omega[i, :n] for i, n in enumerate(batch.n_points)]
    impedances = [batch.impedance[i, :n] for i, n in enumerate(batch.n_points)]
    start = np.full((30, len(circuit.parameters)), np.nan)
    strict = 1e-3  # noise-free spectra: a fit in the right minimum reproduces them far better than 3 %
    naive = fit_circuit(circuit, omegas, impedances, start, FitSettings(random_starts=0, converged_residual=strict))
    restarted = fit_circuit(circuit, omegas, impedances, start, FitSettings(random_starts=5, converged_residual=strict))
    assert np.all(restarted.weighted_cost <= naive.weighted_cost)
    assert restarted.reproduces.sum() > naive.reproduces.sum() and restarted.reproduces[naive.reproduces].all()
    # each spectrum keeps a fit of its own data: its residual recomputed from its parameters is the reported one
    np.testing.assert_allclose(relative_residual(circuit, restarted.parameters, omegas, impedances), restarted.relative_residual, rtol=1e-9)
    # with its own errors and correlations, and the restarts are seeded: a second run gives the same fits
    rescued = restarted.reproduces & ~naive.reproduces
    assert np.isfinite(restarted.standard_errors[rescued]).all() and np.isfinite(restarted.correlation[rescued]).all()
    again = fit_circuit(circuit, omegas, impedances, start, FitSettings(random_starts=5, converged_residual=strict))
    np.testing.assert_array_equal(again.weighted_cost, restarted.weighted_cost)
    # and a spectrum's restarts do not depend on its batch: alone, it gets the same fit
    for i in np.flatnonzero(~naive.reproduces)[:2]:
        alone = fit_circuit(circuit, omegas[i : i + 1], impedances[i : i + 1], start[i : i + 1],
                            FitSettings(random_starts=5, converged_residual=strict))
        np.testing.assert_allclose(alone.weighted_cost, restarted.weighted_cost[i : i + 1], rtol=1e-6)


def test_the_share_whose_supported_circuit_differs_is_counted_per_labelled_class():
    labels = ["L-R-RCPE", "L-R-RCPE", "RCPE-RCPE", "L-R-RCPE", "RCPE-RCPE"]
    supported = ["R-RCPE", "L-R-RCPE", "RCPE-RCPE", "R-RCPE", "RCPE-RCPE"]
    assert differs_share_by_class(labels, supported) == {"L-R-RCPE": pytest.approx(2 / 3), "RCPE-RCPE": 0.0}


def test_covariance_of_orthogonal_columns_is_the_closed_form_at_any_scale():
    """Orthogonal Jacobian columns of norms 1e-9, 1 and 1e3 (an inductance next to resistances): cov =
    s^2 diag(1 / |c_k|^2) with s^2 = cost / (2 n - P); n = 2 points and P = 3 leave one degree of freedom."""
    norms = np.array([1e-9, 1.0, 1e3])
    jacobian = torch.zeros(1, 4, 3, dtype=torch.float64)
    jacobian[0, [0, 1, 3], [0, 1, 2]] = torch.tensor(norms)
    cov = covariance(jacobian, torch.tensor([2.0]), [2])
    np.testing.assert_allclose(torch.diagonal(cov[0]).numpy(), 2.0 / norms**2, rtol=1e-9)
    assert np.allclose(cov[0].numpy() - np.diag(np.diag(cov[0].numpy())), 0.0)
    # a column the data cannot see (all zero) gets a variance far above the others, not zero
    jacobian[0, 3, 2] = 0.0
    blind = torch.diagonal(covariance(jacobian, torch.tensor([2.0]), [2])[0]).numpy()
    assert np.isfinite(blind[:2]).all() and blind[2] > 1e10 * blind[1]
    # computed where the Jacobian lives (a meta tensor stands in for a GPU: mixing in a CPU tensor fails)
    on_meta = covariance(jacobian.to("meta"), torch.tensor([2.0], device="meta"), [2])
    assert on_meta.device.type == "meta" and on_meta.shape == (1, 3, 3)


def test_correlations_are_covariances_over_the_errors_and_stay_in_minus_one_to_one():
    cov = torch.tensor([[[4e-6, 2e-6, 0.0], [2e-6, 9e-6, 0.0], [0.0, 0.0, 1e-8]]], dtype=torch.float64)
    se, correlation = standard_errors_and_correlation(cov)
    np.testing.assert_allclose(se[0], [2e-3, 3e-3, 1e-4], rtol=1e-12)
    np.testing.assert_allclose(correlation[0], [[1, 1 / 3, 0], [1 / 3, 1, 0], [0, 0, 1]], rtol=1e-12)
    # rounding can push a perfectly (anti)correlated pair past 1: the correlation is clipped to it
    eps = 1e-12
    cov = torch.tensor([[[1.0, 1 + eps, -1 - eps], [1 + eps, 1.0, -1 - eps], [-1 - eps, -1 - eps, 1.0]]], dtype=torch.float64)
    correlation = standard_errors_and_correlation(cov)[1][0]
    assert correlation[0, 1] == 1.0 and correlation[0, 2] == correlation[1, 2] == -1.0


def test_the_strongest_correlation_names_its_pair():
    three = Circuit("RC-X", ("R1", "C1", "X1"), ("resistance", "capacitance", "resistance"), lambda p, omega, xp: p["R1"])
    correlation = np.array([
        [[1, 0.9, 0.5], [0.9, 1, -0.95], [0.5, -0.95, 1]],  # C1 with X1
        [[1, 0.2, -0.6], [0.2, 1, 0.1], [-0.6, 0.1, 1]],  # R1 with X1
        [[1, 0.7, 0.1], [0.7, 1, 0.1], [0.1, 0.1, 1]],  # R1 with C1
    ])
    largest, pairs = strongest_correlation(three, correlation)
    np.testing.assert_allclose(largest, [0.95, 0.6, 0.7])
    assert pairs == ["C1~X1", "R1~X1", "R1~C1"]
    largest, pairs = strongest_correlation(ONE_RC, np.array([[[1, -0.3], [-0.3, 1]]]))
    assert largest.tolist() == [0.3] and pairs == ["R1~C1"]
    one = Circuit("R", ("R1",), ("resistance",), lambda p, omega, xp: p["R1"])
    largest, pairs = strongest_correlation(one, np.ones((2, 1, 1)))
    assert largest.shape == (2,) and np.isnan(largest).all() and pairs == ["", ""]


def test_a_parameter_is_at_a_bound_only_inside_the_pinned_fraction_of_either_end():
    circuit = CIRCUITS["RCPE-RCPE"]  # R1, R2, CPE1_t, CPE1_C, CPE2_t, CPE2_C; exponents are not log-scaled
    edge = [PINNED_FRACTION, 1 - PINNED_FRACTION, 1 - PINNED_FRACTION / 2, PINNED_FRACTION / 2, 0.0, 1.0]
    pinned = pinned_parameters(circuit, np.array([edge]))
    assert pinned.tolist() == [[False, False, False, True, False, True]]
    assert not pinned_parameters(circuit, np.full((1, 6), 0.5)).any()


def test_equal_blocks_need_both_the_resistance_and_the_exponent_equal():
    circuit = CIRCUITS["RCPE-RCPE"]
    rows = [
        {"R1": 1000.0, "R2": 999.0, "CPE1_t": 0.8, "CPE2_t": 0.8},  # R 0.1 % apart (the tolerance): equal
        {"R1": 1.0, "R2": 1.5, "CPE1_t": 0.8, "CPE2_t": 0.8},  # same exponent, other resistance
        {"R1": 1.0, "R2": 1.0, "CPE1_t": 0.8, "CPE2_t": 0.6},  # same resistance, other exponent
        {"R1": 1000.0, "R2": 998.0, "CPE1_t": 0.8, "CPE2_t": 0.8},  # R 0.2 % apart
    ]
    values = np.array([[row.get(p, 1e-3) for p in circuit.parameters] for row in rows])
    assert equal_block_parameters(circuit, values).any(axis=1).tolist() == [True, False, False, False]
    assert equal_block_parameters(circuit, values)[0].all()


def test_a_zero_value_or_an_error_at_the_limit_is_judged_without_warnings():
    circuit = CIRCUITS["RCPE-RCPE"]
    values = np.array([[1.0, 0.0, 0.8, 1e-3, 0.7, 0.0]])
    errors = np.array([[RELATIVE_SE_MAX, 0.1, 0.0, 0.0, 0.0, 0.0]])  # R1 exactly at the limit; R2 = 0; CPE2_C 0 +- 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reasons = undetermined_reasons(circuit, values, errors, np.full(values.shape, 0.5))[0]
    assert reasons == {"R2": "se inf% of value", "CPE2_C": "se nan% of value"}
    assert reasons_text({"L1": "at a bound", "R3": "se 240% of value"}) == "L1: at a bound; R3: se 240% of value"
    assert reasons_text({}) == ""


def test_only_elements_not_yet_removed_that_hold_an_undetermined_parameter_are_removable():
    # L-R-RCPE-RCPE: elements L, R, RCPE (R2, CPE1_*), RCPE (R3, CPE2_*)
    assert removable_elements("L-R-RCPE-RCPE", frozenset(), {"L1": "at a bound"}) == [0]
    assert removable_elements("L-R-RCPE-RCPE", frozenset({0}), {"L1": "at a bound", "CPE2_C": "se 300% of value"}) == [3]
    assert removable_elements("L-R-RCPE-RCPE", frozenset(), {}) == []


class ScriptedFits:
    """Stands in for fitting.fit_spectra in supported_circuits: each reduced circuit's BIC and undetermined
    parameters come from a script by circuit name; the calls are recorded."""

    def __init__(self, bic: dict[str, float], undetermined: dict[str, dict]):
        self.bic, self.undetermined, self.calls = bic, undetermined, []

    def __call__(self, omegas, impedances, circuits, initial, settings, device="cpu"):
        import pandas as pd

        self.calls.append(([c.name for c in circuits], device))
        return pd.DataFrame({"circuit": [c.name for c in circuits], "parameters": initial, "standard_errors": initial,
                             "undetermined": [self.undetermined.get(c.name, {}) for c in circuits],
                             "relative_residual": 0.01, "bic": [self.bic[c.name] for c in circuits]})


def scripted_parent(name: str, undetermined: dict, bic: float, index):
    import pandas as pd

    values = {p: 1.0 for p in CIRCUITS[name].parameters}
    return pd.DataFrame({"circuit": [name], "parameters": [values], "standard_errors": [values], "undetermined": [undetermined],
                         "relative_residual": [0.01], "bic": [bic]}, index=index)


def test_reduction_repeats_while_bic_falls_and_stops_at_the_last_element(monkeypatch):
    from assets.eis import fitting

    # two rounds: without L (lower BIC, R3 still undetermined), then without the second RCPE
    script = ScriptedFits({"R-RCPE-RCPE": -110.0, "L-R-RCPE": -105.0, "R-RCPE": -120.0},
                          {"R-RCPE-RCPE": {"R3": "se 300% of value"}})
    monkeypatch.setattr(fitting, "fit_spectra", script)
    parent = scripted_parent("L-R-RCPE-RCPE", {"L1": "at a bound", "R3": "se 300% of value"}, -100.0, [7])
    supported = supported_circuits([OMEGA], [OMEGA + 0j], parent, FitSettings(), device="cuda:1")
    assert supported.index.tolist() == [7]
    assert supported["supported_circuit"][7] == "R-RCPE" and supported["supported_bic"][7] == -120.0
    assert script.calls == [(["R-RCPE-RCPE", "L-R-RCPE"], "cuda:1"), (["R-RCPE"], "cuda:1")]
    # Rs_Ws without its resistor is still undetermined, and one element is left: the reduction stops there
    script = ScriptedFits({"Ws": -50.0}, {"Ws": {"W1_T": "at a bound"}})
    monkeypatch.setattr(fitting, "fit_spectra", script)
    supported = supported_circuits([OMEGA], [OMEGA + 0j], scripted_parent("Rs_Ws", {"R1": "at a bound"}, -40.0, [0]),
                                   FitSettings())
    assert supported["supported_circuit"].tolist() == ["Ws"] and len(script.calls) == 1


def test_a_reduced_fit_of_equal_bic_does_not_replace_the_fit(monkeypatch):
    from assets.eis import fitting

    monkeypatch.setattr(fitting, "fit_spectra", ScriptedFits({"R-RCPE": -100.0}, {}))
    supported = supported_circuits([OMEGA], [OMEGA + 0j], scripted_parent("L-R-RCPE", {"L1": "at a bound"}, -100.0, [0]),
                                   FitSettings())
    assert supported["supported_circuit"].tolist() == ["L-R-RCPE"]
