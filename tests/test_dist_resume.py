"""Stop signals, checkpoints and resume of distributed jobs (CPU, gloo, ranks started by
`launch.py`): a signal to any one rank makes every rank checkpoint at the same step; the run
resumes into the same MLflow run, bit-exact on the same number of ranks (DCP for ddp/fsdp,
DeepSpeed's own checkpoint for ZeRO), past a damaged latest checkpoint, and on another number
of ranks for fsdp (DCP reshards). A rank that dies ends the job."""

from __future__ import annotations

import math
import os
import signal
from pathlib import Path

import pytest

from tests.conftest import run_launch, start_launch, tiny
from tests.test_dist_train import history, job_runs
from trainer import schema

pytestmark = pytest.mark.slow

TINY = tiny(
    "train.log_every=5", "train.eval_sequences=16", "train.threads=1", micro_batch=4, batch=16
)


def ranks_of(pid: int) -> list[int]:
    """The rank processes `launch.py` started, in rank order (they start one after another)."""
    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids += [int(k) for k in (task / "children").read_text().split()]
    cmd = {k: Path(f"/proc/{k}/cmdline").read_bytes() for k in kids}
    return sorted(k for k in kids if b"spawn_main" in cmd[k])


def launch_and_signal(args, cwd, env, signum, at_step, to_rank=None) -> tuple[int, str]:
    """Start `launch.py ARGS`; once it reports `at_step`, send `signum` to it (or to that one
    rank of it); return its exit code and output."""
    proc = start_launch(args, cwd, env)
    out = []
    for line in proc.stdout:
        out.append(line)
        if f"] step {at_step} " in line:
            target = proc.pid if to_rank is None else ranks_of(proc.pid)[to_rank]
            os.kill(target, signum)
            break
    out.append(proc.stdout.read())
    return proc.wait(timeout=300), "".join(out)


def the_run(cwd: Path):
    (run,) = job_runs(f"sqlite:///{cwd / 'mlflow.db'}")
    return run


def uninterrupted(tmp_path, env, args) -> tuple[str, object]:
    ref = tmp_path / "ref"
    ref.mkdir()
    r = run_launch(*args, cwd=ref, env={**env, "LMSWEEP_CHECKPOINTS": str(ref / "ckpt")})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return f"sqlite:///{ref / 'mlflow.db'}", the_run(ref)


