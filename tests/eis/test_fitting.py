"""Batched circuit fitting: torch formulas = numpy formulas, exact gradients, parameter recovery."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from assets.eis import fitting
from assets.eis.circuits import CIRCUITS
from assets.eis.exports import column_name
from assets.eis.fitting import (
    CUDA_CHECK_EVERY,
    FIT_BOUNDS,
    BoundedParameters,
    FitSettings,
    circuit_impedance,
    fit_circuit,
    fit_spectra,
    naive_start,
    pad_spectra,
    relative_residual,
    residual_jacobian,
    weighted_residual,
)
from assets.eis.simulate import DEFAULT_RANGES, SimulationSettings, sample_parameters, simulate_class

OMEGA = np.logspace(-2, 6, 60)  # rad/s, the challenge files' widest span

def cpe_q_for_corner(resistance_ohm: float, corner_rad_s: float, exponent: float) -> float:
    """Q of an RCPE block whose arc peaks at corner_rad_s: R Q corner^t = 1."""
    return corner_rad_s**-exponent / resistance_ohm


def rcpe_blocks(first: int, resistances: list[float], corners: list[float], exponents: list[float], offset: int = 0) -> dict:
    """Parameters R<k+offset>, CPE<k>_t, CPE<k>_C of consecutive RCPE blocks from CPE<first>."""
    blocks = {}
    for k, (r, corner, t) in enumerate(zip(resistances, corners, exponents), start=first):
        blocks.update({f"R{k + offset}": r, f"CPE{k}_t": t, f"CPE{k}_C": cpe_q_for_corner(r, corner, t)})
    return blocks


# Well-identified parameter sets: arc corners two decades apart inside OMEGA, so no two
# blocks can swap and every element shapes the spectrum.
WELL_IDENTIFIED = {
    "L-R-RCPE": {"L1": 2e-6, "R1": 0.5, **rcpe_blocks(1, [2.0], [1e2], [0.8], offset=1)},
    "L-R-RCPE-RCPE": {"L1": 2e-6, "R1": 0.5, **rcpe_blocks(1, [2.0, 1.0], [1e3, 1e0], [0.85, 0.7], offset=1)},
    "L-R-RCPE-RCPE-RCPE": {"L1": 2e-6, "R1": 0.5, **rcpe_blocks(1, [1.0, 2.0, 3.0], [1e4, 1e2, 1e0], [0.9, 0.8, 0.7], offset=1)},
    "RC-G-G": {"R1": 1.0, "C1": 1e-5, "R_g1": 2.0, "t_g1": 1e-2, "R_g2": 3.0, "t_g2": 10.0},
    "RC-RC-RCPE-RCPE": {"R1": 1.0, "R2": 2.0, "C1": 1e-5, "C2": 5e-4, **rcpe_blocks(3, [1.5, 3.0], [1e1, 1e-1], [0.8, 0.7])},
    "RCPE-RCPE": rcpe_blocks(1, [1.0, 2.0], [1e4, 1e1], [0.9, 0.7]),
    "RCPE-RCPE-RCPE": rcpe_blocks(1, [1.0, 2.0, 3.0], [1e4, 1e2, 1e0], [0.9, 0.8, 0.7]),
    "RCPE-RCPE-RCPE-RCPE": rcpe_blocks(1, [1.0, 2.0, 3.0, 1.5], [1e5, 1e3, 1e1, 3e-1], [0.95, 0.85, 0.8, 0.75]),
    "Rs_Ws": {"R1": 0.5, "W1_R": 2.0, "W1_T": 1.0, "W1_p": 0.45},
}


def noisy_copies(circuit, truth: dict, n: int, relative_noise: float, rng):
    clean = circuit_impedance(circuit, np.array([truth[p] for p in circuit.parameters]), OMEGA)
    noise = relative_noise * np.abs(clean) * (rng.standard_normal((n, len(OMEGA))) + 1j * rng.standard_normal((n, len(OMEGA))))
    return [OMEGA] * n, list(clean + noise)


def mixed_spectra(names: list[str], rng) -> tuple[list, list]:
    """(omegas, impedances): one copy of each named circuit's well-identified spectrum, 0.1 % noise, in order."""
    omegas, impedances = [], []
    for name in names:
        omega, z = noisy_copies(CIRCUITS[name], WELL_IDENTIFIED[name], 1, 1e-3, rng)
        omegas += omega
        impedances += z
    return omegas, impedances


