"""A drop folder of Arbin exports (simulated cells written in the instrument's style) through cycling_unified and
cycling_cycle_summary: the 120-cycle cell gets the life model's features, the 20-cycle cell is named too short."""

import numpy as np
import pandas as pd
import pytest
from dagster import DagsterInstance, materialize

from assets.cycling import defs as cycling_defs
from assets.cycling import lifemodel
from tests.cycling.cycler_fixtures import write_simulated_arbin_cell

ASSETS = [cycling_defs.cycling_synthetic_cells, cycling_defs.cycling_unified, cycling_defs.cycling_cycle_summary]


@pytest.fixture
def arbin_run(test_resources, data_root):
    raw = data_root / "raw" / "cycling"
    raw.mkdir(parents=True)
    write_simulated_arbin_cell(raw, "long_cell", 120, seed=3, points_per_cycle=40)
    write_simulated_arbin_cell(raw, "short_cell", 20, seed=4, points_per_cycle=40)
    instance = DagsterInstance.ephemeral()
    result = materialize(ASSETS, resources=test_resources, instance=instance, raise_on_error=False, run_config={
        "ops": {"cycling_synthetic_cells": {"config": {"n_cells": 2, "detail_stride": 50, "points_per_cycle": 20}}}})
    return raw, data_root, result


def test_arbin_files_are_read_summarised_and_the_short_cell_named(arbin_run):
    raw, data_root, result = arbin_run
    assert result.success
    table = result.output_for_node("cycling_unified")
    assert set(table["source"]) == {"long_cell.csv", "short_cell.csv"}  # the synthetic cells were not used
    features = lifemodel.severson_features(table)
    assert np.isfinite(features.loc["long_cell", lifemodel.DISCHARGE_FEATURES].astype(float)).all()
    assert np.isnan(features.loc["short_cell", "log_var_dq"])  # no cycle 100: no Q100(V) - Q10(V)

    unified_meta = {k: v.value for k, v in result.asset_materializations_for_node("cycling_unified")[0].metadata.items()}
    assert (unified_meta["n_files_read"], unified_meta["n_files_sidecar"], unified_meta["n_files_rejected"]) == (2, 2, 0)
    assert "sidecar of long_cell.csv" in unified_meta["files"]

    summary = result.output_for_node("cycling_cycle_summary")
    cells = summary.drop_duplicates("cell_key").set_index("cell_key")
    assert cells.loc["long_cell", ["n_cycles", "predictable"]].tolist() == [120, True]
    assert cells.loc["short_cell", ["n_cycles", "predictable"]].tolist() == [20, False]
    assert cells.loc["short_cell", "reason"].startswith("too short to predict: 20 cycles")
    quarantine = pd.read_csv(data_root / "quarantine" / "cycling_cycle_summary.csv")
    assert quarantine[["source", "row"]].values.tolist() == [["raw/cycling/short_cell.csv", "short_cell"]]
    assert quarantine["reason"].iloc[0].startswith("too short to predict")
    # The simulated cell's capacities are what its current carried: every cycle passes the capacity check.
    assert set(summary["capacity_check"]) == {"consistent"}
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"rejected_share_within_bound": True, "capacity_consistent": True}
