"""Bad input that used to pass the pre-flight and fail inside the job, after the sweep's parent
run existed: local dist settings this machine cannot run, a negative optim.eps or seed, a local
data=hf dataset without the text field. Each is now one message before anything is created.
And the plan counts the tokens a distributed job with a batch ramp really trains on."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import compose_cfg, compose_job, run_launch, tiny
from trainer.config import checked_job
from trainer.contract import ConfigError


def refused(tmp_path, *args: str) -> str:
    """`python launch.py -m ARGS` (a real launch, not a dry run): refused with no traceback,
    no store (so no parent run) and no data cache; its stderr."""
    r = run_launch(
        "-m",
        *args,
        cwd=tmp_path,
        env={"LMSWEEP_CACHE": str(tmp_path / "cache"), "MLFLOW_TRACKING_URI": ""},
        timeout=180,
    )
    assert r.returncode != 0, r.stdout[-2000:]
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    assert "nothing was launched" in r.stderr, r.stderr[-3000:]
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()
    assert not (tmp_path / "cache").exists()
    return r.stderr


@pytest.mark.parametrize(
    "args,needles",
    [
        (
            ["dist=ddp", "dist.backend=nccl", "dist.nproc=2", "train.micro_batch=8",
             "train.device=cpu"],
            ["dist.backend='nccl' is invalid on this machine: NCCL needs CUDA",
             "valid here: auto, gloo"],
        ),
        (
            ["dist=ddp", "dist.nodes=2", "dist.nproc=1", "train.micro_batch=8"],
            ["dist.nodes=2 is invalid here: lmsweep starts ranks on this machine only",
             "+cluster=<name>"],
        ),
        (
            ["optim=adam,sm3,soap", "optim.eps=-1"],
            ["3 of 3 jobs have an invalid config", "optim.eps=-1.0 is invalid: > 0"],
        ),
        (["seed=-1"], ["seed=-1 is invalid: a whole number in [0, 2^64)"]),
    ],
    ids=["nccl-on-cpu", "nodes-locally", "eps", "seed"],
)  # fmt: skip
def test_refused_before_the_sweep_creates_anything(args, needles, tmp_path):
    stderr = refused(tmp_path, *args, "budget.steps=2")
    for needle in needles:
        assert needle in stderr, stderr[-3000:]


def test_a_local_hf_dataset_without_the_text_field_is_refused(tmp_path):
    """data=hf reads a local dataset's first row the way the job loads it (streamed), as
    data=files does; before, the job failed on the column after the parent run existed."""
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    (dataset / "part-0.jsonl").write_text('{"body": "a document", "n": 1}\n' * 50)
    stderr = refused(tmp_path, "data=hf", f"data.path={dataset}", "budget.steps=2")
    assert "data.text_field='text' is invalid: not a column of the dataset at" in stderr
    assert "columns: ['body', 'n']" in stderr
    job = checked_job(compose_cfg("data=hf", f"data.path={dataset}", "data.text_field=body"))
    assert job.data.text_field == "body"  # the right field passes


@pytest.fixture
def two_gpus_here(monkeypatch):
    """This machine, as the pre-flight sees it: CUDA with 2 GPUs."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    for key in ("RANK", "WORLD_SIZE", "SLURM_NTASKS", "SLURM_NPROCS", "SLURM_PROCID"):
        monkeypatch.delenv(key, raising=False)


def test_more_local_ranks_than_gpus_are_refused_locally_but_not_for_slurm(two_gpus_here):
    from sweeper.preflight import validate

    jobs = [["dist=ddp", "dist.nproc=4", "train.micro_batch=4"]]
    with pytest.raises(
        ConfigError,
        match=r"dist.nproc=4 is invalid on this machine: one rank "
        r"per GPU, and it has 2: use dist.nproc <= 2, or train.device=cpu",
    ):
        validate(jobs, lambda o: compose_cfg(*o), local=True)
    # on Slurm the GPUs and nodes are the cluster's, not this machine's
    jobs.append(["dist=ddp", "dist.nodes=2", "dist.nproc=4", "train.micro_batch=2"])
    assert len(validate(jobs, lambda o: compose_cfg(*o), local=False)) == 2
    validate([["dist=ddp", "dist.nproc=2", "train.micro_batch=8"]], lambda o: compose_cfg(*o),
             local=True)  # fmt: skip


def test_a_rank_of_a_slurm_job_keeps_its_nodes(monkeypatch):
    """Inside a task of a 2-node Slurm job the job's own pre-flight (launch.py's checked_job,
    local) must not refuse dist.nodes=2: the ranks are Slurm's, not started here."""
    for key in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SLURM_NTASKS", "2")
    monkeypatch.setenv("SLURM_PROCID", "1")
    cfg = compose_cfg("dist=ddp", "dist.nodes=2", "dist.nproc=1", "train.micro_batch=8")
    assert checked_job(cfg, local=True).dist.world_size == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_more_ranks_than_the_gpus_here_are_refused_by_the_command(tmp_path):
    n = torch.cuda.device_count() + 1
    stderr = refused(tmp_path, "dist=ddp", f"dist.nproc={n}", "train.micro_batch=1",
                     f"ramp.start={n}", "budget.steps=2")  # fmt: skip
    assert f"dist.nproc={n} is invalid on this machine: one rank per GPU" in stderr


# --- the plan's tokens -------------------------------------------------------------------------
RAMPED = tiny(
    "dist=ddp",
    "dist.nproc=2",
    "ramp=linear",
    "ramp.end=64",
    "budget.steps=20",
    "train.threads=1",
    "train.eval_every=20",
    "train.eval_sequences=8",
    "train.device=cpu",
    micro_batch=8,
    batch=16,
)


def test_the_plan_ramps_in_whole_micro_batches_of_every_rank():
    """Each rank takes whole micro-batches (trainer/loop.py: micro_batch x ranks is the ramp's
    step): the plan counts the batches the trainer takes, not 24 or 40 of 16-sequence steps."""
    from sweeper.plan import planned_tokens

    job = compose_job(*RAMPED)
    ramp = job.batch_ramp()
    sizes = {ramp(step / 20) for step in range(20)}
    assert sizes == {16, 32, 48, 64} and all(s % (8 * 2) == 0 for s in sizes)
    assert planned_tokens(job) == 30_208  # what the 2-rank run below logs; was 31,488


@pytest.mark.slow
def test_the_plan_counts_the_tokens_a_two_rank_ramped_run_trains_on(tmp_path, env):
    from mlflow.tracking import MlflowClient

    from sweeper.plan import planned_tokens
    from trainer import schema
    from trainer.tables import human

    planned = planned_tokens(compose_job(*RAMPED))
    r = run_launch("-m", *RAMPED, cwd=tmp_path, env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    plan_row = next(line for line in r.stdout.splitlines() if line.startswith("0  model."))
    assert f"  {human(planned)}  " in plan_row, plan_row

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("lmsweep")
    (run,) = [
        run
        for run in client.search_runs([exp.experiment_id])
        if run.data.tags.get(schema.TAG_ROLE) == schema.ROLE_JOB
    ]
    assert run.info.status == "FINISHED"
    assert run.data.tags["lmsweep.dist.world_size"] == "2"
    assert run.data.metrics[schema.TOKENS] == planned