def cpu_recording(function, calls: list):
    """`function` (fit_circuit or fit_spectra: the device is their sixth argument) run on the CPU; each call's first
    five arguments and the device it asked for are appended to `calls` as (args, device)."""
    def recording(*args, device="cpu"):
        if len(args) == 6:
            *args, device = args
        calls.append((args, device))
        return function(*args, "cpu")
    return recording


def test_torch_and_numpy_circuits_agree_to_1e_10():
    rng = np.random.default_rng(0)
    for name, circuit in CIRCUITS.items():
        params = sample_parameters(circuit, 16, DEFAULT_RANGES, rng)
        omega = np.tile(OMEGA, (16, 1))
        expected = circuit.impedance({k: v[:, None] for k, v in params.items()}, omega)
        got = circuit.impedance({k: torch.tensor(v[:, None]) for k, v in params.items()}, torch.tensor(omega), torch)
        relative = np.abs(got.numpy() - expected) / np.abs(expected)
        assert relative.max() < 1e-10, name


@pytest.mark.parametrize("name", sorted(CIRCUITS))
def test_circuit_gradients_match_finite_differences(name):
    """Complex impedance w.r.t. log10 parameters, torch autograd against finite differences."""
    circuit = CIRCUITS[name]
    log10_values = torch.tensor(np.log10([WELL_IDENTIFIED[name][p] for p in circuit.parameters]), requires_grad=True)
    omega = torch.tensor(OMEGA[::6])

    def impedance(log10_params):
        return circuit.impedance({p: 10 ** log10_params[k] for k, p in enumerate(circuit.parameters)}, omega, torch)

    assert torch.autograd.gradcheck(impedance, (log10_values,), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_jacobian_matches_autograd_per_spectrum():
    circuit = CIRCUITS["L-R-RCPE-RCPE"]
    model = BoundedParameters(circuit, FIT_BOUNDS, torch.float64, "cpu")
    rng = np.random.default_rng(1)
    omegas, impedances = noisy_copies(circuit, WELL_IDENTIFIED[circuit.name], 3, 0.01, rng)
    spectra = pad_spectra([o[: 40 + 5 * k] for k, o in enumerate(omegas)], [z[: 40 + 5 * k] for k, z in enumerate(impedances)], "modulus", torch.float64, "cpu")
    u = torch.tensor(rng.normal(0, 1, (3, len(circuit.parameters))))
    _, jacobian = residual_jacobian(model, u, spectra)
    for k in range(3):
        reverse = torch.autograd.functional.jacobian(lambda row: weighted_residual(model, row[None], spectra.subset(torch.tensor([k])))[0], u[k])
        assert torch.allclose(jacobian[k], reverse, rtol=1e-9, atol=1e-12)


def forward_mode_jacobian(model, u, spectra):
    """The Jacobian as fitting computed it before issue 16: forward mode, one tangent per parameter."""
    basis = torch.eye(u.shape[1], dtype=u.dtype)[:, None, :].expand(-1, u.shape[0], -1)

    def column(tangent):
        return torch.func.jvp(lambda coordinates: weighted_residual(model, coordinates, spectra), (u,), (tangent,))

    values, columns = torch.func.vmap(column, out_dims=(None, 0))(basis)
    return values, columns.permute(1, 2, 0)


def simulated_fits(monkeypatch, jacobian, check_every: int, names=("L-R-RCPE-RCPE", "RC-G-G", "Rs_Ws"), per_class: int = 8):
    """Naive-start LM fits of simulated spectra of several classes with the given Jacobian and check interval."""
    monkeypatch.setattr(fitting, "residual_jacobian", jacobian)
    monkeypatch.setitem(fitting.OPTIMIZERS, "lm", lambda *args: fitting._levenberg_marquardt(*args, check_every=check_every))
    rng = np.random.default_rng(7)
    results = []
    for name in names:
        batch = simulate_class(CIRCUITS[name], per_class, SimulationSettings(), rng)
        omegas = [batch.omega[i, :n] for i, n in enumerate(batch.n_points)]
        impedances = [batch.impedance[i, :n] for i, n in enumerate(batch.n_points)]
        start = np.full((per_class, len(CIRCUITS[name].parameters)), np.nan)
        # few iterations, one start: some spectra are not reproduced yet, so the comparison has both kinds
        results.append(fit_circuit(CIRCUITS[name], omegas, impedances, start, FitSettings(n_starts=1, random_starts=0, max_iterations=12)))
    fields = ("reproduces", "weighted_cost", "iterations", "parameters")
    return {field: np.concatenate([getattr(r, field).ravel() for r in results]) for field in fields}


def test_gpu_loop_keeps_todays_fits(monkeypatch):
    """The GPU loop (masked spectra, compaction every CUDA_CHECK_EVERY iterations, reverse-mode Jacobian)
    converges the same spectra to the same costs as the loop before issue 16 (forward-mode Jacobian,
    compaction every iteration)."""
    before = simulated_fits(monkeypatch, forward_mode_jacobian, check_every=1)
    masked = simulated_fits(monkeypatch, residual_jacobian, check_every=CUDA_CHECK_EVERY)
    assert 0.3 < before["reproduces"].mean() < 1.0  # a mix, so the comparison means something
    np.testing.assert_array_equal(masked["reproduces"], before["reproduces"])
    np.testing.assert_allclose(masked["weighted_cost"], before["weighted_cost"], rtol=1e-8)


def test_masked_and_compacted_batches_take_the_same_steps(monkeypatch):
    compacted = simulated_fits(monkeypatch, residual_jacobian, check_every=1, names=("RCPE-RCPE-RCPE",), per_class=6)
    masked = simulated_fits(monkeypatch, residual_jacobian, check_every=CUDA_CHECK_EVERY, names=("RCPE-RCPE-RCPE",), per_class=6)
    np.testing.assert_array_equal(masked["iterations"], compacted["iterations"])
    np.testing.assert_allclose(masked["parameters"], compacted["parameters"], rtol=1e-8)  # batch make-up moves rounding


def test_relative_residual_of_ragged_spectra_is_each_spectrums_own():
    circuit = CIRCUITS["RC-G-G"]
    rng = np.random.default_rng(8)
    omegas, impedances = noisy_copies(circuit, WELL_IDENTIFIED[circuit.name], 3, 0.01, rng)
    omegas, impedances = [o[: 30 + 10 * k] for k, o in enumerate(omegas)], [z[: 30 + 10 * k] for k, z in enumerate(impedances)]
    parameters = np.array([[WELL_IDENTIFIED[circuit.name][p] * (1 + 0.1 * k) for p in circuit.parameters] for k in range(3)])
    expected = [np.linalg.norm(circuit_impedance(circuit, v, o) - z) / np.linalg.norm(z) for v, o, z in zip(parameters, omegas, impedances)]
    np.testing.assert_allclose(relative_residual(circuit, parameters, omegas, impedances), expected, rtol=1e-12)


def test_bounded_parameters_stay_inside_bounds_and_round_trip():
    circuit = CIRCUITS["Rs_Ws"]
    model = BoundedParameters(circuit, FIT_BOUNDS, torch.float64, "cpu")
    extreme = torch.tensor([[-80.0] * 4, [80.0] * 4, [0.0] * 4])
    values = model.values(extreme).numpy()
    low = np.array([FIT_BOUNDS[kind][0] for kind in circuit.kinds])
    high = np.array([FIT_BOUNDS[kind][1] for kind in circuit.kinds])
    assert np.all(values >= low * (1 - 1e-12)) and np.all(values <= high * (1 + 1e-12))
    inside = np.array([[0.5, 2.0, 1.0, 0.45]])
    assert np.allclose(model.values(model.unbounded(inside)).numpy(), inside, rtol=1e-10)


# ---- naive starts and per-spectrum bounds, batched ----------------------------------------------------------


def per_spectrum_limits(circuit, omega, z):
    """fitting.spectrum_limits as it was before batching (issue 16): one spectrum, Python scalars. The reference."""
    z_max = float(np.max(np.abs(z)))
    w_min, w_max = float(np.min(omega)), float(np.max(omega))
    r_low, r_high = fitting.R_SPAN[0] * z_max, fitting.R_SPAN[1] * z_max
    tau_low, tau_high = fitting.TAU_SPAN[0] / w_max, fitting.TAU_SPAN[1] / w_min
    t_low, t_high = fitting.EXPONENT_BOUNDS["cpe_exponent"]
    q_candidates = [tau**t / r for tau in (tau_low, tau_high) for t in (t_low, t_high) for r in (r_low, r_high)]
    limits = {
        "resistance": (r_low, r_high),
        "capacitance": (tau_low / r_high, tau_high / r_low),
        "cpe_q": (min(q_candidates), max(q_candidates)),
        "inductance": (1e-9 * z_max / w_max, 10 * z_max / w_max),
        "gerischer_time": (tau_low, tau_high),
        "warburg_time": (tau_low, tau_high),
        **fitting.EXPONENT_BOUNDS,
    }
    return np.array([limits[kind] for kind in circuit.kinds], dtype=float)


def per_spectrum_start(circuit, omega, z, exponent=0.8, reverse=False):
    """fitting.data_start as it was before batching (issue 16): one spectrum, Python scalars. The reference."""
    omega, z = np.asarray(omega, float), np.asarray(z, complex)
    order = np.argsort(omega)
    omega, z = omega[order], z[order]
    z_max = float(np.max(np.abs(z)))
    r_series = max(float(z[-1].real), 1e-4 * z_max)
    r_total = max(float(z[0].real) - (r_series if "L1" in circuit.parameters or circuit.name == "Rs_Ws" else 0.0), 1e-3 * z_max)
    kinds = dict(zip(circuit.parameters, circuit.kinds))
    block_resistors = [p for p in circuit.parameters if kinds[p] == "resistance" and not (p == "R1" and ("L1" in kinds or circuit.name == "Rs_Ws"))]
    n_blocks = max(len(block_resistors), 1)
    log_taus = np.linspace(np.log10(1 / omega[-1]), np.log10(1 / omega[0]), n_blocks + 2)[1:-1]
    if reverse:
        log_taus = log_taus[::-1]
    tau_of = {name: 10 ** log_taus[k] for k, name in enumerate(block_resistors)}
    values = {}
    for name in circuit.parameters:
        kind = kinds[name]
        if kind == "resistance":
            values[name] = r_series if name not in tau_of else r_total / n_blocks
        elif kind == "inductance":
            values[name] = 1e-3 * z_max / omega[-1]
        elif kind == "cpe_exponent":
            values[name] = exponent
        elif kind == "warburg_exponent":
            values[name] = 0.5
    for block in fitting._blocks(circuit):
        resistor = block[0]
        tau = tau_of.get(resistor, 10 ** np.mean(log_taus))
        for name in block[1:]:
            kind = kinds[name]
            if kind == "capacitance":
                values[name] = tau / values[resistor]
            elif kind == "cpe_q":
                t = values[[n for n in block if kinds[n] == "cpe_exponent"][0]]
                values[name] = tau**t / values[resistor]
            elif kind in ("gerischer_time", "warburg_time"):
                values[name] = tau
    return np.array([values[name] for name in circuit.parameters], dtype=float)


def start_and_limit_spectra():
    """Simulated spectra of all nine classes (two simulators: default and wider point counts and spans), some
    listed high to low or shuffled, and edge cases: inductive high-frequency tails (one with Re Z < 0 at the top),
    Re Z at the lowest frequency below the series resistance, 3 points, 2 points."""
    from assets.eis.simulate import simulate_all

    rng = np.random.default_rng(11)
    wide = SimulationSettings(spectra_per_class=2, points_min=4, points_max=150, freq_min_range=(1e-3, 1e2), freq_max_range=(1e3, 1e7))
    omegas, impedances = [], []
    for settings in (SimulationSettings(spectra_per_class=3), wide):
        for batch in simulate_all(settings, rng):
            omegas += [batch.omega[i, :n] for i, n in enumerate(batch.n_points)]
            impedances += [batch.impedance[i, :n] for i, n in enumerate(batch.n_points)]
    for i in range(0, len(omegas), 3):  # high to low, as many measured files list them
        omegas[i], impedances[i] = omegas[i][::-1], impedances[i][::-1]
    for i in range(1, len(omegas), 7):
        order = rng.permutation(len(omegas[i]))
        omegas[i], impedances[i] = omegas[i][order], impedances[i][order]
    inductive = {**WELL_IDENTIFIED["L-R-RCPE"], "L1": 1e-4}
    tail = circuit_impedance(CIRCUITS["L-R-RCPE"], np.array([inductive[p] for p in CIRCUITS["L-R-RCPE"].parameters]), OMEGA)
    assert tail[-1].imag > 0  # the high-frequency end is inductive
    omegas += [OMEGA, OMEGA[::-1], OMEGA, OMEGA[20:23], OMEGA[[50, 10]]]
    impedances += [tail, tail[::-1], tail - 0.6, tail[20:23], tail[[50, 10]] + 1.0]
    low_below_series = impedances[4].copy()
    low_below_series[np.argmin(omegas[4])] = 0.1 * low_below_series[np.argmax(omegas[4])].real
    omegas.append(omegas[4])
    impedances.append(low_below_series)
    return omegas, impedances


START_VARIANTS = (*fitting.NAIVE_VARIANTS, (0.7, True), (0.9, False))


@pytest.mark.parametrize("name", sorted(CIRCUITS))
def test_batched_starts_and_limits_reproduce_the_per_spectrum_ones(name):
    """One call over a ragged batch (edge-padded, as fit_circuit builds it) = the per-spectrum functions before
    batching, for every spectrum (each circuit's functions take any spectrum), every naive variant and exponent."""
    circuit = CIRCUITS[name]
    omegas, impedances = start_and_limit_spectra()
    omega, _ = fitting.pad_edge(omegas)
    z, _ = fitting.pad_edge(impedances)
    expected = np.stack([per_spectrum_limits(circuit, o, zz) for o, zz in zip(omegas, impedances)])
    np.testing.assert_allclose(fitting.spectra_limits(circuit, omega, z), expected, rtol=1e-12, atol=0)
    for exponent, reverse in START_VARIANTS:
        expected = np.stack([per_spectrum_start(circuit, o, zz, exponent, reverse) for o, zz in zip(omegas, impedances)])
        np.testing.assert_allclose(fitting.data_starts(circuit, omega, z, exponent, reverse), expected, rtol=1e-12, atol=0)
    np.testing.assert_allclose(fitting.data_start(circuit, omegas[0], impedances[0]), per_spectrum_start(circuit, omegas[0], impedances[0]), rtol=1e-12, atol=0)


def test_fit_circuit_reads_starts_and_limits_off_all_spectra_in_one_call(monkeypatch):
    calls = []
    for function in ("spectra_limits", "data_starts"):
        original = getattr(fitting, function)
        monkeypatch.setattr(fitting, function, lambda *args, _f=original, _name=function: calls.append((_name, len(args[1]))) or _f(*args))
    circuit = CIRCUITS["RCPE-RCPE"]
    omegas, impedances = noisy_copies(circuit, WELL_IDENTIFIED[circuit.name], 5, 1e-3, np.random.default_rng(12))
    fit_circuit(circuit, omegas, impedances, np.full((5, len(circuit.parameters)), np.nan), FitSettings(max_iterations=1, n_starts=2, random_starts=3))
    # one call per naive variant and per random start (one iteration reproduces nothing, so all run)
    assert calls == [("spectra_limits", 5)] + [("data_starts", 5)] * 5


@pytest.mark.parametrize("name", sorted(CIRCUITS))
def test_fit_recovers_parameters_from_a_perturbed_start(name):
    circuit, truth = CIRCUITS[name], WELL_IDENTIFIED[name]
    rng = np.random.default_rng(2)
    omegas, impedances = noisy_copies(circuit, truth, 6, 1e-3, rng)
    true_values = np.array([truth[p] for p in circuit.parameters])
    log_scaled = np.array(circuit.log_scaled)
    start = np.where(log_scaled, true_values * np.exp(rng.normal(0, 0.3, (6, len(true_values)))), true_values)
    result = fit_circuit(circuit, omegas, impedances, start, FitSettings())
    assert result.reproduces.all() and result.determined.all(), result.undetermined
    assert np.all(result.relative_residual < 3e-3)  # noise alone: sqrt(2) * 1e-3
    relative_error = np.abs(result.parameters / true_values - 1)
    assert np.all(relative_error < 0.1), dict(zip(circuit.parameters, relative_error.max(axis=0)))


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_gradient_optimizers_reduce_the_residual(optimizer):
    circuit = CIRCUITS["RC-G-G"]
    omegas, impedances = noisy_copies(circuit, WELL_IDENTIFIED[circuit.name], 4, 1e-3, np.random.default_rng(3))
    start = naive_start(circuit, 4)
    settings = FitSettings(optimizer=optimizer, max_iterations=300)
    before = fit_circuit(circuit, omegas, impedances, start, FitSettings(max_iterations=0))
    after = fit_circuit(circuit, omegas, impedances, start, settings)
    assert np.all(after.relative_residual < before.relative_residual / 2)


def test_bic_prefers_the_circuit_that_generated_the_spectrum():
    truth = WELL_IDENTIFIED["RCPE-RCPE-RCPE"]
    omegas, impedances = noisy_copies(CIRCUITS["RCPE-RCPE-RCPE"], truth, 2, 1e-3, np.random.default_rng(4))
    starts = [{**truth}, {**truth}]
    fits = {
        name: fit_spectra(omegas, impedances, [name] * 2, starts, FitSettings())
        for name in ("RCPE-RCPE", "RCPE-RCPE-RCPE")
    }
    assert np.all(fits["RCPE-RCPE-RCPE"]["bic"] < fits["RCPE-RCPE"]["bic"])


def test_fit_spectra_keeps_input_order_and_fills_missing_starts():
    names = ["Rs_Ws", "RC-G-G", "Rs_Ws"]
    omegas, impedances = mixed_spectra(names, np.random.default_rng(5))
    starts = [WELL_IDENTIFIED["Rs_Ws"], None, {"R1": float("nan")}]
    table = fit_spectra(omegas, impedances, names, starts, FitSettings())
    assert table["circuit"].tolist() == names
    assert list(table["parameters"][1]) == list(CIRCUITS["RC-G-G"].parameters)
    assert table["relative_residual"].notna().all()


def test_circuit_fits_asset_fits_predicted_and_labelled_spectra(data_root, test_resources):
    import pandas as pd
    from dagster import DagsterInstance, materialize

    from assets.eis.defs import eis_circuit_fits
    from tests.eis.test_pipeline import ALL_ASSETS, TINY

    ops = {**TINY, "eis_circuit_fits": {"config": {"labelled_split": "test", "top_k": 2, "plot_spectra": 2}}}
    result = materialize([*ALL_ASSETS, eis_circuit_fits], resources=test_resources, instance=DagsterInstance.ephemeral(), run_config={"ops": ops})
    assert result.success
    fits = result.output_for_node("eis_circuit_fits")
    exported = pd.read_csv(data_root / "exports" / "eis_circuit_fits.csv")
    split = result.output_for_node("eis_split")
    assert len(exported) == len(fits) == 3 + int((split["split"] == "test").sum())
    predictions = result.output_for_node("eis_predictions")
    predicted = fits[fits["origin"] == "prediction"]
    assert predicted["spectrum_id"].tolist() == predictions["spectrum_id"].tolist()
    assert set(fits["regressor_model_id"]) == {result.output_for_node("eis_parameter_regressors")["model_id"]}
    for circuit, text in zip(fits["circuit"], fits["parameters"]):
        assert [item.split(":")[0] for item in text.split(", ")] == list(CIRCUITS[circuit].parameters)
    # Labelled spectra keep their true circuit; the simulator's 0.5 % noise bounds the best residual.
    labelled = fits[fits["origin"] == "labelled"]
    assert (labelled["circuit"] == labelled["classifier_circuit"]).all()
    assert (fits[["relative_residual", "naive_relative_residual"]].min(axis=1) >= 0.005 * 2**0.5 * 0.5).all()
    metadata = result.asset_materializations_for_node("eis_circuit_fits")[0].metadata
    assert {"nyquist", "reproduces_share", "determined_share", "supported_differs_share", "regressor_start_reproduces_share",
            "naive_start_reproduces_share", "labelled_median_log10_error_final_fit"} <= set(metadata)
    # every fitted parameter has its standard error (same unit) and determined flag; the supported circuit too
    for circuit, row in zip(exported["circuit"], exported.to_dict("records")):
        for parameter, kind in zip(CIRCUITS[circuit].parameters, CIRCUITS[circuit].kinds):
            column = column_name(parameter, kind)
            assert np.isfinite(row[column]) and row[f"{column}_se"] >= 0 and row[f"{parameter}_determined"] in (True, False)
        assert isinstance(row["supported_circuit"], str) and row["supported_circuit"]


def test_lbfgs_stops_at_the_iteration_cap_or_when_the_cost_stops_falling():
    circuit = CIRCUITS["RC-G-G"]
    omegas, impedances = noisy_copies(circuit, WELL_IDENTIFIED[circuit.name], 2, 1e-3, np.random.default_rng(3))
    start = naive_start(circuit, 2)
    capped = fit_circuit(circuit, omegas, impedances, start, FitSettings(optimizer="lbfgs", max_iterations=3))
    free = fit_circuit(circuit, omegas, impedances, start, FitSettings(optimizer="lbfgs", max_iterations=300))
    loose = fit_circuit(circuit, omegas, impedances, start,
                        FitSettings(optimizer="lbfgs", max_iterations=300, cost_tolerance=1e6))  # any change is small
    assert capped.iterations.max() <= 3 and free.iterations.min() > 20 and set(loose.iterations) == {1}
    assert free.relative_residual.max() < 0.01 < capped.relative_residual.min()


def test_fixed_kind_bounds_fill_unusable_starts_with_the_naive_start():
    circuit = CIRCUITS["Rs_Ws"]
    start = np.array([[0.5, np.nan, -1.0, 0.0], [np.inf, 2.0, 1.0, 0.45]])
    filled = fitting.with_naive_gaps(circuit, start)
    naive = naive_start(circuit, 2)
    usable = np.isfinite(start) & (start > 0)
    np.testing.assert_array_equal(filled[usable], start[usable])
    np.testing.assert_array_equal(filled[~usable], naive[~usable])
    truth = WELL_IDENTIFIED["Rs_Ws"]
    omegas, impedances = noisy_copies(circuit, truth, 3, 1e-3, np.random.default_rng(9))
    gap = np.array([[truth["R1"], np.nan, truth["W1_T"], truth["W1_p"]]] * 3)
    gap[0, 1] = truth["W1_R"]  # the whole truth: this spectrum is done first and leaves the batch
    gap[1, 0] = -1.0  # a negative resistance is no start either
    result = fit_circuit(circuit, omegas, impedances, gap, FitSettings(bounds_mode="kinds"))
    assert result.reproduces.all()
    # and with per-spectrum bounds (the default), where a non-positive start takes the spectrum's own naive start
    assert fit_circuit(circuit, omegas, impedances, np.where(np.isnan(gap), 0.0, gap), FitSettings()).reproduces.all()


def test_the_naive_start_is_the_centre_of_each_kinds_simulated_range():
    start = naive_start(CIRCUITS["Rs_Ws"], 2)  # R1, W1_R (resistance, log-uniform), W1_T (time), W1_p (exponent)
    (r_low, r_high), (t_low, t_high), (p_low, p_high) = (DEFAULT_RANGES[k] for k in
                                                         ("resistance", "warburg_time", "warburg_exponent"))
    expected = [np.sqrt(r_low * r_high), np.sqrt(r_low * r_high), np.sqrt(t_low * t_high), (p_low + p_high) / 2]
    np.testing.assert_allclose(start, [expected, expected], rtol=1e-12)


def test_float32_fits_compute_in_single_precision():
    """A noise-free spectrum: float64 reproduces it to rounding (1e-12), float32 only to its own precision."""
    circuit = CIRCUITS["RC-G-G"]
    omegas, impedances = noisy_copies(circuit, WELL_IDENTIFIED[circuit.name], 2, 0.0, np.random.default_rng(0))
    start = np.array([[WELL_IDENTIFIED[circuit.name][p] * 1.2 for p in circuit.parameters]] * 2)
    double = fit_circuit(circuit, omegas, impedances, start, FitSettings(random_starts=0))
    single = fit_circuit(circuit, omegas, impedances, start, FitSettings(random_starts=0, dtype="float32"))
    assert double.relative_residual.max() < 1e-10 < single.relative_residual.min()
    assert single.reproduces.all() and single.relative_residual.max() < 1e-4


def test_fit_spectra_fits_on_the_device_asked_for_and_times_each_class_batch_once(monkeypatch):
    calls = []
    monkeypatch.setattr(fitting, "fit_circuit", cpu_recording(fitting.fit_circuit, calls))
    names = ["Rs_Ws", "RC-G-G", "Rs_Ws"]
    omegas, impedances = mixed_spectra(names, np.random.default_rng(5))
    table = fit_spectra(omegas, impedances, names, [None] * 3, FitSettings(random_starts=0), device="cuda:1")
    assert [device for _, device in calls] == ["cuda:1", "cuda:1"]  # one batch per class
    assert table["reproduces"].tolist() == [True, True, True] and table["reproduces"].dtype == bool
    seconds = table["fit_seconds"].to_numpy()
    assert np.isfinite(seconds).all() and seconds[0] == seconds[2]  # the Rs_Ws batch's time, for both its spectra


def test_the_naive_variants_refit_every_spectrum_without_a_start_wherever_it_sits_in_the_batch():
    """Noise-free RCPE-RCPE spectra that the first naive start (exponent 0.8, fastest arc first) leaves in a wrong
    minimum and a later variant fits exactly."""
    circuit = CIRCUITS["RCPE-RCPE"]
    batch = simulate_class(circuit, 20, SimulationSettings(noise_relative_std=0.0), np.random.default_rng(11))
    chosen = [2, 4, 5]
    omegas = [batch.omega[i, : batch.n_points[i]] for i in chosen]
    impedances = [batch.impedance[i, : batch.n_points[i]] for i in chosen]
    truth = np.stack([batch.parameters[p] for p in circuit.parameters], axis=1)[chosen]
    no_start = np.full(truth.shape, np.nan)
    first_only = fit_circuit(circuit, omegas, impedances, no_start, FitSettings(n_starts=1, random_starts=0))
    assert np.all(first_only.relative_residual > 0.01)
    # n_starts 0 means the first variant alone
    none = fit_circuit(circuit, omegas, impedances, no_start, FitSettings(n_starts=0, random_starts=0))
    np.testing.assert_array_equal(none.weighted_cost, first_only.weighted_cost)
    # the first spectrum has its true start, the others have none and sit behind it in the batch
    mixed = np.vstack([truth[:1], no_start[1:]])
    fitted = fit_circuit(circuit, omegas, impedances, mixed, FitSettings(n_starts=4, random_starts=0))
    assert np.all(fitted.relative_residual < 1e-6), fitted.relative_residual


def test_values_outside_the_bounds_start_just_inside_them():
    circuit = CIRCUITS["Rs_Ws"]
    model = BoundedParameters(circuit, FIT_BOUNDS, torch.float64, "cpu")
    low = np.array([FIT_BOUNDS[kind][0] for kind in circuit.kinds])
    high = np.array([FIT_BOUNDS[kind][1] for kind in circuit.kinds])
    u = model.unbounded(np.vstack([low / 10, high * 10, low]))
    assert torch.isfinite(u).all()
    values = model.values(u).numpy()
    np.testing.assert_allclose(values[0], low, rtol=1e-6)
    np.testing.assert_allclose(values[1], high, rtol=1e-6)
    np.testing.assert_allclose(values[2], low, rtol=1e-6)


@pytest.mark.parametrize("weighting", ["modulus", "unit"])
def test_weighted_cost_and_information_criteria_are_the_closed_forms(weighting):
    """cost = sum over a spectrum's own points of |w (Z_model - Z)|^2 (w = 1/|Z| or 1), ragged batches included;
    AIC = 2n ln(cost / 2n) + 2P, BIC = 2n ln(cost / 2n) + P ln(2n) with Re and Im as 2n observations."""
    circuit = CIRCUITS["RC-G-G"]
    omegas, impedances = noisy_copies(circuit, WELL_IDENTIFIED[circuit.name], 2, 1e-2, np.random.default_rng(6))
    omegas, impedances = [omegas[0][:40], omegas[1]], [impedances[0][:40], impedances[1]]
    start = np.array([[WELL_IDENTIFIED[circuit.name][p] for p in circuit.parameters]] * 2)
    result = fit_circuit(circuit, omegas, impedances, start, FitSettings(weighting=weighting, random_starts=0))
    costs = []
    for values, omega, z in zip(result.parameters, omegas, impedances):
        weight = 1 / np.abs(z) if weighting == "modulus" else 1.0
        costs.append(np.sum(np.abs(weight * (circuit_impedance(circuit, values, omega) - z)) ** 2))
    np.testing.assert_allclose(result.weighted_cost, costs, rtol=1e-9)
    n_obs, n_params = 2 * np.array([40, 60]), len(circuit.parameters)
    aic, bic = result.information_criteria()
    np.testing.assert_allclose(aic, n_obs * np.log(np.array(costs) / n_obs) + 2 * n_params, rtol=1e-9)
    np.testing.assert_allclose(bic, n_obs * np.log(np.array(costs) / n_obs) + n_params * np.log(n_obs), rtol=1e-9)


def test_adam_steps_by_the_learning_rate_asked_for():
    circuit = CIRCUITS["RC-G-G"]
    omegas, impedances = noisy_copies(circuit, WELL_IDENTIFIED[circuit.name], 1, 1e-3, np.random.default_rng(3))
    start = naive_start(circuit, 1)
    still = fit_circuit(circuit, omegas, impedances, start, FitSettings(optimizer="adam", learning_rate=0.0,
                                                                        max_iterations=5, random_starts=0))
    np.testing.assert_allclose(still.parameters, start, rtol=1e-9)
