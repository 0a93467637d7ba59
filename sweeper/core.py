"""The lmsweep sweeper: Hydra's BasicSweeper (cartesian product of the overrides) plus

1. pre-flight: every job's config is composed and validated, and the plan (parameters,
   tokens, FLOPs, GPU-hours) printed before the first job starts or is submitted;
2. resumable sweeps: jobs whose fingerprint already has a FINISHED run are skipped; jobs
   with a checkpoint resume into their MLflow run (the trainer does that part);
3. MLflow set-up done once here: the store, the experiment and a parent run per sweep, whose
   ids reach each job as `sweep.*` overrides (concurrent `set_experiment` calls race and
   misfile runs, and many jobs cannot initialise a fresh SQLite store at once);
4. a summary table of every job, and the `mlflow ui` command, at the end.

Whatever launcher runs the jobs (in-process, submitit local or Slurm) is Hydra's.
"""
from __future__ import annotations

import logging
import secrets
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobStatus
from omegaconf import OmegaConf

from sweeper import plan as planning
from sweeper.preflight import PlannedJob, validate
from sweeper.slurm import Submitted, check_resources, submitted_note
from sweeper.summary import table, ui_hint
from trainer import schema
from trainer.config import fingerprint
from trainer.tracking import RunLogger, ensure_experiment, resolve_uri

log = logging.getLogger("lmsweep")


@dataclass
class LmsweepSweeperConf:
    _target_: str = "hydra_plugins.lmsweep_sweeper.LmsweepSweeper"
    max_batch_size: Optional[int] = None
    params: Optional[Dict[str, str]] = None
    dry_run: bool = False                    # print the plan, launch nothing
    flops_per_gpu_second: float = 1.0e14     # for the plan's GPU-hours (~35% MFU of an A100)


def new_sweep_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def run_names(jobs: List[List[str]]) -> List[str]:
    """Name each run by the overrides that differ between jobs ("model=mixer optim=sm3");
    overrides shared by the whole sweep stay in the lmsweep.overrides tag."""
    varying = {o.split("=", 1)[0] for job in jobs for o in job
               if sum(o in other for other in jobs) < len(jobs)}
    return [" ".join(o for o in job if o.split("=", 1)[0] in varying) or " ".join(job) or "defaults"
            for job in jobs]


def finished_fingerprints(client, experiment_name: str) -> set[str]:
    exp = client.get_experiment_by_name(experiment_name)
    if exp is None:
        return set()
    runs = client.search_runs(
        [exp.experiment_id],
        filter_string=f"attributes.status = 'FINISHED' and tags.`{schema.TAG_ROLE}` = '{schema.ROLE_JOB}'",
        max_results=50_000)
    return {r.data.tags.get(schema.TAG_FINGERPRINT) for r in runs}


class LmsweepSweeper(BasicSweeper):
    def __init__(self, max_batch_size: Optional[int] = None, params: Optional[Dict[str, str]] = None,
                 dry_run: bool = False, flops_per_gpu_second: float = 1.0e14) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.dry_run, self.flops_per_gpu_second = dry_run, flops_per_gpu_second

    def sweep(self, arguments: List[str]) -> Any:
        assert self.config is not None and self.launcher is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides(self._parse_config() + list(arguments))
        jobs = [job for batch in self.split_arguments(overrides, None) for job in batch]
        jobs_planned = validate(jobs, lambda o: self.hydra_context.config_loader.load_sweep_config(
            self.config, o))
        names = run_names([p.overrides for p in jobs_planned])

        tracking = jobs_planned[0].config.tracking
        uri = resolve_uri(tracking.uri)
        from mlflow.tracking import MlflowClient

        client = MlflowClient(uri)
        plans = self._plan(jobs_planned, names, finished_fingerprints(client, tracking.experiment))
        print(planning.render(plans, self.flops_per_gpu_second), flush=True)
        todo = [jobs_planned[p.index] for p in plans if p.action != planning.SKIP]
        # Slurm: refuse a request no node of the partition can hold, before any submission.
        check_resources(self.config.hydra.launcher)
        if self.dry_run:
            print("dry run: nothing launched", flush=True)
            return []
        if not todo:
            print(f"all {len(plans)} jobs already have a FINISHED run in experiment "
                  f"'{tracking.experiment}': nothing to launch", flush=True)
            return []
        return self._launch(todo, names, client, uri, tracking.experiment)

    def _plan(self, jobs: List[PlannedJob], names: List[str], finished: set[str]):
        plans = []
        for job, name in zip(jobs, names):
            key = fingerprint(job.config)
            p = planning.plan(job.index, name, key, job.config)
            ckpt = Path(job.config.train.checkpoint_dir).expanduser().resolve() / key
            if key in finished:
                p.action = planning.SKIP
            elif any(ckpt.glob("step_*.pt")):
                p.action = planning.RESUME
            plans.append(p)
        return plans

    def _launch(self, todo: List[PlannedJob], names: List[str], client, uri: str,
                experiment: str) -> Any:
        experiment_id = ensure_experiment(client, experiment)
        sweep_id = new_sweep_id()
        parent = RunLogger.start(client, experiment_id, f"sweep {sweep_id}", tags={
            schema.TAG_ROLE: schema.ROLE_SWEEP,
            schema.TAG_SWEEP_ID: sweep_id,
            "lmsweep.command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "lmsweep.jobs": len(todo),
        })
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        parent.log_text(OmegaConf.to_yaml(self.config), "multirun.yaml")
        log.info(f"sweep {sweep_id}: {len(todo)} jobs -> experiment '{experiment}' "
                 f"({experiment_id}) at {uri}")

        context = [f"sweep.id={sweep_id}", f"sweep.experiment_id={experiment_id}",
                   f"sweep.parent_run_id={parent.run_id}", f"tracking.uri={uri}"]
        batch_size = self.max_batch_size or len(todo)
        rows, returns, failed = [], [], 0
        try:
            for start in range(0, len(todo), batch_size):
                chunk = todo[start: start + batch_size]
                batch = [j.overrides + context + [f"sweep.run_name='{names[j.index]}'"]
                         for j in chunk]
                results = self.launcher.launch(batch, initial_job_idx=start)
                returns.append(results)
                for job, r in zip(chunk, results):
                    if r.status == JobStatus.COMPLETED:
                        rows.append(r.return_value)
                    else:
                        failed += 1
                        err = r._return_value
                        rows.append(f"{names[job.index]}: {type(err).__name__}: {err}")
        finally:
            queued = [r for r in rows if isinstance(r, Submitted)]
            if queued and len(queued) == len(rows) == len(todo):
                # hydra.launcher.wait=false: the parent stays RUNNING; `status --reconcile` ends it.
                print("\n" + submitted_note(sweep_id, uri, queued), flush=True)
            else:
                parent.end("FINISHED" if failed == 0 and len(rows) == len(todo) else "FAILED")
                print("\n" + table(rows) + "\n\nMLflow: " + ui_hint(uri, experiment_id), flush=True)
        if failed:
            raise RuntimeError(f"{failed} of {len(todo)} jobs failed (see the table above)")
        return returns
