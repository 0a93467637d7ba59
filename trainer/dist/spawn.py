"""Starting a job's ranks on this machine: `python launch.py dist=ddp dist.nproc=2` needs no
torchrun. The Hydra job's process becomes a small supervisor:

- it hosts the rendezvous store (a TCPStore on a free port, so concurrent jobs on one machine
  never collide) and starts `nproc` fresh processes (multiprocessing "spawn"), each told its
  place the way torchrun tells it (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT, and
  TORCHELASTIC_USE_AGENT_STORE: the store is the supervisor's);
- it forwards SIGUSR2, SIGTERM and SIGINT to the ranks, which agree to checkpoint at the same
  step (trainer/dist/ranks.py);
- a rank that dies or fails ends the job: the others are terminated, as under
  `srun --kill-on-bad-exit`, and its error is raised here;
- rank 0's return value (the job's Summary) is this function's; its KeyboardInterrupt or
  SystemExit is re-raised here, and a requeue signal its rank 0 handed over to the default
  action goes to this process's own handler (submitit's requeues a Slurm job), as dist=none
  hands it over in its own process.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Optional

from hydra.errors import CompactHydraException

log = logging.getLogger("lmsweep")

FORWARDED = (signal.SIGUSR2, signal.SIGTERM, signal.SIGINT)
KILL_AFTER_S = 30.0  # a terminated rank that is still alive then is killed


class RankFailed(RuntimeError):
    """A rank of a distributed job died or raised; the others were stopped."""


@dataclass
class Child:
    rank: int
    process: Any
    inbox: Connection
    message: Optional[tuple] = None  # (kind, value): ok, error, interrupt, exit
    exitcode: Optional[int] = None
    ended_at: float = 0.0
    terminated_at: Optional[float] = field(default=None)

    @property
    def crashed(self) -> bool:
        """Ended on its own with an error, not after a stop signal it was meant to obey."""
        if self.exitcode in (None, 0) or self.exitcode == -signal.SIGUSR2:
            return False
        return self.message is None or self.message[0] == "error"


def start(nproc: int, target: Callable[..., Any], args: tuple) -> Any:
    """Run `target(*args)` in `nproc` new processes (ranks 0..nproc-1) and return rank 0's
    result."""
    import torch.distributed as dist

    store = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)
    ctx = mp.get_context("spawn")
    logging_setup = _logging_setup()
    children = []
    for rank in range(nproc):
        inbox, outbox = ctx.Pipe(duplex=False)
        env = {
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(nproc),
            "LOCAL_WORLD_SIZE": str(nproc),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(store.port),
            "TORCHELASTIC_USE_AGENT_STORE": "True",
        }
        p = ctx.Process(
            target=_rank_main,
            name=f"lmsweep-rank-{rank}",
            args=(env, logging_setup, target, args, outbox),
        )
        p.start()
        outbox.close()
        children.append(Child(rank, p, inbox))
    received: list[int] = []
    previous = _forward_signals(children, received)
    try:
        _supervise(children)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        del store
    return _outcome(children, received)


def _forward_signals(children: list[Child], received: list[int]) -> dict:
    def forward(signum: int, frame: Any) -> None:
        received.append(signum)
        for c in children:
            if c.exitcode is None and c.process.pid:
                try:
                    os.kill(c.process.pid, signum)
                except ProcessLookupError:
                    pass

    return {s: signal.signal(s, forward) for s in FORWARDED}


def _supervise(children: list[Child]) -> None:
    """Wait for every rank; on the first crash, terminate the others (then kill them)."""
    while any(c.exitcode is None for c in children):
        waiting = {c.process.sentinel: c for c in children if c.exitcode is None}
        inboxes = {c.inbox: c for c in children if c.message is None and not c.inbox.closed}
        for ready in wait([*waiting, *inboxes], timeout=1.0):
            if ready in inboxes:
                child = inboxes[ready]
                try:
                    child.message = child.inbox.recv()
                except EOFError:
                    child.inbox.close()
            else:
                child = waiting[ready]
                child.process.join()
                child.exitcode, child.ended_at = child.process.exitcode, time.monotonic()
                # a last message may still sit in the pipe
                if child.message is None and child.inbox.poll():
                    try:
                        child.message = child.inbox.recv()
                    except EOFError:
                        pass
        if any(c.crashed for c in children):
            now = time.monotonic()
            for c in children:
                if c.exitcode is None and c.terminated_at is None:
                    c.terminated_at = now
                    c.process.terminate()
                elif c.exitcode is None and now - c.terminated_at > KILL_AFTER_S:
                    c.process.kill()


def _outcome(children: list[Child], received: list[int]) -> Any:
    crashed = [c for c in children if c.crashed]
    first = min(crashed, key=lambda c: (c.ended_at, c.rank)) if crashed else None
    if first is not None and first.rank != 0:
        raise RankFailed(
            f"rank {first.rank} of {len(children)} {_how(first)}; the other ranks were stopped"
        )
    if any(c.exitcode == -signal.SIGUSR2 for c in children):
        # Rank 0 saved and handed the requeue signal to its default action: hand it to this
        # process's own handler the same way (submitit's requeues the job; none ends it).
        os.kill(os.getpid(), signal.SIGUSR2)
        raise SystemExit("preempted; checkpoint saved")
    zero = children[0]
    if zero.message is None:
        raise RankFailed(f"rank 0 of {len(children)} {_how(zero)}")
    kind, value = zero.message
    if kind == "ok":
        return value
    if kind == "interrupt":
        raise KeyboardInterrupt(value)
    if kind == "exit":
        raise SystemExit(value)
    raise value


def _how(child: Child) -> str:
    if child.message is not None and child.message[0] == "error":
        e = child.message[1]
        return f"failed: {type(e).__name__}: {e}"
    code = child.exitcode
    if code is not None and code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code} (its error is in the log above)"


# --- in the rank ------------------------------------------------------------------------------
def _rank_main(
    env: dict[str, str],
    logging_setup: list,
    target: Callable[..., Any],
    args: tuple,
    outbox: Connection,
) -> None:
    os.environ.update(env)
    _configure_logging(logging_setup)
    try:
        message: tuple = ("ok", target(*args))
        code = 0
    except KeyboardInterrupt as e:
        message, code = ("interrupt", str(e)), 130
    except SystemExit as e:
        message = ("exit", e.code)
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException as e:
        if not isinstance(e, CompactHydraException):  # told in a line: ConfigError, outages
            traceback.print_exc()
        message, code = ("error", e), 1
    try:
        outbox.send(message)
    except Exception:  # an exception that does not pickle: its text
        outbox.send(("error", RuntimeError(f"{type(message[1]).__name__}: {message[1]}")))
    outbox.close()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # no interpreter teardown: nothing left to run, threads may linger


def _logging_setup() -> list:
    """The Hydra job's logging (console and its log file), to be repeated in each rank."""
    out = []
    for h in logging.getLogger().handlers:
        fmt = h.formatter._fmt if h.formatter else None
        if isinstance(h, logging.FileHandler):
            out.append(("file", h.baseFilename, fmt, h.level))
        elif isinstance(h, logging.StreamHandler):
            out.append(("stream", "stderr" if h.stream is sys.stderr else "stdout", fmt, h.level))
    return out + [("level", logging.getLogger().level)]


def _configure_logging(setup: list) -> None:
    root = logging.getLogger()
    for kind, *rest in setup:
        if kind == "level":
            root.setLevel(rest[0])
            continue
        where, fmt, level = rest
        handler: logging.Handler = (
            logging.FileHandler(where)
            if kind == "file"
            else logging.StreamHandler(getattr(sys, where))
        )
        handler.setFormatter(logging.Formatter(fmt))
        handler.setLevel(level)
        root.addHandler(handler)
