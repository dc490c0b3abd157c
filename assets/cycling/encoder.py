"""Multiscale encoder: a local transformer over fixed-length token windows, pooled
to one vector per window, then a global transformer over the window sequence.

Both encoders are transformers' BERT encoder stacks (BertModel without pooler);
the global one takes the pooled window vectors as `inputs_embeds`, so it adds
its own window-position embeddings. Pretraining is masked-token prediction from
[token state ; its window's global state], with cross-entropy, optionally mixed
with the number-token loss of Zausinger et al. (ICML 2025, "Regress, Don't
Guess"): the squared error between a masked digit and the digit expected under
the predicted distribution over digit tokens.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from transformers import BertConfig, BertModel

from resources.devices import is_gpu, training_batch_size
from resources.datapaths import atomic_write_bytes


POOLINGS = ("mean", "mean_max", "windows", "tokens")


@dataclass(frozen=True)
class EncoderShape:
    vocab_size: int
    pad_token_id: int
    window_tokens: int = 64
    max_windows: int = 32
    hidden_size: int = 32
    local_layers: int = 1
    global_layers: int = 1
    attention_heads: int = 2
    intermediate_size: int = 64
    dropout: float = 0.1


@dataclass(frozen=True)
class TrainingSettings:
    steps: int = 60
    batch_size: int = 8
    learning_rate: float = 1e-3
    mask_probability: float = 0.15
    number_loss_weight: float = 0.1  # 0: cross-entropy only
    eval_every: int = 20  # steps between validation losses and checkpoints
    seed: int = 0
    cuda_batch_size: int = 256  # at least this batch on a GPU (a small model leaves it idle otherwise); 0: batch_size


def _bert(shape: EncoderShape, layers: int, positions: int, vocab_size: int, pad_token_id: int) -> BertModel:
    config = BertConfig(
        vocab_size=vocab_size, hidden_size=shape.hidden_size, num_hidden_layers=layers,
        num_attention_heads=shape.attention_heads, intermediate_size=shape.intermediate_size,
        max_position_embeddings=positions, type_vocab_size=1, pad_token_id=pad_token_id,
        hidden_dropout_prob=shape.dropout, attention_probs_dropout_prob=shape.dropout,
    )
    return BertModel(config, add_pooling_layer=False)


class MultiscaleEncoder(torch.nn.Module):
    def __init__(self, shape: EncoderShape):
        super().__init__()
        self.shape = shape
        self.local_encoder = _bert(shape, shape.local_layers, shape.window_tokens, shape.vocab_size,
                                   shape.pad_token_id)
        # The global encoder reads window vectors, never token ids: a one-entry vocabulary.
        self.global_encoder = _bert(shape, shape.global_layers, shape.max_windows, 1, 0)
        hidden = shape.hidden_size
        self.mlm_head = torch.nn.Sequential(
            torch.nn.Linear(2 * hidden, hidden), torch.nn.GELU(), torch.nn.LayerNorm(hidden),
            torch.nn.Linear(hidden, shape.vocab_size),
        )

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        """ids and mask (batch, windows, window_tokens) -> token states (b, w, t, h),
        window states (b, w, h) and the mask of windows holding any token (b, w)."""
        batch, windows, tokens = input_ids.shape
        window_mask = attention_mask.bool().any(-1)
        real = window_mask.reshape(-1)  # all-padding windows skip the local encoder
        local = self.local_encoder(input_ids=input_ids.reshape(-1, tokens)[real],
                                   attention_mask=attention_mask.reshape(-1, tokens)[real]).last_hidden_state
        token_states = local.new_zeros(batch * windows, tokens, self.shape.hidden_size)
        token_states[real] = local
        token_states = token_states.view(batch, windows, tokens, -1)
        weights = attention_mask.unsqueeze(-1).to(local.dtype)
        pooled = (token_states * weights).sum(2) / weights.sum(2).clamp(min=1.0)
        window_states = self.global_encoder(inputs_embeds=pooled,
                                            attention_mask=window_mask.long()).last_hidden_state
        return token_states, window_states, window_mask

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                positions: torch.Tensor | None = None) -> torch.Tensor:
        """Token logits (b, w, t, vocab), or (n, vocab) at the True entries of positions."""
        token_states, window_states, _ = self.encode(input_ids, attention_mask)
        features = torch.cat([token_states, window_states.unsqueeze(2).expand_as(token_states)], dim=-1)
        return self.mlm_head(features if positions is None else features[positions])

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pooling: str = "mean") -> torch.Tensor:
        """Document embeddings over real windows, by `pooling` (see POOLINGS):
        mean (b, h) of the global window states; mean_max (b, 2h) their mean and maximum;
        windows (b, w*h) every window state in order (padding windows zero), so a window's place
        (its cycles) is kept; tokens (b, h) the mean of the local token states (the global encoder skipped)."""
        token_states, window_states, window_mask = self.encode(input_ids, attention_mask)
        weights = window_mask.unsqueeze(-1).to(window_states.dtype)
        mean = (window_states * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        if pooling == "mean":
            return mean
        if pooling == "mean_max":
            largest = window_states.masked_fill(~window_mask.unsqueeze(-1), float("-inf")).amax(1)
            return torch.cat([mean, torch.nan_to_num(largest, neginf=0.0)], dim=-1)
        if pooling == "windows":
            return (window_states * weights).flatten(1)
        if pooling == "tokens":
            token_weights = attention_mask.unsqueeze(-1).to(token_states.dtype)
            return (token_states * token_weights).sum((1, 2)) / token_weights.sum((1, 2)).clamp(min=1.0)
        raise ValueError(f"unknown pooling {pooling!r}; expected one of {POOLINGS}")


def to_windows(token_ids: list[list[int]], window_tokens: int, max_windows: int,
               pad_token_id: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Cut each document into windows: ids and mask (docs, windows, window_tokens), and how many
    documents were truncated to max_windows windows."""
    longest = max((len(ids) for ids in token_ids), default=1)
    n_windows = min(max_windows, max(1, -(-longest // window_tokens)))
    capacity = n_windows * window_tokens
    ids = np.full((len(token_ids), capacity), pad_token_id, dtype=np.int64)
    mask = np.zeros((len(token_ids), capacity), dtype=np.int64)
    for row, document in enumerate(token_ids):
        kept = document[:capacity]
        ids[row, : len(kept)] = kept
        mask[row, : len(kept)] = 1
    truncated = sum(len(document) > capacity for document in token_ids)
    shape = (len(token_ids), n_windows, window_tokens)
    return ids.reshape(shape), mask.reshape(shape), truncated


def mask_tokens(ids: torch.Tensor, attention_mask: torch.Tensor, special_ids: torch.Tensor, mask_token_id: int,
                vocab_size: int, probability: float, generator: torch.Generator):
    """BERT masking: of the chosen non-special tokens 80 % -> [MASK], 10 % -> random, 10 % kept.
    Returns (masked ids, chosen positions)."""
    draw = torch.rand(ids.shape, generator=generator, device=ids.device)
    maskable = attention_mask.bool() & ~torch.isin(ids, special_ids)
    chosen = maskable & (draw < probability)
    if not chosen.any():  # tiny batches: always train on at least one token
        first = maskable.reshape(-1).nonzero()[:1]
        chosen.view(-1)[first] = True
    how = torch.rand(ids.shape, generator=generator, device=ids.device)
    random_ids = torch.randint(vocab_size, ids.shape, generator=generator, device=ids.device)
    masked = torch.where(chosen & (how < 0.8), torch.full_like(ids, mask_token_id), ids)
    masked = torch.where(chosen & (how >= 0.8) & (how < 0.9), random_ids, masked)
    return masked, chosen


def number_token_loss(logits: torch.Tensor, labels: torch.Tensor, digit_ids: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the true digit and the expected digit under softmax over digit tokens.

    digit_ids[d] is the token id of digit d; labels that are not digits do not count.
    """
    is_digit = torch.isin(labels, digit_ids)
    if not is_digit.any():
        return logits.new_zeros(())
    values = torch.arange(len(digit_ids), dtype=logits.dtype, device=logits.device)
    probabilities = torch.softmax(logits[is_digit][:, digit_ids], dim=-1)
    expected = probabilities @ values
    true = (labels[is_digit].unsqueeze(-1) == digit_ids).to(logits.dtype) @ values
    return torch.mean((expected - true) ** 2)


@dataclass
class Vocabulary:
    """What the losses need to know about the tokenizer."""

    mask_token_id: int
    special_ids: list[int]
    digit_ids: list[int]  # token id of digit 0..9, in order (empty: no number-token loss)

    @classmethod
    def from_tokenizer(cls, tokenizer) -> "Vocabulary":
        from assets.cycling.tokenizer import digit_token_ids

        return cls(tokenizer.mask_token_id, list(tokenizer.all_special_ids), digit_token_ids(tokenizer))


def masked_lm_losses(model: MultiscaleEncoder, ids: torch.Tensor, mask: torch.Tensor, vocab: Vocabulary,
                     settings: TrainingSettings, generator: torch.Generator) -> dict[str, torch.Tensor]:
    special = torch.tensor(vocab.special_ids, device=ids.device)
    masked, positions = mask_tokens(ids, mask, special, vocab.mask_token_id, model.shape.vocab_size,
                                    settings.mask_probability, generator)
    logits = model(masked, mask, positions)
    labels = ids[positions]
    cross_entropy = torch.nn.functional.cross_entropy(logits, labels)
    number = (number_token_loss(logits, labels, torch.tensor(vocab.digit_ids, device=ids.device))
              if vocab.digit_ids and settings.number_loss_weight > 0 else logits.new_zeros(()))
    return {"loss": cross_entropy + settings.number_loss_weight * number,
            "cross_entropy": cross_entropy, "number_loss": number}


def mixed_precision(device: torch.device):
    """bfloat16 autocast on a GPU (no loss scaling needed; softmax and losses stay float32); off on the CPU."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=is_gpu(device))


def validation_loss(model, ids, mask, vocab, settings, device) -> float:
    """Mean masked-LM loss over the validation documents, with fixed masks (seeded per call)."""
    model.eval()
    generator = torch.Generator(device=device).manual_seed(settings.seed + 1)
    losses = []
    with torch.no_grad(), mixed_precision(device):
        for start in range(0, len(ids), settings.batch_size):
            batch = slice(start, start + settings.batch_size)
            losses.append(float(masked_lm_losses(model, ids[batch].to(device), mask[batch].to(device), vocab,
                                                 settings, generator)["loss"]))
    model.train()
    return float(np.mean(losses)) if losses else float("nan")


def pretrain(model: MultiscaleEncoder, train: tuple[np.ndarray, np.ndarray], validation: tuple[np.ndarray, np.ndarray],
             vocab: Vocabulary, settings: TrainingSettings, device: torch.device,
             on_checkpoint: Callable[[int, float], None] | None = None,
             log: Callable[[str], None] = print) -> pd.DataFrame:
    """Masked-token pretraining; one history row per step (validation loss every eval_every steps).
    On a GPU: bfloat16 autocast and batches of at least settings.cuda_batch_size documents."""
    model.to(device).train()
    train_ids, train_mask = (torch.from_numpy(a) for a in train)
    val_ids, val_mask = (torch.from_numpy(a) for a in validation)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate)
    order_rng = np.random.default_rng(settings.seed)
    generator = torch.Generator(device=device).manual_seed(settings.seed)
    batch_size = min(training_batch_size(settings.batch_size, device, settings.cuda_batch_size), len(train_ids))
    rows, tokens_seen, start = [], 0, time.perf_counter()
    for step in range(1, settings.steps + 1):
        batch = order_rng.choice(len(train_ids), size=batch_size, replace=False)
        ids, mask = train_ids[batch].to(device), train_mask[batch].to(device)
        with mixed_precision(device):
            losses = masked_lm_losses(model, ids, mask, vocab, settings, generator)
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
        tokens_seen += int(train_mask[batch].sum())  # counted on the host copy: no wait for the device
        row = {"step": step, **{k: float(v.detach()) for k, v in losses.items()}, "validation_loss": float("nan"),
               "tokens_seen": tokens_seen, "elapsed_s": time.perf_counter() - start}
        if step % settings.eval_every == 0 or step == settings.steps:
            row["validation_loss"] = validation_loss(model, val_ids, val_mask, vocab, settings, device)
            log(f"step {step}/{settings.steps}: loss {row['loss']:.3f}, validation {row['validation_loss']:.3f}")
            if on_checkpoint:
                on_checkpoint(step, row["validation_loss"])
        rows.append(row)
    model.eval()
    return pd.DataFrame(rows)


def embed_documents(model: MultiscaleEncoder, ids: np.ndarray, mask: np.ndarray, device: torch.device,
                    batch_size: int = 16, pooling: str = "mean") -> np.ndarray:
    """Document embeddings (docs, size by pooling) in eval mode."""
    model.to(device).eval()
    parts = []
    with torch.no_grad():
        for start in range(0, len(ids), batch_size):
            batch = slice(start, start + batch_size)
            parts.append(model.embed(torch.from_numpy(ids[batch]).to(device),
                                     torch.from_numpy(mask[batch]).to(device), pooling).cpu().numpy())
    return np.concatenate(parts) if parts else np.zeros((0, model.shape.hidden_size), dtype=np.float32)


def save_checkpoint(model: MultiscaleEncoder, step: int, path: Path) -> Path:
    """state_dict and step, written atomically."""
    buffer = io.BytesIO()
    torch.save({"step": step, "state_dict": model.state_dict()}, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def loss_curve_markdown(history: pd.DataFrame) -> str:
    from resources.plots import figure_markdown, new_figure

    fig, axes = new_figure()
    ax = axes[0][0]
    ax.plot(history["step"], history["loss"], lw=1, label="train (batch)")
    evaluated = history.dropna(subset=["validation_loss"])
    ax.plot(evaluated["step"], evaluated["validation_loss"], "o-", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("masked-token loss")
    ax.legend()
    return figure_markdown(fig, "loss curve")
