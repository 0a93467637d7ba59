"""The `dist` config group: how one job spreads over processes (ranks) and nodes.

`dist=none` is one process on one device. The others run `nproc` ranks per node on `nodes`
nodes: torch DistributedDataParallel, FSDP2 (`fully_shard`) or DeepSpeed ZeRO. On Slurm each
rank is one task (the launcher's resources describe one rank); locally `launch.py` starts the
ranks itself. The global batch (ramp) and the schedule mean the same at any world size: each
rank takes its share of the global batch's micro-batches.

An option is its config class, which says what it refuses (`check_job`), whether it compiles,
whether it runs ranks and what a rank's environment needs (`prepare_rank`), and one builder
registered in DISTS that returns its Parallel (trainer/dist/parallel.py: how a step runs, and
the checkpoint format). Nothing else branches on `dist.name`. The builders import torch (and
deepspeed) only when called: composing a job imports neither.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from omegaconf import MISSING

from trainer.registry import Registry, check, check_choice

if TYPE_CHECKING:
    from trainer.config import JobConfig

DISTS: Registry = Registry("dist")
BACKENDS = ("auto", "gloo", "nccl")  # auto: nccl on CUDA, gloo on CPU
SHARDINGS = ("full", "grad_op")  # FSDP2: reshard parameters after forward, or not
# Optimizers whose update of an element depends on that element alone. Sharded training
# (FSDP2's row shards, ZeRO's flat 1-D partitions) hands each rank a piece of every tensor:
# these give the same update on a piece as on the whole; SM3 and Adafactor (row/column
# statistics), Shampoo, SOAP and Muon (matrix preconditioners) would silently compute another
# algorithm. dist=ddp keeps whole tensors on every rank and takes all ten.
ELEMENTWISE_OPTIMIZERS = ("adam", "adamw", "lion", "sgd", "tiger")


@dataclass
class DistConfig:
    name: str = MISSING
    nproc: int = 1  # ranks per node (one per GPU on CUDA)
    nodes: int = 1
    backend: str = "auto"

    def __post_init__(self) -> None:
        check(self.nproc > 0, "dist.nproc", self.nproc, "> 0 ranks per node")
        check(self.nodes > 0, "dist.nodes", self.nodes, "> 0 nodes")
        check_choice("dist.backend", self.backend, BACKENDS)

    @property
    def world_size(self) -> int:
        return self.nproc * self.nodes

    @property
    def compiles(self) -> bool:
        """Whether torch.compile runs under this option (train.compile: null compiles on CUDA
        where it does)."""
        return True

    @property
    def runs_ranks(self) -> bool:
        """Whether the job runs as the ranks of a process group (started by lmsweep, torchrun
        or Slurm), rather than in the launching process."""
        return True

    def check_job(self, job: "JobConfig") -> None:
        """What this option cannot run, refused with the job's other groups in view."""

    def prepare_rank(self, cuda: bool) -> None:
        """In a rank, before its process group exists: what this option needs of the process's
        environment (`cuda`: the rank trains on its GPU)."""


@dataclass
class NoDistConfig(DistConfig):
    name: str = "none"

    def __post_init__(self) -> None:
        super().__post_init__()
        check(
            self.world_size == 1,
            "dist.nproc",
            self.nproc,
            "dist=none runs one process: for several ranks choose dist=ddp, fsdp or deepspeed",
        )

    @property
    def runs_ranks(self) -> bool:
        return False


@DISTS.register(NoDistConfig)
def _one_process(cfg: NoDistConfig, job: Any = None) -> Any:
    from trainer.dist.parallel import Parallel  # torch, only when training

    return Parallel(cfg, job)


@dataclass
class DDPConfig(DistConfig):
    name: str = "ddp"


@DISTS.register(DDPConfig)
def _ddp(cfg: DDPConfig, job: Any = None) -> Any:
    from trainer.dist.parallel import DDP

    return DDP(cfg, job)


class _Sharded:
    """Checks shared by the options that give each rank a piece of every tensor."""

    def check_job(self, job: "JobConfig") -> None:
        what = f"dist={self.name}"  # type: ignore[attr-defined]
        check(
            job.optim.name in ELEMENTWISE_OPTIMIZERS,
            "optim",
            job.optim.name,
            f"{what} shards every tensor across ranks, and optim={job.optim.name} needs whole "
            f"tensors (row/column or matrix statistics): use dist=ddp, or one of "
            f"{', '.join(ELEMENTWISE_OPTIMIZERS)}",
        )
        check(
            job.train.agc == 0,
            "train.agc",
            job.train.agc,
            f"unit-wise clipping needs whole tensors, which {what} shards: use dist=ddp, or "
            "train.agc=0 (train.grad_clip clips the global norm)",
        )


