"""Conformal intervals: calibrated on out-of-fold rows only, per working ion, covering fresh rows at the nominal rate."""

import numpy as np
import pandas as pd
import pytest

from assets.electrodes.evaluation import make_split
from assets.electrodes.intervals import LEVELS, calibrate, coverage, intervals
from resources.conformal import conformal_quantile
from assets.electrodes.models import make_forest, train_estimator
from assets.electrodes.predict import calibrate_intervals, evaluations_with_spread

# Known noise per working ion (V, Gaussian): each ion must get its own interval width.
NOISE_V = {"Li": 0.1, "Mg": 0.4}
# Coverage of 600 fresh rows per ion may miss the nominal rate by this much (binomial sd at 0.8: 1.6 points).
TOLERANCE = 0.06


def synthetic_table(rows_per_ion: int, seed: int) -> pd.DataFrame:
    """Two features, voltage = 2 sin(x0) + x1 + noise of the ion's known sd; ids end in the working ion."""
    rng = np.random.default_rng(seed)
    frames = []
    for ion, noise in NOISE_V.items():
        x = rng.uniform(-2, 2, size=(rows_per_ion, 2))
        target = 2 * np.sin(x[:, 0]) + x[:, 1] + rng.normal(0, noise, rows_per_ion)
        frames.append(pd.DataFrame({"battery_id": [f"mp-{i}_{ion}" for i in range(rows_per_ion)],
                                    "f:x0": x[:, 0], "f:x1": x[:, 1], "target": target}))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def synthetic_bundles():
    """Forest and a shallower forest trained with the pipeline's own code; half the rows are fresh test rows."""
    table = synthetic_table(1200, seed=0)
    split = make_split(list(table["battery_id"]), 0.5, 5, np.random.default_rng(1))
    bundles = {}
    for name, leaf in (("forest", 1), ("boosting", 10)):
        model, evaluation = train_estimator(lambda: make_forest(40, min_samples_leaf=leaf, max_features=1.0), table,
                                            split, ["f:x0", "f:x1"])
        bundles[name] = {"model": model, "evaluation": evaluation, "settings": {"metrics": {}}}
    return table, split, bundles


def test_intervals_cover_fresh_rows_at_the_nominal_rate_per_ion(synthetic_bundles):
    _, _, bundles = synthetic_bundles
    calibration = calibrate_intervals(bundles, "forest")
    assert set(calibration["quantiles"]) == {"pooled", "Li", "Mg"}
    test = evaluations_with_spread(bundles, "forest").query("subset == 'test'")
    bounds = intervals(test["predicted"], test["spread"], test["working_ion"], calibration)
    for ion, noise in NOISE_V.items():
        rows = (test["working_ion"] == ion).to_numpy()
        for level in LEVELS:
            assert coverage(test["true"][rows], bounds[rows], level) == pytest.approx(level, abs=TOLERANCE), (ion, level)
        # the 95 % interval is at least as wide as the noise alone needs (1.96 sd each side), and not wildly wider
        half_width = (bounds["upper_95_V"][rows] - bounds["lower_95_V"][rows]).mean() / 2
        assert 1.96 * noise * 0.9 < half_width < 1.96 * noise * 3


def test_calibration_uses_out_of_fold_rows_not_the_fitted_training_rows(synthetic_bundles):
    """The refit forest nearly interpolates its training rows; out-of-fold residuals are what new rows see."""
    from assets.electrodes.features import feature_matrix

    table, split, bundles = synthetic_bundles
    calibration = calibrate_intervals(bundles, "forest")
    train = table.merge(split.query("subset == 'train'"), on="battery_id")
    in_sample = np.abs(bundles["forest"]["model"].predict(feature_matrix(train, ["f:x0", "f:x1"])) - train["target"])
    out_of_fold = bundles["forest"]["evaluation"].query("subset == 'cv'").eval("abs(true - predicted)")
    assert in_sample.mean() < 0.6 * out_of_fold.mean()  # the trap is real
    cv = evaluations_with_spread(bundles, "forest").query("subset == 'cv'")
    assert set(cv["battery_id"]) == set(train["battery_id"])
    expected = calibrate(cv["true"], cv["predicted"], cv["spread"], cv["working_ion"])
    assert calibration == expected


def test_an_ion_with_too_few_rows_shares_the_pooled_quantiles_and_wider_spread_widens_the_interval():
    rng = np.random.default_rng(3)
    true = rng.normal(size=300)
    predicted = true + rng.normal(0, 0.2, 300)
    ions = np.array(["Li"] * 250 + ["Al"] * 50)
    calibration = calibrate(true, predicted, np.full(300, 0.1), ions, min_rows=100)
    assert set(calibration["quantiles"]) == {"pooled", "Li"} and calibration["rows"]["pooled"] == 300
    bounds = intervals(np.zeros(3), np.array([0.0, 0.1, 0.3]), np.array(["Al", "Al", "Li"]), calibration)
    widths = (bounds["upper_80_V"] - bounds["lower_80_V"]).to_numpy()
    pooled = calibration["quantiles"]["pooled"][0.8]
    assert widths[1] == pytest.approx(2 * pooled * (0.1 + calibration["floor_V"]))
    assert widths[0] < widths[1]  # more disagreement between the models, wider interval
    assert (bounds["upper_95_V"] > bounds["upper_80_V"]).all() and (bounds["lower_95_V"] < bounds["lower_80_V"]).all()


def test_conformal_quantile_covers_exchangeable_draws_at_least_at_the_level():
    rng = np.random.default_rng(4)
    for level in LEVELS:
        hits = [rng.exponential(size=1) <= conformal_quantile(rng.exponential(size=40), level) for _ in range(4000)]
        assert level - 0.01 <= np.mean(hits) <= level + 0.02  # (ceil((n + 1) level)) / (n + 1): 0.805, 0.951
    assert conformal_quantile(np.arange(10.0), 0.95) == np.inf  # 10 rows cannot promise 95 %


def test_an_ion_with_exactly_min_rows_gets_its_own_quantiles():
    rng = np.random.default_rng(5)
    true = rng.normal(size=150)
    ions = np.array(["Li"] * 100 + ["Mg"] * 49 + ["Na"])
    calibration = calibrate(true, true + 0.1, np.full(150, 0.1), ions, min_rows=100)
    assert set(calibration["quantiles"]) == {"pooled", "Li"} and calibration["rows"]["Li"] == 100


def test_member_spread_is_the_population_sd_and_zero_for_one_member():
    from assets.electrodes.intervals import member_spread

    two = pd.DataFrame({"forest": [1.0, 2.0], "network": [3.0, 2.0]})
    np.testing.assert_allclose(member_spread(two), [1.0, 0.0])
    np.testing.assert_allclose(member_spread(two[["forest"]]), [0.0, 0.0])


def test_the_spread_floor_is_the_median_spread_and_at_least_one_millivolt():
    from assets.electrodes.intervals import spread_floor_V

    assert spread_floor_V(np.array([0.02, 0.05, 0.3])) == pytest.approx(0.05)
    assert spread_floor_V(np.zeros(4)) == 1e-3  # one member model: no spread, a 1 mV floor
    assert spread_floor_V(np.array([])) == 1e-3
