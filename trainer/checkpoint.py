"""Checkpoints that survive preemption: save at a step boundary, resume bit-for-bit.

Slurm sends SIGUSR2 before a time limit or a preemption (submitit asks for it); submitit's
own handler requeues the job and exits at once, mid-step. `StopSignals` defers that handler
(and SIGTERM/SIGINT) to the next step boundary, so the loop saves first and then hands over.
Files hold only tensors and plain Python values, so they load with weights_only=True.
"""
from __future__ import annotations

import os
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any, Optional

import torch

PATTERN = "step_*.pt"


def save(directory: Path, step: int, state: dict[str, Any], keep: int) -> Path:
    """Write atomically (temp file + rename), then prune all but the newest `keep`."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"step_{step:09d}.pt"
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
    os.close(fd)
    torch.save(state, tmp)
    os.replace(tmp, path)
    for old in sorted(directory.glob(PATTERN))[:-keep]:
        old.unlink()
    return path


def latest(directory: Path) -> Optional[dict[str, Any]]:
    files = sorted(directory.glob(PATTERN))
    return torch.load(files[-1], weights_only=True) if files else None


def clear(directory: Path) -> None:
    for f in directory.glob(PATTERN):
        f.unlink()
    if directory.exists() and not any(directory.iterdir()):
        directory.rmdir()


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
        self._previous = {s: signal.signal(s, self._catch) for s in (self.REQUEUE, *self.STOP)} \
            if main else {}

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
