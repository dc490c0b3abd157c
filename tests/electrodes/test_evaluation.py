"""Split, cross-validation and metrics: invariants and closed forms."""

import numpy as np
import pytest

from assets.electrodes.evaluation import make_split, out_of_fold_predictions, regression_metrics


def test_split_is_a_partition_with_balanced_folds():
    ids = [f"mp-{i}_Li" for i in range(37)]
    split = make_split(ids, test_fraction=0.2, n_folds=5, rng=np.random.default_rng(0))
    assert sorted(split["battery_id"]) == sorted(ids)
    test = split[split["subset"] == "test"]
    assert len(test) == round(0.2 * 37) and set(test["fold"]) == {-1}
    counts = split.loc[split["subset"] == "train", "fold"].value_counts()
    assert set(counts.index) == set(range(5)) and counts.max() - counts.min() <= 1
    again = make_split(ids, 0.2, 5, np.random.default_rng(0))
    assert again.equals(split)  # same seed, same split


def test_too_few_records_for_the_folds_is_a_clear_error():
    with pytest.raises(ValueError, match="need at least 7"):
        make_split(["a", "b", "c"], 0.2, 5, np.random.default_rng(0))


def test_metrics_closed_forms():
    true = np.array([1.0, 2.0, 3.0, 4.0])
    assert regression_metrics(true, true) == {"mae": 0.0, "rmse": 0.0, "r2": 1.0}
    shifted = regression_metrics(true, true + 0.5)
    assert shifted["mae"] == pytest.approx(0.5) and shifted["rmse"] == pytest.approx(0.5)
    assert shifted["r2"] == pytest.approx(1 - 4 * 0.25 / 5.0)
    assert regression_metrics(true, np.full(4, true.mean()))["r2"] == pytest.approx(0.0)


def test_out_of_fold_mean_predictor_never_sees_its_own_fold():
    target = np.arange(10.0)
    folds = np.arange(10) % 5
    mean_of_rest = out_of_fold_predictions(lambda x, y, xp: np.full(len(xp), y.mean()), target[:, None], target, folds)
    for fold in range(5):
        held = folds == fold
        assert np.allclose(mean_of_rest[held], target[~held].mean())
    partial = out_of_fold_predictions(lambda x, y, xp: np.zeros(len(xp)), target[:, None], target, folds, max_folds=2)
    assert np.isfinite(partial).sum() == 4  # folds 0 and 1 only
