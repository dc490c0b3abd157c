"""Dagster wiring of the `cycling` pipeline (science lives in the sibling modules).

cycling_synthetic_cells -> cycling_unified -> cycling_split -> cycling_corpus -> cycling_tokenizer
-> multiscale_encoder -> cycling_embeddings -> cycle_life_model (defs_life.py) ; cycling_unified ->
cycling_cycle_summary, and cycling_unified -> cycling_life_predictions (defs_life.py: a frozen model, no training)
"""

import time
import uuid
from typing import Literal

import dagster as dg
import pandas as pd

from assets.cycling import corpus as corpus_science
from assets.cycling import split as split_science
from assets.cycling import synthetic, unified
from assets.cycling.defs_life import cycle_life_model, cycling_life_predictions
from resources.compute import ComputeResource
from resources.datapaths import raw_dir, storage_dir
from resources.plots import round_sig, table_markdown
from resources.quarantine import report_rejections
from resources.storage import Hdf5Tree

PIPELINE = "cycling"


class SyntheticCellsConfig(dg.Config):
    n_cells: int = 40
    last_detail_cycle: int = 100  # cycles with full traces: every detail_stride-th up to this, plus 2, 10, 100
    detail_stride: int = 10
    points_per_cycle: int = 80


@dg.asset(group_name=PIPELINE)
def cycling_synthetic_cells(context: dg.AssetExecutionContext, config: SyntheticCellsConfig,
                            compute: ComputeResource) -> Hdf5Tree:
    """The embedded default: synthetic LFP/graphite cells in the Severson pickle layout (as HDF5 paths)."""
    batch = synthetic.synthetic_batch(config.n_cells, config.last_detail_cycle, config.detail_stride,
                                      config.points_per_cycle, seed=compute.seed)
    lives = [record["cycle_life"] for record in batch.values()]
    context.add_output_metadata({
        "n_cells": len(batch),
        "detail_cycles": str(synthetic.detail_cycles(config.last_detail_cycle, config.detail_stride).tolist()),
        "cycle_life_min": min(lives),
        "cycle_life_max": max(lives),
        "capacity_fade": dg.MetadataValue.md(synthetic.fade_curves_markdown(batch)),
    })
    return Hdf5Tree(synthetic.batch_to_tree(batch))


class UnifiedConfig(dg.Config):
    synthetic: Literal["auto", "always", "never"] = "auto"  # auto: only when data/raw/cycling has no files
    # Cells with fewer valid cycles are rejected. 1: every cell read goes on to cycling_cycle_summary, which names
    # the cells too short to predict (a formation test of one cycle is read, not rejected).
    min_cycles: int = 1
    charge_capacity_smoothing_window: int = 0  # time steps of a centred rolling mean; <2: off
    time_cutoff_min: float | None = None  # keep time steps within this many minutes of the cycle start
    max_rejected_share: float = 0.2  # bound on the rejected share of the user's records (cells, bad lines/cycles)
    rejected_share_severity: Literal["ERROR", "WARN"] = "ERROR"  # ERROR blocks downstream assets; WARN lets them run
    qdlin_voltage_stride: int = 1  # Qdlin-layout cells: keep every n-th of the 1000 voltage points


