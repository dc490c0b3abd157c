"""Calibrated circuit probabilities and circuit sets (assets/eis/calibration.py) on cases with known answers."""

import math

import numpy as np
import pandas as pd
import pytest

from assets.eis import calibration
from assets.eis.calibration import (
    Calibration,
    admissible,
    calibrate,
    circuit_sets,
    ensemble_probabilities,
    out_of_fold_probabilities,
    set_members,
)

CLASSES = ["A", "B", "C"]


class _Recorder:
    """A 'model' that predicts class 0 with certainty for rows it was trained on and uniform otherwise."""

    fits: list = []

    def __init__(self, x, y):
        self.seen = {tuple(row) for row in x}
        _Recorder.fits.append(x)

    def predict_proba(self, x):
        return np.array([[1.0, 0.0, 0.0] if tuple(row) in self.seen else [1 / 3] * 3 for row in x])


def test_every_training_row_is_predicted_by_a_model_that_never_saw_it_and_extra_rows_train_every_fold():
    x = np.arange(40.0).reshape(20, 2)
    y = np.repeat([0, 1], 10)
    extra = np.array([[-1.0, -1.0], [-2.0, -2.0]])
    _Recorder.fits = []
    probabilities, models = out_of_fold_probabilities(_Recorder, x, y, extra, np.array([2, 2]), 3, folds=5, seed=0)
    assert np.allclose(probabilities, 1 / 3)  # not one row was in the training of the model that predicted it
    assert len(_Recorder.fits) == len(models) == 5
    # The served ensemble is the fold models: each training row was seen by four of them and missed by one.
    served = ensemble_probabilities({f"fold{k}": model for k, model in enumerate(models)}, x)
    np.testing.assert_allclose(served, np.tile([0.8 + 0.2 / 3, 0.2 / 3, 0.2 / 3], (20, 1)))
    for trained in _Recorder.fits:
        assert len(trained) == 16 + 2 and {(-1.0, -1.0), (-2.0, -2.0)} <= {tuple(r) for r in trained}


def test_a_circuit_is_ruled_out_where_its_fit_does_not_reproduce_the_spectrum_and_kept_without_evidence():
    features = pd.DataFrame({
        "evidence__log10_residual_A": [math.log10(0.01), math.log10(0.05), np.nan],
        "evidence__log10_residual_B": [math.log10(0.03), math.log10(0.031), math.log10(0.5)],
        "evidence__log10_residual_C": [-8.0, -8.0, -8.0],
    })
    assert admissible(features, CLASSES).tolist() == [[True, True, True], [False, False, True], [True, False, True]]
    assert admissible(features.drop(columns=["evidence__log10_residual_C"]), CLASSES).all()  # no evidence for C: nothing ruled out


def test_sets_hold_the_circuits_under_the_threshold_most_probable_first():
    probabilities = np.array([[0.1, 0.6, 0.3], [0.5, 0.45, 0.05], [0.2, 0.3, 0.5]])
    allowed = np.array([[True, True, True], [True, False, True], [True, True, True]])
    sets = circuit_sets(probabilities, allowed, Calibration(1.0, 0.75))
    assert set_members(sets, probabilities, CLASSES) == [["B", "C"], ["A"], ["C", "B"]]


def test_calibration_keeps_the_predicted_circuit_and_covers_the_level_out_of_fold():
    # An over-confident model of a known three-class problem: calibration softens it (T > 1), the argmax stays,
    # and the threshold's sets hold the true class of 90 % of the rows they were set on (up to ties and 1/(n+1)).
    rng = np.random.default_rng(0)
    truth = rng.dirichlet(np.ones(3), 3000)
    y = np.array([rng.choice(3, p=p) for p in truth])
    model = truth**4 / (truth**4).sum(axis=1, keepdims=True)
    allowed = np.ones_like(model, bool)
    fitted = calibrate(model, y, allowed, level=0.9)
    assert fitted.temperature > 2
    scaled = calibration.calibrated(model, fitted)
    assert (scaled.argmax(axis=1) == model.argmax(axis=1)).all()
    covered = circuit_sets(scaled, allowed, fitted)[np.arange(len(y)), y].mean()
    assert 0.9 <= covered <= 0.9 + 2 / len(y)


def test_the_residual_bound_is_0_03_unless_more_than_one_percent_of_true_circuits_would_be_ruled_out():
    good = pd.DataFrame({"evidence__log10_residual_A": np.full(200, -4.0), "evidence__log10_residual_B": np.full(200, 1.0)})
    assert calibration.residual_bound(good, ["A"] * 200) == calibration.MAX_RESIDUAL
    # Every true circuit's fit at relative residual 0.1 (one-start fits that miss): the bound rises to keep them.
    poor = good.assign(**{"evidence__log10_residual_A": np.full(200, -1.0)})
    assert math.isclose(calibration.residual_bound(poor, ["A"] * 200), 0.1)
    assert admissible(poor, CLASSES[:2], calibration.residual_bound(poor, ["A"] * 200))[:, 0].all()
    assert calibration.residual_bound(good.drop(columns=["evidence__log10_residual_A"]), ["A"] * 200) == math.inf


def test_a_classifier_stored_before_the_fold_ensemble_is_refused_with_what_to_do():
    """A data root's classifier from before the fold ensemble (one "model") is not silently applied with a
    calibration fitted to other models: predicting names the asset to materialize again."""
    from assets.eis.predict import predict_spectra

    old = {"model": object(), "model_id": "m-1", "classes": CLASSES, "feature_columns": [], "calibration": {"temperature": 1.0, "threshold": 0.5}}
    with pytest.raises(ValueError, match="m-1 was stored by an older version.*materialize eis_circuit_classifier again"):
        predict_spectra(pd.DataFrame(), np.zeros((0, 3)), {}, old, {}, 1)
