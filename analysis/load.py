"""Read an lmsweep experiment from any MLflow tracking URI into tidy DataFrames.

``runs``: one row per job run (tag lmsweep.role=job) with its flattened config params, outcome,
parameter counts, final tokens / FLOPs / wall-clock, final and best val loss and a ``diverged``
flag. ``histories``: one row per (run, step, metric) with the run's tokens, FLOPs and
wall-clock at that step joined on, so any curve can be put on any of the three axes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow.entities import Run, RunStatus
from mlflow.tracking import MlflowClient
from sqlalchemy.engine import make_url

from analysis.errors import AnalysisError, unknown
from trainer import schema
from trainer.contract import ConfigError, redact
from trainer.tracking import client_for, probe_server, search_all

# --x choices -> runs-table columns
X_AXES = {
    "params": "params_total",
    "non_embedding_params": "params_non_embedding",
    "tokens": schema.TOKENS,
    "flops": schema.FLOPS,
    "wall_clock": schema.WALL_CLOCK,
}
AXES = (schema.TOKENS, schema.FLOPS, schema.WALL_CLOCK)
HISTORY_METRICS = (
    schema.TRAIN_LOSS,
    schema.VAL_LOSS,
    schema.LR,
    schema.GRAD_NORM,
    schema.TOKENS_PER_S,
    schema.BATCH_TOKENS,
)
SUMMARY_METRICS = (
    schema.FINAL_VAL_LOSS,
    schema.BEST_VAL_LOSS,
    schema.UNIGRAM_ENTROPY,
    schema.OPTIMIZER_STATE_BYTES_PER_PARAM,
)
_COUNT_TAGS = {
    "params_total": schema.TAG_PARAMS_TOTAL,
    "params_non_embedding": schema.TAG_PARAMS_NON_EMBEDDING,
    "flops_per_token": schema.TAG_FLOPS_PER_TOKEN,
}
FINISHED = RunStatus.to_string(RunStatus.FINISHED)
# SQL stores keep +-inf as +-float max (mlflow SqlAlchemyStore.sanitize_metric_value)
_FLOAT_MAX = np.finfo(float).max


@dataclass(frozen=True)
class Experiment:
    name: str
    runs: pd.DataFrame  # one row per job run (column "run_id"), default index
    histories: pd.DataFrame  # run_id, step, tokens, flops, wall_clock_s, metric, value
    param_columns: tuple[str, ...]  # the config params among runs' columns
    unfinished: pd.DataFrame = field(default_factory=pd.DataFrame)  # left out: run_name, status
    metrics: tuple[str, ...] = ()  # every metric key a loaded run logged (a CSV's: none)
    sweep_parent: str | None = None  # the parent run of the sweep loaded with --sweep-id

    def parent_run_id(self) -> str:
        """The sweep (parent) run the loaded job runs hang under, for attaching artifacts: the
        chosen sweep's, though a later sweep may have taken some of its runs in."""
        if self.sweep_parent is not None:
            return self.sweep_parent
        parents = (
            self.runs.dropna(subset=["parent_run_id"]).groupby("parent_run_id")["sweep_id"].first()
        )
        if len(parents) == 0:
            raise AnalysisError(
                f"no loaded run has a parent sweep run (tag {schema.PARENT_RUN_TAG})"
            )
        if len(parents) > 1:
            raise AnalysisError(
                f"runs belong to {len(parents)} sweeps; pick one with --sweep-id: "
                + ", ".join(map(str, parents))
            )
        return str(parents.index[0])


