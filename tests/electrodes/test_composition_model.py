"""The torch composition model learns a voltage that depends on which elements a formula holds, and fails on shuffled ones."""

import numpy as np
import pandas as pd
import pytest

from assets.electrodes.composition_model import (
    CompositionAttentionRegressor,
    encode_compositions,
    host_columns,
    slot_columns,
    with_compositions,
)
from assets.electrodes.evaluation import make_split
from assets.electrodes.models import ClippedRegressor, make_median, train_estimator

# The model must reach this share of the median baseline's cv MAE on the synthetic chemistry below.
BEATS_MEDIAN_BY = 0.6
TRANSITION_METALS = ["Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Mo", "Nb"]
ANIONS = ["O", "S", "F"]


def synthetic_chemistry(rows: int, seed: int) -> pd.DataFrame:
    """Li_x M A_y electrodes whose voltage (V) is a metal term plus an anion term (known, noise 0.05 V)."""
    rng = np.random.default_rng(seed)
    metal_V = dict(zip(TRANSITION_METALS, np.linspace(1.0, 4.5, len(TRANSITION_METALS))))
    anion_V = {"O": 0.5, "S": -0.8, "F": 1.0}
    records = []
    for i in range(rows):
        metal, anion = rng.choice(TRANSITION_METALS), rng.choice(ANIONS)
        count = int(rng.integers(1, 4))
        records.append({"battery_id": f"mp-{i}_Li", "formula_discharge": f"Li{metal}{anion}{count}",
                        "formula_charge": f"{metal}{anion}{count}", "redox:anion_count": float(count),
                        "target": metal_V[metal] + anion_V[anion] + rng.normal(0, 0.05)})
    return pd.DataFrame(records)


def cv_mae(evaluation: pd.DataFrame) -> float:
    return float(evaluation.query("subset == 'cv'").eval("abs(true - predicted)").mean())


def make_model():
    return ClippedRegressor(CompositionAttentionRegressor(d_model=24, n_heads=2, n_layers=1, epochs=30, batch_size=32,
                                                          learning_rate=5e-3, seed=0))


def test_encoding_keeps_elements_and_fractions_of_both_ends():
    encoded = encode_compositions(["LiCoO2"], ["CoO2"]).iloc[0]
    assert encoded["slot0:z"] == 8 and encoded["slot0:fraction_discharged"] == pytest.approx(0.5)
    assert encoded["slot0:fraction_charged"] == pytest.approx(2 / 3)
    lithium = [i for i in range(3) if encoded[f"slot{i}:z"] == 3][0]
    assert encoded[f"slot{lithium}:fraction_discharged"] == pytest.approx(0.25)
    assert encoded[f"slot{lithium}:fraction_charged"] == 0
    assert (encoded[[f"slot{i}:z" for i in range(3, 8)]] == 0).all()  # empty slots


@pytest.mark.parametrize("shuffled", [False, True])
def test_learns_the_voltage_of_the_elements_and_not_a_shuffled_one(shuffled):
    table = synthetic_chemistry(240, seed=0)
    if shuffled:
        table["target"] = np.random.default_rng(1).permutation(table["target"].to_numpy())
    table = with_compositions(table)
    split = make_split(list(table["battery_id"]), 0.0, 3, np.random.default_rng(2))
    columns = slot_columns() + host_columns(table)
    model = cv_mae(train_estimator(make_model, table, split, columns)[1])
    median = cv_mae(train_estimator(make_median, table, split, columns)[1])
    assert (model < BEATS_MEDIAN_BY * median) != shuffled, (model, median)
