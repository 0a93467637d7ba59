"""MLflow for lmsweep: connecting (checked in seconds, a SQLite store created once), runs (every
param and tag value a string, MLflow's standard context tags), and their lifecycle.

Metric histories are written off the training loop by `trainer/metric_writer.py`.
"""

from __future__ import annotations

import getpass
import logging
import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, TypeVar
from urllib.parse import urlsplit, urlunsplit

from filelock import FileLock
from hydra.errors import CompactHydraException

from trainer import liveness, schema
from trainer.contract import (
    MAX_PARAM_LENGTH,
    MAX_PARAMS_PER_BATCH,
    MAX_TAG_LENGTH,
    MAX_TAGS_PER_BATCH,
    PROJECT_ROOT,
    ConfigError,
    redact,
    scrub,
)

log = logging.getLogger("lmsweep")
T = TypeVar("T")

# Schemes MLflow's tracking stores accept (mlflow/store/tracking/__init__.py + databricks).
SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql", "file", "databricks")
DATABASE_SCHEMES = ("postgresql", "mysql", "mssql")  # SQLAlchemy's, each with its own driver
PROBE_TIMEOUT_S = 5
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"


# --- connecting -------------------------------------------------------------------------------
def _bad_uri(uri: str, why: str) -> ConfigError:
    return ConfigError(
        f"tracking.uri={redact(uri)!r} is invalid: {why}. Valid forms: "
        "sqlite:///path/to/mlflow.db, http(s)://host:port (an MLflow server), "
        "postgresql://..., mysql://... (or set $MLFLOW_TRACKING_URI)"
    )


def sqlite_path(uri: str) -> Optional[Path]:
    """The database file of a sqlite:/// URI (sqlite:////abs/path or sqlite:///rel/path), as
    MLflow opens it: literally, a "~" included."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///") :])


def check_uri(uri: str) -> None:
    """Refuse what cannot be a tracking store, before any connection is attempted."""
    scheme = urlsplit(uri).scheme.split("+")[0]
    if not scheme or len(scheme) == 1:  # "notaurl", or a Windows drive letter
        raise _bad_uri(uri, "not a URI (no scheme)")
    if scheme not in SCHEMES:
        raise _bad_uri(uri, f"unknown scheme {scheme!r}; MLflow stores: {', '.join(SCHEMES)}")
    db = sqlite_path(uri)
    if scheme == "sqlite" and (db is None or not db.name):
        raise _bad_uri(uri, "a SQLite store is sqlite:/// followed by a file path")
    if db is not None and str(db).startswith("~"):
        # SQLAlchemy does not expand it: the store would land in a folder named "~" here
        raise _bad_uri(uri, f"'~' is not expanded there; write sqlite:///{db.expanduser()}")
    if db is not None:
        parent = db.resolve().parent
        blocker = next((p for p in [parent, *parent.parents] if p.exists()), None)
        if blocker is not None and not blocker.is_dir():
            raise _bad_uri(uri, f"{blocker} is a file, not a directory")
        if blocker is not None and not os.access(blocker, os.W_OK):
            raise _bad_uri(uri, f"{blocker} is not writable")
        if db.exists() and not db.is_file():
            raise _bad_uri(uri, f"{db} is not a file")


def _http_auth() -> Any:
    user, password = (
        os.environ.get("MLFLOW_TRACKING_USERNAME"),
        os.environ.get("MLFLOW_TRACKING_PASSWORD"),
    )
    return (user, password) if user and password else None


def probe_server(uri: str, named: str = "", then: str = " Nothing was launched.") -> None:
    """One request with a short timeout: MLflow's own client retries an unreachable server for
    minutes (MLFLOW_HTTP_REQUEST_MAX_RETRIES with backoff) before it says anything. A failure
    is a ConfigError that begins with `named` (default: tracking.uri='<uri, redacted>') and
    ends with `then`."""
    import requests

    named = named or f"tracking.uri={redact(uri)!r}"

    parts = urlsplit(uri)
    auth = _http_auth()
    if parts.username is not None:  # requests sends URL credentials as basic auth
        auth = (parts.username, parts.password or "")
        parts = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1])
    url = urlunsplit(parts).rstrip("/") + "/api/2.0/mlflow/experiments/search"
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    # the TLS settings MLflow's client honours (mlflow/environment_variables.py)
    insecure = os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() in ("true", "1")
    verify = False if insecure else os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or True
    try:
        r = requests.get(
            url,
            params={"max_results": 1},
            auth=auth,
            headers=headers,
            timeout=PROBE_TIMEOUT_S,
            verify=verify,
        )
    except requests.RequestException as e:
        raise ConfigError(
            f"{named}: no MLflow server answers there ({type(e).__name__}); start it, or fix "
            f"the URI.{then}"
        ) from None
    if r.status_code in (401, 403):
        raise ConfigError(
            f"{named}: the server refused the credentials (HTTP {r.status_code}); set "
            f"MLFLOW_TRACKING_USERNAME/PASSWORD or put them in the URI.{then}"
        )
    if r.status_code != 200:
        raise ConfigError(
            f"{named}: not an MLflow tracking server (HTTP {r.status_code} from "
            f"{redact(url)}).{then}"
        )


def client_for(uri: str) -> Any:
    """An MlflowClient whose HTTP calls give up after a few quick retries (the metric writer
    retries on its own schedule and keeps the points meanwhile), and that never prints URLs:
    a URI's credentials would land in consoles and Slurm logs."""
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