def test_usr2_to_one_rank_checkpoints_every_rank_and_resumes_bit_exact(tmp_path, env):
    """ddp: the signal reaches rank 1 only; both ranks save at one step (the job requeues as
    a one-process job would). The newest checkpoint is then damaged: the resumed run falls
    back to the one before and still ends bit for bit as the uninterrupted run."""
    args = [
        "dist=ddp",
        "dist.nproc=2",
        *TINY,
        "budget.steps=100",
        "train.eval_every=50",
        "train.checkpoint_every=10",
        "train.keep_checkpoints=2",
    ]
    ref_uri, ref = uninterrupted(tmp_path, env, args)
    work = tmp_path / "work"
    work.mkdir()
    code, out = launch_and_signal(args, work, env, signal.SIGUSR2, at_step=25, to_rank=1)
    assert code == -signal.SIGUSR2, out[-3000:]
    run = the_run(work)
    assert run.info.status == "RUNNING"
    assert run.data.tags[schema.TAG_OUTCOME] == schema.OUTCOME_PREEMPTED

    (job_dir,) = (tmp_path / "ckpt").iterdir()
    saved = sorted(p for p in job_dir.iterdir() if p.name.startswith("step_"))
    assert len(saved) == 2 and all(p.is_dir() for p in saved), saved  # pruned to 2
    newest = saved[-1]
    assert sorted(p.name for p in newest.glob("loop_*.pt")) == ["loop_0.pt", "loop_1.pt"]
    shard = max(newest.glob("*.distcp"), key=lambda p: p.stat().st_size)
    with open(shard, "r+b") as f:  # a copy cut short
        f.truncate(shard.stat().st_size // 2)

    r = run_launch(*args, cwd=work, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert f"checkpoint {newest} is unreadable" in r.stdout + r.stderr
    run = the_run(work)
    assert run.info.status == "FINISHED" and run.data.tags[schema.TAG_RESUMES] == "1"
    uri = f"sqlite:///{work / 'mlflow.db'}"
    assert run.data.metrics[schema.FINAL_VAL_LOSS] == ref.data.metrics[schema.FINAL_VAL_LOSS]
    for key in (schema.TRAIN_LOSS, schema.VAL_LOSS, schema.TOKENS):
        assert history(uri, run, key) == history(ref_uri, ref, key), key  # no gap, no repeat
    assert [s for s, _ in history(uri, run, schema.TRAIN_LOSS)] == list(range(5, 101, 5))
    assert not list(job_dir.glob("step_*[0-9]")), "a finished run keeps no checkpoints"


def test_sigterm_cancels_a_zero3_run_and_the_rerun_resumes_bit_exact(tmp_path, env):
    """deepspeed ZeRO-3: SIGTERM (scancel, shutdown) to the job checkpoints every rank's
    partition with DeepSpeed's own save and ends the run KILLED; running the command again
    loads it and ends as the uninterrupted run."""
    args = [
        "dist=deepspeed",
        "dist.zero_stage=3",
        "dist.nproc=2",
        *TINY,
        "budget.steps=60",
        "train.eval_every=30",
    ]
    ref_uri, ref = uninterrupted(tmp_path, env, args)
    work = tmp_path / "work"
    work.mkdir()
    code, out = launch_and_signal(args, work, env, signal.SIGTERM, at_step=15)
    assert code == 128 + signal.SIGTERM, out[-3000:]
    run = the_run(work)
    assert run.info.status == "KILLED"
    assert run.data.tags[schema.TAG_OUTCOME] == schema.OUTCOME_CANCELLED
    (job_dir,) = (tmp_path / "ckpt").iterdir()
    (saved,) = [p for p in job_dir.iterdir() if p.name.startswith("step_")]
    assert len(list((saved / "zero").glob("*optim_states.pt"))) == 2  # a partition per rank

    r = run_launch(*args, cwd=work, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    run = the_run(work)
    uri = f"sqlite:///{work / 'mlflow.db'}"
    assert run.info.status == "FINISHED" and run.data.tags[schema.TAG_RESUMES] == "1"
    assert run.data.metrics[schema.FINAL_VAL_LOSS] == ref.data.metrics[schema.FINAL_VAL_LOSS]
    for key in (schema.TRAIN_LOSS, schema.VAL_LOSS):
        assert history(uri, run, key) == history(ref_uri, ref, key), key


def test_fsdp_run_resumes_on_one_rank_within_1e4(tmp_path, env):
    """A 2-rank fsdp run preempted, then resumed with dist.nproc=1 (the same job: the global
    batch is the same): DCP reshards its checkpoint onto one rank, the run continues in the
    same MLflow run, and its losses stay within 1e-4 of the uninterrupted 2-rank run."""
    base = ["dist=fsdp", *TINY, "budget.steps=40", "train.eval_every=20"]
    ref_uri, ref = uninterrupted(tmp_path, env, [*base, "dist.nproc=2"])
    work = tmp_path / "work"
    work.mkdir()
    code, out = launch_and_signal([*base, "dist.nproc=2"], work, env, signal.SIGUSR2, at_step=10)
    assert code == -signal.SIGUSR2, out[-3000:]
    r = run_launch(*base, "dist.nproc=1", cwd=work, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    run = the_run(work)
    uri = f"sqlite:///{work / 'mlflow.db'}"
    assert run.info.status == "FINISHED" and run.data.tags[schema.TAG_RESUMES] == "1"
    assert run.data.tags["lmsweep.dist.world_size"] == "1"
    got, want = history(uri, run, schema.TRAIN_LOSS), history(ref_uri, ref, schema.TRAIN_LOSS)
    assert [s for s, _ in got] == [s for s, _ in want] == list(range(5, 41, 5))
    for (step, a), (_, b) in zip(got, want):
        assert math.isclose(a, b, rel_tol=1e-4), (step, a, b)
    assert math.isclose(
        run.data.metrics[schema.FINAL_VAL_LOSS],
        ref.data.metrics[schema.FINAL_VAL_LOSS],
        rel_tol=1e-4,
    )


def test_a_dead_rank_ends_the_job(tmp_path, env):
    args = ["dist=ddp", "dist.nproc=2", *TINY, "budget.steps=100000", "train.eval_every=1000"]
    code, out = launch_and_signal(args, tmp_path, env, signal.SIGKILL, at_step=10, to_rank=1)
    assert code == 1, out[-3000:]
    assert "rank 1 of 2 was killed by SIGKILL; the other ranks were stopped" in out
    run = the_run(tmp_path)
    assert run.info.status == "FAILED"
    assert run.data.tags[schema.TAG_OUTCOME] == schema.OUTCOME_FAILED
