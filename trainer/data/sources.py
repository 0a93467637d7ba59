"""Where documents come from: the `data` config group. Each option yields a list of strings.

`files` and `hf` load through Hugging Face `datasets` (`load_dataset`); rows whose text is
empty or only whitespace are skipped (wikitext, for one, has many).

`__post_init__` checks values only; `preflight()` checks what needs the files (they exist, are
not empty, are UTF-8 text; the tokenizer file loads), before any job of a sweep starts.
"""

from __future__ import annotations

import bz2
import codecs
import functools
import glob
import gzip
import json
import lzma
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from omegaconf import MISSING

from trainer.contract import DEFAULT_CACHE, ConfigError
from trainer.data.tokenizers import TokenizerConfig
from trainer.registry import Registry, check, check_choice

Source = Callable[[], list[str]]
SOURCES: Registry[Callable[..., Source]] = Registry("data")

FORMATS = ("auto", "text", "json", "parquet")  # `datasets` packaged builders
SUFFIX_FORMATS = {
    ".txt": "text",
    ".text": "text",
    ".md": "text",
    ".json": "json",
    ".jsonl": "json",
    ".ndjson": "json",
    ".parquet": "parquet",
}
COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst")  # read transparently by `datasets`
OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}  # .zst: not in the stdlib
SAMPLE_BY = ("document", "paragraph", "line")  # `datasets` text builder's sample_by
# data=hf's subset when none is given, for hub datasets that have no default config.
DEFAULT_SUBSETS = {"wikitext": "wikitext-103-raw-v1", "Salesforce/wikitext": "wikitext-103-raw-v1"}


@dataclass
class DataConfig:
    name: str = MISSING
    seq_len: int = 128
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    val_fraction: float = 0.05  # share of documents held out, chosen by content hash
    cache_dir: str = DEFAULT_CACHE  # preprocessed data, keyed by a hash of this config

    def __post_init__(self) -> None:
        check(self.seq_len > 0, "data.seq_len", self.seq_len, "> 0 tokens")
        check(0 < self.val_fraction < 1, "data.val_fraction", self.val_fraction, "in (0, 1)")

    def cache_path(self) -> Path:
        return Path(self.cache_dir).expanduser().resolve()

    def preflight(self) -> None:
        """The checks that read files."""
        self.tokenizer.preflight()

    def inputs(self) -> list[Path]:
        """Local files read besides the config; the cache key includes their size and mtime,
        so editing one rebuilds the cache."""
        return self.tokenizer.inputs()


@dataclass
class ShakespeareConfig(DataConfig):
    name: str = "shakespeare"
    doc_chars: int = 2000  # paragraphs are grouped into documents of at least this

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.doc_chars > 0, "data.doc_chars", self.doc_chars, "> 0 characters")


