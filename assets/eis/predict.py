"""Predictions for unlabelled spectra with the stored feature settings and models.

The spectra go through the same validation and grid as the training set; features are
extracted with the stored `kind_to_fc_parameters` only (the training settings exactly).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from assets.eis import exports, features, models
from resources.datapaths import Rejection


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
    """One row per spectrum: id, source, row, circuit, p_<class>, one column per parameter (with unit),
    model ids; plus `parameters` (challenge-format text, for fitting starts; not exported). evidence:
    the spectra's circuit evidence (rows as kept), needed when the classifier uses it."""
    columns = ["spectrum_id", "source", "row", "origin", "predicted_circuit", "parameters", "classifier_model_id", "regressor_model_id"]
    classes = classifier["classes"]
    if kept.empty:
        return pd.DataFrame(columns=columns + [f"p_{c}" for c in classes])
    ids = kept["spectrum_id"].tolist()
    table_x = feature_table(ids, z_on_grid, feature_bundle["kind_to_fc_parameters"], n_jobs, evidence)
    x = table_x.reindex(columns=classifier["feature_columns"]).to_numpy(dtype=float)
    probabilities = classifier["model"].predict_proba(x)
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
    return pd.concat([table, exports.parameter_columns(predicted, values)], axis=1)


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
