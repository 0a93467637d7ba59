"""`python -m sweeper status`: where each job of a sweep stands, from Slurm and from MLflow.

    python -m sweeper status [--sweep-id ID] [--tracking-uri URI] [--experiment NAME]
                             [--sweep-dir DIR] [--reconcile]

Slurm side: the job ids recorded at submission (`slurm_jobs.json`, an artifact of the sweep's
parent run and a file in the sweep dir; see sweeper/slurm.py), looked up with squeue/sacct.
MLflow side: the sweep's job runs (tag `lmsweep.sweep_id`, and those a later sweep took in:
`lmsweep.earlier_sweeps`, shown as "run now in sweep <id>"): run status, outcome tag, last
logged step, latest val loss. Runs are joined to jobs by their `lmsweep.slurm_job_id` tag,
else by run name. A sweep run by another launcher (no Slurm record) shows its runs only.

`--reconcile` writes what only Slurm knows back to MLflow: a run whose Slurm job has ended
but which is still RUNNING (scancel, node failure, out of memory: nothing in the job could
close it) is marked KILLED (not a run a later sweep took in: that sweep's status reconciles
it); once every job has ended, a parent run still RUNNING (a
`hydra.launcher.wait=false` sweep) is ended, FINISHED if all its job runs are.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from sweeper import slurm
from trainer import liveness, schema
from trainer.contract import DEFAULT_EXPERIMENT, ConfigError, redact, resolve_uri, scrub
from trainer.tables import counted, format_table


class StatusError(RuntimeError):
    pass


@dataclass
class JobRow:
    index: Optional[int]
    name: str
    slurm_job_id: str = ""
    slurm: Optional[slurm.SlurmState] = None
    run_id: str = ""
    run_status: str = ""  # MLflow: RUNNING, FINISHED, FAILED, KILLED
    outcome: str = ""  # tag lmsweep.outcome
    step: Optional[int] = None
    val_loss: Optional[float] = None
    now_in: str = ""  # the later sweep that took its run in (it may be training it there)


@dataclass
class SweepStatus:
    sweep_id: str
    experiment: str
    experiment_id: str
    parent_run_id: str
    parent_status: str
    record: Optional[slurm.SweepRecord]
    jobs: list[JobRow]

    @property
    def all_ended(self) -> bool:
        """Every job is terminal in Slurm (or, without Slurm, its run has ended)."""
        return all(
            (j.slurm.terminal if j.slurm else j.run_status not in ("", "RUNNING") or j.now_in)
            for j in self.jobs
        )


def _q(value: str) -> str:
    return value.replace("'", "\\'")


def find_parent(client, sweep_id: Optional[str], experiment: str):
    """The sweep's parent run: by id (in `experiment`, else in any experiment), else the latest."""
    role = f"tags.`{schema.TAG_ROLE}` = '{schema.ROLE_SWEEP}'"
    filt = role + (f" and tags.`{schema.TAG_SWEEP_ID}` = '{_q(sweep_id)}'" if sweep_id else "")
    exp = client.get_experiment_by_name(experiment)
    candidates = [[exp.experiment_id]] if exp is not None else []
    if sweep_id:
        candidates.append([e.experiment_id for e in client.search_experiments()])
    for ids in candidates:
        runs = client.search_runs(ids, filt, max_results=1, order_by=["attributes.start_time DESC"])
        if runs:
            return runs[0]
    where = f"experiment '{experiment}'" if not sweep_id else "any experiment"
    what = f"sweep {sweep_id}" if sweep_id else "sweep"
    raise StatusError(f"no {what} found in {where} of the MLflow store {client.tracking_uri}")


def read_artifact(client, parent, name: str) -> Optional[str]:
    try:
        with tempfile.TemporaryDirectory() as d:
            return Path(client.download_artifacts(parent.info.run_id, name, d)).read_text()
    except Exception:
        return None  # not there: not a Slurm sweep, a sweep from before it was logged, ...


def read_record(client, parent) -> Optional[slurm.SweepRecord]:
    text = read_artifact(client, parent, slurm.RECORD_FILE)
    return slurm.SweepRecord.from_json(text) if text else None


def job_runs(client, experiment_id: str, sweep_id: str) -> list:
    """The sweep's job runs, oldest first: those in it, and those a later sweep took in (run
    again, it resumed them or found them FINISHED: `tracking.joined_sweep`)."""
    from trainer.tracking import search_all

    job = f"tags.`{schema.TAG_ROLE}` = '{schema.ROLE_JOB}'"
    runs = {}
    for filt in (
        f"tags.`{schema.TAG_SWEEP_ID}` = '{_q(sweep_id)}' and {job}",
        f"tags.`{schema.TAG_EARLIER_SWEEPS}` LIKE '%{_q(sweep_id)}%' and {job}",
    ):
        runs.update((r.info.run_id, r) for r in search_all(client, experiment_id, filt))
    return sorted(runs.values(), key=lambda r: r.info.start_time)


