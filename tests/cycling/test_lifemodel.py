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


# ---- selection and intervals (issue 22) ----------------------------------------------------------------------

def noisy_cells(n_train=200, n_test=600, n_noise=50, noise_log10=0.08, seed=0):
    """Cells whose first feature is log10 life plus noise, and n_noise pure-noise features (they make an
    in-sample residual smaller than an out-of-sample one)."""
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    life = 10 ** rng.uniform(2.2, 3.3, n)
    cells = pd.DataFrame({"cell_key": [f"c{i:04d}" for i in range(n)], "cycle_life": life,
                          "split": ["train"] * n_train + ["test1"] * n_test})
    x = np.c_[np.log10(life) + rng.normal(0, noise_log10, n), rng.normal(size=(n, n_noise))]
    return cells, pd.DataFrame(x, index=cells["cell_key"])


def test_intervals_hold_their_nominal_coverage_on_new_cells_and_contain_the_prediction():
    cells, features = noisy_cells()
    result = lifemodel.fit_and_score(cells, {"m": features}, {"m": "least_squares"})
    test1 = result["metrics"].set_index(["model", "split"]).loc[("m", "test1")]
    # Measured (seeds 0-3, 2026-12-05): 0.78-0.85 and 0.945-0.965; calibrated on in-sample residuals
    # instead: 0.59-0.68 and 0.80-0.88.
    assert abs(test1["coverage80"] - 0.80) <= 0.08 and abs(test1["coverage95"] - 0.95) <= 0.04, test1
    p = result["predictions"]
    assert (p["lower95_cycles"] <= p["lower80_cycles"]).all() and (p["upper80_cycles"] <= p["upper95_cycles"]).all()
    assert (p["lower80_cycles"] < p["predicted_cycle_life"]).all() and (p["predicted_cycle_life"] < p["upper80_cycles"]).all()


def test_selection_and_intervals_never_see_a_test_set():
    """Test lives made equal to the training mean: the constant is then perfect on test1, yet the model
    chosen by CV inside the training cells, and every interval, stay as they were."""
    cells, features = noisy_cells(n_train=40, n_test=20, n_noise=0)
    sets, methods = {"constant": features, "signal": features}, {"constant": "constant", "signal": "least_squares"}
    first = lifemodel.fit_and_score(cells, sets, methods)
    mean_life = 10 ** np.log10(cells.loc[cells["split"] == "train", "cycle_life"]).mean()
    constant_test = cells.assign(cycle_life=cells["cycle_life"].where(cells["split"] == "train", mean_life))
    second = lifemodel.fit_and_score(constant_test, sets, methods)
    test1 = second["metrics"].query("split == 'test1'").set_index("model")["mape_percent"]
    assert test1["constant"] < 1e-6 < test1["signal"]  # on test1 the constant wins ...
    assert first["selected_model"] == second["selected_model"] == "signal"  # ... but is not selected
    columns = ["predicted_cycle_life", "lower80_cycles", "upper80_cycles", "lower95_cycles", "upper95_cycles"]
    pd.testing.assert_frame_equal(first["predictions"][columns], second["predictions"][columns])


def test_cells_of_unknown_life_are_predicted_but_change_no_fit():
    """Adding cells without a life (in train and in a set of their own) changes no prediction, interval or
    choice: they never reach a supervised fit; they get a prediction inside their intervals."""
    cells, features = noisy_cells(n_train=40, n_test=10, n_noise=3)
    unknown = pd.DataFrame({"cell_key": ["u0", "u1", "u2"], "cycle_life": np.nan, "split": ["train", "test2", "test2"]})
    wild = pd.DataFrame(3.0, index=unknown["cell_key"], columns=features.columns)  # 3 sigma off: would move a fit
    sets = {"ridge": features, "ls": features}
    methods = {"ridge": "ridge", "ls": "least_squares"}
    alone = lifemodel.fit_and_score(cells, sets, methods)
    both = lifemodel.fit_and_score(pd.concat([cells, unknown], ignore_index=True),
                                   {k: pd.concat([v, wild]) for k, v in sets.items()}, methods)
    assert both["selected_model"] == alone["selected_model"] and both["choices"] == alone["choices"]
    assert both["half_widths_log10"] == alone["half_widths_log10"]
    known = both["predictions"].loc[~both["predictions"]["life_unknown"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(known.drop(columns="life_unknown"), alone["predictions"].drop(columns="life_unknown"))
    guessed = both["predictions"].loc[both["predictions"]["life_unknown"]]
    assert sorted(guessed["cell_key"]) == ["u0", "u0", "u1", "u1", "u2", "u2"]  # two models
    assert ((guessed["lower80_cycles"] < guessed["predicted_cycle_life"])
            & (guessed["predicted_cycle_life"] < guessed["upper80_cycles"])).all()
    assert "test2" not in set(both["metrics"]["split"])  # no known life: predicted, not scored
    assert (both["metrics"].query("split == 'train'")["n_cells"] == 40).all()


def test_scored_sets_come_in_order_train_validation_test_then_the_others_by_name():
    cells = life_cells(n_train=20)
    cells["split"] = ["train"] * 20 + ["secondary"] * 5 + ["test"] * 5 + ["validation"] * 5 + ["b_extra"] * 5
    exact = pd.DataFrame({"x": np.log10(cells["cycle_life"].to_numpy())}, index=cells["cell_key"])
    result = lifemodel.fit_and_score(cells, {"c": exact}, {"c": "constant"}, exclude_cells=["c27"])
    assert result["metrics"]["split"].tolist() == ["train", "train_cv", "validation", "test", "test_excl", "b_extra",
                                                   "secondary"]
    assert result["metrics"].set_index("split").loc["test_excl", "n_cells"] == 4


def test_out_of_fold_predictions_are_each_folds_own_fit_with_its_own_cv():
    cells = life_cells(n_train=30)
    rng = np.random.default_rng(1)  # data whose inner-CV choice of alpha depends on the folds' seed
    life = cells["cycle_life"].to_numpy()[:30]
    x = np.c_[np.log10(life) + rng.normal(0, 0.1, 30), rng.normal(size=(30, 8))]
    predicted = lifemodel.out_of_fold_log10_life(x, life, "ridge", n_folds=4, seed=3)
    expected = np.full(30, np.nan)
    for fit, held in lifemodel.cv_folds(30, 4, 3):
        model, _ = lifemodel.fit_life_regressor(x[fit], life[fit], "ridge", 4, 3)
        expected[held] = model.predict(x[held])
    assert predicted.dtype == float
    np.testing.assert_allclose(predicted, expected, rtol=1e-12)


def test_the_selected_models_rows_are_one_per_cell_and_name_it():
    predictions = pd.DataFrame({"cell_key": ["a", "b", "a", "b"], "model": ["m1", "m1", "m2", "m2"],
                                "predicted_cycle_life": [1.0, 2.0, 3.0, 4.0]})
    selected = lifemodel.selected_predictions(predictions, "m2")
    expected = pd.DataFrame({"cell_key": ["a", "b"], "predicted_cycle_life": [3.0, 4.0], "selected_model": "m2"})
    pd.testing.assert_frame_equal(selected, expected)
