"""Choosing the checkpoint a DeepSpeed job resumes from (one process, no training): a damaged
newest directory is set aside for the one before, and a checkpoint written by another number
of ranks is refused with the number to use, never taken for damage. (DCP directories: the
end-to-end test in test_dist_resume.py damages one and resumes.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainer.contract import ConfigError
from trainer.dist.checkpoint import DS_TAG, DeepSpeedCheckpoints


def write(directory: Path, step: int, ranks: int = 1) -> Path:
    path = directory / f"step_{step:09d}"
    (path / DS_TAG).mkdir(parents=True)
    torch.save({"w": torch.ones(64)}, path / DS_TAG / "mp_rank_00_model_states.pt")
    for r in range(ranks):
        torch.save({"run_id": "abc", "step": step}, path / f"loop_{r}.pt")
    return path


def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
    write(tmp_path, 10)
    newest = write(tmp_path, 20)
    states = newest / DS_TAG / "mp_rank_00_model_states.pt"
    states.write_bytes(states.read_bytes()[:100])  # cut short
    saved = DeepSpeedCheckpoints(None, tmp_path).latest()
    assert saved["step"] == 10 and saved["path"] == str(tmp_path / "step_000000010")
    assert (tmp_path / "step_000000020.corrupt").is_dir() and not newest.exists()
    assert "step_000000020 is unreadable" in caplog.text


def test_a_checkpoint_of_another_world_size_is_refused_not_set_aside(tmp_path):
    path = write(tmp_path, 10, ranks=2)
    with pytest.raises(
        ConfigError,
        match=r"written by 2 DeepSpeed ranks and this job has 1.*"
        r"dist.nproc x dist.nodes = 2",
    ):
        DeepSpeedCheckpoints(None, tmp_path).latest()
    assert path.is_dir()