@dg.asset(
    group_name=PIPELINE,
    check_specs=[dg.AssetCheckSpec("rejected_share_within_bound", asset="cycling_unified", blocking=True)],
)
def cycling_unified(context: dg.AssetExecutionContext, config: UnifiedConfig, cycling_synthetic_cells: Hdf5Tree):
    """The user's files (data/raw/cycling: cycler files of Arbin, Maccor, BioLogic, Neware, PEC, Novonix and
    Battery Data Format exports, pickles, unified CSVs, Qdlin folders) in the unified schema, validated; the
    synthetic cells (source=synthetic) only when the user provided nothing, or when asked. Every file ends
    read, sidecar or rejected with its reason (the `files` table)."""
    raw = raw_dir(PIPELINE)
    paths = unified.raw_files(raw)
    frames, rejections, time_origins = unified.read_files(paths, config.qdlin_voltage_stride, raw,
                                                          log=context.log.info)
    use_synthetic = config.synthetic == "always" or (config.synthetic == "auto" and not paths)
    synthetic_rejections = []
    if use_synthetic:
        frame, synthetic_rejections = unified.severson_frame(synthetic.tree_to_batch(cycling_synthetic_cells),
                                                             unified.SYNTHETIC_SOURCE)
        frames.append(frame)
    table, invalid = unified.unify(frames, config.min_cycles, config.charge_capacity_smoothing_window,
                                   config.time_cutoff_min)
    user_rejections, synthetic_rejections = unified.user_rejections(rejections + invalid + synthetic_rejections, raw)
    summary = report_rejections(context.log, PIPELINE, user_rejections,
                                unified.accepted_cells_by_file(table, paths, raw))
    files = unified.files_table(paths, raw, table, rejections + invalid, time_origins)
    yield dg.Output(table, metadata={
        **{f"n_files_{status}": int((files["status"] == status).sum()) for status in ("read", "sidecar", "rejected")},
        "files": dg.MetadataValue.md(table_markdown(files, rows=200) if len(files) else "no files"),
        "n_rows": len(table),
        "n_cells": int(table["cell_key"].nunique()),
        "n_cycles": int(table.groupby("cell_key")["cycle_number"].nunique().sum()),
        "sources": ", ".join(sorted(table["source"].unique())[:20]) or "none",
        "n_source_files": int(table["source"].nunique()),
        "synthetic_cells_used": use_synthetic,
        "datasets": ", ".join(sorted(set(table["dataset"]) - {""})) or "none",
        "signals_present": ", ".join(unified.signals_present(table)),
        "csv_time_origin": str(dict(list(time_origins.items())[:10])),
        "n_synthetic_rejections": len(synthetic_rejections),
        **summary.metadata(),
        "preview": dg.MetadataValue.md(table_markdown(table, rows=8)),
    })
    check = summary.check_result("rejected_share_within_bound", config.max_rejected_share,
                                 config.rejected_share_severity)
    if not len(table):  # no valid cell at all: downstream assets would have nothing to learn from
        check = dg.AssetCheckResult(check_name=check.check_name, passed=False, severity=check.severity,
                                    metadata={**check.metadata, "n_rows": 0})
    yield check


class SplitConfig(dg.Config):
    mode: Literal["auto", "ratios", "file", "folders"] = "auto"  # auto: file if given, else folders, else ratios
    train: float = 0.6
    validation: float = 0.2  # with ratios: one more held-out set (nothing is tuned on it)
    test: float = 0.2
    split_file: str = ""  # JSON {"train": [cells], "test1": [...], "test2": [...], ...}; "train" required


@dg.asset(group_name=PIPELINE)
def cycling_split(context: dg.AssetExecutionContext, config: SplitConfig, compute: ComputeResource,
                  cycling_unified):
    """Cells to one training set and named held-out sets, stored once and reused by every downstream asset."""
    datasets = cycling_unified.groupby("cell_key")["dataset"].first()
    mode = split_science.choose_mode(config.mode, config.split_file, datasets)
    rejections = []
    if mode == "file":
        split, rejections = split_science.split_from_json(list(datasets.index), config.split_file)
    elif mode == "folders":
        split = split_science.split_from_datasets(datasets)
    else:  # cut only the labelled cells, so that uploading cells of unknown life never moves a training cell
        labelled = cycling_unified.groupby("cell_key")["cycle_life"].first().notna()
        split = split_science.split_by_ratio(list(labelled.index[labelled]),
                                             (config.train, config.validation, config.test), compute.seed)
        split = pd.concat([split, pd.DataFrame({"cell_key": labelled.index[~labelled],
                                                "split": split_science.UNLABELLED})], ignore_index=True)
    if rejections:
        context.log.warning(f"{PIPELINE}: {len(rejections)} cells not in the split file {config.split_file} "
                            f"(left out): {', '.join(str(r.row) for r in rejections[:5])}")
    counts = split["split"].value_counts()
    context.add_output_metadata({
        "mode": mode,
        "source": config.split_file if mode == "file" else mode,
        "sets": ", ".join([split_science.TRAIN] + split_science.held_out_sets(split)),
        **{f"n_{name}": int(count) for name, count in counts.items()},
        "n_cells_not_in_split_file": len(rejections),
    })
    return split


