"""The `dist` config group: how one job spreads over processes (ranks) and nodes.

`dist=none` is one process on one device. The others run `nproc` ranks per node on `nodes`
nodes: torch DistributedDataParallel, FSDP2 (`fully_shard`) or DeepSpeed ZeRO. On Slurm each
rank is one task (the launcher's resources describe one rank); locally `launch.py` starts the
ranks itself. The global batch (ramp) and the schedule mean the same at any world size: each
rank takes its share of the global batch's micro-batches.
"""
from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from trainer.registry import Registry, check, check_choice

DISTS: Registry = Registry("dist")
BACKENDS = ("auto", "gloo", "nccl")            # auto: nccl on CUDA, gloo on CPU
SHARDINGS = ("full", "grad_op")                # FSDP2: reshard parameters after forward, or not


@dataclass
class DistConfig:
    name: str = MISSING
    nproc: int = 1                  # ranks per node (one per GPU on CUDA)
    nodes: int = 1
    backend: str = "auto"

    def __post_init__(self) -> None:
        check(self.nproc > 0, "dist.nproc", self.nproc, "> 0 ranks per node")
        check(self.nodes > 0, "dist.nodes", self.nodes, "> 0 nodes")
        check_choice("dist.backend", self.backend, BACKENDS)

    @property
    def world_size(self) -> int:
        return self.nproc * self.nodes


@dataclass
class NoDistConfig(DistConfig):
    name: str = "none"

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.world_size == 1, "dist.nproc", self.nproc,
              "dist=none runs one process: for several ranks choose dist=ddp, fsdp or deepspeed")


@dataclass
class DDPConfig(DistConfig):
    name: str = "ddp"


@dataclass
class FSDPConfig(DistConfig):
    name: str = "fsdp"
    # full: parameters are resharded after forward (ZeRO-3-like); grad_op: kept unsharded
    # between forward and backward (ZeRO-2-like: more memory, less communication)
    sharding: str = "full"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("dist.sharding", self.sharding, SHARDINGS)


@dataclass
class DeepSpeedConfig(DistConfig):
    name: str = "deepspeed"
    zero_stage: int = 2             # 1: optimizer state, 2: + gradients, 3: + parameters sharded
    offload_optimizer: bool = False  # optimizer state and step on the CPU (ZeRO-Offload)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("dist.zero_stage", self.zero_stage, (1, 2, 3))


for _cls in (NoDistConfig, DDPConfig, FSDPConfig, DeepSpeedConfig):
    DISTS.register(_cls.name, _cls)(None)
