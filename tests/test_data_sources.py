"""Sources (`files`, `hf`) through the real `datasets` loaders on local files, the pretrained
tokenizer, and a tiny end-to-end launch of every new data/filter/order option."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import partial

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from tokenizers import Tokenizer

from tests.conftest import ROOT, compose_job, run_launch, tiny
from tests.tokenizer_files import byte_level_bpe
from trainer.data.filters import LengthConfig, NoFilterConfig
from trainer.data.prepare import prepare
from trainer.data.sources import SOURCES, FilesConfig, HFConfig
from trainer.data.tokenizers import (
    CL100K_PATTERNS,
    SEP,
    PiecewisePretrained,
    TokenizerConfig,
    load_pretrained,
)

WORDS = "the king queen castle went to and with a of her his crown sword night day".split()
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def documents(n: int = 60, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(30, 60))) + "." for _ in range(n)]


def write_jsonl(path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def save_tokenizer(path, special: list[str]) -> None:
    """A tiny GPT-2-style BPE, saved as tokenizer.json."""
    byte_level_bpe(documents(), 300, special, path=path)


# --- files ---------------------------------------------------------------------------------
def test_text_files_are_one_document_each_or_split_at_blank_lines(tmp_path):
    texts = {
        "b.txt": "second file\n",
        "a.txt": "first para\nline two\n\nsecond para\n",
        "sub/c.md": "nested\n",
    }
    for name, text in texts.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    pattern = str(tmp_path / "**" / "*.*")
    docs = SOURCES.build(FilesConfig(paths=[pattern]))()
    assert docs == [texts["a.txt"], texts["b.txt"], texts["sub/c.md"]]  # sorted paths
    paras = SOURCES.build(FilesConfig(paths=[str(tmp_path / "a.txt")], sample_by="paragraph"))()
    assert [p.strip() for p in paras] == ["first para\nline two", "second para"]


def test_jsonl_and_parquet_rows_are_documents_in_text_field(tmp_path):
    write_jsonl(
        tmp_path / "x.jsonl",
        [{"content": "one", "id": 1}, {"content": "  "}, {"content": "two", "id": 2}],
    )
    pd.DataFrame({"content": ["three", None, "four"]}).to_parquet(tmp_path / "y.parquet")
    assert SOURCES.build(
        FilesConfig(paths=[str(tmp_path / "x.jsonl")], text_field="content")
    )() == ["one", "two"]  # blanks skipped
    assert SOURCES.build(
        FilesConfig(paths=[str(tmp_path / "y.parquet")], text_field="content")
    )() == ["three", "four"]
    with pytest.raises(
        ValueError,
        match=r"data.text_field='text' is invalid: not a column .*"
        r"columns: \['content'\]",
    ):
        SOURCES.build(FilesConfig(paths=[str(tmp_path / "y.parquet")]))()
    with pytest.raises(ValueError, match="data.format='auto' is invalid: cannot tell one format"):
        FilesConfig(paths=[str(tmp_path / "*")]).preflight()
    (tmp_path / "z.data").write_text(json.dumps({"text": "five"}))
    assert SOURCES.build(FilesConfig(paths=[str(tmp_path / "z.data")], format="json"))() == ["five"]


@pytest.mark.parametrize(
    "paths,needle",
    [
        ("[/no/such/dir/*.jsonl]", "data.paths='/no/such/dir/*.jsonl' is invalid: matches no file"),
        ("[/tmp]", "a directory needs a glob"),
    ],
)
def test_unmatched_paths_fail_at_preflight_naming_the_value(paths, needle):
    data = compose_job("data=files", f"data.paths={paths}").data  # composing reads no file
    with pytest.raises(ValueError) as e:
        data.preflight()
    assert needle in str(e.value)


def test_empty_paths_fail_before_anything_is_cached(tmp_path):
    cfg = compose_job("data=files", f"data.cache_dir={tmp_path / 'cache'}").data
    with pytest.raises(ValueError, match=r"data.paths=\[\] is invalid: at least one file"):
        prepare(cfg, NoFilterConfig())
    assert not (tmp_path / "cache").exists()


def test_files_cache_follows_the_files_content(tmp_path):
    write_jsonl(tmp_path / "d.jsonl", [{"text": d} for d in documents()])
    cfg = FilesConfig(paths=[str(tmp_path / "*.jsonl")], cache_dir=str(tmp_path / "cache"))
    first = prepare(cfg, NoFilterConfig())
    assert first.stats["docs_total"] == 60
    assert prepare(cfg, NoFilterConfig()).directory == first.directory
    write_jsonl(tmp_path / "d.jsonl", [{"text": d} for d in documents(seed=1)])
    assert prepare(cfg, NoFilterConfig()).directory != first.directory  # edited: rebuilt


# --- hf ------------------------------------------------------------------------------------
def test_hf_source_loads_a_local_directory_like_a_hub_dataset(tmp_path):
    """`load_dataset(path, subset, split=...)` on a directory runs the same loader as a hub
    dataset: data files found by split name, Arrow cache under data.cache_dir/hf."""
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    pd.DataFrame({"text": documents(40)}).to_parquet(repo / "data" / "train.parquet")
    pd.DataFrame({"text": ["held out"] * 3}).to_parquet(repo / "data" / "test.parquet")
    hf = partial(HFConfig, path=str(repo), subset=None, cache_dir=str(tmp_path / "cache"))
    assert SOURCES.build(hf())() == documents(40)
    assert (tmp_path / "cache" / "hf").is_dir()
    assert SOURCES.build(hf(split="test"))() == ["held out"] * 3
    assert SOURCES.build(hf(max_documents=5))() == documents(40)[:5]  # streamed
    assert prepare(hf(), NoFilterConfig()).stats["docs_total"] == 40


def test_hf_unreachable_hub_fails_naming_the_dataset(tmp_path):
    code = (
        "from trainer.data.prepare import prepare; from trainer.data.sources import HFConfig;"
        "from trainer.data.filters import NoFilterConfig;"
        f"prepare(HFConfig(cache_dir={str(tmp_path / 'cache')!r}), NoFilterConfig())"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **OFFLINE},
        timeout=120,
    )
    assert r.returncode != 0
    assert (
        "could not load the dataset data.path='wikitext' "
        "(data.subset='wikitext-103-raw-v1', data.split='train')"
    ) in r.stderr
    assert "Couldn't reach 'wikitext' on the Hub" in r.stderr
    cached = [p.name for p in (tmp_path / "cache" / "data").iterdir()]
    assert all(name.endswith(".lock") for name in cached)  # no cache entry


# --- tokenizers ----------------------------------------------------------------------------
def test_pretrained_tokenizer_uses_its_eos_token_as_separator(tmp_path):
    save_tokenizer(tmp_path / "gpt" / "tokenizer.json", special=["<|endoftext|>"])
    cfg = TokenizerConfig(name="pretrained", path=str(tmp_path / "gpt"))  # a directory
    tok = cfg.build([])
    assert tok.tok.id_to_token(tok.sep_id) == "<|endoftext|>" and tok.vocab_size == 300
    assert cfg.expected_vocab_size() == 300


def test_pretrained_tokenizer_without_eos_gets_a_sep_token(tmp_path):
    save_tokenizer(tmp_path / "plain.json", special=[])
    cfg = TokenizerConfig(name="pretrained", path=str(tmp_path / "plain.json"))
    tok = cfg.build([])
    assert tok.tok.id_to_token(tok.sep_id) == SEP and tok.vocab_size == 301 == tok.sep_id + 1
    assert cfg.expected_vocab_size() == 301  # the added separator counts


def test_pretrained_tokenizer_reads_eos_from_tokenizer_config_and_skips_templates(tmp_path):
    from tokenizers import Tokenizer
    from tokenizers.processors import TemplateProcessing

    save_tokenizer(tmp_path / "t5" / "tokenizer.json", special=["[BOS]", "[END]"])
    tok = Tokenizer.from_file(str(tmp_path / "t5" / "tokenizer.json"))
    tok.post_processor = TemplateProcessing(single="[BOS] $A", special_tokens=[("[BOS]", 0)])
    tok.save(str(tmp_path / "t5" / "tokenizer.json"))
    (tmp_path / "t5" / "tokenizer_config.json").write_text(
        json.dumps({"eos_token": {"content": "[END]"}})
    )
    ours = TokenizerConfig(name="pretrained", path=str(tmp_path / "t5")).build([])
    assert ours.sep_id == 1  # [END]
    assert 0 not in ours.encode(["the king"])[0]  # no template [BOS]


def test_pretrained_needs_a_tokenizer_file(tmp_path):
    with pytest.raises(ValueError, match="data.tokenizer.path=None is invalid"):
        compose_job("data.tokenizer.name=pretrained").data.preflight()
    with pytest.raises(ValueError, match=f"data.tokenizer.path='{tmp_path}' is invalid"):
        compose_job(
            "data.tokenizer.name=pretrained", f"data.tokenizer.path={tmp_path}"
        ).data.preflight()


def test_bpe_is_trained_on_the_filtered_training_docs_and_cached(tmp_path):
    """A dropped document's only pair ("qz") never becomes a merge of the cached BPE."""
    from tokenizers import Tokenizer

    rows = documents(80) + ["qz" * 400]  # dropped by max_chars
    write_jsonl(tmp_path / "d.jsonl", [{"text": r} for r in rows])
    data = FilesConfig(
        paths=[str(tmp_path / "d.jsonl")],
        cache_dir=str(tmp_path / "cache"),
        tokenizer=TokenizerConfig(name="bpe", vocab_size=300),
    )
    p = prepare(data, LengthConfig(min_chars=0, max_chars=500))
    assert p.stats["filters"][0]["docs_in"] - p.stats["filters"][0]["docs_out"] == 1
    saved = Tokenizer.from_file(str(p.directory / "tokenizer.json"))
    assert saved.get_vocab_size() == p.stats["vocab_size"] == p.vocab_size
    vocab = saved.get_vocab()
    assert "qz" not in vocab and "zq" not in vocab
    assert "Ġthe" in vocab or "the" in vocab  # kept text was learned


