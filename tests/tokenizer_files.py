"""Pretrained-style tokenizers for tests and scripts/bench_data.py: byte-level BPEs trained with
`tokenizers` itself, as a tokenizer.json from the Hub would hold them (no network here)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional


def byte_level_bpe(
    docs: Iterable[str],
    vocab_size: int,
    special: list[str],
    pattern: Optional[str] = None,
    path: Optional[Path] = None,
) -> str:
    """The tokenizer as JSON (also saved at `path`): GPT-2's pre-tokenizer, or with `pattern`
    a Split on it before the byte mapping, as Llama 3's and Qwen2's are; ByteLevel's decoder."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = (
        pre_tokenizers.ByteLevel(add_prefix_space=False)
        if pattern is None
        else pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(pattern), "isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(docs, trainer)
    tok.decoder = decoders.ByteLevel()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tok.save(str(path))
    return tok.to_str()
