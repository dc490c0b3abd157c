"""A trained cycle-life model frozen for prediction: plain numbers in JSON, loaded without running code, applied
to one cell at a time without refitting anything.

Every life model the project can freeze is linear in standardised per-cell features (Severson et al.'s variance,
discharge and full models; least squares, ridge, elastic net or a constant on log10 life), so the frozen form is
    log10 life = intercept + sum_j weight_j * (x_j - offset_j) / scale_j
with its interval half widths (log10), the training domain and a card. A cell's features come from its own
cycles only, so its prediction does not depend on which other cells are uploaded with it.

Applicability domain (the cells the training data speak for), three checks:
- leverage: h = v^T (V^T V)^-1 v of the cell's standardised features v = [1, z] against the training design V,
  above h* = 3 (p + 1) / n (p features, n training cells; the usual warning leverage of a linear model's
  applicability domain, the "Williams plot" of QSAR practice): the cell lies where the fit extrapolates, alone or
  through an unusual combination of features (for one feature h = 1/n + (x - mean)^2 / sum (x_i - mean)^2);
- nominal capacity (discharge capacity of cycle 2) within the training range widened by NOMINAL_CAPACITY_MARGIN
  of its median: about the cell-to-cell capacity spread of one commercial cell type, so a different cell
  (capacity x 3) is out while a new batch of the same type is in;
- the discharge of the feature cycles spanning the Qd(V) grid (down to DISCHARGE_V_MIN_MAX or below, up to
  DISCHARGE_V_MAX_MIN or above), without which Q(V) is held flat beyond the measured range and the features mean
  something else.
A cell outside is still predicted but flagged with the reasons, and gets no interval.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from assets.cycling.intervals import interval_columns

FORMAT = "materials-platform/cycle-life-linear/1"
FREEZABLE_MODELS = ("variance", "discharge", "full")  # lifemodel feature sets computed from one cell alone
MODEL_FILE = "model.json"
CARD_FILE = "card.json"
NOMINAL_CAPACITY_FEATURE = "qd_cycle2_ah"
NOMINAL_CAPACITY_MARGIN = 0.05
DISCHARGE_V_MIN_MAX = 2.05  # V: the discharge must reach the Qd(V) grid's 2.0 V end (within 50 mV)
DISCHARGE_V_MAX_MIN = 3.3  # V: and start on the LFP plateau or above (the grid starts at 3.6 V at rest)
SHIPPED_DIR = Path(__file__).parent / "shipped"
DOMAIN_CHECKS = (f"leverage of the model's standardised features <= 3 (p + 1) / n of its training cells; nominal "
                 f"capacity (Qd of cycle 2) within the training range +- {NOMINAL_CAPACITY_MARGIN:.0%} of its median; "
                 f"discharge of the feature cycles reaching {DISCHARGE_V_MIN_MAX} V or below and starting at "
                 f"{DISCHARGE_V_MAX_MIN} V or above (Qd(V) grid 3.6 V to 2.0 V); outside: predicted, flagged, no interval")


@dataclass(frozen=True)
class FrozenLifeModel:
    model_id: str
    name: str  # the feature set: variance, discharge, full, constant
    method: str
    features: list[str]
    offsets: list[float]
    scales: list[float]
    weights: list[float]
    intercept: float
    half_widths_log10: dict[str, float]  # level (percent, as text) -> half width
    batch_tau_log10: float
    domain: dict  # nominal_capacity_ah [low, high], leverage_max, design_gram_inverse ((p+1) x (p+1))
    feature_cycles: list[int] = field(default_factory=lambda: [10, 100])
    card: dict = field(default_factory=dict)

    def log10_life(self, x: np.ndarray) -> np.ndarray:
        """log10 cycle life of rows of x (columns in `features` order)."""
        standardised = (np.asarray(x, float) - np.asarray(self.offsets)) / np.asarray(self.scales)
        return self.intercept + standardised @ np.asarray(self.weights, float)


def linear_terms(model, n_features: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(offsets, scales, weights, intercept) of a fitted life regressor of lifemodel.fit_life_regressor: a
    DummyRegressor (constant) or a pipeline StandardScaler -> linear model."""
    from sklearn.dummy import DummyRegressor

    if isinstance(model, DummyRegressor):
        return np.zeros(n_features), np.ones(n_features), np.zeros(n_features), float(np.ravel(model.constant_)[0])
    scaler, linear = model[0], model[-1]
    return (np.asarray(scaler.mean_, float), np.asarray(scaler.scale_, float), np.ravel(linear.coef_).astype(float),
            float(np.ravel(linear.intercept_)[0]))


def leverage(gram_inverse: np.ndarray, standardised: np.ndarray) -> np.ndarray:
    """h = v^T G v for each row z of `standardised` with v = [1, z] (G: the inverse of the training V^T V)."""
    rows = np.c_[np.ones(len(standardised)), np.asarray(standardised, float)]
    return np.einsum("ij,jk,ik->i", rows, np.asarray(gram_inverse, float), rows)