class CorpusConfig(dg.Config):
    # qv_difference: per cycle of document_cycles, Q_n(V) - Q_reference(V) in mAh at voltage_points voltages
    # (the change that carries cycle life); time_steps: the chosen columns of every time step (the seed's).
    representation: Literal["qv_difference", "time_steps"] = "qv_difference"
    reference_cycle: int = 10
    document_cycles: list[int] = [20, 40, 60, 80, 100]
    voltage_points: int = 24  # evenly spaced over the Qdlin grid 3.6 -> 2.0 V
    difference_decimals: int = 1  # 0.1 mAh
    columns: list[str] = ["voltage", "current", "discharge_capacity", "temperature"]  # time_steps only
    precision: dict[str, int] = {}  # time_steps: decimals per column; missing ones use corpus.DEFAULT_PRECISION
    # qv_difference: 1 = one document per cycle of document_cycles (the change of a cell's embedding from its
    # first to its last document then mirrors Q100(V) - Q10(V)); 0 = all in one document. time_steps: 0 = 2.
    cycles_per_document: int = 1
    time_step_stride: int = 8  # time_steps: keep every n-th time step of each cycle
    last_cycle: int = 100  # time_steps: 0 = all cycles


@dg.asset(group_name=PIPELINE)
def cycling_corpus(context: dg.AssetExecutionContext, config: CorpusConfig, compute: ComputeResource,
                   cycling_unified, cycling_split):
    """Text documents, one per cell and window of cycles, in shuffled order."""
    start = time.perf_counter()
    if config.representation == "qv_difference":
        columns = ["discharge_capacity difference (mAh)"]
        documents = corpus_science.build_difference_corpus(
            cycling_unified, cycling_split, config.reference_cycle, config.document_cycles, config.voltage_points,
            config.difference_decimals, config.cycles_per_document, compute.seed)
        absent = "none"
    else:
        present = unified.signals_present(cycling_unified)
        columns = [c for c in config.columns if c in present]
        if not columns:
            raise dg.Failure(f"none of the corpus columns {config.columns} is present; signals present: {present}")
        documents = corpus_science.build_corpus(cycling_unified, cycling_split, columns, config.precision,
                                                config.cycles_per_document or 2, config.time_step_stride,
                                                config.last_cycle, compute.seed)
        absent = ", ".join(c for c in config.columns if c not in present) or "none"
    seconds = time.perf_counter() - start
    if not len(documents):
        raise dg.Failure(f"no documents: representation {config.representation} needs cycles "
                         f"{config.reference_cycle} and {config.document_cycles} (or time steps) in the cells")
    counts = documents["split"].value_counts()
    context.add_output_metadata({
        "representation": config.representation,
        "columns": ", ".join(columns),
        "columns_absent": absent,
        "n_documents": len(documents),
        **{f"n_{name}_documents": int(count) for name, count in counts.items()},
        "mean_characters": round_sig(documents["text"].str.len().mean()),
        "rows_per_second": round_sig(len(cycling_unified) / seconds),
        "example": dg.MetadataValue.text(documents["text"].iloc[0][:400]),
    })
    return documents


class TokenizerConfig(dg.Config):
    tokenizer_path: str = ""  # local save_pretrained folder (or cached hub id); empty: train one
    vocab_size: int = 64
    individual_digits: bool = True  # one token per digit (the number-token loss needs it)


