"""Slurm dispatch for lmsweep (`hydra/launcher=slurm`, see docs/cluster.md).

Jobs are submitted by hydra-submitit-launcher (one Slurm job array per sweep batch); this
module holds what lmsweep adds around it:

- `check_resources(launcher_cfg)`: pre-flight. A request that no node of the partition can
  hold (GPUs, CPUs or memory per node) is refused before anything is submitted, instead of
  pending forever or being rejected by sbatch halfway through a sweep.
- `record_submission(...)`: writes down each job's Slurm id and overrides, in
  `<sweep dir>/slurm_jobs.json` and as the artifact `slurm_jobs.json` (+ the tag
  `lmsweep.slurm_job_ids`) of the sweep's parent MLflow run, where
  `python -m sweeper status` reads them.
- `Submitted`: what a job "returns" when the launcher does not wait (`hydra.launcher.wait=false`).
- `upload_job_logs(...)`: runs in the job, after the task function: submitit's stdout/stderr
  of the job become artifacts (`submitit/`) of its MLflow run.
- `job_states(ids)`: the jobs' states from squeue (live) and sacct (accounting).

Nothing here imports torch: `python -m sweeper status` stays fast.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

from trainer import schema
from trainer.contract import ConfigError, SweepContext, redact, resolve_uri, scrub
from trainer.tables import counted

log = logging.getLogger("lmsweep")

RECORD_FILE = "slurm_jobs.json"  # in the sweep dir, and as an artifact of the parent run
LOG_ARTIFACT_DIR = "submitit"  # artifact folder of a job's run for its Slurm logs
SLURM_TIMEOUT_S = 30

# Slurm states after which a job will not run again by itself.
TERMINAL_STATES = {
    "BOOT_FAIL",
    "CANCELLED",
    "COMPLETED",
    "DEADLINE",
    "FAILED",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "TIMEOUT",
    "REVOKED",
    "SPECIAL_EXIT",
}


# --- calling Slurm ---------------------------------------------------------------------------


def _run(cmd: Sequence[str]) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=SLURM_TIMEOUT_S)


def is_slurm_launcher(launcher_cfg: Mapping[str, Any]) -> bool:
    target = str(launcher_cfg.get("_target_", "") or "")
    return target.endswith("SlurmLauncher")


# --- pre-flight: resources ---------------------------------------------------------------------
@dataclass(frozen=True)
class NodeShape:
    cpus: int
    mem_mb: int
    gpus: int

    def describe(self) -> str:
        return f"{counted(self.cpus, 'CPU')}, {self.mem_mb} MB memory, {counted(self.gpus, 'GPU')}"


@dataclass
class Request:
    """What one node of the job must hold (Slurm allocates per node)."""

    cpus: int
    gpus: int
    mem_mb: Optional[int]  # None: the partition's default (DefMemPerCPU/...)
    nodes: int

    def describe(self) -> str:
        mem = "default memory" if self.mem_mb is None else f"{self.mem_mb} MB memory"
        per = " per node" + (f" on {self.nodes} nodes" if self.nodes > 1 else "")
        return f"{counted(self.gpus, 'GPU')}, {counted(self.cpus, 'CPU')}, {mem}{per}"

    def fits(self, node: NodeShape) -> bool:
        return (
            self.cpus <= node.cpus
            and self.gpus <= node.gpus
            and (self.mem_mb is None or self.mem_mb <= node.mem_mb)
        )


def parse_mem_mb(value: Any) -> int:
    """Slurm memory sizes: 4096 (MB), '4G', '500M', '1T', '16GB' -> MB."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)B?\s*", str(value), re.IGNORECASE)
    if not m:
        raise ConfigError(f"cannot read the memory size {value!r} (expected e.g. 4096, 500M, 4G)")
    scale = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 * 1024}[m.group(2).upper()]
    return int(float(m.group(1)) * scale)


def gres_gpus(gres: Optional[str]) -> int:
    """GPUs in a gres string: 'gpu:2', 'gpu:a100:4(S:0-1)', 'gpu:2,shard:8', '(null)' -> count."""
    total = 0
    for item in re.split(r",(?![^(]*\))", gres or ""):
        parts = re.sub(r"\(.*\)", "", item.strip()).split(":")
        if parts[0] == "gpu":
            total += int(parts[-1]) if len(parts) > 1 and parts[-1].isdigit() else 1
    return total


