"""Circuit-fit evidence: every circuit fitted to every spectrum, features per circuit."""

import numpy as np

from assets.eis.circuits import CIRCUIT_NAMES, CIRCUITS
from assets.eis.evidence import circuit_evidence, evidence_columns
from assets.eis.simulate import SimulationSettings, simulate_all


def _spectra(per_class: int, seed: int):
    batches = simulate_all(SimulationSettings(spectra_per_class=per_class, noise_relative_std=0.0), np.random.default_rng(seed))
    omegas, impedances, labels = [], [], []
    for batch in batches:
        for i, n in enumerate(batch.n_points):
            omegas.append(batch.omega[i, :n])
            impedances.append(batch.impedance[i, :n])
            labels.append(batch.circuit.name)
    return omegas, impedances, labels


def test_the_true_circuit_fits_noise_free_spectra_and_far_simpler_ones_do_not():
    omegas, impedances, labels = _spectra(per_class=3, seed=4)
    evidence = circuit_evidence(omegas, impedances)
    assert list(evidence.columns) == evidence_columns() and len(evidence) == len(labels)
    assert np.isfinite(evidence.to_numpy()).all()
    delta = evidence.filter(like="delta_bic_").to_numpy()
    assert np.allclose(delta.min(axis=1), 0.0) and (delta >= 0).all()
    true_residual = np.array([evidence.loc[i, f"evidence__log10_residual_{c}"] for i, c in enumerate(labels)])
    assert (true_residual <= np.log10(0.03)).mean() >= 0.8  # the fitter's converged share on simulated spectra is ~0.7-0.9
    # Three arcs cannot be fitted by one: L-R-RCPE (one arc) fits the four-arc spectra worse than their own circuit.
    four = [i for i, c in enumerate(labels) if c == "RCPE-RCPE-RCPE-RCPE"]
    worse = evidence.loc[four, "evidence__log10_residual_L-R-RCPE"].to_numpy() >= true_residual[four]
    assert worse.all()


def test_no_spectra_give_an_empty_table_with_the_columns():
    empty = circuit_evidence([], [])
    assert list(empty.columns) == evidence_columns() and empty.empty
    assert (empty.dtypes == float).all()  # stacks with fitted batches without turning them into objects
    n_parameters = sum(len(CIRCUITS[name].parameters) for name in CIRCUIT_NAMES)
    assert len(evidence_columns()) == 2 * len(CIRCUIT_NAMES) + n_parameters


def test_fitted_resistances_are_scaled_by_the_largest_modulus_and_exponents_kept():
    from assets.eis.evidence import scaled_parameters

    circuit = CIRCUITS["RCPE-RCPE"]  # R1, R2, CPE1_t, CPE1_C, CPE2_t, CPE2_C
    values = np.array([[10.0, 1000.0, 0.8, 1e-6, 0.6, 1e-3]])
    scaled = scaled_parameters(circuit, values, np.array([1000.0]))
    np.testing.assert_allclose(scaled, [[-2.0, 0.0, 0.8, -6.0, 0.6, -3.0]])


