import subprocess
import sys

import pytest
from dagster import Definitions

from orchestration.definitions import defs
from orchestration.jobs import PIPELINES

HEAVY_MODULES = [
    "tensorflow", "keras", "torch", "transformers", "tsfresh", "xgboost", "diffsims",
    "pyxem", "hyperspy", "orix", "pymatgen", "pyxtal", "matminer",
]


def test_definitions_load():
    Definitions.validate_loadable(defs)


def test_every_pipeline_has_a_job_and_the_demo_covers_all_groups():
    repository = defs.get_repository_def()
    job_names = {job.name for job in repository.get_all_jobs()}
    groups = {node.group_name for node in repository.asset_graph.asset_nodes}
    assert groups == set(PIPELINES)
    assert {f"{p}_job" for p in PIPELINES} | {"materials_demo"} <= job_names
    demo_keys = repository.get_job("materials_demo").asset_layer.executable_asset_keys
    for pipeline in PIPELINES:
        group_keys = {node.key for node in repository.asset_graph.asset_nodes if node.group_name == pipeline}
        assert demo_keys & group_keys, f"materials_demo runs nothing of {pipeline}"


# The asset names the issues and the README give users, per group (extra helper assets may exist).
DOCUMENTED_ASSETS = {
    "eis": ["eis_simulated_spectra", "eis_spectra", "eis_interpolated", "eis_features", "eis_circuit_classifier",
            "eis_parameter_regressors", "eis_predictions", "eis_circuit_fits"],
    "pdf": ["pdf_structures", "pdf_profiles", "space_group_cnn", "space_group_compact_cnn", "space_group_baseline",
            "space_group_evaluation", "space_group_predictions"],
    "cycling": ["cycling_synthetic_cells", "cycling_unified", "cycling_split", "cycling_corpus", "cycling_tokenizer",
                "multiscale_encoder", "cycling_embeddings", "cycle_life_model"],
    "diffraction": ["diffraction_patterns", "phase_cnn", "experimental_maps", "phase_predictions",
                    "prediction_evaluation"],
    "electrodes": ["electrode_records", "electrode_features", "electrode_forest", "electrode_network",
                   "electrode_composition", "electrode_predictions"],
}


def test_documented_asset_names_exist_in_their_groups():
    repository = defs.get_repository_def()
    groups = {node.key.to_user_string(): node.group_name for node in repository.asset_graph.asset_nodes}
    assert set(groups.values()) == set(DOCUMENTED_ASSETS) == set(PIPELINES)
    for pipeline, names in DOCUMENTED_ASSETS.items():
        assert {name: groups.get(name) for name in names} == dict.fromkeys(names, pipeline)


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_defs_module_import_stays_light(pipeline):
    """Loading the code location must not pay for heavy science imports (numba, TF, torch)."""
    code = (
        f"import importlib, sys\nimportlib.import_module('assets.{pipeline}.defs')\n"
        f"print(','.join(m for m in {HEAVY_MODULES!r} if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "", f"assets.{pipeline}.defs imports {result.stdout.strip()} at load"