def requested(cfg: Mapping[str, Any]) -> Request:
    """Per-node request of a submitit_slurm launcher config (`hydra.launcher`)."""
    tasks = int(cfg.get("tasks_per_node") or 1)
    cpus_per_task = int(cfg.get("cpus_per_task") or 1)
    if cfg.get("gpus_per_node"):
        gpus = int(cfg["gpus_per_node"])
    elif cfg.get("gpus_per_task"):
        gpus = int(cfg["gpus_per_task"]) * tasks
    else:
        gpus = gres_gpus(cfg.get("gres"))
    if cfg.get("cpus_per_gpu") and gpus:
        cpus_per_task = max(cpus_per_task, int(cfg["cpus_per_gpu"]) * gpus // tasks)
    cpus = cpus_per_task * tasks
    mem_mb = None
    if cfg.get("mem_gb"):
        mem_mb = int(float(cfg["mem_gb"]) * 1024)
    elif cfg.get("mem_per_cpu"):
        mem_mb = parse_mem_mb(cfg["mem_per_cpu"]) * cpus
    elif cfg.get("mem_per_gpu") and gpus:
        mem_mb = parse_mem_mb(cfg["mem_per_gpu"]) * gpus
    return Request(cpus=cpus, gpus=gpus, mem_mb=mem_mb, nodes=int(cfg.get("nodes") or 1))


def rank_scaled(params: Mapping[str, Any], nodes: int, nproc: int) -> dict[str, Any]:
    """Launcher params for a job of `nproc` ranks per node on `nodes` nodes. The launcher's
    resources describe one rank (its CPUs, GPUs and memory, as for a one-process job); a
    distributed job runs one Slurm task per rank (lingua, submitit's
    TorchDistributedEnvironment), so per node it asks for nproc times a rank's GPUs and memory."""
    tasks = int(params.get("tasks_per_node") or 1)
    if tasks != 1:
        raise ConfigError(
            f"hydra.launcher.tasks_per_node={tasks} is invalid: lmsweep runs one "
            "task per rank, set by the job's dist.nproc (and dist.nodes); leave "
            "tasks_per_node at 1. Nothing was submitted."
        )
    # `nodes` is replaced by the job's dist.nodes below: a launcher value other than 1 was
    # dropped without a word (hydra.launcher.nodes=2 ran each job on one node).
    if int(params.get("nodes") or 1) != 1:
        raise ConfigError(
            f"hydra.launcher.nodes={params['nodes']} is invalid: a job's nodes are set by its "
            f"dist.nodes (e.g. dist=ddp dist.nodes={params['nodes']}); leave hydra.launcher.nodes "
            "at 1. Nothing was submitted."
        )
    out = {**params, "nodes": nodes, "tasks_per_node": nproc}
    for key in ("gpus_per_node", "mem_gb"):
        if params.get(key):
            out[key] = params[key] * nproc
    if params.get("gres"):  # per node in sbatch, so per rank here, as gpus_per_node
        out["gres"] = scale_gres(params["gres"], nproc)
    return out


def scale_gres(gres: str, factor: int) -> str:
    """sbatch --gres with its GPU counts times `factor`: 'gpu:a100:1' x 4 -> 'gpu:a100:4',
    'gpu' (one) x 2 -> 'gpu:2'; other resources (shard, ...) as they are."""

    def one(item: str) -> str:
        parts = item.strip().split(":")
        if parts[0] != "gpu":
            return item
        numbered = len(parts) > 1 and parts[-1].isdigit()
        n = int(parts[-1]) if numbered else 1
        return ":".join([*(parts[:-1] if numbered else parts), str(n * factor)])

    return ",".join(one(item) for item in gres.split(","))


def executor(params: Mapping[str, Any]) -> Any:
    """submitit's Slurm executor for launcher params, as hydra-submitit-launcher 1.2.0 (pinned)
    builds it inside its launch(), which has no public function for it: `submitit_folder` and
    `max_num_timeout` go to the constructor, BaseQueueConf's keys as they are, every other key
    with the `slurm_` prefix."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf

    ex = submitit.AutoExecutor(
        folder=params["submitit_folder"],
        cluster="slurm",
        slurm_max_num_timeout=params["max_num_timeout"],
    )
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    ex.update_parameters(
        **{
            k if k in base else f"slurm_{k}": v
            for k, v in params.items()
            if k not in ("submitit_folder", "max_num_timeout")
        }
    )
    return ex


def parse_sinfo(text: str) -> dict[str, dict[str, NodeShape]]:
    """`sinfo -h -N -o '%P|%N|%c|%m|%G'` -> {partition: {node: shape}}; '*' marks the default."""
    out: dict[str, dict[str, NodeShape]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        part, node, cpus, mem, gres = (x.strip() for x in line.split("|")[:5])
        out.setdefault(part, {})[node] = NodeShape(
            _leading_int(cpus), _leading_int(mem), gres_gpus(gres)
        )
    return out


def _leading_int(text: str) -> int:
    m = re.match(r"\d+", text)
    return int(m.group()) if m else 0


class SlurmUnreachable(ConfigError):
    """No Slurm answers here: a refusal when submitting, a note in a dry run (a cluster sweep
    planned on a laptop)."""


def partitions_from_sinfo() -> dict[str, dict[str, NodeShape]]:
    if shutil.which("sinfo") is None:
        raise SlurmUnreachable(
            "hydra/launcher=slurm, but `sinfo` is not on PATH: run the sweep on a Slurm login "
            "node (or start the test cluster: bash scripts/local-slurm.sh). Nothing was submitted."
        )
    r = _run(["sinfo", "-h", "-N", "-o", "%P|%N|%c|%m|%G"])
    if r.returncode != 0:
        raise SlurmUnreachable(
            f"`sinfo` failed, so Slurm is not reachable ({r.stderr.strip()}). "
            "Nothing was submitted."
        )
    return parse_sinfo(r.stdout)


def check_resources(
    launcher_cfg: Mapping[str, Any], partitions: Optional[dict[str, dict[str, NodeShape]]] = None
) -> None:
    """Refuse (ConfigError) a Slurm request that no node of the partition can hold, with
    what was asked and what the nodes have. A no-op for other launchers. `partitions` is the
    parsed `sinfo` (queried when None)."""
    if not is_slurm_launcher(launcher_cfg):
        return
    check_time(launcher_cfg)
    req = requested(launcher_cfg)
    parts = partitions if partitions is not None else partitions_from_sinfo()
    default = [p.rstrip("*") for p in parts if p.endswith("*")]
    parts = {p.rstrip("*"): nodes for p, nodes in parts.items()}
    wanted = launcher_cfg.get("partition")
    names = [p.strip() for p in str(wanted).split(",")] if wanted else default[:1]
    if not names:
        raise ConfigError(
            "hydra.launcher.partition is not set and the cluster has no default "
            f"partition; choose one of: {', '.join(sorted(parts))}"
        )
    unknown = [p for p in names if p not in parts]
    if unknown:
        raise ConfigError(
            f"hydra.launcher.partition={wanted}: no partition named {', '.join(unknown)} on this "
            f"cluster; partitions: {', '.join(sorted(parts))}. Nothing was submitted."
        )
    details = []
    for p in names:
        nodes = parts[p]
        fitting = [n for n, shape in nodes.items() if req.fits(shape)]
        if len(fitting) >= req.nodes:
            return
        shapes: dict[NodeShape, list[str]] = {}
        for n, shape in sorted(nodes.items()):
            shapes.setdefault(shape, []).append(n)
        have = "; ".join(
            f"{len(ns)} node{'s' if len(ns) > 1 else ''} ({_short(ns)}) with {shape.describe()}"
            for shape, ns in shapes.items()
        )
        details.append(f"partition '{p}' has {have}")
    asked = (
        f"gpus_per_node={launcher_cfg.get('gpus_per_node')}, "
        f"cpus_per_task={launcher_cfg.get('cpus_per_task')}, "
        f"tasks_per_node={launcher_cfg.get('tasks_per_node')}, "
        f"mem_gb={launcher_cfg.get('mem_gb')}, nodes={launcher_cfg.get('nodes')}"
    )
    raise ConfigError(
        f"the Slurm request cannot be met: each job asks for {req.describe()} "
        f"(hydra.launcher: {asked}), but {'; '.join(details)}. Nothing was submitted: lower "
        "the request or pick another partition (hydra.launcher.partition=...)."
    )


def check_time(launcher_cfg: Mapping[str, Any]) -> None:
    """Refuse a time limit that cannot work. sbatch takes `--time=0` as no limit and accepted
    a negative one: a job that pends forever where partitions have a MaxTime, and that
    submitit, measuring time-outs against the limit, requeues as timed out at every
    preemption. A limit not above `signal_delay_s` has Slurm send SIGUSR2 as each attempt
    starts: every attempt was stopped and requeued until max_num_timeout ran out."""
    minutes = launcher_cfg.get("timeout_min")
    if minutes is None:  # not a submitit_slurm config (its field has a default)
        return
    delay = int(launcher_cfg.get("signal_delay_s") or 0)
    if int(minutes) < 1:
        raise ConfigError(
            f"hydra.launcher.timeout_min={minutes} is invalid: the time limit of one attempt, "
            "in minutes, must be at least 1 (Slurm takes 0 as no limit, which lmsweep's "
            "requeue on time-outs and preemption cannot work with). Nothing was submitted."
        )
    if int(minutes) * 60 <= delay:
        raise ConfigError(
            f"hydra.launcher.timeout_min={minutes} ({int(minutes) * 60} s) must be longer than "
            f"hydra.launcher.signal_delay_s={delay}: Slurm sends SIGUSR2 that long before the "
            "limit, so every attempt would be stopped and requeued as it starts. Raise "
            "timeout_min or lower signal_delay_s. Nothing was submitted."
        )


def _short(names: list[str], n: int = 4) -> str:
    return ", ".join(names[:n]) + (f", ... (+{len(names) - n})" if len(names) > n else "")


# --- what was submitted ------------------------------------------------------------------------
@dataclass
class Submitted:
    """Returned for each job when the launcher does not wait (hydra.launcher.wait=false)."""

    index: int
    name: str
    slurm_job_id: str

    def __str__(self) -> str:
        return f"{self.name}: submitted as Slurm job {self.slurm_job_id}"


class SlurmJobEnded(RuntimeError):
    """A job that ended without a result (cancelled, killed, timed out for good): one line for
    the sweep's results table instead of submitit's message with the whole error stream."""

    @classmethod
    def from_submitit(cls, job: Any, error: Exception) -> "SlurmJobEnded":
        m = re.search(r"\(state: ([^)]*)\)", str(error))
        return cls(
            f"Slurm job {job.job_id} ended without a result (state: "
            f"{m.group(1) if m else 'unknown'}); log: {job.paths.stderr}"
        )


def sbatch_refused(error: Exception, earlier: Sequence[Any]) -> ConfigError:
    """The error for a job array sbatch refused (a node feature, account, QOS or partition
    limit only the controller judges): sbatch's own line instead of submitit's traceback.
    `earlier`: the jobs of this sweep's other arrays, submitted before it."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    why = next((ln for ln in lines if "error" in ln.lower()), lines[0] if lines else str(error))
    ids = ", ".join(str(j.job_id) for j in earlier)
    done = (
        f"Already submitted: Slurm jobs {ids} (scancel them, or fix the request and run the "
        "same command again: it skips what finished)."
        if earlier
        else "Nothing was submitted."
    )
    return ConfigError(f"sbatch refused the sweep's jobs: {why}. {done}")


def log_job_error(error: Any) -> None:
    """In the job: its exception, with the traceback, to the job's stderr (the Slurm log
    `<job id>_<task>_log.err`, uploaded with the run). One line for a ConfigError."""
    import traceback

    if isinstance(error, ConfigError):
        print(f"the job failed: {scrub(str(error))}", file=sys.stderr, flush=True)
    elif isinstance(error, BaseException):  # scrubbed: the log is uploaded with the run
        lines = traceback.format_exception(type(error), error, error.__traceback__)
        print("the job failed:\n" + scrub("".join(lines)), file=sys.stderr, flush=True)


@dataclass
class JobRecord:
    index: int
    slurm_job_id: str  # "<array job id>_<task>", as in sacct and submitit
    run_name: str
    overrides: list[str]  # the job's own overrides (the sweep context is in SweepRecord)
    stdout: str
    stderr: str


@dataclass
class SweepRecord:
    sweep_id: str
    sweep_dir: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    wait: bool
    arrays: list[str] = field(default_factory=list)
    jobs: list[JobRecord] = field(default_factory=list)

    @classmethod
    def from_json(cls, text: str) -> "SweepRecord":
        d = json.loads(text)
        d["jobs"] = [JobRecord(**j) for j in d.get("jobs", [])]
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)


