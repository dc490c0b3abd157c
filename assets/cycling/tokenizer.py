"""A tokenizer for the cycling corpus: trained locally with HF `tokenizers`, or loaded.

The trained tokenizer is a BPE over digits split one by one (so every digit is
its own token, which the number-token loss needs) and the separators; its
decoder fuses tokens without spaces, so text -> ids -> text is lossless for any
text written in its alphabet.
"""

from __future__ import annotations

from collections.abc import Iterable

from assets.cycling.corpus import TIME_SEPARATOR

REQUIRED_SPECIAL_TOKENS = {"pad_token": "[PAD]", "unk_token": "[UNK]", "mask_token": "[MASK]"}
# Characters fixed-precision numbers can contain, so validation text never hits [UNK].
NUMBER_ALPHABET = list("0123456789.,-+e")


def train_tokenizer(texts: Iterable[str], vocab_size: int, individual_digits: bool = True):
    """A PreTrainedTokenizerFast trained on texts (BPE, vocab_size at most)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = list(REQUIRED_SPECIAL_TOKENS.values()) + [TIME_SEPARATOR]
    backend = Tokenizer(models.BPE(unk_token=REQUIRED_SPECIAL_TOKENS["unk_token"]))
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(TIME_SEPARATOR, behavior="isolated"),
        pre_tokenizers.Digits(individual_digits=individual_digits),
    ])
    backend.decoder = decoders.Fuse()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=NUMBER_ALPHABET, show_progress=False)
    # Train on the time steps only: the separator is a special token, never merged into.
    backend.train_from_iterator((step for text in texts for step in text.split(TIME_SEPARATOR)), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, clean_up_tokenization_spaces=False,
                                        **REQUIRED_SPECIAL_TOKENS)
    tokenizer.add_tokens([TIME_SEPARATOR], special_tokens=True)
    return tokenizer


def load_tokenizer(name_or_path: str):
    """A fast tokenizer from a local folder (or a hub id already in the local cache)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name_or_path, use_fast=True)


def ensure_special_tokens(tokenizer) -> list[str]:
    """Add pad/unk/mask and the time separator where missing; returns what was added."""
    added = []
    for attribute, token in REQUIRED_SPECIAL_TOKENS.items():
        if getattr(tokenizer, attribute, None) is None:
            tokenizer.add_special_tokens({attribute: token})
            added.append(token)
    if TIME_SEPARATOR not in tokenizer.get_vocab():
        tokenizer.add_tokens([TIME_SEPARATOR], special_tokens=True)
        added.append(TIME_SEPARATOR)
    return added


def encode(tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids of each text, without added [CLS]/[SEP] (windows are cut later)."""
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


def decode(tokenizer, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def round_trip_failures(tokenizer, texts: list[str]) -> list[int]:
    """Indices of texts for which decode(encode(text)) != text."""
    return [i for i, (text, ids) in enumerate(zip(texts, encode(tokenizer, texts))) if decode(tokenizer, ids) != text]


def digit_token_ids(tokenizer) -> list[int]:
    """Token ids of the digits 0..9 in order (the number-token loss targets); [] unless all ten exist."""
    vocab = tokenizer.get_vocab()
    digits = [vocab.get(str(d)) for d in range(10)]
    return [] if None in digits else digits
