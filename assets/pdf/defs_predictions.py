"""Dagster wiring of the pdf pipeline's predictions for measured PDFs (space_group_predictions: the shipped or a
trained classifier, calibrated probabilities and 90 % sets). defs.py re-exports it."""

from pathlib import Path

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    Failure,
    MetadataValue,
    Output,
    TableColumn,
    TableRecord,
    TableSchema,
    asset,
)

from assets.pdf import (
    classifiers,
    compact,
    measured,
)
from resources.datapaths import examples_dir, raw_dir, relative_to_root, write_export_csv
from resources.plots import round_sig
from resources.quarantine import report_rejections

PIPELINE = "pdf"  # the group, as in defs.py


class PredictionsConfig(Config):
    top_k: int = 6
    max_rejected_share: float = 0.5  # of the user's measured files; above it the blocking check fails
    # auto: the embedded synthetic examples only when data/raw/pdf/measured/ has no .gr file;
    # always: predict them beside the user's files; never: only the user's files.
    use_examples: str = "auto"
    # shipped: the compact model trained at scale that ships with the project (assets/pdf/shipped/);
    # compact / cnn: the compact or the published CNN trained in this data root (materialized before);
    # any other value: a folder holding a saved compact model (card.json + weights), e.g. an at-scale run's
    # data/exports/pdf_space_group_model.
    model: str = "shipped"


RUN_MODELS = {"compact": "space_group_compact_cnn", "cnn": "space_group_cnn"}


def chosen_predictor(choice: str, load_stored, device: str):
    """(model name, model_id, classes, profiles -> probabilities, 90 % set threshold or None, profiles -> each
    member's most probable class index (n, n_members) or None for a single network) of the model the config names.

    load_stored(asset name) reads a model trained in this data root; only called for compact / cnn."""
    if choice in RUN_MODELS:
        asset_name = RUN_MODELS[choice]
        try:
            bundle = load_stored(asset_name)
        except FileNotFoundError as error:
            raise Failure(f"model: {choice} needs {asset_name} materialized first ({error})") from error
        name, where = asset_name, "this data root"
        if choice == "cnn":  # not calibrated: its probabilities are the raw softmax
            return f"{name} ({where})", bundle["model_id"], bundle["classes"], \
                lambda x: classifiers.cnn_probabilities(bundle["model"], x, device), None, None
    else:
        folder = compact.SHIPPED_DIR if choice == "shipped" else Path(choice)
        bundle = compact.load_model_bundle(folder)
        name, where = "space_group_compact_cnn", "shipped" if choice == "shipped" else str(folder)
    # the calibration temperature stored with the model (fitted on its validation profiles); a model stored
    # before models were calibrated has none and predicts with the raw softmax (temperature 1)
    temperature = bundle.get("temperature", 1.0)
    seeds = [member["seed"] for member in bundle.get("card", {}).get("members", [])]
    if len(seeds) > 1:  # say that the answer is the mean of several training draws
        where += f", mean of {len(seeds)} seeds {', '.join(map(str, seeds))}"
    networks = getattr(bundle["model"], "members", None)
    members_first = None if networks is None else \
        (lambda x: np.stack([compact.compact_logits(network, x).argmax(1) for network in networks], axis=1))
    return f"{name} ({where})", bundle["model_id"], bundle["classes"], \
        lambda x: compact.compact_probabilities(bundle["model"], x, temperature), bundle.get("set90_threshold"), \
        members_first


@asset(group_name=PIPELINE, deps=["space_group_cnn", "space_group_compact_cnn"],
       required_resource_keys={"io_manager", "compute"},
       check_specs=[
           AssetCheckSpec("measured_rejected_share", asset="space_group_predictions", blocking=True),
           AssetCheckSpec("examples_in_top2", asset="space_group_predictions",
                          description="NaCl / Si / Mg examples (when predicted): the true group in the model's top 2"),
       ])
