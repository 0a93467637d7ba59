"""Tokenizers: byte-level (default, nothing to train), a BPE trained on the filtered training
split, or a pretrained `tokenizers` file (tokenizer.json).

Every tokenizer encodes a batch of documents into one flat id array plus each document's token
count; packing appends one separator id after each document.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass
from itertools import chain, pairwise
from pathlib import Path
from typing import Callable, Optional, Protocol, Sequence

import numpy as np

from trainer.data import words
from trainer.registry import check, check_choice

SEP = "<sep>"
# End-of-text tokens by convention: GPT-2, T5/Llama-2, Llama-3, Gemma.
EOS_NAMES = ("<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>")
# A trained BPE learns from at most this many characters of text per vocabulary entry (2 MiB for
# the compressibility filter's 8,192): see `training_sample`.
SAMPLE_CHARS_PER_TOKEN = 256


class Tokenizer(Protocol):
    vocab_size: int
    sep_id: int

    def encode(self, docs: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(every document's ids, concatenated; each document's token count)"""

    def save(self, directory: Path) -> None: ...


@dataclass
class TokenizerConfig:
    """Every tokenizer's fields in one class, `name` picking the builder (TOKENIZERS): a field
    of `data`, not a config group, so `data.tokenizer.name=bpe` switches it on the command line
    and every job's fingerprint and data cache key see the same fields whatever the name."""

    name: str = "byte"
    vocab_size: int = 4096  # bpe only: merges learned up to this size
    path: Optional[str] = None  # pretrained only: a tokenizer.json, or a directory holding one

    def __post_init__(self) -> None:
        check_choice("data.tokenizer.name", self.name, sorted(TOKENIZERS))
        check(
            self.vocab_size > 257,
            "data.tokenizer.vocab_size",
            self.vocab_size,
            "> 257 (the byte alphabet plus the separator)",
        )

    def preflight(self) -> None:
        """What reads files: a pretrained tokenizer must exist and load."""
        self.expected_vocab_size()

    def build(self, train_docs: Sequence[str]) -> Tokenizer:
        """The tokenizer, trained on `train_docs` where it learns (bpe)."""
        return TOKENIZERS[self.name](self, train_docs)

    def file(self) -> Path:
        """The pretrained tokenizer.json."""
        why = (
            "data.tokenizer.name=pretrained needs a tokenizer.json file or a directory that "
            "contains one"
        )
        check(self.path is not None, "data.tokenizer.path", self.path, why)
        p = Path(self.path).expanduser()
        p = p / "tokenizer.json" if p.is_dir() else p
        check(p.is_file(), "data.tokenizer.path", self.path, why)
        return p

    def inputs(self) -> list[Path]:
        """Files read besides the config, so the data cache is rebuilt when they change."""
        return [self.file()] if self.name == "pretrained" else []

    def expected_vocab_size(self) -> int:
        """The vocabulary size known before any data is prepared (model.params sizing needs
        it at pre-flight); bpe can fall short of it only on a corpus too small for its merges."""
        if self.name == "pretrained":
            f = self.file()
            return _pretrained_vocab_size(str(f), f.stat().st_size, f.stat().st_mtime_ns)
        return ByteTokenizer.vocab_size if self.name == "byte" else self.vocab_size


