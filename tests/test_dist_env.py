"""Where a rank sits in a Slurm job: its GPU among those it sees, and its rendezvous port; what
each dist option's config says about its ranks, its Parallel and its checkpoint format."""

from __future__ import annotations

import os
import warnings

import pytest

from trainer.contract import ConfigError
from trainer.dist import env
from trainer.dist.config import DISTS, DDPConfig, DeepSpeedConfig, FSDPConfig, NoDistConfig

RENDEZVOUS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@pytest.fixture(autouse=True)
def environment():
    """export_slurm writes os.environ (monkeypatch restores only the keys it set itself): left
    behind, RANK and WORLD_SIZE would make every later launch in this process join as a rank."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_a_rank_takes_its_local_gpu_or_the_one_slurm_bound_to_its_task():
    second = env.Place(rank=5, world=8, local_rank=1, local_world=4)
    assert env.gpu_index(second, visible=4) == 1  # --gpus-per-node: the node's GPUs
    assert env.gpu_index(second, visible=1) == 0  # --gpus-per-task: its own (was refused)
    with pytest.raises(ConfigError, match="this rank sees 2 CUDA device"):
        env.gpu_index(second, visible=2)


def slurm_task(monkeypatch, job_id: int, **extra: str) -> dict:
    """The rendezvous a task of a 2-task Slurm job gets from export_slurm."""
    for key in (*RENDEZVOUS, "SUBMITIT_EXECUTOR"):
        monkeypatch.delenv(key, raising=False)
    slurm = {"SLURM_JOB_ID": str(job_id), "SLURM_PROCID": "1", "SLURM_LOCALID": "1",
             "SLURM_NTASKS": "2", "SLURM_NODEID": "0", "SLURM_JOB_NUM_NODES": "1",
             "SLURM_JOB_NODELIST": "node7", **extra}  # fmt: skip
    for key, value in slurm.items():
        monkeypatch.setenv(key, value)
    env.export_slurm()
    return {key: os.environ[key] for key in RENDEZVOUS}


def test_submitit_jobs_draw_their_own_port_whatever_the_submitting_shell_exported(monkeypatch):
    shell = {"SUBMITIT_EXECUTOR": "slurm", "MASTER_PORT": "29500"}  # sbatch exports it to all
    first, second = slurm_task(monkeypatch, 101, **shell), slurm_task(monkeypatch, 202, **shell)
    assert first["RANK"] == "1" and first["WORLD_SIZE"] == "2" and first["LOCAL_RANK"] == "1"
    assert first["MASTER_ADDR"] == "node7"
    assert first["MASTER_PORT"] != "29500" and first["MASTER_PORT"] != second["MASTER_PORT"]


def test_jobs_sharing_a_node_get_distinct_ports_outside_the_ephemeral_range(monkeypatch):
    ids = range(4_000_000, 4_000_000 + 20_000)  # a cluster's next 20,000 jobs
    ports = {env.job_port(i) for i in ids}
    assert len(ports) == len(ids) and all(1024 < p < 32_768 for p in ports)
    got = slurm_task(monkeypatch, 4_000_123, SUBMITIT_EXECUTOR="slurm")
    assert got["MASTER_PORT"] == str(env.job_port(4_000_123))


def test_a_user_s_own_srun_keeps_the_port_its_script_chose(monkeypatch):
    got = slurm_task(monkeypatch, 101, MASTER_PORT="29511")  # no submitit in sight
    assert got["RANK"] == "1" and got["MASTER_PORT"] == "29511"


@pytest.mark.parametrize(
    "cfg, parallel, store",
    [
        (NoDistConfig(), "Parallel", "Checkpoints"),
        (DDPConfig(), "DDP", "Sharded"),
        (FSDPConfig(), "FSDP", "Sharded"),
        (DeepSpeedConfig(), "DeepSpeed", "DeepSpeedCheckpoints"),
    ],
)
def test_each_option_builds_its_own_parallel_which_names_its_checkpoint_format(
    cfg, parallel, store
):
    par = DISTS.build(cfg)  # no process group: rank 0 of 1
    assert type(par).__name__ == parallel and par.checkpoints.__name__ == store
    assert cfg.runs_ranks == (cfg.name != "none")


@pytest.mark.parametrize("cuda", [False, True])
def test_only_deepspeed_prepares_its_ranks_environment(cuda):
    for key in ("DS_ACCELERATOR", "TORCH_EXTENSIONS_DIR"):
        os.environ.pop(key, None)
    with warnings.catch_warnings():  # its filter stays in this block
        for cfg in (NoDistConfig(), DDPConfig(), FSDPConfig()):
            cfg.prepare_rank(cuda)
        assert "DS_ACCELERATOR" not in os.environ and "TORCH_EXTENSIONS_DIR" not in os.environ
        DeepSpeedConfig().prepare_rank(cuda)
    assert os.environ.get("DS_ACCELERATOR") == (None if cuda else "cpu")
    assert os.environ["TORCH_EXTENSIONS_DIR"] == str(env.TORCH_EXTENSIONS_DIR)
