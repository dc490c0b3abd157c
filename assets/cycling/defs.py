"""Dagster wiring of the `cycling` pipeline (science lives in the sibling modules).

cycling_synthetic_cells -> cycling_unified -> cycling_split -> cycling_corpus -> cycling_tokenizer
-> multiscale_encoder -> cycling_embeddings -> cycle_life_model
"""

import time
import uuid
from typing import Literal

import dagster as dg
import pandas as pd

from assets.cycling import corpus as corpus_science
from assets.cycling import split as split_science
from assets.cycling import synthetic, unified
from resources.compute import ComputeResource
from resources.datapaths import raw_dir, storage_dir, write_export_csv, write_quarantine
from resources.storage import Hdf5Tree
from resources.plots import table_markdown

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
    min_cycles: int = 3  # cells with fewer valid cycles are rejected
    charge_capacity_smoothing_window: int = 0  # time steps of a centred rolling mean; <2: off
    time_cutoff_min: float | None = None  # keep time steps within this many minutes of the cycle start
    max_rejected_share: float = 0.2  # blocking check on rejected files + cells


@dg.asset(
    group_name=PIPELINE,
    check_specs=[dg.AssetCheckSpec("rejected_share_within_bound", asset="cycling_unified", blocking=True)],
)
def cycling_unified(context: dg.AssetExecutionContext, config: UnifiedConfig, cycling_synthetic_cells: Hdf5Tree):
    """Every source (raw pickles and CSVs, and the synthetic cells) in the unified schema, validated."""
    paths = unified.raw_files(raw_dir(PIPELINE))
    frames, rejections, time_origins = unified.read_files(paths)
    use_synthetic = config.synthetic == "always" or (config.synthetic == "auto" and not paths)
    if use_synthetic:
        frame, rejected = unified.severson_frame(synthetic.tree_to_batch(cycling_synthetic_cells),
                                                 "cycling_synthetic_cells")
        frames.append(frame)
        rejections += rejected
    table, invalid = unified.unify(frames, config.min_cycles, config.charge_capacity_smoothing_window,
                                   config.time_cutoff_min)
    rejections += invalid
    if rejections:
        write_quarantine(PIPELINE, rejections)
    share = unified.rejected_cell_share(table, rejections)
    yield dg.Output(table, metadata={
        "n_rows": len(table),
        "n_cells": int(table["cell_key"].nunique()),
        "n_cycles": int(table.groupby("cell_key")["cycle_number"].nunique().sum()),
        "sources": ", ".join(sorted(table["source"].unique())) or "none",
        "signals_present": ", ".join(unified.signals_present(table)),
        "csv_time_origin": str(time_origins),
        "n_rejections": len(rejections),
        "rejected_cell_share": share,
        "preview": dg.MetadataValue.md(table_markdown(table, rows=8)),
    })
    # No valid cell at all also fails the check: downstream assets would have nothing to learn from.
    yield dg.AssetCheckResult(
        check_name="rejected_share_within_bound", passed=bool(len(table)) and share <= config.max_rejected_share,
        metadata={"rejected_cell_share": share, "bound": config.max_rejected_share, "n_rows": len(table),
                  "first_reasons": "; ".join(f"{r.source}/{r.row}: {r.reason}" for r in rejections[:5])},
    )


class SplitConfig(dg.Config):
    train: float = 0.6
    validation: float = 0.2
    test: float = 0.2
    split_file: str = ""  # JSON {"train": [cells], "validation": [...], "test": [...]}; overrides the ratios


@dg.asset(group_name=PIPELINE)
def cycling_split(context: dg.AssetExecutionContext, config: SplitConfig, compute: ComputeResource,
                  cycling_unified):
    """Cells to train / validation / test, stored once and reused by every downstream asset."""
    cells = sorted(cycling_unified["cell_key"].unique())
    if config.split_file:
        split, rejections = split_science.split_from_json(cells, config.split_file)
        if rejections:
            write_quarantine(PIPELINE, rejections)
    else:
        split = split_science.split_by_ratio(cells, (config.train, config.validation, config.test), compute.seed)
    counts = split["split"].value_counts()
    context.add_output_metadata({f"n_{name}": int(counts.get(name, 0)) for name in split_science.SPLITS}
                                | {"source": config.split_file or "ratios"})
    return split


class CorpusConfig(dg.Config):
    columns: list[str] = ["voltage", "current", "discharge_capacity", "temperature"]
    precision: dict[str, int] = {}  # decimals per column; missing ones use corpus.DEFAULT_PRECISION
    cycles_per_document: int = 2
    time_step_stride: int = 8  # keep every n-th time step of each cycle
    last_cycle: int = 100  # 0: all cycles


