"""The cycling wiring: asset names, the job, and the paper-scale run configs."""

from pathlib import Path

import pytest
import yaml
from dagster import AssetKey, DagsterInvalidConfigError, validate_run_config

from orchestration.definitions import defs

CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("cycling_*.yaml"))
ASSET_NAMES = ["cycling_synthetic_cells", "cycling_unified", "cycling_split", "cycling_corpus",
               "cycling_tokenizer", "multiscale_encoder", "cycling_embeddings", "cycle_life_model",
               "cycling_life_predictions"]
TRAINING = {"cycling_split", "cycling_corpus", "cycling_tokenizer", "multiscale_encoder", "cycling_embeddings",
            "cycle_life_model"}


def test_training_job_and_demo_hold_every_cycling_asset_and_cycling_job_only_predicts():
    repository = defs.get_repository_def()
    keys = {node.key for node in repository.asset_graph.asset_nodes if node.group_name == "cycling"}
    assert {AssetKey(name) for name in ASSET_NAMES} <= keys
    for job in ("cycling_training_job", "materials_demo"):
        assert keys <= repository.get_job(job).asset_layer.executable_asset_keys
    predicting = repository.get_job("cycling_job").asset_layer.executable_asset_keys
    assert AssetKey("cycling_life_predictions") in predicting
    assert predicting == keys - {AssetKey(name) for name in TRAINING}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_run_configs_validate_against_the_job(path):
    validate_run_config(defs.resolve_job_def("cycling_training_job"), yaml.safe_load(path.read_text()))


def test_a_misspelt_config_field_is_refused():
    config = {"ops": {"multiscale_encoder": {"config": {"hiden_size": 64}}}}
    with pytest.raises(DagsterInvalidConfigError):
        validate_run_config(defs.resolve_job_def("cycling_job"), config)
