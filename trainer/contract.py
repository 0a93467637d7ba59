"""The contract between the sweeper (and `launch.py`, `analysis`, `python -m sweeper`) and the
jobs: what a job is told by the sweep that launched it, where its checkpoints live, which MLflow
store it writes to, and what it hands back.

Imports neither torch nor mlflow (only the light `hydra.errors`), so every side can use it
cheaply: the sweeper's plugin scan, `python -m sweeper status` and the analysis CLI stay fast.

The sweep context travels as one environment variable holding the path of a JSON file in the
sweep directory (not as overrides: those end up in run names, Hydra's `#0 : ...` lines and
`.hydra/overrides.yaml`). Secrets never go into that file or any other: a tracking URI's
password stays in the process environment (`$MLFLOW_TRACKING_URI`) and everything written or
printed carries `redact(uri)`.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from hydra.errors import CompactHydraException

DEFAULT_EXPERIMENT = "lmsweep"
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"  # MLflow's own variable
SWEEP_CONTEXT_ENV = "LMSWEEP_SWEEP_CONTEXT"  # path of the sweep's context.json
CONTEXT_FILE = "lmsweep_context.json"  # in the sweep dir
REDACTED = "***"

# MLflow's limits (mlflow/utils/validation.py): log_batch takes at most 1000 metrics, 100
# params or 100 tags per call; a param value at most 6000 characters, a tag value 8000.
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_PER_BATCH = 100
MAX_TAGS_PER_BATCH = 100
MAX_PARAM_LENGTH = 6000
MAX_TAG_LENGTH = 8000


# --- where runs are recorded ------------------------------------------------------------------
def default_uri() -> str:
    """A SQLite file in the launch directory (its artifacts in ./mlruns beside it)."""
    return f"sqlite:///{Path.cwd().resolve() / 'mlflow.db'}"


def _password_span(uri: str) -> Optional[tuple[int, int]]:
    """Where the password of `uri`'s user info lies, None without one. Its authority runs to
    the first "/" after "://" (and, for http(s), "?" or "#"), its user info to the last "@"
    in that: a password with an unencoded "#", "?" (SQLAlchemy takes both) or "@" is hidden
    whole, where urlsplit would take part of it for the host, or none of it."""
    m = re.match(r"([A-Za-z][\w+.-]*)://([^/]*)@", uri)
    if m is None:
        return None
    userinfo = m.group(2)
    if m.group(1) in ("http", "https"):
        userinfo = re.split(r"[?#]", userinfo, maxsplit=1)[0]
        if len(userinfo) != len(m.group(2)):
            return None  # the "@" is in a query or fragment: no user info
    if ":" not in userinfo or "[" in userinfo:  # no password; an IPv6 host
        return None
    start = m.start(2) + userinfo.index(":") + 1
    return (start, m.end(2)) if m.end(2) > start else None


def password_of(uri: str) -> Optional[str]:
    span = _password_span(uri)
    return None if span is None or uri[span[0] : span[1]] == REDACTED else uri[slice(*span)]


def redact(uri: str) -> str:
    """The URI with its password (if any) replaced by ***: what may be printed or written."""
    if password_of(uri) is None:
        return uri
    start, end = _password_span(uri)  # type: ignore[misc]
    return uri[:start] + REDACTED + uri[end:]


def has_secret(uri: str) -> bool:
    return redact(uri) != uri


def scrub(text: str, uri: str = "") -> str:
    """`text` (an error from MLflow or a database driver, say) without the password of the
    tracking URI in the environment, nor of `uri` (one given on a command line)."""
    for source in (os.environ.get(TRACKING_URI_ENV, ""), uri):
        password = password_of(source)
        if password:
            text = text.replace(password, REDACTED)
    return text


def resolve_uri(uri: Optional[str]) -> str:
    """The URI to connect to: `tracking.uri` > $MLFLOW_TRACKING_URI > the default SQLite file.
    A redacted `tracking.uri` (http://user:***@host) is the one in the environment whose
    password it hides: launch.py moved the password there (`move_secrets`)."""
    env = os.environ.get(TRACKING_URI_ENV) or None
    if uri and env and uri != env and redact(env) == uri:
        return env
    return uri or env or default_uri()


def move_secrets(argv: list[str]) -> list[str]:
    """Command-line arguments with a password in a `tracking.uri=` override replaced by ***;
    the full URI goes to $MLFLOW_TRACKING_URI of this process (and so of the jobs it starts),
    so Hydra's own files (multirun.yaml, .hydra/overrides.yaml), run params, logs and run
    names never hold it. The value is read as Hydra reads it (quoted, or a sweep list, which
    is refused later: every password in it is hidden, none moved)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    out = []
    for arg in argv:
        m = re.fullmatch(r"[+~]{0,2}tracking\.uri=(.*)", arg)
        if m:
            try:
                override = parser.parse_override(arg)
                value = override.value()
                values = list(value.list) if override.is_sweep_override() else [value]
            except Exception:  # Hydra will refuse it and quote it: hide what looks secret
                values = [m.group(1).strip("'\"")]
            uris = [str(v) for v in values]
            secrets = [p for p in map(password_of, uris) if p]
            if len(uris) == 1 and secrets:
                os.environ[TRACKING_URI_ENV] = uris[0]
            for uri, secret in zip(uris, map(password_of, uris)):
                if secret:  # the URI whole where Hydra kept it as given, else the password
                    hidden = arg.replace(uri, redact(uri), 1)
                    arg = hidden if hidden != arg else arg.replace(secret, REDACTED)
        out.append(arg)
    return out


# --- what the sweep tells each job ------------------------------------------------------------
@dataclass
class SweepContext:
    """Written by the lmsweep sweeper before it launches jobs; read by each job (multirun)."""

    id: str
    experiment_id: str
    parent_run_id: str
    tracking_uri: str  # redacted; resolve_uri() finds the secret
    run_names: dict[str, str] = field(default_factory=dict)  # Hydra job num -> run name
    rerun: bool = False  # run jobs even when a FINISHED run has their fingerprint

    def run_name(self, job_num: int) -> str:
        return self.run_names.get(str(job_num), "")

    def save(self, sweep_dir: Path) -> Path:
        """Write the context file and point this process's environment at it (jobs launched
        in-process, as subprocesses or through sbatch inherit the variable)."""
        sweep_dir.mkdir(parents=True, exist_ok=True)
        path = sweep_dir / CONTEXT_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        tmp.replace(path)
        os.environ[SWEEP_CONTEXT_ENV] = str(path.resolve())
        return path

    @classmethod
    def load(cls) -> Optional["SweepContext"]:
        """The context of the sweep this process runs a job of, or None (a single run)."""
        path = os.environ.get(SWEEP_CONTEXT_ENV)
        if not path or not Path(path).is_file():
            return None
        return cls(**json.loads(Path(path).read_text()))


# --- where a job keeps its files --------------------------------------------------------------
PROJECT_ROOT = Path(__file__).resolve().parents[1]  # the checkout (or site-packages) holding us
# The data cache and the checkpoints, relative to the directory a job is launched from (it runs
# there: launch.py). The environment moves either: the job config's defaults read these
# variables when the job resolves them (trainer/config.py, ENV_DEFAULTS).
CACHE_ENV = "LMSWEEP_CACHE"
CHECKPOINTS_ENV = "LMSWEEP_CHECKPOINTS"
# The Makefile reads the next line (make cannot import Python): keep it `DEFAULT_CACHE = "..."`.
DEFAULT_CACHE = ".cache/lmsweep"
DEFAULT_CHECKPOINTS = f"{DEFAULT_CACHE}/checkpoints"


def cache_root(base: Path) -> Path:
    """The data cache of a job launched in `base` with the default config: $LMSWEEP_CACHE as
    given, else base/DEFAULT_CACHE. For scripts, which pass it on to their jobs."""
    return Path(os.environ.get(CACHE_ENV, base / DEFAULT_CACHE))


def checkpoint_dir(base: str, fingerprint: str) -> Path:
    """One directory per job identity: a re-run of the same config resumes from it."""
    return Path(base).expanduser().resolve() / fingerprint


# --- what a job hands back --------------------------------------------------------------------
@dataclass
class Summary:
    run_id: str
    name: str
    outcome: str
    params_total: int
    params_non_embedding: int
    steps: int
    tokens: int
    wall_clock_s: float
    final_val_loss: float
    unigram_entropy: float
    experiment_id: str = ""

    @classmethod
    def skipped(cls, name: str, outcome: str) -> "Summary":
        """The row of a job this process did not train (`outcome` says why): no run, no
        figures."""
        return cls("", name, outcome, 0, 0, 0, 0, 0.0, math.nan, math.nan)


# --- what the user is told -------------------------------------------------------------------
class JobsFailed(CompactHydraException, RuntimeError):
    """Some jobs of a sweep failed; the results table above says which and why."""


class ConfigError(CompactHydraException, ValueError):
    """Bad input or an unusable environment found before anything ran: the message names the
    value and the valid choices. Hydra prints a CompactHydraException as its message alone,
    without a traceback (hydra/_internal/utils.py: run_and_report)."""