@dg.asset(
    group_name=PIPELINE,
    check_specs=[dg.AssetCheckSpec("round_trip_lossless", asset="cycling_tokenizer", blocking=True)],
)
def cycling_tokenizer(context: dg.AssetExecutionContext, config: TokenizerConfig, cycling_corpus):
    """A PreTrainedTokenizerFast trained on the training documents (or loaded), special tokens patched."""
    from assets.cycling import tokenizer as tokenizer_science

    train_texts = cycling_corpus.loc[cycling_corpus["split"] == "train", "text"].tolist()
    if config.tokenizer_path:
        tokenizer = tokenizer_science.load_tokenizer(config.tokenizer_path)
    else:
        tokenizer = tokenizer_science.train_tokenizer(train_texts, config.vocab_size, config.individual_digits)
    added = tokenizer_science.ensure_special_tokens(tokenizer)
    texts = cycling_corpus["text"].tolist()
    start = time.perf_counter()
    n_tokens = sum(len(ids) for ids in tokenizer_science.encode(tokenizer, texts))
    seconds = time.perf_counter() - start
    failures = tokenizer_science.round_trip_failures(tokenizer, texts)
    yield dg.Output(tokenizer, metadata={
        "source": config.tokenizer_path or f"trained on {len(train_texts)} training documents",
        "vocab_size": len(tokenizer),
        "special_tokens_added": ", ".join(added) or "none",
        "digit_tokens": len(tokenizer_science.digit_token_ids(tokenizer)),
        "tokens_per_document": n_tokens / max(len(texts), 1),
        "tokens_per_second": n_tokens / seconds if seconds else 0.0,
    })
    yield dg.AssetCheckResult(check_name="round_trip_lossless", passed=not failures,
                              metadata={"n_documents": len(texts), "n_failures": len(failures)})


class EncoderConfig(dg.Config):
    window_tokens: int = 64
    max_windows: int = 16
    hidden_size: int = 32
    local_layers: int = 1
    global_layers: int = 1
    attention_heads: int = 2
    intermediate_size: int = 64
    dropout: float = 0.0
    steps: int = 20
    batch_size: int = 4
    learning_rate: float = 2e-3
    mask_probability: float = 0.15
    number_loss_weight: float = 0.1  # weight of the number-token loss (0: cross-entropy only)
    eval_every: int = 10  # steps between validation losses and checkpoints
    monitor_share: float = 0.1  # training cells held out for the validation loss
    # Transductive opt-in: also pretrain on the curves of held-out and unknown-life cells (never a life: masked
    # tokens only). Off by default: the encoder, and so every model, would then change with the cells uploaded.
    pretrain_on_held_out_curves: bool = False


def _token_windows(corpus, tokenizer, window_tokens: int, max_windows: int):
    from assets.cycling import encoder, tokenizer as tokenizer_science

    ids = tokenizer_science.encode(tokenizer, corpus["text"].tolist())
    return encoder.to_windows(ids, window_tokens, max_windows, tokenizer.pad_token_id)


