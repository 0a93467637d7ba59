"""Checkpoints that survive preemption: save at a step boundary, resume bit-for-bit.

Slurm sends SIGUSR2 before a time limit or a preemption (submitit asks for it); submitit's
own handler requeues the job and exits at once, mid-step. `PreemptionSignal` defers that
handler to the next step boundary, so the loop saves first and then hands over.
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


class PreemptionSignal:
    """Catches SIGUSR2, remembers it, and replays it to the previous handler on `hand_over()`."""

    SIGNUM = signal.SIGUSR2

    def __init__(self) -> None:
        self.frame = None
        self.requested = False
        self.handed_over = False
        # Signal handlers can only be set from the main thread (where Hydra and submitit run
        # jobs); elsewhere preemption is simply not intercepted.
        self._active = threading.current_thread() is threading.main_thread()
        self._previous = signal.signal(self.SIGNUM, self._catch) if self._active else None

    def _catch(self, signum: int, frame) -> None:
        self.requested, self.frame = True, frame

    def restore(self) -> None:
        if self._active:
            signal.signal(self.SIGNUM, self._previous)
            self._active = False

    def hand_over(self) -> None:
        """Give the signal to whoever had it: submitit requeues the job and exits; otherwise
        the default action ends the process (a re-run resumes from the checkpoint)."""
        previous = self._previous
        self.restore()
        self.handed_over = True
        if callable(previous):
            previous(self.SIGNUM, self.frame)
        else:
            signal.signal(self.SIGNUM, signal.SIG_DFL)
            os.kill(os.getpid(), self.SIGNUM)