class ByteTokenizer:
    """UTF-8 bytes 0..255, separator 256."""

    vocab_size = 257
    sep_id = 256

    def encode(self, docs: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        data = [d.encode("utf-8") for d in docs]
        return (
            np.frombuffer(b"".join(data), dtype=np.uint8),
            np.fromiter(map(len, data), np.int64, len(data)),
        )

    def save(self, directory: Path) -> None:
        (directory / "tokenizer.json").write_text(json.dumps({"type": "byte"}))


class HFTokenizer:
    """A `tokenizers` Tokenizer; the separator is a special token of its vocabulary, added
    if missing."""

    def __init__(self, tok, sep_token: str):  # tok: tokenizers.Tokenizer
        self.tok = tok
        sep = tok.token_to_id(sep_token)
        if sep is None:
            tok.add_special_tokens([sep_token])
            sep = tok.token_to_id(sep_token)
        self.sep_token, self.sep_id = sep_token, sep
        self.vocab_size = tok.get_vocab_size()

    def encode(self, docs: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        # No post-processor specials (BOS/CLS/EOS templates): the separator is added in packing.
        ids = [e.ids for e in self.tok.encode_batch_fast(list(docs), add_special_tokens=False)]
        lengths = np.fromiter(map(len, ids), np.int64, len(ids))
        return np.fromiter(chain.from_iterable(ids), np.int64, int(lengths.sum())), lengths

    def save(self, directory: Path) -> None:
        self.tok.save(str(directory / "tokenizer.json"))


class PiecewiseTokenizer(HFTokenizer):
    """A tokenizer whose ids for a document are its pieces' ids, each piece encoded alone, so
    each distinct piece is encoded once by `tokenizers` and the rest is numpy indexing. `cut`
    splits documents only where the tokenizer's own pre-tokenization does: the ids are those
    `tokenizers` gives for the whole document."""

    def __init__(self, tok, sep_token: str, cut: Callable[[Sequence[str]], words.Words]):
        super().__init__(tok, sep_token)
        self.cut = cut

    def encode(self, docs: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        return self._encode_pieces(self.cut(docs))

    def _encode_pieces(self, w: words.Words) -> tuple[np.ndarray, np.ndarray]:
        table, sizes, first = self._distinct_ids(w)
        n = sizes[w.codes]  # token count of every piece in the text
        # int32 while every running count surely fits: fresh memory is what these passes
        # spend most on (scripts/bench_data.py), and int64 doubles it.
        wide = len(n) * int(sizes.max(initial=0)) >= 2**31
        ends = np.cumsum(n, dtype=np.int64 if wide else np.int32)
        if not len(n):
            return table[:0], _per_document(ends, w.bounds)
        # Token t of the output is table[i_t]: i steps by one inside a piece and jumps to the
        # next piece's first id at its first token, so i is a cumsum of steps (a per-piece
        # np.repeat took 2x longer). int32 halves the memory traffic: every partial sum is an
        # index into the table of distinct pieces' ids, far below 2**31.
        first = first[w.codes]
        jump = first[1:] - first[:-1]
        jump -= n[:-1]
        jump += 1
        step = np.ones(int(ends[-1]), dtype=np.int32)
        step[0] = first[0]
        step[ends[:-1]] = jump
        return table[np.cumsum(step, out=step)], _per_document(ends, w.bounds)

    def count(self, docs: Sequence[str]) -> np.ndarray:
        """Each document's token count without its ids (the compressibility filter's need)."""
        w = self.cut(docs)
        _, sizes, _ = self._distinct_ids(w)
        # Sums over each document's pieces; np.add.reduceat gives an empty range the value at
        # its start, so empty documents are left at 0 and only the others' starts are read.
        starts = w.bounds[:-1]
        counts = np.zeros(len(starts), dtype=np.int64)
        some = starts < w.bounds[1:]
        if some.any():
            counts[some] = np.add.reduceat(sizes[w.codes], starts[some], dtype=np.int64)
        return counts

    def _distinct_ids(self, w: words.Words) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ids of the distinct pieces (flat), and each one's token count and the index of
        its first id.

        The distinct pieces go to `tokenizers` as a few long texts with the separator between
        pieces, not one text per piece: its cost per encoded text (~8 us) was most of the time.
        The separator is a special token, so each piece between two is pre-tokenized and
        encoded on its own, as alone. The rare piece holding the separator's own text (a
        document quoting "<|endoftext|>") is encoded as a text of its own; every piece is,
        should an added token match across a piece's end and the separator (a token named
        "x<|endoftext|>").
        """
        sep = self.sep_token
        alone = [i for i, piece in enumerate(w.distinct) if sep in piece]
        joined = np.delete(np.arange(len(w.distinct)), alone)
        listed = [w.distinct[i] for i in joined] if alone else w.distinct
        parts = max(1, min(len(listed) // 1000, 4 * len(os.sched_getaffinity(0))))
        cuts = np.linspace(0, len(listed), parts + 1).astype(int)
        texts = [sep.join(listed[a:b]) + sep for a, b in pairwise(cuts) if b > a]
        encoded = self.tok.encode_batch_fast(texts, add_special_tokens=False)
        ids = np.fromiter(chain.from_iterable(e.ids for e in encoded), np.int32)
        is_sep = ids == self.sep_id
        if is_sep.sum() != len(listed):  # an added token matched across a separator
            joined, alone, ids, is_sep = joined[:0], range(len(w.distinct)), ids[:0], is_sep[:0]
        singles = [
            e.ids
            for e in self.tok.encode_batch_fast(
                [w.distinct[i] for i in alone], add_special_tokens=False
            )
        ]
        order = np.concatenate([joined, alone]).astype(np.int64)
        in_order = np.concatenate(
            [np.diff(np.flatnonzero(is_sep), prepend=-1) - 1, list(map(len, singles))]
        ).astype(np.int32)
        sizes, first = np.empty_like(in_order), np.empty_like(in_order)
        sizes[order] = in_order
        first[order] = np.cumsum(in_order, dtype=np.int32) - in_order
        table = np.concatenate([ids[~is_sep], np.fromiter(chain(*singles), np.int32)])
        return table, sizes, first


class TrainedBPE(PiecewiseTokenizer):
    """A BPE whose pre-tokenizer is `words.PATTERN`, encoded word by word. The result is what
    `tokenizers` gives for the same text, except that a literal "<sep>" in a document stays
    text (three tokens) instead of becoming a separator."""

    def __init__(self, tok):
        super().__init__(tok, SEP, words.split)


# The Split patterns `words.pieces` knows, as tokenizer.json files hold them: OpenAI's cl100k
# as Llama 3 uses it, and Qwen2's (single digits). GPT-2's is ByteLevel's own (use_regex).
CL100K_PATTERNS = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
)


class PiecewisePretrained(PiecewiseTokenizer):
    """A pretrained byte-level BPE whose pre-tokenizer `words.pieces` knows (GPT-2, RoBERTa,
    GPT-NeoX, Pythia, OLMo; Llama 3, Qwen2), encoded piece by piece: ~8x `tokenizers`' own
    batch encoding on 2 cores, same ids (scripts/bench_data.py, tests/test_data_bpe.py)."""

    def __init__(self, tok, sep_token: str, regex: str):
        super().__init__(tok, sep_token, functools.partial(words.pieces, regex=regex))

    def encode(self, docs: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        w = self.cut(docs)
        if sum(map(len, w.distinct)) * 2 > sum(map(len, docs)):
            # Pieces barely repeat (text with few ASCII spaces, as Chinese): encoding them
            # between separators costs more than whole documents (0.5-0.7x on 2.7 MB of CJK
            # lines), for the same ids.
            return HFTokenizer.encode(self, docs)
        return self._encode_pieces(w)

    @staticmethod
    def regex_of(tok) -> Optional[str]:
        """The `words.pieces` regex that cuts only where `tok` would, if any: GPT-2's or a
        cl100k Split before the byte mapping, without a prefix space; no normalizer but a
        Unicode normal form; no added token that could match across a cut (whitespace runs as
        GPT-NeoX adds them, and RoBERTa's <mask> taking the spaces before it, cannot); no BPE
        dropout. Pre-tokenizer and normalizer are read as they serialize (their pickle state):
        `tokenizers` exposes no Split's pattern."""
        from tokenizers import models

        def spec(part) -> dict:
            return {} if part is None else json.loads(part.__getstate__())

        def byte_level(s: dict, regex: bool) -> bool:
            return (
                s.get("type") == "ByteLevel"
                and not s["add_prefix_space"]
                and s["use_regex"] is regex
            )

        pre = spec(tok.pre_tokenizer)
        steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
        split = steps[0] if len(steps) == 2 and steps[0].get("type") == "Split" else {}
        regex = (
            words.GPT2
            if len(steps) == 1 and byte_level(steps[0], True)
            else words.CL100K
            if split.get("pattern", {}).get("Regex") in CL100K_PATTERNS
            and split["behavior"] == "Isolated"
            and not split["invert"]
            and byte_level(steps[1], False)
            else None
        )

        def may_cross(t) -> bool:  # an added token matching across a cut, or reading past it
            space = [c.isspace() for c in t.content]
            return (
                any(space) != all(space)  # text and whitespace: cuts lie between the two
                or t.rstrip  # eats the whitespace after it, which a cut may precede
                or (t.lstrip and regex == words.CL100K)  # eats a line break a cut may follow
                or (all(space) and t.single_word)  # reads the character before the run
            )

        fits = (
            spec(tok.normalizer).get("type") in (None, "NFC", "NFD", "NFKC", "NFKD")
            and not (isinstance(tok.model, models.BPE) and tok.model.dropout)
            and not any(map(may_cross, tok.get_added_tokens_decoder().values()))
        )
        return regex if fits else None


def _per_document(ends: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Documents' token counts from the running count at the end of each piece (read at the
    bounds only: a copy of `ends` with a leading zero cost 10x more)."""
    after = np.zeros(len(bounds), dtype=np.int64)
    some = bounds > 0
    after[some] = ends[bounds[some] - 1]
    return np.diff(after)


def training_sample(docs: Sequence[str], vocab_size: int) -> list[str]:
    """The text a BPE of `vocab_size` learns from: every document while they hold at most
    SAMPLE_CHARS_PER_TOKEN characters per vocabulary entry, else documents in the order of a
    content hash (so the sample does not depend on their order; SHA-1, not the validation
    split's MD5, and twice as fast) up to exactly that many characters, the last one cut short.

    Why a sample: training is the slow part of preparation (a BPE of 8,192 took 2.6 s on the
    5 MB corpus and grows with it), and a few MB already hold the merges that make up nearly
    all tokens. What the full corpus adds are merges for rarer words, which lower every
    document's token count by about the same small fraction; scripts/bench_data.py measures the
    agreement with a BPE trained on everything.
    """
    budget = SAMPLE_CHARS_PER_TOKEN * vocab_size
    if sum(map(len, docs)) <= budget:
        return list(docs)
    by_hash = sorted(range(len(docs)), key=lambda i: hashlib.sha1(docs[i].encode("utf-8")).digest())
    chosen: dict[int, str] = {}
    size = 0
    for i in by_hash:
        chosen[i] = docs[i][: budget - size]
        size += len(chosen[i])
        if size == budget:
            break
    return [chosen[i] for i in sorted(chosen)]


def train_bpe(docs: Sequence[str], vocab_size: int) -> TrainedBPE:
    """Byte-level BPE learned with `tokenizers` on `training_sample(docs)`.

    The trainer gets the sample's words already split and in ByteLevel's alphabet, one space
    between words, and only cuts at spaces: the merges are those of training on the text with
    the saved pre-tokenizer (tests/test_data_bpe.py). `tokenizers`' own pre-tokenization keeps
    per-character alignments that training never reads: with our split included, 8,192 tokens
    on 2 MiB took 0.58 s instead of 0.71 (scripts/bench_data.py)."""
    from tokenizers import Regex, decoders, models, pre_tokenizers, trainers
    from tokenizers import Tokenizer as HFTok

    tok = HFTok(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[SEP],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(byte_level_words(training_sample(docs, vocab_size)), trainer=trainer)
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(words.PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    return TrainedBPE(tok)


def _byte_level_table() -> dict[int, str]:
    """GPT-2's bytes_to_unicode (Radford et al. 2019, encoder.py; `tokenizers`' ByteLevel):
    printable Latin-1 bytes stand for themselves, the other 68 for U+0100 onwards in byte
    order, so no mapped character is whitespace or a control character."""
    keep = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    moved = [b for b in range(256) if b not in keep]
    return {b: chr(b) for b in keep} | {b: chr(0x100 + i) for i, b in enumerate(moved)}


BYTE_LEVEL = str.maketrans(_byte_level_table())  # Latin-1 characters (one per byte) -> mapped


def byte_level_words(docs: Sequence[str], words_per_text: int = 4096) -> list[str]:
    """The documents' words in ByteLevel's alphabet, space-separated, in texts of at most
    `words_per_text` words (the trainer reads them in parallel)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    w = words.split(docs)
    mapped = pa.array(
        [x.encode("utf-8").decode("latin-1").translate(BYTE_LEVEL) for x in w.distinct],
        pa.large_string(),
    ).take(w.codes)
    cuts = np.append(np.arange(0, len(mapped), words_per_text), len(mapped))
    texts = pa.LargeListArray.from_arrays(cuts, mapped)
    return pc.binary_join(texts, pa.scalar(" ", pa.large_string())).to_pylist()


def byte(cfg: TokenizerConfig, train_docs: Sequence[str]) -> Tokenizer:
    return ByteTokenizer()


def eos_token(file: Path, tok) -> Optional[str]:
    """The end-of-text token of a pretrained tokenizer: `eos_token` of a tokenizer_config.json
    beside the file (the `transformers` layout), else a special token with a conventional name."""
    config = file.parent / "tokenizer_config.json"
    if config.is_file():
        settings = _json_object(config)
        check(settings is not None, "data.tokenizer.path", str(config), "not a JSON object")
        eos = settings.get("eos_token")
        eos = eos.get("content") if isinstance(eos, dict) else eos
        if eos and tok.token_to_id(eos) is not None:
            return eos
    special = {t.content for t in tok.get_added_tokens_decoder().values() if t.special}
    return next((name for name in EOS_NAMES if name in special), None)


def load_pretrained(cfg: TokenizerConfig) -> HFTokenizer:
    return _load(cfg.file())


def _load(file: Path) -> HFTokenizer:
    """The separator is the tokenizer's end-of-text token if it has one, else an added <sep>."""
    from tokenizers import Tokenizer as HFTok

    tok, error = None, None
    try:
        tok = HFTok.from_file(str(file))
    except Exception as e:  # the Rust side raises a bare Exception
        error = e
    check(
        tok is not None,
        "data.tokenizer.path",
        str(file),
        f"not a `tokenizers` tokenizer.json ({str(error)[:200]})",
    )
    sep, regex = eos_token(file, tok) or SEP, PiecewisePretrained.regex_of(tok)
    return PiecewisePretrained(tok, sep, regex) if regex else HFTokenizer(tok, sep)


def _json_object(path: Path) -> Optional[dict]:
    try:
        value = json.loads(path.read_bytes())
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return None
    return value if isinstance(value, dict) else None


@functools.lru_cache(maxsize=32)
def _pretrained_vocab_size(file: str, size: int, mtime_ns: int) -> int:
    """Loaded once per file version: every job of a sweep asks at pre-flight."""
    return _load(Path(file)).vocab_size


def bpe(cfg: TokenizerConfig, train_docs: Sequence[str]) -> Tokenizer:
    return train_bpe(train_docs, cfg.vocab_size)


def pretrained(cfg: TokenizerConfig, train_docs: Sequence[str]) -> Tokenizer:
    return load_pretrained(cfg)


# data.tokenizer.name -> builder (TokenizerConfig.build)
TOKENIZERS: dict[str, Callable[[TokenizerConfig, Sequence[str]], Tokenizer]] = {
    "byte": byte,
    "bpe": bpe,
    "pretrained": pretrained,
}
