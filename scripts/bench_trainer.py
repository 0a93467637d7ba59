"""lmsweep's Trainer step against a minimal nanoGPT-style GPT, side by side (issue 10).

Every contender is built and warmed up in its own worker process; the coordinator then
interleaves them, a few steps each per round (A, B, A, B, ... with the order reversed every
other round), so drifts in machine load hit all alike. One worker computes at a time, each
with the same thread count, shape, micro-batch and vocabulary (the byte corpus).

    python scripts/bench_trainer.py                          # both shapes, fp32
    python scripts/bench_trainer.py --extras bf16,compile    # + bf16 autocast, torch.compile
    python scripts/bench_trainer.py --before 067e59d --before HEAD~1   # + lmsweep at commits
    python scripts/bench_trainer.py --variants default,model.ffn_hidden=341
    python scripts/bench_trainer.py --threads 1 --clock cpu  # on a machine others load too

Prints tokens/s, the median of the per-round ratios to the reference in the same precision
and mode, and MFU = FLOPs/token x tokens/s / a matmul rate measured in this run (FLOPs per
PaLM App. B, the project's own count, for both models). Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHAPES = {
    "demo": dict(d_model=128, n_layers=4, n_heads=4, seq_len=128, micro_batch=16),
    "large": dict(d_model=384, n_layers=6, n_heads=6, seq_len=256, micro_batch=16),
}


# --- the reference: nanoGPT's model.py and train.py step, minimal (Karpathy, nanoGPT) -------
def reference_model(shape: dict, vocab: int):
    import torch.nn.functional as F
    from torch import nn

    d, h, L, T = shape["d_model"], shape["n_heads"], shape["n_layers"], shape["seq_len"]

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.c_attn, self.c_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
            self.c_fc, self.mlp_proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

        def forward(self, x):
            B, T_, C = x.shape
            q, k, v = (
                t.view(B, T_, h, C // h).transpose(1, 2)
                for t in self.c_attn(self.ln_1(x)).split(C, dim=2)
            )
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.c_proj(y.transpose(1, 2).contiguous().view(B, T_, C))
            return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(T, d)
            self.h = nn.ModuleList(Block() for _ in range(L))
            self.ln_f = nn.LayerNorm(d)
            self.lm_head = nn.Linear(d, vocab, bias=False)
            self.wte.weight = self.lm_head.weight
            for name, p in self.named_parameters():
                if p.dim() >= 2:
                    std = 0.02 / math.sqrt(2 * L) if name.endswith("proj.weight") else 0.02
                    nn.init.normal_(p, std=std)
                elif name.endswith("bias") and "ln" not in name:
                    nn.init.zeros_(p)

        def forward(self, idx, targets):
            x = self.wte(idx) + self.wpe.weight[: idx.size(1)]
            for block in self.h:
                x = block(x)
            logits = self.lm_head(self.ln_f(x))
            return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))

    model = GPT()
    blocks = sum(p.numel() for p in model.h.parameters())
    flops_per_token = 6 * blocks + 12 * L * T * d + 6 * d * vocab  # PaLM App. B
    return model, flops_per_token


def reference_worker(spec: dict):
    import numpy as np
    import torch

    from trainer.config import to_job
    from trainer.data.prepare import prepare

    job = to_job(compose(spec, []))
    data = prepare(job.data, job.filter)
    shape, B = spec["shape"], spec["shape"]["micro_batch"]
    T = shape["seq_len"]
    torch.manual_seed(0)
    model, flops_per_token = reference_model(shape, data.vocab_size)
    params = [p for p in model.parameters()]
    opt = torch.optim.AdamW(
        [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ],
        lr=1e-3,
        betas=(0.9, 0.95),
    )
    tokens = data.train
    amp = autocast(spec["precision"])
    if spec["compile"]:
        model.compile()

    def step():
        ix = torch.randint(len(tokens) - T - 1, (B,))
        x, y = (
            torch.stack([torch.from_numpy(tokens[i + s : i + s + T].astype(np.int64)) for i in ix])
            for s in (0, 1)
        )
        with amp:
            loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step, B * T, flops_per_token * B * T, lambda: 0.0


def autocast(precision: str):
    import contextlib

    import torch

    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


# --- lmsweep -------------------------------------------------------------------------------
def compose(spec: dict, overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from trainer.config import register_configs

    register_configs()
    shape = spec["shape"]
    args = [
        f"model.d_model={shape['d_model']}",
        f"model.n_layers={shape['n_layers']}",
        f"model.n_heads={shape['n_heads']}",
        f"data.seq_len={shape['seq_len']}",
        f"train.micro_batch={shape['micro_batch']}",
        f"ramp.start={shape['micro_batch']}",
        "schedule=constant",
        "budget.steps=1000000",
        "train.eval_sequences=64",
        f"data.cache_dir={spec['cache']}",  # this checkout's, for every tree (contenders)
    ]
    conf = Path(sys.modules["trainer"].__file__).parents[1] / "conf"  # the tree's own
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=args + overrides)


def lmsweep_worker(spec: dict):
    import torch

    from trainer.config import to_job
    from trainer.loop import Trainer, evaluate

    precision = ["train.precision=bf16"] if spec["precision"] == "bf16" else []
    job = to_job(
        compose(spec, [f"train.threads={spec['threads']}", *precision, *spec["overrides"]])
    )
    trainer = Trainer(job)
    if spec["compile"]:
        trainer.model.compile()
    batch = spec["shape"]["micro_batch"] * trainer.seq_len

    def evaluate_once():
        t0 = time.perf_counter()
        evaluate(
            trainer.model,
            trainer.objective,
            trainer.val_windows,
            job.train.micro_batch,
            trainer.amp,
        )
        return time.perf_counter() - t0

    assert torch.get_num_threads() == spec["threads"]
    return trainer.step, batch, trainer.flops_per_token * batch, evaluate_once


def matmul_worker(spec: dict):
    """The peak the others are measured against, interleaved with them: n x n x n matmuls in
    the precision of the mode (2 n^3 FLOPs each; trainer.perf measures the same way)."""
    import torch

    n, reps = 1024, 8
    kind = torch.bfloat16 if spec["precision"] == "bf16" else torch.float32
    a, b = (torch.randn(n, n, dtype=kind) for _ in range(2))

    def step():
        for _ in range(reps):
            a @ b

    return step, 0, 2 * n**3 * reps, lambda: 0.0


WORKERS = {"reference": reference_worker, "lmsweep": lmsweep_worker, "matmul": matmul_worker}
# wall: what a run takes. cpu: the process's CPU seconds, which other load on the machine
# barely changes; with --threads 1 it equals wall on a quiet machine (with more threads, time
# they spend idle is not counted).
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def worker(spec: dict) -> None:
    import torch

    torch.set_num_threads(spec["threads"])
    t0 = time.perf_counter()
    step, tokens, flops, evaluate_once = WORKERS[spec["kind"]](spec)
    built = time.perf_counter()
    for _ in range(spec["warmup"]):
        step()
    warm = time.perf_counter()
    evals = [evaluate_once(), evaluate_once()]  # compiled: the first one recompiles
    trainer = getattr(sys.modules.get("trainer"), "__file__", "")  # which tree was imported
    print(
        json.dumps(
            {
                "tokens": tokens,
                "flops": flops,
                "build_s": built - t0,
                "warmup_s": warm - built,
                "eval_s": evals,
                "trainer": trainer,
            }
        ),
        flush=True,
    )
    for line in sys.stdin:
        if not int(line):
            return
        clock = CLOCKS[spec["clock"]]
        t0 = clock()
        for _ in range(int(line)):
            step()
        print(json.dumps({"seconds": clock() - t0}), flush=True)


# --- the coordinator ------------------------------------------------------------------------
class Worker:
    def __init__(self, label: str, spec: dict, tree: Path):
        self.label, self.spec, self.seconds = label, spec, []
        env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": str(spec["threads"])}
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", json.dumps(spec)],
            cwd=ROOT,
            env=env,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.info = self._read()
        if spec["kind"] == "lmsweep" and not self.info["trainer"].startswith(str(tree)):
            raise RuntimeError(f"{label} imported {self.info['trainer']}, not from {tree}")

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.label} died (exit {self.proc.wait()})")
        return json.loads(line)

    def run(self, steps: int) -> float:
        self.proc.stdin.write(f"{steps}\n")
        self.proc.stdin.flush()
        seconds = self._read()["seconds"]
        self.seconds.append(seconds)
        return seconds

    def close(self) -> None:
        self.proc.stdin.write("0\n")
        self.proc.stdin.close()
        self.proc.wait()


def checkout(rev: str, into: Path) -> Path:
    """The tree of `rev` (a directory is taken as it is), unpacked without touching the
    repository's worktrees or index."""
    if Path(rev).is_dir():
        return Path(rev).resolve()
    into.mkdir(parents=True)
    archive = into / "tree.tar"
    subprocess.run(["git", "archive", "-o", str(archive), rev], cwd=ROOT, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "tree", filter="data")
    return into / "tree"