@dg.asset(group_name=PIPELINE, pool="gpu")
def multiscale_encoder(context: dg.AssetExecutionContext, config: EncoderConfig, compute: ComputeResource,
                       cycling_corpus, cycling_tokenizer) -> dict:
    """Local (token windows) + global (window sequence) encoder, masked-token pretrained."""
    from assets.cycling import encoder

    compute.seed_everything()
    device = compute.torch_device()
    ids, mask, truncated = _token_windows(cycling_corpus, cycling_tokenizer, config.window_tokens,
                                          config.max_windows)
    shape = encoder.EncoderShape(
        vocab_size=len(cycling_tokenizer), pad_token_id=cycling_tokenizer.pad_token_id,
        **config.model_dump(include=set(encoder.EncoderShape.__dataclass_fields__)),
    )
    settings = encoder.TrainingSettings(
        seed=compute.seed, **config.model_dump(include=set(encoder.TrainingSettings.__dataclass_fields__)))
    vocab = encoder.Vocabulary.from_tokenizer(cycling_tokenizer)
    model = encoder.MultiscaleEncoder(shape)
    model_id = str(uuid.uuid4())
    checkpoint_dir = storage_dir() / "cycling_checkpoints" / model_id
    checkpoints = []

    def save(step: int, validation_loss: float) -> None:
        path = encoder.save_checkpoint(model, step, checkpoint_dir / f"step_{step:06d}.pt")
        checkpoints.append({"step": step, "validation_loss": validation_loss, "path": str(path)})

    fit, monitor = corpus_science.pretraining_documents(cycling_corpus, config.monitor_share, compute.seed,
                                                         config.pretrain_on_held_out_curves)
    history = encoder.pretrain(model, (ids[fit], mask[fit]), (ids[monitor], mask[monitor]), vocab, settings,
                               device, on_checkpoint=save, log=context.log.info)
    last = history.iloc[-1]
    context.add_output_metadata({
        "model_id": model_id,
        "device": str(device),
        "parameters": sum(p.numel() for p in model.parameters()),
        "windows_shape": str(list(ids.shape)),
        "documents_truncated": truncated,
        "n_pretraining_documents": int(fit.sum()),
        "pretrained_on_held_out_curves": config.pretrain_on_held_out_curves,
        "n_monitor_documents": int(monitor.sum()),
        "final_train_loss": round_sig(last["loss"]),
        "final_validation_loss": round_sig(last["validation_loss"]),
        "train_tokens_per_second": round_sig(last["tokens_seen"] / last["elapsed_s"]),
        "pretraining_seconds": round_sig(last["elapsed_s"]),
        "number_token_loss": bool(vocab.digit_ids) and settings.number_loss_weight > 0,
        "loss_curve": dg.MetadataValue.md(encoder.loss_curve_markdown(history)),
        "checkpoints": dg.MetadataValue.md(table_markdown(pd.DataFrame(checkpoints))),
    })
    return {"model": model.cpu(), "model_id": model_id, "history": history,
            "settings": {"shape": vars(shape), "training": vars(settings)}}


class EmbeddingsConfig(dg.Config):
    pooling: Literal["tokens", "mean", "mean_max", "windows"] = "tokens"  # see encoder.MultiscaleEncoder.embed


@dg.asset(group_name=PIPELINE)
def cycling_embeddings(context: dg.AssetExecutionContext, config: EmbeddingsConfig, compute: ComputeResource,
                       multiscale_encoder: dict, cycling_corpus, cycling_tokenizer, cycling_unified):
    """One embedding per cell and window of cycles, joined with cycle_life and capacity."""
    from assets.cycling import encoder
    from assets.cycling.lifemodel import embedding_table

    model = multiscale_encoder["model"]
    ids, mask, _ = _token_windows(cycling_corpus, cycling_tokenizer, model.shape.window_tokens,
                                  model.shape.max_windows)
    vectors = encoder.embed_documents(model, ids, mask, compute.torch_device(), pooling=config.pooling)
    table = embedding_table(cycling_corpus, vectors, cycling_unified, multiscale_encoder["model_id"])
    context.add_output_metadata({
        "n_documents": len(table),
        "n_cells": int(table["cell_key"].nunique()),
        "embedding_size": vectors.shape[1],
        "pooling": config.pooling,
        "model_id": multiscale_encoder["model_id"],
        "preview": dg.MetadataValue.md(table_markdown(table.iloc[:, :10], rows=8)),
    })
    return table


class CycleSummaryConfig(dg.Config):
    early_cycle: int = 10  # the life model's cycles (Severson dQ = Q_late(V) - Q_early(V)): a cell without a
    late_cycle: int = 100  # discharge in both is read and summarised but named as too short to predict
    capacity_tolerance: float = 0.01  # per cycle: |instrument capacity - current integral| within 1 % ...
    capacity_tolerance_ah: float = 1e-4  # ... or 0.1 mAh, whichever is larger
    min_consistent_share: float = 0.95  # capacity_consistent passes when this share of checked cycles agree


