"""Two identical sweeps started at once into one fresh store: the store is initialised once,
and each job trains once (the other sweep finds it claimed or finished and skips it)."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import start_launch
from tests.test_fault_outage import SHAPE
from trainer import schema

pytestmark = pytest.mark.slow


def test_two_identical_sweeps_at_once_train_each_job_once(tmp_path, env):
    args = ["-m", "model=mixer,transformer", *SHAPE, "budget.steps=150"]
    procs = [start_launch(args, tmp_path, env) for _ in range(2)]  # a fresh store, at once
    outs = [p.stdout.read() for p in procs]
    for p, out in zip(procs, outs):
        assert p.wait(timeout=600) == 0, out[-3000:]
        assert "CommandError" not in out and "already exists" not in out and "Traceback" not in out
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("lmsweep").experiment_id])
    jobs = [r for r in runs if r.data.tags.get(schema.TAG_ROLE) == schema.ROLE_JOB]
    assert sorted(r.info.run_name for r in jobs) == ["model=mixer", "model=transformer"]
    assert {r.info.status for r in runs} == {"FINISHED"}  # 2 parents + 2 jobs
    assert len(runs) == 4
    skipped = sum(out.count("running elsewhere") + out.count("finished elsewhere") for out in outs)
    assert skipped >= 2, "each job should have been skipped by one of the two sweeps"