def contenders(args, before: list[Path]) -> list[tuple[str, dict, Path]]:
    from trainer.contract import cache_root  # the coordinator's lmsweep, not a --before tree

    modes = [("fp32", False)] + [(m, m == "compile") for m in args.extras]
    out = []
    for mode, compiled in modes:
        precision = "bf16" if mode == "bf16" else "fp32"
        tag = "" if mode == "fp32" else f" [{mode}]"
        base = dict(
            precision=precision,
            compile=compiled,
            threads=args.threads,
            warmup=args.warmup,
            clock=args.clock,
            cache=str(cache_root(ROOT)),
        )
        lm = [
            ("" if v == "default" else f" {v}", [] if v == "default" else v.split())
            for v in args.variants.split(",")
        ]
        out.append((f"matmul{tag}", dict(base, kind="matmul", overrides=[]), ROOT))
        out.append((f"reference{tag}", dict(base, kind="reference", overrides=[]), ROOT))
        for suffix, overrides in lm:
            out.append(
                (f"lmsweep{suffix}{tag}", dict(base, kind="lmsweep", overrides=overrides), ROOT)
            )
            for rev, tree in zip(args.before, before) if mode == "fp32" else ():
                out.append(
                    (
                        f"lmsweep@{Path(rev).name}{suffix}",
                        dict(base, kind="lmsweep", overrides=overrides),
                        tree,
                    )
                )
    return out