def last_step(client, run) -> Optional[int]:
    hist = client.get_metric_history(run.info.run_id, schema.TRAIN_LOSS)
    return max((m.step for m in hist), default=None)


def collect(
    client,
    sweep_id: Optional[str] = None,
    experiment: str = DEFAULT_EXPERIMENT,
    record: Optional[slurm.SweepRecord] = None,
) -> SweepStatus:
    """`record`: read from the sweep dir (--sweep-dir); else from the parent run's artifact."""
    parent = find_parent(client, sweep_id, experiment)
    sweep_id = parent.data.tags[schema.TAG_SWEEP_ID]
    exp_id = parent.info.experiment_id
    record = record or read_record(client, parent)
    runs = job_runs(client, exp_id, sweep_id)  # oldest first: later runs win below
    # a run a later sweep took in carries that sweep's Slurm job id: joined by name only
    by_slurm = {
        r.data.tags[schema.TAG_SLURM_JOB_ID]: r
        for r in runs
        if r.data.tags.get(schema.TAG_SLURM_JOB_ID)
        and r.data.tags.get(schema.TAG_SWEEP_ID) == sweep_id
    }
    by_name = {r.info.run_name: r for r in runs}
    planned: list[tuple[JobRow, object]] = []  # each job the sweep launched, and its run
    if record is not None:
        states = slurm.job_states([j.slurm_job_id for j in record.jobs])
        planned = [
            (
                JobRow(
                    j.index,
                    j.run_name or " ".join(j.overrides),
                    j.slurm_job_id,
                    states.get(j.slurm_job_id),
                ),
                by_slurm.get(j.slurm_job_id) or by_name.get(j.run_name),
            )
            for j in record.jobs
        ]
    elif names := read_artifact(client, parent, schema.JOBS_ARTIFACT):
        # a local sweep: its jobs by name, those that never started included
        planned = [(JobRow(i, name), by_name.get(name)) for i, name in enumerate(json.loads(names))]
    rows: list[JobRow] = []
    used: set[str] = set()
    for row, run in planned:
        rows.append(row)
        if run is not None and run.info.run_id not in used:
            used.add(run.info.run_id)
            _fill(client, row, run, sweep_id)
    for r in runs:  # runs no recorded job accounts for
        if r.info.run_id not in used:
            row = JobRow(None, r.info.run_name, r.data.tags.get(schema.TAG_SLURM_JOB_ID, ""))
            _fill(client, row, r, sweep_id)
            rows.append(row)
    exp = client.get_experiment(exp_id)
    return SweepStatus(
        sweep_id, exp.name, exp_id, parent.info.run_id, parent.info.status, record, rows
    )


def _fill(client, row: JobRow, run, sweep_id: str) -> None:
    row.run_id, row.run_status = run.info.run_id, run.info.status
    now_in = run.data.tags.get(schema.TAG_SWEEP_ID, "")
    row.now_in = now_in if now_in != sweep_id else ""
    row.outcome = run.data.tags.get(schema.TAG_OUTCOME, "")
    row.step = last_step(client, run)
    row.val_loss = run.data.metrics.get(schema.VAL_LOSS)


def render(st: SweepStatus) -> str:
    header = (
        "#",
        "run",
        "slurm job",
        "slurm state",
        "elapsed",
        "detail",
        "mlflow",
        "outcome",
        "step",
        "val loss",
    )
    rows = []
    for j in st.jobs:
        s = j.slurm
        loss = "-" if j.val_loss is None or math.isnan(j.val_loss) else f"{j.val_loss:.4f}"
        rows.append(
            (
                "-" if j.index is None else str(j.index),
                j.name,
                j.slurm_job_id or "-",
                s.state if s else ("not in Slurm" if j.slurm_job_id else "-"),
                s.elapsed if s else "-",
                (f"run now in sweep {j.now_in}" if j.now_in else "")
                or (s.detail if s else "")
                or "-",
                # "yet" no more once its Slurm job has ended: it failed before its run existed
                j.run_status or ("no run" if s and s.terminal else "no run yet"),
                j.outcome or "-",
                "-" if j.step is None else str(j.step),
                loss,
            )
        )
    arrays = f", Slurm array job(s) {', '.join(st.record.arrays)}" if st.record else ""
    head = (
        f"sweep {st.sweep_id}: {len(st.jobs)} jobs{arrays}; experiment '{st.experiment}' "
        f"({st.experiment_id}); parent run {st.parent_run_id} {st.parent_status}"
    )
    counts = {}
    for j in st.jobs:
        key = j.slurm.state if j.slurm else (j.run_status or "no run yet")
        counts[key] = counts.get(key, 0) + 1
    foot = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    # A job that fails before its MLflow run exists ends COMPLETED in Slurm (Hydra hands the
    # error back as its result): only its log says why. Point there.
    logs = {r.slurm_job_id: r.stderr for r in st.record.jobs} if st.record else {}
    runless = [j for j in st.jobs if not j.run_status and j.slurm and j.slurm.terminal]
    # a job cancelled while PENDING never ran: no log
    written = [
        logs[j.slurm_job_id] for j in runless if Path(logs.get(j.slurm_job_id) or "").is_file()
    ]
    if written:
        more = len(written) - 1
        others = f" and {counted(more, 'more log')} beside it" if more else ""
        ended = counted(len(runless), "job")
        foot += f"\n{ended} ended without an MLflow run: see {written[0]}{others}"
    return f"{head}\n{format_table(header, rows)}\n{foot}"


