"""Documents -> split -> filter -> tokenize -> one token stream per split, cached on disk.

The cache key is a hash of the resolved data and filter configs (Cramming's checksum_config),
minus fields that do not change the tokens (seq_len: packing happens at load; cache_dir), plus
the size and mtime of local input files (data files, a pretrained tokenizer).
Jobs of a sweep share one build: the first takes a file lock and writes into a temporary
directory that is renamed into place, so a reader never sees a half-written cache.

meta.json, written last, records each file's size and CRC-32 and its own CRC-32. Every load
checks them (sizes, then zlib's CRC-32 at ~3 GB/s: a few ms for the default corpus), so a file
cut short, flipped or missing, or an unreadable meta.json, is rebuilt with a warning naming it,
never an mmap error or a wrong token mid-training.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
from filelock import FileLock

from trainer.contract import ConfigError
from trainer.data.filters import FilterConfig, apply
from trainer.data.order import ORDERS, OrderConfig, RandomOrderConfig
from trainer.data.sources import SOURCES, DataConfig

CACHE_FORMAT = 4  # bump when the on-disk layout or the tokens change
NOT_IN_KEY = ("seq_len", "cache_dir")
FILES = ("train.npy", "val.npy", "tokenizer.json")
log = logging.getLogger("lmsweep")


@dataclass
class Prepared:
    directory: Path
    train: np.ndarray  # token stream, documents separated by sep_id
    val: np.ndarray
    vocab_size: int
    sep_id: int
    stats: dict
    digest: str  # of the token streams and tokenizer (their CRC-32s): what a run trained on

    def params(self) -> dict[str, Any]:
        """The stats as flat MLflow params, one per filter step and count
        (`filters.0.dedup.docs_out`); the config is logged on its own."""
        flat = {k: v for k, v in self.stats.items() if k not in ("config", "filters")}
        for i, step in enumerate(self.stats["filters"]):
            flat.update(
                {f"filters.{i}.{step['name']}.{k}": v for k, v in step.items() if k != "name"}
            )
        return flat


def cache_key(data: DataConfig, filt: FilterConfig) -> str:
    """Resolving the inputs first means a bad path fails here, before anything is cached."""
    d = {k: v for k, v in asdict(data).items() if k not in NOT_IN_KEY}
    inputs = [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in data.inputs()]
    steps = [asdict(s) for s in filt.steps_in_order()]  # a chain of one step is that step
    blob = json.dumps(
        {"format": CACHE_FORMAT, "data": d, "inputs": inputs, "filter": steps}, sort_keys=True
    )
    return hashlib.md5(blob.encode()).hexdigest()[:12]


def is_validation(doc: str, val_fraction: float) -> bool:
    """Split by content hash: stable whatever the order, and exact duplicates stay together."""
    h = int.from_bytes(hashlib.md5(doc.encode("utf-8")).digest()[:8], "little")
    return h / 2**64 < val_fraction


def unigram_entropy(tokens: np.ndarray, vocab_size: int) -> float:
    """Entropy (nats/token) of the token frequencies: the loss of the best context-free model."""
    # In chunks: a whole-array bincount first copies the tokens to int64 (8x their size).
    chunk = 1 << 18
    p = np.zeros(vocab_size, dtype=np.float64)
    for i in range(0, len(tokens), chunk):
        p += np.bincount(tokens[i : i + chunk], minlength=vocab_size)
    p = p[p > 0] / p.sum()
    return float(-(p * np.log(p)).sum())


def pack(ids: np.ndarray, lengths: np.ndarray, sep: int, dtype: np.dtype) -> np.ndarray:
    """One token stream: each document's ids (concatenated in `ids`) followed by `sep`."""
    out = np.full(len(ids) + len(lengths), sep, dtype=dtype)
    is_text = np.ones(len(out), dtype=bool)
    is_text[np.cumsum(lengths + 1) - 1] = False
    out[is_text] = ids
    return out


