"""A wall-clock budget: a real (tiny) run stops at the deadline, and its lr follows the
schedule of elapsed training seconds / budget, as read back from MLflow."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import compose_job, tiny
from trainer import schema
from trainer.job import train
from trainer.schedules import SCHEDULES

BUDGET_S = 3.0
TINY = tiny(
    "train.eval_sequences=4",
    "train.eval_every=1000000",
    "train.log_every=1",
    "train.threads=1",
    micro_batch=4,
)


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MLflow puts a new experiment's artifacts under ./mlruns


def test_seconds_budget_stops_at_the_deadline_and_drives_the_schedule(tmp_path, cache_dir):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    job = compose_job(
        "budget=seconds",
        f"budget.seconds={BUDGET_S}",
        "schedule=linear",
        *TINY,
        f"data.cache_dir={cache_dir}",
        f"tracking.uri={uri}",
        f"train.checkpoint_dir={tmp_path / 'ckpt'}",
    )
    summary = train(job, "budget=seconds", "budget=seconds")

    client = MlflowClient(uri)
    history = {
        m: sorted((x.step, x.value) for x in client.get_metric_history(summary.run_id, m))
        for m in (schema.LR, schema.WALL_CLOCK)
    }
    steps = [s for s, _ in history[schema.WALL_CLOCK]]
    assert steps == list(range(1, summary.steps + 1)) and summary.steps > 10
    wall = [v for _, v in history[schema.WALL_CLOCK]]
    # the last step started before the deadline and ended past it, within one step
    assert wall[-2] < BUDGET_S <= wall[-1] < BUDGET_S + 0.5
    assert summary.wall_clock_s == pytest.approx(wall[-1])

    # step k ran at the lr of the fraction reached before it: wall-clock after step k-1
    schedule = SCHEDULES.build(job.schedule)
    expected = [job.optim.lr * schedule(t / BUDGET_S) for t in [0.0] + wall[:-1]]
    assert [v for _, v in history[schema.LR]] == pytest.approx(expected, rel=1e-9)
    # It rose through the warmup and fell in the decay (how close a step lands to the peak
    # depends on step times, which a loaded machine stretches).
    peak = max(expected)
    assert expected[0] < peak > expected[-1] and peak > 0.5 * job.optim.lr


def test_evaluation_time_is_recorded_beside_the_training_seconds(tmp_path, cache_dir):
    """eval_s: the validation passes' seconds, outside wall_clock_s; both fit in the run."""
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    tiny = [o for o in TINY if not o.startswith("train.eval_")]
    job = compose_job(
        "budget.steps=30",
        *tiny,
        "train.eval_every=2",
        "train.eval_sequences=64",
        f"data.cache_dir={cache_dir}",
        f"tracking.uri={uri}",
        f"train.checkpoint_dir={tmp_path / 'ckpt'}",
    )
    summary = train(job, "eval", "eval")
    run = MlflowClient(uri).get_run(summary.run_id)
    eval_s, wall = run.data.metrics[schema.EVAL_SECONDS], run.data.metrics[schema.WALL_CLOCK]
    assert eval_s > 0 and wall > 0
    assert wall + eval_s <= (run.info.end_time - run.info.start_time) / 1e3