def is_permanent(error: BaseException) -> bool:
    """A refusal that retrying cannot fix (the run was deleted, a value is invalid), as opposed
    to an outage (connection refused, timeout, 5xx); a bug is not retried as an outage either."""
    if isinstance(error, (TypeError, AttributeError, NameError)):
        return True
    code = getattr(error, "error_code", "")
    return code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "INVALID_STATE")


# MLflow's codes for a store that is down, restarting or overloaded: HTTP 5xx and 429, and
# INTERNAL_ERROR, which a refused connection or a timeout raise too (mlflow/exceptions.py).
OUTAGE_CODES = frozenset(
    {
        "INTERNAL_ERROR",
        "TEMPORARILY_UNAVAILABLE",
        "DEADLINE_EXCEEDED",
        "REQUEST_LIMIT_EXCEEDED",
        "RESOURCE_EXHAUSTED",
    }
)


def is_outage(error: BaseException) -> bool:
    """Whether the store did not answer, rather than answered no (already exists, denied, not
    found, bad request: waiting would only delay that answer)."""
    status = getattr(getattr(error, "response", None), "status_code", None)
    if status is not None:  # an HTTP error of the artifact store (requests)
        return status >= 500 or status == 429
    return isinstance(error, OSError) or getattr(error, "error_code", "") in OUTAGE_CODES


def retrying(call: Callable[[], T], limit_s: float, what: str, uri: str = "") -> T:
    """`call()`, retried through an outage of up to `limit_s` seconds (a store restarting
    mid-sweep), then the last error; `uri`'s password is kept out of the warnings."""
    return Patience(limit_s, uri=uri).run(call, what)


