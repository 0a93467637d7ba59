"""The lmsweep sweeper: Hydra's BasicSweeper (cartesian product of the overrides) plus

1. pre-flight: every job's config is composed and validated before the first job starts;
2. MLflow set-up done once here: the store, the experiment and a parent run per sweep, whose
   ids are handed to each job as `sweep.*` overrides (concurrent `set_experiment` calls race
   and misfile runs, and a fresh SQLite store cannot be initialised by many jobs at once);
3. a summary table of every job, and the `mlflow ui` command, at the end.

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

from sweeper.preflight import validate
from sweeper.summary import table, ui_hint
from trainer import schema
from trainer.tracking import RunLogger, ensure_experiment, resolve_uri

log = logging.getLogger("lmsweep")


@dataclass
class LmsweepSweeperConf:
    _target_: str = "hydra_plugins.lmsweep_sweeper.LmsweepSweeper"
    max_batch_size: Optional[int] = None
    params: Optional[Dict[str, str]] = None


def new_sweep_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def run_names(jobs: List[List[str]]) -> List[str]:
    """Name each run by the overrides that differ between jobs ("model=mixer optim=sm3");
    overrides shared by the whole sweep stay in the lmsweep.overrides tag."""
    varying = {o.split("=", 1)[0] for job in jobs for o in job
               if sum(o in other for other in jobs) < len(jobs)}
    return [" ".join(o for o in job if o.split("=", 1)[0] in varying) or " ".join(job) or "defaults"
            for job in jobs]


class LmsweepSweeper(BasicSweeper):
    def sweep(self, arguments: List[str]) -> Any:
        assert self.config is not None and self.launcher is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides(self._parse_config() + list(arguments))
        jobs = [job for batch in self.split_arguments(overrides, None) for job in batch]

        planned = validate(jobs, lambda o: self.hydra_context.config_loader.load_sweep_config(
            self.config, o))
        log.info(f"pre-flight: {len(planned)} job configs composed and validated")

        tracking = planned[0].config.tracking
        uri = resolve_uri(tracking.uri)
        from mlflow.tracking import MlflowClient

        client = MlflowClient(uri)
        experiment_id = ensure_experiment(client, tracking.experiment)
        sweep_id = new_sweep_id()
        parent = RunLogger.start(client, experiment_id, f"sweep {sweep_id}", tags={
            schema.TAG_ROLE: schema.ROLE_SWEEP,
            schema.TAG_SWEEP_ID: sweep_id,
            "lmsweep.command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "lmsweep.jobs": len(planned),
        })
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        parent.log_text(OmegaConf.to_yaml(self.config), "multirun.yaml")
        log.info(f"sweep {sweep_id}: {len(planned)} jobs -> experiment "
                 f"'{tracking.experiment}' ({experiment_id}) at {uri}")

        context = [f"sweep.id={sweep_id}", f"sweep.experiment_id={experiment_id}",
                   f"sweep.parent_run_id={parent.run_id}", f"tracking.uri={uri}"]
        names = run_names([p.overrides for p in planned])
        batch_size = self.max_batch_size or len(planned)
        rows, returns, failed = [], [], 0
        try:
            for start in range(0, len(planned), batch_size):
                batch = [p.overrides + context + [f"sweep.run_name='{names[p.index]}'"]
                         for p in planned[start: start + batch_size]]
                results = self.launcher.launch(batch, initial_job_idx=start)
                returns.append(results)
                for i, r in enumerate(results, start):
                    if r.status == JobStatus.COMPLETED:
                        rows.append(r.return_value)
                    else:
                        failed += 1
                        err = r._return_value
                        rows.append(f"{names[i]}: {type(err).__name__}: {err}")
        finally:
            parent.end("FINISHED" if failed == 0 and len(rows) == len(planned) else "FAILED")
            print("\n" + table(rows) + "\n\nMLflow: " + ui_hint(uri, experiment_id), flush=True)
        if failed:
            raise RuntimeError(f"{failed} of {len(planned)} jobs failed (see the table above)")
        return returns