def checksum(path: Path) -> str:
    """CRC-32 of a file: detects truncation and flipped bits (not tampering), at GB/s."""
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            crc = zlib.crc32(chunk, crc)
    return f"{crc:08x}"


def _meta_crc(meta: dict) -> str:
    return f"{zlib.crc32(json.dumps(meta, sort_keys=True).encode()):08x}"


def damage(entry: Path) -> Optional[str]:
    """What makes a cache entry unusable, naming the file; None when it is intact."""
    meta_file = entry / "meta.json"
    try:
        meta = json.loads(meta_file.read_bytes())
        meta_crc = meta.pop("meta_crc32")
        expected = {
            name: (meta["files"][name]["bytes"], meta["files"][name]["crc32"]) for name in FILES
        }
    except FileNotFoundError:
        return f"{meta_file} is missing"
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        return f"{meta_file} is unreadable ({type(e).__name__}: {str(e)[:100]})"
    if _meta_crc(meta) != meta_crc:
        return f"{meta_file} does not match its CRC-32"
    for name, (size, crc) in expected.items():
        path = entry / name
        if not path.is_file():
            return f"{path} is missing"
        if path.stat().st_size != size:
            return f"{path} has {path.stat().st_size} bytes, not the {size} written"
        if checksum(path) != crc:
            return f"{path} does not match its CRC-32"
    return None


def _build(data: DataConfig, filt: FilterConfig, out: Path) -> None:
    docs = SOURCES.build(data)()
    held_out = [is_validation(d, data.val_fraction) for d in docs]
    train_docs = [d for d, v in zip(docs, held_out) if not v]
    val_docs = [d for d, v in zip(docs, held_out) if v]
    if not val_docs:
        raise ConfigError(
            f"data.val_fraction={data.val_fraction} put none of the {len(docs)} "
            f"documents of data={data.name} in validation: use more documents "
            "(e.g. data.sample_by=paragraph for text files) or a larger fraction"
        )
    kept, filter_counts = apply(filt, train_docs)
    if not kept:
        raise ConfigError(
            f"filter={filt.name} removed every one of the {len(train_docs)} training documents "
            f"of data={data.name} ({asdict(filt)}): loosen it, or use filter=none"
        )
    tok = data.tokenizer.build(kept)
    if tok.vocab_size < data.tokenizer.expected_vocab_size():
        log.warning(
            f"data.tokenizer.vocab_size={data.tokenizer.vocab_size}: the BPE learned "
            f"{tok.vocab_size} tokens from this corpus; models keep the declared size, as "
            "planned, with the rest of their rows unused"
        )
    dtype = np.uint16 if tok.vocab_size <= 2**16 else np.uint32
    ids, lengths = tok.encode(kept + val_docs)  # one pass: the splits share most words
    cut = int(lengths[: len(kept)].sum())
    train = pack(ids[:cut], lengths[: len(kept)], tok.sep_id, dtype)
    val = pack(ids[cut:], lengths[len(kept) :], tok.sep_id, dtype)
    np.save(out / "train.npy", train)
    np.save(out / "val.npy", val)
    tok.save(out)
    stats = {
        "vocab_size": tok.vocab_size,
        "sep_id": tok.sep_id,
        "docs_total": len(docs),
        "docs_val": len(val_docs),
        "docs_train_before_filter": len(train_docs),
        "docs_train": len(kept),
        "chars_train": sum(map(len, kept)),
        "filters": filter_counts,
        "tokens_train": int(train.size),
        "tokens_val": int(val.size),
        "unigram_entropy": unigram_entropy(train, tok.vocab_size),
        "config": {"data": asdict(data), "filter": asdict(filt)},
    }
    meta = {
        **stats,
        "files": {
            name: {"bytes": (out / name).stat().st_size, "crc32": checksum(out / name)}
            for name in FILES
        },
    }
    meta["meta_crc32"] = _meta_crc(meta)
    (out / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))


