"""Distributed jobs on the real local Slurm cluster (scripts/local-slurm.sh), CPU and gloo: a
job with dist.nproc=2 runs as one Slurm job of 2 tasks, each task a rank (submitit's
TorchDistributedEnvironment), `srun --kill-on-bad-exit=1`; it ends as one FINISHED MLflow run
with the loss of the same job run locally on 2 ranks, survives a USR2 preemption (requeued,
resumed into the same run, gap-free, bit-exact), and a sweep whose jobs ask for different
numbers of ranks goes to Slurm as one job array per resource shape."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import run_launch, tiny
from tests.test_dist_train import history, job_runs
from tests.test_slurm import ENV, SLURM, on_slurm, sweep_record, wait_for
from trainer import schema

# train.threads=1 as the cluster preset sets it: the local reference computes the same sums
LONG = [
    "dist=ddp",
    "dist.nproc=2",
    *tiny(
        "budget.steps=400",
        "train.eval_every=200",
        "train.log_every=10",
        "train.eval_sequences=16",
        "train.threads=1",
        micro_batch=4,
        batch=16,
    ),
]


@pytest.fixture(scope="module")
def local_2_ranks(tmp_path_factory, corpus):
    """The job run on this machine, its 2 ranks started by launch.py: the reference."""
    from trainer.data.corpus import corpus_dir

    cwd = tmp_path_factory.mktemp("local_ref")
    corpus_dir(cwd / "cache").parent.mkdir(parents=True)
    corpus_dir(cwd / "cache").symlink_to(corpus)
    r = run_launch(
        *LONG,
        cwd=cwd,
        env={**ENV, "LMSWEEP_CACHE": str(cwd / "cache"), "LMSWEEP_CHECKPOINTS": str(cwd / "ckpt")},
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    uri = f"sqlite:///{cwd / 'mlflow.db'}"
    (run,) = job_runs(uri)
    return uri, run


def slurm_env(cache_dir: Path) -> dict:
    return {**ENV, "LMSWEEP_CACHE": str(cache_dir)}


def tasks_of(job_id: str) -> int:
    """How many tasks the job's step ran (sacct)."""
    r = subprocess.run(
        ["sacct", "-j", job_id, "-n", "-P", "-o", "JobID,NTasks"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return max(int(n) for j, n in (line.split("|") for line in r.stdout.split()) if n)


@on_slurm
def test_two_task_job_is_one_finished_run_with_the_local_loss(tmp_path, cache_dir, local_2_ranks):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    r = run_launch(
        "-m", *SLURM, *LONG, f"tracking.uri={uri}", cwd=tmp_path, env=slurm_env(cache_dir)
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (job,) = sweep_record(tmp_path)["jobs"]
    assert tasks_of(job["slurm_job_id"]) == 2  # a task per rank
    assert Path(job["stdout"].replace("_0_log", "_1_log")).exists()  # rank 1's own log
    (run,) = job_runs(uri)
    ref_uri, ref = local_2_ranks
    assert run.info.status == "FINISHED"
    assert run.data.tags["lmsweep.dist.world_size"] == "2"
    assert run.data.tags[schema.TAG_SLURM_JOB_ID] == job["slurm_job_id"]
    assert run.data.metrics[schema.FINAL_VAL_LOSS] == ref.data.metrics[schema.FINAL_VAL_LOSS]
    jid = job["slurm_job_id"]
    logs = sorted(a.path for a in MlflowClient(uri).list_artifacts(run.info.run_id, "submitit"))
    assert logs == [f"submitit/{jid}_{t}_log.{x}" for t in (0, 1) for x in ("err", "out")]


@on_slurm
def test_usr2_preempts_a_two_task_job_which_resumes_into_the_same_run(
    tmp_path, cache_dir, local_2_ranks
):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    r = run_launch(
        "-m",
        *SLURM,
        "hydra.launcher.wait=false",
        *LONG,
        f"tracking.uri={uri}",
        cwd=tmp_path,
        env=slurm_env(cache_dir),
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    jid = sweep_record(tmp_path)["jobs"][0]["slurm_job_id"]
    try:
        wait_for(
            f"job {jid} to reach step 100",
            lambda: any(
                "] step 100 " in p.read_text(errors="replace")
                for p in tmp_path.rglob(f"{jid}_0_log.out")
            ),
            every=0.5,
        )
        subprocess.run(["scancel", "--signal=USR2", jid], check=True)  # what preemption sends
        client = MlflowClient(uri)
        wait_for(
            "the requeued job to finish its run",
            lambda: [x for x in job_runs(uri) if x.info.status == "FINISHED"],
            timeout=300,
        )
    finally:
        subprocess.run(["scancel", jid], check=False)
    (run,) = job_runs(uri)
    assert run.data.tags[schema.TAG_RESUMES] == "1"
    ref_uri, ref = local_2_ranks
    assert run.data.metrics[schema.FINAL_VAL_LOSS] == ref.data.metrics[schema.FINAL_VAL_LOSS]
    for key in (schema.TRAIN_LOSS, schema.VAL_LOSS, schema.TOKENS):
        assert history(uri, run, key) == history(ref_uri, ref, key), key  # no gap, no repeat
    assert [s for s, _ in history(uri, run, schema.TRAIN_LOSS)] == list(range(10, 401, 10))
    assert client.get_run(run.info.run_id).info.status == "FINISHED"


@on_slurm
def test_sweep_of_one_and_two_rank_jobs_submits_an_array_per_shape(tmp_path, cache_dir):
    """Sizes as presets that choose their own dist (as a sweep over model sizes would): the
    small job is one task, the big one two; each shape is its own job array."""
    presets = tmp_path / "conf" / "size"
    presets.mkdir(parents=True)
    (presets / "small.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /dist: none\n"
    )
    (presets / "big.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /dist: ddp\ndist:\n  nproc: 2\n"
    )
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    tiny = [o for o in LONG if not o.startswith(("dist", "budget.steps"))]
    r = run_launch(
        "-m",
        *SLURM,
        "+size=small,big",
        f"hydra.searchpath=[file://{tmp_path}/conf]",
        *tiny,
        "budget.steps=20",
        f"tracking.uri={uri}",
        cwd=tmp_path,
        env=slurm_env(cache_dir),
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rec = sweep_record(tmp_path)
    assert len(rec["arrays"]) == 2
    shapes = {j["run_name"]: tasks_of(j["slurm_job_id"]) for j in rec["jobs"]}
    assert shapes == {"+size=small": 1, "+size=big": 2}
    runs = job_runs(uri)
    assert {x.info.status for x in runs} == {"FINISHED"} and len(runs) == 2
    assert {x.info.run_name: x.data.params["dist.name"] for x in runs} == {
        "+size=small": "none",
        "+size=big": "ddp",
    }


@on_slurm
def test_a_user_s_own_srun_of_launch_py_runs_the_ranks_as_its_tasks(
    tmp_path, cache_dir, local_2_ranks
):
    """`srun -n 2 python launch.py dist=ddp dist.nproc=2 ...` in a user's batch script, not
    submitit: each task is a rank (it failed: submitit's environment was asked for and is
    set only by submitit); a MASTER_PORT the script exports is used."""
    import socket
    import sys

    from tests.conftest import ROOT

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    r = subprocess.run(
        ["srun", "-p", "debug", "-n", "2", "-c", "1", "--kill-on-bad-exit=1", "-t", "10"]
        + [sys.executable, str(ROOT / "launch.py"), *LONG, f"tracking.uri={uri}"],
        cwd=tmp_path,
        env={**os.environ, **slurm_env(cache_dir), "MASTER_PORT": str(port)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (run,) = job_runs(uri)
    assert run.info.status == "FINISHED"
    assert run.data.tags["lmsweep.dist.world_size"] == "2"
    _, ref = local_2_ranks
    assert run.data.metrics[schema.FINAL_VAL_LOSS] == ref.data.metrics[schema.FINAL_VAL_LOSS]
