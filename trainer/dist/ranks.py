"""The few values the ranks of a job must agree on, each step or once: who speaks for the job,
the step time, the loss, stop signals, and what a value was on rank 0.

Every function is a no-op in a one-process job (no process group), so the run lifecycle
(trainer/job.py) calls them unconditionally. Values travel as small CPU tensors: with NCCL
the process group also has a gloo backend for them (trainer/dist/env.py), so agreeing costs
no device synchronisation.
"""

from __future__ import annotations

import resource
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


class Follows(Exception):
    """Ends a rank other than 0 when the job ends on an error all ranks agreed on and rank 0
    reports (a tracking outage: rank 0's writer is the one that failed). The rank stops
    quietly with no result: one error per job, rank 0's, whichever rank ends first."""


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Rank 0: the one rank that claims the job, talks to MLflow and writes shared files."""
    return rank() == 0


def barrier() -> None:
    if active():
        dist.barrier()


def broadcast(value: T) -> T:
    """Rank 0's `value` on every rank (any picklable object)."""
    if not active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _reduce(values: list[float], op: Any) -> list[float]:
    if not active():
        return values
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t, op=op)
    return t.tolist()


def anyone(flag: bool) -> bool:
    """Whether any rank raised `flag`: every rank then takes the same branch (one that holds
    a collective must be taken by all, or they wait on each other until the timeout)."""
    return bool(_reduce([float(flag)], dist.ReduceOp.MAX)[0]) if active() else flag


def total(value: float) -> float:
    return _reduce([value], dist.ReduceOp.SUM)[0] if active() else value


def slowest(seconds: float) -> float:
    """The step time of the slowest rank: every rank then counts the same training seconds
    (a `budget=seconds` run ends on the same step everywhere)."""
    return _reduce([seconds], dist.ReduceOp.MAX)[0] if active() else seconds


def agree(stop: Any, *flags: bool) -> tuple[bool, ...]:
    """Whether any rank was signalled to stop (checkpoint.StopSignals) or raised a flag, agreed
    by all. A rank that saw no signal takes the one another rank saw, a requeue (SIGUSR2)
    over a cancellation, so every rank saves at this same step and ends the same way."""
    if not active():
        return (stop.requested, *flags)
    requeue, cancel = stop.signum == stop.REQUEUE, stop.requested and stop.signum != stop.REQUEUE
    got = _reduce([float(requeue), float(cancel), *map(float, flags)], dist.ReduceOp.MAX)
    if got[0] and stop.signum != stop.REQUEUE:
        stop.signum = stop.REQUEUE
    elif got[1] and not stop.requested:
        stop.signum = stop.STOP[0]
    return (bool(got[0] or got[1]), *(bool(v) for v in got[2:]))


def peak_memory_bytes() -> list[int]:
    """Each rank's peak memory: the CUDA allocator's peak on a GPU, else the process's
    maximum resident set size (Linux reports it in KiB)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        mine = torch.cuda.max_memory_allocated()
    else:
        mine = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if not active():
        return [mine]
    every: list[Any] = [None] * world()
    dist.all_gather_object(every, mine)
    return every