@dataclass
class FilesConfig(DataConfig):
    """Local files: plain text, JSON lines or Parquet. A text file is one document
    (sample_by=document); json/parquet files have one document per row, in `text_field`."""

    name: str = "files"
    paths: list[str] = field(default_factory=list)  # files or globs (`**` recurses)
    format: str = "auto"  # auto: from the suffix (.txt .md .jsonl .json .parquet [.gz])
    text_field: str = "text"  # json/parquet: the column holding the document
    sample_by: str = "document"  # text: document (whole file) | paragraph (blank lines) | line

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("data.format", self.format, FORMATS)
        check_choice("data.sample_by", self.sample_by, SAMPLE_BY)

    def preflight(self) -> None:
        super().preflight()
        fmt, files = self.resolve()
        versions = {f: (f.stat().st_size, f.stat().st_mtime_ns) for f in files}
        for f, version in versions.items():  # bytes first: a file that is not text at all
            problem = _file_problem(str(f), fmt, *version)
            check(problem is None, "data.paths", str(f), problem)
        for f, version in versions.items() if fmt != "text" else ():
            field_name, problem = _first_row_problem(str(f), fmt, self.text_field, *version)
            check(problem is None, field_name, getattr(self, field_name[5:]), problem)
        if fmt == "text" and self.sample_by == "document":  # a document per file: countable
            check(
                len(files) * self.val_fraction >= 1,
                "data.val_fraction",
                self.val_fraction,
                f"too small to hold out one of {len(files)} documents (one per text file with "
                "data.sample_by=document): use data.sample_by=paragraph or line, or more files"
                + (f", or data.val_fraction >= {1 / len(files):.3g}" if len(files) > 1 else ""),
            )

    def resolve(self) -> tuple[str, list[Path]]:
        """(format, files): every pattern must match a file, and `auto` must find one format.
        An existing file is taken literally, even with glob characters ([, *, ?) in its name."""
        check(
            len(self.paths) > 0,
            "data.paths",
            self.paths,
            "at least one file or glob, e.g. data.paths='[corpus/*.jsonl]'",
        )
        matched: list[Path] = []
        for pattern in self.paths:
            pattern = os.path.expanduser(pattern)
            found = (
                [Path(pattern)]
                if os.path.isfile(pattern)
                else sorted(
                    Path(m) for m in glob.glob(pattern, recursive=True) if os.path.isfile(m)
                )
            )
            check(
                bool(found),
                "data.paths",
                pattern,
                "matches no file (a directory needs a glob, e.g. 'corpus/*.jsonl')",
            )
            matched += [f for f in found if f not in matched]
        if self.format != "auto":
            return self.format, matched
        formats = {_format_of(f) for f in matched}
        check(
            len(formats) == 1 and None not in formats,
            "data.format",
            self.format,
            f"cannot tell one format from the suffixes of {[f.name for f in matched][:5]}; "
            f"set data.format to one of {', '.join(FORMATS[1:])}",
        )
        return formats.pop(), matched

    def inputs(self) -> list[Path]:
        return super().inputs() + self.resolve()[1]


@dataclass
class HFConfig(DataConfig):
    """A dataset by name through `datasets.load_dataset(path, subset, split=split)`: a Hugging
    Face hub dataset, or a local directory of data files (parquet, jsonl, ...)."""

    name: str = "hf"
    path: str = "wikitext"
    subset: Optional[str] = None  # the dataset's config name; null: DEFAULT_SUBSETS, or none
    split: str = "train"  # any `datasets` split, e.g. train[:10%]
    text_field: str = "text"
    max_documents: Optional[int] = None  # stream only the first N rows, not the whole split

    def __post_init__(self) -> None:
        super().__post_init__()
        check(bool(self.path), "data.path", self.path, "a dataset name or a local directory")
        check(
            self.max_documents is None or self.max_documents > 0,
            "data.max_documents",
            self.max_documents,
            "null (all) or > 0",
        )
        if self.subset is None:
            self.subset = DEFAULT_SUBSETS.get(self.path)

    def preflight(self) -> None:
        super().preflight()
        local = self.path.startswith(("/", "./", "../", "~")) or os.path.isabs(self.path)
        check(
            not local or Path(self.path).expanduser().exists(),
            "data.path",
            self.path,
            "no such file or directory (a hub dataset is named without a leading / . or ~)",
        )
        if local:  # a hub dataset needs the network: left to the job
            files = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in self.inputs())
            where = str(Path(self.path).expanduser().resolve())
            field_name, problem = _local_dataset_problem(
                where, self.subset, self.split, self.text_field, files
            )
            check(problem is None, field_name, getattr(self, field_name[5:]), problem)

    def inputs(self) -> list[Path]:
        local = Path(self.path).expanduser()
        files = sorted(f for f in local.rglob("*") if f.is_file()) if local.is_dir() else []
        return super().inputs() + files