def record_submission(
    sweep_dir: Path,
    context: Optional[SweepContext],
    job_overrides: Sequence[Sequence[str]],
    first_index: int,
    jobs: Sequence[Any],
    wait: bool,
) -> SweepRecord:
    """Write down what was just submitted (one call per launched batch; batches accumulate):
    `<sweep_dir>/slurm_jobs.json`, and on the parent MLflow run the same file as an artifact
    plus the tag `lmsweep.slurm_job_ids` (the array job ids). `jobs` are submitit Jobs;
    `context` is the lmsweep sweep's (None under another sweeper)."""
    ctx = context or SweepContext("", "", "", "")
    path = sweep_dir / RECORD_FILE
    if path.exists():
        record = SweepRecord.from_json(path.read_text())
    else:
        record = SweepRecord(
            ctx.id,
            str(sweep_dir.resolve()),
            ctx.tracking_uri,
            ctx.experiment_id,
            ctx.parent_run_id,
            wait,
        )
    for i, (overrides, job) in enumerate(zip(job_overrides, jobs), first_index):
        if job is None:  # its array was refused by sbatch: not submitted
            continue
        record.jobs.append(
            JobRecord(
                i,
                str(job.job_id),
                ctx.run_name(i),
                list(overrides),
                str(job.paths.stdout),
                str(job.paths.stderr),
            )
        )
        array = str(job.job_id).split("_")[0]
        if array not in record.arrays:
            record.arrays.append(array)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(record.to_json())
    tmp.replace(path)
    if record.tracking_uri and record.parent_run_id:
        try:
            from trainer.tracking import RunLogger, client_for

            parent = RunLogger(client_for(record.tracking_uri), record.parent_run_id)
            parent.set_tags({schema.TAG_SLURM_JOB_IDS: ",".join(record.arrays)})
            parent.log_file(path)
        except Exception as e:  # the JSON file still serves `status --sweep-dir`
            log.warning(f"could not record the Slurm job ids on the parent MLflow run: {e}")
    return record