def space_group_predictions(context: AssetExecutionContext, config: PredictionsConfig):
    """Top-k space groups for every .gr file in data/raw/pdf/measured/ -> data/exports/space_group_predictions.csv.

    Probabilities are calibrated (the compact model's temperature, fitted on its validation profiles); each file
    carries its 90 % set (split-conformal, from the model's validation profiles; see calibration.py), its size,
    and a note when the model cannot tell those groups apart (size > 1).

    By default from the shipped at-scale model, so no training is needed; `model: compact | cnn` uses a model
    trained in this data root, a folder path a saved compact model. A file that ends between 15 and 30 A is
    read to its end (the export's r_max_used_A). With no user file, the embedded synthetic NaCl / Si / Mg
    examples (written once into data/examples/pdf/, never into data/raw/) are predicted instead, labelled
    source=synthetic.
    """
    if config.use_examples not in ("auto", "always", "never"):
        raise ValueError(f"use_examples must be auto, always or never, not {config.use_examples!r}")
    compute = context.resources.compute
    model_name, model_id, classes, predict, threshold, members_first = chosen_predictor(
        config.model, context.resources.io_manager.load_stored, compute.keras_device())
    user_folder = raw_dir(PIPELINE) / "measured"
    user = measured.read_measured_folder(user_folder) if user_folder.is_dir() else measured.MeasuredSet.empty()
    has_user_files = bool(user.names or user.rejections)
    sets = [("user", user)]
    if config.use_examples == "always" or (config.use_examples == "auto" and not has_user_files):
        folder = examples_dir(PIPELINE)
        if not any(folder.glob("*.gr")):
            measured.write_embedded_examples(folder, compute.rng(3))
        sets.append(("synthetic", measured.read_measured_folder(folder)))
        context.log.info(f"no .gr files in {relative_to_root(user_folder)}: predicting the embedded synthetic "
                         f"examples in {relative_to_root(folder)} (source=synthetic in the export)"
                         if not has_user_files else f"also predicting the examples in {relative_to_root(folder)}")
        if sets[-1][1].rejections:  # our own examples must read back; say so loudly if they do not
            context.log.error(f"embedded examples rejected: {sets[-1][1].rejections}")
    summary = report_rejections(context.log, PIPELINE, user.rejections, {path: 1 for path in user.paths})
    tables = []
    for source, found in sets:
        probabilities = predict(found.inputs) if found.names else np.zeros((0, len(classes)))
        firsts = members_first(found.inputs) if members_first is not None and found.names else None
        tables.append(measured.top_k_table(found.names, probabilities, classes, config.top_k, model_id,
                                           found.headers, source, found.r_max_used_A, model_name, threshold, firsts))
    table = pd.concat([t for t in tables if len(t)], ignore_index=True) if any(len(t) for t in tables) \
        else tables[0]
    path = write_export_csv(table, "space_group_predictions.csv")
    top1 = table[table["rank"] == 1]
    for row in top1.itertuples(index=False):
        context.log.info(f"{row.source} {row.file}: space group {row.space_group} {row.space_group_symbol} "
                         f"(p = {row.probability:.2f}, r 1.5-{row.r_max_used_A:g} A, {model_name}); "
                         f"90 % set: {row.set90} ({row.set90_note})"
                         + (f"; first of each seed's network: {row.members_first}" if row.members_first else ""))
    yield Output(table, metadata={
        "n_files": int(top1["file"].nunique()) if len(top1) else 0,
        "n_user_files": len(user.names),
        "n_synthetic_files": int((top1["source"] == "synthetic").sum()),
        "export": MetadataValue.path(relative_to_root(path)),
        "model": model_name,
        "model_id": model_id,
        **summary.metadata(),
        "n_files_set90_ambiguous": int((top1["set90_size"] > 1).sum()),
        "set90_mean_size": round_sig(float(top1["set90_size"].mean())) if len(top1) else 0.0,
        "top1": MetadataValue.table(
            [TableRecord({"file": r.file, "source": r.source, "space_group": int(r.space_group),
                          "symbol": r.space_group_symbol, "probability": round_sig(r.probability, 3),
                          "set90_size": int(r.set90_size), "set90": r.set90, "set90_note": r.set90_note,
                          "members_first": r.members_first})
             for r in top1.itertuples(index=False)],
            schema=TableSchema(columns=[TableColumn("file", "string"), TableColumn("source", "string"),
                                        TableColumn("space_group", "int"), TableColumn("symbol", "string"),
                                        TableColumn("probability", "float"), TableColumn("set90_size", "int"),
                                        TableColumn("set90", "string"), TableColumn("set90_note", "string"),
                                        TableColumn("members_first", "string")])),
    })
    yield summary.check_result("measured_rejected_share", config.max_rejected_share)
    hits = measured.examples_top_k_hits(table, 2)
    yield AssetCheckResult(check_name="examples_in_top2", passed=all(hits.values()), severity=AssetCheckSeverity.WARN,
                           metadata={"n_examples": len(hits), "n_in_top2": sum(hits.values()),
                                     "missed": ", ".join(name for name, hit in hits.items() if not hit) or "none"})