def open_store(tracking_uri: str) -> MlflowClient:
    """A client of ``tracking_uri``; a SQLite or file store that does not exist is an error
    (MLflow would create an empty one there), and so is a server that does not answer within
    seconds (MLflow's client retries it for minutes)."""
    from urllib.parse import urlsplit
    from urllib.request import url2pathname

    def check_file_store(path: Path) -> None:
        """A file store (mlruns/) must exist: MLflow would make an empty one there."""
        path = path.expanduser()
        if path.is_dir() and ((path / ".trash").is_dir() or any(path.glob("*/meta.yaml"))):
            return
        what = "a folder with no MLflow experiments in it" if path.is_dir() else "nothing there"
        raise AnalysisError(
            f"no MLflow file store at {path.resolve()} ({what}; --tracking-uri {tracking_uri}): "
            f"pass the mlruns/ folder a sweep wrote, its sqlite:///<launch dir>/mlflow.db, or "
            f"fit a table with --csv FILE"
        )

    shown = redact(tracking_uri)
    if "://" not in tracking_uri and not tracking_uri.startswith(("sqlite:", "file:")):
        # a bare path: MLflow would take it for a file store (mlruns/) and fail at length
        path = Path(tracking_uri).expanduser()
        if path.is_file() or path.suffix in (".db", ".sqlite", ".sqlite3"):
            missing = "" if path.exists() else f" (and there is no file at {path.resolve()})"
            raise AnalysisError(
                f"--tracking-uri {tracking_uri} is a file path, not a URI{missing}: for the "
                f"SQLite store of a sweep pass --tracking-uri sqlite:///{path.resolve()}"
            )
        check_file_store(path)
    elif tracking_uri.startswith("file:"):
        check_file_store(Path(url2pathname(urlsplit(tracking_uri).path)))
    elif urlsplit(tracking_uri).scheme in ("http", "https"):
        try:  # one request, a 5 s timeout, the password redacted
            probe_server(tracking_uri, named=f"--tracking-uri {shown}", then="")
        except ConfigError as err:
            raise AnalysisError(str(err)) from None
    if tracking_uri.startswith("sqlite:"):
        path = make_url(tracking_uri).database
        if path and path != ":memory:" and not Path(path).exists():
            raise AnalysisError(
                f"no MLflow store at {Path(path).resolve()} (--tracking-uri {tracking_uri}): run "
                f"from the launch directory, pass --tracking-uri sqlite:///<launch dir>/mlflow.db, "
                f"or fit a table with --csv FILE"
            )
    return client_for(tracking_uri)  # a server: a few quick retries; no URL printed


