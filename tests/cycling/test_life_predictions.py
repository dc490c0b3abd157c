"""Train once, predict many: cycling_life_predictions applies a frozen model and never refits; a cell's
prediction does not depend on the other cells in the drop folder; training cells sent through it get exactly
what training gave them; without a trained model the shipped one answers."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from dagster import DagsterInstance, materialize

from assets.cycling import defs as cycling
from assets.cycling import frozen
from tests.cycling.test_unknown_life import write_sets

PREDICTING = [cycling.cycling_synthetic_cells, cycling.cycling_unified, cycling.cycling_life_predictions]
SYNTHETIC = {"cycling_synthetic_cells": {"config": {"n_cells": 2, "detail_stride": 50, "points_per_cycle": 20}}}
UNIFIED = {"cycling_unified": {"config": {"synthetic": "never", "min_cycles": 99, "qdlin_voltage_stride": 25}}}
INTERVALS = ["predicted_cycle_life", "lower80_cycles", "upper80_cycles", "lower95_cycles", "upper95_cycles"]


def resources_for(root):
    from resources.cluster import DaskResource
    from resources.compute import ComputeResource
    from resources.storage import MaterialsStorage

    return {"compute": ComputeResource(device="cpu", seed=0, num_threads=2),
            "dask": DaskResource(synchronous=True), "io_manager": MaterialsStorage(root=str(root))}


def predict(root, model="current"):
    """cycling_life_predictions on root's drop folder; returns (export table, metadata)."""
    config = {"ops": {**SYNTHETIC, **UNIFIED, "cycling_life_predictions": {"config": {"model": str(model)}}}}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MATERIALS_DATA", str(root))
        result = materialize(PREDICTING, resources=resources_for(root), instance=DagsterInstance.ephemeral(),
                             run_config=config)
    metadata = {k: v.value for k, v in result.asset_materializations_for_node("cycling_life_predictions")[0].metadata.items()}
    return pd.read_csv(root / "exports" / "cycling_life_predictions.csv"), metadata


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The training job's assets on the hand-written Qdlin sets, the frozen model promoted."""
    root = tmp_path_factory.mktemp("data")
    write_sets(root / "raw" / "cycling")
    config = {"ops": {
        **SYNTHETIC, **UNIFIED,
        "multiscale_encoder": {"config": {"steps": 2, "batch_size": 2, "eval_every": 1, "max_windows": 4}},
        "cycle_life_model": {"config": {"cv_folds": 3, "promote": "always"}},
    }}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MATERIALS_DATA", str(root))
        result = materialize([cycling.cycling_synthetic_cells, cycling.cycling_unified, *cycling.TRAINING_ASSETS],
                             resources=resources_for(root), instance=DagsterInstance.ephemeral(), run_config=config)
    model_meta = {k: v.value for k, v in result.asset_materializations_for_node("cycle_life_model")[0].metadata.items()}
    return root, model_meta


@pytest.fixture
def fit_recorder(monkeypatch):
    """Every supervised or unsupervised fit the project can call, recorded instead of silently allowed."""
    from sklearn.dummy import DummyRegressor
    from sklearn.linear_model import ElasticNetCV, LinearRegression, Ridge
    from sklearn.model_selection import GridSearchCV
    from sklearn.preprocessing import StandardScaler

    from assets.cycling import encoder, lifemodel

    calls = []
    for owner in (DummyRegressor, ElasticNetCV, LinearRegression, Ridge, GridSearchCV, StandardScaler):
        original = owner.fit

        def recording(self, *args, _original=original, **kwargs):
            calls.append(type(self).__name__)
            return _original(self, *args, **kwargs)
        monkeypatch.setattr(owner, "fit", recording)
    for module, name in ((lifemodel, "fit_life_regressor"), (encoder, "pretrain")):
        original = getattr(module, name)

        def recording_function(*args, _original=original, _name=name, **kwargs):
            calls.append(_name)
            return _original(*args, **kwargs)
        monkeypatch.setattr(module, name, recording_function)
    return calls


def test_prediction_runs_no_fit_and_names_the_frozen_model(trained, fit_recorder):
    root, model_meta = trained
    table, metadata = predict(root)
    assert fit_recorder == []
    assert metadata["model_id"] == model_meta["model_id"]
    assert metadata["model_source"] == "current (trained here)"
    assert (table["model_id"] == model_meta["model_id"]).all()
    assert table.loc[table["cell_key"].str.startswith("test2/"), "predicted_cycle_life"].notna().all()


def test_training_cells_get_exactly_their_training_predictions(trained):
    root, _ = trained
    training = pd.read_csv(root / "exports" / "cycling_cycle_life_predictions.csv").set_index("cell_key")
    served, _ = predict(root)
    served = served.set_index("cell_key").loc[training.index]
    np.testing.assert_array_equal(served[INTERVALS].to_numpy(), training[INTERVALS].to_numpy())
    assert (served["in_domain"] == training["in_domain"]).all()


def test_a_cells_prediction_does_not_depend_on_the_other_uploaded_cells(trained, tmp_path):
    root, model_meta = trained
    model = frozen.registry_folder(root / "storage", model_meta["model_id"])
    alone, crowded = tmp_path / "alone", tmp_path / "crowded"
    (alone / "raw" / "cycling" / "test2").mkdir(parents=True)
    shutil.copyfile(root / "raw" / "cycling" / "test2" / "cell1.csv", alone / "raw" / "cycling" / "test2" / "cell1.csv")
    shutil.copytree(root / "raw" / "cycling", crowded / "raw" / "cycling")
    shutil.copytree(root / "raw" / "cycling" / "test2", crowded / "raw" / "cycling" / "test3")
    one, _ = predict(alone, model)
    many, _ = predict(crowded, model)
    assert len(one) == 1 and len(many) > 10
    row = many.set_index("cell_key").loc[["test2/cell1"], INTERVALS + ["in_domain", "domain_reason"]]
    pd.testing.assert_frame_equal(one.set_index("cell_key")[row.columns], row)


def test_a_model_of_synthetic_cells_is_frozen_but_not_promoted_over_the_shipped_one(tmp_path):
    from tests.cycling.test_assets import materialized

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MATERIALS_DATA", str(tmp_path))
        result = materialized(resources_for(tmp_path), assets=[cycling.cycling_synthetic_cells, cycling.cycling_unified,
                                                             *cycling.TRAINING_ASSETS])
    meta = {k: v.value for k, v in result.asset_materializations_for_node("cycle_life_model")[0].metadata.items()}
    assert meta["promoted"] is False
    assert (frozen.registry_folder(tmp_path / "storage", meta["model_id"]) / frozen.MODEL_FILE).is_file()
    assert frozen.resolve(tmp_path / "storage", "current") == (frozen.SHIPPED_DIR, "shipped (no trained model promoted)")


def test_without_a_trained_model_the_shipped_model_predicts(tmp_path):
    write_sets(tmp_path / "raw" / "cycling")
    table, metadata = predict(tmp_path)
    shipped = json.loads((frozen.SHIPPED_DIR / frozen.CARD_FILE).read_text())
    assert metadata["model_id"] == shipped["model_id"]
    assert metadata["model_source"] == "shipped (no trained model promoted)"
    assert table["predicted_cycle_life"].notna().all()