def prepare(data: DataConfig, filt: FilterConfig) -> Prepared:
    root = data.cache_path() / "data"
    entry = root / f"{data.name}-{data.tokenizer.name}-{cache_key(data, filt)}"
    if not entry.exists() or damage(entry):
        root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(entry) + ".lock"):
            _ensure(data, filt, entry)
    meta = json.loads((entry / "meta.json").read_text())
    stats = {k: v for k, v in meta.items() if k not in ("files", "meta_crc32")}
    return Prepared(
        entry,
        np.load(entry / "train.npy", mmap_mode="r"),
        np.load(entry / "val.npy", mmap_mode="r"),
        stats["vocab_size"],
        stats["sep_id"],
        stats,
        _files_digest(meta["files"]),
    )


def _files_digest(files: dict) -> str:
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]


def _ensure(data: DataConfig, filt: FilterConfig, entry: Path) -> None:
    """Under the entry's lock: build it, unless another job did meanwhile. A damaged entry is
    removed first (jobs that have its files mapped keep reading them)."""
    if entry.exists():
        problem = damage(entry)
        if problem is None:
            return
        log.warning(f"data cache: {problem}; rebuilding {entry}")
        shutil.rmtree(entry)
    tmp = Path(tempfile.mkdtemp(dir=entry.parent, prefix=".building-"))
    try:
        _build(data, filt, tmp)
        tmp.rename(entry)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class Sequences:
    """Fixed-length windows over a token stream: inputs x[t], targets x[t+1].

    Window i covers tokens [i*T, i*T + T] (T+1 tokens; neighbours share one boundary token).
    Training order is a permutation per epoch from the `order` config (default: seeded
    random), so the position is one integer (`cursor`) and a resumed run sees exactly the
    batches it would have seen.
    """

    def __init__(
        self, tokens: np.ndarray, seq_len: int, seed: int, order: Optional[OrderConfig] = None
    ):
        self.tokens, self.seq_len = tokens, seq_len
        self.n = (len(tokens) - 1) // seq_len
        if self.n < 1:
            raise ValueError(
                f"data.seq_len={seq_len} is longer than the whole split ({len(tokens)} tokens)"
            )
        inputs = tokens[: self.n * seq_len].reshape(self.n, seq_len)  # a view, no copy
        self._permutation = ORDERS.build(order or RandomOrderConfig(), inputs, seed)
        self.cursor = 0
        self._epoch, self._order = -1, np.arange(0)

    def windows(self, idx: np.ndarray) -> np.ndarray:
        offsets = idx[:, None] * self.seq_len + np.arange(self.seq_len + 1)[None, :]
        return np.asarray(self.tokens[offsets], dtype=np.int64)

    def _order_of(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            self._epoch = epoch
            self._order = self._permutation(epoch)
        return self._order

    def next(self, count: int) -> np.ndarray:
        return self.next_shard(count, rank=0, world=1)

    def next_shard(self, count: int, rank: int, world: int) -> np.ndarray:
        """Rank `rank`'s rows of the next global batch of `count` windows: rows
        [rank * count / world, (rank + 1) * count / world) of what `next(count)` returns. Every
        rank advances the cursor by `count`, so the ranks of a data-parallel job stay at one
        position and read, together, the batches of a one-process run."""
        if count % world or not 0 <= rank < world:
            raise ValueError(
                f"a global batch of {count} windows has no rank {rank} share of "
                f"equal size over {world} ranks"
            )
        share = count // world
        epochs, pos = np.divmod(self.cursor + rank * share + np.arange(share), self.n)
        idx = np.empty(share, dtype=np.int64)
        for epoch in np.unique(epochs):
            at = epochs == epoch
            idx[at] = self._order_of(int(epoch))[pos[at]]
        self.cursor += count
        return self.windows(idx)

    def evenly_spaced(self, count: int) -> np.ndarray:
        """A fixed evaluation set: `count` windows spread over the whole split."""
        count = min(count, self.n)
        return self.windows(np.linspace(0, self.n - 1, count).round().astype(np.int64))