class Patience:
    """An outage allowance: calls run through it are retried while `transient(error)` until
    they have waited `limit_s` seconds in all, then the last error is raised. Shared by
    several calls, it bounds their waiting together (a job's start-up: `Patient`); time
    between failures (a model built, data prepared) does not count. `interrupted()` true
    (a stop signal) ends a wait at once, with the last error."""

    def __init__(
        self,
        limit_s: float,
        transient: Callable[[BaseException], bool] = lambda e: not is_permanent(e),
        uri: str = "",
    ):
        self.limit_s, self.transient, self.uri = limit_s, transient, uri
        self.waited = 0.0
        self.interrupted: Callable[[], bool] = lambda: False

    def run(self, call: Callable[[], T], what: str) -> T:
        pause, failed_at = 1.0, None
        try:
            while True:
                try:
                    return call()
                except Exception as e:
                    now = time.monotonic()
                    failed_at = failed_at or now
                    if (
                        not self.transient(e)
                        or self.waited + (now - failed_at) + pause > self.limit_s
                        or not self._pause(pause, what, e, quote=pause == 1.0)
                    ):
                        raise
                    pause = min(2 * pause, 30.0)
        finally:
            if failed_at is not None:
                self.waited += time.monotonic() - failed_at

    def _pause(self, seconds: float, what: str, error: BaseException, quote: bool) -> bool:
        """Wait before the next try; False when interrupted. The first wait quotes the error: a
        store failing for good (HTTP 500 to every call: a broken artifact root) is waited for
        like one restarting, and the user should see which at once, not outage_limit_s later."""
        why = type(error).__name__
        if quote:
            why += f": {scrub(str(error), self.uri)[:300]}"
        log.warning(
            f"{what}: the tracking store does not answer ({why}); retrying in {seconds:.0f} s"
        )
        until = time.monotonic() + seconds
        while not self.interrupted():
            left = until - time.monotonic()
            if left <= 0:
                return True
            time.sleep(min(left, 0.2))  # a signal's handler only records it: poll
        return False


class TrackingOutage(CompactHydraException, RuntimeError):
    """The tracking store stayed unreachable past tracking.outage_limit_s; Hydra prints it as
    its message alone."""


class Patient:
    """A client whose calls ride out an outage of up to `limit_s` in all while `what` (a job, a
    sweep) starts: a job's finished check, its checkpoint's run, the new run's params and
    config; a sweep's experiment, parent run and plan. Without it a store restarting then
    failed them with a traceback, though connecting waits for it and the metrics outlast it;
    and a multi-rank job's other ranks, waiting for rank 0 in a collective, wait at most that
    long (the process group's timeout allows 2 x outage_limit_s + 60 s). Only an outage is
    waited for (`is_outage`): any other error is the caller's at once, as an answer. Past the
    allowance, or on a stop signal (`stop_waiting_when`): a TrackingOutage naming the URI.
    `settle()` once started: each call is then tried once, its failure the caller's (the
    metric writer keeps its points, a run's close retries)."""

    def __init__(self, client: Any, limit_s: float, uri: str, what: str):
        self.client, self.uri, self.what = client, uri, what
        self.patience: Optional[Patience] = Patience(limit_s, transient=is_outage, uri=uri)

    def stop_waiting_when(self, interrupted: Callable[[], bool]) -> None:
        if self.patience is not None:
            self.patience.interrupted = interrupted

    def settle(self) -> None:
        self.patience = None

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.client, name)
        patience = self.patience
        if patience is None or not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return patience.run(lambda: attr(*args, **kwargs), f"starting {self.what} ({name})")
            except Exception as e:
                if not is_outage(e):
                    raise
                why = (
                    "waiting stopped by a signal"
                    if patience.interrupted()
                    else f"no answer for {patience.waited:.0f} s in all"
                )
                raise TrackingOutage(
                    f"tracking.uri={redact(self.uri)!r} stopped answering as {self.what} started "
                    f"({why}; {type(e).__name__}: {scrub(str(e), self.uri)[:300]}); nothing "
                    "trained is lost. Run the same command again once the store is back."
                ) from None

        return call


def connect(uri: str, wait_s: float = 0.0, cache_dir: Optional[Path] = None) -> Any:
    """A client for a store that exists and answers, or a ConfigError naming tracking.uri within
    seconds. `wait_s`: how long a store that does not answer is waited for (a job starting
    while the server restarts); the sweeper's launch-time check waits for none.
    A SQLite store is created under a file lock (two sweeps initialising one fresh file at once
    would otherwise race in alembic), as a copy of `empty_store(cache_dir)` when given."""
    check_uri(uri)
    if urlsplit(uri).scheme in ("http", "https"):
        retrying(lambda: probe_server(uri), wait_s, f"connecting to {redact(uri)}", uri)
    db = sqlite_path(uri)
    if db is None:
        return _answering(uri)
    db.resolve().parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(db.resolve()) + ".lock"):
        if cache_dir is not None and (not db.exists() or db.stat().st_size == 0):
            shutil.copyfile(empty_store(cache_dir), db)
        return _answering(uri)


