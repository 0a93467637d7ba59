"""model.params: solve the model width for a target parameter count, before any data is touched.

Counts are exact: every candidate is built on the meta device (no memory allocated) and counted
as the trained model is (CausalLM.param_counts). d_model is searched over the widths the family
allows (multiples of `width_multiple()`, e.g. n_heads). On small models one width step moves
the count by ~2*step/d, more than the 1% tolerance, so the hidden width of the channel unit
(`ffn_hidden`, which the count is affine in) is then solved to close the gap: on the coarsest
grid of ALIGNMENTS that still lands within 1%, since GEMMs of aligned sizes run faster.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import TYPE_CHECKING, Iterator, Optional

import torch
from torch.overrides import TorchFunctionMode

from trainer.models.registry import MODELS
from trainer.registry import check

if TYPE_CHECKING:
    from trainer.models.common import ModelConfig

TOLERANCE = 0.01
ALIGNMENTS = (64, 32, 16, 8, 1)  # preferred multiples for a solved ffn_hidden, coarsest first
MAX_WIDTH = 1 << 20
SUFFIXES = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9}


def parse_count(value: object) -> int:
    """1000000, 1e6, 1M, 1.5M, 500k, 2B -> an int > 0 (suffixes are case-insensitive)."""
    text = str(value).strip().lower().replace("_", "")
    scale = SUFFIXES.get(text[-1:])
    try:
        n = round(float(text[:-1] if scale else text) * (scale or 1))
    except (ValueError, OverflowError):
        n = 0
    check(n > 0, "model.params", value, "a positive count such as 1000000, 1M, 1.5M or 500k")
    return n


class _NoRandomInit(TorchFunctionMode):
    """Skips random initialisation: a model built to be sized needs shapes only, and torch's
    normal_ on a meta tensor imports torch._dynamo (~2 s) the first time."""

    SKIP = {
        "normal_",
        "uniform_",
        "trunc_normal_",
        "kaiming_normal_",
        "kaiming_uniform_",
        "xavier_normal_",
        "xavier_uniform_",
        "orthogonal_",
    }

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in self.SKIP:
            return args[0] if args else kwargs["tensor"]  # nn.init passes it by name
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def on_meta() -> Iterator[None]:
    """Build models on the meta device (no memory), uninitialised."""
    with torch.device("meta"), _NoRandomInit():
        yield


def count_params(cfg: ModelConfig, vocab_size: int, *, causal: bool) -> int:
    """Trainable parameters of the model build_model would build, without allocating it."""
    with on_meta():
        return MODELS.build(cfg, vocab_size, causal=causal).param_counts()[0]


def solve_width(cfg: ModelConfig, vocab_size: int, *, causal: bool) -> ModelConfig:
    """cfg with d_model (and, when widths alone miss, ffn_hidden) set so that the model has
    model.params trainable parameters within 1%; n_layers and every other field are kept.
    Unchanged when model.params is null. Any d_model/ffn_hidden given with params is replaced."""
    if cfg.params is None:
        return cfg
    target = parse_count(cfg.params)
    step = cfg.width_multiple()
    cache: dict[tuple[int, Optional[int]], int] = {}

    def count(d: int, hidden: Optional[int] = None) -> int:
        if (d, hidden) not in cache:
            cache[d, hidden] = count_params(
                replace(cfg, d_model=d, ffn_hidden=hidden), vocab_size, causal=causal
            )
        return cache[d, hidden]

    def close(n: int) -> bool:
        return abs(n - target) <= TOLERANCE * target

    # Largest multiple `lo` of step whose count is <= target (0: none), and the next one, `hi`.
    lo, hi = 0, 1
    while count(hi * step) <= target:
        lo, hi = hi, 2 * hi
        check(
            hi * step <= MAX_WIDTH,
            "model.params",
            cfg.params,
            f"needs d_model > {MAX_WIDTH} at model.n_layers={cfg.n_layers}",
        )
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if count(mid * step) <= target else (lo, mid)
    widths = sorted((k * step for k in (lo, hi) if k), key=lambda d: abs(count(d) - target))
    if close(count(widths[0])):
        return replace(cfg, d_model=widths[0], ffn_hidden=None)
    for d in widths:
        exact = 1 + (target - count(d, 1)) / (count(d, 2) - count(d, 1))
        for align in ALIGNMENTS:
            hidden = align * max(1, round(exact / align))
            if close(count(d, hidden)):
                return replace(cfg, d_model=d, ffn_hidden=hidden)
    smallest = count(step, 1)
    check(
        smallest <= target,
        "model.params",
        cfg.params,
        f"the smallest model={cfg.name} with model.n_layers={cfg.n_layers} (d_model={step}, "
        f"ffn_hidden=1) already has {smallest:,} parameters; raise the target or lower "
        f"model.n_layers",
    )
    raise ValueError(
        f"model.params={cfg.params!r} is invalid: no d_model (a multiple of {step}) "
        f"and ffn_hidden give {target:,} parameters within {TOLERANCE:.0%} for "
        f"model={cfg.name}"
    )
