"""Where this process sits in a distributed job, and its process group.

A rank learns its place from the environment, as torchrun and submitit set it: RANK,
WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT. In a Slurm job of several
tasks, submitit's `TorchDistributedEnvironment` derives them from the SLURM_* variables (the
first node is the master; the port is the job id's, job_port, so jobs sharing a node do not
collide). Locally, trainer/dist/spawn.py sets them for the ranks it starts.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import timedelta

from trainer.config import JobConfig
from trainer.contract import DEFAULT_CACHE, PROJECT_ROOT, ConfigError

log = logging.getLogger("lmsweep")

# DeepSpeed JIT-builds C++ ops on first use (its shm comm op: ~27 s on 2 cores); a stable
# directory in the project's cache makes that once per machine (and per CI cache).
TORCH_EXTENSIONS_DIR = PROJECT_ROOT / DEFAULT_CACHE / "torch_extensions"
TIMEOUT_S = 600.0  # a collective waiting longer than this fails the rank


@dataclass(frozen=True)
class Place:
    rank: int
    world: int
    local_rank: int
    local_world: int


def source(world: int) -> str:
    """How this process takes part in a job of `world` ranks: "env" (its rank is in the
    environment: a rank started by lmsweep or torchrun), "slurm" (one task of a Slurm job with
    a task per rank), or "spawn" (it must start the ranks itself, on this machine)."""
    env = os.environ
    if "RANK" in env and "WORLD_SIZE" in env:
        found = int(env["WORLD_SIZE"])
        if found != world:
            raise ConfigError(
                f"WORLD_SIZE={found} in the environment, but the job's dist asks "
                f"for {world} ranks (dist.nproc x dist.nodes)"
            )
        return "env"
    tasks = int(env.get("SLURM_NTASKS") or env.get("SLURM_NPROCS") or 1)
    if tasks > 1 and "SLURM_PROCID" in env:
        if tasks != world:
            raise ConfigError(
                f"the Slurm job has {tasks} tasks, but the job's dist asks for "
                f"{world} ranks (dist.nproc x dist.nodes); lmsweep's Slurm "
                "launcher asks for one task per rank"
            )
        return "slurm"
    return "spawn"


def export_slurm() -> None:
    """RANK, WORLD_SIZE, MASTER_* from the Slurm variables, by submitit. CUDA_VISIBLE_DEVICES
    is left as Slurm set it (gpu_index picks this rank's GPU among those)."""
    from submitit.helpers import TorchDistributedEnvironment

    port = str(job_port(int(os.environ["SLURM_JOB_ID"])))
    if "SUBMITIT_EXECUTOR" in os.environ:
        # Started by submitit: a MASTER_PORT here came from the submitting shell (sbatch
        # exports it), the same in every job; the job's own replaces it.
        os.environ["MASTER_PORT"] = port
    else:
        # Started by the user's own `srun python launch.py ...`: submitit reads this to know
        # which cluster's variables to read; a MASTER_PORT the script set is kept.
        os.environ["SUBMITIT_EXECUTOR"] = "slurm"
        os.environ.setdefault("MASTER_PORT", port)
    TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)


# Below Linux's ephemeral range (32768-60999), where the kernel picks the local ports of
# outgoing connections: submitit's own draw, in [20000, 60000], mostly lands in it, so a busy
# node's NCCL/gloo sockets could hold the port. Fixed, not read from /proc: every node of
# the job must compute the same port.
JOB_PORTS = range(10_000, 32_768)


def job_port(job_id: int) -> int:
    """The job's rendezvous port, the same on every task: distinct for any jobs whose ids
    differ by less than len(JOB_PORTS) (those sharing a node at once), where a random draw
    per job collides with probability 1/40,000 per pair."""
    return JOB_PORTS[job_id % len(JOB_PORTS)]


def place() -> Place:
    env = os.environ
    world = int(env["WORLD_SIZE"])
    local_world = int(env.get("LOCAL_WORLD_SIZE") or world)
    return Place(int(env["RANK"]), world, int(env.get("LOCAL_RANK") or 0), local_world)


def threads_per_rank(local_world: int, slurm_task: bool) -> int:
    """CPU threads for one rank: its Slurm task's CPUs, else this process's cores shared by
    the ranks started on this machine (they all inherit the same affinity)."""
    cores = len(os.sched_getaffinity(0))
    per_task = os.environ.get("SLURM_CPUS_PER_TASK")
    if slurm_task and per_task:
        return max(1, min(cores, int(per_task)))
    return max(1, cores // local_world)


def gpu_index(where: Place, visible: int) -> int:
    """This rank's GPU among those it sees: its local rank when it sees the node's GPUs
    (Slurm's --gpus-per-node, torchrun, lmsweep's spawn), the one it sees when Slurm binds a
    GPU to each task (--gpus-per-task, a site's --gpu-bind)."""
    if visible >= where.local_world:
        return where.local_rank
    if visible == 1:
        return 0
    raise ConfigError(
        f"dist.nproc={where.local_world} ranks on this node, but this rank sees "
        f"{visible} CUDA device(s): one rank per GPU (all of the node's, or one "
        "bound to each task)"
    )


def backend(requested: str, cuda: bool) -> str:
    """nccl for CUDA tensors and gloo for CPU ones (the ranks agree on flags with small CPU
    tensors, without a device sync); gloo alone on CPU."""
    if cuda:
        return "gloo" if requested == "gloo" else "cpu:gloo,cuda:nccl"
    if requested == "nccl":
        raise ConfigError(
            "dist.backend='nccl' is invalid on this machine: NCCL needs CUDA "
            "GPUs and the job's ranks have none here (train.device=cpu, or no "
            "CUDA device); valid here: auto, gloo"
        )
    return "gloo"


def wants_cuda(device: str) -> bool:
    import torch

    return device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())


def init(job: JobConfig, slurm_task: bool = False) -> Place:
    """In a rank: threads, device and the process group; the job's `train.threads` is set
    to this rank's share of the cores (`slurm_task`: the rank is a task of its own)."""
    import torch
    import torch.distributed as dist

    where = place()
    if job.train.threads == 0:
        job.train.threads = threads_per_rank(where.local_world, slurm_task)
    # On GPUs too (the Trainer sets it for CPU jobs): OMP_NUM_THREADS is read when torch is
    # imported, long before this, and N ranks each using every core of an unbound node
    # contend (torchrun gives each worker one thread).
    torch.set_num_threads(job.train.threads)
    cuda = wants_cuda(job.train.device)
    if cuda:
        torch.cuda.set_device(gpu_index(where, torch.cuda.device_count()))
    job.dist.prepare_rank(cuda)  # dist=deepspeed: its accelerator and build directory
    # The other ranks wait while rank 0 alone talks to MLflow, which may retry for up to
    # tracking.outage_limit_s: no collective gives up before that.
    timeout = timedelta(seconds=max(TIMEOUT_S, 2 * job.tracking.outage_limit_s + 60))
    dist.init_process_group(
        backend(job.dist.backend, cuda), rank=where.rank, world_size=where.world, timeout=timeout
    )
    if where.rank != 0:
        # One voice per job: rank 0 reports progress; other ranks log warnings and errors.
        log.setLevel(logging.WARNING)
    return where


def shutdown() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
