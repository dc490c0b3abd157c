"""Composition features against hand-computed values; failures recorded, never fatal."""

import numpy as np
import pandas as pd
import pytest

from assets.electrodes.features import featurize_formulas, informative_columns
from resources.cluster import DaskResource


@pytest.fixture(scope="module")
def licoo2_and_friends():
    return featurize_formulas(["Li1 Co1 O2", "LiFePO4", "NeAr"], DaskResource(synchronous=True).map, rows_per_chunk=2)


def test_licoo2_features_match_hand_computed_values(licoo2_and_friends):
    table, failures = licoo2_and_friends
    licoo2 = table.iloc[0]
    assert failures[0] == ""
    assert licoo2["MagpieData mean Number"] == pytest.approx((3 + 27 + 2 * 8) / 4)
    assert licoo2["transition metal fraction"] == pytest.approx(0.25)  # one Co in four atoms
    assert licoo2["maximum oxidation state"] == 3 and licoo2["minimum oxidation state"] == -2  # Co3+, O2-
    assert licoo2["MagpieData range Electronegativity"] == pytest.approx(3.44 - 0.98)  # O minus Li (Pauling)


def test_featurizer_failures_are_recorded_per_row_and_the_rest_goes_on(licoo2_and_friends):
    table, failures = licoo2_and_friends
    assert "OxidationStates" in failures[2] and "no charge-balanced oxidation states" in failures[2]
    assert np.isnan(table.loc[2, "maximum oxidation state"])
    assert table.loc[2, "MagpieData mean Number"] == pytest.approx((10 + 18) / 2)  # magpie still ran
    assert len(table) == 3  # chunks (2 + 1 rows) come back in order
    assert table.loc[1, "transition metal fraction"] == pytest.approx(1 / 7)


def test_constant_all_nan_and_text_columns_are_dropped_and_named():
    table = pd.DataFrame(
        {"useful": [1.0, 2.0, 3.0], "constant": [5.0, 5.0, 5.0], "empty": [np.nan] * 3, "HOMO_element": ["O", "O", "S"]}
    )
    keep, dropped = informative_columns(table)
    assert keep == ["useful"]
    assert dropped == {"non_numeric": ["HOMO_element"], "all_nan": ["empty"], "constant": ["constant"]}
