"""A job's way into training, whatever its `dist`: the Hydra task function (launch.py) calls
`run(train, job, ...)` instead of `train(job, ...)`.

- dist=none: `train` in this process, as always;
- this process is one rank (a task of a Slurm job with a task per rank, or started by
  torchrun or by lmsweep itself): join the process group, train, return rank 0's Summary;
- otherwise (a laptop, a workstation, one node): start the ranks here (trainer/dist/spawn.py)
  and return rank 0's Summary.
"""

from __future__ import annotations

from typing import Any, Callable

from trainer.config import JobConfig
from trainer.contract import ConfigError
from trainer.dist import env, ranks, spawn


def run(train: Callable[..., Any], job: JobConfig, *args: Any) -> Any:
    if not job.dist.runs_ranks:
        return train(job, *args)
    how = env.source(job.dist.world_size)
    if how != "spawn":
        return rank_main(train, job, *args, slurm_task=how == "slurm")
    check_here(job)
    return spawn.start(job.dist.nproc, rank_main, (train, job, *args))


def check_here(job: JobConfig) -> None:
    """What starting the job's ranks on this machine needs: one node, a GPU per rank on CUDA,
    a backend this machine has. Run by the pre-flight of a local launch (trainer/config.py's
    `preflight`), before any run exists, and by `run` itself. Nothing to check when this
    process is already a rank (a Slurm task, torchrun): its nodes and GPUs are its launcher's."""
    if not job.dist.runs_ranks or env.source(job.dist.world_size) != "spawn":
        return
    if job.dist.nodes > 1:
        raise ConfigError(
            f"dist.nodes={job.dist.nodes} is invalid here: lmsweep starts ranks "
            "on this machine only; several nodes run on Slurm "
            "(+cluster=<name>: one task per rank) or under torchrun"
        )
    cuda = env.wants_cuda(job.train.device)
    env.backend(job.dist.backend, cuda)  # refuses nccl without CUDA
    if cuda:
        import torch

        count = torch.cuda.device_count()
        if job.dist.nproc > count:
            raise ConfigError(
                f"dist.nproc={job.dist.nproc} is invalid on this machine: one "
                f"rank per GPU, and it has {count}: use dist.nproc <= {count}, "
                "or train.device=cpu"
            )


def rank_main(
    train: Callable[..., Any], job: JobConfig, *args: Any, slurm_task: bool = False
) -> Any:
    """In one rank: join the job's process group, train, and return rank 0's Summary on every
    rank (submitit keeps the result of whichever task writes last)."""
    if slurm_task:
        env.export_slurm()
    env.init(job, slurm_task)
    try:
        return ranks.broadcast(train(job, *args))
    except ranks.Follows:
        return None  # rank 0 raises the job's error (and broadcasts nothing)
    finally:
        env.shutdown()
