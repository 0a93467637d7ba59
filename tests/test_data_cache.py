"""The data cache survives damage: a file cut short, flipped or missing, or an unreadable or
edited meta.json, is found at load and rebuilt with a warning naming it, into the same tokens."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from tests.test_data_sources import documents, write_jsonl
from trainer.data.filters import NoFilterConfig
from trainer.data.prepare import damage, prepare
from trainer.data.sources import FilesConfig
from trainer.data.tokenizers import TokenizerConfig


def cut_short(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_last_byte(path):
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def edit_vocab_size(path):  # still valid JSON: only its CRC-32 tells
    path.write_text(path.read_text().replace('"vocab_size": ', '"vocab_size": 1'))


DAMAGE = {
    "train.npy cut short": ("train.npy", cut_short),
    "val.npy bytes flipped": ("val.npy", flip_last_byte),
    "train.npy missing": ("train.npy", lambda p: p.unlink()),
    "tokenizer.json missing": ("tokenizer.json", lambda p: p.unlink()),
    "meta.json garbage": ("meta.json", lambda p: p.write_bytes(b"\x00{garbage")),
    "meta.json edited": ("meta.json", edit_vocab_size),
    "meta.json missing": ("meta.json", lambda p: p.unlink()),
}


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "d.jsonl"
    write_jsonl(path, [{"text": d} for d in documents(200)])
    return path


@pytest.mark.parametrize("case", DAMAGE)
def test_damaged_cache_is_rebuilt_with_a_warning_into_the_same_tokens(
    case, corpus_file, tmp_path, caplog
):
    name, spoil = DAMAGE[case]
    data = FilesConfig(
        paths=[str(corpus_file)],
        cache_dir=str(tmp_path / "cache"),
        tokenizer=TokenizerConfig(name="bpe", vocab_size=300),
    )
    clean = prepare(data, NoFilterConfig())
    train, val = np.array(clean.train), np.array(clean.val)
    spoil(clean.directory / name)
    assert damage(clean.directory) is not None
    with caplog.at_level(logging.WARNING, logger="lmsweep"):
        again = prepare(data, NoFilterConfig())
    assert [
        r.getMessage()
        for r in caplog.records
        if str(clean.directory / name) in r.getMessage() and "rebuilding" in r.getMessage()
    ], caplog.text
    assert again.directory == clean.directory and damage(again.directory) is None
    assert (again.train == train).all() and (again.val == val).all()
    assert again.stats == clean.stats
