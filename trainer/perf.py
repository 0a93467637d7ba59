"""Speed: the device's peak FLOP/s, the MFU measured against it, and the settings that get there.

MFU (model FLOPs utilisation; Chowdhery et al. 2022, PaLM App. B):

    mfu = flops_per_token * tokens_per_s / peak

with flops_per_token the model's own count (CausalLM.flops_per_token: 6N + sequence mixing +
head) and peak the device's dense matmul rate for the precision in use: for a GPU its datasheet
figure, found by name; for a CPU (or a GPU not in the table) a matmul rate measured once per
machine and cached on disk.
"""

from __future__ import annotations

import json
import platform
import re
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional

import numpy as np
import torch

DTYPES = ("bf16", "fp32")


@dataclass(frozen=True)
class Peak:
    flops: float  # dense FLOP/s
    source: str  # "datasheet", "measured", or "estimate" (an unknown GPU)


# NVIDIA datasheets, dense (without 2:4 sparsity), per GPU, in TFLOP/s: (bf16, fp32). The fp32
# column is the TF32 tensor-core rate: on CUDA fp32 matmuls run as TF32 (configure_device).
# First match wins, so specific names precede the general ones.
GPU_PEAKS: tuple[tuple[str, float, float], ...] = (
    (r"\bB200\b", 2250, 1100),
    (r"\bH(100|800)\b.*\bPCIe\b", 756, 378),
    (r"\bH100\b.*\bNVL\b", 835, 417.5),
    (r"\bH200\b.*\bNVL\b", 835, 417.5),
    (r"\bH(100|200|800)\b", 989, 494.7),  # SXM; H200 has H100 SXM's compute
    (r"\bA100\b", 312, 156),
    (r"\bA800\b", 312, 156),
    (r"\bL40S\b", 362, 183),
    (r"\bL40\b", 181, 90.5),
    (r"\bL4\b", 121, 60),
    (r"\bA40\b", 149.7, 74.8),
    (r"\bA10\b", 125, 62.5),
    (r"\bRTX 4090\b", 165.2, 82.6),  # bf16 with fp32 accumulation, as torch runs it
    (r"\bRTX 3090\b", 71, 35.6),
    (r"\bV100\b", 15.7, 15.7),  # no bf16 or TF32 units: both run at FP32 rate
)
UNKNOWN_GPU = "A100"  # a name not above is estimated as this one
GPU_NAMES = ("B200", "H100", "H200", "A100", "L40S", "L4", "A10", "RTX 4090", "V100")


def peak_flops(device_name: str, dtype: str) -> Peak:
    """Dense peak FLOP/s of a GPU by its torch.cuda.get_device_name(); dtype "bf16" | "fp32".
    A name not in GPU_PEAKS gets UNKNOWN_GPU's figures, marked as an estimate."""
    column = DTYPES.index(dtype)
    for pattern, *tflops in GPU_PEAKS:
        if re.search(pattern, device_name, re.IGNORECASE):
            return Peak(tflops[column] * 1e12, "datasheet")
    return Peak(peak_flops(UNKNOWN_GPU, dtype).flops, "estimate")


def measure_matmul_flops(device: torch.device, dtype: str, seconds: float = 0.5) -> float:
    """Best rate of an n x n x n matmul (2n^3 FLOPs) over `seconds`, after one warm-up."""
    n = 1024 if device.type == "cpu" else 8192  # large enough to reach the plateau
    kind = torch.bfloat16 if dtype == "bf16" else torch.float32
    a, b = (torch.randn(n, n, device=device, dtype=kind) for _ in range(2))
    a @ b  # warms up threads, caches, kernels
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end or not best:
        t0 = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = max(best, 2 * n**3 / (time.perf_counter() - t0))
    return best


def machine_key(device: torch.device, dtype: str) -> str:
    """What a measured rate depends on: the processor (or GPU), the threads, the precision."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}:{dtype}"
    return f"cpu:{cpu_model()}:{torch.get_num_threads()}t:{dtype}"


@lru_cache(maxsize=None)
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_peak(device: torch.device, dtype: str, cache_dir: Optional[Path] = None) -> Peak:
    """The peak a run on `device` is measured against: a known GPU's datasheet figure, or a
    matmul rate measured once per machine (half a second), kept for the process and cached in
    cache_dir/peak_flops.json. A machine busy with other work when it is measured reads slow,
    and MFU then high: delete the file to measure again."""
    if device.type == "cuda":
        peak = peak_flops(torch.cuda.get_device_name(device), dtype)
        if peak.source == "datasheet":
            return peak
    key = machine_key(device, dtype)
    if key not in MEASURED:
        MEASURED[key] = _measure_cached(device, dtype, key, cache_dir)
    return Peak(MEASURED[key], "measured")


MEASURED: dict[str, float] = {}  # this process's measurements, by machine_key


def _measure_cached(device: torch.device, dtype: str, key: str, cache_dir: Optional[Path]) -> float:
    if cache_dir is None:
        return measure_matmul_flops(device, dtype)
    from filelock import FileLock

    path = Path(cache_dir) / "peak_flops.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):  # jobs starting together measure in turn
        table = json.loads(path.read_text()) if path.exists() else {}
        if key not in table:
            table[key] = measure_matmul_flops(device, dtype)
            path.write_text(json.dumps(table, indent=1, sort_keys=True))
    return table[key]


def mfu(flops_per_token: float, tokens_per_s: float, peak: float) -> float:
    return flops_per_token * tokens_per_s / peak


# --- settings that get near the peak ------------------------------------------------------
def configure_device(device: torch.device) -> None:
    """On CUDA, let fp32 matmuls run as TF32 on tensor cores (10-bit mantissa products, fp32
    accumulation; what the fp32 column of GPU_PEAKS assumes); bf16 autocast is unaffected."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def uses_bf16(precision: str, cuda: bool) -> bool:
    """train.precision resolved: bf16 when asked, or `auto` on a GPU with bf16 units (Ampere
    and newer; older ones would emulate it, slower than fp32)."""
    return precision == "bf16" or (
        precision == "auto" and cuda and torch.cuda.is_bf16_supported(including_emulation=False)
    )


def to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """Host batch -> device. On CUDA through pinned memory, asynchronously: the copy overlaps
    the work already queued instead of waiting for it."""
    batch = torch.from_numpy(array)
    if device.type != "cuda":
        return batch
    return batch.pin_memory().to(device, non_blocking=True)


def wants_compile(setting: Optional[bool], device: torch.device) -> bool:
    """train.compile: null compiles on CUDA only. On 2 CPU cores torch.compile took ~27 s
    for 1.02-1.13x after (issue 10; validation runs eagerly, trainer/loop.py; measure with
    scripts/bench_trainer.py --extras compile): a loss for jobs of a few minutes. Compile with
    model.compile(), in place: state_dict keys stay as they are, so checkpoints of compiled
    and eager runs load into each other (CausalLM.forward computes the loss in the graph)."""
    return device.type == "cuda" if setting is None else setting