@dg.asset(group_name=PIPELINE)
def cycling_corpus(context: dg.AssetExecutionContext, config: CorpusConfig, compute: ComputeResource,
                   cycling_unified, cycling_split):
    """Text documents, one per cell and window of cycles, in shuffled order."""
    present = unified.signals_present(cycling_unified)
    columns = [c for c in config.columns if c in present]
    if not columns:
        raise dg.Failure(f"none of the corpus columns {config.columns} is present; signals present: {present}")
    start = time.perf_counter()
    documents = corpus_science.build_corpus(cycling_unified, cycling_split, columns, config.precision,
                                            config.cycles_per_document, config.time_step_stride,
                                            config.last_cycle, compute.seed)
    seconds = time.perf_counter() - start
    counts = documents["split"].value_counts()
    context.add_output_metadata({
        "columns": ", ".join(columns),
        "columns_absent": ", ".join(c for c in config.columns if c not in present) or "none",
        "n_documents": len(documents),
        **{f"n_{name}_documents": int(counts.get(name, 0)) for name in split_science.SPLITS},
        "mean_characters": float(documents["text"].str.len().mean()) if len(documents) else 0.0,
        "rows_per_second": float(len(cycling_unified) / seconds),
        "example": dg.MetadataValue.text(documents["text"].iloc[0][:400] if len(documents) else ""),
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

    split = cycling_corpus["split"].to_numpy()
    history = encoder.pretrain(model, (ids[split == "train"], mask[split == "train"]),
                               (ids[split == "validation"], mask[split == "validation"]), vocab, settings,
                               device, on_checkpoint=save, log=context.log.info)
    last = history.iloc[-1]
    context.add_output_metadata({
        "model_id": model_id,
        "device": str(device),
        "parameters": sum(p.numel() for p in model.parameters()),
        "windows_shape": str(list(ids.shape)),
        "documents_truncated": truncated,
        "final_train_loss": float(last["loss"]),
        "final_validation_loss": float(last["validation_loss"]),
        "train_tokens_per_second": float(last["tokens_seen"] / last["elapsed_s"]),
        "number_token_loss": bool(vocab.digit_ids) and settings.number_loss_weight > 0,
        "loss_curve": dg.MetadataValue.md(encoder.loss_curve_markdown(history)),
        "checkpoints": dg.MetadataValue.md(table_markdown(pd.DataFrame(checkpoints))),
    })
    return {"model": model.cpu(), "model_id": model_id, "history": history,
            "settings": {"shape": vars(shape), "training": vars(settings)}}


@dg.asset(group_name=PIPELINE)
def cycling_embeddings(context: dg.AssetExecutionContext, compute: ComputeResource, multiscale_encoder: dict,
                       cycling_corpus, cycling_tokenizer, cycling_unified):
    """One embedding per cell and window of cycles, joined with cycle_life and capacity."""
    from assets.cycling import encoder
    from assets.cycling.lifemodel import embedding_table

    model = multiscale_encoder["model"]
    ids, mask, _ = _token_windows(cycling_corpus, cycling_tokenizer, model.shape.window_tokens,
                                  model.shape.max_windows)
    vectors = encoder.embed_documents(model, ids, mask, compute.torch_device())
    table = embedding_table(cycling_corpus, vectors, cycling_unified, multiscale_encoder["model_id"])
    context.add_output_metadata({
        "n_documents": len(table),
        "n_cells": int(table["cell_key"].nunique()),
        "embedding_size": vectors.shape[1],
        "model_id": multiscale_encoder["model_id"],
        "preview": dg.MetadataValue.md(table_markdown(table.iloc[:, :10], rows=8)),
    })
    return table


class LifeModelConfig(dg.Config):
    first_cycles: int = 100  # embeddings of windows ending at or before this cycle
    early_cycle: int = 10  # Severson dQ = Qdlin(late) - Qdlin(early)
    late_cycle: int = 100


@dg.asset(group_name=PIPELINE)
def cycle_life_model(context: dg.AssetExecutionContext, config: LifeModelConfig, cycling_embeddings,
                     cycling_unified, cycling_split) -> dict:
    """Embedding regressor vs Severson's variance and discharge models, on the stored split."""
    from assets.cycling import lifemodel
    from resources.plots import parity_markdown

    severson = lifemodel.severson_features(cycling_unified, config.early_cycle, config.late_cycle)
    feature_sets = {
        "embedding": lifemodel.embedding_features(cycling_embeddings, config.first_cycles),
        "severson_variance": severson[lifemodel.VARIANCE_FEATURES],
        "severson_discharge": severson[lifemodel.DISCHARGE_FEATURES],
    }
    targets = cycling_unified.groupby("cell_key", as_index=False)["cycle_life"].first().merge(cycling_split)
    cells, rejections = lifemodel.scored_cells(targets, feature_sets, "cycle_life_model")
    if rejections:
        write_quarantine(PIPELINE, rejections)
    if cells["split"].eq("train").sum() < 2:
        raise dg.Failure(f"{cells['split'].eq('train').sum()} scorable training cells; need at least 2 "
                         f"({len(rejections)} cells left out, see data/quarantine/{PIPELINE}.csv)")
    result = lifemodel.fit_and_score(cells, feature_sets)
    model_id = str(uuid.uuid4())
    predictions = result["predictions"].assign(model_id=model_id,
                                               encoder_model_id=cycling_embeddings["model_id"].iloc[0])
    write_export_csv(predictions, "cycling_cycle_life_predictions.csv")
    write_export_csv(result["metrics"], "cycling_cycle_life_metrics.csv")
    test = predictions.loc[predictions["split"] == "test"]
    parity = "\n\n".join(f"**{name}** (test)\n\n" + parity_markdown(group["cycle_life"].to_numpy(),
                                                                     group["predicted_cycle_life"].to_numpy(),
                                                                     "cycle life")
                         for name, group in test.groupby("model", sort=False))
    context.add_output_metadata({
        "model_id": model_id,
        "n_cells_scored": len(cells),
        "n_cells_left_out": len(rejections),
        "alphas": str(result["alphas"]),
        "metrics": dg.MetadataValue.md(table_markdown(result["metrics"])),
        **{f"test_mape_percent_{row.model}": float(row.mape_percent)
           for row in result["metrics"].itertuples() if row.split == "test"},
        "parity_test": dg.MetadataValue.md(parity),
    })
    return {**{f"{name}_model": model for name, model in result["models"].items()},
            "model_id": model_id, "metrics": result["metrics"], "predictions": predictions,
            "settings": {"alphas": result["alphas"], **config.model_dump()}}


defs = dg.Definitions(
    assets=[cycling_synthetic_cells, cycling_unified, cycling_split, cycling_corpus, cycling_tokenizer,
            multiscale_encoder, cycling_embeddings, cycle_life_model],
)
