"""Pre-tokenization for the BPEs lmsweep trains: documents -> words (no merge crosses a word),
each distinct word listed once.

The rule is GPT-2's (the regex of `tokenizers`' ByteLevel) over ASCII classes and without its
English contractions ('s 't 're ...): a word is a run of letters, of digits or of other symbols,
with at most one space in front; a whitespace run followed by a non-space hands its last
character to that word if it is a space, and keeps it as a word of its own otherwise. Every
non-ASCII character counts as a letter (é and 中, but also ’ and —).

`PATTERN` is the same rule as a regular expression, built from the same class table; trained
tokenizers save it as their pre-tokenizer, so `tokenizers` splits a text exactly as `split`
does (tests/test_data_bpe.py checks both on the corpus and on crafted strings).

Why by hand: `tokenizers`' own pre-tokenization runs at 4-7 MB/s on 2 cores and Python's `re`
at ~15 MB/s on one (it makes a str per word). These numpy passes over the UTF-8 bytes run at
~100 MB/s and pyarrow's hash table finds the distinct words exactly, so a BPE then runs once per
distinct word (tens of thousands) instead of once per word (millions).

`pieces` cuts text more coarsely, for a pretrained tokenizer whose pre-tokenizer is GPT-2's or
cl100k's (Llama 3, Qwen2): only where those regexes always cut.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import pairwise
from typing import Sequence

import numpy as np
import pyarrow as pa

LETTER, DIGIT, OTHER, SPACE = range(4)
CLASS = np.full(256, LETTER, dtype=np.uint8)  # bytes >= 0x80 belong to non-ASCII characters
for _b in range(128):
    _c = chr(_b)
    CLASS[_b] = (
        SPACE
        if _c in " \t\n\v\f\r"
        else DIGIT
        if _c.isdigit()
        else LETTER
        if _c.isalpha()
        else OTHER
    )
CLASS_TABLE = CLASS.tobytes()  # for bytes.translate


def _ascii_set(cls: int) -> str:
    """The ASCII members of a class as regex ranges (\\xHH escapes read the same in Python's
    `re` and in Oniguruma, the engine of `tokenizers`)."""
    codes = [b for b in range(128) if CLASS[b] == cls]
    runs: list[list[int]] = []
    for b in codes:
        if runs and runs[-1][1] == b - 1:
            runs[-1][1] = b
        else:
            runs.append([b, b])
    return "".join(f"\\x{lo:02x}" if lo == hi else f"\\x{lo:02x}-\\x{hi:02x}" for lo, hi in runs)


_NOT_LETTER = "".join(_ascii_set(c) for c in (DIGIT, OTHER, SPACE))
_L, _D, _O = f"[^{_NOT_LETTER}]", f"[{_ascii_set(DIGIT)}]", f"[{_ascii_set(OTHER)}]"
_S, _NOT_S = f"[{_ascii_set(SPACE)}]", f"[^{_ascii_set(SPACE)}]"
PATTERN = f" ?{_L}+| ?{_D}+| ?{_O}+|{_S}+(?!{_NOT_S})|{_S}+"


BATCH_CHARS = 1 << 23  # documents per pass: bounds the temporary arrays, spreads the work


@dataclass
class Words:
    codes: np.ndarray  # int32: every word in text order, as an index into `distinct`
    distinct: list[str]
    bounds: np.ndarray  # int64, len(docs) + 1: document i is codes[bounds[i]:bounds[i + 1]]


def split(docs: Sequence[str]) -> Words:
    """The documents' words, by the rule above."""
    return _split_all(docs, _word_starts)


GPT2, CL100K = "gpt2", "cl100k"  # the pre-tokenizer regexes `pieces` knows


def pieces(docs: Sequence[str], regex: str) -> Words:
    """The documents cut where a pre-tokenizer regex always cuts, for a pretrained tokenizer:
    GPT2 (GPT-2's, ByteLevel's own) or CL100K (OpenAI's cl100k as Llama 3 and, with single
    digits, Qwen2 use it). Documents are cut before ASCII whitespace that follows a character
    surely not whitespace (CL100K: before a space, tab, VT or FF only), and, for CL100K, after
    a CR or LF followed by a visible ASCII character.

    No pre-token crosses such a cut. GPT-2's are a letter, digit or symbol run with at most a
    space in front, a contraction, or whitespace. cl100k's are the same with any one character
    but CR and LF in front of letters, whitespace whose run ends at its last CR or LF
    (`\\s*[\\r\\n]+`, tried before any other whitespace rule), or symbols followed by
    CRs and LFs. Neither regex looks behind, and a look-ahead (`\\s+(?!\\S)`) reads only
    to the end of a whitespace run: inside the piece, except at a CL100K cut after a line
    break, where the run is matched by `\\s*[\\r\\n]+` or the symbol rule, neither of
    which looks ahead (GPT-2's regex has neither, hence no such cut for it). So a piece
    pre-tokenizes alone as in its document. Unicode normalization cannot move a cut either: it
    composes nothing across ASCII whitespace nor changes visible ASCII, and the characters it
    can turn into a space (NBSP, U+2000-U+200A, U+202F, U+205F, U+3000, U+00A8-style spacing
    accents) are among those not cut after (`_surely_not_space`).
    """
    return _split_all(docs, functools.partial(_piece_starts, after_breaks=regex == CL100K))


