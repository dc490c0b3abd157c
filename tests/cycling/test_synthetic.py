"""The synthetic cells obey the physics they claim (Severson pickle layout, LFP discharge, fade)."""

import numpy as np
import pytest

from assets.cycling import synthetic
from resources.storage import Hdf5Tree, read_value, write_value


@pytest.fixture(scope="module")
def batch():
    return synthetic.synthetic_batch(6, last_detail_cycle=100, detail_stride=50, points_per_cycle=60, seed=3)


def test_layout_is_the_severson_pickle_layout(batch):
    record = batch["s1c0"]
    assert set(record) == {"cycle_life", "charge_policy", "summary", "cycles"}
    assert set(record["summary"]) == {"cycle", "QD", "QC", "IR", "Tavg", "Tmin", "Tmax", "chargetime"}
    assert set(record["cycles"]["10"]) == {"t", "V", "I", "Qc", "Qd", "T", "Qdlin", "Tdlin", "dQdV"}
    assert record["cycles"]["10"]["Qdlin"].shape == (1000,)
    assert list(record["cycles"]) == ["2", "10", "50", "100"]


def test_charge_policy_string_and_charge_time_closed_form():
    assert synthetic.charge_policy(5.4, 40, 3.6) == "5.4C(40%)-3.6C"
    # 0 -> 40 % at 5.4C and 40 -> 80 % at 3.6C: 60 * (0.4 / 5.4 + 0.4 / 3.6) minutes
    assert synthetic.charge_time_min(5.4, 40, 3.6) == pytest.approx(60 * (0.4 / 5.4 + 0.4 / 3.6))


def test_discharge_capacity_is_current_times_time(batch):
    """Coulomb counting: Qd at the end of the 4C discharge equals |I| * duration."""
    cycle = batch["s1c1"]["cycles"]["10"]
    discharge = cycle["I"] < 0
    duration_h = (cycle["t"][discharge][-1] - cycle["t"][discharge][0]) / 60
    assert cycle["Qd"][-1] == pytest.approx(4.0 * synthetic.NOMINAL_CAPACITY_AH * duration_h, rel=1e-9)
    assert cycle["Qd"][-1] == pytest.approx(cycle["Qdlin"][-1], abs=1e-3)


def test_lfp_curve_plateau_and_ends(batch):
    grid = synthetic.voltage_grid()
    assert grid[0] == 3.6 and grid[-1] == 2.0
    fraction = synthetic.discharged_fraction(grid, 3.25)
    assert fraction[0] == pytest.approx(0.0) and fraction[-1] == pytest.approx(1.0)
    on_plateau = (grid < 3.35) & (grid > 3.15)
    assert fraction[on_plateau][-1] - fraction[on_plateau][0] > 0.8  # most capacity on a 0.2 V plateau
    qdlin = batch["s1c2"]["cycles"]["100"]["Qdlin"]
    assert np.all(np.diff(qdlin) >= 0)  # capacity only grows as the voltage falls


def test_capacity_reaches_80_percent_at_cycle_life(batch):
    for record in batch.values():
        qd = record["summary"]["QD"]
        assert len(qd) == record["cycle_life"]
        assert qd[-1] / qd[0] == pytest.approx(0.8, abs=0.02)
        assert record["summary"]["IR"][-1] > record["summary"]["IR"][0]


def test_early_discharge_change_predicts_life_with_noise():
    """Severson's finding: log var(dQ_100-10) anti-correlates with log cycle life (rho = -0.93 there)."""
    cells = synthetic.synthetic_batch(60, detail_stride=100, points_per_cycle=20, seed=11).values()
    log_var = [np.log10(np.var(c["cycles"]["100"]["Qdlin"] - c["cycles"]["10"]["Qdlin"])) for c in cells]
    log_life = np.log10([c["cycle_life"] for c in cells])
    rho = np.corrcoef(log_var, log_life)[0, 1]
    assert -0.98 < rho < -0.75
    assert 150 <= 10 ** log_life.min() and 10 ** log_life.max() <= 2300


def test_hdf5_tree_round_trip(batch, tmp_path):
    manifest = write_value(Hdf5Tree(synthetic.batch_to_tree(batch)), tmp_path / "cells")
    restored = synthetic.tree_to_batch(read_value(manifest, tmp_path))
    assert restored["s1c0"]["cycle_life"] == batch["s1c0"]["cycle_life"]
    assert restored["s1c0"]["charge_policy"] == batch["s1c0"]["charge_policy"]
    np.testing.assert_array_equal(restored["s1c4"]["cycles"]["50"]["V"], batch["s1c4"]["cycles"]["50"]["V"])
