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


def test_asset_keys_follow_the_naming_convention():
    repository = defs.get_repository_def()
    for node in repository.asset_graph.asset_nodes:
        assert node.group_name in PIPELINES, f"{node.key} has group {node.group_name}"


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