def _split_all(docs: Sequence[str], starts) -> Words:
    # numpy and pyarrow release the GIL in these passes: threads use every core.
    with ThreadPoolExecutor(len(os.sched_getaffinity(0))) as pool:
        parts = list(pool.map(lambda r: _split(docs[r[0] : r[1]], starts), _batches(docs)))
    # One list of distinct words for all batches: each batch's own list, deduplicated again.
    merged = pa.concat_arrays([distinct for _, distinct, _ in parts]).dictionary_encode()
    remap = merged.indices.to_numpy()
    first = np.cumsum([0] + [len(distinct) for _, distinct, _ in parts])
    before = np.cumsum([0] + [len(codes) for codes, _, _ in parts])
    return Words(
        np.concatenate([remap[f + codes] for f, (codes, _, _) in zip(first, parts)]),
        merged.dictionary.to_pylist(),
        np.concatenate(
            [b + bounds[:-1] for b, (_, _, bounds) in zip(before, parts)] + [before[-1:]]
        ),
    )


def _batches(docs: Sequence[str]) -> list[tuple[int, int]]:
    """[start, end) ranges of documents of about BATCH_CHARS characters; at least one."""
    chars = np.cumsum([0] + [len(d) for d in docs])
    crossed = np.flatnonzero(np.diff(chars // BATCH_CHARS)) + 1  # cut after these documents
    cuts = [0, *(c for c in crossed.tolist() if c < len(docs)), len(docs)]
    return list(pairwise(cuts))


def _split(docs: Sequence[str], starts) -> tuple[np.ndarray, pa.Array, np.ndarray]:
    """(word codes, distinct words, document bounds) of one batch."""
    data = [d.encode("utf-8") for d in docs]
    joined = b"".join(data)
    text = np.frombuffer(joined, dtype=np.uint8)
    offsets = np.zeros(len(data) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, data), np.int64, len(data)), out=offsets[1:])
    doc_start = np.zeros(len(text) + 1, dtype=bool)
    doc_start[offsets] = True
    cls = np.frombuffer(joined.translate(CLASS_TABLE), dtype=np.uint8)  # 2x CLASS[text]
    edges = np.flatnonzero(starts(text, cls, doc_start))  # word starts, then len(text)
    # Whole UTF-8 characters only (a multi-byte character is all "letter" bytes): valid strings.
    words = pa.LargeStringArray.from_buffers(
        len(edges) - 1, pa.py_buffer(edges), pa.py_buffer(text)
    )
    encoded = words.dictionary_encode()
    return encoded.indices.to_numpy(), encoded.dictionary, np.searchsorted(edges, offsets)


def _word_starts(text: np.ndarray, cls: np.ndarray, doc_start: np.ndarray) -> np.ndarray:
    """[len(text) + 1]: where a word starts, and a sentinel, the end of the last word."""
    space = cls == SPACE
    start = doc_start.copy()
    start[1:-1] |= cls[1:] != cls[:-1]
    # The last character of a whitespace run followed by a non-space in the same document is a
    # word of its own, or, when it is a space, the start of the next word. (Whole-array masks:
    # setting these positions by index took 3x longer.)
    last = space[:-1] & ~space[1:] & ~doc_start[1:-1]
    start[: len(last)] |= last
    start[1 : len(text)] &= ~(last & (text[:-1] == ord(" ")))
    return start


# ASCII letters, digits and symbols; the other ASCII bytes are whitespace or control characters.
_VISIBLE = np.zeros(256, dtype=bool)
_VISIBLE[0x21:0x7F] = True


_BLANK = np.zeros(256, dtype=bool)  # whitespace that ends no line: space, tab, VT, FF
_BLANK[[0x20, 0x09, 0x0B, 0x0C]] = True
_BREAK = np.zeros(256, dtype=bool)
_BREAK[[0x0A, 0x0D]] = True


def _piece_starts(
    text: np.ndarray, cls: np.ndarray, doc_start: np.ndarray, after_breaks: bool
) -> np.ndarray:
    """[len(text) + 1]: document starts, and `pieces`' cuts."""
    start = doc_start.copy()
    at = np.flatnonzero(_BLANK[text[1:]] if after_breaks else cls[1:] == SPACE) + 1
    start[at[_surely_not_space(text, at)]] = True
    if after_breaks:
        start[1 : len(text)] |= _BREAK[text[:-1]] & _VISIBLE[text[1:]]
    return start


def _surely_not_space(text: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Whether the character before each position in `at` (> 0) is surely not whitespace, even
    after Unicode normalization: a visible ASCII character, or a multi-byte one other than
    U+0080-U+00BF, U+1680-U+16BF, U+1800-U+183F, U+2000-U+207F, U+3000 and U+FEFF (blocks that
    hold every Unicode space, the zero-width ones and those NFKC turns into a space)."""
    padded = np.concatenate([np.zeros(3, np.uint8), text])  # padded[i + 3] is text[i]
    b1, b2, b3 = padded[at + 2], padded[at + 1], padded[at]  # the character's last bytes
    doubtful = (
        (b2 == 0xC2)
        | ((b3 == 0xE1) & ((b2 == 0x9A) | (b2 == 0xA0)))
        | ((b3 == 0xE2) & ((b2 == 0x80) | (b2 == 0x81)))
        | ((b3 == 0xE3) & (b2 == 0x80) & (b1 == 0x80))
        | ((b3 == 0xEF) & (b2 == 0xBB) & (b1 == 0xBF))
    )
    return _VISIBLE[b1] | ((b1 >= 0x80) & ~doubtful)
