"""The pre-flight plan: what each job of a sweep will cost, and whether it runs at all.

Models are built on the meta device (no memory allocated), so even billion-parameter configs
are sized exactly, on the submitting machine, before anything is queued.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from sweeper.tables import format_table, human
from trainer.config import JobConfig
from trainer.models import build_model
from trainer.ramps import RAMPS

RUN, RESUME, SKIP = "run", "resume", "skip (finished)"


@dataclass
class JobPlan:
    index: int
    name: str
    fingerprint: str
    params_total: int
    params_non_embedding: int
    flops_per_token: int
    tokens: Optional[int]            # None when the budget is wall-clock
    action: str = RUN

    @property
    def flops(self) -> Optional[float]:
        return None if self.tokens is None else float(self.tokens) * self.flops_per_token


def planned_tokens(job: JobConfig) -> Optional[int]:
    """Tokens the budget will take (None for wall-clock budgets), without training."""
    ramp = RAMPS.build(job.ramp, job.train.micro_batch)
    plan = job.budget.plan(lambda f: ramp(f) * job.data.seq_len)
    return None if plan is None else plan.tokens


def size(job: JobConfig) -> tuple[int, int, int]:
    vocab = job.data.tokenizer.expected_vocab_size() + getattr(job.objective, "extra_tokens", 0)
    with torch.device("meta"):
        model = build_model(job.model, vocab, causal=job.objective.causal)
    total, non_emb = model.param_counts()
    return total, non_emb, model.flops_per_token(job.data.seq_len)


def plan(index: int, name: str, fingerprint: str, job: JobConfig) -> JobPlan:
    return JobPlan(index, name, fingerprint, *size(job), planned_tokens(job))


def render(plans: Sequence[JobPlan], flops_per_gpu_second: float) -> str:
    """A table of the sweep; GPU-hours assume `flops_per_gpu_second` of sustained throughput."""
    header = ("#", "run", "params", "non-emb", "tokens", "FLOPs", "est. GPU-h", "action")
    rows = []
    for p in plans:
        gpu_h = None if p.flops is None else p.flops / flops_per_gpu_second / 3600
        rows.append((str(p.index), p.name, human(p.params_total), human(p.params_non_embedding),
                     human(p.tokens), human(p.flops),
                     "?" if gpu_h is None else f"{gpu_h:.3g}", p.action))
    todo = [p for p in plans if p.action != SKIP]
    total_h = sum(p.flops for p in todo if p.flops is not None) / flops_per_gpu_second / 3600
    return format_table(header, rows) + "\n" + (
             f"{len(todo)} of {len(plans)} jobs to launch; ~{total_h:.3g} GPU-hours at "
             f"{flops_per_gpu_second:.3g} FLOP/s per GPU" +
             (" (wall-clock budgets not included)" if any(p.tokens is None for p in todo) else ""))
