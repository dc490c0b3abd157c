"""Predictions of every model, with conformal intervals, for the formulas in candidates.csv.

candidates.csv: id, formula[, working_ion, spacegroup, type (intercalation | conversion)].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from assets.electrodes.intervals import calibrate, intervals, member_spread
from assets.electrodes.formulas import RANGE_PATTERN, FormulaError, clean_formula_text, parse_battery_formula, parse_composition
from resources.datapaths import Rejection

CANDIDATE_COLUMNS = ["id", "formula"]
OPTIONAL_COLUMNS = ["working_ion", "spacegroup", "type"]
OUTPUT_COLUMNS = [*CANDIDATE_COLUMNS, "working_ion", "spacegroup", "type", "formula_charge", "formula_discharge", "error"]
ION_ORDER = ("Li", "Na", "K", "Mg", "Ca", "Zn", "Al")


def candidate_battery(formula: str, working_ion: str = "", default_ion: str = ""):
    """A candidate's BatteryFormula: its range if it has one, else the formula as the discharged end.

    The working ion is the range's (which must agree with a given `working_ion`), else `working_ion`, else
    `default_ion` (the partition's), else the first of ION_ORDER the formula contains.
    """
    text = clean_formula_text(formula)
    match = RANGE_PATTERN.match(text)
    if match:
        return parse_battery_formula(text, working_ion or None)
    working_ion = working_ion or default_ion
    if not working_ion:
        present = {el.symbol for el in parse_composition(text).elements}
        working_ion = next((ion for ion in ION_ORDER if ion in present), "")
        if not working_ion:
            raise FormulaError(f"formula {text!r} contains none of the working ions {list(ION_ORDER)}; add a working_ion column")
    return parse_battery_formula(text, working_ion)
EMBEDDED_CANDIDATES = Path(__file__).parent / "data" / "candidates.csv"


def read_candidates(path: Path, working_ion: str = "") -> tuple[pd.DataFrame, list[Rejection]]:
    """OUTPUT_COLUMNS per row; a bad formula keeps its row with the error text.

    `working_ion` (the partition's ion, '' for all) is used for rows that give none.
    """
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (OSError, ValueError, pd.errors.ParserError) as error:
        return pd.DataFrame(columns=OUTPUT_COLUMNS), [Rejection(str(path), None, f"cannot read as CSV: {error}")]
    table.columns = [str(name).strip().lower() for name in table.columns]
    missing = [name for name in CANDIDATE_COLUMNS if name not in table.columns]
    if missing:
        reason = f"missing column(s) {missing}; expected a CSV with columns {CANDIDATE_COLUMNS}"
        return pd.DataFrame(columns=OUTPUT_COLUMNS), [Rejection(str(path), None, reason)]
    for name in OPTIONAL_COLUMNS:
        if name not in table.columns:
            table[name] = ""
    rows, rejections = [], []
    for line, row in enumerate(table[[*CANDIDATE_COLUMNS, *OPTIONAL_COLUMNS]].itertuples(index=False), start=2):
        candidate_id, formula, ion, spacegroup, kind = row
        entry = {"id": candidate_id, "formula": formula, "working_ion": ion.strip(), "spacegroup": spacegroup,
                 "type": kind.strip(), "formula_charge": "", "formula_discharge": "", "error": ""}
        try:
            battery = candidate_battery(formula, entry["working_ion"], working_ion)
            entry.update(working_ion=battery.working_ion, formula_charge=battery.charged, formula_discharge=battery.discharged)
        except FormulaError as error:
            entry["error"] = f"formula {formula!r} of candidate {candidate_id!r}: {error}"
            rejections.append(Rejection(str(path), line, entry["error"]))
        rows.append(entry)
    return pd.DataFrame(rows, columns=OUTPUT_COLUMNS), rejections


def model_predict(name: str, bundle: dict, features_table: pd.DataFrame) -> np.ndarray:
    """Predictions of one stored model bundle (any of MODEL_NAMES), clipped to its training-target range."""
    from assets.electrodes.features import feature_matrix

    settings = bundle["settings"]
    if settings.get("encodes_compositions"):
        from assets.electrodes.composition_model import with_compositions

        features_table = with_compositions(features_table)
    features = feature_matrix(features_table, settings["feature_columns"])
    if name != "network":
        return bundle["model"].predict(features)
    from assets.electrodes.network import predict_scaled

    values = predict_scaled(bundle["model"], bundle["preprocess"], features) * settings["target_std"] + settings["target_mean"]
    return np.clip(values, settings["target_min"], settings["target_max"])


# Averages of models' predictions, scored on the same out-of-fold rows as the models themselves.
ENSEMBLES = {"trees": ("forest", "boosting"), "ensemble": ("forest", "boosting", "network"),
             "chemistry": ("forest", "boosting", "composition")}
# The models whose disagreement (standard deviation, V) scales each row's conformal interval.
SPREAD_MEMBERS = ("forest", "boosting", "network", "composition")


def member_predictions(bundles: dict[str, dict], members) -> pd.DataFrame:
    """battery_id, subset, true and one prediction column per member (rows every member scored)."""
    merged = None
    for member in members:
        frame = bundles[member]["evaluation"][["battery_id", "subset", "true", "predicted"]].rename(
            columns={"predicted": member})
        merged = frame if merged is None else merged.merge(frame, on=["battery_id", "subset", "true"], how="inner")
    return merged


def ensemble_evaluations(bundles: dict[str, dict]) -> dict[str, pd.DataFrame]:
    """Evaluation frames of ENSEMBLES (mean prediction per row of their members' frames) whose members are given."""
    frames = {}
    for name, members in ENSEMBLES.items():
        if not all(m in bundles for m in members):
            continue
        merged = member_predictions(bundles, members)
        merged["predicted"] = merged[list(members)].mean(axis=1)
        frames[name] = merged[["battery_id", "subset", "true", "predicted"]]
    return frames


def evaluations_with_spread(bundles: dict[str, dict], chosen: str) -> pd.DataFrame:
    """The chosen model's evaluation rows (cv out of fold, test) with `spread` (V) of SPREAD_MEMBERS and `working_ion`."""
    from assets.electrodes.formulas import working_ion_from_battery_id

    evaluations = {name: b["evaluation"] for name, b in bundles.items()} | ensemble_evaluations(bundles)
    members = [m for m in SPREAD_MEMBERS if m in bundles]
    frame = evaluations[chosen][["battery_id", "subset", "true", "predicted"]].merge(
        member_predictions(bundles, members), on=["battery_id", "subset", "true"], how="inner")
    frame["spread"] = member_spread(frame[members])
    frame["working_ion"] = frame["battery_id"].map(working_ion_from_battery_id)
    return frame.drop(columns=members)


def calibrate_intervals(bundles: dict[str, dict], chosen: str) -> dict:
    """Conformal calibration (intervals.calibrate) on the chosen model's out-of-fold training rows only."""
    cv = evaluations_with_spread(bundles, chosen).query("subset == 'cv'")
    return calibrate(cv["true"], cv["predicted"], cv["spread"], cv["working_ion"])


def cv_maes(bundles: dict[str, dict]) -> dict[str, float]:
    """cv MAE of every model and ensemble (same rows, same folds)."""
    from assets.electrodes.evaluation import metrics_by_subset

    maes = {name: b["settings"]["metrics"].get("cv_mae", np.inf) for name, b in bundles.items()}
    maes.update({name: metrics_by_subset(e).get("cv_mae", np.inf) for name, e in ensemble_evaluations(bundles).items()})
    return maes


def best_model(bundles: dict[str, dict]) -> str:
    """The model or ensemble with the lowest cv MAE (the median baseline only when nothing else is given)."""
    scored = {name: mae for name, mae in cv_maes(bundles).items() if name != "median"}
    return min(scored, key=scored.get) if scored else "median"


def predict_candidates(
    candidates: pd.DataFrame, features_table: pd.DataFrame, featurizer_failures: list[str], bundles: dict[str, dict],
    calibration: dict,
) -> pd.DataFrame:
    """Candidates with every model's prediction and id, `prediction` from the best model by cv MAE, and its
    80 % and 95 % conformal interval (lower_80_V, upper_80_V, lower_95_V, upper_95_V; `calibration` from
    calibrate_intervals).

    `features_table` and `featurizer_failures` hold one row per candidate without an error, in order;
    rows with an error keep NaN predictions.
    """
    result = candidates.copy()
    first = next(iter(bundles.values()))
    result["target"] = first["settings"]["target"]
    valid = (result["error"] == "").to_numpy()
    result["featurizer_failures"] = ""
    result.loc[valid, "featurizer_failures"] = featurizer_failures
    chosen = best_model(bundles)
    formulas = result.loc[valid, ["formula_discharge", "formula_charge"]].reset_index(drop=True)
    features_table = pd.concat([features_table.reset_index(drop=True), formulas], axis=1)
    for name, bundle in bundles.items():
        values = np.full(len(result), np.nan)
        if valid.any():
            values[valid] = model_predict(name, bundle, features_table)
        result[f"{name}_prediction"] = values
    for name, members in ENSEMBLES.items():
        if all(m in bundles for m in members):
            result[f"{name}_prediction"] = result[[f"{m}_prediction" for m in members]].mean(axis=1, skipna=False)
    result.insert(result.columns.get_loc("error"), "prediction", result[f"{chosen}_prediction"])
    result.insert(result.columns.get_loc("error"), "model", chosen)
    members = [f"{m}_prediction" for m in SPREAD_MEMBERS if m in bundles]
    bounds = intervals(result["prediction"], member_spread(result[members]), result["working_ion"], calibration)
    for column in bounds:
        result.insert(result.columns.get_loc("error"), column, bounds[column].to_numpy())
    for name, bundle in bundles.items():
        result[f"{name}_model_id"] = bundle["model_id"]
    return result
