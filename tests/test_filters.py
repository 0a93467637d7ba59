"""Filters on crafted corpora: exact dedup, length bounds, chains and their per-step counts."""

from __future__ import annotations

import json

import pytest

from tests.conftest import compose_job
from trainer.data.filters import (
    FILTERS,
    ChainConfig,
    CompressibilityConfig,
    DedupConfig,
    LengthConfig,
    apply,
)
from trainer.data.prepare import cache_key, prepare
from trainer.data.sources import FilesConfig, ShakespeareConfig


def test_dedup_drops_exact_duplicates_and_keeps_the_first():
    docs = ["b", "a", "b", "c", "a", "a", "a "]
    kept, counts = apply(DedupConfig(), docs)
    assert kept == ["b", "a", "c", "a "]  # exact: "a " is not "a"
    assert counts == [{"name": "dedup", "docs_in": 7, "docs_out": 4, "chars_in": 8, "chars_out": 5}]


def test_length_bounds_are_inclusive():
    docs = ["x" * n for n in range(1, 8)]
    keep = FILTERS.build(LengthConfig(min_chars=3, max_chars=5))
    assert [len(d) for d in keep(docs)] == [3, 4, 5]
    unbounded = FILTERS.build(LengthConfig(min_chars=6, max_chars=None))
    assert [len(d) for d in unbounded(docs)] == [6, 7]
    assert len("é" * 3) == 3 and keep(["é" * 3]) == ["é" * 3]  # code points, not bytes


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        ({"min_chars": -1}, "filter.min_chars=-1"),
        ({"min_chars": 10, "max_chars": 9}, "filter.max_chars=9"),
    ],
)
def test_length_rejects_impossible_bounds(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        LengthConfig(**kwargs)


def test_chain_runs_steps_in_order_and_counts_add_up():
    docs = ["short", "short", "a longer document", "a longer document", "tiny", "another long one"]
    dedup_first = ChainConfig(steps=[{"name": "dedup"}, {"name": "length", "min_chars": 6}])
    length_first = ChainConfig(steps=[{"name": "length", "min_chars": 6}, {"name": "dedup"}])
    kept_a, counts_a = apply(dedup_first, docs)
    kept_b, counts_b = apply(length_first, docs)
    assert kept_a == kept_b == ["a longer document", "another long one"]
    assert [(c["name"], c["docs_in"], c["docs_out"]) for c in counts_a] == [
        ("dedup", 6, 4),
        ("length", 4, 2),
    ]
    assert [(c["name"], c["docs_in"], c["docs_out"]) for c in counts_b] == [
        ("length", 6, 3),
        ("dedup", 3, 2),
    ]  # the order decides what each step removes
    for counts in (counts_a, counts_b):
        for prev, nxt in zip(counts, counts[1:]):
            assert (prev["docs_out"], prev["chars_out"]) == (nxt["docs_in"], nxt["chars_in"])
        assert counts[-1]["chars_out"] == sum(map(len, kept_a))
    assert FILTERS.build(dedup_first)(docs) == kept_a


def test_chain_from_the_command_line_types_each_step():
    job = compose_job(
        "filter=chain",
        "filter.steps=[{name: dedup}, {name: compressibility, threshold: 0.25}, "
        "{name: chain, steps: [{name: length, max_chars: null}]}]",
    )
    steps = job.filter.steps_in_order()  # nested chains flatten
    assert [type(s) for s in steps] == [DedupConfig, CompressibilityConfig, LengthConfig]
    assert steps[1].threshold == 0.25 and steps[1].vocab_size == 8192  # unset: the defaults
    assert steps[2].max_chars is None and steps[2].min_chars == 300
    default = compose_job("filter=chain").filter.steps_in_order()
    assert [s.name for s in default] == ["compressibility", "dedup"]


@pytest.mark.parametrize(
    "steps,needle",
    [
        ("[]", "filter.steps=[] is invalid"),
        ("[{name: nope}]", "filter.steps[0].name='nope' is invalid: valid choices: chain, "),
        ("[{name: dedup}, {name: compressibility, threshold: 2}]", "filter.threshold=2"),
        ("[{name: length, max_char: 5}]", "max_char"),  # unknown key
        ("[{name: length, min_chars: abc}]", "min_chars"),  # wrong type
        ("[{threshold: 0.3}]", "a mapping with a filter name"),
    ],
)
def test_bad_chain_steps_fail_at_composition_naming_the_step(steps, needle):
    with pytest.raises(ValueError) as e:
        compose_job("filter=chain", f"filter.steps={steps}")
    assert needle in str(e.value)


def test_a_chain_of_one_step_shares_that_filters_cache():
    data = ShakespeareConfig()
    assert cache_key(data, ChainConfig(steps=[{"name": "compressibility"}])) == cache_key(
        data, CompressibilityConfig()
    )
    assert cache_key(data, ChainConfig(steps=[{"name": "dedup"}, {"name": "length"}])) != cache_key(
        data, ChainConfig(steps=[{"name": "length"}, {"name": "dedup"}])
    )


def test_prepared_stats_count_every_step_and_flatten_into_params(tmp_path):
    rows = [f"document {i % 30} " + "word " * (i % 30) for i in range(60)]  # 30 duplicated
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"text": r}) + "\n" for r in rows))
    data = FilesConfig(
        paths=[str(tmp_path / "d.jsonl")], cache_dir=str(tmp_path / "cache"), val_fraction=0.2
    )
    p = prepare(data, ChainConfig(steps=[{"name": "dedup"}, {"name": "length", "min_chars": 50}]))
    s = p.stats
    dedup, length = s["filters"]
    assert dedup["docs_in"] == s["docs_train_before_filter"] == s["docs_total"] - s["docs_val"]
    assert dedup["docs_out"] == dedup["docs_in"] / 2  # validation never filtered
    assert length["docs_in"] == dedup["docs_out"] and length["docs_out"] == s["docs_train"]
    assert length["chars_out"] == s["chars_train"] and s["tokens_train"] > s["chars_train"]
    params = p.params()
    assert params["filters.0.dedup.docs_out"] == dedup["docs_out"]
    assert params["filters.1.length.chars_in"] == length["chars_in"]
    assert "config" not in params and "filters" not in params
    assert all(not isinstance(v, (dict, list)) for v in params.values())
