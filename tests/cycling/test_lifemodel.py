"""Severson features and the cycle-life scoring, against closed forms and the generator's own curves."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from assets.cycling import lifemodel, unified
from assets.cycling.synthetic import synthetic_batch


@pytest.fixture(scope="module")
def cells():
    batch = synthetic_batch(4, detail_stride=50, points_per_cycle=400, seed=5)
    frame, _ = unified.severson_frame(batch, "s.pkl")
    return batch, unified.unify([frame], 2)[0]


def test_discharge_curve_from_time_steps_matches_qdlin(cells):
    batch, table = cells
    cycle = table.loc[(table["cell_key"] == "s1c0") & (table["cycle_number"] == 100)]
    curve = lifemodel.discharge_curve(cycle)
    qdlin = batch["s1c0"]["cycles"]["100"]["Qdlin"]
    assert np.max(np.abs(curve - qdlin)) < 0.02  # Ah; a 200-point trace vs the 1000-point grid
    assert np.mean(np.abs(curve - qdlin)) < 1e-3


def test_dq_features_are_matlab_style_statistics():
    delta_q = np.random.default_rng(0).normal(-0.01, 0.003, 1000)
    features = lifemodel.dq_features(delta_q)
    assert features["log_var_dq"] == pytest.approx(np.log10(np.var(delta_q)))
    assert features["log_abs_min_dq"] == pytest.approx(np.log10(-delta_q.min()))
    assert features["log_abs_skew_dq"] == pytest.approx(np.log10(abs(stats.skew(delta_q))))
    assert 10 ** features["log_abs_kurtosis_dq"] == pytest.approx(3.0, abs=0.3)  # a normal law: 3, not 0


def test_severson_features_follow_the_generated_curves(cells):
    batch, table = cells
    features = lifemodel.severson_features(table)
    for cell, record in batch.items():
        generated = record["cycles"]["100"]["Qdlin"] - record["cycles"]["10"]["Qdlin"]
        assert features.loc[cell, "log_var_dq"] == pytest.approx(np.log10(np.var(generated)), abs=0.1)
        assert features.loc[cell, "qd_cycle2_ah"] == pytest.approx(record["cycles"]["2"]["Qd"].max())
    missing = lifemodel.severson_features(table.loc[table["cycle_number"] != 10])
    assert missing["log_var_dq"].isna().all() and missing["qd_cycle2_ah"].notna().all()


def test_metrics_closed_form():
    metrics = lifemodel.life_metrics(np.array([100.0, 200.0, 300.0]), np.array([110.0, 180.0, 300.0]))
    assert metrics["mae_cycles"] == pytest.approx(10.0)
    assert metrics["mape_percent"] == pytest.approx(100 * (0.1 + 0.1 + 0) / 3)
    assert metrics["rmse_cycles"] == pytest.approx(np.sqrt(500 / 3))
    assert metrics["r2"] == pytest.approx(1 - 500 / 20000)


def life_cells(n_train=30, seed=0):
    rng = np.random.default_rng(seed)
    n = n_train + 20
    life = 10 ** rng.uniform(2.2, 3.3, n)
    split = ["train"] * n_train + ["test1"] * 10 + ["test2"] * 10
    return pd.DataFrame({"cell_key": [f"c{i:02d}" for i in range(n)], "cycle_life": life, "split": split})


def test_a_feature_equal_to_log_life_is_recovered_and_unscorable_cells_are_named():
    targets = life_cells()
    exact = pd.DataFrame({"x": np.log10(targets["cycle_life"].to_numpy())}, index=targets["cell_key"])
    partial = exact.drop(index="c49")
    scored, rejections = lifemodel.modelled_cells(targets, {"exact": exact, "partial": partial}, "t")
    assert [(r.row, r.reason) for r in rejections] == [("c49", "left out of cycle-life modelling: no partial")]
    result = lifemodel.fit_and_score(scored, {"exact": exact, "const": exact},
                                     {"exact": "least_squares", "const": "constant"})
    metrics = result["metrics"].set_index(["model", "split"])
    assert list(dict.fromkeys(result["metrics"]["split"])) == ["train", "train_cv", "test1", "test2"]
    assert metrics.loc[("exact", "test1"), "n_cells"] == 10 and metrics.loc[("exact", "test2"), "n_cells"] == 9
    assert metrics.loc[("exact", "test1"), "mape_percent"] < 1e-6
    assert metrics.loc[("const", "test1"), "mape_percent"] > 30
    assert set(result["predictions"]["cell_key"]) == set(scored["cell_key"])


@pytest.mark.parametrize("method", ["ridge", "elastic_net"])
def test_hyperparameters_never_see_a_test_set(method):
    """Changing every test label (and adding test cells) changes neither the chosen strength nor a prediction."""
    cells = life_cells()
    rng = np.random.default_rng(1)
    features = pd.DataFrame(np.c_[np.log10(cells["cycle_life"]) + rng.normal(0, 0.1, len(cells)),
                                  rng.normal(size=(len(cells), 5))], index=cells["cell_key"])
    first = lifemodel.fit_and_score(cells, {"m": features}, {"m": method})
    scrambled = cells.assign(cycle_life=np.where(cells["split"] == "train", cells["cycle_life"],
                                                 cells["cycle_life"][::-1].to_numpy() * 3))
    second = lifemodel.fit_and_score(scrambled, {"m": features}, {"m": method})
    assert first["choices"]["m"]["alpha"] == second["choices"]["m"]["alpha"]
    np.testing.assert_allclose(first["predictions"]["predicted_cycle_life"],
                               second["predictions"]["predicted_cycle_life"])
    assert first["metrics"].query("split == 'test1'")["mape_percent"].iloc[0] != \
        second["metrics"].query("split == 'test1'")["mape_percent"].iloc[0]


@pytest.mark.parametrize("method", ["ridge", "elastic_net"])
def test_a_choice_at_the_edge_of_the_grid_is_a_warning(method):
    cells = life_cells(n_train=40)
    noise = pd.DataFrame(np.random.default_rng(3).normal(size=(len(cells), 20)), index=cells["cell_key"])
    result = lifemodel.fit_and_score(cells, {"noise": noise}, {"noise": method})
    assert "largest" in result["warnings"]["noise"]  # pure noise: the strongest penalty wins, i.e. a constant
    signal = pd.DataFrame({"x": np.log10(cells["cycle_life"].to_numpy())}, index=cells["cell_key"])
    assert "largest" not in lifemodel.fit_and_score(cells, {"s": signal}, {"s": method})["choices"]["s"]["warning"]


def test_excluded_cells_are_scored_both_ways():
    cells = life_cells()
    exact = pd.DataFrame({"x": np.log10(cells["cycle_life"].to_numpy())}, index=cells["cell_key"])
    result = lifemodel.fit_and_score(cells, {"c": exact}, {"c": "constant"}, exclude_cells=["c31"])
    metrics = result["metrics"].set_index("split")
    assert list(metrics.index) == ["train", "train_cv", "test1", "test1_excl", "test2"]
    assert metrics.loc["test1", "n_cells"] == 10 and metrics.loc["test1_excl", "n_cells"] == 9


def test_embedding_features_use_only_the_first_cycles():
    embeddings = pd.DataFrame({"cell_key": ["a"] * 3, "document": [0, 1, 2], "first_cycle": [1, 50, 101],
                               "last_cycle": [40, 100, 150], "emb_0": [1.0, 3.0, 100.0]})
    features = lifemodel.embedding_features(embeddings, last_cycle=100)
    assert features.loc["a"].to_dict() == {"emb_0": 2.0, "change_emb_0": 2.0}