def domain_of(standardised_train: np.ndarray, capacity_ah: np.ndarray) -> dict:
    """The domain of the module docstring from the training cells' standardised features and nominal capacity."""
    design = np.c_[np.ones(len(standardised_train)), standardised_train]
    median = float(np.median(capacity_ah))
    return {
        "nominal_capacity_ah": [float(np.min(capacity_ah)) - NOMINAL_CAPACITY_MARGIN * median,
                                float(np.max(capacity_ah)) + NOMINAL_CAPACITY_MARGIN * median],
        "leverage_max": 3 * design.shape[1] / len(design),
        "design_gram_inverse": np.linalg.pinv(design.T @ design).tolist(),
    }


def freeze(model, name: str, method: str, train_features: pd.DataFrame, train_capacity_ah: np.ndarray,
           half_widths_log10: dict[int, float], batch_tau_log10: float, model_id: str,
           feature_cycles: tuple[int, int], card: dict) -> FrozenLifeModel:
    """A fitted regressor and its calibration as a FrozenLifeModel. `train_features` are the model's own
    columns for its training cells; `train_capacity_ah` their nominal capacity (discharge capacity of cycle 2)."""
    offsets, scales, weights, intercept = linear_terms(model, train_features.shape[1])
    standardised = (train_features.to_numpy(float) - offsets) / scales
    return FrozenLifeModel(
        model_id=model_id, name=name, method=method, features=list(train_features.columns),
        offsets=offsets.tolist(), scales=scales.tolist(), weights=weights.tolist(), intercept=intercept,
        half_widths_log10={str(level): float(h) for level, h in half_widths_log10.items()},
        batch_tau_log10=float(batch_tau_log10), domain=domain_of(standardised, np.asarray(train_capacity_ah, float)),
        feature_cycles=[int(c) for c in feature_cycles], card=card)


def domain_reasons(model: FrozenLifeModel, features: pd.Series, window: pd.Series | None) -> list[str]:
    """Why one cell lies outside the model's domain (empty: inside)."""
    reasons = []
    z = (features.reindex(model.features).to_numpy(float) - np.asarray(model.offsets)) / np.asarray(model.scales)
    h = float(leverage(model.domain["design_gram_inverse"], z[None, :])[0])
    if not h <= model.domain["leverage_max"]:
        reasons.append(f"leverage {h:.3g} above {model.domain['leverage_max']:.3g} (features outside the training "
                       f"cells' range or combination)")
    low, high = model.domain["nominal_capacity_ah"]
    capacity = float(features.get(NOMINAL_CAPACITY_FEATURE, np.nan))
    if not low <= capacity <= high:
        reasons.append(f"nominal capacity {capacity:.4g} Ah outside {low:.4g}..{high:.4g} Ah")
    v_min = float(window.get("discharge_v_min", np.nan)) if window is not None else np.nan
    v_max = float(window.get("discharge_v_max", np.nan)) if window is not None else np.nan
    if not (np.isfinite(v_min) and v_min <= DISCHARGE_V_MIN_MAX):
        reasons.append(f"discharge of cycles {model.feature_cycles} ends at {v_min:.3g} V, above {DISCHARGE_V_MIN_MAX} V")
    if not (np.isfinite(v_max) and v_max >= DISCHARGE_V_MAX_MIN):
        reasons.append(f"discharge of cycles {model.feature_cycles} starts at {v_max:.3g} V, below {DISCHARGE_V_MAX_MIN} V")
    return reasons


def predict(model: FrozenLifeModel, features: pd.DataFrame, windows: pd.DataFrame) -> pd.DataFrame:
    """One row per cell of `features` (index cell_key): predicted_cycle_life, the interval columns (NaN outside
    the domain), in_domain, domain_reason, model_id, model_name. Each row uses only its own cell's values."""
    cells = features.index
    x = features.reindex(columns=model.features).to_numpy(float)
    predicted = model.log10_life(x)
    reasons = ["; ".join(domain_reasons(model, features.loc[cell],
                                        windows.loc[cell] if cell in windows.index else None)) for cell in cells]
    in_domain = np.array([not r for r in reasons])
    intervals = interval_columns(predicted, {int(k): v for k, v in model.half_widths_log10.items()})
    intervals.loc[~in_domain, :] = np.nan
    return pd.concat([
        pd.DataFrame({"cell_key": cells.astype(str), "predicted_cycle_life": 10**predicted}),
        intervals, pd.DataFrame({"in_domain": in_domain, "domain_reason": reasons,
                                 "model_id": model.model_id, "model_name": model.name}),
    ], axis=1)


def training_digest(cells: pd.DataFrame, features: pd.DataFrame) -> str:
    """sha256 of the training cells' keys, lives and model features (what the fit saw), rounded to 12 digits."""
    table = features.loc[cells["cell_key"]].round(12).assign(cycle_life=cells["cycle_life"].to_numpy())
    return hashlib.sha256(table.sort_index().to_csv().encode()).hexdigest()


