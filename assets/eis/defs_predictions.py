"""Dagster wiring of the eis predictions and circuit fits (science in predict.py, fitting.py, selection.py)."""

import time
from typing import Literal

import dagster as dg
import numpy as np
import pandas as pd

from assets.eis.wiring import (
    PIPELINE,
    TSFRESH_WORKERS,
    ConventionsConfig,
    evidence_of,
    unlabelled_spectra,
)
from resources.compute import ComputeResource
from resources.datapaths import (
    Rejection,
    relative_to_root,
    write_export_csv,
    write_quarantine,
)
from resources.plots import round_sig, table_markdown
from resources.quarantine import report_rejections

# ---- 7. predictions ------------------------------------------------------------------------


class PredictionsConfig(ConventionsConfig):
    # Fit every circuit of each spectrum's 90 % set (and its predicted circuit, for the supported circuit) with the
    # evidence fits' settings -> exports/eis_prediction_sets.csv; off: the sets without their fits.
    fit_set_members: bool = True


SETS_EXPORT_NAME = "eis_prediction_sets.csv"


@dg.asset(group_name=PIPELINE)
def eis_predictions(
    context: dg.AssetExecutionContext,
    config: PredictionsConfig,
    compute: ComputeResource,
    eis_features: dict,
    eis_circuit_classifier: dict,
    eis_parameter_regressors: dict,
) -> pd.DataFrame:
    """Circuit, class probabilities and parameters (one column each, with units) for the user's
    unlabelled files (raw/eis/unlabelled/, and generic tables or instrument files anywhere under
    raw/eis/), or the embedded synthetic examples when the user has none -> exports/eis_predictions.csv."""
    from assets.eis import predict

    table, rejections, files, examples = unlabelled_spectra(config.conventions())
    kept, z_on_grid, outside = predict.grid_table(table, eis_features["grid_rad_s"])
    rejections = rejections + ([] if examples else outside)
    summary = None
    if files:
        accepted = {str(path): 0 for path in files}
        for source in kept["source"]:
            accepted[source] = accepted.get(source, 0) + 1
        expected = {r.source: 1 for r in rejections if r.row is None}
        summary = report_rejections(context.log, PIPELINE, rejections, accepted, expected)
    evidence = evidence_of(kept["spectrum_id"].tolist(), table, compute, eis_features.get("evidence_random_starts", 0)) if eis_features.get("circuit_evidence") and len(kept) else None
    predictions = predict.predict_spectra(kept, z_on_grid, eis_features, eis_circuit_classifier, eis_parameter_regressors, TSFRESH_WORKERS, evidence)
    sets_metadata = {}
    if config.fit_set_members and len(predictions):
        members, predictions["supported_circuit"] = predict.set_fits(predictions, table, eis_features.get("evidence_random_starts", 0), compute.torch_device())
        sets_path = write_export_csv(members, SETS_EXPORT_NAME)
        sets_metadata = {"set_members_export": dg.MetadataValue.path(str(sets_path)), "n_set_members_fitted": len(members)}
    path = write_export_csv(predict.export_view(predictions), "eis_predictions.csv")
    context.log.info(f"eis: {len(predictions)} spectra predicted ({'embedded synthetic examples' if examples else f'{len(files)} user files'}) -> {relative_to_root(path)}")
    context.add_output_metadata(
        {
            **({k: v for k, v in summary.metadata().items() if k != "rejected_share"} if summary else {}),
            "n_predicted": len(predictions),
            "n_rejected": len(rejections),
            "used_synthetic_examples": examples,
            "export": dg.MetadataValue.path(str(path)),
            "classifier_model_id": eis_circuit_classifier["model_id"],
            "regressor_model_id": eis_parameter_regressors["model_id"],
            **sets_metadata,
            **_set_size_metadata(predictions["set90_size"].to_numpy(int)),
            "predictions": dg.MetadataValue.md(table_markdown(predict.export_view(predictions).drop(columns=[c for c in predictions.columns if c.startswith("p_") or c.endswith("model_id")]).head(10))),
        }
    )
    return predictions


def _set_size_metadata(sizes: np.ndarray) -> dict:
    """How many spectra got a 90 % circuit set of each size (json and a bar chart) and the mean size."""
    from assets.eis.calibration import size_counts
    from assets.eis.report import set_size_markdown

    if not len(sizes):
        return {}
    counts = size_counts(sizes)
    return {
        "set90_mean_size": round_sig(float(sizes.mean())),
        "set90_size_counts": dg.MetadataValue.json(counts),
        "set90_sizes": dg.MetadataValue.md(set_size_markdown(counts, "90 % circuit sets of the predicted spectra")),
    }


# ---- batched circuit fitting -------------------------------------------------------


FITS_EXPORT_NAME = "eis_circuit_fits.csv"


class CircuitFitsConfig(ConventionsConfig):
    optimizer: Literal["lm", "adam", "lbfgs"] = "lm"  # batched Levenberg-Marquardt, or Adam / L-BFGS
    weighting: Literal["modulus", "unit"] = "modulus"  # residual weight 1/|Z| or 1
    max_iterations: int = 100  # LM: up to ~50 needed; Adam wants ~1000+
    learning_rate: float = 0.05  # Adam step size, in the unbounded coordinates
    converged_residual: float = 0.03  # ||Z_fit - Z|| / ||Z|| at most this: the fit reproduces the spectrum
    dtype: Literal["float64", "float32"] = "float64"
    top_k: int = 1  # > 1: also fit the next most probable circuits, keep the lowest `criterion`
    criterion: Literal["aic", "bic"] = "bic"
    labelled_split: Literal["none", "test", "all"] = "none"  # also fit labelled spectra of this split (their true circuit)
    plot_spectra: int = 4

    def settings(self):
        from assets.eis.fitting import FitSettings

        return FitSettings(
            optimizer=self.optimizer, weighting=self.weighting, max_iterations=self.max_iterations,
            learning_rate=self.learning_rate, converged_residual=self.converged_residual, dtype=self.dtype,
        )