@dg.asset(
    group_name=PIPELINE,
    check_specs=[dg.AssetCheckSpec("capacity_consistent", asset="cycling_cycle_summary")],
)
def cycling_cycle_summary(context: dg.AssetExecutionContext, config: CycleSummaryConfig, cycling_unified):
    """Per cycle: charge and discharge capacity (Ah), Coulombic efficiency, energies (Wh), mean discharge voltage,
    duration, the capacity check (instrument capacity vs the current's integral); per cell n_cycles and
    `predictable`. Cells too short to predict are named in quarantine/cycling_cycle_summary.csv."""
    from assets.cycling import cycle_summary as summary_science
    from resources.datapaths import Rejection

    summary = summary_science.summarise(cycling_unified, config.early_cycle, config.late_cycle,
                                        config.capacity_tolerance, config.capacity_tolerance_ah)
    raw = raw_dir(PIPELINE)
    cells = summary.drop_duplicates(["source", "cell_key"])
    user = cells.loc[cells["source"] != unified.SYNTHETIC_SOURCE]
    too_short = [Rejection(str(raw / row.source), row.cell_key, row.reason)
                 for row in user.itertuples() if not row.predictable]
    predictable = user.loc[user["predictable"]].groupby("source").size()
    report = report_rejections(context.log, "cycling_cycle_summary", too_short,
                               {str(raw / source): int(predictable.get(source, 0)) for source in user["source"].unique()})
    # The check is on the user's instrument files; the embedded synthetic cells are summarised but not held to it
    # (their simulator scales the charge capacity by the faded capacity, the charge current by the nominal one).
    measured = summary.loc[summary["source"] != unified.SYNTHETIC_SOURCE]
    share = summary_science.consistent_share(measured)
    verdicts = measured["capacity_check"].value_counts()
    inconsistent = measured.loc[measured["capacity_check"] == "inconsistent"]
    yield dg.Output(summary, metadata={
        "n_cells": len(cells),
        "n_cycles": len(summary),
        "n_cells_predictable": int(cells["predictable"].sum()),
        "n_cells_too_short": int((~cells["predictable"]).sum()),
        "cells": dg.MetadataValue.md(table_markdown(cells[["source", "cell_key", "n_cycles", "predictable", "reason"]],
                                                    rows=50)),
        "n_cycles_capacity_checked": int(len(measured) - verdicts.get("not checked", 0)),
        "n_cycles_capacity_inconsistent": int(verdicts.get("inconsistent", 0)),
        "capacity_consistent_share": round(share, 4),
        "inconsistent_cycles": dg.MetadataValue.md(
            table_markdown(inconsistent[["source", "cell_key", "cycle_number", "charge_capacity_ah",
                                         "charge_integral_ah", "discharge_capacity_ah", "discharge_integral_ah"]],
                           rows=20) if len(inconsistent) else "none"),
        "quarantine_file": report.quarantine_path,
        "preview": dg.MetadataValue.md(table_markdown(summary, rows=8)),
    })
    yield dg.AssetCheckResult(
        check_name="capacity_consistent", passed=share >= config.min_consistent_share,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"capacity_consistent_share": round(share, 4), "bound": config.min_consistent_share,
                  "n_cycles_inconsistent": int(verdicts.get("inconsistent", 0)),
                  "files_with_inconsistent_cycles": ", ".join(sorted(inconsistent["source"].unique())[:20]) or "none"},
    )


defs = dg.Definitions(
    assets=[cycling_synthetic_cells, cycling_unified, cycling_cycle_summary, cycling_split, cycling_corpus,
            cycling_tokenizer, multiscale_encoder, cycling_embeddings, cycle_life_model, cycling_life_predictions],
)

TRAINING_ASSETS = [cycling_split, cycling_corpus, cycling_tokenizer, multiscale_encoder, cycling_embeddings,
                   cycle_life_model]
# cycling_job: the everyday path, dropped files to predicted lives with the current frozen model (no training,
# so it runs on cells of unknown life alone); cycling_training_job: the whole group, training then predicting.
job_selection = dg.AssetSelection.groups(PIPELINE) - dg.AssetSelection.assets(*TRAINING_ASSETS)
extra_jobs = {"cycling_training_job": (dg.AssetSelection.groups(PIPELINE),
                                       "Train, select and freeze a cycle-life model on the labelled cells, then predict.")}