@dataclass
class FSDPConfig(_Sharded, DistConfig):
    name: str = "fsdp"
    # full: parameters are resharded after forward (ZeRO-3-like); grad_op: kept unsharded
    # between forward and backward (ZeRO-2-like: more memory, less communication)
    sharding: str = "full"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("dist.sharding", self.sharding, SHARDINGS)


@DISTS.register(FSDPConfig)
def _fsdp(cfg: FSDPConfig, job: Any = None) -> Any:
    from trainer.dist.parallel import FSDP

    return FSDP(cfg, job)


@dataclass
class DeepSpeedConfig(_Sharded, DistConfig):
    name: str = "deepspeed"
    zero_stage: int = 2  # 1: optimizer state, 2: + gradients, 3: + parameters sharded
    offload_optimizer: bool = False  # optimizer state and step on the CPU (ZeRO-Offload)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("dist.zero_stage", self.zero_stage, (1, 2, 3))

    @property
    def compiles(self) -> bool:
        # ZeRO-3 gathers each layer's parameters in hooks torch.compile does not trace: the
        # graph sees the partitioned (empty) tensors and fails (seen on CPU with 0.19.8).
        return self.zero_stage < 3

    def check_job(self, job: "JobConfig") -> None:
        super().check_job(job)
        check(
            self.compiles or not job.train.compile,
            "train.compile",
            job.train.compile,
            "dist=deepspeed dist.zero_stage=3 gathers parameters in hooks torch.compile does "
            "not trace: use train.compile=false (or null), zero_stage 1 or 2, or dist=fsdp",
        )

    def prepare_rank(self, cuda: bool) -> None:
        from trainer.dist.env import TORCH_EXTENSIONS_DIR  # env imports this module

        if not cuda:
            # Read when deepspeed is first imported: its CPU accelerator, without the warning.
            os.environ.setdefault("DS_ACCELERATOR", "cpu")
        os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(TORCH_EXTENSIONS_DIR))
        # DeepSpeed's calls, not the user's: nothing to act on, once per call in every rank
        warnings.filterwarnings(
            "ignore", category=FutureWarning, message=r"`torch\.distributed\.\w+` is deprecated"
        )


@DISTS.register(DeepSpeedConfig)
def _deepspeed(cfg: DeepSpeedConfig, job: Any = None) -> Any:
    from trainer.dist.zero import DeepSpeed  # deepspeed itself, only in DeepSpeed.wrap

    return DeepSpeed(cfg, job)


def check_job(job: "JobConfig") -> None:
    """Cross-group checks of `dist`, run with the job's other checks at composition: every
    ramp anchor is a whole number of micro-batches on every rank, and the option can run the
    job's optimizer and clipping."""
    world, micro = job.dist.world_size, job.train.micro_batch
    sizes = job.ramp.batch_sizes() if world > 1 else []
    for size in sizes:
        check(
            size % (micro * world) == 0,
            f"ramp={job.ramp.name} batch size",
            size,
            f"must be a multiple of train.micro_batch x ranks = {micro} x {world} = "
            f"{micro * world} (global batch = micro-batch x accumulation x ranks); "
            f"{_batch_fix(sizes, micro, world)}",
        )
    if job.dist.runs_ranks:
        check(
            ":" not in job.train.device,
            "train.device",
            job.train.device,
            f"dist={job.dist.name} puts each rank on the GPU of its local rank: use "
            "train.device=auto or cuda (or cpu)",
        )
    job.dist.check_job(job)


def _batch_fix(sizes: list[int], micro: int, world: int) -> str:
    """What makes every ramp anchor split evenly: the largest micro-batch up to this one that
    does, or else a batch that does."""
    per_rank = math.gcd(*sizes) // world if all(size % world == 0 for size in sizes) else 0
    fits = [m for m in range(min(micro, per_rank), 0, -1) if per_rank % m == 0]
    if fits:
        return f"e.g. train.micro_batch={fits[0]}"
    return f"e.g. ramp.start={micro * world} (and other anchors multiples of it)"
