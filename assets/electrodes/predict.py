"""Predictions of both models for the formulas a user lists in candidates.csv."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from assets.electrodes.formulas import FormulaError, discharged_formula
from resources.datapaths import Rejection

CANDIDATE_COLUMNS = ["id", "formula"]
OUTPUT_COLUMNS = [*CANDIDATE_COLUMNS, "formula_discharge", "error"]
EMBEDDED_CANDIDATES = Path(__file__).parent / "data" / "candidates.csv"


def read_candidates(path: Path) -> tuple[pd.DataFrame, list[Rejection]]:
    """(id, formula, formula_discharge, error) per row; a bad formula keeps its row with the error text."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (OSError, ValueError, pd.errors.ParserError) as error:
        return pd.DataFrame(columns=OUTPUT_COLUMNS), [Rejection(str(path), None, f"cannot read as CSV: {error}")]
    table.columns = [str(name).strip().lower() for name in table.columns]
    missing = [name for name in CANDIDATE_COLUMNS if name not in table.columns]
    if missing:
        reason = f"missing column(s) {missing}; expected a CSV with columns {CANDIDATE_COLUMNS}"
        return pd.DataFrame(columns=OUTPUT_COLUMNS), [Rejection(str(path), None, reason)]
    rows, rejections = [], []
    for line, (candidate_id, formula) in enumerate(zip(table["id"], table["formula"]), start=2):
        try:
            rows.append({"id": candidate_id, "formula": formula, "formula_discharge": discharged_formula(formula), "error": ""})
        except FormulaError as error:
            message = f"formula {formula!r} of candidate {candidate_id!r}: {error}"
            rows.append({"id": candidate_id, "formula": formula, "formula_discharge": "", "error": message})
            rejections.append(Rejection(str(path), line, message))
    return pd.DataFrame(rows, columns=OUTPUT_COLUMNS), rejections


def forest_predict(bundle: dict, features_table: pd.DataFrame) -> np.ndarray:
    from assets.electrodes.features import feature_matrix

    return bundle["model"].predict(feature_matrix(features_table, bundle["settings"]["feature_columns"]))


def network_predict(bundle: dict, features_table: pd.DataFrame) -> np.ndarray:
    from assets.electrodes.features import feature_matrix
    from assets.electrodes.network import predict_scaled

    settings = bundle["settings"]
    features = feature_matrix(features_table, settings["feature_columns"])
    return predict_scaled(bundle["model"], bundle["preprocess"], features) * settings["target_std"] + settings["target_mean"]


def predict_candidates(
    candidates: pd.DataFrame, features_table: pd.DataFrame, featurizer_failures: list[str], forest: dict, network: dict
) -> pd.DataFrame:
    """Candidates with both predictions and model ids; rows with an error keep NaN predictions.

    `features_table` and `featurizer_failures` hold one row per candidate without an error, in order.
    """
    result = candidates.copy()
    result["target"] = forest["settings"]["target"]
    valid = (result["error"] == "").to_numpy()
    result["featurizer_failures"] = ""
    result.loc[valid, "featurizer_failures"] = featurizer_failures
    for name, bundle, predict in (("forest", forest, forest_predict), ("network", network, network_predict)):
        values = np.full(len(result), np.nan)
        if valid.any():
            values[valid] = predict(bundle, features_table)
        result[f"{name}_prediction"] = values
        result[f"{name}_model_id"] = bundle["model_id"]
    return result
