"""What a rank other than 0 holds in place of the job's MLflow run and metric writer: the part
of trainer/tracking.py RunLogger and trainer/metric_writer.py MetricWriter that every rank uses
(trainer/job.py), doing nothing. Only rank 0 talks to MLflow, and only it logs a new run's
params and config or resumes a run's metrics; the others run the same loop without a
connection."""

from __future__ import annotations

from typing import Any, Optional


class SilentRun:
    run_id = ""  # only rank 0 has the run
    experiment_id = ""
    status = "RUNNING"

    def set_tags(self, tags: Any) -> None:
        pass

    def end(self, status: str) -> None:
        self.status = status


class SilentWriter:
    fatal: Optional[Exception] = None
    outage_s = 0.0
    seconds = 0.0

    def add(self, values: Any, step: int) -> None:
        pass

    def make_durable(self) -> None:
        pass

    def close(self, *args: Any) -> bool:
        return True
