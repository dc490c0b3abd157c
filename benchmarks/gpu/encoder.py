"""benchmarks.gpu section encoder: masked-token pretraining of the cycling MultiscaleEncoder."""

from __future__ import annotations

import numpy as np

from benchmarks.gpu.harness import (
    ENCODER_LOGIT_TOLERANCE,
    Context,
    cpu_threads,
    synchronize,
)


def encoder_setup(shape_overrides: dict, documents: int, seed: int):
    from assets.cycling import encoder

    vocab_size = 64
    shape = encoder.EncoderShape(vocab_size=vocab_size, pad_token_id=0, dropout=0.0, **shape_overrides)
    vocab = encoder.Vocabulary(mask_token_id=2, special_ids=[0, 1, 2, 3], digit_ids=list(range(4, 14)))
    rng = np.random.default_rng(seed)
    capacity = shape.window_tokens * shape.max_windows
    token_ids = [rng.integers(4, vocab_size, int(rng.integers(capacity // 2, capacity + 1))).tolist()
                 for _ in range(documents)]
    ids, mask, _ = encoder.to_windows(token_ids, shape.window_tokens, shape.max_windows, shape.pad_token_id)
    return shape, vocab, ids, mask


def encoder_rate(shape, vocab, ids, mask, device: str, batch: int, steps: int) -> float:
    """Non-padding tokens per second of `steps` pretraining steps, after a 2-step warm-up."""
    import torch

    from assets.cycling import encoder

    quiet = dict(on_checkpoint=None, log=lambda _: None)
    torch.manual_seed(0)
    model = encoder.MultiscaleEncoder(shape)
    validation = (ids[:1], mask[:1])
    # cuda_batch_size 0: the named batch on both sides (pretrain's bfloat16 autocast stays on where it would be)
    warm = encoder.TrainingSettings(steps=2, batch_size=batch, eval_every=10**9, cuda_batch_size=0)
    encoder.pretrain(model, (ids, mask), validation, vocab, warm, torch.device(device), **quiet)
    settings = encoder.TrainingSettings(steps=steps, batch_size=batch, eval_every=10**9, cuda_batch_size=0)
    synchronize(device)
    history = encoder.pretrain(model, (ids, mask), validation, vocab, settings, torch.device(device), **quiet)
    synchronize(device)
    if not np.isfinite(history["loss"]).all():
        raise FloatingPointError(f"non-finite pretraining loss on {device} at batch {batch}")
    return float(history["tokens_seen"].iloc[-1] / history["elapsed_s"].iloc[-1])


def section_encoder(ctx: Context) -> None:
    import torch

    from assets.cycling import encoder
    from resources.devices import is_gpu

    report, sizes, section = ctx.report, ctx.sizes, "encoder"
    largest = max(sizes.encoder_batches + ((sizes.encoder_scale_batch,) if ctx.two_sides else ()))
    shape, vocab, ids, mask = encoder_setup(sizes.encoder_shape, max(2 * largest, 16), seed=0)
    torch.manual_seed(0)
    parameters = sum(p.numel() for p in encoder.MultiscaleEncoder(shape).parameters())
    report.figure(section, "parameters", parameters, f"hidden {shape.hidden_size}, windows {shape.max_windows} x "
                                                     f"{shape.window_tokens} tokens")
    report.figure(section, "steps_each_side", sizes.encoder_steps, "same batches, after 2 warm-up steps")
    report.figure(section, "device_mixed_precision", is_gpu(ctx.device), "pretrain's bfloat16 autocast; CPU float32")
    rates = {}
    with cpu_threads(ctx.n_cores):
        for batch in sizes.encoder_batches:
            for role, torch_device in ctx.sides():
                rates[role, batch] = encoder_rate(shape, vocab, ids, mask, torch_device, batch, sizes.encoder_steps)
                where = f"torch on {torch_device}" + (f", {ctx.n_cores} threads" if torch_device == "cpu" else "")
                report.figure(section, f"{role}_tokens_per_s_batch_{batch}", rates[role, batch], where)
    if ctx.two_sides:
        batch = max(sizes.encoder_batches)
        report.speedup(section, rates["device", batch], rates["cpu", batch],
                       f"batch {batch}, {sizes.encoder_steps} steps each side")

        def scale():
            if ctx.scale_allowed(section, f"batch_{sizes.encoder_scale_batch}", 30.0):
                rate = encoder_rate(shape, vocab, ids, mask, ctx.device, sizes.encoder_scale_batch,
                                    sizes.encoder_steps)
                report.figure(section, f"scale_batch_{sizes.encoder_scale_batch}_device_tokens_per_s", rate)

        if sizes.encoder_scale_batch:
            ctx.defer(section, scale)
    # Agreement: the same weights give the same logits on the device and on the CPU.
    torch.manual_seed(0)
    model = encoder.MultiscaleEncoder(shape).eval()
    probe_ids, probe_mask = torch.from_numpy(ids[:4]), torch.from_numpy(mask[:4])
    with torch.no_grad():
        expected = model(probe_ids, probe_mask).numpy()
        actual = model.to(ctx.device)(probe_ids.to(ctx.device), probe_mask.to(ctx.device)).cpu().numpy()
    report.agreement(section, [("logit_max_abs_difference_device_vs_cpu", float(np.abs(actual - expected).max()),
                                ENCODER_LOGIT_TOLERANCE)])
