"""The multiscale encoder: shapes, padding invariance, a backward pass, the losses in closed form."""

import numpy as np
import pytest
import torch

from assets.cycling import encoder

SHAPE = encoder.EncoderShape(vocab_size=20, pad_token_id=0, window_tokens=8, max_windows=4, hidden_size=16,
                             attention_heads=2, intermediate_size=32, dropout=0.0)
VOCAB = encoder.Vocabulary(mask_token_id=2, special_ids=[0, 1, 2, 3], digit_ids=list(range(8, 18)))


@pytest.fixture
def model():
    torch.manual_seed(0)
    return encoder.MultiscaleEncoder(SHAPE).eval()


def windows(lengths):
    rng = np.random.default_rng(0)
    documents = [rng.integers(4, 20, n).tolist() for n in lengths]
    ids, mask, truncated = encoder.to_windows(documents, SHAPE.window_tokens, SHAPE.max_windows, 0)
    return torch.from_numpy(ids), torch.from_numpy(mask), truncated


def test_windowing_pads_and_truncates():
    ids, mask, truncated = windows([5, 20, 40])
    assert ids.shape == (3, 4, 8)  # 40 tokens would need 5 windows: capped at 4
    assert truncated == 1
    assert mask.sum(dim=(1, 2)).tolist() == [5, 20, 32]
    assert (ids[mask == 0] == 0).all()


def test_shapes(model):
    ids, mask, _ = windows([5, 20])
    token_states, window_states, window_mask = model.encode(ids, mask)
    assert token_states.shape == (2, 3, 8, 16) and window_states.shape == (2, 3, 16)
    assert window_mask.tolist() == [[True, False, False], [True, True, True]]
    assert model(ids, mask).shape == (2, 3, 8, 20)
    assert model(ids, mask, positions=mask.bool()).shape == (25, 20)
    assert model.embed(ids, mask).shape == (2, 16)


def test_embedding_ignores_padding_windows(model):
    """A document's embedding does not depend on how many empty windows the batch pads it with."""
    short, short_mask, _ = windows([5])
    both, both_mask, _ = windows([5, 30])
    with torch.no_grad():
        alone = model.embed(short, short_mask)
        padded = model.embed(both, both_mask)[:1]
    torch.testing.assert_close(alone, padded, atol=1e-5, rtol=1e-5)


def test_backward_pass_reaches_both_encoders(model):
    model.train()
    ids, mask, _ = windows([12, 30])
    losses = encoder.masked_lm_losses(model, ids, mask, VOCAB, encoder.TrainingSettings(mask_probability=0.5),
                                      torch.Generator().manual_seed(0))
    losses["loss"].backward()
    local = model.local_encoder.embeddings.word_embeddings.weight.grad
    global_ = model.global_encoder.encoder.layer[0].attention.self.query.weight.grad
    assert torch.isfinite(losses["loss"]) and local.abs().sum() > 0 and global_.abs().sum() > 0


def test_masking_leaves_special_and_padding_tokens_alone():
    ids = torch.tensor([[4, 5, 3, 6, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 0, 0]])
    masked, chosen = encoder.mask_tokens(ids, mask, torch.tensor([0, 1, 2, 3]), 2, 20, 1.0,
                                         torch.Generator().manual_seed(0))
    assert chosen.tolist() == [[True, True, False, True, False, False]]
    assert masked[0, 2] == 3 and (masked[0, 4:] == 0).all()


def test_number_token_loss_closed_form():
    digit_ids = torch.arange(8, 18)
    labels = torch.tensor([8 + 3, 8 + 7, 5])  # digits 3 and 7, then a non-digit token
    confident = torch.full((3, 20), -1e4)
    confident[torch.arange(3), labels] = 0.0
    assert encoder.number_token_loss(confident, labels, digit_ids).item() == pytest.approx(0.0, abs=1e-6)
    uniform = torch.zeros(3, 20)  # expected digit 4.5 -> ((4.5-3)^2 + (4.5-7)^2) / 2
    assert encoder.number_token_loss(uniform, labels, digit_ids).item() == pytest.approx((1.5**2 + 2.5**2) / 2)


def test_pretraining_lowers_the_loss_and_checkpoints(model, tmp_path):
    ids, mask, _ = windows([30, 30, 30, 30])
    saved = []
    settings = encoder.TrainingSettings(steps=30, batch_size=4, learning_rate=5e-3, eval_every=15)
    history = encoder.pretrain(model, (ids.numpy(), mask.numpy()), (ids.numpy(), mask.numpy()), VOCAB, settings,
                               torch.device("cpu"), on_checkpoint=lambda step, loss: saved.append(
                                   encoder.save_checkpoint(model, step, tmp_path / f"{step}.pt")), log=lambda _: None)
    evaluated = history["validation_loss"].dropna()
    assert len(evaluated) == 2 and evaluated.iloc[-1] < evaluated.iloc[0]
    state = torch.load(saved[-1])
    assert state["step"] == 30 and "mlm_head.3.weight" in state["state_dict"]
