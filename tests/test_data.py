"""Corpus splitting, the compressibility filter, packing, and the on-disk cache."""

from __future__ import annotations

import json
import multiprocessing as mp
import string

import numpy as np
import pytest

from trainer.data.corpus import split_documents
from trainer.data.filters import FILTERS, CompressibilityConfig, NoFilterConfig
from trainer.data.prepare import Sequences, cache_key, is_validation, prepare, unigram_entropy
from trainer.data.sources import ShakespeareConfig


def test_paragraphs_group_into_documents_of_min_size():
    text = "\n\n".join(f"para {i} " + "x" * 40 for i in range(10))
    docs = split_documents(text, min_chars=100)
    assert all(len(d) >= 100 for d in docs)
    assert "".join(docs).replace("\n", "") == text.replace("\n", "")


def test_compressibility_filter_keeps_compressible_text_only():
    rng = np.random.default_rng(0)
    english = [
        "the king and the queen went to the castle and the prince went with them. " * 20
        for _ in range(30)
    ]
    noise = [
        "".join(rng.choice(list(string.ascii_letters + string.digits + "!@#$%"), 1500))
        for _ in range(5)
    ]
    keep = FILTERS.build(CompressibilityConfig(threshold=0.3, vocab_size=300))
    kept = keep(english + noise)
    assert kept == english  # random strings do not compress under a learned BPE
    assert FILTERS.build(NoFilterConfig())(english + noise) == english + noise


def test_threshold_is_strict_and_monotone():
    docs = ["to be or not to be that is the question " * 30, "whether tis nobler " * 40]
    lo = FILTERS.build(CompressibilityConfig(threshold=0.01, vocab_size=300))(docs)
    hi = FILTERS.build(CompressibilityConfig(threshold=1.0, vocab_size=300))(docs)
    assert lo == [] and hi == docs


def test_validation_split_is_by_content():
    docs = [f"document number {i}" for i in range(2000)]
    val = [d for d in docs if is_validation(d, 0.1)]
    assert 150 < len(val) < 250
    assert [d for d in reversed(docs) if is_validation(d, 0.1)] == val[::-1]


def test_unigram_entropy():
    assert unigram_entropy(np.array([0, 1, 0, 1]), 4) == pytest.approx(np.log(2))


def test_sequences_pack_with_shifted_targets_and_resume():
    tokens = np.arange(1001)
    s = Sequences(tokens, seq_len=10, seed=3)
    w = s.next(4)
    assert w.shape == (4, 11) and (np.diff(w, axis=1) == 1).all()
    first = np.concatenate([w, s.next(200)])
    again = Sequences(tokens, 10, 3)
    again.cursor = 4
    assert (again.next(200) == first[4:]).all()  # position is one integer
    assert sorted(first[:100, 0] // 10) == list(range(100))  # an epoch visits every window once


def test_ranks_read_disjoint_shares_of_the_one_process_batches():
    """2 and 4 ranks together see exactly the batches of one process, across epoch ends, and
    those are the seeded permutation's windows in cursor order (resumed runs stay bit-exact)."""
    tokens = np.arange(1001)  # 100 windows of 10
    one = Sequences(tokens, 10, seed=3)
    ranks = {world: [Sequences(tokens, 10, seed=3) for _ in range(world)] for world in (2, 4)}
    for step in range(30):  # 240 windows: into a third epoch
        batch = one.next(8)
        epoch, pos = divmod(np.arange(step * 8, step * 8 + 8), 100)
        expected = [np.random.default_rng([3, e]).permutation(100)[p] for e, p in zip(epoch, pos)]
        assert (batch[:, 0] // 10 == expected).all()
        for world, seqs in ranks.items():
            shares = [s.next_shard(8, rank, world) for rank, s in enumerate(seqs)]
            assert all(len(share) == 8 // world for share in shares)
            assert (np.concatenate(shares) == batch).all()
            assert all(s.cursor == one.cursor for s in seqs)
    with pytest.raises(ValueError, match="no rank 0 share of equal size over 3 ranks"):
        one.next_shard(8, 0, 3)


def prepare_in_process(cache, q):
    p = prepare(ShakespeareConfig(cache_dir=str(cache)), NoFilterConfig())
    q.put((str(p.directory), int(p.train.sum() % 1_000_003)))


def test_cache_is_built_once_and_shared_by_concurrent_jobs(cache_dir):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=prepare_in_process, args=(cache_dir, q)) for _ in range(3)]
    for p in procs:
        p.start()
    results = [q.get(timeout=300) for _ in procs]
    for p in procs:
        p.join()
    assert len(set(results)) == 1  # same directory, same tokens
    built = list((cache_dir / "data").iterdir())
    assert [b.name for b in built if not b.name.endswith(".lock")] == [
        results[0][0].rsplit("/", 1)[1]
    ]  # one build, no leftover temp dirs
    entry = cache_dir / "data" / results[0][0].rsplit("/", 1)[1]
    meta = json.loads((entry / "meta.json").read_text())
    assert meta["docs_train"] + meta["docs_val"] == meta["docs_total"]


def test_second_prepare_tokenizes_nothing(cache_dir, monkeypatch):
    cfg = ShakespeareConfig(cache_dir=str(cache_dir))
    first = prepare(cfg, NoFilterConfig())
    import trainer.data.prepare as prep

    def must_not_build(*a, **k):
        raise AssertionError("cache miss: preprocessing ran again")

    monkeypatch.setattr(prep, "_build", must_not_build)
    second = prepare(ShakespeareConfig(cache_dir=str(cache_dir), seq_len=64), NoFilterConfig())
    assert second.directory == first.directory  # seq_len is packing, not preprocessing


def test_cache_key_changes_with_what_changes_tokens():
    base = cache_key(ShakespeareConfig(), NoFilterConfig())
    elsewhere = ShakespeareConfig(seq_len=512, cache_dir="/elsewhere")
    assert cache_key(elsewhere, NoFilterConfig()) == base
    assert cache_key(ShakespeareConfig(doc_chars=500), NoFilterConfig()) != base
    assert cache_key(ShakespeareConfig(), CompressibilityConfig()) != base


def test_compressibility_on_the_corpus_filters_training_docs_only(cache_dir):
    none = prepare(ShakespeareConfig(cache_dir=str(cache_dir)), NoFilterConfig())
    comp = prepare(ShakespeareConfig(cache_dir=str(cache_dir)), CompressibilityConfig())
    assert 0 < comp.stats["docs_train"] < none.stats["docs_train"]
    assert (np.asarray(comp.val) == np.asarray(none.val)).all()  # validation is untouched
