"""The trained BPE's fast path: the numpy pre-tokenizer splits like its regex (Python's `re`
here, `tokenizers`' Oniguruma through the saved tokenizer), encoding each distinct word once
gives `tokenizers`' own ids, training on pre-split byte-level words learns `tokenizers`' own
merges, and the training sample is bounded, deterministic, order-free. A pretrained tokenizer
with GPT-2's, Llama 3's or Qwen2's pre-tokenizer, encoded piece by piece, gives `tokenizers`'
own ids too."""

from __future__ import annotations

import re
from itertools import pairwise

import numpy as np
import pytest

from tests.tokenizer_files import byte_level_bpe
from trainer.data import words
from trainer.data.corpus import shakespeare_documents
from trainer.data.tokenizers import (
    BYTE_LEVEL,
    CL100K_PATTERNS,
    SEP,
    HFTokenizer,
    PiecewisePretrained,
    PiecewiseTokenizer,
    TokenizerConfig,
    load_pretrained,
    train_bpe,
    training_sample,
)

# Every class boundary: ASCII letters, digits, symbols, each whitespace, NUL and DEL, and
# non-ASCII letters and punctuation of 2, 3 and 4 UTF-8 bytes.
ALPHABET = list(" \t\n\r\v\f  aZz09.,'\"-_<>\x00\x7f\x1fé中’—😀")


# Besides: Unicode whitespace, zero-width characters, those normalization makes a space or a
# space and an accent (U+02D8, U+00A8), a combining accent, GPT-2's contractions and
# end-of-text token, CRLF.
PIECES_ALPHABET = ALPHABET + list("\x85\xa0\u1680\u180e\u2003\u2028\u202f\u205f\u3000")
PIECES_ALPHABET += list("\ufeff\u200b\u02d8\xa8\u0301Ж") + ["'s", "'ll", "<|endoftext|>", "\r\n"]
PIECES_ALPHABET += ["<mask>"]


def random_docs(
    rng: np.random.Generator, n: int, longest: int = 40, alphabet: list[str] = ALPHABET
) -> list[str]:
    return ["".join(rng.choice(alphabet, rng.integers(0, longest))) for _ in range(n)]


@pytest.fixture(scope="module")
def shakespeare(corpus) -> list[str]:
    return shakespeare_documents(corpus.parents[1], 2000)


@pytest.fixture(scope="module")
def bpe(shakespeare) -> HFTokenizer:
    """Trained on plays and on crafted text, so merges span every character class."""
    return train_bpe(shakespeare[:100] + random_docs(np.random.default_rng(1), 300), 1000)


def split_texts(docs: list[str]) -> list[list[str]]:
    w = words.split(docs)
    assert len(set(w.distinct)) == len(w.distinct)
    return [[w.distinct[c] for c in w.codes[a:b]] for a, b in pairwise(w.bounds)]


@pytest.mark.parametrize("batch_chars", [words.BATCH_CHARS, 50])  # one batch, and many
def test_words_split_like_the_pattern(monkeypatch, shakespeare, batch_chars):
    monkeypatch.setattr(words, "BATCH_CHARS", batch_chars)
    pattern = re.compile(words.PATTERN)
    rng = np.random.default_rng(0)
    for docs in [random_docs(rng, int(rng.integers(0, 9))) for _ in range(300)] + [[], [""]]:
        assert split_texts(docs) == [pattern.findall(d) for d in docs]
    assert split_texts(shakespeare[:20]) == [pattern.findall(d) for d in shakespeare[:20]]
    assert split_texts(["a  b\n\n c\tx \n"]) == [["a", " ", " b", "\n\n", " c", "\t", "x", " \n"]]


def test_trained_bpe_encodes_like_tokenizers_and_round_trips(bpe, shakespeare):
    docs = shakespeare[100:300] + random_docs(np.random.default_rng(2), 500)
    ids, counts = bpe.encode(docs)
    ref_ids, ref_counts = HFTokenizer.encode(bpe, docs)  # tokenizers' own pipeline
    assert (counts == ref_counts).all() and (ids == ref_ids).all()
    assert (bpe.count(docs) == counts).all()
    ends = np.cumsum(counts)
    for i in (0, 150, 250, 600):  # byte-level: lossless
        assert bpe.tok.decode(ids[ends[i] - counts[i] : ends[i]].tolist()) == docs[i]
    assert bpe.sep_id not in bpe.encode(["a<sep>b"])[0]  # a literal "<sep>" stays text
    empty_ids, empty_counts = bpe.encode(["", "x"])
    assert empty_counts.tolist() == [0, len(empty_ids)]
    # count sums each document's pieces (np.add.reduceat): empty ones first, between, last
    edges = ["", "to be", "", "", "or not", ""]
    counts = bpe.count(edges).tolist()
    assert counts == bpe.encode(edges)[1].tolist()
    assert [n > 0 for n in counts] == [d != "" for d in edges]
    assert bpe.count(["", ""]).tolist() == [0, 0]