def status_command(sweep_id: str, tracking_uri: str) -> str:
    return f"python -m sweeper status --sweep-id {sweep_id} --tracking-uri {redact(tracking_uri)}"


def submitted_note(sweep_id: str, tracking_uri: str, submitted: Sequence[Submitted]) -> str:
    """What the sweeper prints instead of the results table when it did not wait."""
    arrays = sorted({s.slurm_job_id.split("_")[0] for s in submitted}, key=int)
    return (
        f"sweep {sweep_id}: {len(submitted)} jobs submitted to Slurm (array job"
        f"{'s' if len(arrays) > 1 else ''} {', '.join(arrays)}); not waiting for them "
        f"(hydra.launcher.wait=false).\nFollow them with:\n  "
        f"{status_command(sweep_id, tracking_uri)}"
    )


# --- in the job: submitit's logs -> MLflow -----------------------------------------------------
def upload_job_logs(job_num: int, run_id: Optional[str]) -> None:
    """Upload this job's submitit stdout/stderr as artifacts `submitit/<file>` of its MLflow run.
    Called in the job after the task function returned (successfully or not): the log is
    complete but for submitit's last lines. Best effort: never fails the job.
    `run_id` None (the task failed before returning a Summary): the run is looked up by its
    `lmsweep.slurm_job_id` tag, else by the sweep id and run name."""
    try:
        import submitit

        from trainer.tracking import RunLogger, client_for

        env = submitit.JobEnvironment()
        ctx = SweepContext.load()
        if env.global_rank != 0 or ctx is None:
            return
        sys.stdout.flush()
        sys.stderr.flush()
        client = client_for(resolve_uri(ctx.tracking_uri))
        run_id = run_id or _find_job_run(client, ctx, job_num, str(env.job_id))
        if not run_id:
            log.warning("submitit logs not uploaded: the job's MLflow run was not found")
            return
        from submitit.core.utils import JobPaths

        # Every rank's (a task each): a rank's own traceback is in its own log. The others
        # may still write their last lines.
        for task in range(env.num_tasks):
            paths = JobPaths(env.paths.folder, job_id=str(env.job_id), task_id=task)
            for p in (paths.stdout, paths.stderr):
                if Path(p).exists():
                    RunLogger(client, run_id).log_file(Path(p), LOG_ARTIFACT_DIR)
    except Exception as e:
        log.warning(f"submitit logs not uploaded to MLflow: {type(e).__name__}: {e}")


