"""Dagster wiring of the cycling pipeline's life model: cycle_life_model (select, calibrate, freeze) and
cycling_life_predictions (a frozen model applied to every cell, never refitted). defs.py re-exports both."""

import time
import uuid
from typing import Literal

import dagster as dg
import numpy as np
import pandas as pd

from assets.cycling import frozen as frozen_science
from assets.cycling import split as split_science
from assets.cycling import unified
from resources.compute import ComputeResource
from resources.datapaths import storage_dir, write_export_csv
from resources.plots import round_sig, table_markdown

PIPELINE = "cycling"  # the group, as in defs.py


UNKNOWN_LIFE_COLUMNS = ["cell_key", "split", "predicted_cycle_life", "lower80_cycles", "upper80_cycles",
                        "lower95_cycles", "upper95_cycles"]  # shown in cycle_life_model's metadata


class LifeModelConfig(dg.Config):
    first_cycles: int = 100  # embeddings of windows ending at or before this cycle
    early_cycle: int = 10  # Severson dQ = Qdlin(late) - Qdlin(early)
    late_cycle: int = 100
    cv_folds: int = 5  # K-fold CV inside the training cells chooses every hyperparameter
    exclude_cells: list[str] = []  # scored twice: with and without them (<set>_excl), e.g. ["test1/cell22"]
    encoder_method: Literal["ridge", "elastic_net"] = "ridge"
    batches_file: str = ""  # JSON {batch: [cells]}; empty: batch_number, else Severson keys b<batch>c<cell>
    # The models selection may pick: those a frozen model can carry (per-cell Severson features). Encoder models
    # are fitted and scored beside them for comparison.
    selectable_models: list[str] = list(frozen_science.FREEZABLE_MODELS)
    # Make the frozen model the one cycling_life_predictions uses by default: "user_data" = only when every
    # training cell is the user's (a model of the synthetic demo cells never replaces the shipped one).
    promote: Literal["user_data", "always", "never"] = "user_data"
    card_command: str = ""  # the command that reproduces this model, written on its card (empty: the run id)
    card_domain: str = ""  # the cells it was trained on, in words (chemistry, format, conditions), for its card