@functools.lru_cache(maxsize=4096)
def _file_problem(path: str, fmt: str, size: int, mtime_ns: int) -> Optional[str]:
    """Why a data file cannot be read as documents, or None; read once per version of a file
    (every job of a sweep pre-flights the same files). Text and JSON must be UTF-8 without NUL
    bytes (a binary file); offsets count bytes of the decompressed stream."""
    if size == 0:
        return "the file is empty"
    suffix = Path(path).suffix.lower()
    if fmt == "parquet" or suffix == ".zst":
        return None  # binary by design, or no stdlib reader: left to `datasets`
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, blank = 0, True
    with OPENERS.get(suffix, open)(path, "rb") as f:
        while chunk := f.read(1 << 24):
            pending = len(decoder.getstate()[0])  # bytes of a character cut by the chunk
            try:
                decoder.decode(chunk)
                bad = None
            except UnicodeDecodeError as e:  # e.object: the pending bytes + chunk
                bad = (e.start - pending, e.object[e.start])
            nul = chunk.find(b"\x00")
            if nul >= 0 and (bad is None or nul < bad[0]):
                return f"a NUL byte at offset {offset + nul}: binary, not text"
            if bad is not None:
                return f"not UTF-8: byte 0x{bad[1]:02x} at offset {offset + bad[0]}"
            blank = blank and chunk.isspace()
            offset += len(chunk)
    if decoder.getstate()[0]:
        return (
            f"not UTF-8: the file ends inside a character at offset "
            f"{offset - len(decoder.getstate()[0])}"
        )
    return "no text, only whitespace" if blank else None


@functools.lru_cache(maxsize=4096)
def _first_row_problem(
    path: str, fmt: str, text_field: str, size: int, mtime_ns: int
) -> tuple[str, Optional[str]]:
    """(field to blame, why) when a json/parquet file's first row has no text in `text_field`,
    or the file is not of its format; (_, None) if it looks right. One row, not every row: a
    later one that does not parse fails the job's load, naming the file and the row."""
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            schema = pq.read_schema(path)
        except (pa.ArrowException, OSError) as e:
            return "data.format", f"{path} is not a Parquet file ({e})"
        if text_field not in schema.names:
            return "data.text_field", f"not a column of {path}; columns: {schema.names}"
        kind = schema.field(text_field).type
        text = pa.types.is_string(kind) or pa.types.is_large_string(kind)
        return "data.text_field", None if text else f"holds {kind} in {path}, not text"
    suffix = Path(path).suffix.lower()
    if suffix not in OPENERS and suffix in COMPRESSIONS:
        return "data.format", None  # .zst: no stdlib reader, left to `datasets`
    with OPENERS.get(suffix, open)(path, "rt", encoding="utf-8") as f:
        line = next((line for line in f if line.strip()), "").strip()
    if line.startswith("["):
        return "data.format", None  # a JSON array, not JSON lines: `datasets` reads it whole
    try:
        row = json.loads(line)
    except ValueError as e:
        return "data.format", f"{path} is not JSON lines: its first row does not parse ({e})"
    if not isinstance(row, dict) or text_field not in row:
        fields = list(row) if isinstance(row, dict) else type(row).__name__
        return "data.text_field", f"not a field of the first row of {path}; it has: {fields}"
    value = row[text_field]
    return "data.text_field", (
        None
        if value is None or isinstance(value, str)
        else f"holds {type(value).__name__} in the first row of {path} ({value!r:.40}), not text"
    )


