"""Throughput of the cycling pipeline's text and encoder stages.

    python -m benchmarks.cycling_encoder          # demo-sized, about a minute on 2 cores
    python -m benchmarks.cycling_encoder --full   # 124 cells, the paper-scale encoder shape

Throughput only (issue 17: there is no tool anyone uses to compare the corpus against, so no ratio):
corpus build (unified rows per second, both representations: time-step text and the Q(V)-difference
documents), tokenizer throughput (tokens per second, batch encode with the trained fast tokenizer) and
encoder training throughput (non-padding tokens per second, after 2 warm-up steps) on the CPU and, when
torch sees one, on the GPU. Every figure is the best of 3 warm runs. The time-step corpus is checked
(untimed) against Python's own %-formatting row by row; a mismatch exits 1. The last line is the
headline: encoder training tokens per second on the CPU.
"""

from __future__ import annotations

import argparse
import sys
import time


def best_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def python_loop_corpus(frame, columns, cycles_per_document: int) -> list[str]:
    """Correctness reference: the obvious per-row loop, one f-string per value (same documents as ours)."""
    from assets.cycling.corpus import DEFAULT_PRECISION, TIME_SEPARATOR, VALUE_SEPARATOR

    documents: dict[tuple, list[str]] = {}
    cycles_seen: dict[str, list[int]] = {}
    for row in frame.itertuples(index=False):
        seen = cycles_seen.setdefault(row.cell_key, [])
        if not seen or seen[-1] != row.cycle_number:
            seen.append(row.cycle_number)
        values = VALUE_SEPARATOR.join(f"{getattr(row, c):.{DEFAULT_PRECISION[c]}f}" for c in columns)
        documents.setdefault((row.cell_key, (len(seen) - 1) // cycles_per_document), []).append(values)
    return [TIME_SEPARATOR.join(steps) for steps in documents.values()]


def training_tokens_per_second(ids, mask, vocab, shape, device: str, steps: int) -> float:
    import torch

    from assets.cycling import encoder

    torch.manual_seed(0)
    model = encoder.MultiscaleEncoder(shape)
    warm = encoder.TrainingSettings(steps=2, batch_size=8, eval_every=10**9)
    quiet = dict(on_checkpoint=None, log=lambda _: None)
    encoder.pretrain(model, (ids, mask), (ids[:1], mask[:1]), vocab, warm, torch.device(device), **quiet)
    settings = encoder.TrainingSettings(steps=steps, batch_size=8, eval_every=10**9)
    best = 0.0
    for _ in range(3):
        history = encoder.pretrain(model, (ids, mask), (ids[:1], mask[:1]), vocab, settings, torch.device(device),
                                   **quiet)
        # pretrain evaluates once at the last step; its time is in elapsed_s but small against `steps` steps.
        best = max(best, float(history["tokens_seen"].iloc[-1] / history["elapsed_s"].iloc[-1]))
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="124 cells and the paper-scale encoder shape")
    args = parser.parse_args()
    import torch

    from assets.cycling import corpus, encoder, tokenizer, unified
    from assets.cycling.split import split_by_ratio
    from assets.cycling.synthetic import synthetic_batch

    n_cells, steps = (124, 20) if args.full else (40, 10)
    shape_args = (dict(hidden_size=128, local_layers=2, global_layers=2, attention_heads=4, intermediate_size=256,
                       max_windows=32) if args.full else dict(max_windows=16))
    frame, _ = unified.severson_frame(synthetic_batch(n_cells, detail_stride=10, points_per_cycle=80), "bench")
    table, _ = unified.unify([frame], min_cycles=3)
    split = split_by_ratio(sorted(table["cell_key"].unique()), (0.6, 0.2, 0.2), seed=0)
    columns = ["voltage", "current", "discharge_capacity", "temperature"]

    def build():
        return corpus.build_corpus(table, split, columns, {}, cycles_per_document=2, step_stride=1,
                                   last_cycle=0, seed=0)

    build()  # warm-up
    ours_s = best_seconds(build, 3)
    documents = build()
    texts = documents["text"].tolist()
    if sorted(texts) != sorted(python_loop_corpus(table, columns, 2)):  # correctness only, not timed
        print("corpus differs from Python's own %-formatting", file=sys.stderr)
        return 1

    def build_difference():
        return corpus.build_difference_corpus(table, split, 10, [20, 40, 60, 80, 100], 24, 1, 0, seed=0)

    build_difference()
    difference_s = best_seconds(build_difference, 3)
    tok = tokenizer.train_tokenizer(texts, vocab_size=64)
    encode_s = best_seconds(lambda: tokenizer.encode(tok, texts), 3)
    token_ids = tokenizer.encode(tok, texts)
    n_tokens = sum(len(ids) for ids in token_ids)
    shape = encoder.EncoderShape(vocab_size=len(tok), pad_token_id=tok.pad_token_id, dropout=0.0, **shape_args)
    ids, mask, _ = encoder.to_windows(token_ids, shape.window_tokens, shape.max_windows, tok.pad_token_id)
    vocab = encoder.Vocabulary.from_tokenizer(tok)

    print(f"unified_rows: {len(table)}")
    print(f"documents: {len(documents)}")
    print(f"corpus_rows_per_s: {len(table) / ours_s:.0f}")
    print(f"difference_corpus_rows_per_s: {len(table) / difference_s:.0f}")
    print(f"tokenizer_tokens_per_s: {n_tokens / encode_s:.0f}")
    print(f"encoder_parameters: {sum(p.numel() for p in encoder.MultiscaleEncoder(shape).parameters())}")
    cpu = training_tokens_per_second(ids, mask, vocab, shape, "cpu", steps)
    if torch.cuda.is_available():
        gpu = training_tokens_per_second(ids, mask, vocab, shape, "cuda", steps)
        print(f"encoder_train_tokens_per_s_gpu: {gpu:.0f}")
        print(f"encoder_gpu_over_cpu: {gpu / cpu:.2f}")
    print(f"encoder_train_tokens_per_s_cpu: {cpu:.0f}")
    return 0


if __name__ == "__main__":
    from benchmarks import results

    raise SystemExit(results.run(main, "cycling_encoder"))
