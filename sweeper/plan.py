"""The pre-flight plan: what each job of a sweep will cost, and whether it runs at all.

Models are built on the meta device (no memory allocated), so even billion-parameter configs
are sized exactly, on the submitting machine, before anything is queued.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Container, Optional, Sequence

import torch

from sweeper import slurm
from trainer import checkpoint, contract
from trainer.config import JobConfig
from trainer.models import build_model
from trainer.models.sizing import on_meta
from trainer.perf import GPU_NAMES, peak_flops
from trainer.registry import check
from trainer.tables import format_table, human

RUN, RESUME, SKIP, RUNNING = "run", "resume", "skip (finished)", "skip (running)"
SKIPPED = (SKIP, RUNNING)  # not launched: the run is taken into the sweep as it is


@dataclass
class JobPlan:
    index: int
    name: str
    fingerprint: str
    params_total: int
    params_non_embedding: int
    flops_per_token: int
    tokens: Optional[int]  # None when the budget is wall-clock
    nodes: int = 1
    gpus: int = 0  # in all, over every node
    action: str = RUN
    launcher_params: dict[str, Any] = field(default_factory=dict)  # Slurm: this job's request

    @property
    def flops(self) -> Optional[float]:
        return None if self.tokens is None else float(self.tokens) * self.flops_per_token


def planned_tokens(job: JobConfig) -> Optional[int]:
    """Tokens the budget will take (None for wall-clock budgets), without training."""
    ramp = job.batch_ramp()  # the trainer's: whole micro-batches on every rank
    plan = job.budget.plan(lambda f: ramp(f) * job.data.seq_len)
    return None if plan is None else plan.tokens


def size(job: JobConfig) -> tuple[int, int, int]:
    with on_meta():
        model = build_model(job.model, job.vocab_size(), causal=job.objective.causal)
    total, non_emb = model.param_counts()
    return total, non_emb, model.flops_per_token(job.data.seq_len)


def plan(
    index: int,
    name: str,
    fingerprint: str,
    job: JobConfig,
    finished: Container[str],  # fingerprints of FINISHED runs
    running: Container[str],  # fingerprints of runs a live process trains
    launcher_cfg: dict[str, Any],
) -> JobPlan:
    """The job's cost and resources, and what the sweep does with it: skip it (a FINISHED run
    has its fingerprint, or another sweep's job trains it now: a second job would find its
    claim taken and end without a run), resume it (it has a checkpoint) or run it."""
    p = JobPlan(index, name, fingerprint, *size(job), planned_tokens(job), nodes=job.dist.nodes)
    if slurm.is_slurm_launcher(launcher_cfg):
        p.launcher_params = slurm.rank_scaled(launcher_cfg, job.dist.nodes, job.dist.nproc)
        p.gpus = int(p.launcher_params.get("gpus_per_node") or 0) * p.nodes
    elif job.train.device != "cpu" and torch.cuda.is_available():
        p.gpus = job.dist.world_size
    checkpoints = contract.checkpoint_dir(job.train.checkpoint_dir, fingerprint)
    if fingerprint in finished:
        p.action = SKIP
    elif fingerprint in running and checkpoint.claimed(checkpoints):
        p.action = RUNNING
    elif any(checkpoints.glob("step_*")):
        p.action = RESUME
    return p


@dataclass(frozen=True)
class Throughput:
    """What the plan's GPU-hours assume: `mfu` of the bf16 peak of a `gpu` (the peaks the
    logged `mfu` metric divides by: trainer/perf.py)."""

    gpu: str
    mfu: float

    def __post_init__(self) -> None:
        check(
            peak_flops(self.gpu, "bf16").source == "datasheet",
            "hydra.sweeper.gpu",
            self.gpu,
            f"a GPU of trainer/perf.py's table, e.g. {', '.join(GPU_NAMES)}",
        )
        check(0 < self.mfu <= 1, "hydra.sweeper.assumed_mfu", self.mfu, "in (0, 1]")

    @property
    def flops_per_gpu_second(self) -> float:
        return peak_flops(self.gpu, "bf16").flops * self.mfu

    def describe(self) -> str:
        return (
            f"{self.mfu:.0%} MFU of an {self.gpu} "
            f"({peak_flops(self.gpu, 'bf16').flops / 1e12:.0f} TFLOP/s bf16)"
        )


def render(plans: Sequence[JobPlan], throughput: Throughput) -> str:
    """A table of the sweep, with GPU-hours at `throughput`."""
    flops_per_gpu_second = throughput.flops_per_gpu_second
    header = (
        "#",
        "run",
        "params",
        "non-emb",
        "tokens",
        "FLOPs",
        "nodes",
        "GPUs",
        "est. GPU-h",
        "action",
    )
    rows = []
    for p in plans:
        gpu_h = None if p.flops is None else p.flops / flops_per_gpu_second / 3600
        rows.append(
            (
                str(p.index),
                p.name,
                human(p.params_total),
                human(p.params_non_embedding),
                human(p.tokens),
                human(p.flops),
                str(p.nodes),
                str(p.gpus),
                "?" if gpu_h is None else f"{gpu_h:.3g}",
                p.action,
            )
        )
    todo = [p for p in plans if p.action not in SKIPPED]
    total_h = sum(p.flops for p in todo if p.flops is not None) / flops_per_gpu_second / 3600
    return (
        format_table(header, rows)
        + "\n"
        + (
            f"{len(todo)} of {len(plans)} jobs to launch; ~{total_h:.3g} GPU-hours at "
            f"{throughput.describe()}"
            + (" (wall-clock budgets not included)" if any(p.tokens is None for p in todo) else "")
        )
    )