def test_training_sample_is_bounded_deterministic_and_order_free():
    lengths = np.random.default_rng(3).integers(100, 3000, size=2000)
    docs = [f"document {i} " + "x" * n for i, n in enumerate(lengths)]
    budget = 256 * 1000  # SAMPLE_CHARS_PER_TOKEN * vocab
    sample = training_sample(docs, 1000)
    assert sum(map(len, sample)) == budget and 50 < len(sample) < 300
    assert len(set(sample) - set(docs)) == 1  # whole documents, but one
    assert training_sample(docs[::-1], 1000) == sample[::-1]
    assert training_sample(docs[:50], 1000) == docs[:50]  # under the budget: everything
    assert training_sample(["y" * 10**6], 1000) == ["y" * budget]  # one huge document


def test_byte_level_table_is_tokenizers_own():
    """Every byte that starts or continues a UTF-8 character maps as ByteLevel maps it."""
    from tokenizers import pre_tokenizers

    leads = [0x80, 0x800, *range(0x1000, 0xD000, 0x1000), 0xE000, 0x10000, 0x40000, 0x100000]
    text = "".join(map(chr, [*range(0x800), *leads]))
    level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    ((theirs, _),) = level.pre_tokenize_str(text)
    assert theirs == text.encode("utf-8").decode("latin-1").translate(BYTE_LEVEL)


