"""Checkpoints that survive preemption, kill -9 and bad files: save at a step boundary, resume
bit-for-bit, fall back past a damaged file, and one process per job identity at a time.

Slurm sends SIGUSR2 before a time limit or a preemption (submitit asks for it); submitit's
own handler requeues the job and exits at once, mid-step. `StopSignals` defers that handler
(and SIGTERM/SIGINT) to the next step boundary, so the loop saves first and then hands over.
Files hold only tensors and plain Python values, so they load with weights_only=True.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Optional

import torch
from filelock import FileLock, Timeout

log = logging.getLogger("lmsweep")

PATTERN = "step_*.pt"
STEP_DIR = re.compile(r"step_\d{9}")  # a distributed checkpoint (trainer/dist/checkpoint.py)
CLAIM_FILE = "claim.lock"


def save(directory: Path, step: int, state: dict[str, Any], keep: int) -> Path:
    """Write atomically (temp file + fsync + rename), then prune all but the newest `keep`."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"step_{step:09d}.pt"
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    for old in sorted(directory.glob(PATTERN))[:-keep]:
        old.unlink()
    return path


def latest(directory: Path) -> Optional[dict[str, Any]]:
    """The newest checkpoint that loads. A damaged one (truncated by a full disk, a node crash
    mid-copy) is renamed *.corrupt with a warning naming it and the file used instead, so it
    is never picked again; None (with a warning) when no file loads."""
    files = sorted(directory.glob(PATTERN), reverse=True)
    for i, path in enumerate(files):
        try:
            # Onto the CPU: a GPU job's file must load where that GPU is absent (a CPU host, a
            # node with fewer devices); load_state_dict then moves each tensor to its device.
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # EOFError, RuntimeError (zip), UnpicklingError, ...
            fallback = files[i + 1].name if i + 1 < len(files) else "none: starting fresh"
            log.warning(
                f"checkpoint {path} is unreadable ({type(e).__name__}: {str(e)[:120]}); "
                f"moved to {path.name}.corrupt; falling back to {fallback}"
            )
            path.rename(path.with_name(path.name + ".corrupt"))
            continue
        return state
    return None


def clear(directory: Path) -> None:
    """After the run has ended for good: its checkpoints and claim go, and the directory if
    nothing else is left in it."""
    for f in [*directory.glob(PATTERN), directory / CLAIM_FILE]:
        f.unlink(missing_ok=True)
    for d in step_dirs(directory):
        shutil.rmtree(d)
    if directory.exists() and not any(directory.iterdir()):
        directory.rmdir()


def set_aside(directory: Path, why: str) -> Path:
    """Move a job's checkpoints out of the way (their run was deleted): the job starts anew,
    and nothing the user recorded is destroyed."""
    target = directory.with_name(f"{directory.name}.stale-{time.strftime('%Y%m%d-%H%M%S')}")
    for f in [*directory.glob(PATTERN), *step_dirs(directory)]:
        target.mkdir(parents=True, exist_ok=True)
        f.rename(target / f.name)
    log.warning(f"{why}: its checkpoints were moved to {target}; starting a new run")
    return target


def step_dirs(directory: Path) -> list[Path]:
    """The distributed checkpoints (one directory per step) in a job's directory."""
    if not directory.is_dir():
        return []
    return [p for p in directory.iterdir() if p.is_dir() and STEP_DIR.fullmatch(p.name)]


class Claim:
    """One process per job identity: an OS file lock in the job's checkpoint directory, held
    while the job trains and released by the OS when the process dies (kill -9 included). Two
    identical sweeps started at once each run a job once: the second sees it claimed."""

    def __init__(self, directory: Path):
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(directory / CLAIM_FILE))

    def acquire(self) -> bool:
        try:
            self._lock.acquire(timeout=0)
            return True
        except Timeout:
            return False

    def release(self) -> None:
        self._lock.release()


def claimed(directory: Path) -> bool:
    """Whether a live process holds the claim of the job in `directory`: False once it died,
    however (the OS released its lock), where a run's heartbeat still looks fresh for minutes
    (a Slurm job killed by the OOM killer or a node failure). True where nothing here can tell:
    no claim file (checkpoints on another machine's disk)."""
    if not (directory / CLAIM_FILE).exists():
        return True
    probe = Claim(directory)
    if not probe.acquire():
        return True
    probe.release()
    return False


class StopSignals:
    """Defers the signals that end a job to the next step boundary, so the loop saves first.

    SIGUSR2 (Slurm's warning before a time limit or preemption) is then replayed to its
    previous handler: submitit's requeues the job and exits. SIGTERM (scancel, shutdown) and
    SIGINT (Ctrl-C) stop the run as KILLED; either way a re-run resumes from the checkpoint.
    """

    REQUEUE = signal.SIGUSR2
    STOP = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self.frame = None
        self.handed_over = False
        # Handlers can only be set from the main thread (where Hydra and submitit run jobs);
        # elsewhere the signals keep their usual effect.
        main = threading.current_thread() is threading.main_thread()
        self._previous = (
            {s: signal.signal(s, self._catch) for s in (self.REQUEUE, *self.STOP)} if main else {}
        )

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _catch(self, signum: int, frame) -> None:
        # A pending requeue wins: Slurm follows its preemption USR2 with a SIGTERM after the
        # grace time, which must not turn a requeue into a cancellation.
        if self.signum != self.REQUEUE:
            self.signum, self.frame = signum, frame

    def restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def hand_over(self) -> None:
        """Replay a requeue signal to whoever had it: submitit requeues the job and exits;
        without submitit the default action ends the process."""
        previous = self._previous.get(self.REQUEUE, signal.SIG_DFL)
        self.restore()
        self.handed_over = True
        if callable(previous):
            previous(self.REQUEUE, self.frame)
        else:
            signal.signal(self.REQUEUE, signal.SIG_DFL)
            os.kill(os.getpid(), self.REQUEUE)