def test_each_circuits_evidence_is_its_one_start_fit_scaled_and_its_bic_difference(tmp_path, monkeypatch):
    """The columns of a circuit are that circuit's own fit of the spectrum (one naive start, no random restarts
    by default): log10 of its relative residual, its BIC relative to the other circuits' and its parameters
    scaled by max|Z|. A cached batch is read back, not refitted."""
    from assets.eis import evidence as module
    from assets.eis.evidence import RESIDUAL_FLOOR, scaled_parameters
    from assets.eis.fitting import FitSettings, fit_spectra

    omegas, impedances, _ = _spectra(per_class=1, seed=9)
    omegas, impedances = omegas[::3], impedances[::3]  # three spectra of three classes
    for i, z in enumerate(impedances):
        impedances[i] = z * 10.0 ** i  # cells of different sizes: resistances must be scaled per spectrum
    evidence = circuit_evidence(omegas, impedances, cache=tmp_path / "cache")
    monkeypatch.setattr(module, "_fitted_evidence", None)  # a second fit would fail
    assert circuit_evidence(omegas, impedances, cache=tmp_path / "cache").equals(evidence)
    assert [p.suffix for p in (tmp_path / "cache").iterdir()] == [".parquet"]
    modulus_max = np.array([np.abs(z).max() for z in impedances])
    bics = {}
    for name in ("RCPE-RCPE", "Rs_Ws"):
        fits = fit_spectra(omegas, impedances, [name] * 3, [None] * 3, FitSettings(n_starts=1, random_starts=0))
        residual = np.log10(np.maximum(fits["relative_residual"].to_numpy(float), RESIDUAL_FLOOR))
        np.testing.assert_allclose(evidence[f"evidence__log10_residual_{name}"], residual, atol=1e-3)
        circuit = CIRCUITS[name]
        values = np.array([[fitted[p] for p in circuit.parameters] for fitted in fits["parameters"]])
        columns = [f"evidence__{name}__{p}" for p in circuit.parameters]
        resistances = [j for j, kind in enumerate(circuit.kinds) if kind == "resistance"]
        np.testing.assert_allclose(evidence[columns].to_numpy()[:, resistances],
                                   scaled_parameters(circuit, values, modulus_max)[:, resistances], atol=1e-2)
        bics[name] = fits["bic"].to_numpy(float)
    np.testing.assert_allclose(evidence["evidence__delta_bic_RCPE-RCPE"] - evidence["evidence__delta_bic_Rs_Ws"],
                               bics["RCPE-RCPE"] - bics["Rs_Ws"], rtol=1e-3, atol=0.5)
    delta = evidence.filter(like="delta_bic_").to_numpy()
    assert (delta >= 0).all() and np.array_equal(delta.min(axis=1), np.zeros(3))  # each spectrum's best circuit is 0


def test_evidence_fits_use_one_naive_start_the_restarts_asked_for_and_the_device(tmp_path, monkeypatch):
    """Every circuit is fitted once per batch with one naive start, `random_starts` restarts (none by default)
    on the device given; the cache folder is made with its parents and keyed by the restarts too."""
    from assets.eis import fitting
    from assets.eis.fitting import FitSettings

    from tests.eis.test_fitting import cpu_recording

    calls = []
    monkeypatch.setattr(fitting, "fit_spectra", cpu_recording(fitting.fit_spectra, calls))
    omegas, impedances, _ = _spectra(per_class=1, seed=9)
    one = ([omegas[0]], [impedances[0]])
    circuit_evidence(*one)
    assert [args[2][0] for args, _ in calls] == list(CIRCUIT_NAMES)
    assert all((args[4], device) == (FitSettings(n_starts=1, random_starts=0), "cpu") for args, device in calls)
    cache = tmp_path / "nested" / "cache"
    calls.clear()
    circuit_evidence(*one, device="cuda:1", random_starts=2, cache=cache)
    assert len(calls) == len(CIRCUIT_NAMES)
    assert all((args[4], device) == (FitSettings(n_starts=1, random_starts=2), "cuda:1") for args, device in calls)
    calls.clear()
    circuit_evidence(*one, random_starts=3, cache=cache)  # other restarts: fitted again, not read back
    circuit_evidence([omegas[1]], [impedances[1]], random_starts=2, cache=cache)  # another batch, same folder
    assert len(calls) == 2 * len(CIRCUIT_NAMES) and len(list(cache.glob("*.parquet"))) == 3


def test_the_cache_key_changes_with_every_value_the_order_and_the_restarts():
    from assets.eis.evidence import evidence_digest

    omegas, impedances = [np.array([1.0, 10.0]), np.array([2.0, 20.0])], [np.array([1 + 1j, 2 + 0j]), np.array([3j, 4.0])]
    key = evidence_digest(omegas, impedances, 0)
    assert key == evidence_digest([o.copy() for o in omegas], [z.copy() for z in impedances], 0) and len(key) == 32
    assert key != evidence_digest(omegas, impedances, 5)
    assert key != evidence_digest(omegas[::-1], impedances[::-1], 0)
    assert key != evidence_digest(omegas, [impedances[0], impedances[1] + 1e-9j], 0)
    assert key != evidence_digest([omegas[0], omegas[1] * 1.000001], impedances, 0)
    assert key != evidence_digest(omegas[:1], impedances[:1], 0)
    # the key holds the values, not how they were typed: integer frequencies, a real-valued impedance
    assert (evidence_digest([np.array([1, 10])], [np.array([5.0, 2.0])], 0)
            == evidence_digest([np.array([1.0, 10.0])], [np.array([5 + 0j, 2 + 0j])], 0))
