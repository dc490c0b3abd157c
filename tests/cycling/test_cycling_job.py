"""cycling_job, as `dagster job execute -j cycling_job` runs it, on a lab's drop folder of Arbin exports (simulated
cells written in the instrument's style, with their _Metadata.csv sidecars): the 120-cycle cell gets a predicted
life from the shipped model, the 20-cycle cell is named too short, and nothing is trained."""

import json

import numpy as np
import pandas as pd
from dagster import DagsterInstance

from assets.cycling import frozen
from tests.cycling.cycler_fixtures import write_simulated_arbin_cell


def test_cycling_job_predicts_a_raw_cell_and_names_the_short_one(data_root):
    from orchestration.definitions import defs

    raw = data_root / "raw" / "cycling"
    raw.mkdir(parents=True, exist_ok=True)  # importing the definitions makes the input folders
    write_simulated_arbin_cell(raw, "long_cell", 120, seed=3, points_per_cycle=40)
    write_simulated_arbin_cell(raw, "short_cell", 20, seed=4, points_per_cycle=40)
    result = defs.resolve_job_def("cycling_job").execute_in_process(
        instance=DagsterInstance.ephemeral(),
        run_config={"ops": {"cycling_synthetic_cells": {"config": {"n_cells": 2, "detail_stride": 50,
                                                                   "points_per_cycle": 20}}}})
    assert result.success
    executed = {event.step_key for event in result.all_events if event.step_key}
    assert "cycle_life_model" not in executed and "multiscale_encoder" not in executed
    table = pd.read_csv(data_root / "exports" / "cycling_life_predictions.csv").set_index("cell_key")
    shipped_id = json.loads((frozen.SHIPPED_DIR / frozen.CARD_FILE).read_text())["model_id"]
    assert (table["model_id"] == shipped_id).all()
    assert np.isfinite(table.loc["long_cell", "predicted_cycle_life"]) and table.loc["long_cell", "n_cycles"] == 120
    assert np.isnan(table.loc["short_cell", "predicted_cycle_life"])
    assert table.loc["short_cell", "domain_reason"].startswith("not predicted: too short (20 cycles")
    quarantine = pd.read_csv(data_root / "quarantine" / "cycling_cycle_summary.csv")
    assert quarantine["row"].tolist() == ["short_cell"] and quarantine["reason"].str.startswith("too short").all()