@dg.asset(group_name=PIPELINE)
def cycle_life_model(context: dg.AssetExecutionContext, config: LifeModelConfig, compute: ComputeResource,
                     cycling_embeddings, cycling_unified, cycling_split) -> dict:
    """Encoder-based regressors vs Severson's variance, discharge and full models and a constant, fitted on the
    labelled training cells (CV inside them); one selected by that CV, with conformal 80 % and 95 % intervals
    from its out-of-fold residuals; every model also scored by a batch-level CV (each training batch
    predicted by models fitted on the others) when the training cells come from two batches or more; every
    held-out set scored; cells whose life is unknown predicted."""
    from assets.cycling import lifemodel
    from assets.cycling.split import held_out_sets
    from resources.plots import parity_markdown

    severson = lifemodel.severson_features(cycling_unified, config.early_cycle, config.late_cycle)
    embedding = lifemodel.embedding_features(cycling_embeddings, config.first_cycles)
    feature_sets, methods = lifemodel.life_feature_sets(severson, embedding, config.encoder_method)
    targets = (cycling_unified.groupby("cell_key", as_index=False).agg(cycle_life=("cycle_life", "first"),
                                                                      source=("source", "first"))
               .merge(cycling_split))
    cells, rejections = lifemodel.modelled_cells(targets, feature_sets, "cycle_life_model")
    if rejections:
        context.log.warning(f"{PIPELINE}: {len(rejections)} cells left out of cycle-life modelling, e.g. "
                            + "; ".join(f"{r.row}: {r.reason}" for r in rejections[:3]))
    n_train = int((cells["split"].eq("train") & cells["cycle_life"].notna()).sum())
    if n_train < 3:
        raise dg.Failure(f"{n_train} training cells with a known life and features; need at least 3 for "
                         f"cross-validation ({len(rejections)} cells left out: {[r.row for r in rejections[:5]]})")
    batches, batch_source = split_science.cell_batches(cycling_unified, config.batches_file)
    result = lifemodel.fit_and_score(cells, feature_sets, methods, config.exclude_cells, config.cv_folds,
                                     compute.seed, batches, config.selectable_models)
    for name, warning in result["warnings"].items():
        context.log.warning(f"{PIPELINE}: {name}: {warning}")
    model_id = str(uuid.uuid4())
    ids = {"model_id": model_id, "encoder_model_id": cycling_embeddings["model_id"].iloc[0]}
    every_model = result["predictions"].assign(**ids)
    selected_name = result["selected_model"]
    synthetic_share = float((cells["source"] == unified.SYNTHETIC_SOURCE).mean())
    data_source = "synthetic" if synthetic_share == 1 else "user" if synthetic_share == 0 else "user+synthetic"
    frozen_model = _freeze_selected(context, config, result, cells, severson, feature_sets, methods, model_id,
                                    data_source)
    windows = lifemodel.discharge_window_v(cycling_unified, (config.early_cycle, config.late_cycle))
    selected = frozen_science.with_frozen_predictions(lifemodel.selected_predictions(every_model, selected_name),
                                                      frozen_model, severson, windows)
    predictions_path = write_export_csv(selected, "cycling_cycle_life_predictions.csv")
    every_model_path = write_export_csv(every_model, "cycling_cycle_life_model_predictions.csv")
    metrics = result["metrics"].assign(selected=result["metrics"]["model"] == selected_name)
    metrics_path = write_export_csv(metrics.assign(source=data_source), "cycling_cycle_life_metrics.csv")
    sets = held_out_sets(cycling_split)
    scored = metrics.loc[~metrics["split"].isin(["train", "train_cv", "train_batchcv"])]
    shown = next((s for s in sets if s in set(scored["split"])), "train")
    parity = "\n\n".join(f"**{name}** ({shown})\n\n" + parity_markdown(group["cycle_life"].to_numpy(),
                                                                       group["predicted_cycle_life"].to_numpy(),
                                                                       "cycle life")
                         for name, group in every_model.loc[(every_model["split"] == shown) & ~every_model["life_unknown"]]
                         .groupby("model", sort=False)
                         if name in (selected_name, "variance", f"encoder_change_variance_{config.encoder_method}"))
    headline = {f"{row.split}_{metric}_{row.model}": round_sig(getattr(row, metric))
                for row in scored.itertuples() for metric in ("mape_percent", "rmse_cycles")}
    selected_scores = {f"{row.split}_{metric}_selected": round_sig(getattr(row, metric))
                       for row in scored.loc[scored["selected"]].itertuples()
                       for metric in ("mape_percent", "rmse_cycles", "coverage80", "coverage95")}
    unknown = selected.loc[selected["life_unknown"]]
    context.add_output_metadata({
        "model_id": model_id,
        "selected_model": selected_name,
        "selection": (f"lowest out-of-fold MAPE inside the labelled training cells (mean of the K-fold and the "
                      f"batch-level CV where both ran), among {', '.join(config.selectable_models)}"),
        "frozen_model": dg.MetadataValue.path(str(frozen_science.registry_folder(storage_dir(), model_id))),
        "promoted": frozen_model.card["promoted"],
        "interval_calibration": frozen_model.card["interval_calibration"],
        "batch_tau_log10": round_sig(frozen_model.batch_tau_log10),
        "n_training_cells_out_of_domain": int((~selected.loc[selected["split"] == "train", "in_domain"]).sum()),
        "batch_source": batch_source,
        "n_training_batches": result["n_training_batches"],
        "batch_cv": ("whole training batches held out (every model); train_batchcv rows in the metrics"
                     if result["n_training_batches"] else "not run: no two training batches"),
        "cv_metrics": dg.MetadataValue.md(table_markdown(result["cv_metrics"].reset_index())),
        "interval_half_width_log10": dg.MetadataValue.json(
            {level: round_sig(h) for level, h in result["half_widths_log10"][selected_name].items()}),
        "n_cells_modelled": len(cells),
        "n_cells_predicted": len(unknown),
        **{f"n_cells_predicted_{name}": int(n) for name, n in unknown["split"].value_counts().items()},
        "unknown_life_predictions": dg.MetadataValue.md(table_markdown(unknown[UNKNOWN_LIFE_COLUMNS], rows=30)),
        "data_source": data_source,
        "n_cells_left_out": len(rejections),
        "held_out_sets": ", ".join(sets),
        "hyperparameters": dg.MetadataValue.json({k: {kk: (round_sig(v) if isinstance(v, float) else v)
                                                      for kk, v in c.items()} for k, c in result["choices"].items()}),
        "n_regularisation_warnings": len(result["warnings"]),
        "regularisation_warnings": "; ".join(f"{k}: {v}" for k, v in result["warnings"].items()) or "none",
        "metrics": dg.MetadataValue.md(table_markdown(metrics)),
        **selected_scores,
        **headline,
        "predictions_file": dg.MetadataValue.path(str(predictions_path)),
        "model_predictions_file": dg.MetadataValue.path(str(every_model_path)),
        "metrics_file": dg.MetadataValue.path(str(metrics_path)),
        f"parity_{shown}": dg.MetadataValue.md(parity),
    })
    return {**{f"{name}_model": model for name, model in result["models"].items()},
            "model_id": model_id, "selected_model": selected_name, "metrics": metrics, "predictions": selected,
            "frozen_model": frozen_science.registry_folder(storage_dir(), model_id).as_posix(),
            "half_widths_log10": result["half_widths_log10"],
            "settings": {"choices": result["choices"], **config.model_dump()}}


