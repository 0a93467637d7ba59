"""Runs left RUNNING by a process that died (kill -9, a node crash, an OOM kill): recognised and
closed, so no sweep shows a run as running forever and no analysis takes a dead run's partial
curve for a live one.

A job run carries who trains it (`lmsweep.host`, `lmsweep.pid`) and a heartbeat its metric
writer refreshes every 30 s (trainer/metric_writer.py); a sweep's parent run carries the
sweeper's host and pid. A run is dead when its host is this machine and its process is gone,
or when its heartbeat is older than STALE_AFTER_S (longer than a job waits out a tracking
outage before it stops by itself). Slurm jobs are also judged by their Slurm state
(`python -m sweeper status --reconcile`). Imports neither torch nor mlflow.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any, Optional

from trainer import schema

STALE_AFTER_S = 15 * 60


def process_id() -> str:
    """This process as `pid:start time` (clock ticks after boot): a pid reused by another
    process after a crash does not pass for the original."""
    return f"{os.getpid()}:{_start_time(os.getpid())}"


def _start_time(pid: int) -> str:
    try:  # /proc/<pid>/stat field 22; the command name (field 2) may hold spaces: split after it
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def alive(pid_tag: str) -> bool:
    pid, _, started = pid_tag.partition(":")
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    state = Path(f"/proc/{pid}/stat")
    if state.exists() and state.read_text().rsplit(")", 1)[1].split()[0] == "Z":
        return False  # a zombie: dead, not yet reaped
    return not started or _start_time(int(pid)) in ("", started)


def why_dead(run: Any) -> Optional[str]:
    """Why a RUNNING run's process is certainly gone, or None (alive, or cannot tell)."""
    tags = run.data.tags
    host, pid = tags.get(schema.TAG_HOST), tags.get(schema.TAG_PID)
    if host == socket.gethostname() and pid and not alive(pid):
        return f"its process {pid.split(':')[0]} on {host} is gone"
    beat = tags.get(schema.TAG_HEARTBEAT)
    if beat and time.time() - float(beat) > STALE_AFTER_S:
        return f"no heartbeat for {(time.time() - float(beat)) / 60:.0f} min"
    return None


def close_dead_runs(
    client: Any, experiment_id: str, fingerprint: Optional[str] = None
) -> list[str]:
    """End the experiment's RUNNING runs whose process is dead (only those of `fingerprint`,
    if given) as FAILED, outcome `failed`, with the reason in `lmsweep.ended_by`; a job that
    has a checkpoint still resumes into its run. A sweep's parent is ended the same way unless
    it waits on Slurm jobs (`status --reconcile` ends those). Returns what was done."""
    done = []
    filt = "attributes.status = 'RUNNING'"
    if fingerprint:
        filt += f" and tags.`{schema.TAG_FINGERPRINT}` = '{fingerprint}'"
    for run in client.search_runs([experiment_id], filt, max_results=1000):
        tags = run.data.tags
        if tags.get(schema.TAG_ROLE) == schema.ROLE_SWEEP and tags.get(schema.TAG_SLURM_JOB_IDS):
            continue
        reason = why_dead(run)
        if reason is not None:
            done.append(end_dead(client, run, reason))
    return done


def end_dead(client: Any, run: Any, reason: str, status: str = "FAILED") -> str:
    """Close a RUNNING run its own process can no longer close. A `preempted` or `cancelled`
    outcome stays (a checkpoint resumes it); `running` becomes `failed`."""
    run_id = run.info.run_id
    client.set_tag(run_id, schema.TAG_ENDED_BY, f"lmsweep: {reason}")
    note = ""
    if run.data.tags.get(schema.TAG_OUTCOME) == schema.OUTCOME_RUNNING:
        client.set_tag(run_id, schema.TAG_OUTCOME, schema.OUTCOME_FAILED)
        note = f", outcome {schema.OUTCOME_FAILED}"
    client.set_terminated(run_id, status)
    return f"run {run_id} ({run.info.run_name}) was RUNNING but {reason}: MLflow {status}{note}"