def reconcile(client, st: SweepStatus) -> list[str]:
    """See the module docstring. Returns what was changed."""
    done = []
    for j in st.jobs:
        if j.run_status != "RUNNING" or j.now_in:  # a later sweep's to reconcile
            continue
        run = client.get_run(j.run_id)
        if j.slurm and j.slurm.terminal:
            done.append(
                liveness.end_dead(client, run, f"its Slurm job ended ({j.slurm.state})", "KILLED")
            )
        elif not j.slurm and (reason := liveness.why_dead(run)):
            done.append(liveness.end_dead(client, run, reason))
        else:
            continue
        run = client.get_run(j.run_id)
        j.run_status, j.outcome = run.info.status, run.data.tags.get(schema.TAG_OUTCOME, "")
    parent = client.get_run(st.parent_run_id)
    if st.parent_status == "RUNNING" and st.record is None and liveness.why_dead(parent):
        done.append(liveness.end_dead(client, parent, liveness.why_dead(parent)))
        st.parent_status = "FAILED"
    if st.parent_status == "RUNNING" and st.jobs and st.all_ended:
        status = "FINISHED" if all(j.run_status == "FINISHED" for j in st.jobs) else "FAILED"
        client.set_terminated(st.parent_run_id, status)
        done.append(f"parent run {st.parent_run_id}: every job has ended -> {status}")
        st.parent_status = status
    return done


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m sweeper status", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--sweep-id", help="the sweep (default: the latest sweep of the experiment)")
    p.add_argument(
        "--tracking-uri",
        help="MLflow store (default: $MLFLOW_TRACKING_URI, else "
        "sqlite:///<cwd>/mlflow.db, as for launch.py)",
    )
    p.add_argument(
        "--experiment",
        default=DEFAULT_EXPERIMENT,
        help=f"MLflow experiment (default: {DEFAULT_EXPERIMENT})",
    )
    p.add_argument(
        "--sweep-dir",
        type=Path,
        help=f"read the Slurm job ids from <dir>/{slurm.RECORD_FILE} (its sweep id and "
        "tracking URI are then the defaults)",
    )
    p.add_argument(
        "--reconcile",
        action="store_true",
        help="end runs left RUNNING by a process that died (Slurm jobs that ended: "
        "KILLED; dead local processes: FAILED), and the parent run once every "
        "job has ended",
    )
    args = p.parse_args(argv)

    from trainer.tracking import connect, sqlite_path

    record = None
    if args.sweep_dir:
        path = args.sweep_dir / slurm.RECORD_FILE
        if not path.exists():
            print(
                f"error: no {path}: --sweep-dir is the directory of a sweep submitted to Slurm "
                "(multirun/<date>/<time>); for a local sweep pass --sweep-id (its id is in the "
                "sweep's table and in MLflow)",
                file=sys.stderr,
            )
            return 2
        record = slurm.SweepRecord.from_json(path.read_text())
        args.sweep_id = args.sweep_id or record.sweep_id
        args.tracking_uri = args.tracking_uri or record.tracking_uri
    uri = resolve_uri(args.tracking_uri)
    db = sqlite_path(uri)
    if db and not db.exists():
        print(f"error: no MLflow store at {redact(uri)} (pass --tracking-uri)", file=sys.stderr)
        return 2
    from mlflow.exceptions import MlflowException

    try:
        client = connect(uri)  # a store that does not answer: in seconds, naming it
        st = collect(client, args.sweep_id, args.experiment, record)
        changes = reconcile(client, st) if args.reconcile else []
    except (StatusError, ConfigError, MlflowException, OSError) as e:
        print(f"error: {scrub(str(e), uri)}", file=sys.stderr)
        return 1
    print(render(st))
    for c in changes:
        print("reconciled: " + c)
    return 0