def _find_job_run(client, ctx: SweepContext, job_num: int, slurm_job_id: str) -> Optional[str]:
    base = f"tags.`{schema.TAG_SWEEP_ID}` = '{ctx.id}'"
    name = ctx.run_name(job_num).replace("'", "\\'")
    for extra in (
        f"tags.`{schema.TAG_SLURM_JOB_ID}` = '{slurm_job_id}'",
        f"attributes.run_name = '{name}'",
    ):
        runs = client.search_runs(
            [ctx.experiment_id],
            f"{base} and {extra}",
            max_results=1,
            order_by=["attributes.start_time DESC"],
        )
        if runs:
            return runs[0].info.run_id
    return None


# --- job states: squeue (live) + sacct (accounting) -------------------------------------------
@dataclass
class SlurmState:
    state: str  # PENDING, RUNNING, COMPLETED, CANCELLED, ...
    elapsed: str = ""
    detail: str = ""  # pending reason, or exit code
    node: str = ""

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES


def _expand(job_id: str) -> list[str]:
    """'12_[0-2,5%4]' -> ['12_0', '12_1', '12_2', '12_5']; '12_3' -> ['12_3']."""
    m = re.fullmatch(r"(\d+)_\[([^\]]+)\]", job_id)
    if not m:
        return [job_id]
    out = []
    for part in m.group(2).split("%")[0].split(","):
        lo, _, hi = part.partition("-")
        out += [f"{m.group(1)}_{i}" for i in range(int(lo), int(hi or lo) + 1)]
    return out


