"""Predictions for unlabelled spectra with the stored feature settings and models.

The spectra go through the same validation and grid as the training set; features are
extracted with the stored `kind_to_fc_parameters` only (the training settings exactly).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from assets.eis import calibration as calibrating
from assets.eis import exports, features, models
from resources.datapaths import Rejection

SET_COLUMNS = ["set90_circuits", "set90_size", "supported_circuit"]
MEMBER_COLUMNS = ["spectrum_id", "source", "row", "rank", "circuit", "probability", "relative_residual", "reproduces", "bic", "undetermined"]
SET_SEPARATOR = " | "


def grid_table(table: pd.DataFrame, grid_rad_s: np.ndarray):
    """(spectra on the grid (no arrays), Z on the grid, rejections of spectra not spanning it)."""
    kept, z_on_grid = features.interpolate_table(table, grid_rad_s)
    outside = set(table["spectrum_id"]) - set(kept["spectrum_id"])
    rejections = []
    for record in table[table["spectrum_id"].isin(outside)].itertuples(index=False):
        reason = (
            f"spectrum spans {record.omega_rad_s[0]:.4g}..{record.omega_rad_s[-1]:.4g} rad/s; expected it to cover "
            f"the model grid {grid_rad_s[0]:.4g}..{grid_rad_s[-1]:.4g} rad/s (no extrapolation)"
        )
        rejections.append(Rejection(record.source, None if pd.isna(record.row) else int(record.row), reason))
    return kept, z_on_grid, rejections


def feature_table(ids: list[str], z_on_grid: np.ndarray, kind_to_fc: dict, n_jobs: int, evidence: pd.DataFrame | None = None) -> pd.DataFrame:
    """tsfresh (the selected settings `kind_to_fc`), shape features and, when given, the circuit evidence (rows as ids)."""
    extracted = features.extract(ids, z_on_grid, n_jobs, kind_to_fc_parameters=kind_to_fc)
    parts = [extracted, features.shape_features(z_on_grid).set_index(extracted.index)]
    if evidence is not None:
        parts.append(evidence.set_index(extracted.index))
    return pd.concat(parts, axis=1)


def predict_spectra(
    kept: pd.DataFrame, z_on_grid: np.ndarray, feature_bundle: dict, classifier: dict, regressors: dict, n_jobs: int,
    evidence: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per spectrum: id, source, row, circuit, p_<class> (calibrated), the 90 % circuit set (most
    probable first, `SET_SEPARATOR` between circuits) and its size, one column per parameter (with unit),
    model ids; plus `parameters` (challenge-format text, for fitting starts; not exported). evidence:
    the spectra's circuit evidence (rows as kept), needed when the classifier uses it; without it no
    circuit is ruled out of a set."""
    if "models" not in classifier:  # stored before 2026-12-07: one refitted model, which its calibration does not describe
        raise ValueError(f"eis_circuit_classifier {classifier.get('model_id', '')} was stored by an older version (one model, not the "
                         "calibrated fold ensemble): materialize eis_circuit_classifier again")
    columns = ["spectrum_id", "source", "row", "origin", "predicted_circuit", "parameters", "classifier_model_id", "regressor_model_id"]
    classes = classifier["classes"]
    if kept.empty:
        return pd.DataFrame(columns=columns + [f"p_{c}" for c in classes] + SET_COLUMNS[:2])
    ids = kept["spectrum_id"].tolist()
    table_x = feature_table(ids, z_on_grid, feature_bundle["kind_to_fc_parameters"], n_jobs, evidence)
    x = table_x.reindex(columns=classifier["feature_columns"]).to_numpy(dtype=float)
    calibration = calibrating.Calibration(**classifier["calibration"])
    probabilities = calibrating.calibrated(calibrating.ensemble_probabilities(classifier["models"], x), calibration)
    sets = calibrating.circuit_sets(probabilities, calibrating.admissible(table_x, classes, calibration.max_residual), calibration)
    predicted = [classes[i] for i in probabilities.argmax(axis=1)]
    regressor_x = table_x.reindex(columns=regressors.get("feature_columns", classifier["feature_columns"])).to_numpy(dtype=float)
    values = [_parameters(regressors["regressors"].get(c), regressor_x[i : i + 1]) for i, c in enumerate(predicted)]
    table = kept[["spectrum_id", "source", "row", "origin"]].copy().reset_index(drop=True)
    table["predicted_circuit"] = predicted
    table["parameters"] = [_text(v) for v in values]
    table["classifier_model_id"] = classifier["model_id"]
    table["regressor_model_id"] = regressors["model_id"]
    for k, name in enumerate(classes):
        table[f"p_{name}"] = np.round(probabilities[:, k], 4)
    members = calibrating.set_members(sets, probabilities, classes)
    table["set90_circuits"] = [SET_SEPARATOR.join(m) for m in members]
    table["set90_size"] = [len(m) for m in members]
    return pd.concat([table, exports.parameter_columns(predicted, values)], axis=1)