def test_training_learns_the_merges_of_tokenizers_own_pre_tokenization(shakespeare):
    import json

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    docs = shakespeare[:40] + random_docs(np.random.default_rng(4), 400)
    ours = train_bpe(docs, 700).tok
    ref = Tokenizer(models.BPE())
    ref.pre_tokenizer = ours.pre_tokenizer  # the regex split, then ByteLevel
    trainer = trainers.BpeTrainer(
        vocab_size=700,
        special_tokens=[SEP],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    ref.train_from_iterator(training_sample(docs, 700), trainer=trainer)
    ours, ref = json.loads(ours.to_str())["model"], json.loads(ref.to_str())["model"]
    assert len(ours["merges"]) > 300 and ours == ref


LLAMA3, QWEN2 = CL100K_PATTERNS


@pytest.fixture(scope="module")
def pretrained_json(shakespeare) -> dict[str, str]:
    docs = shakespeare[:100] + random_docs(np.random.default_rng(3), 300, 60, PIECES_ALPHABET)
    eos = ["<|endoftext|>"]
    return {
        "gpt2": byte_level_bpe(docs, 1000, eos),
        "llama3": byte_level_bpe(docs, 1000, eos, LLAMA3),
        "qwen2": byte_level_bpe(docs[:50], 1000, eos, QWEN2),
    }


def pretrained(tmp_path, tokenizer_json: str, change=None):
    """`data.tokenizer.name=pretrained` loading tokenizer.json after `change(tok)`."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(tokenizer_json)
    if change:
        change(tok)
    tok.save(str(tmp_path / "tokenizer.json"))
    return load_pretrained(TokenizerConfig(name="pretrained", path=str(tmp_path)))


# Added tokens that cannot match across a cut: GPT-NeoX's whitespace runs, and (GPT-2's regex
# only) RoBERTa's <mask>, which takes the spaces before it.
NEOX, MASK = ("  ", "   ", "\n\n", " \n", "\t\t"), ("<mask>",)


@pytest.mark.parametrize(
    "kind, normalizer, added",
    [
        ("gpt2", None, ()),
        ("gpt2", "NFC", NEOX + MASK),
        ("gpt2", "NFKC", ()),
        ("llama3", None, NEOX),
        ("qwen2", "NFC", NEOX),
    ],
)
def test_pretrained_byte_level_bpe_encodes_piece_by_piece_like_tokenizers(
    tmp_path, pretrained_json, shakespeare, kind, normalizer, added
):
    from tokenizers import AddedToken, normalizers

    def change(tok):
        tok.normalizer = normalizer and getattr(normalizers, normalizer)()
        tok.add_tokens([AddedToken(t, lstrip=t in MASK) for t in added])

    tok = pretrained(tmp_path, pretrained_json[kind], change)
    assert isinstance(tok, PiecewisePretrained)
    rng = np.random.default_rng(4)
    docs = shakespeare[100:300] + random_docs(rng, 3000, 60, PIECES_ALPHABET) + ["", " ", "\n"]
    ref_ids, ref_counts = HFTokenizer.encode(tok, docs)  # tokenizers' own pipeline, whole texts
    for ids, counts in (tok.encode(docs), tok._encode_pieces(tok.cut(docs))):
        assert (counts == ref_counts).all() and (ids == ref_ids).all()
    assert (tok.count(docs) == ref_counts).all()
    # A document quoting the end-of-text token gets it, as from tokenizers itself.
    assert tok.sep_id in tok.encode(["a<|endoftext|>b c"])[0]


def test_text_whose_pieces_barely_repeat_is_encoded_whole(
    tmp_path, pretrained_json, shakespeare, monkeypatch
):
    """Lines of Chinese have no ASCII space to cut at: encoding their pieces (whole lines)
    between separators would cost more than the documents themselves."""
    tok = pretrained(tmp_path, pretrained_json["qwen2"])
    pieces = []
    monkeypatch.setattr(
        PiecewisePretrained,
        "_encode_pieces",
        lambda self, w: pieces.append(w) or PiecewiseTokenizer._encode_pieces(self, w),
    )
    rng = np.random.default_rng(5)
    han = [chr(c) for c in range(0x4E00, 0x4E00 + 3000)] + list("，。")
    lines = ["\n".join("".join(rng.choice(han, 40)) for _ in range(5)) for _ in range(100)]
    for docs, piecewise in ((lines, False), (shakespeare[:100], True)):
        ids, counts = tok.encode(docs)
        ref_ids, ref_counts = HFTokenizer.encode(tok, docs)
        assert (counts == ref_counts).all() and (ids == ref_ids).all()
        assert bool(pieces) == piecewise
        pieces.clear()


def test_an_added_token_across_a_piece_and_the_separator_changes_no_id(tmp_path, pretrained_json):
    """Pieces are encoded between separators: an added token that ends in the separator's text
    would match across them. Then every piece is encoded alone."""
    from tokenizers import AddedToken

    def add(tok):
        tok.add_tokens([AddedToken("x<|endoftext|>", normalized=False)])

    tok = pretrained(tmp_path, pretrained_json["gpt2"], add)
    assert isinstance(tok, PiecewisePretrained)
    docs = ["the fox x<|endoftext|> ox", "box\nfox", "x"]
    ids, counts = tok.encode(docs)
    ref_ids, ref_counts = HFTokenizer.encode(tok, docs)
    assert (counts == ref_counts).all() and (ids == ref_ids).all()


@pytest.mark.parametrize(
    "change",
    [
        "prefix space",  # RoBERTa-style: pieces after a newline would gain a space
        "another regex",  # one lmsweep has not checked
        "a strip normalizer",
        "an added token eating the spaces after it",
        "an added token of text and spaces",
        "a whitespace token that reads the word before",
        "cl100k with a token eating the line break before it",
    ],
)
def test_other_pretrained_tokenizers_keep_tokenizers_own_encoding(
    tmp_path, pretrained_json, change
):
    from tokenizers import AddedToken, Regex, normalizers, pre_tokenizers

    def apply(tok):
        if change == "prefix space":
            tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        elif change == "another regex":
            tok.pre_tokenizer = pre_tokenizers.Sequence(
                [
                    pre_tokenizers.Split(Regex(LLAMA3.replace("{1,3}", "{1,4}")), "isolated"),
                    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
                ]
            )
        elif change == "a strip normalizer":
            tok.normalizer = normalizers.Strip()
        elif change == "an added token eating the spaces after it":
            tok.add_special_tokens([AddedToken("<mask>", rstrip=True)])
        elif change == "an added token of text and spaces":
            tok.add_tokens(["x y"])
        elif change == "a whitespace token that reads the word before":
            tok.add_tokens([AddedToken("  ", single_word=True)])
        else:
            tok.add_special_tokens([AddedToken("<mask>", lstrip=True)])

    kind = "llama3" if change.startswith("cl100k") else "gpt2"
    tok = pretrained(tmp_path, pretrained_json[kind], apply)
    assert type(tok) is HFTokenizer
    docs = ["a.\n\nb", " x <mask>  y", "  z "]
    assert tok.encode(docs)[0].tolist() == [i for e in tok.tok.encode_batch(docs) for i in e.ids]