def bench_shape(name: str, args, before: list[Path]) -> list[dict]:
    shape = SHAPES[name]
    print(
        f"\n== {name}: d_model {shape['d_model']}, {shape['n_layers']} layers, "
        f"{shape['n_heads']} heads, seq {shape['seq_len']}, micro-batch {shape['micro_batch']}"
        f"; {args.threads} threads, {args.rounds} rounds x {args.steps} steps, {args.clock} "
        f"clock",
        flush=True,
    )
    workers = []
    for label, spec, tree in contenders(args, before):
        workers.append(Worker(label, dict(spec, shape=shape), tree))
    for r in range(args.rounds):
        for w in workers if r % 2 == 0 else workers[::-1]:
            w.run(args.steps)
    for w in workers:
        w.close()

    rows = []
    print(
        f"{'contender':40s} {'tokens/s':>9s} {'vs ref':>7s} {'MFU':>6s} "
        f"{'warm-up s':>9s} {'eval s (1st, 2nd)':>18s}"
    )
    for w in workers:
        tag = w.label[w.label.index(" [") :] if " [" in w.label else ""
        ref, peak = (
            next(v for v in workers if v.label == f"{kind}{tag}")
            for kind in ("reference", "matmul")
        )
        # per round: this contender's FLOP/s over the matmul's, and its speed over the reference's
        flops = [w.info["flops"] * args.steps / s for s in w.seconds]
        peaks = [peak.info["flops"] * args.steps / s for s in peak.seconds]
        mfu = statistics.median(f / p for f, p in zip(flops, peaks))
        if w.spec["kind"] == "matmul":
            print(
                f"{w.label:40s} {'':22s}   peak {statistics.median(peaks) / 1e9:.0f} GFLOP/s "
                f"(median of rounds)"
            )
            continue
        tok_s = w.info["tokens"] * args.steps * len(w.seconds) / sum(w.seconds)
        ratio = statistics.median(b / a for a, b in zip(w.seconds, ref.seconds))
        e1, e2 = w.info["eval_s"]
        print(
            f"{w.label:40s} {tok_s:9.0f} {ratio:6.3f}x {mfu:6.1%} "
            f"{w.info['warmup_s']:9.1f} {e1:8.2f}, {e2:8.2f}"
        )
        rows.append(dict(shape=name, contender=w.label, tokens_per_s=tok_s, ratio=ratio, mfu=mfu))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shapes", default="demo,large")
    p.add_argument("--rounds", type=int, default=12)
    p.add_argument("--steps", type=int, default=4, help="steps per contender per round")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument(
        "--clock",
        choices=tuple(CLOCKS),
        default="wall",
        help="cpu: process CPU time, for a machine others load too (use --threads 1)",
    )
    p.add_argument("--extras", default="", help="comma-separated: bf16, compile")
    p.add_argument(
        "--before",
        action="append",
        default=[],
        help="a git revision (or a tree) of lmsweep to run beside, in fp32",
    )
    p.add_argument(
        "--variants",
        default="default,model.mlp=gelu",
        help="lmsweep's contenders: comma-separated override sets (the default "
        "model, and like-for-like with the reference's GELU MLP)",
    )
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(json.loads(args.worker))
    args.extras = [e for e in args.extras.split(",") if e]

    with tempfile.TemporaryDirectory() as tmp:
        before = [checkout(rev, Path(tmp) / str(i)) for i, rev in enumerate(args.before)]
        rows = [r for s in args.shapes.split(",") for r in bench_shape(s, args, before)]
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
