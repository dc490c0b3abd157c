"""Circuit evidence is a function of the spectra and settings alone, so a batch seen before is read back."""

import numpy as np
import pandas as pd

from assets.eis import evidence
from assets.eis.circuits import CIRCUITS
from assets.eis.simulate import SimulationSettings, simulate_class


def _spectra(count: int, seed: int):
    batch = simulate_class(CIRCUITS["RCPE-RCPE"], count, SimulationSettings(), np.random.default_rng(seed))
    return [batch.omega[i, :n] for i, n in enumerate(batch.n_points)], [batch.impedance[i, :n] for i, n in enumerate(batch.n_points)]


def test_a_batch_seen_before_is_read_back_and_any_change_refits(tmp_path, monkeypatch):
    omegas, impedances = _spectra(3, 0)
    first = evidence.circuit_evidence(omegas, impedances, random_starts=1, cache=tmp_path)
    assert len(list(tmp_path.glob("*.pkl"))) == 1

    calls = []
    fitted = evidence._fitted_evidence
    monkeypatch.setattr(evidence, "_fitted_evidence", lambda *args: calls.append(args) or fitted(*args))
    again = evidence.circuit_evidence(omegas, impedances, random_starts=1, cache=tmp_path)
    pd.testing.assert_frame_equal(again, first)
    assert not calls  # read back, not refitted

    changed = [z.copy() for z in impedances]
    changed[1][0] *= 1.001  # one point of one spectrum
    evidence.circuit_evidence(omegas, changed, random_starts=1, cache=tmp_path)
    evidence.circuit_evidence(omegas, impedances, random_starts=0, cache=tmp_path)
    evidence.circuit_evidence(omegas[::-1], impedances[::-1], random_starts=1, cache=tmp_path)
    assert len(calls) == 3 and len(list(tmp_path.glob("*.pkl"))) == 4
