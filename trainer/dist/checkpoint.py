"""A job's checkpoints in the format its `dist` option needs, behind one interface:

- dist=none: one file per step, `step_<n>.pt` (trainer/checkpoint.py, unchanged);
- ddp, fsdp: a directory per step, `step_<n>/`, written by torch.distributed.checkpoint
  (DCP: each rank writes its shards, replicated tensors once) and loadable on another number
  of ranks (DCP reshards on load);
- deepspeed: a directory per step with DeepSpeed's own checkpoint in `zero/` (every rank's
  ZeRO partition); it resumes on the number of ranks that wrote it.

Each directory also holds `loop_<rank>.pt`: the Trainer's loop state (progress, data cursor,
RNG) of every rank, plain values and tensors (weights_only loads). A directory is written as
`step_<n>.tmp/` and renamed once every rank has finished, so a directory named `step_<n>` is
complete; before resuming, rank 0 checks the newest one's files and falls back past a
damaged one (renamed `*.corrupt`), as for files. Older directories are pruned like files.

Which of these a job uses is named by its dist option's Parallel class (`checkpoints`:
trainer/dist/parallel.py, zero.py).
"""

from __future__ import annotations

import logging
import shutil
import zipfile
from pathlib import Path
from typing import Any, Optional

import torch

from trainer import checkpoint
from trainer.contract import ConfigError
from trainer.dist import ranks

log = logging.getLogger("lmsweep")

LOOP_FILE = "loop_{rank}.pt"
DS_TAG = "zero"  # DeepSpeed's tag: its files go in step_<n>/zero/


class Checkpoints:
    """dist=none: the Trainer's whole state in one file per step."""

    def __init__(self, trainer: Any, directory: Path):
        self.trainer, self.directory = trainer, directory

    def latest(self) -> Optional[dict[str, Any]]:
        """The newest checkpoint that loads (its `run_id` and what `load` needs), or None."""
        return checkpoint.latest(self.directory)

    def load(self, saved: dict[str, Any]) -> None:
        self.trainer.load_state_dict(saved)

    def save(self, run_id: str) -> None:
        t = self.trainer
        checkpoint.save(
            self.directory,
            t.state.progress.steps,
            t.state_dict(run_id),
            t.job.train.keep_checkpoints,
        )

    def set_aside(self, why: str) -> None:
        checkpoint.set_aside(self.directory, why)