def test_pretrained_tokenizer_prepares_and_its_file_is_in_the_cache_key(tmp_path):
    save_tokenizer(tmp_path / "tok.json", special=["</s>"])
    write_jsonl(tmp_path / "d.jsonl", [{"text": d} for d in documents()])
    tok = TokenizerConfig(name="pretrained", path=str(tmp_path / "tok.json"))
    data = FilesConfig(
        paths=[str(tmp_path / "d.jsonl")], cache_dir=str(tmp_path / "cache"), tokenizer=tok
    )
    p = prepare(data, NoFilterConfig())
    assert p.vocab_size == 300 and p.sep_id == 0  # </s> separates
    assert (np.asarray(p.train) == 0).sum() == p.stats["docs_train"]
    save_tokenizer(tmp_path / "tok.json", special=[])  # same path, new file
    assert prepare(data, NoFilterConfig()).sep_id == 300


# --- end to end ----------------------------------------------------------------------------
TINY = tiny("budget.steps=10")


@pytest.mark.slow
def test_new_options_train_end_to_end(tmp_path):
    write_jsonl(tmp_path / "corpus" / "a.jsonl", [{"text": d} for d in documents(50)] * 2)
    write_jsonl(tmp_path / "corpus" / "b.jsonl", [{"text": d} for d in documents(50, seed=1)])
    save_tokenizer(tmp_path / "tok" / "tokenizer.json", special=["<|endoftext|>"])
    # Llama 3's layout: a cl100k Split before the byte mapping, the end-of-text token named by
    # tokenizer_config.json; its text has line breaks, digits and contractions to cut around.
    texts = [
        d.replace(" and ", " and\n").replace(" of ", f" of {i * 1237},\nit's \n\n ")
        for i, d in enumerate(documents(80, seed=2))
    ]
    llama3 = tmp_path / "llama3"
    special = ["<|begin_of_text|>", "<|end_of_text|>"]
    byte_level_bpe(texts, 1000, special, CL100K_PATTERNS[0], llama3 / "tokenizer.json")
    (llama3 / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|end_of_text|>"}))
    repo = tmp_path / "repo"
    repo.mkdir()
    pd.DataFrame({"text": texts}).to_parquet(repo / "train.parquet")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {"LMSWEEP_CACHE": str(tmp_path / "cache"), **OFFLINE}
    runs = {
        "files": [
            "data=files",
            f"data.paths=[{tmp_path / 'corpus' / '*.jsonl'}]",
            "data.tokenizer.name=pretrained",
            f"data.tokenizer.path={tmp_path / 'tok'}",
            "filter=chain",
            "filter.steps=[{name: dedup}, {name: length, min_chars: 100}]",
            "order=unigram",
        ],
        "hf": [
            "data=hf",
            f"data.path={repo}",  # no data.subset: a local directory has none
            "data.max_documents=60",
            "data.val_fraction=0.2",
            "data.tokenizer.name=pretrained",
            f"data.tokenizer.path={llama3}",
            "filter=dedup",
            "order=reverse_unigram",
        ],
    }
    for name, overrides in runs.items():
        r = run_launch(
            *overrides,
            *TINY,
            f"tracking.uri={uri}",
            "train.eval_sequences=8",
            cwd=tmp_path,
            env=env,
            timeout=300,
        )
        assert r.returncode == 0, name + r.stdout[-2000:] + r.stderr[-3000:]
    client = MlflowClient(uri)
    jobs = client.search_runs([client.get_experiment_by_name("lmsweep").experiment_id])
    params = {r.data.params["data.name"]: r.data.params for r in jobs}
    assert {r.info.status for r in jobs} == {"FINISHED"} and len(jobs) == 2
    f, h = params["files"], params["hf"]
    assert f["order.name"] == "unigram" and h["order.name"] == "reverse_unigram"
    assert f["data.stats.vocab_size"] == "300"  # eos is the separator
    dedup_in, dedup_out = (int(f[f"data.stats.filters.0.dedup.docs_{k}"]) for k in ("in", "out"))
    assert dedup_out < dedup_in
    assert f["data.stats.filters.1.length.docs_out"] == f["data.stats.docs_train"]
    assert h["data.stats.docs_total"] == "60"
    assert h["data.stats.filters.0.dedup.docs_out"] == h["data.stats.docs_train"]
    # The cached streams are, document by document, `tokenizers`' own ids for the text.
    tok = Tokenizer.from_file(str(llama3 / "tokenizer.json"))
    loaded = load_pretrained(TokenizerConfig("pretrained", path=str(llama3)))
    assert isinstance(loaded, PiecewisePretrained)
    sep = tok.token_to_id("<|end_of_text|>")
    assert h["data.stats.sep_id"] == str(sep)
    (entry,) = (p for p in (tmp_path / "cache" / "data").glob("hf-pretrained-*") if p.is_dir())
    for split in ("train", "val"):
        stream = np.load(entry / f"{split}.npy")
        ends = np.flatnonzero(stream == sep)
        assert ends[-1] == len(stream) - 1
        for doc in np.split(stream, ends[:-1] + 1):
            ids = doc[:-1].tolist()
            text = tok.decode(ids)
            assert text in texts[:60]
            assert tok.encode(text, add_special_tokens=False).ids == ids
