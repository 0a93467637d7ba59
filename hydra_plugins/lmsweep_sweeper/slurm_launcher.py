"""lmsweep's Slurm launcher: hydra-submitit-launcher's SlurmLauncher, whose job side (`__call__`:
restore Hydra's state and run the job; `checkpoint`: requeue) runs every job, launched
differently:

1. per-job resources: each job's `dist` (ranks per node, nodes) scales the launcher's one-rank
   resources, and jobs with equal resources share one Slurm job array;
2. the job ids and overrides are recorded right after submission (sweeper/slurm.py:
   `record_submission`), so `python -m sweeper status` finds the jobs;
3. `hydra.launcher.wait=false` returns at once (each job's result is a `Submitted`), as the
   plugin cannot (it blocks until every job ends: hydra issue #692);
4. with `wait=true` a cancelled or failed job becomes that job's FAILED result instead of an
   exception that abandons the other jobs' results.

In the job, `__call__` also uploads the job's submitit logs to its MLflow run. Hydra
instantiates plugin classes only from the `hydra_plugins` namespace, hence this module; the
logic lives in sweeper/slurm.py. Nothing heavy is imported at module level: Hydra imports
every plugin on every command.
(No `from __future__ import annotations` here: Hydra's plugin scanner may execute this module
before it is in sys.modules, and @dataclass with string annotations then fails.)
"""

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from hydra.core.config_store import ConfigStore
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
from omegaconf import OmegaConf

from trainer.contract import PROJECT_ROOT  # the standard library and hydra.errors only

log = logging.getLogger(__name__)

# For the preset's setup lines (conf/hydra/launcher/slurm.yaml): the submitting Python's
# environment (the venv) and the project checkout, both assumed visible from the nodes.
OmegaConf.register_new_resolver("lmsweep.venv", lambda: sys.prefix, replace=True)
OmegaConf.register_new_resolver("lmsweep.root", lambda: str(PROJECT_ROOT), replace=True)


@dataclass
class LmsweepSlurmConf(SlurmQueueConf):
    _target_: str = "hydra_plugins.lmsweep_sweeper.slurm_launcher.LmsweepSlurmLauncher"
    # false: return right after submission (the sweep id and the status command are printed)
    wait: bool = True
    # extra srun options; the preset's --kill-on-bad-exit=1 ends a job when one rank dies
    srun_args: Optional[List[str]] = None


ConfigStore.instance().store(
    group="hydra/launcher", name="lmsweep_slurm", node=LmsweepSlurmConf, provider="lmsweep"
)


class LmsweepSlurmLauncher(SlurmLauncher):
    def __init__(self, wait: bool, **params: Any) -> None:  # Hydra passes every field
        super().__init__(**params)
        self.wait = wait

    def __call__(
        self,
        sweep_overrides: List[str],
        job_dir_key: str,
        job_num: int,
        job_id: str,
        singleton_state: Dict[type, Singleton],
    ) -> JobReturn:
        """Runs in the job. A preemption/timeout (SystemExit from submitit's requeue) passes
        through untouched; the requeued job uploads the then complete log."""
        from sweeper import slurm

        ret = super().__call__(sweep_overrides, job_dir_key, job_num, job_id, singleton_state)
        if ret.status == JobStatus.FAILED:
            # Hydra hands the job's exception back as its result: submitit then logs "Job
            # completed successfully" and Slurm says COMPLETED, and an error raised before the
            # job's MLflow run existed (a path only the node sees) was written nowhere but the
            # result pickle: with wait=false nobody saw it. Into the job's stderr log, then.
            slurm.log_job_error(ret._return_value)
        slurm.upload_job_logs(
            job_num,
            getattr(ret.return_value, "run_id", None)
            if ret.status == JobStatus.COMPLETED
            else None,
        )
        return ret

    def ranks(self, overrides: Sequence[str]) -> Tuple[int, int]:
        """(nodes, ranks per node) from the job's own config."""
        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        dist = cfg.get("dist") or {}
        return int(dist.get("nodes", 1)), int(dist.get("nproc", 1))

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        from submitit.core.utils import FailedJobError, UncompletedJobError

        from sweeper import slurm
        from trainer.contract import SweepContext

        assert self.config is not None and len(job_overrides) > 0
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        groups: Dict[Tuple[int, int], List[int]] = {}
        for i, overrides in enumerate(job_overrides):
            groups.setdefault(self.ranks(overrides), []).append(i)
        jobs: List[Any] = [None] * len(job_overrides)
        for (nodes, nproc), members in groups.items():
            executor = slurm.executor(slurm.rank_scaled(self.params, nodes, nproc))
            args = [
                (
                    list(job_overrides[i]),
                    "hydra.sweep.dir",
                    initial_job_idx + i,
                    f"job_id_for_{initial_job_idx + i}",
                    Singleton.get_state(),
                )
                for i in members
            ]
            try:
                submitted = executor.map_array(self, *zip(*args))
            except FailedJobError as e:  # sbatch refused: one line, not submitit's traceback
                earlier = [j for j in jobs if j is not None]
                if earlier:  # status and --reconcile follow what was submitted
                    slurm.record_submission(
                        sweep_dir, SweepContext.load(), job_overrides, initial_job_idx, jobs, False
                    )
                raise slurm.sbatch_refused(e, earlier) from None
            for i, job in zip(members, submitted):
                jobs[i] = job
                log.info(
                    f"\t#{initial_job_idx + i} : {' '.join(job_overrides[i])}  "
                    f"(Slurm job {job.job_id}, {nodes}x{nproc} ranks)"
                )
        record = slurm.record_submission(
            sweep_dir, SweepContext.load(), job_overrides, initial_job_idx, jobs, self.wait
        )
        log.info(
            f"submitted {len(jobs)} jobs in {len(groups)} Slurm array(s); status: "
            f"{slurm.status_command(record.sweep_id, record.tracking_uri)}"
        )
        if not self.wait:
            batch = record.jobs[-len(jobs) :]
            return [
                JobReturn(
                    overrides=list(o),
                    status=JobStatus.COMPLETED,
                    _return_value=slurm.Submitted(r.index, r.run_name, r.slurm_job_id),
                )
                for o, r in zip(job_overrides, batch)
            ]
        results = []
        for overrides, job in zip(job_overrides, jobs):
            try:
                results.append(job.results()[0])
            except Exception as e:  # cancelled, killed, failed outside the task function
                if isinstance(e, UncompletedJobError):
                    e = slurm.SlurmJobEnded.from_submitit(job, e)
                results.append(
                    JobReturn(overrides=list(overrides), status=JobStatus.FAILED, _return_value=e)
                )
        return results
