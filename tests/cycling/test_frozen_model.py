"""The frozen cycle-life model: the same numbers as the fitted regressor, a JSON round trip, its domain, and
intervals widened for the shift between batches."""

import json

import numpy as np
import pandas as pd
import pytest

from assets.cycling import frozen, intervals, lifemodel
from resources.conformal import conformal_quantile


def cells_and_features(n=30, seed=0):
    """Features like Severson's discharge model with a log10 life that depends on them linearly."""
    rng = np.random.default_rng(seed)
    features = pd.DataFrame({
        "log_var_dq": rng.uniform(-5, -2.8, n), "log_abs_min_dq": rng.uniform(-2, -0.9, n),
        "qd_cycle2_ah": rng.uniform(1.03, 1.08, n),
    }, index=pd.Index([f"train/cell{k}" for k in range(n)], name="cell_key"))
    log_life = 1.2 - 0.4 * features["log_var_dq"] + 0.1 * features["log_abs_min_dq"] + rng.normal(0, 0.02, n)
    return features, (10**log_life).to_numpy()


def frozen_from(method, features, life, half_widths=None, tau=0.0):
    model, _ = lifemodel.fit_life_regressor(features.to_numpy(), life, method, 3, 0)
    frozen_model = frozen.freeze(model, "discharge", method, features, features["qd_cycle2_ah"].to_numpy(),
                                 half_widths or {80: 0.05, 95: 0.1}, tau, "id-1", (10, 100),
                                 {"model": "cycle_life_discharge"})
    return model, frozen_model


def qdlin_windows(index):
    return pd.DataFrame({"discharge_v_min": 2.0, "discharge_v_max": 3.6}, index=index)


@pytest.mark.parametrize("method", ["constant", "least_squares", "ridge", "elastic_net"])
def test_frozen_terms_give_the_fitted_regressors_predictions(method):
    features, life = cells_and_features()
    model, frozen_model = frozen_from(method, features, life)
    np.testing.assert_allclose(frozen_model.log10_life(features.to_numpy()), model.predict(features.to_numpy()),
                               rtol=0, atol=1e-12)
    # predict() picks the model's columns by name: a table in another column order, with columns the model does
    # not read (as the Severson feature table has), gives the same lives
    shuffled = features[features.columns[::-1]].assign(n_capacity_glitch_cycles=0)
    table = frozen.predict(frozen_model, shuffled, qdlin_windows(features.index))
    np.testing.assert_allclose(np.log10(table["predicted_cycle_life"]), model.predict(features.to_numpy()),
                               rtol=0, atol=1e-12)


def test_json_round_trip_predicts_the_same_and_a_foreign_file_is_refused(tmp_path):
    features, life = cells_and_features()
    _, frozen_model = frozen_from("ridge", features, life)
    folder = frozen.save(frozen_model, tmp_path / "model")
    loaded = frozen.load(folder)
    assert loaded == frozen_model
    windows = qdlin_windows(features.index)
    pd.testing.assert_frame_equal(frozen.predict(loaded, features, windows), frozen.predict(frozen_model, features, windows))
    content = json.loads((folder / frozen.MODEL_FILE).read_text())
    (folder / frozen.MODEL_FILE).write_text(json.dumps({**content, "format": "something/else"}))
    with pytest.raises(ValueError, match="not a frozen cycle-life model"):
        frozen.load(folder)


def test_a_cell_predicts_the_same_alone_or_among_others():
    features, life = cells_and_features()
    _, frozen_model = frozen_from("ridge", features, life)
    windows = qdlin_windows(features.index)
    together = frozen.predict(frozen_model, features, windows).set_index("cell_key")
    alone = frozen.predict(frozen_model, features.iloc[[4]], windows).set_index("cell_key")
    pd.testing.assert_frame_equal(alone, together.iloc[[4]])


def test_intervals_surround_the_prediction_by_the_half_widths_in_log10():
    features, life = cells_and_features()
    _, frozen_model = frozen_from("ridge", features, life, {80: 0.05, 95: 0.1})
    table = frozen.predict(frozen_model, features, qdlin_windows(features.index))
    assert table["in_domain"].all()
    np.testing.assert_allclose(np.log10(table["upper80_cycles"] / table["predicted_cycle_life"]), 0.05)
    np.testing.assert_allclose(np.log10(table["predicted_cycle_life"] / table["lower95_cycles"]), 0.1)


