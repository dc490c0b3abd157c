"""The text representation and the tokenizer: fixed precision, document windows, lossless round trip."""

import pandas as pd
import pytest

from assets.cycling import corpus, tokenizer
from assets.cycling.corpus import TIME_SEPARATOR


def unified_table():
    rows = [(cell, cycle, step, 3.3 - 0.01 * step, -4.4, 1.07 - 0.001 * cycle)
            for cell in ("a", "b") for cycle in (1, 2, 3, 5) for step in range(4)]
    return pd.DataFrame(rows, columns=["cell_key", "cycle_number", "time", "voltage", "current",
                                       "discharge_capacity"])


def test_fixed_precision_per_column():
    frame = pd.DataFrame({"voltage": [3.3, 3.14159], "current": [-4.4, 1.0]})
    text = corpus.format_steps(frame, ["voltage", "current"], {"current": 1})
    assert text.tolist() == ["3.300,-4.4", "3.142,1.0"]


def test_documents_are_windows_of_cycles_with_separators():
    split = pd.DataFrame({"cell_key": ["a", "b"], "split": ["train", "test"]})
    documents = corpus.build_corpus(unified_table(), split, ["voltage", "current"], {}, cycles_per_document=2,
                                    step_stride=2, last_cycle=0, seed=0)
    a = documents.loc[documents["cell_key"] == "a"].sort_values("document")
    assert a[["first_cycle", "last_cycle"]].values.tolist() == [[1, 2], [3, 5]]
    assert a["n_steps"].tolist() == [4, 4]  # 2 cycles x every 2nd of 4 steps
    assert a["text"].iloc[0] == TIME_SEPARATOR.join(["3.300,-4.40", "3.280,-4.40"] * 2)
    assert set(documents.loc[documents["cell_key"] == "b", "split"]) == {"test"}
    capped = corpus.build_corpus(unified_table(), split, ["voltage"], {}, 2, 1, last_cycle=3, seed=0)
    assert capped["last_cycle"].max() == 3


@pytest.fixture(scope="module")
def trained():
    split = pd.DataFrame({"cell_key": ["a", "b"], "split": ["train", "train"]})
    documents = corpus.build_corpus(unified_table(), split, ["voltage", "current", "discharge_capacity"], {},
                                    2, 1, 0, 0)
    return tokenizer.train_tokenizer(documents["text"], vocab_size=40), documents["text"].tolist()


def test_round_trip_is_lossless_and_digits_are_single_tokens(trained):
    tok, texts = trained
    assert tokenizer.round_trip_failures(tok, texts) == []
    unseen = "9.876,-0.05,12.345" + TIME_SEPARATOR + "2.000,7.77,0.000"
    assert tokenizer.round_trip_failures(tok, [unseen]) == []
    assert len(tokenizer.digit_token_ids(tok)) == 10
    tokens = tok.convert_ids_to_tokens(tokenizer.encode(tok, ["3.312"])[0])
    assert tokens == ["3", ".", "3", "1", "2"]
    assert tok.convert_ids_to_tokens(tokenizer.encode(tok, [TIME_SEPARATOR])[0]) == [TIME_SEPARATOR]


def test_save_load_and_patch_missing_special_tokens(trained, tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok, texts = trained
    tok.save_pretrained(tmp_path / "trained")
    loaded = tokenizer.load_tokenizer(str(tmp_path / "trained"))
    assert tokenizer.ensure_special_tokens(loaded) == []
    assert tokenizer.encode(loaded, texts) == tokenizer.encode(tok, texts)
    bare_backend = Tokenizer(models.WordLevel({"0": 0, "1": 1}, unk_token="0"))
    bare_backend.pre_tokenizer = pre_tokenizers.Digits(individual_digits=True)
    bare = PreTrainedTokenizerFast(tokenizer_object=bare_backend)
    assert tokenizer.ensure_special_tokens(bare) == ["[PAD]", "[UNK]", "[MASK]", TIME_SEPARATOR]
    assert bare.mask_token == "[MASK]" and TIME_SEPARATOR in bare.get_vocab()


def test_uploading_more_cells_never_reorders_the_documents_already_there():
    from assets.cycling.corpus import shuffled

    documents = pd.DataFrame({"cell_key": [f"c{k}" for k in range(30) for _ in range(3)],
                              "document": [d for _ in range(30) for d in range(3)]})
    everything = shuffled(documents, seed=4)
    some = shuffled(documents.loc[documents["cell_key"].isin([f"c{k}" for k in range(0, 30, 3)])], seed=4)
    kept = everything.loc[everything["cell_key"].isin(set(some["cell_key"]))].reset_index(drop=True)
    pd.testing.assert_frame_equal(some, kept)
    assert not everything["cell_key"].is_monotonic_increasing  # shuffled, not sorted
    assert not everything.equals(shuffled(documents, seed=5))  # by the seed
