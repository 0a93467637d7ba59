"""The lmsweep sweep: the cartesian product of the overrides (as Hydra's basic sweeper), plus

1. pre-flight: every job's config is composed and validated, and the plan (parameters,
   tokens, FLOPs, resources, GPU-hours) printed before the first job starts or is submitted;
2. resumable sweeps: jobs whose fingerprint already has a FINISHED run are skipped; jobs
   with a checkpoint resume into their MLflow run (the trainer does that part);
3. MLflow set-up done once here: the store, the experiment and a parent run per sweep, whose
   ids reach each job through the sweep context (trainer/contract.py): concurrent
   `set_experiment` calls race and misfile runs, and many jobs cannot initialise a fresh
   SQLite store at once;
4. a summary table of every job, and the command that opens the runs, at the end.

Whatever launcher runs the jobs (in-process, submitit local or Slurm) is Hydra's.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import re
import secrets
import shlex
import sys
import time
from pathlib import Path
from typing import Any, List, Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobStatus
from omegaconf import OmegaConf

from sweeper import plan as planning
from sweeper import slurm
from sweeper.preflight import PlannedJob, validate
from sweeper.status import job_runs
from trainer import contract, liveness, schema, startup_gc
from trainer.config import fingerprint
from trainer.contract import ConfigError, Summary
from trainer.registry import check
from trainer.report import sweep_view, table, ui_hint

log = logging.getLogger("lmsweep")


def new_sweep_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def expand(arguments: Sequence[str], config_loader: Any) -> List[List[str]]:
    """Every job's overrides: the cartesian product of the sweep overrides, in order. Hydra's
    BasicSweeper does the same, but only as a private class; this uses its public parser."""
    parsed = OverridesParser.create(config_loader=config_loader).parse_overrides(list(arguments))
    axes: dict[str, list[str]] = {}  # a key given twice (a preset's params, then the
    for o in parsed:  # command line) keeps its place, takes the last values
        key = o.get_key_element()
        if not o.is_sweep_override():
            axes[key] = [f"{key}={o.get_value_element_as_str()}"]
        elif o.is_discrete_sweep():
            axes[key] = [f"{key}={v}" for v in o.sweep_string_iterator()]
        else:
            raise ConfigError(
                f"{o.input_line}: the lmsweep sweeper takes lists of values "
                "(a=1,2, choice(1,2) or range(0,4)), not intervals"
            )
    jobs = [list(job) for job in itertools.product(*axes.values())]
    if not jobs:
        last = {o.get_key_element(): o.input_line for o in parsed}  # the line a key took
        empty = [last[k] for k, values in axes.items() if not values]
        raise ConfigError(f"the sweep has no jobs: {', '.join(empty)} gives no values")
    return jobs


# where and how a job runs, not what it trains (the fingerprint leaves them out too): kept out
# of a one-job sweep's run name, which is otherwise every override
NOT_IN_NAMES = ("tracking.", "hydra.", "hydra/", "cluster=", "cluster/")


def run_names(jobs: List[List[str]]) -> List[str]:
    """Name each run by the overrides that differ between jobs ("model=mixer optim=sm3");
    overrides shared by the whole sweep stay in the lmsweep.overrides tag."""
    varying = {
        o.split("=", 1)[0]
        for job in jobs
        for o in job
        if sum(o in other for other in jobs) < len(jobs)
    }
    names = [
        " ".join(o for o in job if o.split("=", 1)[0] in varying)
        or " ".join(o for o in job if not o.lstrip("+~").startswith(NOT_IN_NAMES))
        or "defaults"
        for job in jobs
    ]
    return [re.sub(r"\\(.)", r"\1", name) for name in names]  # Hydra's escapes (sqlite\:///)


def one_store_and_experiment(jobs: Sequence[PlannedJob]) -> None:
    """A sweep has one parent run, one plan of what already finished and one URL: its runs go
    to one experiment of one store."""
    for key in ("uri", "experiment"):
        values = {contract.redact(str(getattr(j.config.tracking, key))) for j in jobs}
        check(
            len(values) == 1,
            f"tracking.{key}",
            ",".join(sorted(values)),
            "one value per sweep (its runs go to one experiment of one store): "
            "launch one sweep per value",
        )


def one_run_per_job(plans: Sequence[planning.JobPlan], rerun: bool, in_turn: bool) -> None:
    """Jobs with one fingerprint train one run: the first would train it and the others skip
    it as "finished elsewhere", though the plan said run (seed=0,0, or values of fields that
    do not change what is trained). With hydra.sweeper.rerun=true on a launcher that runs
    jobs in turn, each trains a run of its own (a scaling-efficiency sweep over dist.nproc);
    a launcher that starts them at once would have them share one checkpoint folder."""
    if rerun and in_turn:
        return
    same: dict[str, list[planning.JobPlan]] = {}
    for p in plans:
        same.setdefault(p.fingerprint, []).append(p)
    groups = [g for g in same.values() if len(g) > 1]
    if groups:
        listed = "; ".join(" = ".join(f"#{p.index} ({p.name})" for p in g) for g in groups)
        raise ConfigError(
            f"{listed}: one run (one fingerprint), trained once: they differ in nothing, or only "
            "in what does not change training (threads, compile, device, ranks, checkpointing, "
            "locations; model.d_model and model.ffn_hidden, which model.params solves). Drop "
            "the repeats, or, to train each anyway (speed at several dist.nproc), add "
            "hydra.sweeper.rerun=true and run them in turn (Hydra's basic launcher; one sweep "
            "per value on Slurm). Nothing was launched."
        )


def run_sweep(plugin: Any, arguments: List[str]) -> Any:
    """`plugin` is the LmsweepSweeper (hydra_plugins/lmsweep_sweeper): its options, Hydra's
    context, the sweep config and the launcher."""
    import mlflow.tracking  # noqa: F401  (imported while the collector is paused)

    from trainer import tracking

    # Start-up is over before the jobs are composed: each leaves garbage cycles (~17k objects),
    # which the collector must free as they come in a sweep of thousands.
    startup_gc.settle()
    throughput = planning.Throughput(plugin.gpu, plugin.assumed_mfu)  # checked first
    check(
        plugin.max_batch_size is None or plugin.max_batch_size > 0,
        "hydra.sweeper.max_batch_size",
        plugin.max_batch_size,
        "null (every job at once) or > 0 jobs per launch",
    )
    loader = plugin.hydra_context.config_loader
    params = [f"{k}={v}" for k, v in plugin.params.items()]
    local = not slurm.is_slurm_launcher(plugin.config.hydra.launcher)

    def compose(overrides: List[str]) -> Any:
        config = loader.load_sweep_config(plugin.config, overrides)
        if local:  # the launcher runs it here, in this process: composed once
            plugin.composer.keep(plugin.config, overrides, config)
        return config

    jobs = validate(expand(params + list(arguments), loader), compose, local)
    names = run_names([j.overrides for j in jobs])
    one_store_and_experiment(jobs)
    settings = jobs[0].config.tracking
    uri = contract.resolve_uri(settings.uri)
    tracking.check_uri(uri)  # a dry run too, though it may not connect
    db = tracking.sqlite_path(uri)
    if plugin.dry_run and db is not None and not db.exists():
        client = None  # a dry run only reads: no store is created to plan against nothing
    else:  # fails in seconds, naming tracking.uri; then rides out a stall (tracking.Patient)
        client = tracking.Patient(
            tracking.connect(uri, cache_dir=jobs[0].config.data.cache_path()),
            settings.outage_limit_s,
            uri,
            "the sweep",
        )
    experiment = client and tracking.live_experiment(client, settings.experiment)
    if experiment is not None and not plugin.dry_run:  # dead processes' RUNNING runs closed
        for note in liveness.close_dead_runs(client, experiment.experiment_id):
            log.warning(note)
    finished = (
        {}
        if plugin.rerun or client is None
        else tracking.finished_runs(client, settings.experiment)
    )
    running = {} if client is None else tracking.running_runs(client, settings.experiment)
    launcher_cfg = OmegaConf.to_container(plugin.config.hydra.launcher, resolve=True)
    plans = [
        planning.plan(
            j.index, name, fingerprint(j.config), j.config, finished, running, launcher_cfg
        )
        for j, name in zip(jobs, names)
    ]
    in_turn = plugin.config.hydra.launcher.get("_target_", "").endswith(".BasicLauncher")
    one_run_per_job(plans, plugin.rerun, in_turn)
    print(planning.render(plans, throughput), flush=True)
    todo = [jobs[p.index] for p in plans if p.action not in planning.SKIPPED]
    # Slurm: refuse a request no node of the partition can hold, before any submission.
    requests = {
        tuple(sorted(map(str, p.launcher_params.items()))): p.launcher_params
        for p in plans
        if p.action not in planning.SKIPPED
    }.values()
    try:
        for request in requests:
            slurm.check_resources(request)
    except slurm.SlurmUnreachable as e:
        if not plugin.dry_run:
            raise
        print(f"dry run: the request was not checked against the nodes: {e}", flush=True)
    if plugin.dry_run:
        print("dry run: nothing launched", flush=True)
        return []
    if not todo:
        busy = sum(p.action == planning.RUNNING for p in plans)
        print(
            f"nothing to launch: every job has a FINISHED run in experiment "
            f"'{settings.experiment}' (hydra.sweeper.rerun=true runs them again)"
            if not busy
            else f"nothing to launch: {len(plans) - busy} of {len(plans)} jobs have a FINISHED "
            f"run in experiment '{settings.experiment}', {busy} another sweep trains now "
            "(python -m sweeper status follows them)",
            flush=True,
        )
        return []
    known = {**running, **finished}
    taken = [known[p.fingerprint] for p in plans if p.action in planning.SKIPPED]
    return _launch(plugin, todo, [names[j.index] for j in todo], taken, client, uri, settings)


def _launch(
    plugin: Any,
    todo: List[PlannedJob],
    names: List[str],
    taken: List[Any],
    client: Any,
    uri: str,
    settings: Any,
) -> Any:
    """Launch `todo`; `taken`: the runs of the sweep's other cells (FINISHED, or trained by
    another sweep's job now), taken in."""
    from mlflow.entities import RunTag

    from trainer import tracking

    experiment = settings.experiment
    experiment_id = tracking.ensure_experiment(client, experiment)
    sweep_id = new_sweep_id()
    command = shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])
    parent = tracking.start_sweep_run(client, experiment_id, sweep_id, command, len(todo))
    parent.log_text(json.dumps(names), schema.JOBS_ARTIFACT)  # status lists those not started
    for run in taken:
        moved = tracking.joined_sweep(run.data.tags, sweep_id, parent.run_id)
        client.log_batch(run.info.run_id, tags=[RunTag(k, v) for k, v in moved.items()])
    view = sweep_view(client, experiment_id, sweep_id)  # the URL printed at the end opens it
    sweep_dir = Path(plugin.config.hydra.sweep.dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(plugin.config, sweep_dir / "multirun.yaml")
    parent.log_text(OmegaConf.to_yaml(plugin.config), "multirun.yaml")
    log.info(
        f"sweep {sweep_id}: {len(todo)} jobs -> experiment '{experiment}' "
        f"({experiment_id}) at {contract.redact(uri)}"
    )
    context = contract.SweepContext(
        sweep_id,
        experiment_id,
        parent.run_id,
        contract.redact(uri),
        {str(i): name for i, name in enumerate(names)},
        plugin.rerun,
    )
    previous = os.environ.get(contract.SWEEP_CONTEXT_ENV)
    context.save(sweep_dir)
    client.settle()  # the jobs wait for the store on their own
    batch_size = plugin.max_batch_size or len(todo)
    rows, returns, failed = [], [], 0
    try:
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            results = plugin.launcher.launch([j.overrides for j in chunk], initial_job_idx=start)
            returns.append(results)
            for name, r in zip(names[start:], results):
                if r.status == JobStatus.COMPLETED:
                    rows.append(r.return_value)
                else:
                    failed += 1
                    # the error itself: the public return_value re-raises it, and Hydra
                    # prints "Error executing job" first
                    err = r._return_value
                    rows.append(f"{name}: {type(err).__name__}: {contract.scrub(str(err))}")
    finally:
        _restore_env(contract.SWEEP_CONTEXT_ENV, previous)
        queued = [r for r in rows if isinstance(r, slurm.Submitted)]
        if queued and len(queued) == len(rows) == len(todo):
            # hydra.launcher.wait=false: the parent stays RUNNING; `status --reconcile` ends it.
            print(
                "\n"
                + slurm.submitted_note(sweep_id, uri, queued)
                + "\n\nMLflow: "
                + ui_hint(contract.redact(uri), experiment_id, view),
                flush=True,
            )
        else:
            ok = failed == 0 and len(rows) == len(todo)
            if len(rows) < len(todo):  # interrupted mid-batch: the jobs that ran are in the store
                ids = {run.info.run_id for run in taken}
                ran = [r for r in ran_in(client, experiment_id, sweep_id) if r.run_id not in ids]
                rows = [*ran, *(r for r in rows if isinstance(r, str))]
            # runs another sweep was training, as they are now: finished since, maybe
            taken = [
                client.get_run(run.info.run_id) if run.info.status == "RUNNING" else run
                for run in taken
            ]
            summary = table([*map(summary_of, taken), *rows])
            tracking.retrying(
                lambda: parent.describe(command, summary),
                settings.outage_limit_s,
                "recording the sweep's summary",
                uri,
            )
            tracking.retrying(
                lambda: parent.end("FINISHED" if ok else "FAILED"),
                settings.outage_limit_s,
                "closing the sweep's run",
                uri,
            )
            # interrupted before any job ended (and none taken in): no empty table
            shown = f"{summary}\n\n" if rows or taken else ""
            print(
                f"\n{shown}MLflow: " + ui_hint(contract.redact(uri), experiment_id, view),
                flush=True,
            )
    if failed:
        raise contract.JobsFailed(f"{failed} of {len(todo)} jobs failed (see the table above)")
    return returns


def ran_in(client: Any, experiment_id: str, sweep_id: str) -> List[Summary]:
    """The Summary rows of a sweep's job runs, read back from the store (what the launcher
    would have returned, had it not been interrupted)."""
    return [summary_of(run) for run in job_runs(client, experiment_id, sweep_id)]


def summary_of(run: Any) -> Summary:
    """A job run's row of the sweep's table, from what the store holds."""
    m, t = run.data.metrics, run.data.tags
    return Summary(
        run.info.run_id,
        run.info.run_name,
        t.get(schema.TAG_OUTCOME, run.info.status.lower()),
        int(t.get(schema.TAG_PARAMS_TOTAL, 0)),
        int(t.get(schema.TAG_PARAMS_NON_EMBEDDING, 0)),
        0,
        int(m.get(schema.TOKENS, 0)),
        m.get(schema.WALL_CLOCK, 0.0),
        m.get(schema.FINAL_VAL_LOSS, math.nan),
        m.get(schema.UNIGRAM_ENTROPY, math.nan),
        run.info.experiment_id,
    )


def _restore_env(key: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = value
