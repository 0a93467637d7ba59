"""Distributed training throughput and memory on GPUs: lmsweep's Trainer step under each `dist`.

    python scripts/bench_dist_gpu.py            # CUDA: the 124M GPT shape, bf16 (< 3 min, H200)
    python scripts/bench_dist_gpu.py --small    # CPU, a tiny shape: checks the script runs

Cases, each in a fresh process (its own peak memory), ranks started as `launch.py` starts them:
- none: one GPU, no process group (the baseline);
- ddp: DistributedDataParallel on 1 rank (its overhead over `none`);
- fsdp, zero2, zero3: FSDP2 and DeepSpeed ZeRO-2/3 on every GPU of the machine (1 here: the
  wrappers' own cost; on N GPUs, sharded training at N ranks).

The 124M GPT shape: 12 layers, d_model 768, 12 heads, sequence 1024 (GPT-2 small), GELU MLP,
learned positions, tied embeddings; the vocabulary is the default corpus's bytes, so the
model has ~85M parameters rather than GPT-2's 124M (its 50,257-token embedding). bf16 autocast
(FSDP2: bf16 parameters and fp32 reduction; DeepSpeed: its bf16 mode), fused AdamW. Eager by
default, so the cases differ by their wrapper alone (`--compile`: as training on CUDA runs by
default; each case then compiles for about a minute).

Prints tokens/s per GPU and in all, MFU against the GPU's datasheet bf16 peak
(trainer/perf.py), and each rank's peak allocated memory; ends with one JSON line. Figures
are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHAPES = {
    "gpt124m": [
        "model=transformer",
        "model.n_layers=12",
        "model.d_model=768",
        "model.n_heads=12",
        "model.mlp=gelu",
        "data.seq_len=1024",
        "train.micro_batch=16",
        "train.precision=bf16",
    ],
    "small": [
        "model=transformer",
        "model.n_layers=2",
        "model.d_model=64",
        "model.n_heads=4",
        "model.mlp=gelu",
        "data.seq_len=64",
        "train.micro_batch=8",
        "train.precision=fp32",
        "train.device=cpu",
        "train.threads=1",
    ],
}
STEPS = {"gpt124m": (5, 30), "small": (2, 5)}  # (warm-up, timed) optimizer steps


def cases(small: bool) -> dict[str, list[str]]:
    import torch

    gpus = 2 if small else max(1, torch.cuda.device_count())
    return {
        "none": ["dist=none"],
        "ddp": ["dist=ddp", "dist.nproc=1"],
        "fsdp": ["dist=fsdp", f"dist.nproc={gpus}"],
        "zero2": ["dist=deepspeed", "dist.zero_stage=2", f"dist.nproc={gpus}"],
        "zero3": ["dist=deepspeed", "dist.zero_stage=3", f"dist.nproc={gpus}"],
    }


# --- in a case's process ------------------------------------------------------------------
def measure(job, warmup: int, steps: int) -> dict:
    """Time `steps` optimizer steps after `warmup` (kernel selection, DeepSpeed set-up)."""
    import torch

    from trainer.dist import ranks
    from trainer.loop import Trainer

    t = Trainer(job)
    cuda = t.device.type == "cuda"
    for _ in range(warmup):
        t.step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        t.step()
    if cuda:
        torch.cuda.synchronize()
    seconds = ranks.slowest(time.perf_counter() - t0)
    tokens = steps * t.ramp(0.0) * t.seq_len
    return {
        "params": t.params_total,
        "tokens_per_s": tokens / seconds,
        "flops_per_token": t.flops_per_token,
        "world": ranks.world(),
        "peak_memory_gib": [round(b / 2**30, 3) for b in ranks.peak_memory_bytes()],
    }


def one_case(name: str, small: bool, compile: bool) -> dict:
    from hydra import compose, initialize_config_dir

    from trainer.config import preflight, register_configs, to_job
    from trainer.dist import spawn
    from trainer.dist.run import rank_main

    shape = "small" if small else "gpt124m"
    # ZeRO-3 does not compile (asked to, the job is refused): its default, eager, there
    flag = "null" if compile and name == "zero3" else str(compile).lower()
    overrides = [*SHAPES[shape], *cases(small)[name], f"train.compile={flag}"]
    nproc = int(next((o.split("=")[1] for o in overrides if o.startswith("dist.nproc")), 1))
    # one global batch = one micro-batch per rank: throughput, not accumulation, is measured
    micro = int(next(o.split("=")[1] for o in overrides if o.startswith("train.micro_batch")))
    overrides.append(f"ramp.start={micro * nproc}")
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        job = to_job(compose(config_name="config", overrides=overrides))
    preflight(job)
    warmup, steps = STEPS[shape]
    if not job.dist.runs_ranks:
        return measure(job, warmup, steps)
    return spawn.start(nproc, rank_main, (measure, job, warmup, steps))


# --- the coordinator ------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--small", action="store_true", help="CPU, a tiny shape (a smoke run)")
    ap.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case, print it
    ap.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile each case's model, as training on CUDA does by default; off: the "
        "wrappers' own cost in eager mode, without five compilations of ~1 min each",
    )
    ap.add_argument(
        "--case-timeout",
        type=float,
        default=150.0,
        help="seconds each case may take, compiling included; one that hangs is reported "
        "failed and the next runs (a lent GPU's minutes are few)",
    )
    args = ap.parse_args()
    if args.case:
        print("RESULT " + json.dumps(one_case(args.case, args.small, args.compile)), flush=True)
        return
    import torch

    if not args.small and not torch.cuda.is_available():
        sys.exit("no CUDA device: run with --small for the CPU smoke run")
    device = "cpu" if args.small else torch.cuda.get_device_name(0)
    results = {}
    for name in cases(args.small):
        t0 = time.perf_counter()
        flags = [f for f, on in (("--small", args.small), ("--compile", args.compile)) if on]
        cmd = [sys.executable, __file__, "--case", name, *flags]
        # its own process group: a case that hangs is killed with the ranks it started
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=args.case_timeout)
            line = next((x for x in out.splitlines() if x.startswith("RESULT ")), None)
            if proc.returncode != 0 or line is None:
                tail = (out + err).strip().splitlines()[-5:]
                results[name] = {"error": " | ".join(tail)[-600:]}
            else:
                results[name] = json.loads(line[len("RESULT ") :])
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            results[name] = {"error": f"timed out after {args.case_timeout:g} s"}
        results[name]["wall_s"] = round(time.perf_counter() - t0, 1)
        # as each case ends: a run stopped from outside still leaves the cases done
        print(f"case {name}: {json.dumps(results[name])}", flush=True)
    report(results, device, args.small, args.compile)


def report(results: dict, device: str, small: bool, compiled: bool) -> None:
    import torch

    from trainer.perf import device_peak

    # A GPU not in the datasheet table is measured, never given another GPU's peak.
    peak = None if small else device_peak(torch.device("cuda"), "bf16")
    base = results.get("none", {}).get("tokens_per_s")
    where = f", peak {peak.flops / 1e12:.0f} TFLOP/s ({peak.source})" if peak else ""
    mode = "torch.compile" if compiled else "eager"
    print(f"\n{device}, shape {'small' if small else 'gpt124m'}, {mode}{where}")
    print(
        f"{'case':6} {'ranks':>5} {'tok/s':>11} {'tok/s/GPU':>10} {'vs none':>8} "
        f"{'MFU':>6} {'peak GiB per rank':>18}"
    )
    for name, r in results.items():
        if "error" in r:
            print(f"{name:6} failed: {r['error']}")
            continue
        per = r["tokens_per_s"] / r["world"]
        r["tokens_per_s_per_gpu"] = round(per)
        r["vs_none_per_gpu"] = round(per / base, 3) if base else None
        r["mfu"] = round(r["flops_per_token"] * per / peak.flops, 4) if peak else None
        mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "-"
        print(
            f"{name:6} {r['world']:>5} {r['tokens_per_s']:>11,.0f} {per:>10,.0f} "
            f"{r['vs_none_per_gpu'] or 0:>8.3f} {mfu:>6} "
            f"{', '.join(map(str, r['peak_memory_gib'])):>18}"
        )
    print(
        json.dumps(
            {
                "bench": "dist_gpu",
                "device": device,
                "shape": "small" if small else "gpt124m",
                "compile": compiled,
                "cases": results,
            }
        )
    )


if __name__ == "__main__":
    main()
