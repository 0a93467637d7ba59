"""Pre-flight of the data config: what reads files is refused before any job starts, naming the
field and the value (the file, and for bad text the byte offset); composing reads nothing."""

from __future__ import annotations

import gzip
import json

import pytest

from tests.conftest import compose_job
from tests.test_data_sources import documents, save_tokenizer, write_jsonl
from trainer.data.filters import NoFilterConfig
from trainer.data.prepare import prepare
from trainer.data.sources import FilesConfig, ShakespeareConfig
from trainer.data.tokenizers import TokenizerConfig


def test_composing_reads_no_file_and_preflight_refuses_missing_ones():
    data = FilesConfig(
        paths=["/no/such/*.jsonl"],
        tokenizer=TokenizerConfig(name="pretrained", path="/no/such.json"),
    )
    with pytest.raises(ValueError, match="data.tokenizer.path='/no/such.json' is invalid"):
        data.preflight()
    data.tokenizer = TokenizerConfig()
    with pytest.raises(ValueError, match="data.paths='/no/such/\\*.jsonl' is invalid"):
        data.preflight()


def test_files_without_paths_are_refused_at_preflight():
    with pytest.raises(ValueError, match=r"data.paths=\[\] is invalid: at least one file"):
        compose_job("data=files").data.preflight()


@pytest.mark.parametrize(
    "name,content,why",
    [
        ("empty.txt", b"", "the file is empty"),
        ("blank.txt", b" \n\t\n", "no text, only whitespace"),
        ("latin1.txt", b"caf\xe9 au lait", "not UTF-8: byte 0xe9 at offset 3"),
        (
            "cut.txt",
            "naïve café".encode()[:-1],
            "not UTF-8: the file ends inside a character at offset 10",
        ),
        ("image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not UTF-8: byte 0x89 at offset 0"),
        ("nul.txt", b"text\x00\x01\x02", "a NUL byte at offset 4: binary, not text"),
        ("rows.jsonl", b'{"text": "ok"}\n{"text": "\xff"}\n', "not UTF-8: byte 0xff at offset 25"),
        (
            "packed.txt.gz",
            gzip.compress(b"fine\nthen \xc0\x80"),
            "not UTF-8: byte 0xc0 at offset 10",
        ),
    ],
)
def test_unreadable_text_is_refused_naming_the_file_and_offset(tmp_path, name, content, why):
    (tmp_path / name).write_bytes(content)
    (tmp_path / "good.txt").write_text("some text\n")
    data = FilesConfig(
        paths=[str(tmp_path / "good.txt"), str(tmp_path / name)],
        format="json" if name.endswith(".jsonl") else "text",
    )
    with pytest.raises(ValueError) as e:
        data.preflight()
    assert f"data.paths='{tmp_path / name}' is invalid: {why}" in str(e.value)


def test_a_file_is_checked_again_once_it_changes(tmp_path):
    (tmp_path / "a.txt").write_text("text\n")
    data = FilesConfig(paths=[str(tmp_path / "a.txt")], sample_by="paragraph")
    data.preflight()
    (tmp_path / "a.txt").write_bytes(b"text\xff\n")
    with pytest.raises(ValueError, match="not UTF-8: byte 0xff at offset 4"):
        data.preflight()


@pytest.mark.parametrize("content", [b"not json", b'{"version": "1.0"}', b"\x00\x01\x02"])
def test_a_tokenizer_file_that_is_not_a_tokenizer_is_refused(tmp_path, content):
    (tmp_path / "tokenizer.json").write_bytes(content)
    tok = TokenizerConfig(name="pretrained", path=str(tmp_path))  # __post_init__: no read
    needle = f"data.tokenizer.path='{tmp_path / 'tokenizer.json'}' is invalid: not a `tokenizers`"
    with pytest.raises(ValueError, match="^" + needle.replace("(", r"\(").replace(".", r"\.")):
        ShakespeareConfig(tokenizer=tok).preflight()
    with pytest.raises(ValueError, match="not a `tokenizers` tokenizer.json"):
        tok.expected_vocab_size()  # what model sizing asks


def test_a_broken_tokenizer_config_beside_a_tokenizer_is_refused(tmp_path):
    save_tokenizer(tmp_path / "tokenizer.json", special=[])
    (tmp_path / "tokenizer_config.json").write_text("[1, 2")
    with pytest.raises(ValueError, match="tokenizer_config.json' is invalid: not a JSON object"):
        TokenizerConfig(name="pretrained", path=str(tmp_path)).preflight()


def test_paths_with_quotes_and_glob_characters_work(tmp_path):
    home = tmp_path / 'it\'s a "test" [1]'
    write_jsonl(home / 'o\'brien "notes".jsonl', [{"text": d} for d in documents()])
    save_tokenizer(home / "tok's" / "tokenizer.json", special=["</s>"])
    literal = FilesConfig(
        paths=[str(home / 'o\'brien "notes".jsonl')],
        cache_dir=str(home / "cache"),
        tokenizer=TokenizerConfig(name="pretrained", path=str(home / "tok's")),
    )
    literal.preflight()  # a literal file, [1] and all
    p = prepare(literal, NoFilterConfig())
    assert p.stats["docs_total"] == 60 and p.vocab_size == 300
    assert json.loads((p.directory / "meta.json").read_text())["config"]["data"]["paths"] == [
        str(home / 'o\'brien "notes".jsonl')
    ]
    globbed = FilesConfig(paths=[str(tmp_path / "it's*" / "*.jsonl")])
    assert globbed.resolve()[1] == [home / 'o\'brien "notes".jsonl']


