"""kill -9: with a periodic checkpoint the next launch resumes into the same run with a gap-free,
duplicate-free history; without one it closes the dead run (FAILED, with the reason) and
trains anew. No run is ever left RUNNING, in a single run or in a sweep (parent included)."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import run_launch, start_launch
from tests.test_fault_outage import SHAPE, assert_complete, read_until
from trainer import schema

pytestmark = pytest.mark.slow
STEPS = 400


def kill9_at(args, cwd, env, marker: str) -> None:
    proc = start_launch(args, cwd, env)
    read_until(proc, marker, [])
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)


def runs_of(cwd):
    client = MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    exp = client.get_experiment_by_name("lmsweep")
    return client, client.search_runs([exp.experiment_id], order_by=["attributes.start_time"])


def test_kill9_after_a_periodic_checkpoint_resumes_gap_free(tmp_path, env):
    args = [*SHAPE, f"budget.steps={STEPS}", "train.checkpoint_every=100"]
    kill9_at(args, tmp_path, env, "] step 250 ")  # past the checkpoint at 200
    client, (run,) = runs_of(tmp_path)
    assert run.info.status == "RUNNING"  # nothing could close it
    r = run_launch(*args, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    client, (run,) = runs_of(tmp_path)
    assert run.info.status == "FINISHED" and run.data.tags[schema.TAG_RESUMES] == "1"
    assert_complete(client, run.info.run_id, STEPS)


def test_kill9_without_checkpoint_closes_the_dead_run_and_trains_anew(tmp_path, env):
    args = [*SHAPE, f"budget.steps={STEPS}", "train.checkpoint_every_s=0"]
    kill9_at(args, tmp_path, env, "] step 150 ")
    assert not list((tmp_path / "ckpt").rglob("step_*.pt"))
    r = run_launch(*args, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "was RUNNING but its process" in r.stdout + r.stderr
    client, (dead, fresh) = runs_of(tmp_path)
    assert dead.info.status == "FAILED"
    assert dead.data.tags[schema.TAG_OUTCOME] == schema.OUTCOME_FAILED
    assert "is gone" in dead.data.tags[schema.TAG_ENDED_BY]
    assert fresh.info.status == "FINISHED"
    assert_complete(client, fresh.info.run_id, STEPS)


def test_kill9_of_a_sweep_leaves_nothing_running(tmp_path, env):
    args = [
        "-m",
        "model=mixer,transformer",
        *SHAPE,
        f"budget.steps={STEPS}",
        "train.checkpoint_every=100",
    ]
    kill9_at(args, tmp_path, env, "[model=mixer] step 150 ")
    client, runs = runs_of(tmp_path)
    assert {r.info.status for r in runs} == {"RUNNING"} and len(runs) == 2  # parent + job
    # `status --reconcile` closes what the dead sweeper left
    r = subprocess.run(
        [sys.executable, "-m", "sweeper", "status", "--reconcile"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("was RUNNING but its process") == 2, r.stdout
    client, runs = runs_of(tmp_path)
    assert "RUNNING" not in {r.info.status for r in runs}
    r = run_launch(*args, cwd=tmp_path, env=env)  # the same sweep again
    assert r.returncode == 0, r.stderr[-3000:]
    client, runs = runs_of(tmp_path)
    assert "RUNNING" not in {r.info.status for r in runs}
    jobs = [r for r in runs if r.data.tags.get(schema.TAG_ROLE) == schema.ROLE_JOB]
    assert sorted(r.info.run_name for r in jobs) == ["model=mixer", "model=transformer"]
    for r in jobs:  # the mixer resumed its run
        assert r.info.status == "FINISHED"
        assert_complete(client, r.info.run_id, STEPS)
