"""Damaged or orphaned files never lose what was recorded and never leave a job stuck: a
truncated latest checkpoint falls back to the previous one; a checkpoint whose run or whole
store was deleted is set aside and the job starts a new run; each says so once."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import run_launch
from tests.test_fault_kill9 import kill9_at, runs_of
from tests.test_fault_outage import SHAPE, assert_complete
from trainer import schema

pytestmark = pytest.mark.slow
STEPS = 400
ARGS = [*SHAPE, f"budget.steps={STEPS}", "train.checkpoint_every=100", "train.keep_checkpoints=2"]


@pytest.fixture
def killed(tmp_path, env):
    """A run killed -9 at step ~250, with checkpoints at steps 100 and 200."""
    kill9_at(ARGS, tmp_path, env, "] step 250 ")
    files = sorted((tmp_path / "ckpt").rglob("step_*.pt"))
    assert [f.name for f in files] == ["step_000000100.pt", "step_000000200.pt"]
    return tmp_path, env, files


def test_truncated_latest_checkpoint_falls_back_to_the_previous(killed):
    cwd, env, (older, latest) = killed
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 3])
    r = run_launch(*ARGS, cwd=cwd, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    assert f"checkpoint {latest} is unreadable" in out and f"falling back to {older.name}" in out
    client, (run,) = runs_of(cwd)  # resumed into its run, from step 100
    assert run.info.status == "FINISHED" and run.data.tags[schema.TAG_RESUMES] == "1"
    assert_complete(client, run.info.run_id, STEPS)


def test_deleted_run_starts_a_new_run_and_sets_the_checkpoint_aside(killed):
    cwd, env, files = killed
    client, (run,) = runs_of(cwd)
    client.delete_run(run.info.run_id)
    r = run_launch(*ARGS, cwd=cwd, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    assert f"the MLflow run {run.info.run_id} of checkpoint" in out and "was deleted" in out
    assert "starting a new run" in out
    (stale,) = (cwd / "ckpt").glob("*.stale-*")
    assert sorted(p.name for p in stale.iterdir()) == [f.name for f in files]
    client, (fresh,) = runs_of(cwd)
    assert fresh.info.run_id != run.info.run_id and fresh.info.status == "FINISHED"
    assert_complete(client, fresh.info.run_id, STEPS)
    r = run_launch(*ARGS, cwd=cwd, env=env)  # and it does not repeat on later launches
    assert "was deleted" not in r.stdout + r.stderr


def test_deleted_store_starts_a_new_run(killed):
    cwd, env, _ = killed
    (cwd / "mlflow.db").unlink()
    shutil.rmtree(cwd / "mlruns", ignore_errors=True)
    r = run_launch(*ARGS, cwd=cwd, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "was deleted" in r.stdout + r.stderr
    client, (run,) = runs_of(cwd)
    assert run.info.status == "FINISHED" and schema.TAG_RESUMES not in run.data.tags
    assert_complete(client, run.info.run_id, STEPS)