def test_capacity_times_three_and_a_shifted_voltage_window_are_out_of_domain_without_intervals():
    features, life = cells_and_features()
    _, frozen_model = frozen_from("ridge", features, life)
    new = features.iloc[:3].copy()
    new.index = ["new/big", "new/shifted", "new/same"]
    new.loc["new/big", "qd_cycle2_ah"] *= 3
    windows = qdlin_windows(new.index)
    windows.loc["new/shifted"] = [2.5, 4.1]  # the whole window 0.5 V up: Q(V) never reaches 2.0 V
    table = frozen.predict(frozen_model, new, windows).set_index("cell_key")
    assert not table.loc["new/big", "in_domain"] and "nominal capacity" in table.loc["new/big", "domain_reason"]
    assert not table.loc["new/shifted", "in_domain"] and "ends at 2.5 V" in table.loc["new/shifted", "domain_reason"]
    assert table.loc["new/same", "in_domain"] and table.loc["new/same", "domain_reason"] == ""
    interval_columns = [c for c in table.columns if c.startswith(("lower", "upper"))]
    assert table.loc[["new/big", "new/shifted"], interval_columns].isna().all().all()
    assert table.loc["new/same", interval_columns].notna().all()
    assert table["predicted_cycle_life"].notna().all()  # still predicted, flagged


def test_leverage_of_one_feature_is_the_closed_form_and_its_bound_is_three_p_plus_one_over_n():
    x = np.array([1.0, 2.0, 4.0, 7.0, 11.0])
    standardised = (x - x.mean()) / x.std()
    domain = frozen.domain_of(standardised[:, None], np.full(5, 1.05))
    new = np.array([3.0, 20.0])
    expected = 1 / 5 + (new - x.mean()) ** 2 / np.sum((x - x.mean()) ** 2)
    h = frozen.leverage(domain["design_gram_inverse"], ((new - x.mean()) / x.std())[:, None])
    np.testing.assert_allclose(h, expected)
    assert domain["leverage_max"] == pytest.approx(3 * 2 / 5)
    assert domain["nominal_capacity_ah"] == pytest.approx([1.05 - 0.0525, 1.05 + 0.0525])


def test_an_unusual_combination_of_features_is_out_of_domain_though_each_is_in_range():
    features, life = cells_and_features(n=60)
    features["log_abs_min_dq"] = 0.5 * features["log_var_dq"] + np.random.default_rng(3).normal(0, 0.01, 60)
    _, frozen_model = frozen_from("ridge", features, life)
    odd = features.iloc[[0]].copy()
    odd.index = ["new/odd"]
    odd["log_var_dq"], odd["log_abs_min_dq"] = -4.9, -1.4  # each inside its range, together off the training line
    table = frozen.predict(frozen_model, odd, qdlin_windows(odd.index))
    assert not table["in_domain"].iloc[0] and "leverage" in table["domain_reason"].iloc[0]


def test_one_batch_gives_plain_split_conformal_widths():
    residuals = np.random.default_rng(1).normal(0, 0.05, 40)
    widths, tau = intervals.batch_aware_half_widths(residuals, None)
    assert tau == 0
    assert widths[80] == conformal_quantile(np.abs(residuals), 0.8)
    assert intervals.batch_aware_half_widths(residuals, np.zeros(40))[1] == 0


def test_two_batches_offset_by_plus_minus_d_give_tau_close_to_d_and_wider_intervals():
    rng = np.random.default_rng(2)
    noise = rng.normal(0, 0.01, 200)
    noise -= np.r_[noise[:100].mean() * np.ones(100), noise[100:].mean() * np.ones(100)]  # batch means exactly +-d
    batches = np.repeat(["a", "b"], 100)
    residuals = noise + np.where(batches == "a", 0.1, -0.1)
    sampling = np.mean([noise[:100].var(ddof=1), noise[100:].var(ddof=1)]) / 100
    assert intervals.batch_variance_log10(residuals, batches) == pytest.approx(0.01 - sampling)
    widths, tau = intervals.batch_aware_half_widths(residuals, batches)
    within = conformal_quantile(np.abs(noise), 0.95)
    assert widths[95] == pytest.approx(np.hypot(within, 1.959964 * tau), rel=1e-6)


def test_capacity_glitches_are_left_out_of_the_capacity_features():
    capacity = pd.Series(np.linspace(1.07, 1.05, 99), index=np.arange(2, 101))
    capacity[12] = 48.8  # a logged glitch as in the published files
    glitches = lifemodel.capacity_glitches(capacity)
    assert glitches.sum() == 1 and glitches[12]