def _freeze_selected(context, config: LifeModelConfig, result: dict, cells: pd.DataFrame, severson: pd.DataFrame,
                     feature_sets: dict, methods: dict, model_id: str, data_source: str):
    """The selected model frozen into the registry with its card; promoted to current per config.promote."""
    name = result["selected_model"]
    train = cells.loc[cells["split"].eq("train") & cells["cycle_life"].notna()]
    promoted = config.promote == "always" or (config.promote == "user_data" and data_source == "user")
    batches = result["training_batches"]
    cv_rows = result["metrics"].loc[(result["metrics"]["model"] == name)
                                    & result["metrics"]["split"].isin(["train_cv", "train_batchcv"])]
    card = {
        "model": f"cycle_life_{name}", "model_id": model_id, "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": config.card_command or f"dagster run {context.run_id}",
        "target": "log10 cycle life (cycles to 80 % of nominal capacity)",
        "features": list(feature_sets[name].columns), "method": methods[name],
        "feature_cycles": [config.early_cycle, config.late_cycle],
        "training_cells": int(len(train)), "training_data_source": data_source,
        "training_cell_digest_sha256": frozen_science.training_digest(train, feature_sets[name]),
        "training_batches": ({} if batches is None else {str(b): int(n) for b, n in zip(*np.unique(batches, return_counts=True))}),
        "transductive_pretraining": False,
        "domain": {"cells": config.card_domain or f"the {len(train)} training cells ({data_source} data)",
                   "checks": frozen_science.DOMAIN_CHECKS},
        "cv": {row.split: {k: round_sig(getattr(row, k)) for k in ("mape_percent", "rmse_cycles", "coverage80", "coverage95")
                           if k in cv_rows.columns and pd.notna(getattr(row, k))} for row in cv_rows.itertuples()},
        "interval_calibration": ("K-fold out-of-fold residuals, within-batch conformal quantile plus the between-batch "
                                 f"variance ({result['n_training_batches']} training batches)" if batches is not None
                                 else "K-fold out-of-fold residuals (split conformal); no batch labels: cell-to-cell "
                                      "scatter only, a new batch may need wider intervals"),
        "settings": config.model_dump(), "promoted": promoted,
    }
    model = frozen_science.freeze(result["models"][name], name, methods[name], feature_sets[name].loc[train["cell_key"]],
                                  severson.loc[train["cell_key"], frozen_science.NOMINAL_CAPACITY_FEATURE].to_numpy(),
                                  result["half_widths_log10"][name],
                                  result["batch_tau_log10"][name], model_id, (config.early_cycle, config.late_cycle),
                                  card)
    folder = frozen_science.save(model, frozen_science.registry_folder(storage_dir(), model_id))
    if promoted:
        frozen_science.promote(storage_dir(), model_id)
    context.log.info(f"{PIPELINE}: froze {name} as {model_id} in {folder}" + (" (current)" if promoted else ""))
    return model


class LifePredictionConfig(dg.Config):
    model: str = "current"  # current: the promoted trained model, else the shipped one; shipped; or a model folder


@dg.asset(group_name=PIPELINE, deps=["cycle_life_model"])
def cycling_life_predictions(context: dg.AssetExecutionContext, config: LifePredictionConfig, cycling_unified):
    """Cycle life of every cell in the drop folder from a frozen model (never refitted): the prediction, its
    80 % and 95 % intervals, whether the cell lies in the model's domain (and why not), and the model it rests on.
    Each cell's prediction uses its own cycles only."""
    from assets.cycling import lifemodel

    folder, how = frozen_science.resolve(storage_dir(), config.model)
    model = frozen_science.load(folder)
    early, late = model.feature_cycles
    severson = lifemodel.severson_features(cycling_unified, early, late)
    windows = lifemodel.discharge_window_v(cycling_unified, (early, late))
    table = frozen_science.prediction_table(model, cycling_unified, severson, windows)
    path = write_export_csv(table, "cycling_life_predictions.csv")
    predicted = table["predicted_cycle_life"].notna()
    context.add_output_metadata({
        "model_id": model.model_id, "model": model.card.get("model", model.name), "model_source": how,
        "model_folder": dg.MetadataValue.path(str(folder)),
        "n_cells": len(table), "n_cells_predicted": int(predicted.sum()),
        "n_cells_not_predicted": int((~predicted).sum()),
        "n_cells_out_of_domain": int((predicted & ~table["in_domain"].astype(bool)).sum()),
        "interval_half_width_log10": dg.MetadataValue.json(model.half_widths_log10),
        "predictions": dg.MetadataValue.md(table_markdown(table[frozen_science.SHOWN_COLUMNS], rows=30)),
        "predictions_file": dg.MetadataValue.path(str(path)),
    })
    return table
