"""MLflow bookkeeping for one job: the run, its params and tags, batched metric histories.

Metrics are buffered and written with `MlflowClient.log_batch` (one SQL/HTTP round trip per
flush): one call per value costs ~2 ms on SQLite and ~5-48 ms over HTTP, which would rival a
small model's step time.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Mapping

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from trainer import schema

MAX_METRICS_PER_BATCH = 1000         # MLflow's log_batch limits
MAX_PARAMS_PER_BATCH = 100
MAX_PARAM_LENGTH = 6000


def resolve_uri(uri: str | None) -> str:
    """Explicit URI > $MLFLOW_TRACKING_URI > a SQLite file in the launch directory."""
    if uri:
        return uri
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def ensure_experiment(client: MlflowClient, name: str) -> str:
    """Get or create by name. Called once by the sweeper before any job starts: concurrent
    `set_experiment` calls race, and the losers' runs land in "Default" (see the notes)."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    return client.create_experiment(name)


def scheduler_tags() -> dict[str, str]:
    """Inside a Slurm job: {lmsweep.slurm_job_id: "<array job>_<task>"} (or "<job>" outside an
    array), the id sacct and submitit use, so `python -m sweeper status` joins the job's Slurm
    state to its run. Empty elsewhere. Set it when a job run starts and again on each resume."""
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return {schema.TAG_SLURM_JOB_ID: f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"}
    if env.get("SLURM_JOB_ID"):
        return {schema.TAG_SLURM_JOB_ID: env["SLURM_JOB_ID"]}
    return {}


class RunLogger:
    def __init__(self, client: MlflowClient, run_id: str, flush_every_s: float = 5.0):
        self.client, self.run_id = client, run_id
        self.flush_every_s = flush_every_s
        self._pending: list[Metric] = []
        self._last_flush = time.monotonic()
        self.seconds = 0.0             # spent in log_metrics/flush, reported by the benchmark
        self.logged_through = -1       # on resume: steps already in the store are not re-logged
        self.status = "RUNNING"

    @classmethod
    def start(cls, client: MlflowClient, experiment_id: str, run_name: str,
              tags: Mapping[str, str], parent_run_id: str = "") -> "RunLogger":
        all_tags = dict(tags)
        if parent_run_id:
            all_tags[schema.PARENT_RUN_TAG] = parent_run_id
        run = client.create_run(experiment_id, run_name=run_name, tags=all_tags)
        return cls(client, run.info.run_id)

    def resume(self) -> None:
        """Continue a run after a restart from a checkpoint. Steps between that checkpoint and
        the last point already stored are replayed but not logged again, so the history has
        neither gaps nor duplicates."""
        run = self.client.get_run(self.run_id)
        self.client.update_run(self.run_id, status="RUNNING")
        history = self.client.get_metric_history(self.run_id, schema.TRAIN_LOSS)
        self.logged_through = max((m.step for m in history), default=-1)
        resumes = int(run.data.tags.get(schema.TAG_RESUMES, 0)) + 1
        self.set_tags({schema.TAG_RESUMES: resumes})

    def log_params(self, params: Mapping[str, Any]) -> None:
        items = [Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in sorted(params.items())]
        for i in range(0, len(items), MAX_PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=items[i: i + MAX_PARAMS_PER_BATCH])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_metrics(self, values: Mapping[str, float], step: int) -> None:
        if step <= self.logged_through:
            return
        t0 = time.monotonic()
        ts = int(time.time() * 1000)
        self._pending.extend(Metric(k, float(v), ts, step) for k, v in values.items())
        if t0 - self._last_flush >= self.flush_every_s:
            self._write()
        self.seconds += time.monotonic() - t0

    def flush(self) -> None:
        t0 = time.monotonic()
        self._write()
        self.seconds += time.monotonic() - t0

    def _write(self) -> None:
        pending, self._pending = self._pending, []
        for i in range(0, len(pending), MAX_METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=pending[i: i + MAX_METRICS_PER_BATCH])
        self._last_flush = time.monotonic()

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def end(self, status: str) -> None:
        self.flush()
        self.client.set_terminated(self.run_id, status)
        self.status = status