class Sharded(Checkpoints):
    """ddp and fsdp: torch.distributed.checkpoint, one directory per step."""

    def latest(self) -> Optional[dict[str, Any]]:
        """Rank 0 looks, every rank gets its answer (or its refusal)."""
        found, refusal = None, None
        if ranks.is_main():
            try:
                found = self._newest_loadable()
            except ConfigError as e:
                refusal = str(e)
        found, refusal = ranks.broadcast((found, refusal))
        if refusal:
            raise ConfigError(refusal)
        return found

    def _newest_loadable(self) -> Optional[dict[str, Any]]:
        for path in sorted(checkpoint.step_dirs(self.directory), reverse=True):
            self.check_resumable(path)
            try:
                self.verify(path)
                return {
                    **torch.load(
                        path / LOOP_FILE.format(rank=0), map_location="cpu", weights_only=True
                    ),
                    "path": str(path),
                }
            except Exception as e:
                log.warning(
                    f"checkpoint {path} is unreadable ({type(e).__name__}: "
                    f"{str(e)[:120]}); moved to {path.name}.corrupt; falling back to "
                    "the previous one, if any"
                )
                path.rename(path.with_name(path.name + ".corrupt"))
        return None

    def check_resumable(self, path: Path) -> None:
        """Refuse (ConfigError) a checkpoint this job cannot resume from although intact."""

    def verify(self, path: Path) -> None:
        """Every file the checkpoint's metadata names is there and long enough (a copy cut
        short by a full disk or a crash fails here, before any rank loads it)."""
        from torch.distributed.checkpoint import FileSystemReader

        meta = FileSystemReader(str(path)).read_metadata()
        need: dict[str, int] = {}
        for info in (meta.storage_data or {}).values():
            need[info.relative_path] = max(
                need.get(info.relative_path, 0), info.offset + info.length
            )
        for name, size in need.items():
            have = (path / name).stat().st_size
            if have < size:
                raise OSError(f"{name} has {have} bytes, the metadata names {size}")

    def load(self, saved: dict[str, Any]) -> None:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

        path = Path(saved["path"])
        model, opt = self.trainer.model.module, self.trainer.opt
        model_sd, opt_sd = get_state_dict(model, opt)
        state = {"model": model_sd, "optimizer": opt_sd}
        dcp.load(state, checkpoint_id=str(path))
        set_state_dict(
            model, opt, model_state_dict=state["model"], optim_state_dict=state["optimizer"]
        )
        self._load_loop(path)

    def _load_loop(self, path: Path) -> None:
        # Each rank's own RNG where this world size wrote it; on another, rank 0's.
        mine = path / LOOP_FILE.format(rank=ranks.rank())
        own = mine if mine.exists() else path / LOOP_FILE.format(rank=0)
        self.trainer.load_loop_state(torch.load(own, map_location="cpu", weights_only=True))

    def save(self, run_id: str) -> None:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict

        tmp = self._begin()
        model_sd, opt_sd = get_state_dict(self.trainer.model.module, self.trainer.opt)
        dcp.save({"model": model_sd, "optimizer": opt_sd}, checkpoint_id=str(tmp))
        self._finish(tmp, run_id)

    # --- writing a directory: begin, every rank writes, finish ------------------------------
    def _begin(self) -> Path:
        tmp = self.directory / f"step_{self.trainer.state.progress.steps:09d}.tmp"
        if ranks.is_main():
            shutil.rmtree(tmp, ignore_errors=True)  # left by a crash mid-write
            tmp.mkdir(parents=True)
        ranks.barrier()
        return tmp

    def _finish(self, tmp: Path, run_id: str) -> None:
        torch.save(self.trainer.loop_state(run_id), tmp / LOOP_FILE.format(rank=ranks.rank()))
        ranks.barrier()
        if ranks.is_main():
            final = tmp.with_suffix("")
            shutil.rmtree(final, ignore_errors=True)
            tmp.rename(final)
            keep = self.trainer.job.train.keep_checkpoints
            for old in sorted(checkpoint.step_dirs(self.directory))[:-keep]:
                shutil.rmtree(old)
        ranks.barrier()

    def set_aside(self, why: str) -> None:
        if ranks.is_main():
            checkpoint.set_aside(self.directory, why)


class DeepSpeedCheckpoints(Sharded):
    """DeepSpeed's own save and load (its ZeRO partitions), in step_<n>/zero/."""

    def verify(self, path: Path) -> None:
        files = list((path / DS_TAG).glob("*.pt"))
        if not files:
            raise OSError(f"no DeepSpeed files in {path / DS_TAG}")
        for f in files:
            with zipfile.ZipFile(f):  # a file cut short has no central directory
                pass

    def check_resumable(self, path: Path) -> None:
        saved_by = len(list(path.glob(LOOP_FILE.format(rank="*"))))
        if saved_by != ranks.world():
            raise ConfigError(
                f"checkpoint {path} was written by {saved_by} DeepSpeed ranks and this job "
                f"has {ranks.world()}: a ZeRO checkpoint resumes on as many ranks as wrote "
                f"it. Run with dist.nproc x dist.nodes = {saved_by}, or remove "
                f"{path.parent} to start over"
            )

    def load(self, saved: dict[str, Any]) -> None:
        path = Path(saved["path"])
        engine = self.trainer.par.engine
        engine.load_checkpoint(
            str(path), tag=DS_TAG, load_optimizer_states=True, load_lr_scheduler_states=False
        )
        self._load_loop(path)

    def save(self, run_id: str) -> None:
        tmp = self._begin()
        self.trainer.par.engine.save_checkpoint(str(tmp), tag=DS_TAG, save_latest=False)
        self._finish(tmp, run_id)


def for_trainer(trainer: Any, directory: Path) -> Checkpoints:
    """The trainer's checkpoints in the format of its dist option (its Parallel's)."""
    return trainer.par.checkpoints(trainer, directory)
