"""lmsweep's model and optimizer at the GPT-2 124M shape on one GPU: tokens/s, MFU, memory.

The shape of llm.c's GPT-2 124M baseline (12 layers, d_model 768, 12 heads, seq 1024, vocab
50,304; about 40% MFU on H100s): lmsweep's default transformer (Cramming recipe: GLU, no
biases), its AdamW (fused), bf16 autocast, TF32, torch.compile, pinned non-blocking batch
copies, and the trainer's step (micro-batches accumulated on the device, global-norm clip, one
host sync per step). Tokens are random: this measures speed, not learning. After warm-up
(which includes compiling), `--steps` steps are timed. The last line is one JSON summary.

    python scripts/bench_gpu.py                 # one GPU, about a minute on an H100/H200
    python scripts/bench_gpu.py --small         # a tiny shape, on the CPU if there is no GPU

MFU = FLOPs/token (CausalLM.flops_per_token, PaLM App. B) x tokens/s / the device's dense
peak (trainer/perf.py: datasheet for known GPUs, a measured matmul rate otherwise).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer.config import TrainConfig  # noqa: E402
from trainer.models import build_model  # noqa: E402
from trainer.models.transformer import TransformerConfig  # noqa: E402
from trainer.objectives import CLMConfig  # noqa: E402
from trainer.optim import build_optimizer  # noqa: E402
from trainer.optim.elementwise import AdamWConfig  # noqa: E402
from trainer.perf import configure_device, device_peak, to_device, wants_compile  # noqa: E402

GPT2 = dict(
    n_layers=12,
    d_model=768,
    n_heads=12,
    seq_len=1024,
    vocab=50304,
    micro_batch=32,
    accum=2,
    steps=50,
    warmup=10,
)
SMALL = dict(
    n_layers=2,
    d_model=64,
    n_heads=2,
    seq_len=64,
    vocab=512,
    micro_batch=4,
    accum=2,
    steps=3,
    warmup=2,
)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--small", action="store_true", help="a tiny shape that runs on a CPU")
    for key, value in GPT2.items():
        p.add_argument(f"--{key.replace('_', '-')}", type=int, help=f"default {value}")
    p.add_argument("--mlp", default="glu", choices=("glu", "gelu"))
    p.add_argument(
        "--precision", choices=("bf16", "fp32"), help="default: bf16 on CUDA, fp32 on the CPU"
    )
    p.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="default: on CUDA only (trainer.perf.wants_compile)",
    )
    args = p.parse_args(argv)
    for key, value in (SMALL if args.small else GPT2).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def sdpa_kernels(step) -> list[str]:
    """Which scaled-dot-product-attention implementation ran: its ops in a profiled step."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + (
        [ProfilerActivity.CUDA] if torch.cuda.is_available() else []
    )
    with profile(activities=activities) as prof:
        step()
    return sorted(
        {
            e.key
            for e in prof.key_averages()
            if "attention" in e.key.lower() and "backward" not in e.key.lower()
        }
    )


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precision = args.precision or ("bf16" if device.type == "cuda" else "fp32")
    compiled = wants_compile(args.compile, device)
    configure_device(device)
    torch.manual_seed(0)

    cfg = TransformerConfig(
        d_model=args.d_model,
        n_layers=args.n_layers,
        n_heads=args.n_heads,
        max_seq_len=args.seq_len,
        mlp=args.mlp,
    )
    model = build_model(cfg, args.vocab, causal=CLMConfig.causal).to(device)
    opt = build_optimizer(AdamWConfig(lr=6e-4), model)
    if compiled:
        model.compile()
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    rng = np.random.default_rng(0)

    def step() -> float:
        loss_sum = torch.zeros((), device=device)
        for _ in range(args.accum):
            w = to_device(rng.integers(0, args.vocab, (args.micro_batch, args.seq_len + 1)), device)
            with amp:
                loss = model.loss(w[:, :-1], w[:, 1:], z_loss=TrainConfig.z_loss)
            (loss / args.accum).backward()
            loss_sum += loss.detach() / args.accum
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        loss, grad_norm = torch.stack([loss_sum, grad_norm]).tolist()  # the one host sync
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    t0 = time.perf_counter()
    for _ in range(args.warmup):
        loss = step()
    warmup_s = time.perf_counter() - t0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    seconds = time.perf_counter() - t0

    tokens_per_s = args.steps * args.accum * args.micro_batch * args.seq_len / seconds
    flops_per_token = model.flops_per_token(args.seq_len)
    peak = device_peak(device, precision)
    summary = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "precision": precision,
        "compile": compiled,
        "mlp": args.mlp,
        "params": model.param_counts()[0],
        "vocab": args.vocab,
        "seq_len": args.seq_len,
        "tokens_per_step": args.accum * args.micro_batch * args.seq_len,
        "step_ms": 1e3 * seconds / args.steps,
        "tokens_per_s": tokens_per_s,
        "flops_per_token": flops_per_token,
        "peak_flops": peak.flops,
        "peak_source": peak.source,
        "mfu": flops_per_token * tokens_per_s / peak.flops,
        "peak_memory_gib": (
            torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
        ),
        "warmup_s": warmup_s,
        "final_loss": loss,
        "loss_is_finite": math.isfinite(loss),
        "sdpa": sdpa_kernels(step),
    }
    memory = summary["peak_memory_gib"]
    print(
        f"{summary['device']}: {tokens_per_s:,.0f} tokens/s, MFU {summary['mfu']:.1%} of "
        f"{peak.flops / 1e12:.3g} TFLOP/s ({peak.source}), {summary['step_ms']:.1f} ms/step, "
        f"peak memory {f'{memory:.1f} GiB' if memory is not None else '- (CPU)'}, "
        f"warm-up {warmup_s:.1f} s, SDPA: {', '.join(summary['sdpa']) or 'none seen'}"
    )
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()