def _prediction_tasks(config: CircuitFitsConfig, predictions: pd.DataFrame):
    """(spectra rows, candidates, starts, rejections) for the predicted spectra, re-read from their files."""
    from assets.eis import fitting

    table, _, _, _ = unlabelled_spectra(config.conventions())
    table = table.set_index("spectrum_id")
    present = predictions["spectrum_id"].isin(table.index)
    rejections = [
        Rejection(row.source, None if pd.isna(row.row) else int(row.row), "predicted spectrum no longer readable; expected the file eis_predictions read")
        for row in predictions[~present].itertuples()
        if row.origin == "user"
    ]
    predictions = predictions[present].reset_index(drop=True)
    rows = table.loc[predictions["spectrum_id"], ["omega_rad_s", "z_real", "z_imag"]].reset_index()
    rows[["source", "row"]] = predictions[["source", "row"]]
    rows["origin"] = "prediction"
    probabilities = predictions[[c for c in predictions.columns if c.startswith("p_")]]
    candidates = fitting.top_candidates(probabilities, predictions["predicted_circuit"].tolist(), config.top_k)
    starts = [fitting.parameters_or_none(t, c) for t, c in zip(predictions["parameters"], predictions["predicted_circuit"])]
    return rows, candidates, starts, rejections


def _labelled_tasks(config: CircuitFitsConfig, spectra: pd.DataFrame, features: dict, split: pd.DataFrame, regressors: dict):
    """(spectra rows, candidates (the true circuit), regressor starts) of the chosen split."""
    from assets.eis import models

    ids = split["spectrum_id"] if config.labelled_split == "all" else split.loc[split["split"] == config.labelled_split, "spectrum_id"]
    rows = spectra[spectra["spectrum_id"].isin(set(ids))].reset_index(drop=True).assign(origin="labelled")
    feature_table = features["features"].set_index("spectrum_id")
    starts = []
    for circuit, spectrum_id in zip(rows["circuit"], rows["spectrum_id"]):
        regressor = regressors["regressors"].get(circuit)
        if regressor is None or spectrum_id not in feature_table.index:
            starts.append(None)
            continue
        columns = regressors.get("feature_columns", list(feature_table.columns))
        values = models.predict_parameters(regressor, feature_table.loc[[spectrum_id], columns].to_numpy(float))[0]
        starts.append(dict(zip(regressor["parameters"], values)))
    return rows, [[c] for c in rows["circuit"]], starts


@dg.asset(group_name=PIPELINE, pool="gpu")
def eis_circuit_fits(
    context: dg.AssetExecutionContext,
    config: CircuitFitsConfig,
    compute: ComputeResource,
    eis_predictions: pd.DataFrame,
    eis_parameter_regressors: dict,
    eis_spectra: pd.DataFrame,
    eis_features: dict,
    eis_split: pd.DataFrame,
) -> pd.DataFrame:
    """Circuit parameters with standard errors fitted to every predicted (and, on request, labelled)
    spectrum, all at once per circuit class, started from the regressors and from a naive start; which
    parameters the data determine and the simplest circuit it supports -> exports/eis_circuit_fits.csv."""
    from assets.eis import fitting, report
    from assets.eis.selection import fit_with_selection

    rows, candidates, starts, rejections = _prediction_tasks(config, eis_predictions)
    if rejections:
        write_quarantine(PIPELINE, rejections)
    if config.labelled_split != "none":
        labelled, labelled_candidates, labelled_starts = _labelled_tasks(config, eis_spectra, eis_features, eis_split, eis_parameter_regressors)
        rows = pd.concat([rows, labelled[rows.columns.tolist() + ["parameters"]]], ignore_index=True)
        candidates, starts = candidates + labelled_candidates, starts + labelled_starts
    device = compute.torch_device()
    began = time.perf_counter()
    fits = fit_with_selection(rows, candidates, starts, config.settings(), config.criterion, device) if len(rows) else pd.DataFrame(columns=fitting.FIT_COLUMNS)
    seconds = time.perf_counter() - began
    fits["classifier_model_id"] = eis_predictions["classifier_model_id"].iloc[0] if len(eis_predictions) else ""
    fits["regressor_model_id"] = eis_parameter_regressors["model_id"]
    path = write_export_csv(fitting.export_view(fits), FITS_EXPORT_NAME)
    metadata = {
        "n_fitted": len(fits),
        "n_predicted_spectra": int((fits["origin"] == "prediction").sum()),
        "n_labelled_spectra": int((fits["origin"] == "labelled").sum()),
        "n_without_regressor_start": int(sum(start is None for start in starts)),
        "n_rejected": len(rejections),
        "device": str(device),
        "optimizer": config.optimizer,
        "fit_seconds_all_starts": round_sig(seconds),
        **report.fit_summary(fits, rows),
        "export": dg.MetadataValue.path(str(path)),
    }
    if len(fits):
        metadata["nyquist"] = dg.MetadataValue.md(fitting.fit_nyquist_markdown(fits, rows, config.plot_spectra))
        columns = ["spectrum_id", "circuit", "relative_residual", "reproduces", "determined", "undetermined", "supported_circuit"]
        metadata["fits"] = dg.MetadataValue.md(table_markdown(fits[columns].head(10)))
    context.add_output_metadata(metadata)
    return fits
