"""What a rank other than 0 holds in place of the job's MLflow run and metric writer: the
same methods (trainer/tracking.py RunLogger, trainer/metric_writer.py MetricWriter), doing
nothing. Only rank 0 talks to MLflow; the others run the same loop without a connection."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional


class SilentRun:
    def __init__(self, run_id: str = "", experiment_id: str = ""):
        self.run_id, self.experiment_id = run_id, experiment_id
        self.status = "RUNNING"

    def log_params(self, params: Any) -> None:
        pass

    def set_tags(self, tags: Any) -> None:
        pass

    def log_text(self, text: str, artifact_file: str) -> None:
        pass

    def log_file(self, path: Path, artifact_dir: Optional[str] = None) -> None:
        pass

    def describe(self, command: str, summary: str) -> None:
        pass

    def end(self, status: str) -> None:
        self.status = status


class SilentWriter:
    fatal: Optional[Exception] = None
    outage_s = 0.0
    last_error = ""
    seconds = 0.0

    def resume(self) -> None:
        pass

    def add(self, values: Any, step: int) -> None:
        pass

    def flush(self) -> bool:
        return True

    def make_durable(self) -> None:
        pass

    def close(self, *args: Any) -> bool:
        return True
