"""A Qdlin-layout set folder without a lives file: its cells are predicted with intervals, never fitted.

Hand-written fixture in the published layout (headerless CSV, 1000 voltage rows x cycles 2..100): train/
(lives known), test1/ (lives known: scored), test2/ (no cycle_lives/test2_cycle_lives.csv: predicted).
Each cell fades at its own rate; its life falls with the variance of Q100(V) - Q10(V), as in Severson.
"""

import numpy as np
import pandas as pd
import pytest
from dagster import DagsterInstance, materialize

from assets.cycling import lifemodel
from tests.cycling.test_assets import ASSETS, metadata
from tests.cycling.test_qdlin_reader import qdlin_text

SETS = {"train": 12, "test1": 3, "test2": 3}
UNKNOWN = "test2"


def write_sets(raw, seed=0):
    """The three folders and the lives files of train and test1 only; returns {cell_key: life}."""
    rng = np.random.default_rng(seed)
    lives = {}
    for name, n in SETS.items():
        (raw / name).mkdir(parents=True)
        for k in range(1, n + 1):
            fade_ah = 10 ** rng.uniform(-5, -3.6)  # per cycle, below 3.3 V
            (raw / name / f"cell{k}.csv").write_text(qdlin_text(n_cycles=99, fade_ah=fade_ah))
            lives[f"{name}/cell{k}"] = round(10 ** (0.6 - 0.5 * np.log10(fade_ah) + rng.normal(0, 0.03)))
    (raw / "cycle_lives").mkdir()
    for name in SETS:
        if name != UNKNOWN:
            text = "".join(f"{lives[f'{name}/cell{k}']}\n" for k in range(1, SETS[name] + 1))
            (raw / "cycle_lives" / f"{name}_cycle_lives.csv").write_text(text)
    return lives


@pytest.fixture(scope="module")
def unknown_life_run(tmp_path_factory):
    """The cycling group on the fixture, every supervised fit recorded (rows and lives it was given)."""
    from resources.cluster import DaskResource
    from resources.compute import ComputeResource
    from resources.storage import MaterialsStorage

    root = tmp_path_factory.mktemp("data")
    lives = write_sets(root / "raw" / "cycling")
    resources = {"compute": ComputeResource(device="cpu", seed=0, num_threads=2),
                 "dask": DaskResource(synchronous=True), "io_manager": MaterialsStorage(root=str(root))}
    config = {"ops": {
        "cycling_synthetic_cells": {"config": {"n_cells": 2, "detail_stride": 50, "points_per_cycle": 20}},
        "cycling_unified": {"config": {"synthetic": "never", "min_cycles": 99, "qdlin_voltage_stride": 25}},
        "multiscale_encoder": {"config": {"steps": 2, "batch_size": 2, "eval_every": 1, "max_windows": 4}},
        "cycle_life_model": {"config": {"cv_folds": 3}},
    }}
    fits = []
    fit = lifemodel.fit_life_regressor

    def recording_fit(x_train, life_train, *args, **kwargs):
        fits.append((np.array(x_train, dtype=float), np.array(life_train, dtype=float)))
        return fit(x_train, life_train, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MATERIALS_DATA", str(root))
        patch.setattr(lifemodel, "fit_life_regressor", recording_fit)
        result = materialize(ASSETS, resources=resources, instance=DagsterInstance.ephemeral(), run_config=config,
                             raise_on_error=False)
    assert result.success
    return root, result, lives, fits


def unknown_cells():
    return [f"{UNKNOWN}/cell{k}" for k in range(1, SETS[UNKNOWN] + 1)]


def test_a_set_without_lives_is_predicted_with_intervals(unknown_life_run):
    root, result, _, _ = unknown_life_run
    predictions = pd.read_csv(root / "exports" / "cycling_cycle_life_predictions.csv")
    model = metadata(result, "cycle_life_model")
    guessed = predictions.loc[predictions["life_unknown"]].set_index("cell_key")
    assert sorted(guessed.index) == unknown_cells() and (guessed["split"] == UNKNOWN).all()
    assert guessed["cycle_life"].isna().all() and (guessed["selected_model"] == model["selected_model"]).all()
    assert ((guessed["lower95_cycles"] <= guessed["lower80_cycles"])
            & (guessed["lower80_cycles"] < guessed["predicted_cycle_life"])
            & (guessed["predicted_cycle_life"] < guessed["upper80_cycles"])
            & (guessed["upper80_cycles"] <= guessed["upper95_cycles"])).all()
    assert model["n_cells_predicted"] == model[f"n_cells_predicted_{UNKNOWN}"] == SETS[UNKNOWN]
    assert all(cell in model["unknown_life_predictions"] for cell in unknown_cells())
    assert not predictions.loc[~predictions["life_unknown"], "cycle_life"].isna().any()
    metrics = pd.read_csv(root / "exports" / "cycling_cycle_life_metrics.csv")
    assert set(metrics["split"]) == {"train", "train_cv", "test1"}  # test2 has no life to score
    quarantine = root / "quarantine" / "cycling.csv"
    assert not quarantine.exists() or "cycle_lives" not in quarantine.read_text()  # not a rejection


def test_nothing_of_the_unknown_cells_reaches_a_supervised_fit(unknown_life_run):
    root, _, lives, fits = unknown_life_run
    n_train = SETS["train"]
    assert fits and all(len(x) == len(life) <= n_train and np.isfinite(life).all() for x, life in fits)
    known_lives = [v for k, v in lives.items() if k.startswith("train/")]
    assert max(len(life) for _, life in fits) == n_train and set(fits[0][1]) <= set(map(float, known_lives))
    # Every feature value of an unknown cell (Severson and encoder features) that no labelled cell shares:
    unified = pd.read_parquet(root / "storage" / "cycling_unified.parquet")
    embeddings = pd.read_parquet(root / "storage" / "cycling_embeddings.parquet")
    features = lifemodel.severson_features(unified).join(lifemodel.embedding_features(embeddings, 100))
    is_unknown = features.index.isin(unknown_cells())
    own = np.setdiff1d(features.loc[is_unknown].to_numpy().ravel(), features.loc[~is_unknown].to_numpy().ravel())
    own = own[np.isfinite(own)]
    assert len(own) > 10
    assert not any(np.isin(own, x).any() for x, _ in fits)
