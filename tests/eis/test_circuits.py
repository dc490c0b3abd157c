"""Element and circuit formulas against closed forms and impedance.py's elements."""

import numpy as np
import pytest
from impedance.models.circuits import CustomCircuit
from impedance.models.circuits import elements as ref

from assets.eis import circuits
from assets.eis.circuits import CIRCUITS, IMPEDANCE_PY_CIRCUITS
from assets.eis.simulate import DEFAULT_RANGES, canonical_block_order, sample_parameters

OMEGA = np.logspace(-2, 6, 57)  # rad/s
HZ = OMEGA / (2 * np.pi)  # impedance.py takes frequencies in Hz

def test_rc_parallel_at_its_corner_frequency_is_half_r_minus_half_j_r():
    resistance, capacitance = 3.0, 2e-4
    z = circuits.rc(resistance, capacitance, 1 / (resistance * capacitance))
    assert z == pytest.approx(resistance / 2 - 1j * resistance / 2, rel=1e-14)
    explicit = circuits.parallel(resistance, circuits.capacitor(capacitance, 1 / (resistance * capacitance)))
    assert explicit == pytest.approx(z, rel=1e-14)


def test_rcpe_with_exponent_one_is_the_rc_element():
    assert np.allclose(circuits.rcpe(2.0, 1e-3, 1.0, OMEGA), circuits.rc(2.0, 1e-3, OMEGA), rtol=1e-13)


@pytest.mark.parametrize(
    ("ours", "theirs", "params"),
    [
        (lambda: circuits.capacitor(1e-3, OMEGA), ref.C, [1e-3]),
        (lambda: circuits.inductor(2e-6, OMEGA), ref.L, [2e-6]),
        (lambda: circuits.cpe(1e-3, 0.7, OMEGA), ref.CPE, [1e-3, 0.7]),
        (lambda: circuits.gerischer(0.5, 1e-3, OMEGA), ref.G, [0.5, 1e-3]),
        (lambda: circuits.warburg_short(0.8, 0.3, 0.5, OMEGA), ref.Ws, [0.8, 0.3]),
    ],
    ids=["C", "L", "CPE", "G", "Ws"],
)
def test_elements_match_impedance_py(ours, theirs, params):
    assert np.allclose(ours(), theirs(params, HZ), rtol=1e-12, atol=0)


def test_warburg_short_with_free_exponent_tends_to_r_at_low_frequency_and_is_capacitive_above():
    assert circuits.warburg_short(0.8, 0.3, 0.4, 1e-9) == pytest.approx(0.8, rel=1e-3)
    z = circuits.warburg_short(0.8, 0.3, 0.4, OMEGA)
    assert np.all(z.imag < 0) and np.all(np.diff(np.abs(z)) < 0)


@pytest.mark.parametrize("name", sorted(CIRCUITS))
def test_every_circuit_matches_an_impedance_py_custom_circuit(name):
    circuit = CIRCUITS[name]
    params = {k: v[0] for k, v in sample_parameters(circuit, 1, DEFAULT_RANGES, np.random.default_rng(7)).items()}
    if name == "Rs_Ws":
        params["W1_p"] = 0.5  # impedance.py's Ws is the p = 0.5 case
    string, order = IMPEDANCE_PY_CIRCUITS[name]
    reference = CustomCircuit(string, initial_guess=[params[k] for k in order]).predict(HZ)
    assert np.allclose(circuit.impedance(params, OMEGA), reference, rtol=1e-11, atol=0)


def test_every_circuit_gives_the_same_values_on_torch_tensors():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    omega = np.tile(OMEGA, (4, 1))
    for circuit in CIRCUITS.values():
        params = {k: v[:, None] for k, v in sample_parameters(circuit, 4, DEFAULT_RANGES, rng).items()}
        expected = circuit.impedance(params, omega)
        tensors = {k: torch.from_numpy(v) for k, v in params.items()}
        got = circuit.impedance(tensors, torch.from_numpy(omega), xp=torch).numpy()
        assert np.allclose(got, expected, rtol=1e-12), circuit.name


def test_parameter_names_and_scales_are_those_of_the_challenge_format():
    assert len(CIRCUITS) == 9
    assert CIRCUITS["L-R-RCPE"].parameters == ("L1", "R1", "R2", "CPE1_t", "CPE1_C")
    assert CIRCUITS["Rs_Ws"].log_scaled == (True, True, True, False)
    for circuit in CIRCUITS.values():
        exponents = [p for p, log in zip(circuit.parameters, circuit.log_scaled) if not log]
        assert all(p.endswith(("_t", "_p")) for p in exponents), circuit.name


@pytest.mark.parametrize("name", [n for n in sorted(CIRCUITS) if CIRCUITS[n].block_groups])
def test_simulated_blocks_are_numbered_by_time_constant_and_swapping_them_keeps_z(name):
    circuit = CIRCUITS[name]
    drawn = sample_parameters(circuit, 64, DEFAULT_RANGES, np.random.default_rng(1))
    ordered = canonical_block_order(circuit, drawn)
    kinds = dict(zip(circuit.parameters, circuit.kinds))
    for group in circuit.block_groups:
        block_kinds = [kinds[p] for p in group[0]]
        taus = np.stack([circuits.block_time_constant([ordered[p] for p in block], block_kinds) for block in group])
        assert np.all(np.diff(taus, axis=0) >= 0)
    z_ordered = circuit.impedance({k: v[:, None] for k, v in ordered.items()}, OMEGA)
    z_drawn = circuit.impedance({k: v[:, None] for k, v in drawn.items()}, OMEGA)
    np.testing.assert_allclose(z_ordered, z_drawn, rtol=1e-12)


def test_label_fitted_simulator_stays_near_the_observed_values_on_the_observed_grids():
    from assets.eis.simulate import LabelFittedSettings, simulate_like_labels

    circuit = CIRCUITS["L-R-RCPE"]  # L1, R1, R2, CPE1_t, CPE1_C
    observed = np.array([[1e-7, 2.0, 100.0, 0.6, 1e-6], [1e-6, 20.0, 1000.0, 0.9, 1e-4], [3e-7, 5.0, 300.0, 0.7, 1e-5]])
    grids = [np.logspace(0, 5, 30), np.logspace(-1, 6, 45)]
    settings = LabelFittedSettings(spectra_per_class=400, jitter_decades=0.2, exponent_jitter=0.05)
    batch = simulate_like_labels(circuit, observed, grids, settings, np.random.default_rng(0))
    for j, name in enumerate(circuit.parameters):
        values = batch.parameters[name]
        if circuit.log_scaled[j]:
            assert values.min() >= observed[:, j].min() * 10**-0.2 * (1 - 1e-12)
            assert values.max() <= observed[:, j].max() * 10**0.2 * (1 + 1e-12)
            assert not np.isin(values, observed[:, j]).any()  # jittered, not copies (clipping may repeat a bound)
        else:
            assert observed[:, j].min() <= values.min() and values.max() <= observed[:, j].max()
    assert set(batch.n_points) == {30, 45}
    for i in (0, 1, 2):
        n = batch.n_points[i]
        assert any(len(g) == n and np.array_equal(batch.omega[i, :n], g) for g in grids)
        params = {name: batch.parameters[name][i] for name in circuit.parameters}
        np.testing.assert_allclose(batch.impedance[i, :n], circuit.impedance(params, batch.omega[i, :n]), rtol=1e-12)