def _answering(uri: str) -> Any:
    """A client whose first call has answered, or one line saying why not: a database URI
    whose driver is not installed, a SQLite file that is not MLflow's, a file store MLflow 3
    refuses."""
    try:
        client = client_for(uri)
        client.search_experiments(max_results=1)
    except ModuleNotFoundError as e:
        if urlsplit(uri).scheme.split("+")[0] not in DATABASE_SCHEMES:
            raise
        raise _bad_uri(
            uri,
            f"its database driver is not installed (no module {e.name!r}: pip install it, or "
            "log through an MLflow server, tracking.uri=http://host:5000)",
        ) from None
    except Exception as e:
        raise ConfigError(
            f"tracking.uri={redact(uri)!r}: the store does not answer "
            f"({type(e).__name__}: {scrub(str(e), uri)[:300]})"
        ) from None
    return client


def empty_store(cache_dir: Path) -> Path:
    """MLflow's SQLite tables at the head of its migrations, without experiments, made once per
    MLflow version in `cache_dir`. Creating them runs every alembic migration (1.3 s on 2 cores,
    the largest part of a fresh sweep's MLflow set-up); a copy takes milliseconds, and MLflow
    adds its Default experiment, with its own artifact root, when it first opens the copy."""
    import mlflow
    import sqlalchemy

    # The one function that makes MLflow's tables (what SqlAlchemyStore runs on an empty
    # database); private in mlflow==3.17.2 (constraints.txt), with no public equivalent.
    from mlflow.store.db.utils import _initialize_tables

    path = cache_dir / "mlflow" / f"empty-store-{mlflow.__version__}.db"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        engine = sqlalchemy.create_engine(f"sqlite:///{tmp}")
        try:
            _initialize_tables(engine)
            os.replace(tmp, path)  # whole or absent: concurrent sweeps may race to make it
        finally:
            engine.dispose()
            tmp.unlink(missing_ok=True)  # left only by a failed creation
    return path


def live_experiment(client: Any, name: str) -> Any:
    """The experiment named `name`, None if there is none, or one line if it was deleted (its
    name stays taken in MLflow's trash, and logging to it fails)."""
    exp = client.get_experiment_by_name(name)
    if exp is not None and exp.lifecycle_stage == "deleted":
        raise ConfigError(
            f"tracking.experiment={name!r} is invalid: it was deleted (it is in the store's "
            f"trash, id {exp.experiment_id}). Restore it (mlflow experiments restore "
            f"--experiment-id {exp.experiment_id}), or choose another name"
        )
    return exp


