"""Predictions for unlabelled spectra with the stored feature settings and models.

The spectra go through the same validation and grid as the training set; features are
extracted with the stored `kind_to_fc_parameters` only (the training settings exactly).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from assets.eis import features, formats, models
from resources.datapaths import Rejection


def read_and_grid(folder: Path, unit: formats.FreqUnit, grid_rad_s: np.ndarray):
    """(spectra table on the grid (no arrays), Z on the grid, rejections) for a folder."""
    spectra, rejections = formats.read_unlabelled_folder(folder, unit) if folder.exists() else ([], [])
    table = formats.spectra_table(spectra)
    kept, z_on_grid = features.interpolate_table(table, grid_rad_s)
    outside = set(table["spectrum_id"]) - set(kept["spectrum_id"])
    for record in table[table["spectrum_id"].isin(outside)].itertuples(index=False):
        reason = (
            f"spectrum spans {record.omega_rad_s[0]:.4g}..{record.omega_rad_s[-1]:.4g} rad/s; expected it to cover "
            f"the model grid {grid_rad_s[0]:.4g}..{grid_rad_s[-1]:.4g} rad/s (no extrapolation)"
        )
        rejections.append(Rejection(record.source, None if pd.isna(record.row) else int(record.row), reason))
    return kept, z_on_grid, rejections


def predict_spectra(kept: pd.DataFrame, z_on_grid: np.ndarray, feature_bundle: dict, classifier: dict, regressors: dict, n_jobs: int) -> pd.DataFrame:
    """One row per spectrum: circuit, p_<class>, parameters (challenge format), model ids."""
    columns = ["spectrum_id", "source", "row", "predicted_circuit", "parameters", "classifier_model_id", "regressor_model_id"]
    classes = classifier["classes"]
    if kept.empty:
        return pd.DataFrame(columns=columns + [f"p_{c}" for c in classes])
    ids = kept["spectrum_id"].tolist()
    extracted = features.extract(ids, z_on_grid, n_jobs, kind_to_fc_parameters=feature_bundle["kind_to_fc_parameters"])
    x = extracted.reindex(columns=classifier["feature_columns"]).to_numpy(dtype=float)
    probabilities = classifier["model"].predict_proba(x)
    predicted = [classes[i] for i in probabilities.argmax(axis=1)]
    table = kept[["spectrum_id", "source", "row"]].copy()
    table["predicted_circuit"] = predicted
    table["parameters"] = [_parameters_text(regressors["regressors"].get(c), x[i : i + 1]) for i, c in enumerate(predicted)]
    table["classifier_model_id"] = classifier["model_id"]
    table["regressor_model_id"] = regressors["model_id"]
    for k, name in enumerate(classes):
        table[f"p_{name}"] = probabilities[:, k]
    return table


def _parameters_text(regressor: dict | None, x_row: np.ndarray) -> str:
    if regressor is None:
        return ""
    values = models.predict_parameters(regressor, x_row)[0]
    return formats.format_parameters(dict(zip(regressor["parameters"], values)))