def set_fits(predictions: pd.DataFrame, spectra: pd.DataFrame, random_starts: int, device="cpu") -> tuple[pd.DataFrame, list[str]]:
    """Every circuit of every spectrum's set (and its predicted circuit) fitted to the spectrum's measured points
    with the evidence fits' settings (one naive start, `random_starts` restarts where it does not reproduce).

    predictions: predict_spectra's table; spectra: rows with omega_rad_s, z_real, z_imag by spectrum_id.
    Returns (one row per set member, most probable first: MEMBER_COLUMNS, then per parameter its value and
    `_se` standard error with units; the simplest circuit each predicted circuit's fit supports)."""
    from assets.eis.fitting import FitSettings, fit_spectra
    from assets.eis.supported import supported_circuits

    settings = FitSettings(n_starts=1, random_starts=random_starts)
    raw = spectra.set_index("spectrum_id").loc[predictions["spectrum_id"]]
    omegas = [np.asarray(o) for o in raw["omega_rad_s"]]
    impedances = [np.asarray(a) + 1j * np.asarray(b) for a, b in zip(raw["z_real"], raw["z_imag"])]
    tasks = [(i, circuit) for i, (first, text) in enumerate(zip(predictions["predicted_circuit"], predictions["set90_circuits"]))
             for circuit in dict.fromkeys([first, *[c for c in str(text).split(SET_SEPARATOR) if c]])]
    fits = fit_spectra([omegas[i] for i, _ in tasks], [impedances[i] for i, _ in tasks], [c for _, c in tasks], [None] * len(tasks), settings, device)
    fit_of = {task: k for k, task in enumerate(tasks)}
    first_fits = fits.iloc[[fit_of[(i, c)] for i, c in enumerate(predictions["predicted_circuit"])]].reset_index(drop=True)
    supported = supported_circuits(omegas, impedances, first_fits, settings, device)["supported_circuit"].tolist() if len(first_fits) else []
    return _member_table(predictions, fits, fit_of), supported


def _member_table(predictions: pd.DataFrame, fits: pd.DataFrame, fit_of: dict) -> pd.DataFrame:
    from assets.eis.uncertainty import reasons_text

    rows, parameters, errors = [], [], []
    for i, record in enumerate(predictions.to_dict("records")):
        for rank, circuit in enumerate([c for c in str(record["set90_circuits"]).split(SET_SEPARATOR) if c], start=1):
            fit = fits.iloc[fit_of[(i, circuit)]]
            rows.append({"spectrum_id": record["spectrum_id"], "source": record["source"], "row": record["row"], "rank": rank, "circuit": circuit,
                         "probability": record[f"p_{circuit}"], "relative_residual": fit["relative_residual"],
                         "reproduces": fit["reproduces"], "bic": fit["bic"], "undetermined": reasons_text(fit["undetermined"])})
            parameters.append(fit["parameters"])
            errors.append(fit["standard_errors"])
    table = pd.DataFrame(rows, columns=MEMBER_COLUMNS)
    circuits = table["circuit"].tolist()
    return pd.concat([table, exports.parameter_columns(circuits, parameters), exports.parameter_columns(circuits, errors, suffix="_se")], axis=1)


def export_view(table: pd.DataFrame) -> pd.DataFrame:
    """The predictions as exported: without the packed parameter text."""
    return table.drop(columns=["parameters"], errors="ignore")


def _parameters(regressor: dict | None, x_row: np.ndarray) -> dict | None:
    if regressor is None:
        return None
    return dict(zip(regressor["parameters"], models.predict_parameters(regressor, x_row)[0].tolist()))


def _text(values: dict | None) -> str:
    from assets.eis.formats import format_parameters

    return format_parameters(values) if values else ""