@functools.lru_cache(maxsize=256)
def _local_dataset_problem(
    path: str, subset: Optional[str], split: str, text_field: str, files: tuple
) -> tuple[str, Optional[str]]:
    """(field to blame, why) when data=hf's local dataset cannot give the job text: the job's
    own `load_dataset(path, subset, split=...)`, streamed, to its first row only (the files are
    read in place; its lock files go to a temporary cache). `files`: what the directory holds,
    with sizes and mtimes, so an edited dataset is read again."""
    import tempfile

    import datasets

    base = re.split(r"[\[+]", split, maxsplit=1)[0].strip()  # a slice is not streamed
    try:
        with tempfile.TemporaryDirectory(prefix="lmsweep-preflight-") as tmp:
            ds = datasets.load_dataset(path, subset, split=base, streaming=True, cache_dir=tmp)
            row = next(iter(ds), None)
            columns = ds.column_names or (list(row) if row is not None else None)
    except Exception as e:  # file, config, split and parse errors come in many types
        message = str(e).splitlines()[0] if str(e) else ""
        field_name = "data.split" if "split" in message.lower() else "data.path"
        field_name = "data.subset" if "BuilderConfig" in message else field_name
        return field_name, f"could not read the dataset at {path}: {type(e).__name__}: {message}"
    if columns is not None and text_field not in columns:
        return "data.text_field", f"not a column of the dataset at {path}; columns: {columns}"
    value = None if row is None else row.get(text_field)
    return "data.text_field", (
        None
        if value is None or isinstance(value, str)
        else f"holds {type(value).__name__} in the first row of the dataset at {path} "
        f"({value!r:.40}), not text"
    )


def _format_of(path: Path) -> Optional[str]:
    suffixes = [s.lower() for s in path.suffixes if s.lower() not in COMPRESSIONS]
    return SUFFIX_FORMATS.get(suffixes[-1]) if suffixes else None


def load_texts(
    what: str, text_field: str, max_documents: Optional[int], *args: Any, **kwargs: Any
) -> list[str]:
    """`datasets.load_dataset(*args, **kwargs)` -> the non-blank strings of `text_field`.
    What goes wrong on the way (a file, a split or the hub; a row that does not parse, streamed
    ones fail while read) is one ConfigError naming `what`, not a traceback from inside."""
    import datasets

    try:
        ds = datasets.load_dataset(*args, **kwargs)
        columns = ds.column_names  # None when a stream does not know its columns up front
        check(
            columns is None or text_field in columns,
            "data.text_field",
            text_field,
            f"not a column of {what}; columns: {columns}",
        )
        if max_documents is not None:
            ds = ds.take(max_documents)
        texts = [t for batch in ds.iter(batch_size=1024) for t in batch[text_field]]
    except ConfigError:
        raise
    except Exception as e:  # hub, file, split and parse errors come in many types
        raise ConfigError(f"could not load {what}: {type(e).__name__}: {e}") from e
    wrong = next((t for t in texts if t is not None and not isinstance(t, str)), None)
    check(
        wrong is None,
        "data.text_field",
        text_field,
        f"holds {type(wrong).__name__} values in {what} (e.g. {wrong!r:.40}), not text",
    )
    return [t for t in texts if t and not t.isspace()]


@SOURCES.register(ShakespeareConfig)
def shakespeare(cfg: ShakespeareConfig) -> Source:
    from trainer.data.corpus import shakespeare_documents

    return lambda: shakespeare_documents(cfg.cache_path(), cfg.doc_chars)


@SOURCES.register(FilesConfig)
def files(cfg: FilesConfig) -> Source:
    fmt, paths = cfg.resolve()
    text_field, options = (
        ("text", {"sample_by": cfg.sample_by}) if fmt == "text" else (cfg.text_field, {})
    )
    # Streamed: local files are read in place, with no Arrow copy in a `datasets` cache.
    # `datasets` globs data_files: escaped, a file named with [ ] * ? is read as named.
    return lambda: load_texts(
        f"data.paths={cfg.paths}",
        text_field,
        None,
        fmt,
        data_files=[glob.escape(str(p)) for p in paths],
        split="train",
        streaming=True,
        **options,
    )


@SOURCES.register(HFConfig)
def hf(cfg: HFConfig) -> Source:
    what = (
        f"the dataset data.path={cfg.path!r} (data.subset={cfg.subset!r}, data.split={cfg.split!r})"
    )
    # Downloads and Arrow files go under data.cache_dir/hf; a capped read streams instead.
    return lambda: load_texts(
        what,
        cfg.text_field,
        cfg.max_documents,
        cfg.path,
        cfg.subset,
        split=cfg.split,
        streaming=cfg.max_documents is not None,
        cache_dir=str(cfg.cache_path() / "hf"),
    )