def save(model: FrozenLifeModel, folder: Path) -> Path:
    """model.json and card.json in `folder`, each written to a temporary name and renamed into place."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    content = asdict(model)
    card = content.pop("card")
    for name, value in ((MODEL_FILE, {"format": FORMAT, **content}), (CARD_FILE, card)):
        temporary = folder / f".{name}.tmp"
        temporary.write_text(json.dumps(value, indent=1, sort_keys=True) + "\n")
        os.replace(temporary, folder / name)
    return folder


def load(folder: Path) -> FrozenLifeModel:
    """A FrozenLifeModel from model.json (+ card.json): JSON numbers only, nothing executed."""
    folder = Path(folder)
    content = json.loads((folder / MODEL_FILE).read_text())
    if content.pop("format", None) != FORMAT:
        raise ValueError(f"{folder / MODEL_FILE}: not a frozen cycle-life model (expected format {FORMAT})")
    card_path = folder / CARD_FILE
    card = json.loads(card_path.read_text()) if card_path.is_file() else {}
    return FrozenLifeModel(**content, card=card)


# ---- the model registry: data/storage/cycling_life_models/<model_id>/ and current.json naming the promoted one ----

REGISTRY = "cycling_life_models"
CURRENT_FILE = "current.json"


def registry_folder(storage: Path, model_id: str) -> Path:
    return Path(storage) / REGISTRY / model_id


def promote(storage: Path, model_id: str) -> Path:
    """Name `model_id` the current model (the one predictions use by default), atomically."""
    path = Path(storage) / REGISTRY / CURRENT_FILE
    temporary = path.with_name(f".{CURRENT_FILE}.tmp")
    temporary.write_text(json.dumps({"model_id": model_id}) + "\n")
    os.replace(temporary, path)
    return path


def resolve(storage: Path, choice: str) -> tuple[Path, str]:
    """(folder, how it was chosen) for `choice`: "current" (the promoted trained model, else the shipped one),
    "shipped", or a folder holding model.json."""
    if choice == "shipped":
        return SHIPPED_DIR, "shipped"
    if choice == "current":
        current = Path(storage) / REGISTRY / CURRENT_FILE
        if current.is_file():
            model_id = json.loads(current.read_text())["model_id"]
            return registry_folder(storage, model_id), "current (trained here)"
        return SHIPPED_DIR, "shipped (no trained model promoted)"
    return Path(choice), "folder"


def with_frozen_predictions(rows: pd.DataFrame, model: FrozenLifeModel, features: pd.DataFrame,
                            windows: pd.DataFrame) -> pd.DataFrame:
    """`rows` (one per cell_key) with predicted_cycle_life and the intervals replaced by the frozen model's,
    and in_domain / domain_reason added: training cells then carry exactly what the prediction asset gives them."""
    served = predict(model, features.loc[rows["cell_key"]], windows).drop(columns=["model_id", "model_name"])
    kept = rows.drop(columns=[c for c in served.columns if c != "cell_key" and c in rows.columns])
    return kept.merge(served, on="cell_key", how="left", validate="one_to_one")


SHOWN_COLUMNS = ["cell_key", "n_cycles", "cycle_life", "predicted_cycle_life", "lower80_cycles", "upper80_cycles",
                 "lower95_cycles", "upper95_cycles", "in_domain", "domain_reason"]


def prediction_table(model: FrozenLifeModel, unified: pd.DataFrame, features: pd.DataFrame,
                     windows: pd.DataFrame) -> pd.DataFrame:
    """Every cell of the unified table: its source, cycle count, known life (NaN when unknown) and the frozen
    model's prediction; a cell without the model's features (fewer cycles than the feature cycles, or a cycle
    without a discharge) is listed with the reason and no prediction."""
    cells = unified.groupby("cell_key").agg(source=("source", "first"), n_cycles=("cycle_number", "nunique"),
                                            last_cycle=("cycle_number", "max"), cycle_life=("cycle_life", "first"))
    features = features.reindex(cells.index)
    ready = features[model.features].notna().all(axis=1)
    served = predict(model, features.loc[ready], windows) if ready.any() else pd.DataFrame(columns=["cell_key"])
    table = cells.reset_index().merge(served, on="cell_key", how="left")
    missing = ~table["cell_key"].isin(served["cell_key"])
    late = max(model.feature_cycles)
    table.loc[missing, "in_domain"] = False
    table.loc[missing, "domain_reason"] = [
        f"not predicted: too short ({n} cycles, last {last}; the features need cycles {model.feature_cycles})"
        if last < late else f"not predicted: no {', '.join(c for c in model.features if pd.isna(features.loc[cell, c]))}"
        for cell, n, last in table.loc[missing, ["cell_key", "n_cycles", "last_cycle"]].itertuples(index=False)]
    table["model_id"], table["model_name"] = model.model_id, model.name
    table["in_domain"] = table["in_domain"].astype(bool)
    return table.drop(columns="last_cycle")
