"""Cycle-life intervals (assets/cycling/intervals.py): multiplicative in cycles around the point prediction."""

from __future__ import annotations

import numpy as np
import pytest

from assets.cycling.intervals import LEVELS_PERCENT, interval_columns


def test_intervals_are_the_prediction_divided_and_multiplied_by_ten_to_the_half_width():
    predicted_log10 = np.array([2.0, 3.0])  # 100 and 1000 cycles
    table = interval_columns(predicted_log10, {80: 0.1, 95: 0.25})
    assert list(table.columns) == ["lower80_cycles", "upper80_cycles", "lower95_cycles", "upper95_cycles"]
    np.testing.assert_allclose(table["lower80_cycles"], [100 / 10**0.1, 1000 / 10**0.1])
    np.testing.assert_allclose(table["upper80_cycles"], [100 * 10**0.1, 1000 * 10**0.1])
    np.testing.assert_allclose(table["upper95_cycles"] / 10**predicted_log10, 10**0.25)
    np.testing.assert_allclose(10**predicted_log10 / table["lower95_cycles"], 10**0.25)  # symmetric in log10
    assert (table["lower95_cycles"] < table["lower80_cycles"]).all()


def test_intervals_take_lists_and_a_zero_half_width_is_the_point_itself():
    table = interval_columns([2.0], {level: 0.0 for level in LEVELS_PERCENT})
    assert table.iloc[0].tolist() == pytest.approx([100.0] * 4)
