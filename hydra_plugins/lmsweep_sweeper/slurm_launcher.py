"""lmsweep's Slurm launcher: hydra-submitit-launcher's SlurmLauncher plus three things it lacks.

Why a subclass at all: the plugin's `launch()` submits the sweep (`map_array`: one Slurm job
array) and then blocks until every job has finished (hydra issue #692), and it keeps the
submitted job ids to itself. Here `launch()` is the plugin's, split at that point:

1. the job ids and overrides are recorded right after submission (sweeper/slurm.py:
   `record_submission`), so `python -m sweeper status` can find the jobs;
2. `hydra.launcher.wait=false` returns at once (each job's result is a `Submitted`);
3. with `wait=true` a cancelled or failed job becomes that job's FAILED result instead of an
   exception that abandons the other jobs' results.

And in the job, `__call__` uploads the job's submitit logs to its MLflow run once the task
function has returned. Hydra instantiates plugin classes only from the `hydra_plugins`
namespace, hence this module; the logic lives in sweeper/slurm.py. Written against
hydra-submitit-launcher 1.2.0 (pinned); `_executor` mirrors its `launch()`.
(No `from __future__ import annotations` here: Hydra's plugin scanner may execute this module
before it is in sys.modules, and @dataclass with string annotations then fails.)
"""

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Sequence

from hydra.core.config_store import ConfigStore
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf, SlurmQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
from omegaconf import OmegaConf

from sweeper import slurm

log = logging.getLogger(__name__)

# For the preset's setup lines (conf/hydra/launcher/slurm.yaml): the submitting Python's
# environment (the venv) and the project checkout, both assumed visible from the nodes.
PROJECT_ROOT = str(Path(slurm.__file__).resolve().parents[1])
OmegaConf.register_new_resolver("lmsweep.venv", lambda: sys.prefix, replace=True)
OmegaConf.register_new_resolver("lmsweep.root", lambda: PROJECT_ROOT, replace=True)


@dataclass
class LmsweepSlurmConf(SlurmQueueConf):
    _target_: str = "hydra_plugins.lmsweep_sweeper.slurm_launcher.LmsweepSlurmLauncher"
    # false: return right after submission (the sweep id and the status command are printed)
    wait: bool = True


ConfigStore.instance().store(group="hydra/launcher", name="lmsweep_slurm", node=LmsweepSlurmConf,
                             provider="lmsweep")


class LmsweepSlurmLauncher(SlurmLauncher):
    def __init__(self, wait: bool = True, **params: Any) -> None:
        super().__init__(**params)
        self.wait = wait

    def __call__(self, sweep_overrides: List[str], *args: Any, **kwargs: Any) -> JobReturn:
        """Runs in the job. A preemption/timeout (SystemExit from submitit's requeue) passes
        through untouched; the requeued job uploads the then complete log."""
        ret = super().__call__(sweep_overrides, *args, **kwargs)
        value = ret._return_value
        slurm.upload_job_logs(sweep_overrides, getattr(value, "run_id", None)
                              if ret.status == JobStatus.COMPLETED else None)
        return ret

    def _executor(self) -> Any:
        """The plugin's executor set-up (launch() of hydra-submitit-launcher 1.2.0)."""
        import submitit

        init_keys = {"max_num_timeout", "submitit_folder"}
        executor = submitit.AutoExecutor(
            cluster=self._EXECUTOR, folder=self.params["submitit_folder"],
            **{f"{self._EXECUTOR}_max_num_timeout": self.params["max_num_timeout"]})
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{k if k in base else f"{self._EXECUTOR}_{k}": v
                                      for k, v in self.params.items() if k not in init_keys})
        return executor

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
               ) -> Sequence[JobReturn]:
        assert self.config is not None and len(job_overrides) > 0
        executor = self._executor()
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        log.info(f"Submitit 'slurm' sweep output dir : {sweep_dir}")
        params = []
        for idx, overrides in enumerate(job_overrides, initial_job_idx):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            params.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}",
                           Singleton.get_state()))
        jobs = executor.map_array(self, *zip(*params))
        record = slurm.record_submission(sweep_dir, job_overrides, initial_job_idx, jobs, self.wait)
        log.info(f"submitted {len(jobs)} jobs: Slurm array {jobs[0].job_id.split('_')[0]}; "
                 f"status: {slurm.status_command(record.sweep_id, record.tracking_uri)}")
        if not self.wait:
            batch = record.jobs[-len(jobs):]
            return [JobReturn(overrides=list(o), status=JobStatus.COMPLETED,
                              _return_value=slurm.Submitted(r.index, r.run_name, r.slurm_job_id))
                    for o, r in zip(job_overrides, batch)]
        results = []
        for overrides, job in zip(job_overrides, jobs):
            try:
                results.append(job.results()[0])
            except Exception as e:     # cancelled, killed, failed outside the task function
                if type(e).__name__ == "UncompletedJobError":
                    e = slurm.SlurmJobEnded.from_submitit(job, e)
                results.append(JobReturn(overrides=list(overrides), status=JobStatus.FAILED,
                                         _return_value=e))
        return results
