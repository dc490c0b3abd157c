"""Split-conformal quantile and coverage (resources/conformal.py) on cases with exact answers."""

from __future__ import annotations

import math
import warnings

import numpy as np

from resources.conformal import conformal_quantile, interval_coverage


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