def test_seq_len_is_blamed_on_data_seq_len():
    with pytest.raises(ValueError, match="data.seq_len=0 is invalid: > 0 tokens"):
        ShakespeareConfig(seq_len=0)


def test_seq_len_is_blamed_on_data_seq_len_when_composed():
    """JobConfig validates `data` before `model`, whose max_seq_len is ${data.seq_len}."""
    with pytest.raises(ValueError, match="data.seq_len=-1 is invalid"):
        compose_job("data.seq_len=-1")


@pytest.mark.parametrize(
    "name,rows,field_name,why",
    [
        (
            "content.jsonl",
            [{"content": "a"}],
            "data.text_field='text'",
            "not a field of the first row",
        ),
        ("numbers.jsonl", [{"text": 7}], "data.text_field='text'", "holds int in the first row"),
        ("strings.jsonl", ["text"], "data.text_field='text'", "it has: str"),
        (
            "plain.jsonl",
            None,
            "data.format='auto'",
            "is not JSON lines: its first row does not parse",
        ),
    ],
)
def test_a_json_lines_file_without_text_in_its_first_row_is_refused(
    tmp_path, name, rows, field_name, why
):
    path = tmp_path / name
    if rows is None:
        path.write_text("just prose, not JSON\n")
    else:
        write_jsonl(path, rows)
    with pytest.raises(ValueError) as e:
        FilesConfig(paths=[str(path)]).preflight()
    assert f"{field_name} is invalid: " in str(e.value) and why in str(e.value)
    assert str(path) in str(e.value)


def test_parquet_is_checked_by_its_schema_and_a_wrong_format_is_named(tmp_path):
    import pandas as pd

    pd.DataFrame({"body": ["a", "b"]}).to_parquet(tmp_path / "docs.parquet")
    pd.DataFrame({"text": [1, 2]}).to_parquet(tmp_path / "ints.parquet")
    write_jsonl(tmp_path / "rows.jsonl", [{"text": "fine"}])
    for paths, fmt, want in [
        ("docs.parquet", "auto", "data.text_field='text' is invalid: not a column of"),
        ("ints.parquet", "auto", "data.text_field='text' is invalid: holds int64 in"),
        ("rows.jsonl", "parquet", "data.format='parquet' is invalid: "),
    ]:
        with pytest.raises(ValueError, match=want):
            FilesConfig(paths=[str(tmp_path / paths)], format=fmt).preflight()
    FilesConfig(paths=[str(tmp_path / "docs.parquet")], text_field="body").preflight()


def test_a_row_that_breaks_later_fails_the_load_in_one_line_naming_file_and_row(tmp_path):
    """Pre-flight reads the first row only; a later row that does not parse is the data
    stage's ConfigError (one line, no traceback from pyarrow), before any token is written."""
    from trainer.contract import ConfigError

    path = tmp_path / "late.jsonl"
    write_jsonl(path, [{"text": t} for t in documents(60)])
    lines = path.read_text().splitlines()
    lines[49] = '{"text": "cut short'
    path.write_text("\n".join(lines) + "\n")
    data = FilesConfig(paths=[str(path)], cache_dir=str(tmp_path / "cache"))
    data.preflight()
    with pytest.raises(ConfigError, match=r"could not load data.paths=.*late.jsonl.*row 49"):
        prepare(data, NoFilterConfig())
    assert not list((tmp_path / "cache" / "data").glob("files-*[!k]"))  # no entry, only a lock


def test_a_filter_that_keeps_nothing_is_one_clear_error(tmp_path):
    from trainer.contract import ConfigError
    from trainer.data.filters import LengthConfig

    write_jsonl(tmp_path / "d.jsonl", [{"text": t} for t in documents(40)])
    data = FilesConfig(paths=[str(tmp_path / "d.jsonl")], cache_dir=str(tmp_path / "cache"))
    with pytest.raises(ConfigError, match="filter=length removed every one of the .* training"):
        prepare(data, LengthConfig(min_chars=10**6, max_chars=2 * 10**6))


def test_hf_refuses_a_local_path_that_does_not_exist_and_defaults_subsets_per_dataset(tmp_path):
    from trainer.data.sources import HFConfig

    with pytest.raises(ValueError, match="data.path='/no/such/dir' is invalid: no such file"):
        HFConfig(path="/no/such/dir").preflight()
    assert HFConfig().subset == "wikitext-103-raw-v1"  # wikitext has no default config
    assert HFConfig(path=str(tmp_path)).subset is None  # a local directory has none
    assert HFConfig(path="allenai/c4").subset is None
    assert HFConfig(path="allenai/c4", subset="en").subset == "en"
