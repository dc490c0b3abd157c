"""The fit table of the eis_circuit_fits asset: which start and which candidate circuit a fit keeps, and the
export with units, standard errors and determined flags."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from assets.eis.circuits import CIRCUITS
from assets.eis.exports import column_name
from assets.eis.fitting import (
    FIT_COLUMNS,
    FitSettings,
    export_view,
    log10_parameter_error,
    named_values,
    parameters_or_none,
    top_candidates,
    undetermined_names,
)
from assets.eis.selection import fit_with_selection
from tests.eis.test_fitting import WELL_IDENTIFIED, cpu_recording, mixed_spectra

TRUE_CIRCUITS = ["L-R-RCPE", "RCPE-RCPE-RCPE", "Rs_Ws"]
# a: one candidate, started at the truth; b: the classifier's first two candidates are wrong, the third is the
# truth; c: started a thousand times off the truth
CANDIDATES = [["L-R-RCPE"], ["RCPE-RCPE", "Rs_Ws", "RCPE-RCPE-RCPE"], ["Rs_Ws", "RCPE-RCPE"]]
INITIAL = [WELL_IDENTIFIED["L-R-RCPE"], None, {name: value * 1e3 for name, value in WELL_IDENTIFIED["Rs_Ws"].items()}]
# three iterations: enough from the truth, too few from a start a thousand times off
SHORT = FitSettings(random_starts=0, max_iterations=3)


def spectra_table() -> pd.DataFrame:
    omegas, impedances = mixed_spectra(TRUE_CIRCUITS, np.random.default_rng(7))
    return pd.DataFrame({"spectrum_id": ["a", "b", "c"], "source": "cells.csv", "row": [2, 3, 5], "origin": "prediction",
                         "omega_rad_s": omegas, "z_real": [z.real for z in impedances], "z_imag": [z.imag for z in impedances]})


@pytest.fixture  # per test (1 s): a mutation run then ties every test to the functions the fixture calls
def fits() -> pd.DataFrame:
    return fit_with_selection(spectra_table(), CANDIDATES, INITIAL, SHORT, "bic")


def test_each_spectrum_keeps_the_better_start_and_the_candidate_of_lowest_criterion(fits):
    assert list(fits.columns) == FIT_COLUMNS
    assert fits[["spectrum_id", "source", "row", "origin"]].to_dict("list") == {
        "spectrum_id": ["a", "b", "c"], "source": ["cells.csv"] * 3, "row": [2, 3, 5], "origin": ["prediction"] * 3}
    assert fits["classifier_circuit"].tolist() == ["L-R-RCPE", "RCPE-RCPE", "Rs_Ws"]
    assert fits["circuit"].tolist() == TRUE_CIRCUITS
    assert fits["selected_by"].tolist() == ["classifier", "bic", "classifier"]
    assert fits["start"].tolist() == ["initial", "naive", "naive"]
    # the kept start is the one of lower residual, and the columns of each start report that start alone
    a, c = fits.iloc[0], fits.iloc[2]
    assert a["relative_residual"] == a["initial_relative_residual"] < 0.01 < a["naive_relative_residual"]
    assert c["relative_residual"] == c["naive_relative_residual"] < 1.0 < c["initial_relative_residual"]
    assert c["parameters"] == c["naive_parameters"] and a["parameters"] != a["naive_parameters"]
    assert fits["iterations"].tolist() == [3, 3, 3] and fits["initial_iterations"].tolist() == [3, 3, 3]
    assert fits["naive_iterations"].tolist() == [3, 3, 3] and fits["naive_reproduces"].tolist() == [False, False, False]
    assert fits["initial_reproduces"].tolist() == [True, False, False]
    # b: the truth fits far better than the classifier's circuit, which is what both its starts report
    b = fits.iloc[1]
    assert b["relative_residual"] < 0.01 < b["initial_relative_residual"] == b["naive_relative_residual"]
    assert fits["initial_parameters"].tolist()[1] == "" and parameters_or_none(fits["initial_parameters"][2], "Rs_Ws") == INITIAL[2]


def test_the_fit_table_holds_each_circuits_parameters_errors_and_flags(fits):
    for circuit, text, errors in zip(fits["circuit"], fits["parameters"], fits["standard_errors"]):
        values, se = parameters_or_none(text, circuit), named_values(errors)
        assert list(values) == list(se) == list(CIRCUITS[circuit].parameters)
        assert all(error >= 0 for error in se.values())
    truth = [WELL_IDENTIFIED[name] for name in TRUE_CIRCUITS]
    a_values = parameters_or_none(fits["parameters"][0], "L-R-RCPE")
    assert all(math.isclose(a_values[p], truth[0][p], rel_tol=0.05) for p in ("R1", "R2"))
    # c stopped far from the truth after three iterations: it neither reproduces the spectrum nor determines W1_T
    assert fits["reproduces"].tolist() == [True, True, False] and fits["determined"].tolist() == [True, True, False]
    assert undetermined_names(fits["undetermined"][2]) == {"W1_T"} and fits["undetermined"][0] == ""
    assert fits["supported_circuit"].tolist() == TRUE_CIRCUITS
    assert fits["supported_parameters"].tolist() == fits["parameters"].tolist()
    assert np.allclose(fits["supported_relative_residual"], fits["relative_residual"])
    assert (fits["max_abs_correlation"].between(0, 1)).all() and all("~" in pair for pair in fits["correlated_pair"])
    n_params = np.array([len(CIRCUITS[c].parameters) for c in fits["circuit"]])
    np.testing.assert_allclose(fits["bic"] - fits["aic"], n_params * (np.log(2 * 60) - 2))  # 60 points each
    assert fits["supported_bic"].tolist() == fits["bic"].tolist()  # each fit supports itself
    assert fits["supported_standard_errors"].tolist() == fits["standard_errors"].tolist()
    assert fits["supported_undetermined"].tolist() == fits["undetermined"].tolist()


def test_no_spectra_give_an_empty_fit_table():
    empty = spectra_table().iloc[:0]
    fitted = fit_with_selection(empty, [], [], SHORT, "bic")
    assert list(fitted.columns) == FIT_COLUMNS and fitted.empty


def test_every_fit_runs_on_the_device_asked_for(monkeypatch):
    from assets.eis import fitting

    calls = []
    monkeypatch.setattr(fitting, "fit_spectra", cpu_recording(fitting.fit_spectra, calls))
    fit_with_selection(spectra_table(), CANDIDATES, INITIAL, SHORT, "bic", device="cuda:1")
    assert calls and {device for _, device in calls} == {"cuda:1"}  # classifier's start, naive start, each other candidate, reductions


def test_aic_selects_among_the_candidates_when_asked():
    table = spectra_table().iloc[[1]]
    fitted = fit_with_selection(table, [["RCPE-RCPE", "RCPE-RCPE-RCPE"]], [None], SHORT, "aic")
    assert fitted["circuit"].tolist() == ["RCPE-RCPE-RCPE"] and fitted["selected_by"].tolist() == ["aic"]
    assert fitted["spectrum_id"].tolist() == ["b"]


def export_row(circuit: str, parameters: str, errors: str, undetermined: str, supported: str, supported_parameters: str,
               supported_errors: str, residual: float) -> dict:
    row = dict.fromkeys(FIT_COLUMNS, "")
    row.update(circuit=circuit, parameters=parameters, standard_errors=errors, undetermined=undetermined,
               supported_circuit=supported, supported_parameters=supported_parameters,
               supported_standard_errors=supported_errors, supported_undetermined="", relative_residual=residual,
               initial_relative_residual=residual, naive_relative_residual=float("inf"),
               supported_relative_residual=residual, max_abs_correlation=0.987654, aic=-12.3456, bic=-10.0049,
               supported_bic=float("nan"))
    return row


def test_export_has_each_value_in_its_unit_with_its_error_and_determined_flag():
    fits = pd.DataFrame([
        export_row("RCPE-RCPE", "R1: 1.234567, CPE1_C: 0.001, CPE1_t: 0.9, R2: 2.0, CPE2_C: 0.01, CPE2_t: 0.7",
                   "R1: 0.0123456, CPE1_C: 1e-05, CPE1_t: 0.01, R2: 9.0, CPE2_C: 0.002, CPE2_t: 0.05",
                   "R2: se 450% of value", "RCPE", "R1: 1.3, CPE1_C: 0.001, CPE1_t: 0.9",
                   "R1: 0.01, CPE1_C: 1e-05, CPE1_t: 0.01", 0.00123456),
        export_row("Rs_Ws", "R1: 0.5, W1_R: 2.0, W1_T: 1.0, W1_p: 0.45", "R1: 0.001, W1_R: 0.01, W1_T: 0.02, W1_p: 0.003",
                   "", "Rs_Ws", "R1: 0.5, W1_R: 2.0, W1_T: 1.0, W1_p: 0.45", "R1: 0.001, W1_R: 0.01, W1_T: 0.02, W1_p: 0.003",
                   0.5),
    ])
    view = export_view(fits)
    packed = {"initial_parameters", "parameters", "naive_parameters", "standard_errors", "supported_parameters",
              "supported_standard_errors"}
    assert not packed & set(view.columns) and "index" not in view.columns
    r1, w1_t = column_name("R1", "resistance"), column_name("W1_T", "warburg_time")
    assert (r1, w1_t) == ("R1_ohm", "W1_T_s")
    assert view[r1].tolist() == [1.235, 0.5] and view[f"{r1}_se"].tolist() == [0.01235, 0.001]
    assert math.isnan(view[w1_t][0]) and view[w1_t][1] == 1.0 and view[f"{w1_t}_se"][1] == 0.02
    assert view["R2_determined"][0] is False and view["R1_determined"][0] is True and view["W1_T_determined"][1] is True
    assert pd.isna(view["W1_T_determined"][0])
    # the supported circuit RCPE keeps R1 and the first CPE, and no supported circuit has R2
    assert view[f"supported_{r1}"].tolist() == [1.3, 0.5] and view[f"supported_{r1}_se"][0] == 0.01
    assert view["supported_CPE1_t_determined"][0] is True and pd.isna(view["supported_CPE1_t_determined"][1])
    assert not {"supported_R2_determined", "supported_R2_ohm", "supported_R2_ohm_se"} & set(view.columns)
    assert view["supported_W1_R_determined"][1] is True and pd.isna(view[f"supported_{w1_t}"][0])
    assert view["relative_residual"].tolist() == [0.001235, 0.5] and view["max_abs_correlation"][0] == 0.9877
    assert view["naive_relative_residual"][0] == float("inf") and view["aic"][0] == -12.35 and view["bic"][0] == -10.0
    assert math.isnan(view["supported_bic"][0]) and len(view) == 2


def test_candidates_are_the_first_then_the_most_probable_others():
    probabilities = pd.DataFrame({"p_A": [0.1, 0.6], "p_B": [0.5, 0.3], "p_C": [0.4, 0.1]})
    assert top_candidates(probabilities, ["C", "C"], 2) == [["C", "B"], ["C", "A"]]
    assert top_candidates(probabilities, ["A", "B"], 3) == [["A", "B", "C"], ["B", "A", "C"]]
    assert top_candidates(probabilities, ["B", "A"], 1) == [["B"], ["A"]]


def test_parameter_texts_are_read_back_or_refused():
    assert parameters_or_none("R1: 0.5, W1_R: 2.0, W1_T: 1e-3, W1_p: 0.45", "Rs_Ws") == {
        "R1": 0.5, "W1_R": 2.0, "W1_T": 1e-3, "W1_p": 0.45}
    assert parameters_or_none("R1: 0.5, W1_R: 2.0", "Rs_Ws") is None  # not this circuit's names
    assert parameters_or_none("", "Rs_Ws") is None and parameters_or_none("  ", "Rs_Ws") is None
    assert parameters_or_none(float("nan"), "Rs_Ws") is None
    assert named_values("R1: 1.3, C1: inf,") == {"R1": 1.3, "C1": float("inf")} and named_values(float("nan")) == {}
    assert named_values(" X : -2e-3 ") == {"X": -0.002}
    assert undetermined_names("L1: at a bound; R3: se 240% of value") == {"L1", "R3"}
    assert undetermined_names("") == set() and undetermined_names(float("nan")) == set()


def test_log10_parameter_error_is_the_median_over_a_spectrums_parameters():
    truth = '{"R1": 1.0, "W1_R": 2.0, "W1_T": 0.5, "W1_p": 0.4}'
    errors = log10_parameter_error(
        pd.Series(["R1: 10.0, W1_R: 20.0, W1_T: 0.5, W1_p: 0.4", "R1: 100.0, W1_R: 0.2, W1_T: 0.005, W1_p: 0.4", ""]),
        pd.Series([truth] * 3), pd.Series(["Rs_Ws"] * 3))
    np.testing.assert_allclose(errors[:2], [0.5, 1.5])  # median of (1, 1, 0, 0), of (2, 1, 2, 0)
    assert math.isnan(errors[2])