def job_states(job_ids: Iterable[str]) -> dict[str, SlurmState]:
    """States of jobs given as '<array>_<task>' or '<job>'. sacct first (needs accounting:
    slurmdbd), then squeue on top for jobs the controller still knows. Missing tools -> {}."""
    arrays = sorted({j.split("_")[0] for j in job_ids})
    states: dict[str, SlurmState] = {}
    if not arrays:
        return states
    ids = ",".join(arrays)
    if shutil.which("sacct"):
        r = _run(
            [
                "sacct",
                "-X",
                "-P",
                "-n",
                "-o",
                "JobID,State,Elapsed,ExitCode,NodeList,Reason",
                "-j",
                ids,
            ]
        )
        if r.returncode == 0:
            for line in r.stdout.splitlines():
                f = line.split("|")
                if len(f) < 6:
                    continue
                state, *more = f[1].split() or ["UNKNOWN"]  # "CANCELLED by 0"
                detail = (
                    f[5]
                    if state == "PENDING"
                    else f"by uid {more[-1]}"
                    if more[:1] == ["by"]
                    else f"exit {f[3]}"
                )
                for jid in _expand(f[0]):
                    node = "" if f[4] == "None assigned" else f[4]
                    states[jid] = SlurmState(state, f[2], detail, node)
    if shutil.which("squeue"):
        r = _run(["squeue", "-h", "-r", "-o", "%i|%T|%M|%r|%N", "-j", ids])
        if r.returncode == 0:
            for line in r.stdout.splitlines():
                f = line.split("|")
                if len(f) >= 5:
                    detail = f[3] if f[3] not in ("None", "") else ""
                    states[f[0]] = SlurmState(f[1], f[2], detail, f[4])
    return states