def ensure_experiment(client: Any, name: str) -> str:
    """Get or create by name, once, before any job starts: concurrent `set_experiment` calls
    race, and the losers' runs land in "Default". A concurrent sweep may create it first.
    Its kind is "Machine learning" (`mlflow.experimentKind`, which the UI's experiment page
    lets one change), not GenAI; artifacts go where MLflow puts them (see the README)."""
    from mlflow.exceptions import MlflowException

    exp = live_experiment(client, name)
    if exp is not None:
        return exp.experiment_id
    try:
        return client.create_experiment(name, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
    except MlflowException:
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def finished_runs(
    client: Any, experiment_name: str, fingerprint: Optional[str] = None
) -> dict[str, Any]:
    """The experiment's FINISHED job runs by fingerprint, the latest of each (only
    `fingerprint`'s, if given)."""
    return _job_runs(client, experiment_name, "FINISHED", fingerprint)


def running_runs(client: Any, experiment_name: str) -> dict[str, Any]:
    """The experiment's job runs a live process trains now (RUNNING and not dead by
    trainer/liveness.py's tests; the plan also probes the job's claim), by fingerprint."""
    runs = _job_runs(client, experiment_name, "RUNNING")
    return {key: run for key, run in runs.items() if not liveness.why_dead(run)}


def _job_runs(
    client: Any, experiment_name: str, status: str, fingerprint: Optional[str] = None
) -> dict[str, Any]:
    exp = client.get_experiment_by_name(experiment_name)
    if exp is None:
        return {}
    filt = f"attributes.status = '{status}' and tags.`{schema.TAG_ROLE}` = '{schema.ROLE_JOB}'"
    if fingerprint:
        filt += f" and tags.`{schema.TAG_FINGERPRINT}` = '{fingerprint}'"
    runs = sorted(search_all(client, exp.experiment_id, filt), key=lambda r: r.info.start_time)
    return {r.data.tags.get(schema.TAG_FINGERPRINT): r for r in runs}


def joined_sweep(tags: Mapping[str, str], sweep_id: str, parent_run_id: str) -> dict[str, str]:
    """The tags that move a run into sweep `sweep_id`: a sweep run again (after an interrupt,
    or with new cells) takes in the runs of its cells it resumes and those it finds FINISHED,
    so its table, status, link and analysis show every cell. The sweeps the run was in before
    are kept (`lmsweep.earlier_sweeps`), where status and analysis of those still find it."""
    before = tags.get(schema.TAG_SWEEP_ID, "")
    if before == sweep_id:
        return {}
    earlier = [*tags.get(schema.TAG_EARLIER_SWEEPS, "").split(","), before]
    return {
        schema.TAG_SWEEP_ID: sweep_id,
        schema.PARENT_RUN_TAG: parent_run_id,
        schema.TAG_EARLIER_SWEEPS: ",".join(dict.fromkeys(s for s in earlier if s)),
    }


def search_all(client: Any, experiment_id: str, filter_string: str) -> list:
    runs, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id], filter_string, max_results=1000, page_token=token
        )
        runs += list(page)
        token = page.token
        if not token:
            return runs


# --- what every run carries -------------------------------------------------------------------
def git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def git_commit() -> str:
    head = git("rev-parse", "HEAD") or "unknown"
    return head + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def context_tags(source: str) -> dict[str, str]:
    """MLflow's standard context tags (mlflow/utils/mlflow_tags.py), which the UI shows as
    Source, User and the run's git commit; MlflowClient.create_run sets none of them."""
    commit = git_commit()
    tags = {
        "mlflow.source.name": source,
        "mlflow.source.type": "LOCAL",
        "mlflow.user": getpass.getuser(),
        schema.TAG_GIT_COMMIT: commit,
    }
    if commit != "unknown":
        tags["mlflow.source.git.commit"] = commit.removesuffix("-dirty")
        remote = git("config", "--get", "remote.origin.url")
        tags["mlflow.source.git.repoURL"] = redact(remote) if remote else str(PROJECT_ROOT)
    return tags


# The MLflow UI's run colours (its bundle's palette), the most distinct first.
RUN_COLORS = (
    "#2272b4",
    "#de7921",
    "#277c43",
    "#c83243",
    "#8a63bf",
    "#a6630c",
    "#b45091",
    "#5f7281",
    "#facb66",
    "#04867d",
    "#1f272d",
    "#e65b77",
    "#8acaff",
    "#115026",
    "#93320b",
    "#434a93",
    "#8ddda8",
    "#9e102c",
    "#f2be88",
    "#137dae",
    "#445461",
)


def run_color(run_names: Mapping[str, str], name: str) -> dict[str, str]:
    """`mlflow.runColor`, which the UI draws a run in: each job of a sweep its own colour, by
    job order. Without it the UI hashes run ids onto its palette, and jobs often share one."""
    order = [n for _, n in sorted(run_names.items(), key=lambda kv: int(kv[0]))]
    if name not in order:
        return {}
    return {"mlflow.runColor": RUN_COLORS[order.index(name) % len(RUN_COLORS)]}


