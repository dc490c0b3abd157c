"""Split-conformal quantile and coverage, temperature scaling, calibration error and class sets
(resources/conformal.py) on cases with exact answers."""

from __future__ import annotations

import math
import warnings

import numpy as np

from scipy.stats import norm

from resources.conformal import (
    conformal_quantile,
    expected_calibration_error,
    fit_temperature,
    interval_coverage,
    prediction_sets,
    reliability_bins,
    set_coverage,
    set_threshold,
    tempered_softmax,
)


def test_the_quantile_is_the_ceil_n_plus_1_level_th_smallest_score_while_n_allows_it():
    scores = np.arange(19.0)[::-1]  # any order
    assert conformal_quantile(scores, 0.95) == 18.0  # ceil(20 * 0.95) = 19 = n: the largest score still bounds it
    assert conformal_quantile(scores, 0.8) == 15.0  # ceil(16) = 16th smallest
    assert conformal_quantile(scores[1:], 0.95) == math.inf  # 18 scores cannot promise 95 %


def test_coverage_counts_a_true_value_on_either_bound_as_inside():
    true = np.array([1.0, 2.0, 3.0, 4.0])
    lower = np.array([1.0, 0.0, 3.5, 0.0])
    upper = np.array([2.0, 2.0, 4.0, 3.9])
    assert interval_coverage(true, lower, upper) == 0.5  # the closed interval holds rows 0 and 1


def test_coverage_of_no_rows_is_nan_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(interval_coverage([], [], []))


def test_calibration_error_by_hand_and_its_reliability_bins():
    # Top probabilities 0.95, 0.95, 1.0 (the last bin, (14/15, 1]: two of three right) and 0.55 (bin (8/15, 9/15], right).
    probabilities = np.array([[0.95, 0.05], [0.95, 0.05], [0.45, 0.55], [1.0, 0.0]])
    true = np.array([0, 1, 1, 0])
    expected = (3 * abs(2 / 3 - (0.95 + 0.95 + 1.0) / 3) + 1 * abs(1 - 0.55)) / 4
    assert math.isclose(expected_calibration_error(probabilities, true), expected)
    table = reliability_bins(probabilities, true)
    used = table["count"] > 0
    assert table["count"][used].tolist() == [1, 3] and table["accuracy"][used].tolist() == [1.0, 2 / 3]
    assert math.isclose(table["confidence"][used][1], (0.95 + 0.95 + 1.0) / 3)


def _over_confident_model(n: int, classes: int, power: float, seed: int):
    """True class probabilities (Dirichlet), labels drawn from them, and a model reporting them raised to `power`
    (renormalised): over-confident by exactly temperature `power`."""
    rng = np.random.default_rng(seed)
    truth = rng.dirichlet(np.full(classes, 0.7), n)
    labels = np.array([rng.choice(classes, p=row) for row in truth])
    return tempered_softmax(np.log(truth), 1 / power), labels


def test_temperature_scaling_removes_over_confidence_and_keeps_every_ranking():
    model, labels = _over_confident_model(6000, 5, power=3.0, seed=0)
    fit_rows, test_rows = slice(0, 3000), slice(3000, None)
    temperature = fit_temperature(np.log(model[fit_rows]), labels[fit_rows])  # log-probabilities work as logits
    assert abs(temperature - 3.0) < 0.3  # the exact inverse of the over-confidence
    calibrated = tempered_softmax(np.log(model[test_rows]), temperature)
    before, after = expected_calibration_error(model[test_rows], labels[test_rows]), expected_calibration_error(calibrated, labels[test_rows])
    assert before > 0.1 and after < 0.03
    assert (np.argsort(calibrated, axis=1) == np.argsort(model[test_rows], axis=1)).all()


def test_sets_cover_the_nominal_share_of_two_overlapping_gaussian_classes_in_closed_form():
    # x | y ~ N(+-mu, 1), equal priors: p(y=1 | x) = sigmoid(2 mu x). Class 1 is in a set of threshold q when
    # its probability reaches 1 - q, i.e. x >= a = logit(1 - q) / (2 mu); by symmetry the coverage is Phi(mu - a).
    mu, n = 1.0, 2000
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, n)
    x = rng.normal(np.where(labels == 1, mu, -mu), 1.0)
    p1 = 1 / (1 + np.exp(-2 * mu * x))
    probabilities = np.column_stack([1 - p1, p1])
    threshold = set_threshold(probabilities, labels, 0.9)
    a = math.log((1 - threshold) / threshold) / (2 * mu)
    coverage = norm.cdf(mu - a)
    assert abs(coverage - 0.9) < 0.02  # conditional on n calibration rows: sd sqrt(0.9 x 0.1 / n) = 0.0067
    sets = prediction_sets(probabilities, threshold)
    assert abs(set_coverage(sets, labels) - 0.9) < 0.02
    # Mean set size: both classes where |x| < -a (a < 0 at 90 %: an ambiguous band around 0), one elsewhere.
    both = 0.5 * (norm.cdf(-a - mu) - norm.cdf(a - mu)) + 0.5 * (norm.cdf(-a + mu) - norm.cdf(a + mu))
    assert abs(sets.sum(axis=1).mean() - (1 + both)) < 0.04


def test_a_ruled_out_class_never_enters_a_set_and_a_ruled_out_truth_counts_against_the_threshold():
    probabilities = np.array([[0.7, 0.2, 0.1]] * 9)
    admissible = np.ones((9, 3), bool)
    admissible[:, 1] = False
    truth_admissible = np.zeros(9, int)
    threshold = set_threshold(probabilities, truth_admissible, 0.9, admissible)
    assert math.isclose(threshold, 0.3)
    assert prediction_sets(probabilities, 0.95, admissible)[0].tolist() == [True, False, True]
    # Truth ruled out for 2 of 9 rows: the 9th smallest score (ceil(10 x 0.9)) is inf, and every class joins every set.
    truth = np.array([0] * 7 + [1] * 2)
    threshold = set_threshold(probabilities, truth, 0.9, admissible)
    assert threshold == math.inf
    assert prediction_sets(probabilities, threshold, admissible).all()