def load_experiment(
    tracking_uri: str,
    experiment: str,
    *,
    sweep_id: str | None = None,
    metrics: Sequence[str] | None = HISTORY_METRICS,
    include_unfinished: bool = False,
) -> Experiment:
    """All job runs of ``experiment`` (a name or id), or of one sweep; ``metrics=None`` skips the
    histories (one ``get_metric_history`` call per run and metric). Runs whose MLflow status is
    not FINISHED (RUNNING after a dead process, FAILED, KILLED) hold partial curves, not results:
    they are left out (listed in ``unfinished``) unless ``include_unfinished``."""
    client = open_store(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None and experiment.isdigit():
        exp = client.get_experiment(experiment)
    if exp is None:
        raise unknown("experiment", experiment, [e.name for e in client.search_experiments()])
    runs = search_all(client, exp.experiment_id, f"tags.`{schema.TAG_ROLE}` = '{schema.ROLE_JOB}'")
    if not runs:
        raise AnalysisError(
            f"experiment {exp.name!r} has no job runs (tag {schema.TAG_ROLE}={schema.ROLE_JOB})"
        )
    parent = None
    if sweep_id is not None:
        sweeps = set().union(*map(sweeps_of, runs))
        runs = [r for r in runs if sweep_id in sweeps_of(r)]
        if not runs:
            raise unknown(f"sweep id in experiment {exp.name!r}:", sweep_id, sweeps)
        role = f"tags.`{schema.TAG_ROLE}` = '{schema.ROLE_SWEEP}'"
        parents = search_all(
            client, exp.experiment_id, f"{role} and tags.`{schema.TAG_SWEEP_ID}` = '{sweep_id}'"
        )
        parent = parents[0].info.run_id if parents else None
    unfinished = pd.DataFrame(
        [
            {"run_name": r.info.run_name, "status": r.info.status}
            for r in runs
            if r.info.status != FINISHED
        ],
        columns=["run_name", "status"],
    )
    if not include_unfinished:
        runs = [r for r in runs if r.info.status == FINISHED]
        if not runs:
            raise AnalysisError(
                f"none of the {len(unfinished)} job runs is FINISHED "
                f"({_count(unfinished)}); --include-unfinished uses them as "
                f"they are"
            )
    table = pd.DataFrame([_run_row(r) for r in runs])
    param_columns = tuple(sorted({k for r in runs for k in r.data.params}))
    for col in param_columns:
        table[col] = _typed(table[col])
    histories = _histories(client, runs, metrics) if metrics is not None else empty_histories()
    return Experiment(
        name=exp.name,
        runs=table,
        histories=histories,
        param_columns=param_columns,
        unfinished=unfinished if not include_unfinished else unfinished.iloc[:0],
        metrics=tuple(sorted({k for r in runs for k in r.data.metrics})),
        sweep_parent=parent,
    )


def sweeps_of(run: Run) -> set[str]:
    """The sweeps a job run is in: the one it is in now and those it was in before, when a
    sweep run again took it in (trainer/tracking.py: joined_sweep)."""
    tags = run.data.tags
    earlier = tags.get(schema.TAG_EARLIER_SWEEPS, "").split(",")
    return {s for s in (tags.get(schema.TAG_SWEEP_ID), *earlier) if s}


def _count(unfinished: pd.DataFrame) -> str:
    counts = sorted(unfinished["status"].value_counts().items())
    return ", ".join(f"{n} {status}" for status, n in counts)


def describe_unfinished(unfinished: pd.DataFrame) -> str | None:
    """The console line for runs left out as unfinished, or None."""
    if unfinished.empty:
        return None
    names = ", ".join(f"{r.run_name} ({r.status})" for r in unfinished.itertuples())
    return (
        f"left out {len(unfinished)} runs whose MLflow status is not FINISHED "
        f"({_count(unfinished)}; --include-unfinished uses their partial curves): {names}"
    )


def _metric(run: Run, key: str) -> float:
    value = run.data.metrics.get(key, np.nan)
    return float(np.sign(value) * np.inf) if abs(value) >= _FLOAT_MAX else float(value)


def _run_row(run: Run) -> dict[str, object]:
    tags = run.data.tags
    row: dict[str, object] = {
        "run_id": run.info.run_id,
        "run_name": run.info.run_name,
        "sweep_id": tags.get(schema.TAG_SWEEP_ID),
        "parent_run_id": tags.get(schema.PARENT_RUN_TAG),
        "status": run.info.status,
        "outcome": tags.get(schema.TAG_OUTCOME),
        "overrides": tags.get(schema.TAG_OVERRIDES),
        "fingerprint": tags.get(schema.TAG_FINGERPRINT),
    }
    row.update({col: float(tags.get(tag, np.nan)) for col, tag in _COUNT_TAGS.items()})
    row.update({key: _metric(run, key) for key in AXES + SUMMARY_METRICS})
    # a run still running (or killed) has no summary metrics: fall back to its last val_loss
    last_val = _metric(run, schema.VAL_LOSS)
    if np.isnan(row[schema.FINAL_VAL_LOSS]):
        row[schema.FINAL_VAL_LOSS] = last_val
    logged_nonfinite = any(
        k in run.data.metrics and not np.isfinite(_metric(run, k))
        for k in (schema.FINAL_VAL_LOSS, schema.VAL_LOSS, schema.TRAIN_LOSS)
    )
    row["diverged"] = row["outcome"] == schema.OUTCOME_DIVERGED or logged_nonfinite
    row.update(run.data.params)
    return row


def _typed(column: pd.Series) -> pd.Series:
    """Params arrive as strings: make a column numeric when every present value parses."""
    numeric = pd.to_numeric(column, errors="coerce")
    return numeric if numeric.notna().sum() == column.notna().sum() else column


def _histories(client: MlflowClient, runs: list[Run], metrics: Sequence[str]) -> pd.DataFrame:
    frames = []
    for run in runs:
        run_id = run.info.run_id
        axes = pd.DataFrame(
            {key: _history(client, run_id, key) for key in AXES if key in run.data.metrics}
        )
        for key in metrics:
            if key in run.data.metrics:
                values = (
                    _history(client, run_id, key).rename("value").rename_axis("step").reset_index()
                )
                frames.append(
                    values.assign(run_id=run_id, metric=key).merge(
                        axes, left_on="step", right_index=True, how="left"
                    )
                )
    if not frames:
        return empty_histories()
    return pd.concat(frames, ignore_index=True).reindex(columns=empty_histories().columns)


def _history(client: MlflowClient, run_id: str, key: str) -> pd.Series:
    """One metric's values by step (the latest value of a step that was logged twice)."""
    points = sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))
    series = pd.Series({m.step: m.value for m in points}, dtype=float)
    return series.where(series.abs() < _FLOAT_MAX, np.sign(series) * np.inf)


def empty_histories() -> pd.DataFrame:
    return pd.DataFrame(columns=["run_id", "step", *AXES, "metric", "value"])