def process_tags() -> dict[str, str]:
    """Who is running the run now: a later launch or `status --reconcile` tells a run whose
    process died (kill -9, node crash) from one that is alive (trainer/liveness.py)."""
    env = os.environ
    tags = {
        schema.TAG_HOST: socket.gethostname(),
        schema.TAG_PID: liveness.process_id(),
        schema.TAG_HEARTBEAT: str(int(time.time())),
    }
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        # The id sacct and submitit use, so `python -m sweeper status` joins Slurm and MLflow.
        tags[schema.TAG_SLURM_JOB_ID] = f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    elif env.get("SLURM_JOB_ID"):
        tags[schema.TAG_SLURM_JOB_ID] = env["SLURM_JOB_ID"]
    return tags


def as_str(value: Any, limit: int) -> str:
    """The one place values become MLflow strings: the REST store rejects anything else
    ('bad argument type for built-in operation'), where SQLite would take an int."""
    return str(value)[:limit]


# --- a run ------------------------------------------------------------------------------------
class RunLogger:
    """Synchronous params, tags, text and files of one run; its metrics go through a
    MetricWriter (trainer/metric_writer.py)."""

    def __init__(self, client: Any, run_id: str, experiment_id: str = ""):
        self.client, self.run_id, self.experiment_id = client, run_id, experiment_id
        self.status = "RUNNING"

    @classmethod
    def start(
        cls,
        client: Any,
        experiment_id: str,
        run_name: str,
        tags: Mapping[str, Any],
        parent_run_id: str = "",
    ) -> "RunLogger":
        # MLflow's create_run has no idempotency key: a create retried after its answer was
        # lost (a timeout, a 502 from a proxy; MLflow's client retries those too) leaves a
        # twin run. A token tag finds them; they hold nothing, and are deleted.
        token = uuid.uuid4().hex
        all_tags = {
            **tags,
            **({schema.PARENT_RUN_TAG: parent_run_id} if parent_run_id else {}),
            schema.TAG_CREATION: token,
        }
        run = client.create_run(
            experiment_id,
            run_name=run_name,
            tags={k: as_str(v, MAX_TAG_LENGTH) for k, v in all_tags.items()},
        )
        run_id = run.info.run_id
        same = f"tags.`{schema.TAG_CREATION}` = '{token}'"
        for twin in client.search_runs([experiment_id], same):
            if twin.info.run_id != run_id:
                client.delete_run(twin.info.run_id)
        return cls(client, run_id, experiment_id)

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, as_str(v, MAX_PARAM_LENGTH)) for k, v in sorted(params.items())]
        for i in range(0, len(items), MAX_PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=items[i : i + MAX_PARAMS_PER_BATCH])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, as_str(v, MAX_TAG_LENGTH)) for k, v in tags.items()]
        for i in range(0, len(items), MAX_TAGS_PER_BATCH):
            self.client.log_batch(self.run_id, tags=items[i : i + MAX_TAGS_PER_BATCH])

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def log_file(self, path: Path, artifact_dir: Optional[str] = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_dir)

    def describe(self, command: str, summary: str) -> None:
        """The run's description (MLflow's `mlflow.note.content` tag, shown on the run page)."""
        self.set_tags({schema.NOTE_TAG: f"```\n{command}\n\n{summary}\n```"})

    def end(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status)
        self.status = status


def start_sweep_run(
    client: Any, experiment_id: str, sweep_id: str, command: str, jobs: int
) -> RunLogger:
    """The parent run of a sweep: what was run, by whom, from which commit."""
    return RunLogger.start(
        client,
        experiment_id,
        f"sweep {sweep_id}",
        tags={
            schema.TAG_ROLE: schema.ROLE_SWEEP,
            schema.TAG_SWEEP_ID: sweep_id,
            schema.TAG_COMMAND: command,
            schema.TAG_JOBS: jobs,
            **context_tags(command),
            schema.TAG_HOST: socket.gethostname(),
            schema.TAG_PID: liveness.process_id(),
        },
    )
